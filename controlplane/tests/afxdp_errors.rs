//! What the real `earshotd` does when AF_XDP cannot be had (issue 3, acceptance): with
//! `--backend afxdp` a missing interface, too few queues or missing capabilities end the
//! process with a non-zero status and one clear line on stderr, never a panic; with
//! `--backend auto` the first two start on io_uring with one log line saying why.
//!
//! Each test runs the binary in the appliance namespace of a veth pair of its own, so nothing
//! touches the machine's interfaces. Needs root: a plain binary (`harness = false`) runs the
//! tests through `earshot_tests::needs_root`, so without root each reports *ignored*, and fails
//! under `CI=true`.

use std::process::ExitStatus;
use std::time::Duration;

use earshot_tests::netns::{self, Veth};
use earshot_tests::process::{DaemonProcess, earshotd, earshotd_api};
use serde_json::json;

const EARSHOTD: &str = env!("CARGO_BIN_EXE_earshotd");
const EXIT_MAX: Duration = Duration::from_secs(15);
const START_MAX: Duration = Duration::from_secs(15);

/// Runs the daemon with `args` (after `wrapper`), expects it to fail on its own, and returns
/// the one line it printed as `earshotd: …`.
fn fails_with_one_line(veth: &Veth, wrapper: &[&str], args: &[&str]) -> String {
    let mut d = earshotd(EARSHOTD, veth, wrapper, args);
    let status = d.wait_exit(EXIT_MAX);
    let output = d.output();
    assert_clean_failure(status, &output, &d);
    let lines: Vec<&str> = output
        .lines()
        .filter(|l| l.starts_with("earshotd:"))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "one error line expected (args {args:?}):\n{output}"
    );
    println!("{args:?}: {}", lines[0]);
    lines[0].to_owned()
}

/// Exited by itself, with status 1 (`main`'s error exit): not a panic (101), not a signal.
fn assert_clean_failure(status: Option<ExitStatus>, output: &str, d: &DaemonProcess) {
    let Some(status) = status else {
        panic!(
            "still running after {EXIT_MAX:?} (pid {}):\n{output}",
            d.pid()
        );
    };
    assert_eq!(
        status.code(),
        Some(1),
        "exit status {status}, want 1:\n{output}"
    );
    assert!(!output.contains("panicked"), "a panic:\n{output}");
}

/// Starts the daemon with `--backend auto` and `args`, which must make AF_XDP unavailable;
/// expects it to run io_uring, to have said why in exactly one warning containing every one of
/// `why`, and to serve a call; then stops it.
fn falls_back(veth: &Veth, args: &[&str], why: &[&str]) {
    let mut all = vec!["--backend", "auto"];
    all.extend_from_slice(args);
    let mut d = earshotd(EARSHOTD, veth, &[], &all);
    let api = earshotd_api(veth);
    if let Err(e) = d.wait_healthy(&api, START_MAX) {
        panic!("backend auto with {args:?}: {e}");
    }
    let output = d.output();
    let warnings: Vec<&str> = output.lines().filter(|l| l.contains(" WARN ")).collect();
    assert_eq!(
        warnings.len(),
        1,
        "one warning saying why AF_XDP is unavailable expected:\n{output}"
    );
    println!("auto with {args:?}: {}", warnings[0]);
    for word in why.iter().chain(&["io_uring"]) {
        assert!(
            warnings[0].contains(word),
            "the fallback warning must mention {word:?}: {}",
            warnings[0]
        );
    }
    assert!(
        output
            .lines()
            .any(|l| l.contains("listening") && l.contains(r#"backend="uring""#)),
        "the daemon must say it runs uring:\n{output}"
    );
    assert!(!veth.xdp_attached(), "{}", veth.appliance_link());
    api.post("/v1/calls", &json!({}))
        .expect(201, "POST /v1/calls on the fallback");
    d.terminate();
    let status = d.wait_exit(EXIT_MAX);
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGTERM: {status:?}\n{}",
        d.output()
    );
}

/// Runs `body` in the peer namespace of a fresh pair (with `queues` queues).
fn with_veth(body: impl FnOnce(&Veth) + Send) {
    netns::assert_root();
    let veth = Veth::create();
    veth.in_peer(|| body(&veth));
}

fn a_missing_interface_with_afxdp_is_one_line_naming_it() {
    with_veth(|veth| {
        let line = fails_with_one_line(veth, &[], &["--backend", "afxdp", "--interface", "nope0"]);
        assert!(line.contains("nope0"), "{line}");
    });
}

fn a_missing_interface_with_auto_falls_back_to_io_uring() {
    with_veth(|veth| {
        falls_back(veth, &["--interface", "nope0"], &["nope0"]);
    });
}

fn too_few_queues_with_afxdp_is_one_line_saying_so() {
    with_veth(|veth| {
        let line = fails_with_one_line(
            veth,
            &[],
            &[
                "--backend",
                "afxdp",
                "--interface",
                &veth.appliance_if,
                "--workers",
                "2",
            ],
        );
        assert!(
            line.contains(&veth.appliance_if) && line.contains("queue"),
            "the error must name the interface and its queues: {line}"
        );
    });
}

fn too_few_queues_with_auto_falls_back_to_io_uring() {
    with_veth(|veth| {
        falls_back(
            veth,
            &["--interface", &veth.appliance_if, "--workers", "2"],
            &[&veth.appliance_if, "queue"],
        );
    });
}

/// As an unprivileged user with no capabilities at all (none permitted, none inheritable, an
/// empty bounding set), AF_XDP cannot be set up: one line saying why.
fn missing_capabilities_with_afxdp_is_one_clear_line() {
    with_veth(|veth| {
        let line = fails_with_one_line(
            veth,
            &[
                "setpriv",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
            ],
            &["--backend", "afxdp", "--interface", &veth.appliance_if],
        );
        let lower = line.to_lowercase();
        assert!(
            ["permission", "not permitted", "capabilit", "cap_"]
                .iter()
                .any(|w| lower.contains(w)),
            "the error must say that privileges are missing: {line}"
        );
        assert!(!veth.xdp_attached(), "{}", veth.appliance_link());
    });
}

fn main() {
    earshot_tests::needs_root::main(earshot_tests::root_trials![
        a_missing_interface_with_afxdp_is_one_line_naming_it,
        a_missing_interface_with_auto_falls_back_to_io_uring,
        too_few_queues_with_afxdp_is_one_line_saying_so,
        too_few_queues_with_auto_falls_back_to_io_uring,
        missing_capabilities_with_afxdp_is_one_clear_line,
    ]);
}

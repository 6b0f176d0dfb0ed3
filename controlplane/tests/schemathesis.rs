//! The OpenAPI document states what the server enforces (issue 10 point 8): schemathesis,
//! driven by the document the daemon serves, sends schema-valid requests to a real `earshotd`
//! and finds nothing — no schema-valid request refused with a 4xx the document does not allow
//! for it (only 401, 403, 404 and 409 may answer a valid request), no 5xx, and every answer
//! conforms to its documented status, content type and schema.
//!
//! schemathesis comes from PyPI at a pinned version, installed once into a virtualenv under
//! cargo's target directory (idempotent: an existing one at the right version is reused); the
//! first run needs network access to PyPI and `python3` with `venv`. The run is bounded (a fixed
//! number of examples per operation, a fixed random start): about 3.5 min on this 2-core machine,
//! including the first-use install.
//!
//! `DELETE /v1/tokens/{token}` is left out: schemathesis reuses ids it saw in answers, and would
//! revoke the admin token it runs with (and then see only 401s). Revocation has its own tests
//! (authz.rs).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use earshot_tests::api::{ADMIN_TOKEN, Api};
use earshot_tests::process::DaemonProcess;

const EARSHOTD: &str = env!("CARGO_BIN_EXE_earshotd");
const SCHEMATHESIS: &str = "schemathesis==4.32.5";
/// Media ports of the daemon, on loopback where the OS chose them (the run creates many calls
/// and supervisions; a small range would answer 503 `ports_exhausted`, which is a finding).
const MEDIA_PORTS: u16 = 2000;
const START_MAX: Duration = Duration::from_secs(20);
/// Examples per operation; with the fixed random start of [`CONFIG`], the run is the same
/// every time.
const EXAMPLES: &str = "15";
/// schemathesis' own settings: the fixed random start of its examples.
const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis.toml");
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_schema_conformance,positive_data_acceptance";

/// The `st` command of a virtualenv holding [`SCHEMATHESIS`], made if missing.
fn schemathesis() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("schemathesis-venv");
    let st = venv.join("bin/st");
    let marker = venv.join(SCHEMATHESIS);
    if st.exists() && marker.exists() {
        return st;
    }
    let run = |command: &mut Command, what: &str| {
        let out = command
            .output()
            .unwrap_or_else(|e| panic!("{what}: cannot run ({e})"));
        assert!(
            out.status.success(),
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv",
    );
    run(
        Command::new(venv.join("bin/pip")).args(["install", "--quiet", SCHEMATHESIS]),
        &format!("pip install {SCHEMATHESIS}"),
    );
    std::fs::write(&marker, "").unwrap();
    st
}

#[test]
fn schemathesis_finds_no_schema_valid_request_refused_and_no_answer_off_the_document() {
    let st = schemathesis();
    let (port_min, port_max) = earshot_tests::ports::udp_range(MEDIA_PORTS);
    let mut command = Command::new(EARSHOTD);
    command
        .args(["--http-listen", "127.0.0.1:0", "--media-ip", "127.0.0.1"])
        // NG is not what this test exercises: off, so parallel daemons never share its port.
        .args(["--ng-listen", ""])
        .args(["--port-min", &port_min.to_string()])
        .args(["--port-max", &port_max.to_string()])
        .args(["--admin-token", ADMIN_TOKEN, "--db", ":memory:"])
        .env("RUST_LOG", "warn");
    let mut daemon = DaemonProcess::spawn("earshotd for schemathesis", command);
    let http = daemon
        .wait_listening(START_MAX)
        .unwrap_or_else(|e| panic!("start: {e}"));
    let api = Api::new(http);
    if let Err(e) = daemon.wait_healthy(&api, START_MAX) {
        panic!("start: {e}");
    }

    let out = Command::new(st)
        // It keeps a cache directory in its working directory: under target/, not the source.
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .args(["--config-file", CONFIG, "run"])
        .arg(format!("http://{http}/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {ADMIN_TOKEN}")])
        .args(["--mode", "positive", "--checks", CHECKS])
        .args(["--max-examples", EXAMPLES])
        .args(["--phases", "examples,coverage,fuzzing", "--workers", "2"])
        .args(["--generation-database", "none", "--no-color"])
        .args(["--exclude-operation-id", "revoke_token"])
        .output()
        .expect("run schemathesis");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis found something ({}):\n{report}",
        out.status
    );
    // The run really exercised the API: requests were generated and answered.
    assert!(report.contains("generated"), "{report}");
    assert!(
        daemon.try_wait().is_none(),
        "the daemon exited:\n{}",
        daemon.output()
    );
}

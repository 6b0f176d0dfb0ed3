//! The smoke run of issue 5: the load generator's correctness check (`loadgen --smoke`,
//! bench/README.md) against a daemon on loopback with the io_uring backend, at a load tiny
//! enough for a debug build on a shared 2-core machine: 4 calls, one in each mode (relay,
//! listen, whisper, barge: every relay and every mix of the media plane), 1 s of warm-up, a 2 s
//! window, a 1 s drain. It checks correctness only (nothing lost, no relayed packet left
//! behind, no mixed frame missing, every call and supervision set up), never speed (docs/design.md
//! §9.13): latency and CPU are printed, not judged.
//!
//! The load generator runs in-process, through `earshot_bench::loadgen::run`, the very function
//! the `loadgen` binary's `main` calls: cargo builds it with this test, from the same sources
//! and features, so it cannot be stale or missing (a test of this package has no
//! `CARGO_BIN_EXE_loadgen`: that binary belongs to `earshot-bench`), and no cargo runs inside
//! the test. The daemon runs in-process too, as in every other test of this package
//! ([`TestDaemon`]: the daemon's own `spawn`, ephemeral HTTP port, in-memory SQLite, the test
//! admin token).

use earshot_bench::loadgen::{self, Args};
use earshot_tests::api::ADMIN_TOKEN;
use earshot_tests::daemon::TestDaemon;
use serde_json::Value;

/// `loadgen --smoke` against `daemon` at the smoke run's load, presenting `token`.
fn smoke_args(daemon: &TestDaemon, token: &str) -> Args {
    let api = format!("http://{}", daemon.http_addr);
    // The daemon is this process: its CPU figures are this process's (printed, never judged).
    let pid = std::process::id().to_string();
    #[rustfmt::skip]
    let argv = [
        "loadgen", "--smoke", "--json",
        "--api", &api, "--pid", &pid,
        "--calls", "4", "--mode", "mixed",
        "--warmup-secs", "1", "--duration-secs", "2",
    ];
    Args::from_argv(argv)
        .unwrap_or_else(|e| panic!("loadgen arguments: {e}"))
        .with_token(token)
}

/// A count from the load's result in the JSON line.
fn count(result: &Value, key: &str) -> u64 {
    result[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no count {key} in {result}"))
}

#[test]
fn smoke_run_loses_nothing_at_a_tiny_load() {
    let daemon = TestDaemon::start();
    let line = loadgen::run(&smoke_args(&daemon, ADMIN_TOKEN))
        .unwrap_or_else(|e| panic!("loadgen {e}\n{}", daemon.health()));
    // `run` returns Ok only if the check passed; the JSON line must say the same, in detail.
    assert_eq!(line["smoke"]["passed"], true, "{line}");
    let results = line["results"].as_array().expect("results");
    assert_eq!(results.len(), 1, "{line}");
    let r = &results[0];
    assert_eq!(count(r, "calls"), 4, "{r}");
    // Relay 2 legs, listen, whisper and barge 3 each.
    assert_eq!(count(r, "streams"), 11, "{r}");
    assert!(count(r, "expected_packets") > 0, "{r}");
    assert_eq!(count(r, "lost_packets"), 0, "{r}");
    assert_eq!(r["loss_pct"].as_f64(), Some(0.0), "{r}");
    assert_eq!(count(r, "silent_streams"), 0, "{r}");
    assert!(count(r, "relayed_offered_packets") > 0, "{r}");
    assert_eq!(count(r, "relayed_missing_packets"), 0, "{r}");
    assert_eq!(count(r, "mixed_missing_frames"), 0, "{r}");
    assert_eq!(count(r, "unknown_source_packets"), 0, "{r}");
    assert_eq!(count(r, "send_errors"), 0, "{r}");
    assert_eq!(line["calls_deleted"], 4, "{line}");
}

#[test]
fn smoke_run_fails_when_calls_cannot_be_set_up() {
    let daemon = TestDaemon::start();
    let err = loadgen::run(&smoke_args(&daemon, "es_not-the-admin-token"))
        .expect_err("the smoke check passed without a single call set up");
    assert!(
        err.starts_with("smoke check failed: setup of 4 calls: POST /v1/calls: HTTP 401"),
        "{err}"
    );
    assert!(!err.contains('\n'), "not one line: {err}");
}

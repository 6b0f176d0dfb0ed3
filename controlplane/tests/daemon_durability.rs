//! docs/design.md §7.3 through the real daemon: `kill -9` the `earshotd` binary after acknowledged
//! writes, start it again on the same database, and everything acknowledged is there — calls,
//! supervisions, alerts, audit — while the sessions that were live are closed with an alert,
//! not resumed.
//!
//! The daemon runs from a temporary working directory with `--db <tmp>/earshot.db`, on
//! loopback ports the OS chose: HTTP on port 0 (each start reads the bound address from the
//! daemon's log), media on a range reserved once for every start of the test.

use std::process::Command;
use std::time::Duration;

use earshot_tests::api::Api;
use earshot_tests::process::DaemonProcess;
use serde_json::{Value, json};

const EARSHOTD: &str = env!("CARGO_BIN_EXE_earshotd");
/// How long a start may take to answer `/healthz` (a debug build, a loaded machine).
const START_MAX: Duration = Duration::from_secs(20);
const NUMBER: &str = "+15550100";

/// Starts the daemon on `media` (`port_min`, `port_max`) and returns it with a client of its
/// HTTP address.
fn start(dir: &std::path::Path, media: (u16, u16), which: &str) -> (DaemonProcess, Api) {
    let mut command = Command::new(EARSHOTD);
    command.current_dir(dir).args([
        "--http-listen",
        "127.0.0.1:0",
        // NG is not what this test exercises: off (parallel daemons never share its port).
        "--ng-listen",
        "",
        "--media-ip",
        "127.0.0.1",
        "--port-min",
        &media.0.to_string(),
        "--port-max",
        &media.1.to_string(),
        "--admin-token",
        earshot_tests::api::ADMIN_TOKEN,
        "--db",
    ]);
    command.arg(dir.join("earshot.db"));
    let mut daemon = DaemonProcess::spawn(format!("earshotd ({which})"), command);
    let api = match daemon.wait_listening(START_MAX) {
        Ok(addr) => Api::new(addr),
        Err(e) => panic!("{which} start: {e}"),
    };
    if let Err(e) = daemon.wait_healthy(&api, START_MAX) {
        panic!("{which} start: {e}");
    }
    (daemon, api)
}

fn id(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id: {v}"))
        .to_owned()
}

fn list(api: &Api, path: &str, key: &str) -> Vec<Value> {
    api.get(path).expect(200, path)[key]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn acknowledged_writes_survive_kill_9_and_live_sessions_are_closed_not_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let media = earshot_tests::ports::udp_range(100);
    let (mut first, api) = start(dir.path(), media, "first");

    // A live call with an active supervision (in whisper) and a requested one.
    let live = api
        .post("/v1/calls", &json!({"agent_id": "agent-7"}))
        .expect(201, "POST /v1/calls");
    let live_id = id(&live);
    let active = api
        .post(
            &format!("/v1/calls/{live_id}/supervisions"),
            &json!({"supervisor_id": "sup-1", "registered_number": NUMBER,
                    "answered": {"calling_number": NUMBER}}),
        )
        .expect(201, "POST supervision (answered)");
    let active_id = id(&active);
    api.patch(
        &format!("/v1/supervisions/{active_id}"),
        &json!({"mode": "whisper"}),
    )
    .expect(200, "PATCH whisper");
    let ringing = api
        .post(
            &format!("/v1/calls/{live_id}/supervisions"),
            &json!({"supervisor_id": "sup-2", "registered_number": NUMBER}),
        )
        .expect(201, "POST supervision (requested)");
    let ringing_id = id(&ringing);
    // A call whose supervision was stopped, and a call that ended.
    let other = api
        .post("/v1/calls", &json!({}))
        .expect(201, "POST /v1/calls");
    let other_id = id(&other);
    let stopped = api
        .post(
            &format!("/v1/calls/{other_id}/supervisions"),
            &json!({"registered_number": NUMBER, "answered": {"calling_number": NUMBER}}),
        )
        .expect(201, "POST supervision");
    let stopped_id = id(&stopped);
    let stopped = api
        .delete(&format!("/v1/supervisions/{stopped_id}"))
        .expect(200, "DELETE supervision");
    let ended = api
        .post("/v1/calls", &json!({"direction": "outbound"}))
        .expect(201, "POST /v1/calls");
    let ended_id = id(&ended);
    for party in ["agent", "customer"] {
        api.post(
            &format!("/v1/calls/{ended_id}/events"),
            &json!({"event": "hangup", "party": party}),
        )
        .expect(200, "hangup");
    }
    let ended = api
        .get(&format!("/v1/calls/{ended_id}"))
        .expect(200, "GET ended call");
    assert_eq!(ended["state"], "ended");

    // Everything above was acknowledged; now the process dies without a chance to flush.
    let alerts_before = list(&api, "/v1/alerts?limit=1000", "alerts");
    let audit_before = list(&api, "/v1/audit?limit=1000", "audit");
    assert_eq!(alerts_before.len(), 3, "{alerts_before:?}");
    assert_eq!(audit_before.len(), 4, "{audit_before:?}");
    let status = first.kill9();
    assert!(!status.success(), "kill -9: {status}");

    let (mut second, api) = start(dir.path(), media, "second (after kill -9)");
    assert!(
        second
            .output()
            .contains("supervision left open by the previous run closed"),
        "the restart says what it closed:\n{}",
        second.output()
    );

    // Nothing acknowledged is lost.
    let alerts = list(&api, "/v1/alerts?limit=1000", "alerts");
    assert_eq!(alerts[..alerts_before.len()], alerts_before[..]);
    let audit = list(&api, "/v1/audit?limit=1000", "audit");
    assert_eq!(audit[..audit_before.len()], audit_before[..]);
    assert_eq!(
        api.get(&format!("/v1/supervisions/{stopped_id}"))
            .expect(200, "stopped"),
        stopped,
        "an ended supervision is as it was"
    );
    assert_eq!(
        api.get(&format!("/v1/calls/{ended_id}"))
            .expect(200, "ended call"),
        ended,
        "an ended call is as it was"
    );
    let calls: Vec<String> = list(&api, "/v1/calls", "calls").iter().map(id).collect();
    assert_eq!(calls, [live_id.clone(), other_id.clone(), ended_id.clone()]);

    // The live ones are closed, with an alert each, not resumed.
    for (sup, was, mode) in [
        (&active_id, "active", "whisper"),
        (&ringing_id, "requested", "listen"),
    ] {
        let s = api
            .get(&format!("/v1/supervisions/{sup}"))
            .expect(200, "GET supervision");
        assert_eq!(
            (&s["state"], &s["abort"], &s["mode"]),
            (&json!("aborted"), &json!("restart"), &json!(mode)),
            "{s}"
        );
        assert!(s["ended_at_ms"].as_u64().is_some(), "{s}");
        let own = list(&api, &format!("/v1/supervisions/{sup}/alerts"), "alerts");
        let last = own.last().unwrap();
        assert_eq!(
            (&last["kind"], &last["text"]),
            (&json!("aborted"), &json!("aborted – restart")),
            "{own:?}"
        );
        assert!(last["reason"].as_str().unwrap().contains(was), "{last}");
    }
    let new_alerts = &alerts[alerts_before.len()..];
    assert_eq!(
        new_alerts.len(),
        2,
        "one alert per closed session: {new_alerts:?}"
    );
    let new_audit = &audit[audit_before.len()..];
    assert!(
        new_audit
            .iter()
            .all(|a| a["action"] == "supervision.abort" && a["actor"] == "system"),
        "{new_audit:?}"
    );
    assert_eq!(new_audit.len(), 2, "{new_audit:?}");
    let live = api
        .get(&format!("/v1/calls/{live_id}"))
        .expect(200, "GET live call");
    assert_eq!(live["state"], "ended", "its media did not survive: {live}");
    let metrics = api.metrics();
    assert!(metrics.contains("earshot_calls 0\n"), "{metrics}");
    assert!(
        metrics.contains("earshot_alerts_total{kind=\"aborted\"} 2\n"),
        "{metrics}"
    );
    // Nothing more to do for them: ending or answering them is refused.
    let refused = api.post(
        &format!("/v1/supervisions/{ringing_id}/events"),
        &json!({"event": "answered", "calling_number": NUMBER}),
    );
    assert_eq!(refused.status, 409, "{}", refused.text);

    // The restarted daemon serves new calls and supervisions.
    let call = api
        .post("/v1/calls", &json!({}))
        .expect(201, "POST /v1/calls after restart");
    let sup = api
        .post(
            &format!("/v1/calls/{}/supervisions", id(&call)),
            &json!({"registered_number": NUMBER, "answered": {"calling_number": NUMBER}}),
        )
        .expect(201, "POST supervision after restart");
    assert_eq!(sup["state"], "active");

    // A graceful stop, and a third start: nothing more is closed (the stop left the new
    // session open, so it is closed now; the rest stays as it was).
    second.terminate();
    assert!(
        second
            .wait_exit(Duration::from_secs(10))
            .is_some_and(|s| s.success()),
        "SIGTERM:\n{}",
        second.output()
    );
    let (_third, api) = start(dir.path(), media, "third (after a graceful stop)");
    let alerts_third = list(&api, "/v1/alerts?limit=1000", "alerts");
    assert_eq!(alerts_third[..alerts.len()], alerts[..]);
    assert_eq!(
        alerts_third.len(),
        alerts.len() + 2,
        "monitoring_initiated, then its restart abort"
    );
    let s = api
        .get(&format!("/v1/supervisions/{}", id(&sup)))
        .expect(200, "GET");
    assert_eq!(s["abort"], "restart");
}

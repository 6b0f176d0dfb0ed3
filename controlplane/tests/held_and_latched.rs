//! Through the real daemon (in-process, real sockets), issue 10 points 5 and 9d: a held party's
//! silence is not a hang-up (docs/media.md, Held parties and timeouts) until the silent timeout,
//! and a latching leg shows the address it locked to (docs/media.md, Source checking), also after a
//! restart.
//!
//! The timeouts are short (`media.timeout_secs` of 1 or 2 s), and nothing here is a timed assertion:
//! "longer than the media timeout" is shown by a control call, created after the held one,
//! that is hung up by it first (the data plane reports timeouts in the order they fall due, and
//! the control plane applies them in that order). Waits are bounded polls.

use std::net::{SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use controlplane::config::Config;
use earshot_tests::daemon::TestDaemon;
use earshot_tests::rtp::{PT_PCMU, build};
use earshot_tests::scenario::addr_field;
use serde_json::{Value, json};

/// The most a poll waits for what the daemon does within about two seconds.
const WAIT_MAX: Duration = Duration::from_secs(15);

fn daemon(timeout_secs: u64, silent_timeout_secs: u64) -> TestDaemon {
    TestDaemon::start_with(|c: &mut Config| {
        c.media.timeout_secs = timeout_secs;
        c.media.silent_timeout_secs = silent_timeout_secs;
    })
}

/// `POST /v1/calls` with `body`; returns the call's id.
fn create_call(d: &TestDaemon, body: Value) -> String {
    let call = d.api.post("/v1/calls", &body).expect(201, "POST /v1/calls");
    call["id"].as_str().unwrap().to_owned()
}

fn call(d: &TestDaemon, id: &str) -> Value {
    d.api
        .get(&format!("/v1/calls/{id}"))
        .expect(200, "GET /v1/calls/{id}")
}

fn event(d: &TestDaemon, id: &str, event: &str) -> Value {
    d.api
        .post(&format!("/v1/calls/{id}/events"), &json!({"event": event}))
        .expect(200, event)
}

/// Polls `GET path` until `done` holds of it; panics with the last answer after [`WAIT_MAX`].
fn wait_for(d: &TestDaemon, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        let value = d.api.get(path).expect(200, path);
        if done(&value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting on {path}: {value}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

fn wait_ended(d: &TestDaemon, id: &str) -> Value {
    wait_for(d, &format!("/v1/calls/{id}"), |c| c["state"] == "ended")
}

fn held(call: &Value) -> (bool, bool) {
    let leg = |party: &str| call["legs"][party]["held"].as_bool().unwrap();
    (leg("customer"), leg("agent"))
}

/// Ended by the media timeout of both parties (the existing hang-up path).
fn assert_hung_up(call: &Value) {
    assert_eq!(
        (&call["state"], &call["hung_up"]),
        (&json!("ended"), &json!({"customer": true, "agent": true})),
        "{call}"
    );
}

#[test]
fn a_held_party_is_not_hung_up_by_the_media_timeout_and_once_resumed_it_is() {
    let d = daemon(2, 3600);
    // Neither party of either call ever sends RTP.
    let held_call = create_call(&d, json!({}));
    let answer = event(&d, &held_call, "hold");
    assert_eq!(
        held(&answer),
        (true, true),
        "hold marks both legs: {answer}"
    );
    assert_eq!(answer["flags"]["on_hold"], true);

    // A call that is not held, created after the hold: its parties are hung up one media
    // timeout later, which is later than the held call's would have been.
    let control = create_call(&d, json!({}));
    assert_hung_up(&wait_ended(&d, &control));
    let still = call(&d, &held_call);
    assert_eq!(
        (&still["state"], &still["hung_up"]),
        (
            &json!("active"),
            &json!({"customer": false, "agent": false})
        ),
        "a held party's silence is not a hang-up: {still}"
    );
    assert_eq!(held(&still), (true, true));

    // Resumed: the media timeout applies again, counted from the resume. Another control call,
    // created a second before the resume, ends first: the resumed parties were not hung up at
    // once (that would have been a second before the control call). The pause is not timed:
    // it only spaces the two deadlines well apart.
    let control = create_call(&d, json!({}));
    thread::sleep(Duration::from_secs(1));
    let answer = event(&d, &held_call, "resume");
    assert_eq!(held(&answer), (false, false), "{answer}");
    assert_hung_up(&wait_ended(&d, &control));
    assert_eq!(
        call(&d, &held_call)["state"],
        "active",
        "a resumed party has a whole media timeout to send again"
    );
    assert_hung_up(&wait_ended(&d, &held_call));
    assert_eq!(d.running().state().engine().calls(), 0);
}

#[test]
fn a_held_party_silent_past_the_silent_timeout_is_reaped() {
    let d = daemon(1, 4);
    let held_call = create_call(&d, json!({}));
    event(&d, &held_call, "hold");
    let control = create_call(&d, json!({}));
    assert_hung_up(&wait_ended(&d, &control));
    assert_eq!(call(&d, &held_call)["state"], "active");
    // Vanished while on hold: hung up all the same, by the silent timeout.
    let ended = wait_ended(&d, &held_call);
    assert_hung_up(&ended);
    assert_eq!(held(&ended), (true, true), "{ended}");
    assert_eq!(d.running().state().engine().calls(), 0);
}

/// Sends one PCMU packet from `from` to `to`.
fn send_rtp(from: &UdpSocket, to: SocketAddr) {
    from.send_to(&build(PT_PCMU, true, 1, 160, 0x1a7c_4ed0, &[0xff; 160]), to)
        .unwrap();
}

fn remote(leg: &Value) -> (Option<SocketAddr>, &Value) {
    let addr = leg["remote"].as_str().map(|s| s.parse().unwrap());
    (addr, &leg["remote_source"])
}

#[test]
fn a_latching_leg_shows_the_source_it_locked_to_also_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("earshot.db");
    let with_db = |c: &mut Config| c.store.path = db.clone();
    let agent_phone = UdpSocket::bind("127.0.0.1:0").unwrap();
    let customer_phone = UdpSocket::bind("127.0.0.1:0").unwrap();
    let supervisor_phone = UdpSocket::bind("127.0.0.1:0").unwrap();
    let agent_addr = agent_phone.local_addr().unwrap();

    let d = TestDaemon::start_with(with_db);
    let created = d
        .api
        .post(
            "/v1/calls",
            &json!({"agent": {"remote": agent_addr.to_string()}}),
        )
        .expect(201, "POST /v1/calls");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        remote(&created["legs"]["customer"]),
        (None, &Value::Null),
        "nothing heard yet"
    );
    assert_eq!(
        remote(&created["legs"]["agent"]),
        (Some(agent_addr), &json!("configured"))
    );

    send_rtp(
        &customer_phone,
        addr_field(&created, "/legs/customer/local"),
    );
    let path = format!("/v1/calls/{id}");
    let latched = wait_for(&d, &path, |c| !c["legs"]["customer"]["remote"].is_null());
    let customer_addr = customer_phone.local_addr().unwrap();
    assert_eq!(
        remote(&latched["legs"]["customer"]),
        (Some(customer_addr), &json!("latched"))
    );
    let listed = d.api.get("/v1/calls").expect(200, "GET /v1/calls");
    let in_list = listed["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id.as_str())
        .unwrap();
    // The same addresses (the statistics may have moved between the two reads).
    for party in ["customer", "agent"] {
        assert_eq!(
            remote(&in_list["legs"][party]),
            remote(&latched["legs"][party]),
            "the list shows the same {party} address"
        );
    }

    // A supervisor's latching leg too.
    let sup = d
        .api
        .post(
            &format!("/v1/calls/{id}/supervisions"),
            &json!({"registered_number": "+15550100",
                    "answered": {"calling_number": "+15550100"}}),
        )
        .expect(201, "POST supervision");
    assert_eq!(sup["state"], "active", "{sup}");
    send_rtp(&supervisor_phone, addr_field(&sup, "/leg/local"));
    let sup_path = format!("/v1/supervisions/{}", sup["id"].as_str().unwrap());
    let sup = wait_for(&d, &sup_path, |s| !s["leg"]["remote"].is_null());
    let supervisor_addr = supervisor_phone.local_addr().unwrap();
    assert_eq!(
        remote(&sup["leg"]),
        (Some(supervisor_addr), &json!("latched"))
    );

    // The latched addresses are kept with the records: a restart (which ends the call, its
    // media gone) still shows them.
    drop(d);
    let d = TestDaemon::start_with(with_db);
    let after = call(&d, &id);
    assert_eq!(after["state"], "ended", "{after}");
    assert_eq!(
        remote(&after["legs"]["customer"]),
        (Some(customer_addr), &json!("latched"))
    );
    assert_eq!(
        remote(&after["legs"]["agent"]),
        (Some(agent_addr), &json!("configured"))
    );
    let sup = d.api.get(&sup_path).expect(200, "GET supervision");
    assert_eq!(
        remote(&sup["leg"]),
        (Some(supervisor_addr), &json!("latched")),
        "{sup}"
    );

    // Setting a remote makes a latched leg configured (and strict on the new address).
    let fresh = d.api.post("/v1/calls", &json!({})).expect(201, "POST");
    let fresh_id = fresh["id"].as_str().unwrap();
    send_rtp(&customer_phone, addr_field(&fresh, "/legs/customer/local"));
    wait_for(&d, &format!("/v1/calls/{fresh_id}"), |c| {
        c["legs"]["customer"]["remote_source"] == "latched"
    });
    let leg = d
        .api
        .patch(
            &format!("/v1/calls/{fresh_id}/legs/customer"),
            &json!({"remote": agent_addr.to_string()}),
        )
        .expect(200, "PATCH leg");
    assert_eq!(remote(&leg), (Some(agent_addr), &json!("configured")));
}

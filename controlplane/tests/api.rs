//! The HTTP contract of docs/api.md, in-process against a real engine.

mod common;

use std::net::SocketAddr;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{Harness, NUMBER, T0_MS, config};
use controlplane::domain::call::{CallId, SupervisionId};
use controlplane::http::views::calls::SupervisionView;
use dataplane::engine::EngineEvent;
use dataplane::media::matrix::{LegId, MAX_SUPERVISORS};
use serde_json::{Value, json};

const BAD: StatusCode = StatusCode::BAD_REQUEST;
const NOT_FOUND: StatusCode = StatusCode::NOT_FOUND;
const CONFLICT: StatusCode = StatusCode::CONFLICT;
const UNKNOWN_CALL: &str = "c_0000000000000000";
const UNKNOWN_SUPERVISION: &str = "s_0000000000000000";

fn addr(v: &Value) -> SocketAddr {
    v.as_str()
        .unwrap_or_else(|| panic!("not an address: {v}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn create_call_allocates_two_media_addresses() {
    let cfg = config();
    let h = Harness::new(&cfg);
    let (status, call) = h
        .post(
            "/v1/calls",
            r#"{"customer": {"remote": "198.51.100.7:4000", "codec": "pcmu"}, "agent": {"remote": null, "codec": "pcma"}}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{call}");
    let id = call["id"].as_str().unwrap();
    assert!(id.starts_with("c_") && id.len() == 18, "{id}");
    assert_eq!(call["state"], "active");
    assert_eq!(
        call["flags"],
        json!({"on_hold": false, "consult": false, "secure_payment": false, "conference": false})
    );
    assert_eq!(call["supervisions"], json!([]));
    assert!(call["created_at_ms"].as_u64().unwrap() > 1_700_000_000_000);
    let customer = &call["legs"]["customer"];
    let agent = &call["legs"]["agent"];
    let (c, a) = (addr(&customer["local"]), addr(&agent["local"]));
    assert_ne!(c, a);
    for local in [c, a] {
        assert_eq!(local.ip(), cfg.media.ip);
        assert!(
            (cfg.media.port_min..=cfg.media.port_max).contains(&local.port()),
            "{local}"
        );
    }
    assert_eq!(customer["remote"], "198.51.100.7:4000");
    assert_eq!(customer["codec"], "pcmu");
    assert_eq!(agent["remote"], Value::Null);
    assert_eq!(agent["codec"], "pcma");
    assert_eq!(
        customer["stats"],
        json!({"packets_in": 0, "bytes_in": 0, "packets_out": 0, "bytes_out": 0,
               "packets_lost": 0, "jitter_ms": 0.0, "packets_dropped": 0,
               "dropped": {"wrong_source": 0, "malformed": 0, "unknown_payload_type": 0,
                           "duplicate": 0, "stale": 0, "inactive_leg": 0, "realign": 0,
                           "oversized": 0, "payload_type_mismatch": 0}})
    );

    let (status, got) = h.get(&format!("/v1/calls/{id}")).await;
    assert_eq!((status, &got), (StatusCode::OK, &call));
    let (status, list) = h.get("/v1/calls").await;
    assert_eq!((status, &list), (StatusCode::OK, &json!({"calls": [call]})));
    assert_eq!(h.state.engine().calls(), 1);

    // `{}` is a call with two latching µ-law legs.
    let (_, plain) = h.post("/v1/calls", "{}").await;
    assert_eq!(plain["legs"]["agent"]["codec"], "pcmu");
    assert_eq!(plain["legs"]["customer"]["remote"], Value::Null);
    assert_eq!(h.state.metrics().snapshot().0, 2);

    let (status, body) = h.delete(&format!("/v1/calls/{id}")).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    h.refused(
        Method::GET,
        &format!("/v1/calls/{id}"),
        None,
        NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(h.state.engine().calls(), 1);
    assert_eq!(h.state.metrics().snapshot().0, 1);
}

#[tokio::test]
async fn bodies_are_checked_before_anything_changes() {
    let h = Harness::start();
    let call = h.new_call().await;
    let sup = h.new_supervision(&call).await;
    let post = Method::POST;
    for body in [
        "{",
        "[]",
        r#"{"customr": {}}"#,
        r#"{"customer": {"remote": "1.2.3.4:5", "codek": "pcmu"}}"#,
        r#"{"customer": {"codec": 5}}"#,
        r#"{"customer": "pcmu"}"#,
        r#"{"customer": {"codec": "g729"}}"#,
        r#"{"customer": []}"#,
        r#"{"customer": ["1.2.3.4:5", "pcmu"]}"#,
        "null",
        "\"{}\"",
        "",
    ] {
        h.refused(post.clone(), "/v1/calls", Some(body), BAD, "invalid_body")
            .await;
    }
    let err = h
        .refused(
            post.clone(),
            "/v1/calls",
            Some(r#"{"customr": {}}"#),
            BAD,
            "invalid_body",
        )
        .await;
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("customr"),
        "{err}"
    );
    let err = h
        .refused(
            post.clone(),
            "/v1/calls",
            Some(r#"{"agent": {"codec": 5}}"#),
            BAD,
            "invalid_body",
        )
        .await;
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("agent: codec: invalid type"),
        "{err}"
    );
    // Missing required fields, wrong types elsewhere.
    let sup_uri = format!("/v1/supervisions/{sup}");
    h.refused(Method::PATCH, &sup_uri, Some("{}"), BAD, "invalid_body")
        .await;
    h.refused(
        Method::PATCH,
        &sup_uri,
        Some(r#"{"mode": 4}"#),
        BAD,
        "invalid_body",
    )
    .await;
    let leg_uri = format!("/v1/calls/{call}/legs/agent");
    h.refused(
        Method::PATCH,
        &leg_uri,
        Some(r#"{"remote": null}"#),
        BAD,
        "invalid_body",
    )
    .await;
    let events = format!("/v1/calls/{call}/events");
    h.refused(
        post.clone(),
        &events,
        Some(r#"{"party": "agent"}"#),
        BAD,
        "invalid_body",
    )
    .await;
    h.refused(
        post.clone(),
        &events,
        Some(r#"{"event": "hold", "urgent": true}"#),
        BAD,
        "invalid_body",
    )
    .await;
    let sups = format!("/v1/calls/{call}/supervisions");
    h.refused(
        post.clone(),
        &sups,
        Some(r#"{"beep": "yes"}"#),
        BAD,
        "invalid_body",
    )
    .await;

    // Over 64 KiB.
    let big = format!(
        r#"{{"customer": {{"remote": "1.2.3.4:5", "codec": "pcmu"{}}}}}"#,
        " ".repeat(70 * 1024)
    );
    h.refused(
        post.clone(),
        "/v1/calls",
        Some(&big),
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;

    // Not JSON, or no content type.
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let before = h.snapshot().await;
        let mut req = Request::post("/v1/calls");
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let (status, err) = h.send(req.body(Body::from("{}")).unwrap()).await;
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}: {err}"
        );
        assert_eq!(err["error"]["code"], "unsupported_media_type");
        assert_eq!(h.snapshot().await, before);
    }
}

#[tokio::test]
async fn addresses_are_ip_and_port() {
    let h = Harness::start();
    let call = h.new_call().await;
    let post = Method::POST;
    for bad in [
        "nonsense",
        "198.51.100.7",
        "198.51.100.7:0",
        "198.51.100.7:65536",
        "[::1]:0",
        "::1:4000",
        "[::1]:4000",
        // No single party: broadcast, multicast, unspecified, "this network", reserved.
        "255.255.255.255:4000",
        "224.0.0.1:4000",
        "239.1.2.3:4000",
        "0.0.0.0:4000",
        "0.1.2.3:4000",
        "240.0.0.1:4000",
        "[::ffff:255.255.255.255]:4000",
    ] {
        // "[::1]:4000" is well-formed but IPv6 while the media address is IPv4.
        let body = json!({"customer": {"remote": bad}}).to_string();
        h.refused(
            post.clone(),
            "/v1/calls",
            Some(&body),
            BAD,
            "invalid_address",
        )
        .await;
        let body = json!({"supervisor": {"remote": bad}}).to_string();
        h.refused(
            post.clone(),
            &format!("/v1/calls/{call}/supervisions"),
            Some(&body),
            BAD,
            "invalid_address",
        )
        .await;
        let body = json!({"remote": bad}).to_string();
        h.refused(
            Method::PATCH,
            &format!("/v1/calls/{call}/legs/customer"),
            Some(&body),
            BAD,
            "invalid_address",
        )
        .await;
    }

    // A good one makes the leg strict.
    let (status, leg) = h
        .patch(
            &format!("/v1/calls/{call}/legs/customer"),
            r#"{"remote": "198.51.100.9:4002"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{leg}");
    assert_eq!(leg["remote"], "198.51.100.9:4002");
    assert!(
        leg["local"].is_string() && leg["stats"].is_object(),
        "{leg}"
    );
    let (_, got) = h.get(&format!("/v1/calls/{call}")).await;
    assert_eq!(got["legs"]["customer"], leg);
    assert_eq!(got["legs"]["agent"]["remote"], Value::Null);
}

#[tokio::test]
async fn unknown_ids_routes_and_methods() {
    let h = Harness::start();
    let call = h.new_call().await;
    let sup = h.new_supervision(&call).await;
    let (get, post, patch, delete) = (Method::GET, Method::POST, Method::PATCH, Method::DELETE);
    for id in [UNKNOWN_CALL, "nope", "c_0123", &sup] {
        h.refused(
            get.clone(),
            &format!("/v1/calls/{id}"),
            None,
            NOT_FOUND,
            "not_found",
        )
        .await;
        h.refused(
            delete.clone(),
            &format!("/v1/calls/{id}"),
            None,
            NOT_FOUND,
            "not_found",
        )
        .await;
        let leg = format!("/v1/calls/{id}/legs/agent");
        h.refused(
            patch.clone(),
            &leg,
            Some(r#"{"remote": "1.2.3.4:5"}"#),
            NOT_FOUND,
            "not_found",
        )
        .await;
        let events = format!("/v1/calls/{id}/events");
        h.refused(
            post.clone(),
            &events,
            Some(r#"{"event": "hold"}"#),
            NOT_FOUND,
            "not_found",
        )
        .await;
        let sups = format!("/v1/calls/{id}/supervisions");
        h.refused(post.clone(), &sups, Some("{}"), NOT_FOUND, "not_found")
            .await;
    }
    for id in [UNKNOWN_SUPERVISION, "nope", &call] {
        let uri = format!("/v1/supervisions/{id}");
        h.refused(get.clone(), &uri, None, NOT_FOUND, "not_found")
            .await;
        h.refused(
            patch.clone(),
            &uri,
            Some(r#"{"mode": "barge"}"#),
            NOT_FOUND,
            "not_found",
        )
        .await;
        h.refused(delete.clone(), &uri, None, NOT_FOUND, "not_found")
            .await;
    }
    // A supervisor hangup naming a supervision of no call, or of another call.
    let other = h.new_call().await;
    for id in [UNKNOWN_SUPERVISION, &sup] {
        let body =
            json!({"event": "hangup", "party": "supervisor", "supervision_id": id}).to_string();
        h.refused(
            post.clone(),
            &format!("/v1/calls/{other}/events"),
            Some(&body),
            NOT_FOUND,
            "not_found",
        )
        .await;
    }
    let body = r#"{"remote": "1.2.3.4:5"}"#;
    h.refused(
        patch.clone(),
        &format!("/v1/calls/{call}/legs/supervisor"),
        Some(body),
        NOT_FOUND,
        "not_found",
    )
    .await;
    for uri in ["/", "/v1", "/v1/call", "/v2/calls", "/v1/calls/x/y/z"] {
        h.refused(get.clone(), uri, None, NOT_FOUND, "not_found")
            .await;
    }
    let nope = StatusCode::METHOD_NOT_ALLOWED;
    h.refused(
        Method::PUT,
        "/v1/calls",
        Some("{}"),
        nope,
        "method_not_allowed",
    )
    .await;
    h.refused(
        Method::DELETE,
        "/v1/calls",
        None,
        nope,
        "method_not_allowed",
    )
    .await;
    h.refused(
        post.clone(),
        &format!("/v1/calls/{call}"),
        Some("{}"),
        nope,
        "method_not_allowed",
    )
    .await;
    h.refused(
        get.clone(),
        &format!("/v1/calls/{call}/events"),
        None,
        nope,
        "method_not_allowed",
    )
    .await;
    h.refused(
        post.clone(),
        &format!("/v1/supervisions/{sup}"),
        Some("{}"),
        nope,
        "method_not_allowed",
    )
    .await;
    h.refused(post.clone(), "/healthz", None, nope, "method_not_allowed")
        .await;
}

#[tokio::test]
async fn supervision_lifecycle() {
    let cfg = config();
    let h = Harness::new(&cfg);
    let call = h.new_call().await;
    let body = json!({
        "supervisor": {"remote": "192.0.2.10:5004"},
        "beep": false,
        "supervisor_id": "sup-1",
        "registered_number": NUMBER,
        "answered": {"calling_number": NUMBER},
    });
    let (status, sup) = h
        .post(&format!("/v1/calls/{call}/supervisions"), &body.to_string())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sup}");
    let id = sup["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("s_") && id.len() == 18, "{id}");
    assert_eq!(sup["call_id"], call.as_str());
    assert_eq!(
        (&sup["state"], &sup["mode"], &sup["failure"], &sup["abort"]),
        (
            &json!("active"),
            &json!("listen"),
            &Value::Null,
            &Value::Null
        )
    );
    assert_eq!(
        (
            &sup["supervisor_id"],
            &sup["registered_number"],
            &sup["beep"]
        ),
        (&json!("sup-1"), &json!("15550100"), &json!(false))
    );
    assert_eq!(sup["ended_at_ms"], Value::Null);
    assert_eq!(sup["created_at_ms"], T0_MS);
    assert_eq!(sup["started_at_ms"], T0_MS);
    assert_eq!(sup["leg"]["remote"], "192.0.2.10:5004");
    assert_eq!(sup["leg"]["codec"], "pcmu");
    let local = addr(&sup["leg"]["local"]);
    assert!((cfg.media.port_min..=cfg.media.port_max).contains(&local.port()));
    let (_, call_view) = h.get(&format!("/v1/calls/{call}")).await;
    assert_eq!(call_view["supervisions"], json!([id]));
    for leg in ["customer", "agent"] {
        assert_ne!(addr(&call_view["legs"][leg]["local"]), local);
    }
    assert_eq!(h.state.metrics().snapshot().1, [1, 0, 0, 0, 0]);

    let uri = format!("/v1/supervisions/{id}");
    for (mode, gauges) in [
        ("whisper", [0, 1, 0, 0, 0]),
        ("barge", [0, 0, 1, 0, 0]),
        ("takeover", [0, 0, 0, 1, 0]),
        ("takeover_listen", [0, 0, 0, 0, 1]),
        ("barge", [0, 0, 1, 0, 0]),
        ("barge", [0, 0, 1, 0, 0]),
    ] {
        let (status, got) = h.patch(&uri, &json!({"mode": mode}).to_string()).await;
        assert_eq!(
            (status, &got["mode"], &got["state"]),
            (StatusCode::OK, &json!(mode), &json!("active")),
            "{got}"
        );
        assert_eq!(h.state.metrics().snapshot().1, gauges, "{mode}");
    }
    let err = h
        .refused(
            Method::PATCH,
            &uri,
            Some(r#"{"mode": "shout"}"#),
            BAD,
            "invalid_mode",
        )
        .await;
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("listen, whisper, barge, takeover, takeover_listen")
    );
    h.refused(
        Method::PATCH,
        &uri,
        Some(r#"{"mode": "Listen"}"#),
        BAD,
        "invalid_mode",
    )
    .await;

    let (status, stopped) = h.delete(&uri).await;
    assert_eq!(status, StatusCode::OK, "{stopped}");
    assert_eq!(
        (
            &stopped["state"],
            &stopped["mode"],
            &stopped["failure"],
            &stopped["abort"]
        ),
        (
            &json!("stopped"),
            &json!("barge"),
            &Value::Null,
            &Value::Null
        )
    );
    assert!(stopped["ended_at_ms"].as_u64().is_some());
    assert_eq!(
        stopped["leg"]["local"], sup["leg"]["local"],
        "kept for history"
    );
    assert_eq!(h.state.metrics().snapshot(), (1, [0; 5]));
    assert_eq!(h.state.engine_leg(id.parse().unwrap()), None);
    let (_, got) = h.get(&uri).await;
    assert_eq!(got, stopped);
    let (_, list) = h.get("/v1/supervisions").await;
    assert_eq!(list, json!({"supervisions": [stopped]}));

    // Ended: no mode change; stopping again changes nothing.
    h.refused(
        Method::PATCH,
        &uri,
        Some(r#"{"mode": "listen"}"#),
        CONFLICT,
        "supervision_ended",
    )
    .await;
    let before = h.snapshot().await;
    let (status, again) = h.delete(&uri).await;
    assert_eq!((status, &again), (StatusCode::OK, &stopped));
    assert_eq!(h.snapshot().await, before);

    // The leg's port is free for the next one.
    let second = h.new_supervision(&call).await;
    let (_, call_view) = h.get(&format!("/v1/calls/{call}")).await;
    assert_eq!(call_view["supervisions"], json!([id, second]));
}

#[tokio::test]
async fn a_requested_supervision_has_no_media_until_answered() {
    let h = Harness::start();
    let call = h.new_call().await;
    let calls_before = h.state.engine().calls();
    let body = json!({"supervisor_id": "sup-1", "registered_number": NUMBER});
    let (status, sup) = h
        .post(&format!("/v1/calls/{call}/supervisions"), &body.to_string())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sup}");
    assert_eq!(
        (&sup["state"], &sup["leg"]["local"], &sup["started_at_ms"]),
        (&json!("requested"), &Value::Null, &Value::Null)
    );
    let id = sup["id"].as_str().unwrap().to_owned();
    assert_eq!(h.state.engine_leg(id.parse().unwrap()), None);
    assert_eq!(h.state.engine().calls(), calls_before);
    assert_eq!(h.state.metrics().snapshot().1, [0; 5]);
    let uri = format!("/v1/supervisions/{id}");
    // No mode change before media flows; unknown or malformed reports are refused.
    h.refused(
        Method::PATCH,
        &uri,
        Some(r#"{"mode": "whisper"}"#),
        CONFLICT,
        "not_legal_now",
    )
    .await;
    let events = format!("{uri}/events");
    for body in [
        json!({"event": "picked_up"}),
        json!({"event": "answered"}),
        json!({"event": "ringing", "calling_number": NUMBER}),
    ] {
        h.refused(
            Method::POST,
            &events,
            Some(&body.to_string()),
            BAD,
            "invalid_event",
        )
        .await;
    }
    h.refused(
        Method::POST,
        &events,
        Some(r#"{"event": "ringing", "loud": true}"#),
        BAD,
        "invalid_body",
    )
    .await;
    let (status, got) = h.post(&events, r#"{"event": "ringing"}"#).await;
    assert_eq!(
        (status, &got["state"]),
        (StatusCode::OK, &json!("requested"))
    );
    // Ringing twice does not fit the session: refused, nothing changed.
    h.refused(
        Method::POST,
        &events,
        Some(r#"{"event": "ringing"}"#),
        CONFLICT,
        "not_legal_now",
    )
    .await;
    h.clock.advance(std::time::Duration::from_millis(1_500));
    let (status, got) = h
        .post(
            &events,
            &json!({"event": "answered", "calling_number": NUMBER}).to_string(),
        )
        .await;
    assert_eq!(
        (status, &got["state"]),
        (StatusCode::OK, &json!("active")),
        "{got}"
    );
    assert_eq!(got["started_at_ms"], T0_MS + 1_500);
    addr(&got["leg"]["local"]);
    assert!(h.state.engine_leg(id.parse().unwrap()).is_some());
    assert_eq!(h.state.metrics().snapshot().1, [1, 0, 0, 0, 0]);
    let text = h.metrics_text().await;
    assert!(
        text.contains("earshot_supervision_setup_seconds_count 1\n"),
        "{text}"
    );
    assert!(
        text.contains("earshot_alerts_total{kind=\"monitoring_initiated\"} 1\n"),
        "{text}"
    );
    assert!(
        !text.contains(&id) && !text.contains(&call),
        "no ids as labels"
    );
}

#[tokio::test]
async fn flagged_calls_fail_new_supervisions_and_abort_active_ones() {
    let h = Harness::start();
    for (start, end, flag, ended, reason, refused_as) in [
        (
            "hold",
            "resume",
            "on_hold",
            ("aborted", "abort"),
            "agent_held_call",
            "monitoring_failed",
        ),
        (
            "consult_start",
            "consult_end",
            "consult",
            ("aborted", "abort"),
            "agent_held_call",
            "agent_not_ready",
        ),
        (
            "secure_payment_start",
            "secure_payment_end",
            "secure_payment",
            ("aborted", "abort"),
            "agent_held_call",
            "agent_not_ready",
        ),
        (
            "conference_start",
            "conference_end",
            "conference",
            ("failed", "failure"),
            "no_permission",
            "no_permission",
        ),
    ] {
        let call = h.new_call().await;
        let sups = [
            h.new_supervision(&call).await,
            h.new_supervision(&call).await,
        ];
        h.patch(
            &format!("/v1/supervisions/{}", sups[1]),
            r#"{"mode": "whisper"}"#,
        )
        .await;
        let events = format!("/v1/calls/{call}/events");
        let (status, view) = h.post(&events, &json!({"event": start}).to_string()).await;
        assert_eq!(status, StatusCode::OK, "{view}");
        assert_eq!(view["flags"][flag], true);
        assert_eq!(view["state"], "active");
        let (state, field) = ended;
        for sup in &sups {
            let (_, s) = h.get(&format!("/v1/supervisions/{sup}")).await;
            assert_eq!(
                (&s["state"], &s[field]),
                (&json!(state), &json!(reason)),
                "{start}: {s}"
            );
            assert!(s["leg"]["local"].as_str().is_some(), "{s}");
        }
        assert_eq!(h.state.metrics().snapshot().1, [0; 5]);

        // A new attempt on the flagged call is a session that fails at once, with its alert.
        let sup_uri = format!("/v1/calls/{call}/supervisions");
        let (status, failed) = h.post(&sup_uri, &common::answered_body()).await;
        assert_eq!(status, StatusCode::CREATED, "{failed}");
        assert_eq!(
            (
                &failed["state"],
                &failed["failure"],
                &failed["leg"]["local"]
            ),
            (&json!("failed"), &json!(refused_as), &Value::Null),
            "{start}: {failed}"
        );
        let kinds = h.alert_kinds(failed["id"].as_str().unwrap()).await;
        let expected = if refused_as == "monitoring_failed" {
            "monitoring_failed".to_owned()
        } else {
            format!("failed_{refused_as}")
        };
        assert_eq!(kinds, [expected], "{start}");
        // Repeating the start changes nothing more.
        let (status, again) = h.post(&events, &json!({"event": start}).to_string()).await;
        assert_eq!((status, &again["flags"]), (StatusCode::OK, &view["flags"]));

        let (_, view) = h.post(&events, &json!({"event": end}).to_string()).await;
        assert_eq!(view["flags"][flag], false);
        let again = h.new_supervision(&call).await;
        h.delete(&format!("/v1/supervisions/{again}")).await;
    }

    // Two flags: both must clear.
    let call = h.new_call().await;
    let events = format!("/v1/calls/{call}/events");
    h.post(&events, r#"{"event": "hold"}"#).await;
    h.post(&events, r#"{"event": "consult_start"}"#).await;
    let sup_uri = format!("/v1/calls/{call}/supervisions");
    let (_, s) = h.post(&sup_uri, &common::answered_body()).await;
    assert_eq!(s["failure"], "monitoring_failed", "consulting agent: {s}");
    h.post(&events, r#"{"event": "resume"}"#).await;
    let (_, s) = h.post(&sup_uri, &common::answered_body()).await;
    assert_eq!(s["failure"], "agent_not_ready", "consulted agent: {s}");
    h.post(&events, r#"{"event": "consult_end"}"#).await;
    h.new_supervision(&call).await;
}

#[tokio::test]
async fn supervisor_cap() {
    let mut cfg = config();
    cfg.media.max_supervisors_per_call = 2;
    let h = Harness::new(&cfg);
    let call = h.new_call().await;
    let first = h.new_supervision(&call).await;
    h.new_supervision(&call).await;
    let uri = format!("/v1/calls/{call}/supervisions");
    h.refused(
        Method::POST,
        &uri,
        Some("{}"),
        CONFLICT,
        "too_many_supervisors",
    )
    .await;
    // Ended supervisions do not count.
    h.delete(&format!("/v1/supervisions/{first}")).await;
    h.new_supervision(&call).await;
    h.refused(
        Method::POST,
        &uri,
        Some("{}"),
        CONFLICT,
        "too_many_supervisors",
    )
    .await;

    // At the engine's own maximum; requested sessions count too.
    let h = Harness::start();
    let call = h.new_call().await;
    for _ in 0..MAX_SUPERVISORS - 1 {
        h.new_supervision(&call).await;
    }
    let (status, _) = h
        .post(
            &format!("/v1/calls/{call}/supervisions"),
            &json!({"registered_number": NUMBER}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        h.state.metrics().snapshot().1[0],
        MAX_SUPERVISORS as i64 - 1
    );
    let uri = format!("/v1/calls/{call}/supervisions");
    h.refused(
        Method::POST,
        &uri,
        Some("{}"),
        CONFLICT,
        "too_many_supervisors",
    )
    .await;
}

#[tokio::test]
async fn invalid_events() {
    let h = Harness::start();
    let call = h.new_call().await;
    let sup = h.new_supervision(&call).await;
    let events = format!("/v1/calls/{call}/events");
    for body in [
        json!({"event": "explode"}),
        json!({"event": "HOLD"}),
        json!({"event": "hangup"}),
        json!({"event": "hangup", "party": "bystander"}),
        json!({"event": "hangup", "party": "supervisor"}),
        json!({"event": "hangup", "party": "agent", "supervision_id": sup}),
        json!({"event": "hold", "party": "agent"}),
    ] {
        h.refused(
            Method::POST,
            &events,
            Some(&body.to_string()),
            BAD,
            "invalid_event",
        )
        .await;
    }
}

#[tokio::test]
async fn hangups_end_calls_and_supervisions() {
    let h = Harness::start();
    let sup_state = |s: &Value| (s["state"].clone(), s["abort"].clone());
    // Inbound: the caller leaving leaves the agent monitored (wrap-up); the agent's hang-up
    // ends it all. The agent hanging up first ends the supervision at once.
    for (first, second, reason_after_first, reason) in [
        ("customer", "agent", None, "caller_hung_up"),
        ("agent", "customer", Some("agent_hung_up"), "agent_hung_up"),
    ] {
        let call = h.new_call().await;
        let sup = h.new_supervision(&call).await;
        let stopped = h.new_supervision(&call).await;
        h.delete(&format!("/v1/supervisions/{stopped}")).await;
        let calls_before = h.state.engine().calls();
        let events = format!("/v1/calls/{call}/events");
        let (status, view) = h
            .post(
                &events,
                &json!({"event": "hangup", "party": first}).to_string(),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{view}");
        assert_eq!(view["state"], "active", "one party is still there");
        assert_eq!(view["hung_up"][first], true);
        let (_, s) = h.get(&format!("/v1/supervisions/{sup}")).await;
        match reason_after_first {
            None => assert_eq!(sup_state(&s), (json!("active"), Value::Null), "{s}"),
            Some(r) => assert_eq!(sup_state(&s), (json!("aborted"), json!(r)), "{s}"),
        }
        // Reported again: nothing more.
        let (status, again) = h
            .post(
                &events,
                &json!({"event": "hangup", "party": first}).to_string(),
            )
            .await;
        assert_eq!((status, &again), (StatusCode::OK, &view));
        let (status, view) = h
            .post(
                &events,
                &json!({"event": "hangup", "party": second}).to_string(),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{view}");
        assert_eq!(view["state"], "ended");
        assert!(view["ended_at_ms"].as_u64().is_some());
        assert_eq!(h.state.engine().calls(), calls_before - 1, "media released");
        let (_, s) = h.get(&format!("/v1/supervisions/{sup}")).await;
        assert_eq!(sup_state(&s), (json!("aborted"), json!(reason)), "{s}");
        let (_, s) = h.get(&format!("/v1/supervisions/{stopped}")).await;
        assert_eq!(
            sup_state(&s),
            (json!("stopped"), Value::Null),
            "ended ones keep their end"
        );
        let (status, got) = h.get(&format!("/v1/calls/{call}")).await;
        assert_eq!((status, &got), (StatusCode::OK, &view));

        // Anything but GET and DELETE on an ended call.
        let uri = format!("/v1/calls/{call}");
        for event in [
            json!({"event": "hold"}),
            json!({"event": "hangup", "party": "agent"}),
            json!({"event": "hangup", "party": "supervisor", "supervision_id": sup}),
        ] {
            h.refused(
                Method::POST,
                &format!("{uri}/events"),
                Some(&event.to_string()),
                CONFLICT,
                "call_ended",
            )
            .await;
        }
        h.refused(
            Method::POST,
            &format!("{uri}/supervisions"),
            Some("{}"),
            CONFLICT,
            "call_ended",
        )
        .await;
        let remote = r#"{"remote": "1.2.3.4:5"}"#;
        h.refused(
            Method::PATCH,
            &format!("{uri}/legs/agent"),
            Some(remote),
            CONFLICT,
            "call_ended",
        )
        .await;
        h.refused(
            Method::PATCH,
            &format!("/v1/supervisions/{sup}"),
            Some(r#"{"mode": "barge"}"#),
            CONFLICT,
            "supervision_ended",
        )
        .await;
        assert_eq!(h.state.metrics().snapshot(), (0, [0; 5]));

        let (status, _) = h.delete(&uri).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        h.refused(Method::GET, &uri, None, NOT_FOUND, "not_found")
            .await;
        // Its supervisions stay listed, as they ended.
        let (_, s) = h.get(&format!("/v1/supervisions/{sup}")).await;
        assert_eq!(s["abort"], reason);
    }

    // Outbound: the first hang-up leaves the other party monitored; the second ends it, as
    // the agent's (an outbound call is the agent's call).
    let (_, call) = h.post("/v1/calls", r#"{"direction": "outbound"}"#).await;
    assert_eq!(call["direction"], "outbound");
    let call = call["id"].as_str().unwrap().to_owned();
    let sup = h.new_supervision(&call).await;
    let events = format!("/v1/calls/{call}/events");
    h.post(&events, r#"{"event": "hangup", "party": "agent"}"#)
        .await;
    let (_, s) = h.get(&format!("/v1/supervisions/{sup}")).await;
    assert_eq!(s["state"], "active", "the customer remains: {s}");
    h.post(&events, r#"{"event": "hangup", "party": "customer"}"#)
        .await;
    let (_, s) = h.get(&format!("/v1/supervisions/{sup}")).await;
    assert_eq!(sup_state(&s), (json!("aborted"), json!("agent_hung_up")));

    // The agent releases the call: it ends for everyone.
    let call = h.new_call().await;
    let sup = h.new_supervision(&call).await;
    let (status, view) = h
        .post(
            &format!("/v1/calls/{call}/events"),
            r#"{"event": "release"}"#,
        )
        .await;
    assert_eq!((status, &view["state"]), (StatusCode::OK, &json!("ended")));
    let (_, s) = h.get(&format!("/v1/supervisions/{sup}")).await;
    assert_eq!(sup_state(&s), (json!("aborted"), json!("agent_held_call")));

    // A supervisor hangs up: only that supervision ends.
    let call = h.new_call().await;
    let (gone, kept) = (
        h.new_supervision(&call).await,
        h.new_supervision(&call).await,
    );
    let body =
        json!({"event": "hangup", "party": "supervisor", "supervision_id": gone}).to_string();
    let (status, view) = h.post(&format!("/v1/calls/{call}/events"), &body).await;
    assert_eq!((status, &view["state"]), (StatusCode::OK, &json!("active")));
    let (_, s) = h.get(&format!("/v1/supervisions/{gone}")).await;
    assert_eq!(
        sup_state(&s),
        (json!("aborted"), json!("supervisor_hung_up"))
    );
    let (_, s) = h.get(&format!("/v1/supervisions/{kept}")).await;
    assert_eq!(s["state"], "active");
    // Again: nothing more happens.
    let before = h.snapshot().await;
    let (status, _) = h.post(&format!("/v1/calls/{call}/events"), &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h.snapshot().await, before);
}

#[tokio::test]
async fn deleting_a_call_aborts_its_supervisions() {
    let h = Harness::start();
    let call = h.new_call().await;
    let sup = h.new_supervision(&call).await;
    h.patch(
        &format!("/v1/supervisions/{sup}"),
        r#"{"mode": "takeover"}"#,
    )
    .await;
    let (_, requested) = h
        .post(
            &format!("/v1/calls/{call}/supervisions"),
            &json!({"registered_number": NUMBER}).to_string(),
        )
        .await;
    let (status, _) = h.delete(&format!("/v1/calls/{call}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(h.state.engine().calls(), 0);
    let (_, s) = h.get(&format!("/v1/supervisions/{sup}")).await;
    assert_eq!(
        (&s["state"], &s["abort"], &s["mode"]),
        (
            &json!("aborted"),
            &json!("call_deleted"),
            &json!("takeover")
        )
    );
    let (_, s) = h
        .get(&format!(
            "/v1/supervisions/{}",
            requested["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        (&s["state"], &s["abort"]),
        (&json!("aborted"), &json!("call_deleted"))
    );
    assert_eq!(
        h.alert_kinds(&sup).await,
        ["monitoring_initiated", "aborted"]
    );
    assert_eq!(h.state.metrics().snapshot(), (0, [0; 5]));
    assert_eq!(h.state.next_deadline_ms(), None, "no timer left for them");
}

#[tokio::test]
async fn capacity_errors_change_nothing() {
    // Room for exactly one call: two even ports.
    let mut cfg = config();
    cfg.media.port_max = cfg.media.port_min + 3;
    let h = Harness::new(&cfg);
    let call = h.new_call().await;
    h.refused(
        Method::POST,
        "/v1/calls",
        Some("{}"),
        StatusCode::SERVICE_UNAVAILABLE,
        "ports_exhausted",
    )
    .await;
    // The supervisor's leg is allocated when its media connects: answered at creation, the
    // request is refused whole.
    let uri = format!("/v1/calls/{call}/supervisions");
    h.refused(
        Method::POST,
        &uri,
        Some(&common::answered_body()),
        StatusCode::SERVICE_UNAVAILABLE,
        "ports_exhausted",
    )
    .await;
    // Answered later: that report is refused, and the session still waits.
    let (_, sup) = h
        .post(&uri, &json!({"registered_number": NUMBER}).to_string())
        .await;
    let events = format!("/v1/supervisions/{}/events", sup["id"].as_str().unwrap());
    h.refused(
        Method::POST,
        &events,
        Some(&json!({"event": "answered", "calling_number": NUMBER}).to_string()),
        StatusCode::SERVICE_UNAVAILABLE,
        "ports_exhausted",
    )
    .await;
    let (_, audit) = h.get("/v1/audit").await;
    let failed: Vec<&Value> = audit["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["outcome"] == "failed" && a["action"] == "supervision.start")
        .collect();
    assert_eq!(
        failed.len(),
        2,
        "each start that could not connect is audited: {audit}"
    );

    let mut cfg = config();
    cfg.media.max_calls = 1;
    let h = Harness::new(&cfg);
    h.new_call().await;
    h.refused(
        Method::POST,
        "/v1/calls",
        Some("{}"),
        StatusCode::SERVICE_UNAVAILABLE,
        "load_limit",
    )
    .await;
}

#[tokio::test]
async fn supervisor_keys_and_media_timeouts() {
    let h = Harness::start();
    let call = h.new_call().await;
    let sup = h.new_supervision(&call).await;
    let sup_id: SupervisionId = sup.parse().unwrap();
    let (engine_call, leg) = h.state.engine_leg(sup_id).unwrap();
    let mode = |h: &Harness| SupervisionView::from(h.state.supervision(sup_id).unwrap());
    for (digit, expected) in [
        ('5', "whisper"),
        ('6', "barge"),
        ('9', "barge"),
        ('4', "listen"),
        ('6', "barge"),
    ] {
        h.state
            .engine_event(EngineEvent::Dtmf {
                call: engine_call,
                leg,
                digit,
            })
            .unwrap();
        assert_eq!(mode(&h).mode, expected, "{digit}");
    }
    // Keys from the customer or the agent do nothing.
    h.state
        .engine_event(EngineEvent::Dtmf {
            call: engine_call,
            leg: LegId::AGENT,
            digit: '#',
        })
        .unwrap();
    assert_eq!(mode(&h).mode, "barge");
    assert_eq!(h.state.metrics().snapshot().1, [0, 0, 1, 0, 0]);
    h.state
        .engine_event(EngineEvent::Dtmf {
            call: engine_call,
            leg,
            digit: '#',
        })
        .unwrap();
    let (_, s) = h.get(&format!("/v1/supervisions/{sup}")).await;
    assert_eq!(
        (&s["state"], &s["abort"], &s["failure"]),
        (&json!("stopped"), &Value::Null, &Value::Null)
    );
    // A late key after the stop is ignored.
    h.state
        .engine_event(EngineEvent::Dtmf {
            call: engine_call,
            leg,
            digit: '5',
        })
        .unwrap();
    assert_eq!(mode(&h).mode, "barge");

    // Media timeouts: a supervisor, then the parties (inbound: the customer first leaves the
    // agent monitored; the agent's timeout then ends the call).
    let sup = h.new_supervision(&call).await;
    let (_, leg) = h.state.engine_leg(sup.parse().unwrap()).unwrap();
    h.state
        .engine_event(EngineEvent::MediaTimeout {
            call: engine_call,
            leg,
        })
        .unwrap();
    let (_, s) = h.get(&format!("/v1/supervisions/{sup}")).await;
    assert_eq!(
        (&s["state"], &s["abort"]),
        (&json!("aborted"), &json!("supervisor_hung_up"))
    );
    for (parties, reason) in [
        ([LegId::CUSTOMER, LegId::AGENT], "caller_hung_up"),
        ([LegId::AGENT, LegId::CUSTOMER], "agent_hung_up"),
    ] {
        let call = h.new_call().await;
        let sup = h.new_supervision(&call).await;
        let engine_call = h
            .state
            .engine_call(call.parse::<CallId>().unwrap())
            .unwrap();
        for party in parties {
            h.state
                .engine_event(EngineEvent::MediaTimeout {
                    call: engine_call,
                    leg: party,
                })
                .unwrap();
        }
        let (_, c) = h.get(&format!("/v1/calls/{call}")).await;
        assert_eq!(c["state"], "ended");
        let (_, s) = h.get(&format!("/v1/supervisions/{sup}")).await;
        assert_eq!(
            (&s["state"], &s["abort"]),
            (&json!("aborted"), &json!(reason))
        );
        // Reported again (or late): nothing more.
        h.state
            .engine_event(EngineEvent::MediaTimeout {
                call: engine_call,
                leg: parties[0],
            })
            .unwrap();
    }
    h.snapshot().await;
}

#[tokio::test]
async fn health_and_metrics() {
    let h = Harness::start();
    let (status, body) = h.get("/healthz").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let call = h.new_call().await;
    let sup = h.new_supervision(&call).await;
    h.patch(&format!("/v1/supervisions/{sup}"), r#"{"mode": "whisper"}"#)
        .await;
    h.new_call().await;
    let text = h.metrics_text().await;
    assert!(text.contains("earshot_calls 2\n"), "{text}");
    for (mode, n) in [
        ("listen", 0),
        ("whisper", 1),
        ("barge", 0),
        ("takeover", 0),
        ("takeover_listen", 0),
    ] {
        let line = format!("earshot_supervisions{{mode=\"{mode}\"}} {n}\n");
        assert!(text.contains(&line), "{line} in {text}");
    }
    assert!(
        !text.contains(&call) && !text.contains(&sup),
        "no ids as labels"
    );
}

#[tokio::test]
async fn api_requests_are_counted_by_route_template_without_ids() {
    let h = Harness::start();
    let call = h.new_call().await;
    h.get(&format!("/v1/calls/{call}")).await;
    h.get("/v1/calls/c_0000000000000000").await;
    let text = h.metrics_text().await;
    let line = |route: &str, method: &str, status: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("earshot_api_requests_total{")
                    && l.contains(&format!("route=\"{route}\""))
                    && l.contains(&format!("method=\"{method}\""))
                    && l.contains(&format!("status=\"{status}\""))
            })
            .map(|l| l.rsplit(' ').next().unwrap_or_default().to_string())
    };
    assert_eq!(
        line("/v1/calls", "POST", "201").as_deref(),
        Some("1"),
        "{text}"
    );
    assert_eq!(line("/v1/calls/{call}", "GET", "200").as_deref(), Some("1"));
    assert_eq!(line("/v1/calls/{call}", "GET", "404").as_deref(), Some("1"));
    assert!(text.contains(
        "earshot_api_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/calls/{call}\""
    ));
    assert!(
        !text.contains(&call),
        "no call id in /metrics (docs/design.md §4.6)"
    );
}

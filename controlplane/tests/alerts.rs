//! docs/design.md §2.6: one test per row of the alert table, driven through the HTTP API in-process
//! (a real engine, an in-memory store, a manual clock). Each scenario is the facts of the call at
//! the request, the softswitch's reports after it, and what must come of them: the alerts
//! (`GET /v1/supervisions/{id}/alerts`), the final state and reason, and the audit records
//! (docs/design.md §4.5: every start, mode change, stop, denial and failure; aborts too).

mod common;

use axum::http::{Method, StatusCode};
use common::{Harness, NUMBER, T0_MS, config};
use controlplane::domain::call::CallId;
use dataplane::engine::EngineEvent;
use dataplane::media::matrix::LegId;
use serde_json::{Value, json};

/// What the softswitch (or the data plane) reports, in order.
#[derive(Clone)]
enum Step {
    /// `POST /v1/calls/{call}/events`.
    Call(Value),
    /// `POST /v1/supervisions/{id}/events`.
    Leg(Value),
    /// `PATCH /v1/supervisions/{id}` to a mode.
    Mode(&'static str),
    /// `DELETE /v1/supervisions/{id}`.
    Stop,
    /// The data plane reports a silent leg (media timeout): a party's, or the supervisor's.
    Silent(Silent),
    /// The clock moves (ms) and the due answer timeouts run.
    Wait(u64),
}

#[derive(Clone, Copy)]
enum Silent {
    Customer,
    Agent,
    Supervisor,
}

use Step::{Call, Leg, Mode, Stop, Wait};

fn ringing() -> Step {
    Leg(json!({"event": "ringing"}))
}

fn answered() -> Step {
    Leg(json!({"event": "answered", "calling_number": NUMBER}))
}

fn call_event(event: &str) -> Step {
    Call(json!({"event": event}))
}

fn hangup(party: &str) -> Step {
    Call(json!({"event": "hangup", "party": party}))
}

struct Case {
    name: &'static str,
    /// `POST /v1/calls` body.
    call: Value,
    /// Call events before the supervision is requested.
    before: Vec<&'static str>,
    /// `POST /v1/calls/{id}/supervisions` body.
    request: Value,
    steps: Vec<Step>,
    alerts: &'static [&'static str],
    /// The final state and its reason (`failure` or `abort`).
    state: &'static str,
    reason: Option<&'static str>,
    /// The audit actions of the session, in order (without the `supervision.` prefix).
    audit: &'static [&'static str],
}

fn requested() -> Value {
    json!({"supervisor_id": "sup-1", "registered_number": NUMBER})
}

fn inbound() -> Value {
    json!({"agent_id": "agent-7"})
}

fn outbound() -> Value {
    json!({"agent_id": "agent-7", "direction": "outbound"})
}

fn case(name: &'static str, steps: Vec<Step>) -> Case {
    Case {
        name,
        call: inbound(),
        before: Vec::new(),
        request: requested(),
        steps,
        alerts: &[],
        state: "",
        reason: None,
        audit: &[],
    }
}

impl Case {
    fn call(mut self, call: Value) -> Case {
        self.call = call;
        self
    }

    fn before(mut self, events: &[&'static str]) -> Case {
        self.before = events.to_vec();
        self
    }

    fn request(mut self, request: Value) -> Case {
        self.request = request;
        self
    }

    /// Overrides the audit actions that a row's helper expects.
    fn audited(mut self, audit: &'static [&'static str]) -> Case {
        self.audit = audit;
        self
    }

    fn ends(
        mut self,
        alerts: &'static [&'static str],
        state: &'static str,
        reason: Option<&'static str>,
        audit: &'static [&'static str],
    ) -> Case {
        self.alerts = alerts;
        self.state = state;
        self.reason = reason;
        self.audit = audit;
        self
    }
}

async fn post_ok(h: &Harness, uri: &str, body: &Value, what: &str) -> Value {
    let (status, got) = h.post(uri, &body.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{what}: POST {uri} {body}: {got}");
    got
}

/// Runs each case on a call of its own and checks what came of it.
async fn check(h: &Harness, cases: Vec<Case>) {
    assert!(!cases.is_empty());
    for case in cases {
        let name = case.name;
        let (status, call) = h.post("/v1/calls", &case.call.to_string()).await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {call}");
        let call = call["id"].as_str().unwrap().to_owned();
        let events = format!("/v1/calls/{call}/events");
        for event in &case.before {
            post_ok(h, &events, &json!({"event": event}), name).await;
        }
        let (status, sup) = h
            .post(
                &format!("/v1/calls/{call}/supervisions"),
                &case.request.to_string(),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {sup}");
        let id = sup["id"].as_str().unwrap().to_owned();
        let uri = format!("/v1/supervisions/{id}");
        for step in &case.steps {
            match step {
                Call(body) => {
                    post_ok(h, &events, body, name).await;
                }
                Leg(body) => {
                    post_ok(h, &format!("{uri}/events"), body, name).await;
                }
                Mode(mode) => {
                    let (status, got) = h.patch(&uri, &json!({"mode": mode}).to_string()).await;
                    assert_eq!(status, StatusCode::OK, "{name}: mode {mode}: {got}");
                }
                Stop => {
                    let (status, got) = h.delete(&uri).await;
                    assert_eq!(status, StatusCode::OK, "{name}: stop: {got}");
                }
                Step::Silent(who) => {
                    let engine_call = h
                        .state
                        .engine_call(call.parse::<CallId>().unwrap())
                        .unwrap_or_else(|| panic!("{name}: the call has no media"));
                    let leg = match who {
                        Silent::Customer => LegId::CUSTOMER,
                        Silent::Agent => LegId::AGENT,
                        Silent::Supervisor => {
                            h.state
                                .engine_leg(id.parse().unwrap())
                                .unwrap_or_else(|| panic!("{name}: no supervisor leg"))
                                .1
                        }
                    };
                    h.state
                        .engine_event(EngineEvent::MediaTimeout {
                            call: engine_call,
                            leg,
                        })
                        .unwrap();
                }
                Wait(ms) => {
                    h.advance(*ms).await;
                }
            }
        }

        let (_, sup) = h.get(&uri).await;
        assert_eq!(sup["state"], case.state, "{name}: final state: {sup}");
        let reason = match case.state {
            "failed" => &sup["failure"],
            "aborted" => &sup["abort"],
            _ => {
                assert_eq!(
                    (&sup["failure"], &sup["abort"]),
                    (&Value::Null, &Value::Null),
                    "{name}: {sup}"
                );
                &Value::Null
            }
        };
        assert_eq!(reason, &json!(case.reason), "{name}: reason: {sup}");

        let (status, alerts) = h.get(&format!("{uri}/alerts")).await;
        assert_eq!(status, StatusCode::OK, "{name}: {alerts}");
        let alerts = alerts["alerts"].as_array().unwrap().clone();
        let kinds: Vec<&str> = alerts.iter().map(|a| a["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, case.alerts, "{name}: alerts: {alerts:?}");
        for alert in &alerts {
            assert_eq!(
                (&alert["supervision_id"], &alert["call_id"]),
                (&json!(id), &json!(call)),
                "{name}: {alert}"
            );
            assert!(
                alert["text"].as_str().is_some_and(|t| !t.is_empty())
                    && alert["reason"].as_str().is_some_and(|r| !r.is_empty()),
                "{name}: {alert}"
            );
        }

        let (_, audit) = h.get("/v1/audit?limit=1000").await;
        let actions: Vec<String> = audit["audit"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["supervision_id"] == json!(id))
            .map(|a| {
                let action = a["action"].as_str().unwrap();
                action
                    .strip_prefix("supervision.")
                    .unwrap_or(action)
                    .to_owned()
            })
            .collect();
        assert_eq!(actions, case.audit, "{name}: audit actions");

        // Media flows exactly while active.
        let attached = h.state.engine_leg(id.parse().unwrap()).is_some();
        assert_eq!(attached, case.state == "active", "{name}: supervisor media");
    }
    assert_eq!(
        h.state.metrics().snapshot(),
        h.state.recount(),
        "gauges out of step with the records"
    );
}

#[tokio::test]
async fn row_monitoring_initiated() {
    let h = Harness::start();
    check(
        &h,
        vec![
            case(
                "the supervisor answers (inbound)",
                vec![ringing(), answered()],
            )
            .ends(&["monitoring_initiated"], "active", None, &["start"]),
            case(
                "the supervisor answers (outbound)",
                vec![ringing(), answered()],
            )
            .call(outbound())
            .ends(&["monitoring_initiated"], "active", None, &["start"]),
            case(
                "the agent releases while the phone rings; answered: no call, no media",
                vec![ringing(), call_event("release"), answered()],
            )
            .ends(&["monitoring_initiated"], "no_call", None, &[]),
            case(
                "the agent releases while the phone rings; answered; stopped",
                vec![ringing(), call_event("release"), answered(), Stop],
            )
            .ends(
                &["monitoring_initiated", "failed_no_call_to_monitor"],
                "failed",
                Some("no_call_to_monitor"),
                &["failure"],
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn row_monitoring_stopped() {
    let h = Harness::start();
    check(
        &h,
        vec![
            case("listens, then stops", vec![ringing(), answered(), Stop]).ends(
                &["monitoring_initiated", "monitoring_stopped"],
                "stopped",
                None,
                &["start", "stop"],
            ),
            case(
                "escalates, then stops",
                vec![answered(), Mode("whisper"), Mode("barge"), Stop],
            )
            .ends(
                &["monitoring_initiated", "monitoring_stopped"],
                "stopped",
                None,
                &["start", "mode_change", "mode_change", "stop"],
            ),
            case(
                "the caller left (inbound), the agent is still monitored; stop",
                vec![answered(), hangup("customer"), Stop],
            )
            .ends(
                &["monitoring_initiated", "monitoring_stopped"],
                "stopped",
                None,
                &["start", "stop"],
            ),
            case("cancelled while ringing", vec![ringing(), Stop]).ends(
                &["monitoring_stopped"],
                "stopped",
                None,
                &["stop"],
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn row_failed_agent_not_ready() {
    let h = Harness::start();
    let failed = |c: Case| {
        c.ends(
            &["failed_agent_not_ready"],
            "failed",
            Some("agent_not_ready"),
            &["failure"],
        )
    };
    check(
        &h,
        vec![
            failed(
                case("listens to the consulted agent during a consult", vec![])
                    .before(&["consult_start"]),
            ),
            failed(
                case("the customer is in the secure-payment segment", vec![])
                    .before(&["secure_payment_start"]),
            ),
            failed(case(
                "the customer goes to the payment system while the phone rings",
                vec![ringing(), call_event("secure_payment_start")],
            )),
        ],
    )
    .await;
}

#[tokio::test]
async fn row_failed_no_call_to_monitor() {
    let h = Harness::start();
    let vanished = |c: Case| {
        c.ends(
            &["monitoring_initiated", "failed_no_call_to_monitor"],
            "failed",
            Some("no_call_to_monitor"),
            &["failure"],
        )
    };
    check(
        &h,
        vec![
            vanished(case(
                "the customer hangs up while the phone rings; answered; stopped",
                vec![ringing(), hangup("customer"), answered(), Stop],
            )),
            vanished(
                case(
                    "the agent hangs up while the phone rings (outbound); answered; the \
                     supervisor hangs up",
                    vec![
                        ringing(),
                        hangup("agent"),
                        answered(),
                        Leg(json!({"event": "hangup"})),
                    ],
                )
                .call(outbound()),
            ),
            case(
                "the agent has not answered yet (outbound); the supervisor answers",
                vec![ringing(), answered()],
            )
            .call(json!({"direction": "outbound", "agent_answered": false}))
            .ends(
                &["failed_no_call_to_monitor"],
                "failed",
                Some("no_call_to_monitor"),
                &["failure"],
            ),
            case(
                "outbound: the agent answers first, then the supervisor",
                vec![ringing(), call_event("agent_answered"), answered()],
            )
            .call(json!({"direction": "outbound", "agent_answered": false}))
            .ends(&["monitoring_initiated"], "active", None, &["start"]),
        ],
    )
    .await;
}

#[tokio::test]
async fn row_failed_supervisor_didnt_answer() {
    let h = Harness::start();
    let unanswered = |c: Case| {
        c.ends(
            &["failed_supervisor_didnt_answer"],
            "failed",
            Some("supervisor_didnt_answer"),
            &["failure"],
        )
    };
    check(
        &h,
        vec![
            unanswered(case("the phone rings 30 s", vec![ringing(), Wait(30_000)])),
            unanswered(case(
                "the supervisor's leg ends unanswered",
                vec![ringing(), Leg(json!({"event": "hangup"}))],
            )),
            unanswered(case(
                "the customer hangs up while the phone rings; never answered",
                vec![ringing(), hangup("customer"), Wait(30_000)],
            )),
        ],
    )
    .await;
}

#[tokio::test]
async fn the_answer_timeout_fires_at_30_s_not_before() {
    let h = Harness::start();
    let call = h.new_call().await;
    let (_, sup) = h
        .post(
            &format!("/v1/calls/{call}/supervisions"),
            &requested().to_string(),
        )
        .await;
    let uri = format!("/v1/supervisions/{}", sup["id"].as_str().unwrap());
    assert_eq!(h.state.next_deadline_ms(), Some(T0_MS + 30_000));
    post_ok(
        &h,
        &format!("{uri}/events"),
        &json!({"event": "ringing"}),
        "ringing",
    )
    .await;

    assert_eq!(h.advance(29_000).await, 0);
    let (_, s) = h.get(&uri).await;
    assert_eq!(s["state"], "requested", "at 29 s: {s}");
    let (_, alerts) = h.get(&format!("{uri}/alerts")).await;
    assert_eq!(alerts, json!({"alerts": []}));
    assert_eq!(h.advance(999).await, 0);
    assert_eq!(h.get(&uri).await.1["state"], "requested", "at 29.999 s");

    assert_eq!(h.advance(1).await, 1);
    let (_, s) = h.get(&uri).await;
    assert_eq!(
        (&s["state"], &s["failure"], &s["ended_at_ms"]),
        (
            &json!("failed"),
            &json!("supervisor_didnt_answer"),
            &json!(T0_MS + 30_000)
        ),
        "at 30 s: {s}"
    );
    let (_, alerts) = h.get(&format!("{uri}/alerts")).await;
    assert_eq!(
        alerts["alerts"][0]["kind"],
        "failed_supervisor_didnt_answer"
    );
    assert_eq!(alerts["alerts"][0]["at_ms"], T0_MS + 30_000);
    assert_eq!(h.state.next_deadline_ms(), None);
    // Answered too late: the report is refused, nothing changes.
    h.refused(
        Method::POST,
        &format!("{uri}/events"),
        Some(&json!({"event": "answered", "calling_number": NUMBER}).to_string()),
        StatusCode::CONFLICT,
        "supervision_ended",
    )
    .await;
    assert_eq!(h.advance(60_000).await, 0, "fires once");

    // A report that arrives after a due deadline the timer has not fired yet: the timeout
    // comes first (events are taken in the order of time).
    let (_, sup) = h
        .post(
            &format!("/v1/calls/{call}/supervisions"),
            &requested().to_string(),
        )
        .await;
    let uri = format!("/v1/supervisions/{}", sup["id"].as_str().unwrap());
    h.clock.advance(std::time::Duration::from_secs(31));
    let (status, err) = h
        .post(
            &format!("{uri}/events"),
            &json!({"event": "answered", "calling_number": NUMBER}).to_string(),
        )
        .await;
    assert_eq!(
        (status, &err["error"]["code"]),
        (StatusCode::CONFLICT, &json!("supervision_ended")),
        "{err}"
    );
    assert_eq!(h.get(&uri).await.1["failure"], "supervisor_didnt_answer");
}

#[tokio::test]
async fn the_answer_timeout_is_configurable() {
    let mut cfg = config();
    cfg.supervision.answer_timeout_secs = 10;
    let h = Harness::new(&cfg);
    let call = h.new_call().await;
    let (_, sup) = h
        .post(
            &format!("/v1/calls/{call}/supervisions"),
            &requested().to_string(),
        )
        .await;
    let uri = format!("/v1/supervisions/{}", sup["id"].as_str().unwrap());
    h.advance(9_999).await;
    assert_eq!(h.get(&uri).await.1["state"], "requested");
    h.advance(1).await;
    assert_eq!(h.get(&uri).await.1["failure"], "supervisor_didnt_answer");
}

#[tokio::test]
async fn row_failed_supervisor_number_invalid() {
    let h = Harness::start();
    let invalid = |c: Case| {
        c.ends(
            &["failed_supervisor_number_invalid"],
            "failed",
            Some("supervisor_number_invalid"),
            &["failure"],
        )
    };
    check(
        &h,
        vec![
            invalid(case(
                "the supervisor rejects the call",
                vec![ringing(), Leg(json!({"event": "rejected"}))],
            )),
            invalid(case(
                "the supervisor's phone is in do-not-disturb",
                vec![Leg(json!({"event": "dnd"}))],
            )),
            invalid(
                case("no number registered", vec![]).request(json!({"supervisor_id": "sup-1"})),
            ),
            invalid(case(
                "answered from another number",
                vec![
                    ringing(),
                    Leg(json!({"event": "answered", "calling_number": "+15550199"})),
                ],
            )),
            invalid(
                case("answered at creation from another number", vec![]).request(json!({
                    "registered_number": NUMBER,
                    "answered": {"calling_number": "anonymous"},
                })),
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn row_failed_no_permission() {
    let h = Harness::start();
    check(
        &h,
        vec![
            case("listens to a conference", vec![])
                .before(&["conference_start"])
                .ends(
                    &["failed_no_permission"],
                    "failed",
                    Some("no_permission"),
                    &["denial"],
                ),
            case(
                "the call becomes a conference while the phone rings",
                vec![ringing(), call_event("conference_start")],
            )
            .ends(
                &["failed_no_permission"],
                "failed",
                Some("no_permission"),
                &["denial"],
            ),
            case(
                "the call becomes a conference while listening",
                vec![answered(), call_event("conference_start")],
            )
            .ends(
                &["monitoring_initiated", "failed_no_permission"],
                "failed",
                Some("no_permission"),
                &["start", "denial"],
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn web_calls_are_never_supervised() {
    let h = Harness::start();
    let (_, call) = h.post("/v1/calls", r#"{"web": true}"#).await;
    assert_eq!(call["web"], true);
    let call = call["id"].as_str().unwrap();
    let err = h
        .refused(
            Method::POST,
            &format!("/v1/calls/{call}/supervisions"),
            Some(&common::answered_body()),
            StatusCode::CONFLICT,
            "web_call",
        )
        .await;
    assert!(
        err["error"]["message"].as_str().unwrap().contains("web"),
        "{err}"
    );
    // A denial: audited, though no session exists.
    let (_, audit) = h.get("/v1/audit").await;
    let denial = &audit["audit"][0];
    assert_eq!(
        (&denial["action"], &denial["outcome"], &denial["call_id"]),
        (&json!("supervision.denial"), &json!("denied"), &json!(call)),
        "{audit}"
    );
    assert_eq!(h.get("/v1/alerts").await.1, json!({"alerts": []}));
}

#[tokio::test]
async fn row_monitoring_failed() {
    let h = Harness::start();
    let failed = |c: Case| {
        c.ends(
            &["monitoring_failed"],
            "failed",
            Some("monitoring_failed"),
            &["failure"],
        )
    };
    check(
        &h,
        vec![
            failed(case("the customer is on hold", vec![]).before(&["hold"])),
            failed(
                case("the agent is in a consult (the customer on hold)", vec![])
                    .before(&["hold", "consult_start"]),
            ),
            failed(case(
                "the customer is put on hold while the phone rings",
                vec![ringing(), call_event("hold")],
            )),
            failed(
                case(
                    "the agent starts a consult while the phone rings",
                    vec![ringing(), call_event("consult_start")],
                )
                .call(outbound()),
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn row_aborted_agent_held_call() {
    let h = Harness::start();
    let held = |name, event| {
        case(name, vec![answered(), Mode("whisper"), call_event(event)]).ends(
            &["monitoring_initiated", "aborted_agent_held_call"],
            "aborted",
            Some("agent_held_call"),
            &["start", "mode_change", "abort"],
        )
    };
    check(
        &h,
        vec![
            held("the agent puts the customer on hold", "hold"),
            held("the agent starts a consult", "consult_start"),
            held("the agent releases the call", "release"),
            held(
                "the agent transfers to the payment system",
                "secure_payment_start",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn row_aborted_party_hung_up() {
    let h = Harness::start();
    let ended = |c: Case, alerts: &'static [&'static str], reason| {
        c.ends(alerts, "aborted", Some(reason), &["start", "abort"])
    };
    let agent = &["monitoring_initiated", "aborted_agent_hung_up"];
    let caller = &["monitoring_initiated", "aborted_caller_hung_up"];
    let supervisor = &["monitoring_initiated", "aborted_supervisor_hung_up"];
    check(
        &h,
        vec![
            // Agent hung up.
            ended(
                case(
                    "inbound: the agent hangs up (BYE)",
                    vec![answered(), hangup("agent")],
                ),
                agent,
                "agent_hung_up",
            ),
            ended(
                case(
                    "inbound: the agent's media times out",
                    vec![answered(), Step::Silent(Silent::Agent)],
                ),
                agent,
                "agent_hung_up",
            ),
            ended(
                case(
                    "outbound: the customer hangs up, then the agent",
                    vec![answered(), hangup("customer"), hangup("agent")],
                )
                .call(outbound()),
                agent,
                "agent_hung_up",
            ),
            // Caller hung up.
            ended(
                case(
                    "inbound: the customer hangs up, then the agent",
                    vec![answered(), hangup("customer"), hangup("agent")],
                ),
                caller,
                "caller_hung_up",
            ),
            ended(
                case(
                    "inbound: both parties' media time out, the customer's first",
                    vec![
                        answered(),
                        Step::Silent(Silent::Customer),
                        Step::Silent(Silent::Agent),
                    ],
                ),
                caller,
                "caller_hung_up",
            ),
            // Supervisor hung up.
            ended(
                case(
                    "the supervisor's leg ends (softswitch report)",
                    vec![answered(), Mode("barge"), Leg(json!({"event": "hangup"}))],
                ),
                supervisor,
                "supervisor_hung_up",
            )
            .audited(&["start", "mode_change", "abort"]),
            ended(
                case(
                    "the supervisor's media times out",
                    vec![answered(), Step::Silent(Silent::Supervisor)],
                ),
                supervisor,
                "supervisor_hung_up",
            ),
            ended(
                case(
                    "outbound: the agent hangs up (the customer remains), then the supervisor",
                    vec![answered(), hangup("agent"), Leg(json!({"event": "hangup"}))],
                )
                .call(outbound()),
                supervisor,
                "supervisor_hung_up",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn row_validation() {
    let h = Harness::start();
    let call = h.new_call().await;
    let uri = format!("/v1/calls/{call}/supervisions");
    for number in ["44 1632 960000", "+44-1632", "supervisor", "", "+", "12"] {
        let err = h
            .refused(
                Method::POST,
                &uri,
                Some(&json!({"registered_number": number}).to_string()),
                StatusCode::BAD_REQUEST,
                "validation",
            )
            .await;
        let message = err["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("the supervisor telephone number must be a number"),
            "{number:?}: {message}"
        );
    }
    // Valid forms: digits, with an optional leading +.
    for number in ["+441632960000", "441632960000", "123"] {
        let (status, sup) = h
            .post(&uri, &json!({"registered_number": number}).to_string())
            .await;
        assert_eq!(status, StatusCode::CREATED, "{number}: {sup}");
        assert_eq!(sup["registered_number"], number.trim_start_matches('+'));
        h.delete(&format!("/v1/supervisions/{}", sup["id"].as_str().unwrap()))
            .await;
    }
}

#[tokio::test]
async fn alerts_and_audit_are_listed_in_order_with_paging() {
    let h = Harness::start();
    let call = h.new_call().await;
    let first = h.new_supervision(&call).await;
    h.patch(
        &format!("/v1/supervisions/{first}"),
        r#"{"mode": "whisper"}"#,
    )
    .await;
    h.delete(&format!("/v1/supervisions/{first}")).await;
    h.new_supervision(&call).await;

    let (_, all) = h.get("/v1/alerts").await;
    let all = all["alerts"].as_array().unwrap().clone();
    let kinds: Vec<&str> = all.iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "monitoring_initiated",
            "monitoring_stopped",
            "monitoring_initiated"
        ]
    );
    assert_eq!(all[1]["text"], "monitoring stopped");
    let after = all[0]["id"].as_i64().unwrap();
    let (_, rest) = h.get(&format!("/v1/alerts?after={after}")).await;
    assert_eq!(rest["alerts"].as_array().unwrap()[..], all[1..]);
    let (_, one) = h.get(&format!("/v1/alerts?after={after}&limit=1")).await;
    assert_eq!(one["alerts"].as_array().unwrap()[..], all[1..2]);

    let (_, audit) = h.get("/v1/audit").await;
    let audit = audit["audit"].as_array().unwrap().clone();
    let actions: Vec<(&str, &str, &Value)> = audit
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap(),
                a["outcome"].as_str().unwrap(),
                &a["mode"],
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("supervision.start", "ok", &json!("listen")),
            ("supervision.mode_change", "ok", &json!("whisper")),
            ("supervision.stop", "ok", &json!("whisper")),
            ("supervision.start", "ok", &json!("listen")),
        ]
    );
    assert_eq!(audit[0]["actor"], "user:sup-1");
    assert!(
        audit
            .windows(2)
            .all(|w| w[0]["id"].as_i64() < w[1]["id"].as_i64())
    );

    for bad in ["after=-1", "after=x", "limit=0", "limit=1001", "befor=3"] {
        h.refused(
            Method::GET,
            &format!("/v1/alerts?{bad}"),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        )
        .await;
        h.refused(
            Method::GET,
            &format!("/v1/audit?{bad}"),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        )
        .await;
    }
    h.refused(
        Method::GET,
        "/v1/supervisions/s_0000000000000000/alerts",
        None,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let text = h.metrics_text().await;
    assert!(
        text.contains("earshot_alerts_total{kind=\"monitoring_initiated\"} 2\n")
            && text.contains("earshot_alerts_total{kind=\"monitoring_stopped\"} 1\n")
            && text.contains("earshot_alerts_total{kind=\"failed_no_permission\"} 0\n"),
        "{text}"
    );
}

use super::*;

use dataplane::media::matrix::Mode;

use crate::domain::agents::UserId;
use crate::domain::call::{CallId, SupervisionId};

use AlertKind as K;

const NUMBER: &str = "+441632960000";

fn user(id: &str) -> UserId {
    UserId::parse(id).expect("a valid user id")
}

fn session_id() -> SupervisionId {
    "s_00000000000000a1"
        .parse()
        .expect("a valid supervision id")
}

fn call_id(n: u64) -> CallId {
    format!("c_{n:016x}").parse().expect("a valid call id")
}

fn inbound() -> CallFacts {
    CallFacts::business(call_id(1), Direction::Inbound)
}

fn outbound() -> CallFacts {
    CallFacts::business(call_id(1), Direction::Outbound)
}

fn start(call: CallFacts) -> Start {
    Start {
        supervisor: Some(user("sup-1")),
        agent: Some(user("agent-7")),
        scope: SessionScope::Call,
        call,
        supervisor_may_listen: true,
        registered_number: NUMBER.into(),
        answer_timeout: None,
    }
}

fn persistent(call: CallFacts) -> Start {
    Start {
        scope: SessionScope::Agent {
            grant_id: Some(GrantId(9)),
        },
        ..start(call)
    }
}

fn active(mode: Mode) -> State {
    State::Active {
        mode,
        customer_gone: false,
        agent_gone: false,
    }
}

/// One step of a scenario on the virtual clock.
enum Step {
    In(u64, Input),
    Tick(u64),
}
use Step::{In, Tick};

fn ringing(at_ms: u64) -> Step {
    In(at_ms, Input::SupervisorRinging)
}

fn answered(at_ms: u64) -> Step {
    answered_from(at_ms, NUMBER)
}

fn answered_from(at_ms: u64, calling_number: &str) -> Step {
    In(
        at_ms,
        Input::SupervisorAnswered {
            calling_number: calling_number.into(),
        },
    )
}

fn hangup(at_ms: u64, party: HangupParty) -> Step {
    In(at_ms, Input::Hangup { party })
}

fn stop(at_ms: u64) -> Step {
    In(at_ms, Input::Stop)
}

use HangupParty::{Agent, Customer, Supervisor};

/// A scenario, with the alerts it must raise and the state it must end in.
struct Case {
    name: &'static str,
    start: Start,
    steps: Vec<Step>,
    alerts: &'static [AlertKind],
    end: State,
}

fn new_session() -> Session {
    Session::new(session_id(), AnswerTimeout::DEFAULT)
}

/// Runs a scenario from `Start` at t = 0; every step must be accepted.
fn run(start: Start, steps: Vec<Step>) -> (Session, Vec<Output>) {
    let mut session = new_session();
    let mut outputs = session
        .handle(0, Input::Start(start))
        .expect("start accepted");
    assert_order(&outputs);
    for step in steps {
        let more = match step {
            In(at_ms, input) => {
                let name = input.name();
                session
                    .handle(at_ms, input)
                    .unwrap_or_else(|e| panic!("{name} at {at_ms} ms refused: {e}"))
            }
            Tick(at_ms) => session.on_timeout(at_ms),
        };
        assert_order(&more);
        outputs.extend(more);
    }
    (session, outputs)
}

fn alerts(outputs: &[Output]) -> Vec<AlertKind> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Alert(a) => Some(a.kind),
            _ => None,
        })
        .collect()
}

/// The calls the supervisor's media was connected to.
fn connected(outputs: &[Output]) -> Vec<CallId> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::ConnectMedia { call, .. } => Some(*call),
            _ => None,
        })
        .collect()
}

/// The documented order of one input's outputs.
fn rank(output: &Output) -> u8 {
    match output {
        Output::Audit(_) => 0,
        Output::ConnectMedia { .. } | Output::SetMedia { .. } | Output::DisconnectMedia { .. } => 1,
        Output::AnnounceNoCall => 2,
        Output::Alert(_) => 3,
        Output::Ended { .. } => 4,
    }
}

fn assert_order(outputs: &[Output]) {
    assert!(
        outputs.windows(2).all(|w| rank(&w[0]) <= rank(&w[1])),
        "outputs out of order: {outputs:?}"
    );
    for (i, output) in outputs.iter().enumerate() {
        if let Output::ConnectMedia { call, mode } = output {
            let audited = i > 0
                && matches!(&outputs[i - 1], Output::Audit(r)
                    if r.action == AuditAction::SupervisionStart && r.call == *call && r.mode == Some(*mode));
            assert!(
                audited,
                "ConnectMedia without the audit right before it: {outputs:?}"
            );
        }
    }
}

fn check(cases: Vec<Case>) {
    assert!(!cases.is_empty());
    for case in cases {
        let (session, outputs) = run(case.start, case.steps);
        assert_eq!(alerts(&outputs), case.alerts, "{}: alerts", case.name);
        assert_eq!(session.state(), case.end, "{}: final state", case.name);
        let ended: Vec<State> = outputs
            .iter()
            .filter_map(|o| match o {
                Output::Ended { state } => Some(*state),
                _ => None,
            })
            .collect();
        let expected_ended = if case.end.is_terminal() {
            vec![case.end]
        } else {
            Vec::new()
        };
        assert_eq!(ended, expected_ended, "{}: Ended outputs", case.name);
        assert_eq!(
            session.next_deadline().is_some(),
            matches!(case.end, State::Requested { .. })
        );
    }
}

// --- One test per row of the docs/design.md §2 alert table, one entry per scenario -------------

#[test]
fn row_monitoring_initiated() {
    check(vec![
        Case {
            name: "supervisor answers a call in progress (inbound)",
            start: start(inbound()),
            steps: vec![ringing(1_000), answered(5_000)],
            alerts: &[K::MonitoringInitiated],
            end: active(Mode::Listen),
        },
        Case {
            name: "supervisor answers a call in progress (outbound)",
            start: start(outbound()),
            steps: vec![ringing(1_000), answered(5_000)],
            alerts: &[K::MonitoringInitiated],
            end: active(Mode::Listen),
        },
        Case {
            name: "agent releases while the phone rings; answered: no call, waits",
            start: start(inbound()),
            steps: vec![
                ringing(1_000),
                In(2_000, Input::CallReleasedByAgent),
                answered(5_000),
            ],
            alerts: &[K::MonitoringInitiated],
            end: State::NoCall {
                vanished: Some(Vanished::AgentReleased),
            },
        },
        Case {
            name: "agent releases while the phone rings; answered; stop",
            start: start(inbound()),
            steps: vec![
                ringing(1_000),
                In(2_000, Input::CallReleasedByAgent),
                answered(5_000),
                stop(9_000),
            ],
            alerts: &[K::MonitoringInitiated, K::FailedNoCallToMonitor],
            end: State::Failed(FailReason::NoCallToMonitor),
        },
        Case {
            name: "agent hangs up while the phone rings (outbound); answered; the leg ends",
            start: start(outbound()),
            steps: vec![
                ringing(1_000),
                hangup(2_000, Agent),
                answered(5_000),
                hangup(8_000, Supervisor),
            ],
            alerts: &[K::MonitoringInitiated, K::FailedNoCallToMonitor],
            end: State::Failed(FailReason::NoCallToMonitor),
        },
        Case {
            name: "agent hangs up while the phone rings (inbound); answered; stop",
            start: start(inbound()),
            steps: vec![
                ringing(1_000),
                hangup(2_000, Agent),
                answered(5_000),
                stop(8_000),
            ],
            alerts: &[K::MonitoringInitiated, K::AbortedAgentHungUp],
            end: State::Aborted(AbortReason::AgentHungUp),
        },
        Case {
            name: "customer hangs up while the phone rings; answered; stop",
            start: start(inbound()),
            steps: vec![
                ringing(1_000),
                hangup(2_000, Customer),
                answered(5_000),
                stop(8_000),
            ],
            alerts: &[K::MonitoringInitiated, K::FailedNoCallToMonitor],
            end: State::Failed(FailReason::NoCallToMonitor),
        },
        Case {
            name: "customer hangs up while the phone rings; not answered",
            start: start(inbound()),
            steps: vec![ringing(1_000), hangup(2_000, Customer), Tick(30_000)],
            alerts: &[K::FailedSupervisorDidntAnswer],
            end: State::Failed(FailReason::SupervisorDidntAnswer),
        },
    ]);
}

#[test]
fn row_monitoring_stopped() {
    check(vec![
        Case {
            name: "listens, then stops",
            start: start(inbound()),
            steps: vec![answered(5_000), stop(60_000)],
            alerts: &[K::MonitoringInitiated, K::MonitoringStopped],
            end: State::Stopped,
        },
        Case {
            name: "escalates through every mode, then stops",
            start: start(outbound()),
            steps: vec![
                answered(5_000),
                In(6_000, Input::SetMode(Mode::Whisper)),
                In(7_000, Input::SetMode(Mode::Barge)),
                In(8_000, Input::SetMode(Mode::Takeover)),
                In(9_000, Input::SetMode(Mode::TakeoverListen)),
                In(10_000, Input::SetMode(Mode::Listen)),
                stop(11_000),
            ],
            alerts: &[K::MonitoringInitiated, K::MonitoringStopped],
            end: State::Stopped,
        },
        Case {
            name: "the caller left (inbound), the agent is still monitored; stop",
            start: start(inbound()),
            steps: vec![answered(5_000), hangup(6_000, Customer), stop(7_000)],
            alerts: &[K::MonitoringInitiated, K::MonitoringStopped],
            end: State::Stopped,
        },
    ]);
}

#[test]
fn row_failed_agent_not_ready() {
    check(vec![
        Case {
            name: "listens to the consulted agent during a consult",
            start: start(CallFacts {
                in_consult: true,
                ..inbound()
            }),
            steps: vec![],
            alerts: &[K::FailedAgentNotReady],
            end: State::Failed(FailReason::AgentNotReady),
        },
        Case {
            name: "the customer is in the mid-call payment system",
            start: start(CallFacts {
                secure_payment: true,
                ..inbound()
            }),
            steps: vec![],
            alerts: &[K::FailedAgentNotReady],
            end: State::Failed(FailReason::AgentNotReady),
        },
        Case {
            name: "payment segment wins over hold",
            start: start(CallFacts {
                secure_payment: true,
                on_hold: true,
                ..outbound()
            }),
            steps: vec![],
            alerts: &[K::FailedAgentNotReady],
            end: State::Failed(FailReason::AgentNotReady),
        },
        Case {
            name: "the customer goes to the payment system while the phone rings",
            start: start(inbound()),
            steps: vec![ringing(1_000), In(2_000, Input::SecurePaymentStarted)],
            alerts: &[K::FailedAgentNotReady],
            end: State::Failed(FailReason::AgentNotReady),
        },
    ]);
}

#[test]
fn row_failed_no_call_to_monitor() {
    check(vec![
        Case {
            name: "agent releases while ringing; answered; stop",
            start: start(outbound()),
            steps: vec![
                In(2_000, Input::CallReleasedByAgent),
                answered(5_000),
                stop(8_000),
            ],
            alerts: &[K::MonitoringInitiated, K::FailedNoCallToMonitor],
            end: State::Failed(FailReason::NoCallToMonitor),
        },
        Case {
            name: "agent hangs up while ringing (outbound); answered; stop",
            start: start(outbound()),
            steps: vec![hangup(2_000, Agent), answered(5_000), stop(8_000)],
            alerts: &[K::MonitoringInitiated, K::FailedNoCallToMonitor],
            end: State::Failed(FailReason::NoCallToMonitor),
        },
        Case {
            name: "customer hangs up while ringing (outbound); answered; stop",
            start: start(outbound()),
            steps: vec![hangup(2_000, Customer), answered(5_000), stop(8_000)],
            alerts: &[K::MonitoringInitiated, K::FailedNoCallToMonitor],
            end: State::Failed(FailReason::NoCallToMonitor),
        },
        Case {
            name: "the agent has not answered yet (outbound); supervisor answers",
            start: start(CallFacts {
                agent_answered: false,
                ..outbound()
            }),
            steps: vec![ringing(1_000), answered(5_000)],
            alerts: &[K::FailedNoCallToMonitor],
            end: State::Failed(FailReason::NoCallToMonitor),
        },
        Case {
            name: "stopped while ringing after the call vanished",
            start: start(inbound()),
            steps: vec![hangup(2_000, Customer), stop(3_000)],
            alerts: &[K::FailedNoCallToMonitor],
            end: State::Failed(FailReason::NoCallToMonitor),
        },
    ]);
}

#[test]
fn agent_answering_first_lets_an_outbound_session_start() {
    check(vec![Case {
        name: "outbound: the agent answers, then the supervisor",
        start: start(CallFacts {
            agent_answered: false,
            ..outbound()
        }),
        steps: vec![
            ringing(1_000),
            In(3_000, Input::AgentAnswered),
            answered(5_000),
        ],
        alerts: &[K::MonitoringInitiated],
        end: active(Mode::Listen),
    }]);
}

#[test]
fn row_failed_supervisor_didnt_answer() {
    check(vec![
        Case {
            name: "the phone rings 30 s",
            start: start(inbound()),
            steps: vec![ringing(1_000), Tick(29_999), Tick(30_000)],
            alerts: &[K::FailedSupervisorDidntAnswer],
            end: State::Failed(FailReason::SupervisorDidntAnswer),
        },
        Case {
            name: "the supervisor's leg ends unanswered (no rejection)",
            start: start(inbound()),
            steps: vec![ringing(1_000), hangup(20_000, Supervisor)],
            alerts: &[K::FailedSupervisorDidntAnswer],
            end: State::Failed(FailReason::SupervisorDidntAnswer),
        },
        Case {
            name: "outbound, neither the agent nor the supervisor answers",
            start: start(CallFacts {
                agent_answered: false,
                ..outbound()
            }),
            steps: vec![Tick(30_000)],
            alerts: &[K::FailedSupervisorDidntAnswer],
            end: State::Failed(FailReason::SupervisorDidntAnswer),
        },
    ]);
}

#[test]
fn row_failed_supervisor_number_invalid() {
    check(vec![
        Case {
            name: "the supervisor rejects the call",
            start: start(inbound()),
            steps: vec![ringing(1_000), In(3_000, Input::SupervisorRejected)],
            alerts: &[K::FailedSupervisorNumberInvalid],
            end: State::Failed(FailReason::SupervisorNumberInvalid),
        },
        Case {
            name: "the supervisor's phone is in do-not-disturb",
            start: start(inbound()),
            steps: vec![In(500, Input::SupervisorDnd)],
            alerts: &[K::FailedSupervisorNumberInvalid],
            end: State::Failed(FailReason::SupervisorNumberInvalid),
        },
        Case {
            name: "the registered number is not a number",
            start: Start {
                registered_number: "44 16x".into(),
                ..start(inbound())
            },
            steps: vec![],
            alerts: &[K::FailedSupervisorNumberInvalid],
            end: State::Failed(FailReason::SupervisorNumberInvalid),
        },
        Case {
            name: "no number registered",
            start: Start {
                registered_number: String::new(),
                ..start(inbound())
            },
            steps: vec![],
            alerts: &[K::FailedSupervisorNumberInvalid],
            end: State::Failed(FailReason::SupervisorNumberInvalid),
        },
        Case {
            name: "answered from another number",
            start: start(inbound()),
            steps: vec![ringing(1_000), answered_from(5_000, "+441632960001")],
            alerts: &[K::FailedSupervisorNumberInvalid],
            end: State::Failed(FailReason::SupervisorNumberInvalid),
        },
        Case {
            name: "answered from an anonymous calling number",
            start: start(outbound()),
            steps: vec![answered_from(5_000, "anonymous")],
            alerts: &[K::FailedSupervisorNumberInvalid],
            end: State::Failed(FailReason::SupervisorNumberInvalid),
        },
        Case {
            name: "the number is checked before the vanished call",
            start: start(inbound()),
            steps: vec![hangup(1_000, Customer), answered_from(5_000, "+1555")],
            alerts: &[K::FailedSupervisorNumberInvalid],
            end: State::Failed(FailReason::SupervisorNumberInvalid),
        },
    ]);
}

#[test]
fn row_failed_no_permission() {
    check(vec![
        Case {
            name: "listens to a conference",
            start: start(CallFacts {
                conference: true,
                ..inbound()
            }),
            steps: vec![],
            alerts: &[K::FailedNoPermission],
            end: State::Failed(FailReason::NoPermission),
        },
        Case {
            name: "no listen right over this agent",
            start: Start {
                supervisor_may_listen: false,
                ..start(inbound())
            },
            steps: vec![],
            alerts: &[K::FailedNoPermission],
            end: State::Failed(FailReason::NoPermission),
        },
        Case {
            name: "the right is checked first (invalid number, call on hold)",
            start: Start {
                supervisor_may_listen: false,
                registered_number: "x".into(),
                ..start(CallFacts {
                    on_hold: true,
                    ..inbound()
                })
            },
            steps: vec![],
            alerts: &[K::FailedNoPermission],
            end: State::Failed(FailReason::NoPermission),
        },
        Case {
            name: "the call becomes a conference while the phone rings",
            start: start(inbound()),
            steps: vec![ringing(1_000), In(2_000, Input::ConferenceStarted)],
            alerts: &[K::FailedNoPermission],
            end: State::Failed(FailReason::NoPermission),
        },
        Case {
            name: "the call becomes a conference while listening",
            start: start(inbound()),
            steps: vec![answered(5_000), In(9_000, Input::ConferenceStarted)],
            alerts: &[K::MonitoringInitiated, K::FailedNoPermission],
            end: State::Failed(FailReason::NoPermission),
        },
    ]);
}

#[test]
fn row_monitoring_failed() {
    check(vec![
        Case {
            name: "the customer is on hold",
            start: start(CallFacts {
                on_hold: true,
                ..inbound()
            }),
            steps: vec![],
            alerts: &[K::MonitoringFailed],
            end: State::Failed(FailReason::MonitoringFailed),
        },
        Case {
            name: "the agent is in a consult (the customer on hold)",
            start: start(CallFacts {
                on_hold: true,
                in_consult: true,
                ..inbound()
            }),
            steps: vec![],
            alerts: &[K::MonitoringFailed],
            end: State::Failed(FailReason::MonitoringFailed),
        },
        Case {
            name: "the customer is put on hold while the phone rings",
            start: start(outbound()),
            steps: vec![ringing(1_000), In(2_000, Input::CallHeld)],
            alerts: &[K::MonitoringFailed],
            end: State::Failed(FailReason::MonitoringFailed),
        },
        Case {
            name: "the agent starts a consult while the phone rings",
            start: start(inbound()),
            steps: vec![ringing(1_000), In(2_000, Input::ConsultStarted)],
            alerts: &[K::MonitoringFailed],
            end: State::Failed(FailReason::MonitoringFailed),
        },
    ]);
}

#[test]
fn row_aborted_agent_held_call() {
    let held = |name, input: Input| Case {
        name,
        start: start(inbound()),
        steps: vec![
            answered(5_000),
            In(6_000, Input::SetMode(Mode::Whisper)),
            In(9_000, input),
        ],
        alerts: &[K::MonitoringInitiated, K::AbortedAgentHeldCall],
        end: State::Aborted(AbortReason::AgentHeldCall),
    };
    check(vec![
        held("the agent puts the customer on hold", Input::CallHeld),
        held("the agent starts a consult", Input::ConsultStarted),
        held("the agent releases the call", Input::CallReleasedByAgent),
        held(
            "the agent transfers to the payment system",
            Input::SecurePaymentStarted,
        ),
    ]);
}

#[test]
fn row_aborted_agent_hung_up() {
    check(vec![
        Case {
            name: "inbound: the agent hangs up",
            start: start(inbound()),
            steps: vec![answered(5_000), hangup(9_000, Agent)],
            alerts: &[K::MonitoringInitiated, K::AbortedAgentHungUp],
            end: State::Aborted(AbortReason::AgentHungUp),
        },
        Case {
            name: "outbound: the customer hangs up, then the agent",
            start: start(outbound()),
            steps: vec![
                answered(5_000),
                hangup(8_000, Customer),
                hangup(9_000, Agent),
            ],
            alerts: &[K::MonitoringInitiated, K::AbortedAgentHungUp],
            end: State::Aborted(AbortReason::AgentHungUp),
        },
        Case {
            name: "outbound: the agent hangs up, then the customer (the agent's call)",
            start: start(outbound()),
            steps: vec![
                answered(5_000),
                hangup(8_000, Agent),
                hangup(9_000, Customer),
            ],
            alerts: &[K::MonitoringInitiated, K::AbortedAgentHungUp],
            end: State::Aborted(AbortReason::AgentHungUp),
        },
    ]);
}

#[test]
fn row_aborted_caller_hung_up() {
    check(vec![Case {
        name: "inbound: the customer hangs up, then the agent",
        start: start(inbound()),
        steps: vec![
            answered(5_000),
            hangup(8_000, Customer),
            hangup(9_000, Agent),
        ],
        alerts: &[K::MonitoringInitiated, K::AbortedCallerHungUp],
        end: State::Aborted(AbortReason::CallerHungUp),
    }]);
}

#[test]
fn row_aborted_supervisor_hung_up() {
    check(vec![
        Case {
            name: "the supervisor hangs up while listening",
            start: start(inbound()),
            steps: vec![answered(5_000), hangup(9_000, Supervisor)],
            alerts: &[K::MonitoringInitiated, K::AbortedSupervisorHungUp],
            end: State::Aborted(AbortReason::SupervisorHungUp),
        },
        Case {
            name: "the supervisor hangs up while barging",
            start: start(outbound()),
            steps: vec![
                answered(5_000),
                In(6_000, Input::SetMode(Mode::Barge)),
                hangup(9_000, Supervisor),
            ],
            alerts: &[K::MonitoringInitiated, K::AbortedSupervisorHungUp],
            end: State::Aborted(AbortReason::SupervisorHungUp),
        },
        Case {
            name: "the agent hangs up (outbound: the customer remains), then the supervisor",
            start: start(outbound()),
            steps: vec![
                answered(5_000),
                hangup(8_000, Agent),
                hangup(9_000, Supervisor),
            ],
            alerts: &[K::MonitoringInitiated, K::AbortedSupervisorHungUp],
            end: State::Aborted(AbortReason::SupervisorHungUp),
        },
        Case {
            name: "inbound: the customer hangs up, then the supervisor",
            start: start(inbound()),
            steps: vec![
                answered(5_000),
                hangup(8_000, Customer),
                hangup(9_000, Supervisor),
            ],
            alerts: &[K::MonitoringInitiated, K::AbortedSupervisorHungUp],
            end: State::Aborted(AbortReason::SupervisorHungUp),
        },
        Case {
            name: "outbound: the customer hangs up, then the supervisor",
            start: start(outbound()),
            steps: vec![
                answered(5_000),
                hangup(8_000, Customer),
                hangup(9_000, Supervisor),
            ],
            alerts: &[K::MonitoringInitiated, K::AbortedSupervisorHungUp],
            end: State::Aborted(AbortReason::SupervisorHungUp),
        },
    ]);
}

#[test]
fn row_validation() {
    use NumberProblem::*;
    let table: [(&str, Result<&str, NumberProblem>); 17] = [
        ("441632960000", Ok("441632960000")),
        ("+441632960000", Ok("441632960000")),
        ("123", Ok("123")),
        ("+123", Ok("123")),
        ("12345678901234567890", Ok("12345678901234567890")),
        ("", Err(Empty)),
        ("+", Err(Empty)),
        ("12", Err(TooShort { digits: 2 })),
        ("123456789012345678901", Err(TooLong { digits: 21 })),
        ("44 1632 960000", Err(NotADigit)),
        (" 441632960000", Err(NotADigit)),
        ("441632960000\n", Err(NotADigit)),
        ("44-1632-960000", Err(NotADigit)),
        ("supervisor", Err(NotADigit)),
        ("++441632960000", Err(NotADigit)),
        ("4416+32960000", Err(NotADigit)),
        ("٤٤١٦٣٢", Err(NotADigit)),
    ];
    for (input, expected) in table {
        let got = validate_supervisor_number(input);
        match expected {
            Ok(digits) => assert_eq!(
                got.as_ref().map(SupervisorNumber::digits),
                Ok(digits),
                "{input:?}"
            ),
            Err(problem) => assert_eq!(got, Err(ValidationAlert { problem }), "{input:?}"),
        }
    }
    let alert = validate_supervisor_number("12ab").expect_err("not a number");
    assert_eq!(ValidationAlert::CODE, "validation");
    assert!(alert.to_string().starts_with(ValidationAlert::TEXT));
    assert_eq!(
        ValidationAlert::TEXT,
        "the supervisor telephone number must be a number"
    );
}

// --- Timeouts ------------------------------------------------------------------------------

#[test]
fn answer_timeout_defaults_to_30_s() {
    let mut session = new_session();
    session
        .handle(0, Input::Start(start(inbound())))
        .expect("start");
    assert_eq!(session.next_deadline(), Some(30_000));
    assert_eq!(session.on_timeout(29_999), Vec::new());
    assert!(matches!(session.state(), State::Requested { .. }));

    // Answered at 29.999 s: in time.
    let mut in_time = session.clone();
    in_time
        .handle(
            29_999,
            Input::SupervisorAnswered {
                calling_number: NUMBER.into(),
            },
        )
        .expect("in time");
    assert_eq!(in_time.state(), active(Mode::Listen));
    assert_eq!(in_time.next_deadline(), None);
    assert_eq!(in_time.on_timeout(40_000), Vec::new());

    // At 30 s the answer is refused until the timeout fires, then the session has failed.
    let before = session.clone();
    let late = session.handle(
        30_000,
        Input::SupervisorAnswered {
            calling_number: NUMBER.into(),
        },
    );
    assert_eq!(
        late,
        Err(Refused::TimeoutDue {
            deadline_ms: 30_000
        })
    );
    assert_eq!(session, before);
    let outputs = session.on_timeout(30_000);
    assert_eq!(alerts(&outputs), [K::FailedSupervisorDidntAnswer]);
    assert!(
        matches!(&outputs[0], Output::Audit(r) if r.action == AuditAction::SupervisionFailure && r.at_ms == 30_000 && r.mode.is_none())
    );
    assert_eq!(
        outputs.last(),
        Some(&Output::Ended {
            state: State::Failed(FailReason::SupervisorDidntAnswer)
        })
    );
    assert_eq!(outputs.len(), 3, "{outputs:?}");
    assert_eq!(session.next_deadline(), None);
    assert_eq!(session.on_timeout(60_000), Vec::new());
}

#[test]
fn answer_timeout_is_configurable_per_session_and_globally() {
    let per_session = Start {
        answer_timeout: Some(AnswerTimeout::from_ms(10_000).expect("in range")),
        ..start(inbound())
    };
    let mut session = new_session();
    session
        .handle(2_000, Input::Start(per_session))
        .expect("start");
    assert_eq!(session.next_deadline(), Some(12_000));
    assert_eq!(session.on_timeout(11_999), Vec::new());
    assert_eq!(
        alerts(&session.on_timeout(12_000)),
        [K::FailedSupervisorDidntAnswer]
    );

    let global = AnswerTimeout::from_ms(45_000).expect("in range");
    let mut session = Session::new(session_id(), global);
    session
        .handle(0, Input::Start(start(inbound())))
        .expect("start");
    assert_eq!(session.next_deadline(), Some(45_000));
    assert_eq!(session.on_timeout(44_999), Vec::new());
    assert_eq!(
        alerts(&session.on_timeout(45_000)),
        [K::FailedSupervisorDidntAnswer]
    );

    assert_eq!(AnswerTimeout::default().ms(), 30_000);
    assert_eq!(
        AnswerTimeout::from_ms(999),
        Err(AnswerTimeoutOutOfRange { ms: 999 })
    );
    assert!(AnswerTimeout::from_ms(1_000).is_ok());
    assert!(AnswerTimeout::from_ms(600_000).is_ok());
    assert_eq!(
        AnswerTimeout::from_ms(600_001),
        Err(AnswerTimeoutOutOfRange { ms: 600_001 })
    );
}

#[test]
fn time_never_runs_backwards_in_a_session() {
    let (mut session, _) = run(start(inbound()), vec![answered(5_000)]);
    let outputs = session.handle(1_000, Input::Stop).expect("stop");
    assert!(outputs.iter().all(|o| match o {
        Output::Audit(r) => r.at_ms == 5_000,
        Output::Alert(a) => a.at_ms == 5_000,
        _ => true,
    }));
}

// --- Audit and media --------------------------------------------------------------------------

#[test]
fn the_start_is_audited_before_media_connects() {
    let (mut session, _) = run(start(inbound()), vec![ringing(1_000)]);
    let outputs = session
        .handle(
            5_000,
            Input::SupervisorAnswered {
                calling_number: NUMBER.into(),
            },
        )
        .expect("answered");
    let audit = AuditRecord {
        action: AuditAction::SupervisionStart,
        actor: AuditActor::Supervisor,
        session: session_id(),
        supervisor: Some(user("sup-1")),
        agent: Some(user("agent-7")),
        call: call_id(1),
        mode: Some(Mode::Listen),
        alert: None,
        at_ms: 5_000,
    };
    assert_eq!(outputs.len(), 3, "{outputs:?}");
    assert_eq!(outputs[0], Output::Audit(audit));
    assert_eq!(
        outputs[1],
        Output::ConnectMedia {
            call: call_id(1),
            mode: Mode::Listen
        }
    );
    assert!(matches!(&outputs[2], Output::Alert(a)
        if a.kind == K::MonitoringInitiated && a.at_ms == 5_000 && a.session == session_id() && a.call == call_id(1)));
}

#[test]
fn no_audit_and_no_media_when_the_call_vanished() {
    let (mut session, setup) = run(start(inbound()), vec![hangup(1_000, Customer)]);
    assert!(connected(&setup).is_empty());
    let outputs = session
        .handle(
            5_000,
            Input::SupervisorAnswered {
                calling_number: NUMBER.into(),
            },
        )
        .expect("answered");
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    assert_eq!(outputs[0], Output::AnnounceNoCall);
    assert_eq!(alerts(&outputs), [K::MonitoringInitiated]);
    let outputs = session.handle(6_000, Input::Stop).expect("stop");
    assert!(
        matches!(&outputs[0], Output::Audit(r) if r.action == AuditAction::SupervisionFailure && r.alert == Some(K::FailedNoCallToMonitor))
    );
    assert!(
        !outputs
            .iter()
            .any(|o| matches!(o, Output::DisconnectMedia { .. }))
    );
    assert!(connected(&outputs).is_empty());
}

#[test]
fn mode_changes_while_active_emit_audit_then_set_media() {
    let (mut session, _) = run(start(inbound()), vec![answered(5_000)]);
    let mut at_ms = 6_000;
    for mode in [
        Mode::Whisper,
        Mode::Barge,
        Mode::Takeover,
        Mode::TakeoverListen,
        Mode::Listen,
    ] {
        let outputs = session
            .handle(at_ms, Input::SetMode(mode))
            .expect("mode change");
        assert_eq!(outputs.len(), 2, "{outputs:?}");
        assert!(matches!(&outputs[0], Output::Audit(r)
            if r.action == AuditAction::SupervisionModeChange && r.mode == Some(mode) && r.at_ms == at_ms && r.alert.is_none()));
        assert_eq!(
            outputs[1],
            Output::SetMedia {
                call: call_id(1),
                mode
            }
        );
        assert_eq!(session.state(), active(mode));
        at_ms += 1_000;
    }
    // The current mode: nothing changes, nothing is audited.
    assert_eq!(
        session.handle(at_ms, Input::SetMode(Mode::Listen)),
        Ok(Vec::new())
    );

    session
        .handle(at_ms, Input::SetMode(Mode::Whisper))
        .expect("whisper");
    let outputs = session.handle(at_ms + 1, Input::Stop).expect("stop");
    assert!(matches!(&outputs[0], Output::Audit(r)
        if r.action == AuditAction::SupervisionStop && r.mode == Some(Mode::Whisper) && r.alert == Some(K::MonitoringStopped)));
    assert_eq!(outputs[1], Output::DisconnectMedia { call: call_id(1) });
    assert_eq!(alerts(&outputs), [K::MonitoringStopped]);
    assert_eq!(
        outputs.last(),
        Some(&Output::Ended {
            state: State::Stopped
        })
    );
}

#[test]
fn every_ending_has_its_audit_action() {
    let cases: [(Start, Vec<Step>, AuditAction); 5] = [
        (
            start(inbound()),
            vec![answered(1), stop(2)],
            AuditAction::SupervisionStop,
        ),
        (
            start(CallFacts {
                conference: true,
                ..inbound()
            }),
            vec![],
            AuditAction::SupervisionDenial,
        ),
        (
            start(CallFacts {
                on_hold: true,
                ..inbound()
            }),
            vec![],
            AuditAction::SupervisionFailure,
        ),
        (
            start(inbound()),
            vec![Tick(30_000)],
            AuditAction::SupervisionFailure,
        ),
        (
            start(inbound()),
            vec![answered(1), hangup(2, Agent)],
            AuditAction::SupervisionAbort,
        ),
    ];
    for (start, steps, action) in cases {
        let (_, outputs) = run(start, steps);
        let last_audit = outputs.iter().rev().find_map(|o| match o {
            Output::Audit(r) => Some(r.action),
            _ => None,
        });
        assert_eq!(last_audit, Some(action));
    }
}

// --- Refusals --------------------------------------------------------------------------------

#[test]
fn illegal_inputs_are_refused_without_outputs_or_change() {
    let set_mode = || Input::SetMode(Mode::Whisper);
    let not_legal = |input, state| Refused::NotLegal { input, state };
    let next_call = || Input::AgentNextCall {
        call: CallFacts::business(call_id(2), Direction::Inbound),
        supervisor_may_listen: true,
    };
    let ended = |state| Refused::Ended { state };
    // (setup, illegal input, refusal); the setup is `None` for a session never started.
    let table: Vec<(Option<Vec<Step>>, Input, Refused)> = vec![
        (None, set_mode(), Refused::NotStarted),
        (None, Input::Stop, Refused::NotStarted),
        (
            None,
            Input::Hangup { party: Supervisor },
            Refused::NotStarted,
        ),
        (
            Some(vec![]),
            Input::Start(start(inbound())),
            Refused::AlreadyStarted,
        ),
        (Some(vec![]), set_mode(), not_legal("set_mode", "requested")),
        (
            Some(vec![]),
            Input::AgentAnswered,
            not_legal("agent_answered", "requested"),
        ),
        (Some(vec![]), next_call(), Refused::NotAgentScope),
        (
            Some(vec![ringing(1)]),
            Input::SupervisorRinging,
            not_legal("supervisor_ringing", "requested"),
        ),
        (
            Some(vec![hangup(1, Customer)]),
            Input::CallHeld,
            not_legal("call_held", "requested"),
        ),
        (
            Some(vec![hangup(1, Customer)]),
            Input::Hangup { party: Agent },
            not_legal("hangup", "requested"),
        ),
        (
            Some(vec![answered(1)]),
            Input::SupervisorAnswered {
                calling_number: NUMBER.into(),
            },
            not_legal("supervisor_answered", "active"),
        ),
        (
            Some(vec![answered(1)]),
            Input::SupervisorRejected,
            not_legal("supervisor_rejected", "active"),
        ),
        (
            Some(vec![answered(1)]),
            Input::SupervisorDnd,
            not_legal("supervisor_dnd", "active"),
        ),
        (
            Some(vec![answered(1)]),
            Input::SupervisorRinging,
            not_legal("supervisor_ringing", "active"),
        ),
        (
            Some(vec![answered(1)]),
            Input::AgentAnswered,
            not_legal("agent_answered", "active"),
        ),
        (
            Some(vec![answered(1), hangup(2, Customer)]),
            Input::Hangup { party: Customer },
            Refused::PartyGone { party: "customer" },
        ),
        (
            Some(vec![hangup(1, Agent), answered(2)]),
            set_mode(),
            not_legal("set_mode", "no_call"),
        ),
        (
            Some(vec![hangup(1, Agent), answered(2)]),
            Input::CallHeld,
            not_legal("call_held", "no_call"),
        ),
        (
            Some(vec![hangup(1, Agent), answered(2)]),
            Input::Hangup { party: Customer },
            not_legal("hangup", "no_call"),
        ),
        (
            Some(vec![hangup(1, Agent), answered(2)]),
            next_call(),
            Refused::NotAgentScope,
        ),
        (
            Some(vec![answered(1), stop(2)]),
            Input::Stop,
            ended("stopped"),
        ),
        (
            Some(vec![answered(1), stop(2)]),
            set_mode(),
            ended("stopped"),
        ),
        (
            Some(vec![answered(1), stop(2)]),
            Input::Start(start(inbound())),
            ended("stopped"),
        ),
        (
            Some(vec![Tick(30_000)]),
            Input::SupervisorAnswered {
                calling_number: NUMBER.into(),
            },
            ended("failed"),
        ),
        (
            Some(vec![answered(1), hangup(2, Supervisor)]),
            Input::Hangup { party: Supervisor },
            ended("aborted"),
        ),
    ];
    for (setup, input, refusal) in table {
        let name = input.name();
        let mut session = match setup {
            None => new_session(),
            Some(steps) => run(start(inbound()), steps).0,
        };
        let before = session.clone();
        assert_eq!(session.handle(20_000, input), Err(refusal), "{name}");
        assert_eq!(session, before, "{name}: the session changed");
    }
}

#[test]
fn web_calls_are_refused() {
    let mut session = new_session();
    let web = start(CallFacts {
        kind: CallKind::Web,
        ..inbound()
    });
    assert_eq!(session.handle(0, Input::Start(web)), Err(Refused::WebCall));
    assert_eq!(session.state(), State::New);
    assert_eq!(session.next_deadline(), None);
    // Refusal changed nothing: a business call can still start the session.
    assert_eq!(
        session.handle(0, Input::Start(start(inbound()))),
        Ok(Vec::new())
    );
}

#[test]
fn persistent_supervision_without_a_grant_is_refused() {
    let mut session = new_session();
    let ungranted = Start {
        scope: SessionScope::Agent { grant_id: None },
        ..start(inbound())
    };
    assert_eq!(
        session.handle(0, Input::Start(ungranted)),
        Err(Refused::PersistentWithoutGrant)
    );
    assert_eq!(session, new_session());
}

// --- Persistent supervision ---------------------------------------------------------------

fn next_call(n: u64, facts: impl FnOnce(CallFacts) -> CallFacts) -> Input {
    Input::AgentNextCall {
        call: facts(CallFacts::business(call_id(n), Direction::Inbound)),
        supervisor_may_listen: true,
    }
}

#[test]
fn a_granted_session_follows_the_agent_to_the_next_call() {
    let (mut session, first) = run(persistent(inbound()), vec![answered(5_000)]);
    assert_eq!(connected(&first), [call_id(1)]);

    // The first call ends: reported, media disconnected, no end of the session.
    let outputs = session
        .handle(9_000, Input::Hangup { party: Agent })
        .expect("hangup");
    assert!(
        matches!(&outputs[0], Output::Audit(r) if r.action == AuditAction::SupervisionAbort && r.call == call_id(1))
    );
    assert_eq!(outputs[1], Output::DisconnectMedia { call: call_id(1) });
    assert_eq!(alerts(&outputs), [K::AbortedAgentHungUp]);
    assert_eq!(outputs.len(), 3, "{outputs:?}");
    assert_eq!(session.state(), State::NoCall { vanished: None });

    // The next call: the same checks, then audit, connect in listen, alert.
    let outputs = session
        .handle(20_000, next_call(2, |c| c))
        .expect("next call");
    assert!(
        matches!(&outputs[0], Output::Audit(r) if r.action == AuditAction::SupervisionStart && r.call == call_id(2))
    );
    assert_eq!(
        outputs[1],
        Output::ConnectMedia {
            call: call_id(2),
            mode: Mode::Listen
        }
    );
    assert_eq!(alerts(&outputs), [K::MonitoringInitiated]);
    assert_eq!(session.state(), active(Mode::Listen));
    assert_eq!(session.call(), Some(call_id(2)));
    assert_eq!(connected(&outputs), [call_id(2)]);

    // Held: reported, then the third call; then stop ends it.
    let outputs = session.handle(21_000, Input::CallHeld).expect("held");
    assert_eq!(alerts(&outputs), [K::AbortedAgentHeldCall]);
    assert_eq!(session.state(), State::NoCall { vanished: None });
    session
        .handle(30_000, next_call(3, |c| c))
        .expect("third call");
    let outputs = session.handle(31_000, Input::Stop).expect("stop");
    assert_eq!(alerts(&outputs), [K::MonitoringStopped]);
    assert_eq!(session.state(), State::Stopped);
}

#[test]
fn a_granted_session_checks_each_next_call() {
    let (session, _) = run(
        persistent(inbound()),
        vec![answered(5_000), hangup(6_000, Agent)],
    );

    // Not monitorable now: reported with its alert and skipped.
    let skips: [(Input, AlertKind, AuditAction); 4] = [
        (
            next_call(2, |c| CallFacts { on_hold: true, ..c }),
            K::MonitoringFailed,
            AuditAction::SupervisionFailure,
        ),
        (
            next_call(2, |c| CallFacts {
                in_consult: true,
                ..c
            }),
            K::FailedAgentNotReady,
            AuditAction::SupervisionFailure,
        ),
        (
            next_call(2, |c| CallFacts {
                secure_payment: true,
                ..c
            }),
            K::FailedAgentNotReady,
            AuditAction::SupervisionFailure,
        ),
        (
            next_call(2, |c| CallFacts {
                conference: true,
                ..c
            }),
            K::FailedNoPermission,
            AuditAction::SupervisionDenial,
        ),
    ];
    for (input, kind, action) in skips {
        let mut session = session.clone();
        let outputs = session.handle(7_000, input).expect("next call");
        assert_eq!(alerts(&outputs), [kind]);
        assert!(
            matches!(&outputs[0], Output::Audit(r) if r.action == action && r.call == call_id(2))
        );
        assert_eq!(outputs.len(), 2, "{outputs:?}");
        assert_eq!(session.state(), State::NoCall { vanished: None });
    }

    // Refused: a web call; an outbound call the agent has not answered.
    for (facts, refusal) in [
        (
            CallFacts {
                kind: CallKind::Web,
                ..inbound()
            },
            Refused::WebCall,
        ),
        (
            CallFacts {
                agent_answered: false,
                ..outbound()
            },
            Refused::AgentNotAnswered,
        ),
    ] {
        let mut session = session.clone();
        let before = session.clone();
        let input = Input::AgentNextCall {
            call: facts,
            supervisor_may_listen: true,
        };
        assert_eq!(session.handle(7_000, input), Err(refusal));
        assert_eq!(session, before);
    }

    // The right over the agent is gone: the session ends.
    let mut revoked = session.clone();
    let input = Input::AgentNextCall {
        call: CallFacts::business(call_id(2), Direction::Inbound),
        supervisor_may_listen: false,
    };
    let outputs = revoked.handle(7_000, input).expect("next call");
    assert_eq!(alerts(&outputs), [K::FailedNoPermission]);
    assert_eq!(revoked.state(), State::Failed(FailReason::NoPermission));

    // The supervisor hangs up between calls.
    let mut hung_up = session.clone();
    let outputs = hung_up
        .handle(7_000, Input::Hangup { party: Supervisor })
        .expect("hangup");
    assert_eq!(alerts(&outputs), [K::AbortedSupervisorHungUp]);
    assert_eq!(
        hung_up.state(),
        State::Aborted(AbortReason::SupervisorHungUp)
    );

    // A next call while one is attached is refused.
    let (mut attached, _) = run(persistent(inbound()), vec![answered(5_000)]);
    assert_eq!(
        attached.handle(7_000, next_call(2, |c| c)),
        Err(Refused::NotLegal {
            input: "agent_next_call",
            state: "active"
        })
    );
}

#[test]
fn a_granted_session_whose_first_call_vanished_takes_the_next() {
    check(vec![
        Case {
            name: "vanished, next call, stop",
            start: persistent(outbound()),
            steps: vec![
                hangup(1_000, Customer),
                answered(5_000),
                In(9_000, next_call(2, |c| c)),
                stop(12_000),
            ],
            alerts: &[
                K::MonitoringInitiated,
                K::MonitoringInitiated,
                K::MonitoringStopped,
            ],
            end: State::Stopped,
        },
        Case {
            name: "vanished, stop: no call to monitor",
            start: persistent(outbound()),
            steps: vec![hangup(1_000, Customer), answered(5_000), stop(12_000)],
            alerts: &[K::MonitoringInitiated, K::FailedNoCallToMonitor],
            end: State::Failed(FailReason::NoCallToMonitor),
        },
        Case {
            name: "while ringing, a persistent session fails like a call-scoped one",
            start: persistent(inbound()),
            steps: vec![In(1_000, Input::CallHeld)],
            alerts: &[K::MonitoringFailed],
            end: State::Failed(FailReason::MonitoringFailed),
        },
    ]);
}

// --- Codes and numbers ------------------------------------------------------------------------

#[test]
fn reason_codes_name_their_alerts_and_refusals_have_codes() {
    use FailReason as F;
    for reason in [
        F::AgentNotReady,
        F::NoCallToMonitor,
        F::SupervisorDidntAnswer,
        F::SupervisorNumberInvalid,
        F::NoPermission,
    ] {
        assert_eq!(reason.alert().code(), format!("failed_{}", reason.code()));
    }
    assert_eq!(
        F::MonitoringFailed.alert().code(),
        F::MonitoringFailed.code()
    );
    use AbortReason as A;
    for reason in [
        A::AgentHeldCall,
        A::AgentHungUp,
        A::CallerHungUp,
        A::SupervisorHungUp,
    ] {
        assert_eq!(reason.alert().code(), format!("aborted_{}", reason.code()));
    }
    assert_eq!(
        Refused::Ended { state: "stopped" }.code(),
        "supervision_ended"
    );
    assert_eq!(Refused::WebCall.code(), "web_call");
}

#[test]
fn alert_codes_are_stable_and_unique() {
    let codes: Vec<&str> = AlertKind::ALL.iter().map(|k| k.code()).collect();
    let mut unique = codes.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), codes.len());
    for kind in AlertKind::ALL {
        assert_eq!(kind.code().parse(), Ok(kind));
        assert!(
            kind.code()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_')
        );
        assert!(!kind.text().is_empty());
    }
    assert_eq!("validation".parse::<AlertKind>(), Err(UnknownAlertCode));
    let alert = Alert {
        kind: K::FailedSupervisorDidntAnswer,
        text: K::FailedSupervisorDidntAnswer.text(),
        at_ms: 30_000,
        session: session_id(),
        call: call_id(1),
        reason: "not answered".into(),
    };
    let json = serde_json::to_value(&alert).expect("serializes");
    assert_eq!(json["kind"], "failed_supervisor_didnt_answer");
    assert_eq!(json["session"], "s_00000000000000a1");
    let (_, outputs) = run(start(inbound()), vec![answered(5_000)]);
    let Some(Output::Audit(record)) = outputs.first() else {
        panic!("no audit first: {outputs:?}");
    };
    let json = serde_json::to_value(record).expect("serializes");
    assert_eq!(json["action"], "supervision.start");
    assert_eq!(json["mode"], "listen");
    assert_eq!(json["alert"], serde_json::Value::Null);
}

#[test]
fn calling_numbers_compare_by_digits_ignoring_a_leading_plus() {
    let registered = validate_supervisor_number("+441632960000").expect("valid");
    assert!(registered.matches_calling_number("+441632960000"));
    assert!(registered.matches_calling_number("441632960000"));
    for other in [
        "0441632960000",
        "+44 1632960000",
        "++441632960000",
        "",
        "+",
        "sip:+441632960000@pbx",
    ] {
        assert!(!registered.matches_calling_number(other), "{other:?}");
    }
    let registered = validate_supervisor_number("441632960000").expect("valid");
    assert!(registered.matches_calling_number("+441632960000"));
}

// --- Fuzz: any input sequence, no panic, invariants hold ----------------------------------

/// xorshift64 (Marsaglia 2003): deterministic, dependency-free.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

fn random_facts(rng: &mut XorShift) -> CallFacts {
    CallFacts {
        call: call_id(1 + rng.below(4)),
        kind: if rng.chance(12) {
            CallKind::Web
        } else {
            CallKind::Business
        },
        direction: if rng.chance(2) {
            Direction::Inbound
        } else {
            Direction::Outbound
        },
        on_hold: rng.chance(8),
        in_consult: rng.chance(8),
        secure_payment: rng.chance(10),
        conference: rng.chance(10),
        agent_answered: !rng.chance(6),
    }
}

fn random_input(rng: &mut XorShift, state: State) -> Input {
    let pick = if state == State::New && !rng.chance(5) {
        0
    } else {
        rng.below(16)
    };
    match pick {
        0 => Input::Start(Start {
            scope: match rng.below(4) {
                0 => SessionScope::Agent { grant_id: None },
                1 | 2 => SessionScope::Agent {
                    grant_id: Some(GrantId(rng.next())),
                },
                _ => SessionScope::Call,
            },
            supervisor_may_listen: !rng.chance(10),
            registered_number: ["+441632960000", "441632960000", "", "12a"][rng.below(4) as usize]
                .into(),
            answer_timeout: rng
                .chance(3)
                .then(|| AnswerTimeout::from_ms(1_000 + rng.below(60_000)).unwrap_or_default()),
            ..start(random_facts(rng))
        }),
        1 => Input::SupervisorRinging,
        2 | 3 => Input::SupervisorAnswered {
            calling_number: ["+441632960000", "441632960000", "555", "x"][rng.below(4) as usize]
                .into(),
        },
        4 => {
            if rng.chance(2) {
                Input::SupervisorRejected
            } else {
                Input::SupervisorDnd
            }
        }
        5 => Input::SetMode(Mode::ALL[rng.below(5) as usize]),
        6 => Input::Stop,
        7 => Input::CallHeld,
        8 => Input::ConsultStarted,
        9 => Input::SecurePaymentStarted,
        10 => Input::ConferenceStarted,
        11 => Input::CallReleasedByAgent,
        12 | 13 => Input::Hangup {
            party: [Customer, Agent, Supervisor][rng.below(3) as usize],
        },
        14 => Input::AgentAnswered,
        _ => Input::AgentNextCall {
            call: random_facts(rng),
            supervisor_may_listen: !rng.chance(8),
        },
    }
}

#[test]
fn fuzz_random_input_sequences() {
    const SESSIONS: u64 = 3_000;
    const STEPS_MAX: u64 = 40;
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut steps = 0u64;
    let mut seen: Vec<AlertKind> = Vec::new();
    let mut seen_states: Vec<&'static str> = Vec::new();
    for _ in 0..SESSIONS {
        let mut session = new_session();
        let mut now_ms = 0u64;
        // The supervisor leg's media: connected to this call, or not.
        let mut connected: Option<CallId> = None;
        let mut ended = false;
        for _ in 0..1 + rng.below(STEPS_MAX) {
            steps += 1;
            // Sometimes time goes backwards: the session must take it as its latest time.
            now_ms = if rng.chance(20) {
                now_ms.saturating_sub(rng.below(5_000))
            } else {
                now_ms + rng.below(12_000)
            };
            let before = session.clone();
            let result = if rng.chance(6) {
                Ok(session.on_timeout(now_ms))
            } else {
                let input = random_input(&mut rng, session.state());
                session.handle(now_ms, input)
            };
            if before.state().is_terminal() {
                match &result {
                    Err(Refused::Ended { .. }) => {}
                    Ok(outputs) if outputs.is_empty() => {}
                    other => panic!("a terminal session answered {other:?}"),
                }
                assert_eq!(session, before, "a terminal session changed");
                continue;
            }
            let outputs = match result {
                Err(_) => {
                    assert_eq!(session, before, "a refused input changed the session");
                    continue;
                }
                Ok(outputs) => outputs,
            };
            assert_order(&outputs);
            let (old, new) = (before.state(), session.state());
            if !seen_states.contains(&new.code()) {
                seen_states.push(new.code());
            }
            let phase_changed = old.code() != new.code();
            if phase_changed && old != State::New {
                assert!(
                    !alerts(&outputs).is_empty(),
                    "{old:?} -> {new:?} without an alert: {outputs:?}"
                );
            }
            if old == State::New && new != State::New {
                assert!(matches!(new, State::Requested { .. }) || new.is_terminal());
            }
            for output in &outputs {
                assert!(!ended, "output after Ended: {outputs:?}");
                match output {
                    Output::ConnectMedia { call, mode } => {
                        assert_eq!(connected, None, "connected twice");
                        assert_eq!(*mode, Mode::Listen);
                        connected = Some(*call);
                    }
                    Output::SetMedia { call, .. } => assert_eq!(connected, Some(*call)),
                    Output::DisconnectMedia { call } => {
                        assert_eq!(connected, Some(*call));
                        connected = None;
                    }
                    Output::Ended { state } => {
                        assert_eq!(*state, new);
                        assert!(state.is_terminal());
                        assert_eq!(connected, None, "ended with media connected");
                        ended = true;
                    }
                    Output::Alert(alert) => {
                        if !seen.contains(&alert.kind) {
                            seen.push(alert.kind);
                        }
                    }
                    Output::Audit(_) | Output::AnnounceNoCall => {}
                }
            }
            assert_eq!(new.is_terminal(), ended);
            assert_eq!(connected.is_some(), matches!(new, State::Active { .. }));
            assert_eq!(
                session.next_deadline().is_some(),
                matches!(new, State::Requested { .. })
            );
        }
    }
    assert!(steps > 50_000, "{steps} steps");
    // Aborts come from outside the call: their own fuzz test, below.
    for kind in AlertKind::ALL.into_iter().filter(|&k| k != K::Aborted) {
        assert!(seen.contains(&kind), "the fuzz loop never raised {kind}");
    }
    for state in [
        "requested",
        "active",
        "no_call",
        "stopped",
        "failed",
        "aborted",
    ] {
        assert!(
            seen_states.contains(&state),
            "the fuzz loop never reached {state}"
        );
    }
}

// --- Abort: the ends from outside the call's story (docs/design.md §2, §7) --------------------

#[test]
fn an_abort_ends_an_active_session_with_the_causes_alert_audited_as_the_system() {
    let (mut session, _) = run(start(inbound()), vec![answered(5_000)]);
    session
        .handle(6_000, Input::SetMode(Mode::Whisper))
        .expect("whisper");
    let outputs = session
        .handle(
            7_000,
            Input::Abort {
                reason: AbortCause::CallDeleted,
            },
        )
        .expect("abort");
    assert_order(&outputs);
    let ended = State::Aborted(AbortReason::Outside(AbortCause::CallDeleted));
    assert_eq!(session.state(), ended);
    assert_eq!(session.state().code(), "aborted");
    assert_eq!(
        AbortReason::Outside(AbortCause::CallDeleted).code(),
        "call_deleted"
    );
    let [
        Output::Audit(audit),
        Output::DisconnectMedia { call },
        Output::Alert(alert),
        Output::Ended { state },
    ] = &outputs[..]
    else {
        panic!("audit, disconnect, alert, ended: {outputs:?}");
    };
    assert_eq!(
        (audit.action, audit.actor, audit.mode, audit.alert),
        (
            AuditAction::SupervisionAbort,
            AuditActor::System {
                was: "active",
                reason: AbortCause::CallDeleted
            },
            Some(Mode::Whisper),
            Some(K::Aborted)
        )
    );
    assert_eq!(*call, call_id(1));
    assert_eq!(
        (alert.kind.code(), alert.text, alert.reason.as_str()),
        ("aborted", "aborted – call deleted", "the call was deleted")
    );
    assert_eq!(*state, ended);
    // Nothing more: the session has ended.
    assert_eq!(
        session.handle(8_000, Input::Stop),
        Err(Refused::Ended { state: "aborted" })
    );
}

#[test]
fn an_abort_is_legal_in_every_open_state_and_nowhere_else() {
    // Requested (ringing, no media): no disconnect, no mode in the audit.
    let (mut session, _) = run(start(inbound()), vec![ringing(1_000)]);
    let outputs = session
        .handle(
            2_000,
            Input::Abort {
                reason: AbortCause::Restart,
            },
        )
        .expect("abort while requested");
    assert_order(&outputs);
    assert_eq!(alerts(&outputs), [K::Aborted]);
    assert!(
        !outputs
            .iter()
            .any(|o| matches!(o, Output::DisconnectMedia { .. })),
        "{outputs:?}"
    );
    assert!(matches!(&outputs[0], Output::Audit(a)
        if a.mode.is_none() && a.actor == AuditActor::System { was: "requested", reason: AbortCause::Restart }));
    // No call: a persistent session between calls.
    let (mut session, _) = run(
        persistent(inbound()),
        vec![answered(1_000), In(2_000, Input::CallHeld)],
    );
    assert_eq!(session.state(), State::NoCall { vanished: None });
    let outputs = session
        .handle(
            3_000,
            Input::Abort {
                reason: AbortCause::CallDeleted,
            },
        )
        .expect("abort while waiting for the next call");
    assert_eq!(alerts(&outputs), [K::Aborted]);
    // Not started: refused; ended: refused.
    let mut session = new_session();
    let abort = Input::Abort {
        reason: AbortCause::Restart,
    };
    assert_eq!(session.handle(0, abort.clone()), Err(Refused::NotStarted));
    let (mut session, _) = run(start(inbound()), vec![stop(1_000)]);
    assert_eq!(
        session.handle(2_000, abort),
        Err(Refused::Ended { state: "stopped" })
    );
}

#[test]
fn a_restored_session_is_closed_by_the_restart_abort() {
    for (state, was, media) in [
        (active(Mode::Barge), "active", true),
        (
            State::Requested {
                supervisor_ringing: true,
                call: CallLink::Present,
            },
            "requested",
            false,
        ),
        (State::NoCall { vanished: None }, "no_call", false),
    ] {
        let mut session = Session::restored(
            session_id(),
            Restored {
                supervisor: Some(user("sup-1")),
                agent: Some(user("agent-7")),
                scope: SessionScope::Call,
                call: inbound(),
                state,
            },
        );
        assert_eq!(session.state(), state);
        let outputs = session
            .handle(
                u64::MAX - 1,
                Input::Abort {
                    reason: AbortCause::Restart,
                },
            )
            .expect("abort");
        assert_order(&outputs);
        let Some(Output::Alert(alert)) = outputs.iter().find(|o| matches!(o, Output::Alert(_)))
        else {
            panic!("no alert: {outputs:?}");
        };
        assert_eq!((alert.kind, alert.text), (K::Aborted, "aborted – restart"));
        assert!(alert.reason.contains(was), "{}", alert.reason);
        assert!(matches!(&outputs[0], Output::Audit(a)
            if a.actor == AuditActor::System { was, reason: AbortCause::Restart } && a.agent == Some(user("agent-7"))));
        assert_eq!(
            outputs
                .iter()
                .any(|o| matches!(o, Output::DisconnectMedia { .. })),
            media
        );
        assert_eq!(
            session.state(),
            State::Aborted(AbortReason::Outside(AbortCause::Restart))
        );
    }
}

#[test]
fn fuzz_an_abort_at_any_point_ends_an_open_session_cleanly() {
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    let mut aborted = 0u32;
    for n in 0..10_000u32 {
        let mut session = new_session();
        let mut now_ms = 0u64;
        for _ in 0..rng.below(20) {
            now_ms += rng.below(5_000);
            let input = random_input(&mut rng, session.state());
            // Refusals are part of the walk: they change nothing.
            let _ = session.handle(now_ms, input);
        }
        let cause = if n % 2 == 0 {
            AbortCause::CallDeleted
        } else {
            AbortCause::Restart
        };
        let before = session.clone();
        let result = session.handle(now_ms, Input::Abort { reason: cause });
        match before.state() {
            State::New => assert_eq!(result, Err(Refused::NotStarted)),
            state if state.is_terminal() => {
                assert!(matches!(result, Err(Refused::Ended { .. })), "{result:?}");
                assert_eq!(session, before);
            }
            state => {
                if let Err(Refused::TimeoutDue { .. }) = result {
                    // The driver fires the timeout first (the contract); nothing changed.
                    assert_eq!(session, before);
                    continue;
                }
                let outputs = result.expect("an open session takes the abort");
                assert_order(&outputs);
                assert_eq!(alerts(&outputs), [K::Aborted], "{outputs:?}");
                assert_eq!(
                    outputs
                        .iter()
                        .any(|o| matches!(o, Output::DisconnectMedia { .. })),
                    matches!(state, State::Active { .. }),
                    "{outputs:?}"
                );
                let ended = State::Aborted(AbortReason::Outside(cause));
                assert_eq!(outputs.last(), Some(&Output::Ended { state: ended }));
                assert!(matches!(&outputs[0], Output::Audit(a)
                    if a.actor == AuditActor::System { was: state.code(), reason: cause }));
                assert_eq!(session.state(), ended);
                aborted += 1;
            }
        }
    }
    assert!(aborted > 300, "{aborted} open sessions aborted");
}

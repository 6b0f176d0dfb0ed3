//! Agent state rules (docs/design.md §3.5), exhaustively (docs/design.md §9.12): every (from, to)
//! pair over the five states, as the agent's own change and as a supervisor's forced change,
//! against a literal table; the dashboard on a scripted day with a virtual clock.

use controlplane::domain::agents::{
    Agent, AgentError, AgentState, ChatError, ChatMessage, Effect, PAUSE_REASONS_TRACKED_MAX,
    PauseReason, Platform, StateKind, UserId, transition_allowed,
};
use controlplane::http::views::center::AgentView;

const MIN_MS: u64 = 60_000;
/// 2023-11-14 08:00:00 UTC, any fixed instant would do.
const T0_MS: u64 = 1_699_948_800_000;

fn user(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

fn reason(s: &str) -> PauseReason {
    PauseReason::parse(s).unwrap()
}

/// A representative state of each kind.
fn state_of(kind: StateKind) -> AgentState {
    match kind {
        StateKind::Available => AgentState::Available,
        StateKind::Busy => AgentState::Busy {
            case: Some("T-1".into()),
        },
        StateKind::Standby => AgentState::Standby,
        StateKind::Pause => AgentState::Pause {
            reason: reason("lunch"),
        },
        StateKind::Disconnected => AgentState::Disconnected,
    }
}

/// An agent brought to `kind` through allowed changes only, at T0 + 10 min.
fn agent_in(kind: StateKind) -> Agent {
    let mut a = Agent::new(user("agent-1"), Platform::Web, T0_MS);
    let path: &[StateKind] = match kind {
        StateKind::Disconnected => &[],
        StateKind::Standby => &[StateKind::Standby],
        StateKind::Available => &[StateKind::Available],
        StateKind::Busy => &[StateKind::Available, StateKind::Busy],
        StateKind::Pause => &[StateKind::Available, StateKind::Pause],
    };
    for (i, k) in path.iter().enumerate() {
        a.change_state(state_of(*k), T0_MS + (i as u64 + 1) * MIN_MS)
            .unwrap();
    }
    assert_eq!(a.state().kind(), kind);
    a
}

/// The reference table, written out independently of `transition_allowed`: rows `from`,
/// columns `to`, in the order available, busy, standby, pause, disconnected.
/// `Y` allowed, `-` refused as `transition_refused`, `=` refused as `state_unchanged`.
const TABLE: [(StateKind, &str); 5] = [
    (StateKind::Available, "=YYYY"),
    (StateKind::Busy, "Y=--Y"),
    (StateKind::Standby, "Y-=-Y"),
    (StateKind::Pause, "--Y=Y"),
    (StateKind::Disconnected, "Y-Y-="),
];

#[test]
fn every_transition_own_and_forced() {
    let mut checked = 0;
    for (from, row) in TABLE {
        for (to, verdict) in StateKind::ALL.into_iter().zip(row.chars()) {
            for forced in [false, true] {
                let mut agent = agent_in(from);
                let before = agent.clone();
                let now_ms = T0_MS + 60 * MIN_MS;
                let result = if forced {
                    agent.force_state(state_of(to), user("sup-1"), now_ms)
                } else {
                    agent.change_state(state_of(to), now_ms)
                };
                let case = format!("{from} -> {to}, forced: {forced}");
                match verdict {
                    'Y' => {
                        let change = result.unwrap_or_else(|e| panic!("{case}: refused: {e}"));
                        assert_eq!(change.from, state_of(from), "{case}");
                        assert_eq!(change.to, state_of(to), "{case}");
                        assert_eq!(change.at_ms, now_ms, "{case}");
                        assert_eq!(change.forced_by, forced.then(|| user("sup-1")), "{case}");
                        assert_eq!(agent.state(), &state_of(to), "{case}");
                        assert_eq!(agent.since_ms(), now_ms, "{case}");
                        assert!(transition_allowed(from, to), "{case}");
                    }
                    '-' => {
                        let e = result.expect_err(&case);
                        assert_eq!(e, AgentError::TransitionRefused { from, to }, "{case}");
                        assert_eq!(e.code(), "transition_refused");
                        assert!(e.to_string().contains(from.as_str()), "{case}: {e}");
                        assert!(e.to_string().contains(to.as_str()), "{case}: {e}");
                        assert_eq!(agent, before, "{case}: a refusal changed the agent");
                        assert!(!transition_allowed(from, to), "{case}");
                    }
                    '=' => {
                        let e = result.expect_err(&case);
                        assert_eq!(e, AgentError::Unchanged { state: from }, "{case}");
                        assert_eq!(e.code(), "state_unchanged");
                        assert_eq!(agent, before, "{case}: a refusal changed the agent");
                    }
                    _ => unreachable!(),
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 50);
}

#[test]
fn effects_of_each_allowed_transition() {
    use StateKind::*;
    let expected: [(StateKind, StateKind, Vec<Effect>); 11] = [
        (Available, Busy, vec![]),
        (Available, Standby, vec![]),
        (Available, Pause, vec![]),
        (Available, Disconnected, vec![Effect::LoggedOut]),
        (
            Busy,
            Available,
            vec![Effect::RemovedFromCase { case: "T-1".into() }],
        ),
        (
            Busy,
            Disconnected,
            vec![
                Effect::RemovedFromCase { case: "T-1".into() },
                Effect::LoggedOut,
            ],
        ),
        (Standby, Available, vec![]),
        (Standby, Disconnected, vec![Effect::LoggedOut]),
        (Pause, Standby, vec![]),
        (Pause, Disconnected, vec![Effect::LoggedOut]),
        (Disconnected, Available, vec![Effect::LoggedIn]),
    ];
    for (from, to, effects) in expected {
        let mut agent = agent_in(from);
        let change = agent
            .change_state(state_of(to), T0_MS + 60 * MIN_MS)
            .unwrap();
        assert_eq!(change.effects, effects, "{from} -> {to}");
    }
    let mut agent = agent_in(Disconnected);
    let change = agent.change_state(AgentState::Standby, T0_MS).unwrap();
    assert_eq!(change.effects, vec![Effect::LoggedIn]);
}

#[test]
fn forced_busy_to_available_removes_from_case() {
    let mut agent = agent_in(StateKind::Busy);
    let change = agent
        .force_state(AgentState::Available, user("sup-1"), T0_MS + 30 * MIN_MS)
        .unwrap();
    assert_eq!(
        change.effects,
        vec![Effect::RemovedFromCase { case: "T-1".into() }]
    );
    assert_eq!(change.forced_by, Some(user("sup-1")));
    assert_eq!(agent.state(), &AgentState::Available);

    // A busy state without a case (a plain call) has no case to be removed from.
    let mut agent = agent_in(StateKind::Available);
    agent
        .change_state(AgentState::Busy { case: None }, T0_MS + 40 * MIN_MS)
        .unwrap();
    let change = agent
        .change_state(AgentState::Available, T0_MS + 50 * MIN_MS)
        .unwrap();
    assert!(change.effects.is_empty());
}

#[test]
fn pause_reason_is_not_changed_in_place() {
    let mut agent = agent_in(StateKind::Pause);
    let before = agent.clone();
    let e = agent
        .change_state(
            AgentState::Pause {
                reason: reason("training"),
            },
            T0_MS + 60 * MIN_MS,
        )
        .unwrap_err();
    assert_eq!(e.code(), "state_unchanged");
    assert_eq!(agent, before);
}

#[test]
fn auto_assignment_toggle() {
    let mut agent = agent_in(StateKind::Available);
    assert!(agent.auto_assignment());
    assert!(agent.accepts_new_cases());

    assert!(agent.set_auto_assignment(false));
    assert!(
        !agent.set_auto_assignment(false),
        "no change the second time"
    );
    assert!(!agent.accepts_new_cases());
    // Disabled: the agent keeps working (a manual assignment is still a valid transition) …
    agent
        .change_state(
            AgentState::Busy {
                case: Some("T-9".into()),
            },
            T0_MS + 20 * MIN_MS,
        )
        .unwrap();
    // … and keeps the case when the flag flips back and forth.
    assert!(agent.set_auto_assignment(true));
    assert_eq!(
        agent.state(),
        &AgentState::Busy {
            case: Some("T-9".into())
        }
    );
    assert!(!agent.accepts_new_cases(), "busy: no new case");
    agent
        .change_state(AgentState::Available, T0_MS + 30 * MIN_MS)
        .unwrap();
    assert!(agent.accepts_new_cases());

    for kind in [
        StateKind::Standby,
        StateKind::Pause,
        StateKind::Disconnected,
    ] {
        assert!(!agent_in(kind).accepts_new_cases(), "{kind}");
    }
    assert!(agent.dashboard(T0_MS + 30 * MIN_MS).auto_assignment);
}

/// Minutes since T0.
fn at(min: u64) -> u64 {
    T0_MS + min * MIN_MS
}

#[test]
fn dashboard_on_a_scripted_day() {
    let mut a = Agent::new(user("agent-7"), Platform::App, at(0)); // 08:00 disconnected
    a.set_campaign(Some("collections".into()));
    let script: [(u64, AgentState); 15] = [
        (10, AgentState::Standby), // 08:10 login
        (15, AgentState::Available),
        (
            30,
            AgentState::Busy {
                case: Some("T-1".into()),
            },
        ),
        (60, AgentState::Available),
        (
            70,
            AgentState::Pause {
                reason: reason("break"),
            },
        ),
        (85, AgentState::Standby),
        (90, AgentState::Available),
        (
            100,
            AgentState::Busy {
                case: Some("T-2".into()),
            },
        ),
        (120, AgentState::Available),
        (
            140,
            AgentState::Pause {
                reason: reason("lunch"),
            },
        ),
        (180, AgentState::Standby),
        (185, AgentState::Available),
        (
            195,
            AgentState::Pause {
                reason: reason("break"),
            },
        ),
        (200, AgentState::Disconnected), // 11:20 logout
        (210, AgentState::Standby),      // 11:30 login again
    ];
    for (min, state) in script {
        a.change_state(state, at(min)).unwrap();
    }
    let d = a.dashboard(at(225)); // 11:45

    assert_eq!(d.state, AgentState::Standby);
    assert_eq!(d.state_since_ms, at(210));
    assert_eq!(d.time_in_state_ms, 15 * MIN_MS);
    assert_eq!(d.campaign.as_deref(), Some("collections"));
    assert_eq!(d.platform, Platform::App);
    assert_eq!(d.last_login_ms, Some(at(210)));
    assert_eq!(d.last_logout_ms, Some(at(200)));
    assert_eq!(d.period_start_ms, at(0));

    // (state, stints, total minutes, average ms)
    let expected = [
        (StateKind::Available, 5, 65, 13 * MIN_MS), // 15+10+10+20+10
        (StateKind::Busy, 2, 50, 25 * MIN_MS),      // 30+20
        (StateKind::Standby, 4, 30, 450_000),       // 5+5+5+15 (current)
        (StateKind::Pause, 3, 60, 20 * MIN_MS),     // 15+40+5
        (StateKind::Disconnected, 2, 20, 10 * MIN_MS), // 10+10
    ];
    assert_eq!(d.states.len(), 5);
    for (fig, (state, entries, total_min, avg_ms)) in d.states.iter().zip(expected) {
        assert_eq!(fig.state, state);
        assert_eq!(fig.entries, entries, "{state}");
        assert_eq!(fig.total_ms, total_min * MIN_MS, "{state}");
        assert_eq!(fig.average_ms, Some(avg_ms), "{state}");
    }
    assert_eq!(d.connected_ms, 205 * MIN_MS); // 225 min minus 20 disconnected
    assert_eq!(d.pause_ms, 60 * MIN_MS);
    let by_reason: Vec<(&str, u64, u64)> = d
        .pause_by_reason
        .iter()
        .map(|p| (p.reason.as_str(), p.pauses, p.total_ms))
        .collect();
    assert_eq!(
        by_reason,
        [("break", 2, 20 * MIN_MS), ("lunch", 1, 40 * MIN_MS)]
    );
    assert_eq!(d.pause_other_reasons_ms, 0);

    // The dashboard is a pure read: asking twice, or later, changes nothing stored.
    let before = a.clone();
    assert_eq!(a.dashboard(at(225)), d);
    assert_eq!(a, before);

    // The JSON the API will return.
    let json = serde_json::to_value(AgentView::new(d, Vec::new())).unwrap();
    assert_eq!(json["state"], "standby");
    assert_eq!(json["states"][3]["state"], "pause");
    assert_eq!(json["pause_by_reason"][1]["reason"], "lunch");
    assert_eq!(json["platform"], "app");
}

#[test]
fn current_pause_counts_toward_its_reason() {
    let mut a = agent_in(StateKind::Available); // available since T0+1
    a.change_state(
        AgentState::Pause {
            reason: reason("coaching"),
        },
        at(10),
    )
    .unwrap();
    let d = a.dashboard(at(35));
    assert_eq!(d.pause_ms, 25 * MIN_MS);
    assert_eq!(d.pause_by_reason.len(), 1);
    assert_eq!(d.pause_by_reason[0].reason.as_str(), "coaching");
    assert_eq!(d.pause_by_reason[0].pauses, 1);
    assert_eq!(d.pause_by_reason[0].total_ms, 25 * MIN_MS);
    assert_eq!(d.connected_ms, 34 * MIN_MS);
    assert_eq!(d.states[1].average_ms, None, "never busy");
}

#[test]
fn a_new_period_restarts_the_figures() {
    let mut a = agent_in(StateKind::Pause); // login T0+1, pause "lunch" since T0+2
    a.start_new_period(at(62));
    let d = a.dashboard(at(72));
    assert_eq!(d.period_start_ms, at(62));
    assert_eq!(d.state_since_ms, at(2), "the state itself did not change");
    assert_eq!(d.time_in_state_ms, 70 * MIN_MS);
    assert_eq!(d.pause_ms, 10 * MIN_MS, "only the part inside the period");
    assert_eq!(d.pause_by_reason[0].pauses, 1);
    assert_eq!(d.connected_ms, 10 * MIN_MS);
    assert_eq!(d.states[0].entries, 0);
    assert_eq!(
        d.last_login_ms,
        Some(at(1)),
        "the session began before the period"
    );
}

#[test]
fn a_clock_step_backwards_neither_panics_nor_goes_negative() {
    let mut a = agent_in(StateKind::Available); // since T0+1
    let change = a.change_state(AgentState::Standby, at(0)).unwrap();
    assert_eq!(change.at_ms, at(1), "clamped to the current state's start");
    let d = a.dashboard(0);
    assert_eq!(d.time_in_state_ms, 0);
    let d = a.dashboard(u64::MAX);
    assert_eq!(d.time_in_state_ms, u64::MAX - at(1));
}

#[test]
fn memory_is_bounded_for_a_busy_agent() {
    let mut a = agent_in(StateKind::Available);
    let mut now_ms = at(10);
    for i in 0..10_000u64 {
        let r = reason(&format!("reason {}", i % 40));
        a.change_state(AgentState::Pause { reason: r }, now_ms)
            .unwrap();
        now_ms += 1_000;
        a.change_state(AgentState::Standby, now_ms).unwrap();
        a.change_state(AgentState::Available, now_ms).unwrap();
        now_ms += 1_000;
    }
    let d = a.dashboard(now_ms);
    assert_eq!(d.pause_by_reason.len(), PAUSE_REASONS_TRACKED_MAX);
    let tracked_ms: u64 = d.pause_by_reason.iter().map(|p| p.total_ms).sum();
    assert_eq!(tracked_ms + d.pause_other_reasons_ms, d.pause_ms);
    assert_eq!(d.pause_ms, 10_000 * 1_000);
    assert_eq!(d.states[3].entries, 10_000);
    // Serialized size is O(states + tracked reasons), whatever the number of transitions.
    assert!(serde_json::to_string(&a).unwrap().len() < 4_096);
}

#[test]
fn agent_round_trips_through_serde() {
    let mut a = agent_in(StateKind::Busy);
    a.set_campaign(Some("sales".into()));
    let json = serde_json::to_string(&a).unwrap();
    let back: Agent = serde_json::from_str(&json).unwrap();
    assert_eq!(back, a);
    // The newtypes re-validate on the way in.
    let bad = json.replace("agent-1", "agent 1");
    assert!(serde_json::from_str::<Agent>(&bad).is_err());
}

#[test]
fn values_are_validated() {
    for bad in ["", "a b", "é", &"x".repeat(65), "a/b"] {
        let e = UserId::parse(bad).unwrap_err();
        assert_eq!(e.code(), "invalid_value", "{bad:?}");
    }
    assert!(UserId::parse("sup.1@site-a:7_x").is_ok());
    for bad in ["", "   ", "a\nb", &"x".repeat(65)] {
        assert_eq!(
            PauseReason::parse(bad).unwrap_err().code(),
            "invalid_value",
            "{bad:?}"
        );
    }
    assert_eq!(reason("  lunch ").as_str(), "lunch");
    assert!(
        PauseReason::parse(&"é".repeat(64)).is_ok(),
        "characters, not bytes"
    );
}

#[test]
fn chat_messages() {
    let agent = agent_in(StateKind::Busy);
    let m = ChatMessage::new(
        user("sup-1"),
        &agent,
        "Please wrap up T-1.\nThanks".into(),
        at(5),
    )
    .unwrap();
    assert_eq!(m.from(), &user("sup-1"));
    assert_eq!(m.to(), &user("agent-1"));
    assert_eq!(m.text(), "Please wrap up T-1.\nThanks");
    assert_eq!(m.at_ms(), at(5));

    let cases: [(String, UserId, &str); 5] = [
        (String::new(), user("sup-1"), "chat_text_empty"),
        (" \n\t".into(), user("sup-1"), "chat_text_empty"),
        ("x".repeat(2001), user("sup-1"), "chat_text_too_long"),
        ("hello".into(), user("agent-1"), "chat_to_self"),
        ("é".repeat(2000), user("sup-1"), "ok"),
    ];
    for (text, from, code) in cases {
        let r = ChatMessage::new(from, &agent, text, at(5));
        match r {
            Ok(_) => assert_eq!(code, "ok"),
            Err(e) => assert_eq!(e.code(), code),
        }
    }
    assert_eq!(
        ChatMessage::new(user("sup-1"), &agent, "x".repeat(2001), 0).unwrap_err(),
        ChatError::TextTooLong { len_chars: 2001 }
    );
}

//! The start-up recovery (docs/design.md §7): what a previous run left open is closed, not
//! resumed. Each open supervision is rebuilt as a session ([`Session::restored`]) and ended by
//! its [`Input::Abort`] (cause `restart`): its alert and audit record come out of the lifecycle
//! like every other end's (docs/design.md §2); this module only writes them. Open calls are
//! ended (their media did not survive the process).

use crate::app::supervisions::new_audit;
use crate::clock::{from_unix_ms, to_unix_ms};
use crate::domain::agents::UserId;
use crate::domain::call::{CallId, SupervisionId};
use crate::domain::lifecycle::{
    AbortCause, CallFacts, Direction, Input, Output, Restored, Session, SessionScope, State,
};
use crate::store::{
    self, ClosedSession, ColumnEnum as _, EventScope, NewAlert, NewEvent, Recovery, Store,
    StoreError, StoreExt as _, SupervisionRecord, UnixMs, Writes,
};

/// The end reason of what the recovery closes.
pub const RESTART_REASON: &str = store::RESTART_REASON;

/// Closes every open supervision and ends every open call, in one transaction.
pub fn recover_after_restart(store: &dyn Store, now: UnixMs) -> Result<Recovery, StoreError> {
    store.write(|w| {
        let mut sessions = Vec::new();
        for previous in w.open_sessions()? {
            sessions.extend(close(w, previous, now)?);
        }
        Ok(Recovery {
            sessions,
            calls: w.end_stale_calls(now, RESTART_REASON)?,
        })
    })
}

/// The session a stored open supervision was in, as far as an abort needs it.
fn restored(row: &SupervisionRecord) -> Option<(SupervisionId, Session)> {
    let id = row.id.parse::<SupervisionId>().ok()?;
    let call = row.call_id.as_deref()?.parse::<CallId>().ok()?;
    let state = match row.state {
        store::SupervisionState::Requested => State::Requested {
            supervisor_ringing: false,
            call: crate::domain::lifecycle::CallLink::Present,
        },
        store::SupervisionState::Active => State::Active {
            mode: row.mode,
            customer_gone: false,
            agent_gone: false,
        },
        store::SupervisionState::NoCall => State::NoCall { vanished: None },
        store::SupervisionState::Stopped
        | store::SupervisionState::Failed
        | store::SupervisionState::Aborted => return None,
    };
    let user = |id: &Option<String>| id.as_deref().and_then(|u| UserId::parse(u).ok());
    let session = Session::restored(
        id,
        Restored {
            supervisor: user(&row.supervisor_id),
            agent: user(&row.agent_id),
            scope: match row.scope {
                store::SupervisionScope::Call => SessionScope::Call,
                store::SupervisionScope::Persistent => SessionScope::Agent { grant_id: None },
            },
            // An abort reads nothing of the call but its id.
            call: CallFacts::business(call, Direction::Inbound),
            state,
        },
    );
    Some((id, session))
}

/// Ends one open supervision through its session and writes what came out: the row, the
/// alert, the audit record and a `supervision.aborted` event for its supervisor, its agent and
/// the agent's groups. A row not of this appliance's form (its ids do not parse; the history
/// never shows it) is only closed.
fn close(
    w: &mut dyn Writes,
    previous: SupervisionRecord,
    now: UnixMs,
) -> Result<Option<ClosedSession>, StoreError> {
    let mut row = previous.clone();
    row.state = store::SupervisionState::Aborted;
    row.end_reason = Some(RESTART_REASON.to_owned());
    row.ended_at = Some(now);
    let Some((_, mut session)) = restored(&previous) else {
        tracing::warn!(supervision = %previous.id, "open supervision not of this appliance's form closed without an alert");
        w.update_supervision(&row)?;
        return Ok(None);
    };
    let outputs = session
        .handle(
            from_unix_ms(now),
            Input::Abort {
                reason: AbortCause::Restart,
            },
        )
        .map_err(|refused| StoreError::Schema(format!("restoring {}: {refused}", previous.id)))?;
    w.update_supervision(&row)?;
    let (mut alert_id, mut audit_id) = (None, None);
    for output in &outputs {
        match output {
            Output::Alert(alert) => {
                alert_id = Some(w.append_alert(&NewAlert {
                    supervision_id: Some(row.id.clone()),
                    kind: alert.kind.code().to_owned(),
                    text: alert.text.to_owned(),
                    at: to_unix_ms(alert.at_ms),
                    call_id: row.call_id.clone(),
                    reason: Some(alert.reason.clone()),
                })?);
            }
            Output::Audit(audit) => audit_id = Some(w.append_audit(&new_audit(audit))?),
            // The media did not survive the process; the row is written above.
            Output::DisconnectMedia { .. } | Output::Ended { .. } => {}
            Output::ConnectMedia { .. } | Output::SetMedia { .. } | Output::AnnounceNoCall => {}
        }
    }
    let (Some(alert_id), Some(audit_id)) = (alert_id, audit_id) else {
        return Err(StoreError::Schema(format!(
            "the abort of {} gave no alert or no audit record",
            previous.id
        )));
    };
    let mut scope = EventScope::default();
    if let Some(agent_id) = &row.agent_id {
        scope.groups = w
            .memberships(agent_id)?
            .into_iter()
            .map(|m| m.group_id)
            .collect();
    }
    scope
        .users
        .extend(row.supervisor_id.iter().chain(&row.agent_id).cloned());
    let event_id = w.append_event(&NewEvent {
        event_type: "supervision.aborted".to_owned(),
        payload: serde_json::json!({
            "supervision_id": row.id,
            "call_id": row.call_id,
            "supervisor_id": row.supervisor_id,
            "agent_id": row.agent_id,
            "state": row.state.as_str(),
            "previous_state": previous.state.as_str(),
            "mode": row.mode.as_str(),
            "end_reason": RESTART_REASON,
            "alert_id": alert_id.0,
        }),
        scope,
        at: now,
    })?;
    Ok(Some(ClosedSession {
        supervision: row,
        previous_state: previous.state,
        alert_id,
        audit_id,
        event_id,
    }))
}

#[cfg(test)]
mod tests {
    use dataplane::media::matrix::Mode;

    use super::*;
    use crate::store::{
        AlertId, AuditId, CallDirection, CallFlags, CallRecord, CallState, EventId, GroupKind,
        GroupMember, GroupRecord, Role, SqliteStore, SupervisionState, UserRecord,
    };

    const CALL: &str = "c_00000000000000c1";

    fn sup_id(n: u8) -> String {
        format!("s_00000000000000{n:02x}")
    }

    fn supervision(id: &str, state: SupervisionState) -> SupervisionRecord {
        SupervisionRecord {
            id: id.to_owned(),
            call_id: Some(CALL.to_owned()),
            supervisor_id: Some("sup".to_owned()),
            agent_id: Some("agent".to_owned()),
            state,
            mode: Mode::Whisper,
            end_reason: state.is_terminal().then(|| "agent_hung_up".to_owned()),
            scope: store::SupervisionScope::Call,
            created_at: UnixMs(3_000),
            started_at: Some(UnixMs(3_100)),
            ended_at: state.is_terminal().then_some(UnixMs(3_500)),
            media: serde_json::json!({}),
        }
    }

    /// A supervisor, an agent in group g1, a live call, and supervisions in every state.
    fn populated() -> SqliteStore {
        let store = SqliteStore::open_in_memory().expect("in-memory store");
        store
            .write(|w| {
                for (id, role) in [("sup", Role::Supervisor), ("agent", Role::Agent)] {
                    w.create_user(&UserRecord {
                        id: id.to_owned(),
                        display_name: id.to_owned(),
                        phone_number: None,
                        roles: vec![role],
                    })?;
                }
                w.create_group(&GroupRecord {
                    id: "g1".to_owned(),
                    name: "Sales".to_owned(),
                    kind: GroupKind::MutualAid,
                    lock_last_member: true,
                    agent_beep: store::BeepPolicy::AgentBeep,
                    max_monitors_per_agent: None,
                    created_at: UnixMs(1_000),
                })?;
                w.add_group_member(&GroupMember {
                    group_id: "g1".to_owned(),
                    user_id: "agent".to_owned(),
                    can_leave: true,
                    logged_in: true,
                })?;
                w.create_call(&CallRecord {
                    id: CALL.to_owned(),
                    external_id: None,
                    agent_id: Some("agent".to_owned()),
                    state: CallState::Active,
                    flags: CallFlags::default(),
                    web: false,
                    created_at: UnixMs(2_000),
                    ended_at: None,
                    direction: CallDirection::Inbound,
                    agent_answered: true,
                    customer_hung_up: false,
                    agent_hung_up: false,
                    deleted_at: None,
                    media: serde_json::json!({}),
                })?;
                for (n, state) in [
                    (1, SupervisionState::Requested),
                    (2, SupervisionState::Active),
                    (3, SupervisionState::NoCall),
                    (4, SupervisionState::Stopped),
                    (5, SupervisionState::Failed),
                    (6, SupervisionState::Aborted),
                ] {
                    w.create_supervision(&supervision(&sup_id(n), state))?;
                }
                Ok(())
            })
            .expect("populate");
        store
    }

    #[test]
    fn the_recovery_aborts_exactly_the_open_sessions_through_the_lifecycle() {
        let store = populated();
        let terminal: Vec<_> = [4, 5, 6]
            .iter()
            .map(|&n| store.read(|r| r.supervision(&sup_id(n))).unwrap().unwrap())
            .collect();
        let now = UnixMs(99_000);
        let recovery = recover_after_restart(&store, now).unwrap();

        let closed: Vec<&str> = recovery
            .sessions
            .iter()
            .map(|c| c.supervision.id.as_str())
            .collect();
        assert_eq!(closed, [sup_id(1), sup_id(2), sup_id(3)]);
        assert_eq!(recovery.calls.len(), 1);
        store
            .read(|r| {
                assert!(r.open_sessions()?.is_empty());
                assert!(r.open_calls()?.is_empty());
                for (c, was) in recovery
                    .sessions
                    .iter()
                    .zip(["requested", "active", "no_call"])
                {
                    assert_eq!(c.previous_state.as_str(), was);
                    let s = r.supervision(&c.supervision.id)?.unwrap();
                    assert_eq!(s, c.supervision);
                    assert_eq!(s.state, SupervisionState::Aborted);
                    assert_eq!(s.end_reason.as_deref(), Some(RESTART_REASON));
                    assert_eq!(s.ended_at, Some(now));
                    let alerts = r.alerts_of_supervision(&s.id)?;
                    assert_eq!(alerts.len(), 1);
                    assert_eq!(alerts[0].id, c.alert_id);
                    assert_eq!(
                        (alerts[0].kind.as_str(), alerts[0].text.as_str()),
                        ("aborted", "aborted – restart")
                    );
                    assert!(alerts[0].reason.as_deref().unwrap().contains(was));
                    let audit = r.audit_of_supervision(&s.id)?;
                    assert_eq!(audit.len(), 1);
                    assert_eq!(audit[0].id, c.audit_id);
                    assert_eq!(
                        (
                            audit[0].actor.as_str(),
                            audit[0].action.as_str(),
                            audit[0].outcome.as_str()
                        ),
                        ("system", "supervision.abort", "aborted")
                    );
                    assert_eq!(
                        audit[0].detail.as_deref(),
                        Some(format!("reason restart; was {was}").as_str())
                    );
                }
                for before in &terminal {
                    assert_eq!(r.supervision(&before.id)?.as_ref(), Some(before));
                    assert!(r.alerts_of_supervision(&before.id)?.is_empty());
                }
                let events = r.events_after(EventId::ZERO, 100)?;
                let aborted: Vec<_> = events
                    .iter()
                    .filter(|e| e.event_type == "supervision.aborted")
                    .collect();
                assert_eq!(aborted.len(), 3);
                let active = &recovery.sessions[1];
                let e = aborted.iter().find(|e| e.id == active.event_id).unwrap();
                assert_eq!(e.payload["supervision_id"], sup_id(2));
                assert_eq!(e.payload["end_reason"], "restart");
                assert_eq!(e.payload["previous_state"], "active");
                assert_eq!(e.payload["alert_id"], active.alert_id.0);
                assert_eq!(e.scope.groups, ["g1"]);
                assert_eq!(e.scope.users, ["sup", "agent"]);
                assert_eq!(
                    events
                        .iter()
                        .filter(|e| e.event_type == "call.ended")
                        .count(),
                    1
                );
                assert!(r.alerts_after(AlertId::ZERO, 10)?.len() == 3);
                assert!(r.audit_after(AuditId::ZERO, 10)?.len() == 3);
                Ok(())
            })
            .unwrap();

        // Idempotent: nothing is left to close.
        assert_eq!(
            recover_after_restart(&store, UnixMs(100_000)).unwrap(),
            Recovery::default()
        );
    }

    #[test]
    fn a_row_not_of_this_appliances_form_is_closed_without_an_alert() {
        let store = populated();
        store
            .write(|w| w.create_supervision(&supervision("foreign-1", SupervisionState::Active)))
            .unwrap();
        let recovery = recover_after_restart(&store, UnixMs(99_000)).unwrap();
        assert_eq!(recovery.sessions.len(), 3, "the three of this appliance");
        store
            .read(|r| {
                let s = r.supervision("foreign-1")?.unwrap();
                assert_eq!(s.state, SupervisionState::Aborted);
                assert!(r.alerts_of_supervision("foreign-1")?.is_empty());
                assert!(r.open_sessions()?.is_empty());
                Ok(())
            })
            .unwrap();
    }
}

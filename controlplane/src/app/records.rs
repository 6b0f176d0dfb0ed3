//! The records in memory: calls, their legs, supervisions and their sessions, behind the
//! state's one lock (docs/design.md §2), and their mapping to and from the store's rows.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use dataplane::engine::{self, EngineError, LegSpec, LegStats};
use dataplane::media::call::DropReason;
use dataplane::media::matrix::{LegId, Mode};
use dataplane::wire::g711::Codec;
use serde::{Deserialize, Serialize};

use crate::app::snapshots::*;
use crate::app::state::StateError;
use crate::clock::{from_unix_ms, to_unix_ms};
use crate::domain::call::{CallId, LegRequest, Party, SupervisionId};
use crate::domain::lifecycle::{CallFacts, CallKind, Direction, Session, SupervisionState};
use crate::store::{
    self, EventScope, NewAlert, NewEvent, PAGE_LIMIT_MAX, Store, StoreError, StoreExt as _, Writes,
};

/// A leg as recorded, and as stored in the `media` JSON columns.
#[derive(Debug, Clone, Copy)]
pub(super) struct LegRecord {
    pub(super) local: Option<SocketAddr>,
    pub(super) remote: Option<SocketAddr>,
    /// `remote` is the source the leg latched to, not one the softswitch gave.
    pub(super) latched: bool,
    /// The party is on hold (the engine's leg is told so, see [`AppState::call_event`]).
    pub(super) held: bool,
    pub(super) codec: Codec,
    /// The statistics when the leg's media was released (the engine forgets them then).
    pub(super) final_stats: Option<LegStats>,
}

/// [`LegRecord`]'s JSON form in the store.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StoredLeg {
    pub(super) local: Option<SocketAddr>,
    pub(super) remote: Option<SocketAddr>,
    /// Absent in records written before the latched address was kept (they had none).
    #[serde(default)]
    pub(super) latched: bool,
    #[serde(default)]
    pub(super) held: bool,
    pub(super) codec: String,
    #[serde(default)]
    pub(super) stats: Option<StoredStats>,
}

/// A leg's final statistics in [`StoredLeg`]: the fields and names of the API's `Stats`
/// (docs/api.md), which is what records written before this type existed hold.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(super) struct StoredStats {
    packets_in: u64,
    bytes_in: u64,
    packets_out: u64,
    bytes_out: u64,
    packets_lost: i64,
    jitter_ms: f64,
    packets_dropped: u64,
    /// By reason, one count per media drop reason's name.
    #[serde(default, with = "dropped_by_reason")]
    dropped: [u64; DropReason::COUNT],
}

impl From<LegStats> for StoredStats {
    fn from(s: LegStats) -> StoredStats {
        StoredStats {
            packets_in: s.packets_in,
            bytes_in: s.bytes_in,
            packets_out: s.packets_out,
            bytes_out: s.bytes_out,
            packets_lost: s.packets_lost,
            jitter_ms: s.jitter_ms,
            packets_dropped: s.packets_dropped,
            dropped: s.dropped,
        }
    }
}

impl From<StoredStats> for LegStats {
    fn from(s: StoredStats) -> LegStats {
        LegStats {
            packets_in: s.packets_in,
            bytes_in: s.bytes_in,
            packets_out: s.packets_out,
            bytes_out: s.bytes_out,
            packets_lost: s.packets_lost,
            jitter_ms: s.jitter_ms,
            packets_dropped: s.packets_dropped,
            dropped: s.dropped,
        }
    }
}

/// Drops by reason as a JSON object keyed by the reason's name, every reason written.
mod dropped_by_reason {
    use std::collections::BTreeMap;

    use dataplane::media::call::DropReason;
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        dropped: &[u64; DropReason::COUNT],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_map(DropReason::ALL.map(|r| (r.as_str(), dropped[r.index()])))
    }

    /// Reasons this build does not know are ignored and missing ones are zero, so records
    /// written by another version still load.
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<[u64; DropReason::COUNT], D::Error> {
        let map = BTreeMap::<String, u64>::deserialize(deserializer)?;
        Ok(DropReason::ALL.map(|r| map.get(r.as_str()).copied().unwrap_or(0)))
    }
}

impl LegRecord {
    pub(super) fn new(local: Option<SocketAddr>, req: LegRequest) -> LegRecord {
        LegRecord {
            local,
            remote: req.remote,
            latched: false,
            held: false,
            codec: req.codec,
            final_stats: None,
        }
    }

    /// The remote the softswitch gave, if any (not a latched one).
    pub(super) fn configured_remote(&self) -> Option<SocketAddr> {
        self.remote.filter(|_| !self.latched)
    }

    /// Records the source a latching leg locked to. A configured remote stands (it may have
    /// been set after the leg latched, and the leg is strict on it now): false then.
    pub(super) fn latch(&mut self, remote: SocketAddr) -> bool {
        if self.configured_remote().is_some() {
            return false;
        }
        self.remote = Some(remote);
        self.latched = true;
        true
    }

    pub(super) fn stored(&self) -> StoredLeg {
        StoredLeg {
            local: self.local,
            remote: self.remote,
            latched: self.latched,
            held: self.held,
            codec: self.codec.name().to_owned(),
            stats: self.final_stats.map(StoredStats::from),
        }
    }

    /// A leg from the store: whatever it holds, something to show.
    pub(super) fn from_stored(value: Option<&serde_json::Value>) -> LegRecord {
        let stored = value.and_then(|v| StoredLeg::deserialize(v).ok());
        match stored {
            Some(s) => LegRecord {
                local: s.local,
                remote: s.remote,
                latched: s.latched && s.remote.is_some(),
                held: s.held,
                codec: s.codec.parse().unwrap_or(Codec::Pcmu),
                final_stats: Some(s.stats.map(LegStats::from).unwrap_or_default()),
            },
            None => LegRecord {
                local: None,
                remote: None,
                latched: false,
                held: false,
                codec: Codec::Pcmu,
                final_stats: Some(LegStats::default()),
            },
        }
    }
}

#[derive(Debug)]
pub(super) struct CallRecord {
    /// Creation order, for listing.
    pub(super) seq: u64,
    /// The engine's call while its media is anchored (`None` once ended, or when loaded from
    /// the store).
    pub(super) engine: Option<engine::CallId>,
    pub(super) state: CallState,
    pub(super) direction: Direction,
    pub(super) web: bool,
    pub(super) agent_id: Option<String>,
    pub(super) agent_answered: bool,
    pub(super) flags: Flags,
    pub(super) hung_up: HungUp,
    pub(super) customer: LegRecord,
    pub(super) agent: LegRecord,
    pub(super) supervisions: Vec<SupervisionId>,
    pub(super) created_at_ms: u64,
    pub(super) ended_at_ms: Option<u64>,
    /// The NG side, for a call anchored over the NG protocol (docs/ng.md).
    pub(super) ng: Option<crate::app::anchors::NgRecord>,
}

impl CallRecord {
    pub(super) fn leg_mut(&mut self, party: Party) -> &mut LegRecord {
        match party {
            Party::Customer => &mut self.customer,
            Party::Agent => &mut self.agent,
        }
    }

    pub(super) fn facts(&self, id: CallId) -> CallFacts {
        CallFacts {
            call: id,
            kind: if self.web {
                CallKind::Web
            } else {
                CallKind::Business
            },
            direction: self.direction,
            on_hold: self.flags.on_hold,
            in_consult: self.flags.consult,
            secure_payment: self.flags.secure_payment,
            conference: self.flags.conference,
            agent_answered: self.agent_answered,
        }
    }

    pub(super) fn stored(&self, id: CallId, deleted_at_ms: Option<u64>) -> store::CallRecord {
        store::CallRecord {
            id: id.to_string(),
            external_id: None,
            agent_id: self.agent_id.clone(),
            state: match self.state {
                CallState::Active => store::CallState::Active,
                CallState::Ended => store::CallState::Ended,
            },
            flags: store::CallFlags {
                on_hold: self.flags.on_hold,
                consult: self.flags.consult,
                secure_payment: self.flags.secure_payment,
                conference: self.flags.conference,
            },
            web: self.web,
            created_at: to_unix_ms(self.created_at_ms),
            ended_at: self.ended_at_ms.map(to_unix_ms),
            direction: match self.direction {
                Direction::Inbound => store::CallDirection::Inbound,
                Direction::Outbound => store::CallDirection::Outbound,
            },
            agent_answered: self.agent_answered,
            customer_hung_up: self.hung_up.customer,
            agent_hung_up: self.hung_up.agent,
            deleted_at: deleted_at_ms.map(to_unix_ms),
            media: serde_json::json!({
                "customer": self.customer.stored(),
                "agent": self.agent.stored(),
            }),
        }
    }

    /// A call from the store: history, with no media in the engine.
    pub(super) fn from_stored(c: &store::CallRecord, seq: u64) -> CallRecord {
        CallRecord {
            seq,
            engine: None,
            state: match c.state {
                store::CallState::Active => CallState::Active,
                store::CallState::Ended => CallState::Ended,
            },
            direction: match c.direction {
                store::CallDirection::Inbound => Direction::Inbound,
                store::CallDirection::Outbound => Direction::Outbound,
            },
            web: c.web,
            agent_id: c.agent_id.clone(),
            agent_answered: c.agent_answered,
            flags: Flags {
                on_hold: c.flags.on_hold,
                consult: c.flags.consult,
                secure_payment: c.flags.secure_payment,
                conference: c.flags.conference,
            },
            hung_up: HungUp {
                customer: c.customer_hung_up,
                agent: c.agent_hung_up,
            },
            customer: LegRecord::from_stored(c.media.get("customer")),
            agent: LegRecord::from_stored(c.media.get("agent")),
            supervisions: Vec::new(),
            created_at_ms: from_unix_ms(c.created_at),
            ended_at_ms: c.ended_at.map(from_unix_ms),
            ng: None,
        }
    }
}

#[derive(Debug)]
pub(super) struct SupervisionRecord {
    pub(super) seq: u64,
    pub(super) call: CallId,
    /// `Some` while the session is open.
    pub(super) session: Option<Session>,
    pub(super) state: SupervisionState,
    pub(super) mode: Mode,
    pub(super) failure: Option<String>,
    pub(super) abort: Option<String>,
    pub(super) supervisor_id: Option<String>,
    pub(super) agent_id: Option<String>,
    pub(super) registered_number: Option<String>,
    pub(super) beep: bool,
    /// Follows the agent to their next calls (docs/design.md §2.7 persistent supervision).
    pub(super) persistent: bool,
    pub(super) leg: LegRecord,
    /// The supervisor's leg in the engine while media is connected; engine leg ids are reused
    /// once released, so this names the leg only while it is `Some`.
    pub(super) media: Option<(engine::CallId, LegId)>,
    /// The session's answer deadline as indexed in [`Inner::deadlines`].
    pub(super) deadline_ms: Option<u64>,
    pub(super) created_at_ms: u64,
    pub(super) started_at_ms: Option<u64>,
    pub(super) ended_at_ms: Option<u64>,
    /// When the request arrived, for `earshot_supervision_setup_seconds` (real time).
    pub(super) requested: Instant,
}

impl SupervisionRecord {
    pub(super) fn stored(&self, id: SupervisionId) -> store::SupervisionRecord {
        store::SupervisionRecord {
            id: id.to_string(),
            call_id: Some(self.call.to_string()),
            supervisor_id: self.supervisor_id.clone(),
            agent_id: self.agent_id.clone(),
            state: stored_state(self.state),
            mode: self.mode,
            end_reason: self.failure.clone().or_else(|| self.abort.clone()),
            scope: if self.persistent {
                store::SupervisionScope::Persistent
            } else {
                store::SupervisionScope::Call
            },
            created_at: to_unix_ms(self.created_at_ms),
            started_at: self.started_at_ms.map(to_unix_ms),
            ended_at: self.ended_at_ms.map(to_unix_ms),
            media: serde_json::json!({
                "leg": self.leg.stored(),
                "beep": self.beep,
                "registered_number": self.registered_number,
            }),
        }
    }

    /// A supervision from the store: history, with no session (recovery closed the open ones
    /// before anything is loaded).
    pub(super) fn from_stored(
        s: &store::SupervisionRecord,
        call: CallId,
        seq: u64,
    ) -> SupervisionRecord {
        let state = state_of_stored(s.state);
        SupervisionRecord {
            seq,
            call,
            session: None,
            state,
            mode: s.mode,
            failure: (state == SupervisionState::Failed)
                .then(|| s.end_reason.clone())
                .flatten(),
            abort: (state == SupervisionState::Aborted)
                .then(|| s.end_reason.clone())
                .flatten(),
            supervisor_id: s.supervisor_id.clone(),
            agent_id: s.agent_id.clone(),
            registered_number: s
                .media
                .get("registered_number")
                .and_then(|n| n.as_str())
                .map(str::to_owned),
            beep: s
                .media
                .get("beep")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
            persistent: s.scope == store::SupervisionScope::Persistent,
            leg: LegRecord::from_stored(s.media.get("leg")),
            media: None,
            deadline_ms: None,
            created_at_ms: from_unix_ms(s.created_at),
            started_at_ms: s.started_at.map(from_unix_ms),
            ended_at_ms: s.ended_at.map(from_unix_ms),
            requested: Instant::now(),
        }
    }

    pub(super) fn scope(&self) -> EventScope {
        EventScope {
            groups: Vec::new(),
            users: self
                .supervisor_id
                .iter()
                .chain(&self.agent_id)
                .cloned()
                .collect(),
        }
    }

    pub(super) fn event_payload(&self, id: SupervisionId) -> serde_json::Value {
        serde_json::json!({
            "supervision_id": id,
            "call_id": self.call,
            "state": self.state.as_str(),
            "mode": self.mode.as_str(),
            "failure": self.failure,
            "abort": self.abort,
            "supervisor_id": self.supervisor_id,
            "agent_id": self.agent_id,
        })
    }
}

/// Everything in memory. Every transition goes through [`AppState`] methods, which keep the
/// gauges in step.
#[derive(Default)]
pub(super) struct Records {
    pub(super) calls: HashMap<CallId, CallRecord>,
    pub(super) supervisions: HashMap<SupervisionId, SupervisionRecord>,
    pub(super) by_engine_call: HashMap<engine::CallId, CallId>,
    /// NG call-id → the newest call in memory anchored under it (docs/ng.md: NG commands find
    /// their call here, in O(1)).
    pub(super) ng_calls: HashMap<crate::domain::anchor::NgId, CallId>,
    pub(super) next_seq: u64,
}

impl Records {
    pub(super) fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    pub(super) fn call(&self, id: CallId) -> Result<&CallRecord, StateError> {
        self.calls.get(&id).ok_or(StateError::CallNotFound(id))
    }

    pub(super) fn call_mut(&mut self, id: CallId) -> Result<&mut CallRecord, StateError> {
        self.calls.get_mut(&id).ok_or(StateError::CallNotFound(id))
    }

    pub(super) fn active_call(&self, id: CallId) -> Result<&CallRecord, StateError> {
        let call = self.call(id)?;
        match call.state {
            CallState::Active => Ok(call),
            CallState::Ended => Err(StateError::CallEnded(id)),
        }
    }

    pub(super) fn supervision(&self, id: SupervisionId) -> Result<&SupervisionRecord, StateError> {
        self.supervisions
            .get(&id)
            .ok_or(StateError::SupervisionNotFound(id))
    }

    pub(super) fn fresh_call_id(&self) -> Result<CallId, StateError> {
        loop {
            let id = CallId::from_u64(crate::app::random::random_u64()?);
            if !self.calls.contains_key(&id) {
                return Ok(id);
            }
        }
    }

    pub(super) fn fresh_supervision_id(&self) -> Result<SupervisionId, StateError> {
        loop {
            let id = SupervisionId::from_u64(crate::app::random::random_u64()?);
            if !self.supervisions.contains_key(&id) {
                return Ok(id);
            }
        }
    }

    /// The open supervisions of a call, oldest first.
    pub(super) fn open_supervisions(&self, call: CallId) -> Vec<SupervisionId> {
        self.calls.get(&call).map_or_else(Vec::new, |c| {
            c.supervisions
                .iter()
                .copied()
                .filter(|s| self.supervisions.get(s).is_some_and(|s| s.state.is_open()))
                .collect()
        })
    }

    /// The supervision whose media is on an engine leg, if any.
    pub(super) fn supervision_on_leg(
        &self,
        call: engine::CallId,
        leg: LegId,
    ) -> Option<SupervisionId> {
        let call_id = self.by_engine_call.get(&call)?;
        self.calls
            .get(call_id)?
            .supervisions
            .iter()
            .copied()
            .find(|s| {
                self.supervisions
                    .get(s)
                    .is_some_and(|s| s.media == Some((call, leg)))
            })
    }
}

/// The engine forgot a call or leg we are releasing: it is released already, which is what
/// we wanted. Anything else is a real failure.
pub(super) fn released(result: Result<(), EngineError>, what: &str) -> Result<(), EngineError> {
    match result {
        Err(err @ (EngineError::UnknownCall | EngineError::UnknownLeg)) => {
            tracing::warn!(%err, what, "data plane had already released it");
            Ok(())
        }
        other => other,
    }
}

pub(super) fn leg_spec(req: LegRequest) -> LegSpec {
    LegSpec {
        remote: req.remote,
        codec: req.codec,
    }
}

/// Who may see a call's events: its agent (admins see everything).
pub(super) fn call_scope(call: &CallRecord) -> EventScope {
    EventScope {
        groups: Vec::new(),
        users: call.agent_id.iter().cloned().collect(),
    }
}

pub(super) fn append_event(
    w: &mut dyn Writes,
    event_type: &str,
    payload: serde_json::Value,
    scope: EventScope,
    at_ms: u64,
) -> Result<(), StoreError> {
    w.append_event(&NewEvent {
        event_type: event_type.to_owned(),
        payload,
        scope,
        at: to_unix_ms(at_ms),
    })
    .map(|_| ())
}

/// Records `alert` and its `alert.raised` event.
pub(super) fn raise_alert(
    w: &mut dyn Writes,
    alert: &NewAlert,
    scope: EventScope,
    at_ms: u64,
) -> Result<(), StoreError> {
    let alert_id = w.append_alert(alert)?;
    append_event(
        w,
        "alert.raised",
        serde_json::json!({
            "alert_id": alert_id.0, "kind": alert.kind, "text": alert.text,
            "reason": alert.reason, "supervision_id": alert.supervision_id,
            "call_id": alert.call_id,
        }),
        scope,
        at_ms,
    )
}

/// The recent history, oldest first: calls not deleted, and supervisions (linked to their
/// calls when those are loaded).
pub(super) fn load(store: &dyn Store) -> Result<Records, StoreError> {
    let (mut calls, mut sups, ng) = store.read(|r| {
        Ok((
            r.recent_calls(PAGE_LIMIT_MAX)?,
            r.recent_supervisions(PAGE_LIMIT_MAX)?,
            r.recent_ng_calls(PAGE_LIMIT_MAX)?,
        ))
    })?;
    calls.reverse();
    sups.reverse();
    let mut records = Records::default();
    for call in calls.iter().filter(|c| c.deleted_at.is_none()) {
        let Ok(id) = call.id.parse::<CallId>() else {
            tracing::warn!(call = %call.id, "stored call id not of this appliance's form; skipped");
            continue;
        };
        let seq = records.seq();
        records.calls.insert(id, CallRecord::from_stored(call, seq));
    }
    crate::app::anchors::attach_loaded(&mut records, ng);
    for sup in &sups {
        let (Ok(id), Some(Ok(call))) = (
            sup.id.parse::<SupervisionId>(),
            sup.call_id.as_deref().map(str::parse::<CallId>),
        ) else {
            tracing::warn!(supervision = %sup.id, "stored supervision not of this appliance's form; skipped");
            continue;
        };
        let seq = records.seq();
        if let Some(c) = records.calls.get_mut(&call) {
            c.supervisions.push(id);
        }
        records
            .supervisions
            .insert(id, SupervisionRecord::from_stored(sup, call, seq));
    }
    Ok(records)
}

/// The store's column for a supervision's state: one to one.
pub(super) fn stored_state(state: SupervisionState) -> store::SupervisionState {
    match state {
        SupervisionState::Requested => store::SupervisionState::Requested,
        SupervisionState::Active => store::SupervisionState::Active,
        SupervisionState::NoCall => store::SupervisionState::NoCall,
        SupervisionState::Stopped => store::SupervisionState::Stopped,
        SupervisionState::Failed => store::SupervisionState::Failed,
        SupervisionState::Aborted => store::SupervisionState::Aborted,
    }
}

/// The inverse of [`stored_state`]. A row `active` written by a version that stored `no_call`
/// as `active` reads as `active`: such a row is open, so the start-up recovery closes it
/// (`aborted`, `restart`) before anything is loaded, as it did.
pub(super) fn state_of_stored(state: store::SupervisionState) -> SupervisionState {
    match state {
        store::SupervisionState::Requested => SupervisionState::Requested,
        store::SupervisionState::Active => SupervisionState::Active,
        store::SupervisionState::NoCall => SupervisionState::NoCall,
        store::SupervisionState::Stopped => SupervisionState::Stopped,
        store::SupervisionState::Failed => SupervisionState::Failed,
        store::SupervisionState::Aborted => SupervisionState::Aborted,
    }
}

#[cfg(test)]
mod tests {
    use dataplane::media::call::DropReason;
    use serde_json::json;

    use super::*;

    /// A leg's final statistics in the `media` column keep the names of the API's `Stats`
    /// (docs/api.md), so a record written by an earlier version loads with its counts: reasons
    /// this build does not know are ignored, missing ones read as zero.
    #[test]
    fn stored_statistics_load_from_records_of_other_versions() {
        let stored = json!({
            "local": "127.0.0.1:20000", "remote": "198.51.100.7:4000", "codec": "pcma",
            "stats": {"packets_in": 7, "bytes_in": 1_204, "packets_out": 5, "bytes_out": 860,
                      "packets_lost": -1, "jitter_ms": 2.5, "packets_dropped": 4,
                      "dropped": {"wrong_source": 3, "stale": 1, "from_the_future": 9}},
        });
        let leg = LegRecord::from_stored(Some(&stored));
        let stats = leg.final_stats.expect("an ended leg's statistics");
        let mut dropped = [0; DropReason::COUNT];
        dropped[DropReason::WrongSource.index()] = 3;
        dropped[DropReason::Stale.index()] = 1;
        assert_eq!(
            stats,
            LegStats {
                packets_in: 7,
                bytes_in: 1_204,
                packets_out: 5,
                bytes_out: 860,
                packets_lost: -1,
                jitter_ms: 2.5,
                packets_dropped: 4,
                dropped,
            }
        );
        assert_eq!(leg.codec, Codec::Pcma);
        assert!(!leg.latched);

        // Written back, every reason is there by name, and it reads the same again.
        let written = serde_json::to_value(leg.stored()).unwrap();
        let by_reason = written["stats"]["dropped"].as_object().unwrap();
        assert_eq!(by_reason.len(), DropReason::COUNT);
        for reason in DropReason::ALL {
            assert_eq!(by_reason[reason.as_str()], stats.dropped[reason.index()]);
        }
        assert_eq!(
            LegRecord::from_stored(Some(&written)).final_stats,
            Some(stats)
        );
    }

    /// A leg with no statistics, or a column that is not a leg at all, still shows: zeros.
    #[test]
    fn a_leg_without_statistics_loads_with_zeros() {
        let no_stats = json!({"local": null, "remote": null, "codec": "pcmu"});
        for value in [Some(&no_stats), Some(&json!("garbage")), None] {
            let leg = LegRecord::from_stored(value);
            assert_eq!(leg.final_stats, Some(LegStats::default()), "{value:?}");
        }
    }
}

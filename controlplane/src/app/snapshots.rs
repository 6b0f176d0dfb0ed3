//! What the use cases answer about calls and supervisions: plain snapshots of the records,
//! each leg's live statistics read from the media at the same moment, under the records lock
//! (docs/design.md §2). The adapters render them (the HTTP API's JSON, docs/api.md).

use std::net::SocketAddr;

use dataplane::engine::{self, LegStats};
use dataplane::media::matrix::{LegId, Mode};
use dataplane::wire::g711::Codec;
use serde::Serialize;

use crate::app::records::*;
use crate::app::state::{AppState, StateError};
use crate::domain::call::{CallId, Flag, SupervisionId};
use crate::domain::lifecycle::{Direction, SupervisionState};

/// Whether a call's media is still anchored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    Active,
    Ended,
}

impl CallState {
    pub fn as_str(self) -> &'static str {
        match self {
            CallState::Active => "active",
            CallState::Ended => "ended",
        }
    }
}

/// The call's flags as the softswitch reported them (docs/api.md, Call events). `Serialize`
/// for the `call.updated` event's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Flags {
    pub on_hold: bool,
    pub consult: bool,
    pub secure_payment: bool,
    pub conference: bool,
}

impl Flags {
    pub(super) fn slot(&mut self, flag: Flag) -> &mut bool {
        match flag {
            Flag::OnHold => &mut self.on_hold,
            Flag::Consult => &mut self.consult,
            Flag::SecurePayment => &mut self.secure_payment,
            Flag::Conference => &mut self.conference,
        }
    }
}

/// Which parties of a call have hung up (the call ends when both have). `Serialize` for the
/// `call.updated` event's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct HungUp {
    pub customer: bool,
    pub agent: bool,
}

/// A leg as it is now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LegSnapshot {
    /// The appliance's media address; `None` for a supervisor's leg whose media is not
    /// connected.
    pub local: Option<SocketAddr>,
    /// The party's address: configured, or latched.
    pub remote: Option<SocketAddr>,
    /// `remote` is the source the leg latched to (docs/media.md, Source checking), not one the
    /// softswitch gave.
    pub latched: bool,
    pub codec: Codec,
    /// The party is on hold (`hold` call event).
    pub held: bool,
    /// Live from the media while the leg is anchored; the last ones once released.
    pub stats: LegStats,
}

/// A call as it is now.
#[derive(Debug, Clone, PartialEq)]
pub struct CallSnapshot {
    pub id: CallId,
    pub state: CallState,
    pub direction: Direction,
    pub agent_id: Option<String>,
    pub web: bool,
    pub agent_answered: bool,
    pub flags: Flags,
    pub hung_up: HungUp,
    pub customer: LegSnapshot,
    pub agent: LegSnapshot,
    /// Every supervision of the call, open and ended, oldest first.
    pub supervisions: Vec<SupervisionId>,
    pub created_at_ms: u64,
    pub ended_at_ms: Option<u64>,
}

/// A supervision as it is now.
#[derive(Debug, Clone, PartialEq)]
pub struct SupervisionSnapshot {
    pub id: SupervisionId,
    /// The call attached last (a persistent supervision follows its agent, docs/design.md §2.7).
    pub call_id: CallId,
    pub state: SupervisionState,
    /// The current mode (`listen` until media connects), or the last one once ended.
    pub mode: Mode,
    /// Why it failed (state `failed`).
    pub failure: Option<String>,
    /// Why it was aborted (state `aborted`).
    pub abort: Option<String>,
    pub supervisor_id: Option<String>,
    pub agent_id: Option<String>,
    /// Its digits, without `+`.
    pub registered_number: Option<String>,
    pub beep: bool,
    pub persistent: bool,
    pub leg: LegSnapshot,
    pub created_at_ms: u64,
    /// When the supervisor's leg was answered (media connected, or the no-call message).
    pub started_at_ms: Option<u64>,
    pub ended_at_ms: Option<u64>,
}

impl AppState {
    pub(super) fn leg_snapshot(
        &self,
        live: Option<(engine::CallId, LegId)>,
        record: &LegRecord,
    ) -> LegSnapshot {
        let stats = record
            .final_stats
            .or_else(|| live.and_then(|(call, leg)| self.inner.engine.leg_stats(call, leg)))
            .unwrap_or_default();
        LegSnapshot {
            local: record.local,
            remote: record.remote,
            latched: record.latched,
            codec: record.codec,
            held: record.held,
            stats,
        }
    }

    pub(super) fn call_snapshot(&self, id: CallId, call: &CallRecord) -> CallSnapshot {
        let live = |leg| call.engine.map(|c| (c, leg));
        CallSnapshot {
            id,
            state: call.state,
            direction: call.direction,
            agent_id: call.agent_id.clone(),
            web: call.web,
            agent_answered: call.agent_answered,
            flags: call.flags,
            hung_up: call.hung_up,
            customer: self.leg_snapshot(live(LegId::CUSTOMER), &call.customer),
            agent: self.leg_snapshot(live(LegId::AGENT), &call.agent),
            supervisions: call.supervisions.clone(),
            created_at_ms: call.created_at_ms,
            ended_at_ms: call.ended_at_ms,
        }
    }

    pub(super) fn supervision_snapshot(
        &self,
        id: SupervisionId,
        sup: &SupervisionRecord,
    ) -> SupervisionSnapshot {
        SupervisionSnapshot {
            id,
            call_id: sup.call,
            state: sup.state,
            mode: sup.mode,
            failure: sup.failure.clone(),
            abort: sup.abort.clone(),
            supervisor_id: sup.supervisor_id.clone(),
            agent_id: sup.agent_id.clone(),
            registered_number: sup.registered_number.clone(),
            beep: sup.beep,
            persistent: sup.persistent,
            leg: self.leg_snapshot(sup.media, &sup.leg),
            created_at_ms: sup.created_at_ms,
            started_at_ms: sup.started_at_ms,
            ended_at_ms: sup.ended_at_ms,
        }
    }

    pub(super) fn call_snapshot_of(
        &self,
        r: &Records,
        id: CallId,
    ) -> Result<CallSnapshot, StateError> {
        Ok(self.call_snapshot(id, r.call(id)?))
    }

    pub(super) fn supervision_snapshot_of(
        &self,
        r: &Records,
        id: SupervisionId,
    ) -> Result<SupervisionSnapshot, StateError> {
        Ok(self.supervision_snapshot(id, r.supervision(id)?))
    }
}

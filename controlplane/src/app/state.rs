//! Calls and supervisions: the control plane's state, the rules of docs/api.md, and the driver
//! of each supervision's [`Session`] (SPEC §2).
//!
//! # Layers
//!
//! - The **records** (in memory, behind one `std::sync::Mutex`) are what the API shows and what
//!   the engine holds: calls, their legs, supervisions and their sessions.
//! - Each supervision is a sans-IO [`Session`]; this module feeds it the API's requests, the
//!   softswitch's reports and the data plane's events, and carries out its [`Output`]s **in
//!   order**: audit records are committed to the [`Store`] before the media command that
//!   follows them (SPEC §4: the audit precedes supervisor media), then the engine is told, then
//!   the new state, the alerts and the events are committed in one transaction.
//! - The **store** (SQLite by default) is the durable copy: every operation that changes
//!   something commits before it returns, and is durable before it is acknowledged (the HTTP
//!   API syncs after the operation has released the records lock, so concurrent requests share
//!   their syncs: group commit, see [`crate::store`]), so an acknowledged request survives
//!   `kill -9` and power loss. The one sync inside an operation is the audit record's, before
//!   the media command that starts media or changes its mode (SPEC §4). At start-up,
//!   [`AppState::new`] closes what a crashed run left open
//!   ([`crate::store::StoreExt::recover_after_restart`]: not resumed, SPEC §7) and loads the
//!   recent history.
//!
//! # Blocking
//!
//! Every method here may block (the records lock, the engine's command ring, an `fsync`): the
//! HTTP handlers and the daemon's tasks call them through `spawn_blocking`. The lock is held
//! for a whole operation, including its commits, which makes each operation atomic with respect
//! to the others (validate, then engine, then commit: a refused request changes nothing).
//! Outside [`crate::store::deferring`] (the daemon's pump and timer, tests) each commit is
//! durable when it returns; inside it (the HTTP API), the caller syncs after the operation.
//!
//! # Time
//!
//! Every `now` comes from the [`Clock`]; the answer timeouts are driven by
//! [`AppState::run_due_timeouts`] at [`AppState::next_deadline_ms`] (the daemon's timer task,
//! or a test after moving a [`crate::clock::ManualClock`]).
//!
//! # Media of a requested supervision
//!
//! The data plane has no supervisor leg that exists without hearing the call: its
//! `add_supervisor` attaches the leg in `listen` at once. So the leg is added only when the
//! session says [`Output::ConnectMedia`] (after its audit record is durable); until then the
//! supervision has no local media address (`leg.local` is `null`).

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use anyhow::Context as _;
use dataplane::engine::{self, Engine, EngineError, EngineEvent, LegSpec, LegStats};
use dataplane::media::call::DropReason;
use dataplane::media::matrix::{LegId, Mode};
use dataplane::wire::g711::Codec;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::app::tokens::TokenCache;
use crate::clock::{Clock, SystemClock, from_unix_ms, to_unix_ms};
use crate::config::{Config, DtmfAction, DtmfKeys};
use crate::domain::call::{
    CallEvent, CallId, Flag, LegRequest, NewCall, NewSupervision, Party, SupervisionId,
    SupervisorEvent,
};
use crate::domain::lifecycle::{
    self, AgentId, AnswerTimeout, AuditAction, CallFacts, CallKind, Direction, HangupParty, Input,
    Output, Refused, Session, SessionScope, Start, SupervisorId,
};
use crate::metrics::{ALERT_KIND_ABORTED, Metrics};
use crate::store::{
    self, AlertId, AuditId, ColumnEnum as _, EventScope, NewAlert, NewAudit, NewEvent,
    PAGE_LIMIT_MAX, SqliteStore, Store, StoreError, StoreExt as _, Writes,
};

/// Most engine events kept for retry while the engine's command ring is full (STYLE.md 4).
const ENGINE_EVENTS_RETRY_MAX: usize = 4096;
/// Rows a page of `GET /v1/alerts` or `GET /v1/audit` returns when the client does not say.
pub const PAGE_DEFAULT: u32 = 100;
/// The end reason of supervisions closed because their call was deleted.
pub const CALL_DELETED: &str = "call_deleted";

/// What the state needs from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Remote addresses must be of this address family (the legs' sockets are bound to it).
    pub media_ip: IpAddr,
    pub max_supervisors_per_call: usize,
    /// Whether a supervision beeps to the agent when the request does not say.
    pub agent_beep: bool,
    pub dtmf: DtmfKeys,
    /// How long the supervisor's phone may ring.
    pub answer_timeout: AnswerTimeout,
}

impl Settings {
    /// The configuration should have been validated (an out-of-range answer timeout is taken
    /// as the default).
    pub fn from_config(config: &Config) -> Settings {
        Settings {
            media_ip: config.media.ip,
            max_supervisors_per_call: config.media.max_supervisors_per_call,
            agent_beep: config.media.agent_beep,
            dtmf: config.media.dtmf,
            answer_timeout: config.supervision.answer_timeout().unwrap_or_default(),
        }
    }
}

/// Why an operation was refused. Mapped to HTTP once, in `error.rs`.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("no call with id {0}")]
    CallNotFound(CallId),
    #[error("no supervision with id {0}")]
    SupervisionNotFound(SupervisionId),
    #[error("call {0} has ended")]
    CallEnded(CallId),
    #[error("call {call} already has {max} open supervisions, the most allowed per call")]
    TooManySupervisors { call: CallId, max: usize },
    #[error("{field}: {remote} is not of the media address's family ({media_ip})")]
    AddressFamily {
        field: &'static str,
        remote: SocketAddr,
        media_ip: IpAddr,
    },
    /// The supervision's session refused the input (SPEC §2 lifecycle); nothing changed.
    #[error("supervision {supervision}: {refused}")]
    Refused {
        supervision: SupervisionId,
        refused: Refused,
    },
    #[error(
        "agent {agent} is already monitored by {max} supervisors, the most their groups allow \
         (max_monitors_per_agent)"
    )]
    MonitorLimit { agent: String, max: u32 },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("no random identifier from the OS: {0}")]
    Random(getrandom::Error),
    #[error("{0}")]
    Internal(String),
}

// ---------------------------------------------------------------------------------------------
// Views
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    Active,
    Ended,
}

/// A supervision's state as the API shows it (SPEC §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SupervisionState {
    /// The supervisor's leg is being connected (ringing, or waiting for the outbound agent).
    Requested,
    /// Media flows, in `mode`.
    Active,
    /// The supervisor answered but the call vanished while the phone rang: no media; the
    /// session ends when the supervisor stops or hangs up.
    NoCall,
    /// Ended by the supervisor (API `DELETE`, or the stop key).
    Stopped,
    /// See `failure`.
    Failed,
    /// See `abort`.
    Aborted,
}

impl SupervisionState {
    pub const fn as_str(self) -> &'static str {
        match self {
            SupervisionState::Requested => "requested",
            SupervisionState::Active => "active",
            SupervisionState::NoCall => "no_call",
            SupervisionState::Stopped => "stopped",
            SupervisionState::Failed => "failed",
            SupervisionState::Aborted => "aborted",
        }
    }

    pub const fn is_open(self) -> bool {
        matches!(
            self,
            SupervisionState::Requested | SupervisionState::Active | SupervisionState::NoCall
        )
    }

    fn of(state: lifecycle::State) -> SupervisionState {
        match state {
            lifecycle::State::New | lifecycle::State::Requested { .. } => {
                SupervisionState::Requested
            }
            lifecycle::State::Active { .. } => SupervisionState::Active,
            lifecycle::State::NoCall { .. } => SupervisionState::NoCall,
            lifecycle::State::Stopped => SupervisionState::Stopped,
            lifecycle::State::Failed(_) => SupervisionState::Failed,
            lifecycle::State::Aborted(_) => SupervisionState::Aborted,
        }
    }

    /// The store's five states: `no_call` is stored as `active` (the session is open and the
    /// supervisor's leg is up).
    fn stored(self) -> store::SupervisionState {
        match self {
            SupervisionState::Requested => store::SupervisionState::Requested,
            SupervisionState::Active | SupervisionState::NoCall => store::SupervisionState::Active,
            SupervisionState::Stopped => store::SupervisionState::Stopped,
            SupervisionState::Failed => store::SupervisionState::Failed,
            SupervisionState::Aborted => store::SupervisionState::Aborted,
        }
    }

    fn from_stored(state: store::SupervisionState) -> SupervisionState {
        match state {
            store::SupervisionState::Requested => SupervisionState::Requested,
            store::SupervisionState::Active => SupervisionState::Active,
            store::SupervisionState::Stopped => SupervisionState::Stopped,
            store::SupervisionState::Failed => SupervisionState::Failed,
            store::SupervisionState::Aborted => SupervisionState::Aborted,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Flags {
    pub on_hold: bool,
    pub consult: bool,
    pub secure_payment: bool,
    pub conference: bool,
}

impl Flags {
    fn slot(&mut self, flag: Flag) -> &mut bool {
        match flag {
            Flag::OnHold => &mut self.on_hold,
            Flag::Consult => &mut self.consult,
            Flag::SecurePayment => &mut self.secure_payment,
            Flag::Conference => &mut self.conference,
        }
    }
}

/// Which parties of a call have hung up (the call ends when both have).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct HungUp {
    pub customer: bool,
    pub agent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct StatsView {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub packets_lost: i64,
    pub jitter_ms: f64,
    pub packets_dropped: u64,
    /// `packets_dropped` by reason (docs/api.md, "Metrics": the media reasons).
    #[serde(default)]
    pub dropped: DroppedView,
}

/// A leg's drops by reason, as a JSON object with one count per media drop reason (every
/// reason present, zero included, so clients need no defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DroppedView(pub [u64; DropReason::COUNT]);

impl DroppedView {
    /// The count for `reason`.
    pub fn of(&self, reason: DropReason) -> u64 {
        self.0[reason.index()]
    }
}

impl Serialize for DroppedView {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(DropReason::COUNT))?;
        for reason in DropReason::ALL {
            map.serialize_entry(reason.as_str(), &self.of(reason))?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for DroppedView {
    /// Reasons this build does not know are ignored and missing ones are zero, so records
    /// written by another version still load.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = std::collections::BTreeMap::<String, u64>::deserialize(deserializer)?;
        Ok(DroppedView(
            DropReason::ALL.map(|r| map.get(r.as_str()).copied().unwrap_or(0)),
        ))
    }
}

impl From<LegStats> for StatsView {
    fn from(s: LegStats) -> StatsView {
        StatsView {
            packets_in: s.packets_in,
            bytes_in: s.bytes_in,
            packets_out: s.packets_out,
            bytes_out: s.bytes_out,
            packets_lost: s.packets_lost,
            jitter_ms: s.jitter_ms,
            packets_dropped: s.packets_dropped,
            dropped: DroppedView(s.dropped),
        }
    }
}

/// Where a leg's remote address came from (docs/media.md, Source checking).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteSource {
    /// Given by the softswitch (the create request, or `PATCH …/legs/{party}`): strict source.
    Configured,
    /// Not given: the leg latched to the first source it heard and is locked to it.
    Latched,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LegView {
    /// `null` for a supervisor's leg whose media is not connected (yet, or ever).
    pub local: Option<SocketAddr>,
    /// The party's address: configured, or latched; `null` while a latching leg has heard
    /// nothing.
    pub remote: Option<SocketAddr>,
    /// How `remote` was learnt; `null` with it.
    pub remote_source: Option<RemoteSource>,
    pub codec: &'static str,
    /// The party is on hold (`hold` call event): its silence is judged by
    /// `media.silent_timeout_secs`, not `media.timeout_secs`.
    pub held: bool,
    pub stats: StatsView,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LegsView {
    pub customer: LegView,
    pub agent: LegView,
}

/// A call as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallView {
    pub id: CallId,
    pub state: CallState,
    pub direction: &'static str,
    pub agent_id: Option<String>,
    pub web: bool,
    pub agent_answered: bool,
    pub flags: Flags,
    pub hung_up: HungUp,
    pub legs: LegsView,
    /// Every supervision of the call, open and ended, oldest first.
    pub supervisions: Vec<SupervisionId>,
    pub created_at_ms: u64,
    pub ended_at_ms: Option<u64>,
}

/// A supervision as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SupervisionView {
    pub id: SupervisionId,
    pub call_id: CallId,
    pub state: SupervisionState,
    /// The current mode (`listen` until media connects), or the last one once ended.
    pub mode: &'static str,
    /// Why it failed (state `failed`): `agent_not_ready`, `no_call_to_monitor`, …
    pub failure: Option<String>,
    /// Why it was aborted (state `aborted`): `agent_held_call`, …, `call_deleted`, `restart`.
    pub abort: Option<String>,
    pub supervisor_id: Option<String>,
    pub agent_id: Option<String>,
    pub registered_number: Option<String>,
    pub beep: bool,
    /// Follows the agent to their next calls; `call_id` is the call attached last.
    pub persistent: bool,
    pub leg: LegView,
    pub created_at_ms: u64,
    /// When the supervisor's leg was answered (media connected, or the no-call message).
    pub started_at_ms: Option<u64>,
    pub ended_at_ms: Option<u64>,
}

/// An alert record (SPEC §2) as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertView {
    pub id: i64,
    pub kind: String,
    pub text: String,
    pub reason: Option<String>,
    pub supervision_id: Option<String>,
    pub call_id: Option<String>,
    pub at_ms: i64,
}

impl From<store::AlertRecord> for AlertView {
    fn from(a: store::AlertRecord) -> AlertView {
        AlertView {
            id: a.id.0,
            kind: a.kind,
            text: a.text,
            reason: a.reason,
            supervision_id: a.supervision_id,
            call_id: a.call_id,
            at_ms: a.at.0,
        }
    }
}

/// An audit record (SPEC §4) as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditView {
    pub id: i64,
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub supervision_id: Option<String>,
    pub call_id: Option<String>,
    pub mode: Option<&'static str>,
    pub outcome: String,
    pub detail: Option<String>,
}

impl From<store::AuditRecord> for AuditView {
    fn from(a: store::AuditRecord) -> AuditView {
        AuditView {
            id: a.id.0,
            at_ms: a.at.0,
            actor: a.actor,
            action: a.action,
            supervision_id: a.supervision_id,
            call_id: a.call_id,
            mode: a.mode.map(Mode::as_str),
            outcome: a.outcome,
            detail: a.detail,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

/// A leg as recorded, and as stored in the `media` JSON columns.
#[derive(Debug, Clone, Copy)]
struct LegRecord {
    local: Option<SocketAddr>,
    remote: Option<SocketAddr>,
    /// `remote` is the source the leg latched to, not one the softswitch gave.
    latched: bool,
    /// The party is on hold (the engine's leg is told so, see [`AppState::call_event`]).
    held: bool,
    codec: Codec,
    /// The statistics when the leg's media was released (the engine forgets them then).
    final_stats: Option<StatsView>,
}

/// [`LegRecord`]'s JSON form in the store.
#[derive(Debug, Serialize, Deserialize)]
struct StoredLeg {
    local: Option<SocketAddr>,
    remote: Option<SocketAddr>,
    /// Absent in records written before the latched address was kept (they had none).
    #[serde(default)]
    latched: bool,
    #[serde(default)]
    held: bool,
    codec: String,
    #[serde(default)]
    stats: Option<StatsView>,
}

impl LegRecord {
    fn new(local: Option<SocketAddr>, req: LegRequest) -> LegRecord {
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
    fn configured_remote(&self) -> Option<SocketAddr> {
        self.remote.filter(|_| !self.latched)
    }

    /// Records the source a latching leg locked to. A configured remote stands (it may have
    /// been set after the leg latched, and the leg is strict on it now): false then.
    fn latch(&mut self, remote: SocketAddr) -> bool {
        if self.configured_remote().is_some() {
            return false;
        }
        self.remote = Some(remote);
        self.latched = true;
        true
    }

    fn stored(&self) -> StoredLeg {
        StoredLeg {
            local: self.local,
            remote: self.remote,
            latched: self.latched,
            held: self.held,
            codec: self.codec.name().to_owned(),
            stats: self.final_stats,
        }
    }

    /// A leg from the store: whatever it holds, something to show.
    fn from_stored(value: Option<&serde_json::Value>) -> LegRecord {
        let stored = value.and_then(|v| StoredLeg::deserialize(v).ok());
        match stored {
            Some(s) => LegRecord {
                local: s.local,
                remote: s.remote,
                latched: s.latched && s.remote.is_some(),
                held: s.held,
                codec: s.codec.parse().unwrap_or(Codec::Pcmu),
                final_stats: Some(s.stats.unwrap_or_default()),
            },
            None => LegRecord {
                local: None,
                remote: None,
                latched: false,
                held: false,
                codec: Codec::Pcmu,
                final_stats: Some(StatsView::default()),
            },
        }
    }
}

#[derive(Debug)]
struct CallRecord {
    /// Creation order, for listing.
    seq: u64,
    /// The engine's call while its media is anchored (`None` once ended, or when loaded from
    /// the store).
    engine: Option<engine::CallId>,
    state: CallState,
    direction: Direction,
    web: bool,
    agent_id: Option<String>,
    agent_answered: bool,
    flags: Flags,
    hung_up: HungUp,
    customer: LegRecord,
    agent: LegRecord,
    supervisions: Vec<SupervisionId>,
    created_at_ms: u64,
    ended_at_ms: Option<u64>,
}

impl CallRecord {
    fn leg_mut(&mut self, party: Party) -> &mut LegRecord {
        match party {
            Party::Customer => &mut self.customer,
            Party::Agent => &mut self.agent,
        }
    }

    fn facts(&self, id: CallId) -> CallFacts {
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

    fn stored(&self, id: CallId, deleted_at_ms: Option<u64>) -> store::CallRecord {
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
    fn from_stored(c: &store::CallRecord, seq: u64) -> CallRecord {
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
        }
    }
}

#[derive(Debug)]
struct SupervisionRecord {
    seq: u64,
    call: CallId,
    /// `Some` while the session is open.
    session: Option<Session>,
    state: SupervisionState,
    mode: Mode,
    failure: Option<String>,
    abort: Option<String>,
    supervisor_id: Option<String>,
    agent_id: Option<String>,
    registered_number: Option<String>,
    beep: bool,
    /// Follows the agent to their next calls (SPEC §2 persistent supervision).
    persistent: bool,
    leg: LegRecord,
    /// The supervisor's leg in the engine while media is connected; engine leg ids are reused
    /// once released, so this names the leg only while it is `Some`.
    media: Option<(engine::CallId, LegId)>,
    /// The session's answer deadline as indexed in [`Inner::deadlines`].
    deadline_ms: Option<u64>,
    created_at_ms: u64,
    started_at_ms: Option<u64>,
    ended_at_ms: Option<u64>,
    /// When the request arrived, for `earshot_supervision_setup_seconds` (real time).
    requested: Instant,
}

impl SupervisionRecord {
    fn stored(&self, id: SupervisionId) -> store::SupervisionRecord {
        store::SupervisionRecord {
            id: id.to_string(),
            call_id: Some(self.call.to_string()),
            supervisor_id: self.supervisor_id.clone(),
            agent_id: self.agent_id.clone(),
            state: self.state.stored(),
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
    fn from_stored(s: &store::SupervisionRecord, call: CallId, seq: u64) -> SupervisionRecord {
        let state = SupervisionState::from_stored(s.state);
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

    fn scope(&self) -> EventScope {
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

    fn event_payload(&self, id: SupervisionId) -> serde_json::Value {
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
struct Records {
    calls: HashMap<CallId, CallRecord>,
    supervisions: HashMap<SupervisionId, SupervisionRecord>,
    by_engine_call: HashMap<engine::CallId, CallId>,
    next_seq: u64,
}

impl Records {
    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn call(&self, id: CallId) -> Result<&CallRecord, StateError> {
        self.calls.get(&id).ok_or(StateError::CallNotFound(id))
    }

    fn call_mut(&mut self, id: CallId) -> Result<&mut CallRecord, StateError> {
        self.calls.get_mut(&id).ok_or(StateError::CallNotFound(id))
    }

    fn active_call(&self, id: CallId) -> Result<&CallRecord, StateError> {
        let call = self.call(id)?;
        match call.state {
            CallState::Active => Ok(call),
            CallState::Ended => Err(StateError::CallEnded(id)),
        }
    }

    fn supervision(&self, id: SupervisionId) -> Result<&SupervisionRecord, StateError> {
        self.supervisions
            .get(&id)
            .ok_or(StateError::SupervisionNotFound(id))
    }

    fn fresh_call_id(&self) -> Result<CallId, StateError> {
        loop {
            let id = CallId::random().map_err(StateError::Random)?;
            if !self.calls.contains_key(&id) {
                return Ok(id);
            }
        }
    }

    fn fresh_supervision_id(&self) -> Result<SupervisionId, StateError> {
        loop {
            let id = SupervisionId::random().map_err(StateError::Random)?;
            if !self.supervisions.contains_key(&id) {
                return Ok(id);
            }
        }
    }

    /// The open supervisions of a call, oldest first.
    fn open_supervisions(&self, call: CallId) -> Vec<SupervisionId> {
        self.calls.get(&call).map_or_else(Vec::new, |c| {
            c.supervisions
                .iter()
                .copied()
                .filter(|s| self.supervisions.get(s).is_some_and(|s| s.state.is_open()))
                .collect()
        })
    }

    /// The supervision whose media is on an engine leg, if any.
    fn supervision_on_leg(&self, call: engine::CallId, leg: LegId) -> Option<SupervisionId> {
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
fn released(result: Result<(), EngineError>, what: &str) -> Result<(), EngineError> {
    match result {
        Err(err @ (EngineError::UnknownCall | EngineError::UnknownLeg)) => {
            tracing::warn!(%err, what, "data plane had already released it");
            Ok(())
        }
        other => other,
    }
}

fn leg_spec(req: LegRequest) -> LegSpec {
    LegSpec {
        remote: req.remote,
        codec: req.codec,
    }
}

/// A supervision closed outside its lifecycle, its end not yet committed (see
/// [`AppState::close_supervision`]).
struct Closed {
    id: SupervisionId,
    stored: store::SupervisionRecord,
    scope: EventScope,
    payload: serde_json::Value,
    alert: NewAlert,
    now: u64,
}

/// One step of a session: an input, or its answer timeout.
enum Step {
    Input(Input),
    Timeout,
}

/// The audit record of a session's output, as stored.
fn new_audit(a: &lifecycle::AuditRecord) -> NewAudit {
    let (action, outcome) = match a.action {
        AuditAction::Start => ("start", "ok"),
        AuditAction::ModeChange => ("mode_change", "ok"),
        AuditAction::Stop => ("stop", "ok"),
        AuditAction::Denial => ("denial", "denied"),
        AuditAction::Failure => ("failure", "failed"),
        AuditAction::Abort => ("abort", "aborted"),
    };
    let mut detail = Vec::new();
    if !a.agent.0.is_empty() {
        detail.push(format!("agent {}", a.agent.0));
    }
    if let Some(alert) = a.alert {
        detail.push(format!("alert {}", alert.code()));
    }
    NewAudit {
        at: to_unix_ms(a.at_ms),
        actor: actor(&a.supervisor.0),
        action: format!("supervision.{action}"),
        supervision_id: Some(a.session.to_string()),
        call_id: Some(a.call.to_string()),
        mode: a.mode,
        outcome: outcome.to_owned(),
        detail: (!detail.is_empty()).then(|| detail.join("; ")),
    }
}

/// Who acted, in an audit record: the supervisor the request named (access control makes it
/// the caller's own id for supervisors; admins may act on behalf of anyone).
fn actor(supervisor_id: &str) -> String {
    if supervisor_id.is_empty() {
        "api".to_owned()
    } else {
        format!("user:{supervisor_id}")
    }
}

struct Inner {
    engine: Engine,
    records: Mutex<Records>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    settings: Settings,
    /// The open sessions' answer deadlines, soonest first. Its own lock, never held across
    /// I/O, so the timer can read it without waiting for a commit.
    deadlines: Mutex<BTreeSet<(u64, SupervisionId)>>,
    /// Signalled when a deadline is added, so the timer re-arms.
    deadline_armed: Notify,
    /// Every token's hash (access control looks requests up here, not in the store).
    tokens: TokenCache,
    /// Bumped after every committed write (`store` is wrapped in a
    /// [`crate::http::events::Notifying`]): wakes the event feed, which then reads the event log.
    commits: tokio::sync::watch::Sender<u64>,
    /// The event log's pages as they become durable, read once for every SSE stream.
    feed: crate::http::events::Feed,
    /// Groups and agents (SPEC §3).
    center: crate::app::center::Center,
}

/// The control plane's shared state: the engine handle, the records, the store, the clock, the
/// metrics. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

/// A mutex whose holder panicked still guards consistent records (each step that can panic
/// leaves them consistent), so keep serving.
fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AppState {
    /// Wraps a running engine and an opened store: closes what a previous run left open
    /// (SPEC §7: stale sessions are closed with an alert, not resumed; open calls are ended)
    /// and loads the most recent calls and supervisions ([`PAGE_LIMIT_MAX`] of each; older
    /// ones are still answered by id). `metrics` must be registered in the registry the engine
    /// was started with, so `/metrics` shows both.
    pub fn new(
        engine: Engine,
        metrics: Metrics,
        settings: Settings,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<AppState> {
        let recovery = store
            .recover_after_restart(to_unix_ms(clock.now_ms()))
            .context("cannot close the sessions left open by the previous run")?;
        for closed in &recovery.sessions {
            metrics.alert(ALERT_KIND_ABORTED);
            tracing::warn!(
                supervision = %closed.supervision.id,
                was = closed.previous_state.as_str(),
                "supervision left open by the previous run closed (not resumed)"
            );
        }
        if !recovery.calls.is_empty() {
            tracing::warn!(
                calls = recovery.calls.len(),
                "calls left open by the previous run ended (their media did not survive)"
            );
        }
        let records = load(store.as_ref()).context("cannot load the recent history")?;
        let tokens = TokenCache::load(store.as_ref())?;
        let center = crate::app::center::Center::load(store.as_ref(), clock.now_ms())
            .context("cannot load the groups and agents")?;
        let (commits, _) = tokio::sync::watch::channel(0);
        let store: Arc<dyn Store> =
            Arc::new(crate::http::events::Notifying::new(store, commits.clone()));
        Ok(AppState {
            inner: Arc::new(Inner {
                engine,
                records: Mutex::new(records),
                store,
                clock,
                metrics,
                settings,
                deadlines: Mutex::new(BTreeSet::new()),
                deadline_armed: Notify::new(),
                tokens,
                commits,
                feed: crate::http::events::Feed::default(),
                center,
            }),
        })
    }

    /// A fresh registry, an engine started from `config`, the store it names, and the wall
    /// clock. The configuration should have been validated.
    pub fn start(config: &Config) -> anyhow::Result<AppState> {
        AppState::start_with(config, Arc::new(SystemClock))
    }

    /// [`AppState::start`] with another clock (tests: a [`crate::clock::ManualClock`]).
    pub fn start_with(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<AppState> {
        let path = &config.store.path;
        let store = SqliteStore::open(path)
            .with_context(|| format!("cannot open the database {}", path.display()))?;
        let registry = prometheus::Registry::new();
        let engine = Engine::start(config.engine_config(), &registry)
            .context("cannot start the data plane")?;
        let metrics =
            Metrics::new(&registry).context("cannot register the control plane's metrics")?;
        let state = AppState::new(
            engine,
            metrics,
            Settings::from_config(config),
            Arc::new(store),
            clock,
        )?;
        if let Some(token) =
            crate::app::tokens::bootstrap_admin(&state, config.auth.admin_token.as_deref())?
        {
            // Shown this once: only its hash is stored.
            tracing::warn!(
                "no admin token configured: generated one, shown only now; use it as \
                 `Authorization: Bearer {}` (or set [auth] admin_token / EARSHOT_ADMIN_TOKEN)",
                token.expose()
            );
        }
        Ok(state)
    }

    /// The token cache (access control).
    pub fn tokens(&self) -> &TokenCache {
        &self.inner.tokens
    }

    /// Groups and agents.
    pub fn center(&self) -> &crate::app::center::Center {
        &self.inner.center
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub fn clock(&self) -> &dyn Clock {
        self.inner.clock.as_ref()
    }

    /// The durable store (tests read it directly).
    pub fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    /// The SSE streams' shared feed of the event log.
    pub fn feed(&self) -> &crate::http::events::Feed {
        &self.inner.feed
    }

    /// Changes after every committed write to the store (the event feed and the webhook
    /// delivery wait on it).
    pub fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.commits.subscribe()
    }

    fn records(&self) -> MutexGuard<'_, Records> {
        relock(&self.inner.records)
    }

    fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    fn check_family(
        &self,
        field: &'static str,
        remote: Option<SocketAddr>,
    ) -> Result<(), StateError> {
        let media_ip = self.inner.settings.media_ip;
        match remote {
            Some(remote) if remote.is_ipv4() != media_ip.is_ipv4() => {
                Err(StateError::AddressFamily {
                    field,
                    remote,
                    media_ip,
                })
            }
            _ => Ok(()),
        }
    }

    // ---- views ----

    fn leg_view(&self, live: Option<(engine::CallId, LegId)>, record: &LegRecord) -> LegView {
        let stats = record
            .final_stats
            .or_else(|| {
                live.and_then(|(call, leg)| self.inner.engine.leg_stats(call, leg))
                    .map(StatsView::from)
            })
            .unwrap_or_default();
        LegView {
            local: record.local,
            remote: record.remote,
            remote_source: record.remote.map(|_| {
                if record.latched {
                    RemoteSource::Latched
                } else {
                    RemoteSource::Configured
                }
            }),
            codec: record.codec.name(),
            held: record.held,
            stats,
        }
    }

    fn call_view(&self, id: CallId, call: &CallRecord) -> CallView {
        let live = |leg| call.engine.map(|c| (c, leg));
        CallView {
            id,
            state: call.state,
            direction: call.direction.as_str(),
            agent_id: call.agent_id.clone(),
            web: call.web,
            agent_answered: call.agent_answered,
            flags: call.flags,
            hung_up: call.hung_up,
            legs: LegsView {
                customer: self.leg_view(live(LegId::CUSTOMER), &call.customer),
                agent: self.leg_view(live(LegId::AGENT), &call.agent),
            },
            supervisions: call.supervisions.clone(),
            created_at_ms: call.created_at_ms,
            ended_at_ms: call.ended_at_ms,
        }
    }

    fn supervision_view(&self, id: SupervisionId, sup: &SupervisionRecord) -> SupervisionView {
        SupervisionView {
            id,
            call_id: sup.call,
            state: sup.state,
            mode: sup.mode.as_str(),
            failure: sup.failure.clone(),
            abort: sup.abort.clone(),
            supervisor_id: sup.supervisor_id.clone(),
            agent_id: sup.agent_id.clone(),
            registered_number: sup.registered_number.clone(),
            beep: sup.beep,
            persistent: sup.persistent,
            leg: self.leg_view(sup.media, &sup.leg),
            created_at_ms: sup.created_at_ms,
            started_at_ms: sup.started_at_ms,
            ended_at_ms: sup.ended_at_ms,
        }
    }

    fn call_view_of(&self, r: &Records, id: CallId) -> Result<CallView, StateError> {
        Ok(self.call_view(id, r.call(id)?))
    }

    fn supervision_view_of(
        &self,
        r: &Records,
        id: SupervisionId,
    ) -> Result<SupervisionView, StateError> {
        Ok(self.supervision_view(id, r.supervision(id)?))
    }

    // ---- calls ----

    /// `GET /v1/calls`: every call in memory (since start, and the recent history loaded at
    /// start), active and ended, oldest first.
    pub fn calls(&self) -> Vec<CallView> {
        let r = self.records();
        let mut calls: Vec<(&CallId, &CallRecord)> = r.calls.iter().collect();
        calls.sort_by_key(|(_, c)| c.seq);
        calls
            .into_iter()
            .map(|(id, c)| self.call_view(*id, c))
            .collect()
    }

    /// `GET /v1/calls/{id}`: from memory, else from the store's history (not if deleted).
    pub fn call(&self, id: CallId) -> Result<CallView, StateError> {
        if let Ok(view) = self.call_view_of(&self.records(), id) {
            return Ok(view);
        }
        let key = id.to_string();
        let found = self.inner.store.read(|r| {
            let Some(call) = r.call(&key)? else {
                return Ok(None);
            };
            let sups = r.supervisions_of_call(&key)?;
            Ok(Some((call, sups)))
        })?;
        match found {
            Some((call, sups)) if call.deleted_at.is_none() => {
                let mut record = CallRecord::from_stored(&call, 0);
                record.supervisions = sups.iter().filter_map(|s| s.id.parse().ok()).collect();
                Ok(self.call_view(id, &record))
            }
            _ => Err(StateError::CallNotFound(id)),
        }
    }

    /// `POST /v1/calls`.
    pub fn create_call(&self, req: NewCall) -> Result<CallView, StateError> {
        self.check_family("customer.remote", req.customer.remote)?;
        self.check_family("agent.remote", req.agent.remote)?;
        let mut r = self.records();
        let id = r.fresh_call_id()?;
        let media = self
            .inner
            .engine
            .create_call(leg_spec(req.customer), leg_spec(req.agent))?;
        let seq = r.seq();
        let record = CallRecord {
            seq,
            engine: Some(media.call),
            state: CallState::Active,
            direction: req.direction,
            web: req.web,
            agent_id: req.agent_id,
            agent_answered: req.agent_answered || req.direction == Direction::Inbound,
            flags: Flags::default(),
            hung_up: HungUp::default(),
            customer: LegRecord::new(Some(media.customer), req.customer),
            agent: LegRecord::new(Some(media.agent), req.agent),
            supervisions: Vec::new(),
            created_at_ms: self.now_ms(),
            ended_at_ms: None,
        };
        let stored = record.stored(id, None);
        let committed = self.inner.store.write(|w| {
            w.create_call(&stored)?;
            append_event(
                w,
                "call.created",
                serde_json::json!({"call_id": id, "direction": record.direction.as_str(),
                                   "agent_id": record.agent_id, "web": record.web}),
                call_scope(&record),
                record.created_at_ms,
            )?;
            // SPEC §3 subscriptions: a business call is a service call (web calls are not).
            match &record.agent_id {
                Some(agent) if !record.web => self.inner.center.notify_service_call(
                    w,
                    agent,
                    &id.to_string(),
                    record.created_at_ms,
                ),
                _ => Ok(()),
            }
        });
        if let Err(err) = committed {
            // Not acknowledged: give the media back.
            if let Err(e) = released(self.inner.engine.delete_call(media.call), "call") {
                tracing::error!(err = %e, "cannot release an unrecorded call's media");
            }
            return Err(err.into());
        }
        r.by_engine_call.insert(media.call, id);
        let follow = record.agent_id.clone().filter(|_| !record.web);
        r.calls.insert(id, record);
        self.inner.metrics.call_started();
        if let Some(agent) = follow {
            self.attach_followers(&mut r, id, &agent, self.now_ms());
        }
        tracing::debug!(call = %id, customer = %media.customer, agent = %media.agent, "call created");
        self.call_view_of(&r, id)
    }

    /// `DELETE /v1/calls/{id}`: its open supervisions are closed (`aborted`, `call_deleted`),
    /// its media released if still anchored, and the API forgets it (the store keeps it as
    /// history, marked deleted).
    ///
    /// One transaction records the supervisions' ends and the call's (after each
    /// supervision's audit record, committed before its leg is released).
    pub fn delete_call(&self, id: CallId) -> Result<(), StateError> {
        let mut r = self.records();
        r.call(id)?;
        let now = self.now_ms();
        let mut closed = Vec::new();
        if let Err(err) = self.release_call(&mut r, id, now, &mut closed) {
            // Those already closed (leg released) are recorded all the same.
            if !closed.is_empty() {
                self.commit_closed(&closed, |_| Ok(()))?;
            }
            return Err(err);
        }
        let call = r.call(id)?;
        let stored = call.stored(id, Some(now));
        let scope = call_scope(call);
        self.commit_closed(&closed, |w| {
            w.update_call(&stored)?;
            append_event(
                w,
                "call.deleted",
                serde_json::json!({"call_id": id}),
                scope.clone(),
                now,
            )
        })?;
        if let Some(call) = r.calls.remove(&id) {
            debug_assert_eq!(call.state, CallState::Ended);
        }
        tracing::debug!(call = %id, "call deleted");
        Ok(())
    }

    /// The media side of [`AppState::delete_call`]: closes the call's open supervisions (each
    /// pushed onto `closed` once its leg is released, its end left to commit), then releases
    /// the call's media if still anchored.
    fn release_call(
        &self,
        r: &mut Records,
        id: CallId,
        now: u64,
        closed: &mut Vec<Closed>,
    ) -> Result<(), StateError> {
        for sup in r.open_supervisions(id) {
            closed.extend(self.close_supervision(
                r,
                sup,
                now,
                CALL_DELETED,
                "the call was deleted",
            )?);
        }
        self.end_call_media(r, id, now)
    }

    /// `PATCH /v1/calls/{id}/legs/{party}`: the leg becomes strict-source on `remote`.
    pub fn set_remote(
        &self,
        id: CallId,
        party: Party,
        remote: SocketAddr,
    ) -> Result<LegView, StateError> {
        let mut r = self.records();
        let engine_call = r.active_call(id)?.engine.ok_or(StateError::CallEnded(id))?;
        self.check_family("remote", Some(remote))?;
        let leg = match party {
            Party::Customer => LegId::CUSTOMER,
            Party::Agent => LegId::AGENT,
        };
        self.inner.engine.set_remote(engine_call, leg, remote)?;
        let call = r.call_mut(id)?;
        let record = call.leg_mut(party);
        record.remote = Some(remote);
        record.latched = false;
        let stored = call.stored(id, None);
        self.inner.store.write(|w| w.update_call(&stored))?;
        let record = *r.call_mut(id)?.leg_mut(party);
        Ok(self.leg_view(Some((engine_call, leg)), &record))
    }

    /// `POST /v1/calls/{id}/events`.
    pub fn call_event(&self, id: CallId, event: CallEvent) -> Result<CallView, StateError> {
        let mut r = self.records();
        r.active_call(id)?;
        let now = self.now_ms();
        match event {
            CallEvent::Flag { flag, set } => {
                let was = *r.call_mut(id)?.flags.slot(flag);
                if set && !was {
                    let input = || match flag {
                        Flag::OnHold => Input::CallHeld,
                        Flag::Consult => Input::ConsultStarted,
                        Flag::SecurePayment => Input::SecurePaymentStarted,
                        Flag::Conference => Input::ConferenceStarted,
                    };
                    // Each session's step is committed as it happens: if a later one fails
                    // (engine ring full), the flag stays clear and a retry finishes the job
                    // (the sessions already ended refuse the input, which is ignored).
                    self.feed_call_sessions(&mut r, id, now, input)?;
                }
                if flag == Flag::OnHold && set != was {
                    self.hold_parties(&mut r, id, set)?;
                }
                *r.call_mut(id)?.flags.slot(flag) = set;
                tracing::debug!(call = %id, flag = flag.as_str(), set, "call flag");
                self.persist_call(&r, id, "call.updated", now)?;
            }
            CallEvent::Hangup(party) => self.party_hung_up(&mut r, id, party, now)?,
            CallEvent::SupervisorHangup(sup) => {
                if r.supervision(sup)?.call != id {
                    return Err(StateError::SupervisionNotFound(sup));
                }
                match self.step(
                    &mut r,
                    sup,
                    now,
                    Step::Input(Input::Hangup {
                        party: HangupParty::Supervisor,
                    }),
                ) {
                    // Ended already: nothing to do (docs/api.md).
                    Err(StateError::Refused {
                        refused: Refused::Ended { .. },
                        ..
                    }) => {}
                    other => other?,
                }
            }
            CallEvent::Release => {
                self.feed_call_sessions(&mut r, id, now, || Input::CallReleasedByAgent)?;
                self.end_call_media(&mut r, id, now)?;
                self.persist_call(&r, id, "call.ended", now)?;
            }
            CallEvent::AgentAnswered => {
                if !r.call(id)?.agent_answered {
                    self.feed_call_sessions(&mut r, id, now, || Input::AgentAnswered)?;
                    r.call_mut(id)?.agent_answered = true;
                    self.persist_call(&r, id, "call.updated", now)?;
                }
            }
        }
        self.call_view_of(&r, id)
    }

    /// `hold` / `resume`: the call is held as a whole, so both parties' legs are marked (a held
    /// leg is timed out by `media.silent_timeout_secs` only; on resume the media timeout counts
    /// afresh). The engine first: if its ring is full the records are unchanged and a retry
    /// does it all again (setting a leg to the state it has changes nothing).
    fn hold_parties(&self, r: &mut Records, id: CallId, held: bool) -> Result<(), StateError> {
        let call = r.call_mut(id)?;
        if let Some(engine_call) = call.engine {
            for leg in [LegId::CUSTOMER, LegId::AGENT] {
                self.inner.engine.set_held(engine_call, leg, held)?;
            }
        }
        call.customer.held = held;
        call.agent.held = held;
        tracing::debug!(call = %id, held, "parties' legs held");
        Ok(())
    }

    /// A party's leg ended (BYE reported, or media timeout): the sessions hear of it; the call
    /// ends when both parties have gone. A party already gone: nothing.
    fn party_hung_up(
        &self,
        r: &mut Records,
        id: CallId,
        party: Party,
        now: u64,
    ) -> Result<(), StateError> {
        let gone = match party {
            Party::Customer => r.call(id)?.hung_up.customer,
            Party::Agent => r.call(id)?.hung_up.agent,
        };
        if gone {
            return Ok(());
        }
        let hangup = match party {
            Party::Customer => HangupParty::Customer,
            Party::Agent => HangupParty::Agent,
        };
        self.feed_call_sessions(r, id, now, || Input::Hangup { party: hangup })?;
        let call = r.call_mut(id)?;
        match party {
            Party::Customer => call.hung_up.customer = true,
            Party::Agent => call.hung_up.agent = true,
        }
        tracing::debug!(call = %id, party = party.as_str(), "party hung up");
        if call.hung_up.customer && call.hung_up.agent {
            self.end_call_media(r, id, now)?;
            self.persist_call(r, id, "call.ended", now)
        } else {
            self.persist_call(r, id, "call.updated", now)
        }
    }

    /// Feeds a call event to every open session of the call, in order. A session that refuses
    /// it (it does not fit its state: e.g. a supervisor already in the no-call message) is left
    /// as it is.
    fn feed_call_sessions(
        &self,
        r: &mut Records,
        id: CallId,
        now: u64,
        input: impl Fn() -> Input,
    ) -> Result<(), StateError> {
        for sup in r.open_supervisions(id) {
            match self.step(r, sup, now, Step::Input(input())) {
                Err(StateError::Refused {
                    supervision,
                    refused,
                }) => {
                    tracing::debug!(%supervision, %refused, "call event not for this session");
                }
                other => other?,
            }
        }
        Ok(())
    }

    /// SPEC §2 persistent supervision: the sessions following `agent` and waiting for a call
    /// are given the agent's new call `call`. Whether the supervisor may still listen is their
    /// grant, checked again. A session that cannot take the call now (an outbound call the
    /// agent has not answered) keeps waiting.
    fn attach_followers(&self, r: &mut Records, call: CallId, agent: &str, now: u64) {
        let waiting: Vec<SupervisionId> = r
            .supervisions
            .iter()
            .filter(|(_, s)| {
                s.persistent
                    && s.state == SupervisionState::NoCall
                    && s.agent_id.as_deref() == Some(agent)
            })
            .map(|(id, _)| *id)
            .collect();
        let Ok(facts) = r.call(call).map(|c| c.facts(call)) else {
            return;
        };
        for id in waiting {
            let Some(sup) = r.supervisions.get_mut(&id) else {
                continue;
            };
            let may_listen = match &sup.supervisor_id {
                Some(supervisor) => self
                    .inner
                    .store
                    .read(|rd| rd.active_grant(supervisor, agent))
                    .is_ok_and(|g| g.is_some()),
                None => false,
            };
            let previous = std::mem::replace(&mut sup.call, call);
            let input = Input::AgentNextCall {
                call: facts,
                supervisor_may_listen: may_listen,
            };
            match self.step(r, id, now, Step::Input(input)) {
                Ok(()) => {
                    if let Ok(c) = r.call_mut(call) {
                        c.supervisions.push(id);
                    }
                    tracing::info!(supervision = %id, %call, "persistent supervision follows the agent to a new call");
                }
                Err(err) => {
                    if let Some(sup) = r.supervisions.get_mut(&id) {
                        sup.call = previous;
                    }
                    tracing::info!(supervision = %id, %call, %err, "persistent supervision keeps waiting");
                }
            }
        }
    }

    /// Releases an active call's media (the engine drops the legs still attached) and marks it
    /// ended. Its sessions have been told first.
    fn end_call_media(&self, r: &mut Records, id: CallId, now: u64) -> Result<(), StateError> {
        let call = r.call(id)?;
        if call.state == CallState::Ended {
            return Ok(());
        }
        let Some(engine_call) = call.engine else {
            return Ok(());
        };
        let engine = &self.inner.engine;
        // The engine forgets the statistics with the call: keep them first.
        let customer = engine.leg_stats(engine_call, LegId::CUSTOMER);
        let agent = engine.leg_stats(engine_call, LegId::AGENT);
        released(engine.delete_call(engine_call), "call")?;
        for sup in r.call(id)?.supervisions.clone() {
            // A leg still attached went with the call (no session should have one by now).
            if let Some(s) = r.supervisions.get_mut(&sup)
                && let Some((_, leg)) = s.media.take()
            {
                tracing::warn!(supervision = %sup, leg = leg.0, "supervisor leg released with its call");
                s.leg.final_stats = Some(StatsView::default());
                self.inner.metrics.supervision_ended(s.mode);
            }
        }
        r.by_engine_call.remove(&engine_call);
        let call = r.call_mut(id)?;
        call.state = CallState::Ended;
        call.engine = None;
        call.ended_at_ms = Some(now);
        call.customer.final_stats = Some(customer.unwrap_or_default().into());
        call.agent.final_stats = Some(agent.unwrap_or_default().into());
        self.inner.metrics.call_ended();
        tracing::debug!(call = %id, "call ended");
        Ok(())
    }

    fn persist_call(
        &self,
        r: &Records,
        id: CallId,
        event_type: &str,
        now: u64,
    ) -> Result<(), StateError> {
        let call = r.call(id)?;
        let stored = call.stored(id, None);
        let payload = serde_json::json!({
            "call_id": id,
            "state": match call.state { CallState::Active => "active", CallState::Ended => "ended" },
            "flags": call.flags,
            "hung_up": call.hung_up,
            "agent_answered": call.agent_answered,
        });
        let scope = call_scope(call);
        self.inner.store.write(|w| {
            w.update_call(&stored)?;
            append_event(w, event_type, payload.clone(), scope.clone(), now)
        })?;
        Ok(())
    }

    // ---- supervisions ----

    /// `GET /v1/supervisions`: every supervision in memory, open and ended, oldest first.
    pub fn supervisions(&self) -> Vec<SupervisionView> {
        let r = self.records();
        let mut sups: Vec<(&SupervisionId, &SupervisionRecord)> = r.supervisions.iter().collect();
        sups.sort_by_key(|(_, s)| s.seq);
        sups.into_iter()
            .map(|(id, s)| self.supervision_view(*id, s))
            .collect()
    }

    /// `GET /v1/supervisions/{id}`: from memory, else from the store's history.
    pub fn supervision(&self, id: SupervisionId) -> Result<SupervisionView, StateError> {
        if let Ok(view) = self.supervision_view_of(&self.records(), id) {
            return Ok(view);
        }
        let key = id.to_string();
        let found = self.inner.store.read(|r| r.supervision(&key))?;
        let record = found.and_then(|s| {
            let call = s.call_id.as_deref()?.parse().ok()?;
            Some(SupervisionRecord::from_stored(&s, call, 0))
        });
        match record {
            Some(record) => Ok(self.supervision_view(id, &record)),
            None => Err(StateError::SupervisionNotFound(id)),
        }
    }

    /// `POST /v1/calls/{id}/supervisions`: a new session, started (SPEC §2 start checks); with
    /// `answered`, the supervisor's leg is reported ringing and answered at once.
    pub fn create_supervision(
        &self,
        call_id: CallId,
        req: NewSupervision,
    ) -> Result<SupervisionView, StateError> {
        let mut r = self.records();
        let call = r.active_call(call_id)?;
        let max = self.inner.settings.max_supervisors_per_call;
        if r.open_supervisions(call_id).len() >= max {
            return Err(StateError::TooManySupervisors { call: call_id, max });
        }
        self.check_family("supervisor.remote", req.supervisor.remote)?;
        let id = r.fresh_supervision_id()?;
        let now = self.now_ms();
        let facts = call.facts(call_id);
        let agent_id = call.agent_id.clone();
        let engine_call = call.engine;
        // The agent's groups' policies (SPEC §2): a cap on simultaneous monitors, the beep.
        let policy = agent_id
            .as_deref()
            .map(|agent| self.inner.center.supervision_policy(agent))
            .unwrap_or_default();
        if let (Some(max), Some(agent)) = (policy.max_monitors, agent_id.as_deref()) {
            let monitoring = r
                .supervisions
                .values()
                .filter(|s| s.state.is_open() && s.agent_id.as_deref() == Some(agent))
                .count();
            if monitoring >= max as usize {
                return Err(StateError::MonitorLimit {
                    agent: agent.to_owned(),
                    max,
                });
            }
        }
        // Without a number in the request, the supervisor's registered one (their settings).
        let registered_number = match (&req.registered_number, &req.supervisor_id) {
            (Some(n), _) => Some(n.to_string()),
            (None, Some(sup)) => self
                .inner
                .store
                .read(|r| crate::app::center::registered_number(r, sup))?,
            (None, None) => None,
        };
        // Persistent: only with the supervisor's grant over the agent (else refused, audited).
        let scope = if req.persistent {
            let grant = match (&req.supervisor_id, &agent_id) {
                (Some(sup), Some(agent)) => self
                    .inner
                    .store
                    .read(|r| r.active_grant(sup, agent))?
                    .map(|g| lifecycle::GrantId(u64::try_from(g.id.0).unwrap_or_default())),
                _ => None,
            };
            SessionScope::Agent { grant_id: grant }
        } else {
            SessionScope::Call
        };
        let mut session = Session::new(id, self.inner.settings.answer_timeout);
        let start = Start {
            supervisor: SupervisorId(req.supervisor_id.clone().unwrap_or_default()),
            agent: AgentId(agent_id.clone().unwrap_or_default()),
            scope,
            call: facts,
            // Rights are checked, and a denial audited, by access control before this
            // (`access::check_supervision`).
            supervisor_may_listen: true,
            registered_number: registered_number.clone().unwrap_or_default(),
            answer_timeout: None,
        };
        let before = session.clone();
        let mut outputs = match session.handle(now, Input::Start(start)) {
            Ok(outputs) => outputs,
            Err(refused) => {
                // A web call: a denial, audited (SPEC §4) though nothing else is recorded.
                self.inner.store.write(|w| {
                    w.append_audit(&NewAudit {
                        at: to_unix_ms(now),
                        actor: actor(req.supervisor_id.as_deref().unwrap_or_default()),
                        action: "supervision.denial".to_owned(),
                        supervision_id: Some(id.to_string()),
                        call_id: Some(call_id.to_string()),
                        mode: None,
                        outcome: "denied".to_owned(),
                        detail: Some(refused.to_string()),
                    })
                })?;
                return Err(StateError::Refused {
                    supervision: id,
                    refused,
                });
            }
        };
        if let Some(calling_number) = req.answered.clone() {
            // The leg is already up: ringing, then answered (nothing to do if the start
            // failed: the session has ended).
            if !session.state().is_terminal() {
                for input in [
                    Input::SupervisorRinging,
                    Input::SupervisorAnswered { calling_number },
                ] {
                    outputs.extend(session.handle(now, input).map_err(|refused| {
                        StateError::Refused {
                            supervision: id,
                            refused,
                        }
                    })?);
                }
            }
        }
        let seq = r.seq();
        let mut sup = SupervisionRecord {
            seq,
            call: call_id,
            session: Some(session),
            state: SupervisionState::Requested,
            mode: Mode::Listen,
            failure: None,
            abort: None,
            supervisor_id: req.supervisor_id,
            agent_id,
            registered_number,
            beep: req
                .beep
                .or(policy.beep)
                .unwrap_or(self.inner.settings.agent_beep),
            persistent: req.persistent,
            leg: LegRecord::new(None, req.supervisor),
            media: None,
            deadline_ms: None,
            created_at_ms: now,
            started_at_ms: None,
            ended_at_ms: None,
            requested: Instant::now(),
        };
        if let Err(err) = self.carry_out(engine_call, id, &mut sup, before, outputs, now, true) {
            // Not recorded, so not acknowledged: nothing of it may stay in the engine.
            if let Some((call, leg)) = sup.media.take() {
                if let Err(e) = released(
                    self.inner.engine.remove_supervisor(call, leg),
                    "supervisor leg",
                ) {
                    tracing::error!(supervision = %id, err = %e, "cannot release an unrecorded supervisor leg");
                }
                self.inner.metrics.supervision_ended(sup.mode);
            }
            return Err(err);
        }
        r.call_mut(call_id)?.supervisions.push(id);
        r.supervisions.insert(id, sup);
        self.sync_deadline(&mut r, id);
        tracing::info!(supervision = %id, call = %call_id, state = r.supervision(id)?.state.as_str(), "supervision requested");
        self.supervision_view_of(&r, id)
    }

    /// `POST /v1/supervisions/{id}/events`: the softswitch reports the supervisor's leg.
    pub fn supervisor_event(
        &self,
        id: SupervisionId,
        event: SupervisorEvent,
    ) -> Result<SupervisionView, StateError> {
        let input = match event {
            SupervisorEvent::Ringing => Input::SupervisorRinging,
            SupervisorEvent::Answered { calling_number } => {
                Input::SupervisorAnswered { calling_number }
            }
            SupervisorEvent::Rejected => Input::SupervisorRejected,
            SupervisorEvent::Dnd => Input::SupervisorDnd,
            SupervisorEvent::Hangup => Input::Hangup {
                party: HangupParty::Supervisor,
            },
        };
        let mut r = self.records();
        let now = self.now_ms();
        self.step(&mut r, id, now, Step::Input(input))?;
        self.supervision_view_of(&r, id)
    }

    /// `PATCH /v1/supervisions/{id}`.
    pub fn set_mode(&self, id: SupervisionId, mode: Mode) -> Result<SupervisionView, StateError> {
        let mut r = self.records();
        let now = self.now_ms();
        self.step(&mut r, id, now, Step::Input(Input::SetMode(mode)))?;
        self.supervision_view_of(&r, id)
    }

    /// `DELETE /v1/supervisions/{id}`: stops it. Stopping an ended supervision changes nothing
    /// and answers it as it is.
    pub fn stop_supervision(&self, id: SupervisionId) -> Result<SupervisionView, StateError> {
        let mut r = self.records();
        let now = self.now_ms();
        match self.step(&mut r, id, now, Step::Input(Input::Stop)) {
            Err(StateError::Refused {
                refused: Refused::Ended { .. },
                ..
            }) => {}
            other => other?,
        }
        self.supervision_view_of(&r, id)
    }

    /// Feeds one step to a session and carries out its outputs; keeps the deadline index in
    /// step. A refused input changes nothing.
    fn step(
        &self,
        r: &mut Records,
        id: SupervisionId,
        now: u64,
        step: Step,
    ) -> Result<(), StateError> {
        let mut sup = r
            .supervisions
            .remove(&id)
            .ok_or(StateError::SupervisionNotFound(id))?;
        let engine_call = r.calls.get(&sup.call).and_then(|c| c.engine);
        let result = self.step_on(engine_call, id, &mut sup, now, step);
        r.supervisions.insert(id, sup);
        self.sync_deadline(r, id);
        result
    }

    fn step_on(
        &self,
        engine_call: Option<engine::CallId>,
        id: SupervisionId,
        sup: &mut SupervisionRecord,
        now: u64,
        step: Step,
    ) -> Result<(), StateError> {
        let refused = |refused| StateError::Refused {
            supervision: id,
            refused,
        };
        let Some(session) = sup.session.as_mut() else {
            return Err(refused(Refused::Ended {
                state: sup.state.as_str(),
            }));
        };
        // The session takes events in the order of time: a due answer timeout fires first
        // (the timer may be a little late), and is carried out even if the input is then
        // refused.
        if matches!(step, Step::Input(_)) && session.next_deadline().is_some_and(|d| now >= d) {
            self.step_on(engine_call, id, sup, now, Step::Timeout)?;
            return self.step_on(engine_call, id, sup, now, step);
        }
        let before = session.clone();
        let outputs = match step {
            Step::Input(input) => session.handle(now, input).map_err(refused)?,
            Step::Timeout => session.on_timeout(now),
        };
        if outputs.is_empty() {
            // Ringing, an outbound agent answering, a party leaving while the session goes
            // on: nothing the API shows or the store keeps.
            return Ok(());
        }
        self.carry_out(engine_call, id, sup, before, outputs, now, false)
    }

    /// Carries out a session's outputs in order (the lifecycle's contract): audit records are
    /// committed before the media command after them; then the engine; then the new state,
    /// the remaining audit records, the alerts and the events, in one transaction.
    ///
    /// If the engine refuses the media command, the session goes back to `before` (the
    /// request is refused, nothing changed), and the audit log says the command failed.
    #[allow(clippy::too_many_arguments)]
    fn carry_out(
        &self,
        engine_call: Option<engine::CallId>,
        id: SupervisionId,
        sup: &mut SupervisionRecord,
        before: Session,
        outputs: Vec<Output>,
        now: u64,
        new: bool,
    ) -> Result<(), StateError> {
        let mut audits: Vec<NewAudit> = Vec::new();
        let mut alerts: Vec<lifecycle::Alert> = Vec::new();
        let mut mode_changed = false;
        for output in outputs {
            let media = match &output {
                Output::Audit(a) => {
                    audits.push(new_audit(a));
                    continue;
                }
                Output::Alert(a) => {
                    alerts.push(a.clone());
                    continue;
                }
                Output::AnnounceNoCall => {
                    // The data plane has no announcement player yet: say so in the log.
                    tracing::info!(supervision = %id, "no call to supervise (announcement not played)");
                    continue;
                }
                Output::Ended { .. } => continue,
                Output::ConnectMedia { .. }
                | Output::SetMedia { .. }
                | Output::DisconnectMedia { .. } => output,
            };
            // SPEC §4: the audit is written before supervisor media flows. Before media starts
            // or changes mode it is also made durable here, under the records lock, even inside
            // `store::deferring` (the request's other commits wait for the sync after the lock
            // is released). Before a disconnect, committed is enough: no media flows on it,
            // and the request's answer still waits for the sync.
            if !audits.is_empty() {
                let starts_media = !matches!(media, Output::DisconnectMedia { .. });
                let durable = self
                    .inner
                    .store
                    .write(|w| {
                        for a in &audits {
                            w.append_audit(a)?;
                        }
                        Ok(())
                    })
                    .and_then(|()| {
                        if starts_media {
                            self.inner.store.sync()
                        } else {
                            Ok(())
                        }
                    });
                if let Err(err) = durable {
                    sup.session = Some(before);
                    return Err(err.into());
                }
                audits.clear();
            }
            if let Err(err) = self.media(engine_call, id, sup, &media) {
                let what = match media {
                    Output::ConnectMedia { .. } => "start",
                    Output::SetMedia { .. } => "mode_change",
                    _ => "disconnect",
                };
                self.audit_failed_media(id, sup, now, what, &err);
                sup.session = Some(before);
                return Err(err);
            }
            mode_changed |= matches!(media, Output::SetMedia { .. });
        }
        // A session that ended with its media still attached (none should): release it.
        let state = sup.session.as_ref().map(Session::state);
        let disconnect = Output::DisconnectMedia { call: sup.call };
        if state.is_some_and(|s| s.is_terminal())
            && sup.media.is_some()
            && let Err(err) = self.media(engine_call, id, sup, &disconnect)
        {
            tracing::error!(supervision = %id, %err, "cannot release an ended supervision's leg");
        }

        let previous = sup.state;
        if let Some(state) = state {
            sup.state = SupervisionState::of(state);
            if let Some(mode) = state.mode() {
                sup.mode = mode;
            }
            match state {
                lifecycle::State::Failed(reason) => sup.failure = Some(reason.code().to_owned()),
                lifecycle::State::Aborted(reason) => sup.abort = Some(reason.code().to_owned()),
                _ => {}
            }
            if matches!(
                state,
                lifecycle::State::Active { .. } | lifecycle::State::NoCall { .. }
            ) && sup.started_at_ms.is_none()
            {
                sup.started_at_ms = Some(now);
            }
            if state.is_terminal() {
                sup.ended_at_ms = Some(now);
                sup.session = None;
            }
        }
        let stored = sup.stored(id);
        let scope = sup.scope();
        let payload = sup.event_payload(id);
        let state_changed = new || previous != sup.state;
        let result = self.inner.store.write(|w| {
            for a in &audits {
                w.append_audit(a)?;
            }
            if new {
                w.create_supervision(&stored)?;
            } else {
                w.update_supervision(&stored)?;
            }
            if state_changed {
                let event_type = if new {
                    "supervision.created".to_owned()
                } else {
                    format!("supervision.{}", sup.state.as_str())
                };
                append_event(w, &event_type, payload.clone(), scope.clone(), now)?;
            }
            if mode_changed {
                append_event(
                    w,
                    "supervision.mode_changed",
                    payload.clone(),
                    scope.clone(),
                    now,
                )?;
            }
            for alert in &alerts {
                let record = NewAlert {
                    supervision_id: Some(alert.session.to_string()),
                    kind: alert.kind.code().to_owned(),
                    text: alert.kind.text().to_owned(),
                    at: to_unix_ms(alert.at_ms),
                    call_id: Some(alert.call.to_string()),
                    reason: Some(alert.reason.clone()),
                };
                raise_alert(w, &record, scope.clone(), alert.at_ms)?;
            }
            Ok(())
        });
        if result.is_ok() {
            for alert in &alerts {
                self.inner.metrics.alert(alert.kind.code());
                tracing::info!(supervision = %id, alert = alert.kind.code(), reason = %alert.reason, "alert");
            }
        }
        // The engine has done what it was told: memory says so even if the commit failed
        // (then the request is not acknowledged: an error).
        result.map_err(StateError::from)
    }

    /// One media command of a session, on the engine.
    fn media(
        &self,
        engine_call: Option<engine::CallId>,
        id: SupervisionId,
        sup: &mut SupervisionRecord,
        command: &Output,
    ) -> Result<(), StateError> {
        let engine = &self.inner.engine;
        match *command {
            Output::ConnectMedia { .. } => {
                let engine_call = engine_call.ok_or(StateError::CallEnded(sup.call))?;
                let media = engine.add_supervisor(
                    engine_call,
                    LegSpec {
                        // A source latched on a previous call's leg is not made strict on
                        // this one: the new leg latches afresh.
                        remote: sup.leg.configured_remote(),
                        codec: sup.leg.codec,
                    },
                    sup.beep,
                )?;
                sup.media = Some((engine_call, media.leg));
                sup.leg.local = Some(media.local);
                if sup.leg.latched {
                    sup.leg.remote = None;
                    sup.leg.latched = false;
                }
                sup.leg.final_stats = None;
                self.inner.metrics.supervision_started(Mode::Listen);
                self.inner
                    .metrics
                    .supervision_setup(sup.requested.elapsed().as_secs_f64());
                tracing::info!(supervision = %id, local = %media.local, beep = sup.beep, "supervisor media connected");
            }
            Output::SetMedia { mode, .. } => {
                let (call, leg) = sup.media.ok_or_else(|| {
                    StateError::Internal(format!("supervision {id} has no media to set"))
                })?;
                engine.set_mode(call, leg, mode)?;
                self.inner.metrics.mode_changed(sup.mode, mode);
                tracing::info!(supervision = %id, from = sup.mode.as_str(), to = mode.as_str(), "supervision mode");
            }
            Output::DisconnectMedia { .. } => {
                if let Some((call, leg)) = sup.media {
                    let stats = engine.leg_stats(call, leg);
                    released(engine.remove_supervisor(call, leg), "supervisor leg")?;
                    sup.media = None;
                    sup.leg.final_stats = Some(stats.unwrap_or_default().into());
                    self.inner.metrics.supervision_ended(sup.mode);
                    tracing::info!(supervision = %id, "supervisor media disconnected");
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Best effort: the media command after a committed audit record did not happen.
    fn audit_failed_media(
        &self,
        id: SupervisionId,
        sup: &SupervisionRecord,
        now: u64,
        what: &str,
        err: &StateError,
    ) {
        let record = NewAudit {
            at: to_unix_ms(now),
            actor: "system".to_owned(),
            action: format!("supervision.{what}"),
            supervision_id: Some(id.to_string()),
            call_id: Some(sup.call.to_string()),
            mode: None,
            outcome: "failed".to_owned(),
            detail: Some(format!("the media command was not carried out: {err}")),
        };
        if let Err(e) = self.inner.store.write(|w| w.append_audit(&record)) {
            tracing::error!(supervision = %id, err = %e, "cannot audit a failed media command");
        }
    }

    /// Ends an open supervision outside the lifecycle (its call was deleted): `aborted` with
    /// `reason`, an audit record (committed; durable before the caller answers), its leg
    /// released; then what is left to record — the new state, an alert (`aborted`) and an event
    /// — is returned for the caller to commit with its own change ([`AppState::commit_closed`]).
    /// `None`: already ended.
    fn close_supervision(
        &self,
        r: &mut Records,
        id: SupervisionId,
        now: u64,
        reason: &str,
        why: &str,
    ) -> Result<Option<Closed>, StateError> {
        let engine_call = r.calls.get(&r.supervision(id)?.call).and_then(|c| c.engine);
        let Some(sup) = r.supervisions.get_mut(&id) else {
            return Err(StateError::SupervisionNotFound(id));
        };
        if !sup.state.is_open() {
            return Ok(None);
        }
        let mode = sup.media.map(|_| sup.mode);
        let record = NewAudit {
            at: to_unix_ms(now),
            actor: "system".to_owned(),
            action: "supervision.abort".to_owned(),
            supervision_id: Some(id.to_string()),
            call_id: Some(sup.call.to_string()),
            mode,
            outcome: "aborted".to_owned(),
            detail: Some(format!("reason {reason}; was {}", sup.state.as_str())),
        };
        // SPEC §4: written before the media changes. Only a disconnect follows, so committed
        // is enough (no media flows on it); the caller's answer waits for the sync.
        self.inner.store.write(|w| w.append_audit(&record))?;
        let disconnect = Output::DisconnectMedia { call: sup.call };
        self.media(engine_call, id, sup, &disconnect)?;
        sup.state = SupervisionState::Aborted;
        sup.abort = Some(reason.to_owned());
        sup.ended_at_ms = Some(now);
        sup.session = None;
        let stored = sup.stored(id);
        let scope = sup.scope();
        let payload = sup.event_payload(id);
        let alert = NewAlert {
            supervision_id: Some(id.to_string()),
            kind: ALERT_KIND_ABORTED.to_owned(),
            text: format!("aborted – {}", reason.replace('_', " ")),
            at: to_unix_ms(now),
            call_id: Some(sup.call.to_string()),
            reason: Some(why.to_owned()),
        };
        self.sync_deadline(r, id);
        Ok(Some(Closed {
            id,
            stored,
            scope,
            payload,
            alert,
            now,
        }))
    }

    /// Commits the ends of `closed` supervisions and `then` (the caller's change) in one
    /// transaction; then counts their alerts.
    fn commit_closed(
        &self,
        closed: &[Closed],
        then: impl Fn(&mut dyn Writes) -> Result<(), StoreError>,
    ) -> Result<(), StateError> {
        self.inner.store.write(|w| {
            for c in closed {
                w.update_supervision(&c.stored)?;
                append_event(
                    w,
                    "supervision.aborted",
                    c.payload.clone(),
                    c.scope.clone(),
                    c.now,
                )?;
                raise_alert(w, &c.alert, c.scope.clone(), c.now)?;
            }
            then(w)
        })?;
        for c in closed {
            self.inner.metrics.alert(ALERT_KIND_ABORTED);
            tracing::info!(supervision = %c.id, reason = c.stored.end_reason.as_deref().unwrap_or_default(), "supervision closed");
        }
        Ok(())
    }

    // ---- timeouts ----

    /// Brings the deadline index in step with a supervision's session.
    fn sync_deadline(&self, r: &mut Records, id: SupervisionId) {
        let Some(sup) = r.supervisions.get_mut(&id) else {
            return;
        };
        let next = sup.session.as_ref().and_then(Session::next_deadline);
        if next == sup.deadline_ms {
            return;
        }
        let mut deadlines = relock(&self.inner.deadlines);
        if let Some(old) = sup.deadline_ms {
            deadlines.remove(&(old, id));
        }
        if let Some(new) = next {
            deadlines.insert((new, id));
        }
        drop(deadlines);
        sup.deadline_ms = next;
        if next.is_some() {
            self.inner.deadline_armed.notify_one();
        }
    }

    /// The soonest answer deadline of an open session, if any.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        relock(&self.inner.deadlines).first().map(|&(at, _)| at)
    }

    /// Signalled whenever a deadline is armed (the timer sleeps until the soonest one).
    pub fn deadline_armed(&self) -> &Notify {
        &self.inner.deadline_armed
    }

    /// Fires every answer timeout due at the clock's `now`; returns how many fired. Blocking:
    /// see [`AppState::run_due_timeouts`].
    fn fire_due_timeouts(&self) -> usize {
        let mut r = self.records();
        let now = self.now_ms();
        let due: Vec<SupervisionId> = relock(&self.inner.deadlines)
            .iter()
            .take_while(|&&(at, _)| at <= now)
            .map(|&(_, id)| id)
            .collect();
        let mut fired = 0;
        for id in due {
            match self.step(&mut r, id, now, Step::Timeout) {
                Ok(()) => fired += 1,
                Err(err) => tracing::error!(supervision = %id, %err, "answer timeout not applied"),
            }
        }
        fired
    }

    /// Fires every answer timeout due now, off the async runtime. Tests call it after moving
    /// their [`crate::clock::ManualClock`]; the daemon's timer calls it at each deadline.
    pub async fn run_due_timeouts(&self) -> usize {
        let state = self.clone();
        tokio::task::spawn_blocking(move || state.fire_due_timeouts())
            .await
            .unwrap_or_else(|err| {
                tracing::error!(%err, "the timeout task failed");
                0
            })
    }

    // ---- alerts and audit ----

    /// `GET /v1/alerts?after=`: alerts with an id above `after`, oldest first.
    pub fn alerts_after(&self, after: i64, limit: u32) -> Result<Vec<AlertView>, StateError> {
        let alerts = self
            .inner
            .store
            .read(|r| r.alerts_after(AlertId(after), limit))?;
        Ok(alerts.into_iter().map(AlertView::from).collect())
    }

    /// `GET /v1/supervisions/{id}/alerts`.
    pub fn alerts_of(&self, id: SupervisionId) -> Result<Vec<AlertView>, StateError> {
        let key = id.to_string();
        let known = self.records().supervisions.contains_key(&id);
        let (exists, alerts) = self.inner.store.read(|r| {
            let exists = known || r.supervision(&key)?.is_some();
            Ok((exists, r.alerts_of_supervision(&key)?))
        })?;
        if !exists {
            return Err(StateError::SupervisionNotFound(id));
        }
        Ok(alerts.into_iter().map(AlertView::from).collect())
    }

    /// `GET /v1/audit?after=`: audit records with an id above `after`, oldest first.
    pub fn audit_after(&self, after: i64, limit: u32) -> Result<Vec<AuditView>, StateError> {
        let records = self
            .inner
            .store
            .read(|r| r.audit_after(AuditId(after), limit))?;
        Ok(records.into_iter().map(AuditView::from).collect())
    }

    // ---- diagnostics ----

    /// The engine's id of a call, while its media is anchored (diagnostics, tests).
    pub fn engine_call(&self, id: CallId) -> Option<engine::CallId> {
        self.records().calls.get(&id).and_then(|c| c.engine)
    }

    /// The engine's call and leg of a supervision, while its media is connected (diagnostics,
    /// tests).
    pub fn engine_leg(&self, id: SupervisionId) -> Option<(engine::CallId, LegId)> {
        self.records().supervisions.get(&id).and_then(|s| s.media)
    }

    // ---- engine events ----

    /// Moves the engine's pending events into `events`, without blocking.
    pub fn drain_engine_events(&self, events: &mut Vec<EngineEvent>) {
        self.inner.engine.drain_events(events);
    }

    /// Handles `events` (blocking). An event that failed only because the engine's command
    /// ring was full stays in `events` for the next round; the rest are consumed (failures
    /// logged).
    pub fn apply_engine_events(&self, events: &mut Vec<EngineEvent>) {
        events.retain(|&event| match self.engine_event(event) {
            Ok(()) => false,
            Err(StateError::Engine(EngineError::Busy)) => true,
            Err(err) => {
                tracing::warn!(?event, %err, "engine event not applied");
                false
            }
        });
        if events.len() > ENGINE_EVENTS_RETRY_MAX {
            let dropped = events.len() - ENGINE_EVENTS_RETRY_MAX;
            tracing::error!(
                dropped,
                "engine stays busy; dropping the oldest events awaiting retry"
            );
            events.drain(..dropped);
        }
    }

    /// One event from the data plane: supervisor DTMF switches mode or stops (through the
    /// session, like the API); a media timeout is a hangup of that party.
    pub fn engine_event(&self, event: EngineEvent) -> Result<(), StateError> {
        let mut r = self.records();
        let now = self.now_ms();
        let ignore_refusal = |result: Result<(), StateError>| match result {
            Err(StateError::Refused {
                supervision,
                refused,
            }) => {
                tracing::debug!(%supervision, %refused, "data-plane event not for this session");
                Ok(())
            }
            other => other,
        };
        match event {
            EngineEvent::Dtmf { call, leg, digit } => {
                let Some(sup) = r.supervision_on_leg(call, leg) else {
                    return Ok(());
                };
                let input = match self.inner.settings.dtmf.action(digit) {
                    Some(DtmfAction::Mode(mode)) => Input::SetMode(mode),
                    Some(DtmfAction::Stop) => Input::Stop,
                    None => {
                        tracing::debug!(supervision = %sup, %digit, "supervisor key with no action");
                        return Ok(());
                    }
                };
                ignore_refusal(self.step(&mut r, sup, now, Step::Input(input)))
            }
            EngineEvent::MediaTimeout { call, leg } => {
                let Some(&call_id) = r.by_engine_call.get(&call) else {
                    return Ok(());
                };
                let held = r.call(call_id).is_ok_and(|c| match leg {
                    LegId::CUSTOMER => c.customer.held,
                    LegId::AGENT => c.agent.held,
                    _ => false,
                });
                tracing::info!(call = %call_id, leg = leg.0, held, "media timeout");
                match leg {
                    LegId::CUSTOMER => self.party_hung_up(&mut r, call_id, Party::Customer, now),
                    LegId::AGENT => self.party_hung_up(&mut r, call_id, Party::Agent, now),
                    leg => match r.supervision_on_leg(call, leg) {
                        Some(sup) => ignore_refusal(self.step(
                            &mut r,
                            sup,
                            now,
                            Step::Input(Input::Hangup {
                                party: HangupParty::Supervisor,
                            }),
                        )),
                        None => Ok(()),
                    },
                }
            }
            EngineEvent::Latched { call, leg, remote } => self.latched(&mut r, call, leg, remote),
        }
    }

    /// A latching leg locked to `remote`: the call's (or the supervision's) leg shows it from
    /// now on, and keeps it in the store like a configured remote.
    fn latched(
        &self,
        r: &mut Records,
        call: engine::CallId,
        leg: LegId,
        remote: SocketAddr,
    ) -> Result<(), StateError> {
        let Some(&call_id) = r.by_engine_call.get(&call) else {
            return Ok(());
        };
        let party = match leg {
            LegId::CUSTOMER => Some(Party::Customer),
            LegId::AGENT => Some(Party::Agent),
            _ => None,
        };
        if let Some(party) = party {
            let record = r.call_mut(call_id)?;
            if !record.leg_mut(party).latch(remote) {
                return Ok(());
            }
            let stored = record.stored(call_id, None);
            self.inner.store.write(|w| w.update_call(&stored))?;
            tracing::debug!(call = %call_id, party = party.as_str(), %remote, "leg latched");
        } else if let Some(id) = r.supervision_on_leg(call, leg)
            && let Some(sup) = r.supervisions.get_mut(&id)
            && sup.leg.latch(remote)
        {
            let stored = sup.stored(id);
            self.inner.store.write(|w| w.update_supervision(&stored))?;
            tracing::debug!(supervision = %id, %remote, "supervisor leg latched");
        }
        Ok(())
    }

    /// Counts recomputed from the records, to check the gauges against: (`earshot_calls`,
    /// supervisions with media connected per mode in [`Mode::ALL`] order).
    pub fn recount(&self) -> (i64, [i64; 5]) {
        let r = self.records();
        let calls = r
            .calls
            .values()
            .filter(|c| c.state == CallState::Active)
            .count();
        let per_mode = Mode::ALL.map(|m| {
            r.supervisions
                .values()
                .filter(|s| s.media.is_some() && s.mode == m)
                .count() as i64
        });
        (calls as i64, per_mode)
    }
}

/// Who may see a call's events: its agent (admins see everything).
fn call_scope(call: &CallRecord) -> EventScope {
    EventScope {
        groups: Vec::new(),
        users: call.agent_id.iter().cloned().collect(),
    }
}

fn append_event(
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
fn raise_alert(
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
fn load(store: &dyn Store) -> Result<Records, StoreError> {
    let (mut calls, mut sups) = store.read(|r| {
        Ok((
            r.recent_calls(PAGE_LIMIT_MAX)?,
            r.recent_supervisions(PAGE_LIMIT_MAX)?,
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

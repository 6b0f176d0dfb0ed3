//! Calls and supervisions: the control plane's state and the rules of docs/api.md.
//!
//! Every operation validates everything first, then asks the engine, then commits to the
//! [`Store`], so a refused request changes nothing. The store is in memory for now behind a
//! `std::sync::Mutex` (control path only; it is never held across an `.await`). The engine is
//! called with the lock held: its calls are synchronous and short (they validate, bind sockets
//! at admission, and push onto a ring), and holding the lock makes each operation atomic with
//! respect to the others. Durable storage replaces [`Store`] in a later issue.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use dataplane::engine::{self, Engine, EngineError, EngineEvent, LegSpec, LegStats};
use dataplane::media::matrix::{LegId, Mode};
use dataplane::wire::g711::Codec;
use serde::Serialize;

use crate::config::{Config, DtmfAction, DtmfKeys};
use crate::domain::{
    CallEvent, CallId, EndReason, Flag, LegRequest, NewCall, NewSupervision, Party, SupervisionId,
};
use crate::metrics::Metrics;

/// Most engine events kept for retry while the engine's command ring is full (STYLE.md 4).
const ENGINE_EVENTS_RETRY_MAX: usize = 4096;

/// What the state needs from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Remote addresses must be of this address family (the legs' sockets are bound to it).
    pub media_ip: IpAddr,
    pub max_supervisors_per_call: usize,
    /// Whether a supervision beeps to the agent when the request does not say.
    pub agent_beep: bool,
    pub dtmf: DtmfKeys,
}

impl Settings {
    pub fn from_config(config: &Config) -> Settings {
        Settings {
            media_ip: config.media.ip,
            max_supervisors_per_call: config.media.max_supervisors_per_call,
            agent_beep: config.media.agent_beep,
            dtmf: config.media.dtmf,
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
    #[error("supervision {0} has ended")]
    SupervisionEnded(SupervisionId),
    #[error("call {call} cannot be supervised while {flag} is set")]
    NotSupervisable { call: CallId, flag: &'static str },
    #[error("call {call} already has {max} active supervisions, the most allowed per call")]
    TooManySupervisors { call: CallId, max: usize },
    #[error("{field}: {remote} is not of the media address's family ({media_ip})")]
    AddressFamily {
        field: &'static str,
        remote: SocketAddr,
        media_ip: IpAddr,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("no random identifier from the OS: {0}")]
    Random(getrandom::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    Active,
    Ended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SupervisionState {
    Active,
    /// Ended by the API or by the supervisor's stop key.
    Stopped,
    /// Ended by something else; see the end reason.
    Aborted,
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

    /// The first flag set, if any: such a call cannot be supervised.
    pub fn first_set(self) -> Option<Flag> {
        [
            (self.on_hold, Flag::OnHold),
            (self.consult, Flag::Consult),
            (self.secure_payment, Flag::SecurePayment),
            (self.conference, Flag::Conference),
        ]
        .into_iter()
        .find_map(|(set, flag)| set.then_some(flag))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StatsView {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub packets_lost: i64,
    pub jitter_ms: f64,
    pub packets_dropped: u64,
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
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LegView {
    pub local: SocketAddr,
    pub remote: Option<SocketAddr>,
    pub codec: &'static str,
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
    pub flags: Flags,
    pub legs: LegsView,
    /// Every supervision of the call, active and ended, oldest first.
    pub supervisions: Vec<SupervisionId>,
    pub created_at_ms: u64,
}

/// A supervision as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SupervisionView {
    pub id: SupervisionId,
    pub call_id: CallId,
    pub state: SupervisionState,
    pub mode: &'static str,
    pub leg: LegView,
    pub end_reason: Option<EndReason>,
    pub started_at_ms: u64,
    pub ended_at_ms: Option<u64>,
}

#[derive(Debug, Clone)]
struct LegRecord {
    local: SocketAddr,
    remote: Option<SocketAddr>,
    codec: Codec,
    /// The statistics when the leg's media was released (the engine forgets them then).
    final_stats: Option<LegStats>,
}

impl LegRecord {
    fn new(local: SocketAddr, req: LegRequest) -> LegRecord {
        LegRecord {
            local,
            remote: req.remote,
            codec: req.codec,
            final_stats: None,
        }
    }
}

#[derive(Debug, Clone)]
struct CallRecord {
    /// Creation order, for listing.
    seq: u64,
    engine: engine::CallId,
    state: CallState,
    flags: Flags,
    customer: LegRecord,
    agent: LegRecord,
    supervisions: Vec<SupervisionId>,
    created_at_ms: u64,
}

impl CallRecord {
    fn leg_mut(&mut self, party: Party) -> &mut LegRecord {
        match party {
            Party::Customer => &mut self.customer,
            Party::Agent => &mut self.agent,
        }
    }
}

#[derive(Debug, Clone)]
struct SupervisionRecord {
    seq: u64,
    call: CallId,
    engine_call: engine::CallId,
    /// The supervisor's leg in the engine; engine leg ids are reused once released, so this
    /// names the leg only while the supervision is active.
    engine_leg: LegId,
    leg: LegRecord,
    state: SupervisionState,
    mode: Mode,
    end_reason: Option<EndReason>,
    started_at_ms: u64,
    ended_at_ms: Option<u64>,
}

/// The records, and the metrics that count them: every transition goes through a method here,
/// which keeps the gauges in step.
struct Store {
    calls: HashMap<CallId, CallRecord>,
    supervisions: HashMap<SupervisionId, SupervisionRecord>,
    by_engine_call: HashMap<engine::CallId, CallId>,
    next_seq: u64,
    metrics: Metrics,
}

impl Store {
    fn new(metrics: Metrics) -> Store {
        Store {
            calls: HashMap::new(),
            supervisions: HashMap::new(),
            by_engine_call: HashMap::new(),
            next_seq: 0,
            metrics,
        }
    }

    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn call(&self, id: CallId) -> Result<&CallRecord, StateError> {
        self.calls.get(&id).ok_or(StateError::CallNotFound(id))
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

    /// The active supervisions of a call, oldest first.
    fn active_supervisions(&self, call: CallId) -> Vec<SupervisionId> {
        self.calls.get(&call).map_or_else(Vec::new, |c| {
            c.supervisions
                .iter()
                .copied()
                .filter(|s| {
                    self.supervisions
                        .get(s)
                        .is_some_and(|s| s.state == SupervisionState::Active)
                })
                .collect()
        })
    }

    /// The active supervision on an engine leg, if any.
    fn supervision_on_leg(&self, call: CallId, leg: LegId) -> Option<SupervisionId> {
        self.active_supervisions(call)
            .into_iter()
            .find(|s| self.supervisions[s].engine_leg == leg)
    }

    fn insert_call(&mut self, id: CallId, record: CallRecord) {
        self.by_engine_call.insert(record.engine, id);
        self.calls.insert(id, record);
        self.metrics.call_started();
    }

    /// Marks a call ended; its media is already released.
    fn end_call(&mut self, id: CallId, customer: Option<LegStats>, agent: Option<LegStats>) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.state == CallState::Active {
            call.state = CallState::Ended;
            call.customer.final_stats = Some(customer.unwrap_or_default());
            call.agent.final_stats = Some(agent.unwrap_or_default());
            self.by_engine_call.remove(&call.engine);
            self.metrics.call_ended();
        }
    }

    /// Forgets an ended call. Its supervisions stay listed.
    fn remove_call(&mut self, id: CallId) {
        if let Some(call) = self.calls.remove(&id) {
            debug_assert_eq!(call.state, CallState::Ended);
        }
    }

    fn insert_supervision(&mut self, id: SupervisionId, record: SupervisionRecord) {
        self.metrics.supervision_started(record.mode);
        if let Some(call) = self.calls.get_mut(&record.call) {
            call.supervisions.push(id);
        }
        self.supervisions.insert(id, record);
    }

    fn set_mode(&mut self, id: SupervisionId, mode: Mode) {
        let Some(sup) = self.supervisions.get_mut(&id) else {
            return;
        };
        if sup.state == SupervisionState::Active && sup.mode != mode {
            self.metrics.mode_changed(sup.mode, mode);
            sup.mode = mode;
        }
    }

    /// Marks a supervision ended; its media is already released.
    fn end_supervision(
        &mut self,
        id: SupervisionId,
        state: SupervisionState,
        reason: Option<EndReason>,
        stats: Option<LegStats>,
        now_ms: u64,
    ) {
        let Some(sup) = self.supervisions.get_mut(&id) else {
            return;
        };
        if sup.state == SupervisionState::Active {
            sup.state = state;
            sup.end_reason = reason;
            sup.ended_at_ms = Some(now_ms);
            sup.leg.final_stats = Some(stats.unwrap_or_default());
            self.metrics.supervision_ended(sup.mode);
        }
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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn leg_spec(req: LegRequest) -> LegSpec {
    LegSpec {
        remote: req.remote,
        codec: req.codec,
    }
}

struct Inner {
    engine: Engine,
    store: Mutex<Store>,
    metrics: Metrics,
    settings: Settings,
}

/// The control plane's shared state: the engine handle, the records, the metrics. Cheap to
/// clone (one `Arc`).
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

impl AppState {
    /// Wraps a running engine. `metrics` must be registered in the registry the engine was
    /// started with, so `/metrics` shows both.
    pub fn new(engine: Engine, metrics: Metrics, settings: Settings) -> AppState {
        let store = Mutex::new(Store::new(metrics.clone()));
        AppState {
            inner: Arc::new(Inner {
                engine,
                store,
                metrics,
                settings,
            }),
        }
    }

    /// A fresh registry, an engine started from `config`, and the state around them. The
    /// configuration should have been validated.
    pub fn start(config: &Config) -> anyhow::Result<AppState> {
        let registry = prometheus::Registry::new();
        let engine = Engine::start(config.engine_config(), &registry)
            .context("cannot start the data plane")?;
        let metrics =
            Metrics::new(&registry).context("cannot register the control plane's metrics")?;
        Ok(AppState::new(
            engine,
            metrics,
            Settings::from_config(config),
        ))
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

    fn store(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock is a bug, but the records stay consistent at every
        // step that can panic, so keep serving.
        self.inner
            .store
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
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

    fn leg_view(&self, engine_call: engine::CallId, leg: LegId, record: &LegRecord) -> LegView {
        let stats = record
            .final_stats
            .or_else(|| self.inner.engine.leg_stats(engine_call, leg))
            .unwrap_or_default();
        LegView {
            local: record.local,
            remote: record.remote,
            codec: record.codec.name(),
            stats: stats.into(),
        }
    }

    fn call_view(&self, id: CallId, call: &CallRecord) -> CallView {
        CallView {
            id,
            state: call.state,
            flags: call.flags,
            legs: LegsView {
                customer: self.leg_view(call.engine, LegId::CUSTOMER, &call.customer),
                agent: self.leg_view(call.engine, LegId::AGENT, &call.agent),
            },
            supervisions: call.supervisions.clone(),
            created_at_ms: call.created_at_ms,
        }
    }

    fn supervision_view(&self, id: SupervisionId, sup: &SupervisionRecord) -> SupervisionView {
        SupervisionView {
            id,
            call_id: sup.call,
            state: sup.state,
            mode: sup.mode.as_str(),
            leg: self.leg_view(sup.engine_call, sup.engine_leg, &sup.leg),
            end_reason: sup.end_reason,
            started_at_ms: sup.started_at_ms,
            ended_at_ms: sup.ended_at_ms,
        }
    }

    fn call_view_of(&self, store: &Store, id: CallId) -> Result<CallView, StateError> {
        Ok(self.call_view(id, store.call(id)?))
    }

    fn supervision_view_of(
        &self,
        store: &Store,
        id: SupervisionId,
    ) -> Result<SupervisionView, StateError> {
        Ok(self.supervision_view(id, store.supervision(id)?))
    }

    // ---- calls ----

    /// `GET /v1/calls`: every call, active and ended, oldest first.
    pub fn calls(&self) -> Vec<CallView> {
        let store = self.store();
        let mut calls: Vec<(&CallId, &CallRecord)> = store.calls.iter().collect();
        calls.sort_by_key(|(_, c)| c.seq);
        calls
            .into_iter()
            .map(|(id, c)| self.call_view(*id, c))
            .collect()
    }

    pub fn call(&self, id: CallId) -> Result<CallView, StateError> {
        self.call_view_of(&self.store(), id)
    }

    pub fn create_call(&self, req: NewCall) -> Result<CallView, StateError> {
        self.check_family("customer.remote", req.customer.remote)?;
        self.check_family("agent.remote", req.agent.remote)?;
        let mut store = self.store();
        let id = store.fresh_call_id()?;
        let media = self
            .inner
            .engine
            .create_call(leg_spec(req.customer), leg_spec(req.agent))?;
        let seq = store.seq();
        store.insert_call(
            id,
            CallRecord {
                seq,
                engine: media.call,
                state: CallState::Active,
                flags: Flags::default(),
                customer: LegRecord::new(media.customer, req.customer),
                agent: LegRecord::new(media.agent, req.agent),
                supervisions: Vec::new(),
                created_at_ms: now_ms(),
            },
        );
        tracing::debug!(call = %id, customer = %media.customer, agent = %media.agent, "call created");
        self.call_view_of(&store, id)
    }

    /// `DELETE /v1/calls/{id}`: releases the media if the call is still active (its active
    /// supervisions end `aborted`, `call_deleted`), then forgets the call.
    pub fn delete_call(&self, id: CallId) -> Result<(), StateError> {
        let mut store = self.store();
        if store.call(id)?.state == CallState::Active {
            self.end_call(&mut store, id, EndReason::CallDeleted)?;
        }
        store.remove_call(id);
        tracing::debug!(call = %id, "call deleted");
        Ok(())
    }

    /// `PATCH /v1/calls/{id}/legs/{party}`: the leg becomes strict-source on `remote`.
    pub fn set_remote(
        &self,
        id: CallId,
        party: Party,
        remote: SocketAddr,
    ) -> Result<LegView, StateError> {
        let mut store = self.store();
        let engine_call = store.active_call(id)?.engine;
        self.check_family("remote", Some(remote))?;
        let leg = match party {
            Party::Customer => LegId::CUSTOMER,
            Party::Agent => LegId::AGENT,
        };
        self.inner.engine.set_remote(engine_call, leg, remote)?;
        let call = store
            .calls
            .get_mut(&id)
            .ok_or(StateError::CallNotFound(id))?;
        let record = call.leg_mut(party);
        record.remote = Some(remote);
        Ok(self.leg_view(engine_call, leg, record))
    }

    /// `POST /v1/calls/{id}/events`.
    pub fn call_event(&self, id: CallId, event: CallEvent) -> Result<CallView, StateError> {
        let mut store = self.store();
        store.active_call(id)?;
        match event {
            CallEvent::Flag { flag, set } => {
                if set {
                    let reason = if flag == Flag::Conference {
                        EndReason::Conference
                    } else {
                        EndReason::AgentHeldCall
                    };
                    for sup in store.active_supervisions(id) {
                        // Each release is committed as it happens: if a later one fails (engine
                        // ring full), the ones already released are truthfully recorded as
                        // aborted and the flag stays clear, so a retry finishes the job.
                        self.end_supervision(
                            &mut store,
                            sup,
                            SupervisionState::Aborted,
                            Some(reason),
                        )?;
                    }
                }
                if let Some(call) = store.calls.get_mut(&id) {
                    *call.flags.slot(flag) = set;
                }
                tracing::debug!(call = %id, flag = flag.as_str(), set, "call flag");
            }
            CallEvent::Hangup(party) => {
                let reason = match party {
                    Party::Customer => EndReason::CallerHungUp,
                    Party::Agent => EndReason::AgentHungUp,
                };
                self.end_call(&mut store, id, reason)?;
            }
            CallEvent::SupervisorHangup(sup) => {
                if store.supervision(sup)?.call != id {
                    return Err(StateError::SupervisionNotFound(sup));
                }
                self.end_supervision(
                    &mut store,
                    sup,
                    SupervisionState::Aborted,
                    Some(EndReason::SupervisorHungUp),
                )?;
            }
        }
        self.call_view_of(&store, id)
    }

    /// Releases an active call's media and marks it ended; its active supervisions end
    /// `aborted` with `reason`.
    fn end_call(&self, store: &mut Store, id: CallId, reason: EndReason) -> Result<(), StateError> {
        let engine_call = store.call(id)?.engine;
        let engine = &self.inner.engine;
        // The engine forgets the statistics with the call: keep them first.
        let customer = engine.leg_stats(engine_call, LegId::CUSTOMER);
        let agent = engine.leg_stats(engine_call, LegId::AGENT);
        let sups: Vec<(SupervisionId, Option<LegStats>)> = store
            .active_supervisions(id)
            .into_iter()
            .map(|s| {
                (
                    s,
                    engine.leg_stats(engine_call, store.supervisions[&s].engine_leg),
                )
            })
            .collect();
        released(engine.delete_call(engine_call), "call")?;
        let now = now_ms();
        for (sup, stats) in sups {
            store.end_supervision(sup, SupervisionState::Aborted, Some(reason), stats, now);
            tracing::info!(supervision = %sup, call = %id, reason = reason.as_str(), "supervision aborted");
        }
        store.end_call(id, customer, agent);
        tracing::debug!(call = %id, reason = reason.as_str(), "call ended");
        Ok(())
    }

    // ---- supervisions ----

    /// `GET /v1/supervisions`: every supervision, active and ended, oldest first.
    pub fn supervisions(&self) -> Vec<SupervisionView> {
        let store = self.store();
        let mut sups: Vec<(&SupervisionId, &SupervisionRecord)> =
            store.supervisions.iter().collect();
        sups.sort_by_key(|(_, s)| s.seq);
        sups.into_iter()
            .map(|(id, s)| self.supervision_view(*id, s))
            .collect()
    }

    pub fn supervision(&self, id: SupervisionId) -> Result<SupervisionView, StateError> {
        self.supervision_view_of(&self.store(), id)
    }

    /// `POST /v1/calls/{id}/supervisions`: a new supervisor leg, in `listen`.
    pub fn create_supervision(
        &self,
        call: CallId,
        req: NewSupervision,
    ) -> Result<SupervisionView, StateError> {
        let mut store = self.store();
        let record = store.active_call(call)?;
        let engine_call = record.engine;
        if let Some(flag) = record.flags.first_set() {
            return Err(StateError::NotSupervisable {
                call,
                flag: flag.as_str(),
            });
        }
        let max = self.inner.settings.max_supervisors_per_call;
        if store.active_supervisions(call).len() >= max {
            return Err(StateError::TooManySupervisors { call, max });
        }
        self.check_family("supervisor.remote", req.supervisor.remote)?;
        let id = store.fresh_supervision_id()?;
        let beep = req.beep.unwrap_or(self.inner.settings.agent_beep);
        let media =
            self.inner
                .engine
                .add_supervisor(engine_call, leg_spec(req.supervisor), beep)?;
        let seq = store.seq();
        store.insert_supervision(
            id,
            SupervisionRecord {
                seq,
                call,
                engine_call,
                engine_leg: media.leg,
                leg: LegRecord::new(media.local, req.supervisor),
                state: SupervisionState::Active,
                mode: Mode::Listen,
                end_reason: None,
                started_at_ms: now_ms(),
                ended_at_ms: None,
            },
        );
        tracing::info!(supervision = %id, %call, local = %media.local, beep, "supervision started");
        self.supervision_view_of(&store, id)
    }

    /// `PATCH /v1/supervisions/{id}`.
    pub fn set_mode(&self, id: SupervisionId, mode: Mode) -> Result<SupervisionView, StateError> {
        let mut store = self.store();
        self.change_mode(&mut store, id, mode)?;
        self.supervision_view_of(&store, id)
    }

    fn change_mode(
        &self,
        store: &mut Store,
        id: SupervisionId,
        mode: Mode,
    ) -> Result<(), StateError> {
        let sup = store.supervision(id)?;
        if sup.state != SupervisionState::Active {
            return Err(StateError::SupervisionEnded(id));
        }
        if sup.mode != mode {
            self.inner
                .engine
                .set_mode(sup.engine_call, sup.engine_leg, mode)?;
            tracing::info!(supervision = %id, from = sup.mode.as_str(), to = mode.as_str(), "supervision mode");
            store.set_mode(id, mode);
        }
        Ok(())
    }

    /// `DELETE /v1/supervisions/{id}`: stops it and releases its leg. Stopping an ended
    /// supervision changes nothing and answers it as it is.
    pub fn stop_supervision(&self, id: SupervisionId) -> Result<SupervisionView, StateError> {
        let mut store = self.store();
        self.end_supervision(&mut store, id, SupervisionState::Stopped, None)?;
        self.supervision_view_of(&store, id)
    }

    /// Releases a supervision's leg and marks it ended; nothing if it has ended already.
    fn end_supervision(
        &self,
        store: &mut Store,
        id: SupervisionId,
        state: SupervisionState,
        reason: Option<EndReason>,
    ) -> Result<(), StateError> {
        let sup = store.supervision(id)?;
        if sup.state != SupervisionState::Active {
            return Ok(());
        }
        let stats = self.inner.engine.leg_stats(sup.engine_call, sup.engine_leg);
        released(
            self.inner
                .engine
                .remove_supervisor(sup.engine_call, sup.engine_leg),
            "supervisor leg",
        )?;
        tracing::info!(
            supervision = %id,
            call = %sup.call,
            reason = reason.map_or("stopped", EndReason::as_str),
            "supervision ended"
        );
        store.end_supervision(id, state, reason, stats, now_ms());
        Ok(())
    }

    /// The engine's id of a call, while it is active (diagnostics, tests).
    pub fn engine_call(&self, id: CallId) -> Option<engine::CallId> {
        let store = self.store();
        store
            .calls
            .get(&id)
            .filter(|c| c.state == CallState::Active)
            .map(|c| c.engine)
    }

    /// The engine's call and leg of a supervision, while it is active (diagnostics, tests).
    pub fn engine_leg(&self, id: SupervisionId) -> Option<(engine::CallId, LegId)> {
        let store = self.store();
        store
            .supervisions
            .get(&id)
            .filter(|s| s.state == SupervisionState::Active)
            .map(|s| (s.engine_call, s.engine_leg))
    }

    // ---- engine events ----

    /// Moves the engine's pending events into `events` and handles them all. An event that
    /// failed only because the engine's command ring was full stays in `events` for the next
    /// round; the rest are consumed (failures logged).
    pub fn process_engine_events(&self, events: &mut Vec<EngineEvent>) {
        self.inner.engine.drain_events(events);
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

    /// One event from the data plane: supervisor DTMF switches mode or stops (the same logic
    /// as the API); a media timeout is a hangup of that party.
    pub fn engine_event(&self, event: EngineEvent) -> Result<(), StateError> {
        let mut store = self.store();
        match event {
            EngineEvent::Dtmf { call, leg, digit } => {
                let Some(&call_id) = store.by_engine_call.get(&call) else {
                    return Ok(());
                };
                let Some(sup) = store.supervision_on_leg(call_id, leg) else {
                    return Ok(());
                };
                match self.inner.settings.dtmf.action(digit) {
                    Some(DtmfAction::Mode(mode)) => self.change_mode(&mut store, sup, mode),
                    Some(DtmfAction::Stop) => {
                        self.end_supervision(&mut store, sup, SupervisionState::Stopped, None)
                    }
                    None => {
                        tracing::debug!(supervision = %sup, %digit, "supervisor key with no action");
                        Ok(())
                    }
                }
            }
            EngineEvent::MediaTimeout { call, leg } => {
                let Some(&call_id) = store.by_engine_call.get(&call) else {
                    return Ok(());
                };
                tracing::info!(call = %call_id, leg = leg.0, "media timeout");
                match leg {
                    LegId::CUSTOMER => self.end_call(&mut store, call_id, EndReason::CallerHungUp),
                    LegId::AGENT => self.end_call(&mut store, call_id, EndReason::AgentHungUp),
                    leg => match store.supervision_on_leg(call_id, leg) {
                        Some(sup) => self.end_supervision(
                            &mut store,
                            sup,
                            SupervisionState::Aborted,
                            Some(EndReason::SupervisorHungUp),
                        ),
                        None => Ok(()),
                    },
                }
            }
        }
    }

    /// Counts recomputed from the records, to check the gauges against: (`earshot_calls`,
    /// active supervisions per mode in [`Mode::ALL`] order).
    pub fn recount(&self) -> (i64, [i64; 5]) {
        let store = self.store();
        let calls = store
            .calls
            .values()
            .filter(|c| c.state == CallState::Active)
            .count();
        let per_mode = Mode::ALL.map(|m| {
            store
                .supervisions
                .values()
                .filter(|s| s.state == SupervisionState::Active && s.mode == m)
                .count() as i64
        });
        (calls as i64, per_mode)
    }
}

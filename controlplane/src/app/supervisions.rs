//! The session driver (docs/design.md §2): each supervision's sans-IO [`Session`] is fed the
//! API's requests, the softswitch's reports, the media's events and its answer timeout, and its
//! [`Output`]s are carried out in order (audit, then media, then state, alerts and events).

use std::time::Instant;

use dataplane::engine::{self, LegSpec};
use dataplane::media::matrix::Mode;
use tokio::sync::Notify;

use crate::app::audit::{Audit, AuditOutcome};
use crate::app::records::*;
use crate::app::rights::{self, Requester};
use crate::app::snapshots::*;
use crate::app::state::{AppState, StateError, relock};
use crate::clock::to_unix_ms;
use crate::domain::agents::UserId;
use crate::domain::call::{CallId, NewSupervision, SupervisionId, SupervisorEvent};
use crate::domain::lifecycle::{
    self, AuditAction, AuditActor, HangupParty, Input, Output, Refused, Session, SessionScope,
    Start, SupervisionState,
};
use crate::store::{NewAlert, NewAudit, StoreExt as _};

/// One step of a session: an input, or its answer timeout.
pub(super) enum Step {
    Input(Input),
    Timeout,
}

/// The audit record of a session's output, as stored.
pub(crate) fn new_audit(a: &lifecycle::AuditRecord) -> NewAudit {
    let outcome = match a.action {
        AuditAction::SupervisionDenial => AuditOutcome::Denied,
        AuditAction::SupervisionFailure => AuditOutcome::Failed,
        AuditAction::SupervisionAbort => AuditOutcome::Aborted,
        _ => AuditOutcome::Ok,
    };
    let mut detail = Vec::new();
    let actor = match a.actor {
        AuditActor::Supervisor => {
            if let Some(agent) = &a.agent {
                detail.push(format!("agent {agent}"));
            }
            if let Some(alert) = a.alert {
                detail.push(format!("alert {}", alert.code()));
            }
            actor(a.supervisor.as_ref().map_or("", |s| s.as_str()))
        }
        // An abort from outside the call: why, and what it ended (docs/design.md §4).
        AuditActor::System { was, reason } => {
            detail.push(format!("reason {}; was {was}", reason.code()));
            "system".to_owned()
        }
    };
    Audit::new(to_unix_ms(a.at_ms), actor, a.action, outcome)
        .supervision(Some(a.session))
        .call(Some(a.call))
        .mode(a.mode)
        .detail((!detail.is_empty()).then(|| detail.join("; ")))
        .record()
}

/// A user id of a call or a request, validated when it came in (domain/call.rs parses them
/// with the [`UserId`] rule), so a failure here is a bug.
fn user_id(field: &str, id: Option<&str>) -> Result<Option<UserId>, StateError> {
    id.map(UserId::parse)
        .transpose()
        .map_err(|e| StateError::Internal(format!("{field}: {e}")))
}

/// Who acted, in an audit record: the supervisor the request named (access control makes it
/// the caller's own id for supervisors; admins may act on behalf of anyone).
pub(super) fn actor(supervisor_id: &str) -> String {
    if supervisor_id.is_empty() {
        "api".to_owned()
    } else {
        format!("user:{supervisor_id}")
    }
}

impl AppState {
    /// `GET /v1/supervisions`: every supervision in memory, open and ended, oldest first.
    pub fn supervisions(&self) -> Vec<SupervisionSnapshot> {
        let r = self.records();
        let mut sups: Vec<(&SupervisionId, &SupervisionRecord)> = r.supervisions.iter().collect();
        sups.sort_by_key(|(_, s)| s.seq);
        sups.into_iter()
            .map(|(id, s)| self.supervision_snapshot(*id, s))
            .collect()
    }

    /// `GET /v1/supervisions/{id}`: from memory, else from the store's history.
    pub fn supervision(&self, id: SupervisionId) -> Result<SupervisionSnapshot, StateError> {
        if let Ok(sup) = self.supervision_snapshot_of(&self.records(), id) {
            return Ok(sup);
        }
        let key = id.to_string();
        let found = self.inner.store.read(|r| r.supervision(&key))?;
        let record = found.and_then(|s| {
            let call = s.call_id.as_deref()?.parse().ok()?;
            Some(SupervisionRecord::from_stored(&s, call, 0))
        });
        match record {
            Some(record) => Ok(self.supervision_snapshot(id, &record)),
            None => Err(StateError::SupervisionNotFound(id)),
        }
    }

    /// `POST /v1/calls/{id}/supervisions`: a new session, started (docs/design.md §2.3 start
    /// checks); with `answered`, the supervisor's leg is reported ringing and answered at once.
    ///
    /// The requester's listen right is an input of the start ([`crate::app::rights`]): without
    /// it, in one of the agent's groups, the session fails `no_permission`; outside them, the
    /// request is refused ([`StateError::Denied`], audited) before anything else is checked.
    pub fn create_supervision(
        &self,
        call_id: CallId,
        req: NewSupervision,
        requester: &Requester,
    ) -> Result<SupervisionSnapshot, StateError> {
        let mut r = self.records();
        let supervisor_may_listen = rights::may_listen(
            self.store(),
            requester,
            r.call(call_id)?.agent_id.as_deref(),
            &call_id.to_string(),
            to_unix_ms(self.now_ms()),
        )
        .map_err(|refused| match refused {
            rights::StartRefused::Denied(denied) => StateError::Denied(denied),
            rights::StartRefused::Store(err) => StateError::Store(err),
        })?;
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
        // The agent's groups' policies (docs/design.md §2.9): a cap on simultaneous monitors, the
        // beep.
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
            supervisor: user_id("supervisor_id", req.supervisor_id.as_deref())?,
            agent: user_id("agent_id", agent_id.as_deref())?,
            scope,
            call: facts,
            supervisor_may_listen,
            registered_number: registered_number.clone().unwrap_or_default(),
            answer_timeout: None,
        };
        let before = session.clone();
        let mut outputs = match session.handle(now, Input::Start(start)) {
            Ok(outputs) => outputs,
            Err(refused) => {
                // A web call: a denial, audited (docs/design.md §4.5) though nothing else is
                // recorded.
                self.inner.store.write(|w| {
                    w.append_audit(
                        &Audit::new(
                            to_unix_ms(now),
                            actor(req.supervisor_id.as_deref().unwrap_or_default()),
                            AuditAction::SupervisionDenial,
                            AuditOutcome::Denied,
                        )
                        .supervision(Some(id))
                        .call(Some(call_id))
                        .detail(Some(refused.to_string()))
                        .record(),
                    )
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
        self.supervision_snapshot_of(&r, id)
    }

    /// `POST /v1/supervisions/{id}/events`: the softswitch reports the supervisor's leg.
    pub fn supervisor_event(
        &self,
        id: SupervisionId,
        event: SupervisorEvent,
    ) -> Result<SupervisionSnapshot, StateError> {
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
        self.supervision_snapshot_of(&r, id)
    }

    /// `PATCH /v1/supervisions/{id}`.
    pub fn set_mode(
        &self,
        id: SupervisionId,
        mode: Mode,
    ) -> Result<SupervisionSnapshot, StateError> {
        let mut r = self.records();
        let now = self.now_ms();
        self.step(&mut r, id, now, Step::Input(Input::SetMode(mode)))?;
        self.supervision_snapshot_of(&r, id)
    }

    /// `DELETE /v1/supervisions/{id}`: stops it. Stopping an ended supervision changes nothing
    /// and answers it as it is.
    pub fn stop_supervision(&self, id: SupervisionId) -> Result<SupervisionSnapshot, StateError> {
        let mut r = self.records();
        let now = self.now_ms();
        match self.step(&mut r, id, now, Step::Input(Input::Stop)) {
            Err(StateError::Refused {
                refused: Refused::Ended { .. },
                ..
            }) => {}
            other => other?,
        }
        self.supervision_snapshot_of(&r, id)
    }

    /// Feeds one step to a session and carries out its outputs; keeps the deadline index in
    /// step. A refused input changes nothing.
    pub(super) fn step(
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

    pub(super) fn step_on(
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
    pub(super) fn carry_out(
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
            // docs/design.md §4.5: the audit is written before supervisor media flows. Before media
            // starts or changes mode it is also made durable here, under the records lock, even
            // inside `store::deferring` (the request's other commits wait for the sync after the
            // lock is released). Before a disconnect, committed is enough: no media flows on it,
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
                    Output::ConnectMedia { .. } => AuditAction::SupervisionStart,
                    Output::SetMedia { .. } => AuditAction::SupervisionModeChange,
                    _ => AuditAction::SupervisionDisconnect,
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
            sup.state = state.record();
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
                    text: alert.text.to_owned(),
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
    pub(super) fn media(
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
                    sup.leg.final_stats = Some(stats.unwrap_or_default());
                    self.inner.metrics.supervision_ended(sup.mode);
                    tracing::info!(supervision = %id, "supervisor media disconnected");
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Best effort: the media command after a committed audit record did not happen.
    pub(super) fn audit_failed_media(
        &self,
        id: SupervisionId,
        sup: &SupervisionRecord,
        now: u64,
        action: AuditAction,
        err: &StateError,
    ) {
        let record = Audit::new(to_unix_ms(now), "system", action, AuditOutcome::Failed)
            .supervision(Some(id))
            .call(Some(sup.call))
            .detail(Some(format!(
                "the media command was not carried out: {err}"
            )))
            .record();
        if let Err(e) = self.inner.store.write(|w| w.append_audit(&record)) {
            tracing::error!(supervision = %id, err = %e, "cannot audit a failed media command");
        }
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
}

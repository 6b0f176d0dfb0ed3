//! Call use cases (docs/api.md, Calls): create, delete, legs, the softswitch's call events;
//! every change committed to the store before it returns (docs/design.md §2).

use std::net::SocketAddr;

use dataplane::engine::LegStats;
use dataplane::media::matrix::LegId;

use crate::app::records::*;
use crate::app::snapshots::*;
use crate::app::state::{AppState, StateError};
use crate::app::supervisions::*;
use crate::domain::call::{CallEvent, CallId, Flag, NewCall, Party, SupervisionId};
use crate::domain::lifecycle::AbortCause;
use crate::domain::lifecycle::{Direction, HangupParty, Input, Refused, SupervisionState};
use crate::store::{StoreError, StoreExt as _, Writes};

impl AppState {
    /// `GET /v1/calls`: every call in memory (since start, and the recent history loaded at
    /// start), active and ended, oldest first.
    pub fn calls(&self) -> Vec<CallSnapshot> {
        let r = self.records();
        let mut calls: Vec<(&CallId, &CallRecord)> = r.calls.iter().collect();
        calls.sort_by_key(|(_, c)| c.seq);
        calls
            .into_iter()
            .map(|(id, c)| self.call_snapshot(*id, c))
            .collect()
    }

    /// `GET /v1/calls/{id}`: from memory, else from the store's history (not if deleted).
    pub fn call(&self, id: CallId) -> Result<CallSnapshot, StateError> {
        if let Ok(call) = self.call_snapshot_of(&self.records(), id) {
            return Ok(call);
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
                Ok(self.call_snapshot(id, &record))
            }
            _ => Err(StateError::CallNotFound(id)),
        }
    }

    /// `POST /v1/calls`.
    pub fn create_call(&self, req: NewCall) -> Result<CallSnapshot, StateError> {
        let mut r = self.records();
        let id = self.create_call_in(&mut r, req, &mut |_, _| Ok(()))?;
        self.call_snapshot_of(&r, id)
    }

    /// [`AppState::create_call`] under the records lock already held (an NG offer decides and
    /// creates atomically, docs/ng.md); `also` writes more in the call's creating transaction.
    pub(super) fn create_call_in(
        &self,
        r: &mut Records,
        req: NewCall,
        also: &mut dyn FnMut(&mut dyn Writes, CallId) -> Result<(), StoreError>,
    ) -> Result<CallId, StateError> {
        self.check_family("customer.remote", req.customer.remote)?;
        self.check_family("agent.remote", req.agent.remote)?;
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
            ng: None,
        };
        let stored = record.stored(id, None);
        let committed = self.inner.store.write(|w| {
            w.create_call(&stored)?;
            also(w, id)?;
            append_event(
                w,
                "call.created",
                serde_json::json!({"call_id": id, "direction": record.direction.as_str(),
                                   "agent_id": record.agent_id, "web": record.web}),
                call_scope(&record),
                record.created_at_ms,
            )?;
            // docs/design.md §3.4 subscriptions: a business call is a service call (web calls are
            // not).
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
            self.attach_followers(r, id, &agent, self.now_ms());
        }
        tracing::debug!(call = %id, customer = %media.customer, agent = %media.agent, "call created");
        Ok(id)
    }

    /// `DELETE /v1/calls/{id}`: its open supervisions are aborted through their sessions
    /// ([`Input::Abort`], cause `call_deleted`), its media released if still anchored, and the
    /// API forgets it (the store keeps it as history, marked deleted).
    ///
    /// Each supervision's end is committed as its session ends (its audit record before its
    /// leg is released); then the call's end, in one transaction.
    pub fn delete_call(&self, id: CallId) -> Result<(), StateError> {
        self.delete_call_in(&mut self.records(), id).map(|_| ())
    }

    /// [`AppState::delete_call`] under the records lock already held; answers the call as it
    /// ended (its legs' final statistics), before the API forgets it.
    pub(super) fn delete_call_in(
        &self,
        r: &mut Records,
        id: CallId,
    ) -> Result<CallSnapshot, StateError> {
        r.call(id)?;
        let now = self.now_ms();
        self.release_call(r, id, now)?;
        let call = r.call(id)?;
        let stored = call.stored(id, Some(now));
        let scope = call_scope(call);
        self.inner.store.write(|w| {
            w.update_call(&stored)?;
            append_event(
                w,
                "call.deleted",
                serde_json::json!({"call_id": id}),
                scope.clone(),
                now,
            )
        })?;
        let last = self.call_snapshot_of(r, id)?;
        if let Some(call) = r.calls.remove(&id) {
            debug_assert_eq!(call.state, CallState::Ended);
            crate::app::anchors::forget(r, id, &call);
        }
        tracing::debug!(call = %id, "call deleted");
        Ok(last)
    }

    /// The media side of [`AppState::delete_call`]: aborts the call's open supervisions (docs/
    /// design.md §2: the abort is an input of the session, whose outputs are carried out like
    /// any other's), then releases the call's media if still anchored.
    pub(super) fn release_call(
        &self,
        r: &mut Records,
        id: CallId,
        now: u64,
    ) -> Result<(), StateError> {
        for sup in r.open_supervisions(id) {
            let abort = Input::Abort {
                reason: AbortCause::CallDeleted,
            };
            match self.step(r, sup, now, Step::Input(abort)) {
                // Its answer timeout was due and fired first: it has ended already.
                Err(StateError::Refused {
                    refused: Refused::Ended { .. },
                    ..
                })
                | Ok(()) => {}
                Err(err) => return Err(err),
            }
        }
        self.end_call_media(r, id, now)
    }

    /// `PATCH /v1/calls/{id}/legs/{party}`: the leg becomes strict-source on `remote`.
    pub fn set_remote(
        &self,
        id: CallId,
        party: Party,
        remote: SocketAddr,
    ) -> Result<LegSnapshot, StateError> {
        let mut r = self.records();
        let engine_call = self.set_remote_in(&mut r, id, party, remote)?;
        let leg = match party {
            Party::Customer => LegId::CUSTOMER,
            Party::Agent => LegId::AGENT,
        };
        let record = *r.call_mut(id)?.leg_mut(party);
        Ok(self.leg_snapshot(Some((engine_call, leg)), &record))
    }

    /// [`AppState::set_remote`] under the records lock already held; answers the engine's call.
    pub(super) fn set_remote_in(
        &self,
        r: &mut Records,
        id: CallId,
        party: Party,
        remote: SocketAddr,
    ) -> Result<dataplane::engine::CallId, StateError> {
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
        Ok(engine_call)
    }

    /// `POST /v1/calls/{id}/events`.
    pub fn call_event(&self, id: CallId, event: CallEvent) -> Result<CallSnapshot, StateError> {
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
        self.call_snapshot_of(&r, id)
    }

    /// `hold` / `resume`: the call is held as a whole, so both parties' legs are marked (a held
    /// leg is timed out by `media.silent_timeout_secs` only; on resume the media timeout counts
    /// afresh). The engine first: if its ring is full the records are unchanged and a retry
    /// does it all again (setting a leg to the state it has changes nothing).
    pub(super) fn hold_parties(
        &self,
        r: &mut Records,
        id: CallId,
        held: bool,
    ) -> Result<(), StateError> {
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
    pub(super) fn party_hung_up(
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
    pub(super) fn feed_call_sessions(
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

    /// docs/design.md §2.7 persistent supervision: the sessions following `agent` and waiting for a
    /// call are given the agent's new call `call`. Whether the supervisor may still listen is their
    /// grant, checked again. A session that cannot take the call now (an outbound call the
    /// agent has not answered) keeps waiting.
    pub(super) fn attach_followers(&self, r: &mut Records, call: CallId, agent: &str, now: u64) {
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
    pub(super) fn end_call_media(
        &self,
        r: &mut Records,
        id: CallId,
        now: u64,
    ) -> Result<(), StateError> {
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
                s.leg.final_stats = Some(LegStats::default());
                self.inner.metrics.supervision_ended(s.mode);
            }
        }
        r.by_engine_call.remove(&engine_call);
        let call = r.call_mut(id)?;
        call.state = CallState::Ended;
        call.engine = None;
        call.ended_at_ms = Some(now);
        call.customer.final_stats = Some(customer.unwrap_or_default());
        call.agent.final_stats = Some(agent.unwrap_or_default());
        self.inner.metrics.call_ended();
        tracing::debug!(call = %id, "call ended");
        Ok(())
    }

    pub(super) fn persist_call(
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
            "state": call.state.as_str(),
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
}

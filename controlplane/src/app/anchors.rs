//! Calls anchored over the NG protocol (docs/ng.md): `offer`, `answer`, `delete`, `query`,
//! `list` as use cases over the call use cases (`calls.rs`). An NG call IS an earshot call:
//! the same [`CallId`], records, store rows, events and supervisions as a call created over
//! HTTP, with its NG call-id and tags attached ([`NgRecord`], table `ng_calls`). The rules
//! (which tag is which party, what a repeated offer means) are `domain::anchor`'s.
//!
//! Each use case runs under the records lock from lookup to commit, so two SIP workers'
//! offers of one call (docs/ng.md, Retransmissions) are decided one after the other: the
//! second finds the first's call.

use std::net::SocketAddr;

use dataplane::engine::EngineError;
use dataplane::wire::g711::Codec;

use crate::app::records::{CallRecord, Records};
use crate::app::snapshots::{CallSnapshot, CallState};
use crate::app::state::{AppState, StateError};
use crate::clock::{from_unix_ms, to_unix_ms};
use crate::domain::anchor::{
    AnchorRefusal, NgAnchor, NgId, OfferDecision, Said, Signal, decide_answer, decide_offer,
    label_warning, leg_codec, other, read_labels, tag_matches,
};
use crate::domain::call::{CallId, LegRequest, NewCall, Party};
use crate::domain::lifecycle::Direction;
use crate::store::{self, StoreExt as _};

/// Calls an NG `list` answers when the client does not say (rtpengine's default).
pub const LIST_DEFAULT: usize = 32;

/// The NG side of a call, in memory.
#[derive(Debug, Clone)]
pub struct NgRecord {
    pub(super) anchor: NgAnchor,
    /// The last offer or answer (NG `query`: `last signal`).
    pub(super) last_signal_ms: u64,
}

impl NgRecord {
    fn stored(&self, call: CallId) -> store::NgCallRecord {
        store::NgCallRecord {
            call_id: call.to_string(),
            ng_call_id: self.anchor.call_id.to_string(),
            offerer_tag: self.anchor.offerer_tag.to_string(),
            offerer: match self.anchor.offerer {
                Party::Customer => store::NgParty::Customer,
                Party::Agent => store::NgParty::Agent,
            },
            answerer_tag: self.anchor.answerer_tag.as_ref().map(NgId::to_string),
            last_signal: to_unix_ms(self.last_signal_ms),
        }
    }

    /// From the store: `None` if a value no longer parses (written by another version).
    fn from_stored(ng: &store::NgCallRecord) -> Option<NgRecord> {
        let answerer_tag = match &ng.answerer_tag {
            Some(t) => Some(NgId::parse("to-tag", t).ok()?),
            None => None,
        };
        Some(NgRecord {
            anchor: NgAnchor {
                call_id: NgId::parse("call-id", &ng.ng_call_id).ok()?,
                offerer_tag: NgId::parse("from-tag", &ng.offerer_tag).ok()?,
                offerer: match ng.offerer {
                    store::NgParty::Customer => Party::Customer,
                    store::NgParty::Agent => Party::Agent,
                },
                answerer_tag,
            },
            last_signal_ms: from_unix_ms(ng.last_signal),
        })
    }
}

/// What an `offer` or `answer` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchored {
    pub call: CallId,
    /// The appliance's media address to write into the SDP passed on: the leg of the party
    /// that SDP goes to (an offer's goes to the answerer, an answer's to the offerer).
    pub local: SocketAddr,
    /// The codec of the sender's leg (the SDP passed on should offer only it: the media engine
    /// cannot change a leg's codec later, docs/ng.md).
    pub codec: Codec,
    /// The party whose SDP this was.
    pub sender: Party,
    /// Non-fatal problems (NG `warning`): a label that contradicts the mapping, a second agent
    /// id.
    pub warnings: Vec<String>,
}

/// An NG call as `query` and `delete` answer it.
#[derive(Debug, Clone, PartialEq)]
pub struct NgCallSnapshot {
    pub ng_call_id: NgId,
    /// Every known tag with its party, the offerer's first.
    pub tags: Vec<(NgId, Party)>,
    pub last_signal_ms: u64,
    /// The call, its legs and their statistics (final ones after a delete).
    pub call: CallSnapshot,
}

/// Why an NG use case refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    /// No call has this NG call-id (or the tag given names neither of its parties).
    #[error("no NG call with call-id {0}")]
    UnknownCall(NgId),
    /// The media has no room for another call (no free port, or the engine's call limit):
    /// the NG adapter answers `load limit` (docs/design.md §7).
    #[error("over capacity: {0}")]
    OverCapacity(EngineError),
    #[error(transparent)]
    Refused(#[from] AnchorRefusal),
    #[error(transparent)]
    State(StateError),
    /// The sync after the use case failed (under [`AppState::deferred`], which the adapter
    /// runs the use cases in so that concurrent commands share their syncs): nothing is
    /// acknowledged.
    #[error("storage: {0}")]
    Storage(crate::app::storage::Storage),
}

impl From<crate::app::storage::Storage> for AnchorError {
    fn from(err: crate::app::storage::Storage) -> AnchorError {
        AnchorError::Storage(err)
    }
}

impl From<StateError> for AnchorError {
    fn from(err: StateError) -> AnchorError {
        match err {
            StateError::Engine(e @ (EngineError::PortsExhausted | EngineError::LoadLimit)) => {
                AnchorError::OverCapacity(e)
            }
            other => AnchorError::State(other),
        }
    }
}

impl From<store::StoreError> for AnchorError {
    fn from(err: store::StoreError) -> AnchorError {
        AnchorError::State(err.into())
    }
}

impl AppState {
    /// NG `offer`: the first offer of a call-id anchors a call (the offerer's leg strict on
    /// its SDP's address, the other leg latching until the answer); a re-offer from either
    /// party keeps the ports and updates that party's remote; an INVITE retransmission seen
    /// by another worker changes nothing. Answers the other party's local address.
    pub fn ng_offer(&self, signal: Signal) -> Result<Anchored, AnchorError> {
        let said = read_labels(signal.label.as_deref(), signal.metadata.as_deref())?;
        let now = self.now_ms();
        let mut r = self.records();
        let live = live_call(&r, &signal.call_id);
        let anchor = live.and_then(|id| r.calls.get(&id)?.ng.as_ref().map(|n| &n.anchor));
        let decision = decide_offer(
            anchor,
            &signal.from_tag,
            said.party,
            self.inner.settings.ng_parties,
        )?;
        match (decision, live) {
            (OfferDecision::New { offerer }, _) => self.anchor_call(&mut r, signal, said, offerer),
            (OfferDecision::Update { sender }, Some(id)) => {
                let mut warnings = Vec::from_iter(label_warning(said.party, sender));
                self.apply_signal(&mut r, id, sender, &signal, said, now, &mut warnings)?;
                self.touch(&mut r, id, None, now)?;
                answer(&r, id, sender, warnings)
            }
            (OfferDecision::Repeat { sender }, Some(id)) => answer(&r, id, sender, Vec::new()),
            (_, None) => Err(AnchorError::UnknownCall(signal.call_id)),
        }
    }

    /// NG `answer`: the answer's sender's remote and codec; a repeated answer again changes
    /// nothing more. Answers the local address of the party the answer goes to.
    pub fn ng_answer(&self, signal: Signal) -> Result<Anchored, AnchorError> {
        let said = read_labels(signal.label.as_deref(), signal.metadata.as_deref())?;
        let now = self.now_ms();
        let mut r = self.records();
        let id = live_call(&r, &signal.call_id)
            .ok_or_else(|| AnchorError::UnknownCall(signal.call_id.clone()))?;
        let anchor = &ng_record(r.call(id)?, id)?.anchor;
        let decision = decide_answer(anchor, &signal.from_tag, signal.to_tag.as_ref())?;
        let sender = decision.sender;
        let mut warnings = Vec::from_iter(label_warning(said.party, sender));
        self.apply_signal(&mut r, id, sender, &signal, said, now, &mut warnings)?;
        self.touch(&mut r, id, decision.tag, now)?;
        answer(&r, id, sender, warnings)
    }

    /// NG `delete`: by call-id and the tag of either party (or none), the whole call as
    /// `DELETE /v1/calls/{id}` does it (its supervisions aborted first). Answers the call as it
    /// ended.
    pub fn ng_delete(
        &self,
        call_id: &NgId,
        tag: Option<&NgId>,
    ) -> Result<NgCallSnapshot, AnchorError> {
        let mut r = self.records();
        let id = self.ng_call_in(&r, call_id, tag)?;
        let ng = ng_record(r.call(id)?, id)?.clone();
        let call = self.delete_call_in(&mut r, id)?;
        Ok(NgCallSnapshot::new(&ng, call))
    }

    /// NG `query`: the call, its tags' parties, its statistics.
    pub fn ng_query(
        &self,
        call_id: &NgId,
        tag: Option<&NgId>,
    ) -> Result<NgCallSnapshot, AnchorError> {
        let r = self.records();
        let id = self.ng_call_in(&r, call_id, tag)?;
        let ng = ng_record(r.call(id)?, id)?;
        Ok(NgCallSnapshot::new(ng, self.call_snapshot_of(&r, id)?))
    }

    /// NG `list`: the call-ids of the active NG calls, oldest first, at most `limit`.
    pub fn ng_list(&self, limit: usize) -> Vec<NgId> {
        let r = self.records();
        let mut calls: Vec<&CallRecord> = r
            .ng_calls
            .values()
            .filter_map(|id| r.calls.get(id))
            .filter(|c| c.state == CallState::Active)
            .collect();
        calls.sort_by_key(|c| c.seq);
        calls
            .into_iter()
            .take(limit)
            .filter_map(|c| c.ng.as_ref().map(|n| n.anchor.call_id.clone()))
            .collect()
    }

    /// `GET /v1/calls?ng_call_id=`: every call in memory anchored under this NG call-id (a
    /// call-id may be reused once a call is deleted), oldest first.
    pub fn calls_by_ng_call_id(&self, call_id: &str) -> Vec<CallSnapshot> {
        let r = self.records();
        let mut calls: Vec<(&CallId, &CallRecord)> = r
            .calls
            .iter()
            .filter(|(_, c)| {
                c.ng.as_ref()
                    .is_some_and(|n| n.anchor.call_id.as_str() == call_id)
            })
            .collect();
        calls.sort_by_key(|(_, c)| c.seq);
        calls
            .into_iter()
            .map(|(id, c)| self.call_snapshot(*id, c))
            .collect()
    }

    /// The call an NG call-id names now (live or ended), if `tag` names one of its parties.
    fn ng_call_in(
        &self,
        r: &Records,
        call_id: &NgId,
        tag: Option<&NgId>,
    ) -> Result<CallId, AnchorError> {
        r.ng_calls
            .get(call_id)
            .copied()
            .filter(|id| {
                r.calls
                    .get(id)
                    .and_then(|c| c.ng.as_ref())
                    .is_some_and(|n| tag_matches(&n.anchor, tag))
            })
            .ok_or_else(|| AnchorError::UnknownCall(call_id.clone()))
    }

    /// The first offer: a call like `POST /v1/calls` makes, with its NG side committed in the
    /// same transaction.
    fn anchor_call(
        &self,
        r: &mut Records,
        signal: Signal,
        said: Said,
        offerer: Party,
    ) -> Result<Anchored, AnchorError> {
        let codec = leg_codec(offerer, None, &signal.codecs)?;
        let sender = LegRequest {
            remote: signal.remote,
            codec,
        };
        let latching = LegRequest {
            remote: None,
            codec,
        };
        let (customer, agent) = match offerer {
            Party::Customer => (sender, latching),
            Party::Agent => (latching, sender),
        };
        let req = NewCall {
            customer,
            agent,
            // The customer called in, or the agent called out.
            direction: match offerer {
                Party::Customer => Direction::Inbound,
                Party::Agent => Direction::Outbound,
            },
            agent_id: said.agent_id.map(String::from),
            // An outbound call's offerer is the agent: on the line already.
            agent_answered: true,
            web: false,
        };
        let ng = NgRecord {
            anchor: NgAnchor {
                call_id: signal.call_id,
                offerer_tag: signal.from_tag,
                offerer,
                answerer_tag: None,
            },
            last_signal_ms: self.now_ms(),
        };
        let id = self.create_call_in(r, req, &mut |w, id| w.set_ng_call(&ng.stored(id)))?;
        r.ng_calls.insert(ng.anchor.call_id.clone(), id);
        r.call_mut(id)?.ng = Some(ng);
        tracing::debug!(call = %id, offerer = offerer.as_str(), "NG call anchored");
        answer(r, id, offerer, Vec::new())
    }

    /// A later offer's or answer's SDP: the sender's codec must still be carried, its remote
    /// (if the SDP names one that differs) becomes the leg's strict source, and an agent id
    /// the call lacks is taken (as `agent_id` at creation would have been).
    #[allow(clippy::too_many_arguments)]
    fn apply_signal(
        &self,
        r: &mut Records,
        id: CallId,
        sender: Party,
        signal: &Signal,
        said: Said,
        now: u64,
        warnings: &mut Vec<String>,
    ) -> Result<(), AnchorError> {
        let call = r.active_call(id)?;
        leg_codec(sender, Some(leg_of(call, sender).codec), &signal.codecs)?;
        if let Some(remote) = signal.remote
            && leg_of(call, sender).configured_remote() != Some(remote)
        {
            self.set_remote_in(r, id, sender, remote)?;
        }
        match (said.agent_id, &r.call(id)?.agent_id) {
            (Some(agent), None) => self.take_agent(r, id, agent.as_str(), now)?,
            (Some(agent), Some(known)) if agent.as_str() != known => warnings.push(format!(
                "agent id {agent} ignored: the call's agent is {known}"
            )),
            _ => {}
        }
        Ok(())
    }

    /// The call's agent named after its creation: recorded, subscribers notified and
    /// persistent supervisions attached, as when `POST /v1/calls` names it (docs/design.md
    /// §2.7, §3.4).
    fn take_agent(
        &self,
        r: &mut Records,
        id: CallId,
        agent: &str,
        now: u64,
    ) -> Result<(), AnchorError> {
        let call = r.call_mut(id)?;
        call.agent_id = Some(agent.to_owned());
        let stored = call.stored(id, None);
        let payload = serde_json::json!({"call_id": id, "agent_id": agent});
        let scope = crate::app::records::call_scope(call);
        self.inner.store.write(|w| {
            w.update_call(&stored)?;
            crate::app::records::append_event(
                w,
                "call.updated",
                payload.clone(),
                scope.clone(),
                now,
            )?;
            self.inner
                .center
                .notify_service_call(w, agent, &id.to_string(), now)
        })?;
        self.attach_followers(r, id, agent, now);
        Ok(())
    }

    /// Records a signal's time (and a new answerer tag) in memory and in the store.
    fn touch(
        &self,
        r: &mut Records,
        id: CallId,
        answerer_tag: Option<NgId>,
        now: u64,
    ) -> Result<(), AnchorError> {
        let mut next = ng_record(r.call(id)?, id)?.clone();
        next.last_signal_ms = now;
        if let Some(tag) = answerer_tag {
            next.anchor.answerer_tag = Some(tag);
        }
        let stored = next.stored(id);
        self.inner.store.write(|w| w.set_ng_call(&stored))?;
        r.call_mut(id)?.ng = Some(next);
        Ok(())
    }
}

/// The live call an NG call-id names, if any.
fn live_call(r: &Records, call_id: &NgId) -> Option<CallId> {
    r.ng_calls.get(call_id).copied().filter(|id| {
        r.calls
            .get(id)
            .is_some_and(|c| c.state == CallState::Active)
    })
}

fn leg_of(call: &CallRecord, party: Party) -> &crate::app::records::LegRecord {
    match party {
        Party::Customer => &call.customer,
        Party::Agent => &call.agent,
    }
}

/// The answer to a signal from `sender`: the other party's local address.
fn answer(
    r: &Records,
    id: CallId,
    sender: Party,
    warnings: Vec<String>,
) -> Result<Anchored, AnchorError> {
    let call = r.call(id)?;
    let local = leg_of(call, other(sender))
        .local
        .ok_or(StateError::CallEnded(id))?;
    Ok(Anchored {
        call: id,
        local,
        codec: leg_of(call, sender).codec,
        sender,
        warnings,
    })
}

/// The NG side of a call the NG index named (every call it names has one).
fn ng_record(call: &CallRecord, id: CallId) -> Result<&NgRecord, StateError> {
    call.ng.as_ref().ok_or_else(|| {
        StateError::Internal(format!("call {id} is indexed as NG but has no NG side"))
    })
}

impl NgCallSnapshot {
    fn new(ng: &NgRecord, call: CallSnapshot) -> NgCallSnapshot {
        NgCallSnapshot {
            ng_call_id: ng.anchor.call_id.clone(),
            tags: ng.anchor.tags(),
            last_signal_ms: ng.last_signal_ms,
            call,
        }
    }
}

/// A call leaves memory (deleted): its NG call-id no longer names it.
pub(super) fn forget(r: &mut Records, id: CallId, call: &CallRecord) {
    if let Some(ng) = &call.ng
        && r.ng_calls.get(&ng.anchor.call_id) == Some(&id)
    {
        r.ng_calls.remove(&ng.anchor.call_id);
    }
}

/// At start-up: the NG sides of the loaded calls (newest first, as the store lists them), so
/// NG commands find them again after a restart (ended: their media did not survive).
pub(super) fn attach_loaded(records: &mut Records, mut ng: Vec<store::NgCallRecord>) {
    ng.reverse();
    for stored in &ng {
        let Ok(id) = stored.call_id.parse::<CallId>() else {
            continue;
        };
        let Some(call) = records.calls.get_mut(&id) else {
            continue;
        };
        let Some(record) = NgRecord::from_stored(stored) else {
            tracing::warn!(call = %id, "stored NG call-id or tag no longer valid; call not reachable over NG");
            continue;
        };
        records.ng_calls.insert(record.anchor.call_id.clone(), id);
        call.ng = Some(record);
    }
}

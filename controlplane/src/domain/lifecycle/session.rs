//! The session: the transition function over [`State`] (see the module docs of
//! [`crate::domain::lifecycle`]). This file holds the session, its deadline and the dispatch of
//! inputs; the transitions are split by concern: `start.rs` (the start checks, the next call of
//! a session that follows an agent, connecting media), `ringing.rs` (while the supervisor's
//! phone rings), `call.rs` (the monitored call's events: mode, hold, consult, hang-ups…) and
//! `ending.rs` (stop, abort, and the report every ending emits).

mod call;
mod ending;
mod ringing;
mod start;

use dataplane::media::matrix::Mode;

use crate::domain::agents::UserId;
use crate::domain::ids::{CallId, SupervisionId};

use super::alerts::{AlertKind, FailReason};
use super::inputs::{AnswerTimeout, CallFacts, Input, Refused, Restored, SessionScope};
use super::number::SupervisorNumber;
use super::outputs::{Alert, AuditAction, AuditActor, AuditRecord, Output};
use super::state::State;
use call::CallEvent;
use ending::Ending;

/// What a started session is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Binding {
    supervisor: Option<UserId>,
    agent: Option<UserId>,
    scope: SessionScope,
    /// The call attached, or last attached (or skipped).
    call: CallFacts,
    /// `None`: the registered number was not valid (the session failed at start).
    number: Option<SupervisorNumber>,
    answer_timeout: AnswerTimeout,
    answer_deadline_ms: u64,
}

/// One supervision session. See the module docs for the contract and the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    id: SupervisionId,
    answer_timeout_default: AnswerTimeout,
    state: State,
    /// `Some` from [`Input::Start`] on.
    binding: Option<Binding>,
    /// The latest time the session accepted.
    last_ms: u64,
}

impl Session {
    /// A session in [`State::New`]; `answer_timeout_default` is the global setting, which a
    /// [`Start`](super::Start) may override.
    pub fn new(id: SupervisionId, answer_timeout_default: AnswerTimeout) -> Session {
        Session {
            id,
            answer_timeout_default,
            state: State::New,
            binding: None,
            last_ms: 0,
        }
    }

    /// A session rebuilt from what a previous run stored about it, in `state` (requested,
    /// active or no call), so that it can be ended through its inputs (docs/design.md §7:
    /// sessions left open by a crash are closed, not resumed). Its answer timeout does not
    /// run (the previous run's timer is gone) and its registered number is unknown.
    pub fn restored(id: SupervisionId, restored: Restored) -> Session {
        let Restored {
            supervisor,
            agent,
            scope,
            call,
            state,
        } = restored;
        Session {
            id,
            answer_timeout_default: AnswerTimeout::DEFAULT,
            state,
            binding: Some(Binding {
                supervisor,
                agent,
                scope,
                call,
                number: None,
                answer_timeout: AnswerTimeout::DEFAULT,
                answer_deadline_ms: u64::MAX,
            }),
            last_ms: 0,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The call attached, or last attached, once started.
    pub fn call(&self) -> Option<CallId> {
        self.binding.as_ref().map(|b| b.call.call)
    }

    /// When [`Session::on_timeout`] has something to do: the answer deadline while requested.
    pub fn next_deadline(&self) -> Option<u64> {
        match (&self.state, &self.binding) {
            (State::Requested { .. }, Some(b)) => Some(b.answer_deadline_ms),
            _ => None,
        }
    }

    /// Fires a due deadline. Before it, or with none pending, does nothing.
    pub fn on_timeout(&mut self, now_ms: u64) -> Vec<Output> {
        let at_ms = now_ms.max(self.last_ms);
        match (self.next_deadline(), &self.binding) {
            (Some(deadline_ms), Some(b)) if at_ms >= deadline_ms => {
                let reason = format!(
                    "the supervisor's phone was not answered within {} ms",
                    b.answer_timeout.ms()
                );
                self.last_ms = at_ms;
                self.finish(
                    at_ms,
                    Ending::Failed(FailReason::SupervisorDidntAnswer),
                    reason,
                )
            }
            _ => Vec::new(),
        }
    }

    /// Applies one input at `now_ms`. `Err`: refused, nothing changed.
    pub fn handle(&mut self, now_ms: u64, input: Input) -> Result<Vec<Output>, Refused> {
        let at_ms = now_ms.max(self.last_ms);
        if self.state.is_terminal() {
            return Err(Refused::Ended {
                state: self.state.code(),
            });
        }
        if let Some(deadline_ms) = self.next_deadline()
            && at_ms >= deadline_ms
        {
            return Err(Refused::TimeoutDue { deadline_ms });
        }
        let outputs = self.step(at_ms, input)?;
        self.last_ms = at_ms;
        Ok(outputs)
    }

    /// Every branch checks legality before it changes anything.
    fn step(&mut self, at_ms: u64, input: Input) -> Result<Vec<Output>, Refused> {
        let not_legal = Refused::NotLegal {
            input: input.name(),
            state: self.state.code(),
        };
        if let Input::Start(start) = input {
            return self.start(at_ms, start);
        }
        if self.state == State::New {
            return Err(Refused::NotStarted);
        }
        match input {
            Input::Start(_) => Err(Refused::AlreadyStarted),
            Input::SupervisorRinging => self.supervisor_ringing(not_legal),
            Input::SupervisorAnswered { calling_number } => {
                self.supervisor_answered(at_ms, &calling_number, not_legal)
            }
            Input::SupervisorRejected => self.requested_fails(
                at_ms,
                FailReason::SupervisorNumberInvalid,
                "the supervisor rejected the call",
                not_legal,
            ),
            Input::SupervisorDnd => self.requested_fails(
                at_ms,
                FailReason::SupervisorNumberInvalid,
                "the supervisor's phone is in do-not-disturb",
                not_legal,
            ),
            Input::SetMode(mode) => self.set_mode(at_ms, mode, not_legal),
            Input::Stop => self.stop(at_ms),
            Input::CallHeld => self.call_event(at_ms, CallEvent::Held, not_legal),
            Input::ConsultStarted => self.call_event(at_ms, CallEvent::Consult, not_legal),
            Input::SecurePaymentStarted => {
                self.call_event(at_ms, CallEvent::SecurePayment, not_legal)
            }
            Input::ConferenceStarted => self.call_event(at_ms, CallEvent::Conference, not_legal),
            Input::CallReleasedByAgent => self.call_event(at_ms, CallEvent::Released, not_legal),
            Input::Hangup { party } => self.hangup(at_ms, party, not_legal),
            Input::AgentAnswered => self.agent_answered(not_legal),
            Input::AgentNextCall {
                call,
                supervisor_may_listen,
            } => self.agent_next_call(at_ms, call, supervisor_may_listen, not_legal),
            Input::Abort { reason } => Ok(self.abort(at_ms, reason)),
        }
    }

    fn audit(
        &self,
        b: &Binding,
        at_ms: u64,
        action: AuditAction,
        mode: Option<Mode>,
        alert: Option<AlertKind>,
    ) -> AuditRecord {
        AuditRecord {
            action,
            actor: AuditActor::Supervisor,
            session: self.id,
            supervisor: b.supervisor.clone(),
            agent: b.agent.clone(),
            call: b.call.call,
            mode,
            alert,
            at_ms,
        }
    }

    fn alert(&self, at_ms: u64, kind: AlertKind, reason: String) -> Option<Output> {
        self.alert_with(at_ms, kind, kind.text(), reason)
    }

    fn alert_with(
        &self,
        at_ms: u64,
        kind: AlertKind,
        text: &'static str,
        reason: String,
    ) -> Option<Output> {
        self.binding.as_ref().map(|b| {
            Output::Alert(Alert {
                kind,
                text,
                at_ms,
                session: self.id,
                call: b.call.call,
                reason,
            })
        })
    }
}

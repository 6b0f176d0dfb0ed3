//! The session: the transition function over [`State`] (see the module docs of
//! [`crate::domain::lifecycle`]).

use dataplane::media::matrix::Mode;

use crate::domain::agents::UserId;
use crate::domain::ids::{CallId, SupervisionId, quote};

use super::alerts::{AbortCause, AbortReason, AlertKind, FailReason};
use super::checks::{check_call_state, check_rights};
use super::inputs::{
    AnswerTimeout, CallFacts, CallKind, Direction, HangupParty, Input, Refused, Restored,
    SessionScope, Start,
};
use super::number::{SupervisorNumber, validate_supervisor_number};
use super::outputs::{Alert, AuditAction, AuditActor, AuditRecord, Output};
use super::state::{CallLink, State, Vanished};

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

/// How a session ends, or how an [`SessionScope::Agent`] session leaves a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Stopped,
    Failed(FailReason),
    Aborted(AbortReason),
}

impl Ending {
    const fn alert(self) -> AlertKind {
        match self {
            Ending::Stopped => AlertKind::MonitoringStopped,
            Ending::Failed(r) => r.alert(),
            Ending::Aborted(r) => r.alert(),
        }
    }

    const fn alert_text(self) -> &'static str {
        match self {
            Ending::Aborted(r) => r.alert_text(),
            _ => self.alert().text(),
        }
    }

    const fn audit_action(self) -> AuditAction {
        match self {
            Ending::Stopped => AuditAction::SupervisionStop,
            Ending::Failed(FailReason::NoPermission) => AuditAction::SupervisionDenial,
            Ending::Failed(_) => AuditAction::SupervisionFailure,
            Ending::Aborted(_) => AuditAction::SupervisionAbort,
        }
    }

    const fn state(self) -> State {
        match self {
            Ending::Stopped => State::Stopped,
            Ending::Failed(r) => State::Failed(r),
            Ending::Aborted(r) => State::Aborted(r),
        }
    }
}

/// A call-state event the softswitch reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallEvent {
    Held,
    Consult,
    SecurePayment,
    Conference,
    Released,
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
    /// [`Start`] may override.
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
            Input::SupervisorRinging => match self.state {
                State::Requested {
                    supervisor_ringing: false,
                    call,
                } => {
                    self.state = State::Requested {
                        supervisor_ringing: true,
                        call,
                    };
                    Ok(Vec::new())
                }
                _ => Err(not_legal),
            },
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
            Input::AgentAnswered => match self.state {
                State::Requested {
                    supervisor_ringing,
                    call: CallLink::AwaitingAgent,
                } => {
                    self.state = State::Requested {
                        supervisor_ringing,
                        call: CallLink::Present,
                    };
                    Ok(Vec::new())
                }
                _ => Err(not_legal),
            },
            Input::AgentNextCall {
                call,
                supervisor_may_listen,
            } => self.agent_next_call(at_ms, call, supervisor_may_listen, not_legal),
            Input::Abort { reason } => Ok(self.abort(at_ms, reason)),
        }
    }

    /// [`Input::Abort`]: legal in every started state that has not ended (checked by the
    /// caller, [`Session::handle`]).
    fn abort(&mut self, at_ms: u64, cause: AbortCause) -> Vec<Output> {
        let why = match cause {
            AbortCause::CallDeleted => "the call was deleted".to_owned(),
            AbortCause::Restart => format!(
                "the process stopped while the session was {}; it is not resumed",
                self.state.code()
            ),
        };
        self.finish(at_ms, Ending::Aborted(AbortReason::Outside(cause)), why)
    }

    fn start(&mut self, at_ms: u64, start: Start) -> Result<Vec<Output>, Refused> {
        if self.state != State::New {
            return Err(Refused::AlreadyStarted);
        }
        if start.call.kind == CallKind::Web {
            return Err(Refused::WebCall);
        }
        if let SessionScope::Agent { grant_id: None } = start.scope {
            return Err(Refused::PersistentWithoutGrant);
        }
        let answer_timeout = start.answer_timeout.unwrap_or(self.answer_timeout_default);
        let number = validate_supervisor_number(&start.registered_number);
        let number_problem = number.as_ref().err().map(|e| e.problem);
        let call = start.call;
        self.binding = Some(Binding {
            supervisor: start.supervisor,
            agent: start.agent,
            scope: start.scope,
            call,
            number: number.ok(),
            answer_timeout,
            answer_deadline_ms: at_ms.saturating_add(answer_timeout.ms()),
        });
        let failure = if let Some(denied) = check_rights(&call, start.supervisor_may_listen) {
            Some(denied)
        } else if let Some(problem) = number_problem {
            Some((
                FailReason::SupervisorNumberInvalid,
                format!("the registered supervisor number is not valid: {problem}"),
            ))
        } else {
            check_call_state(&call)
        };
        if let Some((reason, why)) = failure {
            return Ok(self.finish(at_ms, Ending::Failed(reason), why));
        }
        self.state = State::Requested {
            supervisor_ringing: false,
            call: if call.agent_not_answered() {
                CallLink::AwaitingAgent
            } else {
                CallLink::Present
            },
        };
        Ok(Vec::new())
    }

    fn supervisor_answered(
        &mut self,
        at_ms: u64,
        calling_number: &str,
        not_legal: Refused,
    ) -> Result<Vec<Output>, Refused> {
        let State::Requested { call, .. } = self.state else {
            return Err(not_legal);
        };
        let number_matches = self
            .binding
            .as_ref()
            .and_then(|b| b.number.as_ref())
            .is_some_and(|n| n.matches_calling_number(calling_number));
        if !number_matches {
            let why = format!(
                "the supervisor's leg was answered from {}, not the registered number",
                quote(calling_number)
            );
            return Ok(self.finish(
                at_ms,
                Ending::Failed(FailReason::SupervisorNumberInvalid),
                why,
            ));
        }
        Ok(match call {
            CallLink::Present => self.connect(at_ms),
            CallLink::AwaitingAgent => self.finish(
                at_ms,
                Ending::Failed(FailReason::NoCallToMonitor),
                "the agent has not answered the outbound call".to_owned(),
            ),
            CallLink::Vanished(vanished) => {
                self.state = State::NoCall {
                    vanished: Some(vanished),
                };
                let why = format!(
                    "the supervisor answered, but {} while the phone rang",
                    vanished.describe()
                );
                let mut outputs = vec![Output::AnnounceNoCall];
                outputs.extend(self.alert(at_ms, AlertKind::MonitoringInitiated, why));
                outputs
            }
        })
    }

    /// Rejection and do-not-disturb: legal while requested.
    fn requested_fails(
        &mut self,
        at_ms: u64,
        reason: FailReason,
        why: &str,
        not_legal: Refused,
    ) -> Result<Vec<Output>, Refused> {
        match self.state {
            State::Requested { .. } => Ok(self.finish(at_ms, Ending::Failed(reason), why.into())),
            _ => Err(not_legal),
        }
    }

    fn set_mode(
        &mut self,
        at_ms: u64,
        mode: Mode,
        not_legal: Refused,
    ) -> Result<Vec<Output>, Refused> {
        let State::Active {
            mode: current,
            customer_gone,
            agent_gone,
        } = self.state
        else {
            return Err(not_legal);
        };
        if mode == current {
            return Ok(Vec::new());
        }
        let Some(b) = &self.binding else {
            return Err(not_legal);
        };
        let outputs = vec![
            Output::Audit(self.audit(
                b,
                at_ms,
                AuditAction::SupervisionModeChange,
                Some(mode),
                None,
            )),
            Output::SetMedia {
                call: b.call.call,
                mode,
            },
        ];
        self.state = State::Active {
            mode,
            customer_gone,
            agent_gone,
        };
        Ok(outputs)
    }

    fn stop(&mut self, at_ms: u64) -> Result<Vec<Output>, Refused> {
        let (ending, why) = match self.state {
            State::Requested {
                call: CallLink::Vanished(vanished),
                ..
            }
            | State::NoCall {
                vanished: Some(vanished),
            } => self.no_call_ending(vanished, "stopped"),
            State::Requested { .. } => (
                Ending::Stopped,
                "stopped by the supervisor before their phone answered".to_owned(),
            ),
            State::Active { .. } | State::NoCall { vanished: None } => {
                (Ending::Stopped, "stopped by the supervisor".to_owned())
            }
            State::New | State::Stopped | State::Failed(_) | State::Aborted(_) => {
                return Err(Refused::NotLegal {
                    input: "stop",
                    state: self.state.code(),
                });
            }
        };
        Ok(self.finish(at_ms, ending, why))
    }

    /// How a session whose call vanished while the phone rang ends (`how`: "stopped", "the
    /// supervisor hung up"): no call to monitor, except the scenario's inbound agent hang-up.
    fn no_call_ending(&self, vanished: Vanished, how: &str) -> (Ending, String) {
        let inbound = self
            .binding
            .as_ref()
            .is_some_and(|b| b.call.direction == Direction::Inbound);
        let ending = if inbound && vanished == Vanished::AgentHungUp {
            Ending::Aborted(AbortReason::AgentHungUp)
        } else {
            Ending::Failed(FailReason::NoCallToMonitor)
        };
        (
            ending,
            format!(
                "{how}; {} while the supervisor's phone rang",
                vanished.describe()
            ),
        )
    }

    fn call_event(
        &mut self,
        at_ms: u64,
        event: CallEvent,
        not_legal: Refused,
    ) -> Result<Vec<Output>, Refused> {
        match self.state {
            State::Requested {
                supervisor_ringing,
                call: CallLink::Present | CallLink::AwaitingAgent,
            } => {
                let (reason, why) = match event {
                    CallEvent::Held => (
                        FailReason::MonitoringFailed,
                        "the agent put the customer on hold",
                    ),
                    CallEvent::Consult => (
                        FailReason::MonitoringFailed,
                        "the agent started a consult (the customer is on hold)",
                    ),
                    CallEvent::SecurePayment => (
                        FailReason::AgentNotReady,
                        "the customer is in the secure-payment system",
                    ),
                    CallEvent::Conference => {
                        (FailReason::NoPermission, "the call became a conference")
                    }
                    CallEvent::Released => {
                        self.state = State::Requested {
                            supervisor_ringing,
                            call: CallLink::Vanished(Vanished::AgentReleased),
                        };
                        return Ok(Vec::new());
                    }
                };
                let why = format!("{why} while the supervisor's phone rang");
                Ok(self.finish(at_ms, Ending::Failed(reason), why))
            }
            State::Active { .. } => {
                let (ending, why) = match event {
                    CallEvent::Held => (
                        Ending::Aborted(AbortReason::AgentHeldCall),
                        "the agent put the customer on hold",
                    ),
                    CallEvent::Consult => (
                        Ending::Aborted(AbortReason::AgentHeldCall),
                        "the agent started a consult (the customer is on hold)",
                    ),
                    CallEvent::SecurePayment => (
                        Ending::Aborted(AbortReason::AgentHeldCall),
                        "the agent transferred the customer to the secure-payment system",
                    ),
                    CallEvent::Released => (
                        Ending::Aborted(AbortReason::AgentHeldCall),
                        "the agent released the call",
                    ),
                    CallEvent::Conference => (
                        Ending::Failed(FailReason::NoPermission),
                        "the call became a conference, which may not be monitored",
                    ),
                };
                Ok(self.call_ends(at_ms, ending, why.to_owned()))
            }
            _ => Err(not_legal),
        }
    }

    fn hangup(
        &mut self,
        at_ms: u64,
        party: HangupParty,
        not_legal: Refused,
    ) -> Result<Vec<Output>, Refused> {
        let direction = match &self.binding {
            Some(b) => b.call.direction,
            None => return Err(Refused::NotStarted),
        };
        match (self.state, party) {
            (State::Requested { .. }, HangupParty::Supervisor) => Ok(self.finish(
                at_ms,
                Ending::Failed(FailReason::SupervisorDidntAnswer),
                "the supervisor's leg ended before it was answered".to_owned(),
            )),
            (
                State::Requested {
                    supervisor_ringing,
                    call: CallLink::Present | CallLink::AwaitingAgent,
                },
                HangupParty::Customer | HangupParty::Agent,
            ) => {
                let vanished = if party == HangupParty::Customer {
                    Vanished::CustomerHungUp
                } else {
                    Vanished::AgentHungUp
                };
                self.state = State::Requested {
                    supervisor_ringing,
                    call: CallLink::Vanished(vanished),
                };
                Ok(Vec::new())
            }
            (State::Active { .. }, HangupParty::Supervisor) => Ok(self.finish(
                at_ms,
                Ending::Aborted(AbortReason::SupervisorHungUp),
                "the supervisor hung up".to_owned(),
            )),
            (
                State::Active {
                    mode,
                    customer_gone,
                    agent_gone,
                },
                HangupParty::Customer | HangupParty::Agent,
            ) => {
                let customer = party == HangupParty::Customer;
                if (customer && customer_gone) || (!customer && agent_gone) {
                    return Err(Refused::PartyGone {
                        party: party.as_str(),
                    });
                }
                let ending = match (direction, customer) {
                    (Direction::Inbound, false) if customer_gone => Some((
                        AbortReason::CallerHungUp,
                        "the customer hung up, then the agent",
                    )),
                    (Direction::Inbound, false) => {
                        Some((AbortReason::AgentHungUp, "the agent hung up"))
                    }
                    (Direction::Inbound, true) => None,
                    (Direction::Outbound, true) if agent_gone => Some((
                        AbortReason::AgentHungUp,
                        "the agent hung up, then the customer",
                    )),
                    (Direction::Outbound, false) if customer_gone => Some((
                        AbortReason::AgentHungUp,
                        "the customer hung up, then the agent",
                    )),
                    (Direction::Outbound, _) => None,
                };
                match ending {
                    Some((reason, why)) => {
                        Ok(self.call_ends(at_ms, Ending::Aborted(reason), why.to_owned()))
                    }
                    None => {
                        self.state = State::Active {
                            mode,
                            customer_gone: customer_gone || customer,
                            agent_gone: agent_gone || !customer,
                        };
                        Ok(Vec::new())
                    }
                }
            }
            (State::NoCall { vanished }, HangupParty::Supervisor) => {
                let (ending, why) = match vanished {
                    Some(vanished) => self.no_call_ending(vanished, "the supervisor hung up"),
                    None => (
                        Ending::Aborted(AbortReason::SupervisorHungUp),
                        "the supervisor hung up between calls".to_owned(),
                    ),
                };
                Ok(self.finish(at_ms, ending, why))
            }
            _ => Err(not_legal),
        }
    }

    fn agent_next_call(
        &mut self,
        at_ms: u64,
        call: CallFacts,
        supervisor_may_listen: bool,
        not_legal: Refused,
    ) -> Result<Vec<Output>, Refused> {
        let Some(b) = &self.binding else {
            return Err(Refused::NotStarted);
        };
        if b.scope == SessionScope::Call {
            return Err(Refused::NotAgentScope);
        }
        if !matches!(self.state, State::NoCall { .. }) {
            return Err(not_legal);
        }
        if call.kind == CallKind::Web {
            return Err(Refused::WebCall);
        }
        if call.agent_not_answered() {
            return Err(Refused::AgentNotAnswered);
        }
        if let Some(b) = &mut self.binding {
            b.call = call;
        }
        if !supervisor_may_listen {
            // A right over the agent, not a fact of this call: following the agent is over.
            return Ok(self.finish(
                at_ms,
                Ending::Failed(FailReason::NoPermission),
                "the supervisor no longer has the listen right over this agent".to_owned(),
            ));
        }
        match check_rights(&call, true).or_else(|| check_call_state(&call)) {
            // Skipped: reported and audited, the session waits for the next call.
            Some((reason, why)) => Ok(self.report(at_ms, Ending::Failed(reason), why)),
            None => Ok(self.connect(at_ms)),
        }
    }

    /// The call is answered and present: media flows, in listen.
    fn connect(&mut self, at_ms: u64) -> Vec<Output> {
        let Some(b) = &self.binding else {
            return Vec::new();
        };
        let call = b.call.call;
        let mut outputs = vec![
            Output::Audit(self.audit(
                b,
                at_ms,
                AuditAction::SupervisionStart,
                Some(Mode::Listen),
                None,
            )),
            Output::ConnectMedia {
                call,
                mode: Mode::Listen,
            },
        ];
        self.state = State::Active {
            mode: Mode::Listen,
            customer_gone: false,
            agent_gone: false,
        };
        outputs.extend(self.alert(
            at_ms,
            AlertKind::MonitoringInitiated,
            "the supervisor answered; media flows".to_owned(),
        ));
        outputs
    }

    /// Monitoring of the current call ends because of the call: the session ends, or, following
    /// an agent, waits for the next call.
    fn call_ends(&mut self, at_ms: u64, ending: Ending, why: String) -> Vec<Output> {
        let follows_agent = self
            .binding
            .as_ref()
            .is_some_and(|b| matches!(b.scope, SessionScope::Agent { .. }));
        if follows_agent {
            let outputs = self.report(at_ms, ending, why);
            self.state = State::NoCall { vanished: None };
            outputs
        } else {
            self.finish(at_ms, ending, why)
        }
    }

    /// The session ends.
    fn finish(&mut self, at_ms: u64, ending: Ending, why: String) -> Vec<Output> {
        let terminal = ending.state();
        let mut outputs = self.report(at_ms, ending, why);
        self.state = terminal;
        outputs.push(Output::Ended { state: terminal });
        outputs
    }

    /// Audit, disconnect if media flows, alert. Changes no state.
    fn report(&self, at_ms: u64, ending: Ending, why: String) -> Vec<Output> {
        let Some(b) = &self.binding else {
            return Vec::new();
        };
        let mode = self.state.mode();
        let kind = ending.alert();
        let actor = match ending {
            // Nobody of the call did it: the system acts, and says what it ended.
            Ending::Aborted(AbortReason::Outside(reason)) => AuditActor::System {
                was: self.state.code(),
                reason,
            },
            _ => AuditActor::Supervisor,
        };
        let mut outputs = Vec::with_capacity(4);
        let mut audit = self.audit(b, at_ms, ending.audit_action(), mode, Some(kind));
        audit.actor = actor;
        outputs.push(Output::Audit(audit));
        if mode.is_some() {
            outputs.push(Output::DisconnectMedia { call: b.call.call });
        }
        outputs.extend(self.alert_with(at_ms, kind, ending.alert_text(), why));
        outputs
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

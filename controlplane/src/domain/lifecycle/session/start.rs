//! Starting a session and connecting its media (docs/design.md §2, the checks at start): the
//! start checks, the next call of a session that follows an agent, and the supervisor's leg
//! joining the call in listen.

use dataplane::media::matrix::Mode;

use super::super::alerts::{AlertKind, FailReason};
use super::super::checks::{check_call_state, check_rights};
use super::super::inputs::{CallFacts, CallKind, Refused, SessionScope, Start};
use super::super::number::validate_supervisor_number;
use super::super::outputs::{AuditAction, Output};
use super::super::state::{CallLink, State};
use super::ending::Ending;
use super::{Binding, Session};

impl Session {
    pub(super) fn start(&mut self, at_ms: u64, start: Start) -> Result<Vec<Output>, Refused> {
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

    pub(super) fn agent_next_call(
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
    pub(super) fn connect(&mut self, at_ms: u64) -> Vec<Output> {
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
}

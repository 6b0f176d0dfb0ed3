//! How a session ends, or leaves a call (docs/design.md §2, the alert rules; §4, the audit
//! record of every ending): stop, abort from outside, the end of a vanished call, and the one
//! report (audit, media disconnect, alert) every ending emits.

use super::super::alerts::{AbortCause, AbortReason, AlertKind, FailReason};
use super::super::inputs::{Direction, Refused, SessionScope};
use super::super::outputs::{AuditAction, AuditActor, Output};
use super::super::state::{CallLink, State, Vanished};
use super::Session;

/// How a session ends, or how an [`SessionScope::Agent`] session leaves a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
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

impl Session {
    /// [`Input::Abort`]: legal in every started state that has not ended (checked by the
    /// caller, [`Session::handle`]).
    pub(super) fn abort(&mut self, at_ms: u64, cause: AbortCause) -> Vec<Output> {
        let why = match cause {
            AbortCause::CallDeleted => "the call was deleted".to_owned(),
            AbortCause::Restart => format!(
                "the process stopped while the session was {}; it is not resumed",
                self.state.code()
            ),
        };
        self.finish(at_ms, Ending::Aborted(AbortReason::Outside(cause)), why)
    }

    pub(super) fn stop(&mut self, at_ms: u64) -> Result<Vec<Output>, Refused> {
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
    pub(super) fn no_call_ending(&self, vanished: Vanished, how: &str) -> (Ending, String) {
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

    /// Monitoring of the current call ends because of the call: the session ends, or, following
    /// an agent, waits for the next call.
    pub(super) fn call_ends(&mut self, at_ms: u64, ending: Ending, why: String) -> Vec<Output> {
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
    pub(super) fn finish(&mut self, at_ms: u64, ending: Ending, why: String) -> Vec<Output> {
        let terminal = ending.state();
        let mut outputs = self.report(at_ms, ending, why);
        self.state = terminal;
        outputs.push(Output::Ended { state: terminal });
        outputs
    }

    /// Audit, disconnect if media flows, alert. Changes no state.
    pub(super) fn report(&self, at_ms: u64, ending: Ending, why: String) -> Vec<Output> {
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
}

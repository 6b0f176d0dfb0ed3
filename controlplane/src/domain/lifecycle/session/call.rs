//! The monitored call's events (docs/design.md §2, while requested and while active): mode
//! changes, hold, consult, secure payment, conference, release, and hang-ups.

use dataplane::media::matrix::Mode;

use super::super::alerts::{AbortReason, FailReason};
use super::super::inputs::{Direction, HangupParty, Refused};
use super::super::outputs::{AuditAction, Output};
use super::super::state::{CallLink, State, Vanished};
use super::Session;
use super::ending::Ending;

/// A call-state event the softswitch reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CallEvent {
    Held,
    Consult,
    SecurePayment,
    Conference,
    Released,
}

impl Session {
    pub(super) fn set_mode(
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

    pub(super) fn call_event(
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

    pub(super) fn hangup(
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
}

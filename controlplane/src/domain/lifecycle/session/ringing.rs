//! While the supervisor's phone rings ([`State::Requested`], docs/design.md §2): ringing, the
//! agent answering an outbound call, and the supervisor answering, rejecting or being in
//! do-not-disturb.

use super::super::alerts::{AlertKind, FailReason};
use super::super::inputs::Refused;
use super::super::outputs::Output;
use super::super::state::{CallLink, State};
use super::Session;
use super::ending::Ending;
use crate::domain::ids::quote;

impl Session {
    /// [`crate::domain::lifecycle::Input::SupervisorRinging`]: once, while requested.
    pub(super) fn supervisor_ringing(
        &mut self,
        not_legal: Refused,
    ) -> Result<Vec<Output>, Refused> {
        match self.state {
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
        }
    }

    /// [`crate::domain::lifecycle::Input::AgentAnswered`]: an outbound call the session waits on.
    pub(super) fn agent_answered(&mut self, not_legal: Refused) -> Result<Vec<Output>, Refused> {
        match self.state {
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
        }
    }

    pub(super) fn supervisor_answered(
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
    pub(super) fn requested_fails(
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
}

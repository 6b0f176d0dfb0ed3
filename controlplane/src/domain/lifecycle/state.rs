//! A session's states (docs/design.md §2).

use dataplane::media::matrix::Mode;
use serde::Serialize;

use super::alerts::{AbortReason, FailReason};

/// How a call went away while the supervisor's phone rang.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vanished {
    AgentReleased,
    AgentHungUp,
    CustomerHungUp,
}

impl Vanished {
    pub(super) const fn describe(self) -> &'static str {
        match self {
            Vanished::AgentReleased => "the agent released the call",
            Vanished::AgentHungUp => "the agent hung up",
            Vanished::CustomerHungUp => "the customer hung up",
        }
    }
}

/// The call of a requested session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallLink {
    Present,
    /// Outbound, the agent has not answered yet.
    AwaitingAgent,
    Vanished(Vanished),
}

/// A session's state. [`State::Stopped`], [`State::Failed`], [`State::Aborted`] are terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Created, waiting for [`Input::Start`].
    New,
    /// The supervisor's leg is being connected.
    Requested {
        supervisor_ringing: bool,
        call: CallLink,
    },
    /// Media flows. `customer_gone` / `agent_gone`: that party hung up and the session goes on
    /// (see the module docs for when).
    Active {
        mode: Mode,
        customer_gone: bool,
        agent_gone: bool,
    },
    /// The supervisor's leg is up with no call attached: the call vanished while the phone
    /// rang (`vanished`), or an [`SessionScope::Agent`] session waits for the next call.
    NoCall {
        vanished: Option<Vanished>,
    },
    Stopped,
    Failed(FailReason),
    Aborted(AbortReason),
}

impl State {
    /// The state's stable name.
    pub const fn code(&self) -> &'static str {
        match self {
            State::New => "new",
            State::Requested { .. } => "requested",
            State::Active { .. } => "active",
            State::NoCall { .. } => "no_call",
            State::Stopped => "stopped",
            State::Failed(_) => "failed",
            State::Aborted(_) => "aborted",
        }
    }

    pub const fn is_terminal(&self) -> bool {
        matches!(self, State::Stopped | State::Failed(_) | State::Aborted(_))
    }

    /// The mode while media flows.
    pub const fn mode(&self) -> Option<Mode> {
        match self {
            State::Active { mode, .. } => Some(*mode),
            _ => None,
        }
    }
}

/// A supervision's state as it is recorded and shown (docs/api.md): [`State`] without its
/// details, derived from it by [`State::record`], the one mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SupervisionState {
    /// The supervisor's leg is being connected (ringing, or waiting for the outbound agent).
    Requested,
    /// Media flows, in `mode`.
    Active,
    /// The supervisor's leg is up with no call: the call vanished while the phone rang, or a
    /// persistent session waits for the agent's next call.
    NoCall,
    /// Ended by the supervisor (API `DELETE`, or the stop key).
    Stopped,
    /// See `failure`.
    Failed,
    /// See `abort`.
    Aborted,
}

impl SupervisionState {
    pub const fn as_str(self) -> &'static str {
        match self {
            SupervisionState::Requested => "requested",
            SupervisionState::Active => "active",
            SupervisionState::NoCall => "no_call",
            SupervisionState::Stopped => "stopped",
            SupervisionState::Failed => "failed",
            SupervisionState::Aborted => "aborted",
        }
    }

    pub const fn is_open(self) -> bool {
        matches!(
            self,
            SupervisionState::Requested | SupervisionState::Active | SupervisionState::NoCall
        )
    }
}

impl State {
    /// The recorded state: a session not yet started is recorded as requested (it is started
    /// before it is first recorded).
    pub const fn record(&self) -> SupervisionState {
        match self {
            State::New | State::Requested { .. } => SupervisionState::Requested,
            State::Active { .. } => SupervisionState::Active,
            State::NoCall { .. } => SupervisionState::NoCall,
            State::Stopped => SupervisionState::Stopped,
            State::Failed(_) => SupervisionState::Failed,
            State::Aborted(_) => SupervisionState::Aborted,
        }
    }
}

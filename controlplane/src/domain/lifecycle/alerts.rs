//! The session alerts of docs/design.md §2: their kinds, stable codes and texts, and the end
//! reasons that raise them.

use core::fmt;
use core::str::FromStr;

use serde::{Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    AgentNotReady,
    NoCallToMonitor,
    SupervisorDidntAnswer,
    SupervisorNumberInvalid,
    NoPermission,
    MonitoringFailed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortReason {
    AgentHeldCall,
    AgentHungUp,
    CallerHungUp,
    SupervisorHungUp,
    /// From outside the call's story ([`crate::domain::lifecycle::Input::Abort`]).
    Outside(AbortCause),
}

/// Why a session is ended from outside its call's story (docs/design.md §2, §7): none of the
/// call's parties did it, so the alert is the generic `aborted`, named after the cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AbortCause {
    /// The call was deleted through the API (`DELETE /v1/calls/{id}`, docs/api.md).
    CallDeleted,
    /// The daemon stopped while the session was open; sessions are closed at start-up, not
    /// resumed (docs/design.md §7).
    Restart,
}

impl AbortCause {
    /// The stable machine code (the API's `abort`; the store's end reason).
    pub const fn code(self) -> &'static str {
        match self {
            AbortCause::CallDeleted => "call_deleted",
            AbortCause::Restart => "restart",
        }
    }

    /// The alert's text: the generic kind's, with the cause.
    pub const fn text(self) -> &'static str {
        match self {
            AbortCause::CallDeleted => "aborted – call deleted",
            AbortCause::Restart => "aborted – restart",
        }
    }
}

/// A session alert (the table of docs/design.md §2). Codes and texts are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertKind {
    MonitoringInitiated,
    MonitoringStopped,
    FailedAgentNotReady,
    FailedNoCallToMonitor,
    FailedSupervisorDidntAnswer,
    FailedSupervisorNumberInvalid,
    FailedNoPermission,
    MonitoringFailed,
    AbortedAgentHeldCall,
    AbortedAgentHungUp,
    AbortedCallerHungUp,
    AbortedSupervisorHungUp,
    /// Ended from outside the call's story ([`AbortCause`]); the text names the cause.
    Aborted,
}

impl AlertKind {
    pub const ALL: [AlertKind; 13] = [
        AlertKind::MonitoringInitiated,
        AlertKind::MonitoringStopped,
        AlertKind::FailedAgentNotReady,
        AlertKind::FailedNoCallToMonitor,
        AlertKind::FailedSupervisorDidntAnswer,
        AlertKind::FailedSupervisorNumberInvalid,
        AlertKind::FailedNoPermission,
        AlertKind::MonitoringFailed,
        AlertKind::AbortedAgentHeldCall,
        AlertKind::AbortedAgentHungUp,
        AlertKind::AbortedCallerHungUp,
        AlertKind::AbortedSupervisorHungUp,
        AlertKind::Aborted,
    ];

    /// The stable machine code.
    pub const fn code(self) -> &'static str {
        match self {
            AlertKind::MonitoringInitiated => "monitoring_initiated",
            AlertKind::MonitoringStopped => "monitoring_stopped",
            AlertKind::FailedAgentNotReady => "failed_agent_not_ready",
            AlertKind::FailedNoCallToMonitor => "failed_no_call_to_monitor",
            AlertKind::FailedSupervisorDidntAnswer => "failed_supervisor_didnt_answer",
            AlertKind::FailedSupervisorNumberInvalid => "failed_supervisor_number_invalid",
            AlertKind::FailedNoPermission => "failed_no_permission",
            AlertKind::MonitoringFailed => "monitoring_failed",
            AlertKind::AbortedAgentHeldCall => "aborted_agent_held_call",
            AlertKind::AbortedAgentHungUp => "aborted_agent_hung_up",
            AlertKind::AbortedCallerHungUp => "aborted_caller_hung_up",
            AlertKind::AbortedSupervisorHungUp => "aborted_supervisor_hung_up",
            AlertKind::Aborted => "aborted",
        }
    }

    /// The human text of the docs/design.md §2 table.
    pub const fn text(self) -> &'static str {
        match self {
            AlertKind::MonitoringInitiated => "monitoring initiated",
            AlertKind::MonitoringStopped => "monitoring stopped",
            AlertKind::FailedAgentNotReady => "failed – agent not ready",
            AlertKind::FailedNoCallToMonitor => "failed – no call to monitor",
            AlertKind::FailedSupervisorDidntAnswer => "failed – supervisor didn't answer",
            AlertKind::FailedSupervisorNumberInvalid => "failed – supervisor number invalid",
            AlertKind::FailedNoPermission => "failed – no permission",
            AlertKind::MonitoringFailed => "monitoring failed",
            AlertKind::AbortedAgentHeldCall => "aborted – agent held call",
            AlertKind::AbortedAgentHungUp => "aborted – agent hung up",
            AlertKind::AbortedCallerHungUp => "aborted – caller hung up",
            AlertKind::AbortedSupervisorHungUp => "aborted – supervisor hung up",
            AlertKind::Aborted => "aborted",
        }
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A string that is no alert code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown alert code")]
pub struct UnknownAlertCode;

impl FromStr for AlertKind {
    type Err = UnknownAlertCode;
    fn from_str(s: &str) -> Result<AlertKind, UnknownAlertCode> {
        AlertKind::ALL
            .into_iter()
            .find(|k| k.code() == s)
            .ok_or(UnknownAlertCode)
    }
}

impl Serialize for AlertKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl FailReason {
    /// The stable machine code (the API's `failure`).
    pub const fn code(self) -> &'static str {
        match self {
            FailReason::AgentNotReady => "agent_not_ready",
            FailReason::NoCallToMonitor => "no_call_to_monitor",
            FailReason::SupervisorDidntAnswer => "supervisor_didnt_answer",
            FailReason::SupervisorNumberInvalid => "supervisor_number_invalid",
            FailReason::NoPermission => "no_permission",
            FailReason::MonitoringFailed => "monitoring_failed",
        }
    }

    pub const fn alert(self) -> AlertKind {
        match self {
            FailReason::AgentNotReady => AlertKind::FailedAgentNotReady,
            FailReason::NoCallToMonitor => AlertKind::FailedNoCallToMonitor,
            FailReason::SupervisorDidntAnswer => AlertKind::FailedSupervisorDidntAnswer,
            FailReason::SupervisorNumberInvalid => AlertKind::FailedSupervisorNumberInvalid,
            FailReason::NoPermission => AlertKind::FailedNoPermission,
            FailReason::MonitoringFailed => AlertKind::MonitoringFailed,
        }
    }
}

impl AbortReason {
    /// The stable machine code (the API's `abort`).
    pub const fn code(self) -> &'static str {
        match self {
            AbortReason::AgentHeldCall => "agent_held_call",
            AbortReason::AgentHungUp => "agent_hung_up",
            AbortReason::CallerHungUp => "caller_hung_up",
            AbortReason::SupervisorHungUp => "supervisor_hung_up",
            AbortReason::Outside(cause) => cause.code(),
        }
    }

    pub const fn alert(self) -> AlertKind {
        match self {
            AbortReason::AgentHeldCall => AlertKind::AbortedAgentHeldCall,
            AbortReason::AgentHungUp => AlertKind::AbortedAgentHungUp,
            AbortReason::CallerHungUp => AlertKind::AbortedCallerHungUp,
            AbortReason::SupervisorHungUp => AlertKind::AbortedSupervisorHungUp,
            AbortReason::Outside(_) => AlertKind::Aborted,
        }
    }

    /// The alert's text: the kind's, or for an [`AbortCause`] the cause's.
    pub const fn alert_text(self) -> &'static str {
        match self {
            AbortReason::Outside(cause) => cause.text(),
            _ => self.alert().text(),
        }
    }
}

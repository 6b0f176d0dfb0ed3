//! The start checks of a session (rules 2 to 7 of the module docs, docs/design.md §2): the
//! supervisor's right over the agent, and the state of the call.

use super::alerts::FailReason;
use super::inputs::CallFacts;

/// Rules 2–3 of the module docs: rights over the agent, and conferences.
pub(super) fn check_rights(
    call: &CallFacts,
    supervisor_may_listen: bool,
) -> Option<(FailReason, String)> {
    if !supervisor_may_listen {
        Some((
            FailReason::NoPermission,
            "the supervisor has no listen right over this agent".to_owned(),
        ))
    } else if call.conference {
        Some((
            FailReason::NoPermission,
            "the call is a conference, which may not be monitored".to_owned(),
        ))
    } else {
        None
    }
}

/// Rules 5–7 of the module docs: the call's state.
pub(super) fn check_call_state(call: &CallFacts) -> Option<(FailReason, String)> {
    let (reason, why) = if call.secure_payment {
        (
            FailReason::AgentNotReady,
            "the customer is in the secure-payment system",
        )
    } else if call.on_hold && call.in_consult {
        (
            FailReason::MonitoringFailed,
            "the agent is in a consult and the customer is on hold",
        )
    } else if call.on_hold {
        (FailReason::MonitoringFailed, "the customer is on hold")
    } else if call.in_consult {
        (
            FailReason::AgentNotReady,
            "the agent is the consulted party of a consult",
        )
    } else {
        return None;
    };
    Some((reason, why.to_owned()))
}

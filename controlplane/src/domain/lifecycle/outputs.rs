//! What a session asks its driver to do: audit, media, alerts (docs/design.md §2, §4).

use dataplane::media::matrix::Mode;
use serde::{Serialize, Serializer};

use crate::domain::agents::UserId;
use crate::domain::call::{CallId, SupervisionId};

use super::alerts::{AbortCause, AlertKind};
use super::state::State;

/// An alert: an event to show and a durable record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    pub kind: AlertKind,
    pub at_ms: u64,
    pub session: SupervisionId,
    pub call: CallId,
    /// The alert's text: [`AlertKind::text`], or for [`AlertKind::Aborted`] its cause's
    /// ([`crate::domain::lifecycle::AbortCause::text`]).
    pub text: &'static str,
    /// What happened, in words.
    pub reason: String,
}

/// What an audit row says happened: the one enum of every audit row (docs/design.md §4).
pub use crate::domain::audit::AuditAction;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    pub action: AuditAction,
    pub session: SupervisionId,
    /// Who acted: the supervisor, or the system for an [`crate::domain::lifecycle::Input::Abort`].
    pub actor: AuditActor,
    pub supervisor: Option<UserId>,
    pub agent: Option<UserId>,
    pub call: CallId,
    /// Start and mode change: the new mode. Stop, abort, failure: the mode media was in, if any.
    #[serde(serialize_with = "serialize_mode")]
    pub mode: Option<Mode>,
    /// The alert this record goes with (none for start and mode change).
    pub alert: Option<AlertKind>,
    pub at_ms: u64,
}

/// Who an audit record names as acting (docs/design.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditActor {
    /// The session's supervisor (or whoever the request named).
    Supervisor,
    /// The appliance: an abort from outside the call, its cause and the state the session was
    /// in.
    System {
        was: &'static str,
        #[serde(serialize_with = "serialize_cause")]
        reason: AbortCause,
    },
}

fn serialize_cause<S: Serializer>(cause: &AbortCause, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(cause.code())
}

fn serialize_mode<S: Serializer>(mode: &Option<Mode>, s: S) -> Result<S::Ok, S::Error> {
    match mode {
        Some(mode) => s.serialize_some(mode.as_str()),
        None => s.serialize_none(),
    }
}

/// What the driver must do, in order (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Commit durably before acting on any later output.
    Audit(AuditRecord),
    /// Data plane: attach the supervisor's leg to `call` in `mode` (always listen).
    ConnectMedia { call: CallId, mode: Mode },
    /// Data plane: change the supervisor's mode on `call`.
    SetMedia { call: CallId, mode: Mode },
    /// Data plane: detach the supervisor's leg from `call`.
    DisconnectMedia { call: CallId },
    /// Play the "no call available to supervise" message on the supervisor's leg.
    AnnounceNoCall,
    /// Publish and record.
    Alert(Alert),
    /// The session is over: release the supervisor's leg, if any.
    Ended { state: State },
}

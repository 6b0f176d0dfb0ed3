//! The one builder of audit rows (docs/design.md §4): every row the application writes is an
//! [`AuditAction`] with an [`AuditOutcome`], made here, so an action is spelled one way.

use dataplane::media::matrix::Mode;

pub use crate::domain::audit::{AuditAction, AuditOutcome};
use crate::store::{NewAudit, UnixMs};

/// An audit row under construction: `Audit::new(…).call(…).detail(…).record()`.
#[derive(Debug, Clone)]
#[must_use = "an audit row is only written once recorded and appended"]
pub struct Audit(NewAudit);

impl Audit {
    /// A row of `actor` (`user:<id>`, `token:<id>`, `system`, `api`) at `at`.
    pub fn new(
        at: UnixMs,
        actor: impl Into<String>,
        action: AuditAction,
        outcome: AuditOutcome,
    ) -> Audit {
        Audit(NewAudit {
            at,
            actor: actor.into(),
            action: action.as_str().to_owned(),
            supervision_id: None,
            call_id: None,
            mode: None,
            outcome: outcome.as_str().to_owned(),
            detail: None,
        })
    }

    pub fn supervision(mut self, id: Option<impl ToString>) -> Audit {
        self.0.supervision_id = id.map(|id| id.to_string());
        self
    }

    pub fn call(mut self, id: Option<impl ToString>) -> Audit {
        self.0.call_id = id.map(|id| id.to_string());
        self
    }

    pub fn mode(mut self, mode: Option<Mode>) -> Audit {
        self.0.mode = mode;
        self
    }

    pub fn detail(mut self, detail: Option<String>) -> Audit {
        self.0.detail = detail;
        self
    }

    /// The row, for `Writes::append_audit`.
    pub fn record(self) -> NewAudit {
        self.0
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builder_spells_the_stored_columns() {
        let row = Audit::new(
            UnixMs(7),
            "user:sup-1",
            AuditAction::SupervisionDenial,
            AuditOutcome::Denied,
        )
        .supervision(Some("sup-x"))
        .call(Some("call-1"))
        .mode(Some(Mode::Barge))
        .detail(Some("start: listen_only; agent ag-1".to_owned()))
        .record();
        assert_eq!(row.at, UnixMs(7));
        assert_eq!(row.actor, "user:sup-1");
        assert_eq!(row.action, "supervision.denial");
        assert_eq!(row.outcome, "denied");
        assert_eq!(row.supervision_id.as_deref(), Some("sup-x"));
        assert_eq!(row.call_id.as_deref(), Some("call-1"));
        assert_eq!(row.mode, Some(Mode::Barge));
        let bare = Audit::new(
            UnixMs(1),
            "system",
            AuditAction::GrantRevoke,
            AuditOutcome::Ok,
        )
        .record();
        assert_eq!(
            (bare.action.as_str(), bare.outcome.as_str()),
            ("grant.revoke", "ok")
        );
        assert_eq!(
            (bare.supervision_id, bare.call_id, bare.mode, bare.detail),
            (None, None, None, None)
        );
    }
}

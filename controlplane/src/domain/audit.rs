//! What an audit row says happened (docs/design.md §4: every supervision, every change of it,
//! every denial and every grant is audited). The stored action and outcome strings are API
//! output (`GET /v1/audit`, docs/api.md), so each has exactly one spelling, here.
//!
//! The enum lives in the domain, not beside the builder in `app::audit`, because the store's
//! restart recovery writes an abort row too and the store must not import the application.

/// The `action` column of an audit row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    SupervisionStart,
    SupervisionModeChange,
    SupervisionStop,
    /// A media command that failed after its row was written: the disconnect of a session.
    SupervisionDisconnect,
    SupervisionDenial,
    SupervisionFailure,
    SupervisionAbort,
    GrantCreate,
    GrantRevoke,
}

impl AuditAction {
    pub const ALL: [AuditAction; 9] = [
        AuditAction::SupervisionStart,
        AuditAction::SupervisionModeChange,
        AuditAction::SupervisionStop,
        AuditAction::SupervisionDisconnect,
        AuditAction::SupervisionDenial,
        AuditAction::SupervisionFailure,
        AuditAction::SupervisionAbort,
        AuditAction::GrantCreate,
        AuditAction::GrantRevoke,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            AuditAction::SupervisionStart => "supervision.start",
            AuditAction::SupervisionModeChange => "supervision.mode_change",
            AuditAction::SupervisionStop => "supervision.stop",
            AuditAction::SupervisionDisconnect => "supervision.disconnect",
            AuditAction::SupervisionDenial => "supervision.denial",
            AuditAction::SupervisionFailure => "supervision.failure",
            AuditAction::SupervisionAbort => "supervision.abort",
            AuditAction::GrantCreate => "grant.create",
            AuditAction::GrantRevoke => "grant.revoke",
        }
    }
}

/// Serialised as its stored spelling (`supervision.start`, …).
impl serde::Serialize for AuditAction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The `outcome` column of an audit row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditOutcome {
    Ok,
    Denied,
    Failed,
    Aborted,
}

impl AuditOutcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Ok => "ok",
            AuditOutcome::Denied => "denied",
            AuditOutcome::Failed => "failed",
            AuditOutcome::Aborted => "aborted",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored strings are API output: they never change.
    #[test]
    fn actions_keep_their_stored_spelling() {
        let names: Vec<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(
            names,
            [
                "supervision.start",
                "supervision.mode_change",
                "supervision.stop",
                "supervision.disconnect",
                "supervision.denial",
                "supervision.failure",
                "supervision.abort",
                "grant.create",
                "grant.revoke",
            ]
        );
        assert_eq!(AuditOutcome::Denied.as_str(), "denied");
    }
}

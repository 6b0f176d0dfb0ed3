//! Alerts and audit records, read back (docs/api.md, Alerts and Audit).

use dataplane::media::matrix::Mode;

use crate::app::state::{AppState, StateError};
use crate::domain::call::SupervisionId;
use crate::store::{self, AlertId, AuditId, StoreExt as _};

/// An alert as recorded (docs/design.md §2.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub id: i64,
    /// `monitoring_initiated`, `failed_*`, `aborted_*`, … (docs/api.md).
    pub kind: String,
    pub text: String,
    pub reason: Option<String>,
    pub supervision_id: Option<String>,
    pub call_id: Option<String>,
    pub at_ms: i64,
}

impl From<store::AlertRecord> for Alert {
    fn from(a: store::AlertRecord) -> Alert {
        Alert {
            id: a.id.0,
            kind: a.kind,
            text: a.text,
            reason: a.reason,
            supervision_id: a.supervision_id,
            call_id: a.call_id,
            at_ms: a.at.0,
        }
    }
}

/// An audit record as written (docs/design.md §4.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: i64,
    pub at_ms: i64,
    /// `user:<id>`, `token:<id>`, `api` or `system`.
    pub actor: String,
    pub action: String,
    pub supervision_id: Option<String>,
    pub call_id: Option<String>,
    /// The supervision mode, if the action has one.
    pub mode: Option<Mode>,
    pub outcome: String,
    pub detail: Option<String>,
}

impl From<store::AuditRecord> for AuditEntry {
    fn from(a: store::AuditRecord) -> AuditEntry {
        AuditEntry {
            id: a.id.0,
            at_ms: a.at.0,
            actor: a.actor,
            action: a.action,
            supervision_id: a.supervision_id,
            call_id: a.call_id,
            mode: a.mode,
            outcome: a.outcome,
            detail: a.detail,
        }
    }
}

impl AppState {
    /// `GET /v1/alerts?after=`: alerts with an id above `after`, oldest first.
    pub fn alerts_after(&self, after: i64, limit: u32) -> Result<Vec<Alert>, StateError> {
        let alerts = self
            .inner
            .store
            .read(|r| r.alerts_after(AlertId(after), limit))?;
        Ok(alerts.into_iter().map(Alert::from).collect())
    }

    /// `GET /v1/supervisions/{id}/alerts`.
    pub fn alerts_of(&self, id: SupervisionId) -> Result<Vec<Alert>, StateError> {
        let key = id.to_string();
        let known = self.records().supervisions.contains_key(&id);
        let (exists, alerts) = self.inner.store.read(|r| {
            let exists = known || r.supervision(&key)?.is_some();
            Ok((exists, r.alerts_of_supervision(&key)?))
        })?;
        if !exists {
            return Err(StateError::SupervisionNotFound(id));
        }
        Ok(alerts.into_iter().map(Alert::from).collect())
    }

    /// `GET /v1/audit?after=`: audit records with an id above `after`, oldest first.
    pub fn audit_after(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>, StateError> {
        let records = self
            .inner
            .store
            .read(|r| r.audit_after(AuditId(after), limit))?;
        Ok(records.into_iter().map(AuditEntry::from).collect())
    }
}

//! Alerts and audit records, read back (docs/api.md, Alerts and Audit).

use crate::app::state::{AppState, StateError};
use crate::domain::call::SupervisionId;
use crate::domain::log::{AlertId, AlertRecord, AuditId, AuditRecord};
use crate::store::StoreExt as _;

impl AppState {
    /// `GET /v1/alerts?after=`: alerts with an id above `after`, oldest first.
    pub fn alerts_after(&self, after: i64, limit: u32) -> Result<Vec<AlertRecord>, StateError> {
        Ok(self
            .inner
            .store
            .read(|r| r.alerts_after(AlertId(after), limit))?)
    }

    /// `GET /v1/supervisions/{id}/alerts`.
    pub fn alerts_of(&self, id: SupervisionId) -> Result<Vec<AlertRecord>, StateError> {
        let key = id.to_string();
        let known = self.records().supervisions.contains_key(&id);
        let (exists, alerts) = self.inner.store.read(|r| {
            let exists = known || r.supervision(&key)?.is_some();
            Ok((exists, r.alerts_of_supervision(&key)?))
        })?;
        if !exists {
            return Err(StateError::SupervisionNotFound(id));
        }
        Ok(alerts)
    }

    /// `GET /v1/audit?after=`: audit records with an id above `after`, oldest first.
    pub fn audit_after(&self, after: i64, limit: u32) -> Result<Vec<AuditRecord>, StateError> {
        Ok(self
            .inner
            .store
            .read(|r| r.audit_after(AuditId(after), limit))?)
    }
}

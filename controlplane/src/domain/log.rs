//! The append-only logs' ids and entries as read back (alerts, docs/design.md §2.6; audit,
//! §4.5): plain values the store returns and the adapters render, so no adapter needs a store
//! type to show them.

use dataplane::media::matrix::Mode;

/// Milliseconds since the Unix epoch (UTC), as stored in every `*_at_ms` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UnixMs(pub i64);

macro_rules! log_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub i64);

        impl $name {
            /// Before every assigned id (they start at 1): `…_after(ZERO, …)` reads from the start.
            pub const ZERO: $name = $name(0);
        }
    };
}

log_id!(
    /// An event of the SSE log; strictly increasing in commit order (the SSE `id:` field).
    EventId
);
log_id!(
    /// An audit record.
    AuditId
);
log_id!(
    /// An alert record.
    AlertId
);
log_id!(
    /// A persistent-supervision grant.
    GrantId
);

/// An alert as recorded (docs/design.md §2.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRecord {
    pub id: AlertId,
    pub supervision_id: Option<String>,
    /// `monitoring_initiated`, `failed_*`, `aborted_*`, … (docs/api.md).
    pub kind: String,
    pub text: String,
    pub at: UnixMs,
    pub call_id: Option<String>,
    pub reason: Option<String>,
}

/// An audit record as written (docs/design.md §4.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: AuditId,
    pub at: UnixMs,
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

//! Durable state: the repository the control plane reads and writes, and its SQLite backend.
//!
//! # Shape
//!
//! - [`Reads`]: every query. [`Writes`]: every mutation (and, as a supertrait, every query).
//!   Each is the sum of one trait per aggregate (`AccessReads`, `CenterReads`, `CallReads`,
//!   `EventReads`, and their `*Writes`), which a backend implements one file each. Both speak
//!   only the plain records of [`records`]; no backend type crosses them.
//! - [`Store`]: a backend. It runs a closure inside one transaction and hands it a
//!   `&mut dyn Writes` (or a `&dyn Reads` for a read snapshot); the transaction commits iff the
//!   closure returns `Ok`. `Store` is dyn-compatible, so the daemon can hold an
//!   `Arc<dyn Store>` and pick SQLite or (later) PostgreSQL from its configuration.
//! - [`StoreExt`]: the generic conveniences on every `Store` (`write`, `read`).
//! - [`SqliteStore`]: the embedded default (docs/design.md §5.5: `earshot.db` in the working
//!   directory).
//!
//! ```ignore
//! let id = store.write(|w| {
//!     let id = w.append_audit(&audit)?;   // audit before media flows (docs/design.md §4.5)…
//!     w.update_supervision(&session)?;    // …and the state change, atomically
//!     Ok(id)
//! })?;                                    // returned: committed and durable
//!                                         // (outside `deferring`, see below)
//! ```
//!
//! # Durability
//!
//! "Acknowledged" means "survives `kill -9` and power loss" (docs/design.md §7.3), and nothing is
//! acknowledged before it is durable. A commit is *durable* once [`Store::sync`] has returned
//! after it: a sync makes every transaction committed before it started durable at once
//! (SQLite: one `fdatasync` of the WAL covers every commit appended to it), so concurrent
//! writers share one sync — group commit.
//!
//! - By default a `write` returns only after its commit is durable: a caller that knows
//!   nothing of this section is safe.
//! - Inside [`deferring`], a `write` returns once committed (visible to every later reader),
//!   before it is durable, so the caller can release its locks first and let the syncs of
//!   concurrent requests overlap. The caller must then call [`Store::sync`] before it
//!   acknowledges, publishes or acts on anything: the HTTP API does so for every response
//!   (`api::blocking_api`), the event stream before it sends a page, the webhook task before it
//!   sends an event, and a supervision before its media changes (its audit record first,
//!   docs/design.md §4).
//!
//! Since syncs cover a prefix of the commit order, a durable commit never depends on one that
//! is not: whatever an acknowledged request read or built on was committed before it, and its
//! sync covers both. A sync that fails leaves the store refusing every later write and sync
//! (what reached the disk is unknown, so nothing more may be acknowledged); the daemon must be
//! restarted, and the restart recovers what was durable.
//!
//! # Blocking
//!
//! The API is blocking; async callers go through `spawn_blocking` or a dedicated thread. A
//! closure must not call back into the same store (that is a nested transaction: the SQLite
//! backend answers it with an error rather than deadlocking).

pub mod records;
mod sqlite;

use std::cell::Cell;

pub use records::*;
pub use sqlite::SqliteStore;

thread_local! {
    /// How many [`deferring`] scopes the current thread is in.
    static DEFERRING: Cell<u32> = const { Cell::new(0) };
}

/// Runs `f` with the durability wait of this thread's writes deferred: inside it, a
/// [`Store::write_dyn`] returns once its transaction is committed, before it is durable (see
/// "Durability" above). Whoever calls this must call [`Store::sync`] on the store `f` wrote to
/// after `f` returns and before acknowledging anything `f` did (or read); in the daemon there
/// is one store, and the HTTP API, the event stream and the webhook task do so. Nested scopes
/// defer to the outermost.
pub fn deferring<T>(f: impl FnOnce() -> T) -> T {
    /// Leaves the scope even if `f` panics (the blocking pool's threads are reused).
    struct Scope;
    impl Drop for Scope {
        fn drop(&mut self) {
            DEFERRING.with(|d| d.set(d.get().saturating_sub(1)));
        }
    }
    DEFERRING.with(|d| d.set(d.get().saturating_add(1)));
    let _scope = Scope;
    f()
}

/// Whether the current thread is inside [`deferring`]: a backend's `write_dyn` may then
/// return before its commit is durable.
pub fn is_deferring() -> bool {
    DEFERRING.with(|d| d.get() > 0)
}

/// Most rows one page of a log (`events_after`, `audit_after`, …) or a `recent_*` list returns;
/// a larger `limit` is clamped to it.
pub const PAGE_LIMIT_MAX: u32 = 1000;

/// The end reason the start-up recovery (`app::recovery`) gives the sessions and calls that
/// were live when the process died.
pub const RESTART_REASON: &str = "restart";

/// What went wrong, mapped once from the backend's errors (docs/design.md §9.7). Messages name the
/// operation (`context`) so a log line alone says what failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row to update or delete does not exist, or a row it refers to does not (a foreign
    /// key: an unknown user, group, call, event or webhook).
    #[error("{context}: not found: {detail}")]
    NotFound { context: String, detail: String },
    /// A unique key is taken (an id, a group name, a token hash, an unrevoked grant, …).
    #[error("{context}: conflict: {detail}")]
    Conflict { context: String, detail: String },
    /// A value the schema refuses (a `CHECK`, `NOT NULL`, or the append-only rule of the logs):
    /// a bug in the caller, since records are typed.
    #[error("{context}: refused by the schema: {detail}")]
    Invalid { context: String, detail: String },
    /// The database's schema cannot be used by this binary (newer, unknown, or a migration
    /// failed).
    #[error("database schema: {0}")]
    Schema(String),
    /// The file is not a database, is damaged, or holds a value that does not parse.
    #[error("{context}: corrupt data: {detail}")]
    Corrupt { context: String, detail: String },
    /// Anything else from the backend (I/O, locking, out of memory), with the operation.
    #[error("{context}: {cause}")]
    Backend {
        context: String,
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
}

type Result<T> = core::result::Result<T, StoreError>;

/// Every query, by aggregate ([`AccessReads`], [`CenterReads`], [`CallReads`],
/// [`EventReads`]). Each call sees the snapshot of the transaction it runs in.
pub trait Reads: AccessReads + CenterReads + CallReads + EventReads {}

impl<T: AccessReads + CenterReads + CallReads + EventReads> Reads for T {}

/// The queries of access control (docs/design.md §4): tokens, grants, the audit log.
pub trait AccessReads {
    fn token(&self, id: &str) -> Result<Option<TokenRecord>>;
    /// Revoked tokens too: check [`TokenRecord::is_active`].
    fn token_by_hash(&self, token_hash: &TokenHash) -> Result<Option<TokenRecord>>;
    fn tokens(&self) -> Result<Vec<TokenRecord>>;
    fn grant(&self, id: GrantId) -> Result<Option<GrantRecord>>;
    /// The unrevoked grant of `supervisor_id` over `agent_id`, if any.
    fn active_grant(&self, supervisor_id: &str, agent_id: &str) -> Result<Option<GrantRecord>>;
    /// All grants, revoked ones included, oldest first.
    fn grants(&self) -> Result<Vec<GrantRecord>>;
    /// A page in id order, after an id ([`AuditId::ZERO`] for the start).
    fn audit_after(&self, after: AuditId, limit: u32) -> Result<Vec<AuditRecord>>;
    fn audit_of_supervision(&self, supervision_id: &str) -> Result<Vec<AuditRecord>>;
}

/// The queries of the contact center (docs/design.md §3): users, groups, agents,
/// subscriptions.
pub trait CenterReads {
    fn user(&self, id: &str) -> Result<Option<UserRecord>>;
    fn users(&self) -> Result<Vec<UserRecord>>;
    fn supervisor_settings(&self, user_id: &str) -> Result<Option<SupervisorSettings>>;

    fn group(&self, id: &str) -> Result<Option<GroupRecord>>;
    fn groups(&self) -> Result<Vec<GroupRecord>>;
    fn group_supervisors(&self, group_id: &str) -> Result<Vec<GroupSupervisor>>;
    fn group_members(&self, group_id: &str) -> Result<Vec<GroupMember>>;
    /// The groups `user_id` supervises, with the rights in each.
    fn supervised_groups(&self, user_id: &str) -> Result<Vec<GroupSupervisor>>;
    /// The groups `user_id` is a member of.
    fn memberships(&self, user_id: &str) -> Result<Vec<GroupMember>>;

    fn agent(&self, user_id: &str) -> Result<Option<AgentRecord>>;
    fn agents(&self) -> Result<Vec<AgentRecord>>;
    fn subscriptions_of(&self, supervisor_id: &str) -> Result<Vec<Subscription>>;
    fn subscribers_of(&self, agent_id: &str) -> Result<Vec<Subscription>>;
}

/// The queries of calls and supervisions (docs/design.md §2), with their alerts.
pub trait CallReads {
    fn call(&self, id: &str) -> Result<Option<CallRecord>>;
    fn call_by_external_id(&self, external_id: &str) -> Result<Option<CallRecord>>;
    /// Calls not ended (bounded by the appliance's capacity).
    fn open_calls(&self) -> Result<Vec<CallRecord>>;
    /// The newest calls first, at most `limit` (clamped to [`PAGE_LIMIT_MAX`]).
    fn recent_calls(&self, limit: u32) -> Result<Vec<CallRecord>>;
    fn supervision(&self, id: &str) -> Result<Option<SupervisionRecord>>;
    /// Supervisions not in a terminal state (`requested`, `active`).
    fn open_sessions(&self) -> Result<Vec<SupervisionRecord>>;
    fn supervisions_of_call(&self, call_id: &str) -> Result<Vec<SupervisionRecord>>;
    /// The newest supervisions first, at most `limit` (clamped to [`PAGE_LIMIT_MAX`]).
    fn recent_supervisions(&self, limit: u32) -> Result<Vec<SupervisionRecord>>;

    /// The NG side of a call, if it was anchored over NG.
    fn ng_call(&self, call_id: &str) -> Result<Option<NgCallRecord>>;
    /// The NG side of the newest calls first (by the call's creation), at most `limit`
    /// (clamped to [`PAGE_LIMIT_MAX`]): the start-up load pairs them with `recent_calls`.
    fn recent_ng_calls(&self, limit: u32) -> Result<Vec<NgCallRecord>>;

    /// A page in id order, after an id ([`AlertId::ZERO`] for the start).
    fn alerts_after(&self, after: AlertId, limit: u32) -> Result<Vec<AlertRecord>>;
    fn alerts_of_supervision(&self, supervision_id: &str) -> Result<Vec<AlertRecord>>;
}

/// The queries of the event log and the webhooks it is delivered to (docs/api.md, Events and
/// Webhooks).
pub trait EventReads {
    /// The SSE resume: the events with id > `after` (the client's `Last-Event-ID`), in order.
    fn events_after(&self, after: EventId, limit: u32) -> Result<Vec<Event>>;
    fn last_event_id(&self) -> Result<Option<EventId>>;

    fn webhook(&self, id: &str) -> Result<Option<WebhookRecord>>;
    fn webhooks(&self) -> Result<Vec<WebhookRecord>>;
    fn delivery(&self, event_id: EventId, webhook_id: &str) -> Result<Option<DeliveryRecord>>;
    /// The unfinished delivery of `webhook_id` with the lowest event id (due or not): the only
    /// one that may be attempted, since a webhook's deliveries go in event order.
    fn next_delivery(&self, webhook_id: &str) -> Result<Option<DeliveryRecord>>;
    /// How far the event log has been fanned out to the webhooks (see
    /// [`EventWrites::set_webhook_cursor`]).
    fn webhook_cursor(&self) -> Result<EventId>;
}

/// The mutations of access control. Like every `*Writes`: `create_*` answers
/// [`StoreError::Conflict`] when the key is taken; `update_*`, `delete_*`, `remove_*`,
/// `revoke_*` answer [`StoreError::NotFound`] when the row is missing; a reference to a missing
/// row is [`StoreError::NotFound`] too.
pub trait AccessWrites {
    /// The hash must be unique.
    fn create_token(&mut self, token: &TokenRecord) -> Result<()>;
    /// Idempotent: a token already revoked keeps its first `revoked_at`.
    fn revoke_token(&mut self, id: &str, at: UnixMs) -> Result<()>;

    /// Conflict when an unrevoked grant for the pair exists.
    fn create_grant(&mut self, grant: &NewGrant) -> Result<GrantId>;
    /// Idempotent: a grant already revoked keeps its first `revoked_at`.
    fn revoke_grant(&mut self, id: GrantId, at: UnixMs) -> Result<()>;

    fn append_audit(&mut self, audit: &NewAudit) -> Result<AuditId>;
}

/// The mutations of the contact center.
pub trait CenterWrites {
    fn create_user(&mut self, user: &UserRecord) -> Result<()>;
    /// Replaces the display name, phone number and roles.
    fn update_user(&mut self, user: &UserRecord) -> Result<()>;
    /// Also removes the user's tokens, settings, rights, memberships, agent record, grants and
    /// subscriptions. Logs (audit, alerts, events) keep naming the user.
    fn delete_user(&mut self, id: &str) -> Result<()>;
    /// Creates or replaces.
    fn set_supervisor_settings(&mut self, settings: &SupervisorSettings) -> Result<()>;

    fn create_group(&mut self, group: &GroupRecord) -> Result<()>;
    /// Replaces every field but `id` and `created_at`.
    fn update_group(&mut self, group: &GroupRecord) -> Result<()>;
    /// Also removes its supervisors and members.
    fn delete_group(&mut self, id: &str) -> Result<()>;
    /// Creates or replaces the rights of a supervisor in a group.
    fn set_group_supervisor(&mut self, supervisor: &GroupSupervisor) -> Result<()>;
    fn remove_group_supervisor(&mut self, group_id: &str, user_id: &str) -> Result<()>;
    fn add_group_member(&mut self, member: &GroupMember) -> Result<()>;
    /// Replaces `can_leave` and `logged_in`.
    fn update_group_member(&mut self, member: &GroupMember) -> Result<()>;
    fn remove_group_member(&mut self, group_id: &str, user_id: &str) -> Result<()>;

    /// The user must exist.
    fn create_agent(&mut self, agent: &AgentRecord) -> Result<()>;
    fn update_agent(&mut self, agent: &AgentRecord) -> Result<()>;
    fn delete_agent(&mut self, user_id: &str) -> Result<()>;

    fn subscribe(&mut self, subscription: &Subscription) -> Result<()>;
    fn unsubscribe(&mut self, supervisor_id: &str, agent_id: &str) -> Result<()>;
}

/// The mutations of calls and supervisions.
pub trait CallWrites {
    fn create_call(&mut self, call: &CallRecord) -> Result<()>;
    /// Replaces every field but `id` and `created_at`.
    fn update_call(&mut self, call: &CallRecord) -> Result<()>;
    fn create_supervision(&mut self, supervision: &SupervisionRecord) -> Result<()>;
    /// Replaces every field but `id` and `created_at`.
    fn update_supervision(&mut self, supervision: &SupervisionRecord) -> Result<()>;

    fn append_alert(&mut self, alert: &NewAlert) -> Result<AlertId>;

    /// Creates or replaces the NG side of a call; the call must exist.
    fn set_ng_call(&mut self, ng: &NgCallRecord) -> Result<()>;
}

/// The mutations of the event log and the webhooks.
pub trait EventWrites {
    /// Ids increase strictly in commit order, and are never reused.
    fn append_event(&mut self, event: &NewEvent) -> Result<EventId>;

    fn create_webhook(&mut self, webhook: &WebhookRecord) -> Result<()>;
    /// Replaces every field but `id` and `created_at`.
    fn update_webhook(&mut self, webhook: &WebhookRecord) -> Result<()>;
    /// Also removes its deliveries.
    fn delete_webhook(&mut self, id: &str) -> Result<()>;
    /// Conflict when the (event, webhook) delivery exists.
    fn enqueue_delivery(&mut self, delivery: &DeliveryRecord) -> Result<()>;
    fn update_delivery(&mut self, delivery: &DeliveryRecord) -> Result<()>;
    /// Finishes every unfinished delivery of `webhook_id` (a disabled webhook gets nothing),
    /// recording `reason` as its last error; returns how many.
    fn cancel_deliveries(&mut self, webhook_id: &str, reason: &str) -> Result<u64>;
    /// Every event up to `after` has been fanned out: it has its delivery rows, one per webhook
    /// it was due to. Never moves back.
    fn set_webhook_cursor(&mut self, after: EventId) -> Result<()>;
}

/// Every mutation, by aggregate ([`AccessWrites`], [`CenterWrites`], [`CallWrites`],
/// [`EventWrites`]), and every query; plus the restart recovery, written once over them.
pub trait Writes: Reads + AccessWrites + CenterWrites + CallWrites + EventWrites {
    /// Ends every call not ended (their media did not survive the process) with a `call.ended`
    /// event carrying `reason`. Shared by every backend; the start-up recovery runs it
    /// (`app::recovery`, docs/design.md §7).
    fn end_stale_calls(&mut self, now: UnixMs, reason: &str) -> Result<Vec<CallRecord>> {
        let mut ended = Vec::new();
        for mut call in self.open_calls()? {
            call.state = CallState::Ended;
            call.ended_at = Some(now);
            self.update_call(&call)?;
            self.append_event(&NewEvent {
                event_type: "call.ended".to_owned(),
                payload: serde_json::json!({ "call_id": call.id, "reason": reason }),
                scope: EventScope {
                    groups: Vec::new(),
                    users: call.agent_id.iter().cloned().collect(),
                },
                at: now,
            })?;
            ended.push(call);
        }
        Ok(ended)
    }
}

impl<T: Reads + AccessWrites + CenterWrites + CallWrites + EventWrites> Writes for T {}

/// A backend: runs closures in transactions. Dyn-compatible (`Arc<dyn Store>`); use the
/// generic forms of [`StoreExt`].
pub trait Store: Send + Sync {
    /// Runs `f` in one write transaction: committed iff `f` returns `Ok`, rolled back
    /// otherwise, and `f`'s error returned. Returns once the commit is durable, or, inside
    /// [`deferring`], once it is committed (the caller then calls [`Store::sync`]). A backend
    /// may run `f` again when the database asks for a retry (PostgreSQL serialization
    /// failures), hence `FnMut`.
    fn write_dyn(&self, f: &mut dyn FnMut(&mut dyn Writes) -> Result<()>) -> Result<()>;
    /// Runs `f` over one consistent read snapshot.
    fn read_dyn(&self, f: &mut dyn FnMut(&dyn Reads) -> Result<()>) -> Result<()>;
    /// Returns once every transaction committed before the call is durable (at once if they
    /// all are). Concurrent callers share the work: one sync covers every commit before it
    /// started. No default: a wrapper that forgot to pass it on would acknowledge what is not
    /// durable.
    fn sync(&self) -> Result<()>;
}

/// The generic conveniences, for every [`Store`] (including `dyn Store`).
pub trait StoreExt: Store {
    /// [`Store::write_dyn`] returning `f`'s value.
    fn write<R>(&self, mut f: impl FnMut(&mut dyn Writes) -> Result<R>) -> Result<R> {
        let mut out = None;
        self.write_dyn(&mut |w| {
            out = Some(f(w)?);
            Ok(())
        })?;
        out.ok_or_else(|| StoreError::Backend {
            context: "write".to_owned(),
            cause: "the backend committed without running the transaction".into(),
        })
    }

    /// [`Store::read_dyn`] returning `f`'s value.
    fn read<R>(&self, mut f: impl FnMut(&dyn Reads) -> Result<R>) -> Result<R> {
        let mut out = None;
        self.read_dyn(&mut |r| {
            out = Some(f(r)?);
            Ok(())
        })?;
        out.ok_or_else(|| StoreError::Backend {
            context: "read".to_owned(),
            cause: "the backend ended the snapshot without running the query".into(),
        })
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

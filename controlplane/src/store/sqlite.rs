//! The SQLite backend: one connection behind a mutex, WAL journal, numbered migrations.
//!
//! One connection serves reads and writes. Every transaction is short (a handful of indexed
//! statements), so serialising them costs less than it would buy to keep a reader pool; a
//! pool of read connections can be added behind the same [`Store`] without touching callers.
//!
//! # Group commit
//!
//! The WAL runs with `synchronous=NORMAL`: a commit appends its frames to the `-wal` file and
//! returns without an `fsync`. Durability is [`WalSync`]'s: every commit takes a sequence
//! number (under the connection's lock, so in commit order), and [`Store::sync`]
//! `fdatasync`s the `-wal` file, one thread at a time — the others wait for it and find their
//! commits covered, since a sync covers every frame written before it started. A `write_dyn`
//! syncs its own commit before it returns unless the thread is inside
//! [`super::deferring`]; then the caller syncs later, after releasing its locks, and the
//! syncs of concurrent requests merge into one.
//!
//! Why this is as durable as `synchronous=FULL` (which `fsync`s the WAL in every commit):
//! what a commit writes to the WAL is on disk once a sync that started after it returns, and
//! nothing is acknowledged before that. Checkpoints stay safe: in WAL mode NORMAL syncs the WAL
//! before a checkpoint copies frames into the database file, and the database file before the
//! WAL is restarted; the WAL is restarted in place (the same file, overwritten from the start),
//! never deleted while the connection is open — [`WalSync`] still checks the file it syncs is
//! the one at the path, and syncs the directory after (re)opening it, so a WAL file created
//! since is durable too.

use std::fs::File;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, ThreadId};
use std::time::Duration;

use rusqlite::{Connection, Params, Row, ToSql, TransactionBehavior, ffi, params};
use serde::de::DeserializeOwned;

use super::{
    AgentRecord, AlertId, AlertRecord, AuditId, AuditRecord, CallFlags, CallRecord, ColumnEnum,
    DeliveryRecord, Event, EventId, EventScope, GrantId, GrantRecord, GroupMember, GroupRecord,
    GroupSupervisor, NewAlert, NewAudit, NewEvent, NewGrant, PAGE_LIMIT_MAX, Reads, Result, Role,
    Store, StoreError, Subscription, SupervisionRecord, SupervisorSettings, TokenHash, TokenRecord,
    UnixMs, UserRecord, WebhookRecord, Writes,
};

/// How long a statement waits for another process's lock before failing with "busy".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// One schema step: `sql` is applied once, in `version` order, and recorded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) name: &'static str,
    pub(crate) sql: &'static str,
}

/// Every schema step this binary knows, oldest first. Append only: a released migration is
/// never edited (its name is checked against the database's record of it).
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "lifecycle",
        sql: include_str!("migrations/0002_lifecycle.sql"),
    },
    Migration {
        version: 3,
        name: "webhooks",
        sql: include_str!("migrations/0003_webhooks.sql"),
    },
    Migration {
        version: 4,
        name: "open_indexes",
        sql: include_str!("migrations/0004_open_indexes.sql"),
    },
    Migration {
        version: 5,
        name: "no_call",
        sql: include_str!("migrations/0005_no_call.sql"),
    },
];

/// The SQLite [`Store`]: a file (the embedded default, [`SqliteStore::DEFAULT_PATH`]) or
/// `:memory:` (tests).
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// The thread inside a transaction, so a nested transaction is an error, not a deadlock.
    holder: Mutex<Option<ThreadId>>,
    /// The commits' sequence numbers and their syncs.
    wal: WalSync,
}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<SqliteStore>();
};

impl SqliteStore {
    /// SPEC §5: the database file in the working directory.
    pub const DEFAULT_PATH: &'static str = "earshot.db";

    /// Opens (creating it if absent) the database at `path` — `":memory:"` for a private
    /// in-memory one — and brings its schema up to date. Refuses a database whose schema is
    /// newer than this binary's ([`StoreError::Schema`]) and a file that is not a database
    /// ([`StoreError::Corrupt`]).
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore> {
        SqliteStore::open_with(path.as_ref(), MIGRATIONS)
    }

    /// A private in-memory database (gone when the store is dropped).
    pub fn open_in_memory() -> Result<SqliteStore> {
        SqliteStore::open(":memory:")
    }

    pub(crate) fn open_with(path: &Path, migrations: &[Migration]) -> Result<SqliteStore> {
        let memory = path == Path::new(":memory:");
        let context = format!("opening database {}", path.display());
        let conn = if memory {
            Connection::open_in_memory()
        } else {
            Connection::open(path)
        };
        let mut conn = conn.map_err(|e| classify(&context, e))?;
        configure(&conn, memory).map_err(|e| e.into_store(&context))?;
        migrate(&mut conn, migrations)?;
        // SQLite's own name for the file (absolute), so a later change of directory is harmless.
        let wal = conn
            .path()
            .filter(|p| !memory && !p.is_empty())
            .map(|p| PathBuf::from(format!("{p}-wal")));
        let store = SqliteStore {
            conn: Mutex::new(conn),
            holder: Mutex::new(None),
            wal: WalSync::new(wal),
        };
        // The migrations (and the WAL file itself) durable before the store is used.
        let seq = store.wal.committed();
        store.wal.sync_to(seq)?;
        Ok(store)
    }

    /// The highest migration applied to the database.
    pub fn schema_version(&self) -> Result<i64> {
        let guard = self.lock()?;
        guard
            .conn
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                [],
                |r| r.get(0),
            )
            .map_err(|e| classify("reading the schema version", e))
    }

    fn lock(&self) -> Result<Guard<'_>> {
        let me = thread::current().id();
        if *relock(&self.holder) == Some(me) {
            return Err(StoreError::Backend {
                context: "beginning a transaction".to_owned(),
                cause: "nested transaction: the closure called back into the store".into(),
            });
        }
        let conn = relock(&self.conn);
        *relock(&self.holder) = Some(me);
        let guard = Guard {
            conn,
            holder: &self.holder,
        };
        // A closure that panicked left its transaction to be rolled back by the unwinding; make
        // sure, so the next caller never inherits half a transaction.
        if !guard.conn.is_autocommit() {
            guard
                .conn
                .execute_batch("ROLLBACK")
                .map_err(|e| classify("rolling back an abandoned transaction", e))?;
        }
        Ok(guard)
    }
}

/// A mutex whose holder panicked still guards consistent data here (the transaction was rolled
/// back), so poisoning is not an error.
fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Guard<'a> {
    conn: MutexGuard<'a, Connection>,
    holder: &'a Mutex<Option<ThreadId>>,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        // Before `conn` unlocks (fields drop after this), so no other thread is recorded yet.
        *relock(self.holder) = None;
    }
}

fn configure(conn: &Connection, memory: bool) -> Sql<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL: readers never block the writer, and a crash mid-commit leaves the database as of
    // the last commit (the WAL is replayed or ignored on the next open).
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !memory && !mode.eq_ignore_ascii_case("wal") {
        return Err(Fail::Store(StoreError::Backend {
            context: "enabling the WAL journal".to_owned(),
            cause: format!("the journal mode stayed {mode:?}").into(),
        }));
    }
    // NORMAL, not FULL: in WAL mode NORMAL syncs the WAL only at checkpoints, so on its own a
    // commit survives a process crash but may be lost on power failure or an OS crash. Grants,
    // audit records and alerts are acknowledged to clients (and the audit must precede
    // supervisor media, SPEC §4), so nothing is acknowledged before [`WalSync`] has synced the
    // WAL past its commit (see "Group commit" above): as durable as FULL, which fsyncs the WAL
    // in every commit, but one sync serves every commit made while the previous one ran.
    // (Set after the journal mode: the switch to WAL was written under the default, FULL.)
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    let foreign_keys: bool = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
    if !foreign_keys {
        return Err(Fail::Store(StoreError::Backend {
            context: "enabling foreign keys".to_owned(),
            cause: "this SQLite was built without foreign key support".into(),
        }));
    }
    Ok(())
}

/// Applies the migrations the database lacks, all in one transaction (an upgrade happens
/// entirely or not at all), and records each in `schema_migrations`.
fn migrate(conn: &mut Connection, migrations: &[Migration]) -> Result<()> {
    if let Some(pair) = migrations.windows(2).find(|w| w[0].version >= w[1].version) {
        return Err(StoreError::Schema(format!(
            "migrations out of order: {} before {}",
            pair[0].version, pair[1].version
        )));
    }
    let context = "migrating the schema";
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| classify(context, e))?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             name       TEXT NOT NULL,
             applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
         )",
    )
    .map_err(|e| classify(context, e))?;
    let applied: Vec<(i64, String)> = tx
        .prepare("SELECT version, name FROM schema_migrations ORDER BY version")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()
        })
        .map_err(|e| classify(context, e))?;

    let known = migrations.last().map_or(0, |m| m.version);
    let current = applied.last().map_or(0, |a| a.0);
    if current > known {
        return Err(StoreError::Schema(format!(
            "the database is at schema version {current} but this binary knows versions up to \
             {known}: it was written by a newer earshot; run that version, or use another \
             database file"
        )));
    }
    for (version, name) in &applied {
        match migrations.iter().find(|m| m.version == *version) {
            Some(m) if m.name == name => {}
            Some(m) => {
                return Err(StoreError::Schema(format!(
                    "schema version {version} is recorded as {name:?} but this binary's \
                     version {version} is {:?}: the database comes from another build",
                    m.name
                )));
            }
            None => {
                return Err(StoreError::Schema(format!(
                    "schema version {version} ({name:?}) is unknown to this binary"
                )));
            }
        }
    }
    if let Some(m) = migrations
        .iter()
        .find(|m| m.version <= current && !applied.iter().any(|a| a.0 == m.version))
    {
        return Err(StoreError::Schema(format!(
            "schema version {} ({:?}) was skipped in this database (it is at {current})",
            m.version, m.name
        )));
    }

    for m in migrations.iter().filter(|m| m.version > current) {
        tx.execute_batch(m.sql)
            .map_err(|e| match classify(context, e) {
                corrupt @ StoreError::Corrupt { .. } => corrupt,
                e => {
                    StoreError::Schema(format!("migration {} ({}) failed: {e}", m.version, m.name))
                }
            })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES (?1, ?2)",
            params![m.version, m.name],
        )
        .map_err(|e| classify(context, e))?;
    }
    tx.commit().map_err(|e| classify(context, e))
}

impl Store for SqliteStore {
    fn write_dyn(&self, f: &mut dyn FnMut(&mut dyn Writes) -> Result<()>) -> Result<()> {
        // After a failed sync nothing may be committed: it could never be acknowledged.
        self.wal.check()?;
        let seq = {
            let mut guard = self.lock()?;
            // IMMEDIATE: take the write lock up front, so a transaction that reads then writes
            // never fails half-way on another process's lock.
            let tx = guard
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| classify("beginning a write transaction", e))?;
            f(&mut Db { conn: &tx })?; // an error drops `tx`: rolled back
            tx.commit().map_err(|e| classify("committing", e))?;
            // Still under the connection's lock: sequence numbers follow the commit order.
            self.wal.committed()
        };
        // The sync outside the connection's lock, so other commits go on meanwhile (and are
        // covered by it if they finish before it starts).
        if super::is_deferring() {
            Ok(())
        } else {
            self.wal.sync_to(seq)
        }
    }

    fn sync(&self) -> Result<()> {
        self.wal.sync_to(self.wal.last_committed())
    }

    fn read_dyn(&self, f: &mut dyn FnMut(&dyn Reads) -> Result<()>) -> Result<()> {
        let mut guard = self.lock()?;
        let tx = guard
            .conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(|e| classify("beginning a read transaction", e))?;
        let out = f(&Db { conn: &tx });
        let end = tx
            .rollback()
            .map_err(|e| classify("ending a read transaction", e));
        out.and(end)
    }
}

// --- Group commit ------------------------------------------------------------------------------

/// The commits' sequence numbers and the `fdatasync`s of the WAL that make them durable, one
/// at a time, each covering every commit before it started (see "Group commit" above).
#[derive(Debug)]
struct WalSync {
    /// The `-wal` file; `None` for an in-memory database (nothing to sync).
    path: Option<PathBuf>,
    state: Mutex<SyncState>,
    /// Signalled when a sync ends.
    ended: Condvar,
}

#[derive(Debug, Default)]
struct SyncState {
    /// The last commit's sequence number.
    committed: u64,
    /// Every commit up to this sequence number is durable.
    synced: u64,
    /// A thread is syncing; the others wait for it, then check whether it covered them.
    syncing: bool,
    /// Why a sync failed. Sticky: after a failed `fsync` what reached the disk is unknown (and
    /// a later `fsync` may succeed without having written it), so nothing more is acknowledged.
    failed: Option<String>,
    /// The WAL, opened by the first sync and kept.
    file: Option<File>,
}

impl WalSync {
    fn new(path: Option<PathBuf>) -> WalSync {
        WalSync {
            path,
            state: Mutex::new(SyncState::default()),
            ended: Condvar::new(),
        }
    }

    /// Takes the next sequence number for a commit that has just returned (the caller holds
    /// the connection's lock, so numbers follow the commit order).
    fn committed(&self) -> u64 {
        let mut s = relock(&self.state);
        s.committed += 1;
        s.committed
    }

    fn last_committed(&self) -> u64 {
        relock(&self.state).committed
    }

    /// Refuses once a sync has failed.
    fn check(&self) -> Result<()> {
        match &relock(&self.state).failed {
            Some(why) => Err(sync_failed(why)),
            None => Ok(()),
        }
    }

    /// Returns once commit `seq` (and every one before it) is durable: at once if a sync has
    /// covered it; else after the sync in progress, if that one covered it; else after a sync
    /// of its own, which covers every commit made so far (leader and followers).
    fn sync_to(&self, seq: u64) -> Result<()> {
        let mut s = relock(&self.state);
        loop {
            if let Some(why) = &s.failed {
                return Err(sync_failed(why));
            }
            if s.synced >= seq {
                return Ok(());
            }
            if s.syncing {
                s = self.ended.wait(s).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            // Every commit numbered up to `target` has written its frames: a sync from now on
            // covers them.
            let target = s.committed;
            s.syncing = true;
            let file = s.file.take();
            drop(s);
            let synced = self.sync_wal(file);
            s = relock(&self.state);
            s.syncing = false;
            match synced {
                Ok(file) => {
                    s.file = file;
                    s.synced = s.synced.max(target);
                }
                Err(e) => {
                    tracing::error!(err = %e, "cannot sync the database's WAL: refusing every \
                        write from now on; restart the daemon");
                    s.failed = Some(e.to_string());
                }
            }
            self.ended.notify_all();
        }
    }

    /// `fdatasync`s the WAL through `file`, or through a fresh handle if `file` is not the WAL
    /// at the path (or none yet); returns the handle to keep.
    fn sync_wal(&self, file: Option<File>) -> std::io::Result<Option<File>> {
        let Some(path) = &self.path else {
            return Ok(None);
        };
        let file = match file {
            Some(file) if same_file(&file, path)? => file,
            _ => {
                let file = File::open(path)?;
                // The WAL's directory entry durable too (SQLite creates the file, and syncs
                // its directory only on its own first sync of it).
                File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()?;
                file
            }
        };
        file.sync_data()?;
        Ok(Some(file))
    }
}

/// Whether `file` is the file now at `path` (the WAL is never replaced while the connection is
/// open; checked anyway, since syncing a stale file would silently acknowledge nothing).
fn same_file(file: &File, path: &Path) -> std::io::Result<bool> {
    let (held, named) = (file.metadata()?, std::fs::metadata(path)?);
    Ok(held.dev() == named.dev() && held.ino() == named.ino())
}

fn sync_failed(why: &str) -> StoreError {
    StoreError::Backend {
        context: "making commits durable".to_owned(),
        cause: format!("a sync of the WAL failed ({why}); restart to recover what is durable")
            .into(),
    }
}

// --- Errors ------------------------------------------------------------------------------------

/// Inside a repository method: an SQLite error (classified once, with the method's context), a
/// store error already made, or a missing row.
enum Fail {
    Sql(rusqlite::Error),
    Store(StoreError),
    Missing(String),
}

type Sql<T> = core::result::Result<T, Fail>;

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Fail {
        Fail::Sql(e)
    }
}

impl Fail {
    fn into_store(self, context: &str) -> StoreError {
        match self {
            Fail::Sql(e) => classify(context, e),
            Fail::Store(e) => e,
            Fail::Missing(detail) => StoreError::NotFound {
                context: context.to_owned(),
                detail,
            },
        }
    }
}

/// Runs a repository method's body, mapping its failure once with `context`.
fn run<T>(context: &str, f: impl FnOnce() -> Sql<T>) -> Result<T> {
    f().map_err(|e| e.into_store(context))
}

fn classify(context: &str, e: rusqlite::Error) -> StoreError {
    let context = context.to_owned();
    match e {
        rusqlite::Error::SqliteFailure(f, msg) => {
            let detail = msg.clone().unwrap_or_else(|| f.to_string());
            match f.code {
                rusqlite::ErrorCode::ConstraintViolation => match f.extended_code {
                    ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                        StoreError::Conflict { context, detail }
                    }
                    ffi::SQLITE_CONSTRAINT_FOREIGNKEY => StoreError::NotFound {
                        context,
                        detail: "a row it refers to does not exist".to_owned(),
                    },
                    _ => StoreError::Invalid { context, detail },
                },
                rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase => {
                    StoreError::Corrupt { context, detail }
                }
                _ => StoreError::Backend {
                    context,
                    cause: Box::new(rusqlite::Error::SqliteFailure(f, msg)),
                },
            }
        }
        e @ (rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::Utf8Error(..)) => StoreError::Corrupt {
            context,
            detail: e.to_string(),
        },
        e => StoreError::Backend {
            context,
            cause: Box::new(e),
        },
    }
}

fn corrupt(column: &str, detail: String) -> Fail {
    Fail::Store(StoreError::Corrupt {
        context: format!("reading {column}"),
        detail,
    })
}

// --- Column decoding ---------------------------------------------------------------------------

fn text_enum<T: ColumnEnum>(row: &Row<'_>, idx: usize, column: &str) -> Sql<T> {
    let s: String = row.get(idx)?;
    T::parse(&s).ok_or_else(|| corrupt(column, format!("unknown value {s:?}")))
}

fn opt_text_enum<T: ColumnEnum>(row: &Row<'_>, idx: usize, column: &str) -> Sql<Option<T>> {
    match row.get::<_, Option<String>>(idx)? {
        None => Ok(None),
        Some(s) => T::parse(&s)
            .map(Some)
            .ok_or_else(|| corrupt(column, format!("unknown value {s:?}"))),
    }
}

fn json<T: DeserializeOwned>(row: &Row<'_>, idx: usize, column: &str) -> Sql<T> {
    let s: String = row.get(idx)?;
    serde_json::from_str(&s).map_err(|e| corrupt(column, format!("not the expected JSON: {e}")))
}

fn to_json(value: &impl serde::Serialize, column: &str) -> Sql<String> {
    serde_json::to_string(value).map_err(|e| {
        Fail::Store(StoreError::Invalid {
            context: format!("writing {column}"),
            detail: e.to_string(),
        })
    })
}

fn ms(row: &Row<'_>, idx: usize) -> Sql<UnixMs> {
    Ok(UnixMs(row.get(idx)?))
}

fn opt_ms(row: &Row<'_>, idx: usize) -> Sql<Option<UnixMs>> {
    Ok(row.get::<_, Option<i64>>(idx)?.map(UnixMs))
}

fn page(limit: u32) -> i64 {
    i64::from(limit.min(PAGE_LIMIT_MAX))
}

// --- Rows --------------------------------------------------------------------------------------

macro_rules! token_cols {
    () => {
        "id, token_hash, role, user_id, created_at_ms, revoked_at_ms"
    };
}
fn token_row(row: &Row<'_>) -> Sql<TokenRecord> {
    let hash: Vec<u8> = row.get(1)?;
    let hash: [u8; 32] = hash
        .try_into()
        .map_err(|h: Vec<u8>| corrupt("tokens.token_hash", format!("{} bytes, not 32", h.len())))?;
    Ok(TokenRecord {
        id: row.get(0)?,
        token_hash: TokenHash(hash),
        role: text_enum(row, 2, "tokens.role")?,
        user_id: row.get(3)?,
        created_at: ms(row, 4)?,
        revoked_at: opt_ms(row, 5)?,
    })
}

macro_rules! user_cols {
    () => {
        "id, display_name, phone_number"
    };
}
fn user_row(row: &Row<'_>) -> Sql<UserRecord> {
    Ok(UserRecord {
        id: row.get(0)?,
        display_name: row.get(1)?,
        phone_number: row.get(2)?,
        roles: Vec::new(),
    })
}

fn settings_row(row: &Row<'_>) -> Sql<SupervisorSettings> {
    Ok(SupervisorSettings {
        user_id: row.get(0)?,
        registered_number: row.get(1)?,
        updated_at: ms(row, 2)?,
    })
}

macro_rules! group_cols {
    () => {
        "id, name, kind, lock_last_member, agent_beep, max_monitors_per_agent, created_at_ms"
    };
}
fn group_row(row: &Row<'_>) -> Sql<GroupRecord> {
    Ok(GroupRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        kind: text_enum(row, 2, "groups.kind")?,
        lock_last_member: row.get(3)?,
        agent_beep: text_enum(row, 4, "groups.agent_beep")?,
        max_monitors_per_agent: row.get(5)?,
        created_at: ms(row, 6)?,
    })
}

macro_rules! group_supervisor_cols {
    () => {
        "group_id, user_id, group_admin, listen_right, intervene_right"
    };
}
fn group_supervisor_row(row: &Row<'_>) -> Sql<GroupSupervisor> {
    Ok(GroupSupervisor {
        group_id: row.get(0)?,
        user_id: row.get(1)?,
        group_admin: row.get(2)?,
        listen_right: row.get(3)?,
        intervene_right: row.get(4)?,
    })
}

macro_rules! group_member_cols {
    () => {
        "group_id, user_id, can_leave, logged_in"
    };
}
fn group_member_row(row: &Row<'_>) -> Sql<GroupMember> {
    Ok(GroupMember {
        group_id: row.get(0)?,
        user_id: row.get(1)?,
        can_leave: row.get(2)?,
        logged_in: row.get(3)?,
    })
}

macro_rules! agent_cols {
    () => {
        "user_id, state, state_since_ms, pause_reason, campaign, platform, auto_assignment, \
         aggregates"
    };
}
/// An agent's values in `agent_cols!()` order (?1 … ?8), for its INSERT and its UPDATE.
fn agent_params<R>(a: &AgentRecord, f: impl FnOnce(&[&dyn ToSql]) -> Sql<R>) -> Sql<R> {
    let aggregates = to_json(&a.aggregates, "agents.aggregates")?;
    f(params![
        a.user_id,
        a.state.as_str(),
        a.state_since.0,
        a.pause_reason,
        a.campaign,
        a.platform.map(ColumnEnum::as_str),
        a.auto_assignment,
        aggregates
    ])
}
fn agent_row(row: &Row<'_>) -> Sql<AgentRecord> {
    Ok(AgentRecord {
        user_id: row.get(0)?,
        state: text_enum(row, 1, "agents.state")?,
        state_since: ms(row, 2)?,
        pause_reason: row.get(3)?,
        campaign: row.get(4)?,
        platform: opt_text_enum(row, 5, "agents.platform")?,
        auto_assignment: row.get(6)?,
        aggregates: json(row, 7, "agents.aggregates")?,
    })
}

macro_rules! grant_cols {
    () => {
        "id, supervisor_id, agent_id, granted_by, created_at_ms, revoked_at_ms"
    };
}
fn grant_row(row: &Row<'_>) -> Sql<GrantRecord> {
    Ok(GrantRecord {
        id: GrantId(row.get(0)?),
        supervisor_id: row.get(1)?,
        agent_id: row.get(2)?,
        granted_by: row.get(3)?,
        created_at: ms(row, 4)?,
        revoked_at: opt_ms(row, 5)?,
    })
}

fn subscription_row(row: &Row<'_>) -> Sql<Subscription> {
    Ok(Subscription {
        supervisor_id: row.get(0)?,
        agent_id: row.get(1)?,
        created_at: ms(row, 2)?,
    })
}

macro_rules! call_cols {
    () => {
        "id, external_id, agent_id, state, on_hold, consult, secure_payment, conference, web, \
         created_at_ms, ended_at_ms, direction, agent_answered, customer_hung_up, agent_hung_up, \
         deleted_at_ms, media"
    };
}
/// A call's values in `call_cols!()` order (?1 … ?17), for its INSERT.
fn call_params<R>(c: &CallRecord, f: impl FnOnce(&[&dyn ToSql]) -> Sql<R>) -> Sql<R> {
    let media = to_json(&c.media, "calls.media")?;
    f(params![
        c.id,
        c.external_id,
        c.agent_id,
        c.state.as_str(),
        c.flags.on_hold,
        c.flags.consult,
        c.flags.secure_payment,
        c.flags.conference,
        c.web,
        c.created_at.0,
        c.ended_at.map(|at| at.0),
        c.direction.as_str(),
        c.agent_answered,
        c.customer_hung_up,
        c.agent_hung_up,
        c.deleted_at.map(|at| at.0),
        media
    ])
}
fn call_row(row: &Row<'_>) -> Sql<CallRecord> {
    Ok(CallRecord {
        id: row.get(0)?,
        external_id: row.get(1)?,
        agent_id: row.get(2)?,
        state: text_enum(row, 3, "calls.state")?,
        flags: CallFlags {
            on_hold: row.get(4)?,
            consult: row.get(5)?,
            secure_payment: row.get(6)?,
            conference: row.get(7)?,
        },
        web: row.get(8)?,
        created_at: ms(row, 9)?,
        ended_at: opt_ms(row, 10)?,
        direction: text_enum(row, 11, "calls.direction")?,
        agent_answered: row.get(12)?,
        customer_hung_up: row.get(13)?,
        agent_hung_up: row.get(14)?,
        deleted_at: opt_ms(row, 15)?,
        media: json(row, 16, "calls.media")?,
    })
}

macro_rules! supervision_cols {
    () => {
        "id, call_id, supervisor_id, agent_id, state, mode, end_reason, scope, created_at_ms, \
         started_at_ms, ended_at_ms, media"
    };
}
/// A supervision's values in `supervision_cols!()` order (?1 … ?12), for its INSERT.
fn supervision_params<R>(s: &SupervisionRecord, f: impl FnOnce(&[&dyn ToSql]) -> Sql<R>) -> Sql<R> {
    let media = to_json(&s.media, "supervisions.media")?;
    f(params![
        s.id,
        s.call_id,
        s.supervisor_id,
        s.agent_id,
        s.state.as_str(),
        s.mode.as_str(),
        s.end_reason,
        s.scope.as_str(),
        s.created_at.0,
        s.started_at.map(|at| at.0),
        s.ended_at.map(|at| at.0),
        media
    ])
}
fn supervision_row(row: &Row<'_>) -> Sql<SupervisionRecord> {
    Ok(SupervisionRecord {
        id: row.get(0)?,
        call_id: row.get(1)?,
        supervisor_id: row.get(2)?,
        agent_id: row.get(3)?,
        state: text_enum(row, 4, "supervisions.state")?,
        mode: text_enum(row, 5, "supervisions.mode")?,
        end_reason: row.get(6)?,
        scope: text_enum(row, 7, "supervisions.scope")?,
        created_at: ms(row, 8)?,
        started_at: opt_ms(row, 9)?,
        ended_at: opt_ms(row, 10)?,
        media: json(row, 11, "supervisions.media")?,
    })
}

macro_rules! alert_cols {
    () => {
        "id, supervision_id, kind, text, at_ms, call_id, reason"
    };
}
fn alert_row(row: &Row<'_>) -> Sql<AlertRecord> {
    Ok(AlertRecord {
        id: AlertId(row.get(0)?),
        supervision_id: row.get(1)?,
        kind: row.get(2)?,
        text: row.get(3)?,
        at: ms(row, 4)?,
        call_id: row.get(5)?,
        reason: row.get(6)?,
    })
}

macro_rules! audit_cols {
    () => {
        "id, at_ms, actor, action, supervision_id, call_id, mode, outcome, detail"
    };
}
fn audit_row(row: &Row<'_>) -> Sql<AuditRecord> {
    Ok(AuditRecord {
        id: AuditId(row.get(0)?),
        at: ms(row, 1)?,
        actor: row.get(2)?,
        action: row.get(3)?,
        supervision_id: row.get(4)?,
        call_id: row.get(5)?,
        mode: opt_text_enum(row, 6, "audit.mode")?,
        outcome: row.get(7)?,
        detail: row.get(8)?,
    })
}

fn event_row(row: &Row<'_>) -> Sql<Event> {
    Ok(Event {
        id: EventId(row.get(0)?),
        at: ms(row, 1)?,
        event_type: row.get(2)?,
        payload: json(row, 3, "events.payload")?,
        scope: json::<EventScope>(row, 4, "events.scope")?,
    })
}

macro_rules! webhook_cols {
    () => {
        "id, url, secret, event_types, enabled, consecutive_failures, disabled_at_ms, \
         created_at_ms"
    };
}
fn webhook_row(row: &Row<'_>) -> Sql<WebhookRecord> {
    Ok(WebhookRecord {
        id: row.get(0)?,
        url: row.get(1)?,
        secret: row.get(2)?,
        event_types: json(row, 3, "webhooks.event_types")?,
        enabled: row.get(4)?,
        consecutive_failures: row.get(5)?,
        disabled_at: opt_ms(row, 6)?,
        created_at: ms(row, 7)?,
    })
}

macro_rules! delivery_cols {
    () => {
        "event_id, webhook_id, attempts, next_attempt_at_ms, last_status, last_error"
    };
}
/// A delivery's values in `delivery_cols!()` order (?1 … ?6), for its INSERT and its UPDATE.
fn delivery_params<R>(d: &DeliveryRecord, f: impl FnOnce(&[&dyn ToSql]) -> Sql<R>) -> Sql<R> {
    f(params![
        d.event_id.0,
        d.webhook_id,
        d.attempts,
        d.next_attempt_at.map(|at| at.0),
        d.last_status,
        d.last_error
    ])
}
fn delivery_row(row: &Row<'_>) -> Sql<DeliveryRecord> {
    Ok(DeliveryRecord {
        event_id: EventId(row.get(0)?),
        webhook_id: row.get(1)?,
        attempts: row.get(2)?,
        next_attempt_at: opt_ms(row, 3)?,
        last_status: row.get(4)?,
        last_error: row.get(5)?,
    })
}

// --- The repository over one transaction ------------------------------------------------------

/// The repository over one open transaction (the [`rusqlite::Transaction`] derefs to it).
struct Db<'c> {
    conn: &'c Connection,
}

type RowFn<T> = fn(&Row<'_>) -> Sql<T>;

impl Db<'_> {
    fn all<T>(&self, sql: &str, params: impl Params, f: RowFn<T>) -> Sql<Vec<T>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_and_then(params, f)?;
        rows.collect()
    }

    fn one<T>(&self, sql: &str, params: impl Params, f: RowFn<T>) -> Sql<Option<T>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let mut rows = stmt.query_and_then(params, f)?;
        rows.next().transpose()
    }

    fn exec(&self, sql: &str, params: impl Params) -> Sql<usize> {
        Ok(self.conn.prepare_cached(sql)?.execute(params)?)
    }

    /// Executes a statement that must touch a row; none touched is [`StoreError::NotFound`].
    fn exec_found(&self, sql: &str, params: impl Params, what: impl FnOnce() -> String) -> Sql<()> {
        match self.exec(sql, params)? {
            0 => Err(Fail::Missing(what())),
            _ => Ok(()),
        }
    }

    fn insert_returning_id(&self, sql: &str, params: impl Params) -> Sql<i64> {
        self.exec(sql, params)?;
        Ok(self.conn.last_insert_rowid())
    }

    fn roles_of(&self, user_id: &str) -> Sql<Vec<Role>> {
        let mut roles = self.all(
            "SELECT role FROM user_roles WHERE user_id = ?1",
            [user_id],
            |r| text_enum(r, 0, "user_roles.role"),
        )?;
        roles.sort_unstable();
        Ok(roles)
    }

    fn with_roles(&self, mut user: UserRecord) -> Sql<UserRecord> {
        user.roles = self.roles_of(&user.id)?;
        Ok(user)
    }

    fn set_roles(&self, user: &UserRecord) -> Sql<()> {
        self.exec("DELETE FROM user_roles WHERE user_id = ?1", [&user.id])?;
        // Deduplicated here rather than with INSERT OR IGNORE, which would also skip a CHECK.
        let mut roles = user.roles.clone();
        roles.sort_unstable();
        roles.dedup();
        for role in roles {
            self.exec(
                "INSERT INTO user_roles (user_id, role) VALUES (?1, ?2)",
                params![user.id, role.as_str()],
            )?;
        }
        Ok(())
    }
}

impl Reads for Db<'_> {
    fn token(&self, id: &str) -> Result<Option<TokenRecord>> {
        run("reading a token", || {
            self.one(
                concat!("SELECT ", token_cols!(), " FROM tokens WHERE id = ?1"),
                [id],
                token_row,
            )
        })
    }

    fn token_by_hash(&self, token_hash: &TokenHash) -> Result<Option<TokenRecord>> {
        run("reading a token by hash", || {
            self.one(
                concat!(
                    "SELECT ",
                    token_cols!(),
                    " FROM tokens WHERE token_hash = ?1"
                ),
                [&token_hash.0[..]],
                token_row,
            )
        })
    }

    fn tokens(&self) -> Result<Vec<TokenRecord>> {
        run("listing tokens", || {
            self.all(
                concat!(
                    "SELECT ",
                    token_cols!(),
                    " FROM tokens ORDER BY created_at_ms, id"
                ),
                [],
                token_row,
            )
        })
    }

    fn user(&self, id: &str) -> Result<Option<UserRecord>> {
        run("reading a user", || {
            self.one(
                concat!("SELECT ", user_cols!(), " FROM users WHERE id = ?1"),
                [id],
                user_row,
            )?
            .map(|u| self.with_roles(u))
            .transpose()
        })
    }

    fn users(&self) -> Result<Vec<UserRecord>> {
        run("listing users", || {
            self.all(
                concat!("SELECT ", user_cols!(), " FROM users ORDER BY id"),
                [],
                user_row,
            )?
            .into_iter()
            .map(|u| self.with_roles(u))
            .collect()
        })
    }

    fn supervisor_settings(&self, user_id: &str) -> Result<Option<SupervisorSettings>> {
        run("reading supervisor settings", || {
            self.one(
                "SELECT user_id, registered_number, updated_at_ms FROM supervisor_settings \
                 WHERE user_id = ?1",
                [user_id],
                settings_row,
            )
        })
    }

    fn group(&self, id: &str) -> Result<Option<GroupRecord>> {
        run("reading a group", || {
            self.one(
                concat!("SELECT ", group_cols!(), " FROM groups WHERE id = ?1"),
                [id],
                group_row,
            )
        })
    }

    fn groups(&self) -> Result<Vec<GroupRecord>> {
        run("listing groups", || {
            self.all(
                concat!("SELECT ", group_cols!(), " FROM groups ORDER BY name"),
                [],
                group_row,
            )
        })
    }

    fn group_supervisors(&self, group_id: &str) -> Result<Vec<GroupSupervisor>> {
        run("listing a group's supervisors", || {
            self.all(
                concat!(
                    "SELECT ",
                    group_supervisor_cols!(),
                    " FROM group_supervisors WHERE group_id = ?1 ORDER BY user_id"
                ),
                [group_id],
                group_supervisor_row,
            )
        })
    }

    fn group_members(&self, group_id: &str) -> Result<Vec<GroupMember>> {
        run("listing a group's members", || {
            self.all(
                concat!(
                    "SELECT ",
                    group_member_cols!(),
                    " FROM group_members WHERE group_id = ?1 ORDER BY user_id"
                ),
                [group_id],
                group_member_row,
            )
        })
    }

    fn supervised_groups(&self, user_id: &str) -> Result<Vec<GroupSupervisor>> {
        run("listing a supervisor's groups", || {
            self.all(
                concat!(
                    "SELECT ",
                    group_supervisor_cols!(),
                    " FROM group_supervisors WHERE user_id = ?1 ORDER BY group_id"
                ),
                [user_id],
                group_supervisor_row,
            )
        })
    }

    fn memberships(&self, user_id: &str) -> Result<Vec<GroupMember>> {
        run("listing a user's groups", || {
            self.all(
                concat!(
                    "SELECT ",
                    group_member_cols!(),
                    " FROM group_members WHERE user_id = ?1 ORDER BY group_id"
                ),
                [user_id],
                group_member_row,
            )
        })
    }

    fn agent(&self, user_id: &str) -> Result<Option<AgentRecord>> {
        run("reading an agent", || {
            self.one(
                concat!("SELECT ", agent_cols!(), " FROM agents WHERE user_id = ?1"),
                [user_id],
                agent_row,
            )
        })
    }

    fn agents(&self) -> Result<Vec<AgentRecord>> {
        run("listing agents", || {
            self.all(
                concat!("SELECT ", agent_cols!(), " FROM agents ORDER BY user_id"),
                [],
                agent_row,
            )
        })
    }

    fn grant(&self, id: GrantId) -> Result<Option<GrantRecord>> {
        run("reading a grant", || {
            self.one(
                concat!("SELECT ", grant_cols!(), " FROM grants WHERE id = ?1"),
                [id.0],
                grant_row,
            )
        })
    }

    fn active_grant(&self, supervisor_id: &str, agent_id: &str) -> Result<Option<GrantRecord>> {
        run("reading an active grant", || {
            self.one(
                concat!(
                    "SELECT ",
                    grant_cols!(),
                    " FROM grants WHERE supervisor_id = ?1 AND agent_id = ?2 \
                     AND revoked_at_ms IS NULL"
                ),
                [supervisor_id, agent_id],
                grant_row,
            )
        })
    }

    fn grants(&self) -> Result<Vec<GrantRecord>> {
        run("listing grants", || {
            self.all(
                concat!("SELECT ", grant_cols!(), " FROM grants ORDER BY id"),
                [],
                grant_row,
            )
        })
    }

    fn subscriptions_of(&self, supervisor_id: &str) -> Result<Vec<Subscription>> {
        run("listing a supervisor's subscriptions", || {
            self.all(
                "SELECT supervisor_id, agent_id, created_at_ms FROM subscriptions \
                 WHERE supervisor_id = ?1 ORDER BY agent_id",
                [supervisor_id],
                subscription_row,
            )
        })
    }

    fn subscribers_of(&self, agent_id: &str) -> Result<Vec<Subscription>> {
        run("listing an agent's subscribers", || {
            self.all(
                "SELECT supervisor_id, agent_id, created_at_ms FROM subscriptions \
                 WHERE agent_id = ?1 ORDER BY supervisor_id",
                [agent_id],
                subscription_row,
            )
        })
    }

    fn call(&self, id: &str) -> Result<Option<CallRecord>> {
        run("reading a call", || {
            self.one(
                concat!("SELECT ", call_cols!(), " FROM calls WHERE id = ?1"),
                [id],
                call_row,
            )
        })
    }

    fn call_by_external_id(&self, external_id: &str) -> Result<Option<CallRecord>> {
        run("reading a call by external id", || {
            self.one(
                concat!(
                    "SELECT ",
                    call_cols!(),
                    " FROM calls WHERE external_id = ?1"
                ),
                [external_id],
                call_row,
            )
        })
    }

    fn open_calls(&self) -> Result<Vec<CallRecord>> {
        run("listing open calls", || {
            self.all(
                concat!(
                    "SELECT ",
                    call_cols!(),
                    " FROM calls WHERE state <> 'ended' ORDER BY created_at_ms, id"
                ),
                [],
                call_row,
            )
        })
    }

    fn recent_calls(&self, limit: u32) -> Result<Vec<CallRecord>> {
        run("listing recent calls", || {
            self.all(
                concat!(
                    "SELECT ",
                    call_cols!(),
                    " FROM calls ORDER BY created_at_ms DESC, id DESC LIMIT ?1"
                ),
                [page(limit)],
                call_row,
            )
        })
    }

    fn supervision(&self, id: &str) -> Result<Option<SupervisionRecord>> {
        run("reading a supervision", || {
            self.one(
                concat!(
                    "SELECT ",
                    supervision_cols!(),
                    " FROM supervisions WHERE id = ?1"
                ),
                [id],
                supervision_row,
            )
        })
    }

    fn open_sessions(&self) -> Result<Vec<SupervisionRecord>> {
        run("listing open supervisions", || {
            self.all(
                concat!(
                    "SELECT ",
                    supervision_cols!(),
                    " FROM supervisions WHERE state IN ('requested', 'active', 'no_call') \
                     ORDER BY created_at_ms, id"
                ),
                [],
                supervision_row,
            )
        })
    }

    fn supervisions_of_call(&self, call_id: &str) -> Result<Vec<SupervisionRecord>> {
        run("listing a call's supervisions", || {
            self.all(
                concat!(
                    "SELECT ",
                    supervision_cols!(),
                    " FROM supervisions WHERE call_id = ?1 ORDER BY created_at_ms, id"
                ),
                [call_id],
                supervision_row,
            )
        })
    }

    fn recent_supervisions(&self, limit: u32) -> Result<Vec<SupervisionRecord>> {
        run("listing recent supervisions", || {
            self.all(
                concat!(
                    "SELECT ",
                    supervision_cols!(),
                    " FROM supervisions ORDER BY created_at_ms DESC, id DESC LIMIT ?1"
                ),
                [page(limit)],
                supervision_row,
            )
        })
    }

    fn alerts_after(&self, after: AlertId, limit: u32) -> Result<Vec<AlertRecord>> {
        run("listing alerts", || {
            self.all(
                concat!(
                    "SELECT ",
                    alert_cols!(),
                    " FROM alerts WHERE id > ?1 ORDER BY id LIMIT ?2"
                ),
                [after.0, page(limit)],
                alert_row,
            )
        })
    }

    fn alerts_of_supervision(&self, supervision_id: &str) -> Result<Vec<AlertRecord>> {
        run("listing a supervision's alerts", || {
            self.all(
                concat!(
                    "SELECT ",
                    alert_cols!(),
                    " FROM alerts WHERE supervision_id = ?1 ORDER BY id"
                ),
                [supervision_id],
                alert_row,
            )
        })
    }

    fn audit_after(&self, after: AuditId, limit: u32) -> Result<Vec<AuditRecord>> {
        run("listing audit records", || {
            self.all(
                concat!(
                    "SELECT ",
                    audit_cols!(),
                    " FROM audit WHERE id > ?1 ORDER BY id LIMIT ?2"
                ),
                [after.0, page(limit)],
                audit_row,
            )
        })
    }

    fn audit_of_supervision(&self, supervision_id: &str) -> Result<Vec<AuditRecord>> {
        run("listing a supervision's audit records", || {
            self.all(
                concat!(
                    "SELECT ",
                    audit_cols!(),
                    " FROM audit WHERE supervision_id = ?1 ORDER BY id"
                ),
                [supervision_id],
                audit_row,
            )
        })
    }

    fn events_after(&self, after: EventId, limit: u32) -> Result<Vec<Event>> {
        run("listing events", || {
            self.all(
                "SELECT id, at_ms, event_type, payload, scope FROM events WHERE id > ?1 \
                 ORDER BY id LIMIT ?2",
                [after.0, page(limit)],
                event_row,
            )
        })
    }

    fn last_event_id(&self) -> Result<Option<EventId>> {
        run("reading the last event id", || {
            let id: Option<i64> = self
                .conn
                .query_row("SELECT MAX(id) FROM events", [], |r| r.get(0))?;
            Ok(id.map(EventId))
        })
    }

    fn webhook(&self, id: &str) -> Result<Option<WebhookRecord>> {
        run("reading a webhook", || {
            self.one(
                concat!("SELECT ", webhook_cols!(), " FROM webhooks WHERE id = ?1"),
                [id],
                webhook_row,
            )
        })
    }

    fn webhooks(&self) -> Result<Vec<WebhookRecord>> {
        run("listing webhooks", || {
            self.all(
                concat!("SELECT ", webhook_cols!(), " FROM webhooks ORDER BY id"),
                [],
                webhook_row,
            )
        })
    }

    fn delivery(&self, event_id: EventId, webhook_id: &str) -> Result<Option<DeliveryRecord>> {
        run("reading a webhook delivery", || {
            self.one(
                concat!(
                    "SELECT ",
                    delivery_cols!(),
                    " FROM webhook_deliveries WHERE event_id = ?1 AND webhook_id = ?2"
                ),
                params![event_id.0, webhook_id],
                delivery_row,
            )
        })
    }

    fn next_delivery(&self, webhook_id: &str) -> Result<Option<DeliveryRecord>> {
        run("reading a webhook's next delivery", || {
            self.one(
                concat!(
                    "SELECT ",
                    delivery_cols!(),
                    " FROM webhook_deliveries WHERE webhook_id = ?1 \
                     AND next_attempt_at_ms IS NOT NULL ORDER BY event_id LIMIT 1"
                ),
                [webhook_id],
                delivery_row,
            )
        })
    }

    fn webhook_cursor(&self) -> Result<EventId> {
        run("reading the webhook cursor", || {
            let after: Option<i64> = self.one(
                "SELECT after_event_id FROM webhook_cursor WHERE id = 1",
                [],
                |r| Ok(r.get(0)?),
            )?;
            // The migration inserts the row; without it, nothing was fanned out yet.
            Ok(EventId(after.unwrap_or(0)))
        })
    }
}

impl Writes for Db<'_> {
    fn create_token(&mut self, t: &TokenRecord) -> Result<()> {
        run("creating a token", || {
            self.exec(
                concat!(
                    "INSERT INTO tokens (",
                    token_cols!(),
                    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                ),
                params![
                    t.id,
                    &t.token_hash.0[..],
                    t.role.as_str(),
                    t.user_id,
                    t.created_at.0,
                    t.revoked_at.map(|at| at.0)
                ],
            )?;
            Ok(())
        })
    }

    fn revoke_token(&mut self, id: &str, at: UnixMs) -> Result<()> {
        run("revoking a token", || {
            self.exec_found(
                "UPDATE tokens SET revoked_at_ms = COALESCE(revoked_at_ms, ?2) WHERE id = ?1",
                params![id, at.0],
                || format!("no token {id:?}"),
            )
        })
    }

    fn create_user(&mut self, u: &UserRecord) -> Result<()> {
        run("creating a user", || {
            self.exec(
                concat!("INSERT INTO users (", user_cols!(), ") VALUES (?1, ?2, ?3)"),
                params![u.id, u.display_name, u.phone_number],
            )?;
            self.set_roles(u)
        })
    }

    fn update_user(&mut self, u: &UserRecord) -> Result<()> {
        run("updating a user", || {
            self.exec_found(
                "UPDATE users SET display_name = ?2, phone_number = ?3 WHERE id = ?1",
                params![u.id, u.display_name, u.phone_number],
                || format!("no user {:?}", u.id),
            )?;
            self.set_roles(u)
        })
    }

    fn delete_user(&mut self, id: &str) -> Result<()> {
        run("deleting a user", || {
            self.exec_found("DELETE FROM users WHERE id = ?1", [id], || {
                format!("no user {id:?}")
            })
        })
    }

    fn set_supervisor_settings(&mut self, s: &SupervisorSettings) -> Result<()> {
        run("saving supervisor settings", || {
            self.exec(
                "INSERT INTO supervisor_settings (user_id, registered_number, updated_at_ms) \
                 VALUES (?1, ?2, ?3) \
                 ON CONFLICT (user_id) DO UPDATE SET registered_number = excluded.registered_number, \
                 updated_at_ms = excluded.updated_at_ms",
                params![s.user_id, s.registered_number, s.updated_at.0],
            )?;
            Ok(())
        })
    }

    fn create_group(&mut self, g: &GroupRecord) -> Result<()> {
        run("creating a group", || {
            self.exec(
                concat!(
                    "INSERT INTO groups (",
                    group_cols!(),
                    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                ),
                params![
                    g.id,
                    g.name,
                    g.kind.as_str(),
                    g.lock_last_member,
                    g.agent_beep.as_str(),
                    g.max_monitors_per_agent,
                    g.created_at.0
                ],
            )?;
            Ok(())
        })
    }

    fn update_group(&mut self, g: &GroupRecord) -> Result<()> {
        run("updating a group", || {
            self.exec_found(
                "UPDATE groups SET name = ?2, kind = ?3, lock_last_member = ?4, agent_beep = ?5, \
                 max_monitors_per_agent = ?6 WHERE id = ?1",
                params![
                    g.id,
                    g.name,
                    g.kind.as_str(),
                    g.lock_last_member,
                    g.agent_beep.as_str(),
                    g.max_monitors_per_agent
                ],
                || format!("no group {:?}", g.id),
            )
        })
    }

    fn delete_group(&mut self, id: &str) -> Result<()> {
        run("deleting a group", || {
            self.exec_found("DELETE FROM groups WHERE id = ?1", [id], || {
                format!("no group {id:?}")
            })
        })
    }

    fn set_group_supervisor(&mut self, s: &GroupSupervisor) -> Result<()> {
        run("setting a group supervisor", || {
            self.exec(
                concat!(
                    "INSERT INTO group_supervisors (",
                    group_supervisor_cols!(),
                    ") VALUES (?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT (group_id, user_id) DO UPDATE SET \
                     group_admin = excluded.group_admin, listen_right = excluded.listen_right, \
                     intervene_right = excluded.intervene_right"
                ),
                params![
                    s.group_id,
                    s.user_id,
                    s.group_admin,
                    s.listen_right,
                    s.intervene_right
                ],
            )?;
            Ok(())
        })
    }

    fn remove_group_supervisor(&mut self, group_id: &str, user_id: &str) -> Result<()> {
        run("removing a group supervisor", || {
            self.exec_found(
                "DELETE FROM group_supervisors WHERE group_id = ?1 AND user_id = ?2",
                [group_id, user_id],
                || format!("{user_id:?} does not supervise group {group_id:?}"),
            )
        })
    }

    fn add_group_member(&mut self, m: &GroupMember) -> Result<()> {
        run("adding a group member", || {
            self.exec(
                concat!(
                    "INSERT INTO group_members (",
                    group_member_cols!(),
                    ") VALUES (?1, ?2, ?3, ?4)"
                ),
                params![m.group_id, m.user_id, m.can_leave, m.logged_in],
            )?;
            Ok(())
        })
    }

    fn update_group_member(&mut self, m: &GroupMember) -> Result<()> {
        run("updating a group member", || {
            self.exec_found(
                "UPDATE group_members SET can_leave = ?3, logged_in = ?4 \
                 WHERE group_id = ?1 AND user_id = ?2",
                params![m.group_id, m.user_id, m.can_leave, m.logged_in],
                || format!("{:?} is not a member of group {:?}", m.user_id, m.group_id),
            )
        })
    }

    fn remove_group_member(&mut self, group_id: &str, user_id: &str) -> Result<()> {
        run("removing a group member", || {
            self.exec_found(
                "DELETE FROM group_members WHERE group_id = ?1 AND user_id = ?2",
                [group_id, user_id],
                || format!("{user_id:?} is not a member of group {group_id:?}"),
            )
        })
    }

    fn create_agent(&mut self, a: &AgentRecord) -> Result<()> {
        run("creating an agent", || {
            agent_params(a, |p| {
                self.exec(
                    concat!(
                        "INSERT INTO agents (",
                        agent_cols!(),
                        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                    ),
                    p,
                )
            })?;
            Ok(())
        })
    }

    fn update_agent(&mut self, a: &AgentRecord) -> Result<()> {
        run("updating an agent", || {
            agent_params(a, |p| {
                self.exec_found(
                    "UPDATE agents SET state = ?2, state_since_ms = ?3, pause_reason = ?4, \
                     campaign = ?5, platform = ?6, auto_assignment = ?7, aggregates = ?8 \
                     WHERE user_id = ?1",
                    p,
                    || format!("no agent {:?}", a.user_id),
                )
            })
        })
    }

    fn delete_agent(&mut self, user_id: &str) -> Result<()> {
        run("deleting an agent", || {
            self.exec_found("DELETE FROM agents WHERE user_id = ?1", [user_id], || {
                format!("no agent {user_id:?}")
            })
        })
    }

    fn create_grant(&mut self, g: &NewGrant) -> Result<GrantId> {
        run("creating a grant", || {
            self.insert_returning_id(
                "INSERT INTO grants (supervisor_id, agent_id, granted_by, created_at_ms) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![g.supervisor_id, g.agent_id, g.granted_by, g.created_at.0],
            )
            .map(GrantId)
        })
    }

    fn revoke_grant(&mut self, id: GrantId, at: UnixMs) -> Result<()> {
        run("revoking a grant", || {
            self.exec_found(
                "UPDATE grants SET revoked_at_ms = COALESCE(revoked_at_ms, ?2) WHERE id = ?1",
                [id.0, at.0],
                || format!("no grant {}", id.0),
            )
        })
    }

    fn subscribe(&mut self, s: &Subscription) -> Result<()> {
        run("subscribing", || {
            self.exec(
                "INSERT INTO subscriptions (supervisor_id, agent_id, created_at_ms) \
                 VALUES (?1, ?2, ?3)",
                params![s.supervisor_id, s.agent_id, s.created_at.0],
            )?;
            Ok(())
        })
    }

    fn unsubscribe(&mut self, supervisor_id: &str, agent_id: &str) -> Result<()> {
        run("unsubscribing", || {
            self.exec_found(
                "DELETE FROM subscriptions WHERE supervisor_id = ?1 AND agent_id = ?2",
                [supervisor_id, agent_id],
                || format!("{supervisor_id:?} is not subscribed to {agent_id:?}"),
            )
        })
    }

    fn create_call(&mut self, c: &CallRecord) -> Result<()> {
        run("creating a call", || {
            call_params(c, |p| {
                self.exec(
                    concat!(
                        "INSERT INTO calls (",
                        call_cols!(),
                        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, \
                         ?15, ?16, ?17)"
                    ),
                    p,
                )
            })?;
            Ok(())
        })
    }

    fn update_call(&mut self, c: &CallRecord) -> Result<()> {
        run("updating a call", || {
            // The indexed columns (`external_id`, `state`) apart, each set by a statement that
            // matches no row when they are unchanged: an UPDATE that assigns an indexed column
            // rewrites its index entry, one more page in the WAL, even to the same value. The
            // state goes with `ended_at_ms`, which its CHECK ties to it.
            let media = to_json(&c.media, "calls.media")?;
            self.exec_found(
                "UPDATE calls SET agent_id = ?2, on_hold = ?3, consult = ?4, secure_payment = ?5, \
                 conference = ?6, web = ?7, direction = ?8, agent_answered = ?9, \
                 customer_hung_up = ?10, agent_hung_up = ?11, deleted_at_ms = ?12, media = ?13 \
                 WHERE id = ?1",
                params![
                    c.id,
                    c.agent_id,
                    c.flags.on_hold,
                    c.flags.consult,
                    c.flags.secure_payment,
                    c.flags.conference,
                    c.web,
                    c.direction.as_str(),
                    c.agent_answered,
                    c.customer_hung_up,
                    c.agent_hung_up,
                    c.deleted_at.map(|at| at.0),
                    media
                ],
                || format!("no call {:?}", c.id),
            )?;
            self.exec(
                "UPDATE calls SET external_id = ?2 WHERE id = ?1 AND external_id IS NOT ?2",
                params![c.id, c.external_id],
            )?;
            self.exec(
                "UPDATE calls SET state = ?2, ended_at_ms = ?3 \
                 WHERE id = ?1 AND (state IS NOT ?2 OR ended_at_ms IS NOT ?3)",
                params![c.id, c.state.as_str(), c.ended_at.map(|at| at.0)],
            )?;
            Ok(())
        })
    }

    fn create_supervision(&mut self, s: &SupervisionRecord) -> Result<()> {
        run("creating a supervision", || {
            supervision_params(s, |p| {
                self.exec(
                    concat!(
                        "INSERT INTO supervisions (",
                        supervision_cols!(),
                        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                    ),
                    p,
                )
            })?;
            Ok(())
        })
    }

    fn update_supervision(&mut self, s: &SupervisionRecord) -> Result<()> {
        run("updating a supervision", || {
            // As `update_call`: the indexed columns (`call_id`, `state`) apart, unwritten when
            // unchanged; each with the column its CHECK ties it to (`scope`, `ended_at_ms`).
            let media = to_json(&s.media, "supervisions.media")?;
            self.exec_found(
                "UPDATE supervisions SET supervisor_id = ?2, agent_id = ?3, mode = ?4, \
                 end_reason = ?5, started_at_ms = ?6, media = ?7 WHERE id = ?1",
                params![
                    s.id,
                    s.supervisor_id,
                    s.agent_id,
                    s.mode.as_str(),
                    s.end_reason,
                    s.started_at.map(|at| at.0),
                    media
                ],
                || format!("no supervision {:?}", s.id),
            )?;
            self.exec(
                "UPDATE supervisions SET call_id = ?2, scope = ?3 \
                 WHERE id = ?1 AND (call_id IS NOT ?2 OR scope IS NOT ?3)",
                params![s.id, s.call_id, s.scope.as_str()],
            )?;
            self.exec(
                "UPDATE supervisions SET state = ?2, ended_at_ms = ?3 \
                 WHERE id = ?1 AND (state IS NOT ?2 OR ended_at_ms IS NOT ?3)",
                params![s.id, s.state.as_str(), s.ended_at.map(|at| at.0)],
            )?;
            Ok(())
        })
    }

    fn append_alert(&mut self, a: &NewAlert) -> Result<AlertId> {
        run("appending an alert", || {
            self.insert_returning_id(
                "INSERT INTO alerts (supervision_id, kind, text, at_ms, call_id, reason) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    a.supervision_id,
                    a.kind,
                    a.text,
                    a.at.0,
                    a.call_id,
                    a.reason
                ],
            )
            .map(AlertId)
        })
    }

    fn append_audit(&mut self, a: &NewAudit) -> Result<AuditId> {
        run("appending an audit record", || {
            self.insert_returning_id(
                "INSERT INTO audit (at_ms, actor, action, supervision_id, call_id, mode, \
                 outcome, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    a.at.0,
                    a.actor,
                    a.action,
                    a.supervision_id,
                    a.call_id,
                    a.mode.map(|m| m.as_str()),
                    a.outcome,
                    a.detail
                ],
            )
            .map(AuditId)
        })
    }

    fn append_event(&mut self, e: &NewEvent) -> Result<EventId> {
        // AUTOINCREMENT: ids never reused; and writers are serialised (one connection, IMMEDIATE
        // transactions), so ids also become visible in increasing order — an SSE reader never
        // skips an id that commits later. (PostgreSQL sequences do not give the second property;
        // that backend must serialise event appends.)
        run("appending an event", || {
            let payload = to_json(&e.payload, "events.payload")?;
            let scope = to_json(&e.scope, "events.scope")?;
            self.insert_returning_id(
                "INSERT INTO events (at_ms, event_type, payload, scope) VALUES (?1, ?2, ?3, ?4)",
                params![e.at.0, e.event_type, payload, scope],
            )
            .map(EventId)
        })
    }

    fn create_webhook(&mut self, w: &WebhookRecord) -> Result<()> {
        run("creating a webhook", || {
            let event_types = to_json(&w.event_types, "webhooks.event_types")?;
            self.exec(
                concat!(
                    "INSERT INTO webhooks (",
                    webhook_cols!(),
                    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ),
                params![
                    w.id,
                    w.url,
                    w.secret,
                    event_types,
                    w.enabled,
                    w.consecutive_failures,
                    w.disabled_at.map(|at| at.0),
                    w.created_at.0
                ],
            )?;
            Ok(())
        })
    }

    fn update_webhook(&mut self, w: &WebhookRecord) -> Result<()> {
        run("updating a webhook", || {
            let event_types = to_json(&w.event_types, "webhooks.event_types")?;
            self.exec_found(
                "UPDATE webhooks SET url = ?2, secret = ?3, event_types = ?4, enabled = ?5, \
                 consecutive_failures = ?6, disabled_at_ms = ?7 WHERE id = ?1",
                params![
                    w.id,
                    w.url,
                    w.secret,
                    event_types,
                    w.enabled,
                    w.consecutive_failures,
                    w.disabled_at.map(|at| at.0)
                ],
                || format!("no webhook {:?}", w.id),
            )
        })
    }

    fn delete_webhook(&mut self, id: &str) -> Result<()> {
        run("deleting a webhook", || {
            self.exec_found("DELETE FROM webhooks WHERE id = ?1", [id], || {
                format!("no webhook {id:?}")
            })
        })
    }

    fn enqueue_delivery(&mut self, d: &DeliveryRecord) -> Result<()> {
        run("enqueueing a webhook delivery", || {
            delivery_params(d, |p| {
                self.exec(
                    concat!(
                        "INSERT INTO webhook_deliveries (",
                        delivery_cols!(),
                        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                    ),
                    p,
                )
            })?;
            Ok(())
        })
    }

    fn update_delivery(&mut self, d: &DeliveryRecord) -> Result<()> {
        run("updating a webhook delivery", || {
            delivery_params(d, |p| {
                self.exec_found(
                    "UPDATE webhook_deliveries SET attempts = ?3, next_attempt_at_ms = ?4, \
                     last_status = ?5, last_error = ?6 WHERE event_id = ?1 AND webhook_id = ?2",
                    p,
                    || {
                        format!(
                            "no delivery of event {} to webhook {:?}",
                            d.event_id.0, d.webhook_id
                        )
                    },
                )
            })
        })
    }

    fn cancel_deliveries(&mut self, webhook_id: &str, reason: &str) -> Result<u64> {
        run("cancelling a webhook's deliveries", || {
            let n = self.exec(
                "UPDATE webhook_deliveries SET next_attempt_at_ms = NULL, last_error = ?2 \
                 WHERE webhook_id = ?1 AND next_attempt_at_ms IS NOT NULL",
                params![webhook_id, reason],
            )?;
            Ok(u64::try_from(n).unwrap_or(u64::MAX))
        })
    }

    fn set_webhook_cursor(&mut self, after: EventId) -> Result<()> {
        run("moving the webhook cursor", || {
            self.exec(
                "INSERT INTO webhook_cursor (id, after_event_id) VALUES (1, ?1) \
                 ON CONFLICT (id) DO UPDATE SET \
                 after_event_id = MAX(after_event_id, excluded.after_event_id)",
                [after.0],
            )?;
            Ok(())
        })
    }
}

// Used only by the tests, to corrupt a column on purpose.
#[cfg(test)]
impl SqliteStore {
    fn raw_execute(&self, sql: &str) -> Result<usize> {
        let guard = self.lock()?;
        guard
            .conn
            .execute(sql, [])
            .map_err(|e| classify("raw statement", e))
    }
}

#[cfg(test)]
#[path = "sqlite_tests.rs"]
mod tests;

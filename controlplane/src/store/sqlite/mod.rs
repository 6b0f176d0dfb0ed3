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

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::{self, ThreadId};
use std::time::Duration;

use rusqlite::{Connection, Params, Row, TransactionBehavior, ffi, params};
use serde::de::DeserializeOwned;

use super::{ColumnEnum, PAGE_LIMIT_MAX, Reads, Result, Store, StoreError, UnixMs, Writes};

mod access;
mod calls;
mod center;
mod events;
mod wal;

use wal::WalSync;

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
        sql: include_str!("../migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "lifecycle",
        sql: include_str!("../migrations/0002_lifecycle.sql"),
    },
    Migration {
        version: 3,
        name: "webhooks",
        sql: include_str!("../migrations/0003_webhooks.sql"),
    },
    Migration {
        version: 4,
        name: "open_indexes",
        sql: include_str!("../migrations/0004_open_indexes.sql"),
    },
    Migration {
        version: 5,
        name: "no_call",
        sql: include_str!("../migrations/0005_no_call.sql"),
    },
    Migration {
        version: 6,
        name: "ng",
        sql: include_str!("../migrations/0006_ng.sql"),
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
    /// docs/design.md §5.5: the database file in the working directory.
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
    // supervisor media, docs/design.md §4), so nothing is acknowledged before [`WalSync`] has
    // synced the WAL past its commit (see "Group commit" above): as durable as FULL, which fsyncs
    // the WAL in every commit, but one sync serves every commit made while the previous one ran.
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
mod tests;

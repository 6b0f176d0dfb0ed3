//! Group commit (the backend's "Group commit"): the commits' sequence numbers and the
//! `fdatasync`s of the `-wal` file that make them durable.

use std::fs::File;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, PoisonError};

use super::relock;
use crate::store::{Result, StoreError};

/// The commits' sequence numbers and the `fdatasync`s of the WAL that make them durable, one
/// at a time, each covering every commit before it started (see "Group commit" above).
#[derive(Debug)]
pub(super) struct WalSync {
    /// The `-wal` file; `None` for an in-memory database (nothing to sync).
    pub(super) path: Option<PathBuf>,
    pub(super) state: Mutex<SyncState>,
    /// Signalled when a sync ends.
    ended: Condvar,
}

#[derive(Debug, Default)]
pub(super) struct SyncState {
    /// The last commit's sequence number.
    pub(super) committed: u64,
    /// Every commit up to this sequence number is durable.
    pub(super) synced: u64,
    /// A thread is syncing; the others wait for it, then check whether it covered them.
    syncing: bool,
    /// Why a sync failed. Sticky: after a failed `fsync` what reached the disk is unknown (and
    /// a later `fsync` may succeed without having written it), so nothing more is acknowledged.
    failed: Option<String>,
    /// The WAL, opened by the first sync and kept.
    file: Option<File>,
}

impl WalSync {
    pub(super) fn new(path: Option<PathBuf>) -> WalSync {
        WalSync {
            path,
            state: Mutex::new(SyncState::default()),
            ended: Condvar::new(),
        }
    }

    /// Takes the next sequence number for a commit that has just returned (the caller holds
    /// the connection's lock, so numbers follow the commit order).
    pub(super) fn committed(&self) -> u64 {
        let mut s = relock(&self.state);
        s.committed += 1;
        s.committed
    }

    pub(super) fn last_committed(&self) -> u64 {
        relock(&self.state).committed
    }

    /// Refuses once a sync has failed.
    pub(super) fn check(&self) -> Result<()> {
        match &relock(&self.state).failed {
            Some(why) => Err(sync_failed(why)),
            None => Ok(()),
        }
    }

    /// Returns once commit `seq` (and every one before it) is durable: at once if a sync has
    /// covered it; else after the sync in progress, if that one covered it; else after a sync
    /// of its own, which covers every commit made so far (leader and followers).
    pub(super) fn sync_to(&self, seq: u64) -> Result<()> {
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

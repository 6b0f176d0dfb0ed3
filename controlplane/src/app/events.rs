//! The event streams of `GET /v1/events` (docs/api.md, Events): what each stream reads of the
//! event log, and who may see what. The HTTP adapter parses where a stream starts and ends it
//! when the caller's authority is withdrawn (docs/design.md §9).
//!
//! The store's `events` table is the only source. After every committed write, [`Notifying`]
//! bumps a `watch` counter; one task, the [`crate::app::feed`], then reads what the log gained
//! once for every stream, syncs (only durable events are sent), renders each event's SSE frame
//! once, and hands each stream, in a mailbox of its own, the events its viewer may see (waking
//! only those streams). Each stream keeps a cursor (the last event id it has passed): it takes
//! from its mailbox the events after its cursor, and whenever it is behind the feed (resumed
//! with `Last-Event-ID`, its mailbox overflowed, or the feed restarted past it) it reads
//! [`crate::store::EventReads::events_after`] from its cursor itself, one bounded page at a
//! time, until it has caught up. So events arrive in id order with no gaps or duplicates by
//! construction, and a slow client costs bounded memory: it simply reads further behind.
//!
//! Visibility ([`Viewer`]): admins and softswitches see every event; a supervisor sees the
//! events whose scope names them or a group they supervise or belong to; an agent sees the
//! events whose scope names them. Any other caller sees nothing.
//!
//! A stream lasts as long as its token's authority: revoking the token ends it (the adapter
//! watches it).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use tokio::sync::{Semaphore, watch};

use crate::app::feed::{Member, Shared};
use crate::app::state::AppState;
use crate::domain::auth::Role;
use crate::store::{self, EventScope, Reads, Store, StoreError, StoreExt as _, Writes};

/// An event's id: where a stream resumes.
pub use crate::store::EventId;

/// The keep-alive comment's period.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Events a stream catching up reads from the store per page (the most it holds at once).
pub const PAGE: u32 = 100;

/// Streams reading the store at once (catching up, or finding the log's end as they open):
/// each read takes a thread of the blocking pool, and however many streams are open, the
/// thread count stays bounded (the others wait their turn).
pub const STORE_READERS: usize = 4;

/// Why a stream could not open.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// The log's end could not be read.
    #[error("cannot read the event log: {0}")]
    Read(StoreError),
    /// What was read could not be made durable.
    #[error(transparent)]
    Sync(StoreError),
    /// The blocking pool's task failed.
    #[error("the request's task failed: {0}")]
    Task(tokio::task::JoinError),
}

/// A [`Store`] that bumps `commits` after every committed write, so the SSE streams know the
/// log may have grown. Every write of the daemon goes through it (reads and syncs pass straight
/// on). A write inside [`store::deferring`] is committed but maybe not yet durable when the
/// counter moves: a reader syncs before it publishes what it read (`Cursor::page`).
pub struct Notifying {
    inner: Arc<dyn Store>,
    commits: watch::Sender<u64>,
}

impl Notifying {
    pub fn new(inner: Arc<dyn Store>, commits: watch::Sender<u64>) -> Notifying {
        Notifying { inner, commits }
    }
}

impl Store for Notifying {
    fn write_dyn(
        &self,
        f: &mut dyn FnMut(&mut dyn Writes) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let result = self.inner.write_dyn(f);
        if result.is_ok() {
            // `send_modify` updates the value even when no stream listens.
            self.commits.send_modify(|n| *n = n.wrapping_add(1));
        }
        result
    }

    fn read_dyn(
        &self,
        f: &mut dyn FnMut(&dyn Reads) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.inner.read_dyn(f)
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.inner.sync()
    }
}

/// Who reads the stream, for the visibility rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    /// Admins and softswitches: every event.
    All,
    /// A supervisor: events scoped to the user or to one of the groups they supervise or are a
    /// member of (as the directory is when the feed hands out a page, so a change of groups
    /// takes effect with the next page).
    Supervisor(String),
    /// An agent: events scoped to the user.
    Agent(String),
    /// A token with no user and no all-seeing role: nothing.
    Nobody,
}

impl Viewer {
    /// The viewer a caller with `roles`, acting for `user` (if any), is.
    pub fn of(roles: &[Role], user: Option<&str>) -> Viewer {
        let has = |role| roles.contains(&role);
        if has(Role::Admin) || has(Role::Softswitch) {
            return Viewer::All;
        }
        match user {
            Some(user) if has(Role::Supervisor) => Viewer::Supervisor(user.to_owned()),
            Some(user) if has(Role::Agent) => Viewer::Agent(user.to_owned()),
            _ => Viewer::Nobody,
        }
    }

    /// The groups whose events the viewer sees (supervisors only): the directory's, as of
    /// its last change (so a change of groups takes effect with the next page).
    fn groups(&self, state: &AppState) -> Arc<HashSet<String>> {
        match self {
            Viewer::Supervisor(user) => state.center().groups_seen_by(user),
            _ => Arc::default(),
        }
    }
}

/// Whether `viewer` (with `groups`, from [`Viewer::groups`]) may see an event of `scope`.
pub fn visible(viewer: &Viewer, groups: &HashSet<String>, scope: &EventScope) -> bool {
    match viewer {
        Viewer::All => true,
        Viewer::Supervisor(user) => {
            scope.users.iter().any(|u| u == user) || scope.groups.iter().any(|g| groups.contains(g))
        }
        Viewer::Agent(user) => scope.users.iter().any(|u| u == user),
        Viewer::Nobody => false,
    }
}

/// The log's end, read in turn ([`readers`]) on the blocking pool, and synced: a stream starting
/// there never sends an event before it is durable.
async fn tail(state: &AppState) -> Result<EventId, EventsError> {
    let _turn = readers().acquire().await;
    let state = state.clone();
    let last = tokio::task::spawn_blocking(move || {
        let last = state
            .store()
            .read(|r| r.last_event_id())
            .map_err(EventsError::Read);
        state.store().sync().map_err(EventsError::Sync)?;
        last
    })
    .await
    .map_err(EventsError::Task)??;
    Ok(last.unwrap_or(EventId::ZERO))
}

/// The turns to read the store ([`STORE_READERS`]); one set for the process, as the blocking
/// pool is.
fn readers() -> &'static Semaphore {
    static READERS: Semaphore = Semaphore::const_new(STORE_READERS);
    &READERS
}

/// The keep-alive frame: an SSE comment.
const KEEP_ALIVE_FRAME: &[u8] = b":\n\n";

/// One stream's position in the log. The caller's authority is the adapter's to watch: it stops
/// asking for frames once it is withdrawn.
pub struct Cursor {
    state: AppState,
    viewer: Viewer,
    /// The stream's mailbox in the feed.
    member: Member,
    /// The last event id passed.
    after: EventId,
    /// Whether events after `after` may be missing from the mailbox (a resume point, an
    /// overflow, a feed restarted past it): they are read from the store until it has no more.
    behind: bool,
    /// Visible events taken but not yet sent (at most a few pages).
    pending: VecDeque<Arc<Shared>>,
}

impl Cursor {
    /// Opens `viewer`'s stream after `after` (`None`: at the live tail).
    pub async fn open(
        state: AppState,
        viewer: Viewer,
        after: Option<EventId>,
    ) -> Result<Cursor, EventsError> {
        // Joined before the first read: a page published after that read is never missed.
        let member = state.feed().join(&state, viewer.clone());
        // At the log's end (read after joining), the feed has every later event; after a
        // resume point, what follows it is read from the store first.
        let behind = after.is_some();
        let after = match after {
            Some(id) => id,
            None => tail(&state).await?,
        };
        Ok(Cursor {
            viewer,
            state,
            member,
            after,
            behind,
            pending: VecDeque::new(),
        })
    }

    /// The next frame (an event, or a keep-alive after [`KEEP_ALIVE`] without one), waiting
    /// for the feed as needed; `None` ends the stream (the store failed: the client resumes
    /// with `Last-Event-ID`). The adapter drops a pending call when the caller's authority is
    /// withdrawn, and the stream with it.
    pub async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event.frame.clone());
            }
            if self.state.feed().origin() > self.after {
                self.behind = true;
            }
            if self.behind {
                match self.catch_up().await {
                    Ok(()) => continue,
                    Err(err) => {
                        tracing::warn!(%err, "event stream ended: cannot read the event log");
                        return None;
                    }
                }
            }
            if self.take() {
                continue;
            }
            tokio::select! {
                biased;
                () = self.member.slot.wake.notified() => {}
                () = tokio::time::sleep(KEEP_ALIVE) => {
                    return Some(Bytes::from_static(KEEP_ALIVE_FRAME));
                }
            }
        }
    }

    /// Takes what the mailbox holds after the cursor; whether there was anything (events, or
    /// an overflow: then the stream is behind).
    fn take(&mut self) -> bool {
        let mut mailbox = self.member.slot.mailbox();
        if mailbox.lagged {
            tracing::debug!("event stream behind the feed: reading the store");
            self.behind = true;
            return true;
        }
        if mailbox.batches.is_empty() {
            return false;
        }
        for batch in mailbox.batches.drain(..) {
            for event in batch.iter() {
                if event.id > self.after {
                    self.after = event.id;
                    self.pending.push_back(event.clone());
                }
            }
        }
        true
    }

    /// Reads the next page after the cursor from the store, filtered; done catching up when it
    /// was not full (from then on the mailbox has every later event: the stream joined the
    /// feed, and reopened an overflowed mailbox, before this read). Only durable events are
    /// sent: the page may hold commits of requests still waiting for their sync
    /// (`store::deferring`), so it is synced before it is used.
    async fn catch_up(&mut self) -> Result<(), String> {
        {
            let mut mailbox = self.member.slot.mailbox();
            mailbox.lagged = false;
        }
        let state = self.state.clone();
        let after = self.after;
        let (events, full) = {
            let _turn = readers().acquire().await.map_err(|e| e.to_string())?;
            tokio::task::spawn_blocking(move || {
                let page = state.store().read(|r| r.events_after(after, PAGE))?;
                state.store().sync()?;
                Ok::<_, store::StoreError>(page)
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
            .map(|page| {
                let full = page.len() >= PAGE as usize;
                (page, full)
            })?
        };
        let Some(last) = events.last().map(|e| e.id) else {
            self.behind = false;
            return Ok(());
        };
        let groups = self.viewer.groups(&self.state);
        self.pending.extend(
            events
                .into_iter()
                .filter(|e| visible(&self.viewer, &groups, &e.scope))
                .map(|e| Arc::new(Shared::from(e))),
        );
        self.after = last;
        self.behind = full;
        Ok(())
    }
}

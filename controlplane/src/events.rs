//! `GET /v1/events`: the event log as Server-Sent Events (docs/api.md, Events).
//!
//! The store's `events` table is the only source. After every committed write, [`Notifying`]
//! bumps a `watch` counter; one task, the [`feed`], then reads what the log gained once for
//! every stream, syncs (only durable events are sent), and broadcasts it as contiguous pages.
//! Each stream keeps a cursor (the last event id it has passed): it takes from the feed the
//! events after its cursor, and whenever it is behind the feed (resumed with `Last-Event-ID`,
//! or too slow for the feed's bounded ring) it reads [`Reads::events_after`] from its cursor
//! itself, one bounded page at a time, until it has caught up. So events arrive in id order
//! with no gaps or duplicates by construction, and a slow client costs no memory: it simply
//! reads further behind.
//!
//! Visibility ([`Viewer`]): admins and softswitches see every event; a supervisor sees the
//! events whose scope names them or a group they supervise or belong to; an agent sees the
//! events whose scope names them. Any other caller sees nothing.
//!
//! A stream lasts as long as its token's authority ([`Standing`]): revoking the token ends it.

pub mod feed;

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::{Semaphore, broadcast, watch};

use crate::access::{Authorized, Principal, Read, Standing};
use crate::auth::Role;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{self, EventId, EventScope, Reads, Store, StoreError, StoreExt as _, Writes};

pub use feed::Feed;
use feed::{Page, Shared};

/// The keep-alive comment's period.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Events a stream catching up reads from the store per page (the most it holds at once).
pub const PAGE: u32 = 100;

/// Streams reading the store at once (catching up, or finding the log's end as they open):
/// each read takes a thread of the blocking pool, and however many streams are open, the
/// thread count stays bounded (the others wait their turn).
pub const STORE_READERS: usize = 4;

/// The `Last-Event-ID` request header.
const LAST_EVENT_ID: &str = "last-event-id";

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
    /// member of (looked up again for every page, so a change of groups takes effect at once).
    Supervisor(String),
    /// An agent: events scoped to the user.
    Agent(String),
    /// A token with no user and no all-seeing role: nothing.
    Nobody,
}

impl Viewer {
    pub fn of(principal: &Principal) -> Viewer {
        if principal.has(Role::Admin) || principal.has(Role::Softswitch) {
            return Viewer::All;
        }
        match &principal.user_id {
            Some(user) if principal.has(Role::Supervisor) => Viewer::Supervisor(user.clone()),
            Some(user) if principal.has(Role::Agent) => Viewer::Agent(user.clone()),
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

/// Where a stream starts: after `Last-Event-ID` (the header wins, as a reconnecting
/// `EventSource` sends it), else after `?after=`, else at the live tail.
pub struct Resume(pub Option<EventId>);

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResume {
    after: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Resume {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(raw) = Query::<RawResume>::from_request_parts(parts, state).await?;
        if let Some(value) = parts.headers.get(LAST_EVENT_ID) {
            let text = value
                .to_str()
                .map_err(|_| ApiError::invalid_query("Last-Event-ID: not visible ASCII"))?;
            return Ok(Resume(Some(event_id("Last-Event-ID", text)?)));
        }
        match raw.after.as_deref() {
            Some(s) => Ok(Resume(Some(event_id("after", s)?))),
            None => Ok(Resume(None)),
        }
    }
}

fn event_id(what: &str, s: &str) -> Result<EventId, ApiError> {
    crate::api::log_id(what, s.trim()).map(EventId)
}

/// `GET /v1/events`.
pub async fn stream(
    Authorized(principal, _): Authorized<Read>,
    State(state): State<AppState>,
    Resume(after): Resume,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    // Subscribed before the first read: a page published after that read is never missed.
    let pages = state.feed().subscribe(&state);
    // At the log's end (read after subscribing), the feed has every later event; after a
    // resume point, what follows it is read from the store first.
    let behind = after.is_some();
    let after = match after {
        Some(id) => id,
        None => {
            let _turn = readers().acquire().await;
            crate::api::blocking_api(state.clone(), |s| {
                s.store()
                    .read(|r| r.last_event_id())
                    .map_err(|e| ApiError::internal(format!("cannot read the event log: {e}")))
            })
            .await?
            .unwrap_or(EventId::ZERO)
        }
    };
    let cursor = Cursor {
        viewer: Viewer::of(&principal),
        standing: Standing::new(state.clone(), principal),
        state,
        pages,
        after,
        behind,
        pending: VecDeque::new(),
    };
    let events = futures_util::stream::unfold(cursor, |mut c| async move {
        let event = c.next().await?;
        Some((Ok(event), c))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// The turns to read the store ([`STORE_READERS`]); one set for the process, as the blocking
/// pool is.
fn readers() -> &'static Semaphore {
    static READERS: Semaphore = Semaphore::const_new(STORE_READERS);
    &READERS
}

/// One stream's position in the log.
struct Cursor {
    state: AppState,
    viewer: Viewer,
    /// The caller's authority: the stream ends when it is withdrawn.
    standing: Standing,
    pages: broadcast::Receiver<Arc<Page>>,
    /// The last event id passed (visible or not).
    after: EventId,
    /// Whether events after `after` may be missing from the feed (a resume point, a lag, a
    /// page that follows a later id): they are read from the store until it has no more.
    behind: bool,
    /// Visible events taken but not yet sent (at most one page).
    pending: VecDeque<Arc<Shared>>,
}

impl Cursor {
    /// The next visible event, waiting for the feed as needed; `None` ends the stream (the
    /// caller's authority was withdrawn, the daemon is going away, or the store failed: the
    /// client resumes with `Last-Event-ID`).
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if !self.standing.holds() {
                return None;
            }
            if let Some(event) = self.pending.pop_front() {
                return Some(sse(&event));
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
            let Cursor {
                standing, pages, ..
            } = self;
            let page = tokio::select! {
                biased;
                () = standing.withdrawn() => return None,
                page = pages.recv() => page,
            };
            match page {
                Ok(page) => self.take(page),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "event stream behind the feed: reading the store");
                    self.behind = true;
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Takes a page of the feed: the visible events after the cursor, or, if the page follows
    /// an id past the cursor (events in between were never handed to this stream), a turn to
    /// read the store.
    fn take(&mut self, page: Arc<Page>) {
        if page.after > self.after {
            self.behind = true;
            return;
        }
        let last = page.last();
        if last <= self.after {
            return;
        }
        let groups = self.viewer.groups(&self.state);
        let after = self.after;
        self.pending.extend(
            page.events
                .iter()
                .filter(|e| e.id > after && visible(&self.viewer, &groups, &e.scope))
                .cloned(),
        );
        self.after = last;
    }

    /// Reads the next page after the cursor from the store, filtered; done catching up when it
    /// was not full (from then on the feed has every later event: the stream subscribed to it
    /// before this read). Only durable events are sent: the page may hold commits of requests
    /// still waiting for their sync (`store::deferring`), so it is synced before it is used.
    async fn catch_up(&mut self) -> Result<(), String> {
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

fn sse(event: &Shared) -> SseEvent {
    SseEvent::default()
        .id(event.id.0.to_string())
        .event(&event.event_type)
        .data(&event.data)
}

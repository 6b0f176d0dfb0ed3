//! `GET /v1/events`: the event log as Server-Sent Events (docs/api.md, Events).
//!
//! The store's `events` table is the only source: a stream keeps a cursor (the last event id
//! it has passed) and reads [`Reads::events_after`] from it, one bounded page at a time. After
//! every committed write, [`Notifying`] bumps a `watch` counter; a stream that has caught up
//! waits on it and reads again. So events arrive in id order with no gaps or duplicates by
//! construction, and a slow client costs no memory: it simply reads further behind.
//!
//! Visibility ([`Viewer`]): admins and softswitches see every event; a supervisor sees the
//! events whose scope names them or a group they supervise or belong to; an agent sees the
//! events whose scope names them. Any other caller sees nothing.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::watch;

use crate::access::{Authorized, Principal, Read};
use crate::auth::Role;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{
    self, Event, EventId, EventScope, Reads, Store, StoreError, StoreExt as _, Writes,
};

/// The keep-alive comment's period.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Events read from the store per page (the most a stream holds at once).
pub const PAGE: u32 = 100;

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

    /// The groups whose events the viewer sees (supervisors only), read in the same snapshot
    /// as the page.
    fn groups(&self, r: &dyn Reads) -> Result<HashSet<String>, StoreError> {
        let mut groups = HashSet::new();
        if let Viewer::Supervisor(user) = self {
            groups.extend(r.supervised_groups(user)?.into_iter().map(|g| g.group_id));
            groups.extend(r.memberships(user)?.into_iter().map(|m| m.group_id));
        }
        Ok(groups)
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
    // Subscribed before the first read: a commit after that read is never missed.
    let commits = state.commits();
    let cursor = match after {
        Some(id) => id,
        None => crate::api::blocking_api(state.clone(), |s| {
            s.store()
                .read(|r| r.last_event_id())
                .map_err(|e| ApiError::internal(format!("cannot read the event log: {e}")))
        })
        .await?
        .unwrap_or(EventId::ZERO),
    };
    let cursor = Cursor {
        state,
        viewer: Viewer::of(&principal),
        commits,
        after: cursor,
        pending: VecDeque::new(),
    };
    let events = futures_util::stream::unfold(cursor, |mut c| async move {
        let event = c.next().await?;
        Some((Ok(event), c))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// One stream's position in the log.
struct Cursor {
    state: AppState,
    viewer: Viewer,
    commits: watch::Receiver<u64>,
    /// The last event id read (visible or not).
    after: EventId,
    /// Visible events read but not yet sent (at most one page).
    pending: VecDeque<Event>,
}

impl Cursor {
    /// The next visible event, waiting for commits as needed; `None` ends the stream (the
    /// daemon is going away, or the store failed: the client resumes with `Last-Event-ID`).
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(
                    SseEvent::default()
                        .id(event.id.0.to_string())
                        .event(&event.event_type)
                        .data(event.payload.to_string()),
                );
            }
            // Marked seen before reading, so a commit after the read wakes `changed`.
            self.commits.borrow_and_update();
            let (page, full) = match self.page().await {
                Ok(page) => page,
                Err(err) => {
                    tracing::warn!(%err, "event stream ended: cannot read the event log");
                    return None;
                }
            };
            self.pending.extend(page);
            if self.pending.is_empty() && !full && self.commits.changed().await.is_err() {
                return None;
            }
        }
    }

    /// The next page after the cursor, filtered; whether it was full (more may follow at once).
    /// Only durable events are sent: the page may hold commits of requests still waiting for
    /// their sync (`store::deferring`), so the page is synced before it is returned.
    async fn page(&mut self) -> Result<(Vec<Event>, bool), String> {
        let state = self.state.clone();
        let viewer = self.viewer.clone();
        let after = self.after;
        let (events, last, full) = tokio::task::spawn_blocking(move || {
            let page = state.store().read(|r| {
                let page = r.events_after(after, PAGE)?;
                let full = page.len() >= PAGE as usize;
                let last = page.last().map(|e| e.id);
                let groups = viewer.groups(r)?;
                let visible: Vec<Event> = page
                    .into_iter()
                    .filter(|e| visible(&viewer, &groups, &e.scope))
                    .collect();
                Ok::<_, store::StoreError>((visible, last, full))
            })?;
            state.store().sync()?;
            Ok::<_, store::StoreError>(page)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        if let Some(last) = last {
            self.after = last;
        }
        Ok((events, full))
    }
}

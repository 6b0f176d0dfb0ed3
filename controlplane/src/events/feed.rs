//! The live feed shared by every event stream (docs/api.md, Events): one task reads each new
//! page of the event log once, after the commits that wrote it are durable, and hands it to
//! every open stream through a bounded broadcast ring. A stream filters a page by its viewer
//! in memory; one that falls behind the ring, or starts behind the feed, reads the log itself
//! ([`super::Cursor`]) until it has caught up, then takes the feed again.
//!
//! Pages are contiguous: each names the id it follows ([`Page::after`]), so a stream that sees
//! a page following an id past its own knows it missed events and catches up from the store
//! instead of skipping them. That is what keeps the order-by-id, no-gaps guarantee.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::broadcast;

use crate::state::AppState;
use crate::store::{Event, EventId, EventScope, StoreError, StoreExt as _};

/// Pages the ring holds. A stream more than this many pages behind the feed is told it lagged
/// and catches up from the store. With [`FEED_PAGE`] events a page at most, this bounds the
/// feed's memory.
pub const RING_PAGES: usize = 256;

/// Events the feed reads from the store at a time (one page of the ring, at most).
pub const FEED_PAGE: u32 = 100;

/// The least time between two publications of the feed. Every page wakes every open stream,
/// so under a stream of commits the feed gathers what they wrote for this long into one page
/// rather than waking every stream per commit; an event after a quiet spell goes out at once.
/// Invisible to a person watching a panel; it bounds the streams' wake-ups to 50 a second.
pub const FEED_PERIOD: Duration = Duration::from_millis(20);

/// One event as every stream sends it: its data already rendered once for all of them.
#[derive(Debug)]
pub struct Shared {
    pub id: EventId,
    pub event_type: String,
    /// The payload as JSON text (the SSE `data` field).
    pub data: String,
    pub scope: EventScope,
}

impl From<Event> for Shared {
    fn from(e: Event) -> Shared {
        Shared {
            id: e.id,
            event_type: e.event_type,
            data: e.payload.to_string(),
            scope: e.scope,
        }
    }
}

/// A page of durable events, in id order: every event after [`Page::after`] up to the last
/// one's id.
#[derive(Debug)]
pub struct Page {
    pub after: EventId,
    pub events: Vec<Arc<Shared>>,
}

impl Page {
    /// The id the next page follows.
    pub fn last(&self) -> EventId {
        self.events.last().map_or(self.after, |e| e.id)
    }
}

/// The feed's ring and whether its reader task runs (it starts with the first stream, on
/// that stream's runtime, and ends with it).
pub struct Feed {
    pages: broadcast::Sender<Arc<Page>>,
    started: AtomicBool,
}

impl Default for Feed {
    fn default() -> Feed {
        Feed {
            pages: broadcast::Sender::new(RING_PAGES),
            started: AtomicBool::new(false),
        }
    }
}

impl Feed {
    /// A receiver of every page published from now on; starts the reader task if it is not
    /// running. Subscribe before reading where to start, so no page after that is missed.
    pub fn subscribe(&self, state: &AppState) -> broadcast::Receiver<Arc<Page>> {
        let pages = self.pages.subscribe();
        if !self.started.swap(true, Ordering::AcqRel) {
            tokio::spawn(run(state.clone()));
        }
        pages
    }
}

/// The reader task: after every commit, reads what the log gained, page by page, syncs, and
/// publishes. While no stream listens it reads nothing and forgets where it was: it starts
/// again at the log's end (a stream that started before that point sees the gap and catches
/// up from the store).
async fn run(state: AppState) {
    let mut commits = state.commits();
    let mut after: Option<EventId> = None;
    loop {
        // Marked seen before reading, so a commit after the read wakes `changed`.
        commits.borrow_and_update();
        let mut published = false;
        loop {
            if state.feed().pages.receiver_count() == 0 {
                after = None;
                break;
            }
            let from = after;
            let read = tokio::task::spawn_blocking({
                let state = state.clone();
                move || read_page(&state, from)
            })
            .await;
            let (page, full) = match read {
                Ok(Ok(read)) => read,
                Ok(Err(err)) => {
                    tracing::warn!(%err, "event feed: cannot read the event log");
                    after = None;
                    break;
                }
                Err(err) => {
                    tracing::warn!(%err, "event feed: the read failed");
                    after = None;
                    break;
                }
            };
            after = Some(page.last());
            // A restart's empty page tells the streams where the feed starts again, so one
            // that is behind catches up at once rather than at the next commit.
            if !page.events.is_empty() || from.is_none() {
                // An error: no stream listens any more.
                let _ = state.feed().pages.send(Arc::new(page));
                published = true;
            }
            if !full {
                break;
            }
        }
        if published {
            tokio::time::sleep(FEED_PERIOD).await;
        }
        if commits.changed().await.is_err() {
            return;
        }
    }
}

/// The page after `after` (`None`: the log's end, an empty page), synced before it is
/// returned: the page may hold commits of requests still waiting for their sync
/// (`store::deferring`), and only durable events are sent. Whether it was full (more may
/// follow at once).
fn read_page(state: &AppState, after: Option<EventId>) -> Result<(Page, bool), StoreError> {
    let store = state.store();
    let page = store.read(|r| {
        let Some(after) = after else {
            let end = r.last_event_id()?.unwrap_or(EventId::ZERO);
            return Ok((
                Page {
                    after: end,
                    events: Vec::new(),
                },
                false,
            ));
        };
        let events = r.events_after(after, FEED_PAGE)?;
        let full = events.len() >= FEED_PAGE as usize;
        let events = events
            .into_iter()
            .map(|e| Arc::new(Shared::from(e)))
            .collect();
        Ok((Page { after, events }, full))
    })?;
    store.sync()?;
    Ok(page)
}

//! The live feed shared by every event stream (docs/api.md, Events): one task reads each new
//! page of the event log once, after the commits that wrote it are durable, renders each
//! event's SSE frame once, and hands every open stream the events of the page its viewer may
//! see, in a bounded mailbox of its own. Only the streams a page concerns are woken: the feed
//! keeps an index of the open streams by viewer (all-seeing ones; by user; supervisors by the
//! groups they see, from the directory in memory, [`crate::app::center::Center::viewers`]), so a
//! page costs nothing to a stream that can see none of it. A stream whose mailbox overflows,
//! or that starts behind the feed, reads the log itself ([`crate::app::events::Cursor`]) until
//! it has caught up, then takes its mailbox again.
//!
//! A mailbox receives, in id order, every event of every page published since the stream
//! joined that its viewer may see: so events arrive in id order with no gaps or duplicates
//! (the stream drops what it already read from the store). A stream that joined before the
//! feed (re)started at the log's end learns where it started ([`Feed::origin`]) and catches up
//! from the store.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use tokio::sync::Notify;

use crate::app::center::Viewers;
use crate::app::events::Viewer;
use crate::app::state::AppState;
use crate::store::{Event, EventId, EventScope, StoreError, StoreExt as _};

/// Pages a stream's mailbox holds (each at most [`FEED_PAGE`] events, shared with the other
/// streams that see the whole page). A stream further behind than this drops its mailbox and
/// catches up from the store; this bounds the feed's memory per stream.
pub const RING_PAGES: usize = 256;

/// Events the feed reads from the store at a time (one page, at most).
pub const FEED_PAGE: u32 = 100;

/// The least time between two publications of the feed. Each publication wakes every stream
/// that sees some event of it, so under a stream of commits the feed gathers what they wrote
/// for this long into one page rather than waking the streams per commit; an event after a
/// quiet spell goes out at once. Invisible to a person watching a panel; it bounds a stream's
/// wake-ups to 50 a second.
pub const FEED_PERIOD: Duration = Duration::from_millis(20);

/// One event as every stream sends it: its SSE frame rendered once for all of them.
#[derive(Debug)]
pub struct Shared {
    pub id: EventId,
    pub scope: EventScope,
    /// `id:`, `event:` and `data:` (the payload as one line of JSON), then the blank line.
    pub frame: Bytes,
}

impl From<Event> for Shared {
    fn from(e: Event) -> Shared {
        // serde_json's compact form has no line break (they are escaped in strings), so the
        // payload is one `data:` line; an event type is a fixed name.
        let frame = format!(
            "id: {}\nevent: {}\ndata: {}\n\n",
            e.id.0, e.event_type, e.payload
        );
        Shared {
            id: e.id,
            scope: e.scope,
            frame: Bytes::from(frame),
        }
    }
}

/// Events in id order, shared: a whole page is handed as is to every all-seeing stream.
pub type Batch = Arc<[Arc<Shared>]>;

/// What the feed has handed a stream and it has not taken yet.
#[derive(Default)]
pub struct Mailbox {
    pub batches: VecDeque<Batch>,
    /// The mailbox overflowed: it was emptied and takes nothing until the stream has caught up
    /// from the store (it clears this before its last read of the store).
    pub lagged: bool,
}

/// One open stream as the feed sees it.
pub struct Slot {
    pub viewer: Viewer,
    pub mailbox: Mutex<Mailbox>,
    /// Woken when the mailbox got something, or when the feed restarted.
    pub wake: Notify,
}

impl Slot {
    pub fn mailbox(&self) -> std::sync::MutexGuard<'_, Mailbox> {
        self.mailbox.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn deliver(&self, batch: Batch) {
        {
            let mut mailbox = self.mailbox();
            if mailbox.lagged {
                return;
            }
            if mailbox.batches.len() >= RING_PAGES {
                mailbox.batches.clear();
                mailbox.lagged = true;
            } else {
                mailbox.batches.push_back(batch);
            }
        }
        self.wake.notify_one();
    }
}

/// The open streams, and their index by viewer (built again after a stream opens or closes,
/// or the directory's groups change).
#[derive(Default)]
struct Registry {
    next: u64,
    slots: HashMap<u64, Arc<Slot>>,
    index: Option<Arc<Index>>,
}

/// Which streams see an event: `all` every one; the others by a user or group of its scope.
struct Index {
    viewers: Arc<Viewers>,
    all: Vec<Arc<Slot>>,
    by_user: HashMap<String, Vec<Arc<Slot>>>,
    by_group: HashMap<String, Vec<Arc<Slot>>>,
}

impl Index {
    fn build(slots: &HashMap<u64, Arc<Slot>>, viewers: Arc<Viewers>) -> Index {
        let mut index = Index {
            viewers,
            all: Vec::new(),
            by_user: HashMap::new(),
            by_group: HashMap::new(),
        };
        for slot in slots.values() {
            match &slot.viewer {
                Viewer::All => index.all.push(slot.clone()),
                Viewer::Agent(user) => {
                    index
                        .by_user
                        .entry(user.clone())
                        .or_default()
                        .push(slot.clone());
                }
                Viewer::Supervisor(user) => {
                    index
                        .by_user
                        .entry(user.clone())
                        .or_default()
                        .push(slot.clone());
                    for group in index.viewers.get(user).into_iter().flat_map(|g| g.iter()) {
                        index
                            .by_group
                            .entry(group.clone())
                            .or_default()
                            .push(slot.clone());
                    }
                }
                Viewer::Nobody => {}
            }
        }
        index
    }
}

/// The feed: the open streams, where it started, and whether its reader task runs (it starts
/// with the first stream, on that stream's runtime, and ends with it).
pub struct Feed {
    streams: Mutex<Registry>,
    /// The id the feed last (re)started after: a stream behind it may have missed events.
    origin: AtomicI64,
    started: AtomicBool,
}

impl Default for Feed {
    fn default() -> Feed {
        Feed {
            streams: Mutex::default(),
            origin: AtomicI64::new(0),
            started: AtomicBool::new(false),
        }
    }
}

/// A stream's place in the feed; leaves it when dropped.
pub struct Member {
    state: AppState,
    key: u64,
    pub slot: Arc<Slot>,
}

impl Drop for Member {
    fn drop(&mut self) {
        let mut streams = self.state.feed().registry();
        streams.slots.remove(&self.key);
        streams.index = None;
    }
}

impl Feed {
    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins the feed: every page published from now on goes to the mailbox as `viewer` may
    /// see it. Starts the reader task if it is not running. Join before reading where to
    /// start, so no page after that is missed.
    pub fn join(&self, state: &AppState, viewer: Viewer) -> Member {
        let slot = Arc::new(Slot {
            viewer,
            mailbox: Mutex::default(),
            wake: Notify::new(),
        });
        let key = {
            let mut streams = self.registry();
            streams.next += 1;
            let key = streams.next;
            streams.slots.insert(key, slot.clone());
            streams.index = None;
            key
        };
        if !self.started.swap(true, Ordering::AcqRel) {
            tokio::spawn(run(state.clone()));
        }
        Member {
            state: state.clone(),
            key,
            slot,
        }
    }

    /// The id the feed last (re)started after: a stream whose cursor is behind it reads the
    /// store first (the events in between were never handed to it).
    pub fn origin(&self) -> EventId {
        EventId(self.origin.load(Ordering::Acquire))
    }

    fn is_empty(&self) -> bool {
        self.registry().slots.is_empty()
    }

    /// The index of the open streams, built again if they or the directory's groups changed.
    fn index(&self, viewers: Arc<Viewers>) -> Arc<Index> {
        let mut streams = self.registry();
        if let Some(index) = &streams.index
            && Arc::ptr_eq(&index.viewers, &viewers)
        {
            return index.clone();
        }
        let index = Arc::new(Index::build(&streams.slots, viewers));
        streams.index = Some(index.clone());
        index
    }

    /// Hands each stream the events of `page` it may see; wakes only those.
    fn publish(&self, state: &AppState, page: &Page) {
        let index = self.index(state.center().viewers());
        for slot in &index.all {
            slot.deliver(page.events.clone());
        }
        // Per stream (by address), what it sees of the page, in id order and once.
        let mut seen: HashMap<*const Slot, (&Arc<Slot>, Vec<Arc<Shared>>)> = HashMap::new();
        for event in page.events.iter() {
            let users = event
                .scope
                .users
                .iter()
                .filter_map(|u| index.by_user.get(u));
            let groups = event
                .scope
                .groups
                .iter()
                .filter_map(|g| index.by_group.get(g));
            for slot in users.chain(groups).flatten() {
                let (_, events) = seen
                    .entry(Arc::as_ptr(slot))
                    .or_insert_with(|| (slot, Vec::new()));
                if events.last().is_none_or(|e| e.id != event.id) {
                    events.push(event.clone());
                }
            }
        }
        for (slot, events) in seen.into_values() {
            slot.deliver(events.into());
        }
    }

    /// The feed (re)starts after `origin`: every stream is woken to compare its cursor.
    fn restart(&self, origin: EventId) {
        self.origin.fetch_max(origin.0, Ordering::AcqRel);
        let slots: Vec<Arc<Slot>> = self.registry().slots.values().cloned().collect();
        for slot in slots {
            slot.wake.notify_one();
        }
    }
}

/// A page of durable events, in id order: every event after [`Page::after`] up to the last
/// one's id.
#[derive(Debug)]
pub struct Page {
    pub after: EventId,
    pub events: Batch,
}

impl Page {
    /// The id the next page follows.
    pub fn last(&self) -> EventId {
        self.events.last().map_or(self.after, |e| e.id)
    }
}

/// The reader task: after every commit, reads what the log gained, page by page, syncs, and
/// publishes. While no stream listens it reads nothing and forgets where it was: it starts
/// again at the log's end (a stream that started before that point sees it is behind
/// [`Feed::origin`] and catches up from the store).
async fn run(state: AppState) {
    let mut commits = state.commits();
    let mut after: Option<EventId> = None;
    loop {
        // Marked seen before reading, so a commit after the read wakes `changed`.
        commits.borrow_and_update();
        let mut published = false;
        loop {
            if state.feed().is_empty() {
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
            if from.is_none() {
                state.feed().restart(page.after);
            }
            if !page.events.is_empty() {
                state.feed().publish(&state, &page);
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
                    events: Arc::new([]),
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

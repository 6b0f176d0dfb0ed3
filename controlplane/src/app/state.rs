//! Calls and supervisions: the control plane's state, the rules of docs/api.md, and the driver
//! of each supervision's [`Session`] (docs/design.md §2).
//!
//! # Files
//!
//! This file composes the state (store, media, groups and agents, clock, settings);
//! the use cases are `impl AppState` blocks by concern (docs/design.md §9): `records.rs` (the
//! records and their store mapping), `snapshots.rs` (what the use cases answer of them), `calls.rs`,
//! `supervisions.rs` (the session driver and the answer timeouts), `history.rs` (alerts and
//! audit read back) and `pump.rs` (the media's events). The media is reached only through
//! [`crate::app::engine::Media`].
//!
//! # Layers
//!
//! - The **records** (in memory, behind one `std::sync::Mutex`) are what the API shows and what
//!   the engine holds: calls, their legs, supervisions and their sessions.
//! - Each supervision is a sans-IO [`Session`]; this module feeds it the API's requests, the
//!   softswitch's reports and the data plane's events, and carries out its [`Output`]s **in
//!   order**: audit records are committed to the [`Store`] before the media command that
//!   follows them (docs/design.md §4.5: the audit precedes supervisor media), then the engine is
//!   told, then the new state, the alerts and the events are committed in one transaction.
//! - The **store** (SQLite by default) is the durable copy: every operation that changes
//!   something commits before it returns, and is durable before it is acknowledged (the HTTP
//!   API syncs after the operation has released the records lock, so concurrent requests share
//!   their syncs: group commit, see [`crate::store`]), so an acknowledged request survives
//!   `kill -9` and power loss. The one sync inside an operation is the audit record's, before
//!   the media command that starts media or changes its mode (docs/design.md §4). At start-up,
//!   [`AppState::new`] closes what a crashed run left open
//!   ([`crate::app::recovery`]: not resumed, docs/design.md §7) and loads the
//!   recent history.
//!
//! # Blocking
//!
//! Every method here may block (the records lock, the engine's command ring, an `fsync`): the
//! HTTP handlers and the daemon's tasks call them through `spawn_blocking`. The lock is held
//! for a whole operation, including its commits, which makes each operation atomic with respect
//! to the others (validate, then engine, then commit: a refused request changes nothing).
//! Outside [`crate::store::deferring`] (the daemon's pump and timer, tests) each commit is
//! durable when it returns; inside it (the HTTP API), the caller syncs after the operation.
//!
//! # Time
//!
//! Every `now` comes from the [`Clock`]; the answer timeouts are driven by
//! [`AppState::run_due_timeouts`] at [`AppState::next_deadline_ms`] (the daemon's timer task,
//! or a test after moving a [`crate::clock::ManualClock`]).
//!
//! # Media of a requested supervision
//!
//! The data plane has no supervisor leg that exists without hearing the call: its
//! `add_supervisor` attaches the leg in `listen` at once. So the leg is added only when the
//! session says [`Output::ConnectMedia`] (after its audit record is durable); until then the
//! supervision has no local media address (`leg.local` is `null`).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use anyhow::Context as _;
use dataplane::engine::{self, EngineError};
use dataplane::media::matrix::{LegId, Mode};
use tokio::sync::Notify;

use crate::app::engine::Media;
use crate::app::records::{Records, load};
use crate::app::snapshots::CallState;
use crate::app::tokens::TokenCache;
use crate::clock::{Clock, to_unix_ms};
use crate::config::{Config, DtmfKeys};
use crate::domain::call::{CallId, SupervisionId};
use crate::domain::lifecycle;
use crate::domain::lifecycle::{AnswerTimeout, Refused};
use crate::metrics::Metrics;
use crate::store::{ColumnEnum as _, Store, StoreError};

/// Rows a page of `GET /v1/alerts` or `GET /v1/audit` returns when the client does not say.
pub const PAGE_DEFAULT: u32 = 100;
/// Most rows a page returns, whatever the client asks.
pub const PAGE_LIMIT_MAX: u32 = crate::store::PAGE_LIMIT_MAX;

/// What the state needs from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Remote addresses must be of this address family (the legs' sockets are bound to it).
    pub media_ip: IpAddr,
    pub max_supervisors_per_call: usize,
    /// Whether a supervision beeps to the agent when the request does not say.
    pub agent_beep: bool,
    pub dtmf: DtmfKeys,
    /// How long the supervisor's phone may ring.
    pub answer_timeout: AnswerTimeout,
    /// Which party an NG offerer is when its label does not say (docs/ng.md, Parties).
    pub ng_parties: crate::domain::anchor::PartyRule,
}

impl Settings {
    /// The configuration should have been validated (an out-of-range answer timeout is taken
    /// as the default).
    pub fn from_config(config: &Config) -> Settings {
        Settings {
            media_ip: config.media.ip,
            max_supervisors_per_call: config.media.max_supervisors_per_call,
            agent_beep: config.media.agent_beep,
            dtmf: config.media.dtmf,
            answer_timeout: config.supervision.answer_timeout().unwrap_or_default(),
            // The `[ng]` section's offerer rule, once configured; until then the default.
            ng_parties: crate::domain::anchor::PartyRule::default(),
        }
    }
}

/// Why an operation was refused. Mapped to HTTP once, in `error.rs`.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("no call with id {0}")]
    CallNotFound(CallId),
    #[error("no supervision with id {0}")]
    SupervisionNotFound(SupervisionId),
    #[error("call {0} has ended")]
    CallEnded(CallId),
    #[error("call {call} already has {max} open supervisions, the most allowed per call")]
    TooManySupervisors { call: CallId, max: usize },
    #[error("{field}: {remote} is not of the media address's family ({media_ip})")]
    AddressFamily {
        field: &'static str,
        remote: SocketAddr,
        media_ip: IpAddr,
    },
    /// The supervision's session refused the input (docs/design.md §2.2 lifecycle); nothing
    /// changed.
    #[error("supervision {supervision}: {refused}")]
    Refused {
        supervision: SupervisionId,
        refused: Refused,
    },
    #[error(
        "agent {agent} is already monitored by {max} supervisors, the most their groups allow \
         (max_monitors_per_agent)"
    )]
    MonitorLimit { agent: String, max: u32 },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Random(#[from] crate::app::random::RandomError),
    /// Refused by the requester's rights before any session exists (docs/design.md §4).
    #[error(transparent)]
    Denied(crate::domain::auth::Denied),
    #[error("{0}")]
    Internal(String),
}

pub(super) struct Inner {
    /// The media (docs/design.md §9: a port; the daemon plugs in the data-plane engine).
    pub(super) engine: Box<dyn Media>,
    pub(super) records: Mutex<Records>,
    pub(super) store: Arc<dyn Store>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) metrics: Metrics,
    pub(super) settings: Settings,
    /// The open sessions' answer deadlines, soonest first. Its own lock, never held across
    /// I/O, so the timer can read it without waiting for a commit.
    pub(super) deadlines: Mutex<BTreeSet<(u64, SupervisionId)>>,
    /// Signalled when a deadline is added, so the timer re-arms.
    pub(super) deadline_armed: Notify,
    /// Every token's hash (access control looks requests up here, not in the store).
    pub(super) tokens: TokenCache,
    /// Bumped after every committed write (`store` is wrapped in a
    /// [`crate::app::events::Notifying`]): wakes the event feed, which then reads the event log.
    pub(super) commits: tokio::sync::watch::Sender<u64>,
    /// The event log's pages as they become durable, read once for every SSE stream.
    pub(super) feed: crate::app::feed::Feed,
    /// Groups and agents (docs/design.md §3).
    pub(super) center: crate::app::center::Center,
}

/// The control plane's shared state: the engine handle, the records, the store, the clock, the
/// metrics. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct AppState {
    pub(super) inner: Arc<Inner>,
}

/// A mutex whose holder panicked still guards consistent records (each step that can panic
/// leaves them consistent), so keep serving.
pub(super) fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AppState {
    /// Runs a use case under group commit (the `store` module, "Durability"): its writes
    /// return once committed, and this returns once every commit made before `f` ended is
    /// durable: its own, and any it read or built on. A failed sync turns the answer into an
    /// error: nothing unsynced is acknowledged.
    pub fn deferred<T, E: From<crate::app::storage::Storage>>(
        &self,
        f: impl FnOnce(&AppState) -> Result<T, E>,
    ) -> Result<T, E> {
        let out = crate::store::deferring(|| f(self));
        self.store()
            .sync()
            .map_err(|e| E::from(crate::app::storage::Storage::from(e)))?;
        out
    }

    /// Wraps a running engine and an opened store: closes what a previous run left open
    /// (docs/design.md §7.3: stale sessions are closed with an alert, not resumed; open calls are
    /// ended) and loads the most recent calls and supervisions ([`PAGE_LIMIT_MAX`] of each; older
    /// ones are still answered by id). `metrics` must be registered in the registry the engine
    /// was started with, so `/metrics` shows both.
    pub fn new(
        engine: impl Media + 'static,
        metrics: Metrics,
        settings: Settings,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<AppState> {
        let recovery =
            crate::app::recovery::recover_after_restart(store.as_ref(), to_unix_ms(clock.now_ms()))
                .context("cannot close the sessions left open by the previous run")?;
        for closed in &recovery.sessions {
            metrics.alert(lifecycle::AlertKind::Aborted.code());
            tracing::warn!(
                supervision = %closed.supervision.id,
                was = closed.previous_state.as_str(),
                "supervision left open by the previous run closed (not resumed)"
            );
        }
        if !recovery.calls.is_empty() {
            tracing::warn!(
                calls = recovery.calls.len(),
                "calls left open by the previous run ended (their media did not survive)"
            );
        }
        let records = load(store.as_ref()).context("cannot load the recent history")?;
        let tokens = TokenCache::load(store.as_ref())?;
        let center = crate::app::center::Center::load(store.as_ref(), clock.now_ms())
            .context("cannot load the groups and agents")?;
        let (commits, _) = tokio::sync::watch::channel(0);
        let store: Arc<dyn Store> =
            Arc::new(crate::app::events::Notifying::new(store, commits.clone()));
        Ok(AppState {
            inner: Arc::new(Inner {
                engine: Box::new(engine),
                records: Mutex::new(records),
                store,
                clock,
                metrics,
                settings,
                deadlines: Mutex::new(BTreeSet::new()),
                deadline_armed: Notify::new(),
                tokens,
                commits,
                feed: crate::app::feed::Feed::default(),
                center,
            }),
        })
    }

    /// The token cache (access control).
    pub fn tokens(&self) -> &TokenCache {
        &self.inner.tokens
    }

    /// Groups and agents, over this store and clock.
    pub fn center(&self) -> crate::app::center::CenterUse<'_> {
        crate::app::center::CenterUse::new(&self.inner.center, self.store(), self.clock())
    }

    /// The media the use cases drive (diagnostics, tests).
    pub fn engine(&self) -> &dyn Media {
        self.inner.engine.as_ref()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub fn clock(&self) -> &dyn Clock {
        self.inner.clock.as_ref()
    }

    /// The durable store (tests read it directly).
    pub fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    /// The SSE streams' shared feed of the event log.
    pub fn feed(&self) -> &crate::app::feed::Feed {
        &self.inner.feed
    }

    /// Changes after every committed write to the store (the event feed and the webhook
    /// delivery wait on it).
    pub fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.commits.subscribe()
    }

    pub(super) fn records(&self) -> MutexGuard<'_, Records> {
        relock(&self.inner.records)
    }

    pub(super) fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    pub(super) fn check_family(
        &self,
        field: &'static str,
        remote: Option<SocketAddr>,
    ) -> Result<(), StateError> {
        let media_ip = self.inner.settings.media_ip;
        match remote {
            Some(remote) if remote.is_ipv4() != media_ip.is_ipv4() => {
                Err(StateError::AddressFamily {
                    field,
                    remote,
                    media_ip,
                })
            }
            _ => Ok(()),
        }
    }

    // ---- diagnostics ----

    /// The engine's id of a call, while its media is anchored (diagnostics, tests).
    pub fn engine_call(&self, id: CallId) -> Option<engine::CallId> {
        self.records().calls.get(&id).and_then(|c| c.engine)
    }

    /// The engine's call and leg of a supervision, while its media is connected (diagnostics,
    /// tests).
    pub fn engine_leg(&self, id: SupervisionId) -> Option<(engine::CallId, LegId)> {
        self.records().supervisions.get(&id).and_then(|s| s.media)
    }

    /// Counts recomputed from the records, to check the gauges against: (`earshot_calls`,
    /// supervisions with media connected per mode in [`Mode::ALL`] order).
    pub fn recount(&self) -> (i64, [i64; 5]) {
        let r = self.records();
        let calls = r
            .calls
            .values()
            .filter(|c| c.state == CallState::Active)
            .count();
        let per_mode = Mode::ALL.map(|m| {
            r.supervisions
                .values()
                .filter(|s| s.media.is_some() && s.mode == m)
                .count() as i64
        });
        (calls as i64, per_mode)
    }
}

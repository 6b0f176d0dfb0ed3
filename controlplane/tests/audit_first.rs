//! docs/design.md §4.5: the audit record of a supervision start or mode change is durable before
//! the supervisor's media changes. With a store that refuses every commit, a supervisor answering
//! (or a mode change) is refused and the data plane is never told: no supervisor leg exists.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::StatusCode;
use common::{Harness, NUMBER, T0_MS};
use controlplane::app::state::Settings;
use controlplane::clock::ManualClock;
use controlplane::metrics::Metrics;
use controlplane::store::{Reads, SqliteStore, Store, StoreError, Writes};
use controlplane::{AppState, app};
use dataplane::engine::{self, Engine};
use dataplane::media::matrix::{LegId, MAX_SUPERVISORS};
use serde_json::json;

/// A store whose commits fail while `failing` is set (a full disk, a lost device), and whose
/// syncs fail while `sync_failing` is (commits succeed but never become durable).
struct FailingStore {
    inner: SqliteStore,
    failing: AtomicBool,
    sync_failing: AtomicBool,
}

impl Store for FailingStore {
    fn write_dyn(
        &self,
        f: &mut dyn FnMut(&mut dyn Writes) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Backend {
                context: "committing".to_owned(),
                cause: "disk full (test)".into(),
            });
        }
        self.inner.write_dyn(f)
    }

    fn read_dyn(
        &self,
        f: &mut dyn FnMut(&dyn Reads) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.inner.read_dyn(f)
    }

    fn sync(&self) -> Result<(), StoreError> {
        if self.sync_failing.load(Ordering::SeqCst) {
            return Err(StoreError::Backend {
                context: "syncing".to_owned(),
                cause: "I/O error (test)".into(),
            });
        }
        self.inner.sync()
    }
}

/// A daemon state over a [`FailingStore`] (both failures off), behind the HTTP API.
fn harness() -> (Harness, Arc<FailingStore>) {
    let config = common::config();
    let registry = prometheus::Registry::new();
    let engine = Engine::start(config.engine_config(), &registry).unwrap();
    let metrics = Metrics::new(&registry).unwrap();
    let store = Arc::new(FailingStore {
        inner: SqliteStore::open_in_memory().unwrap(),
        failing: AtomicBool::new(false),
        sync_failing: AtomicBool::new(false),
    });
    let clock = Arc::new(ManualClock::new(T0_MS));
    let state = AppState::new(
        engine,
        metrics,
        Settings::from_config(&config),
        store.clone(),
        clock.clone(),
    )
    .unwrap();
    controlplane::app::tokens::bootstrap_admin(&state, Some(common::ADMIN_TOKEN)).unwrap();
    let h = Harness {
        app: app(state.clone()),
        state,
        clock,
    };
    (h, store)
}

/// Whether the engine holds any supervisor leg on `call`.
fn supervisor_legs(state: &AppState, call: engine::CallId) -> usize {
    (0..MAX_SUPERVISORS)
        .filter(|i| {
            state
                .engine()
                .leg_stats(call, LegId(2 + *i as u8))
                .is_some()
        })
        .count()
}

#[tokio::test]
async fn no_supervisor_media_without_a_durable_audit_record() {
    let (h, store) = harness();

    let call = h.new_call().await;
    let engine_call = h.state.engine_call(call.parse().unwrap()).unwrap();
    let (_, waiting) = h
        .post(
            &format!("/v1/calls/{call}/supervisions"),
            &json!({"registered_number": NUMBER}).to_string(),
        )
        .await;
    let waiting = waiting["id"].as_str().unwrap().to_owned();

    store.failing.store(true, Ordering::SeqCst);
    supervise_answered_fails(&h, &call).await;
    let answered = json!({"event": "answered", "calling_number": NUMBER}).to_string();
    let events = format!("/v1/supervisions/{waiting}/events");
    let (status, _) = h.post(&events, &answered).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        supervisor_legs(&h.state, engine_call),
        0,
        "media before audit"
    );
    let (_, s) = h.get(&format!("/v1/supervisions/{waiting}")).await;
    assert_eq!(
        (&s["state"], &s["leg"]["local"]),
        (&json!("requested"), &json!(null))
    );
    let (_, list) = h.get("/v1/supervisions").await;
    assert_eq!(list["supervisions"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(h.state.metrics().snapshot().1, [0; 5]);

    // The store is back: the same report connects the media.
    store.failing.store(false, Ordering::SeqCst);
    let (status, s) = h.post(&events, &answered).await;
    assert_eq!(
        (status, &s["state"]),
        (StatusCode::OK, &json!("active")),
        "{s}"
    );
    assert_eq!(supervisor_legs(&h.state, engine_call), 1);

    // A mode change whose audit record cannot be committed does not happen.
    store.failing.store(true, Ordering::SeqCst);
    let (status, _) = h
        .patch(
            &format!("/v1/supervisions/{waiting}"),
            r#"{"mode": "barge"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let (_, s) = h.get(&format!("/v1/supervisions/{waiting}")).await;
    assert_eq!(s["mode"], "listen");
    assert_eq!(h.state.metrics().snapshot().1, [1, 0, 0, 0, 0]);
    store.failing.store(false, Ordering::SeqCst);
    let (status, s) = h
        .patch(
            &format!("/v1/supervisions/{waiting}"),
            r#"{"mode": "barge"}"#,
        )
        .await;
    assert_eq!((status, &s["mode"]), (StatusCode::OK, &json!("barge")));
}

/// Group commit: the HTTP API commits a request's writes before they are durable and syncs
/// after the request; the audit record of a supervision start is the exception, synced before
/// the data plane is told to connect the supervisor. With a store whose commits succeed but
/// whose syncs fail, the answered supervisor gets no media, and no request is acknowledged.
#[tokio::test]
async fn no_supervisor_media_before_the_audit_record_is_synced() {
    let (h, store) = harness();
    let call = h.new_call().await;
    let engine_call = h.state.engine_call(call.parse().unwrap()).unwrap();

    store.sync_failing.store(true, Ordering::SeqCst);
    supervise_answered_fails(&h, &call).await;
    assert_eq!(
        supervisor_legs(&h.state, engine_call),
        0,
        "media before the audit record was durable"
    );
    assert_eq!(h.state.metrics().snapshot().1, [0; 5]);
    // Committed, but a write not yet durable is not acknowledged either.
    let (status, _) = h.post("/v1/calls", r#"{"agent_id": "agent-1"}"#).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);

    store.sync_failing.store(false, Ordering::SeqCst);
    h.new_supervision(&call).await;
    assert_eq!(supervisor_legs(&h.state, engine_call), 1);
}

/// Asks for an answered supervision of `call` and expects the store's failure: `500 internal`.
async fn supervise_answered_fails(h: &Harness, call: &str) {
    let (status, err) = h
        .post(
            &format!("/v1/calls/{call}/supervisions"),
            &common::answered_body(),
        )
        .await;
    assert_eq!(
        (status, &err["error"]["code"]),
        (StatusCode::INTERNAL_SERVER_ERROR, &json!("internal")),
        "{err}"
    );
}

//! Webhooks (docs/api.md, Webhooks): the admin routes, and the delivery of the event log to a
//! real HTTP receiver on 127.0.0.1 that checks every request's Standard Webhooks signature with
//! its own HMAC (not the code under test). Retries run on the manual clock; asynchronous
//! delivery is awaited by polling with a generous deadline, never timed.

mod common;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::{ADMIN_TOKEN, Harness, T0_MS};
use controlplane::app::webhooks;
use controlplane::clock::Clock as _;
use controlplane::domain::webhooks::{DISABLE_AFTER, MAX_ATTEMPTS};
use controlplane::store::{
    DeliveryRecord, Event, EventId, EventScope, NewEvent, StoreExt as _, UnixMs, WebhookRecord,
};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::oneshot;

/// How long to wait for something asynchronous before calling it a failure (not a speed
/// requirement: the delivery takes milliseconds).
const WAIT_MAX: Duration = Duration::from_secs(30);
/// The secret the tests give when they choose one (24 bytes of key).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

// ---- the receiver ----

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Received {
    /// `webhook-id`.
    id: String,
    /// `webhook-timestamp` (0 when absent or not a number).
    timestamp: u64,
    /// Whether `webhook-signature` held a valid `v1` signature under the receiver's secret.
    signed: bool,
    content_type: String,
    body: Value,
}

#[derive(Default)]
struct ReceiverState {
    /// The key of the endpoint's secret (the bytes after `whsec_`, base64-decoded).
    key: Vec<u8>,
    /// Statuses to answer, in order; then `otherwise`.
    script: VecDeque<u16>,
    otherwise: u16,
    log: Vec<Received>,
}

/// An HTTP server on 127.0.0.1 that records what it is sent and answers as scripted.
#[derive(Clone)]
struct Receiver {
    url: String,
    state: Arc<Mutex<ReceiverState>>,
}

/// The Standard Webhooks check, written from the specification: HMAC-SHA256 under the secret's
/// key of `{id}.{timestamp}.{body}`, base64, compared with each space-separated `v1,` entry.
fn signature_valid(key: &[u8], id: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    let mut signed = Vec::new();
    signed.extend_from_slice(id.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(timestamp.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(&signed);
    let expected = B64.encode(mac.finalize().into_bytes());
    header
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == expected)
}

fn key_of(secret: &str) -> Vec<u8> {
    B64.decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
        .unwrap()
}

async fn receive(
    State(rx): State<Arc<Mutex<ReceiverState>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (id, timestamp, signature) = (
        text("webhook-id"),
        text("webhook-timestamp"),
        text("webhook-signature"),
    );
    let mut rx = rx.lock().unwrap();
    let received = Received {
        signed: signature_valid(&rx.key, &id, &timestamp, &body, &signature),
        timestamp: timestamp.parse().unwrap_or(0),
        id,
        content_type: text("content-type"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    rx.log.push(received);
    let status = rx.script.pop_front().unwrap_or(rx.otherwise);
    StatusCode::from_u16(status).unwrap()
}

impl Receiver {
    /// A receiver answering `otherwise` (after `script`).
    async fn start(otherwise: u16, script: &[u16]) -> Receiver {
        let state = Arc::new(Mutex::new(ReceiverState {
            script: script.iter().copied().collect(),
            otherwise,
            ..ReceiverState::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver {
            url: format!("http://{addr}/hook"),
            state,
        }
    }

    fn set_secret(&self, secret: &str) {
        self.state.lock().unwrap().key = key_of(secret);
    }

    fn answer(&self, otherwise: u16) {
        self.state.lock().unwrap().otherwise = otherwise;
    }

    fn log(&self) -> Vec<Received> {
        self.state.lock().unwrap().log.clone()
    }

    /// The `id` of each body received, in order.
    fn ids(&self) -> Vec<i64> {
        self.log()
            .iter()
            .map(|r| r.body["id"].as_i64().unwrap())
            .collect()
    }

    /// Waits until `n` requests have arrived; returns them all.
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        eventually(&format!("{n} requests at the receiver"), || {
            let log = self.log();
            (log.len() >= n).then_some(log)
        })
        .await
    }
}

// ---- helpers ----

/// Polls `f` until it answers, or fails after [`WAIT_MAX`].
async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The delivery task of a test, stopped at the end.
struct Delivery {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Delivery {
    fn start(h: &Harness) -> Delivery {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(webhooks::run(h.state.clone(), stopped));
        Delivery { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

/// Appends an event to the log, as the appliance does with every state change.
fn append(h: &Harness, event_type: &str, payload: Value) -> i64 {
    let event = NewEvent {
        event_type: event_type.to_owned(),
        payload,
        scope: EventScope::default(),
        at: UnixMs(i64::try_from(h.clock.now_ms()).unwrap()),
    };
    h.state.store().write(|w| w.append_event(&event)).unwrap().0
}

fn event(h: &Harness, id: i64) -> Event {
    h.state
        .store()
        .read(|r| r.events_after(EventId(id - 1), 1))
        .unwrap()
        .remove(0)
}

fn events_of_type(h: &Harness, event_type: &str) -> Vec<Event> {
    h.state
        .store()
        .read(|r| r.events_after(EventId::ZERO, 1000))
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == event_type)
        .collect()
}

fn delivery(h: &Harness, event_id: i64, webhook: &str) -> Option<DeliveryRecord> {
    h.state
        .store()
        .read(|r| r.delivery(EventId(event_id), webhook))
        .unwrap()
}

fn webhook(h: &Harness, id: &str) -> WebhookRecord {
    h.state.store().read(|r| r.webhook(id)).unwrap().unwrap()
}

/// Creates a webhook (admin) and returns its id and secret.
async fn create(h: &Harness, body: Value) -> (String, String) {
    let (status, hook) = h.post("/v1/webhooks", &body.to_string()).await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    (
        hook["id"].as_str().unwrap().to_owned(),
        hook["secret"].as_str().unwrap().to_owned(),
    )
}

/// A webhook to `rx`, its secret known to `rx`; returns its id.
async fn hook_to(h: &Harness, rx: &Receiver, event_types: Option<&[&str]>) -> String {
    let mut body = json!({"url": rx.url, "secret": SECRET});
    if let Some(types) = event_types {
        body["event_types"] = json!(types);
    }
    let (id, secret) = create(h, body).await;
    assert_eq!(secret, SECRET);
    rx.set_secret(SECRET);
    id
}

/// Waits until the delivery of each of `events` to `webhook` is recorded as finished (no
/// attempt left to make).
async fn finished(h: &Harness, events: &[i64], webhook: &str) {
    eventually("the deliveries to be recorded", || {
        events
            .iter()
            .all(|e| delivery(h, *e, webhook).is_some_and(|d| d.next_attempt_at.is_none()))
            .then_some(())
    })
    .await;
}

/// Moves the clock to the webhook's next attempt once one is scheduled after now (an attempt
/// failed and its retry was recorded); returns false when the webhook has been disabled.
async fn advance_to_next_attempt(h: &Harness, webhook_id: &str) -> bool {
    eventually("the next attempt to be scheduled", || {
        if !webhook(h, webhook_id).enabled {
            return Some(false);
        }
        let head = h
            .state
            .store()
            .read(|r| r.next_delivery(webhook_id))
            .unwrap()?;
        let at = u64::try_from(head.next_attempt_at?.0).unwrap();
        let now = h.clock.now_ms();
        (at > now).then(|| {
            h.clock.advance(Duration::from_millis(at - now));
            true
        })
    })
    .await
}

/// Waits until `earshot_webhook_deliveries_total` reads `expected` (an attempt is counted just
/// after its outcome is committed).
async fn counted(h: &Harness, expected: &[(&str, u64)]) {
    let read = || {
        expected
            .iter()
            .map(|(outcome, _)| (*outcome, h.state.metrics().webhook_deliveries(outcome)))
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        let got = read();
        if got.iter().zip(expected).all(|(got, want)| got.1 == want.1) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "counters {got:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn assert_signed(received: &[Received]) {
    for r in received {
        assert!(r.signed, "signature does not verify: {r:?}");
        assert_eq!(r.content_type, "application/json", "{r:?}");
        assert_eq!(r.id, format!("evt_{}", r.body["id"]), "{r:?}");
    }
}

// ---- delivery ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_signed_in_order_with_their_type_and_data() {
    let h = Harness::start();
    let task = Delivery::start(&h);
    let before = append(&h, "call.created", json!({"call_id": "c_before"}));
    let rx = Receiver::start(204, &[]).await;
    // The secret generated for it, shown this once.
    let (id, secret) = create(&h, json!({"url": rx.url})).await;
    assert!(secret.starts_with("whsec_") && key_of(&secret).len() >= 16);
    rx.set_secret(&secret);

    let mut ids = Vec::new();
    for (n, event_type) in [
        "call.created",
        "supervision.active",
        "alert.raised",
        "supervision.mode_changed",
        "call.ended",
    ]
    .into_iter()
    .enumerate()
    {
        ids.push(append(&h, event_type, json!({"n": n, "call_id": "c_1"})));
    }
    // And one from the API itself.
    let call = h.new_call().await;
    let api_events = events_of_type(&h, "call.created");
    let last = api_events.last().unwrap();
    assert_eq!(last.payload["call_id"], call, "{:?}", last.payload);
    ids.push(last.id.0);

    let received = rx.wait_for(ids.len()).await;
    assert_signed(&received);
    assert_eq!(rx.ids(), ids, "every event after the creation, in order");
    assert!(!ids.contains(&before), "nothing from before the creation");
    for (r, id) in received.iter().zip(&ids) {
        let logged = event(&h, *id);
        assert_eq!(
            r.body,
            json!({
                "type": logged.event_type,
                "timestamp": "2025-11-21T04:40:00.000Z",
                "data": logged.payload,
                "id": id,
            })
        );
        // The clock has not moved: sent at T0.
        assert_eq!(r.timestamp, T0_MS / 1000);
    }
    // Each delivery finished on its first attempt.
    finished(&h, &ids, &id).await;
    for e in &ids {
        let d = delivery(&h, *e, &id).unwrap();
        assert_eq!(
            (d.attempts, d.last_status, d.last_error),
            (1, Some(204), None)
        );
    }
    counted(&h, &[("delivered", ids.len() as u64)]).await;
    assert!(h.metrics_text().await.contains(&format!(
        "earshot_webhook_deliveries_total{{outcome=\"delivered\"}} {}",
        ids.len()
    )));
    task.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_gets_retries_with_backoff_then_success_and_order_holds() {
    let h = Harness::start();
    let task = Delivery::start(&h);
    let rx = Receiver::start(204, &[500, 503]).await;
    let id = hook_to(&h, &rx, None).await;
    let first = append(&h, "alert.raised", json!({"kind": "monitoring_failed"}));

    rx.wait_for(1).await;
    let d = eventually("the first failure to be recorded", || {
        delivery(&h, first, &id).filter(|d| d.attempts == 1)
    })
    .await;
    assert_eq!(d.last_status, Some(500));
    assert_eq!(d.last_error.as_deref(), Some("HTTP 500"));
    assert_eq!(
        d.next_attempt_at,
        Some(UnixMs(i64::try_from(T0_MS).unwrap() + 5_000)),
        "first retry after 5 s"
    );
    // An event committed while the first waits for its retry waits behind it.
    let second = append(&h, "alert.raised", json!({"kind": "monitoring_stopped"}));

    assert!(advance_to_next_attempt(&h, &id).await);
    rx.wait_for(2).await;
    let d = eventually("the second failure to be recorded", || {
        delivery(&h, first, &id).filter(|d| d.attempts == 2)
    })
    .await;
    assert_eq!(d.last_status, Some(503));
    assert_eq!(
        d.next_attempt_at,
        Some(UnixMs(i64::try_from(T0_MS).unwrap() + 5_000 + 10_000)),
        "then after 10 s"
    );
    assert!(advance_to_next_attempt(&h, &id).await);

    let received = rx.wait_for(4).await;
    assert_signed(&received);
    assert_eq!(
        rx.ids(),
        [first, first, first, second],
        "the first until delivered, then the second"
    );
    // Each attempt is signed at its own time.
    let times: Vec<u64> = received.iter().map(|r| r.timestamp).collect();
    assert_eq!(
        times,
        [
            T0_MS / 1000,
            (T0_MS + 5_000) / 1000,
            (T0_MS + 15_000) / 1000,
            (T0_MS + 15_000) / 1000
        ]
    );
    finished(&h, &[second], &id).await;
    let d = delivery(&h, first, &id).unwrap();
    assert_eq!(
        (d.attempts, d.next_attempt_at, d.last_status, d.last_error),
        (3, None, Some(204), None)
    );
    assert_eq!(webhook(&h, &id).consecutive_failures, 0);
    counted(&h, &[("failed", 2), ("delivered", 2), ("given_up", 0)]).await;
    task.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_failing_every_time_gets_its_webhook_disabled_and_re_enabling_resumes() {
    let h = Harness::start();
    let task = Delivery::start(&h);
    let bad_rx = Receiver::start(500, &[]).await;
    let good_rx = Receiver::start(204, &[]).await;
    let bad = hook_to(&h, &bad_rx, None).await;
    let good = hook_to(&h, &good_rx, None).await;
    let events: Vec<i64> = (0..DISABLE_AFTER)
        .map(|n| append(&h, "call.created", json!({"n": n})))
        .collect();

    while advance_to_next_attempt(&h, &bad).await {}

    // Every event was tried MAX_ATTEMPTS times, one after the other, then given up.
    let expected: Vec<i64> = events
        .iter()
        .flat_map(|e| std::iter::repeat_n(*e, MAX_ATTEMPTS as usize))
        .collect();
    assert_signed(&bad_rx.log());
    assert_eq!(bad_rx.ids(), expected);
    let now_ms = i64::try_from(h.clock.now_ms()).unwrap();
    let (status, view) = h.get(&format!("/v1/webhooks/{bad}")).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(
        (
            &view["enabled"],
            &view["consecutive_failures"],
            &view["disabled_at_ms"]
        ),
        (&json!(false), &json!(DISABLE_AFTER), &json!(now_ms)),
        "{view}"
    );
    let disabled = events_of_type(&h, "webhook.disabled");
    assert_eq!(disabled.len(), 1, "{disabled:?}");
    assert_eq!(disabled[0].payload["webhook_id"], bad.as_str());
    assert_eq!(disabled[0].payload["consecutive_failures"], DISABLE_AFTER);
    assert_eq!(disabled[0].payload["last_status"], 500);
    counted(
        &h,
        &[
            ("given_up", u64::from(DISABLE_AFTER)),
            ("failed", u64::from(DISABLE_AFTER * (MAX_ATTEMPTS - 1))),
        ],
    )
    .await;

    // The healthy webhook got everything, the disabling included.
    let mut to_good = events.clone();
    to_good.push(disabled[0].id.0);
    good_rx.wait_for(to_good.len()).await;
    assert_eq!(good_rx.ids(), to_good);
    // A disabled webhook is sent nothing: an event now gets no delivery to it.
    let while_disabled = append(&h, "call.ended", json!({}));
    to_good.push(while_disabled);
    good_rx.wait_for(to_good.len()).await;
    assert_eq!(good_rx.ids(), to_good);
    assert!(delivery(&h, while_disabled, &good).is_some());
    assert_eq!(delivery(&h, while_disabled, &bad), None);

    // Fixed and re-enabled: failures reset, and the events from then on arrive.
    bad_rx.answer(204);
    let (status, view) = h
        .patch(&format!("/v1/webhooks/{bad}"), r#"{"enabled": true}"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(
        (
            &view["enabled"],
            &view["consecutive_failures"],
            &view["disabled_at_ms"]
        ),
        (&json!(true), &json!(0), &Value::Null),
        "{view}"
    );
    let after = append(&h, "call.created", json!({"again": true}));
    bad_rx.wait_for(expected.len() + 1).await;
    assert_eq!(bad_rx.ids().last(), Some(&after));
    assert_signed(&bad_rx.log());
    task.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_types_filter_what_a_webhook_gets() {
    let h = Harness::start();
    let task = Delivery::start(&h);
    let some_rx = Receiver::start(204, &[]).await;
    let all_rx = Receiver::start(204, &[]).await;
    let some = hook_to(&h, &some_rx, Some(&["call.*", "alert.raised"])).await;
    let all = hook_to(&h, &all_rx, None).await;
    let (_, view) = h.get(&format!("/v1/webhooks/{some}")).await;
    assert_eq!(view["event_types"], json!(["call.*", "alert.raised"]));

    let log: Vec<(&str, i64)> = [
        "call.created",
        "supervision.active",
        "alert.raised",
        "alert.cleared",
        "callback.requested",
        "call.media.updated",
        "call.ended",
    ]
    .into_iter()
    .map(|t| (t, append(&h, t, json!({"type": t}))))
    .collect();
    let wanted: Vec<i64> = log
        .iter()
        .filter(|(t, _)| {
            [
                "call.created",
                "alert.raised",
                "call.media.updated",
                "call.ended",
            ]
            .contains(t)
        })
        .map(|(_, id)| *id)
        .collect();
    all_rx.wait_for(log.len()).await;
    some_rx.wait_for(wanted.len()).await;
    assert_eq!(some_rx.ids(), wanted);
    // The others were never queued for it (fanned out with the same transaction as `all`'s).
    for (t, id) in &log {
        assert_eq!(
            delivery(&h, *id, &some).is_some(),
            wanted.contains(id),
            "{t}"
        );
        assert!(delivery(&h, *id, &all).is_some(), "{t}");
    }

    // A new filter applies to the events from then on.
    let (status, view) = h
        .patch(
            &format!("/v1/webhooks/{some}"),
            r#"{"event_types": ["supervision.*"]}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["event_types"], json!(["supervision.*"]));
    let skipped = append(&h, "call.created", json!({}));
    let taken = append(&h, "supervision.stopped", json!({}));
    all_rx.wait_for(log.len() + 2).await;
    some_rx.wait_for(wanted.len() + 1).await;
    assert_eq!(some_rx.ids().last(), Some(&taken));
    assert_eq!(delivery(&h, skipped, &some), None);
    assert_signed(&some_rx.log());
    task.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_resumes_after_a_restart_without_repeating_or_skipping() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config();
    config.store.path = dir.path().join("earshot.db");
    let rx = Receiver::start(204, &[]).await;

    let h = Harness::new(&config);
    let task = Delivery::start(&h);
    let id = hook_to(&h, &rx, None).await;
    let mut sent = vec![
        append(&h, "call.created", json!({"n": 1})),
        append(&h, "call.ended", json!({"n": 2})),
    ];
    rx.wait_for(2).await;
    finished(&h, &sent, &id).await;
    task.stop().await;
    // Committed while no delivery task runs (the daemon is going down).
    sent.push(append(&h, "call.created", json!({"n": 3})));
    sent.push(append(&h, "call.ended", json!({"n": 4})));
    h.state.engine().shutdown();
    drop(h);

    let h = Harness::new(&config);
    let task = Delivery::start(&h);
    sent.push(append(&h, "call.created", json!({"n": 5})));
    rx.wait_for(sent.len()).await;
    assert_eq!(rx.ids(), sent, "each event once, in order");
    assert_signed(&rx.log());
    task.stop().await;
}

// ---- the routes ----

#[tokio::test]
async fn the_routes_create_show_change_and_delete_and_never_show_the_secret_again() {
    let h = Harness::start();
    let (status, created) = h
        .post(
            "/v1/webhooks",
            &json!({"url": "https://hooks.example.com/earshot", "event_types": ["call.*", "call.*"],
                    "secret": SECRET})
            .to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("wh_"), "{id}");
    assert_eq!(
        created,
        json!({"id": id, "url": "https://hooks.example.com/earshot", "event_types": ["call.*"],
               "enabled": true, "consecutive_failures": 0, "disabled_at_ms": null,
               "created_at_ms": T0_MS, "secret": SECRET})
    );
    let mut shown = created.clone();
    shown.as_object_mut().unwrap().remove("secret");

    let (status, list) = h.get("/v1/webhooks").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, json!({"webhooks": [shown]}));
    let (status, one) = h.get(&format!("/v1/webhooks/{id}")).await;
    assert_eq!((status, &one), (StatusCode::OK, &shown));
    assert!(!list.to_string().contains("whsec_") && !one.to_string().contains("whsec_"));

    let (status, changed) = h
        .patch(
            &format!("/v1/webhooks/{id}"),
            r#"{"url": "http://127.0.0.1:9/x", "event_types": [], "enabled": false}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(
        (
            &changed["url"],
            &changed["event_types"],
            &changed["enabled"]
        ),
        (&json!("http://127.0.0.1:9/x"), &json!([]), &json!(false))
    );
    // Disabled by an admin, not for failing: no disabled_at_ms.
    assert_eq!(changed["disabled_at_ms"], Value::Null);
    assert!(!changed.to_string().contains("whsec_"));
    let (_, same) = h.patch(&format!("/v1/webhooks/{id}"), "{}").await;
    assert_eq!(same, changed, "an empty patch changes nothing");
    // The secret is kept through changes.
    assert_eq!(webhook(&h, &id).secret, SECRET);

    let (status, body) = h.delete(&format!("/v1/webhooks/{id}")).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    let (status, list) = h.get("/v1/webhooks").await;
    assert_eq!((status, list), (StatusCode::OK, json!({"webhooks": []})));
}

/// Asserts a refusal with `status`, `code` and a message mentioning `mentions`, and that the
/// webhooks are as they were.
async fn refused(
    h: &Harness,
    method: Method,
    uri: &str,
    body: Option<&str>,
    (status, code, mentions): (StatusCode, &str, &str),
) {
    let (_, before) = h.get("/v1/webhooks").await;
    let (got, err) = h.call(method.clone(), uri, body).await;
    assert_eq!(
        (got, err["error"]["code"].as_str()),
        (status, Some(code)),
        "{method} {uri} {body:?}: {err}"
    );
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(mentions),
        "{method} {uri} {body:?}: {message:?} should mention {mentions:?}"
    );
    let (_, after) = h.get("/v1/webhooks").await;
    assert_eq!(before, after, "{method} {uri} {body:?} changed something");
}

#[tokio::test]
async fn bad_input_is_refused_with_a_clear_message_and_creates_nothing() {
    let h = Harness::start();
    let bad_request = |mentions: &'static str| (StatusCode::BAD_REQUEST, "invalid_body", mentions);
    let long = format!("https://example.com/{}", "a".repeat(2048));
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "url"),
        (json!({"url": 7}), "url"),
        (json!({"url": "ftp://example.com/x"}), "http:// or https://"),
        (json!({"url": "example.com/hook"}), "not an absolute"),
        (json!({"url": "http://"}), "url"),
        (
            json!({"url": "mailto:ops@example.com"}),
            "http:// or https://",
        ),
        (json!({"url": long}), "longer than 2048"),
        (
            json!({"url": "https://example.com", "event_types": ["call."]}),
            "event_types[0]",
        ),
        (
            json!({"url": "https://example.com", "event_types": ["call.created", "*"]}),
            "event_types[1]",
        ),
        (
            json!({"url": "https://example.com", "event_types": ["Call.Created"]}),
            "is not an event type",
        ),
        (
            json!({"url": "https://example.com", "event_types": "call.*"}),
            "event_types",
        ),
        (
            json!({"url": "https://example.com", "event_types": vec!["a.b"; 33]}),
            "at most 32",
        ),
        (
            json!({"url": "https://example.com", "secret": "hunter2"}),
            "whsec_",
        ),
        (
            json!({"url": "https://example.com", "secret": "whsec_AAAA"}),
            "whsec_",
        ),
        (
            json!({"url": "https://example.com", "retries": 3}),
            "unknown field `retries`",
        ),
    ];
    for (body, mentions) in &cases {
        refused(
            &h,
            Method::POST,
            "/v1/webhooks",
            Some(&body.to_string()),
            bad_request(mentions),
        )
        .await;
    }
    refused(
        &h,
        Method::POST,
        "/v1/webhooks",
        Some("[1]"),
        bad_request(""),
    )
    .await;
    let (_, list) = h.get("/v1/webhooks").await;
    assert_eq!(list, json!({"webhooks": []}));

    let (id, _) = create(&h, json!({"url": "https://example.com/hook"})).await;
    let uri = format!("/v1/webhooks/{id}");
    for (body, mentions) in [
        (json!({"url": "ftp://example.com"}), "http:// or https://"),
        (
            json!({"event_types": ["call*"], "url": "https://example.com/other"}),
            "event_types[0]",
        ),
        (json!({"enabled": "yes"}), "enabled"),
        (json!({"secret": SECRET}), "unknown field `secret`"),
    ] {
        refused(
            &h,
            Method::PATCH,
            &uri,
            Some(&body.to_string()),
            bad_request(mentions),
        )
        .await;
    }
    let missing = (
        StatusCode::NOT_FOUND,
        "not_found",
        "no webhook with id \"wh_nope\"",
    );
    refused(&h, Method::GET, "/v1/webhooks/wh_nope", None, missing).await;
    refused(
        &h,
        Method::PATCH,
        "/v1/webhooks/wh_nope",
        Some(r#"{"enabled": true}"#),
        missing,
    )
    .await;
    refused(&h, Method::DELETE, "/v1/webhooks/wh_nope", None, missing).await;
    refused(
        &h,
        Method::PUT,
        &uri,
        Some("{}"),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "PUT"),
    )
    .await;
}

#[tokio::test]
async fn only_admins_manage_webhooks() {
    let h = Harness::start();
    let (id, _) = create(&h, json!({"url": "https://example.com/hook"})).await;
    let tokens = [
        h.token("supervisor", Some("sup-1")).await,
        h.token("agent", Some("ag-1")).await,
        h.token("softswitch", None).await,
    ];
    let routes = [
        (Method::GET, "/v1/webhooks".to_owned(), None),
        (
            Method::POST,
            "/v1/webhooks".to_owned(),
            Some(r#"{"url": "https://example.com/mine"}"#),
        ),
        (Method::GET, format!("/v1/webhooks/{id}"), None),
        (
            Method::PATCH,
            format!("/v1/webhooks/{id}"),
            Some(r#"{"enabled": false}"#),
        ),
        (Method::DELETE, format!("/v1/webhooks/{id}"), None),
    ];
    for (method, uri, body) in &routes {
        for token in &tokens {
            let (status, err) = h.call_as(Some(token), method.clone(), uri, *body).await;
            assert_eq!(
                (status, err["error"]["code"].as_str()),
                (StatusCode::FORBIDDEN, Some("forbidden")),
                "{method} {uri}: {err}"
            );
        }
        let (status, err) = h.call_as(None, method.clone(), uri, *body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri}: {err}");
    }
    let hook = webhook(&h, &id);
    assert!(hook.enabled, "nothing changed");
    let (_, list) = h
        .call_as(Some(ADMIN_TOKEN), Method::GET, "/v1/webhooks", None)
        .await;
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 1);
}

// ---- the daemon ----

/// The daemon runs the delivery task: a webhook created over HTTP gets the events of calls
/// created over HTTP (wall clock; the receiver on 127.0.0.1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_delivers_webhooks() {
    let daemon = controlplane::spawn(common::config()).unwrap();
    let base = format!("http://{}", daemon.http_addr);
    let rx = Receiver::start(204, &[]).await;
    let client = reqwest::Client::new();
    let post = async |path: &str, body: Value| -> (u16, Value) {
        let response = client
            .post(format!("{base}{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            serde_json::from_slice(&response.bytes().await.unwrap()).unwrap(),
        )
    };
    let (status, created) = post(
        "/v1/webhooks",
        json!({"url": rx.url, "event_types": ["call.created"], "secret": SECRET}),
    )
    .await;
    assert_eq!(
        (status, &created["secret"]),
        (201, &json!(SECRET)),
        "{created}"
    );
    rx.set_secret(SECRET);
    let (status, call) = post("/v1/calls", json!({})).await;
    assert_eq!(status, 201, "{call}");
    let received = rx.wait_for(1).await;
    assert_signed(&received);
    assert_eq!(received[0].body["type"], "call.created");
    assert_eq!(received[0].body["data"]["call_id"], call["id"]);
    tokio::task::spawn_blocking(move || daemon.shutdown().unwrap())
        .await
        .unwrap();
}

//! In-process test harness: a real engine behind `app(state)`, driven with `oneshot`.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, Response, StatusCode, header};
use controlplane::clock::ManualClock;
use controlplane::{AppState, Config, app};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;

/// The supervisor's registered number in the tests, and the calling number their leg answers
/// from.
pub const NUMBER: &str = "+15550100";
/// The bootstrap admin token every test daemon is configured with.
pub const ADMIN_TOKEN: &str = "es_test-admin-token-0123456789abcdefghij";

/// Where the manual clock starts (2025-11-21, in ms since the epoch).
pub const T0_MS: u64 = 1_763_700_000_000;

/// Media ports per test daemon: room for 20 legs.
pub const PORTS: u16 = 40;

/// A configuration with [`PORTS`] media ports of its own, chosen by the OS (so tests running in
/// parallel, in this process or another, never compete for them), HTTP and NG on ports the OS
/// picks, and a private in-memory database.
pub fn config() -> Config {
    config_with_ports(PORTS)
}

/// As [`config`], with `ports` media ports.
pub fn config_with_ports(ports: u16) -> Config {
    let mut config = Config::default();
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    config.ng.listen.0 = Some("127.0.0.1:0".parse().unwrap());
    (config.media.port_min, config.media.port_max) =
        earshot_tests::ports::udp_range_on(config.media.ip, ports);
    config.store.path = ":memory:".into();
    config.auth.admin_token = Some(ADMIN_TOKEN.to_owned());
    config
}

/// A supervision body whose supervisor's leg is already answered: media flows at once.
pub fn answered_body() -> String {
    serde_json::json!({
        "supervisor_id": "sup-1",
        "registered_number": NUMBER,
        "answered": {"calling_number": NUMBER},
    })
    .to_string()
}

pub struct Harness {
    pub state: AppState,
    pub app: Router,
    /// The state's clock: it moves only when a test moves it (see [`Harness::advance`]).
    pub clock: Arc<ManualClock>,
}

impl Harness {
    pub fn new(config: &Config) -> Harness {
        config.validate().unwrap();
        let clock = Arc::new(ManualClock::new(T0_MS));
        let state = controlplane::daemon::start_state_with(config, clock.clone()).unwrap();
        Harness {
            app: app(state.clone()),
            state,
            clock,
        }
    }

    /// A harness on [`config`].
    pub fn start() -> Harness {
        Harness::new(&config())
    }

    /// Moves the clock by `ms` and runs the answer timeouts then due.
    pub async fn advance(&self, ms: u64) -> usize {
        self.clock.advance(Duration::from_millis(ms));
        self.state.run_due_timeouts().await
    }

    /// Sends a request as the admin; a body is sent as `application/json`.
    pub async fn call(&self, method: Method, uri: &str, body: Option<&str>) -> (StatusCode, Value) {
        self.call_as(Some(ADMIN_TOKEN), method, uri, body).await
    }

    /// Sends a request with `token` (none: no `Authorization` header).
    pub async fn call_as(
        &self,
        token: Option<&str>,
        method: Method,
        uri: &str,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        json_of(self.respond(token, method, uri, body).await).await
    }

    /// Sends a request with `token` (none: no `Authorization` header), a body as
    /// `application/json`, and returns the response as it came.
    pub async fn respond(
        &self,
        token: Option<&str>,
        method: Method,
        uri: &str,
        body: Option<&str>,
    ) -> Response<Body> {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let body = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(b.to_owned())
            }
            None => Body::empty(),
        };
        self.app
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap()
    }

    /// Sends `req`, as the admin unless it carries an `Authorization` header.
    pub async fn send(&self, mut req: Request<Body>) -> (StatusCode, Value) {
        if !req.headers().contains_key(header::AUTHORIZATION) {
            req.headers_mut().insert(
                header::AUTHORIZATION,
                format!("Bearer {ADMIN_TOKEN}").parse().unwrap(),
            );
        }
        json_of(self.app.clone().oneshot(req).await.unwrap()).await
    }

    /// Mints a token of `role` for `user` (admin: `POST /v1/tokens`) and returns it.
    pub async fn token(&self, role: &str, user: Option<&str>) -> String {
        let body = match user {
            Some(u) => serde_json::json!({"role": role, "user_id": u}),
            None => serde_json::json!({"role": role}),
        };
        let (status, t) = self.post("/v1/tokens", &body.to_string()).await;
        assert_eq!(status, StatusCode::CREATED, "{t}");
        t["token"].as_str().unwrap().to_owned()
    }

    pub async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call(Method::GET, uri, None).await
    }

    pub async fn post(&self, uri: &str, body: &str) -> (StatusCode, Value) {
        self.call(Method::POST, uri, Some(body)).await
    }

    pub async fn patch(&self, uri: &str, body: &str) -> (StatusCode, Value) {
        self.call(Method::PATCH, uri, Some(body)).await
    }

    pub async fn delete(&self, uri: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, uri, None).await
    }

    /// Creates a call and returns its id.
    pub async fn new_call(&self) -> String {
        let (status, call) = self.post("/v1/calls", "{}").await;
        assert_eq!(status, StatusCode::CREATED, "{call}");
        call["id"].as_str().unwrap().to_owned()
    }

    /// Starts a supervision whose supervisor's leg is already answered (media flows, in
    /// listen) and returns its id.
    pub async fn new_supervision(&self, call: &str) -> String {
        let (status, sup) = self
            .post(&format!("/v1/calls/{call}/supervisions"), &answered_body())
            .await;
        assert_eq!(status, StatusCode::CREATED, "{sup}");
        assert_eq!(sup["state"], "active", "{sup}");
        sup["id"].as_str().unwrap().to_owned()
    }

    /// Everything a refused request must leave as it was: both listings (without the media
    /// counters, which move on their own) and the gauges. The gauges are also checked against
    /// the records.
    pub async fn snapshot(&self) -> (Value, Value, (i64, [i64; 5])) {
        let (_, calls) = self.get("/v1/calls").await;
        let (_, sups) = self.get("/v1/supervisions").await;
        let gauges = self.state.metrics().snapshot();
        assert_eq!(
            gauges,
            self.state.recount(),
            "gauges out of step with the records"
        );
        (without_stats(calls), without_stats(sups), gauges)
    }

    /// Asserts that the request is refused with `status` and `code` and changes nothing.
    pub async fn refused(
        &self,
        method: Method,
        uri: &str,
        body: Option<&str>,
        status: StatusCode,
        code: &str,
    ) -> Value {
        let before = self.snapshot().await;
        let (got, err) = self.call(method.clone(), uri, body).await;
        assert_eq!(
            (got, err["error"]["code"].as_str()),
            (status, Some(code)),
            "{method} {uri} {body:?}: {err}"
        );
        assert!(
            err["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{err}"
        );
        assert_eq!(
            self.snapshot().await,
            before,
            "{method} {uri} {body:?} changed something"
        );
        err
    }

    /// The gauges in the Prometheus text.
    pub async fn metrics_text(&self) -> String {
        let resp = self.respond(None, Method::GET, "/metrics", None).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// The kinds of the alerts of supervision `sup`, in order.
    pub async fn alert_kinds(&self, sup: &str) -> Vec<String> {
        let (status, alerts) = self.get(&format!("/v1/supervisions/{sup}/alerts")).await;
        assert_eq!(status, StatusCode::OK, "{alerts}");
        alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["kind"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// The status and the JSON body (`null` when empty) of `resp`.
async fn json_of(resp: Response<Body>) -> (StatusCode, Value) {
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "response is not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    (status, value)
}

/// `value` without the legs' media counters: media flows on its own clock (a barge leg sends
/// its first packet whenever the engine's tick comes), so they change between two snapshots
/// whatever a request did; everything else a request could change stays compared.
fn without_stats(mut value: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.remove("stats");
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut value);
    value
}

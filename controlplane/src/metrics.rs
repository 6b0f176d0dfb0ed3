//! The control plane's gauges, in a [`prometheus::Registry`] it shares with the engine (which
//! registers its own `earshot_*` counters there). One registry per daemon: nothing global, so
//! several daemons can run in one test process.

use dataplane::media::matrix::Mode;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::domain::lifecycle::AlertKind;

/// The outcomes of a webhook delivery attempt, the `outcome` label of
/// `earshot_webhook_deliveries_total`: delivered (2xx), failed (to be retried), given up (the
/// event's last attempt failed).
pub const WEBHOOK_OUTCOMES: [&str; 3] = ["delivered", "failed", "given_up"];

/// Why the NG listener dropped a datagram without answering, the `reason` label of
/// `earshot_ng_dropped_total` (docs/ng.md, Listener): its source is outside `ng.allow`; it has
/// no cookie (nothing to answer to); too many requests were already being processed (the
/// module resends it); its command failed without an answer (a bug, logged).
pub const NG_DROP_REASONS: [&str; 4] = ["not_allowed", "no_cookie", "busy", "failed"];

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `earshot_calls`: calls in state `active`.
    calls: IntGauge,
    /// `earshot_supervisions{mode}`: active supervisions per mode; all five modes always present.
    supervisions: IntGaugeVec,
    /// `earshot_api_requests_total{route,method,status}`: by route template (bounded labels).
    api_requests: IntCounterVec,
    /// `earshot_api_request_duration_seconds{route,method}`.
    api_duration: HistogramVec,
    /// `earshot_alerts_total{kind}`: session alerts raised, by kind (docs/design.md §2.6 codes,
    /// bounded).
    alerts: IntCounterVec,
    /// `earshot_supervision_setup_seconds`: from the supervision request to media connected.
    setup: Histogram,
    /// `earshot_webhook_deliveries_total{outcome}`: webhook delivery attempts, by
    /// [`WEBHOOK_OUTCOMES`].
    webhook_deliveries: IntCounterVec,
    /// `earshot_ng_requests_total{command,result}`: NG requests run (not replays), by command
    /// and result (both from fixed sets of the NG adapter).
    ng_requests: IntCounterVec,
    /// `earshot_ng_answer_duration_seconds{command}`: from a request's arrival to its answer.
    ng_answer: HistogramVec,
    /// `earshot_ng_dropped_total{reason}`: datagrams not answered, by [`NG_DROP_REASONS`].
    ng_dropped: IntCounterVec,
    /// `earshot_ng_replayed_total`: retransmissions answered from the cookie cache.
    ng_replayed: IntCounter,
}

impl Metrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Metrics> {
        let calls = IntGauge::new("earshot_calls", "Active calls anchored on the appliance.")?;
        let supervisions = IntGaugeVec::new(
            Opts::new("earshot_supervisions", "Active supervisions, per mode."),
            &["mode"],
        )?;
        let api_requests = IntCounterVec::new(
            Opts::new(
                "earshot_api_requests_total",
                "HTTP API requests, by route template, method and status.",
            ),
            &["route", "method", "status"],
        )?;
        let api_duration = HistogramVec::new(
            HistogramOpts::new(
                "earshot_api_request_duration_seconds",
                "HTTP API request latency, by route template and method.",
            )
            .buckets(vec![
                1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.5, 1.0,
            ]),
            &["route", "method"],
        )?;
        let alerts = IntCounterVec::new(
            Opts::new(
                "earshot_alerts_total",
                "Supervision alerts raised, by kind (docs/design.md §2.6).",
            ),
            &["kind"],
        )?;
        let setup = Histogram::with_opts(
            HistogramOpts::new(
                "earshot_supervision_setup_seconds",
                "Time from a supervision request to its media connected.",
            )
            .buckets(vec![
                1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
        )?;
        let webhook_deliveries = IntCounterVec::new(
            Opts::new(
                "earshot_webhook_deliveries_total",
                "Webhook delivery attempts, by outcome (delivered, failed, given_up).",
            ),
            &["outcome"],
        )?;
        let ng_requests = IntCounterVec::new(
            Opts::new(
                "earshot_ng_requests_total",
                "NG protocol requests run, by command and result (replays not counted).",
            ),
            &["command", "result"],
        )?;
        let ng_answer = HistogramVec::new(
            HistogramOpts::new(
                "earshot_ng_answer_duration_seconds",
                "NG protocol answer latency, from the request's arrival to its answer, by command.",
            )
            .buckets(vec![
                1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0,
            ]),
            &["command"],
        )?;
        let ng_dropped = IntCounterVec::new(
            Opts::new(
                "earshot_ng_dropped_total",
                "NG datagrams dropped unanswered, by reason (not_allowed, no_cookie, busy, failed).",
            ),
            &["reason"],
        )?;
        let ng_replayed = IntCounter::new(
            "earshot_ng_replayed_total",
            "NG retransmissions answered from the cookie cache without running the command again.",
        )?;
        registry.register(Box::new(ng_requests.clone()))?;
        registry.register(Box::new(ng_answer.clone()))?;
        registry.register(Box::new(ng_dropped.clone()))?;
        registry.register(Box::new(ng_replayed.clone()))?;
        for reason in NG_DROP_REASONS {
            ng_dropped.with_label_values(&[reason]).reset();
        }
        registry.register(Box::new(webhook_deliveries.clone()))?;
        for outcome in WEBHOOK_OUTCOMES {
            webhook_deliveries.with_label_values(&[outcome]).reset();
        }
        registry.register(Box::new(calls.clone()))?;
        registry.register(Box::new(alerts.clone()))?;
        registry.register(Box::new(setup.clone()))?;
        registry.register(Box::new(supervisions.clone()))?;
        registry.register(Box::new(api_requests.clone()))?;
        registry.register(Box::new(api_duration.clone()))?;
        for mode in Mode::ALL {
            supervisions.with_label_values(&[mode.as_str()]).set(0);
        }
        for kind in AlertKind::ALL {
            alerts.with_label_values(&[kind.code()]).reset();
        }
        Ok(Metrics {
            registry: registry.clone(),
            calls,
            supervisions,
            api_requests,
            api_duration,
            alerts,
            setup,
            webhook_deliveries,
            ng_requests,
            ng_answer,
            ng_dropped,
            ng_replayed,
        })
    }

    /// One NG request run and answered after `seconds`. `command` and `result` come from the
    /// NG adapter's fixed sets, so labels stay bounded and carry no call ids (docs/design.md
    /// §4.6).
    pub(crate) fn ng_request(&self, command: &'static str, result: &'static str, seconds: f64) {
        self.ng_requests.with_label_values(&[command, result]).inc();
        self.ng_answer
            .with_label_values(&[command])
            .observe(seconds);
    }

    /// One NG datagram dropped; `reason` is one of [`NG_DROP_REASONS`].
    pub(crate) fn ng_dropped(&self, reason: &'static str) {
        self.ng_dropped.with_label_values(&[reason]).inc();
    }

    /// One retransmission answered from the cookie cache.
    pub(crate) fn ng_replayed(&self) {
        self.ng_replayed.inc();
    }

    /// `earshot_ng_requests_total{command,result}`, for tests.
    pub fn ng_requests(&self, command: &str, result: &str) -> u64 {
        self.ng_requests.with_label_values(&[command, result]).get()
    }

    /// `earshot_ng_dropped_total{reason}`, for tests.
    pub fn ng_drops(&self, reason: &str) -> u64 {
        self.ng_dropped.with_label_values(&[reason]).get()
    }

    /// `earshot_ng_replayed_total`, for tests.
    pub fn ng_replays(&self) -> u64 {
        self.ng_replayed.get()
    }

    pub(crate) fn call_started(&self) {
        self.calls.inc();
    }

    pub(crate) fn call_ended(&self) {
        self.calls.dec();
    }

    pub(crate) fn supervision_started(&self, mode: Mode) {
        self.supervisions.with_label_values(&[mode.as_str()]).inc();
    }

    pub(crate) fn supervision_ended(&self, mode: Mode) {
        self.supervisions.with_label_values(&[mode.as_str()]).dec();
    }

    pub(crate) fn mode_changed(&self, from: Mode, to: Mode) {
        self.supervision_ended(from);
        self.supervision_started(to);
    }

    /// One alert raised. `kind` is an [`AlertKind`] code: a bounded set.
    pub(crate) fn alert(&self, kind: &str) {
        self.alerts.with_label_values(&[kind]).inc();
    }

    /// A supervision's media connected `seconds` after it was requested.
    pub(crate) fn supervision_setup(&self, seconds: f64) {
        self.setup.observe(seconds);
    }

    /// One webhook delivery attempt; `outcome` is one of [`WEBHOOK_OUTCOMES`].
    pub(crate) fn webhook_delivery(&self, outcome: &'static str) {
        self.webhook_deliveries.with_label_values(&[outcome]).inc();
    }

    /// `earshot_webhook_deliveries_total{outcome}`, for tests.
    pub fn webhook_deliveries(&self, outcome: &str) -> u64 {
        self.webhook_deliveries.with_label_values(&[outcome]).get()
    }

    /// Records one API request. `route` is the route template (e.g. `/v1/calls/{call}`), never
    /// the path itself, so labels stay bounded and carry no call ids (docs/design.md §4.6).
    pub(crate) fn api_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        self.api_requests
            .with_label_values(&[route, method, status.as_str()])
            .inc();
        self.api_duration
            .with_label_values(&[route, method])
            .observe(seconds);
    }

    /// The current values, for tests: (`earshot_calls`, `earshot_supervisions` per mode in
    /// [`Mode::ALL`] order).
    pub fn snapshot(&self) -> (i64, [i64; 5]) {
        let per_mode = Mode::ALL.map(|m| self.supervisions.with_label_values(&[m.as_str()]).get());
        (self.calls.get(), per_mode)
    }

    /// The whole registry in the Prometheus text format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

//! The daemon in-process: [`spawn`] validates the configuration, opens the store (closing what
//! a crashed run left open), starts the engine, binds the HTTP and NG listeners and runs axum,
//! the NG listener, the engine-event pump, the answer-timeout timer and the webhook delivery on
//! a tokio runtime of its own thread.
//! Nothing is global (each daemon has its own registry and runtime; tracing is left to the
//! caller), so tests can run several daemons in one process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use tokio::sync::oneshot;
use tokio::time::MissedTickBehavior;

use dataplane::engine::{
    Backend, CallId, CallMedia, Engine, EngineError, EngineEvent, LegSpec, LegStats,
    SupervisorMedia,
};
use dataplane::media::matrix::{LegId, Mode};

use crate::app::engine::Media;
use crate::app::state::{AppState, Settings};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::http::api::app_with_limits;
use crate::http::listener::ConnectionCap;
use crate::store::SqliteStore;

/// How often the pump drains the engine's events (DTMF, media timeouts).
const PUMP_PERIOD: Duration = Duration::from_millis(5);
/// How long the timer waits before firing again a timeout that could not be applied.
const TIMER_RETRY: Duration = Duration::from_millis(100);
/// How long a graceful shutdown waits for open HTTP connections before closing them.
const DRAIN_MAX: Duration = Duration::from_secs(5);
/// Threads of the control plane's runtime (HTTP and the pump; the data plane has its own).
const RUNTIME_THREADS: usize = 2;

/// A daemon running on its own thread. [`RunningDaemon::shutdown`] stops it gracefully;
/// dropping it does the same.
pub struct RunningDaemon {
    /// The bound HTTP address (the real port when the configuration asked for port 0).
    pub http_addr: SocketAddr,
    /// The bound NG address (the real port when the configuration asked for port 0); `None`:
    /// NG is off.
    pub ng_addr: Option<SocketAddr>,
    state: AppState,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

/// The cores left to the control plane: every core no worker is pinned to (empty: no pinning,
/// when workers are not pinned or take every core).
fn control_cores(worker_cores: Option<&[usize]>) -> Vec<usize> {
    let Some(taken) = worker_cores else {
        return Vec::new();
    };
    let all = core_affinity::get_core_ids().unwrap_or_default();
    let free: Vec<usize> = all
        .iter()
        .map(|c| c.id)
        .filter(|c| !taken.contains(c))
        .collect();
    if free.len() == all.len() {
        Vec::new()
    } else {
        free
    }
}

/// Pins the calling thread to the first of `cores` (no-op when empty). core_affinity pins to
/// one core at a time; the control plane is light, and one core off the workers' is enough.
fn pin_to(cores: &[usize]) {
    if let Some(&id) = cores.first() {
        core_affinity::set_for_current(core_affinity::CoreId { id });
    }
}

/// The daemon's state composed from `config` (docs/design.md §9: config → store → engine →
/// app): the store it names, an engine started from it in a fresh registry, the control
/// plane's gauges in the same registry, and the wall clock. The configuration should have
/// been validated.
pub fn start_state(config: &Config) -> anyhow::Result<AppState> {
    start_state_with(config, Arc::new(SystemClock))
}

/// [`start_state`] with another clock (tests: a [`crate::clock::ManualClock`]).
pub fn start_state_with(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<AppState> {
    let path = &config.store.path;
    let store = SqliteStore::open(path)
        .with_context(|| format!("cannot open the database {}", path.display()))?;
    let registry = prometheus::Registry::new();
    let engine =
        Engine::start(config.engine_config(), &registry).context("cannot start the data plane")?;
    let metrics = crate::metrics::Metrics::new(&registry)
        .context("cannot register the control plane's metrics")?;
    let state = AppState::new(
        engine,
        metrics,
        Settings::from_config(config),
        Arc::new(store),
        clock,
    )?;
    // NOTE(merge): the admin bootstrap lives in `http::access` today; it moves with the token
    // use cases (app/tokens.rs).
    if let Some(token) =
        crate::app::tokens::bootstrap_admin(&state, config.auth.admin_token.as_deref())?
    {
        // Shown this once: only its hash is stored.
        tracing::warn!(
            "no admin token configured: generated one, shown only now; use it as \
             `Authorization: Bearer {}` (or set [auth] admin_token / EARSHOT_ADMIN_TOKEN)",
            token.expose()
        );
    }
    Ok(state)
}

/// The data-plane engine is the media of the use cases (the port of docs/design.md §9).
impl Media for Engine {
    fn create_call(&self, customer: LegSpec, agent: LegSpec) -> Result<CallMedia, EngineError> {
        Engine::create_call(self, customer, agent)
    }
    fn delete_call(&self, call: CallId) -> Result<(), EngineError> {
        Engine::delete_call(self, call)
    }
    fn add_supervisor(
        &self,
        call: CallId,
        spec: LegSpec,
        beep: bool,
    ) -> Result<SupervisorMedia, EngineError> {
        Engine::add_supervisor(self, call, spec, beep)
    }
    fn remove_supervisor(&self, call: CallId, leg: LegId) -> Result<(), EngineError> {
        Engine::remove_supervisor(self, call, leg)
    }
    fn set_mode(&self, call: CallId, leg: LegId, mode: Mode) -> Result<(), EngineError> {
        Engine::set_mode(self, call, leg, mode)
    }
    fn set_remote(&self, call: CallId, leg: LegId, remote: SocketAddr) -> Result<(), EngineError> {
        Engine::set_remote(self, call, leg, remote)
    }
    fn set_held(&self, call: CallId, leg: LegId, held: bool) -> Result<(), EngineError> {
        Engine::set_held(self, call, leg, held)
    }
    fn leg_stats(&self, call: CallId, leg: LegId) -> Option<LegStats> {
        Engine::leg_stats(self, call, leg)
    }
    fn drain_events(&self, out: &mut Vec<EngineEvent>) {
        Engine::drain_events(self, out)
    }
    fn backend(&self) -> Backend {
        Engine::backend(self)
    }
    fn calls(&self) -> usize {
        Engine::calls(self)
    }
    fn shutdown(&self) {
        Engine::shutdown(self)
    }
}

/// Starts a daemon and returns once its HTTP listener is bound (connections queue from then
/// on).
pub fn spawn(config: Config) -> anyhow::Result<RunningDaemon> {
    config.validate()?;
    let listen = config.http.listen;
    let listener = std::net::TcpListener::bind(listen)
        .with_context(|| format!("cannot listen for HTTP on {listen}"))?;
    listener
        .set_nonblocking(true)
        .context("cannot make the HTTP listener non-blocking")?;
    let http_addr = listener
        .local_addr()
        .context("cannot read the HTTP listener's address")?;
    let ng = match config.ng.listen.0 {
        Some(listen) => {
            let socket = std::net::UdpSocket::bind(listen)
                .with_context(|| format!("cannot listen for NG on {listen}"))?;
            let addr = socket
                .local_addr()
                .context("cannot read the NG listener's address")?;
            Some((socket, addr))
        }
        None => None,
    };
    let ng_addr = ng.as_ref().map(|(_, addr)| *addr);
    let ng_socket = ng.map(|(socket, _)| socket);
    // Before the engine binds its media sockets: the cap is computed against the raised limit.
    let cap = ConnectionCap::for_config(&config);
    tracing::info!(
        max_connections = cap.connections,
        configured = config.http.max_connections,
        fd_limit = cap.fd_limit,
        "HTTP connection cap"
    );
    let state = start_state(&config)?;
    // Keep the control plane off the data plane's cores: its threads run on the cores no
    // worker is pinned to (when there are any).
    let control_cores = control_cores(config.engine.cores.as_deref());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(RUNTIME_THREADS)
        .thread_name("earshot-http")
        .on_thread_start(move || pin_to(&control_cores))
        .enable_all()
        .build()
        .context("cannot start the control plane's runtime")?;
    let (stop_tx, stop_rx) = oneshot::channel();
    let serve_state = state.clone();
    let thread = std::thread::Builder::new()
        .name("earshot-control".into())
        .spawn(move || {
            runtime.block_on(serve(
                listener,
                ng_socket,
                serve_state,
                config,
                cap,
                stop_rx,
            ))
        })
        .context("cannot start the control plane's thread")?;
    Ok(RunningDaemon {
        http_addr,
        ng_addr,
        state,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

impl RunningDaemon {
    /// The daemon's state (engine, metrics, records), e.g. to inspect it from a test.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops accepting connections and NG datagrams, lets open connections and running NG
    /// commands finish (up to 5 s), stops the event pump and the engine, and joins the thread.
    pub fn shutdown(mut self) -> anyhow::Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            // An error means the server already ended on its own; join tells why.
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| anyhow!("the control plane's thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningDaemon {
    fn drop(&mut self) {
        if let Err(err) = self.stop() {
            tracing::error!("{err:#}");
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    ng_socket: Option<std::net::UdpSocket>,
    state: AppState,
    config: Config,
    cap: ConnectionCap,
    stop: oneshot::Receiver<()>,
) -> anyhow::Result<()> {
    let listener =
        tokio::net::TcpListener::from_std(listener).context("cannot register the HTTP listener")?;
    // One stop for both listeners: they stop taking requests together and drain side by side.
    let (http_stop, http_stopped) = oneshot::channel();
    let (ng_stop, ng_stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        // A dropped sender is a stop too.
        let _ = stop.await;
        let _ = http_stop.send(());
        let _ = ng_stop.send(());
    });
    let ng = ng_socket.map(|socket| {
        let options = crate::ng::listener::Options {
            allow: config.ng.allow.clone(),
            in_flight_max: crate::ng::listener::IN_FLIGHT_MAX,
        };
        let dispatch = crate::ng::commands::dispatcher(state.clone());
        tokio::spawn(crate::ng::listener::serve(
            socket,
            options,
            dispatch,
            state.metrics().clone(),
            ng_stopped,
        ))
    });
    let (pump_stop, pump_stopped) = oneshot::channel();
    let pump = tokio::spawn(event_pump(state.clone(), pump_stopped));
    let (timer_stop, timer_stopped) = oneshot::channel();
    let timer = tokio::spawn(answer_timer(state.clone(), timer_stopped));
    let (hooks_stop, hooks_stopped) = oneshot::channel();
    let hooks = tokio::spawn(crate::app::webhooks::run(state.clone(), hooks_stopped));

    let app = app_with_limits(state.clone(), &config.http);
    crate::http::listener::serve(listener, app, &config, cap, http_stopped, DRAIN_MAX).await;
    if let Some(ng) = ng {
        match ng.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::error!(%err, "the NG listener failed"),
            Err(err) => tracing::error!(%err, "the NG listener failed"),
        }
    }

    let _ = pump_stop.send(());
    if let Err(err) = pump.await {
        tracing::error!(%err, "event pump failed");
    }
    let _ = timer_stop.send(());
    if let Err(err) = timer.await {
        tracing::error!(%err, "answer timer failed");
    }
    let _ = hooks_stop.send(());
    if let Err(err) = hooks.await {
        tracing::error!(%err, "webhook delivery failed");
    }
    state.engine().shutdown();
    Ok(())
}

/// Drains the engine's events every [`PUMP_PERIOD`] and applies them until `stop`. Draining
/// never blocks; applying does (records lock, store commits), so it runs on the blocking pool,
/// and only when there is something to apply.
async fn event_pump(state: AppState, mut stop: oneshot::Receiver<()>) {
    let mut tick = tokio::time::interval(PUMP_PERIOD);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut events = Vec::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {
                state.drain_engine_events(&mut events);
                if events.is_empty() {
                    continue;
                }
                let applier = state.clone();
                events = match tokio::task::spawn_blocking(move || {
                    applier.apply_engine_events(&mut events);
                    events
                })
                .await
                {
                    Ok(left) => left,
                    Err(err) => {
                        tracing::error!(%err, "applying engine events failed");
                        Vec::new()
                    }
                };
            }
        }
    }
}

/// Fires the supervisions' answer timeouts: sleeps on the state's clock until the soonest
/// deadline (re-armed whenever a new one is set), then fires the due ones, until `stop`.
async fn answer_timer(state: AppState, mut stop: oneshot::Receiver<()>) {
    loop {
        let armed = state.deadline_armed().notified();
        tokio::pin!(armed);
        armed.as_mut().enable();
        let next = state.next_deadline_ms();
        let due = async {
            match next {
                Some(at_ms) => state.clock().sleep_until(at_ms).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut stop => break,
            () = &mut armed => {}
            () = due => {
                state.run_due_timeouts().await;
                // A timeout that could not be applied stays due: do not spin on it.
                if state
                    .next_deadline_ms()
                    .is_some_and(|at_ms| at_ms <= state.clock().now_ms())
                {
                    tokio::time::sleep(TIMER_RETRY).await;
                }
            }
        }
    }
}

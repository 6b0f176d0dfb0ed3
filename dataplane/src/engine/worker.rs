//! The control side of the engine ([`Control`]) and the worker threads it drives ([`Worker`]).
//!
//! Each worker owns its calls and their sockets outright (shared-nothing, docs/design.md §9.5): the
//! only ways in and out are its command ring, its event ring, the eventfd that wakes it, the
//! statistics cells it publishes to, and its own Prometheus children.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
};
use rtrb::{Consumer, Producer, RingBuffer};

use super::Backend;
use super::afxdp::{self, AfXdp, AfXdpSetup, Interface, PortOwners, XSK_STATS, XskCounters};
use super::backend::{LegIo, PacketIo, Polled, SendError, Transmit};
use super::command::{Command, WorkerEvent};
use super::ports::PortAllocator;
use super::stats::SharedLegStats;
use super::uring::{Uring, Waker};
use super::xdp::{self, XdpFilter, XdpMode};
use super::{
    CallId, CallMedia, EngineConfig, EngineError, EngineEvent, LegSpec, LegStats, SupervisorMedia,
};
use crate::media::call::{Call, CallConfig, CallEvent, DropReason, Leg, Output};
use crate::media::matrix::{LegId, MAX_LEGS, Mode};
use crate::time::{Duration, Instant};
use crate::wire::rtp::Ssrc;
use std::os::fd::OwnedFd;

/// The mixing period (docs/design.md §1.3).
const TICK: Duration = Duration::from_millis(20);
/// Each tick is spread over this many phases, [`PHASE`] apart: the calls in slot `i` are mixed
/// in phase `i % PHASES`, so each still every 20 ms, but the worker's mixing and the burst of
/// mixed packets it sends come in tenths, and relayed packets never queue behind a whole tick.
const PHASES: usize = 10;
const PHASE: Duration = Duration::from_millis(20 / PHASES as u64);
/// How late a tick may start and still be caught up (its frames produced back to back);
/// beyond it the missed ticks are skipped.
const MAX_TICK_LAG: Duration = Duration::from_millis(100);
/// Calls mixed before the worker turns to its I/O again, so that relayed packets never wait
/// behind a whole tick of a busy worker.
const TICK_CHUNK: usize = 64;
/// Commands or events in flight between the control side and one worker.
const RING_CAPACITY: usize = 4096;
/// Sends in flight per worker.
const SEND_SLOTS: usize = 4096;
/// Statistics are published for 1/STATS_SPREAD of the calls on each tick, so every call's
/// figures are at most STATS_SPREAD ticks (1 s) old without touching every call every tick.
const STATS_SPREAD: u64 = 50;

/// Drop reasons the worker adds to the media core's.
const TX_POOL_EXHAUSTED: &str = "tx_pool_exhausted";
const SEND_FAILED: &str = "send_failed";
const UNKNOWN_SOCKET: &str = "unknown_socket";
const EVENT_RING_FULL: &str = "event_ring_full";
const NO_NEXT_HOP: &str = "no_next_hop";
const UNKNOWN_PORT: &str = "unknown_port";

/// Random bits for SSRCs and initial sequence numbers and timestamps (RFC 3550 §5.1).
fn random_u64() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        // No OS randomness (should not happen on Linux): fall back to a clock-derived value,
        // which is still unique enough for SSRCs on one appliance.
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    })
}

fn new_leg(spec: LegSpec, call: &CallConfig, now: Instant) -> Box<Leg> {
    let r = random_u64();
    Leg::new(
        spec.codec,
        spec.remote,
        Ssrc(r as u32),
        (r >> 32) as u16,
        (r >> 16) as u32,
        call.jitter,
        now,
    )
}

/// The engine's metrics, registered once and labelled per worker.
struct Metrics {
    packets_received: IntCounterVec,
    bytes_received: IntCounterVec,
    packets_sent: IntCounterVec,
    bytes_sent: IntCounterVec,
    dropped: IntCounterVec,
    tick_duration: HistogramVec,
    tick_overruns: IntCounterVec,
    handed_over: IntCounterVec,
}

impl Metrics {
    fn register(registry: &Registry) -> Result<Metrics, EngineError> {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).map_err(metrics_error)?;
            registry
                .register(Box::new(c.clone()))
                .map_err(metrics_error)?;
            Ok::<_, EngineError>(c)
        };
        let tick_duration = HistogramVec::new(
            HistogramOpts::new(
                "earshot_mix_tick_duration_seconds",
                "Time one worker spends on one 20 ms mix tick.",
            )
            .buckets(vec![
                1e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2e-2,
            ]),
            &["worker"],
        )
        .map_err(metrics_error)?;
        registry
            .register(Box::new(tick_duration.clone()))
            .map_err(metrics_error)?;
        Ok(Metrics {
            packets_received: counter(
                "earshot_packets_received_total",
                "Datagrams received on media ports.",
                &["worker"],
            )?,
            bytes_received: counter(
                "earshot_bytes_received_total",
                "Bytes received on media ports.",
                &["worker"],
            )?,
            packets_sent: counter(
                "earshot_packets_sent_total",
                "RTP packets sent to legs.",
                &["worker"],
            )?,
            bytes_sent: counter(
                "earshot_bytes_sent_total",
                "Bytes sent to legs.",
                &["worker"],
            )?,
            dropped: counter(
                "earshot_packets_dropped_total",
                "Datagrams dropped, by reason.",
                &["worker", "reason"],
            )?,
            tick_duration,
            handed_over: counter(
                "earshot_packets_handed_over_total",
                "Datagrams that arrived on a queue of this worker for another worker's leg (AF_XDP).",
                &["worker"],
            )?,
            tick_overruns: counter(
                "earshot_tick_overruns_total",
                "Ticks that started a full period late.",
                &["worker"],
            )?,
        })
    }
}

/// The kernel's XDP statistics per AF_XDP queue (`earshot_xsk_*_total{queue}`), one family per
/// [`XSK_STATS`] entry, in its order.
struct XskMetrics {
    vecs: Vec<IntCounterVec>,
}

impl XskMetrics {
    fn register(registry: &Registry) -> Result<XskMetrics, EngineError> {
        let mut vecs = Vec::with_capacity(XSK_STATS.len());
        for stat in &XSK_STATS {
            let v = IntCounterVec::new(Opts::new(stat.name, stat.help), &["queue"])
                .map_err(metrics_error)?;
            // Registering twice (an `auto` start that retried) keeps the first registration.
            match registry.register(Box::new(v.clone())) {
                Ok(()) | Err(prometheus::Error::AlreadyReg) => {}
                Err(e) => return Err(metrics_error(e)),
            }
            vecs.push(v);
        }
        Ok(XskMetrics { vecs })
    }

    fn for_queue(&self, queue: u32) -> XskCounters {
        let q = queue.to_string();
        std::array::from_fn(|i| self.vecs[i].with_label_values(&[q.as_str()]))
    }
}

fn metrics_error(e: prometheus::Error) -> EngineError {
    EngineError::Config(format!("registering engine metrics: {e}"))
}

/// A worker's own metric children, resolved once so the loop never looks up labels.
struct WorkerMetrics {
    packets_received: IntCounter,
    bytes_received: IntCounter,
    packets_sent: IntCounter,
    bytes_sent: IntCounter,
    dropped_media: [IntCounter; DropReason::COUNT],
    tx_pool_exhausted: IntCounter,
    send_failed: IntCounter,
    oversized: IntCounter,
    unknown_socket: IntCounter,
    event_ring_full: IntCounter,
    no_next_hop: IntCounter,
    unknown_port: IntCounter,
    handed_over: IntCounter,
    tick_duration: Histogram,
    tick_overruns: IntCounter,
}

impl WorkerMetrics {
    fn new(m: &Metrics, worker: usize) -> WorkerMetrics {
        let w = worker.to_string();
        let w = w.as_str();
        let drop = |reason: &str| m.dropped.with_label_values(&[w, reason]);
        WorkerMetrics {
            packets_received: m.packets_received.with_label_values(&[w]),
            bytes_received: m.bytes_received.with_label_values(&[w]),
            packets_sent: m.packets_sent.with_label_values(&[w]),
            bytes_sent: m.bytes_sent.with_label_values(&[w]),
            dropped_media: DropReason::ALL.map(|r| drop(r.as_str())),
            tx_pool_exhausted: drop(TX_POOL_EXHAUSTED),
            send_failed: drop(SEND_FAILED),
            // The media core's reason: a datagram too long for the data plane is one count,
            // whichever layer (backend or call) refused it.
            oversized: drop(DropReason::Oversized.as_str()),
            unknown_socket: drop(UNKNOWN_SOCKET),
            event_ring_full: drop(EVENT_RING_FULL),
            no_next_hop: drop(NO_NEXT_HOP),
            unknown_port: drop(UNKNOWN_PORT),
            handed_over: m.handed_over.with_label_values(&[w]),
            tick_duration: m.tick_duration.with_label_values(&[w]),
            tick_overruns: m.tick_overruns.with_label_values(&[w]),
        }
    }
}

/// Counters a worker accumulates between flushes to Prometheus (plain integers on the packet
/// path; one atomic add per counter per tick).
#[derive(Default)]
struct Counters {
    packets_received: u64,
    bytes_received: u64,
    packets_sent: u64,
    bytes_sent: u64,
    tx_pool_exhausted: u64,
    send_failed: u64,
    oversized: u64,
    unknown_socket: u64,
    event_ring_full: u64,
    no_next_hop: u64,
    unknown_port: u64,
    handed_over: u64,
}

// ---------------------------------------------------------------------------------------------
// Control side

struct LegRecord {
    port: u16,
    stats: Arc<SharedLegStats>,
}

struct CallRecord {
    worker: usize,
    legs: [Option<LegRecord>; MAX_LEGS],
}

struct CallRegistry {
    calls: HashMap<CallId, CallRecord>,
    next_id: u64,
    ports: PortAllocator,
}

struct WorkerHandle {
    commands: Mutex<Producer<Command>>,
    events: Mutex<Consumer<WorkerEvent>>,
    waker: Waker,
    thread: Mutex<Option<JoinHandle<()>>>,
    calls: AtomicUsize,
}

pub(crate) struct Control {
    cfg: EngineConfig,
    call_config: CallConfig,
    registry: Mutex<CallRegistry>,
    workers: Vec<WorkerHandle>,
    backend: Backend,
    /// The attached XDP program (AF_XDP only); detached after the workers stop.
    xdp: Mutex<Option<XdpFilter>>,
    /// Which worker holds each media port (AF_XDP only, for handing frames over).
    port_owners: Option<Arc<PortOwners>>,
    stop: Arc<AtomicBool>,
    epoch: std::time::Instant,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks is a bug elsewhere; the data is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What every worker gets, whatever its backend.
struct WorkerSetup {
    index: usize,
    core: Option<usize>,
    per_worker_calls: usize,
    metrics: WorkerMetrics,
    stop: Arc<AtomicBool>,
    epoch: std::time::Instant,
}

/// Spawns a worker whose backend `make` builds on the worker thread (io_uring rings are
/// single-issuer; AF_XDP sockets are bound there), and returns once it exists, with what the
/// backend reports (e.g. its XSK fds).
fn spawn_worker<B, R>(
    setup: WorkerSetup,
    make: impl FnOnce(OwnedFd) -> std::io::Result<(B, R)> + Send + 'static,
) -> Result<(WorkerHandle, R), EngineError>
where
    B: PacketIo + 'static,
    R: Send + 'static,
{
    let (waker, wake_fd) = Waker::new().map_err(|source| EngineError::Io {
        context: "creating a waker",
        source,
    })?;
    let (cmd_tx, cmd_rx) = RingBuffer::new(RING_CAPACITY);
    let (ev_tx, ev_rx) = RingBuffer::new(RING_CAPACITY);
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    let WorkerSetup {
        index,
        core,
        per_worker_calls,
        metrics,
        stop,
        epoch,
    } = setup;
    let thread = std::thread::Builder::new()
        .name(format!("earshot-dp{index}"))
        .spawn(move || {
            if let Some(id) = core {
                core_affinity::set_for_current(core_affinity::CoreId { id });
            }
            let (io, report) = match make(wake_fd) {
                Ok(built) => built,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(report));
            let handles = io.handle_capacity();
            Worker {
                index,
                io,
                commands: cmd_rx,
                events: ev_tx,
                calls: (0..per_worker_calls).map(|_| None).collect(),
                free_calls: (0..per_worker_calls as u32).rev().collect(),
                by_id: HashMap::with_capacity(per_worker_calls),
                owners: vec![None; handles],
                metrics,
                counters: Counters::default(),
                stop,
                epoch,
                ticks: 0,
                tick_spent: Duration::ZERO,
            }
            .run();
        })
        .map_err(|source| EngineError::Io {
            context: "spawning a worker",
            source,
        })?;
    let report = match ready_rx.recv() {
        Ok(Ok(report)) => report,
        Ok(Err(source)) => {
            let _ = thread.join();
            return Err(EngineError::Io {
                context: "starting a data-plane worker",
                source,
            });
        }
        Err(_) => {
            return Err(EngineError::Config(
                "a data-plane worker died while starting".into(),
            ));
        }
    };
    let handle = WorkerHandle {
        commands: Mutex::new(cmd_tx),
        events: Mutex::new(ev_rx),
        waker,
        thread: Mutex::new(Some(thread)),
        calls: AtomicUsize::new(0),
    };
    Ok((handle, report))
}

/// Stops and joins workers that were started before a later step failed.
fn abandon(workers: Vec<WorkerHandle>, stop: &AtomicBool) {
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.waker.wake();
        if let Some(thread) = lock(&w.thread).take() {
            let _ = thread.join();
        }
    }
    stop.store(false, Ordering::Relaxed);
}

/// The started backend: its workers and what keeps AF_XDP running.
struct Started {
    backend: Backend,
    workers: Vec<WorkerHandle>,
    xdp: Option<XdpFilter>,
    port_owners: Option<Arc<PortOwners>>,
}

fn start_uring(
    cfg: &EngineConfig,
    metrics: &Metrics,
    shared: &Shared,
) -> Result<Started, EngineError> {
    let mut workers = Vec::with_capacity(cfg.workers.len());
    for (index, wcfg) in cfg.workers.iter().enumerate() {
        let max_sockets = shared.max_sockets;
        let setup = shared.setup(index, wcfg.core, metrics);
        match spawn_worker(setup, move |wake| {
            Ok((Uring::new(max_sockets, SEND_SLOTS, wake)?, ()))
        }) {
            Ok((handle, ())) => workers.push(handle),
            Err(e) => {
                abandon(workers, &shared.stop);
                return Err(e);
            }
        }
    }
    Ok(Started {
        backend: Backend::Uring,
        workers,
        xdp: None,
        port_owners: None,
    })
}

fn start_afxdp(
    cfg: &EngineConfig,
    metrics: &Metrics,
    registry: &Registry,
    shared: &Shared,
) -> Result<Started, EngineError> {
    let afxdp = |m: String| EngineError::AfXdp(m);
    let holder =
        Interface::holding(cfg.media_ip).map_err(|e| afxdp(format!("listing interfaces: {e}")))?;
    let ifname = match (&cfg.interface, &holder) {
        (Some(name), _) => name.clone(),
        (None, Some(holder)) => holder.clone(),
        (None, None) => {
            return Err(afxdp(format!(
                "no interface holds the media IP {}",
                cfg.media_ip
            )));
        }
    };
    let interface = Interface::lookup(&ifname, cfg.media_ip).map_err(|e| afxdp(e.to_string()))?;
    if holder.as_deref() != Some(ifname.as_str()) {
        return Err(afxdp(format!(
            "the media IP {} is not an address of {ifname}",
            cfg.media_ip
        )));
    }
    let queues = xdp::queue_count(&ifname).map_err(|e| afxdp(e.to_string()))?;
    let workers_n = cfg.workers.len();
    if (queues as usize) < workers_n {
        return Err(afxdp(format!(
            "{ifname} has {queues} queue(s) but {workers_n} workers need one each: \
             raise its channels (ethtool -L {ifname} combined {workers_n}) or run fewer workers"
        )));
    }
    let filter = XdpFilter::attach(
        &ifname,
        &[cfg.media_ip],
        cfg.port_min,
        cfg.port_max,
        XdpMode::Native,
    )
    .map_err(|e| afxdp(e.to_string()))?;
    let xsk_metrics = XskMetrics::register(registry)?;
    let owners = PortOwners::new();
    let mut meshes = afxdp::mesh(workers_n);
    let mut workers = Vec::with_capacity(workers_n);
    for (index, wcfg) in cfg.workers.iter().enumerate() {
        let mine: Vec<u32> = (0..queues)
            .filter(|q| *q as usize % workers_n == index)
            .collect();
        let counters = mine.iter().map(|q| xsk_metrics.for_queue(*q)).collect();
        let setup = AfXdpSetup {
            interface: interface.clone(),
            queues: mine,
            worker: index,
            owners: owners.clone(),
            mesh: meshes.remove(0),
            busy_poll: cfg.busy_poll,
            counters,
        };
        let spawned = spawn_worker(shared.setup(index, wcfg.core, metrics), move |wake| {
            AfXdp::new(setup, wake)
        });
        let fds = match spawned {
            Ok((handle, fds)) => {
                workers.push(handle);
                fds
            }
            Err(e) => {
                abandon(workers, &shared.stop);
                return Err(afxdp(e.to_string()));
            }
        };
        for (queue, fd) in fds {
            if let Err(e) = filter.register_xsk(queue, fd) {
                abandon(workers, &shared.stop);
                return Err(afxdp(e.to_string()));
            }
        }
    }
    tracing::info!(interface = %ifname, queues, mode = ?filter.mode(), "AF_XDP attached");
    Ok(Started {
        backend: Backend::AfXdp,
        workers,
        xdp: Some(filter),
        port_owners: Some(owners),
    })
}

/// What the start functions share.
struct Shared {
    per_worker_calls: usize,
    max_sockets: usize,
    stop: Arc<AtomicBool>,
    epoch: std::time::Instant,
}

impl Shared {
    fn setup(&self, index: usize, core: Option<usize>, metrics: &Metrics) -> WorkerSetup {
        WorkerSetup {
            index,
            core,
            per_worker_calls: self.per_worker_calls,
            metrics: WorkerMetrics::new(metrics, index),
            stop: self.stop.clone(),
            epoch: self.epoch,
        }
    }
}

impl Control {
    pub fn start(cfg: EngineConfig, registry: &Registry) -> Result<Control, EngineError> {
        if cfg.workers.is_empty() {
            return Err(EngineError::Config("at least one worker is needed".into()));
        }
        if cfg.max_calls == 0 {
            return Err(EngineError::Config("max_calls must be at least 1".into()));
        }
        if cfg.silent_timeout < cfg.media_timeout {
            return Err(EngineError::Config(format!(
                "the silent timeout ({:?}) is shorter than the media timeout ({:?})",
                cfg.silent_timeout, cfg.media_timeout
            )));
        }
        if cfg.port_min > cfg.port_max {
            return Err(EngineError::Config(format!(
                "media port range is empty: port_min {} > port_max {}",
                cfg.port_min, cfg.port_max
            )));
        }
        // The media IP must be an address of this host.
        UdpSocket::bind(SocketAddr::new(cfg.media_ip, 0)).map_err(|source| EngineError::Io {
            context: "binding the media IP (is it an address of this host?)",
            source,
        })?;
        let available = core_affinity::get_core_ids().unwrap_or_default();
        for w in &cfg.workers {
            if let Some(core) = w.core
                && !available.iter().any(|c| c.id == core)
            {
                return Err(EngineError::Config(format!(
                    "core {core} is not available (this host has cores {:?})",
                    available.iter().map(|c| c.id).collect::<Vec<_>>()
                )));
            }
        }
        let ports = PortAllocator::new(cfg.media_ip, cfg.port_min, cfg.port_max)?;
        let metrics = Metrics::register(registry)?;
        let call_config = CallConfig {
            media_timeout: cfg.media_timeout,
            silent_timeout: cfg.silent_timeout,
            telephone_event_pt: cfg.telephone_event_pt,
            ..CallConfig::default()
        };
        let per_worker_calls = cfg.max_calls.div_ceil(cfg.workers.len());
        let shared = Shared {
            per_worker_calls,
            max_sockets: (per_worker_calls * MAX_LEGS).min(ports.capacity()),
            stop: Arc::new(AtomicBool::new(false)),
            epoch: std::time::Instant::now(),
        };
        let started = match cfg.backend {
            Backend::Uring => start_uring(&cfg, &metrics, &shared)?,
            Backend::AfXdp => start_afxdp(&cfg, &metrics, registry, &shared)?,
            Backend::Auto => match start_afxdp(&cfg, &metrics, registry, &shared) {
                Ok(started) => started,
                Err(e) => {
                    tracing::warn!("backend auto: {e}; falling back to io_uring");
                    start_uring(&cfg, &metrics, &shared)?
                }
            },
        };
        Ok(Control {
            cfg,
            call_config,
            registry: Mutex::new(CallRegistry {
                calls: HashMap::new(),
                next_id: 1,
                ports,
            }),
            workers: started.workers,
            backend: started.backend,
            xdp: Mutex::new(started.xdp),
            port_owners: started.port_owners,
            stop: shared.stop,
            epoch: shared.epoch,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Records that `worker` holds `port`, for frames that arrive on another worker's queue.
    fn claim(&self, port: u16, worker: usize) {
        if let Some(owners) = &self.port_owners {
            owners.set(port, worker);
        }
    }

    fn unclaim(&self, port: u16) {
        if let Some(owners) = &self.port_owners {
            owners.clear(port);
        }
    }

    fn now(&self) -> Instant {
        Instant::from_micros(self.epoch.elapsed().as_micros() as u64)
    }

    /// Sends a command to a worker and wakes it. On a full ring the command comes back.
    fn send(&self, worker: usize, command: Command) -> Result<(), Command> {
        let w = &self.workers[worker];
        lock(&w.commands)
            .push(command)
            .map_err(|rtrb::PushError::Full(c)| c)?;
        w.waker.wake();
        Ok(())
    }

    pub fn create_call(&self, customer: LegSpec, agent: LegSpec) -> Result<CallMedia, EngineError> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(EngineError::LoadLimit);
        }
        let mut reg = lock(&self.registry);
        if reg.calls.len() >= self.cfg.max_calls {
            return Err(EngineError::LoadLimit);
        }
        let (worker, handle) = self
            .workers
            .iter()
            .enumerate()
            .min_by_key(|(_, w)| w.calls.load(Ordering::Relaxed))
            .ok_or(EngineError::LoadLimit)?;
        let (c_socket, c_local) = reg.ports.allocate()?;
        let (a_socket, a_local) = match reg.ports.allocate() {
            Ok(v) => v,
            Err(e) => {
                reg.ports.release(c_local.port());
                return Err(e);
            }
        };
        let now = self.now();
        let media = Call::new(
            self.call_config,
            new_leg(customer, &self.call_config, now),
            new_leg(agent, &self.call_config, now),
        );
        let stats = [
            Arc::new(SharedLegStats::default()),
            Arc::new(SharedLegStats::default()),
        ];
        let call = CallId(reg.next_id);
        let command = Command::AddCall {
            call,
            media,
            sockets: [c_socket, a_socket],
            stats: stats.clone(),
        };
        if self.send(worker, command).is_err() {
            reg.ports.release(c_local.port());
            reg.ports.release(a_local.port());
            return Err(EngineError::Busy);
        }
        reg.next_id += 1;
        handle.calls.fetch_add(1, Ordering::Relaxed);
        let [c_stats, a_stats] = stats;
        let mut legs: [Option<LegRecord>; MAX_LEGS] = Default::default();
        self.claim(c_local.port(), worker);
        self.claim(a_local.port(), worker);
        legs[0] = Some(LegRecord {
            port: c_local.port(),
            stats: c_stats,
        });
        legs[1] = Some(LegRecord {
            port: a_local.port(),
            stats: a_stats,
        });
        reg.calls.insert(call, CallRecord { worker, legs });
        Ok(CallMedia {
            call,
            customer: c_local,
            agent: a_local,
        })
    }

    pub fn delete_call(&self, call: CallId) -> Result<(), EngineError> {
        let mut reg = lock(&self.registry);
        let record = reg.calls.get(&call).ok_or(EngineError::UnknownCall)?;
        let worker = record.worker;
        self.send(worker, Command::RemoveCall { call })
            .map_err(|_| EngineError::Busy)?;
        if let Some(record) = reg.calls.remove(&call) {
            for leg in record.legs.iter().flatten() {
                reg.ports.release(leg.port);
                self.unclaim(leg.port);
            }
        }
        self.workers[worker].calls.fetch_sub(1, Ordering::Relaxed);
        Ok(())
    }

    pub fn add_supervisor(
        &self,
        call: CallId,
        spec: LegSpec,
        beep: bool,
    ) -> Result<SupervisorMedia, EngineError> {
        let mut reg = lock(&self.registry);
        let record = reg.calls.get(&call).ok_or(EngineError::UnknownCall)?;
        let worker = record.worker;
        let slot = (2..MAX_LEGS)
            .find(|i| record.legs[*i].is_none())
            .ok_or(EngineError::TooManySupervisors)?;
        let (socket, local) = reg.ports.allocate()?;
        let stats = Arc::new(SharedLegStats::default());
        let leg = new_leg(spec, &self.call_config, self.now());
        let slot_id = LegId(slot as u8);
        let command = Command::AddSupervisor {
            call,
            slot: slot_id,
            leg,
            socket,
            stats: stats.clone(),
            beep,
        };
        if self.send(worker, command).is_err() {
            reg.ports.release(local.port());
            return Err(EngineError::Busy);
        }
        if let Some(record) = reg.calls.get_mut(&call) {
            self.claim(local.port(), worker);
            record.legs[slot] = Some(LegRecord {
                port: local.port(),
                stats,
            });
        }
        Ok(SupervisorMedia {
            leg: slot_id,
            local,
        })
    }

    fn supervisor_record(
        reg: &CallRegistry,
        call: CallId,
        leg: LegId,
    ) -> Result<usize, EngineError> {
        let record = reg.calls.get(&call).ok_or(EngineError::UnknownCall)?;
        if !leg.is_supervisor() || record.legs.get(leg.index()).is_none_or(Option::is_none) {
            return Err(EngineError::UnknownLeg);
        }
        Ok(record.worker)
    }

    pub fn remove_supervisor(&self, call: CallId, leg: LegId) -> Result<(), EngineError> {
        let mut reg = lock(&self.registry);
        let worker = Self::supervisor_record(&reg, call, leg)?;
        self.send(worker, Command::RemoveSupervisor { call, slot: leg })
            .map_err(|_| EngineError::Busy)?;
        let released = reg
            .calls
            .get_mut(&call)
            .and_then(|r| r.legs[leg.index()].take());
        if let Some(record) = released {
            reg.ports.release(record.port);
            self.unclaim(record.port);
        }
        Ok(())
    }

    pub fn set_mode(&self, call: CallId, leg: LegId, mode: Mode) -> Result<(), EngineError> {
        let reg = lock(&self.registry);
        let worker = Self::supervisor_record(&reg, call, leg)?;
        self.send(
            worker,
            Command::SetMode {
                call,
                slot: leg,
                mode,
            },
        )
        .map_err(|_| EngineError::Busy)
    }

    pub fn set_remote(
        &self,
        call: CallId,
        leg: LegId,
        remote: SocketAddr,
    ) -> Result<(), EngineError> {
        let reg = lock(&self.registry);
        let record = reg.calls.get(&call).ok_or(EngineError::UnknownCall)?;
        if record.legs.get(leg.index()).is_none_or(Option::is_none) {
            return Err(EngineError::UnknownLeg);
        }
        self.send(record.worker, Command::SetRemote { call, leg, remote })
            .map_err(|_| EngineError::Busy)
    }

    pub fn set_held(&self, call: CallId, leg: LegId, held: bool) -> Result<(), EngineError> {
        let reg = lock(&self.registry);
        let record = reg.calls.get(&call).ok_or(EngineError::UnknownCall)?;
        if record.legs.get(leg.index()).is_none_or(Option::is_none) {
            return Err(EngineError::UnknownLeg);
        }
        self.send(record.worker, Command::SetHeld { call, leg, held })
            .map_err(|_| EngineError::Busy)
    }

    pub fn leg_stats(&self, call: CallId, leg: LegId) -> Option<LegStats> {
        let reg = lock(&self.registry);
        let record = reg.calls.get(&call)?;
        record
            .legs
            .get(leg.index())?
            .as_ref()
            .map(|l| l.stats.read())
    }

    pub fn drain_events(&self, out: &mut Vec<EngineEvent>) {
        for w in &self.workers {
            let mut events = lock(&w.events);
            while let Ok(WorkerEvent::Call { call, event }) = events.pop() {
                out.push(match event {
                    CallEvent::Dtmf { leg, digit } => EngineEvent::Dtmf { call, leg, digit },
                    CallEvent::MediaTimeout { leg } => EngineEvent::MediaTimeout { call, leg },
                    CallEvent::Latched { leg, remote } => {
                        EngineEvent::Latched { call, leg, remote }
                    }
                });
            }
        }
    }

    pub fn calls(&self) -> usize {
        lock(&self.registry).calls.len()
    }

    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Relaxed);
        for w in &self.workers {
            w.waker.wake();
            if let Some(thread) = lock(&w.thread).take() {
                let _ = thread.join();
            }
        }
        if let Some(filter) = lock(&self.xdp).take()
            && let Err(e) = filter.detach()
        {
            tracing::warn!(error = %e, "detaching the XDP program");
        }
        let mut reg = lock(&self.registry);
        let ports: Vec<u16> = reg
            .calls
            .drain()
            .flat_map(|(_, r)| r.legs.into_iter().flatten().map(|l| l.port))
            .collect();
        for port in ports {
            reg.ports.release(port);
            self.unclaim(port);
        }
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        self.shutdown();
    }
}

// ---------------------------------------------------------------------------------------------
// Worker

struct CallEntry {
    id: CallId,
    media: Box<Call>,
    sockets: [Option<LegIo>; MAX_LEGS],
    stats: [Option<Arc<SharedLegStats>>; MAX_LEGS],
}

/// Which call and leg a socket belongs to, by socket index.
#[derive(Clone, Copy)]
struct Owner {
    socket: LegIo,
    call_slot: u32,
    leg: LegId,
}

/// A phase of a tick being worked through in chunks.
struct TickProgress {
    /// The phase's scheduled time: the `now` each of its calls is ticked with.
    at: Instant,
    /// The next call slot to mix: the phase's calls are in slots `phase`, `phase + PHASES`, …
    cursor: usize,
}

impl TickProgress {
    fn phase(&self) -> usize {
        self.cursor % PHASES
    }
}

pub(crate) struct Worker<B: PacketIo> {
    index: usize,
    io: B,
    commands: Consumer<Command>,
    events: Producer<WorkerEvent>,
    calls: Vec<Option<CallEntry>>,
    free_calls: Vec<u32>,
    by_id: HashMap<CallId, u32>,
    owners: Vec<Option<Owner>>,
    metrics: WorkerMetrics,
    counters: Counters,
    stop: Arc<AtomicBool>,
    epoch: std::time::Instant,
    ticks: u64,
    /// Time spent mixing in the current tick's phases so far (excluding the I/O in between).
    tick_spent: Duration,
}

/// A call's view of the worker's I/O while it runs.
struct Sink<'a> {
    tx: &'a mut dyn Transmit,
    sockets: &'a [Option<LegIo>; MAX_LEGS],
    events: &'a mut Producer<WorkerEvent>,
    counters: &'a mut Counters,
    call: CallId,
}

impl Output for Sink<'_> {
    fn transmit(&mut self, leg: LegId, dst: SocketAddr, datagram: &[u8]) {
        let Some(Some(socket)) = self.sockets.get(leg.index()) else {
            return;
        };
        match self.tx.send(*socket, dst, datagram) {
            Ok(()) => {
                self.counters.packets_sent += 1;
                self.counters.bytes_sent += datagram.len() as u64;
            }
            Err(SendError::PoolExhausted) => self.counters.tx_pool_exhausted += 1,
            Err(SendError::Invalid) => self.counters.oversized += 1,
            Err(SendError::NoNextHop) => self.counters.no_next_hop += 1,
        }
    }

    fn event(&mut self, event: CallEvent) {
        if self
            .events
            .push(WorkerEvent::Call {
                call: self.call,
                event,
            })
            .is_err()
        {
            self.counters.event_ring_full += 1;
        }
    }
}

impl<B: PacketIo> Worker<B> {
    fn now(&self) -> Instant {
        Instant::from_micros(self.epoch.elapsed().as_micros() as u64)
    }

    fn run(mut self) {
        let mut next_tick = self.now() + PHASE;
        let mut next_phase = 0;
        let mut tick: Option<TickProgress> = None;
        while !self.stop.load(Ordering::Relaxed) {
            self.apply_commands();
            if let Err(e) = self.reap() {
                tracing::error!(worker = self.index, error = %e, "polling the packet I/O failed");
            }
            let now = self.now();
            if tick.is_none() && now >= next_tick {
                if next_phase == 0 && now.saturating_since(next_tick) >= TICK {
                    self.metrics.tick_overruns.inc();
                }
                if now.saturating_since(next_tick) > MAX_TICK_LAG {
                    // Too far behind to catch up without making it worse: the mixed outputs
                    // lose the missed frames (their timestamps show the gap) and the schedule
                    // restarts from now.
                    next_tick = now;
                }
                tick = Some(TickProgress {
                    at: next_tick,
                    cursor: next_phase,
                });
                next_tick += PHASE;
                next_phase = (next_phase + 1) % PHASES;
            }
            if let Some(progress) = tick.take() {
                tick = self.tick_chunk(progress);
            }
            // While a tick is in progress, only flush and collect I/O; otherwise sleep until
            // the next tick or the next completion.
            let wait = if tick.is_some() {
                Duration::ZERO
            } else {
                next_tick
                    .saturating_since(self.now())
                    .max(Duration::from_micros(50))
            };
            if let Err(e) = self.io.wait(wait) {
                tracing::error!(worker = self.index, error = %e, "waiting on the packet I/O failed");
            }
        }
        self.io.shutdown();
    }

    fn apply_commands(&mut self) {
        while let Ok(command) = self.commands.pop() {
            self.apply(command);
        }
    }

    fn register(&mut self, socket: UdpSocket, call_slot: u32, leg: LegId) -> Option<LegIo> {
        match self.io.add_leg(socket) {
            Ok(Some(id)) => {
                if let Some(owner) = self.owners.get_mut(id.index()) {
                    *owner = Some(Owner {
                        socket: id,
                        call_slot,
                        leg,
                    });
                }
                Some(id)
            }
            Ok(None) => {
                tracing::error!(worker = self.index, "socket table full; leg gets no media");
                None
            }
            Err(e) => {
                tracing::error!(worker = self.index, error = %e, "registering a media socket failed");
                None
            }
        }
    }

    fn unregister(&mut self, socket: LegIo) {
        if let Some(owner) = self.owners.get_mut(socket.index()) {
            *owner = None;
        }
        if let Err(e) = self.io.remove_leg(socket) {
            tracing::error!(worker = self.index, error = %e, "removing a media socket failed");
        }
    }

    fn apply(&mut self, command: Command) {
        match command {
            Command::AddCall {
                call,
                media,
                sockets,
                stats,
            } => {
                let Some(slot) = self.free_calls.pop() else {
                    tracing::error!(worker = self.index, "call table full; call refused");
                    return;
                };
                let [c, a] = sockets;
                let [cs, as_] = stats;
                let mut entry = CallEntry {
                    id: call,
                    media,
                    sockets: [None; MAX_LEGS],
                    stats: Default::default(),
                };
                entry.sockets[0] = self.register(c, slot, LegId::CUSTOMER);
                entry.sockets[1] = self.register(a, slot, LegId::AGENT);
                entry.stats[0] = Some(cs);
                entry.stats[1] = Some(as_);
                self.calls[slot as usize] = Some(entry);
                self.by_id.insert(call, slot);
            }
            Command::RemoveCall { call } => {
                let Some(slot) = self.by_id.remove(&call) else {
                    return;
                };
                if let Some(entry) = self.calls[slot as usize].take() {
                    let entry = self.retire(entry);
                    for socket in entry.sockets.into_iter().flatten() {
                        self.unregister(socket);
                    }
                }
                self.free_calls.push(slot);
            }
            Command::AddSupervisor {
                call,
                slot,
                leg,
                socket,
                stats,
                beep,
            } => {
                let Some(&call_slot) = self.by_id.get(&call) else {
                    return;
                };
                let id = self.register(socket, call_slot, slot);
                let Some(entry) = self.calls[call_slot as usize].as_mut() else {
                    return;
                };
                if entry.media.add_supervisor(slot, leg, beep).is_ok() {
                    entry.sockets[slot.index()] = id;
                    entry.stats[slot.index()] = Some(stats);
                } else if let Some(id) = id {
                    self.unregister(id);
                }
            }
            Command::RemoveSupervisor { call, slot } => {
                let Some(&call_slot) = self.by_id.get(&call) else {
                    return;
                };
                let Some(entry) = self.calls[call_slot as usize].as_mut() else {
                    return;
                };
                entry.media.remove_supervisor(slot);
                entry.stats[slot.index()] = None;
                if let Some(socket) = entry.sockets[slot.index()].take() {
                    self.unregister(socket);
                }
            }
            Command::SetMode { call, slot, mode } => {
                if let Some(entry) = self.entry_mut(call) {
                    entry.media.set_mode(slot, mode);
                }
            }
            Command::SetRemote { call, leg, remote } => {
                if let Some(entry) = self.entry_mut(call) {
                    entry.media.set_remote(leg, remote);
                }
            }
            Command::SetHeld { call, leg, held } => {
                let now = self.now();
                if let Some(entry) = self.entry_mut(call) {
                    entry.media.set_held(leg, held, now);
                }
            }
        }
    }

    fn entry_mut(&mut self, call: CallId) -> Option<&mut CallEntry> {
        let slot = *self.by_id.get(&call)?;
        self.calls.get_mut(slot as usize)?.as_mut()
    }

    fn reap(&mut self) -> std::io::Result<()> {
        let now = self.now();
        let Worker {
            io,
            calls,
            owners,
            events,
            counters,
            ..
        } = self;
        io.poll(&mut |polled| match polled {
            Polled::Datagram {
                io: leg_io,
                src,
                data,
                tx,
            } => {
                counters.packets_received += 1;
                counters.bytes_received += data.len() as u64;
                let owner = owners
                    .get(leg_io.index())
                    .copied()
                    .flatten()
                    .filter(|o| o.socket == leg_io);
                let entry = owner.and_then(|o| {
                    calls
                        .get_mut(o.call_slot as usize)?
                        .as_mut()
                        .map(|e| (o, e))
                });
                match entry {
                    Some((owner, entry)) => {
                        let mut sink = Sink {
                            tx,
                            sockets: &entry.sockets,
                            events,
                            counters,
                            call: entry.id,
                        };
                        entry
                            .media
                            .handle_datagram(owner.leg, src, data, now, &mut sink);
                    }
                    None => counters.unknown_socket += 1,
                }
            }
            Polled::Malformed => {
                counters.packets_received += 1;
                counters.oversized += 1;
            }
            Polled::UnknownPort => {
                counters.packets_received += 1;
                counters.unknown_port += 1;
            }
            Polled::SendFailed => counters.send_failed += 1,
            Polled::HandedOver => counters.handed_over += 1,
        })
    }

    /// Mixes up to [`TICK_CHUNK`] calls of the phase in progress, at the phase's scheduled time
    /// (so a phase that runs late still produces frames in step). Returns the progress left, or
    /// `None` when the phase is complete; after the last phase of a tick, the tick's statistics
    /// are published.
    fn tick_chunk(&mut self, mut progress: TickProgress) -> Option<TickProgress> {
        let started = std::time::Instant::now();
        let Worker {
            io,
            calls,
            events,
            counters,
            ..
        } = self;
        let mut mixed = 0;
        while progress.cursor < calls.len() && mixed < TICK_CHUNK {
            if let Some(entry) = calls[progress.cursor].as_mut() {
                let mut tx = io.sender();
                let mut sink = Sink {
                    tx: &mut tx,
                    sockets: &entry.sockets,
                    events,
                    counters,
                    call: entry.id,
                };
                entry.media.tick(progress.at, &mut sink);
                mixed += 1;
            }
            progress.cursor += PHASES;
        }
        self.tick_spent += started.elapsed();
        if progress.cursor < calls.len() {
            return Some(progress);
        }
        if progress.phase() + 1 < PHASES {
            return None;
        }
        let spent = core::mem::replace(&mut self.tick_spent, Duration::ZERO);
        self.metrics.tick_duration.observe(spent.as_secs_f64());
        self.publish();
        self.ticks += 1;
        None
    }

    /// Publishes this tick's share of leg statistics and call drops, and flushes counters.
    fn publish(&mut self) {
        let phase = self.ticks % STATS_SPREAD;
        if phase == 0 {
            self.io.housekeeping();
        }
        let mut drops = [0u64; DropReason::COUNT];
        for (slot, entry) in self.calls.iter_mut().enumerate() {
            let Some(entry) = entry.as_mut() else {
                continue;
            };
            if slot as u64 % STATS_SPREAD != phase {
                continue;
            }
            for (i, d) in entry.media.take_drops().into_iter().enumerate() {
                drops[i] += d;
            }
            for (i, stats) in entry.stats.iter().enumerate() {
                if let (Some(stats), Some(leg)) = (stats, entry.media.leg(LegId(i as u8))) {
                    stats.publish(leg);
                }
            }
        }
        for (counter, n) in self.metrics.dropped_media.iter().zip(drops) {
            if n > 0 {
                counter.inc_by(n);
            }
        }
        let c = core::mem::take(&mut self.counters);
        let m = &self.metrics;
        for (counter, n) in [
            (&m.packets_received, c.packets_received),
            (&m.bytes_received, c.bytes_received),
            (&m.packets_sent, c.packets_sent),
            (&m.bytes_sent, c.bytes_sent),
            (&m.tx_pool_exhausted, c.tx_pool_exhausted),
            (&m.send_failed, c.send_failed),
            (&m.oversized, c.oversized),
            (&m.unknown_socket, c.unknown_socket),
            (&m.event_ring_full, c.event_ring_full),
            (&m.no_next_hop, c.no_next_hop),
            (&m.unknown_port, c.unknown_port),
            (&m.handed_over, c.handed_over),
        ] {
            if n > 0 {
                counter.inc_by(n);
            }
        }
    }

    /// A call is going away: publish its final statistics and drops so a last read is
    /// accurate. Returns it for its sockets to be released.
    fn retire(&self, mut entry: CallEntry) -> CallEntry {
        for (counter, n) in self
            .metrics
            .dropped_media
            .iter()
            .zip(entry.media.take_drops())
        {
            if n > 0 {
                counter.inc_by(n);
            }
        }
        for (i, stats) in entry.stats.iter().enumerate() {
            if let (Some(stats), Some(leg)) = (stats, entry.media.leg(LegId(i as u8))) {
                stats.publish(leg);
            }
        }
        entry
    }
}

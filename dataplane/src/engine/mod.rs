//! The engine: worker threads pinned to cores, each owning its calls and sockets, driving the
//! sans-IO media core from an I/O backend on a 20 ms tick (docs/design.md §9.1, §9.5).
//!
//! The [`Engine`] handle is the control plane's side. It admits calls (binds their sockets,
//! builds their media state: every allocation happens here, at admission), validates every
//! request synchronously against its own registry, and only then sends a typed
//! [`command::Command`] over the worker's SPSC ring. Workers answer with
//! [`command::WorkerEvent`]s on their own ring.

mod afxdp;
mod backend;
pub mod command;
mod ports;
mod stats;
mod uring;
mod worker;
pub mod xdp;

use std::net::{IpAddr, SocketAddr};

pub use stats::LegStats;

use crate::media::matrix::{LegId, Mode};
use crate::time::Duration;
use crate::wire::g711::Codec;

/// Which packet I/O a worker uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// io_uring UDP sockets, one per leg, batched receive and send.
    #[default]
    Uring,
    /// AF_XDP sockets on the media interface's queues, fed by the XDP program.
    AfXdp,
    /// AF_XDP where it can be had; otherwise io_uring, with one log line saying why.
    Auto,
}

impl Backend {
    pub const fn as_str(self) -> &'static str {
        match self {
            Backend::Uring => "uring",
            Backend::AfXdp => "afxdp",
            Backend::Auto => "auto",
        }
    }
}

/// One data-plane worker thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WorkerConfig {
    /// The CPU core the worker is pinned to; `None` leaves it to the scheduler.
    pub core: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The local address every media leg is bound to.
    pub media_ip: IpAddr,
    /// The media port range, inclusive. Legs get even ports (the odd one is left for RTCP).
    pub port_min: u16,
    pub port_max: u16,
    pub workers: Vec<WorkerConfig>,
    pub backend: Backend,
    /// The interface AF_XDP binds to (it must hold `media_ip`); when `None`, the interface
    /// that holds `media_ip`.
    pub interface: Option<String>,
    /// Ask the kernel to busy-poll the AF_XDP sockets (where it offers it).
    pub busy_poll: bool,
    /// A leg that receives no RTP for this long is reported as [`EngineEvent::MediaTimeout`].
    pub media_timeout: Duration,
    /// The same for a held leg ([`Engine::set_held`]); not shorter than `media_timeout`.
    pub silent_timeout: Duration,
    /// Calls the engine admits in all; beyond it `create_call` answers
    /// [`EngineError::LoadLimit`].
    pub max_calls: usize,
    /// The RTP payload type of RFC 4733 telephone-events on every leg.
    pub telephone_event_pt: u8,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            media_ip: IpAddr::from([127, 0, 0, 1]),
            port_min: 20000,
            port_max: 29999,
            workers: vec![WorkerConfig::default()],
            backend: Backend::Uring,
            interface: None,
            busy_poll: true,
            media_timeout: Duration::from_secs(60),
            silent_timeout: Duration::from_secs(3600),
            max_calls: 10_000,
            telephone_event_pt: 101,
        }
    }
}

/// A call as the engine knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

/// What the control plane says about one leg when creating it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegSpec {
    /// The party's media address, when known (strict source); otherwise the leg latches.
    pub remote: Option<SocketAddr>,
    pub codec: Codec,
}

impl Default for LegSpec {
    fn default() -> Self {
        LegSpec {
            remote: None,
            codec: Codec::Pcmu,
        }
    }
}

/// The local media addresses allocated to a new call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallMedia {
    pub call: CallId,
    pub customer: SocketAddr,
    pub agent: SocketAddr,
}

/// The leg allocated to a new supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupervisorMedia {
    pub leg: LegId,
    pub local: SocketAddr,
}

/// What the data plane tells the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineEvent {
    /// A supervisor pressed a key (RFC 4733 event, reported once per key press).
    Dtmf {
        call: CallId,
        leg: LegId,
        digit: char,
    },
    /// A leg sent no RTP for the configured media timeout, or the silent timeout while held
    /// (reported once, until RTP flows again or its hold changes).
    MediaTimeout { call: CallId, leg: LegId },
    /// A leg created without a remote address latched to its first source, `remote`, and is
    /// locked to it (reported once per leg).
    Latched {
        call: CallId,
        leg: LegId,
        remote: SocketAddr,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no free media port in the configured range")]
    PortsExhausted,
    #[error("the data plane is at its call capacity")]
    LoadLimit,
    #[error("the data plane's command ring is full; retry")]
    Busy,
    #[error("unknown call")]
    UnknownCall,
    #[error("unknown leg")]
    UnknownLeg,
    #[error("the call already has the most supervisors it can carry")]
    TooManySupervisors,
    #[error("invalid engine configuration: {0}")]
    Config(String),
    #[error("AF_XDP is not available: {0}")]
    AfXdp(String),
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        source: std::io::Error,
    },
}

/// The control plane's handle on the data plane. `Send + Sync`: handlers share it.
pub struct Engine {
    inner: worker::Control,
}

impl Engine {
    /// Binds nothing yet: starts the workers (pinned where configured) and registers the
    /// engine's metrics (`earshot_*`, labelled by `worker`) in `registry`.
    pub fn start(
        cfg: EngineConfig,
        registry: &prometheus::Registry,
    ) -> Result<Engine, EngineError> {
        Ok(Engine {
            inner: worker::Control::start(cfg, registry)?,
        })
    }

    /// Admits a call: binds a local media port for each leg and hands the call to a worker.
    pub fn create_call(&self, customer: LegSpec, agent: LegSpec) -> Result<CallMedia, EngineError> {
        self.inner.create_call(customer, agent)
    }

    /// Releases a call and its ports.
    pub fn delete_call(&self, call: CallId) -> Result<(), EngineError> {
        self.inner.delete_call(call)
    }

    /// Adds a supervisor leg in [`Mode::Listen`]; `beep` plays the supervision tone to the agent.
    pub fn add_supervisor(
        &self,
        call: CallId,
        spec: LegSpec,
        beep: bool,
    ) -> Result<SupervisorMedia, EngineError> {
        self.inner.add_supervisor(call, spec, beep)
    }

    /// Removes a supervisor leg and releases its port.
    pub fn remove_supervisor(&self, call: CallId, leg: LegId) -> Result<(), EngineError> {
        self.inner.remove_supervisor(call, leg)
    }

    /// Changes a supervisor leg's mode.
    pub fn set_mode(&self, call: CallId, leg: LegId, mode: Mode) -> Result<(), EngineError> {
        self.inner.set_mode(call, leg, mode)
    }

    /// Sets a leg's remote address; the leg becomes strict-source.
    pub fn set_remote(
        &self,
        call: CallId,
        leg: LegId,
        remote: SocketAddr,
    ) -> Result<(), EngineError> {
        self.inner.set_remote(call, leg, remote)
    }

    /// Puts a leg's party on hold or takes it off: a held leg is reported silent only after
    /// the silent timeout, and its silence is counted afresh from now (see
    /// [`command::Command::SetHeld`]).
    pub fn set_held(&self, call: CallId, leg: LegId, held: bool) -> Result<(), EngineError> {
        self.inner.set_held(call, leg, held)
    }

    /// The leg's statistics as last published by its worker (every tick).
    pub fn leg_stats(&self, call: CallId, leg: LegId) -> Option<LegStats> {
        self.inner.leg_stats(call, leg)
    }

    /// Moves every pending worker event into `out`, without blocking.
    pub fn drain_events(&self, out: &mut Vec<EngineEvent>) {
        self.inner.drain_events(out)
    }

    /// The backend the workers run (never `Auto`: what `Auto` chose).
    pub fn backend(&self) -> Backend {
        self.inner.backend()
    }

    /// Calls currently admitted.
    pub fn calls(&self) -> usize {
        self.inner.calls()
    }

    /// Stops the workers and releases every call. Idempotent; also done on drop.
    pub fn shutdown(&self) {
        self.inner.shutdown()
    }
}

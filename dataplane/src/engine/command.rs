//! Typed messages over the SPSC rings between the control side ([`super::Engine`]) and one
//! worker (STYLE.md 5). The control side validates every command against its own registry
//! before sending it, so a worker only sees commands that are legal for its state; a worker
//! that still finds one stale (e.g. a call it removed after a media timeout raced with the
//! command) ignores it.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use super::CallId;
use super::stats::SharedLegStats;
use crate::media::call::{Call, CallEvent, Leg};
use crate::media::matrix::{LegId, Mode};

/// Control side → worker.
pub enum Command {
    /// Admit a new call. Legal once per `call`. Carries everything the call will need: its
    /// media state, the bound sockets of the customer and agent legs (in that order) and the
    /// cells their statistics are published to.
    AddCall {
        call: CallId,
        media: Box<Call>,
        sockets: [UdpSocket; 2],
        stats: [Arc<SharedLegStats>; 2],
    },
    /// Release a call: its sockets are closed once the kernel has given back their buffers.
    RemoveCall { call: CallId },
    /// Add a supervisor leg at a slot the control side reserved for it (a supervisor slot that
    /// is free in the call).
    AddSupervisor {
        call: CallId,
        slot: LegId,
        leg: Box<Leg>,
        socket: UdpSocket,
        stats: Arc<SharedLegStats>,
        beep: bool,
    },
    /// Remove a supervisor leg that was added.
    RemoveSupervisor { call: CallId, slot: LegId },
    /// Change the mode of a supervisor leg that was added.
    SetMode {
        call: CallId,
        slot: LegId,
        mode: Mode,
    },
    /// Set the remote address of any existing leg (it becomes strict-source).
    SetRemote {
        call: CallId,
        leg: LegId,
        remote: SocketAddr,
    },
}

/// Worker → control side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerEvent {
    /// Something a call reported (DTMF from a supervisor, a media timeout).
    Call { call: CallId, event: CallEvent },
}

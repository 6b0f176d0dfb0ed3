//! Typed messages over the SPSC rings between the control side ([`super::Engine`]) and one
//! worker (docs/design.md §9.5). The control side validates every command against its own registry
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
    /// Put any existing leg's party on hold (`held`) or take it off ([`Call::set_held`]):
    /// while held, the leg is reported silent only after the silent timeout. Legal at any time
    /// for a leg of an admitted call; legs are independent (a softswitch's `hold` marks the
    /// customer and the agent, an SDP direction a single leg), and repeating a state changes
    /// nothing.
    SetHeld {
        call: CallId,
        leg: LegId,
        held: bool,
    },
}

/// Worker → control side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerEvent {
    /// Something a call reported (DTMF from a supervisor, a media timeout, a latch).
    Call { call: CallId, event: CallEvent },
}

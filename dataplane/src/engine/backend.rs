//! What a worker needs from its packet I/O, so that one worker loop (calls, commands, the
//! tick) runs over either backend: io_uring UDP sockets ([`super::uring`]) or AF_XDP sockets
//! ([`super::afxdp`]).

use std::io;
use std::net::{SocketAddr, UdpSocket};

use crate::time::Duration;

/// A leg's handle in its worker's backend. Stale handles (of a removed leg) are harmless:
/// every operation checks the generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegIo {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl LegIo {
    /// The handle's index in its backend's table (dense, below the table's capacity).
    pub fn index(self) -> usize {
        self.index as usize
    }
}

/// Why a datagram was not queued for sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// Every send buffer is in flight.
    PoolExhausted,
    /// The handle is stale or the datagram too large.
    Invalid,
    /// No link-layer address is known for the destination (AF_XDP builds its own frames).
    NoNextHop,
}

/// Queues datagrams from a leg's local address.
pub trait Transmit {
    fn send(&mut self, io: LegIo, dst: SocketAddr, datagram: &[u8]) -> Result<(), SendError>;
}

/// What a backend's poll reports.
pub enum Polled<'a> {
    /// A datagram for a leg of this worker, read in place, with a sender to answer it.
    Datagram {
        io: LegIo,
        src: SocketAddr,
        data: &'a [u8],
        tx: &'a mut dyn Transmit,
    },
    /// A datagram that could not be used: oversized, truncated, unparseable.
    Malformed,
    /// A datagram for a media port no leg holds.
    UnknownPort,
    /// A send the kernel refused after queueing.
    SendFailed,
    /// A datagram that arrived here for a leg of another worker and was handed to it.
    HandedOver,
}

/// A worker's packet I/O. Created on the worker thread and used only there.
pub trait PacketIo {
    type Tx<'a>: Transmit
    where
        Self: 'a;

    /// One more than the largest [`LegIo::index`] this backend hands out: the size of the
    /// worker's table from handles to legs.
    fn handle_capacity(&self) -> usize;
    /// Takes over a leg's bound socket. `Ok(None)` when the backend's table is full.
    fn add_leg(&mut self, socket: UdpSocket) -> io::Result<Option<LegIo>>;
    /// Releases a leg; its socket is closed once the backend no longer needs it.
    fn remove_leg(&mut self, io: LegIo) -> io::Result<()>;
    /// A sender for datagrams that do not answer a receive (the mix tick).
    fn sender(&mut self) -> Self::Tx<'_>;
    /// Handles everything received since the last poll, without blocking.
    fn poll(&mut self, on: &mut dyn FnMut(Polled<'_>)) -> io::Result<()>;
    /// Flushes what was queued and blocks until I/O is ready, the worker is woken, or
    /// `timeout` passes.
    fn wait(&mut self, timeout: Duration) -> io::Result<()>;
    /// Periodic upkeep off the packet path (once a second): e.g. exporting kernel statistics.
    fn housekeeping(&mut self) {}
    /// Gives back every buffer the kernel holds; called once, when the worker stops.
    fn shutdown(&mut self);
}

//! The io_uring UDP backend: one socket per leg, one receive always armed on each, a fixed pool
//! of send slots, everything submitted in batches with one `io_uring_enter` per loop turn.
//!
//! This is one of the two modules where `unsafe` is allowed: the kernel reads and writes the
//! buffers an SQE points at until its completion arrives, which Rust cannot see. The safe API
//! below upholds that invariant by construction:
//! - receive buffers ([`RecvSlot`]) are boxed, owned by [`Uring`], and freed only when their
//!   last completion has been reaped ([`Uring::remove_socket`] cancels and defers);
//! - send buffers live in a pool allocated once; a slot returns to the free list only when its
//!   completion is reaped;
//! - a socket's fd is closed only after its receive completed, and after every SQE queued so far
//!   has been submitted (so no queued send names a closed, possibly reused, fd).
//!
//! Nothing here allocates per packet: slots are allocated at admission (receive) or at start
//! (send), completions are reaped into a caller-provided array.

#![allow(unsafe_code)]

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use io_uring::{IoUring, opcode, squeue, types};
use socket2::SockAddr;

use super::backend::{LegIo, PacketIo, Polled, SendError, Transmit};
use crate::media::call::MAX_DATAGRAM;
use crate::time::Duration;

/// The receive buffer size: larger than any datagram we accept, so an oversized one is seen as
/// such (truncated flag) rather than silently cut.
const RECV_BUF: usize = 2048;

/// What a user-data word refers to.
const KIND_RECV: u64 = 1;
const KIND_SEND: u64 = 2;
const KIND_CANCEL: u64 = 3;
const KIND_WAKE: u64 = 4;

fn user_data(kind: u64, generation: u32, index: u32) -> u64 {
    (kind << 56) | (u64::from(generation & 0x00FF_FFFF) << 32) | u64::from(index)
}

fn split_user_data(ud: u64) -> (u64, u32, u32) {
    (ud >> 56, ((ud >> 32) & 0x00FF_FFFF) as u32, ud as u32)
}

/// A receive buffer with the `msghdr` that points into it. Boxed: the kernel holds its address.
struct RecvSlot {
    buf: [u8; RECV_BUF],
    addr: libc::sockaddr_storage,
    iov: libc::iovec,
    msg: libc::msghdr,
}

impl RecvSlot {
    fn new() -> Box<RecvSlot> {
        // SAFETY: all-zero is a valid value for these plain C structs and byte arrays.
        Box::new(unsafe { core::mem::zeroed() })
    }

    /// Points the msghdr at this slot's own buffer and address storage.
    fn prepare(&mut self) -> *mut libc::msghdr {
        self.iov = libc::iovec {
            iov_base: self.buf.as_mut_ptr().cast(),
            iov_len: RECV_BUF,
        };
        self.msg.msg_name = (&raw mut self.addr).cast();
        self.msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        self.msg.msg_iov = &raw mut self.iov;
        self.msg.msg_iovlen = 1;
        self.msg.msg_control = core::ptr::null_mut();
        self.msg.msg_controllen = 0;
        self.msg.msg_flags = 0;
        &raw mut self.msg
    }

    fn source(&self) -> Option<SocketAddr> {
        let len = self.msg.msg_namelen;
        let mut storage = socket2::SockAddrStorage::zeroed();
        // SAFETY: `SockAddrStorage` is `repr(transparent)` over `sockaddr_storage` (the
        // documented pattern of `view_as`); the kernel wrote a valid address of at most `len`
        // bytes into ours, and `len` is clamped to the storage size.
        let addr = unsafe {
            *storage.view_as::<libc::sockaddr_storage>() = self.addr;
            SockAddr::new(
                storage,
                len.min(size_of::<libc::sockaddr_storage>() as libc::socklen_t),
            )
        };
        addr.as_socket()
    }
}

/// The state of one socket entry.
struct SocketEntry {
    socket: Option<UdpSocket>,
    slot: Box<RecvSlot>,
    generation: u32,
    /// A receive is in the kernel's hands: the slot must not be freed.
    armed: bool,
    /// Removal was requested: free the entry when the receive completes.
    closing: bool,
}

/// A send buffer and its msghdr, in the pool allocated at start.
struct SendSlot {
    buf: [u8; MAX_DATAGRAM],
    addr: SockAddr,
    iov: libc::iovec,
    msg: libc::msghdr,
}

/// A completion reaped from the ring, in the caller's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A datagram arrived on `socket` from `src`; read it with [`Uring::received`], then call
    /// [`Uring::rearm`].
    Received {
        socket: LegIo,
        src: SocketAddr,
        len: usize,
    },
    /// A datagram larger than we accept, or from an address we cannot parse: dropped.
    /// The receive has been re-armed.
    Malformed { socket: LegIo },
    /// A send failed (e.g. ICMP unreachable surfaced as ECONNREFUSED).
    SendFailed,
    /// The control side woke the worker.
    Woken,
}

/// The backend of one worker.
pub struct Uring {
    ring: IoUring,
    sockets: Vec<Option<SocketEntry>>,
    free_sockets: Vec<u32>,
    send_slots: Box<[SendSlot]>,
    free_sends: Vec<u32>,
    /// Entries being closed whose fds wait for the next submit before being dropped.
    reaped: Vec<u32>,
    wake: OwnedFd,
    wake_buf: Box<u64>,
    /// Raw completions of one reap, reused.
    batch: Vec<(u64, i32, u32)>,
}

// SAFETY: the raw pointers inside (msghdr/iovec in receive and send slots) point only into
// memory that this `Uring` owns through boxes, which stay put when the `Uring` moves. Moving
// the whole backend to its worker thread moves that ownership with it; nothing is shared.
unsafe impl Send for Uring {}

impl Uring {
    /// A ring for at most `max_sockets` sockets and `send_slots` sends in flight, woken by
    /// `wake` (see [`Waker::new`]). Must be created on the thread that will use it: the ring
    /// is set up single-issuer.
    pub fn new(max_sockets: usize, send_slots: usize, wake: OwnedFd) -> io::Result<Uring> {
        let entries = (max_sockets + send_slots + 64)
            .next_power_of_two()
            .min(32768) as u32;
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_coop_taskrun()
            .setup_cqsize(entries * 2)
            .build(entries)?;
        let send_slots = (0..send_slots)
            .map(|_| SendSlot {
                buf: [0; MAX_DATAGRAM],
                addr: SockAddr::from(SocketAddr::from(([0, 0, 0, 0], 0))),
                // SAFETY: all-zero is a valid value for these plain C structs.
                iov: unsafe { core::mem::zeroed() },
                msg: unsafe { core::mem::zeroed() },
            })
            .collect::<Box<[_]>>();
        let mut uring = Uring {
            ring,
            sockets: (0..max_sockets).map(|_| None).collect(),
            free_sockets: (0..max_sockets as u32).rev().collect(),
            free_sends: (0..send_slots.len() as u32).rev().collect(),
            send_slots,
            reaped: Vec::with_capacity(max_sockets),
            wake,
            wake_buf: Box::new(0),
            batch: Vec::with_capacity(entries as usize * 2),
        };
        uring.arm_wake()?;
        Ok(uring)
    }

    fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        push(&mut self.ring, entry)
    }

    fn arm_wake(&mut self) -> io::Result<()> {
        let entry = opcode::Read::new(
            types::Fd(self.wake.as_raw_fd()),
            (&raw mut *self.wake_buf).cast(),
            8,
        )
        .build()
        .user_data(user_data(KIND_WAKE, 0, 0));
        self.push(&entry)
    }

    /// Registers a socket and arms its first receive. `None` when the table is full.
    pub fn add_socket(&mut self, socket: UdpSocket) -> io::Result<Option<LegIo>> {
        let Some(index) = self.free_sockets.pop() else {
            return Ok(None);
        };
        let generation = self.sockets[index as usize]
            .as_ref()
            .map_or(0, |e| e.generation.wrapping_add(1));
        let entry = SocketEntry {
            socket: Some(socket),
            slot: RecvSlot::new(),
            generation: generation & 0x00FF_FFFF,
            armed: false,
            closing: false,
        };
        self.sockets[index as usize] = Some(entry);
        let id = LegIo {
            index,
            generation: generation & 0x00FF_FFFF,
        };
        self.rearm(id)?;
        Ok(Some(id))
    }

    fn entry_mut(&mut self, id: LegIo) -> Option<&mut SocketEntry> {
        self.sockets
            .get_mut(id.index as usize)?
            .as_mut()
            .filter(|e| e.generation == id.generation && e.socket.is_some())
    }

    /// Arms the next receive on `socket` (after its last datagram was handled).
    pub fn rearm(&mut self, id: LegIo) -> io::Result<()> {
        let Some(entry) = self.entry_mut(id) else {
            return Ok(());
        };
        if entry.armed || entry.closing {
            return Ok(());
        }
        let fd = entry.socket.as_ref().map_or(-1, AsRawFd::as_raw_fd);
        let msg = entry.slot.prepare();
        entry.armed = true;
        let sqe = opcode::RecvMsg::new(types::Fd(fd), msg)
            .build()
            .user_data(user_data(KIND_RECV, id.generation, id.index));
        self.push(&sqe)
    }

    /// Starts removing a socket: its pending receive is cancelled, and the entry (buffer and
    /// fd) is freed once that receive's completion is reaped.
    pub fn remove_socket(&mut self, id: LegIo) -> io::Result<()> {
        let Some(entry) = self.entry_mut(id) else {
            return Ok(());
        };
        entry.closing = true;
        if !entry.armed {
            self.reaped.push(id.index);
            return Ok(());
        }
        let target = user_data(KIND_RECV, id.generation, id.index);
        let sqe = opcode::AsyncCancel::new(target)
            .build()
            .user_data(user_data(KIND_CANCEL, 0, 0));
        self.push(&sqe)
    }

    /// The datagram of an [`Event::Received`] (valid until [`Uring::rearm`]), read in place,
    /// with a [`Sender`] to answer it: the two borrow different parts of the backend.
    pub fn received(&mut self, id: LegIo, len: usize) -> (&[u8], Sender<'_>) {
        let sender = self.sender();
        // The sender only reads the socket table, so the datagram may borrow it too.
        let sockets = sender.sockets;
        let datagram = match sockets.get(id.index as usize).and_then(Option::as_ref) {
            Some(e) if e.generation == id.generation => &e.slot.buf[..len.min(RECV_BUF)],
            _ => &[][..],
        };
        (datagram, sender)
    }

    /// A [`Sender`] for sending outside a receive (e.g. on the mix tick).
    pub fn sender(&mut self) -> Sender<'_> {
        Sender {
            ring: &mut self.ring,
            sockets: &self.sockets,
            send_slots: &mut self.send_slots,
            free_sends: &mut self.free_sends,
        }
    }

    /// Submits everything queued and waits until a completion arrives or `timeout` passes.
    /// Then drops the fds of sockets whose removal completed (after the submit, so no queued
    /// SQE still names them).
    pub fn submit_and_wait(&mut self, timeout: Duration) -> io::Result<()> {
        let ts = types::Timespec::new()
            .sec(timeout.as_secs())
            .nsec(timeout.subsec_nanos());
        let args = types::SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)
                ) => {}
            Err(e) => return Err(e),
        }
        self.free_reaped();
        Ok(())
    }

    fn free_reaped(&mut self) {
        while let Some(index) = self.reaped.pop() {
            if let Some(entry) = self.sockets[index as usize].as_mut() {
                // Keep the entry (and its generation) but drop the socket and mark it free.
                entry.socket = None;
                entry.armed = false;
                entry.closing = false;
                self.free_sockets.push(index);
            }
        }
    }

    /// Reaps every completion available, calling `on_event` for each one the caller cares
    /// about. Receives are *not* re-armed here for [`Event::Received`]: the caller reads the
    /// datagram, then calls [`Uring::rearm`].
    pub fn reap(&mut self, mut on_event: impl FnMut(&mut Uring, Event)) -> io::Result<()> {
        self.batch.clear();
        for cqe in self.ring.completion() {
            if self.batch.len() == self.batch.capacity() {
                break;
            }
            self.batch
                .push((cqe.user_data(), cqe.result(), cqe.flags()));
        }
        for i in 0..self.batch.len() {
            let (ud, result, _flags) = self.batch[i];
            let (kind, generation, index) = split_user_data(ud);
            match kind {
                KIND_RECV => {
                    let id = LegIo { index, generation };
                    let Some(entry) = self
                        .sockets
                        .get_mut(index as usize)
                        .and_then(Option::as_mut)
                    else {
                        continue;
                    };
                    if entry.generation != generation {
                        continue;
                    }
                    entry.armed = false;
                    if entry.closing {
                        self.reaped.push(index);
                        continue;
                    }
                    let truncated = entry.slot.msg.msg_flags & libc::MSG_TRUNC != 0;
                    match (result, entry.slot.source()) {
                        (len, Some(src)) if len >= 0 && !truncated => on_event(
                            self,
                            Event::Received {
                                socket: id,
                                src,
                                len: len as usize,
                            },
                        ),
                        (len, _) if len >= 0 => {
                            on_event(self, Event::Malformed { socket: id });
                            self.rearm(id)?;
                        }
                        // Errors such as ECONNREFUSED (an ICMP error for an earlier send) do
                        // not end the socket: listen again.
                        _ => self.rearm(id)?,
                    }
                }
                KIND_SEND => {
                    self.free_sends.push(index);
                    if result < 0 {
                        on_event(self, Event::SendFailed);
                    }
                }
                KIND_WAKE => {
                    self.arm_wake()?;
                    on_event(self, Event::Woken);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Cancels every receive and waits (bounded) for the kernel to give back every buffer, so
    /// that dropping `self` frees nothing the kernel still uses.
    pub fn shutdown(&mut self) {
        let ids: Vec<LegIo> = self
            .sockets
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                e.as_ref().filter(|e| e.socket.is_some()).map(|e| LegIo {
                    index: i as u32,
                    generation: e.generation,
                })
            })
            .collect();
        for id in ids {
            let _ = self.remove_socket(id);
        }
        for _ in 0..100 {
            let pending = self.sockets.iter().flatten().any(|e| e.armed)
                || self.free_sends.len() < self.send_slots.len();
            if !pending {
                break;
            }
            let _ = self.submit_and_wait(Duration::from_millis(10));
            let _ = self.reap(|_, _| {});
        }
        self.free_reaped();
    }
}

impl Drop for Uring {
    fn drop(&mut self) {
        let pending = self.sockets.iter().flatten().any(|e| e.armed)
            || self.free_sends.len() < self.send_slots.len();
        if pending {
            // The kernel may still write into our buffers: leak them rather than free memory
            // it owns. Only reachable if shutdown could not drain the ring.
            let sockets = core::mem::take(&mut self.sockets);
            let sends = core::mem::replace(&mut self.send_slots, Box::new([]));
            core::mem::forget(sockets);
            core::mem::forget(sends);
        }
    }
}

/// Queues one SQE, submitting what is queued first if the submission queue is full.
fn push(ring: &mut IoUring, entry: &squeue::Entry) -> io::Result<()> {
    // SAFETY (for every caller): the memory each entry points at is owned by the `Uring` (a
    // boxed receive slot, a send slot, the wake buffer) and is neither freed nor reused until
    // the entry's completion is reaped; see the module documentation.
    if unsafe { ring.submission().push(entry) }.is_err() {
        ring.submit()?;
        // SAFETY: as above.
        unsafe { ring.submission().push(entry) }
            .map_err(|_| io::Error::other("io_uring submission queue full after submit"))?;
    }
    Ok(())
}

/// The send half of a [`Uring`]: queues datagrams from registered sockets.
pub struct Sender<'a> {
    ring: &'a mut IoUring,
    sockets: &'a [Option<SocketEntry>],
    send_slots: &'a mut [SendSlot],
    free_sends: &'a mut Vec<u32>,
}

impl Transmit for Sender<'_> {
    /// Queues `datagram` to `dst` from `socket`'s local address. The datagram is copied into a
    /// send slot, which the kernel owns until the send completes.
    fn send(&mut self, id: LegIo, dst: SocketAddr, datagram: &[u8]) -> Result<(), SendError> {
        if datagram.len() > MAX_DATAGRAM {
            return Err(SendError::Invalid);
        }
        let fd = match self.sockets.get(id.index as usize).and_then(Option::as_ref) {
            Some(e) if e.generation == id.generation && !e.closing => e
                .socket
                .as_ref()
                .map(AsRawFd::as_raw_fd)
                .ok_or(SendError::Invalid)?,
            _ => return Err(SendError::Invalid),
        };
        let Some(index) = self.free_sends.pop() else {
            return Err(SendError::PoolExhausted);
        };
        let slot = &mut self.send_slots[index as usize];
        slot.buf[..datagram.len()].copy_from_slice(datagram);
        slot.addr = SockAddr::from(dst);
        slot.iov = libc::iovec {
            iov_base: slot.buf.as_mut_ptr().cast(),
            iov_len: datagram.len(),
        };
        slot.msg.msg_name = slot.addr.as_ptr() as *mut libc::c_void;
        slot.msg.msg_namelen = slot.addr.len();
        slot.msg.msg_iov = &raw mut slot.iov;
        slot.msg.msg_iovlen = 1;
        let sqe = opcode::SendMsg::new(types::Fd(fd), &raw const slot.msg)
            .build()
            .user_data(user_data(KIND_SEND, 0, index));
        if push(self.ring, &sqe).is_err() {
            self.free_sends.push(index);
            return Err(SendError::PoolExhausted);
        }
        Ok(())
    }
}

/// Wakes a worker blocked in [`Uring::submit_and_wait`]. `Send + Sync`.
pub struct Waker {
    fd: OwnedFd,
}

impl Waker {
    /// A waker and the eventfd to give to [`Uring::new`].
    pub fn new() -> io::Result<(Waker, OwnedFd)> {
        // SAFETY: eventfd has no memory-safety preconditions; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a freshly created descriptor owned by no one else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok((
            Waker {
                fd: fd.try_clone()?,
            },
            fd,
        ))
    }

    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd we own; failure (counter full)
        // only means a wake is already pending.
        let _ = unsafe { libc::write(self.fd.as_raw_fd(), (&raw const one).cast(), 8) };
    }
}

impl PacketIo for Uring {
    type Tx<'a> = Sender<'a>;

    fn handle_capacity(&self) -> usize {
        self.sockets.len()
    }

    fn add_leg(&mut self, socket: UdpSocket) -> io::Result<Option<LegIo>> {
        self.add_socket(socket)
    }

    fn remove_leg(&mut self, io: LegIo) -> io::Result<()> {
        self.remove_socket(io)
    }

    fn sender(&mut self) -> Sender<'_> {
        Uring::sender(self)
    }

    fn poll(&mut self, on: &mut dyn FnMut(Polled<'_>)) -> io::Result<()> {
        self.reap(|ring, event| match event {
            Event::Received { socket, src, len } => {
                let (data, mut tx) = ring.received(socket, len);
                on(Polled::Datagram {
                    io: socket,
                    src,
                    data,
                    tx: &mut tx,
                });
                let _ = ring.rearm(socket);
            }
            Event::Malformed { .. } => on(Polled::Malformed),
            Event::SendFailed => on(Polled::SendFailed),
            Event::Woken => {}
        })
    }

    fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        self.submit_and_wait(timeout)
    }

    fn shutdown(&mut self) {
        Uring::shutdown(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips() {
        let ud = user_data(KIND_RECV, 0x12_3456, 0xDEAD_BEEF);
        assert_eq!(split_user_data(ud), (KIND_RECV, 0x12_3456, 0xDEAD_BEEF));
    }

    #[test]
    fn receives_and_sends_on_loopback() {
        let (_waker, wake) = Waker::new().unwrap();
        let mut ring = Uring::new(4, 4, wake).unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let a_addr = a.local_addr().unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let id = ring.add_socket(a).unwrap().unwrap();
        peer.send_to(b"hello", a_addr).unwrap();
        let mut got = None;
        for _ in 0..100 {
            ring.submit_and_wait(Duration::from_millis(20)).unwrap();
            ring.reap(|ring, ev| {
                if let Event::Received { socket, src, len } = ev {
                    let (datagram, mut tx) = ring.received(socket, len);
                    got = Some((datagram.to_vec(), src));
                    tx.send(socket, src, b"world").unwrap();
                    ring.rearm(socket).unwrap();
                }
            })
            .unwrap();
            if got.is_some() {
                break;
            }
        }
        let (data, src) = got.expect("a datagram");
        assert_eq!(data, b"hello");
        assert_eq!(src, peer.local_addr().unwrap());
        ring.submit_and_wait(Duration::from_millis(1)).unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"world");
        assert_eq!(from, a_addr);
        ring.remove_socket(id).unwrap();
        ring.shutdown();
        assert!(ring.sockets.iter().flatten().all(|e| e.socket.is_none()));
    }
}

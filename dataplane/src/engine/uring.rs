//! The io_uring UDP backend: one socket per leg, each with one *multishot* receive that stays
//! armed and fills buffers the worker lends the kernel through one provided-buffer ring; a
//! fixed pool of send slots; every socket registered with the ring (a fixed file), so no
//! operation looks up or reference-counts an fd; everything submitted in batches with one
//! `io_uring_enter` per loop turn, which is also where the kernel runs the ring's deferred work
//! (`DEFER_TASKRUN`): no interrupt of the worker per datagram.
//!
//! Per datagram received, the kernel posts one completion naming the buffer it filled; the
//! worker reads it in place and gives the buffer straight back. Nothing is re-armed per
//! datagram (the receive keeps going until cancelled, or until the buffer ring runs dry, which
//! leaves the datagrams queued in the socket and re-arms once buffers are back).
//!
//! This is one of the two modules where `unsafe` is allowed: the kernel reads and writes the
//! memory an SQE or the buffer ring points at until it gives it back, which Rust cannot see.
//! The safe API below upholds that invariant by construction:
//! - receive buffers ([`RecvBuffers`]) are allocated once, owned by [`Uring`], lent to the kernel
//!   through the buffer ring and freed only after the ring is unregistered with no receive left
//!   armed; a buffer the kernel filled is read only between its completion and its return;
//! - send buffers live in a pool allocated once; a slot returns to the free list only when its
//!   completion is reaped;
//! - a socket leaves the fixed-file table (and its fd is closed) only after its receive ended,
//!   and after every SQE queued so far has been submitted (so no queued send names it).
//!
//! Nothing here allocates per packet: buffers and slots are allocated at start, sockets are
//! registered at admission, completions are reaped into a reused array.

#![allow(unsafe_code)]

use std::alloc::{self, Layout};
use std::io;
use std::mem::ManuallyDrop;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::{BufRingEntry, RecvMsgOut};
use io_uring::{IoUring, cqueue, opcode, squeue, types};
use socket2::SockAddr;

use super::backend::{LegIo, PacketIo, Polled, SendError, Transmit};
use crate::media::call::MAX_DATAGRAM;
use crate::time::Duration;

/// The payload room of a receive buffer: one byte more than the data plane's limit
/// ([`MAX_DATAGRAM`]), so that whatever the kernel cuts to fit is still longer than the limit,
/// and is handed to the media core like any other datagram, to be refused and counted
/// `oversized` on its leg (never mistaken for a shorter packet).
const RECV_PAYLOAD: usize = MAX_DATAGRAM + 1;
const _: () = assert!(RECV_PAYLOAD > MAX_DATAGRAM);
/// Room for the source address: the largest we accept is IPv6.
const NAME_LEN: usize = size_of::<libc::sockaddr_in6>();
/// A multishot receive writes, in each buffer, a 16-byte `io_uring_recvmsg_out` (four u32:
/// name, control and payload lengths, flags), then the name, then the payload.
const RECV_HEADER: usize = 16;
const RECV_BUF: usize = RECV_HEADER + NAME_LEN + RECV_PAYLOAD;
/// Receive buffers per worker. They come back to the ring as soon as each datagram is handled,
/// so this only needs to cover what arrives between two reaps (4,096 is 27 ms at 150,000
/// datagrams/s); if it runs dry, datagrams wait in their sockets. 6 MiB.
const RECV_BUFFERS: u16 = 4096;
/// The buffer group of the receive buffers (one per ring).
const BUF_GROUP: u16 = 0;

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

/// The receive buffers and the provided-buffer ring that lends them to the kernel.
struct RecvBuffers {
    /// `count` ring entries, page-aligned as the kernel requires; the ring's tail is the `resv`
    /// field of entry 0 (the kernel's layout).
    ring: NonNull<BufRingEntry>,
    ring_layout: Layout,
    /// `count` buffers of [`RECV_BUF`] bytes, back to back.
    bufs: NonNull<u8>,
    bufs_layout: Layout,
    count: u16,
    /// The next tail to publish; buffers given back since the last [`RecvBuffers::publish`]
    /// are written but not yet visible to the kernel.
    tail: u16,
}

impl RecvBuffers {
    /// Allocates `count` (a power of two) buffers and fills the ring with all of them.
    fn new(count: u16) -> io::Result<RecvBuffers> {
        assert!(
            count.is_power_of_two(),
            "the buffer ring size must be a power of two"
        );
        let ring_layout = Layout::from_size_align(count as usize * size_of::<BufRingEntry>(), 4096)
            .map_err(io::Error::other)?;
        let bufs_layout =
            Layout::from_size_align(count as usize * RECV_BUF, 64).map_err(io::Error::other)?;
        // SAFETY: both layouts have a non-zero size (count ≥ 1).
        let ring = unsafe { alloc::alloc_zeroed(ring_layout) };
        let Some(ring) = NonNull::new(ring.cast::<BufRingEntry>()) else {
            alloc::handle_alloc_error(ring_layout);
        };
        // SAFETY: as above.
        let bufs = unsafe { alloc::alloc_zeroed(bufs_layout) };
        let Some(bufs) = NonNull::new(bufs) else {
            // SAFETY: `ring` was allocated just above with this layout.
            unsafe { alloc::dealloc(ring.as_ptr().cast(), ring_layout) };
            alloc::handle_alloc_error(bufs_layout);
        };
        let mut buffers = RecvBuffers {
            ring,
            ring_layout,
            bufs,
            bufs_layout,
            count,
            tail: 0,
        };
        for bid in 0..count {
            buffers.give_back(bid);
        }
        buffers.publish();
        Ok(buffers)
    }

    /// Puts buffer `bid` back in the ring (visible to the kernel at the next publish).
    fn give_back(&mut self, bid: u16) {
        if bid >= self.count {
            return;
        }
        let slot = usize::from(self.tail & (self.count - 1));
        // SAFETY: `slot < count`, inside the ring allocation; the kernel only reads entries
        // between its head and the published tail, and this one is past the published tail.
        // The setters leave `resv` (entry 0's is the tail) untouched.
        let entry = unsafe { &mut *self.ring.as_ptr().add(slot) };
        // SAFETY: `bid < count`: the offset is inside the buffer allocation.
        let addr = unsafe { self.bufs.as_ptr().add(usize::from(bid) * RECV_BUF) };
        entry.set_addr(addr as u64);
        entry.set_len(RECV_BUF as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes every buffer given back so far visible to the kernel.
    fn publish(&self) {
        // SAFETY: the tail is a naturally aligned u16 inside the ring allocation, shared with
        // the kernel, which reads it atomically; the release store orders the entries written
        // before it.
        let tail = unsafe { &*BufRingEntry::tail(self.ring.as_ptr()).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }

    /// The `len` bytes the kernel wrote into buffer `bid`.
    ///
    /// Only for a buffer named by a completion and not yet given back: the kernel no longer
    /// writes it, and nothing else does.
    fn filled(&self, bid: u16, len: usize) -> &[u8] {
        if bid >= self.count {
            return &[];
        }
        // SAFETY: inside the allocation (`bid < count`, `len` clamped to one buffer); the kernel
        // handed this buffer back with its completion and gets it again only through
        // `give_back`, which takes `&mut self` and so cannot run while this borrow lives.
        unsafe {
            std::slice::from_raw_parts(
                self.bufs.as_ptr().add(usize::from(bid) * RECV_BUF),
                len.min(RECV_BUF),
            )
        }
    }
}

impl Drop for RecvBuffers {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with these layouts. `Uring` drops these only once the
        // kernel no longer holds them (the ring unregistered with no receive armed), and leaks
        // them otherwise.
        unsafe {
            alloc::dealloc(self.ring.as_ptr().cast(), self.ring_layout);
            alloc::dealloc(self.bufs.as_ptr(), self.bufs_layout);
        }
    }
}

/// The source address a multishot receive wrote (a `sockaddr_in` or `sockaddr_in6`, in the
/// kernel's layout), read without trusting its length.
fn source_of(name: &[u8]) -> Option<SocketAddr> {
    let family = i32::from(u16::from_ne_bytes(name.get(0..2)?.try_into().ok()?));
    let port = u16::from_be_bytes(name.get(2..4)?.try_into().ok()?);
    match family {
        libc::AF_INET => {
            let ip: [u8; 4] = name.get(4..8)?.try_into().ok()?;
            Some(SocketAddrV4::new(Ipv4Addr::from(ip), port).into())
        }
        libc::AF_INET6 => {
            let flow = u32::from_be_bytes(name.get(4..8)?.try_into().ok()?);
            let ip: [u8; 16] = name.get(8..24)?.try_into().ok()?;
            let scope = u32::from_ne_bytes(name.get(24..28)?.try_into().ok()?);
            Some(SocketAddrV6::new(Ipv6Addr::from(ip), port, flow, scope).into())
        }
        _ => None,
    }
}

/// The state of one socket entry (its index is also its fixed-file slot).
struct SocketEntry {
    socket: Option<UdpSocket>,
    generation: u32,
    /// The multishot receive is armed: the entry must stay until it ends.
    armed: bool,
    /// Removal was requested: free the entry when the receive ends.
    closing: bool,
}

/// A send buffer and its destination, in the pool allocated at start.
struct SendSlot {
    buf: [u8; MAX_DATAGRAM],
    addr: SockAddr,
}

/// The backend of one worker.
pub struct Uring {
    ring: IoUring,
    sockets: Vec<Option<SocketEntry>>,
    free_sockets: Vec<u32>,
    /// Dropped by hand in `Drop`: only once the kernel no longer holds them.
    buffers: ManuallyDrop<RecvBuffers>,
    /// The msghdr every multishot receive is armed with: only its name and control lengths
    /// matter (the layout of each buffer). Boxed: the kernel reads it at submission.
    recv_msg: Box<libc::msghdr>,
    send_slots: Box<[SendSlot]>,
    free_sends: Vec<u32>,
    /// Entries being closed whose fds wait for the next submit before being dropped.
    reaped: Vec<u32>,
    /// Receives that ended while their socket stays (the buffer ring ran dry, an ICMP error):
    /// armed again once this reap's buffers are back.
    rearm: Vec<LegIo>,
    wake: OwnedFd,
    wake_buf: Box<u64>,
    /// Raw completions of one reap, reused.
    batch: Vec<(u64, i32, u32)>,
}

// SAFETY: the raw pointers inside (the buffer ring and buffers, the msghdr) point only into
// memory that this `Uring` owns, which stays put when the `Uring` moves. Moving the whole
// backend to its worker thread moves that ownership with it; nothing is shared.
unsafe impl Send for Uring {}

impl Uring {
    /// A ring for at most `max_sockets` sockets and `send_slots` sends in flight, woken by
    /// `wake` (see [`Waker::new`]). Must be created on the thread that will use it: the ring
    /// is set up single-issuer, with its deferred work run by that thread.
    pub fn new(max_sockets: usize, send_slots: usize, wake: OwnedFd) -> io::Result<Uring> {
        Uring::with_buffers(max_sockets, send_slots, RECV_BUFFERS, wake)
    }

    fn with_buffers(
        max_sockets: usize,
        send_slots: usize,
        recv_buffers: u16,
        wake: OwnedFd,
    ) -> io::Result<Uring> {
        let max_sockets = max_sockets.clamp(1, u32::MAX as usize >> 1);
        let entries = (max_sockets + send_slots + 64)
            .next_power_of_two()
            .min(32768) as u32;
        let cq = (entries * 2).max(u32::from(recv_buffers).next_power_of_two() * 2);
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_cqsize(cq)
            .build(entries)
            .map_err(|e| needs("an io_uring with deferred task work (Linux 6.1)", e))?;
        ring.submitter()
            .register_files_sparse(max_sockets as u32)
            .map_err(|e| needs("a sparse fixed-file table (Linux 5.19)", e))?;
        let buffers = RecvBuffers::new(recv_buffers)?;
        // SAFETY: the ring memory stays valid until it is unregistered (`Drop`) or the ring is
        // torn down; `buffers` is owned by the `Uring` next to the ring.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(
                    buffers.ring.as_ptr() as u64,
                    recv_buffers,
                    BUF_GROUP,
                    0,
                )
                .map_err(|e| needs("a provided-buffer ring (Linux 5.19)", e))?;
        }
        // SAFETY: all-zero is a valid msghdr.
        let mut recv_msg: Box<libc::msghdr> = Box::new(unsafe { core::mem::zeroed() });
        recv_msg.msg_namelen = NAME_LEN as libc::socklen_t;
        let send_slots = (0..send_slots)
            .map(|_| SendSlot {
                buf: [0; MAX_DATAGRAM],
                addr: SockAddr::from(SocketAddr::from(([0, 0, 0, 0], 0))),
            })
            .collect::<Box<[_]>>();
        let mut uring = Uring {
            ring,
            sockets: (0..max_sockets).map(|_| None).collect(),
            free_sockets: (0..max_sockets as u32).rev().collect(),
            buffers: ManuallyDrop::new(buffers),
            recv_msg,
            free_sends: (0..send_slots.len() as u32).rev().collect(),
            send_slots,
            reaped: Vec::with_capacity(max_sockets),
            rearm: Vec::new(),
            wake,
            wake_buf: Box::new(0),
            batch: Vec::with_capacity(cq as usize),
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

    /// Registers a socket and arms its receive. `None` when the table is full.
    pub fn add_socket(&mut self, socket: UdpSocket) -> io::Result<Option<LegIo>> {
        let Some(index) = self.free_sockets.pop() else {
            return Ok(None);
        };
        if let Err(e) = self
            .ring
            .submitter()
            .register_files_update(index, &[socket.as_raw_fd()])
        {
            self.free_sockets.push(index);
            return Err(e);
        }
        let generation = self.sockets[index as usize]
            .as_ref()
            .map_or(0, |e| e.generation.wrapping_add(1))
            & 0x00FF_FFFF;
        self.sockets[index as usize] = Some(SocketEntry {
            socket: Some(socket),
            generation,
            armed: false,
            closing: false,
        });
        let id = LegIo { index, generation };
        self.arm(id)?;
        Ok(Some(id))
    }

    fn entry_mut(&mut self, id: LegIo) -> Option<&mut SocketEntry> {
        self.sockets
            .get_mut(id.index as usize)?
            .as_mut()
            .filter(|e| e.generation == id.generation && e.socket.is_some())
    }

    /// Arms the multishot receive of `id`, unless it is armed or closing.
    fn arm(&mut self, id: LegIo) -> io::Result<()> {
        let Some(entry) = self.entry_mut(id) else {
            return Ok(());
        };
        if entry.armed || entry.closing {
            return Ok(());
        }
        entry.armed = true;
        let sqe =
            opcode::RecvMsgMulti::new(types::Fixed(id.index), &raw const *self.recv_msg, BUF_GROUP)
                .build()
                .user_data(user_data(KIND_RECV, id.generation, id.index));
        self.push(&sqe)
    }

    /// Starts removing a socket: its receive is cancelled, and the entry (fixed-file slot and
    /// fd) is freed once that receive has ended.
    pub fn remove_socket(&mut self, id: LegIo) -> io::Result<()> {
        let Some(entry) = self.entry_mut(id) else {
            return Ok(());
        };
        if entry.closing {
            return Ok(());
        }
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

    /// A [`Sender`] for sending outside a receive (e.g. on the mix tick).
    pub fn sender(&mut self) -> Sender<'_> {
        Sender {
            ring: &mut self.ring,
            sockets: &self.sockets,
            send_slots: &mut self.send_slots,
            free_sends: &mut self.free_sends,
        }
    }

    /// Submits everything queued and waits until a completion arrives or `timeout` passes
    /// (running the ring's deferred work, which posts the completions). Then frees the entries
    /// whose receive ended (after the submit, so no queued SQE still names them).
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
                // Out of the fixed-file table first (the table held its own reference), then
                // the fd. Keep the entry (and its generation) but mark it free.
                if let Err(e) = self.ring.submitter().register_files_update(index, &[-1]) {
                    tracing::warn!(error = %e, slot = index, "cannot clear a fixed-file slot");
                }
                entry.socket = None;
                entry.armed = false;
                entry.closing = false;
                self.free_sockets.push(index);
            }
        }
    }

    /// Handles every completion available: each datagram is passed to `on` (read in place, with
    /// a sender to answer it) and its buffer given back; receives that ended are re-armed.
    fn reap(&mut self, on: &mut dyn FnMut(Polled<'_>)) -> io::Result<()> {
        self.batch.clear();
        for cqe in self.ring.completion() {
            self.batch
                .push((cqe.user_data(), cqe.result(), cqe.flags()));
            if self.batch.len() == self.batch.capacity() {
                break;
            }
        }
        for i in 0..self.batch.len() {
            let (ud, result, flags) = self.batch[i];
            let (kind, generation, index) = split_user_data(ud);
            match kind {
                KIND_RECV => self.received(LegIo { index, generation }, result, flags, on),
                KIND_SEND => {
                    self.free_sends.push(index);
                    if result < 0 {
                        on(Polled::SendFailed);
                    }
                }
                KIND_WAKE => self.arm_wake()?,
                _ => {}
            }
        }
        self.buffers.publish();
        while let Some(id) = self.rearm.pop() {
            self.arm(id)?;
        }
        Ok(())
    }

    /// One completion of a multishot receive.
    fn received(&mut self, id: LegIo, result: i32, flags: u32, on: &mut dyn FnMut(Polled<'_>)) {
        let bid = cqueue::buffer_select(flags);
        let live = match self
            .sockets
            .get_mut(id.index as usize)
            .and_then(Option::as_mut)
            .filter(|e| e.generation == id.generation)
        {
            Some(entry) => {
                if !cqueue::more(flags) {
                    // The receive ended: cancelled, the buffer ring ran dry, or an error such
                    // as ECONNREFUSED (an ICMP error for an earlier send), which does not end
                    // the socket.
                    entry.armed = false;
                    if entry.closing {
                        self.reaped.push(id.index);
                    } else {
                        self.rearm.push(id);
                    }
                }
                !entry.closing
            }
            None => false,
        };
        let Some(bid) = bid else { return };
        if live && result >= 0 {
            let buffer = self.buffers.filled(bid, result as usize);
            match RecvMsgOut::parse(buffer, &self.recv_msg) {
                // A truncated payload (`is_payload_truncated`) is passed on: it is RECV_PAYLOAD
                // bytes, over the limit, and the media core counts it for its leg.
                Ok(out) if !out.is_name_data_truncated() => match source_of(out.name_data()) {
                    Some(src) => on(Polled::Datagram {
                        io: id,
                        src,
                        data: out.payload_data(),
                        tx: &mut Sender {
                            ring: &mut self.ring,
                            sockets: &self.sockets,
                            send_slots: &mut self.send_slots,
                            free_sends: &mut self.free_sends,
                        },
                    }),
                    None => on(Polled::Malformed),
                },
                _ => on(Polled::Malformed),
            }
        }
        self.buffers.give_back(bid);
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
            if !self.kernel_holds_memory() {
                break;
            }
            let _ = self.submit_and_wait(Duration::from_millis(10));
            let _ = self.reap(&mut |_| {});
        }
        self.free_reaped();
    }

    /// Whether a receive is armed or a send in flight: the kernel may still write into (or
    /// read from) our buffers.
    fn kernel_holds_memory(&self) -> bool {
        self.sockets.iter().flatten().any(|e| e.armed)
            || self.free_sends.len() < self.send_slots.len()
    }
}

impl Drop for Uring {
    fn drop(&mut self) {
        let unregistered = self.ring.submitter().unregister_buf_ring(BUF_GROUP).is_ok();
        if self.kernel_holds_memory() || !unregistered {
            // The kernel may still use our buffers: leak them rather than free memory it
            // owns. Only reachable if shutdown could not drain the ring.
            let sends = core::mem::replace(&mut self.send_slots, Box::new([]));
            core::mem::forget(sends);
            return;
        }
        // SAFETY: dropped once, here; the kernel no longer holds the ring or any buffer.
        unsafe { ManuallyDrop::drop(&mut self.buffers) };
    }
}

/// An error of setting up `what`, saying so (the kernel's own answer is often a bare EINVAL).
fn needs(what: &str, e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("cannot set up {what} for the io_uring backend: {e}"),
    )
}

/// Queues one SQE, submitting what is queued first if the submission queue is full.
fn push(ring: &mut IoUring, entry: &squeue::Entry) -> io::Result<()> {
    // SAFETY (for every caller): the memory each entry points at is owned by the `Uring` (the
    // receive msghdr, a send slot, the wake buffer) and is neither freed nor reused until the
    // entry's completion is reaped; see the module documentation.
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
        match self.sockets.get(id.index as usize).and_then(Option::as_ref) {
            Some(e) if e.generation == id.generation && !e.closing && e.socket.is_some() => {}
            _ => return Err(SendError::Invalid),
        }
        let Some(index) = self.free_sends.pop() else {
            return Err(SendError::PoolExhausted);
        };
        let slot = &mut self.send_slots[index as usize];
        slot.buf[..datagram.len()].copy_from_slice(datagram);
        slot.addr = SockAddr::from(dst);
        let sqe = opcode::Send::new(
            types::Fixed(id.index),
            slot.buf.as_ptr(),
            datagram.len() as u32,
        )
        .dest_addr(slot.addr.as_ptr().cast())
        .dest_addr_len(slot.addr.len())
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
        self.reap(on)
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
    fn source_addresses_parse_from_the_kernel_layout() {
        let v4: SocketAddr = "192.0.2.7:4000".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:5004".parse().unwrap();
        for addr in [v4, v6] {
            let raw = SockAddr::from(addr);
            // SAFETY: `raw` holds `len` initialised bytes of a socket address.
            let bytes = unsafe {
                std::slice::from_raw_parts(raw.as_ptr().cast::<u8>(), raw.len() as usize)
            };
            assert_eq!(source_of(bytes), Some(addr));
            assert_eq!(source_of(&bytes[..3]), None, "a cut address is refused");
        }
        assert_eq!(source_of(&[0u8; 28]), None, "an unknown family is refused");
    }

    /// Received datagrams, as (socket, source, payload), and the count of malformed ones.
    struct Got {
        datagrams: Vec<(LegIo, SocketAddr, Vec<u8>)>,
        malformed: usize,
    }

    /// Polls until `want` datagrams (or malformed ones) arrived or 2 s passed; each datagram
    /// is answered with "ack:" + its payload (when that fits the limit), to its source, from
    /// the socket it arrived on.
    fn collect(ring: &mut Uring, want: usize) -> Got {
        let mut got = Got {
            datagrams: Vec::new(),
            malformed: 0,
        };
        for _ in 0..200 {
            ring.submit_and_wait(Duration::from_millis(10)).unwrap();
            ring.poll(&mut |polled| match polled {
                Polled::Datagram { io, src, data, tx } => {
                    let mut answer = b"ack:".to_vec();
                    answer.extend_from_slice(data);
                    if answer.len() <= MAX_DATAGRAM {
                        tx.send(io, src, &answer).unwrap();
                    }
                    got.datagrams.push((io, src, data.to_vec()));
                }
                Polled::Malformed => got.malformed += 1,
                _ => {}
            })
            .unwrap();
            if got.datagrams.len() + got.malformed >= want {
                break;
            }
        }
        ring.submit_and_wait(Duration::from_millis(1)).unwrap();
        got
    }

    fn peer() -> UdpSocket {
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        peer
    }

    #[test]
    fn receives_and_answers_on_loopback() {
        let (_waker, wake) = Waker::new().unwrap();
        let mut ring = Uring::new(4, 4, wake).unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let a_addr = a.local_addr().unwrap();
        let peer = peer();
        let id = ring.add_socket(a).unwrap().unwrap();
        peer.send_to(b"hello", a_addr).unwrap();
        let got = collect(&mut ring, 1);
        assert_eq!(
            got.datagrams,
            vec![(id, peer.local_addr().unwrap(), b"hello".to_vec())]
        );
        let mut buf = [0u8; 16];
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ack:hello");
        assert_eq!(from, a_addr, "the answer leaves from the leg's own address");
        ring.remove_socket(id).unwrap();
        ring.shutdown();
        assert!(ring.sockets.iter().flatten().all(|e| e.socket.is_none()));
        assert!(!ring.kernel_holds_memory());
    }

    /// More datagrams than receive buffers, sent before the worker looks: the receive runs
    /// out of buffers, the rest wait in the socket, and every one is delivered once buffers
    /// come back.
    #[test]
    fn a_dry_buffer_ring_loses_nothing() {
        let (_waker, wake) = Waker::new().unwrap();
        let mut ring = Uring::with_buffers(2, 64, 8, wake).unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let a_addr = a.local_addr().unwrap();
        let id = ring.add_socket(a).unwrap().unwrap();
        ring.submit_and_wait(Duration::ZERO).unwrap();
        let peer = peer();
        for i in 0..50u32 {
            peer.send_to(&i.to_be_bytes(), a_addr).unwrap();
        }
        let got = collect(&mut ring, 50);
        let payloads: Vec<Vec<u8>> = got.datagrams.iter().map(|d| d.2.clone()).collect();
        let sent: Vec<Vec<u8>> = (0..50u32).map(|i| i.to_be_bytes().to_vec()).collect();
        assert_eq!(payloads, sent, "all 50, in order");
        assert!(got.datagrams.iter().all(|d| d.0 == id));
        ring.shutdown();
        assert!(!ring.kernel_holds_memory());
    }

    /// Every datagram over the limit, cut by the receive buffer or not, reaches its leg still
    /// over the limit (so the media core refuses it as oversized, never as a shorter packet);
    /// one at the limit arrives whole; and the socket keeps receiving.
    #[test]
    fn an_oversized_datagram_arrives_over_the_limit_and_the_next_one_arrives() {
        let (_waker, wake) = Waker::new().unwrap();
        let mut ring = Uring::new(2, 8, wake).unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let a_addr = a.local_addr().unwrap();
        let id = ring.add_socket(a).unwrap().unwrap();
        let peer = peer();
        let sizes = [MAX_DATAGRAM + 1, RECV_PAYLOAD + 1, 2048, 65_507];
        for size in sizes {
            peer.send_to(&vec![7u8; size], a_addr).unwrap();
        }
        peer.send_to(&[5u8; MAX_DATAGRAM], a_addr).unwrap();
        peer.send_to(b"small", a_addr).unwrap();
        let got = collect(&mut ring, sizes.len() + 2);
        assert_eq!(got.malformed, 0);
        assert_eq!(got.datagrams.len(), sizes.len() + 2);
        assert!(got.datagrams.iter().all(|d| d.0 == id));
        for d in &got.datagrams[..sizes.len()] {
            assert!(d.2.len() > MAX_DATAGRAM, "{} bytes", d.2.len());
        }
        assert_eq!(got.datagrams[sizes.len()].2, [5u8; MAX_DATAGRAM]);
        assert_eq!(got.datagrams[sizes.len() + 1].2, b"small");
        ring.shutdown();
    }

    /// A removed socket's slot is reused by the next one: the new socket receives, and a
    /// handle of the old one can no longer send.
    #[test]
    fn a_reused_slot_serves_only_the_new_socket() {
        let (_waker, wake) = Waker::new().unwrap();
        let mut ring = Uring::new(1, 4, wake).unwrap();
        let first = UdpSocket::bind("127.0.0.1:0").unwrap();
        let old = ring.add_socket(first).unwrap().unwrap();
        assert!(
            ring.add_socket(UdpSocket::bind("127.0.0.1:0").unwrap())
                .unwrap()
                .is_none(),
            "the table is full"
        );
        ring.remove_socket(old).unwrap();
        collect(&mut ring, 0);
        let second = UdpSocket::bind("127.0.0.1:0").unwrap();
        let second_addr = second.local_addr().unwrap();
        let new = ring.add_socket(second).unwrap().unwrap();
        assert_eq!(new.index, old.index);
        assert_ne!(new.generation, old.generation);
        let peer = peer();
        assert_eq!(
            ring.sender().send(old, peer.local_addr().unwrap(), b"x"),
            Err(SendError::Invalid)
        );
        peer.send_to(b"to the new one", second_addr).unwrap();
        let got = collect(&mut ring, 1);
        assert_eq!(got.datagrams.len(), 1);
        assert_eq!(got.datagrams[0].0, new);
        let mut buf = [0u8; 32];
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ack:to the new one");
        assert_eq!(from, second_addr);
        ring.shutdown();
    }
}

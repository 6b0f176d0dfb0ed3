//! Batched UDP I/O for the load generator: `sendmmsg`/`recvmmsg` over IPv4 sockets, kernel
//! receive timestamps (`SO_TIMESTAMPNS`), kernel transmit timestamps (`SO_TIMESTAMPING`, read
//! back from the error queue), and forced socket buffer sizes.
//!
//! The only `unsafe` of the crate lives here (docs/design.md §9.9): each block is one libc call on
//! buffers this module owns, with a `// SAFETY:` comment. Everything exported is safe.

#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;

/// The largest datagram a [`SendBatch`] slot holds (the load generator sends 172 bytes).
pub const MAX_SEND_DATAGRAM: usize = 256;
/// The largest datagram a [`RecvBatch`] slot holds; longer ones are truncated.
pub const MAX_RECV_DATAGRAM: usize = 2048;
/// Control buffer per received datagram: room for an `SCM_TIMESTAMPNS` (a `timespec`), or for
/// an `SCM_TIMESTAMPING` (three) plus an `IP_RECVERR` (an extended error and an address).
const CONTROL_LEN: usize = 160;

fn sockaddr(addr: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: `sockaddr_in` is a plain C struct for which all-zero bytes are a valid value.
    let mut sa: libc::sockaddr_in = unsafe { zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_port = addr.port().to_be();
    sa.sin_addr = libc::in_addr {
        s_addr: u32::from(*addr.ip()).to_be(),
    };
    sa
}

fn from_sockaddr(sa: &libc::sockaddr_in) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr)),
        u16::from_be(sa.sin_port),
    )
}

fn setsockopt_int(
    socket: &UdpSocket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` is a live `c_int` for the duration of the call and its size is passed; the
    // fd is owned by `socket`, which outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Asks the kernel to stamp every received datagram with `CLOCK_REALTIME` at its arrival in
/// the stack (read back by [`RecvBatch::kernel_ns`]): as it enters the receive path
/// (`netif_rx`; for loopback and veth, still within the sender's transmit), before it is queued
/// on the socket, so the time it then waits there to be read does not count. Only a datagram
/// that arrived unstamped (the kernel turns stamping on lazily, once the first socket asks) is
/// stamped when read.
pub fn enable_rx_timestamps(socket: &UdpSocket) -> io::Result<()> {
    setsockopt_int(socket, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)
}

/// Prepares `socket` for transmit timestamps: a datagram pushed with `tx_stamp` into a
/// [`SendBatch`] is stamped by the kernel when the device takes it (for loopback: as it is
/// handed on to the receiving socket's path) and numbered by a per-socket counter (`OPT_ID`:
/// from 0, one per *stamped* datagram); read them back with [`RecvBatch::recv_tx_timestamps`].
pub fn enable_tx_timestamps(socket: &UdpSocket) -> io::Result<()> {
    let flags = libc::SOF_TIMESTAMPING_SOFTWARE
        | libc::SOF_TIMESTAMPING_OPT_ID
        | libc::SOF_TIMESTAMPING_OPT_TSONLY;
    setsockopt_int(
        socket,
        libc::SOL_SOCKET,
        libc::SO_TIMESTAMPING,
        flags as libc::c_int,
    )
}

/// Sets the receive and send buffers to `bytes`, beyond `net.core.rmem_max`/`wmem_max` when the
/// process may (`CAP_NET_ADMIN`), else as far as the limits allow.
pub fn set_buffer_sizes(socket: &UdpSocket, bytes: usize) {
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        if setsockopt_int(socket, libc::SOL_SOCKET, force, v).is_err() {
            let _ = setsockopt_int(socket, libc::SOL_SOCKET, plain, v);
        }
    }
}

/// The receive buffer's limit in bytes as the kernel applies it (`SO_RCVBUF`: twice what was
/// asked, for its bookkeeping; every queued datagram is charged its whole `skb` truesize).
pub fn receive_buffer_bytes(socket: &UdpSocket) -> io::Result<usize> {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live locals for the duration of the call, and `len` holds
    // `value`'s size; the fd is owned by `socket`, which outlives the call.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&raw mut value).cast(),
            &raw mut len,
        )
    };
    if rc == 0 {
        Ok(usize::try_from(value).unwrap_or(0))
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `sysconf(_SC_CLK_TCK)`: the unit of the CPU times in `/proc/<pid>/stat`.
pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: `sysconf` only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { hz as u64 } else { 100 }
}

/// What [`SendBatch::send`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendOutcome {
    pub sent: usize,
    pub unsent_stamped: usize,
}

/// The control message asking for a software transmit timestamp on one datagram.
const TX_REQUEST_WORDS: usize = 4;
// SAFETY: CMSG_SPACE only computes a size.
const TX_REQUEST_LEN: usize = unsafe { libc::CMSG_SPACE(size_of::<u32>() as u32) } as usize;
const _: () = assert!(TX_REQUEST_LEN <= TX_REQUEST_WORDS * 8);

fn tx_stamp_request() -> [u64; TX_REQUEST_WORDS] {
    let mut words = [0u64; TX_REQUEST_WORDS];
    let header = libc::cmsghdr {
        // SAFETY: CMSG_LEN only computes a size.
        cmsg_len: unsafe { libc::CMSG_LEN(size_of::<u32>() as u32) } as usize,
        cmsg_level: libc::SOL_SOCKET,
        cmsg_type: libc::SO_TIMESTAMPING,
    };
    // SAFETY: `words` is 8-byte aligned and large enough (checked above) for a `cmsghdr`
    // followed by its `u32` payload at CMSG_DATA; both are plain data.
    unsafe {
        let cmsg = words.as_mut_ptr().cast::<libc::cmsghdr>();
        cmsg.write(header);
        libc::CMSG_DATA(cmsg)
            .cast::<u32>()
            .write_unaligned(libc::SOF_TIMESTAMPING_TX_SOFTWARE);
    }
    words
}

/// Up to `capacity` datagrams, each to its own destination, sent with one `sendmmsg` per call
/// of [`SendBatch::send`]. Everything is allocated once, in [`SendBatch::new`].
pub struct SendBatch {
    bufs: Vec<[u8; MAX_SEND_DATAGRAM]>,
    lens: Vec<usize>,
    /// Whether each datagram asks for a transmit timestamp, and the control message that asks
    /// (the same for all: `SO_TIMESTAMPING` = `SOF_TIMESTAMPING_TX_SOFTWARE`).
    stamped: Vec<bool>,
    stamp_request: Vec<[u64; TX_REQUEST_WORDS]>,
    addrs: Vec<libc::sockaddr_in>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    len: usize,
}

impl SendBatch {
    pub fn new(capacity: usize) -> SendBatch {
        // SAFETY: `iovec` and `mmsghdr` are plain C structs for which all-zero bytes are valid
        // (null pointers, zero lengths); they are filled in before each use.
        let (iov, hdr) = unsafe { (zeroed::<libc::iovec>(), zeroed::<libc::mmsghdr>()) };
        SendBatch {
            bufs: vec![[0; MAX_SEND_DATAGRAM]; capacity],
            lens: vec![0; capacity],
            stamped: vec![false; capacity],
            stamp_request: vec![tx_stamp_request(); capacity],
            addrs: vec![sockaddr(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)); capacity],
            iovs: vec![iov; capacity],
            hdrs: vec![hdr; capacity],
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.len == self.bufs.len()
    }

    /// Queues one datagram to `dst`, written by `fill` (which returns its length), with a
    /// transmit timestamp if `tx_stamp` (see [`enable_tx_timestamps`]). Returns false, queuing
    /// nothing, when the batch is full.
    pub fn push(
        &mut self,
        dst: SocketAddrV4,
        tx_stamp: bool,
        fill: impl FnOnce(&mut [u8; MAX_SEND_DATAGRAM]) -> usize,
    ) -> bool {
        if self.is_full() {
            return false;
        }
        let i = self.len;
        self.stamped[i] = tx_stamp;
        self.lens[i] = fill(&mut self.bufs[i]).min(MAX_SEND_DATAGRAM);
        self.addrs[i] = sockaddr(dst);
        self.len += 1;
        true
    }

    /// Rewrites the first `bytes.len()` bytes after `offset` of every queued datagram: used to
    /// stamp the send time just before the system call.
    pub fn stamp_all(&mut self, offset: usize, bytes: &[u8]) {
        for buf in &mut self.bufs[..self.len] {
            if let Some(dst) = buf.get_mut(offset..offset + bytes.len()) {
                dst.copy_from_slice(bytes);
            }
        }
    }

    /// Sends every queued datagram from `socket` (retrying partial sends) and empties the batch.
    /// An error stops at the first datagram the kernel refused; the outcome says how many were
    /// sent, and how many of those not sent asked for a timestamp (they took no `OPT_ID`).
    pub fn send(&mut self, socket: &UdpSocket) -> SendOutcome {
        let n = self.len;
        let sent = self.send_all(socket);
        let unsent_stamped = self.stamped[sent..n].iter().filter(|s| **s).count();
        SendOutcome {
            sent,
            unsent_stamped,
        }
    }

    fn send_all(&mut self, socket: &UdpSocket) -> usize {
        let n = self.len;
        self.len = 0;
        for i in 0..n {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: self.lens[i],
            };
            let h = &mut self.hdrs[i];
            h.msg_hdr.msg_name = (&raw mut self.addrs[i]).cast();
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            h.msg_hdr.msg_iov = &raw mut self.iovs[i];
            h.msg_hdr.msg_iovlen = 1;
            if self.stamped[i] {
                h.msg_hdr.msg_control = self.stamp_request[i].as_mut_ptr().cast();
                h.msg_hdr.msg_controllen = TX_REQUEST_LEN as _;
            } else {
                h.msg_hdr.msg_control = std::ptr::null_mut();
                h.msg_hdr.msg_controllen = 0;
            }
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        let mut sent = 0;
        while sent < n {
            // SAFETY: `hdrs[sent..n]` are initialised above and point into `bufs`, `iovs`,
            // `addrs` and `stamp_request`, which this `&mut self` keeps alive and unmoved for the
            // whole call; the count passed never exceeds the slice.
            let rc = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    self.hdrs[sent..n].as_mut_ptr(),
                    (n - sent) as libc::c_uint,
                    0,
                )
            };
            if rc < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return sent;
            }
            sent += rc as usize;
        }
        sent
    }
}

/// One `recvmmsg` worth of datagrams, with their sources and kernel arrival times.
///
/// The headers point into the buffers once and for all (a `Vec`'s heap block never moves while
/// it is not resized, and none is): before each call only the headers the previous call filled
/// are reset, so a call that brings one datagram costs one header's worth of work, not the
/// whole capacity's.
pub struct RecvBatch {
    bufs: Vec<[u8; MAX_RECV_DATAGRAM]>,
    addrs: Vec<libc::sockaddr_in>,
    controls: Vec<[u64; CONTROL_LEN / 8]>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    len: usize,
}

impl RecvBatch {
    pub fn new(capacity: usize) -> RecvBatch {
        // SAFETY: as in `SendBatch::new`: plain C structs, all-zero is valid, filled below.
        let (iov, hdr) = unsafe { (zeroed::<libc::iovec>(), zeroed::<libc::mmsghdr>()) };
        let mut batch = RecvBatch {
            bufs: vec![[0; MAX_RECV_DATAGRAM]; capacity],
            addrs: vec![sockaddr(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)); capacity],
            controls: vec![[0; CONTROL_LEN / 8]; capacity],
            iovs: vec![iov; capacity],
            hdrs: vec![hdr; capacity],
            len: 0,
        };
        for i in 0..capacity {
            batch.iovs[i] = libc::iovec {
                iov_base: batch.bufs[i].as_mut_ptr().cast(),
                iov_len: MAX_RECV_DATAGRAM,
            };
            let h = &mut batch.hdrs[i].msg_hdr;
            h.msg_name = (&raw mut batch.addrs[i]).cast();
            h.msg_iov = &raw mut batch.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = batch.controls[i].as_mut_ptr().cast();
            batch.reset(i);
        }
        batch
    }

    /// Gives header `i` back the lengths a `recvmmsg` overwrites when it fills it (and only
    /// then: a header it did not fill keeps its values).
    fn reset(&mut self, i: usize) {
        let h = &mut self.hdrs[i];
        h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        h.msg_hdr.msg_controllen = CONTROL_LEN as _;
        h.msg_hdr.msg_flags = 0;
        h.msg_len = 0;
    }

    /// Blocks until at least one datagram arrives (or the socket's receive timeout expires:
    /// `WouldBlock`/`TimedOut`), then takes what is queued, up to the capacity.
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.recv_flags(socket, libc::MSG_WAITFORONE)
    }

    /// Takes what is queued, up to the capacity, without blocking: `WouldBlock` when nothing
    /// is. No thread waits on the socket meanwhile, so a datagram's delivery wakes no one.
    pub fn try_recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.recv_flags(socket, libc::MSG_DONTWAIT)
    }

    /// Takes the transmit timestamps queued on `socket`'s error queue, without blocking
    /// (`WouldBlock` when there are none); read them with [`RecvBatch::tx_timestamp`].
    pub fn recv_tx_timestamps(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.recv_flags(socket, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT)
    }

    fn recv_flags(&mut self, socket: &UdpSocket, flags: libc::c_int) -> io::Result<usize> {
        for i in 0..self.len {
            self.reset(i);
        }
        self.len = 0;
        let n = self.hdrs.len();
        loop {
            // SAFETY: every header points into buffers owned by `self` (set in `new`; the
            // vectors are never resized, so their blocks stay put, and `&mut self` keeps them
            // alive) with their true lengths, reset above where the last call changed them; `n`
            // is the number of headers; a null timeout means "no timeout" (the socket's
            // SO_RCVTIMEO still applies).
            let rc = unsafe {
                libc::recvmmsg(
                    socket.as_raw_fd(),
                    self.hdrs.as_mut_ptr(),
                    n as libc::c_uint,
                    flags,
                    std::ptr::null_mut(),
                )
            };
            if rc >= 0 {
                self.len = rc as usize;
                return Ok(self.len);
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `i`-th datagram of the last [`RecvBatch::recv`] (or [`RecvBatch::try_recv`]) and its
    /// source.
    pub fn datagram(&self, i: usize) -> (SocketAddrV4, &[u8]) {
        let len = (self.hdrs[i].msg_len as usize).min(MAX_RECV_DATAGRAM);
        (from_sockaddr(&self.addrs[i]), &self.bufs[i][..len])
    }

    /// The kernel's arrival time of the `i`-th datagram (`CLOCK_REALTIME`, nanoseconds since the
    /// Unix epoch), when [`enable_rx_timestamps`] is on.
    pub fn kernel_ns(&self, i: usize) -> Option<u64> {
        let mut ns = None;
        self.for_each_cmsg(i, |level, ty, data| {
            if level == libc::SOL_SOCKET && ty == libc::SCM_TIMESTAMPNS {
                ns = timespec_ns(data);
            }
        });
        ns
    }

    /// The `i`-th entry of the last [`RecvBatch::recv_tx_timestamps`]: the datagram's `OPT_ID`
    /// counter and when the kernel sent it (`CLOCK_REALTIME` nanoseconds).
    pub fn tx_timestamp(&self, i: usize) -> Option<(u32, u64)> {
        let (mut id, mut ns) = (None, None);
        self.for_each_cmsg(i, |level, ty, data| {
            if level == libc::SOL_SOCKET && ty == libc::SCM_TIMESTAMPING {
                // `struct scm_timestamping`: three timespecs, the software one first.
                ns = timespec_ns(data);
            } else if level == libc::SOL_IP
                && ty == libc::IP_RECVERR
                && data.len() >= size_of::<libc::sock_extended_err>()
            {
                // SAFETY: the length was checked; the struct is plain data, read unaligned.
                let err: libc::sock_extended_err =
                    unsafe { std::ptr::read_unaligned(data.as_ptr().cast()) };
                if err.ee_origin == libc::SO_EE_ORIGIN_TIMESTAMPING
                    && err.ee_errno == libc::ENOMSG as u32
                {
                    id = Some(err.ee_data);
                }
            }
        });
        Some((id?, ns?))
    }

    /// Calls `f(level, type, data)` for every control message of the `i`-th datagram.
    fn for_each_cmsg(&self, i: usize, mut f: impl FnMut(libc::c_int, libc::c_int, &[u8])) {
        if i >= self.len || self.hdrs[i].msg_hdr.msg_controllen == 0 {
            return;
        }
        let hdr = &self.hdrs[i].msg_hdr;
        let control = self.controls[i].as_ptr().cast::<u8>();
        // SAFETY: `hdr` was filled by the kernel in the last `recvmmsg`: its control pointer and
        // updated `msg_controllen` describe `controls[i]`, which `&self` keeps alive. The CMSG_*
        // helpers stay within that length; each payload slice is clamped to the buffer's end.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
            while !cmsg.is_null() {
                let data = libc::CMSG_DATA(cmsg);
                let offset = data.offset_from(control) as usize;
                let header = data.offset_from(cmsg.cast::<u8>()) as usize;
                let len = ((*cmsg).cmsg_len as usize)
                    .saturating_sub(header)
                    .min(CONTROL_LEN.saturating_sub(offset));
                f(
                    (*cmsg).cmsg_level,
                    (*cmsg).cmsg_type,
                    std::slice::from_raw_parts(data, len),
                );
                cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
            }
        }
    }
}

/// A `timespec` at the start of `data`, as nanoseconds; `None` if short or zero.
fn timespec_ns(data: &[u8]) -> Option<u64> {
    if data.len() < size_of::<libc::timespec>() {
        return None;
    }
    // SAFETY: the length was checked; `timespec` is plain data, read unaligned.
    let ts: libc::timespec = unsafe { std::ptr::read_unaligned(data.as_ptr().cast()) };
    let ns = (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64);
    (ns != 0).then_some(ns)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn v4(socket: &UdpSocket) -> SocketAddrV4 {
        match socket.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            other => panic!("{other}"),
        }
    }

    /// Checks the `n` datagrams of the last receive: from `from`, datagram `k` being `k + 1`
    /// bytes of `k` (counting on from `expected`), each with a kernel arrival time.
    fn expect_datagrams(batch: &RecvBatch, n: usize, from: SocketAddrV4, expected: &mut u8) {
        for i in 0..n {
            let (src, data) = batch.datagram(i);
            assert_eq!(src, from);
            assert_eq!(data, vec![*expected; usize::from(*expected) + 1]);
            assert!(
                batch.kernel_ns(i).is_some(),
                "datagram {expected}: no rx stamp"
            );
            *expected += 1;
        }
    }

    /// Bursts smaller than, equal to and larger than the batch, in turn: every receive reads
    /// each datagram's source, length, bytes and kernel arrival time right, whatever the size
    /// of the receive before it; and every stamped send's transmit stamp comes back, numbered.
    #[test]
    fn batches_are_reused_across_sends_and_receives_of_any_size() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        enable_rx_timestamps(&rx).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let stamped = enable_tx_timestamps(&tx).is_ok();
        let (to, from) = (v4(&rx), v4(&tx));
        let mut send = SendBatch::new(8);
        let mut batch = RecvBatch::new(4);
        let mut stamps = RecvBatch::new(8);
        let (mut sent, mut tx_ids) = (0u8, Vec::new());
        for burst in [3u8, 1, 4, 2, 7, 1] {
            for k in sent..sent + burst {
                // Datagram k: k + 1 bytes of value k; every other one asks for a transmit stamp.
                assert!(send.push(to, stamped && k % 2 == 0, |buf| {
                    buf[..=usize::from(k)].fill(k);
                    usize::from(k) + 1
                }));
            }
            let outcome = send.send(&tx);
            assert_eq!(outcome.sent, usize::from(burst));
            assert!(send.is_empty());
            let mut expected = sent;
            sent += burst;
            while expected < sent {
                let n = batch.recv(&rx).unwrap();
                assert!((1..=4).contains(&n) && n == batch.len());
                expect_datagrams(&batch, n, from, &mut expected);
            }
            if stamped {
                let deadline = Instant::now() + Duration::from_secs(2);
                while tx_ids.len() < usize::from(sent.div_ceil(2)) && Instant::now() < deadline {
                    if let Ok(n) = stamps.recv_tx_timestamps(&tx) {
                        tx_ids.extend((0..n).filter_map(|i| stamps.tx_timestamp(i)).map(|s| s.0));
                    }
                }
            }
        }
        if stamped {
            // OPT_ID counts the stamped datagrams only, from 0.
            assert_eq!(tx_ids, (0..u32::from(sent.div_ceil(2))).collect::<Vec<_>>());
        }
    }

    /// A non-blocking receive finds an empty socket empty, then takes what was queued, each
    /// datagram with its source, bytes and kernel arrival stamp, in batches of at most its
    /// capacity.
    #[test]
    fn try_recv_takes_what_is_queued_and_never_waits() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        enable_rx_timestamps(&rx).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (to, from) = (v4(&rx), v4(&tx));
        let mut batch = RecvBatch::new(4);
        let empty = batch.try_recv(&rx).unwrap_err();
        assert_eq!(empty.kind(), io::ErrorKind::WouldBlock);
        assert!(batch.is_empty());
        let mut send = SendBatch::new(8);
        for k in 0..7u8 {
            assert!(send.push(to, false, |buf| {
                buf[..=usize::from(k)].fill(k);
                usize::from(k) + 1
            }));
        }
        assert_eq!(send.send(&tx).sent, 7);
        // Loopback delivers within the send, unless the kernel defers its softirq work: wait
        // for that (bounded) rather than assume it.
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut expected = 0u8;
        while expected < 7 && Instant::now() < deadline {
            match batch.try_recv(&rx) {
                Ok(n) => {
                    assert!((1..=4).contains(&n));
                    expect_datagrams(&batch, n, from, &mut expected);
                }
                Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
            }
        }
        assert_eq!(expected, 7);
        assert_eq!(
            batch.try_recv(&rx).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
    }
}

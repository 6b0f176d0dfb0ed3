//! The AF_XDP backend: media frames arrive in user space without the kernel's network stack.
//!
//! The XDP program ([`super::xdp`]) redirects UDP for the media addresses and port range to an
//! AF_XDP socket (XSK) per receive queue; each worker owns the XSKs of its queues, each with
//! its own UMEM. A worker demultiplexes frames by destination port: a port of one of its own
//! legs is handed to its calls in place; a port another worker holds is copied into that
//! worker's handover ring (the lock-free mesh between workers, SPSC rings both ways between
//! every pair); anything else is dropped and counted. Outgoing datagrams are framed here
//! (Ethernet, IPv4 or IPv6, UDP, with checksums: the views of [`crate::wire::frame`]) and
//! sent on the worker's first XSK.
//!
//! Frames and their owners:
//! - a UMEM's frames are split once, at start, between receiving (the fill ring) and sending
//!   (the [`TxPool`]);
//! - a receive frame is the kernel's until the RX ring returns it, ours while its datagram is
//!   handled, and goes straight back to the fill ring after;
//! - a send frame is taken from the pool as a [`TxFrame`] (a non-`Copy` token: it can be
//!   queued once), written, queued on the TX ring, and returns to the pool from the completion
//!   ring.
//!
//! Nothing here allocates per packet. This is the other module where `unsafe` is allowed: the
//! UMEM is memory shared with the kernel, and xsk-rs marks every access to it unsafe; each
//! block states which frame it touches and why no one else does.

#![allow(unsafe_code)]

use std::collections::HashMap;
use std::ffi::CString;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use prometheus::IntCounter;
use rtrb::{Consumer, Producer};
use xsk_rs::config::{BindFlags, LibxdpFlags, QueueSize, SocketConfig, UmemConfig};
use xsk_rs::socket::XdpStatistics;
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use super::backend::{LegIo, PacketIo, Polled, SendError, Transmit};
use crate::media::call::MAX_DATAGRAM;
use crate::time::Duration;
use crate::wire::frame::{MAX_HEADERS_LEN, emit_udp_headers, parse_udp};

/// Frames per UMEM (one UMEM per queue): half receive, half send.
const FRAMES: u32 = 4096;
/// Descriptors handled per ring operation.
const BATCH: usize = 64;
/// Ring sizes (power of two, at least half the frames each).
const RING: u32 = 2048;
/// Wakeups per flush while the TX ring still holds frames (see `flush_tx`).
const MAX_KICKS: usize = 64;
/// Handovers in flight from one worker to another.
pub const HANDOVER_CAPACITY: usize = 512;
/// How often, at most, a missing neighbour makes us read the kernel's table again.
const NEIGHBOUR_REFRESH: std::time::Duration = std::time::Duration::from_millis(200);
/// Peers whose link-layer address is remembered.
const NEIGHBOURS: usize = 4096;

/// Which worker holds each media port: written by the control side when it admits or
/// releases a leg, read by workers to hand a frame that arrived on the wrong queue to its
/// owner. `0` is nobody; otherwise worker index + 1.
pub struct PortOwners {
    owners: Box<[AtomicU16]>,
}

impl PortOwners {
    pub fn new() -> Arc<PortOwners> {
        Arc::new(PortOwners {
            owners: (0..=u16::MAX).map(|_| AtomicU16::new(0)).collect(),
        })
    }

    pub fn set(&self, port: u16, worker: usize) {
        self.owners[usize::from(port)].store(worker as u16 + 1, Ordering::Release);
    }

    pub fn clear(&self, port: u16) {
        self.owners[usize::from(port)].store(0, Ordering::Release);
    }

    fn get(&self, port: u16) -> Option<usize> {
        match self.owners[usize::from(port)].load(Ordering::Acquire) {
            0 => None,
            w => Some(usize::from(w - 1)),
        }
    }
}

/// A datagram that arrived on a queue of one worker for a leg of another.
pub struct Handover {
    port: u16,
    src: SocketAddr,
    len: u16,
    /// One byte more than the limit: an oversized datagram is handed over cut to this, still
    /// over the limit, so the owner's call counts it `oversized` on its leg.
    data: [u8; HANDOVER_DATA],
}

/// See [`Handover::data`].
const HANDOVER_DATA: usize = MAX_DATAGRAM + 1;

/// The mesh ends of one worker: a producer toward every other worker, a consumer from each.
pub struct Mesh {
    pub to: Vec<Option<Producer<Handover>>>,
    pub from: Vec<Consumer<Handover>>,
}

/// Builds the full mesh for `workers` workers: element `i` belongs to worker `i`.
pub fn mesh(workers: usize) -> Vec<Mesh> {
    let mut meshes: Vec<Mesh> = (0..workers)
        .map(|_| Mesh {
            to: (0..workers).map(|_| None).collect(),
            from: Vec::new(),
        })
        .collect();
    for from in 0..workers {
        for to in 0..workers {
            if from != to {
                let (tx, rx) = rtrb::RingBuffer::new(HANDOVER_CAPACITY);
                meshes[from].to[to] = Some(tx);
                meshes[to].from.push(rx);
            }
        }
    }
    meshes
}

/// The interface the backend sends on, and the appliance's addresses on it.
#[derive(Debug, Clone)]
pub struct Interface {
    pub name: String,
    pub index: u32,
    pub mac: [u8; 6],
    pub media_ip: IpAddr,
}

impl Interface {
    /// Looks the interface up by name: index and MAC address.
    pub fn lookup(name: &str, media_ip: IpAddr) -> io::Result<Interface> {
        let c =
            CString::new(name).map_err(|_| io::Error::other("interface name has a NUL byte"))?;
        // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
        let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
        if index == 0 {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("interface {name} not found"),
            ));
        }
        let text = std::fs::read_to_string(format!("/sys/class/net/{name}/address"))?;
        let mut mac = [0u8; 6];
        let parts: Vec<&str> = text.trim().split(':').collect();
        if parts.len() != 6 {
            return Err(io::Error::other(format!(
                "interface {name} has no Ethernet address"
            )));
        }
        for (byte, part) in mac.iter_mut().zip(parts) {
            *byte =
                u8::from_str_radix(part, 16).map_err(|_| io::Error::other("bad MAC address"))?;
        }
        Ok(Interface {
            name: name.to_string(),
            index,
            mac,
            media_ip,
        })
    }

    /// The interface that holds `ip`, if any.
    pub fn holding(ip: IpAddr) -> io::Result<Option<String>> {
        let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
        // SAFETY: getifaddrs writes a list head we free below with freeifaddrs.
        if unsafe { libc::getifaddrs(&mut head) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut found = None;
        let mut cur = head;
        while !cur.is_null() {
            // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
            let ifa = unsafe { &*cur };
            if !ifa.ifa_addr.is_null() {
                // SAFETY: ifa_addr points at a sockaddr whose family says its real type.
                let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
                let addr = match family {
                    libc::AF_INET => {
                        // SAFETY: the family is AF_INET, so this is a sockaddr_in.
                        let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                        Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                            sin.sin_addr.s_addr,
                        ))))
                    }
                    libc::AF_INET6 => {
                        // SAFETY: the family is AF_INET6, so this is a sockaddr_in6.
                        let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                        Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
                    }
                    _ => None,
                };
                if addr == Some(ip) {
                    // SAFETY: ifa_name is a NUL-terminated string owned by the list.
                    let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
                    found = Some(name.to_string_lossy().into_owned());
                    break;
                }
            }
            cur = ifa.ifa_next;
        }
        // SAFETY: `head` came from getifaddrs and is freed once.
        unsafe { libc::freeifaddrs(head) };
        Ok(found)
    }
}

/// Link-layer addresses of peers: learned from every frame received (the source MAC of a
/// frame from an IP is the next hop toward it), and looked up in the kernel's neighbour table
/// (netlink) for a peer we have not heard from yet. Sized at start; full means no new entries.
struct Neighbours {
    macs: HashMap<IpAddr, [u8; 6]>,
    ifindex: u32,
    /// When the kernel's table was last read, so a peer the kernel does not know either does
    /// not cost a netlink dump per packet.
    last_dump: Option<std::time::Instant>,
}

impl Neighbours {
    fn new(ifindex: u32) -> Neighbours {
        Neighbours {
            macs: HashMap::with_capacity(NEIGHBOURS),
            ifindex,
            last_dump: None,
        }
    }

    fn learn(&mut self, ip: IpAddr, mac: [u8; 6]) {
        if let Some(known) = self.macs.get_mut(&ip) {
            *known = mac;
        } else if self.macs.len() < NEIGHBOURS {
            self.macs.insert(ip, mac);
        }
    }

    fn lookup(&mut self, ip: IpAddr) -> Option<[u8; 6]> {
        if let Some(mac) = self.macs.get(&ip) {
            return Some(*mac);
        }
        let stale = self
            .last_dump
            .is_none_or(|t| t.elapsed() >= NEIGHBOUR_REFRESH);
        if stale {
            self.last_dump = Some(std::time::Instant::now());
            if let Ok(entries) = netlink::neighbours(self.ifindex) {
                for (ip, mac) in entries {
                    self.learn(ip, mac);
                }
            }
            let routable = !ip.is_loopback() && !ip.is_multicast() && !ip.is_unspecified();
            if routable && !self.macs.contains_key(&ip) {
                // Neither we nor the kernel know this peer yet (we must send before it has
                // sent anything): have the kernel resolve it (ARP / neighbour discovery); a
                // later lookup finds the entry. Until then this destination's packets are
                // dropped and counted (`no_next_hop`).
                let _ = netlink::resolve(self.ifindex, ip);
            }
        }
        self.macs.get(&ip).copied()
    }
}

/// A send frame taken from the pool: written once, queued once.
struct TxFrame(FrameDesc);

/// The send half of one UMEM's frames.
struct TxPool {
    free: Vec<FrameDesc>,
    queued: Vec<FrameDesc>,
}

impl TxPool {
    fn take(&mut self) -> Option<TxFrame> {
        self.free.pop().map(TxFrame)
    }

    fn queue(&mut self, frame: TxFrame) {
        self.queued.push(frame.0);
    }
}

/// One XSK: a queue of the interface, its UMEM and rings.
struct QueueSocket {
    umem: Umem,
    tx: TxQueue,
    rx: RxQueue,
    fill: FillQueue,
    comp: CompQueue,
    pool: TxPool,
    /// Scratch for descriptors moving through the RX and completion rings.
    batch: Vec<FrameDesc>,
    stats: XskCounters,
    last_stats: XdpStatistics,
}

/// One of the kernel's XDP statistics of an XSK, exported per queue.
pub struct XskStat {
    pub name: &'static str,
    pub help: &'static str,
    /// Reads it from the kernel's figures.
    read: fn(&XdpStatistics) -> u64,
}

/// The kernel's XDP statistics of an XSK that are exported.
pub const XSK_STATS: [XskStat; 6] = [
    XskStat {
        name: "earshot_xsk_rx_dropped_total",
        help: "Frames the kernel dropped for an AF_XDP socket (e.g. larger than a frame).",
        read: XdpStatistics::rx_dropped,
    },
    XskStat {
        name: "earshot_xsk_rx_ring_full_total",
        help: "Frames dropped because the AF_XDP RX ring was full.",
        read: XdpStatistics::rx_ring_full,
    },
    XskStat {
        name: "earshot_xsk_fill_ring_empty_total",
        help: "Times the kernel found the fill ring empty.",
        read: XdpStatistics::rx_fill_ring_empty_descs,
    },
    XskStat {
        name: "earshot_xsk_tx_ring_empty_total",
        help: "Times the kernel found the TX ring empty when woken.",
        read: XdpStatistics::tx_ring_empty_descs,
    },
    XskStat {
        name: "earshot_xsk_rx_invalid_descs_total",
        help: "Invalid RX descriptors.",
        read: XdpStatistics::rx_invalid_descs,
    },
    XskStat {
        name: "earshot_xsk_tx_invalid_descs_total",
        help: "Invalid TX descriptors.",
        read: XdpStatistics::tx_invalid_descs,
    },
];

/// Prometheus children of one queue's kernel XDP statistics, one per [`XSK_STATS`] entry.
pub type XskCounters = [IntCounter; XSK_STATS.len()];

/// A leg's entry, indexed by its local port.
struct PortEntry {
    generation: u32,
    /// The leg's bound UDP socket: it keeps the port reserved in the kernel (no other process
    /// can take it, and nothing answers ICMP unreachable for it); AF_XDP takes its traffic.
    _socket: UdpSocket,
}

/// What the control side gives a worker to build its AF_XDP backend.
pub struct AfXdpSetup {
    pub interface: Interface,
    pub queues: Vec<u32>,
    pub worker: usize,
    pub owners: Arc<PortOwners>,
    pub mesh: Mesh,
    pub busy_poll: bool,
    /// Counters per queue, in the order of `queues`.
    pub counters: Vec<XskCounters>,
}

/// The AF_XDP backend of one worker.
pub struct AfXdp {
    interface: Interface,
    worker: usize,
    xsks: Vec<QueueSocket>,
    ports: Box<[Option<PortEntry>]>,
    next_generation: u32,
    owners: Arc<PortOwners>,
    mesh: Mesh,
    neighbours: Neighbours,
    wake: OwnedFd,
    /// What `ppoll` waits on: every XSK's RX, then the waker. Built once (the fds never
    /// change); the kernel rewrites only the `revents`.
    pollfds: Vec<libc::pollfd>,
}

impl AfXdp {
    /// Creates the worker's XSKs (one per queue, each with its own UMEM) and fills their fill
    /// rings. Must run on the worker thread. Returns the backend and each XSK's (queue, fd), to
    /// be put in the XDP program's XSKMAP.
    pub fn new(setup: AfXdpSetup, wake: OwnedFd) -> io::Result<(AfXdp, Vec<(u32, RawFd)>)> {
        let AfXdpSetup {
            interface,
            queues,
            worker,
            owners,
            mesh,
            busy_poll,
            counters,
        } = setup;
        let ifname: xsk_rs::config::Interface = interface
            .name
            .parse()
            .map_err(|_| io::Error::other(format!("bad interface name {}", interface.name)))?;
        let ring = QueueSize::new(RING).map_err(|e| io::Error::other(e.to_string()))?;
        let umem_config = UmemConfig::builder()
            .fill_queue_size(ring)
            .comp_queue_size(ring)
            .build()
            .map_err(|e| io::Error::other(e.to_string()))?;
        let socket_config = SocketConfig::builder()
            .rx_queue_size(ring)
            .tx_queue_size(ring)
            // Our own XDP program is attached by the control side; libxdp must not load its
            // default one.
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(BindFlags::XDP_USE_NEED_WAKEUP)
            .build();
        let mut xsks = Vec::with_capacity(queues.len());
        let mut fds = Vec::with_capacity(queues.len());
        for (queue, stats) in queues.into_iter().zip(counters) {
            let frames = NonZeroU32::new(FRAMES).expect("FRAMES is not zero");
            let (umem, mut descs) = Umem::new(umem_config, frames, false).map_err(|e| {
                io::Error::other(format!("creating the UMEM for queue {queue}: {e}"))
            })?;
            // SAFETY: the UMEM is only used with sockets of this backend, and every frame
            // descriptor stays with exactly one owner (fill ring, RX processing, TX pool, TX
            // ring) as the module documentation describes.
            let (tx, rx, fq_cq) = unsafe { Socket::new(socket_config, &umem, &ifname, queue) }
                .map_err(|e| {
                    io::Error::other(format!(
                        "binding an AF_XDP socket to {} queue {queue}: {e}",
                        interface.name
                    ))
                })?;
            let (mut fill, comp) = fq_cq.ok_or_else(|| {
                io::Error::other("the AF_XDP socket came without fill and completion rings")
            })?;
            let fd = rx.fd().as_raw_fd();
            if busy_poll {
                set_busy_poll(fd);
            }
            let tx_frames = descs.split_off(descs.len() / 2);
            // SAFETY: these frames were just created and belong to no one else; the fill ring
            // now owns them until the RX ring returns them.
            let filled = unsafe { fill.produce(&descs) };
            if filled != descs.len() {
                return Err(io::Error::other(
                    "the fill ring took fewer frames than it has room for",
                ));
            }
            fds.push((queue, fd));
            xsks.push(QueueSocket {
                umem,
                tx,
                rx,
                fill,
                comp,
                pool: TxPool {
                    queued: Vec::with_capacity(tx_frames.len()),
                    free: tx_frames,
                },
                batch: vec![FrameDesc::default(); BATCH],
                stats,
                last_stats: Default::default(),
            });
        }
        let pollfds = xsks
            .iter()
            .map(|xsk| xsk.rx.fd().as_raw_fd())
            .chain([wake.as_raw_fd()])
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let backend = AfXdp {
            neighbours: Neighbours::new(interface.index),
            interface,
            worker,
            xsks,
            ports: (0..=u16::MAX).map(|_| None).collect(),
            next_generation: 0,
            owners,
            mesh,
            wake,
            pollfds,
        };
        Ok((backend, fds))
    }

    /// Publishes the kernel's XDP statistics of every queue as deltas to the counters.
    fn publish_stats(&mut self) {
        for xsk in &mut self.xsks {
            let Ok(now) = xsk.rx.fd().xdp_statistics() else {
                continue;
            };
            for (stat, counter) in XSK_STATS.iter().zip(&xsk.stats) {
                counter.inc_by((stat.read)(&now).saturating_sub((stat.read)(&xsk.last_stats)));
            }
            xsk.last_stats = now;
        }
    }

    /// Puts every queued send frame on the TX ring and kicks the kernel if it asks to be.
    fn flush(&mut self) {
        for xsk in &mut self.xsks {
            flush_tx(xsk);
            reclaim(xsk);
        }
    }
}

/// Moves queued frames to the TX ring (what does not fit stays queued) and wakes the kernel
/// for as long as the ring still holds frames. In copy mode (veth, generic XDP, NICs without
/// zero-copy) each wakeup sends only a small batch (the kernel's per-call budget), so one kick
/// per turn would let the ring, and then the pool, fill up under load; the kicks are bounded so
/// a stuck device cannot hold the worker here.
fn flush_tx(xsk: &mut QueueSocket) {
    if !xsk.pool.queued.is_empty() {
        // SAFETY: every queued frame was taken from this UMEM's pool and fully written; the TX
        // ring owns it from here until the completion ring gives it back.
        let sent = unsafe { xsk.tx.produce(&xsk.pool.queued) };
        xsk.pool.queued.drain(..sent);
    }
    for _ in 0..MAX_KICKS {
        if xsk.tx.nb_free_exact() >= RING || !xsk.tx.needs_wakeup() {
            break;
        }
        if xsk.tx.wakeup().is_err() {
            break;
        }
        reclaim(xsk);
    }
}

/// Returns completed send frames to the pool.
fn reclaim(xsk: &mut QueueSocket) {
    loop {
        // SAFETY: the completion ring hands back frames the kernel has finished sending; they
        // are ours again.
        let n = unsafe { xsk.comp.consume(&mut xsk.batch) };
        xsk.pool.free.extend_from_slice(&xsk.batch[..n]);
        if n < xsk.batch.len() {
            break;
        }
    }
}

fn set_busy_poll(fd: RawFd) {
    // Linux socket options for busy polling (include/uapi/asm-generic/socket.h): prefer busy
    // polling over interrupts, poll for up to 20 µs, up to 64 packets per poll. Where the
    // kernel or driver does not offer them, interrupts and need_wakeup still work.
    const SO_BUSY_POLL: libc::c_int = 46;
    const SO_PREFER_BUSY_POLL: libc::c_int = 69;
    const SO_BUSY_POLL_BUDGET: libc::c_int = 70;
    for (option, value) in [
        (SO_PREFER_BUSY_POLL, 1),
        (SO_BUSY_POLL, 20),
        (SO_BUSY_POLL_BUDGET, BATCH as libc::c_int),
    ] {
        // SAFETY: setsockopt reads `value` (a live c_int) for its length; failure is harmless.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&raw const value).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

/// The send half of the backend: frames datagrams onto one XSK.
pub struct XskSender<'a> {
    umem: &'a Umem,
    pool: &'a mut TxPool,
    ports: &'a [Option<PortEntry>],
    neighbours: &'a mut Neighbours,
    interface: &'a Interface,
}

impl Transmit for XskSender<'_> {
    fn send(&mut self, io: LegIo, dst: SocketAddr, datagram: &[u8]) -> Result<(), SendError> {
        if datagram.len() > MAX_DATAGRAM {
            return Err(SendError::Invalid);
        }
        match self.ports.get(io.index()).and_then(Option::as_ref) {
            Some(entry) if entry.generation == io.generation => {}
            _ => return Err(SendError::Invalid),
        }
        let src = SocketAddr::new(self.interface.media_ip, io.index as u16);
        let dst_mac = self
            .neighbours
            .lookup(dst.ip())
            .ok_or(SendError::NoNextHop)?;
        let mut headers = [0u8; MAX_HEADERS_LEN];
        let hlen = emit_udp_headers(
            &mut headers,
            self.interface.mac,
            dst_mac,
            src,
            dst,
            datagram,
        )
        .map_err(|_| SendError::Invalid)?;
        let mut frame = self.pool.take().ok_or(SendError::PoolExhausted)?;
        // SAFETY: `frame` came from this UMEM's TX pool, so neither the kernel nor any other
        // code holds it until it is queued below.
        let mut data = unsafe { self.umem.data_mut(&mut frame.0) };
        let mut cursor = data.cursor();
        if cursor
            .write_all(&headers[..hlen])
            .and_then(|()| cursor.write_all(datagram))
            .is_err()
        {
            self.pool.free.push(frame.0);
            return Err(SendError::Invalid);
        }
        self.pool.queue(frame);
        Ok(())
    }
}

impl PacketIo for AfXdp {
    type Tx<'a> = XskSender<'a>;

    /// Handles are ports.
    fn handle_capacity(&self) -> usize {
        self.ports.len()
    }

    fn add_leg(&mut self, socket: UdpSocket) -> io::Result<Option<LegIo>> {
        let port = socket.local_addr()?.port();
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        self.ports[usize::from(port)] = Some(PortEntry {
            generation,
            _socket: socket,
        });
        Ok(Some(LegIo {
            index: u32::from(port),
            generation,
        }))
    }

    fn remove_leg(&mut self, io: LegIo) -> io::Result<()> {
        if let Some(slot) = self.ports.get_mut(io.index())
            && slot.as_ref().is_some_and(|e| e.generation == io.generation)
        {
            *slot = None;
        }
        Ok(())
    }

    fn sender(&mut self) -> XskSender<'_> {
        let xsk = &mut self.xsks[0];
        XskSender {
            umem: &xsk.umem,
            pool: &mut xsk.pool,
            ports: &self.ports,
            neighbours: &mut self.neighbours,
            interface: &self.interface,
        }
    }

    fn poll(&mut self, on: &mut dyn FnMut(Polled<'_>)) -> io::Result<()> {
        let AfXdp {
            interface,
            worker,
            xsks,
            ports,
            owners,
            mesh,
            neighbours,
            ..
        } = self;
        for xsk in xsks.iter_mut() {
            reclaim(xsk);
            loop {
                let QueueSocket {
                    umem,
                    rx,
                    fill,
                    pool,
                    batch,
                    ..
                } = &mut *xsk;
                // SAFETY: the RX ring hands these frames to us; they stay ours until they are
                // produced to the fill ring below.
                let n = unsafe { rx.consume(batch) };
                if n == 0 {
                    break;
                }
                for desc in &batch[..n] {
                    // SAFETY: `desc` is a received frame we own (see above); the sends made
                    // while it is read use other frames (from the TX pool) of the same UMEM.
                    let frame = unsafe { umem.data(desc) }.contents();
                    let Ok(inbound) = parse_udp(frame) else {
                        on(Polled::Malformed);
                        continue;
                    };
                    neighbours.learn(inbound.src.ip(), inbound.src_mac);
                    let data = inbound.payload;
                    let tx = XskSender {
                        umem,
                        pool: &mut *pool,
                        ports,
                        neighbours: &mut *neighbours,
                        interface,
                    };
                    let dst_port = inbound.dst.port();
                    if !deliver(dst_port, inbound.src, data, tx, on) {
                        match owners.get(dst_port) {
                            Some(owner) if owner != *worker => {
                                hand_over(mesh, owner, dst_port, inbound.src, data, on)
                            }
                            _ => on(Polled::UnknownPort),
                        }
                    }
                }
                // SAFETY: the frames were received and are no longer read; the fill ring
                // owns them again.
                let refilled = unsafe { fill.produce(&batch[..n]) };
                debug_assert_eq!(
                    refilled, n,
                    "the fill ring has room for every frame it gave"
                );
                if n < batch.len() {
                    break;
                }
            }
        }
        // Datagrams other workers received for our legs, read in the ring's slots.
        let Some(first) = xsks.first_mut() else {
            return Ok(());
        };
        for from in &mut mesh.from {
            let Ok(chunk) = from.read_chunk(from.slots()) else {
                continue;
            };
            let (older, newer) = chunk.as_slices();
            for h in older.iter().chain(newer) {
                let tx = XskSender {
                    umem: &first.umem,
                    pool: &mut first.pool,
                    ports,
                    neighbours: &mut *neighbours,
                    interface,
                };
                if !deliver(h.port, h.src, &h.data[..usize::from(h.len)], tx, on) {
                    on(Polled::UnknownPort);
                }
            }
            chunk.commit_all();
        }
        Ok(())
    }

    fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        self.flush();
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: `pollfds` is a live array of initialised pollfd of the given length, `ts` a
        // live timespec; no signal mask.
        let n = unsafe {
            libc::ppoll(
                self.pollfds.as_mut_ptr(),
                self.pollfds.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            };
        }
        if self
            .pollfds
            .last()
            .is_some_and(|p| p.revents & libc::POLLIN != 0)
        {
            let mut buf = 0u64;
            // SAFETY: reads 8 bytes into a live u64 from the eventfd we own (non-blocking).
            let _ = unsafe { libc::read(self.wake.as_raw_fd(), (&raw mut buf).cast(), 8) };
        }
        Ok(())
    }

    /// Exports the kernel's XDP statistics of every queue (`earshot_xsk_*`).
    fn housekeeping(&mut self) {
        self.publish_stats();
    }

    fn shutdown(&mut self) {
        // Let queued sends go out; the sockets and UMEMs are released when the backend drops
        // (xsk-rs closes each socket before unmapping its UMEM).
        self.flush();
        self.publish_stats();
    }
}

/// Hands a datagram for local `port` to the leg of this worker that holds it, with `tx` to
/// answer it; false when no leg here holds the port.
fn deliver(
    port: u16,
    src: SocketAddr,
    data: &[u8],
    mut tx: XskSender<'_>,
    on: &mut dyn FnMut(Polled<'_>),
) -> bool {
    let Some(entry) = tx.ports[usize::from(port)].as_ref() else {
        return false;
    };
    let io = LegIo {
        index: u32::from(port),
        generation: entry.generation,
    };
    on(Polled::Datagram {
        io,
        src,
        data,
        tx: &mut tx,
    });
    true
}

/// Copies a datagram into the ring toward the worker that holds its port.
fn hand_over(
    mesh: &mut Mesh,
    owner: usize,
    port: u16,
    src: SocketAddr,
    data: &[u8],
    on: &mut dyn FnMut(Polled<'_>),
) {
    let Some(Some(ring)) = mesh.to.get_mut(owner) else {
        return on(Polled::UnknownPort);
    };
    let data = &data[..data.len().min(HANDOVER_DATA)];
    // Written in place in the ring's slot: no allocation, one copy of the datagram.
    let Ok(mut chunk) = ring.write_chunk_uninit(1) else {
        return on(Polled::UnknownPort);
    };
    let (first, _) = chunk.as_mut_slices();
    let h = first[0].write(Handover {
        port,
        src,
        len: data.len() as u16,
        data: [0; HANDOVER_DATA],
    });
    h.data[..data.len()].copy_from_slice(data);
    // SAFETY: the one slot of the chunk was initialised just above.
    unsafe { chunk.commit_all() };
    on(Polled::HandedOver);
}

/// A minimal netlink client for the kernel's neighbour table (RTM_GETNEIGH dump, rtnetlink(7)).
mod netlink {
    use super::*;

    const NLMSG_HDRLEN: usize = 16;
    const NDMSG_LEN: usize = 12;
    const NLMSG_DONE: u16 = 3;
    const NLMSG_ERROR: u16 = 2;
    const RTM_NEWNEIGH: u16 = 28;
    const RTM_GETNEIGH: u16 = 30;
    const NDA_DST: u16 = 1;
    const NDA_LLADDR: u16 = 2;
    /// Neighbour states worth using: NUD_INCOMPLETE (1) and NUD_FAILED (32) are not.
    const NUD_USABLE: u16 = 0x02 | 0x04 | 0x08 | 0x10 | 0x80;

    /// A netlink route socket (rtnetlink(7)).
    fn route_socket() -> io::Result<OwnedFd> {
        // SAFETY: plain socket(2) call; the result is checked before it is owned.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor owned by no one else.
        Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
    }

    /// Sends one netlink request.
    fn send(fd: &OwnedFd, request: &[u8]) -> io::Result<()> {
        // SAFETY: sends the live request buffer, of its own length, on our socket.
        if unsafe { libc::send(fd.as_raw_fd(), request.as_ptr().cast(), request.len(), 0) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Every usable (IP, MAC) entry of the kernel's neighbour table on `ifindex`.
    pub fn neighbours(ifindex: u32) -> io::Result<Vec<(IpAddr, [u8; 6])>> {
        let fd = route_socket()?;
        let mut req = [0u8; NLMSG_HDRLEN + NDMSG_LEN];
        req[0..4].copy_from_slice(&((NLMSG_HDRLEN + NDMSG_LEN) as u32).to_ne_bytes());
        req[4..6].copy_from_slice(&RTM_GETNEIGH.to_ne_bytes());
        let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
        req[6..8].copy_from_slice(&flags.to_ne_bytes());
        req[8..12].copy_from_slice(&1u32.to_ne_bytes());
        send(&fd, &req)?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            // SAFETY: receives into the live buffer of the given length.
            let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut msgs = &buf[..n as usize];
            while msgs.len() >= NLMSG_HDRLEN {
                let len = u32::from_ne_bytes(msgs[0..4].try_into().unwrap_or_default()) as usize;
                let kind = u16::from_ne_bytes([msgs[4], msgs[5]]);
                if len < NLMSG_HDRLEN || len > msgs.len() {
                    return Ok(out);
                }
                match kind {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => return Err(io::Error::other("netlink neighbour dump failed")),
                    RTM_NEWNEIGH => {
                        if let Some(entry) = parse_neigh(&msgs[NLMSG_HDRLEN..len], ifindex) {
                            out.push(entry);
                        }
                    }
                    _ => {}
                }
                msgs = &msgs[len.next_multiple_of(4).min(msgs.len())..];
            }
            if n == 0 {
                return Ok(out);
            }
        }
    }

    /// Asks the kernel to resolve `ip` on `ifindex` (RTM_NEWNEIGH with NTF_USE, as `ip neigh
    /// replace IP dev DEV use` does): it sends ARP or a neighbour solicitation and fills its
    /// table. Fire and forget: the answer is not awaited.
    pub fn resolve(ifindex: u32, ip: IpAddr) -> io::Result<()> {
        const RTM_NEWNEIGH_REQ: u16 = 28;
        const NTF_USE: u8 = 0x01;
        const NUD_PERMANENT: u16 = 0x80;
        let (family, addr): (u8, &[u8]) = match &ip {
            IpAddr::V4(v4) => (libc::AF_INET as u8, &v4.octets()[..]),
            IpAddr::V6(v6) => (libc::AF_INET6 as u8, &v6.octets()[..]),
        };
        let attr_len = 4 + addr.len();
        let total = NLMSG_HDRLEN + NDMSG_LEN + attr_len.next_multiple_of(4);
        let mut req = [0u8; NLMSG_HDRLEN + NDMSG_LEN + 20];
        req[0..4].copy_from_slice(&(total as u32).to_ne_bytes());
        req[4..6].copy_from_slice(&RTM_NEWNEIGH_REQ.to_ne_bytes());
        let flags = (libc::NLM_F_REQUEST | libc::NLM_F_CREATE | libc::NLM_F_REPLACE) as u16;
        req[6..8].copy_from_slice(&flags.to_ne_bytes());
        let nd = &mut req[NLMSG_HDRLEN..NLMSG_HDRLEN + NDMSG_LEN];
        nd[0] = family;
        nd[4..8].copy_from_slice(&ifindex.to_ne_bytes());
        nd[8..10].copy_from_slice(&NUD_PERMANENT.to_ne_bytes()); // ignored with NTF_USE
        nd[10] = NTF_USE;
        let at = NLMSG_HDRLEN + NDMSG_LEN;
        req[at..at + 2].copy_from_slice(&(attr_len as u16).to_ne_bytes());
        req[at + 2..at + 4].copy_from_slice(&NDA_DST.to_ne_bytes());
        req[at + 4..at + 4 + addr.len()].copy_from_slice(addr);
        let fd = route_socket()?;
        send(&fd, &req[..total])?;
        Ok(())
    }

    fn parse_neigh(body: &[u8], ifindex: u32) -> Option<(IpAddr, [u8; 6])> {
        let nd = body.get(..NDMSG_LEN)?;
        let family = i32::from(nd[0]);
        let index = u32::from_ne_bytes(nd[4..8].try_into().ok()?);
        let state = u16::from_ne_bytes([nd[8], nd[9]]);
        if index != ifindex || state & NUD_USABLE == 0 {
            return None;
        }
        let (mut ip, mut mac) = (None, None);
        let mut attrs = &body[NDMSG_LEN..];
        while attrs.len() >= 4 {
            let len = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
            let kind = u16::from_ne_bytes([attrs[2], attrs[3]]);
            if len < 4 || len > attrs.len() {
                break;
            }
            let value = &attrs[4..len];
            match (kind, family, value.len()) {
                (NDA_DST, libc::AF_INET, 4) => {
                    ip = Some(IpAddr::V4(Ipv4Addr::new(
                        value[0], value[1], value[2], value[3],
                    )))
                }
                (NDA_DST, libc::AF_INET6, 16) => {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(value);
                    ip = Some(IpAddr::V6(Ipv6Addr::from(a)));
                }
                (NDA_LLADDR, _, 6) => {
                    let mut m = [0u8; 6];
                    m.copy_from_slice(value);
                    mac = Some(m);
                }
                _ => {}
            }
            attrs = &attrs[len.next_multiple_of(4).min(attrs.len())..];
        }
        Some((ip?, mac?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_owners_and_mesh() {
        let owners = PortOwners::new();
        owners.set(20000, 1);
        assert_eq!(owners.get(20000), Some(1));
        owners.clear(20000);
        assert_eq!(owners.get(20000), None);
        let meshes = mesh(3);
        assert!(meshes[0].to[0].is_none() && meshes[0].to[1].is_some());
        assert_eq!(meshes[2].from.len(), 2);
    }
}

//! Zero heap allocations per packet in steady state (docs/design.md §9.4), proven with a counting
//! global allocator: once a call is admitted and warmed up, relaying, mixing, ticking, and the
//! engine's io_uring and AF_XDP receive/send paths allocate nothing. The AF_XDP case runs the
//! engine on one end of a veth pair in a network namespace of its own and the phones in another: it
//! needs root, and without it reports *ignored*, or fails under `CI=true` (`needs_root`).
//!
//! A `harness = false` test: the counter is process-wide, so nothing else (not even libtest's
//! own threads) may run while a window is measured.

// A GlobalAlloc implementation is unsafe by definition; so are setns(2), unshare(2) and
// mount(2), which put the AF_XDP case's threads into its namespaces.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd as _;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::thread;
use std::time::Duration as StdDuration;

mod needs_root;

use dataplane::engine::{Backend, CallMedia, Engine, EngineConfig, LegSpec, SupervisorMedia};
use dataplane::media::call::{Call, CallConfig, CallEvent, Leg, Output};
use dataplane::media::jitter::JitterConfig;
use dataplane::media::matrix::{LegId, Mode};
use dataplane::time::{Duration, Instant};
use dataplane::wire::g711::{Codec, ulaw_encode};
use dataplane::wire::rtp::{RtpHeader, SeqNo, Ssrc};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.load(Relaxed)
}

fn rtp(buf: &mut [u8; 172], seq: u16, ts: u32, ssrc: u32, level: i16) {
    let header = RtpHeader {
        marker: false,
        payload_type: 0,
        sequence_number: SeqNo(seq),
        timestamp: ts,
        ssrc: Ssrc(ssrc),
    };
    header.emit(&mut buf[..]).unwrap();
    buf[RtpHeader::LEN..].fill(ulaw_encode(level));
}

/// An output that only counts (pushing into a Vec would itself allocate).
#[derive(Default)]
struct Count {
    sent: u64,
    events: u64,
}

impl Output for Count {
    fn transmit(&mut self, _: LegId, _: SocketAddr, datagram: &[u8]) {
        self.sent += u64::from(!datagram.is_empty());
    }
    fn event(&mut self, _: CallEvent) {
        self.events += 1;
    }
}

fn media_core_allocates_nothing_per_packet() {
    let addr = |p: u16| SocketAddr::from(([192, 0, 2, 1], p));
    let leg = |p: u16, ssrc: u32| {
        Leg::new(
            Codec::Pcmu,
            Some(addr(p)),
            Ssrc(ssrc),
            0,
            0,
            JitterConfig::default(),
            Instant::ZERO,
        )
    };
    // Two calls: one plain (relay both ways), one with a whisperer (two mixed outputs, one relay).
    let mut plain = Call::new(CallConfig::default(), leg(1, 1), leg(2, 2));
    let mut whisper = Call::new(CallConfig::default(), leg(1, 3), leg(2, 4));
    whisper
        .add_supervisor(LegId(2), leg(3, 5), true)
        .ok()
        .unwrap();
    whisper.set_mode(LegId(2), Mode::Whisper);
    let mut out = Count::default();
    let mut buf = [0u8; 172];
    let mut step = |k: u32, out: &mut Count| {
        let now = Instant::from_millis(u64::from(k) * 20);
        for (leg, port, ssrc) in [(LegId::CUSTOMER, 1, 10), (LegId::AGENT, 2, 20)] {
            rtp(&mut buf, k as u16, k * 160, ssrc, 1000);
            plain.handle_datagram(leg, addr(port), &buf, now, out);
            whisper.handle_datagram(leg, addr(port), &buf, now, out);
        }
        rtp(&mut buf, k as u16, k * 160, 30, 2000);
        whisper.handle_datagram(LegId(2), addr(3), &buf, now, out);
        plain.tick(now + Duration::from_millis(5), out);
        whisper.tick(now + Duration::from_millis(5), out);
    };
    for k in 0..100 {
        step(k, &mut out);
    }
    let before = allocations();
    let sent_before = out.sent;
    for k in 100..3100 {
        step(k, &mut out);
    }
    let allocated = allocations() - before;
    let packets = out.sent - sent_before;
    assert!(
        packets >= 3000 * 5,
        "the calls relayed and mixed: {packets} packets out"
    );
    assert_eq!(
        allocated, 0,
        "{allocated} allocations while the media core moved {packets} packets"
    );
}

/// Phones for one whispered call: customer, agent and supervisor sockets.
struct Phones {
    customer: UdpSocket,
    agent: UdpSocket,
    supervisor: UdpSocket,
}

impl Phones {
    fn bind(ip: IpAddr) -> Phones {
        let bind = || {
            let s = UdpSocket::bind(SocketAddr::new(ip, 0)).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        };
        Phones {
            customer: bind(),
            agent: bind(),
            supervisor: bind(),
        }
    }
}

/// Admits a call of the three phones on `engine`, with the supervisor whispering.
fn whispered_call(engine: &Engine, phones: &Phones) -> (CallMedia, SupervisorMedia) {
    let spec = |s: &UdpSocket| LegSpec {
        remote: Some(s.local_addr().unwrap()),
        codec: Codec::Pcmu,
    };
    let media = engine
        .create_call(spec(&phones.customer), spec(&phones.agent))
        .unwrap();
    let sup = engine
        .add_supervisor(media.call, spec(&phones.supervisor), true)
        .unwrap();
    engine.set_mode(media.call, sup.leg, Mode::Whisper).unwrap();
    (media, sup)
}

/// Every phone sends a packet per 20 ms and drains what came back: 25 frames of warm-up,
/// then 100 measured. Returns the packets received and the allocations in the measured
/// window (process-wide: the engine's workers included).
fn measure(phones: &Phones, media: CallMedia, sup: SupervisorMedia) -> (u64, u64) {
    let mut buf = [0u8; 172];
    let mut sink = [0u8; 2048];
    let mut received = 0u64;
    let mut run = |frames: std::ops::Range<u32>, received: &mut u64| {
        for k in frames {
            for (socket, dst, ssrc) in [
                (&phones.customer, media.customer, 1),
                (&phones.agent, media.agent, 2),
                (&phones.supervisor, sup.local, 3),
            ] {
                rtp(&mut buf, k as u16, k * 160, ssrc, 1000);
                socket.send_to(&buf, dst).unwrap();
            }
            std::thread::sleep(StdDuration::from_millis(20));
            for socket in [&phones.customer, &phones.agent, &phones.supervisor] {
                while socket.recv_from(&mut sink).is_ok() {
                    *received += 1;
                }
            }
        }
    };
    run(0..25, &mut received);
    let before = allocations();
    received = 0;
    run(25..125, &mut received);
    (received, allocations() - before)
}

fn engine_allocates_nothing_per_packet() {
    let registry = prometheus::Registry::new();
    let engine = Engine::start(
        EngineConfig {
            port_min: 46000,
            port_max: 46999,
            max_calls: 16,
            ..EngineConfig::default()
        },
        &registry,
    )
    .unwrap();
    let phones = Phones::bind(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let (media, sup) = whispered_call(&engine, &phones);
    let (received, allocated) = measure(&phones, media, sup);
    assert!(
        received >= 250,
        "the engine relayed and mixed: {received} packets back in 2 s"
    );
    assert_eq!(
        allocated, 0,
        "{allocated} allocations while the engine moved {received} packets"
    );
    engine.shutdown();
}

/// Two network namespaces joined by a veth pair, `10.77.0.1/24` (appliance) and `.2` (peer),
/// named after this process; deleted on drop, also when the test panics. (A small copy of the
/// end-to-end tests' `earshot_tests::netns`, which this crate cannot depend on.)
struct VethPair {
    appliance: String,
    peer: String,
    appliance_if: String,
    peer_if: String,
}

impl VethPair {
    const APPLIANCE_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
    const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

    fn create() -> VethPair {
        let pid = std::process::id();
        let pair = VethPair {
            appliance: format!("es-a-{pid}-alloc"),
            peer: format!("es-p-{pid}-alloc"),
            appliance_if: format!("es{pid:x}aA"),
            peer_if: format!("es{pid:x}pA"),
        };
        let (a, p) = (&pair.appliance, &pair.peer);
        let (aif, pif) = (&pair.appliance_if, &pair.peer_if);
        let (aip, pip) = (
            format!("{}/24", Self::APPLIANCE_IP),
            format!("{}/24", Self::PEER_IP),
        );
        for args in [
            &["netns", "add", a][..],
            &["netns", "add", p],
            &[
                "link", "add", aif, "netns", a, "type", "veth", "peer", "name", pif, "netns", p,
            ],
            &["-n", a, "addr", "add", &aip, "dev", aif],
            &["-n", p, "addr", "add", &pip, "dev", pif],
            &["-n", a, "link", "set", "lo", "up"],
            &["-n", p, "link", "set", "lo", "up"],
            &["-n", a, "link", "set", aif, "up"],
            &["-n", p, "link", "set", pif, "up"],
        ] {
            let out = Command::new("ip").args(args).output().expect("run ip");
            // On failure `pair` drops here and deletes what was made.
            assert!(
                out.status.success(),
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        pair
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        for ns in [&self.appliance, &self.peer] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

fn check(ret: libc::c_int, what: &str) -> io::Result<()> {
    if ret == 0 {
        Ok(())
    } else {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    }
}

/// Moves the calling thread into network namespace `ns`, and into a mount namespace of its own
/// whose `/sys` shows `ns` (the engine reads the queue count there), as `ip netns exec` does.
fn enter(ns: &str) -> io::Result<()> {
    let file = File::open(format!("/var/run/netns/{ns}"))?;
    // SAFETY: `file` is an open nsfs file for the duration of the call; setns changes only the
    // calling thread's network namespace.
    check(
        unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) },
        "setns",
    )?;
    // SAFETY: gives the calling thread a copy of its mount namespace; no memory involved.
    check(unsafe { libc::unshare(libc::CLONE_NEWNS) }, "unshare")?;
    // SAFETY: a propagation change on a NUL-terminated literal path; null source, type and
    // data are allowed. Every mount becomes a slave first, so nothing below propagates back.
    check(
        unsafe {
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_SLAVE | libc::MS_REC,
                std::ptr::null(),
            )
        },
        "making / a slave",
    )?;
    // SAFETY: a NUL-terminated literal path; failing only means nothing was mounted there.
    unsafe { libc::umount2(c"/sys".as_ptr(), libc::MNT_DETACH) };
    let source = CString::new(ns).unwrap();
    // SAFETY: NUL-terminated strings that outlive the call; sysfs takes no data.
    check(
        unsafe {
            libc::mount(
                source.as_ptr(),
                c"/sys".as_ptr(),
                c"sysfs".as_ptr(),
                0,
                std::ptr::null(),
            )
        },
        "mounting /sys",
    )
}

/// The AF_XDP path: the engine (every one of its threads) in the appliance namespace on the
/// veth, the phones' sockets made in the peer namespace. Needs root.
fn afxdp_engine_allocates_nothing_per_packet() {
    let pair = VethPair::create();
    // Sockets keep the namespace they are made in.
    let peer = pair.peer.clone();
    let phones = thread::spawn(move || {
        enter(&peer).unwrap();
        Phones::bind(IpAddr::V4(VethPair::PEER_IP))
    })
    .join()
    .unwrap();
    // The main thread stays in the machine's namespaces, so dropping `pair` deletes them
    // there; the engine runs from a thread that entered the appliance namespace.
    let (appliance, interface) = (pair.appliance.clone(), pair.appliance_if.clone());
    let run = thread::spawn(move || {
        enter(&appliance).unwrap();
        let registry = prometheus::Registry::new();
        let engine = Engine::start(
            EngineConfig {
                media_ip: IpAddr::V4(VethPair::APPLIANCE_IP),
                port_min: 46000,
                port_max: 46999,
                max_calls: 16,
                backend: Backend::AfXdp,
                interface: Some(interface),
                ..EngineConfig::default()
            },
            &registry,
        )
        .unwrap();
        assert_eq!(engine.backend(), Backend::AfXdp);
        let (media, sup) = whispered_call(&engine, &phones);
        let result = measure(&phones, media, sup);
        engine.shutdown();
        result
    })
    .join();
    let (received, allocated) = match run {
        Ok(r) => r,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    assert!(
        received >= 250,
        "the AF_XDP engine relayed and mixed: {received} packets back in 2 s"
    );
    assert_eq!(
        allocated, 0,
        "{allocated} allocations while the AF_XDP engine moved {received} packets"
    );
    drop(pair);
}

/// Runs the tests one after the other on this thread, libtest's way of reporting (a failing
/// assertion panics and ends the run); the AF_XDP one as `needs_root` says.
fn main() {
    media_core_allocates_nothing_per_packet();
    println!("test media_core_allocates_nothing_per_packet ... ok");
    engine_allocates_nothing_per_packet();
    println!("test engine_allocates_nothing_per_packet ... ok");
    match needs_root::verdict() {
        Ok(None) => {
            afxdp_engine_allocates_nothing_per_packet();
            println!("test afxdp_engine_allocates_nothing_per_packet ... ok");
            println!("alloc: 3 passed, 0 failed");
        }
        Ok(Some(why)) => {
            println!("test afxdp_engine_allocates_nothing_per_packet ... ignored, {why}");
            println!("alloc: 2 passed, 0 failed, 1 ignored");
        }
        Err(why) => {
            println!("test afxdp_engine_allocates_nothing_per_packet ... FAILED: {why}");
            println!("alloc: 2 passed, 1 failed");
            std::process::exit(101);
        }
    }
}

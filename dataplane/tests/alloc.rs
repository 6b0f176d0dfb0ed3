//! Zero heap allocations per packet in steady state (STYLE.md 4), proven with a counting global
//! allocator: once a call is admitted and warmed up, relaying, mixing, ticking, and the engine's
//! io_uring receive/send path allocate nothing.
//!
//! A `harness = false` test: the counter is process-wide, so nothing else (not even libtest's
//! own threads) may run while a window is measured.

#![allow(unsafe_code)] // a GlobalAlloc implementation is unsafe by definition

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration as StdDuration;

use dataplane::engine::{Engine, EngineConfig, LegSpec};
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
    let customer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let agent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let supervisor = UdpSocket::bind("127.0.0.1:0").unwrap();
    for s in [&customer, &agent, &supervisor] {
        s.set_nonblocking(true).unwrap();
    }
    let spec = |s: &UdpSocket| LegSpec {
        remote: Some(s.local_addr().unwrap()),
        codec: Codec::Pcmu,
    };
    let media = engine.create_call(spec(&customer), spec(&agent)).unwrap();
    let sup = engine
        .add_supervisor(media.call, spec(&supervisor), true)
        .unwrap();
    engine.set_mode(media.call, sup.leg, Mode::Whisper).unwrap();

    let mut buf = [0u8; 172];
    let mut sink = [0u8; 2048];
    let mut received = 0u64;
    let mut run = |frames: std::ops::Range<u32>, received: &mut u64| {
        for k in frames {
            for (socket, dst, ssrc) in [
                (&customer, media.customer, 1),
                (&agent, media.agent, 2),
                (&supervisor, sup.local, 3),
            ] {
                rtp(&mut buf, k as u16, k * 160, ssrc, 1000);
                socket.send_to(&buf, dst).unwrap();
            }
            std::thread::sleep(StdDuration::from_millis(20));
            for socket in [&customer, &agent, &supervisor] {
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
    let allocated = allocations() - before;
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

fn main() {
    media_core_allocates_nothing_per_packet();
    println!("test media_core_allocates_nothing_per_packet ... ok");
    engine_allocates_nothing_per_packet();
    println!("test engine_allocates_nothing_per_packet ... ok");
    println!("alloc: 2 passed, 0 failed");
}

//! Micro-benchmarks of the media core (docs/design.md §9.13), all on a virtual clock: nothing here
//! touches a socket or reads the OS clock except criterion's own timing.
//!
//! The key figure is `call/whisper_tick`: the mixing cost of one supervised call in whisper per
//! 20 ms tick (docs/design.md §6.1: ≤ 0.5 µs). Run with `cargo bench -p earshot-bench --bench
//! media`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration as StdDuration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dataplane::media::call::{Call, CallConfig, CallEvent, Leg, Output};
use dataplane::media::jitter::{JitterBuffer, JitterConfig};
use dataplane::media::matrix::{LegId, Mode};
use dataplane::media::mixer::mix_into;
use dataplane::media::{FRAME_SAMPLES, Frame};
use dataplane::time::{Duration, Instant};
use dataplane::wire::g711::{Codec, ulaw_encode};
use dataplane::wire::rtp::{RtpHeader, RtpPacket, SeqNo, Ssrc};

const TICK: Duration = Duration::from_millis(20);
const SUP: LegId = LegId(2);
/// Calls ticked back to back per timed batch in the tick-only benchmark: enough to amortise the
/// two clock reads around each batch (tens of ns) over sub-µs ticks, and a worker's real
/// pattern (it ticks all its calls in a row).
const CALLS_PER_BATCH: usize = 64;
/// A fleet of whisper calls larger than the caches (each call holds ~15 KB of buffers).
const LARGE_FLEET: usize = 2048;

/// Discards what a call sends, but makes the compiler believe it is used.
#[derive(Default)]
struct Discard {
    packets: u64,
}

impl Output for Discard {
    fn transmit(&mut self, leg: LegId, dst: SocketAddr, datagram: &[u8]) {
        black_box((leg, dst, datagram));
        self.packets += 1;
    }
    fn event(&mut self, event: CallEvent) {
        black_box(event);
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], port))
}

/// The remotes of the three parties (strict sources) and the SSRCs they send with.
const CUSTOMER: (LegId, u16, u32) = (LegId::CUSTOMER, 4000, 0xC);
const AGENT: (LegId, u16, u32) = (LegId::AGENT, 5000, 0xA);
const SUPERVISOR: (LegId, u16, u32) = (SUP, 6000, 0x5);

fn leg(port: u16, ssrc: u32) -> Box<Leg> {
    Leg::new(
        Codec::Pcmu,
        Some(addr(port)),
        Ssrc(ssrc),
        1000,
        50_000,
        JitterConfig::default(),
        Instant::ZERO,
    )
}

fn plain_call() -> Box<Call> {
    Call::new(
        CallConfig::default(),
        leg(CUSTOMER.1, 0xC0),
        leg(AGENT.1, 0xA0),
    )
}

fn whisper_call() -> Box<Call> {
    let mut call = plain_call();
    assert!(
        call.add_supervisor(SUP, leg(SUPERVISOR.1, 0x50), false)
            .is_ok()
    );
    assert!(call.set_mode(SUP, Mode::Whisper));
    call
}

/// A 20 ms PCMU packet carrying a tone (so decode and mix see real audio).
fn packet(ssrc: u32) -> Vec<u8> {
    let mut buf = vec![0u8; RtpHeader::LEN + FRAME_SAMPLES];
    let header = RtpHeader {
        marker: false,
        payload_type: 0,
        sequence_number: SeqNo(0),
        timestamp: 0,
        ssrc: Ssrc(ssrc),
    };
    header.emit(&mut buf).expect("room for a header");
    for (i, b) in buf[RtpHeader::LEN..].iter_mut().enumerate() {
        *b = ulaw_encode(((i as f64 * 0.39).sin() * 6000.0) as i16);
    }
    buf
}

/// Sets the sequence number and timestamp of the `k`-th packet of a stream in place.
fn renumber(buf: &mut [u8], k: u32) {
    buf[2..4].copy_from_slice(&(k as u16).to_be_bytes());
    buf[4..8].copy_from_slice(&(k.wrapping_mul(FRAME_SAMPLES as u32)).to_be_bytes());
}

/// Calls fed and ticked in lock step on one virtual clock: in period `k` every party sends one
/// packet at `k × 20 ms` and every call ticks 10 ms later.
struct Fleet {
    /// Boxed as [`Call::new`] returns them and as the engine keeps them: one allocation per call.
    #[expect(
        clippy::vec_box,
        reason = "the engine's layout: one heap allocation per call"
    )]
    calls: Vec<Box<Call>>,
    parties: Vec<((LegId, u16, u32), Vec<u8>)>,
    k: u32,
    out: Discard,
}

impl Fleet {
    #[expect(
        clippy::vec_box,
        reason = "the engine's layout: one heap allocation per call"
    )]
    fn new(calls: Vec<Box<Call>>, parties: &[(LegId, u16, u32)]) -> Fleet {
        let parties = parties.iter().map(|&p| (p, packet(p.2))).collect();
        let mut fleet = Fleet {
            calls,
            parties,
            k: 0,
            out: Discard::default(),
        };
        // Past the jitter buffers' anchoring, into steady state.
        for _ in 0..100 {
            fleet.feed();
            fleet.tick_all();
        }
        fleet.assert_mixing_audio();
        fleet
    }

    /// Guards the measurement: in steady state, the agent's output of a whisper call is a mix
    /// of real audio, not concealment or silence.
    fn assert_mixing_audio(&mut self) {
        struct Loudest(i16);
        impl Output for Loudest {
            fn transmit(&mut self, leg: LegId, _: SocketAddr, datagram: &[u8]) {
                if leg == LegId::AGENT {
                    let mut pcm: Frame = [0; FRAME_SAMPLES];
                    Codec::Pcmu.decode(&datagram[RtpHeader::LEN..], &mut pcm);
                    self.0 = self
                        .0
                        .max(pcm.iter().map(|s| s.saturating_abs()).max().unwrap_or(0));
                }
            }
            fn event(&mut self, _: CallEvent) {}
        }
        self.feed();
        let mut loudest = Loudest(0);
        let at = self.now() + Duration::from_millis(10);
        for call in &mut self.calls {
            call.tick(at, &mut loudest);
        }
        assert!(
            loudest.0 > 3000,
            "the agent hears {} at most: not a mix of the inputs",
            loudest.0
        );
    }

    fn now(&self) -> Instant {
        Instant::ZERO + TICK * self.k
    }

    /// The next period's packets, to every call.
    fn feed(&mut self) {
        self.k += 1;
        let now = self.now();
        for ((leg, port, _), buf) in &mut self.parties {
            renumber(buf, self.k);
            for call in &mut self.calls {
                call.handle_datagram(*leg, addr(*port), buf, now, &mut self.out);
            }
        }
    }

    fn tick_all(&mut self) {
        let at = self.now() + Duration::from_millis(10);
        for call in &mut self.calls {
            call.tick(at, &mut self.out);
        }
    }
}

fn call_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("call");
    g.throughput(Throughput::Elements(1));

    // (a) The key figure: one whisper call's tick (3 jitter pops, 2 mixes of 2 frames, 2
    // encodes, 2 packets out), timed alone; the packets are fed outside the timed region.
    // One iteration = one call's tick; all the fleet's calls are ticked back to back and timed
    // together. With 64 calls the fleet stays in cache; with 2,048 (about a worker's load at
    // the whisper target) each tick walks memory well beyond the caches, as a worker does.
    for calls in [CALLS_PER_BATCH, LARGE_FLEET] {
        let mut fleet = Fleet::new(
            (0..calls).map(|_| whisper_call()).collect(),
            &[CUSTOMER, AGENT, SUPERVISOR],
        );
        let name = if calls == CALLS_PER_BATCH {
            "whisper_tick".to_owned()
        } else {
            format!("whisper_tick_{calls}_calls")
        };
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let rounds = iters.div_ceil(calls as u64);
                let mut timed = StdDuration::ZERO;
                for _ in 0..rounds {
                    fleet.feed();
                    let start = std::time::Instant::now();
                    fleet.tick_all();
                    timed += start.elapsed();
                }
                // Scale the whole rounds back to the `iters` calls asked for.
                timed.mul_f64(iters as f64 / (rounds * calls as u64) as f64)
            });
        });
        assert!(fleet.out.packets > 0);
    }

    // The same call's whole period: three datagrams in (customer → agent relayed, all three
    // decoded into jitter buffers) and the tick.
    let mut fleet = Fleet::new(vec![whisper_call()], &[CUSTOMER, AGENT, SUPERVISOR]);
    g.bench_function("whisper_period_3_datagrams_and_tick", |b| {
        b.iter(|| {
            fleet.feed();
            fleet.tick_all();
        });
    });

    // (b) Relay: one datagram of a plain call, customer → agent, header rewritten.
    let mut call = plain_call();
    let mut buf = packet(CUSTOMER.2);
    let mut out = Discard::default();
    let mut k = 0u32;
    let mut relay_one = move |call: &mut Call, out: &mut Discard| {
        k = k.wrapping_add(1);
        renumber(&mut buf, k);
        let now = Instant::ZERO + TICK * k;
        call.handle_datagram(CUSTOMER.0, addr(CUSTOMER.1), black_box(&buf), now, out);
    };
    for _ in 0..10 {
        relay_one(&mut call, &mut out);
    }
    assert_eq!(out.packets, 10, "the relay forwards every packet");
    g.bench_function("relay_datagram", |b| {
        b.iter(|| relay_one(&mut call, &mut out))
    });

    // (h) A supervisor's mode switch there and back: listen → whisper → listen (two replans).
    let mut call = whisper_call();
    g.bench_function("mode_switch_listen_whisper_listen", |b| {
        b.iter(|| {
            call.set_mode(SUP, black_box(Mode::Whisper));
            call.set_mode(SUP, black_box(Mode::Listen));
        });
    });
    g.finish();
}

fn codec_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("g711_frame");
    g.throughput(Throughput::Elements(FRAME_SAMPLES as u64));
    let payload: Vec<u8> = packet(1)[RtpHeader::LEN..].to_vec();
    let mut pcm: Frame = [0; FRAME_SAMPLES];
    Codec::Pcmu.decode(&payload, &mut pcm);
    g.bench_function("ulaw_decode", |b| {
        let mut out: Frame = [0; FRAME_SAMPLES];
        b.iter(|| Codec::Pcmu.decode(black_box(&payload), &mut out));
    });
    g.bench_function("ulaw_encode", |b| {
        let mut out = [0u8; FRAME_SAMPLES];
        b.iter(|| Codec::Pcmu.encode(black_box(&pcm), &mut out));
    });
    g.finish();

    let mut g = c.benchmark_group("mix_into");
    g.throughput(Throughput::Elements(FRAME_SAMPLES as u64));
    let frames: [Frame; 3] = core::array::from_fn(|f| {
        core::array::from_fn(|i| ((i * 97 + f * 31) as i16).wrapping_mul(211))
    });
    for n in [2usize, 3] {
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            let sources: Vec<&Frame> = frames.iter().take(n).collect();
            let mut out: Frame = [0; FRAME_SAMPLES];
            b.iter(|| mix_into(black_box(&sources), &mut out));
        });
    }
    g.finish();
}

fn rtp_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("rtp");
    let buf = packet(0x1234_5678);
    g.bench_function("parse_and_read", |b| {
        b.iter(|| {
            let p = RtpPacket::new_checked(black_box(&buf[..])).expect("a valid packet");
            (
                p.marker(),
                p.payload_type(),
                p.sequence_number(),
                p.timestamp(),
                p.ssrc(),
                p.payload().len(),
            )
        });
    });
    let header = RtpHeader {
        marker: true,
        payload_type: 0,
        sequence_number: SeqNo(4242),
        timestamp: 1_234_567,
        ssrc: Ssrc(7),
    };
    let mut out = [0u8; RtpHeader::LEN];
    g.bench_function("emit_header", |b| {
        b.iter(|| black_box(header).emit(&mut out))
    });
    g.finish();
}

fn jitter_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("jitter");
    // (f) Steady state: one 20 ms frame in, one out, per period.
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let frame: Frame = core::array::from_fn(|i| (i as i16) * 100);
    let mut out: Frame = [0; FRAME_SAMPLES];
    let mut k = 0u32;
    let mut step = |jb: &mut JitterBuffer, out: &mut Frame| {
        k = k.wrapping_add(1);
        let now = Instant::ZERO + TICK * k;
        jb.insert(now, k.wrapping_mul(FRAME_SAMPLES as u32), black_box(&frame));
        jb.pop_frame(now + Duration::from_millis(10), out);
    };
    for _ in 0..100 {
        step(&mut jb, &mut out);
    }
    g.bench_function("insert_and_pop_frame", |b| {
        b.iter(|| step(&mut jb, &mut out))
    });
    g.finish();
}

/// A small `Copy` value like the engine's ring messages.
#[derive(Debug, Clone, Copy)]
struct Message {
    call: u32,
    leg: u8,
    mode: u8,
    value: u64,
}

fn ring_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("rtrb");
    // (g) One hop through an SPSC ring, both ends on this thread (no cross-core traffic).
    let (mut tx, mut rx) = rtrb::RingBuffer::<Message>::new(4096);
    let mut i = 0u64;
    g.bench_function("push_pop_16_bytes", |b| {
        b.iter(|| {
            i += 1;
            tx.push(black_box(Message {
                call: i as u32,
                leg: 2,
                mode: 1,
                value: i,
            }))
            .expect("room");
            let m = rx.pop().expect("a message");
            m.value ^ u64::from(m.call) ^ u64::from(m.leg) ^ u64::from(m.mode)
        });
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(StdDuration::from_millis(500))
        .measurement_time(StdDuration::from_secs(2))
        .sample_size(30)
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = call_benches, codec_benches, rtp_benches, jitter_benches, ring_benches
}
criterion_main!(benches);

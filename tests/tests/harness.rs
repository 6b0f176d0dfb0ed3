//! Tests of the harness itself, without the daemon: endpoints talking through a tiny local
//! relay, and the checks fed streams that must pass and streams that must fail. If these fail,
//! the end-to-end verdicts cannot be trusted.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use earshot_tests::audio::{
    self, AGENT_TONE, CUSTOMER_TONE, INTRUDER_TONE, SUPERVISOR_TONE, TONE_AMPLITUDE,
};
use earshot_tests::endpoint::{Endpoint, Impairment, Received, SendSpec};
use earshot_tests::rtp::{self, PT_PCMU};
use earshot_tests::scenario::{Mode, Phase};
use earshot_tests::verdict::{
    Report, check_continuity_lossy, check_continuity_strict, private_intervals, ts_drift,
};

/// Forwards whatever arrives to `dest` as its own stream, the way the appliance relays: new
/// SSRC, sequence numbers and timestamps shifted by constant offsets, payload untouched.
struct Relay {
    local: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Relay {
    fn start(dest: SocketAddr) -> Relay {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let local = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) {
                let Ok((n, _)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let Some(p) = rtp::parse(&buf[..n]) else {
                    continue;
                };
                let out = rtp::build(
                    p.pt,
                    p.marker,
                    p.seq.wrapping_add(1234),
                    p.ts.wrapping_add(99_999),
                    0xfeed_f00d,
                    p.payload,
                );
                let _ = socket.send_to(&out, dest);
            }
        });
        Relay {
            local,
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[test]
fn endpoints_through_a_relay_hear_each_other_and_streams_are_continuous() {
    let mut a = Endpoint::bind("customer");
    let mut b = Endpoint::bind("agent");
    let to_b = Relay::start(b.local_addr());
    let to_a = Relay::start(a.local_addr());
    let t0 = Instant::now();
    a.start_sending(SendSpec::tone(to_b.local, CUSTOMER_TONE));
    b.start_sending(SendSpec::tone(to_a.local, AGENT_TONE));
    thread::sleep(Duration::from_millis(900));
    let end = Instant::now();
    a.stop_sending();
    b.stop_sending();
    thread::sleep(Duration::from_millis(60));

    let mut report = Report::new(t0);
    let from = t0 + Duration::from_millis(150);
    let absent_a = [CUSTOMER_TONE, SUPERVISOR_TONE, INTRUDER_TONE];
    let absent_b = [AGENT_TONE, SUPERVISOR_TONE, INTRUDER_TONE];
    let la = report.hearing(
        "direct",
        "customer",
        &a.received(),
        from,
        end,
        &[AGENT_TONE],
        &absent_a,
    );
    let lb = report.hearing(
        "direct",
        "agent",
        &b.received(),
        from,
        end,
        &[CUSTOMER_TONE],
        &absent_b,
    );
    check_continuity_strict(&mut report, "customer", &a.received());
    check_continuity_strict(&mut report, "agent", &b.received());
    assert!(
        report.failures().is_empty(),
        "{:#?}\n{}",
        report.failures(),
        report.table()
    );
    // A relayed G.711 tone measures its nominal level, and other tones are not there at all.
    assert!(la.db(AGENT_TONE).abs() < 0.5, "{}", la.db(AGENT_TONE));
    assert!(la.db(SUPERVISOR_TONE) < -90.0, "{}", la.db(SUPERVISOR_TONE));
    assert!(lb.db(CUSTOMER_TONE).abs() < 0.5, "{}", lb.db(CUSTOMER_TONE));
    assert!(la.audio >= 30, "{} packets", la.audio);
    assert!(a.received().iter().all(|p| p.ssrc == 0xfeed_f00d));
}

#[test]
fn impairment_drops_and_reorders_and_only_the_lossy_check_accepts_it() {
    let mut tx = Endpoint::bind("customer");
    let rx = Endpoint::bind("agent");
    let t0 = Instant::now();
    let spec = SendSpec {
        impairment: Some(Impairment::standard(42)),
        ..SendSpec::tone(rx.local_addr(), CUSTOMER_TONE)
    };
    tx.start_sending(spec);
    thread::sleep(Duration::from_millis(2000));
    tx.stop_sending();
    thread::sleep(Duration::from_millis(60));
    let stats = tx.sender_stats();
    let got = rx.received();

    let loss = stats.dropped as f64 / stats.generated as f64;
    assert!((0.01..0.12).contains(&loss), "loss {loss:.3} of {stats:?}");
    assert!(stats.reordered > 0, "{stats:?}");
    assert_eq!(
        got.len() as u64,
        stats.sent,
        "loopback delivers every sent packet"
    );
    let backwards = got
        .windows(2)
        .filter(|w| (w[1].seq.wrapping_sub(w[0].seq) as i16) < 0)
        .count();
    assert!(backwards > 0, "reordering must be visible at the receiver");

    let mut lossy = Report::new(t0);
    check_continuity_lossy(&mut lossy, "agent", &got);
    assert!(lossy.failures().is_empty(), "{:#?}", lossy.failures());
    let mut strict = Report::new(t0);
    check_continuity_strict(&mut strict, "agent", &got);
    assert!(
        !strict.failures().is_empty(),
        "strict continuity must reject gaps and reordering"
    );
}

#[test]
fn a_key_press_follows_rfc_4733_and_the_audio_stream_continues() {
    let mut tx = Endpoint::bind("supervisor");
    let rx = Endpoint::bind("agent");
    let t0 = Instant::now();
    tx.start_sending(SendSpec::tone(rx.local_addr(), SUPERVISOR_TONE));
    thread::sleep(Duration::from_millis(200));
    let sent = tx.send_dtmf('5');
    thread::sleep(Duration::from_millis(200));
    tx.stop_sending();
    thread::sleep(Duration::from_millis(60));
    let got = rx.received();

    let events: Vec<&Received> = got
        .iter()
        .filter(|p| p.pt == rtp::PT_TELEPHONE_EVENT)
        .collect();
    assert_eq!(events.len(), 8, "5 updates + 3 end packets");
    assert!(events[0].marker && events[1..].iter().all(|p| !p.marker));
    assert!(
        events.iter().all(|p| p.ts == events[0].ts),
        "one timestamp per event"
    );
    let evs: Vec<_> = events
        .iter()
        .map(|p| p.telephone_event().unwrap())
        .collect();
    assert!(evs.iter().all(|e| e.event == 5));
    assert_eq!(evs.iter().filter(|e| e.end).count(), 3);
    assert!(evs.windows(2).all(|w| w[1].duration >= w[0].duration));
    // 8 packets on a 20 ms grid: 140 ms from first to last, less a late first wake-up.
    assert!(sent.finished >= sent.started + Duration::from_millis(120));
    // The audio after the key press resumes 8 packets later on the same clock.
    let last = got
        .iter()
        .rposition(|p| p.pt == rtp::PT_TELEPHONE_EVENT)
        .unwrap();
    let next = &got[last + 1];
    assert_eq!(next.pt, PT_PCMU);
    assert_eq!(next.ts.wrapping_sub(events[0].ts), 8 * 160);
    let mut report = Report::new(t0);
    check_continuity_strict(&mut report, "agent", &got);
    assert!(report.failures().is_empty(), "{:#?}", report.failures());
}

fn packet(at: Instant, seq: u16, ts: u32, ssrc: u32, samples: &[i16]) -> Received {
    let payload = audio::encode(PT_PCMU, samples);
    let powers = audio::decode(PT_PCMU, &payload).map(|pcm| audio::frame_powers(&pcm));
    Received {
        at,
        from: "127.0.0.1:9".parse().unwrap(),
        pt: PT_PCMU,
        marker: false,
        seq,
        ts,
        ssrc,
        payload,
        powers,
    }
}

/// 50 synthetic packets 20 ms apart of the agent tone plus `leak` of the supervisor tone.
fn stream(t0: Instant, leak_amplitude: f64) -> Vec<Received> {
    (0..50u16)
        .map(|i| {
            let a = audio::tone_frame(AGENT_TONE.freq_hz, TONE_AMPLITUDE, u64::from(i));
            let s = audio::tone_frame(SUPERVISOR_TONE.freq_hz, leak_amplitude, u64::from(i));
            let mix: Vec<i16> = a
                .iter()
                .zip(&s)
                .map(|(x, y)| x.saturating_add(*y))
                .collect();
            packet(
                t0 + Duration::from_millis(20 * u64::from(i)),
                100 + i,
                1000 + 160 * u32::from(i),
                7,
                &mix,
            )
        })
        .collect()
}

#[test]
fn checks_reject_what_they_must() {
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(1);
    let good = stream(t0, 0.0);

    let mut r = Report::new(t0);
    check_continuity_strict(&mut r, "clean", &good);
    assert!(r.failures().is_empty(), "{:#?}", r.failures());
    assert!(ts_drift(&good).0 < 1.0);

    // A sequence gap, a second SSRC, a 1 s timestamp jump: each caught.
    let mut gap = good.clone();
    gap.remove(20);
    let mut two_ssrc = good.clone();
    two_ssrc[30].ssrc = 8;
    let mut jump = good.clone();
    for p in &mut jump[25..] {
        p.ts = p.ts.wrapping_add(8000);
    }
    for (name, s) in [("gap", gap), ("two ssrc", two_ssrc), ("ts jump", jump)] {
        let mut r = Report::new(t0);
        check_continuity_strict(&mut r, name, &s);
        assert!(!r.failures().is_empty(), "{name} must fail");
    }

    // A supervisor leak 40 dB under the agent: inaudible by the -35 dB hearing rule, but a
    // privacy breach by the -60 dB rule. (Much weaker leaks drown in µ-law's quantisation
    // steps at the agent tone's level, which is what the customer would receive too.)
    let leaky = stream(t0, TONE_AMPLITUDE * 10f64.powf(-40.0 / 20.0));
    let mut r = Report::new(t0);
    r.hearing(
        "leak",
        "customer",
        &leaky,
        t0,
        end,
        &[AGENT_TONE],
        &[SUPERVISOR_TONE],
    );
    assert!(r.failures().is_empty(), "{:#?}", r.failures());
    let l = r.measure("leak", "customer", &leaky, t0, end);
    let ratio = audio::db_ratio(l.mean(SUPERVISOR_TONE), l.mean(AGENT_TONE));
    assert!(
        (-44.0..-36.0).contains(&ratio),
        "leak measured {ratio:.1} dB"
    );
    // Hearing: a missing tone and an unexpected one are both reported.
    let mut r = Report::new(t0);
    r.hearing(
        "wrong",
        "customer",
        &good,
        t0,
        end,
        &[CUSTOMER_TONE],
        &[AGENT_TONE],
    );
    assert_eq!(r.failures().len(), 2, "{:#?}", r.failures());
}

#[test]
fn private_intervals_skip_supervisor_modes_and_one_guard_after_them() {
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let phase = |mode, req: u64, eff: u64, end: u64| Phase {
        mode,
        requested_at: ms(req),
        effective_at: ms(eff),
        ended_at: ms(end),
        supervision_start: false,
    };
    let phases = [
        phase(Mode::Unsupervised, 0, 5, 1000),
        phase(Mode::Listen, 1000, 1010, 2000),
        phase(Mode::Whisper, 2000, 2010, 3000),
        phase(Mode::Barge, 3000, 3010, 4000),
        phase(Mode::Listen, 4000, 4010, 5000),
        phase(Mode::Takeover, 5000, 5010, 6000),
        phase(Mode::Whisper, 6000, 6010, 7000),
    ];
    let iv = private_intervals(&phases);
    let got: Vec<(u128, u128)> = iv
        .iter()
        .map(|(_, a, b)| {
            (
                a.duration_since(t0).as_millis(),
                b.duration_since(t0).as_millis(),
            )
        })
        .collect();
    assert_eq!(got, [(5, 3000), (4160, 5000), (6160, 7000)], "{iv:?}");
}

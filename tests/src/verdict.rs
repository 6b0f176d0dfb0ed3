//! Judging recordings: who hears whom, privacy, stream continuity.
//!
//! Every check adds to a [`Report`] instead of panicking at once, so a failing test lists all
//! that went wrong together with a table of the measured levels per window and endpoint.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::audio::{
    BEEP_TONE, FRAME_SAMPLES, INTRUDER_TONE, MEASURED, Tone, db_ratio, db_re_nominal,
    measured_index,
};
use crate::endpoint::{PTIME, REORDER_DISTANCE, Received};
use crate::rtp::PT_TELEPHONE_EVENT;
use crate::scenario::{Mode, PARTIES, Party, Phase, Recording};

/// Skipped after every mode change before judging (the change reaches the data plane within
/// a tick or two; in-flight packets of the old mode land meanwhile).
pub const GUARD: Duration = Duration::from_millis(150);
/// Skipped in the agent's audio after a supervision starts: the ~200 ms beep.
pub const BEEP_SKIP: Duration = Duration::from_millis(300);
/// "Hears X": X's mean power within this many dB of a single test tone's nominal power.
pub const HEAR_TOLERANCE_DB: f64 = 10.0;
/// "Does not hear Y": Y's power at most this many dB relative to the strongest heard tone
/// (or to the nominal tone power when nothing should be heard).
pub const ABSENT_DB: f64 = -35.0;
/// Privacy: supervisor power in the customer's audio relative to the agent's.
pub const PRIVACY_DB: f64 = -60.0;
/// Windows shorter than this are not judged for hearing.
pub const MIN_WINDOW: Duration = Duration::from_millis(200);
/// A heard stream must deliver at least this share of the packets the window spans.
pub const MIN_PACKET_SHARE: f64 = 0.5;
/// Largest tolerated difference between elapsed RTP time and elapsed arrival time.
pub const TS_DRIFT_MAX_MS: f64 = 40.0;
/// Packets in the sliding window whose least-delayed packet stands for the stream's timing
/// (a receiver thread descheduled under load delays some arrivals, never advances them).
const DRIFT_ENVELOPE_PACKETS: usize = 10;

/// Tone powers over a set of packets.
#[derive(Debug, Clone, Copy, Default)]
pub struct Levels {
    /// RTP packets in the window, any payload type.
    pub packets: usize,
    /// G.711 packets (those measured).
    pub audio: usize,
    /// RFC 4733 packets.
    pub events: usize,
    /// Sum over audio packets of each [`MEASURED`] tone's per-packet power.
    pub sum: [f64; MEASURED.len()],
    /// The largest single-packet power of each tone.
    pub peak: [f64; MEASURED.len()],
}

impl Levels {
    pub fn of<'a>(packets: impl IntoIterator<Item = &'a Received>) -> Levels {
        let mut l = Levels::default();
        for p in packets {
            l.packets += 1;
            if p.pt == PT_TELEPHONE_EVENT {
                l.events += 1;
            }
            if let Some(powers) = p.powers {
                l.audio += 1;
                for (i, pw) in powers.iter().enumerate() {
                    l.sum[i] += pw;
                    l.peak[i] = l.peak[i].max(*pw);
                }
            }
        }
        l
    }

    /// Mean power per audio packet of `tone` (0 when there is no audio).
    pub fn mean(&self, tone: Tone) -> f64 {
        if self.audio == 0 {
            0.0
        } else {
            self.sum[measured_index(tone)] / self.audio as f64
        }
    }

    /// Mean power of `tone` in dB relative to the nominal single-tone power.
    pub fn db(&self, tone: Tone) -> f64 {
        db_re_nominal(self.mean(tone))
    }
}

/// The packets of `rx` that arrived in `[from, to)`.
pub fn between(rx: &[Received], from: Instant, to: Instant) -> impl Iterator<Item = &Received> {
    rx.iter().filter(move |p| p.at >= from && p.at < to)
}

struct Row {
    window: String,
    listener: String,
    from_s: f64,
    to_s: f64,
    levels: Levels,
}

/// Failures and measurements of one test.
pub struct Report {
    t0: Instant,
    failures: Vec<String>,
    notes: Vec<String>,
    rows: Vec<Row>,
}

impl Report {
    pub fn new(t0: Instant) -> Report {
        Report {
            t0,
            failures: Vec::new(),
            notes: Vec::new(),
            rows: Vec::new(),
        }
    }

    /// A report on `rec`, noting the daemon's health at the end of the recording.
    pub fn for_recording(rec: &Recording) -> Report {
        let mut r = Report::new(rec.t0);
        r.note(rec.health.clone());
        r
    }

    /// Seconds since the test's origin.
    pub fn secs(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.t0).as_secs_f64()
    }

    pub fn fail(&mut self, message: String) {
        self.failures.push(message);
    }

    pub fn check(&mut self, ok: bool, message: impl FnOnce() -> String) {
        if !ok {
            self.failures.push(message());
        }
    }

    /// The failures so far (to test the checks themselves).
    pub fn failures(&self) -> &[String] {
        &self.failures
    }

    pub fn note(&mut self, message: String) {
        self.notes.push(message);
    }

    /// Adds a row to the levels table and returns the levels.
    pub fn measure(
        &mut self,
        window: &str,
        listener: &str,
        rx: &[Received],
        from: Instant,
        to: Instant,
    ) -> Levels {
        let levels = Levels::of(between(rx, from, to));
        let (from_s, to_s) = (self.secs(from), self.secs(to));
        self.rows.push(Row {
            window: window.to_owned(),
            listener: listener.to_owned(),
            from_s,
            to_s,
            levels,
        });
        levels
    }

    /// Checks that `listener` hears exactly `expected` among the tones in `absent`, in `rx`
    /// between `from` and `to`.
    #[allow(clippy::too_many_arguments)]
    pub fn hearing(
        &mut self,
        window: &str,
        listener: &str,
        rx: &[Received],
        from: Instant,
        to: Instant,
        expected: &[Tone],
        absent: &[Tone],
    ) -> Levels {
        let l = self.measure(window, listener, rx, from, to);
        let span = format!("{window} [{:.2}s..{:.2}s]", self.secs(from), self.secs(to));
        let slots = to.saturating_duration_since(from).as_secs_f64() / PTIME.as_secs_f64();
        if expected.is_empty() {
            // Nothing to hear: silence packets or no packets at all are both fine, as long as
            // no tone energy arrives.
            for &t in absent {
                let d = l.db(t);
                self.check(d <= ABSENT_DB, || {
                    format!(
                        "{listener} in {span} must hear nothing but measured {} {} Hz at {d:.1} dB re nominal \
                         over {} audio packets (limit {ABSENT_DB} dB)",
                        t.name, t.freq_hz, l.audio
                    )
                });
            }
            return l;
        }
        let min_packets = (slots * MIN_PACKET_SHARE).floor() as usize;
        self.check(l.audio >= min_packets, || {
            format!(
                "{listener} in {span} received {} audio packets ({} RTP) for {slots:.0} packet slots, \
                 expected at least {min_packets}",
                l.audio, l.packets
            )
        });
        for &t in expected {
            let d = l.db(t);
            self.check(d.abs() <= HEAR_TOLERANCE_DB, || {
                format!(
                    "{listener} in {span} must hear {} {} Hz: measured {d:.1} dB re nominal over {} audio packets \
                     (allowed ±{HEAR_TOLERANCE_DB} dB)",
                    t.name, t.freq_hz, l.audio
                )
            });
        }
        let strongest = expected
            .iter()
            .copied()
            .max_by(|a, b| l.mean(*a).total_cmp(&l.mean(*b)))
            .expect("non-empty");
        for &t in absent {
            let r = db_ratio(l.mean(t), l.mean(strongest));
            self.check(r <= ABSENT_DB, || {
                format!(
                    "{listener} in {span} must not hear {} {} Hz: measured {r:.1} dB relative to {} {} Hz \
                     ({:.1} dB re nominal) (limit {ABSENT_DB} dB)",
                    t.name,
                    t.freq_hz,
                    strongest.name,
                    strongest.freq_hz,
                    l.db(strongest)
                )
            });
        }
        l
    }

    /// The levels table, one row per measured window and listener.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "{:<34} {:<10} {:>15} {:>5} {:>5} {:>4}",
            "window", "listener", "time (s)", "rtp", "audio", "ev"
        );
        for t in MEASURED {
            let _ = write!(s, " {:>16}", format!("{} {}Hz", t.name, t.freq_hz));
        }
        s.push('\n');
        for r in &self.rows {
            let time = format!("{:.2}..{:.2}", r.from_s, r.to_s);
            let _ = write!(
                s,
                "{:<34} {:<10} {:>15} {:>5} {:>5} {:>4}",
                r.window, r.listener, time, r.levels.packets, r.levels.audio, r.levels.events
            );
            for t in MEASURED {
                if r.levels.audio == 0 {
                    let _ = write!(s, " {:>16}", "-");
                } else {
                    let _ = write!(s, " {:>16.1}", r.levels.db(t));
                }
            }
            s.push('\n');
        }
        s
    }

    /// Prints the table and notes (visible with `--nocapture` or on failure) and panics with
    /// every failure if there is any.
    pub fn finish(self) {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "levels: mean per-packet tone power, dB re one nominal test tone (amplitude 8000)"
        );
        text.push_str(&self.table());
        for n in &self.notes {
            let _ = writeln!(text, "note: {n}");
        }
        eprintln!("{text}");
        if !self.failures.is_empty() {
            let mut msg = format!("{} check(s) failed:\n", self.failures.len());
            for f in &self.failures {
                let _ = writeln!(msg, "- {f}");
            }
            panic!("{msg}\n{text}");
        }
    }
}

/// The tones `listener` must hear in `mode`, given which parties send at all.
pub fn expected_tones(mode: Mode, listener: Party, sending: [bool; 3]) -> Vec<Tone> {
    mode.hears(listener)
        .iter()
        .filter(|p| sending[p.index()])
        .map(|p| p.tone())
        .collect()
}

/// The tones `listener` must not hear in `mode`: every other party's tone, the beep and any
/// intruder.
pub fn absent_tones(mode: Mode, listener: Party) -> Vec<Tone> {
    let heard = mode.hears(listener);
    let mut v: Vec<Tone> = PARTIES
        .iter()
        .filter(|p| !heard.contains(p))
        .map(|p| p.tone())
        .collect();
    v.extend([BEEP_TONE, INTRUDER_TONE]);
    v
}

/// The judged window of phase `i` for `listener`: from one guard after the change (and, for
/// the agent, not before the beep of the latest supervision start is over) until the next
/// change was requested.
pub fn phase_window(phases: &[Phase], i: usize, listener: Party) -> (Instant, Instant) {
    let phase = &phases[i];
    let mut from = phase.effective_at + GUARD;
    if listener == Party::Agent
        && let Some(start) = phases[..=i].iter().rev().find(|p| p.supervision_start)
    {
        from = from.max(start.effective_at + BEEP_SKIP);
    }
    (from, phase.ended_at)
}

/// Checks every phase of `rec` against the hearing matrix, for every endpoint.
pub fn check_matrix(report: &mut Report, rec: &Recording) {
    for (i, phase) in rec.phases.iter().enumerate() {
        let window = format!("#{i} {}", phase.mode.name());
        for listener in PARTIES {
            if phase.mode == Mode::Unsupervised && listener == Party::Supervisor {
                continue; // no supervisor leg yet
            }
            let (from, to) = phase_window(&rec.phases, i, listener);
            if to.saturating_duration_since(from) < MIN_WINDOW {
                report.note(format!(
                    "{window}: window too short to judge {}",
                    listener.name()
                ));
                continue;
            }
            let expected = expected_tones(phase.mode, listener, rec.sending);
            let absent = absent_tones(phase.mode, listener);
            report.hearing(
                &window,
                listener.name(),
                rec.of(listener),
                from,
                to,
                &expected,
                &absent,
            );
        }
    }
}

/// The stretches in which the customer must not hear the supervisor: consecutive private
/// phases merged, each starting one guard after leaving a mode where the supervisor is
/// legitimately heard, and ending when the next non-private mode was requested.
pub fn private_intervals(phases: &[Phase]) -> Vec<(String, Instant, Instant)> {
    let mut out = Vec::new();
    let mut current: Option<(String, Instant)> = None;
    for (i, phase) in phases.iter().enumerate() {
        if phase.mode.customer_private() {
            match current.as_mut() {
                Some((label, _)) => {
                    label.push('>');
                    label.push_str(phase.mode.name());
                }
                None => {
                    let start = if i == 0 {
                        phase.effective_at
                    } else {
                        phase.effective_at + GUARD
                    };
                    current = Some((format!("#{i} {}", phase.mode.name()), start));
                }
            }
        } else if let Some((label, start)) = current.take() {
            out.push((label, start, phase.requested_at));
        }
    }
    if let (Some((label, start)), Some(last)) = (current, phases.last()) {
        out.push((label, start, last.ended_at));
    }
    out
}

/// Privacy (the product's core promise): in every private stretch, and over all of them
/// together, the customer's supervisor-tone power is at most -60 dB relative to its agent-tone
/// power. The agent tone itself must be there, or the ratio would prove nothing.
pub fn check_privacy(report: &mut Report, rec: &Recording) {
    let (sup, agent) = (Party::Supervisor.tone(), Party::Agent.tone());
    let rx = rec.of(Party::Customer);
    let mut all = Levels::default();
    for (label, from, to) in private_intervals(&rec.phases) {
        let window = format!("privacy {label}");
        let l = report.measure(&window, "customer", rx, from, to);
        let span = format!(
            "{window} [{:.2}s..{:.2}s]",
            report.secs(from),
            report.secs(to)
        );
        all.audio += l.audio;
        all.packets += l.packets;
        for i in 0..MEASURED.len() {
            all.sum[i] += l.sum[i];
            all.peak[i] = all.peak[i].max(l.peak[i]);
        }
        if l.audio == 0 {
            report.check(to.saturating_duration_since(from) < MIN_WINDOW, || {
                format!("customer received no audio in {span}: privacy cannot be judged")
            });
            continue;
        }
        let r = db_ratio(l.mean(sup), l.mean(agent));
        let worst = db_ratio(l.peak[measured_index(sup)], l.mean(agent));
        report.check(r <= PRIVACY_DB, || {
            format!(
                "privacy: customer in {span} carries supervisor 1700 Hz at {r:.1} dB relative to agent 1000 Hz \
                 (agent {:.1} dB re nominal, {} audio packets; loudest single packet {worst:.1} dB) (limit {PRIVACY_DB} dB)",
                l.db(agent),
                l.audio
            )
        });
        report.check(l.db(agent).abs() <= HEAR_TOLERANCE_DB, || {
            format!(
                "customer in {span} must hear agent 1000 Hz: measured {:.1} dB re nominal",
                l.db(agent)
            )
        });
    }
    let r = db_ratio(all.mean(sup), all.mean(agent));
    report.check(all.audio > 0 && r <= PRIVACY_DB, || {
        format!(
            "privacy over every private stretch: customer carries supervisor 1700 Hz at {r:.1} dB relative to \
             agent 1000 Hz over {} audio packets (limit {PRIVACY_DB} dB)",
            all.audio
        )
    });
    report.note(format!(
        "privacy: supervisor/agent in customer audio over all private stretches = {r:.1} dB ({} packets)",
        all.audio
    ));
}

/// Checks the agent's supervision-start beep: with `expected`, 1400 Hz at no less than -20 dB
/// re nominal in at least 3 packets (60 ms) within 600 ms of the start, and never heard by the
/// customer or supervisor; without, no 1400 Hz in the agent's audio either.
pub fn check_beep(report: &mut Report, rec: &Recording, expected: bool) {
    let Some(start) = rec.phases.iter().find(|p| p.supervision_start) else {
        report.fail("no supervision started: cannot check the beep".to_owned());
        return;
    };
    let (from, to) = (
        start.requested_at,
        start.requested_at + Duration::from_millis(600),
    );
    let beep = measured_index(BEEP_TONE);
    let threshold = -20.0;
    for listener in PARTIES {
        let l = report.measure(
            "beep (start..+600ms)",
            listener.name(),
            rec.of(listener),
            from,
            to,
        );
        let loud = between(rec.of(listener), from, to)
            .filter(|p| {
                p.powers
                    .is_some_and(|pw| db_re_nominal(pw[beep]) >= threshold)
            })
            .count();
        let peak = db_re_nominal(l.peak[beep]);
        if listener == Party::Agent && expected {
            report.check(loud >= 3, || {
                format!(
                    "agent must hear the 1400 Hz beep after supervision start: {loud} packets at ≥ {threshold} dB \
                     re nominal (need 3), peak {peak:.1} dB"
                )
            });
        } else {
            report.check(peak <= ABSENT_DB, || {
                format!(
                    "{} must not hear a 1400 Hz beep{}: peak packet {peak:.1} dB re nominal (limit {ABSENT_DB} dB)",
                    listener.name(),
                    if listener == Party::Agent { " (beep disabled)" } else { "" }
                )
            });
        }
    }
}

/// Lossless stream continuity (docs/design.md §1.1: every output is its own RTP stream): one SSRC,
/// sequence numbers +1 modulo 2^16 between consecutive packets, timestamps moving forward in
/// whole packets and staying in step with arrival time.
pub fn check_continuity_strict(report: &mut Report, name: &str, rx: &[Received]) {
    if check_common(report, name, rx, true) {
        let mut bad_seq = Vec::new();
        let mut bad_ts = Vec::new();
        for w in rx.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            let dseq = b.seq.wrapping_sub(a.seq);
            if dseq != 1 {
                bad_seq.push(format!("{}→{} at {:.3}s", a.seq, b.seq, report.secs(b.at)));
            }
            // Telephone-events legitimately repeat their start timestamp (RFC 4733 §2.5.1).
            if a.pt != PT_TELEPHONE_EVENT && b.pt != PT_TELEPHONE_EVENT {
                let dts = b.ts.wrapping_sub(a.ts);
                if dts == 0 || dts % FRAME_SAMPLES as u32 != 0 || dts > u32::MAX / 2 {
                    bad_ts.push(format!(
                        "{}→{} (Δ{}) at {:.3}s",
                        a.ts,
                        b.ts,
                        dts as i32,
                        report.secs(b.at)
                    ));
                }
            }
        }
        report.check(bad_seq.is_empty(), || {
            format!(
                "{name}: {} of {} sequence steps are not +1: {}",
                bad_seq.len(),
                rx.len() - 1,
                first_few(&bad_seq)
            )
        });
        report.check(bad_ts.is_empty(), || {
            format!(
                "{name}: {} of {} timestamp steps are not a positive multiple of {FRAME_SAMPLES}: {}",
                bad_ts.len(),
                rx.len() - 1,
                first_few(&bad_ts)
            )
        });
    }
}

/// Stream continuity under injected loss and reordering: one SSRC, sequence numbers never
/// going back by more than the reorder distance (nor repeating). Gaps are legitimate where
/// input packets were lost. (Timestamp drift is noted, not judged: that is the lossless
/// check's job.)
pub fn check_continuity_lossy(report: &mut Report, name: &str, rx: &[Received]) {
    if check_common(report, name, rx, false) {
        let mut highest = rx[0].seq;
        let mut back = Vec::new();
        for p in &rx[1..] {
            let diff = p.seq.wrapping_sub(highest) as i16;
            if diff > 0 {
                highest = p.seq;
            } else if diff == 0 || diff.unsigned_abs() > REORDER_DISTANCE {
                back.push(format!(
                    "{} after {} at {:.3}s",
                    p.seq,
                    highest,
                    report.secs(p.at)
                ));
            }
        }
        report.check(back.is_empty(), || {
            format!(
                "{name}: {} packets repeat or go back by more than {REORDER_DISTANCE} in sequence: {}",
                back.len(),
                first_few(&back)
            )
        });
    }
}

/// One SSRC, and (with `judge_drift`) timestamps in step with arrival time; false if there is
/// nothing to judge.
fn check_common(report: &mut Report, name: &str, rx: &[Received], judge_drift: bool) -> bool {
    if rx.len() < 2 {
        report.fail(format!(
            "{name}: received {} RTP packets, cannot judge continuity",
            rx.len()
        ));
        return false;
    }
    let mut ssrcs: BTreeMap<u32, usize> = BTreeMap::new();
    for p in rx {
        *ssrcs.entry(p.ssrc).or_default() += 1;
    }
    report.check(ssrcs.len() == 1, || {
        let list: Vec<String> = ssrcs
            .iter()
            .map(|(s, n)| format!("{s:#010x}×{n}"))
            .collect();
        format!(
            "{name}: {} SSRCs in one output stream: {}",
            ssrcs.len(),
            list.join(", ")
        )
    });
    let (drift, at) = ts_drift(rx);
    let at_s = report.secs(at);
    report.check(!judge_drift || drift <= TS_DRIFT_MAX_MS, || {
        format!(
            "{name}: elapsed RTP time and elapsed arrival time differ by up to {drift:.1} ms (at {at_s:.3}s; limit \
             {TS_DRIFT_MAX_MS} ms, first packet as reference)"
        )
    });
    report.note(format!(
        "{name}: {} packets, timestamp/arrival drift ≤ {drift:.1} ms",
        rx.len()
    ));
    true
}

/// Notes, per endpoint and phase, how far each output's RTP time runs ahead of its arrival
/// time relative to its first packet (the least-delayed packet of the phase, in ms). Relayed
/// phases of one source should sit at one level; a mixed phase may sit lower by its mixing
/// delay; a level that keeps rising from switch to switch is timestamp drift.
pub fn note_ts_lead_per_phase(report: &mut Report, rec: &Recording) {
    for party in PARTIES {
        let rx = rec.of(party);
        let Some(first) = rx.first() else { continue };
        let mut line = format!("{} RTP-minus-arrival ms per phase:", party.name());
        for (i, phase) in rec.phases.iter().enumerate() {
            let best = between(rx, phase.effective_at + GUARD, phase.ended_at)
                .map(|p| {
                    f64::from(p.ts.wrapping_sub(first.ts) as i32) / 8.0
                        - p.at.saturating_duration_since(first.at).as_secs_f64() * 1000.0
                })
                .fold(f64::NAN, f64::max);
            if !best.is_nan() {
                let _ = write!(line, " #{i} {} {best:.0};", phase.mode.name());
            }
        }
        report.note(line);
    }
}

/// The largest |elapsed RTP time − elapsed arrival time| in ms relative to the first packets,
/// on the sliding envelope of the least-delayed packets, and where it occurred.
pub fn ts_drift(rx: &[Received]) -> (f64, Instant) {
    let (ts0, at0) = (rx[0].ts, rx[0].at);
    let lead: Vec<f64> = rx
        .iter()
        .map(|p| {
            let rtp_ms = f64::from(p.ts.wrapping_sub(ts0) as i32) / 8.0;
            rtp_ms - p.at.saturating_duration_since(at0).as_secs_f64() * 1000.0
        })
        .collect();
    // A late arrival lowers `lead`; the maximum over a short window is the least-delayed packet.
    let n = DRIFT_ENVELOPE_PACKETS.min(lead.len());
    let envelope: Vec<f64> = lead
        .windows(n)
        .map(|w| w.iter().copied().fold(f64::MIN, f64::max))
        .collect();
    let reference = envelope[0];
    let (mut worst, mut at) = (0.0f64, rx[0].at);
    for (i, e) in envelope.iter().enumerate() {
        if (e - reference).abs() > worst {
            worst = (e - reference).abs();
            at = rx[i].at;
        }
    }
    (worst, at)
}

fn first_few(items: &[String]) -> String {
    let mut s = items.iter().take(6).cloned().collect::<Vec<_>>().join("; ");
    if items.len() > 6 {
        let _ = write!(s, "; … ({} more)", items.len() - 6);
    }
    s
}

//! Added latency of mixed flows. A mix cannot carry a send time (its payload is new audio), so
//! the load generator marks *audio* instead: once a second each stream sends a *probe*, a frame
//! that is near full scale after its 14 bytes of marks, where the other frames carry a
//! −12 dBFS tone. A mixed output that includes the probe's party turns loud for a frame; the
//! time from the probe's send to the first loud frame's kernel arrival stamp is one sample of
//! the added latency, jitter buffer and tick wait included.
//!
//! Within a call the parties probe 340 ms apart (customer, agent, supervisor in turn), so a
//! loud frame is attributed to the latest probe any other party of its call sent before it
//! arrived, provided that was within [`MAX_MIXED_LATENCY_NS`].

use crate::hist::Histogram;

/// A stream probes once in this many 20 ms rounds (1 s).
const PROBE_EVERY_ROUNDS: u64 = 50;
/// Rounds after the customer's probe that the agent's and the supervisor's come: 340 ms and
/// 680 ms, so one party's probe cannot be mistaken for another's.
const ROLE_OFFSET_ROUNDS: [u64; 3] = [0, 17, 34];
/// The payload bytes after the marks (`loadgen`'s send time, id, role, flag).
const MARKS_LEN: usize = 14;
/// µ-law 0x80: +32,124, the largest positive sample.
const PROBE_BYTE: u8 = 0x80;
/// A decoded sample this large is "loud": two tones at −12 dBFS sum to at most about 16,000,
/// a probe over a tone to at least 24,000.
const LOUD_SAMPLE: i16 = 20_000;
/// Loud samples that make a frame a probe's: the probe has 146, the marks of the (at most
/// two) other sources of a mix at most 28.
const LOUD_FRAME_SAMPLES: usize = 80;
/// A loud frame later than this after any probe of its call is not attributed (a probe lost,
/// or a concealed copy of one).
pub const MAX_MIXED_LATENCY_NS: u64 = 300_000_000;
/// Loud frames on one output within this long of the previous one are the same probe (the
/// jitter buffer's concealment repeats a frame, fading).
pub const SAME_PROBE_NS: u64 = 200_000_000;

// Two probes of a call are further apart (17 rounds of 20 ms) than any latency attributed.
const _: () = assert!(ROLE_OFFSET_ROUNDS[1] * 20_000_000 > MAX_MIXED_LATENCY_NS);

/// Whether the packet of round `round` from a stream of `role` (its index in `ROLES`) is a
/// probe.
pub fn is_probe(round: u64, role: usize) -> bool {
    round % PROBE_EVERY_ROUNDS == ROLE_OFFSET_ROUNDS[role % 3]
}

/// The most probes one stream sends in `rounds` rounds.
pub fn max_probes(rounds: u64) -> u64 {
    rounds.div_ceil(PROBE_EVERY_ROUNDS)
}

/// Makes a payload (marks, then audio) a probe: everything after the marks near full scale.
pub fn make_probe(payload: &mut [u8]) {
    if let Some(audio) = payload.get_mut(MARKS_LEN..) {
        audio.fill(PROBE_BYTE);
    }
}

/// Recognises a mixed frame carrying a probe.
pub struct Detector {
    loud: [bool; 256],
}

impl Detector {
    pub fn new() -> Detector {
        let mut loud = [false; 256];
        for (code, l) in loud.iter_mut().enumerate() {
            *l = dataplane::wire::g711::ulaw_decode(code as u8).saturating_abs() >= LOUD_SAMPLE;
        }
        Detector { loud }
    }

    /// Whether this µ-law payload is (mostly) a probe.
    pub fn is_probe_frame(&self, payload: &[u8]) -> bool {
        payload
            .iter()
            .filter(|&&b| self.loud[usize::from(b)])
            .count()
            >= LOUD_FRAME_SAMPLES
    }
}

impl Default for Detector {
    fn default() -> Self {
        Detector::new()
    }
}

/// Latencies of `detections` (output stream, kernel arrival time of its first loud frame),
/// each against the latest probe sent before it by another stream of the same call.
/// `probes[s]`: the send times of stream `s`'s probes, ascending; `call_of[s]`: the range of
/// stream indices of `s`'s call. Returns the histogram and how many detections matched no
/// probe.
pub fn latencies(
    detections: &[(usize, u64)],
    probes: &[Vec<u64>],
    call_of: impl Fn(usize) -> std::ops::Range<usize>,
) -> (Histogram, u64) {
    let mut hist = Histogram::default();
    let mut unmatched = 0;
    for &(out, at) in detections {
        let latest = call_of(out)
            .filter(|&s| s != out)
            .filter_map(|s| {
                let sent = probes.get(s)?;
                let i = sent.partition_point(|&t| t <= at);
                i.checked_sub(1).map(|i| sent[i])
            })
            .max();
        match latest {
            Some(sent) if at - sent <= MAX_MIXED_LATENCY_NS => hist.record(at - sent),
            _ => unmatched += 1,
        }
    }
    (hist, unmatched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::wire::g711::{ulaw_decode, ulaw_encode};

    fn tone() -> [u8; 160] {
        let mut payload = [0u8; 160];
        for (i, b) in payload.iter_mut().enumerate() {
            let phase = i as f64 * 2.0 * std::f64::consts::PI * 500.0 / 8000.0;
            *b = ulaw_encode((phase.sin() * 8000.0) as i16);
        }
        payload
    }

    /// Marks as the load generator writes them: arbitrary bytes, as loud as they come.
    fn with_marks(mut payload: [u8; 160]) -> [u8; 160] {
        payload[..MARKS_LEN].copy_from_slice(&[0x80; MARKS_LEN]);
        payload
    }

    /// What the appliance sends a listener of `a` and `b`: decode, sum with saturation,
    /// encode.
    fn mix(a: &[u8; 160], b: &[u8; 160]) -> [u8; 160] {
        let mut out = [0u8; 160];
        for i in 0..160 {
            let sum = i32::from(ulaw_decode(a[i])) + i32::from(ulaw_decode(b[i]));
            out[i] = ulaw_encode(sum.clamp(-32768, 32767) as i16);
        }
        out
    }

    #[test]
    fn a_mixed_probe_is_recognised_and_plain_audio_is_not() {
        let d = Detector::new();
        let plain = with_marks(tone());
        let mut probe = plain;
        make_probe(&mut probe);
        assert!(d.is_probe_frame(&mix(&probe, &plain)));
        assert!(d.is_probe_frame(&mix(&plain, &probe)));
        assert!(
            !d.is_probe_frame(&mix(&plain, &plain)),
            "two tones and their marks"
        );
        assert!(!d.is_probe_frame(&plain));
        assert!(!d.is_probe_frame(&[0xFF; 160]), "silence");
    }

    #[test]
    fn the_parties_of_a_call_probe_apart() {
        let rounds = |role| {
            (0..200u64)
                .filter(|&r| is_probe(r, role))
                .collect::<Vec<_>>()
        };
        let (c, a, s) = (rounds(0), rounds(1), rounds(2));
        assert_eq!(c, [0, 50, 100, 150]);
        assert_eq!(a, [17, 67, 117, 167]);
        assert_eq!(s, [34, 84, 134, 184]);
        // The sender sizes its probe list by `max_probes`: never too small, for any length.
        for n in 0..=200u64 {
            for role in 0..3 {
                let sent = (0..n).filter(|&r| is_probe(r, role)).count() as u64;
                assert!(sent <= max_probes(n), "{n} rounds, role {role}");
            }
        }
    }

    #[test]
    fn a_loud_frame_is_charged_to_the_latest_probe_of_another_party_of_its_call() {
        let ms = 1_000_000;
        // Call A: streams 0, 1, 2; call B: streams 3, 4.
        let probes = vec![
            vec![1_000 * ms, 2_000 * ms],
            vec![1_340 * ms],
            vec![1_680 * ms],
            vec![1_010 * ms],
            vec![],
        ];
        let call_of = |s: usize| if s < 3 { 0..3 } else { 3..5 };
        let detections = [
            (2, 1_030 * ms), // the customer's probe, 30 ms later
            (0, 1_365 * ms), // the agent's, 25 ms
            (1, 1_720 * ms), // the supervisor's, 40 ms
            (1, 2_021 * ms), // the customer's again, 21 ms
            (4, 1_050 * ms), // call B's stream 3: 40 ms, not call A's 1,000 ms probe
            (3, 1_100 * ms), // its own probe is not its source: nothing else in B
            (0, 1_999 * ms), // 319 ms after the supervisor's: too late to be its
        ];
        let (hist, unmatched) = latencies(&detections, &probes, call_of);
        assert_eq!(unmatched, 2);
        assert_eq!(hist.count(), 5);
        assert_eq!(hist.max(), 40 * ms);
        let p50 = hist.quantile(0.5).unwrap();
        assert!((29 * ms..=31 * ms).contains(&p50), "{p50}");
    }
}

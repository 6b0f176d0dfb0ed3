//! Test tones and their measurement.
//!
//! Every tone is a multiple of 50 Hz, so it has a whole number of cycles in one 160-sample
//! (20 ms) frame: per-frame Goertzel bins of different tones are orthogonal, and a frame is
//! analysed on its own (never concatenated across a lost packet, which would smear energy).
//! None is a harmonic or a second-order intermodulation product of another, and all are away
//! from the appliance's 1400 Hz supervision beep.

use dataplane::wire::g711::{alaw_decode, alaw_encode, ulaw_decode, ulaw_encode};

use crate::rtp::{PT_PCMA, PT_PCMU};

pub const SAMPLE_RATE_HZ: u32 = 8000;
/// Samples in one 20 ms packet.
pub const FRAME_SAMPLES: usize = 160;
/// Every test sender's amplitude: three tones summed stay below full scale (3 × 8000 < 32767).
pub const TONE_AMPLITUDE: f64 = 8000.0;

/// A test tone, by who emits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tone {
    pub name: &'static str,
    pub freq_hz: u32,
}

pub const CUSTOMER_TONE: Tone = Tone {
    name: "customer",
    freq_hz: 600,
};
pub const AGENT_TONE: Tone = Tone {
    name: "agent",
    freq_hz: 1000,
};
pub const SUPERVISOR_TONE: Tone = Tone {
    name: "supervisor",
    freq_hz: 1700,
};
/// The appliance's supervision-start beep to the agent (docs/api.md).
pub const BEEP_TONE: Tone = Tone {
    name: "beep",
    freq_hz: 1400,
};
/// A packet source the appliance must refuse.
pub const INTRUDER_TONE: Tone = Tone {
    name: "intruder",
    freq_hz: 2500,
};

/// Every tone the analysis measures, in table order.
pub const MEASURED: [Tone; 5] = [
    CUSTOMER_TONE,
    AGENT_TONE,
    SUPERVISOR_TONE,
    BEEP_TONE,
    INTRUDER_TONE,
];

/// The index of `tone` in [`MEASURED`].
pub fn measured_index(tone: Tone) -> usize {
    MEASURED
        .iter()
        .position(|t| *t == tone)
        .expect("tone is in MEASURED")
}

/// The nominal power of one test tone in the units of [`goertzel_power`]: amplitude².
pub fn nominal_power() -> f64 {
    TONE_AMPLITUDE * TONE_AMPLITUDE
}

/// Frame `index` of a sine of `freq_hz` and `amplitude`, phase-continuous across frames.
pub fn tone_frame(freq_hz: u32, amplitude: f64, index: u64) -> [i16; FRAME_SAMPLES] {
    let mut out = [0i16; FRAME_SAMPLES];
    let first = index * FRAME_SAMPLES as u64;
    for (i, s) in out.iter_mut().enumerate() {
        // Reduce the sample index modulo one second: every test frequency is a whole number of
        // hertz, so the phase repeats each second, and f64 stays exact.
        let n = (first + i as u64) % u64::from(SAMPLE_RATE_HZ);
        let phase =
            2.0 * std::f64::consts::PI * f64::from(freq_hz) * n as f64 / f64::from(SAMPLE_RATE_HZ);
        *s = (amplitude * phase.sin()).round() as i16;
    }
    out
}

/// Encodes linear samples as the payload of `pt` (0 µ-law, 8 A-law).
pub fn encode(pt: u8, samples: &[i16]) -> Vec<u8> {
    match pt {
        PT_PCMA => samples.iter().map(|&s| alaw_encode(s)).collect(),
        _ => samples.iter().map(|&s| ulaw_encode(s)).collect(),
    }
}

/// Decodes a G.711 payload by payload type; `None` for any other payload type.
pub fn decode(pt: u8, payload: &[u8]) -> Option<Vec<i16>> {
    match pt {
        PT_PCMU => Some(payload.iter().map(|&c| ulaw_decode(c)).collect()),
        PT_PCMA => Some(payload.iter().map(|&c| alaw_decode(c)).collect()),
        _ => None,
    }
}

/// Goertzel power of `samples` at `freq_hz`, normalised so a sine of amplitude A at an exact
/// bin of the block measures A² (|X_k|² / (N/2)²).
pub fn goertzel_power(samples: &[i16], freq_hz: u32) -> f64 {
    let n = samples.len() as f64;
    if samples.is_empty() {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * f64::from(freq_hz) / f64::from(SAMPLE_RATE_HZ);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    power / (n / 2.0).powi(2)
}

/// Powers of every [`MEASURED`] tone in one frame.
pub fn frame_powers(samples: &[i16]) -> [f64; MEASURED.len()] {
    MEASURED.map(|t| goertzel_power(samples, t.freq_hz))
}

/// `power` in dB relative to the nominal single-tone power; very small powers floor at -200.
pub fn db_re_nominal(power: f64) -> f64 {
    db_ratio(power, nominal_power())
}

/// 10·log10(a / b), floored at -200 dB when `a` is (almost) nothing.
pub fn db_ratio(a: f64, b: f64) -> f64 {
    if b <= 0.0 {
        return if a <= 0.0 { 0.0 } else { 200.0 };
    }
    (10.0 * (a / b).log10()).max(-200.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tone_has_whole_cycles_per_frame() {
        for t in MEASURED {
            assert_eq!(
                t.freq_hz * FRAME_SAMPLES as u32 % SAMPLE_RATE_HZ,
                0,
                "{} Hz",
                t.freq_hz
            );
        }
    }

    #[test]
    fn pure_tone_measures_nominal_and_nothing_elsewhere() {
        for t in MEASURED {
            let f = tone_frame(t.freq_hz, TONE_AMPLITUDE, 7);
            let p = frame_powers(&f);
            for (i, other) in MEASURED.iter().enumerate() {
                let d = db_re_nominal(p[i]);
                if *other == t {
                    assert!(d.abs() < 0.1, "{} Hz at its own bin: {d:.2} dB", t.freq_hz);
                } else {
                    assert!(
                        d < -80.0,
                        "{} Hz leaks into {} Hz: {d:.1} dB",
                        t.freq_hz,
                        other.freq_hz
                    );
                }
            }
        }
    }

    /// The thresholds the end-to-end checks use (hear: ±10 dB, not hear: -35 dB, privacy:
    /// -60 dB) must hold with margin for G.711 coding of one tone and of mixed tones.
    #[test]
    fn g711_coding_keeps_tones_separable() {
        for pt in [PT_PCMU, PT_PCMA] {
            // One tone, coded once (a relayed stream): the other bins stay far below -60 dB.
            let f = tone_frame(AGENT_TONE.freq_hz, TONE_AMPLITUDE, 3);
            let p = frame_powers(&decode(pt, &encode(pt, &f)).unwrap());
            let agent = p[measured_index(AGENT_TONE)];
            assert!(db_re_nominal(agent).abs() < 0.5);
            let sup = p[measured_index(SUPERVISOR_TONE)];
            assert!(
                db_ratio(sup, agent) < -90.0,
                "pt {pt}: {:.1} dB",
                db_ratio(sup, agent)
            );
            // Two coded tones decoded, summed and coded again (a mixed stream).
            let a = decode(
                pt,
                &encode(pt, &tone_frame(CUSTOMER_TONE.freq_hz, TONE_AMPLITUDE, 1)),
            )
            .unwrap();
            let b = decode(
                pt,
                &encode(pt, &tone_frame(SUPERVISOR_TONE.freq_hz, TONE_AMPLITUDE, 1)),
            )
            .unwrap();
            let sum: Vec<i16> = a
                .iter()
                .zip(&b)
                .map(|(x, y)| x.saturating_add(*y))
                .collect();
            let p = frame_powers(&decode(pt, &encode(pt, &sum)).unwrap());
            let strongest = p[0].max(p[2]);
            assert!(db_re_nominal(p[0]).abs() < 1.0 && db_re_nominal(p[2]).abs() < 1.0);
            for i in [1, 3, 4] {
                assert!(
                    db_ratio(p[i], strongest) < -40.0,
                    "pt {pt}: bin {i} {:.1} dB",
                    db_ratio(p[i], strongest)
                );
            }
        }
    }
}

//! Tones the appliance plays (docs/design.md §1.6: the beep to the agent when supervision starts),
//! and a Goertzel detector to find them again in tests.
//!
//! A tone is a sine on the 8 kHz media clock, computed from the sample index rather than by
//! accumulating a phase, so it is phase-continuous across frames and does not drift. Its
//! start and end are shaped by a raised-cosine ramp: switching a sine on or off abruptly
//! clicks (a broadband transient), which is audible and would also leak into the spectrum the
//! tests examine.

use super::{CLOCK_RATE_HZ, Frame};
use core::f64::consts::PI;

/// Length of the raised-cosine ramp at each end of a tone: 5 ms.
const RAMP_SAMPLES: u32 = 5 * CLOCK_RATE_HZ / 1000;

/// What a tone sounds like.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToneSpec {
    pub freq_hz: f32,
    /// Peak amplitude in linear 16-bit PCM.
    pub amplitude: i16,
    pub duration_ms: u32,
}

/// The beep an agent hears when supervision starts: 1,400 Hz for 200 ms, peaking about 15 dB
/// below full scale: audible over speech without being startling.
pub const SUPERVISION_BEEP: ToneSpec = ToneSpec {
    freq_hz: 1400.0,
    amplitude: 6000,
    duration_ms: 200,
};

/// A tone being played, frame by frame.
#[derive(Debug, Clone)]
pub struct Tone {
    /// Radians per sample.
    step: f64,
    amplitude: f64,
    total_samples: u32,
    ramp_samples: u32,
    /// Samples already produced.
    position: u32,
}

impl Tone {
    /// A tone of `freq_hz` at peak `amplitude`, lasting `duration_ms` (whole samples at 8 kHz).
    /// Non-finite frequencies give silence rather than a panic.
    pub fn new(freq_hz: f32, amplitude: i16, duration_ms: u32) -> Self {
        let total_samples = duration_ms.saturating_mul(CLOCK_RATE_HZ / 1000);
        Tone {
            step: 2.0 * PI * f64::from(freq_hz) / f64::from(CLOCK_RATE_HZ),
            amplitude: f64::from(amplitude),
            total_samples,
            // A tone shorter than two ramps is all ramp.
            ramp_samples: RAMP_SAMPLES.min(total_samples / 2),
            position: 0,
        }
    }

    pub fn from_spec(spec: ToneSpec) -> Self {
        Self::new(spec.freq_hz, spec.amplitude, spec.duration_ms)
    }

    /// Writes the next 160 samples; past the end of the tone they are zero. Returns whether
    /// the tone still has samples to play after this frame.
    pub fn fill(&mut self, out: &mut Frame) -> bool {
        for o in out.iter_mut() {
            *o = self.sample(self.position);
            self.position = self.position.saturating_add(1).min(self.total_samples);
        }
        !self.is_done()
    }

    pub fn is_done(&self) -> bool {
        self.position >= self.total_samples
    }

    fn sample(&self, n: u32) -> i16 {
        if n >= self.total_samples {
            return 0;
        }
        let from_edge = n.min(self.total_samples - 1 - n);
        let envelope = if from_edge < self.ramp_samples {
            0.5 * (1.0 - (PI * f64::from(from_edge) / f64::from(self.ramp_samples)).cos())
        } else {
            1.0
        };
        // `as` saturates, and maps NaN (a non-finite frequency) to 0.
        (self.amplitude * envelope * (self.step * f64::from(n)).sin()).round() as i16
    }
}

/// The power of `samples` at `freq_hz` (Goertzel's algorithm: one DFT term, at any frequency,
/// not only a bin centre).
///
/// Normalised to full scale: a sine of amplitude `A` at exactly `freq_hz`, over a whole
/// number of cycles, gives `(A / 32768)²`, so a full-scale sine gives 1.0 and
/// `10·log10(power)` is its level in dB relative to a full-scale sine. Empty input or a
/// non-positive or non-finite rate gives 0.0.
pub fn goertzel_power(samples: &[i16], freq_hz: f32, sample_rate_hz: f32) -> f64 {
    if samples.is_empty() || !sample_rate_hz.is_finite() || sample_rate_hz <= 0.0 {
        return 0.0;
    }
    let coeff = 2.0 * (2.0 * PI * f64::from(freq_hz) / f64::from(sample_rate_hz)).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    // |X(ω)|²; rounding can make it a hair negative.
    let magnitude_sq = (s1 * s1 + s2 * s2 - coeff * s1 * s2).max(0.0);
    let n = samples.len() as f64;
    // A sine of amplitude A gives |X| = A·N/2.
    let full_scale = 32768.0 * n / 2.0;
    magnitude_sq / (full_scale * full_scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::FRAME_SAMPLES;

    fn play(mut tone: Tone) -> Vec<i16> {
        let mut all = Vec::new();
        let mut frame = [0; FRAME_SAMPLES];
        while !tone.is_done() {
            tone.fill(&mut frame);
            all.extend_from_slice(&frame);
        }
        all
    }

    fn db(ratio: f64) -> f64 {
        10.0 * ratio.log10()
    }

    #[test]
    fn lasts_its_duration_and_pads_the_last_frame_with_zeros() {
        let mut tone = Tone::new(1000.0, 8000, 210); // 1,680 samples: 10½ frames
        let mut frame = [0; FRAME_SAMPLES];
        for _ in 0..10 {
            assert!(tone.fill(&mut frame));
        }
        assert!(!tone.fill(&mut frame));
        assert!(tone.is_done());
        assert!(frame[80..].iter().all(|&x| x == 0));
        assert!(frame[..79].iter().any(|&x| x != 0));
        assert!(!tone.fill(&mut frame));
        assert_eq!(frame, [0; FRAME_SAMPLES]);

        let mut empty = Tone::new(1000.0, 8000, 0);
        assert!(empty.is_done());
        assert!(!empty.fill(&mut frame));
    }

    #[test]
    fn ramps_in_and_out_without_clicks() {
        let beep = play(Tone::from_spec(SUPERVISION_BEEP));
        assert_eq!(beep.len(), 1600);
        assert_eq!(beep[0], 0);
        assert_eq!(beep[1599], 0);
        assert!(beep.iter().all(|&x| x.unsigned_abs() <= 6000));
        assert!(beep.iter().any(|&x| x.unsigned_abs() > 5900));
        // Phase-continuous across frames: no step larger than a full-amplitude sine's
        // steepest one (A · 2 sin(π f / fs)), at frame boundaries or anywhere else.
        let max_step = 6000.0 * 2.0 * (PI * 1400.0 / 8000.0).sin() + 2.0;
        for pair in beep.windows(2) {
            let step = (i32::from(pair[1]) - i32::from(pair[0])).unsigned_abs();
            assert!(f64::from(step) <= max_step);
        }
    }

    #[test]
    fn goertzel_is_normalised_to_full_scale() {
        let sine = |amplitude: f64| -> Vec<i16> {
            (0..160)
                .map(|n| (amplitude * (2.0 * PI * 1000.0 * n as f64 / 8000.0).sin()) as i16)
                .collect()
        };
        let full = goertzel_power(&sine(32767.0), 1000.0, 8000.0);
        assert!((full - 1.0).abs() < 1e-3, "{full}");
        let half = goertzel_power(&sine(16384.0), 1000.0, 8000.0);
        assert!((db(half) + 6.02).abs() < 0.01, "{}", db(half));
        assert_eq!(goertzel_power(&[0; 160], 1000.0, 8000.0), 0.0);
        assert_eq!(goertzel_power(&[], 1000.0, 8000.0), 0.0);
        assert_eq!(goertzel_power(&sine(1.0), 1000.0, 0.0), 0.0);
    }

    #[test]
    fn a_tone_is_detected_at_its_frequency_and_40_db_above_300_hz_away() {
        let beep = play(Tone::from_spec(SUPERVISION_BEEP));
        let at = goertzel_power(&beep, 1400.0, 8000.0);
        // 6000 / 32768 ≈ −14.7 dBFS, less a little for the ramps.
        assert!((db(at) + 14.7).abs() < 0.5, "{}", db(at));
        for off in [1100.0, 1700.0] {
            let other = goertzel_power(&beep, off, 8000.0);
            assert!(db(at / other) >= 40.0, "{off} Hz: {} dB", db(at / other));
        }
        // And in a single 20 ms frame of the steady part.
        let frame = &beep[800..960];
        let ratio = goertzel_power(frame, 1400.0, 8000.0) / goertzel_power(frame, 1100.0, 8000.0);
        assert!(db(ratio) >= 40.0, "{}", db(ratio));
    }

    #[test]
    fn odd_parameters_never_panic() {
        let mut frame = [0; FRAME_SAMPLES];
        for (f, a, d) in [
            (f32::NAN, 100, 40),
            (f32::INFINITY, i16::MIN, 40),
            (-5.0, i16::MAX, 7),
            (1e9, 1, u32::MAX),
        ] {
            let mut tone = Tone::new(f, a, d);
            tone.fill(&mut frame);
            let _ = goertzel_power(&frame, f, 8000.0);
        }
        assert_eq!(goertzel_power(&frame, 1000.0, f32::NAN), 0.0);
    }
}

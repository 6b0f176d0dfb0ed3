//! Saturating mix of linear PCM frames (docs/design.md §1.3: decode, sum with saturation, encode).
//!
//! The mix is sum-then-clamp: every source is added at full precision and the total is clamped
//! once to the i16 range. That is true saturation; pairwise saturating adds are not (with
//! `MAX + MAX + MIN` they give −1 instead of 32,766) and would make the result depend on the
//! order of the sources. The fast path keeps an i32 accumulator over fixed-size frames, so
//! the compiler sees constant trip counts, elides bounds checks and vectorises the loops;
//! [`reference::mix_scalar`] is the plain definition it is tested against.

use super::{FRAME_SAMPLES, Frame};

/// Most sources the i32 accumulator can sum without overflow: 65,535 × 32,768 < 2^31.
/// Beyond that (never in practice) the exact i64 reference path is used.
const MAX_FAST_SOURCES: usize = 65_535;

/// `out[i] = clamp(Σ sources[k][i])`. No sources give silence.
pub fn mix_into(sources: &[&Frame], out: &mut Frame) {
    match sources {
        [] => out.fill(0),
        [only] => *out = **only,
        [a, b] => mix2(a, b, out),
        _ if sources.len() > MAX_FAST_SOURCES => reference::mix_scalar(sources, out),
        [first, rest @ ..] => {
            let mut acc = [0i32; FRAME_SAMPLES];
            for (a, &x) in acc.iter_mut().zip(first.iter()) {
                *a = i32::from(x);
            }
            for source in rest {
                for (a, &x) in acc.iter_mut().zip(source.iter()) {
                    *a += i32::from(x);
                }
            }
            for (o, a) in out.iter_mut().zip(acc) {
                *o = saturate(a);
            }
        }
    }
}

/// The two-source mix, the common case (a listener hearing two parties). With two sources
/// sum-then-clamp and a saturating add coincide, which maps to one SIMD instruction per lane
/// group (`paddsw` on x86, `sqadd` on AArch64).
pub fn mix2(a: &Frame, b: &Frame, out: &mut Frame) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = x.saturating_add(y);
    }
}

fn saturate(sum: i32) -> i16 {
    sum.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

/// The definition the optimised paths are tested against.
pub mod reference {
    use super::Frame;

    /// Sample by sample, an exact i64 sum of every source, clamped once.
    pub fn mix_scalar(sources: &[&Frame], out: &mut Frame) {
        for (i, o) in out.iter_mut().enumerate() {
            let sum: i64 = sources.iter().map(|s| i64::from(s[i])).sum();
            *o = sum.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    use rand_pcg::Pcg32;

    fn check(sources: &[Frame]) {
        let refs: Vec<&Frame> = sources.iter().collect();
        let mut fast = [0x5a5a; FRAME_SAMPLES];
        let mut slow = [0x1234; FRAME_SAMPLES];
        mix_into(&refs, &mut fast);
        reference::mix_scalar(&refs, &mut slow);
        assert_eq!(fast, slow, "{} sources", sources.len());
        if let [a, b] = sources {
            let mut two = [0; FRAME_SAMPLES];
            mix2(a, b, &mut two);
            assert_eq!(two, slow);
        }
    }

    /// A frame of one of several shapes, biased towards the extremes.
    fn random_frame(rng: &mut StdRng) -> Frame {
        let mut f = [0i16; FRAME_SAMPLES];
        match rng.random_range(0..5) {
            0 => f.fill(i16::MAX),
            1 => f.fill(i16::MIN),
            2 => f
                .iter_mut()
                .for_each(|x| *x = if rng.random() { i16::MAX } else { i16::MIN }),
            3 => f.iter_mut().for_each(|x| *x = rng.random_range(-300..300)),
            _ => f.iter_mut().for_each(|x| *x = rng.random()),
        }
        f
    }

    #[test]
    fn true_saturation_not_pairwise() {
        let (max, min) = ([i16::MAX; FRAME_SAMPLES], [i16::MIN; FRAME_SAMPLES]);
        let mut out = [0; FRAME_SAMPLES];
        // Pairwise saturating adds would give −1 and 32,767.
        mix_into(&[&max, &max, &min], &mut out);
        assert_eq!(out, [32_766; FRAME_SAMPLES]);
        mix_into(&[&min, &min, &max, &max, &max], &mut out);
        assert_eq!(out, [32_765; FRAME_SAMPLES]);
        mix_into(&[], &mut out);
        assert_eq!(out, [0; FRAME_SAMPLES]);
    }

    #[test]
    fn matches_reference_on_random_frames() {
        let mut rng = StdRng::from_rng(&mut Pcg32::new(0x313, 0));
        for _ in 0..3_000 {
            let n = rng.random_range(0..=6);
            let sources: Vec<Frame> = (0..n).map(|_| random_frame(&mut rng)).collect();
            check(&sources);
        }
    }

    #[test]
    fn more_sources_than_the_fast_path_takes_stay_exact() {
        let (max, min) = ([i16::MAX; FRAME_SAMPLES], [i16::MIN; FRAME_SAMPLES]);
        // 40,000 × MAX + 40,001 × MIN = −72,768: an i32 would overflow on the way there.
        let sources: Vec<&Frame> = std::iter::repeat_n(&max, 40_000)
            .chain(std::iter::repeat_n(&min, 40_001))
            .collect();
        let mut out = [0; FRAME_SAMPLES];
        mix_into(&sources, &mut out);
        assert_eq!(out, min);
    }

    /// Frames from random case numbers: generating 160 samples one strategy at a time is slow in
    /// debug.
    fn frame_strategy() -> impl Strategy<Value = Frame> {
        any::<u64>().prop_map(|case| random_frame(&mut StdRng::from_rng(&mut Pcg32::new(case, 0))))
    }

    proptest! {
        #[test]
        fn fast_path_equals_reference(sources in prop::collection::vec(frame_strategy(), 0..=6)) {
            check(&sources);
        }
    }
}

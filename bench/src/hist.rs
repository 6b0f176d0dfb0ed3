//! A fixed-size log-linear histogram of nanosecond durations: exact below 1,024 ns, then 512
//! sub-buckets per power of two (relative error under 0.2 %). Allocated once, never grows,
//! so recording on the receive path costs an index computation and an add.

/// Sub-buckets per power of two, as a bit count.
const SUB_BITS: u32 = 9;
const SUB: usize = 1 << SUB_BITS;
/// Enough buckets for any u64.
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB;

#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }
}

fn index(v: u64) -> usize {
    if v < (2 * SUB) as u64 {
        v as usize
    } else {
        let e = 63 - v.leading_zeros() - SUB_BITS;
        e as usize * SUB + (v >> e) as usize
    }
}

/// The smallest value that falls in bucket `i`.
fn lower_bound(i: usize) -> u64 {
    if i < 2 * SUB {
        i as u64
    } else {
        let e = (i / SUB - 1) as u32;
        ((i % SUB + SUB) as u64) << e
    }
}

impl Histogram {
    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1): the lower bound of the bucket holding that rank,
    /// capped at the exact maximum. `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(lower_bound(i).min(self.max));
            }
        }
        Some(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut prev = 0;
        for v in (0..100_000u64).chain([1 << 40, u64::MAX]) {
            let i = index(v);
            assert!(i >= prev && i < BUCKETS, "{v}");
            prev = i;
            let lo = lower_bound(i);
            assert!(
                lo <= v && (v - lo) as f64 <= v as f64 / 500.0 + 1.0,
                "{v}: {lo}"
            );
        }
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::default();
        for v in 1..=1000 {
            h.record(v);
        }
        assert_eq!(h.quantile(0.5), Some(500));
        assert_eq!(h.quantile(0.99), Some(990));
        assert_eq!(h.quantile(1.0), Some(1000));
        assert_eq!(h.max(), 1000);
    }
}

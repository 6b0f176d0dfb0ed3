//! Per-leg statistics, published by the owning worker once per tick and read by the control
//! plane without locks.

/// A leg's statistics as last published by its worker.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LegStats {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    /// Cumulative RTP packets lost (RFC 3550 §A.3; negative with duplicates).
    pub packets_lost: i64,
    /// Interarrival jitter (RFC 3550 §A.8), milliseconds.
    pub jitter_ms: f64,
    /// Packets dropped on this leg: wrong source, malformed, and the like.
    pub packets_dropped: u64,
    /// `packets_dropped` by reason, indexed by [`DropReason::index`].
    pub dropped: [u64; DropReason::COUNT],
}

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use crate::media::call::{DropReason, Leg};

/// The cell a worker publishes one leg's statistics to and the control side reads, lock-free.
/// Fields are independent relaxed atomics: a reader may see a mix of two publications, which is
/// fine for counters read by people.
#[derive(Debug, Default)]
pub struct SharedLegStats {
    packets_in: AtomicU64,
    bytes_in: AtomicU64,
    packets_out: AtomicU64,
    bytes_out: AtomicU64,
    packets_lost: AtomicI64,
    jitter_us: AtomicU64,
    packets_dropped: AtomicU64,
    dropped: [AtomicU64; DropReason::COUNT],
}

impl SharedLegStats {
    pub fn publish(&self, leg: &Leg) {
        let c = leg.counters();
        self.packets_in.store(c.packets_in, Relaxed);
        self.bytes_in.store(c.bytes_in, Relaxed);
        self.packets_out.store(c.packets_out, Relaxed);
        self.bytes_out.store(c.bytes_out, Relaxed);
        self.packets_lost.store(leg.packets_lost(), Relaxed);
        self.jitter_us
            .store((leg.jitter_ms() * 1000.0) as u64, Relaxed);
        self.packets_dropped.store(c.packets_dropped, Relaxed);
        for (cell, n) in self.dropped.iter().zip(c.dropped) {
            cell.store(n, Relaxed);
        }
    }

    pub fn read(&self) -> LegStats {
        LegStats {
            packets_in: self.packets_in.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            packets_out: self.packets_out.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            packets_lost: self.packets_lost.load(Relaxed),
            jitter_ms: self.jitter_us.load(Relaxed) as f64 / 1000.0,
            packets_dropped: self.packets_dropped.load(Relaxed),
            dropped: std::array::from_fn(|i| self.dropped[i].load(Relaxed)),
        }
    }
}

//! Inbound sequence tracking for one RTP source: validation, extended sequence numbers, loss and
//! interarrival jitter, as RFC 3550 §A.1, §A.3 and §A.8 specify them.
//!
//! The algorithm is the RFC's `update_seq` transcribed, with one addition: a 128-bit window of
//! recently seen extended sequence numbers, so a repeated packet is reported as
//! [`SeqUpdate::Duplicate`] and not counted as received twice. The RFC's counters otherwise
//! behave as the RFC says, including a cumulative loss that may go negative when a packet from
//! before the base sequence number turns up late.

/// RFC 3550 §A.1: a forward jump of fewer sequence numbers than this is loss, not a restart.
pub const MAX_DROPOUT: u16 = 3000;
/// RFC 3550 §A.1: a packet fewer than this many sequence numbers behind the highest is
/// reordered (or duplicated) rather than the start of a new sequence.
pub const MAX_MISORDER: u16 = 100;
/// RFC 3550 §A.1: sequential packets needed before a new source is declared valid.
pub const MIN_SEQUENTIAL: u8 = 2;

/// RFC 3550 `RTP_SEQ_MOD`.
const SEQ_MOD: u64 = 1 << 16;
/// Width in sequence numbers of the duplicate-detection window. It must cover the whole
/// misorder window, so every packet reported as late can be checked.
const SEEN_WINDOW: u16 = u128::BITS as u16;
const _: () = assert!(SEEN_WINDOW >= MAX_MISORDER);

/// What one packet meant to the tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqUpdate {
    /// A new highest sequence number (in order, or after a gap shorter than [`MAX_DROPOUT`]).
    Accepted { extended: u64 },
    /// Older than the highest, within [`MAX_MISORDER`], and not seen before: reordered. Still
    /// useful to a jitter buffer.
    Late { extended: u64 },
    /// Already received (within the last 128 sequence numbers); not counted again.
    Duplicate,
    /// The source is not valid yet (RFC 3550 §A.1 probation, [`MIN_SEQUENTIAL`]).
    Probation,
    /// A jump beyond [`MAX_DROPOUT`] confirmed by the next packet: the sender restarted, and
    /// the tracker re-synchronised on this packet (counters start again, §A.1 `init_seq`).
    Restarted,
    /// A bad jump (the first of a possible restart pair), or a reordered packet from before
    /// the first sequence cycle that no extended number can represent. Not counted.
    Rejected,
}

/// Sequence, loss and jitter state of one inbound source (RFC 3550 §A.1 `source`).
#[derive(Debug, Clone)]
pub struct SeqTracker {
    /// False until the first packet.
    started: bool,
    /// Sequential packets still needed before the source is valid; 0 once valid.
    probation: u8,
    /// Highest sequence number seen (RFC `max_seq`).
    max_seq: u16,
    /// Sequence-number wraps, pre-multiplied by 2^16 (RFC `cycles`).
    cycles: u64,
    /// Extended sequence number of the first packet counted (RFC `base_seq`).
    base_seq: u64,
    /// The sequence number that would confirm a restart (RFC `bad_seq`); `None` for none.
    bad_seq: Option<u16>,
    received: u64,
    /// RFC `expected_prior` and `received_prior`, for the interval fraction of §A.3.
    expected_prior: u64,
    received_prior: u64,
    /// Bit k set: extended sequence number `extended_highest() - k` was received.
    seen: u128,
    /// Relative transit time of the previous packet, in media-clock units (§A.8).
    transit: Option<u32>,
    /// Interarrival jitter scaled by 16, in media-clock units (the RFC's integer form).
    jitter_q4: u64,
}

impl Default for SeqTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl SeqTracker {
    pub fn new() -> Self {
        SeqTracker {
            started: false,
            probation: MIN_SEQUENTIAL,
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: None,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            seen: 0,
            transit: None,
            jitter_q4: 0,
        }
    }

    /// Accounts for one packet: `seq` and `rtp_ts` from its header, `arrival` its arrival time
    /// on the same media clock as `rtp_ts` (wrapping, as RTP timestamps do).
    pub fn update(&mut self, seq: u16, rtp_ts: u32, arrival: u32) -> SeqUpdate {
        if !self.started {
            // §A.1: the first packet starts probation, as if it followed `seq - 1`.
            self.started = true;
            self.init(seq);
            self.max_seq = seq.wrapping_sub(1);
            self.probation = MIN_SEQUENTIAL;
        }
        let udelta = seq.wrapping_sub(self.max_seq);
        let outcome = if self.probation > 0 {
            if udelta == 1 {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init(seq);
                    self.count(0);
                    SeqUpdate::Accepted {
                        extended: self.extended_highest(),
                    }
                } else {
                    SeqUpdate::Probation
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
                SeqUpdate::Probation
            }
        } else if udelta == 0 {
            // The highest is always marked seen, so this is a repeat of it.
            return SeqUpdate::Duplicate;
        } else if udelta < MAX_DROPOUT {
            // In order, with a permissible gap.
            if seq < self.max_seq {
                self.cycles += SEQ_MOD;
            }
            self.max_seq = seq;
            self.seen = self.seen.checked_shl(u32::from(udelta)).unwrap_or(0);
            self.count(0);
            SeqUpdate::Accepted {
                extended: self.extended_highest(),
            }
        } else if udelta <= u16::MAX - MAX_MISORDER + 1 {
            // (RTP_SEQ_MOD - MAX_MISORDER.) A very large jump: a restart if the next packet
            // continues from here (§A.1).
            if self.bad_seq == Some(seq) {
                self.init(seq);
                self.count(0);
                self.transit = None;
                SeqUpdate::Restarted
            } else {
                self.bad_seq = Some(seq.wrapping_add(1));
                return SeqUpdate::Rejected;
            }
        } else {
            // Reordered or duplicated, fewer than MAX_MISORDER behind.
            let back = self.max_seq.wrapping_sub(seq);
            let Some(extended) = self.extended_highest().checked_sub(u64::from(back)) else {
                return SeqUpdate::Rejected;
            };
            if back < SEEN_WINDOW && self.seen & (1 << back) != 0 {
                return SeqUpdate::Duplicate;
            }
            self.count(back);
            SeqUpdate::Late { extended }
        };
        self.observe_transit(rtp_ts, arrival);
        outcome
    }

    /// RFC 3550 §A.1 `init_seq`: (re)start counting at `seq`.
    fn init(&mut self, seq: u16) {
        self.base_seq = u64::from(seq);
        self.max_seq = seq;
        self.bad_seq = None;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
        self.seen = 0;
    }

    /// Counts a packet `back` sequence numbers behind the highest as received.
    fn count(&mut self, back: u16) {
        self.received += 1;
        if back < SEEN_WINDOW {
            self.seen |= 1 << back;
        }
    }

    /// RFC 3550 §A.8: J += (|D| - J) / 16, in the RFC's integer form on J × 16, where D is the
    /// change in relative transit time between this packet and the previous one in arrival
    /// order.
    fn observe_transit(&mut self, rtp_ts: u32, arrival: u32) {
        let transit = arrival.wrapping_sub(rtp_ts);
        if let Some(previous) = self.transit {
            let d = u64::from((transit.wrapping_sub(previous) as i32).unsigned_abs());
            // (J×16 + 8) / 16 ≤ J×16, so this never underflows; J stays below 2^32 × 16.
            self.jitter_q4 = self.jitter_q4 + d - ((self.jitter_q4 + 8) >> 4);
        }
        self.transit = Some(transit);
    }

    /// Forgets the previous packet's transit time: the sender's clock stepped, and the step
    /// is no interarrival jitter (RFC 3550 §A.8 assumes one continuous clock).
    pub fn forget_transit(&mut self) {
        self.transit = None;
    }

    /// Packets counted as received (duplicates, probation and rejected packets excluded).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Packets expected: highest extended sequence number minus the base, plus one (§A.3).
    /// Zero until the source is valid.
    pub fn expected(&self) -> u64 {
        if self.probation > 0 {
            return 0;
        }
        (self.extended_highest() + 1).saturating_sub(self.base_seq)
    }

    /// Cumulative packets lost, `expected - received` (§A.3). Negative when late packets from
    /// before the base were counted, as the RFC allows.
    pub fn lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    /// Highest sequence number seen, extended with the count of wraps (`cycles` in §A.1).
    pub fn extended_highest(&self) -> u64 {
        self.cycles + u64::from(self.max_seq)
    }

    /// Interarrival jitter in media-clock units (RFC 3550 §6.4.1, §A.8). Rounded rather than
    /// truncated, so for a steady |D| the estimator settles exactly on |D|.
    pub fn jitter(&self) -> u32 {
        u32::try_from((self.jitter_q4 + 8) >> 4).unwrap_or(u32::MAX)
    }

    /// Interarrival jitter in milliseconds, on the 8 kHz G.711 media clock.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter_q4 as f64 / 16.0 * 1000.0 / f64::from(super::CLOCK_RATE_HZ)
    }

    /// Fraction of packets lost since the previous call, in 1/256 (RFC 3550 §6.4.1 "fraction
    /// lost", computed as §A.3 does). Zero when nothing was expected or duplicates outnumber
    /// losses.
    pub fn fraction_lost_interval(&mut self) -> u8 {
        let expected = self.expected();
        let expected_interval = expected.saturating_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.received_prior = self.received;
        let lost_interval = expected_interval.saturating_sub(received_interval);
        if expected_interval == 0 || lost_interval == 0 {
            return 0;
        }
        u8::try_from((lost_interval << 8) / expected_interval).unwrap_or(u8::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Instant;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    use rand_pcg::Pcg32;

    /// Feeds `seqs` with timestamps and arrivals that keep a constant transit (no jitter).
    fn feed(t: &mut SeqTracker, seqs: impl IntoIterator<Item = u16>) -> Vec<SeqUpdate> {
        seqs.into_iter()
            .map(|s| {
                let ts = u32::from(s).wrapping_mul(160);
                t.update(s, ts, ts.wrapping_add(1234))
            })
            .collect()
    }

    #[test]
    fn in_order_stream_after_probation() {
        let mut t = SeqTracker::new();
        let r = feed(&mut t, 1000..1100);
        assert_eq!(r[0], SeqUpdate::Probation);
        assert_eq!(r[1], SeqUpdate::Accepted { extended: 1001 });
        assert_eq!(r[99], SeqUpdate::Accepted { extended: 1099 });
        assert_eq!((t.received(), t.expected(), t.lost()), (99, 99, 0));
        assert_eq!(t.extended_highest(), 1099);
        assert_eq!(t.jitter(), 0);
    }

    #[test]
    fn probation_restarts_on_a_gap() {
        let mut t = SeqTracker::new();
        assert_eq!(feed(&mut t, [10, 12, 14]), [SeqUpdate::Probation; 3]);
        assert_eq!(t.expected(), 0);
        assert_eq!(feed(&mut t, [15]), [SeqUpdate::Accepted { extended: 15 }]);
    }

    #[test]
    fn wraps_at_65535_and_extended_keeps_growing() {
        let mut t = SeqTracker::new();
        let seqs = (65_530..=65_535).chain(0..10);
        let r = feed(&mut t, seqs);
        assert_eq!(r[5], SeqUpdate::Accepted { extended: 65_535 });
        assert_eq!(r[6], SeqUpdate::Accepted { extended: 65_536 });
        assert_eq!(t.extended_highest(), 65_536 + 9);
        assert_eq!((t.received(), t.expected(), t.lost()), (15, 15, 0));
        // A late packet from before the wrap still gets its pre-wrap extended number.
        let mut t2 = SeqTracker::new();
        feed(&mut t2, [65_534, 65_535, 1]);
        assert_eq!(feed(&mut t2, [0]), [SeqUpdate::Late { extended: 65_536 }]);
    }

    #[test]
    fn counts_loss() {
        let mut t = SeqTracker::new();
        feed(&mut t, (0..50).filter(|s| s % 10 != 5));
        assert_eq!((t.expected(), t.received(), t.lost()), (49, 44, 5));
    }

    #[test]
    fn reordering_within_window_is_late_not_lost() {
        let mut t = SeqTracker::new();
        let r = feed(&mut t, [1, 2, 3, 5, 4, 6, 9, 7, 8]);
        assert_eq!(r[4], SeqUpdate::Late { extended: 4 });
        assert_eq!(r[7], SeqUpdate::Late { extended: 7 });
        assert_eq!((t.expected(), t.received(), t.lost()), (8, 8, 0));
        // MAX_MISORDER behind or more is a "very large jump", not a late packet.
        feed(&mut t, 10..200);
        assert_eq!(feed(&mut t, [199 - 99]), [SeqUpdate::Duplicate]);
        assert_eq!(feed(&mut t, [199 - 100]), [SeqUpdate::Rejected]);
    }

    #[test]
    fn duplicates_are_detected_and_not_counted() {
        let mut t = SeqTracker::new();
        feed(&mut t, [1, 2, 3, 5]);
        assert_eq!(
            feed(&mut t, [5, 3, 4, 4]),
            [
                SeqUpdate::Duplicate,
                SeqUpdate::Duplicate,
                SeqUpdate::Late { extended: 4 },
                SeqUpdate::Duplicate,
            ]
        );
        assert_eq!((t.expected(), t.received(), t.lost()), (4, 4, 0));
        // Across a wrap as well.
        let mut t = SeqTracker::new();
        feed(&mut t, [65_534, 65_535, 0, 1]);
        assert_eq!(feed(&mut t, [65_535, 1]), [SeqUpdate::Duplicate; 2]);
    }

    #[test]
    fn a_confirmed_big_jump_restarts_and_a_lone_one_is_rejected() {
        let mut t = SeqTracker::new();
        feed(&mut t, 100..120);
        // A lone jump is rejected and tracking continues.
        assert_eq!(
            feed(&mut t, [40_000, 120]),
            [SeqUpdate::Rejected, SeqUpdate::Accepted { extended: 120 }]
        );
        // A jump followed by its successor re-synchronises.
        assert_eq!(
            feed(&mut t, [50_000, 50_001, 50_002]),
            [
                SeqUpdate::Rejected,
                SeqUpdate::Restarted,
                SeqUpdate::Accepted { extended: 50_002 },
            ]
        );
        assert_eq!((t.expected(), t.received(), t.lost()), (2, 2, 0));
    }

    #[test]
    fn jitter_is_zero_for_constant_transit() {
        let mut t = SeqTracker::new();
        for k in 0..500u32 {
            let arrival = Instant::from_micros(7_000_123 + 20_000 * u64::from(k));
            t.update(k as u16, 99_999 + 160 * k, arrival.to_media_clock(8000));
        }
        assert_eq!(t.jitter(), 0);
        assert_eq!(t.jitter_ms(), 0.0);
    }

    #[test]
    fn jitter_converges_for_alternating_arrivals() {
        // Arrivals alternately 2.5 ms early and late: |D| = 5 ms = 40 samples every packet,
        // and J converges to |D| (§A.8).
        let mut t = SeqTracker::new();
        for k in 0..1000u32 {
            let nominal = 1_000_000 + 20_000 * u64::from(k);
            let micros = if k % 2 == 0 {
                nominal + 2_500
            } else {
                nominal - 2_500
            };
            let arrival = Instant::from_micros(micros).to_media_clock(8000);
            t.update(k as u16, 160 * k, arrival);
        }
        assert_eq!(t.jitter(), 40);
        assert!((t.jitter_ms() - 5.0).abs() < 0.1, "{}", t.jitter_ms());
    }

    #[test]
    fn fraction_lost_per_interval() {
        let mut t = SeqTracker::new();
        // Seq 0 is probation; 1..=100 expected, every fourth missing.
        feed(&mut t, (0..=100).filter(|s| s % 4 != 2));
        assert_eq!(t.fraction_lost_interval(), 64); // 25 % of 256
        feed(&mut t, 101..201);
        assert_eq!(t.fraction_lost_interval(), 0);
        feed(&mut t, (201..301).filter(|s| s % 2 == 0));
        assert_eq!(t.fraction_lost_interval(), 128);
        // Duplicates never make it negative.
        feed(&mut t, [300, 300]);
        assert_eq!(t.fraction_lost_interval(), 0);
    }

    #[test]
    fn never_panics_and_counters_stay_consistent_on_garbage() {
        let mut rng = StdRng::from_rng(&mut Pcg32::new(0x5e9, 0));
        let mut t = SeqTracker::new();
        let mut seq: u16 = rng.random();
        for _ in 0..20_000 {
            seq = match rng.random_range(0..10) {
                0 => rng.random(),
                1..=3 => seq.wrapping_sub(rng.random_range(0..200)),
                _ => seq.wrapping_add(rng.random_range(0..5)),
            };
            let r = t.update(seq, rng.random(), rng.random());
            if let SeqUpdate::Accepted { extended } = r {
                assert_eq!(extended, t.extended_highest());
            }
            t.fraction_lost_interval();
            let _ = (t.lost(), t.jitter(), t.jitter_ms());
        }
    }
}

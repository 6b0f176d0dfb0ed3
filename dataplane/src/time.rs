//! Time as an input (docs/design.md §9.3).
//!
//! Media code never reads a clock: it is handed an [`Instant`] and exposes its next deadline.
//! Only the engine turns the OS monotonic clock into `Instant`s, so tests can drive the media
//! core on a virtual clock, deterministically.

use core::ops::{Add, AddAssign, Sub};
pub use core::time::Duration;

/// A point in time, in microseconds since an arbitrary epoch chosen by whoever owns the clock
/// (the engine: its start; a test: zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant {
    micros: u64,
}

impl Instant {
    pub const ZERO: Instant = Instant { micros: 0 };

    pub const fn from_micros(micros: u64) -> Self {
        Instant { micros }
    }

    pub const fn from_millis(millis: u64) -> Self {
        Instant {
            micros: millis * 1000,
        }
    }

    pub const fn as_micros(self) -> u64 {
        self.micros
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.micros.saturating_sub(earlier.micros))
    }

    /// This instant expressed on an RTP media clock of `clock_rate_hz` (wrapping, as RTP
    /// timestamps do). Used for interarrival jitter (RFC 3550 §6.4.1, §A.8).
    pub fn to_media_clock(self, clock_rate_hz: u32) -> u32 {
        ((self.micros as u128 * clock_rate_hz as u128) / 1_000_000) as u32
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        Instant {
            micros: self.micros.saturating_add(rhs.as_micros() as u64),
        }
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, rhs: Duration) {
        *self = *self + rhs;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    /// Saturating: a later `rhs` yields zero rather than panicking.
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_since(rhs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_panicking() {
        let a = Instant::from_millis(5);
        let b = Instant::from_millis(7);
        assert_eq!(b - a, Duration::from_millis(2));
        assert_eq!(a - b, Duration::ZERO);
        assert_eq!(a + Duration::from_micros(1500), Instant::from_micros(6500));
    }

    #[test]
    fn media_clock_at_8khz() {
        assert_eq!(Instant::from_millis(20).to_media_clock(8000), 160);
        assert_eq!(Instant::from_micros(125).to_media_clock(8000), 1);
    }
}

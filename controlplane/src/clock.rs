//! The control plane's time source (docs/design.md §9.3: time is an input).
//!
//! Every timestamp the control plane records and every `now` it hands to a supervision
//! [`Session`](crate::domain::lifecycle::Session) comes from the [`Clock`] in
//! [`AppState`](crate::AppState); so does the answer-timeout timer, which sleeps with
//! [`Clock::sleep_until`]. The daemon runs on [`SystemClock`]; tests build their state with a
//! [`ManualClock`] and move it with [`ManualClock::advance`], then run the due timeouts with
//! [`AppState::run_due_timeouts`](crate::AppState::run_due_timeouts): no real waiting, no
//! timed assertion.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

use crate::store::UnixMs;

/// A boxed future, as [`Clock::sleep_until`] returns it (the trait stays dyn-compatible).
pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Milliseconds since the Unix epoch, and a way to wait for one.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> u64;

    /// Resolves once [`Clock::now_ms`] has reached `deadline_ms` (at once if it has).
    fn sleep_until(&self, deadline_ms: u64) -> Sleep<'_>;
}

/// `ms` from a [`Clock`] as the store's [`UnixMs`] (saturating: `i64::MAX` ms is 292 million
/// years away).
pub(crate) fn to_unix_ms(ms: u64) -> UnixMs {
    UnixMs(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// A stored [`UnixMs`] back in a [`Clock`]'s terms (a time before 1970 reads as 0).
pub(crate) fn from_unix_ms(at: UnixMs) -> u64 {
    u64::try_from(at.0).unwrap_or(0)
}

/// The wall clock. A clock before 1970 reads as 0.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn sleep_until(&self, deadline_ms: u64) -> Sleep<'_> {
        Box::pin(async move {
            // The wall clock may be stepped while we sleep: check again on waking.
            loop {
                let now = self.now_ms();
                if now >= deadline_ms {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(deadline_ms - now)).await;
            }
        })
    }
}

/// A clock that moves only when told to, for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicU64,
    moved: Notify,
}

impl ManualClock {
    pub fn new(start_ms: u64) -> ManualClock {
        ManualClock {
            now_ms: AtomicU64::new(start_ms),
            moved: Notify::new(),
        }
    }

    /// Moves the clock forward by `by` and wakes every sleeper whose deadline has come.
    pub fn advance(&self, by: Duration) {
        let by_ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        let _ = self
            .now_ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                Some(now.saturating_add(by_ms))
            });
        self.moved.notify_waiters();
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }

    fn sleep_until(&self, deadline_ms: u64) -> Sleep<'_> {
        Box::pin(async move {
            loop {
                // Registered before the check, so an advance between the two is not missed.
                let moved = self.moved.notified();
                tokio::pin!(moved);
                moved.as_mut().enable();
                if self.now_ms() >= deadline_ms {
                    return;
                }
                moved.await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn a_manual_clock_wakes_its_sleepers_only_at_their_deadline() {
        let clock = Arc::new(ManualClock::new(1_000));
        let sleeper = {
            let clock = Arc::clone(&clock);
            tokio::spawn(async move { clock.sleep_until(31_000).await })
        };
        clock.advance(Duration::from_millis(29_999));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        assert_eq!(clock.now_ms(), 30_999);
        clock.advance(Duration::from_millis(1));
        sleeper.await.unwrap();
        // A deadline already past resolves at once.
        clock.sleep_until(5).await;
    }

    #[tokio::test]
    async fn the_system_clock_reads_the_epoch() {
        let now = SystemClock.now_ms();
        assert!(now > 1_700_000_000_000);
        SystemClock.sleep_until(now).await;
    }
}

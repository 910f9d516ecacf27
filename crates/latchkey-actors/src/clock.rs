//! Time and randomness: the `Clock` and `Entropy` a `Core` is given through `CoreConfig`,
//! their real implementations (the only reads of the wall clock and the OS CSPRNG) and
//! `ManualClock`, which moves only when told. The domain receives both as plain values.
//!
//! Must not: be read around the `Core`. Code that has a `Core` asks `core.now()`; only
//! tools without one (offline admin commands) call [`now`].

use latchkey_domain::Timestamp;
use rand::RngCore;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A source of time: wall time for what is stored and compared with `expires_at`, and a
/// monotonic reading for rate limiters.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now, as unix milliseconds.
    fn now(&self) -> Timestamp;

    /// Monotonic time since the clock was made (rate limiters measure with this).
    fn elapsed(&self) -> Duration;

    /// For a clock that jumps (a [`ManualClock`]): a receiver that changes on every move,
    /// so a waiter re-checks its deadline. `None` for a clock that simply runs.
    fn moves(&self) -> Option<watch::Receiver<u64>> {
        None
    }
}

/// A shared clock.
pub type SharedClock = Arc<dyn Clock>;

/// The real clock: the system's wall time and a monotonic `Instant`.
#[derive(Debug)]
pub struct SystemClock {
    start: Instant,
}

impl SystemClock {
    /// A system clock, as a shared one.
    pub fn shared() -> SharedClock {
        Arc::new(Self::default())
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self {
            start: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        now()
    }

    fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

/// A clock that stands still until [`ManualClock::advance`] moves it: tests (and
/// `latchkey serve --test-clock`) use it to make time pass without waiting.
#[derive(Debug)]
pub struct ManualClock {
    start: Timestamp,
    /// Milliseconds moved so far.
    offset_ms: AtomicU64,
    moved: watch::Sender<u64>,
}

impl ManualClock {
    /// A manual clock that reads `start` until moved.
    pub fn new(start: Timestamp) -> Self {
        Self {
            start,
            offset_ms: AtomicU64::new(0),
            moved: watch::Sender::new(0),
        }
    }

    /// A manual clock starting at the real time.
    pub fn starting_now() -> Self {
        Self::new(now())
    }

    /// Moves the clock forward by `by` (milliseconds; anything smaller is dropped) and
    /// wakes every waiter.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        let total = self
            .offset_ms
            .fetch_add(ms, Ordering::SeqCst)
            .saturating_add(ms);
        self.moved.send_replace(total);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        let offset = i64::try_from(self.offset_ms.load(Ordering::SeqCst)).unwrap_or(i64::MAX);
        Timestamp(self.start.0.saturating_add(offset))
    }

    fn elapsed(&self) -> Duration {
        Duration::from_millis(self.offset_ms.load(Ordering::SeqCst))
    }

    fn moves(&self) -> Option<watch::Receiver<u64>> {
        Some(self.moved.subscribe())
    }
}

/// A source of secret random bytes (token secrets, challenge nonces).
pub trait Entropy: Send + Sync + fmt::Debug {
    /// 32 random bytes.
    fn random32(&self) -> [u8; 32];
}

/// The operating system's CSPRNG.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn random32(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut b);
        b
    }
}

/// The system's wall time, as unix milliseconds: for tools that run without a `Core`
/// (offline admin commands). Everything with a `Core` reads its injected clock instead.
pub fn now() -> Timestamp {
    Timestamp(latchkey_store::clock::system_now_ms())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Timestamp(1_000));
        let mut moves = c.moves().unwrap();
        assert_eq!(c.now(), Timestamp(1_000));
        assert_eq!(c.elapsed(), Duration::ZERO);
        c.advance(Duration::from_secs(2));
        assert_eq!(c.now(), Timestamp(3_000));
        assert_eq!(c.elapsed(), Duration::from_secs(2));
        assert!(moves.has_changed().unwrap());
        assert_eq!(*moves.borrow_and_update(), 2_000);
    }
}

//! The wall clock the journal stamps `recorded_at` with, and the one read of the system's
//! wall time in the workspace. The journal takes a [`WallClock`] in `StoreOptions`: the
//! system clock by default, or the server's injected clock, so that a manual test clock
//! moves `recorded_at` together with every `now` the deciders see.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of unix milliseconds.
pub type WallClock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system's wall time as unix milliseconds (0 before 1970, which no clock here reports).
pub fn system_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The system clock as a [`WallClock`].
pub fn system() -> WallClock {
    Arc::new(system_now_ms)
}

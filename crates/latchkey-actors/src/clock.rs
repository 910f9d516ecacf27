//! The wall clock and the OS CSPRNG: the only place the actors read either. The domain
//! receives both as plain values.

use latchkey_domain::Timestamp;
use rand::RngCore;
use std::time::{SystemTime, UNIX_EPOCH};

/// Now, as unix milliseconds.
pub fn now() -> Timestamp {
    Timestamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
    )
}

/// 32 bytes from the operating system's CSPRNG.
pub fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

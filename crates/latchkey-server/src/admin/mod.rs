//! Admin reads and writes over the event log, shared by `latchkey admin` (offline, on a
//! data dir) and `/api/admin/*` (online): the same documents either way.
//!
//! - `json`: events as JSON (times RFC 3339, hashes hex, never a secret).
//! - `read`: log pages, streams, stats, verify, and the `state user` document.
//! - `paircode_json`: pairing-code events as JSON.
//! - `pairing_codes`: offline mint, list and revoke of pairing codes.
//! - `write`: offline management (add, disable/enable user, revoke token) through the
//!   domain deciders: fold, decide, append with the expected version.

pub mod device_json;
pub mod json;
pub mod paircode_json;
pub mod pairing_codes;
pub mod read;
pub mod write;

//! # latchkey-admin
//!
//! The event log's tooling, shared by `latchkey admin` (offline, on a data dir) and the
//! server's `/api/admin/*` (online): the same documents either way.
//!
//! **Architecture Invariant:** everything here holds the store through the `EventStore`
//! trait, writes only through the actors' entity path (`entity::execute_blocking`: the
//! same deciders, load, append and evolve as the server), and looks users and tokens up
//! in the read models, never by scanning the log. It parses no HTTP.
//!
//! # Layout
//! - `json`: events as JSON, the one place: admin documents and WebSocket frame data, and
//!   the wire names of domain enums (times RFC 3339, hashes hex, never a secret).
//! - `read`: log pages, streams, stats, verify, `seq_at`, and the `state user` document.
//! - `write`: offline management (add, disable/enable user, revoke token).
//! - `pairing_codes`: offline mint, list and revoke of admin pairing codes.
//! - `tools`: replay, rebuild, export and import of a whole log.
//! - `backup`: a hot backup, the log as of one seq, while the server appends.

pub mod backup;
pub mod json;
pub mod pairing_codes;
pub mod read;
pub mod tools;
pub mod write;

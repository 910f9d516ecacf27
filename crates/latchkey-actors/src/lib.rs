//! # latchkey-actors
//!
//! The actix side of latchkey (DESIGN §5): one actor per entity (user, pairing, room)
//! that decides on commands and appends to the log, registries that spawn, rehydrate and
//! passivate them across arbiters, the read models the projector maintains, the expiry
//! sweeper, and `Core`, the one facade the HTTP layer calls.
//!
//! **Architecture Invariant:** nothing here parses HTTP or JSON, and no business rule
//! lives here: rules are the domain's `decide`. An entity is load -> fold -> decide ->
//! append -> evolve.
//!
//! # Layout
//! - `kind`: ties each domain decider to its stream kind and the log's `Event`.
//! - `entity`: the generic entity actor (`Entity<D>`) and its messages.
//! - `registry`: `id -> Addr` per kind, sharded over arbiters; spawn, rehydrate, retry.
//! - `readmodel`: the projections (users, tokens, expiry index) and their queries.
//! - `tokenindex`: the live tokens in memory (SHA-256 -> what auth needs), kept by the
//!   tokens projection before each chunk's `applied_seq`, so auth does no I/O.
//! - `roommodel`: the rooms projection: rooms, membership intervals, messages.
//! - `rooms`: room operations on `Core`, history filtered by the visibility rule.
//! - `hub`: the fanout hub: routes each applied room event to the connections that may
//!   see it, by membership; closes revoked credentials' connections.
//! - `sweeper`: emits `ChallengeExpired`, `DeviceAuthorizationExpired` and `TokenExpired`
//!   for what has lapsed.
//! - `erasure`: a legacy message's deletion tombstones its post, whose envelope holds
//!   the body.
//! - `compactor`: compaction over the store (the domain's drop rule, tombstones in
//!   chunks) and the server's schedule for it, run by the sweeper.
//! - `core`: `Core`: start-up, shutdown, registries, clock, `wait_applied`.
//! - `config`: `CoreConfig` (with the injected clock and entropy), `Registration`,
//!   `IpRetention`.
//! - `error`: `CoreError` and the one mapping of every domain error into it.
//! - `signin`: challenges (issue, load, redeem) and sign-in on `Core`.
//! - `auth`: bearer credentials on `Core` (authenticate, touch, logout, me).
//! - `credentials`: token and key management on `Core` (PATs, revoke, add/remove keys).
//! - `device`: the RFC 8628 device flow on `Core`: request, poll, cancel, prove a key,
//!   and approval by a signed-in user.
//! - `devicemodel`: the device-code projection: pending requests by user code, every
//!   request by device code, and the sweeper's due list.
//! - `pairing_codes`: admin pairing codes on `Core`: mint, list, revoke, and a device's
//!   one-time redemption for a device token.
//! - `codemodel`: the pairing-code projection: pending codes by hash, the admins' list,
//!   and the sweeper's due list.
//! - `web_session`: 15-minute browser sessions for the `/device` approval page.
//! - `tickets`: single-use WebSocket tickets (30 s, bound to a token), in memory on one
//!   node, or in the store's `TicketStore` on a shared log.
//! - `clock`: the `Clock` and `Entropy` traits, the system clock and the OS CSPRNG (the
//!   only reads of either), and `ManualClock` for tests.
//! - `close`: the WebSocket close codes the hub sends (the wire's vocabulary, re-exported
//!   by `latchkey-proto`'s `ws` module).

pub mod auth;
pub mod clock;
pub mod close;
pub mod cluster;
pub mod codemodel;
pub mod compactor;
pub mod config;
pub mod core;
pub mod credentials;
pub mod device;
pub mod devicemodel;
pub mod entity;
pub mod erasure;
pub mod error;
pub mod hub;
pub mod kind;
pub mod pairing_codes;
pub mod readmodel;
pub mod registry;
pub mod roommodel;
pub mod rooms;
pub mod signin;
pub mod sweeper;
pub mod tickets;
pub mod tokenindex;
pub mod web_session;

pub use crate::auth::Auth;
pub use crate::config::{CoreConfig, IpRetention, Registration};
pub use crate::core::Core;
pub use crate::error::CoreError;
pub use crate::signin::{PendingSignIn, SignIn, SignedIn};

#[cfg(test)]
mod tests;

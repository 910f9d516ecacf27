//! # latchkey-domain
//!
//! The pure core of latchkey: identifiers, events, commands and the `decide`/`evolve`
//! deciders of each aggregate, the token and challenge formats, and the visibility rule.
//!
//! **Architecture Invariant:** this crate knows nothing about actix, sled, HTTP or the
//! clock. Time, client IPs and random values arrive as arguments: each command carries its
//! own `now`, IP and caller-made ids and random bytes as fields (see `decider`).
//!
//! # Layout
//! - `ids`: ids, stream names, timestamps, actors.
//! - `events`: every stored event type.
//! - `compaction`: what compaction may drop from the log (`DropRule`).
//! - `decider`: the `Decider` trait, `fold`, and the given/when/then test helpers
//!   (`decider::testing`, public with the `testing` feature).
//! - `user`: the User aggregate: keys, tokens, disabling.
//! - `pairing`: the Pairing aggregate: SSH challenges, consumed by their first signature.
//! - `device`: the device authorization part of the Pairing aggregate (RFC 8628).
//! - `paircode`: the admin pairing-code part of the Pairing aggregate.
//! - `usercode`: the RFC 8628 user code and the key-enrollment comparison code.
//! - `room`: the Room aggregate: members and posts.
//! - `visibility`: the visibility rule (`may_see`) and the membership intervals it reads.
//! - `token`: the bearer token format (prefix, base62, CRC32), its hash and redaction.
//! - `challenge`: the exact challenge message bytes, built and parsed.
//! - `sshkey`: the key-type allowlist, fingerprints and SSHSIG verification.
//! - `handle`: handle syntax and derivation from a key comment.

pub mod challenge;
pub mod compaction;
pub mod decider;
pub mod device;
pub mod events;
pub mod handle;
pub mod ids;
pub mod paircode;
pub mod pairing;
pub mod room;
pub mod sshkey;
pub mod token;
pub mod user;
pub mod usercode;
pub mod visibility;

pub use decider::{evolve_all, fold, AggregateEvent, Decider};
pub use events::*;
pub use ids::*;
pub use pairing::{PairingCommand, PairingDecider, PairingError, PairingState};
pub use room::{RoomCommand, RoomDecider, RoomError, RoomState};
pub use user::{UserCommand, UserDecider, UserError, UserState};
pub use visibility::{may_see, MembershipInterval, RoomMembership};

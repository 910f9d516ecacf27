//! Identifiers and small value types shared by every aggregate: ids, timestamps, actors.
//!
//! Must not: read the clock or make random values. Callers build ids from values they made.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub Uuid);

        impl $name {
            /// The stream this id names, e.g. `user/<uuid>`.
            pub fn stream(&self) -> StreamId {
                StreamId(format!(concat!($prefix, "/{}"), self.0))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }
    };
}

uuid_id!(
    /// A user: the `user/<uuid>` stream.
    UserId,
    "user"
);
uuid_id!(
    /// A pairing (one SSH challenge or one device authorization): the `pairing/<uuid>` stream.
    PairingId,
    "pairing"
);
uuid_id!(
    /// A room: the `room/<uuid>` stream.
    RoomId,
    "room"
);

/// A token's public id (the REST `token_id`); never the secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TokenId(pub Uuid);

/// A registered key's id (the REST `key_id`). A fingerprint is never a path segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KeyId(pub Uuid);

/// A posted message's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MessageId(pub Uuid);

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The name of an event stream: `<kind>/<uuid>`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StreamId(pub String);

impl StreamId {
    /// The kind part before the `/` (`user`, `pairing`, `room`).
    pub fn kind(&self) -> &str {
        self.0.split('/').next().unwrap_or("")
    }

    /// The stream name as a str.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The uuid after the `/`, when the name is `<kind>/<uuid>`.
    pub fn uuid(&self) -> Option<uuid::Uuid> {
        self.0
            .split_once('/')
            .and_then(|(_, id)| uuid::Uuid::parse_str(id).ok())
    }

    /// The user this stream belongs to, if it is a `user/<uuid>` stream.
    pub fn user(&self) -> Option<UserId> {
        (self.kind() == "user")
            .then(|| self.uuid().map(UserId))
            .flatten()
    }

    /// The room this stream belongs to, if it is a `room/<uuid>` stream.
    pub fn room(&self) -> Option<RoomId> {
        (self.kind() == "room")
            .then(|| self.uuid().map(RoomId))
            .flatten()
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Milliseconds since the Unix epoch, UTC. The domain never reads the clock: callers pass it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Builds a timestamp from unix seconds.
    pub fn from_secs(secs: i64) -> Self {
        Self(secs.saturating_mul(1000))
    }

    /// Whole unix seconds (rounded down).
    pub fn as_secs(&self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// This time plus a number of seconds, saturating.
    pub fn plus_secs(&self, secs: i64) -> Self {
        Self(self.0.saturating_add(secs.saturating_mul(1000)))
    }
}

/// Who caused an event: recorded in every envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Actor {
    /// The service itself (sweeper, start-up).
    System,
    /// A signed-in user acting for themselves.
    User(UserId),
    /// An admin acting on someone else's state.
    Admin(UserId),
    /// A client that is not signed in yet (a challenge, a sign-in).
    Anonymous,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::System => f.write_str("system"),
            Actor::User(u) => write!(f, "user:{u}"),
            Actor::Admin(u) => write!(f, "admin:{u}"),
            Actor::Anonymous => f.write_str("anonymous"),
        }
    }
}

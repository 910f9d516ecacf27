//! Single-use WebSocket tickets on a log shared by several nodes (DESIGN §11): the
//! [`TicketStore`] the actors mint into and redeem from, and a ticket's stored value. The
//! sled store has none (its one node keeps tickets in memory); JetStream keeps them in a KV
//! bucket (`nats::tickets`), so a ticket minted on one node opens a socket on any node, and
//! a ticket spent on one node is spent on all. Must not: see a raw ticket; a ticket is
//! stored under the SHA-256 of its value only.

use crate::error::StoreResult;
use latchkey_domain::{Timestamp, TokenId, UserId};
use std::future::Future;
use std::pin::Pin;
use uuid::Uuid;

/// A ticket's lifetime in seconds (also the KV bucket's max age).
pub const TICKET_TTL_SECS: i64 = 30;

/// What a ticket stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    /// The user.
    pub user_id: UserId,
    /// The token that minted it: revoking that token closes the connection.
    pub token_id: TokenId,
    /// When the ticket lapses.
    pub expires_at: Timestamp,
}

/// The stored value's length: user id, token id, expiry (unix ms, big-endian).
const ENCODED_LEN: usize = 40;

impl Ticket {
    /// The stored value: 16 bytes of user id, 16 of token id, 8 of expiry (big-endian ms).
    pub fn encode(&self) -> [u8; ENCODED_LEN] {
        let mut b = [0u8; ENCODED_LEN];
        b[..16].copy_from_slice(self.user_id.0.as_bytes());
        b[16..32].copy_from_slice(self.token_id.0.as_bytes());
        b[32..].copy_from_slice(&self.expires_at.0.to_be_bytes());
        b
    }

    /// Reads a stored value back; `None` when it is not one.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let b: &[u8; ENCODED_LEN] = bytes.try_into().ok()?;
        let uuid = |range: std::ops::Range<usize>| {
            <[u8; 16]>::try_from(&b[range]).ok().map(Uuid::from_bytes)
        };
        Some(Self {
            user_id: UserId(uuid(0..16)?),
            token_id: TokenId(uuid(16..32)?),
            expires_at: Timestamp(i64::from_be_bytes(b[32..].try_into().ok()?)),
        })
    }
}

/// The future of a [`TicketStore`] call.
pub type TicketFuture<T> = Pin<Box<dyn Future<Output = StoreResult<T>> + Send>>;

/// Tickets every node of a shared log sees, keyed by the SHA-256 of the raw ticket.
/// Unreachable storage is `StoreError::Unavailable` (a 503 with `Retry-After`).
pub trait TicketStore: Send + Sync {
    /// Stores a ticket; resolves once every node can redeem it.
    fn put(&self, hash: [u8; 32], ticket: Ticket) -> TicketFuture<()>;

    /// Takes a ticket out for good: `Some` for exactly one caller across every node, even
    /// when several redeem it at once; `None` when it is unknown, spent or dropped.
    fn take(&self, hash: [u8; 32]) -> TicketFuture<Option<Ticket>>;

    /// Drops a ticket (its user minted too many); no error when it is already gone.
    fn forget(&self, hash: [u8; 32]) -> TicketFuture<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_reads_back_as_written() {
        let t = Ticket {
            user_id: UserId(Uuid::from_u128(1)),
            token_id: TokenId(Uuid::from_u128(u128::MAX - 7)),
            expires_at: Timestamp(-5),
        };
        assert_eq!(Ticket::decode(&t.encode()), Some(t));
        assert_eq!(Ticket::decode(&t.encode()[..39]), None);
    }
}

//! WebSocket tickets (`lkw_`): single use, 30 s, bound to the token that minted them. They
//! live in memory only: a ticket is a bootstrap value for one connection, not state worth
//! an event, and a restart simply makes clients ask for a new one.

use latchkey_domain::{Timestamp, TokenId, UserId};
use std::collections::HashMap;
use std::sync::Mutex;

/// A ticket's lifetime in seconds.
pub const TICKET_TTL_SECS: i64 = 30;

/// Most outstanding tickets; minting beyond this first drops the lapsed ones, then refuses.
const MAX_TICKETS: usize = 100_000;

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

/// Outstanding tickets by SHA-256 of their raw value.
#[derive(Default)]
pub struct Tickets {
    by_hash: Mutex<HashMap<[u8; 32], Ticket>>,
}

impl Tickets {
    /// Stores a ticket; false when the store is full of live tickets.
    pub fn insert(&self, hash: [u8; 32], ticket: Ticket, now: Timestamp) -> bool {
        let Ok(mut map) = self.by_hash.lock() else {
            return false;
        };
        if map.len() >= MAX_TICKETS {
            map.retain(|_, t| t.expires_at > now);
            if map.len() >= MAX_TICKETS {
                return false;
            }
        }
        map.insert(hash, ticket);
        true
    }

    /// Takes a ticket out (single use); `None` when unknown, used or lapsed.
    pub fn redeem(&self, hash: &[u8; 32], now: Timestamp) -> Option<Ticket> {
        let ticket = self.by_hash.lock().ok()?.remove(hash)?;
        (ticket.expires_at > now).then_some(ticket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn a_ticket_is_single_use_and_lapses() {
        let t = Tickets::default();
        let ticket = Ticket {
            user_id: UserId(Uuid::nil()),
            token_id: TokenId(Uuid::nil()),
            expires_at: Timestamp(30_000),
        };
        assert!(t.insert([1; 32], ticket, Timestamp(0)));
        assert_eq!(t.redeem(&[1; 32], Timestamp(1)), Some(ticket));
        assert_eq!(t.redeem(&[1; 32], Timestamp(1)), None, "single use");
        assert!(t.insert([2; 32], ticket, Timestamp(0)));
        assert_eq!(t.redeem(&[2; 32], Timestamp(30_000)), None, "lapsed");
    }
}

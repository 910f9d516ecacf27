//! WebSocket tickets (`lkw_`): single use, 30 s, bound to the token that minted them. A
//! ticket is a bootstrap value for one connection, not state worth an event, and a restart
//! simply makes clients ask for a new one. On sled (one node) they live in this in-memory
//! store only. On a shared log the store's `TicketStore` (a JetStream KV bucket) holds them
//! for every node, and redeems each once across all nodes (`Core::redeem_ws_ticket`); this
//! store then only keeps each user's tickets minted on this node, oldest first, so the
//! per-user cap holds per node.

use latchkey_domain::{Timestamp, UserId};
pub use latchkey_store::tickets::{Ticket, TICKET_TTL_SECS};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Most outstanding tickets; minting beyond this first drops the lapsed ones, then refuses.
const MAX_TICKETS: usize = 100_000;

/// Most outstanding tickets of one user; minting one more evicts that user's oldest, so a
/// client that asks again always gets a working ticket and no user can fill the store.
pub const MAX_TICKETS_PER_USER: usize = 32;

/// What [`Tickets::insert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// Stored; `evicted` is the user's oldest ticket it pushed out, if any.
    Stored {
        /// The SHA-256 of the evicted ticket.
        evicted: Option<[u8; 32]>,
    },
    /// The store is full of live tickets.
    Full,
}

/// Outstanding tickets by SHA-256 of their raw value, and each user's, oldest first.
#[derive(Default)]
pub struct Tickets {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    by_hash: HashMap<[u8; 32], Ticket>,
    by_user: HashMap<UserId, VecDeque<[u8; 32]>>,
}

impl Inner {
    fn remove(&mut self, hash: &[u8; 32]) -> Option<Ticket> {
        let ticket = self.by_hash.remove(hash)?;
        if let Some(list) = self.by_user.get_mut(&ticket.user_id) {
            list.retain(|h| h != hash);
            if list.is_empty() {
                self.by_user.remove(&ticket.user_id);
            }
        }
        Some(ticket)
    }

    fn drop_lapsed(&mut self, now: Timestamp) {
        self.by_hash.retain(|_, t| t.expires_at > now);
        let by_hash = &self.by_hash;
        self.by_user.retain(|_, list| {
            list.retain(|h| by_hash.contains_key(h));
            !list.is_empty()
        });
    }
}

impl Tickets {
    /// Stores a ticket, evicting its user's oldest when they hold
    /// [`MAX_TICKETS_PER_USER`].
    pub fn insert(&self, hash: [u8; 32], ticket: Ticket, now: Timestamp) -> Inserted {
        let Ok(mut inner) = self.inner.lock() else {
            return Inserted::Full;
        };
        if inner.by_hash.len() >= MAX_TICKETS {
            inner.drop_lapsed(now);
            if inner.by_hash.len() >= MAX_TICKETS {
                return Inserted::Full;
            }
        }
        let held = inner.by_user.get(&ticket.user_id).map_or(0, VecDeque::len);
        let mut evicted = None;
        if held >= MAX_TICKETS_PER_USER {
            evicted = inner
                .by_user
                .get_mut(&ticket.user_id)
                .and_then(VecDeque::pop_front);
            if let Some(oldest) = &evicted {
                inner.remove(oldest);
            }
        }
        inner.by_hash.insert(hash, ticket);
        inner
            .by_user
            .entry(ticket.user_id)
            .or_default()
            .push_back(hash);
        Inserted::Stored { evicted }
    }

    /// Takes a ticket out (single use); `None` when unknown, used, evicted or lapsed.
    pub fn redeem(&self, hash: &[u8; 32], now: Timestamp) -> Option<Ticket> {
        let ticket = self.inner.lock().ok()?.remove(hash)?;
        (ticket.expires_at > now).then_some(ticket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_domain::TokenId;
    use uuid::Uuid;

    fn stored(i: Inserted) -> bool {
        matches!(i, Inserted::Stored { .. })
    }

    #[test]
    fn a_ticket_is_single_use_and_lapses() {
        let t = Tickets::default();
        let ticket = Ticket {
            user_id: UserId(Uuid::nil()),
            token_id: TokenId(Uuid::nil()),
            expires_at: Timestamp(30_000),
        };
        assert!(stored(t.insert([1; 32], ticket, Timestamp(0))));
        assert_eq!(t.redeem(&[1; 32], Timestamp(1)), Some(ticket));
        assert_eq!(t.redeem(&[1; 32], Timestamp(1)), None, "single use");
        assert!(stored(t.insert([2; 32], ticket, Timestamp(0))));
        assert_eq!(t.redeem(&[2; 32], Timestamp(30_000)), None, "lapsed");
    }

    #[test]
    fn a_user_holds_at_most_32_tickets_and_the_oldest_goes_first() {
        let t = Tickets::default();
        let ticket = |user: u128| Ticket {
            user_id: UserId(Uuid::from_u128(user)),
            token_id: TokenId(Uuid::nil()),
            expires_at: Timestamp(30_000),
        };
        for i in 0..MAX_TICKETS_PER_USER as u8 {
            let got = t.insert([i; 32], ticket(1), Timestamp(0));
            assert_eq!(got, Inserted::Stored { evicted: None });
        }
        let last = MAX_TICKETS_PER_USER as u8;
        let got = t.insert([last; 32], ticket(1), Timestamp(0));
        assert_eq!(
            got,
            Inserted::Stored {
                evicted: Some([0; 32])
            },
            "the oldest goes"
        );
        assert!(stored(t.insert([200; 32], ticket(2), Timestamp(0))));
        assert_eq!(
            t.redeem(&[0; 32], Timestamp(1)),
            None,
            "the oldest was evicted"
        );
        assert_eq!(t.redeem(&[1; 32], Timestamp(1)), Some(ticket(1)));
        assert_eq!(t.redeem(&[last; 32], Timestamp(1)), Some(ticket(1)));
        assert_eq!(
            t.redeem(&[200; 32], Timestamp(1)),
            Some(ticket(2)),
            "others keep theirs"
        );
    }
}

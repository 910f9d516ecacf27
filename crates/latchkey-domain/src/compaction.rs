//! What compaction may drop from the log (DESIGN §15): a pure rule over events in log
//! order, knowing nothing of how they are stored.
//!
//! Two kinds of event go, and nothing else:
//! - every event of a **terminal pairing stream** (a challenge verified, rejected or
//!   expired; a device authorization denied, cancelled, redeemed or expired; a pairing
//!   code redeemed, revoked or expired: `PairingDecider::is_terminal`) whose terminal
//!   event was recorded before the cutoff. A terminal stream takes no further command, and
//!   no read model keeps a row for it, so nothing reads these events again.
//! - **superseded `TokenUsed`** events: of the `TokenUsed` events of one token recorded
//!   before the cutoff, all but the newest. `last_used_at` (the only thing `TokenUsed`
//!   sets, in the user state and the tokens read model) comes out the same.
//!
//! Both look only at events before the cutoff, so a state as of the last event before the
//! cutoff, or any later seq, is exactly what it was: [`DropRule::exact_from`] is that seq.

use crate::{Decider, Event, PairingDecider, PairingState, StreamId, Timestamp, UserEvent};
use std::collections::HashMap;
use uuid::Uuid;

/// The `why` of a tombstone left by a terminal pairing stream.
pub const WHY_PAIRING: &str = "pairing";

/// The `why` of a tombstone left by a superseded `TokenUsed`.
pub const WHY_TOKEN_USED: &str = "token_used";

/// Finds what may be dropped, fed the log's live events in seq order.
#[derive(Debug)]
pub struct DropRule {
    before: Timestamp,
    /// Pairing streams not yet terminal: their seqs so far and their state.
    open: HashMap<Uuid, (Vec<u64>, PairingState)>,
    /// Per token, the seq of its newest `TokenUsed` so far.
    newest_use: HashMap<Uuid, u64>,
    /// The last event fed before the cutoff.
    last_seq: u64,
    /// Seqs of the events of terminal pairing streams to drop.
    pub pairing: Vec<u64>,
    /// How many pairing streams those are.
    pub pairing_streams: u64,
    /// Seqs of superseded `TokenUsed` events to drop.
    pub token_used: Vec<u64>,
}

impl DropRule {
    /// A rule that drops what ended before `before`.
    pub fn new(before: Timestamp) -> Self {
        Self {
            before,
            open: HashMap::new(),
            newest_use: HashMap::new(),
            last_seq: 0,
            pairing: Vec::new(),
            pairing_streams: 0,
            token_used: Vec::new(),
        }
    }

    /// Feeds the next live event. Returns `false` once an event at or after the cutoff is
    /// seen: nothing from there on can be dropped, so the caller may stop feeding.
    pub fn observe(
        &mut self,
        seq: u64,
        stream: &StreamId,
        recorded_at: Timestamp,
        event: &Event,
    ) -> bool {
        if recorded_at >= self.before {
            return false;
        }
        self.last_seq = seq;
        match event {
            Event::Pairing(e) => {
                let Some(id) = stream.uuid() else { return true };
                let (mut seqs, state) = self.open.remove(&id).unwrap_or_default();
                seqs.push(seq);
                let state = PairingDecider::evolve(state, e);
                if PairingDecider::is_terminal(&state) {
                    self.pairing.extend(seqs);
                    self.pairing_streams += 1;
                } else {
                    self.open.insert(id, (seqs, state));
                }
            }
            Event::User(UserEvent::TokenUsed { token_id, .. }) => {
                if let Some(older) = self.newest_use.insert(token_id.0, seq) {
                    self.token_used.push(older);
                }
            }
            _ => {}
        }
        true
    }

    /// The first seq whose as-of state nothing dropped by this rule can touch: the last
    /// event fed before the cutoff. Every dropped event, and every `TokenUsed` that
    /// supersedes one, is at or before it.
    pub fn exact_from(&self) -> u64 {
        self.last_seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sshkey::tests::ed25519_public;
    use crate::{ChallengePurpose, PairingEvent, PairingId, RejectReason, TokenId, UserId};

    fn pairing(id: Uuid) -> StreamId {
        PairingId(id).stream()
    }

    fn issued(id: Uuid) -> Event {
        Event::Pairing(PairingEvent::ChallengeIssued {
            challenge_id: PairingId(id),
            server: "s".into(),
            key: ed25519_public(1),
            nonce: [0; 32],
            purpose: ChallengePurpose::SignIn,
            issued_at: Timestamp(0),
            expires_at: Timestamp(60_000),
            ip: None,
        })
    }

    fn used(token: Uuid) -> Event {
        Event::User(UserEvent::TokenUsed {
            token_id: TokenId(token),
            at: Timestamp(0),
        })
    }

    /// Feeds events at the given times, seqs from 1.
    fn feed(rule: &mut DropRule, events: &[(&StreamId, i64, Event)]) {
        for (i, (s, at, e)) in events.iter().enumerate() {
            rule.observe(i as u64 + 1, s, Timestamp(*at), e);
        }
    }

    #[test]
    fn a_terminal_pairing_before_the_cutoff_goes_whole() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let (sa, sb) = (pairing(a), pairing(b));
        let user = UserId(Uuid::new_v4()).stream();
        let verified = Event::Pairing(PairingEvent::SignatureVerified {
            user_id: UserId(Uuid::new_v4()),
            at: Timestamp(1),
        });
        let rejected = Event::Pairing(PairingEvent::SignatureRejected {
            reason: RejectReason::InvalidSignature,
            at: Timestamp(1),
        });
        let mut rule = DropRule::new(Timestamp(100));
        feed(
            &mut rule,
            &[
                (&sa, 1, issued(a)),
                (&sb, 2, issued(b)),
                (&user, 3, used(Uuid::new_v4())),
                (&sa, 4, verified),
                (&sb, 100, rejected),
            ],
        );
        assert_eq!(rule.pairing, vec![1, 4]);
        assert_eq!(rule.pairing_streams, 1);
        assert!(rule.token_used.is_empty());
        // b ended at the cutoff: kept; states are exact from the last event before it.
        assert_eq!(rule.exact_from(), 4);
    }

    #[test]
    fn an_open_pairing_is_kept() {
        let a = Uuid::new_v4();
        let mut rule = DropRule::new(Timestamp(100));
        feed(&mut rule, &[(&pairing(a), 1, issued(a))]);
        assert!(rule.pairing.is_empty());
        assert_eq!(rule.exact_from(), 1);
    }

    #[test]
    fn every_terminal_state_counts() {
        let ends = [
            PairingEvent::ChallengeExpired { at: Timestamp(1) },
            PairingEvent::SignatureRejected {
                reason: RejectReason::InvalidSignature,
                at: Timestamp(1),
            },
        ];
        for end in ends {
            let a = Uuid::new_v4();
            let mut rule = DropRule::new(Timestamp(100));
            feed(
                &mut rule,
                &[
                    (&pairing(a), 1, issued(a)),
                    (&pairing(a), 2, Event::Pairing(end)),
                ],
            );
            assert_eq!(rule.pairing, vec![1, 2]);
        }
    }

    #[test]
    fn only_the_newest_use_of_each_token_before_the_cutoff_stays() {
        let user = UserId(Uuid::new_v4()).stream();
        let (t1, t2) = (Uuid::new_v4(), Uuid::new_v4());
        let mut rule = DropRule::new(Timestamp(100));
        feed(
            &mut rule,
            &[
                (&user, 1, used(t1)),
                (&user, 2, used(t2)),
                (&user, 3, used(t1)),
                (&user, 4, used(t1)),
                (&user, 150, used(t2)),
            ],
        );
        // t1: 1 and 3 are superseded by 4; t2's only use before the cutoff (2) stays, even
        // though a later use (5) supersedes it: that one is past the cutoff.
        assert_eq!(rule.token_used, vec![1, 3]);
        assert_eq!(rule.exact_from(), 4);
    }
}

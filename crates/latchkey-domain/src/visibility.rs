//! The visibility rule, as one function ([`may_see`]), and the membership intervals it
//! reads ([`RoomMembership`]). REST history, WebSocket live delivery and WebSocket resume
//! all ask this module, and nothing else, whether a user may see a room event.
//!
//! Must not: hold the rule anywhere else, or know where intervals are stored. Intervals
//! are built by [`membership_change`] alone: [`RoomMembership`] (the fanout hub's copy in
//! memory) and the rooms read model (its rows) both apply it to the room's events in seq
//! order.

use crate::events::RoomEvent;
use crate::ids::UserId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One stretch of membership, in global seqs, inclusive at both ends: from the event that
/// added the user (`RoomCreated` for the owner, `MemberJoined` otherwise) to the event that
/// removed them (`MemberLeft`), so a leaver still sees their own departure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MembershipInterval {
    /// Seq of the event that made the user a member.
    pub joined_seq: u64,
    /// Seq of the event that ended it; `None` while still a member.
    pub left_seq: Option<u64>,
}

impl MembershipInterval {
    /// Whether the user was a member at `seq`.
    pub fn contains(&self, seq: u64) -> bool {
        self.joined_seq <= seq && self.left_seq.is_none_or(|left| seq <= left)
    }
}

/// **The visibility rule.** User `viewer` may see room event `E` (at `event_seq`) if and
/// only if `viewer` was a member of `E`'s room at `E`'s seq, and, when `E` has
/// `target_user_ids`, `viewer` is one of them or is `E`'s sender.
///
/// `viewer_intervals` are the viewer's membership intervals in `E`'s room (from
/// [`RoomMembership::intervals`]); `sender` and `target_user_ids` come from `E` (see
/// [`audience`]). This is the one security property that can leak user content: keep it
/// here, and only here.
pub fn may_see(
    viewer: UserId,
    viewer_intervals: &[MembershipInterval],
    event_seq: u64,
    sender: Option<UserId>,
    target_user_ids: &[UserId],
) -> bool {
    let was_member = viewer_intervals.iter().any(|i| i.contains(event_seq));
    let addressed =
        target_user_ids.is_empty() || target_user_ids.contains(&viewer) || sender == Some(viewer);
    was_member && addressed
}

/// The sender and targets of a room event, as [`may_see`] takes them. Only a message has
/// either; membership and creation events are seen by every member at their seq.
pub fn audience(event: &RoomEvent) -> (Option<UserId>, &[UserId]) {
    match event {
        RoomEvent::MessagePosted {
            sender,
            target_user_ids,
            ..
        }
        | RoomEvent::MessagePostedV2 {
            sender,
            target_user_ids,
            ..
        }
        | RoomEvent::MessageDeleted {
            sender,
            target_user_ids,
            ..
        } => (Some(*sender), target_user_ids),
        RoomEvent::RoomCreated { .. }
        | RoomEvent::MemberJoined { .. }
        | RoomEvent::MemberLeft { .. } => (None, &[]),
    }
}

/// What one room event does to one user's membership. [`membership_change`] is the one
/// rule that builds intervals: the rooms read model, the fanout hub and [`RoomMembership`]
/// all apply it, each to its own storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MembershipChange {
    /// `user` became a member at `joined_seq`: a new open interval.
    Opened {
        /// The new member.
        user: UserId,
        /// The seq of the event that added them.
        joined_seq: u64,
    },
    /// `user`'s open interval ended: `interval` is the closed one.
    Closed {
        /// The former member.
        user: UserId,
        /// The interval, now with its `left_seq`.
        interval: MembershipInterval,
    },
}

/// The change a room event at `seq` makes to membership. `open_since(user)` is the
/// `joined_seq` of the user's open interval, `None` when they are not a member. A join
/// while already a member and a leave while not one (never emitted by the decider)
/// change nothing.
pub fn membership_change(
    seq: u64,
    event: &RoomEvent,
    open_since: impl FnOnce(UserId) -> Option<u64>,
) -> Option<MembershipChange> {
    match event {
        RoomEvent::RoomCreated { owner: user, .. }
        | RoomEvent::MemberJoined { user_id: user, .. } => {
            open_since(*user)
                .is_none()
                .then_some(MembershipChange::Opened {
                    user: *user,
                    joined_seq: seq,
                })
        }
        RoomEvent::MemberLeft { user_id, .. } => {
            open_since(*user_id).map(|joined_seq| MembershipChange::Closed {
                user: *user_id,
                interval: MembershipInterval {
                    joined_seq,
                    left_seq: Some(seq),
                },
            })
        }
        RoomEvent::MessagePosted { .. }
        | RoomEvent::MessagePostedV2 { .. }
        | RoomEvent::MessageDeleted { .. } => None,
    }
}

impl MembershipInterval {
    /// Whether the user is still a member once the event at `seq` is applied: joined at
    /// or before it and not yet left by it (the `state user` view; [`Self::contains`] is
    /// the visibility view, where a leaver still sees their own leave).
    pub fn member_after(&self, seq: u64) -> bool {
        self.joined_seq <= seq && self.left_seq.is_none_or(|left| seq < left)
    }
}

/// Membership intervals of one room, per user, built from the room's events in seq order
/// by [`membership_change`], with the current members alongside. The fanout hub keeps one
/// per room in memory; the rooms read model stores the same intervals row by row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoomMembership {
    intervals: BTreeMap<UserId, Vec<MembershipInterval>>,
    members: BTreeSet<UserId>,
}

impl RoomMembership {
    /// No members.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one event of this room at its global seq (seqs must increase); returns
    /// what it changed. The cost does not depend on how many intervals the user has.
    pub fn apply(&mut self, seq: u64, event: &RoomEvent) -> Option<MembershipChange> {
        let change = membership_change(seq, event, |user| {
            self.intervals
                .get(&user)
                .and_then(|l| l.last())
                .filter(|i| i.left_seq.is_none())
                .map(|i| i.joined_seq)
        })?;
        match change {
            MembershipChange::Opened { user, joined_seq } => {
                self.intervals
                    .entry(user)
                    .or_default()
                    .push(MembershipInterval {
                        joined_seq,
                        left_seq: None,
                    });
                self.members.insert(user);
            }
            MembershipChange::Closed { user, interval } => {
                if let Some(last) = self.intervals.get_mut(&user).and_then(|l| l.last_mut()) {
                    *last = interval;
                }
                self.members.remove(&user);
            }
        }
        Some(change)
    }

    /// Restores a user's intervals as a read model stored them (oldest first). Used to
    /// rebuild the in-memory membership at start-up without replaying the log.
    pub fn restore(&mut self, user: UserId, intervals: Vec<MembershipInterval>) {
        if intervals.last().is_some_and(|i| i.left_seq.is_none()) {
            self.members.insert(user);
        } else {
            self.members.remove(&user);
        }
        self.intervals.insert(user, intervals);
    }

    /// A user's intervals, oldest first; empty if they were never a member.
    pub fn intervals(&self, user: UserId) -> &[MembershipInterval] {
        self.intervals.get(&user).map_or(&[], Vec::as_slice)
    }

    /// The members after the last applied event.
    pub fn members(&self) -> impl Iterator<Item = UserId> + '_ {
        self.members.iter().copied()
    }

    /// Everyone who was ever a member, with their intervals.
    pub fn all(&self) -> impl Iterator<Item = (UserId, &[MembershipInterval])> + '_ {
        self.intervals.iter().map(|(u, l)| (*u, l.as_slice()))
    }

    /// [`may_see`] for an event of this room.
    pub fn may_see(&self, viewer: UserId, seq: u64, event: &RoomEvent) -> bool {
        let (sender, targets) = audience(event);
        may_see(viewer, self.intervals(viewer), seq, sender, targets)
    }
}

/// Room histories for property tests, generated through the real room decider, and the
/// naive oracle of who may see what. Public behind the `testing` feature so the actors'
/// property test can drive the real projection and queries with the same histories.
#[cfg(any(test, feature = "testing"))]
pub mod testing {
    use crate::decider::Decider;
    use crate::events::{RoomEvent, RoomVisibility};
    use crate::ids::{MessageId, RoomId, Timestamp, UserId};
    use crate::room::{RoomCommand, RoomDecider, RoomState};
    use std::collections::BTreeSet;
    use uuid::Uuid;

    const T: Timestamp = Timestamp(0);

    /// User `n` of the generated histories.
    pub fn u(n: u128) -> UserId {
        UserId(Uuid::from_u128(n))
    }

    /// Room `n` of the generated histories.
    pub fn room_id(n: usize) -> RoomId {
        RoomId(Uuid::from_u128(n as u128))
    }

    /// Users in a generated history (`u(0)..u(USERS)`).
    pub const USERS: u128 = 8;
    /// Rooms in a generated history.
    pub const ROOMS: usize = 3;

    /// One step of a generated history.
    #[derive(Clone, Debug)]
    pub enum Op {
        /// A user joins.
        Join(u128),
        /// A user leaves.
        Leave(u128),
        /// by, user: an add.
        Add(u128, u128),
        /// by, user: a removal.
        Remove(u128, u128),
        /// sender, indexes into the current member list (mod its length)
        Post(u128, Vec<usize>),
    }

    fn owner_of(room: usize) -> UserId {
        u(room as u128 % USERS)
    }

    /// Half the time the owner asks (so members do get added and removed), otherwise
    /// anyone (so `Forbidden` and `NotFound` paths run too).
    fn by(room: usize, b: u128) -> UserId {
        if b < USERS / 2 {
            owner_of(room)
        } else {
            u(b)
        }
    }

    /// Runs ops through the real room decider (dropping refused ones), over `ROOMS` rooms
    /// whose events interleave in one global seq order.
    pub fn run(ops: &[(usize, Op)]) -> Vec<(u64, usize, RoomEvent)> {
        let mut states: Vec<RoomState> = vec![RoomState::None; ROOMS];
        let mut log = Vec::new();
        let mut seq = 0u64;
        let mut append = |room: usize, state: &mut RoomState, cmd: RoomCommand| {
            if let Ok(events) = RoomDecider::decide(state, &cmd) {
                for e in events {
                    seq += 1;
                    *state = RoomDecider::evolve(std::mem::take(state), &e);
                    log.push((seq, room, e));
                }
            }
        };
        for (room, state) in states.iter_mut().enumerate() {
            let cmd = RoomCommand::Create {
                room_id: room_id(room),
                name: format!("room {room}"),
                visibility: if room == 0 {
                    RoomVisibility::Public
                } else {
                    RoomVisibility::Private
                },
                owner: owner_of(room),
                now: T,
            };
            append(room, state, cmd);
        }
        for (n, (room, op)) in ops.iter().enumerate() {
            let state = &mut states[*room];
            let cmd = match op {
                Op::Join(x) => RoomCommand::Join {
                    user_id: u(*x),
                    now: T,
                },
                Op::Leave(x) => RoomCommand::Leave {
                    user_id: u(*x),
                    now: T,
                },
                Op::Add(b, x) => RoomCommand::AddMember {
                    by: by(*room, *b),
                    user_id: u(*x),
                    now: T,
                },
                Op::Remove(b, x) => RoomCommand::RemoveMember {
                    by: by(*room, *b),
                    user_id: u(*x),
                    now: T,
                },
                Op::Post(s, idx) => {
                    let members: Vec<UserId> = state
                        .room()
                        .map(|r| r.members.iter().copied().collect())
                        .unwrap_or_default();
                    let targets = if members.is_empty() {
                        vec![]
                    } else {
                        idx.iter().map(|i| members[i % members.len()]).collect()
                    };
                    RoomCommand::Post {
                        message_id: MessageId(Uuid::from_u128(n as u128)),
                        sender: u(*s),
                        body: "m".into(),
                        target_user_ids: targets,
                        reply_to: None,
                        secret: [7; 32],
                        now: T,
                    }
                }
            };
            append(*room, state, cmd);
        }
        log
    }

    /// The oracle: walk the log keeping each room's current member set; a joiner is added
    /// before their join is judged, a leaver removed after their leave is judged.
    pub fn oracle(log: &[(u64, usize, RoomEvent)]) -> BTreeSet<(u64, UserId)> {
        let mut members: Vec<BTreeSet<UserId>> = vec![BTreeSet::new(); ROOMS];
        let mut visible = BTreeSet::new();
        for (seq, room, event) in log {
            let set = &mut members[*room];
            match event {
                RoomEvent::RoomCreated { owner, .. } => {
                    set.insert(*owner);
                }
                RoomEvent::MemberJoined { user_id, .. } => {
                    set.insert(*user_id);
                }
                _ => {}
            }
            for viewer in (0..USERS).map(u) {
                let sees = set.contains(&viewer)
                    && match event {
                        RoomEvent::MessagePosted {
                            sender,
                            target_user_ids,
                            ..
                        }
                        | RoomEvent::MessagePostedV2 {
                            sender,
                            target_user_ids,
                            ..
                        } => {
                            target_user_ids.is_empty()
                                || target_user_ids.contains(&viewer)
                                || *sender == viewer
                        }
                        _ => true,
                    };
                if sees {
                    visible.insert((*seq, viewer));
                }
            }
            if let RoomEvent::MemberLeft { user_id, .. } = event {
                set.remove(user_id);
            }
        }
        visible
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{oracle, run, u, Op, ROOMS, USERS};
    use super::*;
    use crate::events::{LeaveReason, RoomVisibility};
    use crate::ids::{RoomId, Timestamp};
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use uuid::Uuid;

    const T: Timestamp = Timestamp(0);

    fn interval(joined: u64, left: Option<u64>) -> MembershipInterval {
        MembershipInterval {
            joined_seq: joined,
            left_seq: left,
        }
    }

    #[test]
    fn intervals_are_inclusive_at_both_ends() {
        let i = interval(5, Some(9));
        assert!(!i.contains(4));
        assert!(i.contains(5));
        assert!(i.contains(9));
        assert!(!i.contains(10));
        assert!(interval(5, None).contains(u64::MAX));
    }

    #[test]
    fn targeted_messages_reach_targets_and_sender_only() {
        let member = [interval(1, None)];
        assert!(may_see(u(1), &member, 3, Some(u(2)), &[]));
        assert!(may_see(u(1), &member, 3, Some(u(2)), &[u(1)]));
        assert!(may_see(u(1), &member, 3, Some(u(1)), &[u(3)]));
        assert!(!may_see(u(1), &member, 3, Some(u(2)), &[u(3)]));
        // Being targeted does not help a non-member.
        assert!(!may_see(u(1), &[], 3, Some(u(2)), &[u(1)]));
        assert!(!may_see(u(1), &[interval(4, None)], 3, Some(u(1)), &[]));
    }

    #[test]
    fn membership_follows_joins_and_leaves() {
        let mut m = RoomMembership::new();
        m.apply(
            10,
            &RoomEvent::RoomCreated {
                room_id: RoomId(Uuid::nil()),
                name: "r".into(),
                visibility: RoomVisibility::Public,
                owner: u(1),
                at: T,
            },
        );
        let joined = RoomEvent::MemberJoined {
            user_id: u(2),
            by: u(2),
            at: T,
        };
        let left = RoomEvent::MemberLeft {
            user_id: u(2),
            by: u(2),
            reason: LeaveReason::Left,
            at: T,
        };
        m.apply(12, &joined);
        m.apply(15, &left);
        m.apply(20, &joined);
        assert_eq!(m.intervals(u(1)), &[interval(10, None)]);
        assert_eq!(
            m.intervals(u(2)),
            &[interval(12, Some(15)), interval(20, None)]
        );
        assert!(m.may_see(u(2), 15, &left), "a leaver sees their own leave");
        assert!(!m.may_see(u(2), 16, &joined));
        assert!(m.may_see(u(2), 12, &joined), "a joiner sees their own join");
        assert!(!m.intervals(u(2)).iter().any(|i| i.contains(11)));
        assert_eq!(m.members().collect::<Vec<_>>(), vec![u(1), u(2)]);
        assert!(m.intervals(u(2))[0].member_after(14));
        assert!(
            !m.intervals(u(2))[0].member_after(15),
            "gone once the leave applies"
        );
        assert!(m.intervals(u(3)).is_empty());
    }

    fn op() -> impl Strategy<Value = (usize, Op)> {
        let user = 0..USERS;
        let op = prop_oneof![
            3 => user.clone().prop_map(Op::Join),
            2 => user.clone().prop_map(Op::Leave),
            2 => (0..USERS, user.clone()).prop_map(|(b, t)| Op::Add(b, t)),
            1 => (0..USERS, user.clone()).prop_map(|(b, t)| Op::Remove(b, t)),
            4 => (user, prop::collection::vec(0usize..16, 0..4)).prop_map(|(s, t)| Op::Post(s, t)),
        ];
        (0..ROOMS, op)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn may_see_agrees_with_the_naive_oracle(ops in prop::collection::vec(op(), 0..80)) {
            let log = run(&ops);
            let expected = oracle(&log);

            // Live delivery: judge each event right after applying it.
            let mut live: Vec<RoomMembership> = vec![RoomMembership::new(); ROOMS];
            let mut seen_live = BTreeSet::new();
            for (seq, room, event) in &log {
                live[*room].apply(*seq, event);
                for viewer in (0..USERS).map(u) {
                    if live[*room].may_see(viewer, *seq, event) {
                        seen_live.insert((*seq, viewer));
                    }
                }
            }
            prop_assert_eq!(&seen_live, &expected);

            // History and resume: judge every event with the intervals known at the end.
            let mut seen_later = BTreeSet::new();
            for (seq, room, event) in &log {
                for viewer in (0..USERS).map(u) {
                    let (sender, targets) = audience(event);
                    if may_see(viewer, live[*room].intervals(viewer), *seq, sender, targets) {
                        seen_later.insert((*seq, viewer));
                    }
                }
            }
            prop_assert_eq!(&seen_later, &expected);
        }
    }

    #[test]
    fn generated_histories_exercise_every_kind_of_event() {
        // Guard against a generator that silently stops producing leaves or targets.
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let mut runner = TestRunner::deterministic();
        let (mut leaves, mut removes, mut targeted, mut broadcast, mut rejoins) = (0, 0, 0, 0, 0);
        for _ in 0..64 {
            let ops = prop::collection::vec(op(), 40..80)
                .new_tree(&mut runner)
                .unwrap()
                .current();
            let log = run(&ops);
            let mut m: Vec<RoomMembership> = vec![RoomMembership::new(); ROOMS];
            for (seq, room, e) in &log {
                m[*room].apply(*seq, e);
                match e {
                    RoomEvent::MemberLeft {
                        reason: LeaveReason::Left,
                        ..
                    } => leaves += 1,
                    RoomEvent::MemberLeft {
                        reason: LeaveReason::Removed,
                        ..
                    } => removes += 1,
                    RoomEvent::MessagePostedV2 {
                        target_user_ids, ..
                    } if target_user_ids.is_empty() => broadcast += 1,
                    RoomEvent::MessagePostedV2 { .. } => targeted += 1,
                    _ => {}
                }
            }
            rejoins += m
                .iter()
                .flat_map(|r| r.all())
                .filter(|(_, i)| i.len() > 1)
                .count();
        }
        for (name, n) in [
            ("leaves", leaves),
            ("removes", removes),
            ("targeted", targeted),
            ("broadcast", broadcast),
            ("rejoins", rejoins),
        ] {
            assert!(n > 10, "{name}: {n}");
        }
    }
}

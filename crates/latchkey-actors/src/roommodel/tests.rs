//! The model-based test of the code that serves room events: histories generated through
//! the real room decider are appended to a real store and fed through the real rooms
//! projection and fanout hub; then REST history ([`history`], paged), WebSocket resume
//! ([`resume_batch`], in small batches) and live delivery (a hub started from the read
//! model halfway through) must each agree with the naive oracle.

use super::*;
use crate::hub::Hub;
use crate::readmodel::{projections, ReadModels};
use bytestring::ByteString;
use latchkey_domain::visibility::testing::{oracle, room_id, run, u, Op, ROOMS, USERS};
use latchkey_domain::{Actor, TokenId};
use latchkey_store::projection::Projector;
use latchkey_store::{AppendRequest, ExpectedVersion, SledStore, StoreOptions};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::sync::Arc;

type Seen = BTreeSet<(u64, UserId)>;

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

fn viewers() -> impl Iterator<Item = UserId> {
    (0..USERS).map(u)
}

/// Every page of `viewer`'s history of every room, newest first, three at a time.
fn paged_history(rooms: &Rooms, viewer: UserId) -> Seen {
    let mut seen = Seen::new();
    for room in (0..ROOMS).map(room_id) {
        let mut before = None;
        loop {
            let page = history(rooms, viewer, room, (before, None), 3, MAX_SCAN).unwrap();
            seen.extend(page.messages.iter().map(|m| (m.seq, viewer)));
            match page.next_before {
                Some(b) => before = Some(b),
                None => break,
            }
        }
    }
    seen
}

/// A resume from seq 0 to `head`, read in batches of five log entries.
fn resumed(store: &dyn EventStore, rooms: &Rooms, viewer: UserId, head: u64) -> Seen {
    let mut seen = Seen::new();
    let mut from = 1;
    while from <= head {
        let batch = resume_batch(store, rooms, viewer, (from, head), 5).unwrap();
        seen.extend(batch.events.iter().map(|(rec, _)| (rec.seq(), viewer)));
        assert!(batch.next > from, "resume makes progress");
        from = batch.next;
    }
    seen
}

fn append(store: &dyn EventStore, seq: u64, room: usize, event: &RoomEvent) {
    let appended = store
        .append_blocking(AppendRequest {
            stream: room_id(room).stream(),
            expected: ExpectedVersion::Any,
            events: vec![Event::Room(event.clone())],
            command_id: Uuid::new_v4(),
            actor: Actor::System,
        })
        .unwrap();
    assert_eq!(
        appended.last_seq, seq,
        "the store assigns the generated seqs"
    );
}

fn check(ops: &[(usize, Op)]) -> Result<(), TestCaseError> {
    let log = run(ops);
    let expected = oracle(&log);
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        sync_data: false,
        ..StoreOptions::default()
    };
    let store: Arc<dyn EventStore> = Arc::new(SledStore::open(dir.path(), opts).unwrap());
    let mut projector = Projector::new(store.clone(), projections()).unwrap();
    // The first half is projected before the hub exists; the hub starts from the read
    // model, as it does when the server starts, and is fed the second half live.
    let half = log.len() / 2;
    for (seq, room, event) in &log[..half] {
        append(store.as_ref(), *seq, *room, event);
    }
    let start = projector.catch_up().unwrap();
    let models = ReadModels::open(store.as_ref()).unwrap();
    let encode: crate::hub::Encode = Box::new(|rec: &Recorded, _: RoomId, _: &RoomEvent| {
        ByteString::from(rec.seq().to_string())
    });
    let hub = Arc::new(Hub::new(
        start,
        models.rooms().all_memberships().unwrap(),
        encode,
        1 << 16,
    ));
    let mut conns: Vec<_> = viewers()
        .map(|v| {
            (
                v,
                hub.register(v, TokenId(Uuid::new_v4()), || true).unwrap(),
            )
        })
        .collect();
    let feed = hub.clone();
    let mut projector = projector.after_apply(Box::new(move |chunk| feed.apply(chunk)));
    for (seq, room, event) in &log[half..] {
        append(store.as_ref(), *seq, *room, event);
    }
    let head = projector.catch_up().unwrap();
    prop_assert_eq!(head, log.len() as u64);

    let mut live = Seen::new();
    for (viewer, reg) in &mut conns {
        while let Some(frame) = reg.frames.try_recv() {
            live.insert((frame.seq, *viewer));
        }
    }
    let after_start: Seen = expected
        .iter()
        .filter(|(s, _)| *s > start)
        .copied()
        .collect();
    prop_assert_eq!(&live, &after_start, "live delivery");

    let rooms = models.rooms();
    let messages: BTreeSet<u64> = log
        .iter()
        .filter(|(_, _, e)| {
            matches!(
                e,
                RoomEvent::MessagePosted { .. } | RoomEvent::MessagePostedV2 { .. }
            )
        })
        .map(|(s, _, _)| *s)
        .collect();
    let expected_history: Seen = expected
        .iter()
        .filter(|(s, _)| messages.contains(s))
        .copied()
        .collect();
    let history: Seen = viewers().flat_map(|v| paged_history(rooms, v)).collect();
    prop_assert_eq!(&history, &expected_history, "REST history");
    let resume: Seen = viewers()
        .flat_map(|v| resumed(store.as_ref(), rooms, v, head))
        .collect();
    prop_assert_eq!(&resume, &expected, "WebSocket resume");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn history_resume_and_live_agree_with_the_naive_oracle(
        ops in prop::collection::vec(op(), 0..60)
    ) {
        check(&ops)?;
    }
}

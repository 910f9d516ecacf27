//! `seq_at` against a linear scan, and `state user`'s rooms from the rooms read model.

use super::*;
use latchkey_actors::readmodel::projections;
use latchkey_domain::{Actor, LeaveReason, RoomEvent, RoomId, RoomVisibility, StreamId};
use latchkey_store::projection::Projector;
use latchkey_store::{AppendRequest, ExpectedVersion, SledStore, StoreOptions};
use std::sync::Arc;

fn store() -> (tempfile::TempDir, Arc<dyn EventStore>) {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        sync_data: false,
        ..StoreOptions::default()
    };
    let store: Arc<dyn EventStore> = Arc::new(SledStore::open(dir.path(), opts).unwrap());
    (dir, store)
}

fn append(store: &dyn EventStore, stream: StreamId, event: Event) -> u64 {
    store
        .append_blocking(AppendRequest {
            stream,
            expected: ExpectedVersion::Any,
            events: vec![event],
            command_id: Uuid::new_v4(),
            actor: Actor::System,
        })
        .unwrap()
        .last_seq
}

fn user(n: u128) -> UserId {
    UserId(Uuid::from_u128(n))
}

#[test]
fn seq_at_is_the_last_seq_recorded_by_then() {
    let (_dir, store) = store();
    let room = RoomId(Uuid::from_u128(9));
    // Append until the log spans a few distinct milliseconds (bounded), so the search has
    // runs of equal times and steps between them to find.
    let mut times: Vec<(u64, Timestamp)> = vec![];
    let distinct =
        |times: &[(u64, Timestamp)]| times.windows(2).filter(|w| w[0].1 != w[1].1).count();
    while distinct(&times) < 3 && times.len() < 100_000 {
        let i = times.len() as u128;
        let seq = append(
            store.as_ref(),
            room.stream(),
            Event::Room(RoomEvent::MemberJoined {
                user_id: user(i),
                by: user(i),
                at: Timestamp(0),
            }),
        );
        times.push((seq, recorded_at(store.as_ref(), seq).unwrap().unwrap()));
    }
    let linear = |at: Timestamp| {
        times
            .iter()
            .filter(|(_, t)| *t <= at)
            .map(|(s, _)| *s)
            .max()
            .unwrap_or(0)
    };
    let first = times[0].1;
    let last = times[times.len() - 1].1;
    assert!(last > first, "the fixture spans more than one millisecond");
    for t in first.0 - 1..=last.0 + 1 {
        assert_eq!(
            seq_at(store.as_ref(), Some(Timestamp(t))).unwrap(),
            linear(Timestamp(t)),
            "at {t}"
        );
    }
    assert_eq!(seq_at(store.as_ref(), None).unwrap(), times.len() as u64);
}

#[test]
fn state_rooms_come_from_the_membership_intervals() {
    let (_dir, store) = store();
    let room = RoomId(Uuid::from_u128(9));
    let (alice, bob) = (user(1), user(2));
    let events = [
        RoomEvent::RoomCreated {
            room_id: room,
            name: "general".into(),
            visibility: RoomVisibility::Private,
            owner: alice,
            at: Timestamp(0),
        },
        RoomEvent::MemberJoined {
            user_id: bob,
            by: alice,
            at: Timestamp(0),
        },
        RoomEvent::MemberLeft {
            user_id: bob,
            by: alice,
            reason: LeaveReason::Removed,
            at: Timestamp(0),
        },
        RoomEvent::MemberJoined {
            user_id: bob,
            by: alice,
            at: Timestamp(0),
        },
    ];
    for e in events {
        append(store.as_ref(), room.stream(), Event::Room(e));
    }
    Projector::new(store.clone(), projections())
        .unwrap()
        .catch_up()
        .unwrap();
    let models = ReadModels::open(store.as_ref()).unwrap();
    let joined = |who, seq| -> Vec<(String, u64)> {
        rooms_at(&models, who, seq)
            .unwrap()
            .into_iter()
            .map(|r| (format!("{} {}", r.name, r.visibility), r.joined_seq))
            .collect()
    };
    let general = |seq| vec![("general private".to_string(), seq)];
    assert_eq!(joined(bob, 1), vec![]);
    assert_eq!(joined(bob, 2), general(2));
    assert_eq!(joined(bob, 3), vec![], "gone once the removal applies");
    assert_eq!(joined(bob, 4), general(4));
    assert_eq!(joined(alice, 1), general(1));
    assert_eq!(joined(alice, 4), general(1));
    assert_eq!(joined(user(3), 4), vec![]);
}

//! Finding the posts a deletion needs (the room's state keeps no per-message record: the
//! sender and audience of a message come from its post in the log), and erasing the
//! bodies of legacy messages: a message posted before bodies were stored
//! beside the log (`MessagePosted`) holds its text inside its hash-chained envelope, so
//! its deletion replaces that envelope with a tombstone (seq and hash stay, the text
//! leaves the log). A detached body (`MessagePostedV2`) needs none of this: the journal
//! erases it in the same write as the `MessageDeleted` event.

use crate::roommodel::Rooms;
use latchkey_domain::room::PostedMessage;
use latchkey_domain::{Event, MessageId, RoomEvent, RoomId, UserId};
use latchkey_store::{EventStore, StoreResult};

/// The `why` of the tombstone a legacy message's erasure leaves.
pub const ERASED: &str = "erased";

/// A message's post as a deletion needs it: its sender and audience for the room
/// decider, and its seq when it is a legacy post (body inside its envelope) still in the
/// log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundPost {
    /// What the room decider needs to decide the deletion.
    pub message: PostedMessage,
    /// The seq of a legacy post, which its erasure tombstones.
    pub legacy: Option<u64>,
}

/// Message `id`'s post in `room`, read from the log at the seq the rooms index gives.
/// `None` once its deletion is projected (the rooms model then drops the row and its
/// index), or for a message that was never posted here.
pub fn find_post(
    store: &dyn EventStore,
    rooms: &Rooms,
    room: RoomId,
    id: MessageId,
) -> StoreResult<Option<FoundPost>> {
    let Some(seq) = rooms.message_seq(room, id)? else {
        return Ok(None);
    };
    // The first live event at or after the post's seq: the post itself, unless it is a
    // tombstone already.
    let Some(rec) = store.read_all(seq)?.next().transpose()? else {
        return Ok(None);
    };
    let Event::Room(event) = &rec.event else {
        return Ok(None);
    };
    Ok(match PostedMessage::of(event) {
        Some((message_id, message)) if message_id == id && rec.seq() == seq => Some(FoundPost {
            message,
            legacy: matches!(event, RoomEvent::MessagePosted { .. }).then_some(seq),
        }),
        _ => None,
    })
}

/// Everything `sender` posted in `room` that is still in the log, in posting order: a walk
/// of the room's stream, for an admin's bulk erasure.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SenderPosts {
    /// Each post's id and audience, for `RoomCommand::EraseSender`.
    pub posts: Vec<(MessageId, PostedMessage)>,
    /// The seqs of the legacy ones, which their erasure tombstones.
    pub legacy: Vec<u64>,
}

/// Reads `sender`'s posts in `room` (see [`SenderPosts`]).
pub fn posts_by(store: &dyn EventStore, room: RoomId, sender: UserId) -> StoreResult<SenderPosts> {
    let mut out = SenderPosts::default();
    for rec in store.read_stream(&room.stream(), 1)? {
        let rec = rec?;
        let Event::Room(event) = &rec.event else {
            continue;
        };
        let Some((id, message)) = PostedMessage::of(event) else {
            continue;
        };
        if message.sender != sender {
            continue;
        }
        if matches!(event, RoomEvent::MessagePosted { .. }) {
            out.legacy.push(rec.seq());
        }
        out.posts.push((id, message));
    }
    Ok(out)
}

/// Replaces the legacy posts at `seqs`, whose deletions are in the log, by tombstones.
/// Returns how many envelopes were replaced (a seq already tombstoned counts 0).
pub fn drop_legacy_bodies(store: &dyn EventStore, seqs: &[u64]) -> StoreResult<u64> {
    match seqs.iter().max() {
        Some(&last) => store.tombstone(seqs, ERASED, last),
        None => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readmodel::{projections, ReadModels};
    use latchkey_domain::{
        Actor, DeleteReason, MessageId, RoomVisibility, StreamId, Timestamp, UserId,
    };
    use latchkey_store::projection::Projector;
    use latchkey_store::{AppendRequest, Entry, ExpectedVersion, SledStore, StoreOptions};
    use std::sync::Arc;
    use uuid::Uuid;

    fn append(store: &SledStore, stream: &StreamId, events: Vec<RoomEvent>) {
        store
            .append_blocking(AppendRequest {
                stream: stream.clone(),
                expected: ExpectedVersion::Any,
                events: events.into_iter().map(Event::Room).collect(),
                command_id: Uuid::new_v4(),
                actor: Actor::System,
            })
            .unwrap();
    }

    #[test]
    fn deleting_a_legacy_message_tombstones_its_post_and_the_chain_still_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path(), StoreOptions::default()).unwrap());
        let (room, alice) = (RoomId(Uuid::new_v4()), UserId(Uuid::new_v4()));
        let (old, kept) = (MessageId(Uuid::new_v4()), MessageId(Uuid::new_v4()));
        let posted = |message_id, body: &str| RoomEvent::MessagePosted {
            message_id,
            sender: alice,
            body: body.into(),
            target_user_ids: vec![],
            reply_to: None,
            at: Timestamp(2),
        };
        append(
            &store,
            &room.stream(),
            vec![
                RoomEvent::RoomCreated {
                    room_id: room,
                    name: "r".into(),
                    visibility: RoomVisibility::Private,
                    owner: alice,
                    at: Timestamp(1),
                },
                posted(old, "regret this"),
                posted(kept, "keep this"),
            ],
        );
        let deletion = vec![RoomEvent::MessageDeleted {
            message_id: old,
            sender: alice,
            target_user_ids: vec![],
            by: Some(alice),
            reason: DeleteReason::Sender,
            at: Timestamp(3),
        }];
        let dyn_store: Arc<dyn EventStore> = store.clone();
        Projector::new(dyn_store.clone(), projections())
            .unwrap()
            .catch_up()
            .unwrap();
        let models = ReadModels::open(store.as_ref()).unwrap();
        // Before the deletion is projected, the index names the post.
        let found = find_post(store.as_ref(), models.rooms(), room, old).unwrap();
        let alices = PostedMessage {
            sender: alice,
            target_user_ids: vec![],
        };
        assert_eq!(
            found,
            Some(FoundPost {
                message: alices.clone(),
                legacy: Some(2)
            })
        );
        let by_alice = posts_by(store.as_ref(), room, alice).unwrap();
        assert_eq!(by_alice.legacy, vec![2, 3]);
        assert_eq!(
            by_alice.posts,
            vec![(old, alices.clone()), (kept, alices.clone())]
        );
        append(&store, &room.stream(), deletion);
        Projector::new(dyn_store.clone(), projections())
            .unwrap()
            .catch_up()
            .unwrap();
        assert_eq!(drop_legacy_bodies(store.as_ref(), &[2]).unwrap(), 1);
        // Again: the post is a tombstone already, nothing more to drop.
        assert_eq!(drop_legacy_bodies(store.as_ref(), &[2]).unwrap(), 0);
        let by_alice = posts_by(store.as_ref(), room, alice).unwrap();
        assert_eq!(by_alice.legacy, vec![3]);
        assert_eq!(by_alice.posts, vec![(kept, alices)]);
        assert_eq!(
            find_post(store.as_ref(), models.rooms(), room, old).unwrap(),
            None,
            "a deleted post is no longer found"
        );
        // The rooms model forgot the erased post, as a rebuild from the log does.
        assert_eq!(models.rooms().message_seq(room, old).unwrap(), None);
        assert_eq!(models.rooms().message_seq(room, kept).unwrap(), Some(3));
        let entries: Vec<Entry> = store.read_log(1).unwrap().map(Result::unwrap).collect();
        assert!(matches!(&entries[1], Entry::Tombstone(t) if t.seq == 2 && t.why == ERASED));
        assert!(
            matches!(&entries[2], Entry::Event(_)),
            "the kept message stays"
        );
        let raw: Vec<u8> = store
            .read_raw(1)
            .unwrap()
            .flat_map(|r| r.unwrap().envelope)
            .collect();
        assert!(!raw.windows(11).any(|w| w == b"regret this"));
        assert!(raw.windows(9).any(|w| w == b"keep this"), "control");
        let report = store.verify(&mut |_| {}).unwrap();
        assert!(report.ok(), "{:?}", report.problems);
    }
}

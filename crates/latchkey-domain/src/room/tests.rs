//! Tests of `room`.

use super::*;
use crate::decider::testing::{given, given_nothing};
use uuid::Uuid;

const T0: Timestamp = Timestamp(1_700_000_000_000);

fn rid() -> RoomId {
    RoomId(Uuid::from_u128(50))
}
fn u(n: u128) -> UserId {
    UserId(Uuid::from_u128(n))
}
fn owner() -> UserId {
    u(1)
}
fn mid(n: u128) -> MessageId {
    MessageId(Uuid::from_u128(900 + n))
}

fn created(visibility: RoomVisibility) -> RoomEvent {
    RoomEvent::RoomCreated {
        room_id: rid(),
        name: "general".into(),
        visibility,
        owner: owner(),
        at: T0,
    }
}
fn public() -> RoomEvent {
    created(RoomVisibility::Public)
}
fn private() -> RoomEvent {
    created(RoomVisibility::Private)
}
fn joined(user: UserId, by: UserId) -> RoomEvent {
    RoomEvent::MemberJoined {
        user_id: user,
        by,
        at: T0,
    }
}
fn left(user: UserId, by: UserId, reason: LeaveReason) -> RoomEvent {
    RoomEvent::MemberLeft {
        user_id: user,
        by,
        reason,
        at: T0,
    }
}

// ---- Create ----

fn create_cmd(name: &str) -> RoomCommand {
    RoomCommand::Create {
        room_id: rid(),
        name: name.into(),
        visibility: RoomVisibility::Public,
        owner: owner(),
        now: T0,
    }
}

#[test]
fn create_room_makes_the_owner_a_member() {
    let state = given_nothing::<RoomDecider>()
        .when(create_cmd("  general \n"))
        .then(vec![public()]);
    let room = state.room().unwrap();
    assert!(room.is_member(owner()));
    assert_eq!(room.name, "general");
}

#[test]
fn create_room_twice_is_already_exists() {
    given(vec![public()])
        .when(create_cmd("general"))
        .then_error(RoomError::AlreadyExists);
}

#[test]
fn create_room_with_bad_name_is_invalid_name() {
    for name in ["", "   ", &"x".repeat(101)] {
        given_nothing::<RoomDecider>()
            .when(create_cmd(name))
            .then_error(RoomError::InvalidName);
    }
}

#[test]
fn create_room_name_counts_characters_not_bytes() {
    let name = "é".repeat(100);
    given_nothing::<RoomDecider>()
        .when(create_cmd(&name))
        .then(vec![RoomEvent::RoomCreated {
            room_id: rid(),
            name,
            visibility: RoomVisibility::Public,
            owner: owner(),
            at: T0,
        }]);
}

// ---- Join ----

fn join(user: UserId) -> RoomCommand {
    RoomCommand::Join {
        user_id: user,
        now: T0,
    }
}

#[test]
fn join_public_room() {
    given(vec![public()])
        .when(join(u(2)))
        .then(vec![joined(u(2), u(2))]);
}

#[test]
fn join_twice_is_idempotent() {
    given(vec![public(), joined(u(2), u(2))])
        .when(join(u(2)))
        .then_nothing();
    given(vec![public()]).when(join(owner())).then_nothing();
}

#[test]
fn join_private_room_as_stranger_is_not_found() {
    given(vec![private()])
        .when(join(u(2)))
        .then_error(RoomError::NotFound);
}

#[test]
fn join_private_room_as_member_is_idempotent() {
    given(vec![private(), joined(u(2), owner())])
        .when(join(u(2)))
        .then_nothing();
}

#[test]
fn join_unknown_room_is_not_found() {
    given_nothing::<RoomDecider>()
        .when(join(u(2)))
        .then_error(RoomError::NotFound);
}

// ---- Leave ----

fn leave(user: UserId) -> RoomCommand {
    RoomCommand::Leave {
        user_id: user,
        now: T0,
    }
}

#[test]
fn leave_room() {
    let state = given(vec![public(), joined(u(2), u(2))])
        .when(leave(u(2)))
        .then(vec![left(u(2), u(2), LeaveReason::Left)]);
    assert!(!state.room().unwrap().is_member(u(2)));
}

#[test]
fn leave_public_room_as_non_member_is_not_a_member() {
    given(vec![public()])
        .when(leave(u(2)))
        .then_error(RoomError::NotAMember);
    given(vec![
        public(),
        joined(u(2), u(2)),
        left(u(2), u(2), LeaveReason::Left),
    ])
    .when(leave(u(2)))
    .then_error(RoomError::NotAMember);
}

#[test]
fn leave_private_room_as_non_member_is_not_found() {
    given(vec![private()])
        .when(leave(u(2)))
        .then_error(RoomError::NotFound);
}

#[test]
fn leave_as_owner_is_owner_cannot_leave() {
    given(vec![public()])
        .when(leave(owner()))
        .then_error(RoomError::OwnerCannotLeave);
}

#[test]
fn leave_unknown_room_is_not_found() {
    given_nothing::<RoomDecider>()
        .when(leave(u(2)))
        .then_error(RoomError::NotFound);
}

// ---- AddMember ----

fn add(by: UserId, user: UserId) -> RoomCommand {
    RoomCommand::AddMember {
        by,
        user_id: user,
        now: T0,
    }
}

#[test]
fn add_member_by_owner() {
    given(vec![private()])
        .when(add(owner(), u(2)))
        .then(vec![joined(u(2), owner())]);
}

#[test]
fn add_member_twice_is_idempotent() {
    given(vec![private(), joined(u(2), owner())])
        .when(add(owner(), u(2)))
        .then_nothing();
}

#[test]
fn add_member_by_member_is_forbidden() {
    given(vec![private(), joined(u(2), owner())])
        .when(add(u(2), u(3)))
        .then_error(RoomError::Forbidden);
    given(vec![public()])
        .when(add(u(2), u(3)))
        .then_error(RoomError::Forbidden);
}

#[test]
fn add_member_by_stranger_to_private_room_is_not_found() {
    given(vec![private()])
        .when(add(u(2), u(3)))
        .then_error(RoomError::NotFound);
}

#[test]
fn add_member_to_unknown_room_is_not_found() {
    given_nothing::<RoomDecider>()
        .when(add(owner(), u(2)))
        .then_error(RoomError::NotFound);
}

// ---- RemoveMember ----

fn remove(by: UserId, user: UserId) -> RoomCommand {
    RoomCommand::RemoveMember {
        by,
        user_id: user,
        now: T0,
    }
}

#[test]
fn remove_member_by_owner() {
    given(vec![private(), joined(u(2), owner())])
        .when(remove(owner(), u(2)))
        .then(vec![left(u(2), owner(), LeaveReason::Removed)]);
}

#[test]
fn remove_non_member_is_not_a_member() {
    given(vec![private()])
        .when(remove(owner(), u(2)))
        .then_error(RoomError::NotAMember);
}

#[test]
fn remove_owner_is_owner_cannot_leave() {
    given(vec![public()])
        .when(remove(owner(), owner()))
        .then_error(RoomError::OwnerCannotLeave);
}

#[test]
fn remove_member_by_member_is_forbidden() {
    given(vec![public(), joined(u(2), u(2)), joined(u(3), u(3))])
        .when(remove(u(2), u(3)))
        .then_error(RoomError::Forbidden);
}

#[test]
fn remove_member_by_stranger_to_private_room_is_not_found() {
    given(vec![private(), joined(u(3), owner())])
        .when(remove(u(2), u(3)))
        .then_error(RoomError::NotFound);
}

#[test]
fn remove_member_from_unknown_room_is_not_found() {
    given_nothing::<RoomDecider>()
        .when(remove(owner(), u(2)))
        .then_error(RoomError::NotFound);
}

// ---- Post ----

fn post(sender: UserId, body: &str, targets: Vec<UserId>) -> RoomCommand {
    RoomCommand::Post {
        message_id: mid(1),
        sender,
        body: body.into(),
        target_user_ids: targets,
        reply_to: Some(mid(0)),
        secret: SECRET,
        now: T0,
    }
}
const SECRET: [u8; 32] = [9; 32];
fn posted(sender: UserId, body: &str, targets: Vec<UserId>) -> RoomEvent {
    let body = MessageBody {
        text: body.into(),
        secret: SECRET,
    };
    RoomEvent::MessagePostedV2 {
        message_id: mid(1),
        sender,
        body_hash: body.hash(),
        target_user_ids: targets,
        reply_to: Some(mid(0)),
        at: T0,
        body: Some(body),
    }
}

#[test]
fn post_message_to_everyone() {
    given(vec![public(), joined(u(2), u(2))])
        .when(post(u(2), "hello", vec![]))
        .then(vec![posted(u(2), "hello", vec![])]);
}

#[test]
fn post_message_with_targets_dedupes_them_in_order() {
    given(vec![public(), joined(u(2), u(2)), joined(u(3), u(3))])
        .when(post(u(2), "psst", vec![u(3), owner(), u(3), u(2)]))
        .then(vec![posted(u(2), "psst", vec![u(3), owner(), u(2)])]);
}

#[test]
fn post_to_a_non_member_target_is_target_not_member() {
    given(vec![public(), joined(u(2), u(2))])
        .when(post(u(2), "psst", vec![owner(), u(4)]))
        .then_error(RoomError::TargetNotMember(u(4)));
    given(vec![
        public(),
        joined(u(2), u(2)),
        joined(u(3), u(3)),
        left(u(3), u(3), LeaveReason::Left),
    ])
    .when(post(u(2), "psst", vec![u(3)]))
    .then_error(RoomError::TargetNotMember(u(3)));
}

#[test]
fn post_by_non_member_of_public_room_is_not_a_member() {
    given(vec![public()])
        .when(post(u(2), "hi", vec![]))
        .then_error(RoomError::NotAMember);
}

#[test]
fn post_by_non_member_of_private_room_is_not_found() {
    given(vec![private()])
        .when(post(u(2), "hi", vec![]))
        .then_error(RoomError::NotFound);
    given(vec![
        private(),
        joined(u(2), owner()),
        left(u(2), owner(), LeaveReason::Removed),
    ])
    .when(post(u(2), "hi", vec![]))
    .then_error(RoomError::NotFound);
}

#[test]
fn post_with_bad_body_is_invalid_body() {
    for body in [
        "",
        "  \n\t",
        &"x".repeat(MAX_BODY_BYTES + 1),
        &"é".repeat(2001),
    ] {
        given(vec![public()])
            .when(post(owner(), body, vec![]))
            .then_error(RoomError::InvalidBody);
    }
}

#[test]
fn post_at_the_body_limit_is_accepted() {
    let body = "x".repeat(MAX_BODY_BYTES);
    given(vec![public()])
        .when(post(owner(), &body, vec![]))
        .then(vec![posted(owner(), &body, vec![])]);
}

#[test]
fn post_to_unknown_room_is_not_found() {
    given_nothing::<RoomDecider>()
        .when(post(owner(), "hi", vec![]))
        .then_error(RoomError::NotFound);
}

// ---- Delete and erase ----

/// A delete of message 1 by `by`, whose post the caller found as `sent_by` with
/// `targets` (`None`: no such message).
fn delete(by: UserId, found: Option<(UserId, Vec<UserId>)>) -> RoomCommand {
    RoomCommand::Delete {
        message_id: mid(1),
        message: found.map(|(sender, target_user_ids)| PostedMessage {
            sender,
            target_user_ids,
        }),
        by,
        now: T0,
    }
}
fn deleted(
    sender: UserId,
    targets: Vec<UserId>,
    by: Option<UserId>,
    reason: DeleteReason,
) -> RoomEvent {
    RoomEvent::MessageDeleted {
        message_id: mid(1),
        sender,
        target_user_ids: targets,
        by,
        reason,
        at: T0,
    }
}

#[test]
fn the_sender_deletes_their_message_with_its_audience() {
    given(vec![
        public(),
        joined(u(2), u(2)),
        posted(u(2), "oops", vec![owner()]),
    ])
    .when(delete(u(2), Some((u(2), vec![owner()]))))
    .then(vec![deleted(
        u(2),
        vec![owner()],
        Some(u(2)),
        DeleteReason::Sender,
    )]);
}

#[test]
fn deleting_twice_changes_nothing() {
    given(vec![
        public(),
        posted(owner(), "oops", vec![]),
        deleted(owner(), vec![], Some(owner()), DeleteReason::Sender),
    ])
    .when(delete(owner(), None))
    .then(vec![]);
}

#[test]
fn only_the_sender_may_delete() {
    given(vec![
        public(),
        joined(u(2), u(2)),
        posted(u(2), "mine", vec![]),
    ])
    .when(delete(owner(), Some((u(2), vec![]))))
    .then_error(RoomError::NotSender);
}

#[test]
fn deleting_an_unknown_message_is_message_not_found() {
    given(vec![public()])
        .when(delete(owner(), None))
        .then_error(RoomError::MessageNotFound);
}

#[test]
fn deleting_in_a_private_room_one_cannot_see_is_not_found() {
    given(vec![
        private(),
        joined(u(2), owner()),
        posted(u(2), "hi", vec![]),
        left(u(2), owner(), LeaveReason::Removed),
    ])
    .when(delete(u(2), Some((u(2), vec![]))))
    .then_error(RoomError::NotFound);
}

#[test]
fn a_former_member_of_a_public_room_may_still_delete_their_message() {
    given(vec![
        public(),
        joined(u(2), u(2)),
        posted(u(2), "bye", vec![]),
        left(u(2), u(2), LeaveReason::Left),
    ])
    .when(delete(u(2), Some((u(2), vec![]))))
    .then(vec![deleted(
        u(2),
        vec![],
        Some(u(2)),
        DeleteReason::Sender,
    )]);
}

/// The erasure of `user` with the posts a caller finds in `events`.
fn erase(events: &[RoomEvent], user: UserId) -> RoomCommand {
    RoomCommand::EraseSender {
        user_id: user,
        posts: events
            .iter()
            .filter_map(PostedMessage::of)
            .filter(|(_, m)| m.sender == user)
            .collect(),
        by: None,
        now: T0,
    }
}

#[test]
fn erase_sender_deletes_each_live_message_of_that_user_only() {
    let other = RoomEvent::MessagePosted {
        message_id: mid(2),
        sender: owner(),
        body: "keep".into(),
        target_user_ids: vec![],
        reply_to: None,
        at: T0,
    };
    let legacy = RoomEvent::MessagePosted {
        message_id: mid(3),
        sender: u(2),
        body: "legacy".into(),
        target_user_ids: vec![],
        reply_to: None,
        at: T0,
    };
    let mut gone_legacy = deleted(u(2), vec![], None, DeleteReason::Admin);
    if let RoomEvent::MessageDeleted { message_id, .. } = &mut gone_legacy {
        *message_id = mid(3);
    }
    let history = vec![
        public(),
        joined(u(2), u(2)),
        posted(u(2), "a", vec![]),
        other,
        legacy,
    ];
    given(history.clone())
        .when(erase(&history, u(2)))
        .then(vec![
            deleted(u(2), vec![], None, DeleteReason::Admin),
            gone_legacy,
        ]);
    let history = vec![
        public(),
        posted(u(2), "a", vec![]),
        deleted(u(2), vec![], Some(u(2)), DeleteReason::Sender),
    ];
    given(history.clone())
        .when(erase(&history, u(2)))
        .then(vec![]);
}

#[test]
fn the_body_hash_is_salted_by_the_secret() {
    let a = MessageBody {
        text: "yes".into(),
        secret: [1; 32],
    };
    let b = MessageBody {
        text: "yes".into(),
        secret: [2; 32],
    };
    assert_ne!(a.hash(), b.hash());
    assert!(
        !format!("{a:?}").contains("secret"),
        "Debug must not print the secret"
    );
}

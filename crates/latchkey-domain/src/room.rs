//! The Room aggregate (`room/<uuid>`): who is a member now, and the rules for creating,
//! joining, leaving, adding and removing members, and posting.
//!
//! Must not: decide who sees which event: that is the visibility rule in `visibility`,
//! which works on membership intervals over seqs. This state knows only the present, and
//! of its messages only which were deleted, so its size does not grow with the room's
//! history. What a deletion needs of a message (sender, audience) the caller reads from
//! its post and carries in the command. Never a body; `reply_to` is not checked against
//! history.

use crate::decider::{AggregateEvent, Decider};
use crate::events::{DeleteReason, LeaveReason, MessageBody, RoomEvent, RoomVisibility};
use crate::ids::{MessageId, RoomId, Timestamp, UserId};
use std::collections::BTreeSet;
use thiserror::Error;

/// The longest room name, in characters, after trimming.
pub const MAX_NAME_CHARS: usize = 100;
/// The longest room name, in bytes of UTF-8 (the cap on every stored name, DESIGN §6).
pub const MAX_NAME_BYTES: usize = 256;
/// The longest message body, in bytes of UTF-8.
pub const MAX_BODY_BYTES: usize = 4000;

/// The decider of the Room aggregate.
#[derive(Clone, Copy, Debug)]
pub struct RoomDecider;

/// A room stream's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RoomState {
    /// No `RoomCreated` yet.
    #[default]
    None,
    /// A room.
    Active(Room),
}

impl RoomState {
    /// The room, if created.
    pub fn room(&self) -> Option<&Room> {
        match self {
            RoomState::None => None,
            RoomState::Active(r) => Some(r),
        }
    }
}

/// A room as it is now.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Room {
    /// The room's id.
    pub id: RoomId,
    /// Display name, trimmed.
    pub name: String,
    /// Public or private.
    pub visibility: RoomVisibility,
    /// The creator; always a member, cannot leave.
    pub owner: UserId,
    /// Current members, the owner included.
    pub members: BTreeSet<UserId>,
    /// When it was created.
    pub created_at: Timestamp,
    /// The messages deleted so far (a second delete changes nothing).
    pub deleted: BTreeSet<MessageId>,
}

/// What deleting needs of a posted message, read by the caller from its post event
/// (never its body).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostedMessage {
    /// Who posted it.
    pub sender: UserId,
    /// Its targets; empty for everyone.
    pub target_user_ids: Vec<UserId>,
}

impl PostedMessage {
    /// The message a post event made (either version), with its id; `None` for any other
    /// event.
    pub fn of(event: &RoomEvent) -> Option<(MessageId, PostedMessage)> {
        match event {
            RoomEvent::MessagePosted {
                message_id,
                sender,
                target_user_ids,
                ..
            }
            | RoomEvent::MessagePostedV2 {
                message_id,
                sender,
                target_user_ids,
                ..
            } => Some((
                *message_id,
                PostedMessage {
                    sender: *sender,
                    target_user_ids: target_user_ids.clone(),
                },
            )),
            _ => None,
        }
    }
}

impl Room {
    /// Whether `user` is a member now.
    pub fn is_member(&self, user: UserId) -> bool {
        self.members.contains(&user)
    }

    /// Whether `user` may know the room exists: anyone for a public room, members for a
    /// private one. Everyone else gets the same answer as for a missing room.
    pub fn visible_to(&self, user: UserId) -> bool {
        self.visibility == RoomVisibility::Public || self.is_member(user)
    }

    /// The room, or `NotFound` if `user` may not know it exists.
    fn seen_by(&self, user: UserId) -> Result<&Room, RoomError> {
        if self.visible_to(user) {
            Ok(self)
        } else {
            Err(RoomError::NotFound)
        }
    }
}

/// What can be asked of a room stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoomCommand {
    /// Create the room; the owner is its first member.
    Create {
        /// The room's id (the stream's id).
        room_id: RoomId,
        /// Display name; trimmed, 1..=100 characters.
        name: String,
        /// Public or private.
        visibility: RoomVisibility,
        /// The creator.
        owner: UserId,
        /// Now.
        now: Timestamp,
    },
    /// Join a public room (or be told a private one does not exist).
    Join {
        /// Who joins.
        user_id: UserId,
        /// Now.
        now: Timestamp,
    },
    /// Leave a room.
    Leave {
        /// Who leaves.
        user_id: UserId,
        /// Now.
        now: Timestamp,
    },
    /// The owner adds someone.
    AddMember {
        /// Who asks (must be the owner).
        by: UserId,
        /// Who is added.
        user_id: UserId,
        /// Now.
        now: Timestamp,
    },
    /// The owner removes someone.
    RemoveMember {
        /// Who asks (must be the owner).
        by: UserId,
        /// Who is removed.
        user_id: UserId,
        /// Now.
        now: Timestamp,
    },
    /// Post a message.
    Post {
        /// The message id, made by the caller.
        message_id: MessageId,
        /// Who posts.
        sender: UserId,
        /// 1..=4000 bytes, not only whitespace.
        body: String,
        /// Empty: every member sees it. Otherwise only these current members and the
        /// sender. Duplicates are dropped, first occurrence kept.
        target_user_ids: Vec<UserId>,
        /// The message this answers.
        reply_to: Option<MessageId>,
        /// 32 random bytes from the caller: salts the body's hash and keys its encryption
        /// at rest (see `MessageBody`).
        secret: [u8; 32],
        /// Now.
        now: Timestamp,
    },
    /// The sender deletes their own message.
    Delete {
        /// The message.
        message_id: MessageId,
        /// Its post in this room, as the caller found it (`None`: no such message here).
        message: Option<PostedMessage>,
        /// Who asks (must be its sender).
        by: UserId,
        /// Now.
        now: Timestamp,
    },
    /// An admin erases every message `user_id` posted in this room.
    EraseSender {
        /// Whose messages.
        user_id: UserId,
        /// Every message `user_id` posted here, in posting order, as the caller read them
        /// from the room's stream just before: the erasure takes effect at that read (a
        /// post that lands after it was not yet there to erase).
        posts: Vec<(MessageId, PostedMessage)>,
        /// The admin; `None` for the offline tool.
        by: Option<UserId>,
        /// Now.
        now: Timestamp,
    },
}

/// Why a room command was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RoomError {
    /// No such room, or a private room the caller may not see.
    #[error("room not found")]
    NotFound,
    /// `Create` on an existing room.
    #[error("room already exists")]
    AlreadyExists,
    /// The name is empty or longer than 100 characters after trimming.
    #[error("room name must be 1 to {MAX_NAME_CHARS} printable characters ({MAX_NAME_BYTES} bytes at most)")]
    InvalidName,
    /// The caller (or the target of a removal) is not a member of this public room.
    #[error("not a member of this room")]
    NotAMember,
    /// The owner cannot leave or be removed.
    #[error("the owner cannot leave the room")]
    OwnerCannotLeave,
    /// Only the owner manages members.
    #[error("only the owner may do this")]
    Forbidden,
    /// The body is empty, blank or longer than 4000 bytes.
    #[error("message body must be 1 to {MAX_BODY_BYTES} bytes")]
    InvalidBody,
    /// A target of the message is not a current member.
    #[error("target {0} is not a member of this room")]
    TargetNotMember(UserId),
    /// No such message in this room.
    #[error("message not found")]
    MessageNotFound,
    /// Only a message's sender may delete it.
    #[error("only the sender may delete this message")]
    NotSender,
}

impl AggregateEvent for RoomEvent {
    type Decider = RoomDecider;
}

/// `Create`: a new room with a trimmed, bounded name; the creator is its owner.
fn create(
    state: &RoomState,
    room_id: RoomId,
    name: &str,
    visibility: RoomVisibility,
    owner: UserId,
    now: Timestamp,
) -> Result<Vec<RoomEvent>, RoomError> {
    if state.room().is_some() {
        return Err(RoomError::AlreadyExists);
    }
    let name = name.trim();
    // DESIGN §6: names are at most 256 bytes and hold no control or invisible characters.
    if !crate::device::valid_name(name, MAX_NAME_CHARS) || name.len() > MAX_NAME_BYTES {
        return Err(RoomError::InvalidName);
    }
    Ok(vec![RoomEvent::RoomCreated {
        room_id,
        name: name.to_string(),
        visibility,
        owner,
        at: now,
    }])
}

/// `RemoveMember`: the owner removes a current member other than themself.
fn remove_member(
    room: &Room,
    by: UserId,
    user_id: UserId,
    now: Timestamp,
) -> Result<Vec<RoomEvent>, RoomError> {
    if room.owner == user_id {
        return Err(RoomError::OwnerCannotLeave);
    }
    if !room.is_member(user_id) {
        return Err(RoomError::NotAMember);
    }
    Ok(vec![RoomEvent::MemberLeft {
        user_id,
        by,
        reason: LeaveReason::Removed,
        at: now,
    }])
}

/// `Post`: a member posts a bounded, non-blank body, stored detached (`MessagePostedV2`).
fn post(room: &Room, cmd: &RoomCommand) -> Result<Vec<RoomEvent>, RoomError> {
    let RoomCommand::Post {
        message_id,
        sender,
        body,
        target_user_ids,
        reply_to,
        secret,
        now,
    } = cmd
    else {
        return Ok(vec![]);
    };
    let room = member_of(room, *sender)?;
    if body.trim().is_empty() || body.len() > MAX_BODY_BYTES {
        return Err(RoomError::InvalidBody);
    }
    let body = MessageBody {
        text: body.clone(),
        secret: *secret,
    };
    Ok(vec![RoomEvent::MessagePostedV2 {
        message_id: *message_id,
        sender: *sender,
        body_hash: body.hash(),
        target_user_ids: member_targets(room, target_user_ids)?,
        reply_to: *reply_to,
        at: *now,
        body: Some(body),
    }])
}

/// The deletion of one message, with its audience.
fn deleted(
    message_id: MessageId,
    m: &PostedMessage,
    by: Option<UserId>,
    reason: DeleteReason,
    now: Timestamp,
) -> RoomEvent {
    RoomEvent::MessageDeleted {
        message_id,
        sender: m.sender,
        target_user_ids: m.target_user_ids.clone(),
        by,
        reason,
        at: now,
    }
}

/// `Delete`: the sender, who may still see the room, deletes their message. A deleted
/// message is gone: deleting it again changes nothing, whoever asks (its post may be
/// gone from the caller's lookup by then).
fn delete(
    room: &Room,
    message_id: MessageId,
    message: Option<&PostedMessage>,
    by: UserId,
    now: Timestamp,
) -> Result<Vec<RoomEvent>, RoomError> {
    let room = room.seen_by(by)?;
    if room.deleted.contains(&message_id) {
        return Ok(vec![]);
    }
    let m = message.ok_or(RoomError::MessageNotFound)?;
    if m.sender != by {
        return Err(RoomError::NotSender);
    }
    Ok(vec![deleted(
        message_id,
        m,
        Some(by),
        DeleteReason::Sender,
        now,
    )])
}

/// `EraseSender`: every message of `user` the caller found that is not yet deleted, in
/// posting order.
fn erase_sender(room: &Room, cmd: &RoomCommand) -> Result<Vec<RoomEvent>, RoomError> {
    let RoomCommand::EraseSender {
        user_id,
        posts,
        by,
        now,
    } = cmd
    else {
        return Ok(vec![]);
    };
    Ok(posts
        .iter()
        .filter(|(id, m)| m.sender == *user_id && !room.deleted.contains(id))
        .map(|(id, m)| deleted(*id, m, *by, DeleteReason::Admin, *now))
        .collect())
}

/// A post's targets, deduplicated in order; each must be a current member.
fn member_targets(room: &Room, targets: &[UserId]) -> Result<Vec<UserId>, RoomError> {
    let mut out: Vec<UserId> = Vec::with_capacity(targets.len());
    for t in targets {
        if !room.is_member(*t) {
            return Err(RoomError::TargetNotMember(*t));
        }
        if !out.contains(t) {
            out.push(*t);
        }
    }
    Ok(out)
}

impl Decider for RoomDecider {
    type Command = RoomCommand;
    type Event = RoomEvent;
    type State = RoomState;
    type Error = RoomError;

    fn decide(state: &RoomState, cmd: &RoomCommand) -> Result<Vec<RoomEvent>, RoomError> {
        match cmd {
            RoomCommand::Create {
                room_id,
                name,
                visibility,
                owner,
                now,
            } => create(state, *room_id, name, *visibility, *owner, *now),
            RoomCommand::Join { user_id, now } => {
                let room = created(state)?.seen_by(*user_id)?;
                if room.is_member(*user_id) {
                    return Ok(vec![]);
                }
                Ok(vec![RoomEvent::MemberJoined {
                    user_id: *user_id,
                    by: *user_id,
                    at: *now,
                }])
            }
            RoomCommand::Leave { user_id, now } => {
                let room = member_of(created(state)?, *user_id)?;
                if room.owner == *user_id {
                    return Err(RoomError::OwnerCannotLeave);
                }
                Ok(vec![RoomEvent::MemberLeft {
                    user_id: *user_id,
                    by: *user_id,
                    reason: LeaveReason::Left,
                    at: *now,
                }])
            }
            RoomCommand::AddMember { by, user_id, now } => {
                let room = owned_by(created(state)?, *by)?;
                if room.is_member(*user_id) {
                    return Ok(vec![]);
                }
                Ok(vec![RoomEvent::MemberJoined {
                    user_id: *user_id,
                    by: *by,
                    at: *now,
                }])
            }
            RoomCommand::RemoveMember { by, user_id, now } => {
                remove_member(owned_by(created(state)?, *by)?, *by, *user_id, *now)
            }
            RoomCommand::Post { .. } => post(created(state)?, cmd),
            RoomCommand::Delete {
                message_id,
                message,
                by,
                now,
            } => delete(created(state)?, *message_id, message.as_ref(), *by, *now),
            RoomCommand::EraseSender { .. } => erase_sender(created(state)?, cmd),
        }
    }

    fn evolve(state: RoomState, event: &RoomEvent) -> RoomState {
        match (state, event) {
            (
                RoomState::None,
                RoomEvent::RoomCreated {
                    room_id,
                    name,
                    visibility,
                    owner,
                    at,
                },
            ) => RoomState::Active(Room {
                id: *room_id,
                name: name.clone(),
                visibility: *visibility,
                owner: *owner,
                members: BTreeSet::from([*owner]),
                created_at: *at,
                deleted: BTreeSet::new(),
            }),
            (RoomState::Active(mut room), RoomEvent::MemberJoined { user_id, .. }) => {
                room.members.insert(*user_id);
                RoomState::Active(room)
            }
            (RoomState::Active(mut room), RoomEvent::MemberLeft { user_id, .. }) => {
                room.members.remove(user_id);
                RoomState::Active(room)
            }
            (RoomState::Active(mut room), RoomEvent::MessageDeleted { message_id, .. }) => {
                room.deleted.insert(*message_id);
                RoomState::Active(room)
            }
            (state, _) => state,
        }
    }
}

/// The room every command but `Create` needs.
fn created(state: &RoomState) -> Result<&Room, RoomError> {
    state.room().ok_or(RoomError::NotFound)
}

/// `user` must be a member: a non-member of a private room is told it does not exist.
fn member_of(room: &Room, user: UserId) -> Result<&Room, RoomError> {
    let room = room.seen_by(user)?;
    if room.is_member(user) {
        Ok(room)
    } else {
        Err(RoomError::NotAMember)
    }
}

/// `by` must be the owner; someone who cannot see a private room is told it does not exist.
fn owned_by(room: &Room, by: UserId) -> Result<&Room, RoomError> {
    let room = room.seen_by(by)?;
    if room.owner == by {
        Ok(room)
    } else {
        Err(RoomError::Forbidden)
    }
}

#[cfg(test)]
mod tests;

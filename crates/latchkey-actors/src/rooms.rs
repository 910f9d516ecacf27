//! Room operations on `Core`: create, list, discover, join, leave, add and remove members,
//! post, delete a message, erase a user's messages, and history filtered by the
//! visibility rule. A room the caller may not see and a
//! room that does not exist answer the same `NotFound`.

use crate::auth::Auth;
use crate::core::Core;
use crate::erasure;
use crate::error::CoreError;
pub use crate::roommodel::HistoryPage;
use crate::roommodel::{self, RoomRow, RowBody, MAX_SCAN};
use latchkey_domain::{
    Actor as Who, MessageId, RoomCommand, RoomEvent, RoomId, RoomVisibility, UserId,
};
use uuid::Uuid;

/// Largest history page (the `limit` query parameter's upper bound).
pub const MAX_PAGE: usize = 200;
/// History page when none is asked for.
pub const DEFAULT_PAGE: usize = 50;

impl Core {
    /// Refuses, from the read model and before any actor is spawned, a room that does not
    /// exist or that the caller may not see: both answer the same, and neither costs an
    /// actor (so timing tells nothing either). The actor still decides the rest.
    fn room_exists(&self, auth: &Auth, room: RoomId) -> Result<(), CoreError> {
        if self.store().stream_head(&room.stream())?.0 == 0 {
            return Err(CoreError::NotFound("no such room"));
        }
        self.get_room(auth, room).map(|_| ())
    }

    async fn room_command(
        &self,
        auth: &Auth,
        room: RoomId,
        cmd: RoomCommand,
    ) -> Result<(Vec<RoomEvent>, u64), CoreError> {
        let out = self
            .rooms_registry()
            .execute(room.stream(), cmd, Who::User(auth.user_id))
            .await?;
        self.wait_applied(out.last_seq).await?;
        Ok((out.events, out.last_seq))
    }

    /// Creates a room owned by the caller.
    pub async fn create_room(
        &self,
        auth: &Auth,
        name: &str,
        visibility: RoomVisibility,
    ) -> Result<RoomRow, CoreError> {
        let room = RoomId(Uuid::new_v4());
        let cmd = RoomCommand::Create {
            room_id: room,
            name: name.to_string(),
            visibility,
            owner: auth.user_id,
            now: self.now(),
        };
        self.room_command(auth, room, cmd).await?;
        self.models()
            .rooms()
            .room(room)?
            .ok_or_else(|| CoreError::Internal("created room is not projected".into()))
    }

    /// The caller's rooms.
    pub fn my_rooms(&self, auth: &Auth) -> Result<Vec<RoomRow>, CoreError> {
        Ok(self.models().rooms().rooms_of(auth.user_id)?)
    }

    /// Public rooms.
    pub fn public_rooms(&self) -> Result<Vec<RoomRow>, CoreError> {
        Ok(self.models().rooms().public_rooms(1000)?)
    }

    /// A room, if the caller may see it (public, or a member now).
    pub fn get_room(&self, auth: &Auth, room: RoomId) -> Result<RoomRow, CoreError> {
        let row = self
            .models()
            .rooms()
            .room(room)?
            .ok_or(CoreError::NotFound("no such room"))?;
        if row.visibility == RoomVisibility::Public
            || self.models().rooms().is_member(room, auth.user_id)?
        {
            Ok(row)
        } else {
            Err(CoreError::NotFound("no such room"))
        }
    }

    /// Joins a public room.
    pub async fn join_room(&self, auth: &Auth, room: RoomId) -> Result<(), CoreError> {
        self.room_exists(auth, room)?;
        let cmd = RoomCommand::Join {
            user_id: auth.user_id,
            now: self.now(),
        };
        self.room_command(auth, room, cmd).await.map(|_| ())
    }

    /// Leaves a room.
    pub async fn leave_room(&self, auth: &Auth, room: RoomId) -> Result<(), CoreError> {
        self.room_exists(auth, room)?;
        let cmd = RoomCommand::Leave {
            user_id: auth.user_id,
            now: self.now(),
        };
        self.room_command(auth, room, cmd).await.map(|_| ())
    }

    /// The owner adds a user.
    pub async fn add_member(
        &self,
        auth: &Auth,
        room: RoomId,
        user: UserId,
    ) -> Result<(), CoreError> {
        self.room_exists(auth, room)?;
        // Who may ask comes first: only the owner learns whether a user id exists.
        if self.get_room(auth, room)?.owner != auth.user_id {
            return Err(CoreError::Forbidden("only the room's owner may do this"));
        }
        if self.models().user(user)?.is_none() {
            return Err(CoreError::NotFound("no such user"));
        }
        let cmd = RoomCommand::AddMember {
            by: auth.user_id,
            user_id: user,
            now: self.now(),
        };
        self.room_command(auth, room, cmd).await.map(|_| ())
    }

    /// The owner removes a member.
    pub async fn remove_member(
        &self,
        auth: &Auth,
        room: RoomId,
        user: UserId,
    ) -> Result<(), CoreError> {
        self.room_exists(auth, room)?;
        let cmd = RoomCommand::RemoveMember {
            by: auth.user_id,
            user_id: user,
            now: self.now(),
        };
        self.room_command(auth, room, cmd).await.map(|_| ())
    }

    /// Posts a message; returns its id and seq.
    pub async fn post_message(
        &self,
        auth: &Auth,
        room: RoomId,
        body: String,
        target_user_ids: Vec<UserId>,
        reply_to: Option<MessageId>,
    ) -> Result<(MessageId, u64), CoreError> {
        self.room_exists(auth, room)?;
        let message_id = MessageId(Uuid::now_v7());
        let cmd = RoomCommand::Post {
            message_id,
            sender: auth.user_id,
            body,
            target_user_ids,
            reply_to,
            secret: self.random32(),
            now: self.now(),
        };
        let (_, seq) = self.room_command(auth, room, cmd).await?;
        Ok((message_id, seq))
    }

    /// The sender deletes their message: its body is erased from storage in the same
    /// write as the `MessageDeleted` event. Deleting it again changes nothing.
    pub async fn delete_message(
        &self,
        auth: &Auth,
        room: RoomId,
        message_id: MessageId,
    ) -> Result<(), CoreError> {
        if self.store().stream_head(&room.stream())?.0 == 0 {
            return Err(CoreError::NotFound("no such room"));
        }
        let found = erasure::find_post(
            self.store().as_ref(),
            self.models().rooms(),
            room,
            message_id,
        )?;
        let legacy = found.as_ref().and_then(|f| f.legacy);
        let cmd = RoomCommand::Delete {
            message_id,
            message: found.map(|f| f.message),
            by: auth.user_id,
            now: self.now(),
        };
        let (events, _) = self.room_command(auth, room, cmd).await?;
        if events.is_empty() {
            return Ok(());
        }
        self.drop_legacy_bodies(legacy.into_iter().collect()).await
    }

    /// Tombstones legacy posts whose deletions are in the log (see `erasure`), on the
    /// blocking pool: the tombstone waits for the journal thread.
    async fn drop_legacy_bodies(&self, seqs: Vec<u64>) -> Result<(), CoreError> {
        if seqs.is_empty() {
            return Ok(());
        }
        let store = self.store().clone();
        tokio::task::spawn_blocking(move || erasure::drop_legacy_bodies(store.as_ref(), &seqs))
            .await
            .map_err(|e| CoreError::Internal(format!("the erasure thread failed: {e}")))??;
        Ok(())
    }

    /// An admin erases every message `user` sent, in every room they were ever a member
    /// of (no one posts elsewhere); returns how many messages were erased and the seq of
    /// the last deletion (0 when there was nothing to erase). Each room's erasure covers
    /// the posts its stream holds when it is read, after catching up with other nodes.
    pub async fn erase_messages(
        &self,
        admin: UserId,
        user: UserId,
    ) -> Result<(u64, u64), CoreError> {
        self.catch_up().await?;
        let rooms = self.models().rooms().rooms_ever(user)?;
        let (mut erased, mut seq) = (0u64, 0u64);
        for room in rooms {
            let found = erasure::posts_by(self.store().as_ref(), room, user)?;
            let cmd = RoomCommand::EraseSender {
                user_id: user,
                posts: found.posts,
                by: Some(admin),
                now: self.now(),
            };
            let out = self
                .rooms_registry()
                .execute(room.stream(), cmd, Who::Admin(admin))
                .await?;
            self.wait_applied(out.last_seq).await?;
            erased += out.events.len() as u64;
            seq = seq.max(out.last_seq);
            self.drop_legacy_bodies(found.legacy).await?;
        }
        Ok((erased, seq))
    }

    /// History, filtered by the visibility rule alone (DESIGN §7): a member, current or
    /// former, reads the events of their own membership periods; a user who never was a
    /// member gets `NotFound` for a private room and `NotAMember` for a public one. WS
    /// resume follows the same rule.
    pub fn history(
        &self,
        auth: &Auth,
        room: RoomId,
        before: Option<u64>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<HistoryPage, CoreError> {
        let rooms = self.models().rooms();
        let row = rooms
            .room(room)?
            .ok_or(CoreError::NotFound("no such room"))?;
        if rooms.intervals(room, auth.user_id)?.is_empty() {
            return Err(match row.visibility {
                RoomVisibility::Public => CoreError::NotAMember,
                RoomVisibility::Private => CoreError::NotFound("no such room"),
            });
        }
        let limit = limit.clamp(1, MAX_PAGE);
        let mut page =
            roommodel::history(rooms, auth.user_id, room, (before, after), limit, MAX_SCAN)?;
        // Bodies are joined here, from the store, and exist only in this answer.
        for m in &mut page.messages {
            if matches!(m.body, RowBody::Detached | RowBody::InLog) {
                m.body = match m.text(self.store().as_ref())? {
                    Some(text) => RowBody::Inline(text),
                    None => RowBody::Deleted,
                };
            }
        }
        Ok(page)
    }
}

//! The rooms read model (`rm/rooms`) and its queries: rooms, membership intervals, each
//! user's current rooms, the public index, and every room's messages by seq.
//!
//! - `r`+room -> `RoomRow`; `p`+room -> () for public rooms;
//! - `m`+room+user -> the user's `IntervalRow`s in that room (DESIGN §4 intervals);
//! - `u`+user+room -> () while the user is a member;
//! - `g`+room+seq -> `MessageRow`.
//!
//! It stores what the events say; who may see what is `latchkey_domain::may_see`'s call.

use latchkey_domain::{
    Event, MembershipInterval, MessageId, RoomEvent, RoomId, RoomVisibility, Timestamp, UserId,
};
use latchkey_store::codec;
use latchkey_store::projection::{Projection, ReadModel, ReadModelWriter};
use latchkey_store::{Recorded, StoreError, StoreResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomRow {
    /// Its id.
    pub id: RoomId,
    /// Display name.
    pub name: String,
    /// Public or private.
    pub visibility: RoomVisibility,
    /// The creator.
    pub owner: UserId,
    /// When it was created.
    pub created_at: Timestamp,
}

/// One membership interval as stored (inclusive seqs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntervalRow {
    /// Seq of the event that added the user.
    pub joined_seq: u64,
    /// Seq of the event that removed them; `None` while a member.
    pub left_seq: Option<u64>,
}

impl From<IntervalRow> for MembershipInterval {
    fn from(r: IntervalRow) -> Self {
        MembershipInterval {
            joined_seq: r.joined_seq,
            left_seq: r.left_seq,
        }
    }
}

/// A posted message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRow {
    /// Its id.
    pub message_id: MessageId,
    /// Its global seq.
    pub seq: u64,
    /// Who posted it.
    pub sender: UserId,
    /// The text.
    pub body: String,
    /// Its targets; empty for everyone.
    pub target_user_ids: Vec<UserId>,
    /// What it answers.
    pub reply_to: Option<MessageId>,
    /// When it was posted.
    pub sent_at: Timestamp,
}

fn key(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = vec![tag];
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

fn room_of(rec: &Recorded) -> Option<RoomId> {
    rec.envelope.stream.room()
}

/// Projection of rooms, memberships and messages.
pub struct RoomsProjection;

impl RoomsProjection {
    fn intervals(rm: &ReadModelWriter<'_>, k: &[u8]) -> StoreResult<Vec<IntervalRow>> {
        match rm.get(k)? {
            Some(b) => codec::decode(&b, "room intervals"),
            None => Ok(Vec::new()),
        }
    }

    fn open(rm: &mut ReadModelWriter<'_>, room: RoomId, user: UserId, seq: u64) -> StoreResult<()> {
        let k = key(b'm', &[room.0.as_bytes(), user.0.as_bytes()]);
        let mut list = Self::intervals(rm, &k)?;
        if list.last().is_none_or(|i| i.left_seq.is_some()) {
            list.push(IntervalRow {
                joined_seq: seq,
                left_seq: None,
            });
        }
        rm.insert(k, codec::encode(&list)?)?;
        rm.insert(
            key(b'u', &[user.0.as_bytes(), room.0.as_bytes()]),
            Vec::new(),
        )
    }

    fn close(
        rm: &mut ReadModelWriter<'_>,
        room: RoomId,
        user: UserId,
        seq: u64,
    ) -> StoreResult<()> {
        let k = key(b'm', &[room.0.as_bytes(), user.0.as_bytes()]);
        let mut list = Self::intervals(rm, &k)?;
        if let Some(last) = list.last_mut() {
            if last.left_seq.is_none() {
                last.left_seq = Some(seq);
            }
        }
        rm.insert(k, codec::encode(&list)?)?;
        rm.remove(key(b'u', &[user.0.as_bytes(), room.0.as_bytes()]))
    }
}

impl Projection for RoomsProjection {
    fn name(&self) -> &str {
        "rooms"
    }

    fn apply(&mut self, rec: &Recorded, rm: &mut ReadModelWriter<'_>) -> StoreResult<()> {
        let (Event::Room(e), Some(room)) = (&rec.event, room_of(rec)) else {
            return Ok(());
        };
        let seq = rec.seq();
        match e {
            RoomEvent::RoomCreated {
                name,
                visibility,
                owner,
                at,
                ..
            } => {
                let row = RoomRow {
                    id: room,
                    name: name.clone(),
                    visibility: *visibility,
                    owner: *owner,
                    created_at: *at,
                };
                rm.insert(key(b'r', &[room.0.as_bytes()]), codec::encode(&row)?)?;
                if *visibility == RoomVisibility::Public {
                    rm.insert(key(b'p', &[room.0.as_bytes()]), Vec::new())?;
                }
                Self::open(rm, room, *owner, seq)?;
            }
            RoomEvent::MemberJoined { user_id, .. } => Self::open(rm, room, *user_id, seq)?,
            RoomEvent::MemberLeft { user_id, .. } => Self::close(rm, room, *user_id, seq)?,
            RoomEvent::MessagePosted {
                message_id,
                sender,
                body,
                target_user_ids,
                reply_to,
                at,
            } => {
                let row = MessageRow {
                    message_id: *message_id,
                    seq,
                    sender: *sender,
                    body: body.clone(),
                    target_user_ids: target_user_ids.clone(),
                    reply_to: *reply_to,
                    sent_at: *at,
                };
                rm.insert(
                    key(b'g', &[room.0.as_bytes(), &seq.to_be_bytes()]),
                    codec::encode(&row)?,
                )?;
            }
        }
        Ok(())
    }
}

fn sled_err(e: sled::Error) -> StoreError {
    StoreError::Sled(e.to_string())
}

/// Read access to the rooms model.
#[derive(Clone)]
pub struct Rooms {
    model: ReadModel,
}

impl Rooms {
    /// Opens `rm/rooms`.
    pub fn open(db: &sled::Db) -> StoreResult<Self> {
        Ok(Self {
            model: ReadModel::open(db, "rooms")?,
        })
    }

    /// A room by id.
    pub fn room(&self, id: RoomId) -> StoreResult<Option<RoomRow>> {
        self.model
            .get(&key(b'r', &[id.0.as_bytes()]))?
            .map(|b| codec::decode(&b, "room row"))
            .transpose()
    }

    /// A user's intervals in a room, oldest first.
    pub fn intervals(&self, room: RoomId, user: UserId) -> StoreResult<Vec<MembershipInterval>> {
        let rows: Vec<IntervalRow> = match self
            .model
            .get(&key(b'm', &[room.0.as_bytes(), user.0.as_bytes()]))?
        {
            Some(b) => codec::decode(&b, "room intervals")?,
            None => Vec::new(),
        };
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Whether a user is a member now.
    pub fn is_member(&self, room: RoomId, user: UserId) -> StoreResult<bool> {
        Ok(self
            .model
            .get(&key(b'u', &[user.0.as_bytes(), room.0.as_bytes()]))?
            .is_some())
    }

    /// The rooms a user is a member of now.
    pub fn rooms_of(&self, user: UserId) -> StoreResult<Vec<RoomRow>> {
        let mut out = Vec::new();
        for kv in self
            .model
            .tree()
            .scan_prefix(key(b'u', &[user.0.as_bytes()]))
        {
            let (k, _) = kv.map_err(sled_err)?;
            if let Some(id) = k.get(17..33).and_then(|b| Uuid::from_slice(b).ok()) {
                if let Some(r) = self.room(RoomId(id))? {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }

    /// Public rooms, at most `limit`.
    pub fn public_rooms(&self, limit: usize) -> StoreResult<Vec<RoomRow>> {
        let mut out = Vec::new();
        for kv in self.model.tree().scan_prefix([b'p']).take(limit) {
            let (k, _) = kv.map_err(sled_err)?;
            if let Some(id) = k.get(1..17).and_then(|b| Uuid::from_slice(b).ok()) {
                if let Some(r) = self.room(RoomId(id))? {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }

    /// Messages of a room with `after < seq < before`, newest first, scanning at most
    /// `scan` rows; the caller filters by visibility.
    pub fn messages(
        &self,
        room: RoomId,
        before: Option<u64>,
        after: Option<u64>,
        scan: usize,
    ) -> StoreResult<Vec<MessageRow>> {
        let lo = key(
            b'g',
            &[
                room.0.as_bytes(),
                &after.map_or(0, |a| a.saturating_add(1)).to_be_bytes(),
            ],
        );
        let hi = key(
            b'g',
            &[room.0.as_bytes(), &before.unwrap_or(u64::MAX).to_be_bytes()],
        );
        let mut out = Vec::new();
        for kv in self.model.tree().range(lo..hi).rev().take(scan) {
            let (_, v) = kv.map_err(sled_err)?;
            out.push(codec::decode(&v, "message row")?);
        }
        Ok(out)
    }

    /// Every room's intervals, for the fanout hub's start-up state.
    pub fn all_intervals(&self) -> StoreResult<Vec<(RoomId, UserId, Vec<MembershipInterval>)>> {
        let mut out = Vec::new();
        for kv in self.model.tree().scan_prefix([b'm']) {
            let (k, v) = kv.map_err(sled_err)?;
            let room = k.get(1..17).and_then(|b| Uuid::from_slice(b).ok());
            let user = k.get(17..33).and_then(|b| Uuid::from_slice(b).ok());
            if let (Some(room), Some(user)) = (room, user) {
                let rows: Vec<IntervalRow> = codec::decode(&v, "room intervals")?;
                out.push((
                    RoomId(room),
                    UserId(user),
                    rows.into_iter().map(Into::into).collect(),
                ));
            }
        }
        Ok(out)
    }
}

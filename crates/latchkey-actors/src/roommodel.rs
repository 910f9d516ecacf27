//! The rooms read model (`rm/rooms`) and its queries: rooms, membership intervals, each
//! user's current rooms, the public index, and every room's messages by seq.
//!
//! - `r`+room -> `RoomRow`; `p`+room -> () for public rooms;
//! - `m`+room+user+joined seq -> left seq (`Option<u64>`): one row per membership
//!   interval (DESIGN §4), as the domain's `membership_change` builds them;
//! - `u`+user+room -> the open interval's joined seq, while the user is a member;
//! - `e`+user+room -> () for every room the user was ever a member of;
//! - `g`+room+seq -> `MessageRow`; `i`+room+message id -> its seq, so a deletion finds
//!   its row. A deleted message keeps its row with `RowBody::Deleted`.
//!
//! A detached body (`MessagePostedV2`) is never copied here, not even for a while: sled
//! keeps overwritten values in its files, so a copy would outlive the body's erasure.
//! Nor is a legacy body (`MessagePosted`): it is in the post's envelope already, so a copy
//! would only double the rows a rebuild writes. Readers join either from the store
//! ([`MessageRow::text`]).
//!
//! It stores what the events say; who may see what is `latchkey_domain::may_see`'s call.
//! [`history`] and [`resume_batch`] are the queries behind REST history and WebSocket
//! resume: the only readers of intervals that serve room events.

use crate::readmodel::row_key as key;
use latchkey_domain::visibility::{audience, membership_change, MembershipChange};
use latchkey_domain::{
    may_see, Event, MembershipInterval, MessageId, RoomEvent, RoomId, RoomMembership,
    RoomVisibility, Timestamp, UserId,
};
use latchkey_store::codec;
use latchkey_store::projection::{Projection, ReadModel, ReadModelWriter};
use latchkey_store::{EventStore, Recorded, StoreResult};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
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

/// A posted message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRow {
    /// Its id.
    pub message_id: MessageId,
    /// Its global seq.
    pub seq: u64,
    /// Who posted it.
    pub sender: UserId,
    /// The text, where it is.
    pub body: RowBody,
    /// Its targets; empty for everyone.
    pub target_user_ids: Vec<UserId>,
    /// What it answers.
    pub reply_to: Option<MessageId>,
    /// When it was posted.
    pub sent_at: Timestamp,
}

/// Where a message's text is. Variants are append-only (the index is the encoding).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RowBody {
    /// The text, joined in memory by [`MessageRow::text`] (never stored so since layout 4).
    Inline(String),
    /// Beside the log, in the store's `bodies` tree.
    Detached,
    /// Deleted or erased.
    Deleted,
    /// In the post's own envelope (a legacy `MessagePosted`), at the row's seq.
    InLog,
}

impl MessageRow {
    /// The text, if any: read from the store (a detached body, absent once erased; or the
    /// post's envelope, absent once it is a tombstone).
    pub fn text(&self, store: &dyn EventStore) -> StoreResult<Option<String>> {
        match &self.body {
            RowBody::Inline(t) => Ok(Some(t.clone())),
            RowBody::Detached => Ok(store.message_body(&self.message_id)?.map(|b| b.text)),
            RowBody::Deleted => Ok(None),
            RowBody::InLog => {
                // The first live event at or after the seq: the post, unless it is a tombstone.
                let Some(rec) = store.read_all(self.seq)?.next().transpose()? else {
                    return Ok(None);
                };
                Ok(match rec.event {
                    Event::Room(RoomEvent::MessagePosted {
                        message_id, body, ..
                    }) if rec.envelope.seq == self.seq && message_id == self.message_id => {
                        Some(body)
                    }
                    _ => None,
                })
            }
        }
    }
}

fn room_of(rec: &Recorded) -> Option<RoomId> {
    rec.envelope.stream.room()
}

/// Projection of rooms, memberships and messages.
pub struct RoomsProjection;

fn interval_key(room: RoomId, user: UserId, joined_seq: u64) -> Vec<u8> {
    key(
        b'm',
        &[
            room.0.as_bytes(),
            user.0.as_bytes(),
            &joined_seq.to_be_bytes(),
        ],
    )
}

fn message_key(room: RoomId, seq: u64) -> Vec<u8> {
    key(b'g', &[room.0.as_bytes(), &seq.to_be_bytes()])
}

fn message_index_key(room: RoomId, id: MessageId) -> Vec<u8> {
    key(b'i', &[room.0.as_bytes(), id.0.as_bytes()])
}

fn member_key(user: UserId, room: RoomId) -> Vec<u8> {
    key(b'u', &[user.0.as_bytes(), room.0.as_bytes()])
}

fn seq_of(bytes: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(bytes).ok().map(u64::from_be_bytes)
}

impl RoomsProjection {
    /// Applies the domain's membership rule: a few rows per change, whatever the number
    /// of past intervals.
    fn membership(
        rm: &mut ReadModelWriter<'_>,
        room: RoomId,
        seq: u64,
        event: &RoomEvent,
    ) -> StoreResult<()> {
        let mut lookup = Ok(());
        let change = membership_change(seq, event, |user| match rm.get(&member_key(user, room)) {
            Ok(v) => v.as_deref().and_then(seq_of),
            Err(e) => {
                lookup = Err(e);
                None
            }
        });
        lookup?;
        match change {
            Some(MembershipChange::Opened { user, joined_seq }) => {
                let none: Option<u64> = None;
                rm.insert(interval_key(room, user, joined_seq), codec::encode(&none)?)?;
                rm.insert(member_key(user, room), joined_seq.to_be_bytes().to_vec())?;
                rm.insert(
                    key(b'e', &[user.0.as_bytes(), room.0.as_bytes()]),
                    Vec::new(),
                )
            }
            Some(MembershipChange::Closed { user, interval }) => {
                rm.insert(
                    interval_key(room, user, interval.joined_seq),
                    codec::encode(&interval.left_seq)?,
                )?;
                rm.remove(member_key(user, room))
            }
            None => Ok(()),
        }
    }
}

impl Projection for RoomsProjection {
    fn name(&self) -> &str {
        "rooms"
    }

    /// 3: one row per membership interval, the current members by user, and messages
    /// indexed by id with an optional (erasable) body. 4: a legacy body stays in the log.
    fn layout(&self) -> u32 {
        4
    }

    fn apply(&mut self, rec: &Recorded, rm: &mut ReadModelWriter<'_>) -> StoreResult<()> {
        let (Event::Room(e), Some(room)) = (&rec.event, room_of(rec)) else {
            return Ok(());
        };
        let seq = rec.seq();
        Self::membership(rm, room, seq, e)?;
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
            }
            RoomEvent::MemberJoined { .. } | RoomEvent::MemberLeft { .. } => {}
            RoomEvent::MessagePosted {
                message_id,
                sender,
                target_user_ids,
                reply_to,
                at,
                ..
            } => {
                let row = MessageRow {
                    message_id: *message_id,
                    seq,
                    sender: *sender,
                    body: RowBody::InLog,
                    target_user_ids: target_user_ids.clone(),
                    reply_to: *reply_to,
                    sent_at: *at,
                };
                Self::message(rm, room, &row)?;
            }
            RoomEvent::MessagePostedV2 {
                message_id,
                sender,
                target_user_ids,
                reply_to,
                at,
                ..
            } => {
                let row = MessageRow {
                    message_id: *message_id,
                    seq,
                    sender: *sender,
                    body: RowBody::Detached,
                    target_user_ids: target_user_ids.clone(),
                    reply_to: *reply_to,
                    sent_at: *at,
                };
                Self::message(rm, room, &row)?;
            }
            RoomEvent::MessageDeleted { message_id, .. } => {
                Self::forget_body(rm, room, *message_id)?;
            }
        }
        Ok(())
    }
}

impl RoomsProjection {
    /// Stores a message's row and its id index.
    fn message(rm: &mut ReadModelWriter<'_>, room: RoomId, row: &MessageRow) -> StoreResult<()> {
        rm.insert(message_key(room, row.seq), codec::encode(row)?)?;
        rm.insert(
            message_index_key(room, row.message_id),
            row.seq.to_be_bytes().to_vec(),
        )
    }

    /// A deleted message keeps its row (its seq, sender and audience) without its body. A
    /// legacy post (body in its envelope) loses its row and index: its envelope becomes a
    /// tombstone (`crate::erasure`), which a rebuild skips, so both paths agree.
    fn forget_body(rm: &mut ReadModelWriter<'_>, room: RoomId, id: MessageId) -> StoreResult<()> {
        let Some(seq) = rm
            .get(&message_index_key(room, id))?
            .as_deref()
            .and_then(seq_of)
        else {
            return Ok(());
        };
        let Some(bytes) = rm.get(&message_key(room, seq))? else {
            return Ok(());
        };
        let mut row: MessageRow = codec::decode(&bytes, "message row")?;
        if let RowBody::Inline(_) | RowBody::InLog = row.body {
            rm.remove(message_key(room, seq))?;
            return rm.remove(message_index_key(room, id));
        }
        row.body = RowBody::Deleted;
        rm.insert(message_key(room, seq), codec::encode(&row)?)
    }
}

/// Read access to the rooms model.
#[derive(Clone)]
pub struct Rooms {
    model: ReadModel,
}

impl Rooms {
    /// Opens `rm/rooms`.
    pub fn open(store: &dyn EventStore) -> StoreResult<Self> {
        Ok(Self {
            model: store.read_model("rooms")?,
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
        let prefix = key(b'm', &[room.0.as_bytes(), user.0.as_bytes()]);
        let mut out = Vec::new();
        for kv in self.model.scan_prefix(&prefix) {
            let (k, v) = kv?;
            if let Some(i) = interval_row(&k, &v)? {
                out.push(i.2);
            }
        }
        Ok(out)
    }

    /// Every room `user` was ever a member of (for `admin state`, with [`Self::intervals`]).
    pub fn rooms_ever(&self, user: UserId) -> StoreResult<Vec<RoomId>> {
        let mut out = Vec::new();
        for kv in self.model.scan_prefix(&key(b'e', &[user.0.as_bytes()])) {
            let (k, _) = kv?;
            if let Some(id) = k.get(17..33).and_then(|b| Uuid::from_slice(b).ok()) {
                out.push(RoomId(id));
            }
        }
        Ok(out)
    }

    /// The seq of a message's post in `room`, from the id index.
    pub fn message_seq(&self, room: RoomId, id: MessageId) -> StoreResult<Option<u64>> {
        Ok(self
            .model
            .get(&message_index_key(room, id))?
            .as_deref()
            .and_then(seq_of))
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
        for kv in self.model.scan_prefix(&key(b'u', &[user.0.as_bytes()])) {
            let (k, _) = kv?;
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
        for kv in self.model.scan_prefix(b"p").take(limit) {
            let (k, _) = kv?;
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
        for kv in self.model.range(&lo, &hi).rev().take(scan) {
            let (_, v) = kv?;
            out.push(codec::decode(&v, "message row")?);
        }
        Ok(out)
    }

    /// Every room's membership, for the fanout hub's start-up state.
    pub fn all_memberships(&self) -> StoreResult<HashMap<RoomId, RoomMembership>> {
        let mut out: HashMap<RoomId, RoomMembership> = HashMap::new();
        let mut current: Option<(RoomId, UserId, Vec<MembershipInterval>)> = None;
        for kv in self.model.scan_prefix(b"m") {
            let (k, v) = kv?;
            let Some((room, user, interval)) = interval_row(&k, &v)? else {
                continue;
            };
            match &mut current {
                Some((r, u, list)) if *r == room && *u == user => list.push(interval),
                _ => {
                    if let Some((r, u, list)) = current.take() {
                        out.entry(r).or_default().restore(u, list);
                    }
                    current = Some((room, user, vec![interval]));
                }
            }
        }
        if let Some((r, u, list)) = current {
            out.entry(r).or_default().restore(u, list);
        }
        Ok(out)
    }
}

/// One `m` row: (room, user, interval); `None` for a malformed key.
fn interval_row(k: &[u8], v: &[u8]) -> StoreResult<Option<(RoomId, UserId, MembershipInterval)>> {
    let room = k.get(1..17).and_then(|b| Uuid::from_slice(b).ok());
    let user = k.get(17..33).and_then(|b| Uuid::from_slice(b).ok());
    let joined = k.get(33..41).and_then(seq_of);
    let (Some(room), Some(user), Some(joined_seq)) = (room, user, joined) else {
        return Ok(None);
    };
    let left_seq: Option<u64> = codec::decode(v, "room interval")?;
    Ok(Some((
        RoomId(room),
        UserId(user),
        MembershipInterval {
            joined_seq,
            left_seq,
        },
    )))
}

/// Messages a history request reads per chunk while filtering; it reads a further chunk
/// only while its page is still empty (see [`history`]), and never outside the caller's
/// membership.
pub const MAX_SCAN: usize = 2_000;

/// A page of history.
#[derive(Debug)]
pub struct HistoryPage {
    /// Newest first.
    pub messages: Vec<MessageRow>,
    /// Pass as `before` for the next page: the seq of the oldest message on this page (one
    /// the viewer may see), or `None` when nothing older is left to read. It never names a
    /// message the viewer may not see.
    pub next_before: Option<u64>,
}

/// **The history query.** The messages of `room` with `after < seq < before` that the
/// visibility rule lets `viewer` see, newest first, at most `limit`. Who may ask at all (a
/// member, now or once) is the caller's check.
///
/// The scan is bounded by the viewer's membership: it starts at the last seq they may see
/// and never reads below the first one, so a late joiner's pages cost nothing for what was
/// posted before they joined. It reads `scan` rows at a time and stops after a chunk that
/// left the page with at least one message: the cursor must name a visible message, so a
/// chunk with none visible is followed by the next one (each is bounded by the membership).
pub fn history(
    rooms: &Rooms,
    viewer: UserId,
    room: RoomId,
    (before, after): (Option<u64>, Option<u64>),
    limit: usize,
    scan: usize,
) -> StoreResult<HistoryPage> {
    let intervals = rooms.intervals(room, viewer)?;
    let Some((first, last)) = visible_span(&intervals) else {
        return Ok(HistoryPage {
            messages: Vec::new(),
            next_before: None,
        });
    };
    let after = Some(after.map_or(first - 1, |a| a.max(first - 1)));
    let mut cursor = match (before, last) {
        (Some(b), Some(l)) => Some(b.min(l.saturating_add(1))),
        (None, Some(l)) => Some(l.saturating_add(1)),
        (b, None) => b,
    };
    let mut messages = Vec::with_capacity(limit);
    loop {
        let scanned = rooms.messages(room, cursor, after, scan.max(1))?;
        let reached_start = scanned.len() < scan.max(1);
        for m in scanned {
            cursor = Some(m.seq);
            let visible = may_see(
                viewer,
                &intervals,
                m.seq,
                Some(m.sender),
                &m.target_user_ids,
            );
            if visible {
                messages.push(m);
                if messages.len() == limit {
                    break;
                }
            }
        }
        let full = messages.len() == limit;
        if full || reached_start || !messages.is_empty() {
            let next_before = if reached_start && !full {
                None
            } else {
                messages.last().map(|m| m.seq)
            };
            return Ok(HistoryPage {
                messages,
                next_before,
            });
        }
    }
}

/// The first seq `intervals` let their user see, and the last (`None`: still a member);
/// `None` when there is no interval.
fn visible_span(intervals: &[MembershipInterval]) -> Option<(u64, Option<u64>)> {
    let first = intervals.iter().map(|i| i.joined_seq).min()?;
    let last = if intervals.iter().any(|i| i.left_seq.is_none()) {
        None
    } else {
        intervals.iter().filter_map(|i| i.left_seq).max()
    };
    Some((first.max(1), last))
}

/// Room events a resume replays, and where to continue.
#[derive(Debug)]
pub struct ResumeBatch {
    /// The events `viewer` may see, in seq order, with their rooms.
    pub events: Vec<(Recorded, RoomId)>,
    /// The seq to read from next; above `head` when the replay is done.
    pub next: u64,
}

/// **The resume query.** Up to `max` log entries from `from` (never past `head`), keeping
/// the room events the visibility rule lets `viewer` see.
pub fn resume_batch(
    store: &dyn EventStore,
    rooms: &Rooms,
    viewer: UserId,
    (from, head): (u64, u64),
    max: usize,
) -> StoreResult<ResumeBatch> {
    let mut intervals: HashMap<RoomId, Vec<MembershipInterval>> = HashMap::new();
    let mut events = Vec::new();
    let mut next = from;
    for rec in store.read_all(from)?.take(max) {
        let rec = rec?;
        if rec.seq() > head {
            return Ok(ResumeBatch {
                events,
                next: head + 1,
            });
        }
        next = rec.seq() + 1;
        let (Event::Room(event), Some(room)) = (&rec.event, room_of(&rec)) else {
            continue;
        };
        let list = match intervals.entry(room) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(rooms.intervals(room, viewer)?)
            }
        };
        let (sender, targets) = audience(event);
        if may_see(viewer, list, rec.seq(), sender, targets) {
            events.push((rec, room));
        }
    }
    if next == from {
        next = head + 1; // the log ended early: nothing more to replay
    }
    Ok(ResumeBatch { events, next })
}

#[cfg(test)]
mod tests;

//! The fanout hub: routes each applied room event to the WebSocket connections allowed to
//! see it, by room membership (never by scanning every connection), and closes the
//! connections of a revoked token or a disabled user at once.
//!
//! The projector calls [`Hub::apply`] with each applied chunk, in seq order, on its own
//! thread: after the read models have committed it (DESIGN §1), before `applied_seq`
//! moves. Registration happens under the same lock, so `head` (the last seq the hub has
//! routed) splits a connection's events exactly: everything after `head` arrives live;
//! everything up to it is history (REST, or a WebSocket resume), already in the read
//! models when the connection learns `head`.
//!
//! Each event is encoded once (by the server's encoder: the hub knows no JSON) and the
//! same bytes go to every recipient. Queues are bounded: a full queue closes that
//! connection with 4008 rather than growing.

pub mod queue;

pub use queue::{FrameReceiver, FrameSender};

use bytestring::ByteString;
use latchkey_domain::visibility::MembershipChange;
use latchkey_domain::{Event, RoomEvent, RoomId, RoomMembership, TokenId, UserEvent, UserId};
use latchkey_store::Recorded;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use tokio::sync::oneshot;

/// Encodes one room event as the frame text every recipient gets.
pub type Encode = Box<dyn Fn(&Recorded, RoomId, &RoomEvent) -> ByteString + Send + Sync>;

pub use crate::close::{CLOSE_CREDENTIAL, CLOSE_SLOW_CONSUMER};

/// One outgoing event frame.
#[derive(Clone, Debug)]
pub struct Frame {
    /// The event's seq.
    pub seq: u64,
    /// The encoded frame, shared by every recipient (a clone is a reference count).
    pub text: ByteString,
}

/// What a new connection gets from the hub.
pub struct Registration {
    /// The connection's id.
    pub id: u64,
    /// The last seq routed before this connection existed.
    pub head: u64,
    /// The user's rooms at `head`.
    pub rooms: Vec<RoomId>,
    /// Live frames after `head`, bounded.
    pub frames: FrameReceiver,
    /// Fires with a close code when the hub closes the connection.
    pub closed: oneshot::Receiver<u16>,
}

struct Conn {
    user: UserId,
    token: TokenId,
    tx: FrameSender,
    close: Option<oneshot::Sender<u16>>,
}

#[derive(Default)]
struct State {
    last_seq: u64,
    /// Each room's membership: the one representation (the domain's), restored from the
    /// rooms read model at start-up and fed every room event after.
    membership: HashMap<RoomId, RoomMembership>,
    /// Index over `membership`: each user's current rooms, for `register`.
    rooms_of: HashMap<UserId, HashSet<RoomId>>,
    conns: HashMap<u64, Conn>,
    by_user: HashMap<UserId, Vec<u64>>,
    by_token: HashMap<TokenId, Vec<u64>>,
    next_id: u64,
    shut: Option<u16>,
}

impl State {
    /// Keeps `rooms_of` in step with a membership change.
    fn index(&mut self, room: RoomId, change: MembershipChange) {
        match change {
            MembershipChange::Opened { user, .. } => {
                self.rooms_of.entry(user).or_default().insert(room);
            }
            MembershipChange::Closed { user, .. } => {
                if let Some(r) = self.rooms_of.get_mut(&user) {
                    r.remove(&room);
                    if r.is_empty() {
                        self.rooms_of.remove(&user);
                    }
                }
            }
        }
    }

    fn close(&mut self, id: u64, code: u16) {
        if let Some(mut conn) = self.conns.remove(&id) {
            if let Some(ids) = self.by_user.get_mut(&conn.user) {
                ids.retain(|c| *c != id);
                if ids.is_empty() {
                    self.by_user.remove(&conn.user);
                }
            }
            if let Some(ids) = self.by_token.get_mut(&conn.token) {
                ids.retain(|c| *c != id);
                if ids.is_empty() {
                    self.by_token.remove(&conn.token);
                }
            }
            if let Some(tx) = conn.close.take() {
                let _ = tx.send(code);
            }
        }
    }

    fn route(&mut self, rec: &Recorded, room: RoomId, event: &RoomEvent, encode: &Encode) {
        let seq = rec.seq();
        let membership = self.membership.entry(room).or_default();
        let change = membership.apply(seq, event);
        let membership = &*membership;
        // Members after the event, plus a leaver (who sees their own leave).
        let leaver = match change {
            Some(MembershipChange::Closed { user, .. }) => Some(user),
            _ => None,
        };
        let mut text: Option<ByteString> = None;
        let mut overflowed = Vec::new();
        for user in membership.members().chain(leaver) {
            // The one visibility rule decides; membership routing only narrows the search.
            if !membership.may_see(user, seq, event) {
                continue;
            }
            for id in self.by_user.get(&user).into_iter().flatten() {
                let Some(conn) = self.conns.get(id) else {
                    continue;
                };
                let frame = Frame {
                    seq,
                    text: text.get_or_insert_with(|| encode(rec, room, event)).clone(),
                };
                if conn.tx.try_send(frame).is_err() {
                    overflowed.push(*id);
                }
            }
        }
        if let Some(change) = change {
            self.index(room, change);
        }
        for id in overflowed {
            self.close(id, CLOSE_SLOW_CONSUMER);
        }
    }
}

/// The hub. Share it as `Arc<Hub>`.
pub struct Hub {
    state: Mutex<State>,
    encode: Encode,
    queue: usize,
}

fn room_of(rec: &Recorded) -> Option<RoomId> {
    rec.envelope.stream.room()
}

impl Hub {
    /// A hub whose state is the rooms read model at `head` (each room's membership);
    /// `queue` bounds each connection's pending frames.
    pub fn new(
        head: u64,
        membership: HashMap<RoomId, RoomMembership>,
        encode: Encode,
        queue: usize,
    ) -> Self {
        let mut rooms_of: HashMap<UserId, HashSet<RoomId>> = HashMap::new();
        for (room, m) in &membership {
            for user in m.members() {
                rooms_of.entry(user).or_default().insert(*room);
            }
        }
        let state = State {
            last_seq: head,
            membership,
            rooms_of,
            ..State::default()
        };
        Self {
            state: Mutex::new(state),
            encode,
            queue: queue.max(1),
        }
    }

    /// Registers a connection for `user` on `token`. `still_valid` runs under the hub's
    /// lock, so a revocation is either seen by it or routed to this connection afterwards:
    /// there is no window where a revoked token's connection survives. Refused, with the
    /// close code to give, when the hub is shutting down (1001) or the credential is no
    /// longer valid (4001).
    pub fn register(
        &self,
        user: UserId,
        token: TokenId,
        still_valid: impl FnOnce() -> bool,
    ) -> Result<Registration, u16> {
        let mut s = self.state.lock().map_err(|_| 1011u16)?;
        if let Some(code) = s.shut {
            return Err(code);
        }
        if !still_valid() {
            return Err(CLOSE_CREDENTIAL);
        }
        s.next_id += 1;
        let id = s.next_id;
        let (tx, frames) = queue::frame_queue(self.queue);
        let (close, closed) = oneshot::channel();
        s.conns.insert(
            id,
            Conn {
                user,
                token,
                tx,
                close: Some(close),
            },
        );
        s.by_user.entry(user).or_default().push(id);
        s.by_token.entry(token).or_default().push(id);
        let rooms = s
            .rooms_of
            .get(&user)
            .map(|r| r.iter().copied().collect())
            .unwrap_or_default();
        Ok(Registration {
            id,
            head: s.last_seq,
            rooms,
            frames,
            closed,
        })
    }

    /// Forgets a connection (it closed on its own).
    pub fn unregister(&self, id: u64) {
        if let Ok(mut s) = self.state.lock() {
            if let Some(conn) = s.conns.get_mut(&id) {
                conn.close = None; // nobody listens any more
            }
            s.close(id, 1000);
        }
    }

    /// Routes a chunk of applied events (called by the projector, in seq order).
    pub fn apply(&self, chunk: &[Recorded]) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        for rec in chunk {
            if rec.seq() <= s.last_seq {
                continue;
            }
            match &rec.event {
                Event::Room(e) => {
                    if let Some(room) = room_of(rec) {
                        s.route(rec, room, e, &self.encode);
                    }
                }
                Event::User(UserEvent::TokenRevoked { token_id, .. })
                | Event::User(UserEvent::TokenExpired { token_id }) => {
                    let ids = s.by_token.get(token_id).cloned().unwrap_or_default();
                    for id in ids {
                        s.close(id, CLOSE_CREDENTIAL);
                    }
                }
                Event::User(UserEvent::UserDisabled { .. }) => {
                    if let Some(user) = rec.envelope.stream.user() {
                        let ids = s.by_user.get(&user).cloned().unwrap_or_default();
                        for id in ids {
                            s.close(id, CLOSE_CREDENTIAL);
                        }
                    }
                }
                _ => {}
            }
            s.last_seq = rec.seq();
        }
    }

    /// Closes every connection with `code` and refuses new ones (shutdown: 1001).
    pub fn close_all(&self, code: u16) {
        if let Ok(mut s) = self.state.lock() {
            s.shut = Some(code);
            let ids: Vec<u64> = s.conns.keys().copied().collect();
            for id in ids {
                s.close(id, code);
            }
        }
    }

    /// Open connections.
    pub fn connections(&self) -> usize {
        self.state.lock().map(|s| s.conns.len()).unwrap_or(0)
    }

    /// The last seq routed.
    pub fn head(&self) -> u64 {
        self.state.lock().map(|s| s.last_seq).unwrap_or(0)
    }
}

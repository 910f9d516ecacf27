//! WebSocket frames (DESIGN §8): JSON text frames, `type` from the server, `op` from the
//! client.
//!
//! The close codes are defined once, in `latchkey_actors::close` (the hub sends two of
//! them, and the actors do not depend on this crate): 4000 malformed frame, 4001
//! credential revoked or expired, 4008 slow consumer, 4029 too many frames, 1001 server
//! shutting down.

use serde::{Deserialize, Serialize};

/// A frame the server sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// First frame of every connection.
    Hello {
        /// Who is connected.
        user_id: String,
        /// This connection's id.
        connection_id: String,
        /// The seq at which the connection was registered: live events start after it.
        head: u64,
        /// The rooms the user is a member of at `head`.
        rooms: Vec<String>,
    },
    /// A room event the user may see.
    Event {
        /// Global seq.
        seq: u64,
        /// The room.
        room_id: String,
        /// `room.created`, `member.joined`, `member.left`, `message.posted`,
        /// `message.deleted`.
        event: String,
        /// The event's data.
        data: serde_json::Value,
    },
    /// The replay asked for by `resume` is complete; live events follow.
    Resumed {
        /// The `since` asked for.
        from: u64,
        /// The last replayed seq position (`hello.head`).
        to: u64,
    },
    /// `since` is older than the resume window: refetch history over REST.
    ResumeFailed {
        /// `too_old`.
        reason: String,
    },
    /// Answer to `ping`.
    Pong,
    /// A client frame was refused (the connection stays open).
    Error {
        /// An error code as in REST.
        error: String,
        /// Text.
        message: String,
    },
}

/// A frame the client sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Replay what was missed since `since`; only as the first frame.
    Resume {
        /// The last seq the client saw.
        since: u64,
    },
    /// Keep-alive; answered with `pong`. (A struct variant, so that unknown fields are
    /// refused like everywhere else: serde ignores `deny_unknown_fields` on unit variants.)
    Ping {},
    /// Post a message, with the REST rules.
    Send {
        /// The room.
        room_id: String,
        /// The text.
        body: String,
        /// Targets, as in REST.
        #[serde(default)]
        target_user_ids: Option<Vec<String>>,
        /// The message it answers.
        #[serde(default)]
        reply_to: Option<String>,
    },
}

/// `data` of `member.joined` and `member.left`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberData {
    /// The member.
    pub user_id: String,
    /// Who added or removed them (themselves for join/leave).
    pub by: String,
    /// `left` or `removed` (member.left only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `data` of `message.deleted`: the message's body is erased; clients drop it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageDeletedData {
    /// The deleted message.
    pub message_id: String,
    /// Its sender.
    pub sender: String,
    /// Who deleted it (the sender, or an admin); null for the offline admin tool.
    pub by: Option<String>,
    /// `sender` or `admin`.
    pub reason: String,
}

/// `data` of `room.created`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomCreatedData {
    /// Display name.
    pub name: String,
    /// `public` or `private`.
    pub visibility: crate::RoomVisibility,
    /// The owner.
    pub owner: String,
    /// RFC 3339.
    pub created_at: String,
}

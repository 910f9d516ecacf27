//! Bodies of the room routes (`/api/native/rooms/*`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Who may join a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoomVisibility {
    /// Anyone may find and join it.
    Public,
    /// The owner adds members.
    Private,
}

impl RoomVisibility {
    /// The wire name: `public` or `private`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RoomVisibility::Public => "public",
            RoomVisibility::Private => "private",
        }
    }
}

impl std::fmt::Display for RoomVisibility {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// `POST /api/native/rooms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreateRoomRequest {
    /// Display name, 1..=100 characters.
    pub name: String,
    /// `public` (anyone may join) or `private` (the owner adds members).
    pub visibility: RoomVisibility,
}

/// A room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoomInfo {
    /// The room's id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// `public` or `private`.
    pub visibility: RoomVisibility,
    /// The owner's user id.
    pub owner: String,
    /// RFC 3339.
    pub created_at: String,
}

/// `GET /api/native/rooms` (mine, or `?discover=public`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoomList {
    /// The rooms.
    pub rooms: Vec<RoomInfo>,
}

/// `POST /api/native/rooms/{id}/members`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AddMemberRequest {
    /// The user to add.
    pub user_id: String,
}

/// `POST /api/native/rooms/{id}/messages`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PostMessageRequest {
    /// 1..=4000 bytes of UTF-8.
    pub body: String,
    /// Only these members (and the sender) see it; all members when absent or empty.
    #[serde(default)]
    pub target_user_ids: Option<Vec<String>>,
    /// The message this answers.
    #[serde(default)]
    pub reply_to: Option<String>,
}

/// `201` answer to a post.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PostMessageResponse {
    /// The new message's id.
    pub message_id: String,
    /// Its global seq.
    pub seq: u64,
}

/// One message in history, and the `data` of a `message.posted` WebSocket event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Message {
    /// The message's id.
    pub message_id: String,
    /// Its global seq (absent inside a WebSocket event, which carries `seq` itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The sender's user id.
    pub sender: String,
    /// The text.
    pub body: String,
    /// Who it was addressed to; empty for everyone.
    pub target_user_ids: Vec<String>,
    /// The message it answers.
    pub reply_to: Option<String>,
    /// RFC 3339.
    pub sent_at: String,
}

/// `GET /api/native/rooms/{id}/messages`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct History {
    /// Newest first, only what the caller may see.
    pub messages: Vec<Message>,
    /// Pass as `before` for the next (older) page: the seq of the oldest message on this
    /// page, always one the caller may see; null when nothing older is left for the caller
    /// (the start of the room, or of their membership). It never names an event the caller
    /// may not see.
    pub next_before: Option<u64>,
}

/// Query of `GET /api/native/rooms/{id}/messages`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HistoryQuery {
    /// Only messages with a seq below this.
    pub before: Option<u64>,
    /// Only messages with a seq above this.
    pub after: Option<u64>,
    /// 1..=200, default 50.
    pub limit: Option<u32>,
}

/// What `GET /api/native/rooms?discover=` lists instead of the caller's rooms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Discover {
    /// Public rooms.
    Public,
}

/// Query of `GET /api/native/rooms`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoomsQuery {
    /// `public` lists public rooms instead of mine.
    pub discover: Option<Discover>,
}

//! Documents of `latchkey admin` and `/api/admin/*`: the same shapes offline (read from a
//! data dir) and online (from a running server), so `--json` output is one format.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// One log entry (`admin log`, `admin stream`, `GET /api/admin/events`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LogEntry {
    /// Global seq.
    pub seq: u64,
    /// RFC 3339.
    pub recorded_at: String,
    /// `user/<uuid>`, `pairing/<uuid>`, `room/<uuid>`.
    pub stream: String,
    /// Version within the stream.
    pub version: u64,
    /// e.g. `token.minted`.
    pub event_type: String,
    /// UUID v7.
    pub event_id: String,
    /// The command that produced it.
    pub command_id: String,
    /// `system`, `anonymous`, `user:<id>`, `admin:<id>`.
    pub actor: String,
    /// Payload schema version.
    pub schema: u16,
    /// The event's fields (times RFC 3339, hashes hex; never a secret).
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// Query of `GET /api/admin/events`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogQuery {
    /// First seq.
    pub from: Option<u64>,
    /// Last seq.
    pub to: Option<u64>,
    /// Only this stream (full name or uuid).
    pub stream: Option<String>,
    /// Only this event type.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// At most this many entries (default and maximum 1000).
    pub limit: Option<usize>,
}

/// A page of log entries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LogPage {
    /// Oldest first.
    pub events: Vec<LogEntry>,
    /// Pass as `from` for the next page; null at the end.
    pub next_from: Option<u64>,
}

/// Tokens by status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenCounts {
    /// Neither revoked nor expired.
    pub live: u64,
    /// Past their expiry.
    pub expired: u64,
    /// Revoked.
    pub revoked: u64,
}

/// `admin stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StatsDoc {
    /// Events in the log.
    pub events: u64,
    /// The last seq.
    pub head: u64,
    /// Count per event type.
    pub events_by_type: BTreeMap<String, u64>,
    /// Streams per kind.
    pub streams_by_kind: BTreeMap<String, u64>,
    /// Bytes under the data dir.
    pub size_on_disk_bytes: u64,
    /// Tokens by status now.
    pub tokens: TokenCounts,
}

/// One problem `verify` found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// The seq concerned, when there is one.
    pub seq: Option<u64>,
    /// What is wrong.
    pub message: String,
}

/// `admin verify`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VerifyDoc {
    /// True when nothing is wrong.
    pub ok: bool,
    /// Events read.
    pub events: u64,
    /// Streams seen.
    pub streams: u64,
    /// The last seq.
    pub head: u64,
    /// Hex SHA-256 of the newest envelope.
    pub chain_head: String,
    /// Everything found wrong.
    pub problems: Vec<Problem>,
}

/// The point in the log a state document describes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AsOf {
    /// Last seq included.
    pub seq: u64,
    /// RFC 3339: `--at`, or the time of `seq`.
    pub time: String,
}

/// The user in a state document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StateUser {
    /// Id.
    pub id: String,
    /// Handle.
    pub handle: String,
    /// Admin?
    pub admin: bool,
    /// Disabled?
    pub disabled: bool,
}

/// A token in a state document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StateToken {
    /// Same string as REST `token_id`.
    pub id: String,
    /// `session`, `device`, `personal`.
    pub kind: crate::TokenKind,
    /// PAT name.
    pub name: Option<String>,
    /// `live`, `revoked` or `expired` at `as_of`.
    pub status: crate::TokenStatus,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub expires_at: Option<String>,
    /// RFC 3339, when revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

/// A key in a state document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StateKey {
    /// Key id.
    pub key_id: String,
    /// OpenSSH type.
    #[serde(rename = "type")]
    pub key_type: String,
    /// `SHA256:...`.
    pub fingerprint: String,
    /// Comment.
    pub comment: String,
    /// RFC 3339.
    pub added_at: String,
}

/// A room membership in a state document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StateRoom {
    /// Room id.
    pub id: String,
    /// Name.
    pub name: String,
    /// `public` / `private`.
    pub visibility: crate::RoomVisibility,
    /// Seq of the join.
    pub joined_seq: u64,
}

/// `admin state user <id|handle> [--at TIME]` (DESIGN §10).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StateDoc {
    /// The point described.
    pub as_of: AsOf,
    /// The user.
    pub user: StateUser,
    /// Keys at that point.
    pub keys: Vec<StateKey>,
    /// Tokens minted up to that point, with their status then.
    pub tokens: Vec<StateToken>,
    /// Rooms the user was a member of then.
    pub rooms: Vec<StateRoom>,
}

/// Query of `GET /api/admin/users/{user}/state`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StateQuery {
    /// RFC 3339 (any offset).
    pub at: Option<String>,
}

/// `POST /api/admin/users`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AddUserRequest {
    /// Handle (1..32 of `[a-z0-9_-]`).
    pub handle: String,
    /// OpenSSH public key line.
    pub public_key: String,
    /// Make the user an admin.
    #[serde(default)]
    pub admin: bool,
}

/// A user as admin commands answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AdminUser {
    /// Id.
    pub id: String,
    /// Handle.
    pub handle: String,
    /// Admin?
    pub admin: bool,
    /// Disabled?
    pub disabled: bool,
    /// Seq of the last event this action wrote (0: nothing changed).
    pub seq: u64,
}

/// Answer to an admin token revocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RevokedToken {
    /// The token id.
    pub token_id: String,
    /// Its owner.
    pub user_id: String,
    /// Seq of the revocation (0: it was already revoked).
    pub seq: u64,
}

/// The first line of a backup (`admin backup`, `GET /api/admin/backup`): which point of
/// the log the file holds. Every following line is an export line (`admin export`), one
/// per seq from 1 to `seq`; `admin import` checks the count and the chain head.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackupHeader {
    /// `latchkey-backup/1`.
    pub format: String,
    /// The backup holds seqs 1 to this one, all of them: the log as of this seq.
    pub seq: u64,
    /// Hex SHA-256 of the envelope at `seq` (all zeros for an empty log): the chain head
    /// `admin verify` reports once the backup is imported.
    pub chain_head: String,
    /// The id of the server the log belongs to.
    pub server_id: String,
    /// RFC 3339: when the backup began.
    pub taken_at: String,
}

/// The JSON line a backup starts with: `{"backup": {...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackupLine {
    /// The header.
    pub backup: BackupHeader,
}

/// `admin backup --json`: what was written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BackupSummary {
    /// The file written.
    pub file: String,
    /// The log as of this seq.
    pub seq: u64,
    /// Events written (equal to `seq`).
    pub events: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Hex SHA-256 of the envelope at `seq`.
    pub chain_head: String,
    /// Wall time of the download.
    pub seconds: f64,
    /// Events per second.
    pub events_per_second: f64,
    /// MB (10^6 bytes) per second.
    pub mb_per_second: f64,
}

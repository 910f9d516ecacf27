//! Bodies of the `/api/native/*` routes. Times are RFC 3339 UTC strings, ids UUID strings.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Whether a valid signature by an unknown key creates a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Registration {
    /// The first sign-in of a new key registers its holder.
    Open,
    /// Unknown keys get `key_unknown`.
    Closed,
}

/// What a token is: a session from an SSH sign-in, a device token, or a personal access
/// token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// `lks_`: from an SSH sign-in; the only interactive credential.
    Session,
    /// `lkd_`: from a device authorization.
    Device,
    /// `lkp_`: a personal access token.
    Personal,
}

impl TokenKind {
    /// The wire name: `session`, `device` or `personal`.
    pub fn as_str(&self) -> &'static str {
        match self {
            TokenKind::Session => "session",
            TokenKind::Device => "device",
            TokenKind::Personal => "personal",
        }
    }
}

impl std::fmt::Display for TokenKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Whether a token is in force at a point in time (admin state documents).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    /// Neither revoked nor past its expiry.
    Live,
    /// Revoked (logout, revoke, a removed key, a disabled user).
    Revoked,
    /// Past its expiry.
    Expired,
}

impl TokenStatus {
    /// The wire name: `live`, `revoked` or `expired`.
    pub fn as_str(&self) -> &'static str {
        match self {
            TokenStatus::Live => "live",
            TokenStatus::Revoked => "revoked",
            TokenStatus::Expired => "expired",
        }
    }
}

impl std::fmt::Display for TokenStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Liveness and readiness: `ok`, or `catching_up` while the read models catch up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Serving, with every read model at the durable head (or, for `/healthz`, alive).
    Ok,
    /// Read models still catching up with the log.
    CatchingUp,
}

/// What a token may do.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
pub enum Scope {
    /// Read rooms, history and live events.
    #[serde(rename = "chat:read")]
    ChatRead,
    /// Create rooms, join, post.
    #[serde(rename = "chat:write")]
    ChatWrite,
    /// The admin API (sessions of admin users only).
    #[serde(rename = "admin")]
    Admin,
}

/// `GET /api/native/info`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InfoResponse {
    /// This server's id (also the `server=` line unless a public URL is set).
    pub server_id: String,
    /// The `server=` value challenges carry.
    pub server: String,
    /// latchkey's version.
    pub version: String,
    /// The SSHSIG namespace to sign with: `latchkey-auth`.
    pub namespace: String,
    /// Accepted key types.
    pub key_types: Vec<String>,
    /// Features this server offers.
    pub capabilities: Vec<String>,
    /// `open` or `closed`.
    pub registration: Registration,
}

/// `POST /api/native/challenge`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChallengeRequest {
    /// An OpenSSH public key line (`ssh-ed25519 AAAA... comment`).
    pub public_key: String,
}

/// `201` answer to `POST /api/native/challenge`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChallengeResponse {
    /// The challenge to redeem at `POST /api/native/token`.
    pub challenge_id: String,
    /// base64url of 32 random bytes (also inside `message`).
    pub nonce: String,
    /// The exact bytes to sign with `ssh-keygen -Y sign -n latchkey-auth`.
    pub message: String,
    /// `latchkey-auth`.
    pub namespace: String,
    /// RFC 3339.
    pub expires_at: String,
    /// Seconds until it expires.
    pub expires_in: i64,
}

/// `POST /api/native/token`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenRequest {
    /// From the challenge response.
    pub challenge_id: String,
    /// The armored SSHSIG (`-----BEGIN SSH SIGNATURE-----`).
    pub signature: String,
    /// A name for this device, shown in the token list.
    #[serde(default)]
    pub device_name: Option<String>,
    /// The handle to register with; only used when this call creates the user.
    #[serde(default)]
    pub handle: Option<String>,
}

/// A user as other answers name them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserRef {
    /// The user's id.
    pub id: String,
    /// The user's handle.
    pub handle: String,
}

/// `201` answer to `POST /api/native/token`: the secret is shown once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// The bearer token (`lks_...`). Store it; it is never shown again.
    pub token: String,
    /// Its public id.
    pub token_id: String,
    /// `session`, `device` or `personal`.
    pub kind: TokenKind,
    /// RFC 3339, or null for no expiry.
    pub expires_at: Option<String>,
    /// Who signed in.
    pub user: UserRef,
    /// True when this sign-in created the user.
    pub registered: bool,
}

/// The user in `GET /api/native/me`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MeUser {
    /// The user's id.
    pub id: String,
    /// The user's handle.
    pub handle: String,
    /// Whether the user is an admin.
    pub admin: bool,
}

/// `GET /api/native/me`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MeResponse {
    /// Who the token belongs to.
    pub user: MeUser,
    /// The presented token's id.
    pub token_id: String,
    /// `session`, `device` or `personal`.
    pub kind: TokenKind,
    /// `chat:read`, `chat:write`, `admin`.
    pub scopes: Vec<Scope>,
    /// RFC 3339, or null.
    pub expires_at: Option<String>,
    /// For a device token: the app and device it was paired with.
    #[serde(default)]
    pub device: Option<MeDevice>,
}

/// The device a device token was paired with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MeDevice {
    /// The app's `client_id`.
    pub client_id: Option<String>,
    /// The device's name.
    pub device_name: Option<String>,
}

/// `GET /api/native/ping`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PingResponse {
    /// Always true: the credential was valid.
    pub ok: bool,
}

/// `GET /healthz` and `GET /readyz`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HealthResponse {
    /// `ok`, or `catching_up` while projections catch up.
    pub status: HealthStatus,
    /// The newest durable seq.
    pub head: u64,
    /// The newest seq every read model has applied.
    pub applied: u64,
}

/// One token in `GET /api/native/tokens` (never the secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    /// Its id (for `DELETE /api/native/tokens/{id}`).
    pub id: String,
    /// `session`, `device` or `personal`.
    pub kind: TokenKind,
    /// The name given to a personal access token.
    pub name: Option<String>,
    /// The token's type prefix (`lks_`, `lkd_`, `lkp_`), to match it to a stored secret.
    pub prefix: String,
    /// Its scopes.
    pub scopes: Vec<Scope>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, recorded at most every 5 minutes.
    pub last_used_at: Option<String>,
    /// RFC 3339, or null for no expiry.
    pub expires_at: Option<String>,
    /// Device name given at sign-in.
    pub device_name: Option<String>,
    /// User-Agent at sign-in.
    pub user_agent: Option<String>,
    /// True for the token making this request.
    pub current: bool,
}

/// `GET /api/native/tokens`: the caller's live tokens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    /// Newest first.
    pub tokens: Vec<TokenInfo>,
}

/// `POST /api/native/tokens`: create a personal access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreateTokenRequest {
    /// A name to recognize it by (1..=64 characters).
    pub name: String,
    /// `chat:read` and/or `chat:write`; default both.
    #[serde(default)]
    pub scopes: Option<Vec<Scope>>,
    /// Lifetime in seconds; default: no expiry.
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// `201` answer to `POST /api/native/tokens`: the secret is shown once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreateTokenResponse {
    /// The bearer token (`lkp_...`). It is never shown again.
    pub token: String,
    /// Its id.
    pub token_id: String,
    /// `personal`.
    pub kind: TokenKind,
    /// Its name.
    pub name: String,
    /// Its scopes.
    pub scopes: Vec<Scope>,
    /// RFC 3339, or null.
    pub expires_at: Option<String>,
}

/// `POST /api/native/tokens/revoke-all`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RevokeAllRequest {
    /// Keep the token making this request.
    #[serde(default)]
    pub keep_current: bool,
}

/// Answer to `POST /api/native/tokens/revoke-all`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RevokeAllResponse {
    /// How many tokens were revoked.
    pub revoked: usize,
}

/// One key in `GET /api/native/keys`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyInfo {
    /// Its id (for `DELETE /api/native/keys/{key_id}`).
    pub key_id: String,
    /// The OpenSSH key type.
    #[serde(rename = "type")]
    pub key_type: String,
    /// `SHA256:...`.
    pub fingerprint: String,
    /// The key line's comment.
    pub comment: String,
    /// RFC 3339.
    pub added_at: String,
}

/// `GET /api/native/keys`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyList {
    /// The caller's keys, oldest first.
    pub keys: Vec<KeyInfo>,
}

/// `POST /api/native/keys`: a challenge from `POST /api/native/keys/challenge`, signed
/// by the new key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AddKeyRequest {
    /// The challenge issued for the new key.
    pub challenge_id: String,
    /// The armored SSHSIG by the new key.
    pub signature: String,
}

/// `POST /api/native/ws-ticket`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WsTicketResponse {
    /// `lkw_...`: single use, for `GET /api/native/ws?ticket=`.
    pub ticket: String,
    /// Seconds until it lapses (30).
    pub expires_in: u64,
}

/// `POST /api/test/clock` (only on a server started with `--test-clock`; not part of the
/// API): how far to move the server's manual clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockAdvanceRequest {
    /// Whole seconds to move forward.
    #[serde(default)]
    pub advance_secs: u64,
    /// Milliseconds to move forward, on top of `advance_secs`.
    #[serde(default)]
    pub advance_ms: u64,
}

/// The answer of `POST /api/test/clock`: the server's time after the move.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockResponse {
    /// RFC 3339.
    pub now: String,
}

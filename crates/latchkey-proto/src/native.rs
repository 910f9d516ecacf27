//! Bodies of the `/api/native/*` routes. Times are RFC 3339 UTC strings, ids UUID strings.

use serde::{Deserialize, Serialize};

/// `GET /api/native/info`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    pub registration: String,
}

/// `POST /api/native/challenge`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeRequest {
    /// An OpenSSH public key line (`ssh-ed25519 AAAA... comment`).
    pub public_key: String,
}

/// `201` answer to `POST /api/native/challenge`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRef {
    /// The user's id.
    pub id: String,
    /// The user's handle.
    pub handle: String,
}

/// `201` answer to `POST /api/native/token`: the secret is shown once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The bearer token (`lks_...`). Store it; it is never shown again.
    pub token: String,
    /// Its public id.
    pub token_id: String,
    /// `session`, `device` or `personal`.
    pub kind: String,
    /// RFC 3339, or null for no expiry.
    pub expires_at: Option<String>,
    /// Who signed in.
    pub user: UserRef,
    /// True when this sign-in created the user.
    pub registered: bool,
}

/// The user in `GET /api/native/me`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeUser {
    /// The user's id.
    pub id: String,
    /// The user's handle.
    pub handle: String,
    /// Whether the user is an admin.
    pub admin: bool,
}

/// `GET /api/native/me`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeResponse {
    /// Who the token belongs to.
    pub user: MeUser,
    /// The presented token's id.
    pub token_id: String,
    /// `session`, `device` or `personal`.
    pub kind: String,
    /// `chat:read`, `chat:write`, `admin`.
    pub scopes: Vec<String>,
    /// RFC 3339, or null.
    pub expires_at: Option<String>,
}

/// `GET /api/native/ping`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingResponse {
    /// Always true: the credential was valid.
    pub ok: bool,
}

/// `GET /healthz` and `GET /readyz`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResponse {
    /// `ok`, or `starting` while projections catch up.
    pub status: String,
    /// The newest durable seq.
    pub head: u64,
    /// The newest seq every read model has applied.
    pub applied: u64,
}

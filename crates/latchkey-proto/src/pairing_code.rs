//! Bodies of admin pairing codes (DESIGN §12): `/api/admin/pairing-codes` (an admin mints,
//! lists and revokes) and `POST /api/native/pair` (a device redeems a code once), plus the
//! QR payload format.

use crate::native::{Scope, TokenKind, UserRef};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The scheme and version of the QR payload: `latchkey-pair:v1?server=<url>&code=<code>`.
pub const QR_PREFIX: &str = "latchkey-pair:v1";

/// The QR payload for a server (public URL or server id) and a code. Both go in as they
/// are: a code is `[A-Za-z0-9_]`, and a server value never holds `&`.
pub fn qr_payload(server: &str, code: &str) -> String {
    format!("{QR_PREFIX}?server={server}&code={code}")
}

/// `POST /api/admin/pairing-codes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePairingCodeRequest {
    /// The user the device token will belong to: id or handle.
    pub user: String,
    /// A subset of `chat:read`, `chat:write`; default both.
    #[serde(default)]
    pub scopes: Option<Vec<Scope>>,
    /// Seconds, 1 to 86400; default 600. Out of range answers 400 (never clamped).
    #[serde(default)]
    pub expires_in: Option<i64>,
    /// A note for the admins' list (1-256 characters).
    #[serde(default)]
    pub note: Option<String>,
}

/// `201` answer to `POST /api/admin/pairing-codes`: the code is shown once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatePairingCodeResponse {
    /// The one-time code (`lkc_...`). Never shown again.
    pub code: String,
    /// The QR payload text: `latchkey-pair:v1?server=<public url>&code=<code>`.
    pub qr: String,
    /// The code's id (for list and revoke).
    pub id: String,
    /// Whose device token it makes.
    pub user: UserRef,
    /// Scopes the device token will carry.
    pub scopes: Vec<Scope>,
    /// The note.
    pub note: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub expires_at: String,
    /// Seconds until it expires.
    pub expires_in: i64,
}

/// A pending pairing code, without its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PairingCodeInfo {
    /// The code's id.
    pub id: String,
    /// The user the device token will belong to.
    pub user_id: String,
    /// Scopes the device token will carry.
    pub scopes: Vec<Scope>,
    /// The note.
    pub note: Option<String>,
    /// The admin who minted it; null for the offline tool.
    pub created_by: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub expires_at: String,
}

/// `GET /api/admin/pairing-codes`: pending codes, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PairingCodeList {
    /// The codes.
    pub codes: Vec<PairingCodeInfo>,
}

/// `POST /api/native/pair`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PairRequest {
    /// The `lkc_` code (from the admin, or the QR payload's `code=`).
    pub code: String,
    /// A name for this device, shown in the token list.
    #[serde(default)]
    pub device_name: Option<String>,
    /// An OpenSSH public key to enroll on the account; needs `challenge_id` and `signature`.
    #[serde(default)]
    pub public_key: Option<String>,
    /// A challenge for `public_key` from `POST /api/native/challenge`.
    #[serde(default)]
    pub challenge_id: Option<String>,
    /// The armored SSHSIG of that challenge's message, made by the key.
    #[serde(default)]
    pub signature: Option<String>,
}

/// `201` answer to `POST /api/native/pair`: the device token is shown once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PairResponse {
    /// The bearer token (`lkd_...`). Store it; it is never shown again.
    pub token: String,
    /// Its public id.
    pub token_id: String,
    /// `device`.
    pub kind: TokenKind,
    /// Scopes it carries.
    pub scopes: Vec<Scope>,
    /// RFC 3339, or null for no expiry.
    pub expires_at: Option<String>,
    /// Whose it is.
    pub user: UserRef,
    /// The id of the enrolled key, when a proven key was sent.
    pub key_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_qr_payload_has_the_documented_shape() {
        assert_eq!(
            qr_payload("https://chat.example", "lkc_abc"),
            "latchkey-pair:v1?server=https://chat.example&code=lkc_abc"
        );
    }
}

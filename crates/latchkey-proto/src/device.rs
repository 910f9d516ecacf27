//! Bodies of the RFC 8628 device flow (DESIGN §12): `/api/auth/device/*` (the device's
//! side, OAuth 2.0 shapes: form-encoded or JSON in, JSON out, errors as
//! `{"error", "error_description"}`) and `/api/native/device/*` (the approver's side,
//! latchkey's JSON error shape).

use crate::native::Scope;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

/// The OAuth grant type of a device token request.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The OAuth 2.0 error codes these endpoints answer (RFC 6749 §5.2, RFC 8628 §3.5).
pub mod oauth_codes {
    /// Malformed or invalid parameters.
    pub const INVALID_REQUEST: &str = "invalid_request";
    /// `client_id` differs from the one that asked.
    pub const INVALID_CLIENT: &str = "invalid_client";
    /// Unknown or already redeemed device code; a proof that does not verify.
    pub const INVALID_GRANT: &str = "invalid_grant";
    /// A scope other than `chat:read`, `chat:write`.
    pub const INVALID_SCOPE: &str = "invalid_scope";
    /// `grant_type` is not the device code grant.
    pub const UNSUPPORTED_GRANT_TYPE: &str = "unsupported_grant_type";
    /// Nobody approved yet: poll again after the interval.
    pub const AUTHORIZATION_PENDING: &str = "authorization_pending";
    /// Polling too fast: the interval grew by 5 seconds, for good.
    pub const SLOW_DOWN: &str = "slow_down";
    /// Denied by the user, or cancelled by the device.
    pub const ACCESS_DENIED: &str = "access_denied";
    /// The device code lapsed (600 s).
    pub const EXPIRED_TOKEN: &str = "expired_token";
    /// Over a rate limit (HTTP 429, with `Retry-After`).
    pub const RATE_LIMITED: &str = "rate_limited";
    /// Busy (HTTP 503, with `Retry-After`).
    pub const TEMPORARILY_UNAVAILABLE: &str = "temporarily_unavailable";
    /// A bug (HTTP 500); the description says nothing more.
    pub const SERVER_ERROR: &str = "server_error";
}

/// Every error of `/api/auth/device/*` (RFC 6749 §5.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OAuthError {
    /// An OAuth error code (see [`oauth_codes`]).
    pub error: String,
    /// A human-readable explanation. Never contains a secret.
    pub error_description: String,
}

/// `POST /api/auth/device/code` (RFC 8628 §3.1), form-encoded or JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceCodeRequest {
    /// The app's name, 1..=64 printable characters, shown to the approver (there is no
    /// client registry).
    #[serde(default)]
    pub client_id: Option<String>,
    /// Space-separated subset of `chat:read chat:write`; default both.
    #[serde(default)]
    pub scope: Option<String>,
    /// latchkey extension: the device's name, shown to the approver and in the token list.
    #[serde(default)]
    pub device_name: Option<String>,
    /// latchkey extension: an OpenSSH public key line to enroll on the approver's account.
    #[serde(default)]
    pub public_key: Option<String>,
}

/// The proof challenge for an enrolled key: an ordinary `latchkey-auth-v1` challenge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyChallengeBody {
    /// The id to send back to `POST /api/auth/device/prove`.
    pub challenge_id: String,
    /// The exact bytes to sign with `ssh-keygen -Y sign -n latchkey-auth`.
    pub message: String,
}

/// `200` answer to `POST /api/auth/device/code`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceCodeResponse {
    /// The device's secret for polling; single use, shown once.
    pub device_code: String,
    /// The code the user types: `XXXX-XXXX` from `BCDFGHJKLMNPQRSTVWXZ`.
    pub user_code: String,
    /// Where the user approves: `<public url>/device`.
    pub verification_uri: String,
    /// `verification_uri` with `?user_code=XXXX-XXXX`.
    pub verification_uri_complete: String,
    /// Seconds until both codes lapse: 600.
    pub expires_in: i64,
    /// Seconds between polls: 5.
    pub interval: u32,
    /// Present when `public_key` was sent: 6 digits the device shows and the approver
    /// compares (see `proto-docs/pairing.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison_code: Option<String>,
    /// Present when `public_key` was sent: the challenge proving the device holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_challenge: Option<KeyChallengeBody>,
}

/// `POST /api/auth/device/token` (RFC 8628 §3.4), form-encoded or JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceTokenRequest {
    /// `urn:ietf:params:oauth:grant-type:device_code`.
    #[serde(default)]
    pub grant_type: Option<String>,
    /// From the device authorization response.
    #[serde(default)]
    pub device_code: Option<String>,
    /// The same `client_id` as in the device authorization request.
    #[serde(default)]
    pub client_id: Option<String>,
}

/// `200` answer to `POST /api/auth/device/token`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceTokenResponse {
    /// The device token (`lkd_...`), shown once.
    pub access_token: String,
    /// `Bearer`.
    pub token_type: String,
    /// Seconds until it lapses; absent for a token that never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// Granted scopes, space-separated.
    pub scope: String,
}

/// `POST /api/auth/device/cancel`, form-encoded or JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceCancelRequest {
    /// The device code to give up.
    #[serde(default)]
    pub device_code: Option<String>,
}

/// `POST /api/auth/device/prove`, form-encoded or JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceProveRequest {
    /// The device code whose key is proven.
    #[serde(default)]
    pub device_code: Option<String>,
    /// `key_challenge.challenge_id`.
    #[serde(default)]
    pub challenge_id: Option<String>,
    /// The armored SSHSIG over `key_challenge.message`.
    #[serde(default)]
    pub signature: Option<String>,
}

/// `200` answer to cancel, prove, approve and deny.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceStatusResponse {
    /// `cancelled`, `proven`, `approved` or `denied`.
    pub status: String,
}

/// The key a pending request asks to enroll, as the approval screen shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceKeyInfo {
    /// The key type (`ssh-ed25519`, ...).
    #[serde(rename = "type")]
    pub key_type: String,
    /// `SHA256:...`.
    pub fingerprint: String,
    /// The server's comparison code: the device must show the same 6 digits.
    pub comparison_code: String,
    /// Whether the device proved it holds the key (approval needs it).
    pub proven: bool,
}

/// `GET /api/native/device/{user_code}`: exactly who is asking.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceRequestInfo {
    /// The user code, canonical (`XXXX-XXXX`).
    pub user_code: String,
    /// The app's name as the device gave it (not verified: there is no client registry).
    pub client_id: String,
    /// The device's name.
    pub device_name: Option<String>,
    /// Requested scopes.
    pub scopes: Vec<Scope>,
    /// RFC 3339.
    pub requested_at: String,
    /// RFC 3339: when the request lapses.
    pub expires_at: String,
    /// The requester's IP under the retention policy (null when none is kept).
    pub ip: Option<String>,
    /// The requester's User-Agent.
    pub user_agent: Option<String>,
    /// The key to enroll, if the device sent one.
    pub key: Option<DeviceKeyInfo>,
}

/// `POST /api/native/device/approve`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceApproveRequest {
    /// The user code as typed (case and dashes do not matter).
    pub user_code: String,
    /// Narrow the requested scopes; default: all of them.
    #[serde(default)]
    pub scopes: Option<Vec<Scope>>,
    /// A device name to show instead of the device's own.
    #[serde(default)]
    pub name: Option<String>,
    /// Token lifetime in seconds, at most one year (31536000); `null` for a token that
    /// never expires; omitted: 90 days.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u64>)]
    pub expires_in: Option<Option<u64>>,
}

/// `POST /api/native/device/deny`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceDenyRequest {
    /// The user code as typed.
    pub user_code: String,
}

/// `200` answer to `POST /api/native/device/approve`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceApproveResponse {
    /// `approved`.
    pub status: String,
    /// The app's name.
    pub client_id: String,
    /// The device name the token will carry.
    pub device_name: Option<String>,
    /// Granted scopes.
    pub scopes: Vec<Scope>,
    /// The device token's lifetime in seconds from its redemption; null: never expires.
    pub token_expires_in: Option<u64>,
    /// The fingerprint of the key added to your account, if any.
    pub key_added: Option<String>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_in_tells_absent_from_null() {
        let absent: DeviceApproveRequest = serde_json::from_str(r#"{"user_code":"x"}"#).unwrap();
        assert_eq!(absent.expires_in, None);
        let never: DeviceApproveRequest =
            serde_json::from_str(r#"{"user_code":"x","expires_in":null}"#).unwrap();
        assert_eq!(never.expires_in, Some(None));
        let some: DeviceApproveRequest =
            serde_json::from_str(r#"{"user_code":"x","expires_in":60}"#).unwrap();
        assert_eq!(some.expires_in, Some(Some(60)));
    }
}

//! The one error shape of the API, `{"error": code, "message": text}`, and its codes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Every error response body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// A stable machine-readable code (see [`codes`]).
    pub error: String,
    /// A human-readable explanation. Never contains a secret.
    pub message: String,
}

/// The error codes. Clients branch on these, never on messages.
pub mod codes {
    /// 400: the request is malformed or fails validation.
    pub const INVALID_REQUEST: &str = "invalid_request";
    /// 400: the key type is not on the allowlist.
    pub const UNSUPPORTED_KEY_TYPE: &str = "unsupported_key_type";
    /// 401: no valid credential.
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// 401: the challenge is unknown, used or expired.
    pub const CHALLENGE_INVALID: &str = "challenge_invalid";
    /// 401: the signature does not verify.
    pub const SIGNATURE_INVALID: &str = "signature_invalid";
    /// 401: registration is closed and the key belongs to no user.
    pub const KEY_UNKNOWN: &str = "key_unknown";
    /// 403: the credential may not do this.
    pub const FORBIDDEN: &str = "forbidden";
    /// 403: this route needs a session token (from an SSH challenge).
    pub const INTERACTIVE_CREDENTIAL_REQUIRED: &str = "interactive_credential_required";
    /// 403: the caller is not (or no longer) a member of this public room.
    pub const NOT_A_MEMBER: &str = "not_a_member";
    /// 404: no such resource (or not visible to the caller).
    pub const NOT_FOUND: &str = "not_found";
    /// 405: the route exists, the method does not.
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    /// 409: the request conflicts with the current state.
    pub const CONFLICT: &str = "conflict";
    /// 409: approving a device whose key is not proven yet.
    pub const KEY_NOT_PROVEN: &str = "key_not_proven";
    /// 401: a pairing code that is unknown, used, revoked or expired (one body for all).
    pub const PAIRING_CODE_INVALID: &str = "pairing_code_invalid";
    /// 409: the handle belongs to another user.
    pub const HANDLE_TAKEN: &str = "handle_taken";
    /// 413: the body is over 64 KiB.
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    /// 429: slow down; see `Retry-After`.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// 500: a bug; the message says nothing more.
    pub const INTERNAL: &str = "internal";
    /// 503: overloaded or not ready; see `Retry-After`.
    pub const UNAVAILABLE: &str = "unavailable";
}

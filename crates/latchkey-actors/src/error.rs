//! `CoreError`, and the one mapping from every domain, entity and store error into it;
//! `DeviceFlowError`, the device flow's errors in RFC 8628 terms, with the one mapping of
//! `DeviceError` into it. Pairing codes answer in `CoreError` (`From<CodeError>`).
//! Each domain error means one thing wherever it comes from; where two operations need
//! different answers, the domain error is made more specific instead of being mapped per
//! call site.

use crate::entity::ExecError;
use latchkey_domain::device::DeviceError;
use latchkey_domain::paircode::CodeError;
use latchkey_domain::user::MAX_PAT_NAME_CHARS;
use latchkey_domain::{PairingError, RejectReason, RoomError, UserError};
use latchkey_store::StoreError;

/// Why an operation failed, in terms the HTTP layer maps to status codes.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// 400 invalid_request.
    #[error("{0}")]
    InvalidRequest(String),
    /// 400 unsupported_key_type.
    #[error("key type {0} is not accepted; use ssh-ed25519, sk-ssh-ed25519@openssh.com or ecdsa-sha2-nistp256")]
    UnsupportedKeyType(String),
    /// 401 challenge_invalid.
    #[error("the challenge is unknown, already used, or expired")]
    ChallengeInvalid,
    /// 401 signature_invalid.
    #[error("{0}")]
    SignatureInvalid(&'static str),
    /// 401 key_unknown.
    #[error("this key belongs to no user and registration is closed")]
    KeyUnknown,
    /// 401 unauthorized.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// 403 forbidden.
    #[error("{0}")]
    Forbidden(&'static str),
    /// 404 not_found.
    #[error("{0}")]
    NotFound(&'static str),
    /// 409 conflict.
    #[error("{0}")]
    Conflict(&'static str),
    /// 403 not_a_member.
    #[error("you are not a member of this room")]
    NotAMember,
    /// 409 handle_taken.
    #[error("the handle {0} is taken")]
    HandleTaken(String),
    /// 401 pairing_code_invalid: a pairing code that is unknown, used, revoked or expired.
    /// One message for all, so every refusal is byte-identical.
    #[error("the pairing code is invalid, used, revoked or expired")]
    PairingCodeInvalid,
    /// 503 unavailable, retry.
    #[error("the service is busy; retry shortly")]
    Busy,
    /// 500, logged; the message never reaches the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            // A poisoned journal refuses writes until a restart: unavailable, not a bug.
            // JetStream unreachable or without quorum: 503 with Retry-After, never a 500.
            StoreError::Busy | StoreError::Poisoned | StoreError::Unavailable(_) => CoreError::Busy,
            other => CoreError::Internal(other.to_string()),
        }
    }
}

impl<E: Into<CoreError>> From<ExecError<E>> for CoreError {
    fn from(e: ExecError<E>) -> Self {
        match e {
            ExecError::Domain(d) => d.into(),
            ExecError::Busy | ExecError::Conflict | ExecError::Gone => CoreError::Busy,
            ExecError::Store(s) => CoreError::Internal(s),
        }
    }
}

impl From<UserError> for CoreError {
    fn from(e: UserError) -> Self {
        match e {
            UserError::NotFound => CoreError::NotFound("no such user"),
            UserError::Disabled => CoreError::Forbidden("this user is disabled"),
            UserError::ScopeNotAllowed => CoreError::InvalidRequest(
                "a personal token may carry chat:read and chat:write".into(),
            ),
            UserError::KeyNotFound => CoreError::NotFound("no such key"),
            // The key was removed between its signature and the session's mint.
            UserError::SigningKeyUnknown => CoreError::KeyUnknown,
            UserError::LastKey => CoreError::Conflict("a user keeps at least one key"),
            UserError::InvalidExpiry => {
                CoreError::InvalidRequest("expires_in must be positive".into())
            }
            UserError::ExpiryTooFar => CoreError::InvalidRequest(
                "expires_in is at most 10 years (315360000 seconds); omit it for no expiry".into(),
            ),
            UserError::InvalidTokenName => CoreError::InvalidRequest(format!(
                "name must be 1..={MAX_PAT_NAME_CHARS} printable characters (no control characters)"
            )),
            UserError::InvalidHandle(h) => CoreError::InvalidRequest(format!("handle: {h}")),
            // Ids are made fresh by the caller: a clash is a bug, not the client's doing.
            UserError::AlreadyExists | UserError::KeyExists | UserError::TokenExists => {
                CoreError::Internal(e.to_string())
            }
        }
    }
}

impl From<PairingError> for CoreError {
    fn from(e: PairingError) -> Self {
        match e {
            // Unknown, used, lapsed or for another purpose: the client learns only "invalid".
            PairingError::NotFound | PairingError::Consumed | PairingError::PurposeMismatch => {
                CoreError::ChallengeInvalid
            }
            // The core built the challenge itself: a refusal is a bug.
            PairingError::AlreadyIssued
            | PairingError::InvalidServer
            | PairingError::InvalidExpiry => CoreError::Internal(e.to_string()),
            PairingError::InvalidKeyComment => CoreError::InvalidRequest(
                "the key comment must be at most 256 bytes, without control or invisible \
                 characters"
                    .into(),
            ),
            // Device commands answer through `DeviceFlowError`; one here is a bug.
            PairingError::Device(_) => CoreError::Internal(e.to_string()),
            PairingError::Code(c) => c.into(),
        }
    }
}

impl From<CodeError> for CoreError {
    fn from(e: CodeError) -> Self {
        match e {
            // Used, revoked or lapsed: one answer, so a caller cannot tell them apart.
            CodeError::Invalid => CoreError::PairingCodeInvalid,
            CodeError::NotFound => CoreError::NotFound("no such pairing code"),
            CodeError::NotPending => CoreError::Conflict("the pairing code is no longer pending"),
            CodeError::InvalidLifetime
            | CodeError::InvalidScopes
            | CodeError::InvalidNote
            | CodeError::InvalidDeviceName => CoreError::InvalidRequest(e.to_string()),
            // The core makes the code's id fresh: a second mint is a bug.
            CodeError::AlreadyMinted => CoreError::Internal(e.to_string()),
        }
    }
}

impl From<RejectReason> for CoreError {
    fn from(reason: RejectReason) -> Self {
        match reason {
            RejectReason::Expired => CoreError::ChallengeInvalid,
            RejectReason::InvalidSignature => CoreError::SignatureInvalid(
                "the signature does not verify for this challenge, key and namespace",
            ),
            RejectReason::UserPresenceMissing => {
                CoreError::SignatureInvalid("the FIDO signature lacks the user-presence flag")
            }
            RejectReason::KeyUnknown => CoreError::KeyUnknown,
        }
    }
}

impl From<RoomError> for CoreError {
    fn from(e: RoomError) -> Self {
        match e {
            RoomError::NotFound => CoreError::NotFound("no such room"),
            RoomError::AlreadyExists => CoreError::Conflict("the room already exists"),
            RoomError::InvalidName => {
                CoreError::InvalidRequest(
                "name must be 1 to 100 printable characters, at most 256 bytes (no control characters)"
                    .into(),
            )
            }
            RoomError::NotAMember => CoreError::NotAMember,
            RoomError::OwnerCannotLeave => {
                CoreError::Conflict("the owner cannot leave or be removed from the room")
            }
            RoomError::Forbidden => CoreError::Forbidden("only the room's owner may do this"),
            RoomError::InvalidBody => {
                CoreError::InvalidRequest("body must be 1 to 4000 bytes and not blank".into())
            }
            RoomError::TargetNotMember(u) => {
                CoreError::InvalidRequest(format!("target {u} is not a member of this room"))
            }
            RoomError::MessageNotFound => CoreError::NotFound("no such message"),
            RoomError::NotSender => CoreError::Forbidden("only the sender may delete this message"),
        }
    }
}

/// A key line that does not parse, or whose type is not accepted.
impl From<latchkey_domain::sshkey::KeyError> for CoreError {
    fn from(e: latchkey_domain::sshkey::KeyError) -> Self {
        use latchkey_domain::sshkey::KeyError;
        match e {
            KeyError::UnsupportedKeyType(t) => CoreError::UnsupportedKeyType(t),
            KeyError::Malformed => {
                CoreError::InvalidRequest("public_key is not an OpenSSH public key line".into())
            }
        }
    }
}

/// A handle that breaks the syntax rules.
impl From<latchkey_domain::handle::HandleError> for CoreError {
    fn from(e: latchkey_domain::handle::HandleError) -> Self {
        CoreError::InvalidRequest(format!("handle: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_domain_error_means_one_thing() {
        // Every refusal of a challenge reads as "invalid", whatever the reason.
        for e in [
            PairingError::NotFound,
            PairingError::Consumed,
            PairingError::PurposeMismatch,
        ] {
            assert!(matches!(e.into(), CoreError::ChallengeInvalid));
        }
        assert!(matches!(
            RejectReason::Expired.into(),
            CoreError::ChallengeInvalid
        ));
        assert!(matches!(
            RejectReason::KeyUnknown.into(),
            CoreError::KeyUnknown
        ));
        assert!(matches!(
            RejectReason::InvalidSignature.into(),
            CoreError::SignatureInvalid(_)
        ));
        // A key removed between signature and mint, not a missing key id.
        assert!(matches!(
            UserError::SigningKeyUnknown.into(),
            CoreError::KeyUnknown
        ));
        assert!(matches!(
            UserError::KeyNotFound.into(),
            CoreError::NotFound("no such key")
        ));
        assert!(matches!(
            UserError::InvalidTokenName.into(),
            CoreError::InvalidRequest(m) if m == "name must be 1..=64 printable characters (no control characters)"
        ));
        // Through the entity: the domain's error, or busy.
        let busy: CoreError = ExecError::<UserError>::Conflict.into();
        assert!(matches!(busy, CoreError::Busy));
        let domain: CoreError = ExecError::Domain(RoomError::NotAMember).into();
        assert!(matches!(domain, CoreError::NotAMember));
        // A pairing code refused for any reason reads as one error.
        let code: CoreError = PairingError::Code(CodeError::Invalid).into();
        assert!(matches!(code, CoreError::PairingCodeInvalid));
    }
}

/// Why a device-flow operation failed, in the terms of RFC 8628 / RFC 6749 §5.2 (the
/// device endpoints) and of the approval routes. The server picks statuses and shapes.
#[derive(Debug, thiserror::Error)]
pub enum DeviceFlowError {
    /// `invalid_request`: malformed or invalid parameters.
    #[error("{0}")]
    InvalidRequest(String),
    /// `invalid_scope`: a scope other than `chat:read`, `chat:write`.
    #[error("scope must be a space-separated subset of chat:read chat:write")]
    InvalidScope,
    /// `invalid_client`: another `client_id` than the one that asked.
    #[error("client_id differs from the one that requested this device code")]
    InvalidClient,
    /// `invalid_grant`: an unknown or already redeemed device code.
    #[error("the device code is unknown or was already redeemed")]
    InvalidGrant,
    /// `access_denied`: denied by a user or cancelled by the device.
    #[error("{0}")]
    AccessDenied(&'static str),
    /// `expired_token`.
    #[error("the device code has expired; start over")]
    ExpiredToken,
    /// `authorization_pending`.
    #[error("the user has not approved the request yet")]
    AuthorizationPending,
    /// `slow_down`; the interval for this code is now `interval` seconds.
    #[error("polling too fast; wait {0} seconds between polls")]
    SlowDown(u32),
    /// The key proof's signature does not verify.
    #[error("the signature does not verify for this challenge, key and namespace")]
    BadSignature,
    /// A key type off the allowlist.
    #[error("key type {0} is not accepted; use ssh-ed25519, sk-ssh-ed25519@openssh.com or ecdsa-sha2-nistp256")]
    UnsupportedKeyType(String),
    /// No pending request has this user code (approval routes: 404).
    #[error("no pending device request has this code")]
    NotFound,
    /// The request is no longer pending (approval routes: 409).
    #[error("{0}")]
    Closed(&'static str),
    /// Approving before the device proved its key (409 `key_not_proven`).
    #[error("the device has not proven it holds the key it asked to enroll; approve once the screen shows it proven")]
    KeyNotProven,
    /// The key to enroll belongs to another user (409).
    #[error("the device's key belongs to another user")]
    KeyTaken,
    /// Anything else: busy, store, internal.
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl From<DeviceError> for DeviceFlowError {
    fn from(e: DeviceError) -> Self {
        use DeviceFlowError as F;
        match e {
            DeviceError::NotFound => F::InvalidGrant,
            DeviceError::AlreadyRequested | DeviceError::InvalidExpiry => {
                F::Core(CoreError::Internal(e.to_string()))
            }
            DeviceError::InvalidClientId
            | DeviceError::InvalidDeviceName
            | DeviceError::InvalidKeyComment
            | DeviceError::InvalidLifetime
            | DeviceError::NoKey
            | DeviceError::WrongChallenge => F::InvalidRequest(e.to_string()),
            DeviceError::InvalidScopes | DeviceError::ScopesWidened => F::InvalidScope,
            DeviceError::KeyNotProven => F::KeyNotProven,
            DeviceError::BadSignature => F::BadSignature,
            DeviceError::ChallengeExpired | DeviceError::Expired => F::ExpiredToken,
            DeviceError::Denied => F::AccessDenied("the request was denied"),
            DeviceError::Cancelled => F::AccessDenied("the request was cancelled"),
            DeviceError::Redeemed => F::InvalidGrant,
            DeviceError::AlreadyApproved => F::Closed("the request was already approved"),
            DeviceError::NotApproved => F::AuthorizationPending,
        }
    }
}

impl<E: Into<DeviceFlowError>> From<ExecError<E>> for DeviceFlowError {
    fn from(e: ExecError<E>) -> Self {
        match e {
            ExecError::Domain(d) => d.into(),
            ExecError::Busy | ExecError::Conflict | ExecError::Gone => CoreError::Busy.into(),
            ExecError::Store(s) => CoreError::Internal(s).into(),
        }
    }
}

impl From<PairingError> for DeviceFlowError {
    fn from(e: PairingError) -> Self {
        match e {
            PairingError::Device(d) => d.into(),
            // A challenge stream named by a device code: no such device authorization.
            _ => DeviceFlowError::InvalidGrant,
        }
    }
}

/// The approver's user stream, while redeeming or approving.
impl From<UserError> for DeviceFlowError {
    fn from(e: UserError) -> Self {
        match e {
            UserError::Disabled => DeviceFlowError::AccessDenied("the approving user is disabled"),
            UserError::NotFound => DeviceFlowError::InvalidGrant,
            other => CoreError::from(other).into(),
        }
    }
}

impl From<StoreError> for DeviceFlowError {
    fn from(e: StoreError) -> Self {
        DeviceFlowError::Core(e.into())
    }
}

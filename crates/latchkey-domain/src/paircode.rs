//! The admin pairing-code part of the Pairing aggregate (DESIGN §12, "Admin pairing
//! codes"): an admin mints a one-time `lkc_` code for a user; a device redeems it once for
//! a device token; an admin may revoke it; the sweeper expires it.
//!
//! Must not: make the code, the token or any id (the caller makes them and hands in the
//! SHA-256 of the code), read the clock, or touch users: the device token and an enrolled
//! key are minted on the user's stream by the caller.

use crate::device::valid_name;
use crate::events::{PairingEvent, Scope};
use crate::ids::{KeyId, PairingId, Timestamp, TokenId, UserId};
use thiserror::Error;

/// `expires_in` when the admin gives none: 10 minutes.
pub const DEFAULT_CODE_TTL_SECS: i64 = 600;
/// The longest a pairing code may live: 24 hours.
pub const MAX_CODE_TTL_SECS: i64 = 24 * 3600;
/// Longest `note`, in characters.
pub const MAX_NOTE_CHARS: usize = 256;

/// A pairing code as minted: what the admin's list shows (never the code itself). The
/// pairing-codes read model stores this same record for each pending code.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MintedCode {
    /// The code's id (the stream's id).
    pub code_id: PairingId,
    /// The user the device token will belong to.
    pub user_id: UserId,
    /// SHA-256 of the raw code.
    pub code_hash: [u8; 32],
    /// The scopes the device token will carry, sorted.
    pub scopes: Vec<Scope>,
    /// The admin's note.
    pub note: Option<String>,
    /// The admin who minted it; `None` for the offline tool.
    pub by: Option<UserId>,
    /// When.
    pub created_at: Timestamp,
    /// When it stops being accepted.
    pub expires_at: Timestamp,
}

/// Where a pairing code stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodeStatus {
    /// Waiting for its device.
    Pending,
    /// Redeemed once: terminal.
    Redeemed {
        /// The device token minted for it.
        token_id: TokenId,
        /// When.
        at: Timestamp,
    },
    /// Revoked by an admin: terminal.
    Revoked {
        /// When.
        at: Timestamp,
    },
    /// Lapsed unused (the sweeper): terminal.
    Expired {
        /// When.
        at: Timestamp,
    },
}

/// A pairing code's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeState {
    /// The code as minted.
    pub code: MintedCode,
    /// Where it stands.
    pub status: CodeStatus,
}

impl CodeState {
    /// Whether the code would still be accepted at `now`.
    pub fn is_live_at(&self, now: Timestamp) -> bool {
        self.status == CodeStatus::Pending && now < self.code.expires_at
    }

    /// Whether the code accepts no further command.
    pub fn is_terminal(&self) -> bool {
        self.status != CodeStatus::Pending
    }
}

/// What can be asked of a pairing code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodeCommand {
    /// Mint a code for a user (an admin session or the offline tool).
    Mint {
        /// The code's id (the stream's id).
        code_id: PairingId,
        /// The user the device token will belong to (the caller checked it exists).
        user_id: UserId,
        /// SHA-256 of the raw code, which the caller made from the OS CSPRNG.
        code_hash: [u8; 32],
        /// Requested scopes; empty: `chat:read chat:write`.
        scopes: Vec<Scope>,
        /// A note for the admins' list.
        note: Option<String>,
        /// The minting admin; `None` for the offline tool.
        by: Option<UserId>,
        /// Lifetime in seconds: 1 to 24 h; out of range is refused, never clamped.
        ttl_secs: i64,
        /// Now.
        now: Timestamp,
    },
    /// A device redeems the code.
    Redeem {
        /// The id of the device token the caller will mint.
        token_id: TokenId,
        /// The name the device gave.
        device_name: Option<String>,
        /// The id a proven key gets on the user's account, if the device enrolls one.
        key_id: Option<KeyId>,
        /// Now.
        now: Timestamp,
    },
    /// An admin revokes the code.
    Revoke {
        /// The admin; `None` for the offline tool.
        by: Option<UserId>,
        /// Now.
        now: Timestamp,
    },
    /// Lapse a code past its expiry (the sweeper).
    Expire {
        /// Now.
        now: Timestamp,
    },
}

/// Why a pairing-code command was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CodeError {
    /// No pairing code on this stream.
    #[error("no such pairing code")]
    NotFound,
    /// `Mint` on a stream that already holds one.
    #[error("pairing code already minted")]
    AlreadyMinted,
    /// `expires_in` out of 1 second to 24 hours.
    #[error("expires_in must be 1 to 86400 seconds")]
    InvalidLifetime,
    /// Scopes other than `chat:read` and `chat:write`.
    #[error("scopes must be a subset of chat:read chat:write")]
    InvalidScopes,
    /// A note over 256 characters, blank, or with control characters.
    #[error("note must be 1 to 256 characters without control characters")]
    InvalidNote,
    /// A device name over 64 characters, blank, or with control characters.
    #[error("device_name must be 1 to 64 characters without control characters")]
    InvalidDeviceName,
    /// Redeeming a code that is used, revoked or expired. One error for all three, so a
    /// caller cannot tell them apart.
    #[error("the pairing code is invalid, used, revoked or expired")]
    Invalid,
    /// Revoking a code that was already redeemed or has expired.
    #[error("the pairing code is no longer pending")]
    NotPending,
}

fn normalise_scopes(scopes: &[Scope]) -> Result<Vec<Scope>, CodeError> {
    crate::device::device_token_scopes(scopes).ok_or(CodeError::InvalidScopes)
}

/// Decides a pairing-code command (`None`: empty stream).
pub fn decide(
    state: Option<&CodeState>,
    cmd: &CodeCommand,
) -> Result<Vec<PairingEvent>, CodeError> {
    let state = match (state, cmd) {
        (None, CodeCommand::Mint { .. }) => return mint(cmd),
        (None, _) => return Err(CodeError::NotFound),
        (Some(state), _) => state,
    };
    match cmd {
        CodeCommand::Mint { .. } => Err(CodeError::AlreadyMinted),
        CodeCommand::Redeem {
            token_id,
            device_name,
            key_id,
            now,
        } => {
            if !state.is_live_at(*now) {
                return Err(CodeError::Invalid);
            }
            if device_name
                .as_ref()
                .is_some_and(|n| !valid_name(n, crate::device::MAX_DEVICE_NAME_CHARS))
            {
                return Err(CodeError::InvalidDeviceName);
            }
            Ok(vec![PairingEvent::PairingCodeRedeemed {
                token_id: *token_id,
                device_name: device_name.clone(),
                key_id: *key_id,
                at: *now,
            }])
        }
        CodeCommand::Revoke { by, now } => match state.status {
            CodeStatus::Revoked { .. } => Ok(vec![]),
            CodeStatus::Pending if *now < state.code.expires_at => {
                Ok(vec![PairingEvent::PairingCodeRevoked { by: *by, at: *now }])
            }
            _ => Err(CodeError::NotPending),
        },
        CodeCommand::Expire { now } => {
            if state.status == CodeStatus::Pending && *now >= state.code.expires_at {
                Ok(vec![PairingEvent::PairingCodeExpired { at: *now }])
            } else {
                Ok(vec![])
            }
        }
    }
}

fn mint(cmd: &CodeCommand) -> Result<Vec<PairingEvent>, CodeError> {
    let CodeCommand::Mint {
        code_id,
        user_id,
        code_hash,
        scopes,
        note,
        by,
        ttl_secs,
        now,
    } = cmd
    else {
        return Err(CodeError::NotFound);
    };
    if !(1..=MAX_CODE_TTL_SECS).contains(ttl_secs) {
        return Err(CodeError::InvalidLifetime);
    }
    if note
        .as_ref()
        .is_some_and(|n| !valid_name(n, MAX_NOTE_CHARS))
    {
        return Err(CodeError::InvalidNote);
    }
    Ok(vec![PairingEvent::PairingCodeMinted {
        code_id: *code_id,
        user_id: *user_id,
        code_hash: *code_hash,
        scopes: normalise_scopes(scopes)?,
        note: note.clone(),
        by: *by,
        created_at: *now,
        expires_at: now.plus_secs(*ttl_secs),
    }])
}

impl MintedCode {
    /// The code a `PairingCodeMinted` records; `None` for any other event. The one reading
    /// of that event, for the decider and the pairing-codes read model alike.
    pub fn minted_by(event: &PairingEvent) -> Option<MintedCode> {
        let PairingEvent::PairingCodeMinted {
            code_id,
            user_id,
            code_hash,
            scopes,
            note,
            by,
            created_at,
            expires_at,
        } = event
        else {
            return None;
        };
        Some(MintedCode {
            code_id: *code_id,
            user_id: *user_id,
            code_hash: *code_hash,
            scopes: scopes.clone(),
            note: note.clone(),
            by: *by,
            created_at: *created_at,
            expires_at: *expires_at,
        })
    }
}

/// Records one pairing-code event. `None` in, `None` out unless the event mints a code.
pub fn evolve(state: Option<CodeState>, event: &PairingEvent) -> Option<CodeState> {
    let mut state = match (state, event) {
        (None, e) => {
            return MintedCode::minted_by(e).map(|code| CodeState {
                code,
                status: CodeStatus::Pending,
            })
        }
        (Some(s), _) => s,
    };
    match event {
        PairingEvent::PairingCodeRedeemed { token_id, at, .. } => {
            state.status = CodeStatus::Redeemed {
                token_id: *token_id,
                at: *at,
            }
        }
        PairingEvent::PairingCodeRevoked { at, .. } => {
            state.status = CodeStatus::Revoked { at: *at }
        }
        PairingEvent::PairingCodeExpired { at } => state.status = CodeStatus::Expired { at: *at },
        _ => {}
    }
    Some(state)
}

#[cfg(test)]
mod tests;

//! The Pairing aggregate (`pairing/<uuid>`), challenge part: issue a challenge for a key,
//! consume it with the first signature whatever the result, or let it lapse.
//!
//! Must not: look up or create users. The caller resolves the key to a user (or decides to
//! register one) and names that user in `VerifySignature`; this aggregate only judges the
//! signature and the challenge's lifetime.

use crate::challenge::{build_message, validate_server};
use crate::decider::{AggregateEvent, Decider};
use crate::device::{self, DeviceCommand, DeviceError, DeviceState};
use crate::events::{ChallengePurpose, PairingEvent, RejectReason, SshPublicKey};
use crate::ids::{PairingId, Timestamp, UserId};
use crate::paircode::{self, CodeCommand, CodeError, CodeState};
use crate::sshkey::{verify_signature, SigError};
use std::net::IpAddr;
use thiserror::Error;

/// The decider of the Pairing aggregate.
#[derive(Clone, Copy, Debug)]
pub struct PairingDecider;

/// A challenge as issued: everything needed to rebuild its message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedChallenge {
    /// The challenge (and pairing) id.
    pub challenge_id: PairingId,
    /// The `server=` line.
    pub server: String,
    /// The key that must sign.
    pub key: SshPublicKey,
    /// The nonce.
    pub nonce: [u8; 32],
    /// What the challenge is for.
    pub purpose: ChallengePurpose,
    /// When it was issued.
    pub issued_at: Timestamp,
    /// When it stops being accepted.
    pub expires_at: Timestamp,
    /// Client IP after retention.
    pub ip: Option<IpAddr>,
}

impl IssuedChallenge {
    /// The exact bytes the client signs.
    pub fn message(&self) -> String {
        build_message(
            &self.server,
            self.challenge_id,
            &self.nonce,
            &self.key.fingerprint,
            self.expires_at,
        )
    }

    /// Whether the challenge has lapsed at `now` (the expiry instant itself is too late).
    pub fn is_expired_at(&self, now: Timestamp) -> bool {
        now >= self.expires_at
    }
}

/// A pairing stream's state. Every state after `Issued` is terminal: a challenge is used
/// at most once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PairingState {
    /// Nothing issued.
    #[default]
    None,
    /// Waiting for its signature.
    Issued(IssuedChallenge),
    /// Consumed by a valid signature.
    Verified {
        /// The challenge.
        challenge: IssuedChallenge,
        /// The user it signed in as.
        user_id: UserId,
        /// When.
        at: Timestamp,
    },
    /// Consumed by a refused signature.
    Rejected {
        /// The challenge.
        challenge: IssuedChallenge,
        /// Why.
        reason: RejectReason,
        /// When.
        at: Timestamp,
    },
    /// Lapsed unused.
    Expired {
        /// The challenge.
        challenge: IssuedChallenge,
        /// When it was swept.
        at: Timestamp,
    },
    /// A device authorization (RFC 8628): see `device`. Boxed: it is much larger than a
    /// challenge.
    Device(Box<DeviceState>),
    /// An admin pairing code: see `paircode`.
    Code(CodeState),
}

impl PairingState {
    /// The challenge, in whatever state it is.
    pub fn challenge(&self) -> Option<&IssuedChallenge> {
        match self {
            PairingState::None | PairingState::Device(_) | PairingState::Code(_) => None,
            PairingState::Issued(c)
            | PairingState::Verified { challenge: c, .. }
            | PairingState::Rejected { challenge: c, .. }
            | PairingState::Expired { challenge: c, .. } => Some(c),
        }
    }

    /// The challenge if it still waits for a signature.
    pub fn issued(&self) -> Option<&IssuedChallenge> {
        match self {
            PairingState::Issued(c) => Some(c),
            _ => None,
        }
    }

    /// The exact message bytes of the challenge, whatever its state.
    pub fn message(&self) -> Option<String> {
        self.challenge().map(IssuedChallenge::message)
    }
}

/// What can be asked of a pairing stream (challenge part).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PairingCommand {
    /// Issue a challenge for a key.
    IssueChallenge {
        /// The challenge id (the stream's id).
        challenge_id: PairingId,
        /// The `server=` line: public origin or server id.
        server: String,
        /// The key that must sign (already on the allowlist: see `sshkey`).
        key: SshPublicKey,
        /// 32 random bytes from the caller's CSPRNG.
        nonce: [u8; 32],
        /// What it is for.
        purpose: ChallengePurpose,
        /// Now.
        now: Timestamp,
        /// When it lapses (now + the configured lifetime, 60 s by default).
        expires_at: Timestamp,
        /// Client IP after retention.
        ip: Option<IpAddr>,
    },
    /// Consume the challenge with a signature. A challenge presented for another purpose
    /// than it was issued for is refused and stays unused.
    VerifySignature {
        /// Armored SSHSIG.
        signature: String,
        /// What the caller redeems it for: `SignIn` on the token route, `AddKey(caller)`
        /// on the key route. Any other purpose than the challenge's is `PurposeMismatch`.
        purpose: ChallengePurpose,
        /// The user the signature signs in as: the key's owner, or a new user's id when
        /// this registers one. For an `AddKey` challenge, the user adding the key. `None`
        /// when the key belongs to no user and registration is closed: a valid signature
        /// is then rejected as `KeyUnknown`, and only a key's holder learns that.
        user_id: Option<UserId>,
        /// Now.
        now: Timestamp,
    },
    /// Mark an unused challenge as lapsed (the sweeper).
    Expire {
        /// Now.
        now: Timestamp,
    },
    /// A device authorization command: see `device`.
    Device(DeviceCommand),
    /// A pairing-code command: see `paircode`.
    Code(CodeCommand),
}

impl From<CodeCommand> for PairingCommand {
    fn from(cmd: CodeCommand) -> Self {
        PairingCommand::Code(cmd)
    }
}

impl From<DeviceCommand> for PairingCommand {
    fn from(cmd: DeviceCommand) -> Self {
        PairingCommand::Device(cmd)
    }
}

/// Why a pairing command was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PairingError {
    /// No challenge with this id.
    #[error("challenge not found")]
    NotFound,
    /// `IssueChallenge` on a stream that already has one.
    #[error("challenge already issued")]
    AlreadyIssued,
    /// The challenge was already used or has lapsed.
    #[error("challenge already consumed")]
    Consumed,
    /// The server name cannot stand on the `server=` line.
    #[error("invalid server name")]
    InvalidServer,
    /// `expires_at` is not after `now`.
    #[error("challenge would be expired at birth")]
    InvalidExpiry,
    /// A challenge presented for another purpose than it was issued for: a sign-in
    /// challenge on the key route, an add-key challenge to sign in or of another user.
    #[error("challenge was issued for another purpose")]
    PurposeMismatch,
    /// The key's comment is over 256 bytes or holds control or invisible characters
    /// (DESIGN §6): refused before anything is stored.
    #[error("invalid key comment")]
    InvalidKeyComment,
    /// A device authorization command was refused.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// A pairing-code command was refused.
    #[error(transparent)]
    Code(#[from] CodeError),
}

impl AggregateEvent for PairingEvent {
    type Decider = PairingDecider;
}

impl Decider for PairingDecider {
    type Command = PairingCommand;
    type Event = PairingEvent;
    type State = PairingState;
    type Error = PairingError;

    fn decide(
        state: &PairingState,
        cmd: &PairingCommand,
    ) -> Result<Vec<PairingEvent>, PairingError> {
        match cmd {
            PairingCommand::IssueChallenge {
                challenge_id,
                server,
                key,
                nonce,
                purpose,
                now,
                expires_at,
                ip,
            } => {
                if *state != PairingState::None {
                    return Err(PairingError::AlreadyIssued);
                }
                validate_server(server).map_err(|_| PairingError::InvalidServer)?;
                if !crate::device::valid_key_comment(&key.comment) {
                    return Err(PairingError::InvalidKeyComment);
                }
                if expires_at <= now {
                    return Err(PairingError::InvalidExpiry);
                }
                Ok(vec![PairingEvent::ChallengeIssued {
                    challenge_id: *challenge_id,
                    server: server.clone(),
                    key: key.clone(),
                    nonce: *nonce,
                    purpose: *purpose,
                    issued_at: *now,
                    expires_at: *expires_at,
                    ip: *ip,
                }])
            }
            PairingCommand::VerifySignature {
                signature,
                purpose,
                user_id,
                now,
            } => verify(state, signature, *purpose, *user_id, *now),
            PairingCommand::Device(cmd) => match state {
                PairingState::None => Ok(device::decide(None, cmd)?),
                PairingState::Device(d) => Ok(device::decide(Some(d), cmd)?),
                _ => Err(PairingError::Device(DeviceError::NotFound)),
            },
            PairingCommand::Code(cmd) => match state {
                PairingState::None => Ok(paircode::decide(None, cmd)?),
                PairingState::Code(c) => Ok(paircode::decide(Some(c), cmd)?),
                _ => Err(PairingError::Code(CodeError::NotFound)),
            },
            PairingCommand::Expire { now } => match state {
                PairingState::Issued(c) if c.is_expired_at(*now) => {
                    Ok(vec![PairingEvent::ChallengeExpired { at: *now }])
                }
                _ => Ok(vec![]),
            },
        }
    }

    fn evolve(state: PairingState, event: &PairingEvent) -> PairingState {
        match (state, event) {
            (
                PairingState::None,
                PairingEvent::ChallengeIssued {
                    challenge_id,
                    server,
                    key,
                    nonce,
                    purpose,
                    issued_at,
                    expires_at,
                    ip,
                },
            ) => PairingState::Issued(IssuedChallenge {
                challenge_id: *challenge_id,
                server: server.clone(),
                key: key.clone(),
                nonce: *nonce,
                purpose: *purpose,
                issued_at: *issued_at,
                expires_at: *expires_at,
                ip: *ip,
            }),
            (PairingState::Issued(challenge), PairingEvent::SignatureVerified { user_id, at }) => {
                PairingState::Verified {
                    challenge,
                    user_id: *user_id,
                    at: *at,
                }
            }
            (PairingState::Issued(challenge), PairingEvent::SignatureRejected { reason, at }) => {
                PairingState::Rejected {
                    challenge,
                    reason: *reason,
                    at: *at,
                }
            }
            (PairingState::Issued(challenge), PairingEvent::ChallengeExpired { at }) => {
                PairingState::Expired { challenge, at: *at }
            }
            (PairingState::None, e @ PairingEvent::DeviceAuthorizationRequested { .. }) => {
                device::evolve(None, e)
                    .map_or(PairingState::None, |d| PairingState::Device(Box::new(d)))
            }
            (PairingState::Device(d), e) => device::evolve(Some(*d), e)
                .map_or(PairingState::None, |d| PairingState::Device(Box::new(d))),
            (PairingState::None, e @ PairingEvent::PairingCodeMinted { .. }) => {
                paircode::evolve(None, e).map_or(PairingState::None, PairingState::Code)
            }
            (PairingState::Code(c), e) => {
                paircode::evolve(Some(c), e).map_or(PairingState::None, PairingState::Code)
            }
            (state, _) => state,
        }
    }

    fn is_terminal(state: &PairingState) -> bool {
        matches!(
            state,
            PairingState::Verified { .. }
                | PairingState::Rejected { .. }
                | PairingState::Expired { .. }
        ) || matches!(state, PairingState::Device(d) if d.is_terminal())
            || matches!(state, PairingState::Code(c) if c.is_terminal())
    }
}

/// `VerifySignature`: refused (and left unused) when unknown, consumed, or presented for
/// another purpose; otherwise consumed with a verdict on the signature.
fn verify(
    state: &PairingState,
    signature: &str,
    purpose: ChallengePurpose,
    user_id: Option<UserId>,
    now: Timestamp,
) -> Result<Vec<PairingEvent>, PairingError> {
    let challenge = match state {
        PairingState::None => return Err(PairingError::NotFound),
        PairingState::Issued(c) => c,
        _ => return Err(PairingError::Consumed),
    };
    if challenge.purpose != purpose {
        return Err(PairingError::PurposeMismatch);
    }
    if let ChallengePurpose::AddKey(owner) = challenge.purpose {
        if Some(owner) != user_id {
            return Err(PairingError::PurposeMismatch);
        }
    }
    let rejected = |reason| Ok(vec![PairingEvent::SignatureRejected { reason, at: now }]);
    if challenge.is_expired_at(now) {
        return rejected(RejectReason::Expired);
    }
    let message = challenge.message();
    match verify_signature(&challenge.key, message.as_bytes(), signature) {
        Ok(()) => match user_id {
            Some(user_id) => Ok(vec![PairingEvent::SignatureVerified { user_id, at: now }]),
            None => rejected(RejectReason::KeyUnknown),
        },
        Err(SigError::UserPresenceMissing) => rejected(RejectReason::UserPresenceMissing),
        Err(_) => rejected(RejectReason::InvalidSignature),
    }
}

/// The outcome of a `VerifySignature` that was decided: the user it signed in as, or why
/// the signature was refused. `None` when `events` holds neither (not a verification).
pub fn verdict(events: &[PairingEvent]) -> Option<Result<UserId, RejectReason>> {
    match events.first() {
        Some(PairingEvent::SignatureVerified { user_id, .. }) => Some(Ok(*user_id)),
        Some(PairingEvent::SignatureRejected { reason, .. }) => Some(Err(*reason)),
        _ => None,
    }
}

#[cfg(test)]
mod tests;

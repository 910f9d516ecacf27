//! The device authorization part of the Pairing aggregate (RFC 8628, DESIGN §12): a device
//! asks, a signed-in user approves or denies, the device proves the key it wants enrolled,
//! cancels, or redeems its device code once; the sweeper expires what nobody finished.
//! Also the poll rule (`authorization_pending`, `slow_down` and friends) as a pure
//! function of the state, the poll bookkeeping and `now`.
//!
//! Must not: make the device code, the user code or the token (the caller makes them and
//! hands in hashes and ids), read the clock, or touch users: minting the token and adding
//! the key happen on the approver's user stream, driven by the caller.

use crate::challenge::build_message;
use crate::events::{KeyChallenge, PairingEvent, Scope};
use crate::ids::{KeyId, PairingId, Timestamp, TokenId, UserId};
use crate::sshkey::verify_signature;
use std::net::IpAddr;
use thiserror::Error;

/// RFC 8628 `expires_in`: a device code lives 10 minutes.
pub const DEVICE_CODE_TTL_SECS: i64 = 600;
/// RFC 8628 `interval`: the first polling interval.
pub const POLL_INTERVAL_SECS: u32 = 5;
/// What one `slow_down` adds to a code's interval (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP_SECS: u32 = 5;
/// The longest device token an approver may pick: one year.
pub const MAX_DEVICE_TOKEN_SECS: u64 = 365 * 24 * 3600;
/// The device token lifetime when the approver picks none: 90 days.
pub const DEFAULT_DEVICE_TOKEN_SECS: u64 = 90 * 24 * 3600;
/// Longest `client_id`, in characters.
pub const MAX_CLIENT_ID_CHARS: usize = 64;
/// Longest `device_name` (or approval `name`), in characters.
pub const MAX_DEVICE_NAME_CHARS: usize = 64;
/// Longest comment of a key to enroll, in bytes (DESIGN §6, as for any key).
pub const MAX_KEY_COMMENT_BYTES: usize = 256;

impl KeyChallenge {
    /// The exact bytes the device signs (namespace `latchkey-auth`).
    pub fn message(&self, pairing_id: PairingId) -> String {
        build_message(
            &self.server,
            pairing_id,
            &self.nonce,
            &self.key.fingerprint,
            self.expires_at,
        )
    }
}

/// A device authorization as requested: what the approval screen shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRequest {
    /// The pairing (stream) id.
    pub pairing_id: PairingId,
    /// The app's name as the device gave it.
    pub client_id: String,
    /// Requested scopes, sorted, never `admin`.
    pub scopes: Vec<Scope>,
    /// The device's name.
    pub device_name: Option<String>,
    /// SHA-256 of the device code.
    pub device_code_hash: [u8; 32],
    /// SHA-256 of the canonical user code.
    pub user_code_hash: [u8; 32],
    /// The key to enroll, if any.
    pub key: Option<KeyChallenge>,
    /// The first polling interval.
    pub interval_secs: u32,
    /// When it was asked.
    pub requested_at: Timestamp,
    /// When the device code lapses.
    pub expires_at: Timestamp,
    /// Requester's IP after retention.
    pub ip: Option<IpAddr>,
    /// Requester's User-Agent.
    pub user_agent: Option<String>,
}

/// Where a device authorization stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceStatus {
    /// Waiting for a user.
    Pending,
    /// Approved; the device may redeem its code once.
    Approved(Approval),
    /// A user said no.
    Denied {
        /// Who.
        by: UserId,
        /// When.
        at: Timestamp,
    },
    /// The device gave up.
    Cancelled {
        /// When.
        at: Timestamp,
    },
    /// The device redeemed its code: terminal.
    Issued {
        /// The approval it redeemed.
        approval: Approval,
        /// The token minted for it.
        token_id: TokenId,
        /// When.
        at: Timestamp,
    },
    /// Lapsed before it was redeemed (the sweeper).
    Expired {
        /// When.
        at: Timestamp,
    },
}

/// What an approver granted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    /// The approving user: the token is theirs.
    pub by: UserId,
    /// Granted scopes (a subset of the requested ones).
    pub scopes: Vec<Scope>,
    /// The device name the token carries.
    pub device_name: Option<String>,
    /// Token lifetime in seconds from its minting; `None`: never expires.
    pub token_ttl_secs: Option<u64>,
    /// The key id the enrolled key gets on the approver's account.
    pub key_id: Option<KeyId>,
    /// When.
    pub at: Timestamp,
}

/// A device authorization's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceState {
    /// The request.
    pub request: DeviceRequest,
    /// Whether the device proved it holds the key (always false without a key).
    pub key_proven: bool,
    /// Where it stands.
    pub status: DeviceStatus,
}

impl DeviceState {
    /// Still waiting for a user, and not past its expiry at `now`.
    pub fn is_pending_at(&self, now: Timestamp) -> bool {
        self.status == DeviceStatus::Pending && now < self.request.expires_at
    }

    /// Redeemed, denied, cancelled or expired: no command changes it any more.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self.status,
            DeviceStatus::Issued { .. }
                | DeviceStatus::Denied { .. }
                | DeviceStatus::Cancelled { .. }
                | DeviceStatus::Expired { .. }
        )
    }
}

/// The fields of [`DeviceCommand::Request`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestDevice {
    /// The pairing (stream) id.
    pub pairing_id: PairingId,
    /// `client_id`: 1..=64 printable characters.
    pub client_id: String,
    /// Requested scopes; empty means `chat:read chat:write`.
    pub scopes: Vec<Scope>,
    /// `device_name`: 1..=64 characters, no control characters.
    pub device_name: Option<String>,
    /// SHA-256 of the device code the caller made.
    pub device_code_hash: [u8; 32],
    /// SHA-256 of the user code the caller made.
    pub user_code_hash: [u8; 32],
    /// The key to enroll and its proof challenge.
    pub key: Option<KeyChallenge>,
    /// Requester's IP after retention.
    pub ip: Option<IpAddr>,
    /// Requester's User-Agent (cut to 256 characters by the caller).
    pub user_agent: Option<String>,
    /// Now.
    pub now: Timestamp,
}

/// What can be asked of a device authorization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceCommand {
    /// Start one (RFC 8628 §3.1). Boxed: it is much larger than the other commands.
    Request(Box<RequestDevice>),
    /// The device proves it holds the key it sent.
    ProveKey {
        /// The `challenge_id` the device signed (the pairing id).
        challenge_id: PairingId,
        /// Armored SSHSIG over the challenge message.
        signature: String,
        /// Now.
        now: Timestamp,
    },
    /// A signed-in user approves.
    Approve {
        /// The approver.
        by: UserId,
        /// Scopes to grant; `None`: all requested. Only narrowing is allowed.
        scopes: Option<Vec<Scope>>,
        /// A device name replacing the device's own.
        name: Option<String>,
        /// Token lifetime; `None`: never expires. At most one year.
        token_ttl_secs: Option<u64>,
        /// An id for the enrolled key (used only when a key was sent).
        key_id: KeyId,
        /// Now.
        now: Timestamp,
    },
    /// A signed-in user refuses.
    Deny {
        /// Who.
        by: UserId,
        /// Now.
        now: Timestamp,
    },
    /// The device gives up.
    Cancel {
        /// Now.
        now: Timestamp,
    },
    /// The device redeems its approved code (once).
    IssueToken {
        /// The id of the token the caller will mint.
        token_id: TokenId,
        /// Now.
        now: Timestamp,
    },
    /// Lapse a request past its expiry (the sweeper).
    Expire {
        /// Now.
        now: Timestamp,
    },
}

/// Why a device command was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DeviceError {
    /// No device authorization on this stream.
    #[error("no such device authorization")]
    NotFound,
    /// `Request` on a stream that already holds one.
    #[error("device authorization already requested")]
    AlreadyRequested,
    /// `client_id` empty, over 64 characters, or with control or invisible format characters.
    #[error("client_id must be 1 to 64 printable characters")]
    InvalidClientId,
    /// `device_name` or `name` empty, over 64 characters, or with control or invisible
    /// format characters.
    #[error("device_name must be 1 to 64 printable characters")]
    InvalidDeviceName,
    /// The key to enroll has a comment over 256 bytes, or with control or invisible
    /// format characters.
    #[error("the key comment must be at most 256 bytes of printable characters")]
    InvalidKeyComment,
    /// Scopes other than `chat:read` and `chat:write`, or none granted.
    #[error("scopes must be a non-empty subset of chat:read chat:write")]
    InvalidScopes,
    /// Approval asked for a scope the device did not request.
    #[error("an approval may only narrow the requested scopes")]
    ScopesWidened,
    /// Token lifetime zero or over a year.
    #[error("expires_in must be 1 second to 1 year, or null for no expiry")]
    InvalidLifetime,
    /// `expires_at` not after `now` at request time.
    #[error("device code would be expired at birth")]
    InvalidExpiry,
    /// Approving a request whose key has not been proven.
    #[error("the device has not proven it holds the key it asked to enroll")]
    KeyNotProven,
    /// `ProveKey` on a request without a key.
    #[error("this request enrolls no key")]
    NoKey,
    /// `ProveKey` naming another challenge.
    #[error("the challenge is not this request's")]
    WrongChallenge,
    /// `ProveKey` after the proof challenge lapsed.
    #[error("the key challenge has expired")]
    ChallengeExpired,
    /// `ProveKey` with a signature that does not verify.
    #[error("the signature does not verify for this challenge, key and namespace")]
    BadSignature,
    /// Already approved (a second approval lost the race).
    #[error("the request was already approved")]
    AlreadyApproved,
    /// Redeeming a request nobody approved yet.
    #[error("the request is still pending")]
    NotApproved,
    /// Denied by a user.
    #[error("the request was denied")]
    Denied,
    /// Cancelled by the device.
    #[error("the request was cancelled")]
    Cancelled,
    /// Past its expiry.
    #[error("the device code has expired")]
    Expired,
    /// Redeemed already.
    #[error("the device code was already redeemed")]
    Redeemed,
}

/// Whether a name-like value (client_id, device name) is acceptable: 1..=`max` characters
/// after trimming, all printable: no control characters, and none of the invisible
/// characters of [`is_invisible`], which would let a requester disguise its name on the
/// approval screen.
pub fn valid_name(s: &str, max: usize) -> bool {
    let n = s.chars().count();
    !s.trim().is_empty() && n <= max && !s.chars().any(|c| c.is_control() || is_invisible(c))
}

/// Whether an SSH key comment may be stored (DESIGN §6): at most
/// [`MAX_KEY_COMMENT_BYTES`] bytes, no control or invisible characters. Empty is fine.
pub fn valid_key_comment(comment: &str) -> bool {
    comment.len() <= MAX_KEY_COMMENT_BYTES
        && !comment.chars().any(|c| c.is_control() || is_invisible(c))
}

/// Unicode's format characters (general category Cf: bidi overrides and isolates,
/// zero-width characters, the byte-order mark, tag characters) and the line and paragraph
/// separators (Zl, Zp): characters that print nothing, or reorder or break what is around
/// them.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{600}'..='\u{605}'
            | '\u{61c}'
            | '\u{6dd}'
            | '\u{70f}'
            | '\u{890}'..='\u{891}'
            | '\u{8e2}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{110bd}'
            | '\u{110cd}'
            | '\u{13430}'..='\u{1343f}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0001}'
            | '\u{e0020}'..='\u{e007f}'
    )
}

/// The error a closed (or expired) request answers with, whatever was asked.
fn closed(state: &DeviceState, now: Timestamp) -> Option<DeviceError> {
    match &state.status {
        DeviceStatus::Issued { .. } => Some(DeviceError::Redeemed),
        DeviceStatus::Denied { .. } => Some(DeviceError::Denied),
        DeviceStatus::Cancelled { .. } => Some(DeviceError::Cancelled),
        DeviceStatus::Expired { .. } => Some(DeviceError::Expired),
        _ if now >= state.request.expires_at => Some(DeviceError::Expired),
        _ => None,
    }
}

fn normalise_scopes(scopes: &[Scope]) -> Result<Vec<Scope>, DeviceError> {
    device_token_scopes(scopes).ok_or(DeviceError::InvalidScopes)
}

/// The scopes of a device token asked for as `scopes`, sorted and deduplicated:
/// `chat:read chat:write` when none are named, `None` when `admin` is (a device token
/// never carries it). Shared by the device flow and admin pairing codes.
pub fn device_token_scopes(scopes: &[Scope]) -> Option<Vec<Scope>> {
    if scopes.contains(&Scope::Admin) {
        return None;
    }
    let mut s = if scopes.is_empty() {
        vec![Scope::ChatRead, Scope::ChatWrite]
    } else {
        scopes.to_vec()
    };
    s.sort();
    s.dedup();
    Some(s)
}

/// Decides a device command on the device part of a pairing stream (`None`: empty stream).
pub fn decide(
    state: Option<&DeviceState>,
    cmd: &DeviceCommand,
) -> Result<Vec<PairingEvent>, DeviceError> {
    let state = match (state, cmd) {
        (None, DeviceCommand::Request(req)) => return request(req),
        (None, _) => return Err(DeviceError::NotFound),
        (Some(state), _) => state,
    };
    match cmd {
        DeviceCommand::Request(_) => Err(DeviceError::AlreadyRequested),
        DeviceCommand::ProveKey {
            challenge_id,
            signature,
            now,
        } => prove(state, *challenge_id, signature, *now),
        DeviceCommand::Approve { .. } => approve(state, cmd),
        DeviceCommand::Deny { by, now } => {
            pending(state, *now)?;
            Ok(vec![PairingEvent::DeviceDenied { by: *by, at: *now }])
        }
        DeviceCommand::Cancel { now } => match closed(state, *now) {
            Some(DeviceError::Cancelled) => Ok(vec![]),
            Some(e) => Err(e),
            None => Ok(vec![PairingEvent::DeviceAuthorizationCancelled {
                at: *now,
            }]),
        },
        DeviceCommand::IssueToken { token_id, now } => {
            if let Some(e) = closed(state, *now) {
                return Err(e);
            }
            match state.status {
                DeviceStatus::Approved(_) => Ok(vec![PairingEvent::DeviceTokenIssued {
                    token_id: *token_id,
                    at: *now,
                }]),
                _ => Err(DeviceError::NotApproved),
            }
        }
        DeviceCommand::Expire { now } => {
            let open = matches!(
                state.status,
                DeviceStatus::Pending | DeviceStatus::Approved(_)
            );
            if open && *now >= state.request.expires_at {
                Ok(vec![PairingEvent::DeviceAuthorizationExpired { at: *now }])
            } else {
                Ok(vec![])
            }
        }
    }
}

/// Ok when the request still waits for a user at `now`.
fn pending(state: &DeviceState, now: Timestamp) -> Result<(), DeviceError> {
    if let Some(e) = closed(state, now) {
        return Err(e);
    }
    match state.status {
        DeviceStatus::Pending => Ok(()),
        _ => Err(DeviceError::AlreadyApproved),
    }
}

fn request(req: &RequestDevice) -> Result<Vec<PairingEvent>, DeviceError> {
    if !valid_name(&req.client_id, MAX_CLIENT_ID_CHARS) {
        return Err(DeviceError::InvalidClientId);
    }
    if let Some(name) = &req.device_name {
        if !valid_name(name, MAX_DEVICE_NAME_CHARS) {
            return Err(DeviceError::InvalidDeviceName);
        }
    }
    let scopes = normalise_scopes(&req.scopes)?;
    let expires_at = req.now.plus_secs(DEVICE_CODE_TTL_SECS);
    if let Some(k) = &req.key {
        if k.expires_at <= req.now {
            return Err(DeviceError::InvalidExpiry);
        }
        if !valid_key_comment(&k.key.comment) {
            return Err(DeviceError::InvalidKeyComment);
        }
    }
    Ok(vec![PairingEvent::DeviceAuthorizationRequested {
        pairing_id: req.pairing_id,
        client_id: req.client_id.clone(),
        scopes,
        device_name: req.device_name.clone(),
        device_code_hash: req.device_code_hash,
        user_code_hash: req.user_code_hash,
        key: req.key.clone(),
        interval_secs: POLL_INTERVAL_SECS,
        requested_at: req.now,
        expires_at,
        ip: req.ip,
        user_agent: req.user_agent.clone(),
    }])
}

fn prove(
    state: &DeviceState,
    challenge_id: PairingId,
    signature: &str,
    now: Timestamp,
) -> Result<Vec<PairingEvent>, DeviceError> {
    let key = state.request.key.as_ref().ok_or(DeviceError::NoKey)?;
    if challenge_id != state.request.pairing_id {
        return Err(DeviceError::WrongChallenge);
    }
    pending(state, now)?;
    if state.key_proven {
        return Ok(vec![]);
    }
    if now >= key.expires_at {
        return Err(DeviceError::ChallengeExpired);
    }
    let message = key.message(state.request.pairing_id);
    verify_signature(&key.key, message.as_bytes(), signature)
        .map_err(|_| DeviceError::BadSignature)?;
    Ok(vec![PairingEvent::DeviceKeyProven { at: now }])
}

fn approve(state: &DeviceState, cmd: &DeviceCommand) -> Result<Vec<PairingEvent>, DeviceError> {
    let DeviceCommand::Approve {
        by,
        scopes,
        name,
        token_ttl_secs,
        key_id,
        now,
    } = cmd
    else {
        return Err(DeviceError::NotFound);
    };
    pending(state, *now)?;
    if state.request.key.is_some() && !state.key_proven {
        return Err(DeviceError::KeyNotProven);
    }
    let granted = match scopes {
        None => state.request.scopes.clone(),
        Some(s) if s.is_empty() => return Err(DeviceError::InvalidScopes),
        Some(s) => normalise_scopes(s)?,
    };
    if granted.iter().any(|s| !state.request.scopes.contains(s)) {
        return Err(DeviceError::ScopesWidened);
    }
    if let Some(n) = name {
        if !valid_name(n, MAX_DEVICE_NAME_CHARS) {
            return Err(DeviceError::InvalidDeviceName);
        }
    }
    if token_ttl_secs.is_some_and(|s| s == 0 || s > MAX_DEVICE_TOKEN_SECS) {
        return Err(DeviceError::InvalidLifetime);
    }
    Ok(vec![PairingEvent::DeviceApproved {
        by: *by,
        scopes: granted,
        device_name: name.clone().or_else(|| state.request.device_name.clone()),
        token_ttl_secs: *token_ttl_secs,
        key_id: state.request.key.as_ref().map(|_| *key_id),
        at: *now,
    }])
}

/// Records one device event. `None` in, `None` out unless the event starts a request.
pub fn evolve(state: Option<DeviceState>, event: &PairingEvent) -> Option<DeviceState> {
    let Some(mut state) = state else {
        return requested(event);
    };
    match event {
        PairingEvent::DeviceKeyProven { .. } => state.key_proven = true,
        PairingEvent::DeviceApproved {
            by,
            scopes,
            device_name,
            token_ttl_secs,
            key_id,
            at,
        } => {
            state.status = DeviceStatus::Approved(Approval {
                by: *by,
                scopes: scopes.clone(),
                device_name: device_name.clone(),
                token_ttl_secs: *token_ttl_secs,
                key_id: *key_id,
                at: *at,
            })
        }
        PairingEvent::DeviceDenied { by, at } => {
            state.status = DeviceStatus::Denied { by: *by, at: *at }
        }
        PairingEvent::DeviceAuthorizationCancelled { at } => {
            state.status = DeviceStatus::Cancelled { at: *at }
        }
        PairingEvent::DeviceTokenIssued { token_id, at } => {
            if let DeviceStatus::Approved(approval) = &state.status {
                state.status = DeviceStatus::Issued {
                    approval: approval.clone(),
                    token_id: *token_id,
                    at: *at,
                }
            }
        }
        PairingEvent::DeviceAuthorizationExpired { at } => {
            state.status = DeviceStatus::Expired { at: *at }
        }
        _ => {}
    }
    Some(state)
}

/// The state a `device.requested` starts.
fn requested(event: &PairingEvent) -> Option<DeviceState> {
    let PairingEvent::DeviceAuthorizationRequested {
        pairing_id,
        client_id,
        scopes,
        device_name,
        device_code_hash,
        user_code_hash,
        key,
        interval_secs,
        requested_at,
        expires_at,
        ip,
        user_agent,
    } = event
    else {
        return None;
    };
    Some(DeviceState {
        request: DeviceRequest {
            pairing_id: *pairing_id,
            client_id: client_id.clone(),
            scopes: scopes.clone(),
            device_name: device_name.clone(),
            device_code_hash: *device_code_hash,
            user_code_hash: *user_code_hash,
            key: key.clone(),
            interval_secs: *interval_secs,
            requested_at: *requested_at,
            expires_at: *expires_at,
            ip: *ip,
            user_agent: user_agent.clone(),
        },
        key_proven: false,
        status: DeviceStatus::Pending,
    })
}

/// The poll bookkeeping of one device code: kept by the caller in memory (polls are not
/// events; a restart forgets it, which only makes the next poll a first poll again).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollClock {
    /// When the device last polled.
    pub last_poll: Timestamp,
    /// The code's current interval: 5 s plus 5 s per `slow_down`.
    pub interval_secs: u32,
}

/// The answer to one poll of the token endpoint (RFC 8628 §3.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollVerdict {
    /// `authorization_pending`.
    Pending,
    /// `slow_down`: the interval grew by 5 s.
    SlowDown,
    /// Approved: redeem the code now (`IssueToken`).
    Redeem,
    /// `access_denied`: denied or cancelled.
    AccessDenied,
    /// `expired_token`.
    Expired,
    /// `invalid_grant`: already redeemed.
    Redeemed,
    /// `invalid_client`: another `client_id` than the one that asked.
    WrongClient,
}

/// Judges one poll. `slow_down` applies only to a pending request, and a first poll is
/// never `slow_down`; a closed request answers its own error at once. Returns the verdict
/// and the bookkeeping to keep (the poll is recorded on pending requests only).
pub fn poll(
    state: &DeviceState,
    client_id: &str,
    clock: Option<PollClock>,
    now: Timestamp,
) -> (PollVerdict, Option<PollClock>) {
    if client_id != state.request.client_id {
        return (PollVerdict::WrongClient, clock);
    }
    match closed(state, now) {
        Some(DeviceError::Redeemed) => return (PollVerdict::Redeemed, clock),
        Some(DeviceError::Denied | DeviceError::Cancelled) => {
            return (PollVerdict::AccessDenied, clock)
        }
        Some(_) => return (PollVerdict::Expired, clock),
        None => {}
    }
    if matches!(state.status, DeviceStatus::Approved(_)) {
        return (PollVerdict::Redeem, clock);
    }
    match clock {
        None => (
            PollVerdict::Pending,
            Some(PollClock {
                last_poll: now,
                interval_secs: state.request.interval_secs,
            }),
        ),
        Some(c) if now < c.last_poll.plus_secs(i64::from(c.interval_secs)) => (
            PollVerdict::SlowDown,
            Some(PollClock {
                last_poll: now,
                interval_secs: c.interval_secs.saturating_add(SLOW_DOWN_STEP_SECS),
            }),
        ),
        Some(c) => (
            PollVerdict::Pending,
            Some(PollClock {
                last_poll: now,
                interval_secs: c.interval_secs,
            }),
        ),
    }
}

#[cfg(test)]
mod tests;

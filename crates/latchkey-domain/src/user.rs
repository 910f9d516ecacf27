//! The User aggregate (`user/<uuid>`): a user's keys, tokens and standing, and the rules
//! for registering, adding and removing keys, minting, using and revoking tokens, and
//! disabling.
//!
//! Must not: check handle uniqueness or key ownership across users (read models do, before
//! the command), or make token secrets (the caller mints the raw token; only its hash
//! arrives here).

use crate::decider::{AggregateEvent, Decider};
use crate::events::{RevokeReason, Scope, SshPublicKey, TokenKind, UserEvent};
use crate::handle::{validate_handle, HandleError};
use crate::ids::{KeyId, Timestamp, TokenId, UserId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use thiserror::Error;

/// `TokenUsed` is recorded at most this often per token, so reads do not flood the log.
pub const TOKEN_USE_INTERVAL_MS: i64 = 5 * 60 * 1000;

/// The scopes a session of this user carries: every scope the user has.
pub fn session_scopes(admin: bool) -> Vec<Scope> {
    if admin {
        vec![Scope::ChatRead, Scope::ChatWrite, Scope::Admin]
    } else {
        vec![Scope::ChatRead, Scope::ChatWrite]
    }
}

/// The scopes a personal access token gets when none were asked for.
pub fn default_pat_scopes() -> Vec<Scope> {
    vec![Scope::ChatRead, Scope::ChatWrite]
}

/// The longest lifetime a personal access token can be given: 10 years.
pub const MAX_PAT_SECS: u64 = 10 * 365 * 24 * 3600;

/// The longest personal access token name, in characters (after trimming).
pub const MAX_PAT_NAME_CHARS: usize = 64;

/// What a user asked for a personal access token, checked: a name of 1..=64 printable
/// characters (trimmed; no control or invisible characters), scopes (`chat:read chat:write` when none), and an expiry `expires_in` seconds
/// after `now`, positive and at most 10 years (none: never expires).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatTerms {
    /// The trimmed name.
    pub name: String,
    /// The scopes asked for, or the default ones.
    pub scopes: Vec<Scope>,
    /// When it lapses.
    pub expires_at: Option<Timestamp>,
}

impl PatTerms {
    /// Checks a request for a personal access token made at `now`.
    pub fn new(
        name: &str,
        scopes: Option<Vec<Scope>>,
        expires_in_secs: Option<u64>,
        now: Timestamp,
    ) -> Result<Self, UserError> {
        let name = name.trim();
        if !crate::device::valid_name(name, MAX_PAT_NAME_CHARS) {
            return Err(UserError::InvalidTokenName);
        }
        let scopes = match scopes {
            Some(s) if !s.is_empty() => s,
            _ => default_pat_scopes(),
        };
        let expires_at = match expires_in_secs {
            None => None,
            Some(0) => return Err(UserError::InvalidExpiry),
            Some(s) if s > MAX_PAT_SECS => return Err(UserError::ExpiryTooFar),
            // At most 10 years: fits an i64 with room to spare.
            Some(s) => Some(now.plus_secs(i64::try_from(s).unwrap_or(i64::MAX / 1000))),
        };
        Ok(Self {
            name: name.to_string(),
            scopes,
            expires_at,
        })
    }
}

/// The decider of the User aggregate.
#[derive(Clone, Copy, Debug)]
pub struct UserDecider;

/// A user stream's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserState {
    /// No `UserRegistered` yet.
    #[default]
    Unregistered,
    /// A registered user.
    Registered(User),
}

impl UserState {
    /// The user, if registered.
    pub fn user(&self) -> Option<&User> {
        match self {
            UserState::Unregistered => None,
            UserState::Registered(u) => Some(u),
        }
    }
}

/// A registered user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The user's id.
    pub id: UserId,
    /// The user's handle.
    pub handle: String,
    /// Whether the user may hold `admin` sessions.
    pub admin: bool,
    /// A disabled user can neither sign in nor use any token.
    pub disabled: bool,
    /// Registered keys, oldest first; never empty.
    pub keys: Vec<UserKey>,
    /// This user's live tokens (not revoked, not swept), by id. A revoked or swept token
    /// leaves the state, so its size follows the live tokens and not the history
    /// ([`token_history`] folds every token ever minted, for the admin). A `BTreeMap` so
    /// that revoke-all and the sweeper emit events in a stable order.
    pub tokens: BTreeMap<TokenId, TokenRecord>,
}

/// A registered key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserKey {
    /// The key's id (REST `key_id`).
    pub key_id: KeyId,
    /// The key.
    pub key: SshPublicKey,
    /// When it was registered or added.
    pub added_at: Timestamp,
}

/// What the user stream knows about one token (never the secret): the one token record,
/// kept by the user aggregate and, for live tokens, by the tokens read model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// SHA-256 of the raw token.
    pub hash: [u8; 32],
    /// Session, device or personal.
    pub kind: TokenKind,
    /// Scopes carried.
    pub scopes: Vec<Scope>,
    /// Name given by the user (PATs).
    pub name: Option<String>,
    /// Device name.
    pub device_name: Option<String>,
    /// User-Agent at mint time.
    pub user_agent: Option<String>,
    /// Client IP at mint time (after retention).
    pub ip: Option<IpAddr>,
    /// Fingerprint of the key that minted a session.
    pub key_fingerprint: Option<String>,
    /// When it was minted.
    pub created_at: Timestamp,
    /// None: never expires.
    pub expires_at: Option<Timestamp>,
    /// Last recorded use (at most every 5 minutes).
    pub last_used_at: Option<Timestamp>,
    /// Live, revoked or expired.
    pub status: TokenStatus,
}

/// Whether a token is still in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenStatus {
    /// Not revoked, not swept. It may still be past `expires_at`: see
    /// [`TokenRecord::is_valid_at`].
    Live,
    /// Revoked.
    Revoked {
        /// Why.
        reason: RevokeReason,
        /// When.
        at: Timestamp,
    },
    /// Swept after its expiry.
    Expired,
}

impl TokenRecord {
    /// The record a `TokenMinted` event starts (with its token id); `None` for any other
    /// event.
    pub fn minted(event: &UserEvent) -> Option<(TokenId, Self)> {
        let UserEvent::TokenMinted {
            token_id,
            hash,
            kind,
            scopes,
            name,
            device_name,
            user_agent,
            ip,
            key_fingerprint,
            created_at,
            expires_at,
        } = event
        else {
            return None;
        };
        let record = TokenRecord {
            hash: *hash,
            kind: *kind,
            scopes: scopes.clone(),
            name: name.clone(),
            device_name: device_name.clone(),
            user_agent: user_agent.clone(),
            ip: *ip,
            key_fingerprint: key_fingerprint.clone(),
            created_at: *created_at,
            expires_at: *expires_at,
            last_used_at: None,
            status: TokenStatus::Live,
        };
        Some((*token_id, record))
    }

    /// Not revoked and not swept.
    pub fn is_live(&self) -> bool {
        self.status == TokenStatus::Live
    }

    /// Live and before its expiry: what auth checks. Expiry is checked here, not only by
    /// the sweeper, so sweeper lag is never a hole.
    pub fn is_valid_at(&self, now: Timestamp) -> bool {
        self.is_live() && self.expires_at.is_none_or(|e| now < e)
    }
}

impl User {
    /// The key with this fingerprint.
    pub fn key_by_fingerprint(&self, fingerprint: &str) -> Option<&UserKey> {
        self.keys.iter().find(|k| k.key.fingerprint == fingerprint)
    }

    /// The key with this id.
    pub fn key(&self, key_id: KeyId) -> Option<&UserKey> {
        self.keys.iter().find(|k| k.key_id == key_id)
    }

    /// Live tokens, in id order.
    pub fn live_tokens(&self) -> impl Iterator<Item = (&TokenId, &TokenRecord)> {
        self.tokens.iter().filter(|(_, t)| t.is_live())
    }
}

/// What can be asked of a user stream. Each command carries its own context: `now`, and
/// any id, hash or IP the caller made or saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserCommand {
    /// Create the user with a first key. Handle uniqueness is checked by the caller.
    Register {
        /// The new user's id (the stream's id).
        user_id: UserId,
        /// The handle, chosen or derived.
        handle: String,
        /// Id for the first key.
        key_id: KeyId,
        /// The first key.
        key: SshPublicKey,
        /// Whether the user is an admin.
        admin: bool,
        /// Now.
        now: Timestamp,
    },
    /// Add a key (after a challenge signed by it). A key already present is a no-op.
    AddKey {
        /// Id for the key.
        key_id: KeyId,
        /// The key.
        key: SshPublicKey,
        /// Now.
        now: Timestamp,
    },
    /// Remove a key, revoking the live sessions it minted.
    RemoveKey {
        /// Which key.
        key_id: KeyId,
        /// Now.
        now: Timestamp,
    },
    /// Record a token minted by the caller (only its hash arrives here). Its eleven fields
    /// live in [`MintToken`] so a caller can build it step by step.
    MintToken(MintToken),
    /// Note that a token was used; recorded at most every 5 minutes.
    RecordTokenUse {
        /// Which token.
        token_id: TokenId,
        /// Now.
        now: Timestamp,
    },
    /// Revoke one token.
    RevokeToken {
        /// Which token.
        token_id: TokenId,
        /// Why.
        reason: RevokeReason,
        /// Now.
        now: Timestamp,
    },
    /// Revoke every live token, except perhaps the current one.
    RevokeAllTokens {
        /// The token to keep (the caller's own, with `keep_current`).
        keep: Option<TokenId>,
        /// Now.
        now: Timestamp,
    },
    /// Mark every live token past its expiry as expired (the sweeper).
    ExpireTokens {
        /// Now.
        now: Timestamp,
    },
    /// Disable the user and revoke every live token.
    Disable {
        /// Now.
        now: Timestamp,
    },
    /// Enable the user again. Revoked tokens stay revoked.
    Enable {
        /// Now.
        now: Timestamp,
    },
}

/// The fields of [`UserCommand::MintToken`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MintToken {
    /// The token's public id.
    pub token_id: TokenId,
    /// SHA-256 of the raw token.
    pub hash: [u8; 32],
    /// Session, device or personal.
    pub kind: TokenKind,
    /// Requested scopes. Ignored for a session (it carries every scope of its user)
    /// except that asking for `admin` without being an admin is refused; an empty list
    /// on a personal token means `chat:read chat:write`.
    pub scopes: Vec<Scope>,
    /// Name (PATs).
    pub name: Option<String>,
    /// Device name.
    pub device_name: Option<String>,
    /// User-Agent.
    pub user_agent: Option<String>,
    /// Client IP after retention.
    pub ip: Option<IpAddr>,
    /// The key that signed the session's challenge.
    pub key_fingerprint: Option<String>,
    /// None: never expires.
    pub expires_at: Option<Timestamp>,
    /// Now.
    pub now: Timestamp,
}

impl From<MintToken> for UserCommand {
    fn from(cmd: MintToken) -> Self {
        UserCommand::MintToken(cmd)
    }
}

/// Why a user command was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum UserError {
    /// The user does not exist.
    #[error("user not found")]
    NotFound,
    /// `Register` on an existing user.
    #[error("user already exists")]
    AlreadyExists,
    /// The handle's syntax is wrong.
    #[error("invalid handle: {0}")]
    InvalidHandle(#[from] HandleError),
    /// The user is disabled.
    #[error("user is disabled")]
    Disabled,
    /// `AddKey` with a key id already used for another key.
    #[error("key id already in use")]
    KeyExists,
    /// No key with that id.
    #[error("key not found")]
    KeyNotFound,
    /// A session minted by a key the user no longer has (removed since it signed).
    #[error("the signing key is not the user's")]
    SigningKeyUnknown,
    /// A user keeps at least one key.
    #[error("cannot remove the last key")]
    LastKey,
    /// `admin` asked for by a non-admin or on a non-session token.
    #[error("scope not allowed")]
    ScopeNotAllowed,
    /// `MintToken` with a token id already used.
    #[error("token id already in use")]
    TokenExists,
    /// `expires_at` is not after `now` (or a personal token's `expires_in` is 0).
    #[error("token would be expired at birth")]
    InvalidExpiry,
    /// A personal token's `expires_in` is over [`MAX_PAT_SECS`].
    #[error("token lifetime over 10 years")]
    ExpiryTooFar,
    /// A personal token's name is blank or over [`MAX_PAT_NAME_CHARS`] characters.
    #[error("invalid token name")]
    InvalidTokenName,
}

impl AggregateEvent for UserEvent {
    type Decider = UserDecider;
}

/// `RecordTokenUse`: a `TokenUsed` at most every [`TOKEN_USE_INTERVAL_MS`], and only for a
/// valid token of an enabled user; a token that is not live changes nothing.
fn record_use(user: &User, token_id: TokenId, now: Timestamp) -> Result<Vec<UserEvent>, UserError> {
    let Some(token) = user.tokens.get(&token_id) else {
        return Ok(vec![]);
    };
    let recently_recorded = token
        .last_used_at
        .is_some_and(|last| now.0.saturating_sub(last.0) < TOKEN_USE_INTERVAL_MS);
    if !recently_recorded && !user.disabled && token.is_valid_at(now) {
        Ok(vec![UserEvent::TokenUsed { token_id, at: now }])
    } else {
        Ok(vec![])
    }
}

impl Decider for UserDecider {
    type Command = UserCommand;
    type Event = UserEvent;
    type State = UserState;
    type Error = UserError;

    fn decide(state: &UserState, cmd: &UserCommand) -> Result<Vec<UserEvent>, UserError> {
        match cmd {
            UserCommand::Register {
                user_id,
                handle,
                key_id,
                key,
                admin,
                now,
            } => {
                if state.user().is_some() {
                    return Err(UserError::AlreadyExists);
                }
                validate_handle(handle)?;
                Ok(vec![UserEvent::UserRegistered {
                    user_id: *user_id,
                    handle: handle.clone(),
                    key_id: *key_id,
                    key: key.clone(),
                    admin: *admin,
                    at: *now,
                }])
            }
            UserCommand::AddKey { key_id, key, now } => {
                add_key(registered(state)?, *key_id, key, *now)
            }
            UserCommand::RemoveKey { key_id, now } => remove_key(registered(state)?, *key_id, *now),
            UserCommand::MintToken(mint) => mint_token(registered(state)?, mint),
            UserCommand::RecordTokenUse { token_id, now } => {
                record_use(registered(state)?, *token_id, *now)
            }
            UserCommand::RevokeToken {
                token_id,
                reason,
                now,
            } => {
                // A token that is not live (revoked, swept, or never minted here) changes
                // nothing: the state keeps live tokens only, so telling "unknown" from
                // "already revoked" is the caller's check, against the tokens read model.
                let user = registered(state)?;
                match user.tokens.get(token_id) {
                    Some(t) if t.is_live() => Ok(vec![revoked(*token_id, *reason, *now)]),
                    _ => Ok(vec![]),
                }
            }
            UserCommand::RevokeAllTokens { keep, now } => Ok(registered(state)?
                .live_tokens()
                .filter(|(id, _)| Some(**id) != *keep)
                .map(|(id, _)| revoked(*id, RevokeReason::RevokeAll, *now))
                .collect()),
            UserCommand::ExpireTokens { now } => Ok(registered(state)?
                .live_tokens()
                .filter(|(_, t)| t.expires_at.is_some_and(|e| e <= *now))
                .map(|(id, _)| UserEvent::TokenExpired { token_id: *id })
                .collect()),
            UserCommand::Disable { now } => {
                let user = registered(state)?;
                if user.disabled {
                    return Ok(vec![]);
                }
                let mut events = vec![UserEvent::UserDisabled { at: *now }];
                events.extend(
                    user.live_tokens()
                        .map(|(id, _)| revoked(*id, RevokeReason::UserDisabled, *now)),
                );
                Ok(events)
            }
            UserCommand::Enable { now } => {
                if registered(state)?.disabled {
                    Ok(vec![UserEvent::UserEnabled { at: *now }])
                } else {
                    Ok(vec![])
                }
            }
        }
    }

    fn evolve(state: UserState, event: &UserEvent) -> UserState {
        let mut user = match (state, event) {
            (
                UserState::Unregistered,
                UserEvent::UserRegistered {
                    user_id,
                    handle,
                    key_id,
                    key,
                    admin,
                    at,
                },
            ) => {
                return UserState::Registered(User {
                    id: *user_id,
                    handle: handle.clone(),
                    admin: *admin,
                    disabled: false,
                    keys: vec![UserKey {
                        key_id: *key_id,
                        key: key.clone(),
                        added_at: *at,
                    }],
                    tokens: BTreeMap::new(),
                })
            }
            (UserState::Registered(user), _) => user,
            (state, _) => return state,
        };
        match event {
            UserEvent::UserRegistered { .. } => {}
            UserEvent::KeyAdded { key_id, key, at } => user.keys.push(UserKey {
                key_id: *key_id,
                key: key.clone(),
                added_at: *at,
            }),
            UserEvent::KeyRemoved { key_id, .. } => user.keys.retain(|k| k.key_id != *key_id),
            UserEvent::TokenMinted { .. } | UserEvent::TokenUsed { .. } => {
                apply_to_token(&mut user.tokens, event);
            }
            // A token that is no longer live leaves the state.
            UserEvent::TokenRevoked { token_id, .. } | UserEvent::TokenExpired { token_id } => {
                user.tokens.remove(token_id);
            }
            UserEvent::UserDisabled { .. } => user.disabled = true,
            UserEvent::UserEnabled { .. } => user.disabled = false,
        }
        UserState::Registered(user)
    }
}

/// Applies a token event to `tokens` (other events change nothing).
fn apply_to_token(tokens: &mut BTreeMap<TokenId, TokenRecord>, event: &UserEvent) {
    match event {
        UserEvent::TokenMinted { .. } => {
            if let Some((id, record)) = TokenRecord::minted(event) {
                tokens.insert(id, record);
            }
        }
        UserEvent::TokenUsed { token_id, at } => {
            if let Some(t) = tokens.get_mut(token_id) {
                t.last_used_at = Some(*at);
            }
        }
        UserEvent::TokenRevoked {
            token_id,
            reason,
            at,
        } => {
            if let Some(t) = tokens.get_mut(token_id) {
                t.status = TokenStatus::Revoked {
                    reason: *reason,
                    at: *at,
                };
            }
        }
        UserEvent::TokenExpired { token_id } => {
            if let Some(t) = tokens.get_mut(token_id) {
                t.status = TokenStatus::Expired;
            }
        }
        _ => {}
    }
}

/// Every token a user stream's `events` minted, live or not, with its status as of the
/// last of them: what `admin state user` lists. The aggregate's own state keeps only the
/// live ones.
pub fn token_history<'a>(
    events: impl IntoIterator<Item = &'a UserEvent>,
) -> BTreeMap<TokenId, TokenRecord> {
    let mut tokens = BTreeMap::new();
    for event in events {
        apply_to_token(&mut tokens, event);
    }
    tokens
}

/// The user every command but `Register` needs.
fn registered(state: &UserState) -> Result<&User, UserError> {
    state.user().ok_or(UserError::NotFound)
}

fn revoked(token_id: TokenId, reason: RevokeReason, at: Timestamp) -> UserEvent {
    UserEvent::TokenRevoked {
        token_id,
        reason,
        at,
    }
}

fn add_key(
    user: &User,
    key_id: KeyId,
    key: &SshPublicKey,
    now: Timestamp,
) -> Result<Vec<UserEvent>, UserError> {
    if user.disabled {
        return Err(UserError::Disabled);
    }
    if user.key_by_fingerprint(&key.fingerprint).is_some() {
        return Ok(vec![]);
    }
    if user.key(key_id).is_some() {
        return Err(UserError::KeyExists);
    }
    Ok(vec![UserEvent::KeyAdded {
        key_id,
        key: key.clone(),
        at: now,
    }])
}

fn remove_key(user: &User, key_id: KeyId, now: Timestamp) -> Result<Vec<UserEvent>, UserError> {
    let key = user.key(key_id).ok_or(UserError::KeyNotFound)?;
    if user.keys.len() <= 1 {
        return Err(UserError::LastKey);
    }
    let fingerprint = &key.key.fingerprint;
    let mut events = vec![UserEvent::KeyRemoved {
        key_id,
        fingerprint: fingerprint.clone(),
    }];
    // Only sessions: PATs and device tokens outlive the key until revoked on their own.
    events.extend(
        user.live_tokens()
            .filter(|(_, t)| {
                t.kind == TokenKind::Session && t.key_fingerprint.as_ref() == Some(fingerprint)
            })
            .map(|(id, _)| revoked(*id, RevokeReason::KeyRemoved, now)),
    );
    Ok(events)
}

fn mint_token(user: &User, cmd: &MintToken) -> Result<Vec<UserEvent>, UserError> {
    let MintToken {
        token_id,
        hash,
        kind,
        scopes,
        name,
        device_name,
        user_agent,
        ip,
        key_fingerprint,
        expires_at,
        now,
    } = cmd;
    if user.disabled {
        return Err(UserError::Disabled);
    }
    if user.tokens.contains_key(token_id) {
        return Err(UserError::TokenExists);
    }
    if scopes.contains(&Scope::Admin) && (!user.admin || *kind != TokenKind::Session) {
        return Err(UserError::ScopeNotAllowed);
    }
    if expires_at.is_some_and(|e| e <= *now) {
        return Err(UserError::InvalidExpiry);
    }
    // A session is minted by one of the user's keys: a key removed meanwhile mints nothing
    // (its removal revoked only the sessions that existed then).
    let by_a_key_of_theirs = key_fingerprint
        .as_deref()
        .is_some_and(|fp| user.key_by_fingerprint(fp).is_some());
    if *kind == TokenKind::Session && !by_a_key_of_theirs {
        return Err(UserError::SigningKeyUnknown);
    }
    let scopes = match kind {
        TokenKind::Session => session_scopes(user.admin),
        TokenKind::Personal if scopes.is_empty() => default_pat_scopes(),
        _ => {
            let mut s = scopes.clone();
            s.sort();
            s.dedup();
            s
        }
    };
    let mut events = replaced_devices(user, *kind, name, device_name, *now);
    events.push(UserEvent::TokenMinted {
        token_id: *token_id,
        hash: *hash,
        kind: *kind,
        scopes,
        name: name.clone(),
        device_name: device_name.clone(),
        user_agent: user_agent.clone(),
        ip: *ip,
        key_fingerprint: key_fingerprint.clone(),
        created_at: *now,
        expires_at: *expires_at,
    });
    Ok(events)
}

/// Re-pairing a device replaces its token: a new device token revokes this user's live
/// device tokens of the same client (`name`) and device name. Without a device name there
/// is no telling two devices apart, so nothing is replaced.
fn replaced_devices(
    user: &User,
    kind: TokenKind,
    client: &Option<String>,
    device_name: &Option<String>,
    now: Timestamp,
) -> Vec<UserEvent> {
    if kind != TokenKind::Device || device_name.is_none() {
        return Vec::new();
    }
    user.live_tokens()
        .filter(|(_, t)| {
            t.kind == TokenKind::Device && t.name == *client && t.device_name == *device_name
        })
        .map(|(id, _)| revoked(*id, RevokeReason::Replaced, now))
        .collect()
}

#[cfg(test)]
mod tests;

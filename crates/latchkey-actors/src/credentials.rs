//! Token and key management on `Core`: personal access tokens, revoking one or all tokens,
//! adding a key with a proof signed by it, removing a key, WebSocket tickets, and disabling
//! users. Whether the caller may do this (session only, scopes) is the server's check;
//! ownership (another user's token id is "not found") is checked here.

use crate::clock;
use crate::core::{exec, Auth, Core, CoreError};
use crate::entity::Executed;
use crate::readmodel::{KeyRow, TokenRow};
use crate::tickets::{Ticket, TICKET_TTL_SECS};
use latchkey_domain::token::{self, RawToken, TokenPrefix};
use latchkey_domain::user::{default_pat_scopes, MintToken};
use latchkey_domain::{
    Actor as Who, ChallengePurpose, KeyId, PairingCommand, PairingError, PairingEvent, PairingId,
    RejectReason, RevokeReason, Scope, Timestamp, TokenId, TokenKind, UserCommand, UserDecider,
    UserError, UserId,
};
use std::net::IpAddr;
use uuid::Uuid;

/// A personal access token as created (the secret is shown once).
#[derive(Debug)]
pub struct CreatedToken {
    /// The raw token.
    pub token: RawToken,
    /// Its id.
    pub token_id: TokenId,
    /// Its name.
    pub name: String,
    /// Its scopes.
    pub scopes: Vec<Scope>,
    /// When it lapses.
    pub expires_at: Option<Timestamp>,
}

/// The longest lifetime a personal access token can be given: 10 years.
pub const MAX_PAT_SECS: u64 = 10 * 365 * 24 * 3600;

fn user_error(e: UserError) -> CoreError {
    match e {
        UserError::NotFound => CoreError::Unauthorized,
        UserError::Disabled => CoreError::Forbidden("this user is disabled"),
        UserError::ScopeNotAllowed => {
            CoreError::InvalidRequest("a personal token may carry chat:read and chat:write".into())
        }
        UserError::TokenNotFound => CoreError::NotFound("no such token"),
        UserError::KeyNotFound => CoreError::NotFound("no such key"),
        UserError::LastKey => CoreError::Conflict("a user keeps at least one key"),
        UserError::InvalidExpiry => CoreError::InvalidRequest("expires_in must be positive".into()),
        other => CoreError::Internal(other.to_string()),
    }
}

impl Core {
    /// Runs a command on the caller's own user stream, as the caller, and waits until its
    /// events are projected.
    async fn own_command(
        &self,
        auth: &Auth,
        cmd: UserCommand,
    ) -> Result<Executed<UserDecider>, CoreError> {
        let out = self
            .users()
            .execute(auth.user_id.stream(), cmd, Who::User(auth.user_id))
            .await
            .map_err(|e| exec(e, user_error))?;
        self.wait_applied(out.last_seq).await?;
        Ok(out)
    }

    /// The caller's live tokens, newest first.
    pub fn list_tokens(&self, auth: &Auth) -> Result<Vec<TokenRow>, CoreError> {
        let mut rows = self.models().tokens_of(auth.user_id)?;
        rows.sort_by_key(|r| std::cmp::Reverse(r.created_at));
        Ok(rows)
    }

    /// Creates a personal access token.
    pub async fn create_pat(
        &self,
        auth: &Auth,
        name: &str,
        scopes: Option<Vec<Scope>>,
        expires_in_secs: Option<u64>,
    ) -> Result<CreatedToken, CoreError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 {
            return Err(CoreError::InvalidRequest(
                "name must be 1..=64 characters".into(),
            ));
        }
        let scopes = match scopes {
            Some(s) if !s.is_empty() => s,
            _ => default_pat_scopes(),
        };
        let now = clock::now();
        let expires_at = match expires_in_secs {
            Some(0) => {
                return Err(CoreError::InvalidRequest(
                    "expires_in must be positive".into(),
                ))
            }
            Some(s) if s > MAX_PAT_SECS => {
                return Err(CoreError::InvalidRequest(
                    "expires_in is at most 10 years (315360000 seconds); omit it for no expiry"
                        .into(),
                ))
            }
            Some(s) => Some(now.plus_secs(i64::try_from(s).unwrap_or(i64::MAX / 1000))),
            None => None,
        };
        let raw = token::generate(TokenPrefix::Personal, clock::random32());
        let token_id = TokenId(Uuid::new_v4());
        let mint = MintToken {
            token_id,
            hash: raw.hash(),
            kind: TokenKind::Personal,
            scopes: scopes.clone(),
            name: Some(name.to_string()),
            device_name: None,
            user_agent: None,
            ip: None,
            key_fingerprint: None,
            expires_at,
            now,
        };
        self.own_command(auth, mint.into()).await?;
        Ok(CreatedToken {
            token: raw,
            token_id,
            name: name.to_string(),
            scopes,
            expires_at,
        })
    }

    /// Revokes one of the caller's tokens; another user's token id is "not found".
    pub async fn revoke_token(&self, auth: &Auth, token_id: TokenId) -> Result<(), CoreError> {
        let owned = self
            .models()
            .token_by_id(token_id)?
            .is_some_and(|t| t.user_id == auth.user_id);
        if !owned {
            return Err(CoreError::NotFound("no such token"));
        }
        let cmd = UserCommand::RevokeToken {
            token_id,
            reason: RevokeReason::Revoked,
            now: clock::now(),
        };
        self.own_command(auth, cmd).await.map(|_| ())
    }

    /// Revokes every live token of the caller, except the current one when asked.
    pub async fn revoke_all(&self, auth: &Auth, keep_current: bool) -> Result<usize, CoreError> {
        let cmd = UserCommand::RevokeAllTokens {
            keep: keep_current.then_some(auth.token_id),
            now: clock::now(),
        };
        let out = self.own_command(auth, cmd).await?;
        Ok(out.events.len())
    }

    /// The caller's keys.
    pub fn list_keys(&self, auth: &Auth) -> Result<Vec<KeyRow>, CoreError> {
        Ok(self.me(auth)?.keys)
    }

    /// Issues a challenge that proves possession of a key the caller wants to add.
    pub async fn issue_key_challenge(
        &self,
        auth: &Auth,
        public_key: &str,
        ip: Option<IpAddr>,
    ) -> Result<latchkey_domain::pairing::IssuedChallenge, CoreError> {
        self.issue_challenge(public_key, ChallengePurpose::AddKey(auth.user_id), ip)
            .await
    }

    /// Adds a key: the challenge must be an add-key challenge of this caller, signed by the
    /// new key. Consumes the challenge whatever the result.
    pub async fn add_key(
        &self,
        auth: &Auth,
        challenge_id: &str,
        signature: &str,
    ) -> Result<KeyRow, CoreError> {
        let id = Uuid::parse_str(challenge_id).map_err(|_| CoreError::ChallengeInvalid)?;
        let stream = PairingId(id).stream();
        if self.store().stream_head(&stream)?.0 == 0 {
            return Err(CoreError::ChallengeInvalid);
        }
        let state = self
            .pairings()
            .inspect(stream.clone())
            .await
            .map_err(|e| exec(e, |_: PairingError| CoreError::ChallengeInvalid))?;
        let purpose = state.challenge().map(|c| c.purpose);
        if purpose != Some(ChallengePurpose::AddKey(auth.user_id)) {
            return Err(CoreError::ChallengeInvalid); // a sign-in challenge, or another user's
        }
        let now = clock::now();
        let verify = PairingCommand::VerifySignature {
            signature: signature.to_string(),
            user_id: Some(auth.user_id),
            now,
        };
        let out = self
            .pairings()
            .execute(stream, verify, Who::User(auth.user_id))
            .await
            .map_err(|e| exec(e, |_: PairingError| CoreError::ChallengeInvalid))?;
        self.wait_applied(out.last_seq).await?;
        match out.events.first() {
            Some(PairingEvent::SignatureVerified { .. }) => {}
            Some(PairingEvent::SignatureRejected { reason, .. }) => {
                return Err(match reason {
                    RejectReason::Expired | RejectReason::KeyUnknown => CoreError::ChallengeInvalid,
                    _ => CoreError::SignatureInvalid(
                        "the signature does not verify for this challenge, key and namespace",
                    ),
                })
            }
            _ => return Err(CoreError::ChallengeInvalid),
        }
        let key = out
            .state
            .challenge()
            .map(|c| c.key.clone())
            .ok_or_else(|| CoreError::Internal("verified challenge without a key".into()))?;
        // One owner per key: the same lock as a registration by this key, and the owner
        // checked again under it.
        let _lock = self.key_lock(&key.fingerprint).await;
        if let Some(owner) = self.models().user_by_fingerprint(&key.fingerprint)? {
            if owner != auth.user_id {
                return Err(CoreError::Conflict("this key belongs to another user"));
            }
        }
        let cmd = UserCommand::AddKey {
            key_id: KeyId(Uuid::new_v4()),
            key: key.clone(),
            now,
        };
        self.own_command(auth, cmd).await?;
        self.list_keys(auth)?
            .into_iter()
            .find(|k| k.fingerprint == key.fingerprint)
            .ok_or_else(|| CoreError::Internal("added key is not projected".into()))
    }

    /// Removes one of the caller's keys, revoking the sessions it minted.
    pub async fn remove_key(&self, auth: &Auth, key_id: KeyId) -> Result<(), CoreError> {
        let cmd = UserCommand::RemoveKey {
            key_id,
            now: clock::now(),
        };
        self.own_command(auth, cmd).await.map(|_| ())
    }

    /// Disables (or enables) a user; disabling revokes every live token. `by` is the admin.
    /// Returns the seq of its last event (0 when nothing changed).
    pub async fn set_disabled(
        &self,
        by: UserId,
        user: UserId,
        disabled: bool,
    ) -> Result<u64, CoreError> {
        let now = clock::now();
        let cmd = if disabled {
            UserCommand::Disable { now }
        } else {
            UserCommand::Enable { now }
        };
        let out = self
            .users()
            .execute(user.stream(), cmd, Who::Admin(by))
            .await
            .map_err(|e| {
                exec(e, |d| match d {
                    UserError::NotFound => CoreError::NotFound("no such user"),
                    other => user_error(other),
                })
            })?;
        self.wait_applied(out.last_seq).await?;
        Ok(out.last_seq)
    }

    /// Registers a user with a first key, as an admin; returns its id and the seq.
    pub async fn admin_add_user(
        &self,
        admin: &Auth,
        handle: &str,
        public_key: &str,
        make_admin: bool,
    ) -> Result<(UserId, u64), CoreError> {
        latchkey_domain::handle::validate_handle(handle)
            .map_err(|e| CoreError::InvalidRequest(format!("handle: {e}")))?;
        let key = latchkey_domain::sshkey::parse_public_key(public_key).map_err(|e| match e {
            latchkey_domain::sshkey::KeyError::UnsupportedKeyType(t) => {
                CoreError::UnsupportedKeyType(t)
            }
            _ => CoreError::InvalidRequest("public_key is not an OpenSSH public key line".into()),
        })?;
        let _lock = self.key_lock(&key.fingerprint).await;
        if self
            .models()
            .user_by_fingerprint(&key.fingerprint)?
            .is_some()
        {
            return Err(CoreError::Conflict("this key belongs to another user"));
        }
        let user_id = UserId(Uuid::new_v4());
        let cmd = UserCommand::Register {
            user_id,
            handle: handle.to_string(),
            key_id: KeyId(Uuid::new_v4()),
            key,
            admin: make_admin,
            now: clock::now(),
        };
        let seq = self
            .register_claimed(user_id, handle, cmd, Who::Admin(admin.user_id))
            .await?;
        Ok((user_id, seq))
    }

    /// Revokes any user's token, as an admin; returns the seq (0: already revoked).
    pub async fn admin_revoke_token(
        &self,
        admin: &Auth,
        owner: UserId,
        token_id: TokenId,
    ) -> Result<u64, CoreError> {
        let cmd = UserCommand::RevokeToken {
            token_id,
            reason: RevokeReason::Admin,
            now: clock::now(),
        };
        let out = self
            .users()
            .execute(owner.stream(), cmd, Who::Admin(admin.user_id))
            .await
            .map_err(|e| exec(e, user_error))?;
        self.wait_applied(out.last_seq).await?;
        Ok(out.last_seq)
    }

    /// Mints a single-use WebSocket ticket bound to the presenting token.
    pub fn mint_ws_ticket(&self, auth: &Auth) -> Result<(RawToken, i64), CoreError> {
        let raw = token::generate(TokenPrefix::WsTicket, clock::random32());
        let now = clock::now();
        let mut expires_at = now.plus_secs(TICKET_TTL_SECS);
        if let Some(token_expiry) = auth.expires_at {
            expires_at = expires_at.min(token_expiry);
        }
        let ticket = Ticket {
            user_id: auth.user_id,
            token_id: auth.token_id,
            expires_at,
        };
        if !self.tickets().insert(raw.hash(), ticket, now) {
            return Err(CoreError::Busy);
        }
        Ok((raw, TICKET_TTL_SECS))
    }

    /// Redeems a ticket (single use) into the credential that minted it, if that token is
    /// still live.
    pub fn redeem_ws_ticket(&self, ticket: &str) -> Result<Auth, CoreError> {
        let parsed = token::parse(ticket).map_err(|_| CoreError::Unauthorized)?;
        if parsed.prefix() != TokenPrefix::WsTicket {
            return Err(CoreError::Unauthorized);
        }
        let now = clock::now();
        let ticket = self
            .tickets()
            .redeem(&parsed.hash(), now)
            .ok_or(CoreError::Unauthorized)?;
        let row = self
            .models()
            .token_by_id(ticket.token_id)?
            .ok_or(CoreError::Unauthorized)?;
        self.auth_from_row(row, now)
    }
}

//! Token and key management on `Core`: personal access tokens, revoking one or all tokens,
//! adding a key with a proof signed by it, removing a key, WebSocket tickets, and disabling
//! users. Whether the caller may do this (session only, scopes) is the server's check;
//! ownership (another user's token id is "not found") is checked here.

use crate::auth::Auth;
use crate::core::Core;
use crate::entity::Executed;
use crate::error::CoreError;
use crate::readmodel::{KeyRow, TokenRow};
use crate::signin::Loaded;
use crate::tickets::{Inserted, Ticket, TICKET_TTL_SECS};
use latchkey_domain::token::{self, RawToken, TokenPrefix};
use latchkey_domain::user::{MintToken, PatTerms};
use latchkey_domain::{
    Actor as Who, ChallengePurpose, KeyId, RevokeReason, Scope, Timestamp, TokenId, TokenKind,
    UserCommand, UserDecider, UserId,
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
            .await?;
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
        let now = self.now();
        let PatTerms {
            name,
            scopes,
            expires_at,
        } = PatTerms::new(name, scopes, expires_in_secs, now).map_err(CoreError::from)?;
        let raw = token::generate(TokenPrefix::Personal, self.random32());
        let token_id = TokenId(Uuid::new_v4());
        let mint = MintToken {
            token_id,
            hash: raw.hash(),
            kind: TokenKind::Personal,
            scopes: scopes.clone(),
            name: Some(name.clone()),
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
            name,
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
            now: self.now(),
        };
        self.own_command(auth, cmd).await.map(|_| ())
    }

    /// Revokes every live token of the caller, except the current one when asked.
    pub async fn revoke_all(&self, auth: &Auth, keep_current: bool) -> Result<usize, CoreError> {
        let cmd = UserCommand::RevokeAllTokens {
            keep: keep_current.then_some(auth.token_id),
            now: self.now(),
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
        let Loaded { stream, challenge } = self
            .load_challenge(challenge_id)
            .await?
            .ok_or(CoreError::ChallengeInvalid)?;
        // Refused, unconsumed, unless an add-key challenge of this caller.
        self.redeem_challenge(
            stream,
            signature,
            ChallengePurpose::AddKey(auth.user_id),
            Some(auth.user_id),
            Who::User(auth.user_id),
        )
        .await?;
        let key = challenge.key;
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
            now: self.now(),
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
            now: self.now(),
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
        let now = self.now();
        let cmd = if disabled {
            UserCommand::Disable { now }
        } else {
            UserCommand::Enable { now }
        };
        let out = self
            .users()
            .execute(user.stream(), cmd, Who::Admin(by))
            .await?;
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
        latchkey_domain::handle::validate_handle(handle)?;
        let key = latchkey_domain::sshkey::parse_public_key(public_key)?;
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
            now: self.now(),
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
            now: self.now(),
        };
        let out = self
            .users()
            .execute(owner.stream(), cmd, Who::Admin(admin.user_id))
            .await?;
        self.wait_applied(out.last_seq).await?;
        Ok(out.last_seq)
    }

    /// Mints a single-use WebSocket ticket bound to the presenting token. On a shared log
    /// it is stored for every node (`Busy`, a 503, when that store is unreachable).
    pub async fn mint_ws_ticket(&self, auth: &Auth) -> Result<(RawToken, i64), CoreError> {
        let raw = token::generate(TokenPrefix::WsTicket, self.random32());
        let now = self.now();
        let mut expires_at = now.plus_secs(TICKET_TTL_SECS);
        if let Some(token_expiry) = auth.expires_at {
            expires_at = expires_at.min(token_expiry);
        }
        let ticket = Ticket {
            user_id: auth.user_id,
            token_id: auth.token_id,
            expires_at,
        };
        let hash = raw.hash();
        let Inserted::Stored { evicted } = self.tickets().insert(hash, ticket, now) else {
            return Err(CoreError::Busy);
        };
        if let Some(shared) = self.store().tickets() {
            if let Err(e) = shared.put(hash, ticket).await {
                tracing::warn!(error = %e, "storing a WebSocket ticket failed");
                self.tickets().redeem(&hash, now);
                return Err(e.into());
            }
            if let Some(old) = evicted {
                if let Err(e) = shared.forget(old).await {
                    tracing::warn!(error = %e, "dropping an evicted WebSocket ticket failed");
                }
            }
        }
        Ok((raw, TICKET_TTL_SECS))
    }

    /// Redeems a ticket (single use, across every node of a shared log) into the
    /// credential that minted it, if that token is still live.
    pub async fn redeem_ws_ticket(&self, ticket: &str) -> Result<Auth, CoreError> {
        let parsed = token::parse(ticket).map_err(|_| CoreError::Unauthorized)?;
        if parsed.prefix() != TokenPrefix::WsTicket {
            return Err(CoreError::Unauthorized);
        }
        let now = self.now();
        let hash = parsed.hash();
        let here = self.tickets().redeem(&hash, now);
        let ticket = match self.store().tickets() {
            Some(shared) => shared.take(hash).await?,
            None => here,
        };
        let ticket = ticket
            .filter(|t| t.expires_at > now)
            .ok_or(CoreError::Unauthorized)?;
        // Minted on another node a moment ago with a token this node may not know yet.
        let row = self
            .lookup_fresh(|| {
                self.models()
                    .token_by_id(ticket.token_id)
                    .map_err(CoreError::from)
            })
            .await?
            .ok_or(CoreError::Unauthorized)?;
        self.auth_from_row(row, now)
    }
}

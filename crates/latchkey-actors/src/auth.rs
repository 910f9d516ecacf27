//! Bearer credentials on `Core`: check a token against the token read model, record its
//! use (throttled), log out, and who the caller is.

use crate::core::Core;
use crate::error::CoreError;
use crate::readmodel::{TokenRow, UserRow};
use crate::tokenindex::LiveToken;
use latchkey_domain::token;
use latchkey_domain::user::TOKEN_USE_INTERVAL_MS;
use latchkey_domain::{
    Actor as Who, RevokeReason, Scope, Timestamp, TokenId, TokenKind, UserCommand, UserId,
};
use std::sync::Arc;

/// Tokens remembered in `recent_use` before the ones recorded over 5 minutes ago (which
/// suppress nothing any more) are dropped; when all are recent, the map is cleared.
const RECENT_USE_BOUND: usize = 4_096;

/// A verified bearer credential.
#[derive(Clone, Debug)]
pub struct Auth {
    /// The token's owner.
    pub user_id: UserId,
    /// The token's id.
    pub token_id: TokenId,
    /// Session, device or personal.
    pub kind: TokenKind,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// When it lapses.
    pub expires_at: Option<Timestamp>,
    last_used_at: Option<Timestamp>,
    /// When the credential was checked (the core's clock): `touch` compares the last
    /// recorded use with it instead of reading the clock again.
    checked_at: Timestamp,
}

impl Auth {
    /// Whether the credential carries a scope.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// Whether the credential has lapsed at `now` (the expiry instant itself is too late).
    pub fn is_expired_at(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|e| now >= e)
    }
}

impl Core {
    /// Checks a bearer token against the live-token index (the in-memory mirror of the
    /// token read model, see `tokenindex`): format and checksum first (no lookup for a
    /// look-alike), then SHA-256 lookup, then expiry.
    pub fn authenticate(&self, bearer: &str) -> Result<Auth, CoreError> {
        let (prefix, hash) = token::check(bearer).map_err(|_| CoreError::Unauthorized)?;
        if prefix.kind().is_none() {
            return Err(CoreError::Unauthorized);
        }
        let live = self
            .models()
            .live_token(&hash)
            .ok_or(CoreError::Unauthorized)?;
        self.auth_from_live(live, self.now())
    }

    /// A credential from a live token row, unless it has expired.
    pub(crate) fn auth_from_row(&self, row: TokenRow, now: Timestamp) -> Result<Auth, CoreError> {
        self.auth_from_live(LiveToken::from(&row), now)
    }

    /// A credential from a live token, unless it has expired.
    fn auth_from_live(&self, live: LiveToken, now: Timestamp) -> Result<Auth, CoreError> {
        let auth = Auth {
            user_id: live.user_id,
            token_id: live.token_id,
            kind: live.kind,
            scopes: live.scopes,
            expires_at: live.expires_at,
            last_used_at: live.last_used_at,
            checked_at: now,
        };
        if auth.is_expired_at(now) {
            return Err(CoreError::Unauthorized);
        }
        Ok(auth)
    }

    /// Records that a token was used, at most every 5 minutes, without delaying the caller.
    pub fn touch(self: &Arc<Self>, auth: &Auth) {
        let now = auth.checked_at;
        let recent = |t: Option<Timestamp>| t.is_some_and(|t| now.0 - t.0 < TOKEN_USE_INTERVAL_MS);
        if recent(auth.last_used_at) {
            return;
        }
        if let Ok(mut seen) = self.recent_use().lock() {
            if recent(seen.get(&auth.token_id).copied()) {
                return;
            }
            if seen.len() >= RECENT_USE_BOUND {
                seen.retain(|_, t| recent(Some(*t)));
                if seen.len() >= RECENT_USE_BOUND {
                    seen.clear();
                }
            }
            seen.insert(auth.token_id, now);
        }
        let core = self.clone();
        let (user_id, token_id) = (auth.user_id, auth.token_id);
        actix::spawn(async move {
            let cmd = UserCommand::RecordTokenUse { token_id, now };
            if let Err(e) = core
                .users()
                .execute(user_id.stream(), cmd, Who::User(user_id))
                .await
            {
                tracing::debug!(error = %e, "token use not recorded");
            }
        });
    }

    /// Revokes the presented token (log out).
    pub async fn logout(&self, auth: &Auth) -> Result<(), CoreError> {
        let cmd = UserCommand::RevokeToken {
            token_id: auth.token_id,
            reason: RevokeReason::Logout,
            now: self.now(),
        };
        let out = self
            .users()
            .execute(auth.user_id.stream(), cmd, Who::User(auth.user_id))
            .await?;
        self.wait_applied(out.last_seq).await
    }

    /// The user behind a credential.
    pub fn me(&self, auth: &Auth) -> Result<UserRow, CoreError> {
        self.models()
            .user(auth.user_id)?
            .ok_or(CoreError::Unauthorized)
    }
}

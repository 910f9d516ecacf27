//! Browser sessions for the `/device` approval page (DESIGN §13): an ordinary §6 sign-in
//! challenge, signed by one of a user's keys, traded for a short-lived session token that
//! the page keeps in a cookie. It is a session like any other (stored as SHA-256, listed
//! and revocable with the user's tokens), named so the list tells it apart, and it lives
//! 15 minutes. The page never registers anyone: an unknown key gets `key_unknown`.

use crate::core::Core;
use crate::error::CoreError;
use crate::signin::{Loaded, SessionGrant};
use latchkey_domain::token::RawToken;
use latchkey_domain::{Actor as Who, ChallengePurpose, Timestamp, TokenId, UserId};
use std::net::IpAddr;

/// How long a browser session lives: 15 minutes.
pub const BROWSER_SESSION_SECS: i64 = 15 * 60;

/// The name a browser session carries in the token list.
pub const BROWSER_SESSION_NAME: &str = "browser sign-in (/device)";

/// A browser session: the raw token goes into the cookie once.
#[derive(Debug)]
pub struct BrowserSession {
    /// The `lks_` token.
    pub token: RawToken,
    /// Its id.
    pub token_id: TokenId,
    /// When it lapses.
    pub expires_at: Timestamp,
    /// Who signed in.
    pub user_id: UserId,
}

impl Core {
    /// A fresh random value for the page's CSRF cookie: 32 bytes from the core's entropy,
    /// hex.
    pub fn page_csrf_token(&self) -> String {
        self.random32().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Redeems a sign-in challenge for a 15-minute browser session. Never registers.
    pub async fn browser_sign_in(
        &self,
        challenge_id: &str,
        signature: &str,
        ip: Option<IpAddr>,
        user_agent: Option<String>,
    ) -> Result<BrowserSession, CoreError> {
        let Loaded { stream, challenge } = self
            .load_challenge(challenge_id.trim())
            .await?
            .ok_or(CoreError::ChallengeInvalid)?;
        let fingerprint = challenge.key.fingerprint;
        let owner = self.models().user_by_fingerprint(&fingerprint)?;
        let user_id = self
            .redeem_challenge(
                stream,
                signature,
                ChallengePurpose::SignIn,
                owner,
                Who::Anonymous,
            )
            .await?;
        self.mint_browser_session(user_id, &fingerprint, ip, user_agent)
            .await
    }

    /// Mints the 15-minute session of a verified page sign-in.
    async fn mint_browser_session(
        &self,
        user_id: UserId,
        fingerprint: &str,
        ip: Option<IpAddr>,
        user_agent: Option<String>,
    ) -> Result<BrowserSession, CoreError> {
        let grant = SessionGrant {
            name: Some(BROWSER_SESSION_NAME.into()),
            device_name: None,
            user_agent,
            ip,
            fingerprint: fingerprint.to_string(),
            lifetime_secs: BROWSER_SESSION_SECS,
        };
        let (raw, token_id, expires_at) = self.mint_session_token(user_id, grant).await?;
        Ok(BrowserSession {
            token: raw,
            token_id,
            expires_at,
            user_id,
        })
    }
}

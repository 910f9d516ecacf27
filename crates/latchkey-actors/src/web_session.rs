//! Browser sessions for the `/device` approval page (DESIGN §13): an ordinary §6 sign-in
//! challenge, signed by one of a user's keys, traded for a short-lived session token that
//! the page keeps in a cookie. It is a session like any other (stored as SHA-256, listed
//! and revocable with the user's tokens), named so the list tells it apart, and it lives
//! 15 minutes. The page never registers anyone: an unknown key gets `key_unknown`.

use crate::clock;
use crate::core::{exec, Core, CoreError};
use latchkey_domain::token::{self, RawToken, TokenPrefix};
use latchkey_domain::user::{session_scopes, MintToken};
use latchkey_domain::{
    Actor as Who, ChallengePurpose, PairingCommand, PairingError, PairingEvent, PairingId,
    RejectReason, Timestamp, TokenId, TokenKind, UserError, UserId,
};
use std::net::IpAddr;
use uuid::Uuid;

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
    /// Redeems a sign-in challenge for a 15-minute browser session. Never registers.
    pub async fn browser_sign_in(
        &self,
        challenge_id: &str,
        signature: &str,
        ip: Option<IpAddr>,
        user_agent: Option<String>,
    ) -> Result<BrowserSession, CoreError> {
        let id = Uuid::parse_str(challenge_id.trim()).map_err(|_| CoreError::ChallengeInvalid)?;
        let stream = PairingId(id).stream();
        if self.store().stream_head(&stream)?.0 == 0 {
            return Err(CoreError::ChallengeInvalid);
        }
        let state = self
            .pairings()
            .inspect(stream.clone())
            .await
            .map_err(|e| exec(e, |_: PairingError| CoreError::ChallengeInvalid))?;
        let challenge = state.issued().cloned().ok_or(CoreError::ChallengeInvalid)?;
        if challenge.purpose != ChallengePurpose::SignIn {
            return Err(CoreError::ChallengeInvalid);
        }
        let owner = self
            .models()
            .user_by_fingerprint(&challenge.key.fingerprint)?;
        let now = clock::now();
        let verify = PairingCommand::VerifySignature {
            signature: signature.to_string(),
            user_id: owner,
            now,
        };
        let out = self
            .pairings()
            .execute(stream, verify, Who::Anonymous)
            .await
            .map_err(|e| exec(e, |_| CoreError::ChallengeInvalid))?;
        self.wait_applied(out.last_seq).await?;
        let user_id = match out.events.first() {
            Some(PairingEvent::SignatureVerified { user_id, .. }) => *user_id,
            Some(PairingEvent::SignatureRejected { reason, .. }) => {
                return Err(match reason {
                    RejectReason::Expired => CoreError::ChallengeInvalid,
                    RejectReason::KeyUnknown => CoreError::KeyUnknown,
                    _ => CoreError::SignatureInvalid(
                        "the signature does not verify for this challenge, key and namespace",
                    ),
                })
            }
            _ => return Err(CoreError::ChallengeInvalid),
        };
        self.mint_browser_session(user_id, &challenge.key.fingerprint, ip, user_agent)
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
        let now = clock::now();
        let admin = self.models().user(user_id)?.is_some_and(|u| u.admin);
        let raw = token::generate(TokenPrefix::Session, clock::random32());
        let token_id = TokenId(Uuid::new_v4());
        let expires_at = now.plus_secs(BROWSER_SESSION_SECS);
        let mint = MintToken {
            token_id,
            hash: raw.hash(),
            kind: TokenKind::Session,
            scopes: session_scopes(admin),
            name: Some(BROWSER_SESSION_NAME.into()),
            device_name: None,
            user_agent,
            ip: self.config().ip_retention.apply(ip),
            key_fingerprint: Some(fingerprint.to_string()),
            expires_at: Some(expires_at),
            now,
        };
        let out = self
            .users()
            .execute(user_id.stream(), mint.into(), Who::User(user_id))
            .await
            .map_err(|e| {
                exec(e, |d| match d {
                    UserError::Disabled => CoreError::Forbidden("this user is disabled"),
                    UserError::KeyNotFound => CoreError::KeyUnknown,
                    other => CoreError::Internal(other.to_string()),
                })
            })?;
        self.wait_applied(out.last_seq).await?;
        Ok(BrowserSession {
            token: raw,
            token_id,
            expires_at,
            user_id,
        })
    }
}

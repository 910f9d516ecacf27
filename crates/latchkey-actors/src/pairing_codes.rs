//! Admin pairing codes on `Core` (DESIGN §12): an admin mints a one-time `lkc_` code for a
//! user, lists and revokes pending ones; a device redeems a code once for a device token,
//! enrolling a key only when it proves it holds it (an ordinary §6 challenge signed by the
//! key). The rules are the domain's (`paircode`); this module makes the secrets, finds
//! streams through the pairing-code model, and drives the user's stream (token, key).
//! Failures are `CoreError`s (`error.rs` maps `CodeError`).
//!
//! Which credential may mint (an admin session only) is the server's check.

use crate::codemodel::PendingCode;
use crate::core::Core;
use crate::error::CoreError;
use crate::signin::Loaded;
use latchkey_domain::device::DEFAULT_DEVICE_TOKEN_SECS;
use latchkey_domain::paircode::{CodeCommand, CodeState, MintedCode, DEFAULT_CODE_TTL_SECS};
use latchkey_domain::sshkey;
use latchkey_domain::token::{self, RawToken, TokenPrefix};
use latchkey_domain::user::MintToken;
use latchkey_domain::{
    Actor as Who, ChallengePurpose, KeyId, PairingCommand, PairingId, PairingState, Scope,
    SshPublicKey, Timestamp, TokenId, TokenKind, UserCommand, UserId,
};
use std::net::IpAddr;
use uuid::Uuid;

/// A freshly minted code: the raw value is shown once.
#[derive(Debug)]
pub struct NewPairingCode {
    /// The raw `lkc_` code.
    pub code: RawToken,
    /// The code as recorded.
    pub minted: MintedCode,
    /// The user's handle.
    pub handle: String,
}

/// What an admin asks to mint.
#[derive(Debug, Clone)]
pub struct MintRequest {
    /// The user, by id or handle.
    pub user: String,
    /// Scopes; empty: `chat:read chat:write`.
    pub scopes: Vec<Scope>,
    /// Seconds; `None`: 10 minutes.
    pub expires_in: Option<i64>,
    /// A note for the list.
    pub note: Option<String>,
}

/// A device's redemption request, as the HTTP layer received it.
#[derive(Debug)]
pub struct PairRequest {
    /// The raw code.
    pub code: String,
    /// The device's name.
    pub device_name: Option<String>,
    /// An OpenSSH public key to enroll; needs `challenge_id` and `signature`.
    pub public_key: Option<String>,
    /// A challenge from `POST /api/native/challenge` for `public_key`.
    pub challenge_id: Option<String>,
    /// The armored SSHSIG over that challenge's message.
    pub signature: Option<String>,
    /// The client's IP (before retention).
    pub ip: Option<IpAddr>,
    /// The client's User-Agent.
    pub user_agent: Option<String>,
}

/// A redeemed code: the device token, shown once.
#[derive(Debug)]
pub struct Paired {
    /// The raw `lkd_` token.
    pub token: RawToken,
    /// Its id.
    pub token_id: TokenId,
    /// Granted scopes.
    pub scopes: Vec<Scope>,
    /// When it lapses.
    pub expires_at: Option<Timestamp>,
    /// Whose it is.
    pub user_id: UserId,
    /// Their handle.
    pub handle: String,
    /// The enrolled key, if any.
    pub key_id: Option<KeyId>,
}

/// The proof a device gives for the key it wants enrolled.
struct KeyProof<'a> {
    key: SshPublicKey,
    challenge_id: &'a str,
    signature: &'a str,
}

impl Core {
    /// A user by id or handle.
    pub fn resolve_user(&self, user: &str) -> Result<Option<UserId>, CoreError> {
        if let Ok(id) = Uuid::parse_str(user) {
            return Ok(self.models().user(UserId(id))?.map(|u| u.id));
        }
        Ok(self.models().user_by_handle(user)?)
    }

    /// Mints a pairing code for a user (`by`: the admin).
    pub async fn mint_pairing_code(
        &self,
        by: UserId,
        req: MintRequest,
    ) -> Result<NewPairingCode, CoreError> {
        let user_id = self
            .lookup_fresh(|| self.resolve_user(&req.user))
            .await?
            .ok_or(CoreError::NotFound("no such user"))?;
        let handle = self
            .models()
            .user(user_id)?
            .map(|u| u.handle)
            .unwrap_or_default();
        let id = PairingId(Uuid::new_v4());
        let code = token::generate(TokenPrefix::PairingCode, self.random32());
        let cmd = CodeCommand::Mint {
            code_id: id,
            user_id,
            code_hash: code.hash(),
            scopes: req.scopes,
            note: req.note,
            by: Some(by),
            ttl_secs: req.expires_in.unwrap_or(DEFAULT_CODE_TTL_SECS),
            now: self.now(),
        };
        match self.code_command(id, cmd, Who::User(by)).await? {
            PairingState::Code(c) => Ok(NewPairingCode {
                code,
                minted: c.code,
                handle,
            }),
            _ => Err(CoreError::Internal("minted code not recorded".into())),
        }
    }

    /// Pending codes, oldest first, without secrets.
    pub fn pending_pairing_codes(&self) -> Result<Vec<PendingCode>, CoreError> {
        let now = self.now();
        let mut codes = self.models().pairing_codes().pending()?;
        codes.retain(|c| now < c.expires_at);
        Ok(codes)
    }

    /// Revokes a pending code by id.
    pub async fn revoke_pairing_code(&self, by: UserId, id: &str) -> Result<(), CoreError> {
        let not_found = CoreError::NotFound("no such pairing code");
        let Ok(id) = Uuid::parse_str(id).map(PairingId) else {
            return Err(not_found);
        };
        // Never spawn an actor for a made-up id; another node may have minted it just now.
        let known = || -> Result<Option<()>, CoreError> {
            Ok((self.store().stream_head(&id.stream())?.0 > 0).then_some(()))
        };
        if self.lookup_fresh(known).await?.is_none() {
            return Err(not_found);
        }
        let cmd = CodeCommand::Revoke {
            by: Some(by),
            now: self.now(),
        };
        self.code_command(id, cmd, Who::User(by)).await.map(|_| ())
    }

    /// Runs a code command on a pairing stream and waits until it is projected.
    async fn code_command(
        &self,
        id: PairingId,
        cmd: CodeCommand,
        who: Who,
    ) -> Result<PairingState, CoreError> {
        let out = self
            .pairings()
            .execute(id.stream(), PairingCommand::Code(cmd), who)
            .await?;
        self.wait_applied(out.last_seq).await?;
        Ok(std::sync::Arc::unwrap_or_clone(out.state))
    }

    /// The live code a raw value names; `PairingCodeInvalid` for anything else.
    async fn live_code(&self, raw: &str) -> Result<CodeState, CoreError> {
        let parsed = token::parse(raw).map_err(|_| CoreError::PairingCodeInvalid)?;
        if parsed.prefix() != TokenPrefix::PairingCode {
            return Err(CoreError::PairingCodeInvalid);
        }
        let hash = parsed.hash();
        let id = self
            .lookup_fresh(|| {
                self.models()
                    .pairing_codes()
                    .pending_by_hash(&hash)
                    .map_err(CoreError::from)
            })
            .await?
            .ok_or(CoreError::PairingCodeInvalid)?;
        match self.pairings().inspect(id.stream()).await? {
            PairingState::Code(c) if c.is_live_at(self.now()) => Ok(c),
            _ => Err(CoreError::PairingCodeInvalid),
        }
    }

    /// The key proof of a redemption: all three fields, or none.
    fn key_proof<'a>(&self, req: &'a PairRequest) -> Result<Option<KeyProof<'a>>, CoreError> {
        match (&req.public_key, &req.challenge_id, &req.signature) {
            (None, None, None) => Ok(None),
            (Some(k), Some(c), Some(s)) => Ok(Some(KeyProof {
                key: sshkey::parse_public_key(k)?,
                challenge_id: c,
                signature: s,
            })),
            _ => Err(CoreError::InvalidRequest(
                "public_key, challenge_id and signature go together: a key is enrolled only with a challenge signed by it".into(),
            )),
        }
    }

    /// A device redeems a code once: a device token for the code's user and, with a valid
    /// proof, the device's key on their account. The proof is checked before the code is
    /// spent, so a bad signature does not burn it.
    pub async fn redeem_pairing_code(&self, req: PairRequest) -> Result<Paired, CoreError> {
        let code = self.live_code(&req.code).await?;
        let user_id = code.code.user_id;
        let user = self.models().user(user_id)?;
        let Some(user) = user.filter(|u| !u.disabled) else {
            return Err(CoreError::PairingCodeInvalid);
        };
        let proof = self.key_proof(&req)?;
        let _lock = match &proof {
            Some(p) => Some(self.key_lock(&p.key.fingerprint).await),
            None => None,
        };
        let enroll = match &proof {
            Some(p) => self.prove_key(p, user_id).await?,
            None => false,
        };
        let now = self.now();
        let token_id = TokenId(Uuid::new_v4());
        let key_id = enroll.then(|| KeyId(Uuid::new_v4()));
        let redeem = CodeCommand::Redeem {
            token_id,
            device_name: req.device_name.clone(),
            key_id,
            now,
        };
        self.code_command(code.code.code_id, redeem, Who::Anonymous)
            .await?;
        let raw = token::generate(TokenPrefix::Device, self.random32());
        let expires_at = Some(now.plus_secs(DEFAULT_DEVICE_TOKEN_SECS as i64));
        let mint = MintToken {
            token_id,
            hash: raw.hash(),
            kind: TokenKind::Device,
            scopes: code.code.scopes.clone(),
            name: Some("pairing code".into()),
            device_name: req.device_name.clone(),
            user_agent: req.user_agent.clone(),
            ip: self.config().ip_retention.apply(req.ip),
            key_fingerprint: None,
            expires_at,
            now,
        };
        self.user_command(user_id, mint.into()).await?;
        if let (Some(key_id), Some(p)) = (key_id, proof) {
            let cmd = UserCommand::AddKey {
                key_id,
                key: p.key,
                now,
            };
            self.user_command(user_id, cmd).await?;
        }
        Ok(Paired {
            token: raw,
            token_id,
            scopes: code.code.scopes,
            expires_at,
            user_id,
            handle: user.handle,
            key_id,
        })
    }

    /// Runs a user command for a redemption and waits until it is projected.
    async fn user_command(&self, user: UserId, cmd: UserCommand) -> Result<(), CoreError> {
        let out = self
            .users()
            .execute(user.stream(), cmd, Who::User(user))
            .await?;
        self.wait_applied(out.last_seq).await
    }

    /// Consumes the device's key proof: a sign-in challenge for exactly this key, signed by
    /// it. Returns whether the key must be added (false: the user already has it). Runs
    /// under the key's lock.
    async fn prove_key(&self, p: &KeyProof<'_>, user: UserId) -> Result<bool, CoreError> {
        let owner = self.models().user_by_fingerprint(&p.key.fingerprint)?;
        if owner.is_some_and(|o| o != user) {
            return Err(CoreError::Conflict("this key belongs to another user"));
        }
        let Loaded { stream, challenge } = self
            .load_challenge(p.challenge_id)
            .await?
            .ok_or(CoreError::ChallengeInvalid)?;
        if challenge.key.fingerprint != p.key.fingerprint {
            return Err(CoreError::ChallengeInvalid);
        }
        self.redeem_challenge(
            stream,
            p.signature,
            ChallengePurpose::SignIn,
            Some(user),
            Who::Anonymous,
        )
        .await?;
        Ok(owner.is_none())
    }

    /// The sweeper: lapses pending codes past their expiry.
    pub(crate) async fn expire_pairing_codes(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<(), CoreError> {
        for id in self.models().pairing_codes().due(now, limit)? {
            let cmd = PairingCommand::Code(CodeCommand::Expire { now });
            if let Err(e) = self.pairings().execute(id.stream(), cmd, Who::System).await {
                tracing::warn!(code = %id, error = %e, "expiring a pairing code failed");
            }
        }
        Ok(())
    }
}

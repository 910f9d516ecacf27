//! Sign-in on `Core`: issue a challenge, load one by id, redeem one (the path shared with
//! adding a key), and `sign_in`: verify, register when registration is open and the key
//! is new, mint a session. Whether a challenge may be redeemed for what the caller asks is
//! the pairing decider's rule (`VerifySignature` carries the expected purpose).

use crate::config::Registration;
use crate::core::Core;
use crate::entity::{Ack, Loaded as Folded};
use crate::error::CoreError;
use latchkey_domain::pairing::{verdict, IssuedChallenge};
use latchkey_domain::sshkey;
use latchkey_domain::token::{self, RawToken, TokenPrefix};
use latchkey_domain::user::{session_scopes, MintToken};
use latchkey_domain::{
    handle, Actor as Who, ChallengePurpose, KeyId, PairingCommand, PairingDecider, PairingId,
    PairingState, StreamId, Timestamp, TokenId, TokenKind, UserCommand, UserId,
};
use std::net::IpAddr;
use uuid::Uuid;

/// The result of a sign-in: the raw token is shown to the client once.
#[derive(Debug)]
pub struct SignedIn {
    /// The bearer token.
    pub token: RawToken,
    /// Its id.
    pub token_id: TokenId,
    /// Session.
    pub kind: TokenKind,
    /// When it lapses.
    pub expires_at: Option<Timestamp>,
    /// Who signed in.
    pub user_id: UserId,
    /// Their handle.
    pub handle: String,
    /// Whether this call created the user.
    pub registered: bool,
}

/// A sign-in request, as the HTTP layer received it.
#[derive(Debug)]
pub struct SignIn<'a> {
    /// From `POST /challenge`.
    pub challenge_id: &'a str,
    /// The armored SSHSIG.
    pub signature: &'a str,
    /// A name for the device.
    pub device_name: Option<String>,
    /// A handle, used only when this registers the user.
    pub handle: Option<String>,
    /// The client's User-Agent.
    pub user_agent: Option<String>,
    /// The client's IP (before retention).
    pub ip: Option<IpAddr>,
}

/// The challenge a sign-in names, as read by `Core::pending_sign_in`: one nobody has
/// presented yet, or none (unknown or spent).
pub struct PendingSignIn(Option<Loaded>);

/// A challenge that exists, in whatever state: its stream and what was issued.
pub(crate) struct Loaded {
    pub(crate) stream: StreamId,
    pub(crate) challenge: IssuedChallenge,
}

/// What a new session token records besides its user (see `Core::mint_session_token`).
pub(crate) struct SessionGrant {
    /// A name (the browser session's), or none.
    pub name: Option<String>,
    /// The client's device name.
    pub device_name: Option<String>,
    /// The client's User-Agent.
    pub user_agent: Option<String>,
    /// The client's IP, before retention.
    pub ip: Option<IpAddr>,
    /// The key whose signature was verified.
    pub fingerprint: String,
    /// Seconds until it lapses.
    pub lifetime_secs: i64,
}

impl Core {
    /// Issues a sign-in challenge for an OpenSSH public key line.
    pub async fn issue_challenge(
        &self,
        public_key: &str,
        purpose: ChallengePurpose,
        ip: Option<IpAddr>,
    ) -> Result<IssuedChallenge, CoreError> {
        let key = sshkey::parse_public_key(public_key)?;
        let id = PairingId(Uuid::new_v4());
        let now = self.now();
        let config = self.config();
        let cmd = PairingCommand::IssueChallenge {
            challenge_id: id,
            server: config.server.clone(),
            key,
            nonce: self.random32(),
            purpose,
            now,
            expires_at: now.plus_secs(config.challenge_ttl.as_secs() as i64),
            ip: config.ip_retention.apply(ip),
        };
        // Answered once written, before it is durable and without waiting for the
        // projector: a challenge lost in a crash is harmless (its `/token` answers 401 and
        // the client asks again), nothing reads a challenge from the read models (`/token`
        // reads the challenge's stream from the log), and the sweeper catches up before it
        // reads its due list.
        let out = self
            .pairings()
            .execute_as(id.stream(), cmd, Who::Anonymous, Ack::Written)
            .await?;
        out.state
            .issued()
            .cloned()
            .ok_or_else(|| CoreError::Internal("challenge not issued".into()))
    }

    /// A challenge by the id a client sent; `None` when no such challenge was ever issued
    /// (never spawning an actor for a made-up id).
    pub(crate) async fn load_challenge(
        &self,
        challenge_id: &str,
    ) -> Result<Option<Loaded>, CoreError> {
        let Ok(id) = Uuid::parse_str(challenge_id) else {
            return Ok(None);
        };
        let stream = PairingId(id).stream();
        if self.store().stream_head(&stream)?.0 == 0 {
            // Another node may have issued it a moment ago (a no-op on sled).
            self.catch_up().await?;
            if self.store().stream_head(&stream)?.0 == 0 {
                return Ok(None);
            }
        }
        let state = self.pairings().inspect(stream.clone()).await?;
        Ok(state
            .challenge()
            .cloned()
            .map(|challenge| Loaded { stream, challenge }))
    }

    /// Consumes a challenge with a signature, redeemed for `purpose` as `user_id`; the
    /// user it verified as, or why not. The decider refuses a challenge of another purpose.
    pub(crate) async fn redeem_challenge(
        &self,
        stream: StreamId,
        signature: &str,
        purpose: ChallengePurpose,
        user_id: Option<UserId>,
        who: Who,
    ) -> Result<UserId, CoreError> {
        let (user_id, seq) = self
            .redeem_unwaited(stream, signature, purpose, user_id, who)
            .await?;
        self.wait_settled(seq).await?;
        Ok(user_id)
    }

    /// [`Self::redeem_challenge`], but a verified challenge is not waited for, not even
    /// for its durability (it is appended with [`Ack::Written`]): the caller waits for a
    /// later durable seq of its own, which the journal makes durable only after this one,
    /// or for [`Self::wait_settled`] of the returned one, before it answers. A refusal is
    /// waited for here, durable and projected.
    async fn redeem_unwaited(
        &self,
        stream: StreamId,
        signature: &str,
        purpose: ChallengePurpose,
        user_id: Option<UserId>,
        who: Who,
    ) -> Result<(UserId, u64), CoreError> {
        let verify = PairingCommand::VerifySignature {
            signature: signature.to_string(),
            purpose,
            user_id,
            now: self.now(),
        };
        let out = self
            .pairings()
            .execute_as(stream, verify, who, Ack::Written)
            .await?;
        let refused = match verdict(&out.events) {
            Some(Ok(user_id)) => return Ok((user_id, out.last_seq)),
            Some(Err(reason)) => reason.into(),
            None => CoreError::ChallengeInvalid,
        };
        self.wait_settled(out.last_seq).await?;
        Err(refused)
    }

    /// The fingerprint of the key a challenge was issued for, while that challenge can
    /// still be redeemed (for the per-key limit on failed sign-ins); `None` for an unknown,
    /// spent or lapsed challenge id, which is looked up no further.
    pub async fn pending_challenge_fingerprint(
        &self,
        challenge_id: &str,
    ) -> Result<Option<String>, CoreError> {
        let pending = self.pending_sign_in(challenge_id).await?;
        Ok(self.fingerprint_of(&pending).map(str::to_string))
    }

    /// The challenge a sign-in names, read once for both [`Self::fingerprint_of`] and
    /// [`Self::sign_in_pending`] (the token route needs both).
    pub async fn pending_sign_in(&self, challenge_id: &str) -> Result<PendingSignIn, CoreError> {
        Ok(PendingSignIn(
            self.load_pending_challenge(challenge_id).await?,
        ))
    }

    /// [`Self::pending_challenge_fingerprint`] of a challenge already read.
    pub fn fingerprint_of<'a>(&self, pending: &'a PendingSignIn) -> Option<&'a str> {
        pending
            .0
            .as_ref()
            .filter(|l| l.challenge.expires_at > self.now())
            .map(|l| l.challenge.key.fingerprint.as_str())
    }

    /// Like [`Self::load_challenge`], but only a challenge nobody has presented yet: a
    /// pairing stream whose one event is its `ChallengeIssued`. A spent challenge answers
    /// `None` from the stream head alone. The one event is read from the log here, not
    /// asked of the pairing actor: no round trip through its arbiter, whose thread also
    /// verifies signatures. Only the verify decides whether the challenge is still unspent.
    async fn load_pending_challenge(
        &self,
        challenge_id: &str,
    ) -> Result<Option<Loaded>, CoreError> {
        let Ok(id) = Uuid::parse_str(challenge_id) else {
            return Ok(None);
        };
        let stream = PairingId(id).stream();
        if self.store().stream_head(&stream)?.0 != 1 {
            return Ok(None);
        }
        let folded = Folded::<PairingDecider>::load_until(self.store().as_ref(), stream, u64::MAX)?;
        Ok(match folded.state.as_ref() {
            PairingState::Issued(challenge) => Some(Loaded {
                challenge: challenge.clone(),
                stream: folded.stream,
            }),
            _ => None,
        })
    }

    /// Redeems a challenge: verifies the signature, registers the user when registration
    /// is open and the key is new, and mints a session token.
    pub async fn sign_in(&self, req: SignIn<'_>) -> Result<SignedIn, CoreError> {
        let pending = self.pending_sign_in(req.challenge_id).await?;
        self.sign_in_pending(pending, req).await
    }

    /// [`Self::sign_in`] with the challenge already read by [`Self::pending_sign_in`] for
    /// `req.challenge_id`.
    pub async fn sign_in_pending(
        &self,
        pending: PendingSignIn,
        req: SignIn<'_>,
    ) -> Result<SignedIn, CoreError> {
        // An unknown or spent challenge answers the same, and costs no lookup of its key.
        let Loaded { stream, challenge } = pending.0.ok_or(CoreError::ChallengeInvalid)?;
        let fingerprint = &challenge.key.fingerprint;
        let open = self.config().registration == Registration::Open;
        let mut owner = self.models().user_by_fingerprint(fingerprint)?;
        // One registration per key at a time: a second sign-in by the same new key waits
        // here, then finds the user the first one created and signs in as that user.
        let _registering = if owner.is_none() && open {
            let guard = self.key_lock(fingerprint).await;
            owner = self.models().user_by_fingerprint(fingerprint)?;
            Some(guard)
        } else {
            None
        };
        let registers = owner.is_none() && open;
        let user_id = owner.or_else(|| open.then(|| UserId(Uuid::new_v4())));
        // The challenge is consumed first, whatever happens next (DESIGN §6). Its event is
        // not waited for on its own, not even for its fsync: the session's mint is
        // appended after it, so the mint's durability (which the answer waits for) covers
        // it, and an answer without a mint waits for it below.
        let (user_id, verified) = self
            .redeem_unwaited(
                stream,
                req.signature,
                ChallengePurpose::SignIn,
                user_id,
                Who::Anonymous,
            )
            .await?;
        let signed = self.after_verify(user_id, registers, &challenge, req).await;
        if signed.is_err() {
            self.wait_settled(verified).await?;
        }
        signed
    }

    /// The rest of a verified sign-in: register when it does, then mint the session.
    async fn after_verify(
        &self,
        user_id: UserId,
        registers: bool,
        challenge: &IssuedChallenge,
        req: SignIn<'_>,
    ) -> Result<SignedIn, CoreError> {
        let (handle, admin) = if registers {
            let handle = self.choose_handle(req.handle.as_deref(), challenge)?;
            self.register(user_id, &handle, challenge).await?;
            (handle, false)
        } else {
            self.models()
                .user(user_id)?
                .map(|u| (u.handle, u.admin))
                .ok_or_else(|| CoreError::Internal("signed-in user is not projected".into()))?
        };
        let mut signed = self.mint_session(user_id, admin, challenge, req).await?;
        signed.handle = handle;
        signed.registered = registers;
        Ok(signed)
    }

    /// Mints the session of a verified sign-in (`handle` and `registered` left for the
    /// caller to fill).
    async fn mint_session(
        &self,
        user_id: UserId,
        admin: bool,
        challenge: &IssuedChallenge,
        req: SignIn<'_>,
    ) -> Result<SignedIn, CoreError> {
        let grant = SessionGrant {
            name: None,
            device_name: req.device_name,
            user_agent: req.user_agent,
            ip: req.ip,
            fingerprint: challenge.key.fingerprint.clone(),
            lifetime_secs: self.config().session_ttl.as_secs() as i64,
        };
        let (raw, token_id, expires_at) = self.mint_session_as(user_id, admin, grant).await?;
        Ok(SignedIn {
            token: raw,
            token_id,
            kind: TokenKind::Session,
            expires_at: Some(expires_at),
            user_id,
            handle: String::new(),
            registered: false,
        })
    }

    /// Mints a session token, carrying every scope of its user, for a signature just
    /// verified by `grant.fingerprint`'s key; waits until it is projected. The one mint of
    /// an interactive credential: API sign-in and the `/device` page's browser session.
    pub(crate) async fn mint_session_token(
        &self,
        user_id: UserId,
        grant: SessionGrant,
    ) -> Result<(RawToken, TokenId, Timestamp), CoreError> {
        let admin = self.models().user(user_id)?.is_some_and(|u| u.admin);
        self.mint_session_as(user_id, admin, grant).await
    }

    /// [`Self::mint_session_token`] for a user whose admin flag the caller has just read.
    async fn mint_session_as(
        &self,
        user_id: UserId,
        admin: bool,
        grant: SessionGrant,
    ) -> Result<(RawToken, TokenId, Timestamp), CoreError> {
        let raw = token::generate(TokenPrefix::Session, self.random32());
        let token_id = TokenId(Uuid::new_v4());
        let now = self.now();
        let expires_at = now.plus_secs(grant.lifetime_secs);
        let mint = MintToken {
            token_id,
            hash: raw.hash(),
            kind: TokenKind::Session,
            scopes: session_scopes(admin),
            name: grant.name,
            device_name: grant.device_name,
            user_agent: grant.user_agent,
            ip: self.config().ip_retention.apply(grant.ip),
            key_fingerprint: Some(grant.fingerprint),
            expires_at: Some(expires_at),
            now,
        };
        let out = self
            .users()
            .execute(user_id.stream(), mint.into(), Who::User(user_id))
            .await?;
        self.wait_applied(out.last_seq).await?;
        Ok((raw, token_id, expires_at))
    }

    fn choose_handle(
        &self,
        asked: Option<&str>,
        challenge: &IssuedChallenge,
    ) -> Result<String, CoreError> {
        if let Some(h) = asked {
            handle::validate_handle(h)?;
            if handle::is_reserved(h) || self.handle_taken(h)? {
                return Err(CoreError::HandleTaken(h.to_string()));
            }
            return Ok(h.to_string());
        }
        let base = handle::derive_handle(&challenge.key.comment, &challenge.key.fingerprint);
        if !self.handle_taken(&base)? {
            return Ok(base);
        }
        for n in 2..1000 {
            let candidate = handle::with_suffix(&base, &n.to_string());
            if !self.handle_taken(&candidate)? {
                return Ok(candidate);
            }
        }
        Err(CoreError::HandleTaken(base))
    }

    fn handle_taken(&self, h: &str) -> Result<bool, CoreError> {
        let claimed = self
            .handle_claims()
            .lock()
            .map(|c| c.contains(h))
            .unwrap_or(true);
        Ok(claimed || self.models().user_by_handle(h)?.is_some())
    }

    async fn register(
        &self,
        user_id: UserId,
        handle: &str,
        challenge: &IssuedChallenge,
    ) -> Result<(), CoreError> {
        let cmd = UserCommand::Register {
            user_id,
            handle: handle.to_string(),
            key_id: KeyId(Uuid::new_v4()),
            key: challenge.key.clone(),
            admin: false,
            now: self.now(),
        };
        self.register_claimed(user_id, handle, cmd, Who::User(user_id))
            .await
            .map(|_| ())
    }

    /// Runs a `Register` command under a claim on its handle, so two registrations cannot
    /// take one handle; returns the seq once projected.
    pub(crate) async fn register_claimed(
        &self,
        user_id: UserId,
        handle: &str,
        cmd: UserCommand,
        who: Who,
    ) -> Result<u64, CoreError> {
        {
            let mut claims = self
                .handle_claims()
                .lock()
                .map_err(|_| CoreError::Internal("handle claims poisoned".into()))?;
            if claims.contains(handle) || self.models().user_by_handle(handle)?.is_some() {
                return Err(CoreError::HandleTaken(handle.to_string()));
            }
            claims.insert(handle.to_string());
        }
        let result = self
            .users()
            .execute(user_id.stream(), cmd, who)
            .await
            .map_err(CoreError::from);
        let waited = match &result {
            Ok(out) => self.wait_applied(out.last_seq).await.map(|()| out.last_seq),
            Err(_) => Ok(0),
        };
        if let Ok(mut claims) = self.handle_claims().lock() {
            claims.remove(handle);
        }
        result.and(waited)
    }
}

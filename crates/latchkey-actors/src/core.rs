//! `Core`: the operations the HTTP layer calls. Each one sends commands to entities, then
//! waits until the projector has applied its own events (read-your-writes) before it
//! answers, so what a client was told is what its next request sees.

use crate::clock;
use crate::entity::ExecError;
use crate::hub::{Encode, Hub};
use crate::readmodel::{self, ReadModels, UserRow};
use crate::registry::{EntitySettings, Registry};
use crate::sweeper::Sweeper;
use actix::prelude::*;
use latchkey_domain::pairing::IssuedChallenge;
use latchkey_domain::sshkey::{self, KeyError};
use latchkey_domain::token::{self, RawToken, TokenPrefix};
use latchkey_domain::user::{session_scopes, MintToken, TOKEN_USE_INTERVAL_MS};
use latchkey_domain::{
    handle, Actor as Who, ChallengePurpose, KeyId, PairingCommand, PairingDecider, PairingError,
    PairingEvent, PairingId, RejectReason, RevokeReason, RoomDecider, Scope, Timestamp, TokenId,
    TokenKind, UserCommand, UserDecider, UserError, UserId,
};
use latchkey_store::projection::{Projector, ProjectorHandle};
use latchkey_store::{EventStore, StoreError};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// Whether a valid signature by an unknown key creates a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Registration {
    /// Yes: the first sign-in registers the key's holder.
    Open,
    /// No: unknown keys get `key_unknown`.
    Closed,
}

/// How much of a client IP is stored in events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpRetention {
    /// Nothing.
    None,
    /// IPv4 to /24, IPv6 to /48 (the default).
    Truncated,
    /// The whole address.
    Full,
}

impl IpRetention {
    /// Applies the policy to an address.
    pub fn apply(&self, ip: Option<IpAddr>) -> Option<IpAddr> {
        match (self, ip) {
            (IpRetention::None, _) | (_, None) => None,
            (IpRetention::Full, ip) => ip,
            (IpRetention::Truncated, Some(IpAddr::V4(v4))) => {
                let o = v4.octets();
                Some(IpAddr::from([o[0], o[1], o[2], 0]))
            }
            (IpRetention::Truncated, Some(IpAddr::V6(v6))) => {
                let mut s = v6.segments();
                s[3..].iter_mut().for_each(|x| *x = 0);
                Some(IpAddr::from(s))
            }
        }
    }
}

/// Settings of the core.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// The `server=` line of challenges: the public URL, or the server id.
    pub server: String,
    /// Open or closed registration.
    pub registration: Registration,
    /// Challenge lifetime.
    pub challenge_ttl: Duration,
    /// Session token lifetime.
    pub session_ttl: Duration,
    /// How much of client IPs to keep.
    pub ip_retention: IpRetention,
    /// Bound of each entity mailbox.
    pub mailbox: usize,
    /// How long a handler waits for its own events to be projected before answering 503.
    pub projection_timeout: Duration,
    /// Entity arbiters (threads); 0 means one per core.
    pub arbiters: usize,
    /// How often the sweeper looks for lapsed challenges and tokens.
    pub sweep_every: Duration,
    /// Bound of each WebSocket connection's queue of pending event frames.
    pub ws_queue: usize,
}

impl CoreConfig {
    /// Defaults of DESIGN §6 for a server line.
    pub fn new(server: String) -> Self {
        Self {
            server,
            registration: Registration::Open,
            challenge_ttl: Duration::from_secs(60),
            session_ttl: Duration::from_secs(30 * 24 * 3600),
            ip_retention: IpRetention::Truncated,
            mailbox: 256,
            projection_timeout: Duration::from_secs(10),
            arbiters: 0,
            sweep_every: Duration::from_secs(1),
            ws_queue: 1024,
        }
    }
}

/// Why an operation failed, in terms the HTTP layer maps to status codes.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// 400 invalid_request.
    #[error("{0}")]
    InvalidRequest(String),
    /// 400 unsupported_key_type.
    #[error("key type {0} is not accepted; use ssh-ed25519, sk-ssh-ed25519@openssh.com or ecdsa-sha2-nistp256")]
    UnsupportedKeyType(String),
    /// 401 challenge_invalid.
    #[error("the challenge is unknown, already used, or expired")]
    ChallengeInvalid,
    /// 401 signature_invalid.
    #[error("{0}")]
    SignatureInvalid(&'static str),
    /// 401 key_unknown.
    #[error("this key belongs to no user and registration is closed")]
    KeyUnknown,
    /// 401 unauthorized.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// 403 forbidden.
    #[error("{0}")]
    Forbidden(&'static str),
    /// 404 not_found.
    #[error("{0}")]
    NotFound(&'static str),
    /// 409 conflict.
    #[error("{0}")]
    Conflict(&'static str),
    /// 403 not_a_member.
    #[error("you are not a member of this room")]
    NotAMember,
    /// 409 handle_taken.
    #[error("the handle {0} is taken")]
    HandleTaken(String),
    /// 503 unavailable, retry.
    #[error("the service is busy; retry shortly")]
    Busy,
    /// 500, logged; the message never reaches the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            // A poisoned journal refuses writes until a restart: unavailable, not a bug.
            StoreError::Busy | StoreError::Poisoned => CoreError::Busy,
            other => CoreError::Internal(other.to_string()),
        }
    }
}

pub(crate) fn exec<E: std::fmt::Debug>(
    e: ExecError<E>,
    domain: impl FnOnce(E) -> CoreError,
) -> CoreError {
    match e {
        ExecError::Domain(d) => domain(d),
        ExecError::Busy | ExecError::Conflict | ExecError::Gone => CoreError::Busy,
        ExecError::Store(s) => CoreError::Internal(s),
    }
}

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
}

impl Auth {
    /// Whether the credential carries a scope.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

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

/// latchkey's operations, shared by every HTTP worker (build it once, outside
/// `HttpServer::new`).
pub struct Core {
    store: Arc<dyn EventStore>,
    models: ReadModels,
    users: Registry<UserDecider>,
    pairings: Registry<PairingDecider>,
    rooms: Registry<RoomDecider>,
    hub: Arc<Hub>,
    applied: watch::Receiver<u64>,
    config: CoreConfig,
    /// Handles being registered right now: the read model sees a handle only once its
    /// user is projected, so two concurrent registrations claim here first.
    handle_claims: Mutex<HashSet<String>>,
    /// Registration locks by key fingerprint (see `sign_in`).
    key_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Last `TokenUsed` sent per token, so a busy token does not message its user actor on
    /// every request. Cleared when it grows past a bound.
    recent_use: Mutex<HashMap<TokenId, Timestamp>>,
    arbiters: Vec<Arbiter>,
    tickets: crate::tickets::Tickets,
    device: crate::device::DeviceBook,
    projector: Mutex<Option<ProjectorHandle>>,
    sweeper: Mutex<Option<Addr<Sweeper>>>,
}

/// Holds a key's registration lock; removes the map entry when nobody else waits.
pub(crate) struct KeyLockGuard<'a> {
    core: &'a Core,
    fingerprint: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for KeyLockGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        if let Ok(mut map) = self.core.key_locks.lock() {
            if map
                .get(&self.fingerprint)
                .is_some_and(|l| Arc::strong_count(l) == 1)
            {
                map.remove(&self.fingerprint);
            }
        }
    }
}

/// Most tokens remembered in `recent_use` before it is cleared.
const RECENT_USE_BOUND: usize = 100_000;

impl Core {
    /// Brings the read models to the durable head, starts the projector thread, the entity
    /// arbiters and the sweeper. Must run inside an actix `System`.
    pub fn start(
        store: Arc<dyn EventStore>,
        config: CoreConfig,
        encode: Encode,
    ) -> Result<Arc<Self>, CoreError> {
        let mut projector = Projector::new(store.clone(), readmodel::projections())?;
        let caught_up = projector.catch_up()?;
        tracing::info!(seq = caught_up, "read models at the durable head");
        let models = ReadModels::open(store.as_ref())?;
        // The hub starts from the read models at `caught_up`; the projector thread feeds it
        // every later chunk, so it never misses or repeats an event.
        let hub = Arc::new(Hub::new(
            caught_up,
            models.rooms().all_memberships()?,
            encode,
            config.ws_queue,
        ));
        let feed = hub.clone();
        let projector = projector.after_apply(Box::new(move |chunk| feed.apply(chunk)));
        let applied = projector.applied();
        let projector = projector.spawn()?;
        let n = if config.arbiters == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        } else {
            config.arbiters
        };
        let arbiters: Vec<Arbiter> = (0..n).map(|_| Arbiter::new()).collect();
        let handles: Vec<ArbiterHandle> = arbiters.iter().map(Arbiter::handle).collect();
        let settings = |after| EntitySettings {
            mailbox: config.mailbox,
            passivate_after: after,
        };
        let users = Registry::new(
            store.clone(),
            &handles,
            settings(<UserDecider as crate::kind::Kind>::PASSIVATE_AFTER),
        );
        let pairings = Registry::new(
            store.clone(),
            &handles,
            settings(<PairingDecider as crate::kind::Kind>::PASSIVATE_AFTER),
        );
        let rooms = Registry::new(
            store.clone(),
            &handles,
            settings(<RoomDecider as crate::kind::Kind>::PASSIVATE_AFTER),
        );
        let core = Arc::new(Self {
            store,
            models,
            users,
            pairings,
            rooms,
            hub,
            applied,
            config,
            handle_claims: Mutex::new(HashSet::new()),
            key_locks: Mutex::new(HashMap::new()),
            recent_use: Mutex::new(HashMap::new()),
            arbiters,
            tickets: crate::tickets::Tickets::default(),
            device: crate::device::DeviceBook::default(),
            projector: Mutex::new(Some(projector)),
            sweeper: Mutex::new(None),
        });
        let sweeper = Sweeper::new(Arc::downgrade(&core), core.config.sweep_every).start();
        if let Ok(mut s) = core.sweeper.lock() {
            *s = Some(sweeper);
        }
        Ok(core)
    }

    /// Stops the sweeper, the arbiters and the projector. The store flushes when dropped.
    pub fn shutdown(&self) {
        if let Some(s) = self.sweeper.lock().ok().and_then(|mut s| s.take()) {
            s.do_send(crate::sweeper::Stop);
        }
        for a in &self.arbiters {
            a.stop();
        }
        if let Some(p) = self.projector.lock().ok().and_then(|mut p| p.take()) {
            p.stop();
        }
    }

    /// The store (for health and metrics).
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The read models.
    pub fn models(&self) -> &ReadModels {
        &self.models
    }

    /// The settings.
    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    /// The newest seq every read model has applied.
    pub fn applied_seq(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Live entities per kind (users, pairings, rooms), for metrics.
    pub fn live_entities(&self) -> (usize, usize, usize) {
        (self.users.live(), self.pairings.live(), self.rooms.live())
    }

    pub(crate) fn users(&self) -> &Registry<UserDecider> {
        &self.users
    }

    pub(crate) fn pairings(&self) -> &Registry<PairingDecider> {
        &self.pairings
    }

    pub(crate) fn rooms_registry(&self) -> &Registry<RoomDecider> {
        &self.rooms
    }

    /// The fanout hub (the WebSocket route registers connections here).
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    pub(crate) fn tickets(&self) -> &crate::tickets::Tickets {
        &self.tickets
    }

    pub(crate) fn device_book(&self) -> &crate::device::DeviceBook {
        &self.device
    }

    /// Waits until the projector has applied `seq` (0: nothing to wait for).
    pub async fn wait_applied(&self, seq: u64) -> Result<(), CoreError> {
        if seq == 0 || self.applied_seq() >= seq {
            return Ok(());
        }
        let mut rx = self.applied.clone();
        let waited =
            tokio::time::timeout(self.config.projection_timeout, rx.wait_for(|a| *a >= seq)).await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            _ => Err(CoreError::Busy),
        }
    }

    /// Issues a sign-in challenge for an OpenSSH public key line.
    pub async fn issue_challenge(
        &self,
        public_key: &str,
        purpose: ChallengePurpose,
        ip: Option<IpAddr>,
    ) -> Result<IssuedChallenge, CoreError> {
        let key = sshkey::parse_public_key(public_key).map_err(|e| match e {
            KeyError::UnsupportedKeyType(t) => CoreError::UnsupportedKeyType(t),
            KeyError::Malformed => {
                CoreError::InvalidRequest("public_key is not an OpenSSH public key line".into())
            }
        })?;
        let id = PairingId(Uuid::new_v4());
        let now = clock::now();
        let cmd = PairingCommand::IssueChallenge {
            challenge_id: id,
            server: self.config.server.clone(),
            key,
            nonce: clock::random32(),
            purpose,
            now,
            expires_at: now.plus_secs(self.config.challenge_ttl.as_secs() as i64),
            ip: self.config.ip_retention.apply(ip),
        };
        let out = self
            .pairings
            .execute(id.stream(), cmd, Who::Anonymous)
            .await
            .map_err(|e| exec(e, |d| CoreError::Internal(d.to_string())))?;
        self.wait_applied(out.last_seq).await?;
        out.state
            .issued()
            .cloned()
            .ok_or_else(|| CoreError::Internal("challenge not issued".into()))
    }

    /// The fingerprint of the key a challenge was issued for (for per-key rate limits);
    /// `None` for an unknown challenge id.
    pub async fn challenge_fingerprint(
        &self,
        challenge_id: &str,
    ) -> Result<Option<String>, CoreError> {
        let Ok(id) = Uuid::parse_str(challenge_id) else {
            return Ok(None);
        };
        let stream = PairingId(id).stream();
        if self.store.stream_head(&stream)?.0 == 0 {
            return Ok(None);
        }
        let state = self
            .pairings
            .inspect(stream)
            .await
            .map_err(|e| exec(e, |_: PairingError| CoreError::ChallengeInvalid))?;
        Ok(state.challenge().map(|c| c.key.fingerprint.clone()))
    }

    /// Redeems a challenge: verifies the signature, registers the user when registration
    /// is open and the key is new, and mints a session token.
    pub async fn sign_in(&self, req: SignIn<'_>) -> Result<SignedIn, CoreError> {
        let id = Uuid::parse_str(req.challenge_id).map_err(|_| CoreError::ChallengeInvalid)?;
        let stream = PairingId(id).stream();
        if self.store.stream_head(&stream)?.0 == 0 {
            return Err(CoreError::ChallengeInvalid); // never spawn an actor for a made-up id
        }
        let state = self
            .pairings
            .inspect(stream.clone())
            .await
            .map_err(|e| exec(e, |_: PairingError| CoreError::ChallengeInvalid))?;
        let challenge = state.issued().cloned().ok_or(CoreError::ChallengeInvalid)?;
        if challenge.purpose != ChallengePurpose::SignIn {
            return Err(CoreError::ChallengeInvalid);
        }
        let mut owner = self
            .models
            .user_by_fingerprint(&challenge.key.fingerprint)?;
        let open = self.config.registration == Registration::Open;
        // One registration per key at a time: a second sign-in by the same new key waits
        // here, then finds the user the first one created and signs in as that user.
        let _registering = match (owner, open) {
            (None, true) => {
                let guard = self.key_lock(&challenge.key.fingerprint).await;
                owner = self
                    .models
                    .user_by_fingerprint(&challenge.key.fingerprint)?;
                Some(guard)
            }
            _ => None,
        };
        let registers = owner.is_none() && open;
        let user_id = match owner {
            Some(u) => Some(u),
            None if open => Some(UserId(Uuid::new_v4())),
            None => None,
        };
        let now = clock::now();
        // The challenge is consumed first, whatever happens next (DESIGN §6).
        let verify = PairingCommand::VerifySignature {
            signature: req.signature.to_string(),
            user_id,
            now,
        };
        let out = self
            .pairings
            .execute(stream, verify, Who::Anonymous)
            .await
            .map_err(|e| exec(e, |_| CoreError::ChallengeInvalid))?;
        self.wait_applied(out.last_seq).await?;
        let user_id = match out.events.first() {
            Some(PairingEvent::SignatureVerified { user_id, .. }) => *user_id,
            Some(PairingEvent::SignatureRejected { reason, .. }) => {
                return Err(match reason {
                    RejectReason::Expired => CoreError::ChallengeInvalid,
                    RejectReason::InvalidSignature => CoreError::SignatureInvalid(
                        "the signature does not verify for this challenge, key and namespace",
                    ),
                    RejectReason::UserPresenceMissing => CoreError::SignatureInvalid(
                        "the FIDO signature lacks the user-presence flag",
                    ),
                    RejectReason::KeyUnknown => CoreError::KeyUnknown,
                })
            }
            _ => return Err(CoreError::ChallengeInvalid),
        };

        let handle = if registers {
            let handle = self.choose_handle(&req, &challenge)?;
            self.register(user_id, &handle, &challenge, now).await?;
            handle
        } else {
            self.models
                .user(user_id)?
                .map(|u| u.handle)
                .ok_or_else(|| CoreError::Internal("signed-in user is not projected".into()))?
        };
        let registered = registers;
        let admin = self.models.user(user_id)?.is_some_and(|u| u.admin);
        let raw = token::generate(TokenPrefix::Session, clock::random32());
        let token_id = TokenId(Uuid::new_v4());
        let expires_at = Some(now.plus_secs(self.config.session_ttl.as_secs() as i64));
        let mint = MintToken {
            token_id,
            hash: raw.hash(),
            kind: TokenKind::Session,
            scopes: session_scopes(admin),
            name: None,
            device_name: req.device_name,
            user_agent: req.user_agent,
            ip: self.config.ip_retention.apply(req.ip),
            key_fingerprint: Some(challenge.key.fingerprint.clone()),
            expires_at,
            now,
        };
        let out = self
            .users
            .execute(user_id.stream(), mint.into(), Who::User(user_id))
            .await
            .map_err(|e| {
                exec(e, |d| match d {
                    UserError::Disabled => CoreError::Forbidden("this user is disabled"),
                    // The key was removed between the signature and the mint.
                    UserError::KeyNotFound => CoreError::KeyUnknown,
                    other => CoreError::Internal(other.to_string()),
                })
            })?;
        self.wait_applied(out.last_seq).await?;
        Ok(SignedIn {
            token: raw,
            token_id,
            kind: TokenKind::Session,
            expires_at,
            user_id,
            handle,
            registered,
        })
    }

    /// The registration lock of a key fingerprint. Entries are dropped when unused.
    pub(crate) async fn key_lock(&self, fingerprint: &str) -> KeyLockGuard<'_> {
        let lock = match self.key_locks.lock() {
            Ok(mut map) => map.entry(fingerprint.to_string()).or_default().clone(),
            Err(_) => Arc::new(tokio::sync::Mutex::new(())),
        };
        let guard = lock.clone().lock_owned().await;
        KeyLockGuard {
            core: self,
            fingerprint: fingerprint.to_string(),
            guard: Some(guard),
        }
    }

    fn choose_handle(
        &self,
        req: &SignIn<'_>,
        challenge: &IssuedChallenge,
    ) -> Result<String, CoreError> {
        if let Some(h) = &req.handle {
            handle::validate_handle(h)
                .map_err(|e| CoreError::InvalidRequest(format!("handle: {e}")))?;
            if self.handle_taken(h)? {
                return Err(CoreError::HandleTaken(h.clone()));
            }
            return Ok(h.clone());
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
            .handle_claims
            .lock()
            .map(|c| c.contains(h))
            .unwrap_or(true);
        Ok(claimed || self.models.user_by_handle(h)?.is_some())
    }

    async fn register(
        &self,
        user_id: UserId,
        handle: &str,
        challenge: &IssuedChallenge,
        now: Timestamp,
    ) -> Result<(), CoreError> {
        let cmd = UserCommand::Register {
            user_id,
            handle: handle.to_string(),
            key_id: KeyId(Uuid::new_v4()),
            key: challenge.key.clone(),
            admin: false,
            now,
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
                .handle_claims
                .lock()
                .map_err(|_| CoreError::Internal("handle claims poisoned".into()))?;
            if claims.contains(handle) || self.models.user_by_handle(handle)?.is_some() {
                return Err(CoreError::HandleTaken(handle.to_string()));
            }
            claims.insert(handle.to_string());
        }
        let result = self
            .users
            .execute(user_id.stream(), cmd, who)
            .await
            .map_err(|e| exec(e, |d| CoreError::Internal(d.to_string())));
        let waited = match &result {
            Ok(out) => self.wait_applied(out.last_seq).await.map(|()| out.last_seq),
            Err(_) => Ok(0),
        };
        if let Ok(mut claims) = self.handle_claims.lock() {
            claims.remove(handle);
        }
        result.and(waited)
    }

    /// Checks a bearer token against the token read model: format and checksum first (no
    /// lookup for a look-alike), then SHA-256 lookup, then expiry.
    pub fn authenticate(&self, bearer: &str) -> Result<Auth, CoreError> {
        let parsed = token::parse(bearer).map_err(|_| CoreError::Unauthorized)?;
        if parsed.prefix() == TokenPrefix::WsTicket {
            return Err(CoreError::Unauthorized);
        }
        let row = self
            .models
            .token_by_hash(&parsed.hash())?
            .ok_or(CoreError::Unauthorized)?;
        self.auth_from_row(row, clock::now())
    }

    /// A credential from a live token row, unless it has expired.
    pub(crate) fn auth_from_row(
        &self,
        row: readmodel::TokenRow,
        now: Timestamp,
    ) -> Result<Auth, CoreError> {
        if row.expires_at.is_some_and(|e| now >= e) {
            return Err(CoreError::Unauthorized);
        }
        Ok(Auth {
            user_id: row.user_id,
            token_id: row.token_id,
            kind: row.kind,
            scopes: row.token.scopes,
            expires_at: row.token.expires_at,
            last_used_at: row.token.last_used_at,
        })
    }

    /// Records that a token was used, at most every 5 minutes, without delaying the caller.
    pub fn touch(self: &Arc<Self>, auth: &Auth) {
        let now = clock::now();
        let recent = |t: Option<Timestamp>| t.is_some_and(|t| now.0 - t.0 < TOKEN_USE_INTERVAL_MS);
        if recent(auth.last_used_at) {
            return;
        }
        if let Ok(mut seen) = self.recent_use.lock() {
            if recent(seen.get(&auth.token_id).copied()) {
                return;
            }
            if seen.len() >= RECENT_USE_BOUND {
                seen.clear();
            }
            seen.insert(auth.token_id, now);
        }
        let core = self.clone();
        let (user_id, token_id) = (auth.user_id, auth.token_id);
        actix::spawn(async move {
            let cmd = UserCommand::RecordTokenUse { token_id, now };
            if let Err(e) = core
                .users
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
            now: clock::now(),
        };
        let out = self
            .users
            .execute(auth.user_id.stream(), cmd, Who::User(auth.user_id))
            .await
            .map_err(|e| exec(e, |_| CoreError::Unauthorized))?;
        self.wait_applied(out.last_seq).await
    }

    /// The user behind a credential.
    pub fn me(&self, auth: &Auth) -> Result<UserRow, CoreError> {
        self.models
            .user(auth.user_id)?
            .ok_or(CoreError::Unauthorized)
    }
}

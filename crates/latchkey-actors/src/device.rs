//! The RFC 8628 device flow on `Core` (DESIGN §12): a device requests a code, proves the
//! key it wants enrolled, polls, or cancels; a signed-in user looks the request up by its
//! user code, approves or denies it. The rules are the domain's (`device`); this module
//! makes the secrets, finds streams through the device-code model, keeps the in-memory
//! poll bookkeeping, and drives the approver's user stream (the key, the token).
//!
//! Which credential may approve (a session only) is the server's check.

use crate::entity::Executed;
use crate::error::{CoreError, DeviceFlowError};
use crate::{Auth, Core};
use latchkey_domain::device::{
    self, Approval, DeviceCommand, DeviceError, DeviceState, DeviceStatus, PollClock, PollVerdict,
    RequestDevice,
};
use latchkey_domain::sshkey::{self, KeyError};
use latchkey_domain::token::{self, RawToken, TokenPrefix};
use latchkey_domain::user::MintToken;
use latchkey_domain::usercode::{self, UserCode, USER_CODE_RANDOM_BYTES};
use latchkey_domain::{
    Actor as Who, KeyChallenge, KeyId, PairingCommand, PairingDecider, PairingId, PairingState,
    Scope, Timestamp, TokenId, TokenKind, UserCommand,
};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::Mutex;
use uuid::Uuid;

/// Most device codes whose poll bookkeeping is kept in memory.
const POLLS_BOUND: usize = 100_000;

/// A device code: 32 random bytes in hex. Shown to the device once; only its SHA-256 is
/// stored. `Debug` never shows it.
pub struct DeviceCode(String);

impl DeviceCode {
    /// The value, for the one response that carries it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DeviceCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceCode([redacted])")
    }
}

/// A device authorization request as the HTTP layer received it.
#[derive(Debug)]
pub struct DeviceCodeRequest {
    /// `client_id`.
    pub client_id: String,
    /// `scope`, parsed; empty: the default.
    pub scopes: Vec<Scope>,
    /// `device_name`.
    pub device_name: Option<String>,
    /// `public_key`: an OpenSSH key line to enroll.
    pub public_key: Option<String>,
    /// The client's IP (before retention).
    pub ip: Option<IpAddr>,
    /// The client's User-Agent.
    pub user_agent: Option<String>,
}

/// The answer to a device authorization request.
#[derive(Debug)]
pub struct DeviceAuthorization {
    /// The device code (secret).
    pub device_code: DeviceCode,
    /// The user code.
    pub user_code: UserCode,
    /// Seconds until the codes lapse.
    pub expires_in: i64,
    /// The first polling interval.
    pub interval: u32,
    /// The comparison code, when a key was sent.
    pub comparison_code: Option<String>,
    /// The key's proof challenge: its id and the exact message to sign.
    pub key_challenge: Option<(PairingId, String)>,
}

/// A device token, as redeemed by a poll.
#[derive(Debug)]
pub struct DeviceToken {
    /// The raw `lkd_` token.
    pub token: RawToken,
    /// Its id.
    pub token_id: TokenId,
    /// Seconds until it lapses; `None`: never.
    pub expires_in: Option<u64>,
    /// Granted scopes.
    pub scopes: Vec<Scope>,
}

/// A pending request as the approval screen shows it.
#[derive(Debug, Clone)]
pub struct DeviceView {
    /// The user code, canonical.
    pub user_code: UserCode,
    /// The request.
    pub state: DeviceState,
    /// The comparison code for the user code and the request's key.
    pub comparison_code: Option<String>,
}

/// What an approval granted.
#[derive(Debug, Clone)]
pub struct Approved {
    /// The app's name.
    pub client_id: String,
    /// The grant.
    pub approval: Approval,
    /// The fingerprint of the key added to the approver's account, if any.
    pub key_added: Option<String>,
}

/// What an approver grants.
#[derive(Debug, Clone)]
pub struct Grant {
    /// Scopes to grant; `None`: every requested scope.
    pub scopes: Option<Vec<Scope>>,
    /// A device name replacing the device's own.
    pub name: Option<String>,
    /// Token lifetime in seconds; `None`: never expires.
    pub token_ttl_secs: Option<u64>,
}

/// In-memory bookkeeping of the device flow: poll clocks per device code, and user codes
/// being claimed by requests not yet projected.
#[derive(Default)]
pub struct DeviceBook {
    polls: Mutex<HashMap<PairingId, PollClock>>,
    claims: Mutex<HashSet<[u8; 32]>>,
}

impl DeviceBook {
    fn clock(&self, id: PairingId) -> Option<PollClock> {
        self.polls.lock().ok().and_then(|m| m.get(&id).copied())
    }

    fn record(&self, id: PairingId, clock: Option<PollClock>, now: Timestamp) {
        let Ok(mut m) = self.polls.lock() else {
            return;
        };
        match clock {
            Some(c) => {
                if m.len() >= POLLS_BOUND {
                    let horizon = Timestamp(now.0 - device::DEVICE_CODE_TTL_SECS * 1000);
                    m.retain(|_, c| c.last_poll > horizon);
                    if m.len() >= POLLS_BOUND {
                        m.clear();
                    }
                }
                m.insert(id, c);
            }
            None => {
                m.remove(&id);
            }
        }
    }

    /// Forgets a finished request's poll clock.
    pub(crate) fn forget(&self, id: PairingId) {
        if let Ok(mut m) = self.polls.lock() {
            m.remove(&id);
        }
    }

    fn claim(&self, hash: [u8; 32]) -> bool {
        self.claims
            .lock()
            .map(|mut c| c.insert(hash))
            .unwrap_or(false)
    }

    fn release(&self, hash: &[u8; 32]) {
        if let Ok(mut c) = self.claims.lock() {
            c.remove(hash);
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Core {
    /// Runs a device command on a pairing stream and waits until it is projected.
    async fn device_command(
        &self,
        id: PairingId,
        cmd: DeviceCommand,
        who: Who,
    ) -> Result<Executed<PairingDecider>, DeviceFlowError> {
        let out = self
            .pairings()
            .execute(id.stream(), PairingCommand::Device(cmd), who)
            .await?;
        self.wait_applied(out.last_seq).await?;
        Ok(out)
    }

    /// The device authorization on a stream that the read model named.
    async fn device_state(&self, id: PairingId) -> Result<DeviceState, DeviceFlowError> {
        match self.pairings().inspect(id.stream()).await? {
            PairingState::Device(d) => Ok(*d),
            _ => Err(DeviceFlowError::InvalidGrant),
        }
    }

    /// The stream of a device code (caught up first on a shared log); `invalid_grant` when
    /// unknown.
    async fn by_device_code(&self, device_code: &str) -> Result<PairingId, DeviceFlowError> {
        let hash = token::hash_token(device_code);
        self.lookup_fresh(|| {
            self.models()
                .devices()
                .by_device_code(&hash)
                .map_err(DeviceFlowError::from)
        })
        .await?
        .ok_or(DeviceFlowError::InvalidGrant)
    }

    /// A fresh user code no pending request holds, claimed until released.
    fn fresh_user_code(&self) -> Result<UserCode, DeviceFlowError> {
        for _ in 0..16 {
            let random: [u8; USER_CODE_RANDOM_BYTES] = self.random32();
            let Some(code) = UserCode::generate(&random) else {
                continue;
            };
            let hash = code.hash();
            if self
                .models()
                .devices()
                .pending_by_user_code(&hash)?
                .is_none()
                && self.device_book().claim(hash)
            {
                return Ok(code);
            }
        }
        Err(CoreError::Busy.into())
    }

    /// RFC 8628 §3.1: starts a device authorization.
    pub async fn device_authorize(
        &self,
        req: DeviceCodeRequest,
    ) -> Result<DeviceAuthorization, DeviceFlowError> {
        let id = PairingId(Uuid::new_v4());
        let now = self.now();
        let key = match &req.public_key {
            None => None,
            Some(line) => Some(KeyChallenge {
                key: sshkey::parse_public_key(line).map_err(|e| match e {
                    KeyError::UnsupportedKeyType(t) => DeviceFlowError::UnsupportedKeyType(t),
                    KeyError::Malformed => DeviceFlowError::InvalidRequest(
                        "public_key is not an OpenSSH public key line".into(),
                    ),
                })?,
                server: self.config().server.clone(),
                nonce: self.random32(),
                expires_at: now.plus_secs(self.config().challenge_ttl.as_secs() as i64),
            }),
        };
        let device_code = DeviceCode(hex(&self.random32()));
        let user_code = self.fresh_user_code()?;
        let cmd = DeviceCommand::Request(Box::new(RequestDevice {
            pairing_id: id,
            client_id: req.client_id,
            scopes: req.scopes,
            device_name: req.device_name,
            device_code_hash: token::hash_token(device_code.expose_secret()),
            user_code_hash: user_code.hash(),
            key: key.clone(),
            ip: self.config().ip_retention.apply(req.ip),
            user_agent: req.user_agent,
            now,
        }));
        let out = self.device_command(id, cmd, Who::Anonymous).await;
        self.device_book().release(&user_code.hash());
        out?;
        Ok(DeviceAuthorization {
            comparison_code: key
                .as_ref()
                .map(|k| usercode::comparison_code(&user_code, &k.key.fingerprint)),
            key_challenge: key.map(|k| (id, k.message(id))),
            device_code,
            user_code,
            expires_in: device::DEVICE_CODE_TTL_SECS,
            interval: device::POLL_INTERVAL_SECS,
        })
    }

    /// The device proves it holds the key it asked to enroll.
    pub async fn device_prove(
        &self,
        device_code: &str,
        challenge_id: &str,
        signature: &str,
    ) -> Result<(), DeviceFlowError> {
        let id = self.by_device_code(device_code).await?;
        let challenge_id = Uuid::parse_str(challenge_id)
            .map(PairingId)
            .map_err(|_| DeviceFlowError::InvalidRequest("challenge_id is not a UUID".into()))?;
        let cmd = DeviceCommand::ProveKey {
            challenge_id,
            signature: signature.to_string(),
            now: self.now(),
        };
        self.device_command(id, cmd, Who::Anonymous)
            .await
            .map(|_| ())
    }

    /// The device gives up.
    pub async fn device_cancel(&self, device_code: &str) -> Result<(), DeviceFlowError> {
        let id = self.by_device_code(device_code).await?;
        let cmd = DeviceCommand::Cancel { now: self.now() };
        self.device_command(id, cmd, Who::Anonymous).await?;
        self.device_book().forget(id);
        Ok(())
    }

    /// RFC 8628 §3.4: one poll of the token endpoint. Redeems an approved code once.
    pub async fn device_poll(
        &self,
        device_code: &str,
        client_id: &str,
    ) -> Result<DeviceToken, DeviceFlowError> {
        let id = self.by_device_code(device_code).await?;
        let state = self.device_state(id).await?;
        let now = self.now();
        let (verdict, clock) = device::poll(&state, client_id, self.device_book().clock(id), now);
        self.device_book().record(id, clock, now);
        match verdict {
            PollVerdict::Pending => Err(DeviceFlowError::AuthorizationPending),
            PollVerdict::SlowDown => Err(DeviceFlowError::SlowDown(
                clock.map_or(device::POLL_INTERVAL_SECS, |c| c.interval_secs),
            )),
            PollVerdict::AccessDenied => Err(match state.status {
                DeviceStatus::Cancelled { .. } => DeviceError::Cancelled.into(),
                _ => DeviceError::Denied.into(),
            }),
            PollVerdict::Expired => Err(DeviceFlowError::ExpiredToken),
            PollVerdict::Redeemed => Err(DeviceFlowError::InvalidGrant),
            PollVerdict::WrongClient => Err(DeviceFlowError::InvalidClient),
            PollVerdict::Redeem => self.redeem(id, &state, now).await,
        }
    }

    /// Redeems an approved code: `DeviceTokenIssued` first (so a second poll loses), then
    /// the token on the approver's stream, replacing this device's earlier token.
    async fn redeem(
        &self,
        id: PairingId,
        state: &DeviceState,
        now: Timestamp,
    ) -> Result<DeviceToken, DeviceFlowError> {
        let token_id = TokenId(Uuid::new_v4());
        let out = self
            .device_command(
                id,
                DeviceCommand::IssueToken { token_id, now },
                Who::Anonymous,
            )
            .await?;
        self.device_book().forget(id);
        let approval: Approval = match std::sync::Arc::unwrap_or_clone(out.state) {
            PairingState::Device(d) => match d.status {
                DeviceStatus::Issued { approval, .. } => approval,
                _ => return Err(CoreError::Internal("issued code without approval".into()).into()),
            },
            _ => return Err(CoreError::Internal("issued code without approval".into()).into()),
        };
        let raw = token::generate(TokenPrefix::Device, self.random32());
        let expires_at = approval
            .token_ttl_secs
            .map(|s| now.plus_secs(i64::try_from(s).unwrap_or(i64::MAX / 1000)));
        let mint = MintToken {
            token_id,
            hash: raw.hash(),
            kind: TokenKind::Device,
            scopes: approval.scopes.clone(),
            name: Some(state.request.client_id.clone()),
            device_name: approval.device_name.clone(),
            user_agent: state.request.user_agent.clone(),
            ip: state.request.ip,
            key_fingerprint: None,
            expires_at,
            now,
        };
        let by = approval.by;
        let out = self
            .users()
            .execute(by.stream(), mint.into(), Who::User(by))
            .await?;
        self.wait_applied(out.last_seq).await?;
        Ok(DeviceToken {
            token: raw,
            token_id,
            expires_in: approval.token_ttl_secs,
            scopes: approval.scopes,
        })
    }

    /// The pending request a typed user code names; `NotFound` for a malformed, unknown
    /// or no longer pending code.
    async fn pending_request(
        &self,
        user_code: &str,
    ) -> Result<(UserCode, DeviceState), DeviceFlowError> {
        let code = UserCode::parse(user_code).map_err(|_| DeviceFlowError::NotFound)?;
        let hash = code.hash();
        let id = self
            .lookup_fresh(|| {
                self.models()
                    .devices()
                    .pending_by_user_code(&hash)
                    .map_err(DeviceFlowError::from)
            })
            .await?
            .ok_or(DeviceFlowError::NotFound)?;
        let state = self.device_state(id).await?;
        if !state.is_pending_at(self.now()) {
            return Err(DeviceFlowError::NotFound);
        }
        Ok((code, state))
    }

    /// What the approval screen shows for a user code.
    pub async fn device_lookup(&self, user_code: &str) -> Result<DeviceView, DeviceFlowError> {
        let (user_code, state) = self.pending_request(user_code).await?;
        let comparison_code = state
            .request
            .key
            .as_ref()
            .map(|k| usercode::comparison_code(&user_code, &k.key.fingerprint));
        Ok(DeviceView {
            user_code,
            state,
            comparison_code,
        })
    }

    /// A signed-in user approves; a proven key is added to their account.
    pub async fn device_approve(
        &self,
        auth: &Auth,
        user_code: &str,
        grant: Grant,
    ) -> Result<Approved, DeviceFlowError> {
        let (_, state) = self.pending_request(user_code).await?;
        let id = state.request.pairing_id;
        let key = state.request.key.as_ref().map(|k| k.key.clone());
        // One owner per key: the same lock as a registration or an add-key by this key.
        let _lock = match &key {
            Some(k) => Some(self.key_lock(&k.fingerprint).await),
            None => None,
        };
        if let Some(k) = &key {
            let owner = self.models().user_by_fingerprint(&k.fingerprint)?;
            if owner.is_some_and(|o| o != auth.user_id) {
                return Err(DeviceFlowError::KeyTaken);
            }
        }
        let now = self.now();
        let cmd = DeviceCommand::Approve {
            by: auth.user_id,
            scopes: grant.scopes,
            name: grant.name,
            token_ttl_secs: grant.token_ttl_secs,
            key_id: KeyId(Uuid::new_v4()),
            now,
        };
        let out = self
            .device_command(id, cmd, Who::User(auth.user_id))
            .await?;
        let PairingState::Device(after) = std::sync::Arc::unwrap_or_clone(out.state) else {
            return Err(CoreError::Internal("approved a non-device stream".into()).into());
        };
        let DeviceStatus::Approved(approval) = after.status else {
            return Err(CoreError::Internal("approval not recorded".into()).into());
        };
        let mut key_added = None;
        if let (Some(key_id), Some(key)) = (approval.key_id, key) {
            key_added = Some(key.fingerprint.clone());
            let cmd = UserCommand::AddKey { key_id, key, now };
            let out = self
                .users()
                .execute(auth.user_id.stream(), cmd, Who::User(auth.user_id))
                .await?;
            self.wait_applied(out.last_seq).await?;
        }
        Ok(Approved {
            client_id: after.request.client_id,
            approval,
            key_added,
        })
    }

    /// A signed-in user denies; the request can never be approved after this.
    pub async fn device_deny(&self, auth: &Auth, user_code: &str) -> Result<(), DeviceFlowError> {
        let (_, state) = self.pending_request(user_code).await?;
        let cmd = DeviceCommand::Deny {
            by: auth.user_id,
            now: self.now(),
        };
        self.device_command(state.request.pairing_id, cmd, Who::User(auth.user_id))
            .await
            .map(|_| ())
    }

    /// The sweeper: lapses open requests past their expiry. A failed read of the due list
    /// is an error; a failed command is logged and the sweep goes on.
    pub(crate) async fn expire_devices(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<(), CoreError> {
        for id in self.models().devices().due(now, limit)? {
            let cmd = PairingCommand::Device(DeviceCommand::Expire { now });
            if let Err(e) = self.pairings().execute(id.stream(), cmd, Who::System).await {
                tracing::warn!(pairing = %id, error = %e, "expiring a device request failed");
            }
            self.device_book().forget(id);
        }
        Ok(())
    }
}

//! Offline management on a stopped server's data dir: add a user, disable or enable one,
//! revoke a token. Each folds the stream, decides with the domain decider, and appends
//! with the expected version: the same rules the actors apply online. Read models are
//! brought up to date before (for uniqueness checks) and after (so the next start agrees).

use latchkey_actors::kind::Kind;
use latchkey_actors::readmodel::{projections, ReadModels};
use latchkey_domain::handle::validate_handle;
use latchkey_domain::sshkey::parse_public_key;
use latchkey_domain::{
    Actor, Event, KeyId, RevokeReason, StreamId, Timestamp, TokenId, UserCommand, UserDecider,
    UserEvent, UserId,
};
use latchkey_proto::admin::{AdminUser, RevokedToken};
use latchkey_store::projection::Projector;
use latchkey_store::{AppendRequest, EventStore, ExpectedVersion, SledStore, StoreError};
use std::sync::Arc;
use uuid::Uuid;

/// Why an admin write was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No such user or token.
    #[error("{0}")]
    NotFound(String),
    /// The request is invalid (bad handle, bad key).
    #[error("{0}")]
    Invalid(String),
    /// It conflicts with what exists (handle or key taken).
    #[error("{0}")]
    Conflict(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(crate) fn catch_up(store: &Arc<SledStore>) -> Result<ReadModels, AdminError> {
    Projector::new(store.clone(), projections())?.catch_up()?;
    Ok(ReadModels::open(store.db())?)
}

/// What a decider made of a command: its events and the last seq, or its refusal.
pub(crate) type Decided<D> = Result<
    (Vec<<D as latchkey_domain::Decider>::Event>, u64),
    <D as latchkey_domain::Decider>::Error,
>;

/// Folds a stream, decides, appends with the expected version; returns the events and
/// the last seq (0 when the command changed nothing).
pub(crate) fn execute<D: Kind>(
    store: &SledStore,
    stream: &StreamId,
    cmd: &D::Command,
    actor: Actor,
) -> Result<Decided<D>, AdminError> {
    let (state, version) = latchkey_actors::entity::load::<D>(store, stream)?;
    let events = match D::decide(&state, cmd) {
        Ok(e) => e,
        Err(e) => return Ok(Err(e)),
    };
    if events.is_empty() {
        return Ok(Ok((events, 0)));
    }
    let appended = store
        .append_blocking(AppendRequest {
            stream: stream.clone(),
            expected: ExpectedVersion::Exact(version),
            events: events.iter().cloned().map(D::wrap).collect(),
            command_id: Uuid::now_v7(),
            actor,
        })
        .map_err(|e| AdminError::Store(StoreError::Encode(e.to_string())))?;
    Ok(Ok((events, appended.last_seq)))
}

/// Registers a user with a first key (e.g. the first admin, before the first start).
pub fn add_user(
    store: &Arc<SledStore>,
    handle: &str,
    public_key: &str,
    admin: bool,
    actor: Actor,
    now: Timestamp,
) -> Result<AdminUser, AdminError> {
    validate_handle(handle).map_err(|e| AdminError::Invalid(format!("handle: {e}")))?;
    let key = parse_public_key(public_key).map_err(|e| AdminError::Invalid(format!("key: {e}")))?;
    let models = catch_up(store)?;
    if models.user_by_handle(handle)?.is_some() {
        return Err(AdminError::Conflict(format!(
            "the handle {handle} is taken"
        )));
    }
    if models.user_by_fingerprint(&key.fingerprint)?.is_some() {
        return Err(AdminError::Conflict(format!(
            "the key {} belongs to another user",
            key.fingerprint
        )));
    }
    let user_id = UserId(Uuid::new_v4());
    let cmd = UserCommand::Register {
        user_id,
        handle: handle.to_string(),
        key_id: KeyId(Uuid::new_v4()),
        key,
        admin,
        now,
    };
    let (_, seq) = execute::<UserDecider>(store, &user_id.stream(), &cmd, actor)?
        .map_err(|e| AdminError::Invalid(e.to_string()))?;
    catch_up(store)?;
    Ok(AdminUser {
        id: user_id.to_string(),
        handle: handle.to_string(),
        admin,
        disabled: false,
        seq,
    })
}

/// Disables (revoking every live token) or enables a user.
pub fn set_disabled(
    store: &Arc<SledStore>,
    user: UserId,
    disabled: bool,
    actor: Actor,
    now: Timestamp,
) -> Result<AdminUser, AdminError> {
    let cmd = if disabled {
        UserCommand::Disable { now }
    } else {
        UserCommand::Enable { now }
    };
    let (_, seq) = execute::<UserDecider>(store, &user.stream(), &cmd, actor)?
        .map_err(|_| AdminError::NotFound(format!("no user {user}")))?;
    let models = catch_up(store)?;
    let row = models
        .user(user)?
        .ok_or_else(|| AdminError::NotFound(format!("no user {user}")))?;
    Ok(AdminUser {
        id: row.id.to_string(),
        handle: row.handle,
        admin: row.admin,
        disabled: row.disabled,
        seq,
    })
}

/// The owner of a token id, live or not.
pub fn token_owner(store: &SledStore, token: TokenId) -> Result<Option<UserId>, AdminError> {
    for rec in store.read_all(1)? {
        let rec = rec?;
        if let Event::User(UserEvent::TokenMinted { token_id, .. }) = &rec.event {
            if *token_id == token {
                let id = rec
                    .envelope
                    .stream
                    .as_str()
                    .strip_prefix("user/")
                    .and_then(|u| Uuid::parse_str(u).ok());
                return Ok(id.map(UserId));
            }
        }
    }
    Ok(None)
}

/// Revokes a token as an admin.
pub fn revoke_token(
    store: &Arc<SledStore>,
    token: TokenId,
    actor: Actor,
    now: Timestamp,
) -> Result<RevokedToken, AdminError> {
    let owner = token_owner(store, token)?
        .ok_or_else(|| AdminError::NotFound(format!("no token {token}")))?;
    let cmd = UserCommand::RevokeToken {
        token_id: token,
        reason: RevokeReason::Admin,
        now,
    };
    let (_, seq) = execute::<UserDecider>(store, &owner.stream(), &cmd, actor)?
        .map_err(|e| AdminError::NotFound(e.to_string()))?;
    catch_up(store)?;
    Ok(RevokedToken {
        token_id: token.to_string(),
        user_id: owner.to_string(),
        seq,
    })
}

//! Offline management on a stopped server's data dir: add a user, disable or enable one,
//! revoke a token, erase a user's messages. Each runs the actors' own write path (`entity::execute_blocking`: load,
//! decide with the domain decider, append with the expected version, evolve), so the
//! rules are the server's. Read models are brought up to date before (for lookups and
//! uniqueness checks) and after (so the next start agrees).

use latchkey_actors::entity::{execute_blocking, ExecError, Executed};
use latchkey_actors::readmodel::{projections, ReadModels};
use latchkey_domain::handle::validate_handle;
use latchkey_domain::sshkey::parse_public_key;
use latchkey_domain::{
    Actor, KeyId, RevokeReason, RoomCommand, RoomDecider, RoomError, Timestamp, TokenId,
    UserCommand, UserDecider, UserError, UserId,
};
use latchkey_proto::admin::{AdminUser, ErasedMessages, RevokedToken};
use latchkey_store::projection::Projector;
use latchkey_store::{EventStore, StoreError};
use std::sync::Arc;
use uuid::Uuid;

/// Why an admin write was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No such user or token.
    #[error("{0}")]
    NotFound(String),
    /// The request is invalid (bad handle, bad key) or the decider refused it.
    #[error("{0}")]
    Invalid(String),
    /// It conflicts with what exists (handle or key taken).
    #[error("{0}")]
    Conflict(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The write did not go through (a concurrent writer, a full queue); nothing changed.
    #[error("the write did not go through: {0}")]
    NotWritten(String),
}

impl From<ExecError<UserError>> for AdminError {
    fn from(e: ExecError<UserError>) -> Self {
        match e {
            ExecError::Domain(UserError::NotFound) => AdminError::NotFound("no such user".into()),
            ExecError::Domain(d) => AdminError::Invalid(format!("refused: {d}")),
            ExecError::Conflict => AdminError::Conflict("another writer changed the stream".into()),
            other => AdminError::NotWritten(other.to_string()),
        }
    }
}

/// Brings every read model to the log's head and opens them.
pub fn catch_up(store: &Arc<dyn EventStore>) -> Result<ReadModels, StoreError> {
    Projector::new(store.clone(), projections())?.catch_up()?;
    ReadModels::open(store.as_ref())
}

/// Runs a user command through the actors' write path.
fn execute(
    store: &Arc<dyn EventStore>,
    user: UserId,
    cmd: &UserCommand,
    actor: Actor,
) -> Result<Executed<UserDecider>, AdminError> {
    let out = execute_blocking::<UserDecider>(store.as_ref(), user.stream(), cmd, actor)?;
    catch_up(store)?;
    Ok(out)
}

/// Registers a user with a first key (e.g. the first admin, before the first start).
pub fn add_user(
    store: &Arc<dyn EventStore>,
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
    let out = execute(store, user_id, &cmd, actor)?;
    Ok(AdminUser {
        id: user_id.to_string(),
        handle: handle.to_string(),
        admin,
        disabled: false,
        seq: out.last_seq,
    })
}

/// Disables (revoking every live token) or enables a user given by id or handle.
pub fn set_disabled(
    store: &Arc<dyn EventStore>,
    who: &str,
    disabled: bool,
    actor: Actor,
    now: Timestamp,
) -> Result<AdminUser, AdminError> {
    let not_found = || AdminError::NotFound(format!("no user {who}"));
    let models = catch_up(store)?;
    let user = crate::read::resolve_user(&models, who)?.ok_or_else(not_found)?;
    let cmd = if disabled {
        UserCommand::Disable { now }
    } else {
        UserCommand::Enable { now }
    };
    let out = execute(store, user, &cmd, actor).map_err(|e| match e {
        AdminError::NotFound(_) => not_found(),
        other => other,
    })?;
    let row = models.user(user)?.ok_or_else(not_found)?;
    Ok(AdminUser {
        id: row.id.to_string(),
        handle: row.handle,
        admin: row.admin,
        disabled: row.disabled,
        seq: out.last_seq,
    })
}

/// Erases every message a user (by id or handle) sent, in every room they were ever a
/// member of, through the room decider; the bodies leave storage with each deletion.
pub fn erase_messages(
    store: &Arc<dyn EventStore>,
    who: &str,
    actor: Actor,
    now: Timestamp,
) -> Result<ErasedMessages, AdminError> {
    let models = catch_up(store)?;
    let user = crate::read::resolve_user(&models, who)?
        .ok_or_else(|| AdminError::NotFound(format!("no user {who}")))?;
    let (mut erased, mut seq) = (0u64, 0u64);
    for room in models.rooms().rooms_ever(user)? {
        let found = latchkey_actors::erasure::posts_by(store.as_ref(), room, user)
            .map_err(|e| AdminError::NotWritten(e.to_string()))?;
        let cmd = RoomCommand::EraseSender {
            user_id: user,
            posts: found.posts,
            by: None,
            now,
        };
        let out = execute_blocking::<RoomDecider>(store.as_ref(), room.stream(), &cmd, actor)
            .map_err(|e: ExecError<RoomError>| match e {
                ExecError::Domain(d) => AdminError::Invalid(format!("refused: {d}")),
                ExecError::Conflict => {
                    AdminError::Conflict("another writer changed the stream".into())
                }
                other => AdminError::NotWritten(other.to_string()),
            })?;
        erased += out.events.len() as u64;
        seq = seq.max(out.last_seq);
        // A legacy post holds its body in its envelope: it becomes a tombstone.
        latchkey_actors::erasure::drop_legacy_bodies(store.as_ref(), &found.legacy)
            .map_err(|e| AdminError::NotWritten(e.to_string()))?;
    }
    catch_up(store)?;
    Ok(ErasedMessages {
        user_id: user.to_string(),
        erased,
        seq,
    })
}

/// Revokes a token as an admin; its owner comes from the tokens read model.
pub fn revoke_token(
    store: &Arc<dyn EventStore>,
    token: TokenId,
    actor: Actor,
    now: Timestamp,
) -> Result<RevokedToken, AdminError> {
    let owner = catch_up(store)?
        .token_owner(token)?
        .ok_or_else(|| AdminError::NotFound(format!("no token {token}")))?;
    let cmd = UserCommand::RevokeToken {
        token_id: token,
        reason: RevokeReason::Admin,
        now,
    };
    let out = execute(store, owner, &cmd, actor).map_err(|e| match e {
        AdminError::NotFound(_) | AdminError::Invalid(_) => {
            AdminError::NotFound(format!("no token {token}"))
        }
        other => other,
    })?;
    Ok(RevokedToken {
        token_id: token.to_string(),
        user_id: owner.to_string(),
        seq: out.last_seq,
    })
}

//! Offline pairing codes on a stopped server's data dir (`latchkey admin pair ...`): mint,
//! list and revoke through the actors' own write path (`entity::execute_blocking`), the
//! same decider as the online routes, attributed to the admin tool. The documents are the
//! online ones.

use crate::json::{rfc3339, wire_scopes};
use crate::write::{catch_up, AdminError};
use latchkey_actors::clock::{Entropy, OsEntropy};
use latchkey_actors::entity::{execute_blocking, ExecError};
use latchkey_domain::paircode::{CodeCommand, CodeError, DEFAULT_CODE_TTL_SECS};
use latchkey_domain::token::{self, TokenPrefix};
use latchkey_domain::{
    Actor, PairingCommand, PairingDecider, PairingError, PairingEvent, PairingId, Scope, Timestamp,
    UserId,
};
use latchkey_proto::{
    qr_payload, CreatePairingCodeResponse, PairingCodeInfo, PairingCodeList, UserRef,
};
use latchkey_store::EventStore;
use std::sync::Arc;
use uuid::Uuid;

/// What to mint.
#[derive(Debug, Clone)]
pub struct OfflineMint<'a> {
    /// The user, by id or handle.
    pub user: &'a str,
    /// Scopes; empty: both chat scopes.
    pub scopes: Vec<Scope>,
    /// Seconds; `None`: 10 minutes.
    pub expires_in: Option<i64>,
    /// A note.
    pub note: Option<String>,
    /// The QR payload's `server=`: `--public-url`, else the server id.
    pub server: &'a str,
}

/// A refused or failed pairing-code command, in the admin tool's words.
fn refused(e: ExecError<PairingError>) -> AdminError {
    match e {
        ExecError::Domain(PairingError::Code(CodeError::NotPending)) => {
            AdminError::Conflict("the pairing code is no longer pending".into())
        }
        ExecError::Domain(PairingError::Code(CodeError::NotFound)) => {
            AdminError::NotFound("no such pairing code".into())
        }
        ExecError::Domain(d) => AdminError::Invalid(format!("refused: {d}")),
        ExecError::Conflict => AdminError::Conflict("another writer changed the stream".into()),
        other => AdminError::NotWritten(other.to_string()),
    }
}

/// Mints a code; the answer carries the code once.
pub fn mint(
    store: &Arc<dyn EventStore>,
    req: OfflineMint<'_>,
    now: Timestamp,
) -> Result<CreatePairingCodeResponse, AdminError> {
    let models = catch_up(store)?;
    let user_id = match Uuid::parse_str(req.user) {
        Ok(id) => models.user(UserId(id))?.map(|u| u.id),
        Err(_) => models.user_by_handle(req.user)?,
    }
    .ok_or_else(|| AdminError::NotFound(format!("no user {}", req.user)))?;
    let handle = models.user(user_id)?.map(|u| u.handle).unwrap_or_default();
    let id = PairingId(Uuid::new_v4());
    let code = token::generate(TokenPrefix::PairingCode, OsEntropy.random32());
    let cmd = PairingCommand::Code(CodeCommand::Mint {
        code_id: id,
        user_id,
        code_hash: code.hash(),
        scopes: req.scopes,
        note: req.note,
        by: None,
        ttl_secs: req.expires_in.unwrap_or(DEFAULT_CODE_TTL_SECS),
        now,
    });
    let out = execute_blocking::<PairingDecider>(store.as_ref(), id.stream(), &cmd, Actor::System)
        .map_err(refused)?;
    catch_up(store)?;
    let Some(PairingEvent::PairingCodeMinted {
        scopes,
        note,
        created_at,
        expires_at,
        ..
    }) = out.events.into_iter().next()
    else {
        return Err(AdminError::Invalid("nothing was minted".into()));
    };
    let raw = code.expose_secret().to_string();
    Ok(CreatePairingCodeResponse {
        qr: qr_payload(req.server, &raw),
        code: raw,
        id: id.to_string(),
        user: UserRef {
            id: user_id.to_string(),
            handle,
        },
        scopes: wire_scopes(&scopes),
        note,
        created_at: rfc3339(created_at),
        expires_at: rfc3339(expires_at),
        expires_in: (expires_at.0 - now.0).max(0) / 1000,
    })
}

/// Pending codes at `now`, oldest first, without secrets.
pub fn list(store: &Arc<dyn EventStore>, now: Timestamp) -> Result<PairingCodeList, AdminError> {
    let models = catch_up(store)?;
    let codes = models.pairing_codes().pending()?;
    Ok(PairingCodeList {
        codes: codes
            .iter()
            .filter(|c| now < c.expires_at)
            .map(|c| PairingCodeInfo {
                id: c.code_id.to_string(),
                user_id: c.user_id.to_string(),
                scopes: wire_scopes(&c.scopes),
                note: c.note.clone(),
                created_by: c.by.map(|u| u.to_string()),
                created_at: rfc3339(c.created_at),
                expires_at: rfc3339(c.expires_at),
            })
            .collect(),
    })
}

/// Revokes a pending code by id (again: nothing to do).
pub fn revoke(store: &Arc<dyn EventStore>, id: &str, now: Timestamp) -> Result<(), AdminError> {
    let not_found = || AdminError::NotFound(format!("no pairing code {id}"));
    let id = Uuid::parse_str(id)
        .map(PairingId)
        .map_err(|_| not_found())?;
    if store.stream_head(&id.stream())?.0 == 0 {
        return Err(not_found());
    }
    let cmd = PairingCommand::Code(CodeCommand::Revoke { by: None, now });
    execute_blocking::<PairingDecider>(store.as_ref(), id.stream(), &cmd, Actor::System)
        .map_err(refused)?;
    catch_up(store)?;
    Ok(())
}

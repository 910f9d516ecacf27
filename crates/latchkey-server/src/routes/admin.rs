//! `/api/admin/*`: the online form of `latchkey admin`, for admin sessions only (a PAT, a
//! device token or a non-admin gets 403), over `latchkey_admin`'s documents. Reads walk
//! the log off the request threads; users and tokens are looked up in the read models;
//! writes go through the actors like any other command, attributed to the admin.

use crate::auth::Admin;
use crate::error::ApiError;
use actix_web::{web, HttpResponse};
use latchkey_actors::{Core, CoreError};
use latchkey_admin::read;
use latchkey_domain::TokenId;
use latchkey_proto::admin::*;
#[allow(unused_imports)] // named by the OpenAPI annotations
use latchkey_proto::ErrorBody;
use latchkey_store::StoreError;
use std::sync::Arc;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/admin/events").route(web::get().to(events)))
        .service(web::resource("/api/admin/streams/{id}").route(web::get().to(stream)))
        .service(web::resource("/api/admin/stats").route(web::get().to(stats)))
        .service(web::resource("/api/admin/verify").route(web::get().to(verify)))
        .service(web::resource("/api/admin/backup").route(web::get().to(backup)))
        .service(web::resource("/api/admin/users").route(web::post().to(add_user)))
        .service(web::resource("/api/admin/users/{user}/state").route(web::get().to(state)))
        .service(web::resource("/api/admin/users/{user}/disable").route(web::post().to(disable)))
        .service(web::resource("/api/admin/users/{user}/enable").route(web::post().to(enable)))
        .service(web::resource("/api/admin/tokens/{id}/revoke").route(web::post().to(revoke)))
        .service(
            web::resource("/api/admin/users/{user}/erase-messages")
                .route(web::post().to(erase_messages)),
        );
}

/// Runs a blocking log walk off the async workers.
async fn blocking<T: Send + 'static>(
    core: &web::Data<Core>,
    f: impl FnOnce(&Arc<Core>) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let core = core.clone().into_inner();
    web::block(move || f(&core))
        .await
        .map_err(|_| ApiError::unavailable("busy", 1))?
        .map_err(|e| ApiError::from(CoreError::from(e)))
}

fn not_found(what: &'static str) -> ApiError {
    ApiError::from(CoreError::NotFound(what))
}

/// Log entries, oldest first, with filters.
#[utoipa::path(get, path = "/api/admin/events", tag = "admin", security(("admin" = [])),
    params(("from" = Option<u64>, Query, description = "first seq"), ("to" = Option<u64>, Query, description = "last seq"),
        ("stream" = Option<String>, Query, description = "stream name or uuid"), ("type" = Option<String>, Query, description = "event type"),
        ("limit" = Option<usize>, Query, description = "1..=1000")),
    responses((status = 200, body = LogPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn events(
    _: Admin,
    core: web::Data<Core>,
    q: web::Query<LogQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let page = blocking(&core, move |c| read::log_page(c.store().as_ref(), &q)).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Every event of one stream.
#[utoipa::path(get, path = "/api/admin/streams/{id}", tag = "admin", security(("admin" = [])),
    params(("id" = String, Path, description = "stream name or uuid")),
    responses((status = 200, body = LogPage), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn stream(
    _: Admin,
    core: web::Data<Core>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let events = blocking(&core, move |c| read::stream(c.store().as_ref(), &id)).await?;
    Ok(HttpResponse::Ok().json(LogPage {
        events,
        next_from: None,
    }))
}

/// Events by type, streams, size on disk, tokens by status.
#[utoipa::path(get, path = "/api/admin/stats", tag = "admin", security(("admin" = [])),
    responses((status = 200, body = StatsDoc), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn stats(_: Admin, core: web::Data<Core>) -> Result<HttpResponse, ApiError> {
    let doc = blocking(&core, |c| read::stats(c.store().as_ref(), c.now(), |_| {})).await?;
    Ok(HttpResponse::Ok().json(doc))
}

/// Hash chain, contiguous seqs, stream versions, payloads, checkpoints.
#[utoipa::path(get, path = "/api/admin/verify", tag = "admin", security(("admin" = [])),
    responses((status = 200, body = VerifyDoc), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn verify(_: Admin, core: web::Data<Core>) -> Result<HttpResponse, ApiError> {
    let doc = blocking(&core, |c| read::verify(c.store().as_ref(), |_| {})).await?;
    Ok(HttpResponse::Ok().json(doc))
}

/// The bytes a backup is cut into on the way out.
const BACKUP_CHUNK: usize = 64 * 1024;

/// Chunks of a backup in flight (a bounded queue: a slow reader slows the walk, nothing
/// piles up in memory).
const BACKUP_QUEUE: usize = 8;

/// A `Write` that hands full chunks to the response stream; it fails once the client has
/// gone, which ends the walk.
struct ChunkSender {
    buf: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<Result<web::Bytes, std::io::Error>>,
}

impl ChunkSender {
    fn send(&mut self) -> std::io::Result<()> {
        let chunk = web::Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))
    }
}

impl std::io::Write for ChunkSender {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= BACKUP_CHUNK {
            self.send()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.send()
    }
}

/// The log as of its durable head now, streamed as JSON Lines while writes go on: a
/// `{"backup": {...}}` header naming the seq, then one export line per seq up to it.
#[utoipa::path(get, path = "/api/admin/backup", tag = "admin", security(("admin" = [])),
    responses((status = 200, content_type = "application/x-ndjson", body = BackupLine,
            description = "JSON Lines: this header line, then one `admin export` line per seq from 1 to `backup.seq`",
            headers(("X-Latchkey-Backup-Seq" = u64, description = "the seq the backup is as of"))),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn backup(_: Admin, core: web::Data<Core>) -> Result<HttpResponse, ApiError> {
    let header = blocking(&core, |c| {
        latchkey_admin::backup::header(c.store().as_ref(), c.now())
    })
    .await?;
    let core = core.into_inner();
    let (tx, mut rx) = tokio::sync::mpsc::channel(BACKUP_QUEUE);
    let seq = header.seq;
    let walk = move || {
        let mut out = ChunkSender {
            buf: Vec::with_capacity(BACKUP_CHUNK * 2),
            tx: tx.clone(),
        };
        let result =
            latchkey_admin::backup::write(core.store().as_ref(), &header, &mut out, &mut |_| {});
        if let Err(e) = result {
            // The status line is gone: an error can only cut the body short, which the
            // client sees as fewer lines than the header's seq.
            tracing::warn!(error = %e, "backup stopped");
            let _ = tx.blocking_send(Err(std::io::Error::other("backup stopped")));
        }
    };
    std::thread::Builder::new()
        .name("backup".into())
        .spawn(walk)
        .map_err(|_| ApiError::unavailable("busy", 1))?;
    let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .insert_header(("X-Latchkey-Backup-Seq", seq.to_string()))
        .streaming(body))
}

/// A user's keys, tokens and rooms as of a time.
#[utoipa::path(get, path = "/api/admin/users/{user}/state", tag = "admin", security(("admin" = [])),
    params(("user" = String, Path, description = "user id or handle"), ("at" = Option<String>, Query, description = "RFC 3339")),
    responses((status = 200, body = StateDoc), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn state(
    _: Admin,
    core: web::Data<Core>,
    user: web::Path<String>,
    q: web::Query<StateQuery>,
) -> Result<HttpResponse, ApiError> {
    let at = match q.at.as_deref() {
        Some(s) => {
            Some(read::parse_time(s).ok_or_else(|| ApiError::invalid("at must be RFC 3339"))?)
        }
        None => None,
    };
    let user = fresh_user(&core, &user).await?.to_string();
    let doc = blocking(&core, move |c| {
        read::state_user(c.store().as_ref(), c.models(), &user, at, c.now())
    })
    .await?
    .ok_or_else(|| not_found("no such user"))?;
    Ok(HttpResponse::Ok().json(doc))
}

/// Create a user with a first key.
#[utoipa::path(post, path = "/api/admin/users", tag = "admin", security(("admin" = [])), request_body = AddUserRequest,
    responses((status = 201, body = AdminUser), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn add_user(
    Admin(auth): Admin,
    core: web::Data<Core>,
    body: web::Json<AddUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let (id, seq) = core
        .admin_add_user(&auth, &body.handle, &body.public_key, body.admin)
        .await?;
    Ok(HttpResponse::Created().json(AdminUser {
        id: id.to_string(),
        handle: body.handle.clone(),
        admin: body.admin,
        disabled: false,
        seq,
    }))
}

/// The user named by id or handle; on a shared log, one another node made a moment ago
/// is found after catching up (DESIGN §11), and only then is the answer 404.
async fn fresh_user(core: &Core, who: &str) -> Result<latchkey_domain::UserId, ApiError> {
    core.lookup_fresh(|| read::resolve_user(core.models(), who).map_err(CoreError::from))
        .await?
        .ok_or_else(|| not_found("no such user"))
}

async fn set_disabled(
    core: &web::Data<Core>,
    by: latchkey_domain::UserId,
    who: String,
    disabled: bool,
) -> Result<HttpResponse, ApiError> {
    let user = fresh_user(core, &who).await?;
    let seq = core.set_disabled(by, user, disabled).await?;
    let row = core
        .models()
        .user(user)
        .map_err(CoreError::from)?
        .ok_or_else(|| not_found("no such user"))?;
    Ok(HttpResponse::Ok().json(AdminUser {
        id: row.id.to_string(),
        handle: row.handle,
        admin: row.admin,
        disabled: row.disabled,
        seq,
    }))
}

/// Disable a user: every live token is revoked and their connections close.
#[utoipa::path(post, path = "/api/admin/users/{user}/disable", tag = "admin", security(("admin" = [])),
    params(("user" = String, Path, description = "user id or handle")),
    responses((status = 200, body = AdminUser), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn disable(
    Admin(auth): Admin,
    core: web::Data<Core>,
    user: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_disabled(&core, auth.user_id, user.into_inner(), true).await
}

/// Enable a user again (revoked tokens stay revoked).
#[utoipa::path(post, path = "/api/admin/users/{user}/enable", tag = "admin", security(("admin" = [])),
    params(("user" = String, Path, description = "user id or handle")),
    responses((status = 200, body = AdminUser), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn enable(
    Admin(auth): Admin,
    core: web::Data<Core>,
    user: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_disabled(&core, auth.user_id, user.into_inner(), false).await
}

/// Erase every message a user sent, in every room: members get `message.deleted`, and the
/// bodies are gone from storage.
#[utoipa::path(post, path = "/api/admin/users/{user}/erase-messages", tag = "admin", security(("admin" = [])),
    params(("user" = String, Path, description = "user id or handle")),
    responses((status = 200, body = ErasedMessages), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn erase_messages(
    Admin(auth): Admin,
    core: web::Data<Core>,
    user: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = fresh_user(&core, &user).await?;
    let (erased, seq) = core.erase_messages(auth.user_id, user).await?;
    Ok(HttpResponse::Ok().json(ErasedMessages {
        user_id: user.to_string(),
        erased,
        seq,
    }))
}

/// Revoke any user's token.
#[utoipa::path(post, path = "/api/admin/tokens/{id}/revoke", tag = "admin", security(("admin" = [])),
    params(("id" = String, Path, description = "token id")),
    responses((status = 200, body = RevokedToken), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn revoke(
    Admin(auth): Admin,
    core: web::Data<Core>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let token = TokenId(crate::routes::path_uuid(&id, "no such token")?);
    let owner = core
        .lookup_fresh(|| core.models().token_owner(token).map_err(CoreError::from))
        .await?
        .ok_or_else(|| not_found("no such token"))?;
    let seq = core.admin_revoke_token(&auth, owner, token).await?;
    Ok(HttpResponse::Ok().json(RevokedToken {
        token_id: token.to_string(),
        user_id: owner.to_string(),
        seq,
    }))
}

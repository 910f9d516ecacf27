//! `/api/native/rooms/*`: rooms, membership, posting, deleting and history. `chat:write` to change
//! anything, `chat:read` to look. A room the caller may not see answers like a missing one.

use crate::auth::{ChatPost, ChatRead, ChatWrite};
use crate::convert::{domain_visibility, rfc3339, wire_visibility};
use crate::error::ApiError;
use crate::frames::message;
use crate::routes::path_uuid;
use actix_web::{web, HttpResponse};
use latchkey_actors::roommodel::{RoomRow, RowBody};
use latchkey_actors::rooms::{DEFAULT_PAGE, MAX_PAGE};
use latchkey_actors::Core;
use latchkey_domain::{MessageId, RoomId, UserId};
use latchkey_proto as proto;
#[allow(unused_imports)] // named by the OpenAPI annotations
use latchkey_proto::*;
use uuid::Uuid;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/native/rooms")
            .route(web::get().to(list_rooms))
            .route(web::post().to(create_room)),
    )
    .service(web::resource("/api/native/rooms/{id}").route(web::get().to(get_room)))
    .service(web::resource("/api/native/rooms/{id}/join").route(web::post().to(join)))
    .service(web::resource("/api/native/rooms/{id}/leave").route(web::post().to(leave)))
    .service(web::resource("/api/native/rooms/{id}/members").route(web::post().to(add_member)))
    .service(
        web::resource("/api/native/rooms/{id}/members/{user_id}")
            .route(web::delete().to(remove_member)),
    )
    .service(
        web::resource("/api/native/rooms/{id}/messages")
            .route(web::get().to(history))
            .route(web::post().to(post_message)),
    )
    .service(
        web::resource("/api/native/rooms/{id}/messages/{message_id}")
            .route(web::delete().to(delete_message)),
    );
}

fn room_info(r: RoomRow) -> proto::RoomInfo {
    proto::RoomInfo {
        id: r.id.to_string(),
        name: r.name,
        visibility: wire_visibility(r.visibility),
        owner: r.owner.to_string(),
        created_at: rfc3339(r.created_at),
    }
}

fn room_id(s: &str) -> Result<RoomId, ApiError> {
    path_uuid(s, "no such room").map(RoomId)
}

fn user_ids(ids: &[String]) -> Result<Vec<UserId>, ApiError> {
    ids.iter()
        .map(|s| {
            Uuid::parse_str(s)
                .map(UserId)
                .map_err(|_| ApiError::invalid("target_user_ids must be user ids"))
        })
        .collect()
}

/// Create a room; the caller owns it and is its first member.
#[utoipa::path(post, path = "/api/native/rooms", tag = "rooms", security(("session" = []), ("pat" = []), ("device" = [])),
    request_body = CreateRoomRequest,
    responses((status = 201, body = RoomInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn create_room(
    ChatWrite(auth): ChatWrite,
    core: web::Data<Core>,
    body: web::Json<proto::CreateRoomRequest>,
) -> Result<HttpResponse, ApiError> {
    let vis = domain_visibility(body.visibility);
    let room = core.create_room(&auth, &body.name, vis).await?;
    Ok(HttpResponse::Created().json(room_info(room)))
}

/// The caller's rooms, or with `?discover=public` the public rooms.
#[utoipa::path(get, path = "/api/native/rooms", tag = "rooms", security(("session" = []), ("pat" = []), ("device" = [])),
    params(("discover" = Option<String>, Query, description = "`public` to list public rooms")),
    responses((status = 200, body = RoomList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn list_rooms(
    ChatRead(auth): ChatRead,
    core: web::Data<Core>,
    query: web::Query<proto::RoomsQuery>,
) -> Result<HttpResponse, ApiError> {
    let rooms = match query.discover {
        None => core.my_rooms(&auth)?,
        Some(proto::Discover::Public) => core.public_rooms()?,
    };
    Ok(HttpResponse::Ok().json(proto::RoomList {
        rooms: rooms.into_iter().map(room_info).collect(),
    }))
}

/// A room the caller may see.
#[utoipa::path(get, path = "/api/native/rooms/{id}", tag = "rooms", security(("session" = []), ("pat" = []), ("device" = [])),
    params(("id" = String, Path, description = "room id")),
    responses((status = 200, body = RoomInfo), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn get_room(
    ChatRead(auth): ChatRead,
    core: web::Data<Core>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = room_id(&id)?;
    let room = core.fresh(|| async { core.get_room(&auth, id) }).await?;
    Ok(HttpResponse::Ok().json(room_info(room)))
}

/// Join a public room (a private one answers 404 unless you are a member).
#[utoipa::path(post, path = "/api/native/rooms/{id}/join", tag = "rooms", security(("session" = []), ("pat" = []), ("device" = [])),
    params(("id" = String, Path, description = "room id")),
    responses((status = 200, body = RoomInfo), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn join(
    ChatWrite(auth): ChatWrite,
    core: web::Data<Core>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let room = room_id(&id)?;
    core.fresh(|| core.join_room(&auth, room)).await?;
    Ok(HttpResponse::Ok().json(room_info(core.get_room(&auth, room)?)))
}

/// Leave a room (the owner cannot).
#[utoipa::path(post, path = "/api/native/rooms/{id}/leave", tag = "rooms", security(("session" = []), ("pat" = []), ("device" = [])),
    params(("id" = String, Path, description = "room id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn leave(
    ChatWrite(auth): ChatWrite,
    core: web::Data<Core>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let room = room_id(&id)?;
    core.fresh(|| core.leave_room(&auth, room)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The owner adds a user.
#[utoipa::path(post, path = "/api/native/rooms/{id}/members", tag = "rooms", security(("session" = []), ("pat" = []), ("device" = [])),
    params(("id" = String, Path, description = "room id")), request_body = AddMemberRequest,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn add_member(
    ChatWrite(auth): ChatWrite,
    core: web::Data<Core>,
    id: web::Path<String>,
    body: web::Json<proto::AddMemberRequest>,
) -> Result<HttpResponse, ApiError> {
    let room = room_id(&id)?;
    let user = Uuid::parse_str(&body.user_id)
        .map(UserId)
        .map_err(|_| ApiError::invalid("user_id must be a user id"))?;
    core.fresh(|| core.add_member(&auth, room, user)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The owner removes a member.
#[utoipa::path(delete, path = "/api/native/rooms/{id}/members/{user_id}", tag = "rooms", security(("session" = []), ("pat" = []), ("device" = [])),
    params(("id" = String, Path, description = "room id"), ("user_id" = String, Path, description = "user id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn remove_member(
    ChatWrite(auth): ChatWrite,
    core: web::Data<Core>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (room, user) = path.into_inner();
    let user = path_uuid(&user, "no such member").map(UserId)?;
    let room = room_id(&room)?;
    core.fresh(|| core.remove_member(&auth, room, user)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Post a message (members only; targets must be members).
#[utoipa::path(post, path = "/api/native/rooms/{id}/messages", tag = "rooms", security(("session" = []), ("pat" = []), ("device" = [])),
    params(("id" = String, Path, description = "room id")), request_body = PostMessageRequest,
    responses((status = 201, body = PostMessageResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn post_message(
    ChatPost(auth): ChatPost,
    core: web::Data<Core>,
    id: web::Path<String>,
    body: web::Json<proto::PostMessageRequest>,
) -> Result<HttpResponse, ApiError> {
    let room = room_id(&id)?;
    let body = body.into_inner();
    let targets = user_ids(body.target_user_ids.as_deref().unwrap_or_default())?;
    let reply_to = body
        .reply_to
        .map(|r| Uuid::parse_str(&r).map(MessageId))
        .transpose()
        .map_err(|_| ApiError::invalid("reply_to must be a message id"))?;
    let (message_id, seq) = core
        .fresh(|| core.post_message(&auth, room, body.body.clone(), targets.clone(), reply_to))
        .await?;
    Ok(HttpResponse::Created().json(proto::PostMessageResponse {
        message_id: message_id.to_string(),
        seq,
    }))
}

/// Delete one's own message: its body is erased from storage, members get
/// `message.deleted`, and history shows it with `body: null`. Deleting it again is 204.
#[utoipa::path(delete, path = "/api/native/rooms/{id}/messages/{message_id}", tag = "rooms", security(("session" = []), ("pat" = []), ("device" = [])),
    params(("id" = String, Path, description = "room id"), ("message_id" = String, Path, description = "message id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn delete_message(
    ChatPost(auth): ChatPost,
    core: web::Data<Core>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (room, message) = path.into_inner();
    let room = room_id(&room)?;
    let message = path_uuid(&message, "no such message").map(MessageId)?;
    core.fresh(|| core.delete_message(&auth, room, message))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// History, newest first, only what the caller may see: a member, current or former, reads
/// the events of their own membership periods (as WebSocket resume does); a never-member
/// gets 404 for a private room, 403 `not_a_member` for a public one.
#[utoipa::path(get, path = "/api/native/rooms/{id}/messages", tag = "rooms", security(("session" = []), ("pat" = []), ("device" = [])),
    params(("id" = String, Path, description = "room id"),
        ("before" = Option<u64>, Query, description = "only seqs below"),
        ("after" = Option<u64>, Query, description = "only seqs above"),
        ("limit" = Option<u32>, Query, description = "1..=200, default 50")),
    responses((status = 200, body = History), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn history(
    ChatRead(auth): ChatRead,
    core: web::Data<Core>,
    id: web::Path<String>,
    query: web::Query<proto::HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = match query.limit.map(|n| n as usize) {
        None => DEFAULT_PAGE,
        Some(n) if (1..=MAX_PAGE).contains(&n) => n,
        Some(_) => return Err(ApiError::invalid(format!("limit must be 1 to {MAX_PAGE}"))),
    };
    let room = room_id(&id)?;
    let page = core
        .fresh(|| async { core.history(&auth, room, query.before, query.after, limit) })
        .await?;
    let messages = page
        .messages
        .into_iter()
        .map(|m| {
            message(
                m.message_id.to_string(),
                Some(m.seq),
                m.sender.to_string(),
                match m.body {
                    RowBody::Inline(text) => Some(text),
                    RowBody::Detached | RowBody::Deleted | RowBody::InLog => None,
                },
                m.target_user_ids.iter().map(|u| u.to_string()).collect(),
                m.reply_to.map(|r| r.to_string()),
                m.sent_at,
            )
        })
        .collect();
    Ok(HttpResponse::Ok().json(proto::History {
        messages,
        next_before: page.next_before,
    }))
}

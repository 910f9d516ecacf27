//! Token and key management (session tokens only) and WebSocket tickets (any token).

use crate::auth::{Authed, Session};
use crate::convert::{domain_scope, rfc3339, wire_kind, wire_scopes};
use crate::error::ApiError;
use crate::limits::IpLimit;
use crate::routes::native::{challenge_response, client_ip, limit};
use actix_web::{web, HttpRequest, HttpResponse};
use latchkey_actors::readmodel::{KeyRow, TokenRow};
use latchkey_actors::Core;
use latchkey_domain::token::TokenPrefix;
use latchkey_domain::{KeyId, TokenId, TokenKind};
use latchkey_proto as proto;
#[allow(unused_imports)] // named by the OpenAPI annotations
use latchkey_proto::*;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/native/tokens")
            .route(web::get().to(list_tokens))
            .route(web::post().to(create_token)),
    )
    .service(web::resource("/api/native/tokens/revoke-all").route(web::post().to(revoke_all)))
    .service(web::resource("/api/native/tokens/{id}").route(web::delete().to(revoke_token)))
    .service(
        web::resource("/api/native/keys")
            .route(web::get().to(list_keys))
            .route(web::post().to(add_key)),
    )
    .service(web::resource("/api/native/keys/challenge").route(web::post().to(key_challenge)))
    .service(web::resource("/api/native/keys/{key_id}").route(web::delete().to(remove_key)))
    .service(web::resource("/api/native/ws-ticket").route(web::post().to(ws_ticket)));
}

fn prefix(k: TokenKind) -> &'static str {
    match k {
        TokenKind::Session => TokenPrefix::Session.as_str(),
        TokenKind::Device => TokenPrefix::Device.as_str(),
        TokenKind::Personal => TokenPrefix::Personal.as_str(),
    }
}

fn token_info(row: TokenRow, current: TokenId) -> proto::TokenInfo {
    proto::TokenInfo {
        id: row.token_id.to_string(),
        kind: wire_kind(row.kind),
        name: row.name.clone(),
        prefix: prefix(row.kind).into(),
        scopes: wire_scopes(&row.scopes),
        created_at: rfc3339(row.created_at),
        last_used_at: row.last_used_at.map(rfc3339),
        expires_at: row.expires_at.map(rfc3339),
        device_name: row.device_name.clone(),
        user_agent: row.user_agent.clone(),
        current: row.token_id == current,
    }
}

fn key_info(k: KeyRow) -> proto::KeyInfo {
    proto::KeyInfo {
        key_id: k.key_id.0.to_string(),
        key_type: k.algorithm.as_str().into(),
        fingerprint: k.fingerprint,
        comment: k.comment,
        added_at: rfc3339(k.added_at),
    }
}

/// The caller's live tokens (never a secret).
#[utoipa::path(get, path = "/api/native/tokens", tag = "credentials", security(("session" = [])),
    responses((status = 200, body = TokenList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn list_tokens(
    Session(auth): Session,
    core: web::Data<Core>,
) -> Result<HttpResponse, ApiError> {
    let tokens = core
        .list_tokens(&auth)?
        .into_iter()
        .map(|r| token_info(r, auth.token_id))
        .collect();
    Ok(HttpResponse::Ok().json(proto::TokenList { tokens }))
}

/// Create a personal access token; the secret is shown once.
#[utoipa::path(post, path = "/api/native/tokens", tag = "credentials", security(("session" = [])), request_body = CreateTokenRequest,
    responses((status = 201, body = CreateTokenResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn create_token(
    Session(auth): Session,
    core: web::Data<Core>,
    body: web::Json<proto::CreateTokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let scopes = body
        .scopes
        .map(|s| s.into_iter().map(domain_scope).collect());
    let created = core
        .create_pat(&auth, &body.name, scopes, body.expires_in)
        .await?;
    Ok(HttpResponse::Created().json(proto::CreateTokenResponse {
        token: created.token.expose_secret().to_string(),
        token_id: created.token_id.to_string(),
        kind: wire_kind(TokenKind::Personal),
        name: created.name,
        scopes: wire_scopes(&created.scopes),
        expires_at: created.expires_at.map(rfc3339),
    }))
}

/// Revoke one of the caller's tokens. Another user's token id is 404.
#[utoipa::path(delete, path = "/api/native/tokens/{id}", tag = "credentials", security(("session" = [])),
    params(("id" = String, Path, description = "token id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_token(
    Session(auth): Session,
    core: web::Data<Core>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = TokenId(crate::routes::path_uuid(&id, "no such token")?);
    core.revoke_token(&auth, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Revoke every live token of the caller, optionally keeping the current one.
#[utoipa::path(post, path = "/api/native/tokens/revoke-all", tag = "credentials", security(("session" = [])), request_body = RevokeAllRequest,
    responses((status = 200, body = RevokeAllResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn revoke_all(
    Session(auth): Session,
    core: web::Data<Core>,
    body: web::Json<proto::RevokeAllRequest>,
) -> Result<HttpResponse, ApiError> {
    // The body is required (`{}` at least): a body that fails to parse must never fall
    // back to revoking the current token too.
    let revoked = core.revoke_all(&auth, body.keep_current).await?;
    Ok(HttpResponse::Ok().json(proto::RevokeAllResponse { revoked }))
}

/// The caller's SSH keys.
#[utoipa::path(get, path = "/api/native/keys", tag = "credentials", security(("session" = [])),
    responses((status = 200, body = KeyList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn list_keys(
    Session(auth): Session,
    core: web::Data<Core>,
) -> Result<HttpResponse, ApiError> {
    let keys = core.list_keys(&auth)?.into_iter().map(key_info).collect();
    Ok(HttpResponse::Ok().json(proto::KeyList { keys }))
}

/// Issue a challenge that the new key must sign to be added.
#[utoipa::path(post, path = "/api/native/keys/challenge", tag = "credentials", security(("session" = [])), request_body = ChallengeRequest,
    responses((status = 201, body = ChallengeResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn key_challenge(
    Session(auth): Session,
    core: web::Data<Core>,
    req: HttpRequest,
    body: web::Json<proto::ChallengeRequest>,
) -> Result<HttpResponse, ApiError> {
    // Per user (the extractor's write limit) and per address, like the sign-in challenge.
    limit(&req, IpLimit::Challenge)?;
    let issued = core
        .issue_key_challenge(&auth, &body.public_key, client_ip(&req))
        .await?;
    Ok(HttpResponse::Created().json(challenge_response(&issued, core.now())))
}

/// Add a key with a challenge signed by it.
#[utoipa::path(post, path = "/api/native/keys", tag = "credentials", security(("session" = [])), request_body = AddKeyRequest,
    responses((status = 201, body = KeyInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn add_key(
    Session(auth): Session,
    core: web::Data<Core>,
    body: web::Json<proto::AddKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    let key = core
        .add_key(&auth, &body.challenge_id, &body.signature)
        .await?;
    Ok(HttpResponse::Created().json(key_info(key)))
}

/// Remove a key; the sessions it minted are revoked.
#[utoipa::path(delete, path = "/api/native/keys/{key_id}", tag = "credentials", security(("session" = [])),
    params(("key_id" = String, Path, description = "key id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn remove_key(
    Session(auth): Session,
    core: web::Data<Core>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = KeyId(crate::routes::path_uuid(&id, "no such key")?);
    core.remove_key(&auth, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A single-use 30 s ticket for `GET /api/native/ws?ticket=`.
#[utoipa::path(post, path = "/api/native/ws-ticket", tag = "websocket", security(("session" = []), ("pat" = []), ("device" = [])),
    responses((status = 201, body = WsTicketResponse), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn ws_ticket(
    Authed(auth): Authed,
    core: web::Data<Core>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    limit(&req, IpLimit::WsTicket)?;
    let (ticket, expires_in) = core.mint_ws_ticket(&auth).await?;
    Ok(HttpResponse::Created().json(proto::WsTicketResponse {
        ticket: ticket.expose_secret().to_string(),
        expires_in: expires_in as u64,
    }))
}

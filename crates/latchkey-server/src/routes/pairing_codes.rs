//! Admin pairing codes (DESIGN §12): `/api/admin/pairing-codes` for admin sessions only (a
//! PAT, a device token or a non-admin gets 403) to mint, list and revoke, and
//! `POST /api/native/pair`, where a device redeems a code once for a device token. A GET
//! never mints. Redemption shares the per-IP budget of `POST /api/native/token`.

use crate::auth::Admin;
use crate::convert::{domain_scope, rfc3339, wire_kind, wire_scopes};
use crate::error::ApiError;
use crate::limits::IpLimit;
use crate::routes::native::{client_ip, limit};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use latchkey_actors::codemodel::PendingCode;
use latchkey_actors::pairing_codes::{MintRequest, PairRequest as CoreRequest};
use latchkey_actors::Core;
use latchkey_domain::TokenKind;
use latchkey_proto as proto;
#[allow(unused_imports)] // named by the OpenAPI annotations
use latchkey_proto::*;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/admin/pairing-codes")
            .route(web::post().to(create))
            .route(web::get().to(list)),
    )
    .service(web::resource("/api/admin/pairing-codes/{id}").route(web::delete().to(revoke)))
    .service(web::resource("/api/native/pair").route(web::post().to(pair)));
}

/// The `server=` value of the QR payload: the public URL when configured, else this
/// request's origin (a URL the device can reach).
pub fn qr_server(core: &Core, req: &HttpRequest) -> String {
    let server = &core.config().server;
    if server.starts_with("https://") || server.starts_with("http://") {
        return server.trim_end_matches('/').to_string();
    }
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

fn no_store(mut b: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    b.insert_header((header::CACHE_CONTROL, "no-store"));
    b
}

/// Mint a one-time pairing code for a user; the code and its QR payload are shown once.
#[utoipa::path(post, path = "/api/admin/pairing-codes", tag = "admin", security(("admin" = [])),
    request_body = CreatePairingCodeRequest,
    responses((status = 201, body = CreatePairingCodeResponse, headers(("Cache-Control" = String, description = "no-store"))),
        (status = 400, body = ErrorBody, description = "invalid_request: expires_in out of 1..=86400, a bad scope or note"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "not an admin session"),
        (status = 404, body = ErrorBody, description = "no such user"), (status = 413, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
async fn create(
    Admin(auth): Admin,
    core: web::Data<Core>,
    req: HttpRequest,
    body: web::Json<proto::CreatePairingCodeRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let mint = MintRequest {
        user: body.user,
        scopes: body
            .scopes
            .unwrap_or_default()
            .into_iter()
            .map(domain_scope)
            .collect(),
        expires_in: body.expires_in,
        note: body.note,
    };
    let new = core.mint_pairing_code(auth.user_id, mint).await?;
    let code = new.code.expose_secret().to_string();
    let m = new.minted;
    Ok(
        no_store(HttpResponse::Created()).json(proto::CreatePairingCodeResponse {
            qr: proto::qr_payload(&qr_server(&core, &req), &code),
            code,
            id: m.code_id.to_string(),
            user: proto::UserRef {
                id: m.user_id.to_string(),
                handle: new.handle,
            },
            scopes: wire_scopes(&m.scopes),
            note: m.note,
            created_at: rfc3339(m.created_at),
            expires_at: rfc3339(m.expires_at),
            expires_in: (m.expires_at.0 - core.now().0).max(0) / 1000,
        }),
    )
}

/// The wire form of a pending code (no secret).
pub fn code_info(c: &PendingCode) -> proto::PairingCodeInfo {
    proto::PairingCodeInfo {
        id: c.code_id.to_string(),
        user_id: c.user_id.to_string(),
        scopes: wire_scopes(&c.scopes),
        note: c.note.clone(),
        created_by: c.by.map(|u| u.to_string()),
        created_at: rfc3339(c.created_at),
        expires_at: rfc3339(c.expires_at),
    }
}

/// Pending pairing codes, oldest first, without secrets. Never mints.
#[utoipa::path(get, path = "/api/admin/pairing-codes", tag = "admin", security(("admin" = [])),
    responses((status = 200, body = PairingCodeList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn list(Admin(_): Admin, core: web::Data<Core>) -> Result<HttpResponse, ApiError> {
    let codes = core.pending_pairing_codes()?;
    Ok(HttpResponse::Ok().json(proto::PairingCodeList {
        codes: codes.iter().map(code_info).collect(),
    }))
}

/// Revoke a pending pairing code (204; again: 204).
#[utoipa::path(delete, path = "/api/admin/pairing-codes/{id}", tag = "admin", security(("admin" = [])),
    params(("id" = String, Path, description = "The code's id")),
    responses((status = 204, description = "revoked"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "already redeemed or expired"), (status = 429, body = ErrorBody)))]
async fn revoke(
    Admin(auth): Admin,
    core: web::Data<Core>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    core.revoke_pairing_code(auth.user_id, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Redeem a pairing code once for a device token. To enroll a key, first get a challenge
/// for it at `POST /api/native/challenge`, sign its message, and send all three.
#[utoipa::path(post, path = "/api/native/pair", tag = "auth",
    request_body = PairRequest,
    responses((status = 201, body = PairResponse, headers(("Cache-Control" = String, description = "no-store"))),
        (status = 400, body = ErrorBody, description = "invalid_request, unsupported_key_type"),
        (status = 401, body = ErrorBody, description = "pairing_code_invalid (one body for unknown, used, revoked and expired codes), challenge_invalid, signature_invalid"),
        (status = 409, body = ErrorBody, description = "the key belongs to another user"),
        (status = 413, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn pair(
    core: web::Data<Core>,
    req: HttpRequest,
    body: web::Json<proto::PairRequest>,
) -> Result<HttpResponse, ApiError> {
    limit(&req, IpLimit::Token)?;
    let body = body.into_inner();
    let paired = core
        .redeem_pairing_code(CoreRequest {
            code: body.code,
            device_name: body.device_name,
            public_key: body.public_key,
            challenge_id: body.challenge_id,
            signature: body.signature,
            ip: client_ip(&req),
            user_agent: req
                .headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().filter(|c| !c.is_control()).take(256).collect()),
        })
        .await?;
    Ok(no_store(HttpResponse::Created()).json(proto::PairResponse {
        token: paired.token.expose_secret().to_string(),
        token_id: paired.token_id.to_string(),
        kind: wire_kind(TokenKind::Device),
        scopes: wire_scopes(&paired.scopes),
        expires_at: paired.expires_at.map(rfc3339),
        user: proto::UserRef {
            id: paired.user_id.to_string(),
            handle: paired.handle,
        },
        key_id: paired.key_id.map(|k| k.to_string()),
    }))
}

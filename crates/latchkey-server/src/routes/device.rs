//! The RFC 8628 device flow (DESIGN §12). `/api/auth/device/*` is the device's side:
//! form-encoded or JSON bodies, OAuth 2.0 error shapes, `Cache-Control: no-store` on every
//! answer. `/api/native/device/*` is the approver's side: a session token only, latchkey's
//! JSON error shape, user-code lookups limited per IP and per user.

use crate::auth::Session;
use crate::client_ip::TrustedProxies;
use crate::convert::{domain_scope, rfc3339, wire_scopes};
use crate::error::{ApiError, OAuthFailure, MAX_BODY};
use crate::limits::{IpLimit, Limits, StrLimit};
use crate::observe::percent_decode;
use crate::routes::native::{client_ip, limit};
use actix_web::http::header::{self, ContentType};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use latchkey_actors::device::{DeviceCodeRequest as CoreRequest, DeviceView, Grant};
use latchkey_actors::Core;
use latchkey_admin::json::scope;
use latchkey_domain::device::DEFAULT_DEVICE_TOKEN_SECS;
use latchkey_domain::Scope;
use latchkey_proto as proto;
#[allow(unused_imports)] // named by the OpenAPI annotations
use latchkey_proto::*;
use serde::de::DeserializeOwned;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/auth/device/code")
            .route(web::post().to(device_code))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/auth/device/token")
            .route(web::post().to(device_token))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/auth/device/cancel")
            .route(web::post().to(device_cancel))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/auth/device/prove")
            .route(web::post().to(device_prove))
            .default_service(web::to(method_not_allowed)),
    )
    .service(web::resource("/api/native/device/approve").route(web::post().to(approve)))
    .service(web::resource("/api/native/device/deny").route(web::post().to(deny)))
    .service(web::resource("/api/native/device/{user_code}").route(web::get().to(lookup)));
}

/// The answer of every `/api/auth/device/*` handler: JSON, never cached.
type OAuthResult = Result<HttpResponse, OAuthFailure>;

async fn method_not_allowed() -> HttpResponse {
    OAuthFailure::method_not_allowed().response()
}

/// Reads a body of at most 64 KiB and parses it with [`parse_body`].
async fn read_body<T: DeserializeOwned>(
    req: &HttpRequest,
    mut payload: web::Payload,
) -> Result<T, OAuthFailure> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|_| OAuthFailure::invalid_request("the body could not be read"))?;
        if body.len() + chunk.len() > MAX_BODY {
            return Err(OAuthFailure::too_large());
        }
        body.extend_from_slice(&chunk);
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    parse_body(content_type, &body)
}

/// Parses a device-flow body as form-encoded or JSON, by its Content-Type header value
/// (JSON when none is given and it starts with `{`). Pure, so the fuzz targets call it.
pub fn parse_body<T: DeserializeOwned>(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<T, OAuthFailure> {
    let content_type = content_type.map(|v| {
        v.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    let json = match content_type.as_deref() {
        Some("application/x-www-form-urlencoded") => false,
        Some("application/json") => true,
        None => body.first() == Some(&b'{'),
        Some(_) => {
            return Err(OAuthFailure::invalid_request(
                "send application/x-www-form-urlencoded or application/json",
            ))
        }
    };
    if json {
        serde_json::from_slice(body).map_err(|_| {
            OAuthFailure::invalid_request("the body is not a valid JSON object of strings")
        })
    } else if !form_is_utf8(body) {
        Err(OAuthFailure::invalid_request(
            "form parameters must be percent-encoded UTF-8",
        ))
    } else {
        serde_urlencoded::from_bytes(body).map_err(|_| {
            OAuthFailure::invalid_request(
                "the body is not valid form data (each parameter at most once)",
            )
        })
    }
}

/// Whether every name and value of a form body decodes to UTF-8. The form parser
/// replaces undecodable bytes with U+FFFD; RFC 6749 (appendix B) wants UTF-8, so such a
/// body is refused instead of being stored altered.
fn form_is_utf8(body: &[u8]) -> bool {
    body.split(|b| *b == b'&')
        .all(|pair| std::str::from_utf8(&percent_decode(pair)).is_ok())
}

/// A required string parameter.
fn required(v: Option<String>, name: &str) -> Result<String, OAuthFailure> {
    v.filter(|s| !s.is_empty())
        .ok_or_else(|| OAuthFailure::invalid_request(format!("{name} is required")))
}

/// `scope`: a space-separated subset of `chat:read chat:write`.
fn parse_oauth_scope(s: Option<&str>) -> Result<Vec<Scope>, OAuthFailure> {
    let Some(s) = s else {
        return Ok(Vec::new());
    };
    s.split(' ')
        .filter(|p| !p.is_empty())
        .map(|p| match p {
            "chat:read" => Ok(Scope::ChatRead),
            "chat:write" => Ok(Scope::ChatWrite),
            _ => Err(OAuthFailure::invalid_scope()),
        })
        .collect()
}

fn user_agent(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().filter(|c| !c.is_control()).take(256).collect())
}

/// `<public url>/device`: the public URL when configured, else this request's origin.
/// `Forwarded` and `X-Forwarded-*` count only from a `--trusted-proxy` peer, as for the
/// client address; from anyone else the origin is the `Host` header over plain HTTP.
fn verification_uri(core: &Core, req: &HttpRequest) -> String {
    let server = &core.config().server;
    if server.starts_with("https://") || server.starts_with("http://") {
        return format!("{}/device", server.trim_end_matches('/'));
    }
    let proxied = match (req.app_data::<web::Data<TrustedProxies>>(), req.peer_addr()) {
        (Some(t), Some(peer)) => t.is_trusted(peer.ip()),
        _ => false,
    };
    if proxied {
        let info = req.connection_info();
        return format!("{}://{}/device", info.scheme(), info.host());
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| req.app_config().host().to_string());
    format!("http://{host}/device")
}

/// A rate limit on a device endpoint, answered in the OAuth shape.
fn oauth_limit(req: &HttpRequest, kind: IpLimit) -> Result<(), OAuthFailure> {
    limit(req, kind).map_err(OAuthFailure::from)
}

/// Ask for a device code (RFC 8628 §3.1).
#[utoipa::path(post, path = "/api/auth/device/code", tag = "device",
    request_body(content((DeviceCodeRequest = "application/x-www-form-urlencoded"), (DeviceCodeRequest = "application/json")),
        description = "Form-encoded (RFC 8628); application/json with the same fields is accepted too."),
    responses((status = 200, body = DeviceCodeResponse, headers(("Cache-Control" = String, description = "no-store"))),
        (status = 400, body = OAuthError), (status = 413, body = OAuthError), (status = 429, body = OAuthError)))]
async fn device_code(
    core: web::Data<Core>,
    req: HttpRequest,
    payload: web::Payload,
) -> OAuthResult {
    oauth_limit(&req, IpLimit::DeviceInit)?;
    let body: proto::DeviceCodeRequest = read_body(&req, payload).await?;
    let client_id = required(body.client_id, "client_id")?;
    let scopes = parse_oauth_scope(body.scope.as_deref())?;
    let auth = core
        .device_authorize(CoreRequest {
            client_id,
            scopes,
            device_name: body.device_name,
            public_key: body.public_key,
            ip: client_ip(&req),
            user_agent: user_agent(&req),
        })
        .await?;
    let uri = verification_uri(&core, &req);
    let user_code = auth.user_code.expose().to_string();
    Ok(
        no_store(HttpResponse::Ok()).json(proto::DeviceCodeResponse {
            device_code: auth.device_code.expose_secret().to_string(),
            verification_uri_complete: format!("{uri}?user_code={user_code}"),
            verification_uri: uri,
            user_code,
            expires_in: auth.expires_in,
            interval: auth.interval,
            comparison_code: auth.comparison_code,
            key_challenge: auth
                .key_challenge
                .map(|(id, message)| proto::KeyChallengeBody {
                    challenge_id: id.to_string(),
                    message,
                }),
        }),
    )
}

/// Poll for the device token (RFC 8628 §3.4).
#[utoipa::path(post, path = "/api/auth/device/token", tag = "device",
    request_body(content((DeviceTokenRequest = "application/x-www-form-urlencoded"), (DeviceTokenRequest = "application/json")),
        description = "Form-encoded (RFC 8628); application/json with the same fields is accepted too."),
    responses((status = 200, body = DeviceTokenResponse, headers(("Cache-Control" = String, description = "no-store"))),
        (status = 400, body = OAuthError, description = "authorization_pending, slow_down, access_denied, expired_token, invalid_grant, invalid_client, unsupported_grant_type, invalid_request"),
        (status = 413, body = OAuthError), (status = 429, body = OAuthError)))]
async fn device_token(
    core: web::Data<Core>,
    req: HttpRequest,
    payload: web::Payload,
) -> OAuthResult {
    oauth_limit(&req, IpLimit::DevicePoll)?;
    let body: proto::DeviceTokenRequest = read_body(&req, payload).await?;
    let grant_type = required(body.grant_type, "grant_type")?;
    if grant_type != proto::DEVICE_CODE_GRANT {
        return Err(OAuthFailure::unsupported_grant_type());
    }
    let device_code = required(body.device_code, "device_code")?;
    let client_id = required(body.client_id, "client_id")?;
    let token = core.device_poll(&device_code, &client_id).await?;
    Ok(
        no_store(HttpResponse::Ok()).json(proto::DeviceTokenResponse {
            access_token: token.token.expose_secret().to_string(),
            token_type: "Bearer".into(),
            expires_in: token.expires_in,
            scope: token
                .scopes
                .iter()
                .map(|s| scope(*s))
                .collect::<Vec<_>>()
                .join(" "),
        }),
    )
}

/// The device gives up on its request.
#[utoipa::path(post, path = "/api/auth/device/cancel", tag = "device",
    request_body(content((DeviceCancelRequest = "application/x-www-form-urlencoded"), (DeviceCancelRequest = "application/json")),
        description = "Form-encoded; application/json with the same fields is accepted too."),
    responses((status = 200, body = DeviceStatusResponse), (status = 400, body = OAuthError),
        (status = 413, body = OAuthError), (status = 429, body = OAuthError)))]
async fn device_cancel(
    core: web::Data<Core>,
    req: HttpRequest,
    payload: web::Payload,
) -> OAuthResult {
    oauth_limit(&req, IpLimit::DevicePoll)?;
    let body: proto::DeviceCancelRequest = read_body(&req, payload).await?;
    let device_code = required(body.device_code, "device_code")?;
    core.device_cancel(&device_code).await?;
    Ok(status("cancelled"))
}

/// The device proves it holds the key it asked to enroll.
#[utoipa::path(post, path = "/api/auth/device/prove", tag = "device",
    request_body(content((DeviceProveRequest = "application/x-www-form-urlencoded"), (DeviceProveRequest = "application/json")),
        description = "Form-encoded; application/json with the same fields is accepted too."),
    responses((status = 200, body = DeviceStatusResponse), (status = 400, body = OAuthError),
        (status = 413, body = OAuthError), (status = 429, body = OAuthError)))]
async fn device_prove(
    core: web::Data<Core>,
    req: HttpRequest,
    payload: web::Payload,
) -> OAuthResult {
    oauth_limit(&req, IpLimit::DevicePoll)?;
    let body: proto::DeviceProveRequest = read_body(&req, payload).await?;
    let device_code = required(body.device_code, "device_code")?;
    let challenge_id = required(body.challenge_id, "challenge_id")?;
    let signature = required(body.signature, "signature")?;
    core.device_prove(&device_code, &challenge_id, &signature)
        .await?;
    Ok(status("proven"))
}

fn no_store(mut b: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    b.insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .insert_header(ContentType::json());
    b
}

fn status(s: &str) -> HttpResponse {
    no_store(HttpResponse::Ok()).json(proto::DeviceStatusResponse { status: s.into() })
}

/// Limits user-code lookups per IP and per user (RFC 8628 §5.1).
fn lookup_limit(req: &HttpRequest, auth: &latchkey_actors::Auth) -> Result<(), ApiError> {
    limit(req, IpLimit::DeviceLookup)?;
    match req.app_data::<web::Data<Limits>>() {
        Some(l) => l.check_str(StrLimit::DeviceLookupPerUser, &auth.user_id.to_string()),
        None => Ok(()),
    }
}

fn request_info(view: DeviceView) -> proto::DeviceRequestInfo {
    let r = view.state.request;
    proto::DeviceRequestInfo {
        user_code: view.user_code.expose().to_string(),
        client_id: r.client_id,
        device_name: r.device_name,
        scopes: wire_scopes(&r.scopes),
        requested_at: rfc3339(r.requested_at),
        expires_at: rfc3339(r.expires_at),
        ip: r.ip.map(|ip| ip.to_string()),
        user_agent: r.user_agent,
        key: r.key.map(|k| proto::DeviceKeyInfo {
            key_type: k.key.algorithm.as_str().into(),
            fingerprint: k.key.fingerprint,
            comparison_code: view.comparison_code.unwrap_or_default(),
            proven: view.state.key_proven,
        }),
    }
}

/// Show a pending device request: exactly who is asking.
#[utoipa::path(get, path = "/api/native/device/{user_code}", tag = "device", security(("session" = [])),
    params(("user_code" = String, Path, description = "The user code as typed; case, dashes and spaces do not matter")),
    responses((status = 200, body = DeviceRequestInfo), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "interactive_credential_required"),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn lookup(
    Session(auth): Session,
    core: web::Data<Core>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    lookup_limit(&req, &auth)?;
    let view = core.device_lookup(&path).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(request_info(view)))
}

/// Approve a pending device request: the device token will be yours.
#[utoipa::path(post, path = "/api/native/device/approve", tag = "device", security(("session" = [])),
    request_body = DeviceApproveRequest,
    responses((status = 200, body = DeviceApproveResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "interactive_credential_required"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "key_not_proven, or the request is no longer pending"),
        (status = 413, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn approve(
    Session(auth): Session,
    core: web::Data<Core>,
    req: HttpRequest,
    body: web::Json<proto::DeviceApproveRequest>,
) -> Result<HttpResponse, ApiError> {
    lookup_limit(&req, &auth)?;
    let body = body.into_inner();
    let grant = Grant {
        scopes: body
            .scopes
            .map(|v| v.into_iter().map(domain_scope).collect()),
        name: body.name,
        token_ttl_secs: body.expires_in.unwrap_or(Some(DEFAULT_DEVICE_TOKEN_SECS)),
    };
    let approved = core.device_approve(&auth, &body.user_code, grant).await?;
    let a = approved.approval;
    Ok(HttpResponse::Ok().json(proto::DeviceApproveResponse {
        status: "approved".into(),
        client_id: approved.client_id,
        device_name: a.device_name,
        scopes: wire_scopes(&a.scopes),
        token_expires_in: a.token_ttl_secs,
        key_added: approved.key_added,
    }))
}

/// Deny a pending device request for good.
#[utoipa::path(post, path = "/api/native/device/deny", tag = "device", security(("session" = [])),
    request_body = DeviceDenyRequest,
    responses((status = 200, body = DeviceStatusResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "interactive_credential_required"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn deny(
    Session(auth): Session,
    core: web::Data<Core>,
    req: HttpRequest,
    body: web::Json<proto::DeviceDenyRequest>,
) -> Result<HttpResponse, ApiError> {
    lookup_limit(&req, &auth)?;
    core.device_deny(&auth, &body.user_code).await?;
    Ok(HttpResponse::Ok().json(proto::DeviceStatusResponse {
        status: "denied".into(),
    }))
}

//! `/api/native/*`: server info, SSH challenge sign-in, `me`, `ping`, logout.

use crate::auth::Authed;
use crate::client_ip::TrustedProxies;
use crate::convert::{rfc3339, wire_kind, wire_scopes};
use crate::error::ApiError;
use crate::limits::{IpLimit, Limits, StrLimit};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use latchkey_actors::SignIn;
use latchkey_actors::{Core, Registration};
use latchkey_domain::challenge::NAMESPACE;
use latchkey_domain::ChallengePurpose;
use latchkey_proto as proto;
#[allow(unused_imports)] // named by the OpenAPI annotations
use latchkey_proto::*;
use std::net::IpAddr;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Ping first: it is what clients call most (an authed liveness check), and the
    // router tries resources in order, at a few hundred instructions per miss.
    cfg.service(web::resource("/api/native/ping").route(web::get().to(ping)))
        .service(web::resource("/api/native/info").route(web::get().to(info)))
        .service(web::resource("/api/native/challenge").route(web::post().to(challenge)))
        .service(
            web::resource("/api/native/token")
                .route(web::post().to(token))
                .route(web::delete().to(logout)),
        )
        .service(web::resource("/api/native/me").route(web::get().to(me)));
}

/// The client's address: the peer, or what trusted proxies say in X-Forwarded-For.
pub fn client_ip(req: &HttpRequest) -> Option<IpAddr> {
    match req.app_data::<web::Data<TrustedProxies>>() {
        Some(t) => t.from_request(req),
        None => req.peer_addr().map(|a| a.ip()),
    }
}

/// Applies a per-IP limit to a request (no address: nothing to key on, not limited).
pub fn limit(req: &HttpRequest, kind: IpLimit) -> Result<(), ApiError> {
    match (req.app_data::<web::Data<Limits>>(), client_ip(req)) {
        (Some(l), Some(ip)) => l.check(kind, &ip),
        _ => Ok(()),
    }
}

/// The wire form of an issued challenge (sign-in and add-key alike).
/// `now` (the core's) gives `expires_in`.
pub fn challenge_response(
    issued: &latchkey_domain::pairing::IssuedChallenge,
    now: latchkey_domain::Timestamp,
) -> proto::ChallengeResponse {
    proto::ChallengeResponse {
        challenge_id: issued.challenge_id.to_string(),
        nonce: latchkey_domain::challenge::encode_nonce(&issued.nonce),
        message: issued.message(),
        namespace: NAMESPACE.into(),
        expires_at: rfc3339(issued.expires_at),
        expires_in: (issued.expires_at.0 - now.0).max(0) / 1000,
    }
}

/// A name a client sends (a device name): at most 256 bytes of printable characters, not
/// blank (DESIGN §6); trimmed. Refused with 400 rather than cut, so nothing unchecked is
/// stored.
pub fn checked_name(name: &str, what: &str) -> Result<String, ApiError> {
    const MAX_BYTES: usize = latchkey_domain::room::MAX_NAME_BYTES;
    if name.len() <= MAX_BYTES && latchkey_domain::device::valid_name(name, MAX_BYTES) {
        Ok(name.trim().to_string())
    } else {
        Err(ApiError::invalid(format!(
            "{what} must be 1 to {MAX_BYTES} bytes of printable characters"
        )))
    }
}

fn user_agent(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().filter(|c| !c.is_control()).take(256).collect())
}

/// Server identity and what it accepts.
#[utoipa::path(get, path = "/api/native/info", tag = "auth",
    responses((status = 200, body = InfoResponse)))]
async fn info(core: web::Data<Core>) -> Result<HttpResponse, ApiError> {
    let server_id = core
        .store()
        .server_id()
        .map_err(latchkey_actors::CoreError::from)?;
    Ok(HttpResponse::Ok().json(proto::InfoResponse {
        server_id: server_id.to_string(),
        server: core.config().server.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        namespace: NAMESPACE.into(),
        key_types: vec![
            "ssh-ed25519".into(),
            "sk-ssh-ed25519@openssh.com".into(),
            "ecdsa-sha2-nistp256".into(),
        ],
        capabilities: vec![
            "ssh-challenge".into(),
            "tokens".into(),
            "rooms".into(),
            "websocket".into(),
            "admin".into(),
            "device-authorization".into(),
            "pairing-codes".into(),
        ],
        registration: match core.config().registration {
            Registration::Open => proto::Registration::Open,
            Registration::Closed => proto::Registration::Closed,
        },
    }))
}

/// Issue a sign-in challenge for a public key.
#[utoipa::path(post, path = "/api/native/challenge", tag = "auth", request_body = ChallengeRequest,
    responses((status = 201, body = ChallengeResponse), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn challenge(
    core: web::Data<Core>,
    req: HttpRequest,
    body: web::Json<proto::ChallengeRequest>,
) -> Result<HttpResponse, ApiError> {
    limit(&req, IpLimit::Challenge)?;
    let issued = core
        .issue_challenge(&body.public_key, ChallengePurpose::SignIn, client_ip(&req))
        .await?;
    Ok(HttpResponse::Created().json(challenge_response(&issued, core.now())))
}

/// Redeem a challenge with its signature for a session token.
#[utoipa::path(post, path = "/api/native/token", tag = "auth", request_body = TokenRequest,
    responses((status = 201, body = TokenResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn token(
    core: web::Data<Core>,
    req: HttpRequest,
    body: web::Json<proto::TokenRequest>,
) -> Result<HttpResponse, ApiError> {
    limit(&req, IpLimit::Token)?;
    let body = body.into_inner();
    let device_name = body
        .device_name
        .map(|d| checked_name(&d, "device_name"))
        .transpose()?;
    // Only a challenge that can still be redeemed names a key; a spent or unknown one
    // answers the generic 401 below and charges nobody's key.
    let pending = core.pending_sign_in(&body.challenge_id).await?;
    let fingerprint = core.fingerprint_of(&pending).map(str::to_string);
    let result = core
        .sign_in_pending(
            pending,
            SignIn {
                challenge_id: &body.challenge_id,
                signature: &body.signature,
                device_name,
                handle: body.handle,
                user_agent: user_agent(&req),
                ip: client_ip(&req),
            },
        )
        .await;
    let signed = match (result, req.app_data::<web::Data<Limits>>(), fingerprint) {
        (Ok(signed), _, _) => signed,
        // Failures only count toward the key's limit: a valid signature is never refused
        // by it, however many junk ones others sent for the same key.
        (Err(e), Some(limits), Some(fingerprint)) => {
            limits.check_str(StrLimit::TokenFailuresPerKey, &fingerprint)?;
            return Err(e.into());
        }
        (Err(e), _, _) => return Err(e.into()),
    };
    Ok(HttpResponse::Created().json(proto::TokenResponse {
        token: signed.token.expose_secret().to_string(),
        token_id: signed.token_id.to_string(),
        kind: wire_kind(signed.kind),
        expires_at: signed.expires_at.map(rfc3339),
        user: proto::UserRef {
            id: signed.user_id.to_string(),
            handle: signed.handle,
        },
        registered: signed.registered,
    }))
}

/// Who the presented token belongs to.
#[utoipa::path(get, path = "/api/native/me", tag = "auth", security(("session" = []), ("pat" = []), ("device" = [])),
    responses((status = 200, body = MeResponse), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn me(Authed(auth): Authed, core: web::Data<Core>) -> Result<HttpResponse, ApiError> {
    let user = core.me(&auth)?;
    Ok(HttpResponse::Ok().json(proto::MeResponse {
        user: proto::MeUser {
            id: user.id.to_string(),
            handle: user.handle,
            admin: user.admin,
        },
        token_id: auth.token_id.to_string(),
        kind: wire_kind(auth.kind),
        scopes: wire_scopes(&auth.scopes),
        expires_at: auth.expires_at.map(rfc3339),
        device: device_of(&core, &auth)?,
    }))
}

/// The app and device a device token was paired with (`None` for other kinds).
fn device_of(
    core: &Core,
    auth: &latchkey_actors::Auth,
) -> Result<Option<proto::MeDevice>, ApiError> {
    if auth.kind != latchkey_domain::TokenKind::Device {
        return Ok(None);
    }
    let row = core
        .models()
        .token_by_id(auth.token_id)
        .map_err(latchkey_actors::CoreError::from)?;
    Ok(row.map(|r| proto::MeDevice {
        client_id: r.name.clone(),
        device_name: r.device_name.clone(),
    }))
}

/// An auth-checked health check.
#[utoipa::path(get, path = "/api/native/ping", tag = "auth", security(("session" = []), ("pat" = []), ("device" = [])),
    responses((status = 200, body = PingResponse), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn ping(Authed(_): Authed) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(header::ContentType::json())
        .body(PING_BODY)
}

/// `PingResponse { ok: true }` as JSON, encoded once (a test checks it against serde).
const PING_BODY: &str = r#"{"ok":true}"#;

/// Log out: revoke the presented token.
#[utoipa::path(delete, path = "/api/native/token", tag = "auth", security(("session" = []), ("pat" = []), ("device" = [])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn logout(Authed(auth): Authed, core: web::Data<Core>) -> Result<HttpResponse, ApiError> {
    core.logout(&auth).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ping_body_is_the_encoded_ping_response() {
        let encoded = serde_json::to_string(&proto::PingResponse { ok: true }).unwrap();
        assert_eq!(PING_BODY, encoded);
    }
}

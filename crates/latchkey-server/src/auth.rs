//! Credential extractors. Each checks the bearer token, its kind and its scopes before
//! anything else about the request (the body is parsed after, so a PAT sending a malformed
//! body to a session-only route gets 403, not 400). A token in the query string is refused
//! outright: URLs end up in logs and browser history.
//!
//! - `Authed`: any live token.
//! - `Session`: a session token (`lks_`), the only interactive credential.
//! - `ChatRead` / `ChatWrite`: a token carrying that scope.
//! - `Admin`: a session of an admin user.
//! - `ChatPost`: `ChatWrite` for the message post, counted toward the post limit.
//!
//! Every extractor but `ChatPost` also counts a request whose method writes (POST, PUT,
//! PATCH, DELETE) toward the user's write limit (DESIGN §9), before the body is parsed:
//! so every authenticated route that writes is limited per user, and a route cannot
//! forget it.

use crate::error::ApiError;
use crate::limits::{Limits, StrLimit};
use crate::routes::native::client_ip;
use actix_web::dev::Payload;
use actix_web::http::{header, Method};
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::{ready, Either, LocalBoxFuture, Ready};
use latchkey_actors::{Auth, Core};
use latchkey_domain::token::TokenPrefix;
use latchkey_domain::{Scope, TokenKind};
use std::net::IpAddr;

/// Whether a query string carries something that looks like a credential.
fn query_has_credential(query: &str) -> bool {
    query.split('&').any(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = k.to_ascii_lowercase();
        matches!(
            k.as_str(),
            "access_token" | "token" | "bearer" | "authorization"
        ) || TokenPrefix::ALL
            .iter()
            .filter(|p| **p != TokenPrefix::WsTicket)
            .any(|p| v.starts_with(p.as_str()))
    })
}

/// The bearer token of a request, if any (no validation).
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Checks the request's credential; failures are charged to the client's failed-auth limit.
pub fn authenticate(req: &HttpRequest) -> Result<Auth, ApiError> {
    check_bearer(req, bearer(req))
}

/// [`authenticate`] of an already extracted bearer token (read once per request).
fn check_bearer(req: &HttpRequest, token: Option<&str>) -> Result<Auth, ApiError> {
    checked(req, |core| {
        token
            .ok_or_else(|| ApiError::unauthorized("Authorization: Bearer <token> is required"))
            .and_then(|token| core.authenticate(token).map_err(ApiError::from))
    })
}

/// Whether the log is this node's alone, so a check never has to catch up with other
/// nodes (which is async).
fn log_is_local(req: &HttpRequest) -> bool {
    req.app_data::<web::Data<Core>>()
        .is_some_and(|core| !core.store().is_shared())
}

/// [`authenticate`], after catching up with the other nodes when the token is well formed
/// but unknown here (DESIGN §11: a token minted on another node works on the next request).
pub async fn authenticate_fresh(req: &HttpRequest) -> Result<Auth, ApiError> {
    let token = bearer(req);
    if let (Some(core), Some(token)) = (req.app_data::<web::Data<Core>>(), token) {
        core.catch_up_for_token(token).await;
    }
    check_bearer(req, token)
}

/// The WebSocket's credential: a single-use `?ticket=` or the bearer header. A ticket is
/// spent only once the URL rule and the failed-auth limit let the request through; an
/// unreachable ticket store answers 503, anything else about a ticket 401.
pub async fn authenticate_ws(req: &HttpRequest) -> Result<Auth, ApiError> {
    let ticket = req
        .query_string()
        .split('&')
        .find_map(|p| p.strip_prefix("ticket="))
        .map(str::to_string);
    let Some(t) = ticket else {
        return authenticate_fresh(req).await;
    };
    let core = admit(req)?;
    let redeemed = core.redeem_ws_ticket(&t).await.map_err(|e| match e {
        latchkey_actors::CoreError::Busy => ApiError::from(e),
        _ => ApiError::unauthorized("the ticket is unknown, used, or expired"),
    });
    settle(req, core, redeemed)
}

/// Runs a credential check behind the URL rule and the failed-auth limit.
fn checked(
    req: &HttpRequest,
    check: impl FnOnce(&Core) -> Result<Auth, ApiError>,
) -> Result<Auth, ApiError> {
    let core = admit(req)?;
    let result = check(core);
    settle(req, core, result)
}

/// The client's address for the failed-auth limit, when limits are on.
fn limited(req: &HttpRequest) -> Option<(&web::Data<Limits>, IpAddr)> {
    let limits = req
        .app_data::<web::Data<Limits>>()
        .filter(|l| l.is_enabled())?;
    client_ip(req).map(|ip| (limits, ip))
}

/// The URL rule and the failed-auth limit, checked before any credential is looked at;
/// the core to check it with.
fn admit(req: &HttpRequest) -> Result<&web::Data<Core>, ApiError> {
    if query_has_credential(req.query_string()) {
        return Err(ApiError::unauthorized(
            "credentials are never accepted in the URL; send Authorization: Bearer",
        ));
    }
    let core = req
        .app_data::<web::Data<Core>>()
        .ok_or_else(|| ApiError::unavailable("not ready", 1))?;
    if let Some((l, ip)) = limited(req) {
        l.peek_failed_auth(&ip)?;
    }
    Ok(core)
}

/// Marks a good credential used; charges a failed check to the client's failed-auth limit.
fn settle(
    req: &HttpRequest,
    core: &web::Data<Core>,
    result: Result<Auth, ApiError>,
) -> Result<Auth, ApiError> {
    match result {
        Ok(auth) => {
            core.touch(&auth);
            Ok(auth)
        }
        Err(e) => {
            if let Some((l, ip)) = limited(req) {
                l.charge_failed_auth(&ip)?;
            }
            Err(e)
        }
    }
}

fn require(
    auth: Auth,
    check: impl FnOnce(&Auth) -> Result<(), ApiError>,
) -> Result<Auth, ApiError> {
    check(&auth).map(|()| auth)
}

fn session_only(auth: &Auth) -> Result<(), ApiError> {
    if auth.kind == TokenKind::Session {
        Ok(())
    } else {
        Err(ApiError::interactive_credential_required())
    }
}

/// 403 unless the credential carries `s`.
pub fn scope_check(auth: &Auth, s: Scope, name: &'static str) -> Result<(), ApiError> {
    scope(s, name)(auth)
}

fn scope(s: Scope, name: &'static str) -> impl FnOnce(&Auth) -> Result<(), ApiError> {
    move |auth| {
        if auth.has(s) {
            Ok(())
        } else {
            Err(ApiError::missing_scope(name))
        }
    }
}

/// Counts a request whose method writes toward the caller's per-user write limit.
fn write_limit(req: &HttpRequest, auth: Auth) -> Result<Auth, ApiError> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(auth);
    }
    per_user(req, auth, StrLimit::WritePerUser)
}

/// Counts a message post toward the sender's post limit (instead of the write limit).
fn post_limit(req: &HttpRequest, auth: Auth) -> Result<Auth, ApiError> {
    per_user(req, auth, StrLimit::PostPerUser)
}

fn per_user(req: &HttpRequest, auth: Auth, kind: StrLimit) -> Result<Auth, ApiError> {
    match req.app_data::<web::Data<Limits>>() {
        Some(l) => l.check_str(kind, &auth.user_id.to_string()).map(|()| auth),
        None => Ok(auth),
    }
}

/// An extractor's future: ready at once on a log of its own, boxed when it may catch up.
type Extracted<T> =
    Either<Ready<Result<T, ApiError>>, LocalBoxFuture<'static, Result<T, ApiError>>>;

macro_rules! extractor {
    ($(#[$doc:meta])* $name:ident, $check:expr, $limit:expr) => {
        $(#[$doc])*
        pub struct $name(pub Auth);

        impl FromRequest for $name {
            type Error = ApiError;
            type Future = Extracted<Self>;

            fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
                let finish = |req: &HttpRequest, auth: Result<Auth, ApiError>| {
                    auth.and_then(|a| require(a, $check))
                        .and_then(|a| $limit(req, a))
                        .map($name)
                };
                // On a log of its own the check needs no catching up: answer at once,
                // without boxing a future or cloning the request.
                if log_is_local(req) {
                    return Either::Left(ready(finish(req, authenticate(req))));
                }
                let req = req.clone();
                Either::Right(Box::pin(async move {
                    let auth = authenticate_fresh(&req).await;
                    finish(&req, auth)
                }))
            }
        }
    };
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        extractor!($(#[$doc])* $name, $check, write_limit);
    };
}

extractor!(
    /// Any live token.
    Authed,
    |_| Ok(())
);
extractor!(
    /// A session token: the only credential that may manage tokens and keys.
    Session,
    session_only
);
extractor!(
    /// A token with `chat:read`.
    ChatRead,
    scope(Scope::ChatRead, "chat:read")
);
extractor!(
    /// A token with `chat:write`.
    ChatWrite,
    scope(Scope::ChatWrite, "chat:write")
);
extractor!(
    /// A token with `chat:write`, for posting a message: counted toward the post limit
    /// (`StrLimit::PostPerUser`) instead of the write limit.
    ChatPost,
    scope(Scope::ChatWrite, "chat:write"),
    post_limit
);
extractor!(
    /// A session of an admin user.
    Admin,
    |a: &Auth| session_only(a).and_then(|()| scope(Scope::Admin, "admin")(a))
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_queries_are_spotted() {
        assert!(query_has_credential("access_token=abc"));
        assert!(query_has_credential("x=1&token=abc"));
        assert!(query_has_credential("q=lks_0000"));
        assert!(!query_has_credential("before=10&limit=5"));
        assert!(!query_has_credential(""));
        assert!(
            !query_has_credential("ticket=lkw_abc"),
            "a WS ticket is the one allowed"
        );
    }
}

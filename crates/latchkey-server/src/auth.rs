//! The `Authed` extractor: a bearer token from the `Authorization` header, checked against
//! the token read model before anything else about the request is looked at. A token in
//! the query string is refused outright (URLs end up in logs and browser history).

use crate::error::ApiError;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use latchkey_actors::{Auth, Core};
use latchkey_domain::token::TokenPrefix;
use std::future::{ready, Ready};

/// A request whose bearer credential is valid.
pub struct Authed(pub Auth);

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

fn authenticate(req: &HttpRequest) -> Result<Auth, ApiError> {
    if query_has_credential(req.query_string()) {
        return Err(ApiError::unauthorized(
            "credentials are never accepted in the URL; send Authorization: Bearer",
        ));
    }
    let core = req
        .app_data::<web::Data<Core>>()
        .ok_or_else(|| ApiError::unavailable("not ready", 1))?;
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::unauthorized("Authorization: Bearer <token> is required"))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized("Authorization: Bearer <token> is required"))?;
    let auth = core.authenticate(token)?;
    core.clone().into_inner().touch(&auth);
    Ok(auth)
}

impl FromRequest for Authed {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).map(Authed))
    }
}

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

//! The `/device` approval page (DESIGN §13), for a person holding a device's user code:
//! server-rendered HTML with plain forms, no JavaScript, no external assets, a strict CSP
//! and `X-Frame-Options: DENY`.
//!
//! - `GET /device[?user_code=]` only renders: sign-in until signed in, then the request
//!   with Approve and Deny. Nothing changes on a GET.
//! - Sign-in is an ordinary §6 challenge (`POST /device/challenge` with the public key,
//!   then `POST /device/session` with the pasted signature), which yields a 15-minute
//!   browser session in the `__Host-latchkey-session` cookie (HttpOnly, SameSite=Strict,
//!   Path=/, always Secure).
//! - Every POST carries a CSRF token equal to the `__Host-latchkey-csrf` cookie and an
//!   `Origin` naming this server; anything else changes nothing.
//!
//! Handlers call `Core` once per action; statuses come from `error.rs`, and failures are
//! HTML pages, never JSON.

mod html;

use crate::error::{ApiError, PageError};
use crate::limits::{IpLimit, Limits, StrLimit};
use crate::routes::native::{client_ip, limit};
use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use html::Html;
use latchkey_actors::device::Grant;
use latchkey_actors::web_session::BROWSER_SESSION_SECS;
use latchkey_actors::{Auth, Core};
use latchkey_domain::device::{DEFAULT_DEVICE_TOKEN_SECS, MAX_DEVICE_TOKEN_SECS};
use latchkey_domain::usercode::UserCode;
use latchkey_domain::{ChallengePurpose, Scope, TokenKind};
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// The browser session cookie.
pub const SESSION_COOKIE: &str = "__Host-latchkey-session";
/// The CSRF cookie; each form carries the same value.
pub const CSRF_COOKIE: &str = "__Host-latchkey-csrf";
/// The page's Content-Security-Policy.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
    form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/device").route(web::get().to(show)))
        .service(web::resource("/device/style.css").route(web::get().to(style)))
        .service(web::resource("/device/challenge").route(web::post().to(challenge)))
        .service(web::resource("/device/session").route(web::post().to(session)))
        .service(web::resource("/device/approve").route(web::post().to(approve)))
        .service(web::resource("/device/deny").route(web::post().to(deny)))
        .service(web::resource("/device/sign-out").route(web::post().to(sign_out)));
}

type PageResult = Result<HttpResponse, PageError>;

/// Security headers every answer of the page carries. The referrer policy is
/// `same-origin`, not `no-referrer`: under `no-referrer` browsers send `Origin: null` on
/// the page's own form posts, which the Origin check would refuse.
fn secured(mut b: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    b.insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    b
}

fn html_page(title: &str, who: Option<(&str, &str)>, body: Html) -> HttpResponse {
    secured(HttpResponse::Ok())
        .content_type("text/html; charset=utf-8")
        .body(html::page(title, who, body))
}

/// The page a failure shows (its status was picked in `error.rs`).
pub fn error_page(e: &PageError) -> HttpResponse {
    let mut res = secured(HttpResponse::build(e.status()))
        .content_type("text/html; charset=utf-8")
        .body(html::page(
            e.heading(),
            None,
            html::message(e.heading(), e.text()),
        ));
    if let Some(v) = e.retry_after() {
        res.headers_mut().insert(header::RETRY_AFTER, v.clone());
    }
    res
}

/// A cookie's value from the request's `Cookie` headers.
fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value: always `__Host-` rules (Secure, Path=/, no Domain), HttpOnly and
/// SameSite=Strict. `max_age` `None`: until the browser closes.
fn set_cookie(name: &str, value: &str, max_age: Option<i64>) -> String {
    let age = max_age
        .map(|s| format!("; Max-Age={s}"))
        .unwrap_or_default();
    format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict{age}")
}

/// The CSRF token of this browser, and a `Set-Cookie` when it has none yet.
fn csrf_token(core: &Core, req: &HttpRequest) -> (String, Option<String>) {
    match cookie(req, CSRF_COOKIE).filter(|v| v.len() == 64) {
        Some(v) => (v, None),
        None => {
            let v = core.page_csrf_token();
            let set = set_cookie(CSRF_COOKIE, &v, None);
            (v, Some(set))
        }
    }
}

/// This server's origin as a browser names it in `Origin`.
fn expected_origin(core: &Core, req: &HttpRequest) -> String {
    let server = &core.config().server;
    if let Some((scheme, rest)) = server.split_once("://") {
        if scheme == "http" || scheme == "https" {
            let host = rest.split('/').next().unwrap_or(rest);
            return format!("{scheme}://{host}");
        }
    }
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

fn same_bytes(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The checks of every POST, before anything else is read: `Origin` is this server, and
/// the form's CSRF token is the cookie's. Either failing answers 403 and changes nothing.
/// Then the form itself.
fn checked_form<T: DeserializeOwned>(
    core: &Core,
    req: &HttpRequest,
    body: &[u8],
) -> Result<T, PageError> {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    if origin != Some(expected_origin(core, req).as_str()) {
        return Err(PageError::forbidden("This form was not sent from this site's page, so nothing was changed. Open the page again and retry.",
        ));
    }
    let sent = serde_urlencoded::from_bytes::<CsrfForm>(body)
        .ok()
        .and_then(|f| f.csrf)
        .unwrap_or_default();
    let cookie = cookie(req, CSRF_COOKIE).unwrap_or_default();
    if cookie.is_empty() || !same_bytes(&cookie, &sent) {
        return Err(PageError::forbidden("The form has expired or was not sent from this page, so nothing was changed. Open the page again and retry.",
        ));
    }
    parse_form(body)
}

/// The browser session, if the cookie holds a live session token.
fn signed_in(core: &Core, req: &HttpRequest) -> Option<(Auth, String)> {
    let token = cookie(req, SESSION_COOKIE)?;
    let auth = core.authenticate(&token).ok()?;
    if auth.kind != TokenKind::Session {
        return None;
    }
    let handle = core.me(&auth).ok()?.handle;
    Some((auth, handle))
}

fn parse_form<T: DeserializeOwned>(body: &[u8]) -> Result<T, PageError> {
    serde_urlencoded::from_bytes(body)
        .map_err(|_| PageError::bad_form("The form was incomplete. Open the page again and retry."))
}

/// The canonical form of a typed user code; empty stays empty; malformed is a 404 page.
fn canonical_code(input: &str) -> Result<String, PageError> {
    if input.trim().is_empty() {
        return Ok(String::new());
    }
    UserCode::parse(input)
        .map(|c| c.expose().to_string())
        .map_err(|_| ApiError::from(latchkey_actors::error::DeviceFlowError::NotFound).into())
}

fn with_cookie(mut res: HttpResponse, set: Option<String>) -> HttpResponse {
    if let Some(v) = set.and_then(|s| HeaderValue::from_str(&s).ok()) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// Limits looking up, approving or denying by user code, per IP and per user.
fn lookup_limit(req: &HttpRequest, auth: &Auth) -> Result<(), PageError> {
    limit(req, IpLimit::DeviceLookup)?;
    if let Some(l) = req.app_data::<web::Data<Limits>>() {
        l.check_str(StrLimit::DeviceLookupPerUser, &auth.user_id.to_string())?;
    }
    Ok(())
}

#[derive(Deserialize)]
struct ShowQuery {
    user_code: Option<String>,
}

/// The page: sign-in, the code form, or the request. Changes nothing.
async fn show(core: web::Data<Core>, req: HttpRequest, q: web::Query<ShowQuery>) -> PageResult {
    let (csrf, set) = csrf_token(&core, &req);
    let code = canonical_code(q.user_code.as_deref().unwrap_or(""))?;
    let res = match signed_in(&core, &req) {
        None => html_page("Sign in", None, html::signin_key(&csrf, &code)),
        Some((_, handle)) if code.is_empty() => {
            html_page("Enter the code", Some((&handle, &csrf)), html::enter_code())
        }
        Some((auth, handle)) => {
            lookup_limit(&req, &auth)?;
            let view = core.device_lookup(&code).await?;
            let at = crate::convert::rfc3339(view.state.request.requested_at);
            html_page(
                "Approve this device?",
                Some((&handle, &csrf)),
                html::request(&csrf, &code, &view, &at),
            )
        }
    };
    Ok(with_cookie(res, set))
}

async fn style() -> HttpResponse {
    secured(HttpResponse::Ok())
        .content_type("text/css; charset=utf-8")
        .body(html::STYLE)
}

#[derive(Deserialize)]
struct KeyForm {
    csrf: String,
    #[serde(default)]
    user_code: String,
    public_key: String,
}

/// Sign-in step 1: a challenge for the pasted public key.
async fn challenge(core: web::Data<Core>, req: HttpRequest, body: web::Bytes) -> PageResult {
    let form: KeyForm = checked_form(&core, &req, &body)?;
    limit(&req, IpLimit::Challenge)?;
    let code = canonical_code(&form.user_code)?;
    let issued = core
        .issue_challenge(
            form.public_key.trim(),
            ChallengePurpose::SignIn,
            client_ip(&req),
        )
        .await?;
    let message = issued.message();
    let id = issued.challenge_id.to_string();
    let expires_at = crate::convert::rfc3339(issued.expires_at);
    let c = html::Challenge {
        id: &id,
        message: &message,
        algorithm: issued.key.algorithm,
        expires_at: &expires_at,
    };
    Ok(html_page(
        "Sign the challenge",
        None,
        html::signin_signature(&form.csrf, &code, &c),
    ))
}

#[derive(Deserialize)]
struct SignatureForm {
    #[serde(default)]
    user_code: String,
    challenge_id: String,
    signature: String,
}

fn back_to(code: &str) -> String {
    if code.is_empty() {
        "/device".into()
    } else {
        format!("/device?user_code={code}")
    }
}

fn see_other(location: &str) -> HttpResponse {
    secured(HttpResponse::SeeOther())
        .insert_header((header::LOCATION, location))
        .finish()
}

/// Sign-in step 2: the signature for a 15-minute browser session.
async fn session(core: web::Data<Core>, req: HttpRequest, body: web::Bytes) -> PageResult {
    let form: SignatureForm = checked_form(&core, &req, &body)?;
    limit(&req, IpLimit::Token)?;
    let code = canonical_code(&form.user_code)?;
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().filter(|c| !c.is_control()).take(256).collect());
    let s = core
        .browser_sign_in(
            &form.challenge_id,
            form.signature.trim(),
            client_ip(&req),
            user_agent,
        )
        .await?;
    let set = set_cookie(
        SESSION_COOKIE,
        s.token.expose_secret(),
        Some(BROWSER_SESSION_SECS),
    );
    Ok(with_cookie(see_other(&back_to(&code)), Some(set)))
}

#[derive(Deserialize)]
struct ApproveForm {
    csrf: String,
    user_code: String,
    scope_chat_read: Option<String>,
    scope_chat_write: Option<String>,
    expires: Option<String>,
}

/// The signed-in user behind a POST, or a page saying to sign in again.
fn need_session(core: &Core, req: &HttpRequest, code: &str) -> Result<(Auth, String), PageError> {
    signed_in(core, req).ok_or_else(|| {
        PageError::sign_in_again(format!(
                "Your sign-in on this page has expired (it lasts {} minutes). Open {} and sign in again; nothing was changed.",
                BROWSER_SESSION_SECS / 60,
                back_to(code)
            ),
        )
    })
}

fn lifetime(choice: Option<&str>) -> Result<Option<u64>, PageError> {
    match choice {
        None | Some("90d") => Ok(Some(DEFAULT_DEVICE_TOKEN_SECS)),
        Some("30d") => Ok(Some(30 * 24 * 3600)),
        Some("1y") => Ok(Some(MAX_DEVICE_TOKEN_SECS)),
        Some("never") => Ok(None),
        Some(_) => Err(PageError::bad_form("Pick a token lifetime from the list.")),
    }
}

/// Approve: one POST grants the checked scopes.
async fn approve(core: web::Data<Core>, req: HttpRequest, body: web::Bytes) -> PageResult {
    let form: ApproveForm = checked_form(&core, &req, &body)?;
    let code = canonical_code(&form.user_code)?;
    let (auth, handle) = need_session(&core, &req, &code)?;
    lookup_limit(&req, &auth)?;
    let mut scopes = Vec::new();
    if form.scope_chat_read.is_some() {
        scopes.push(Scope::ChatRead);
    }
    if form.scope_chat_write.is_some() {
        scopes.push(Scope::ChatWrite);
    }
    if scopes.is_empty() {
        return Err(PageError::bad_form(
            "Check at least one permission, or deny the request.",
        ));
    }
    let grant = Grant {
        scopes: Some(scopes),
        name: None,
        token_ttl_secs: lifetime(form.expires.as_deref())?,
    };
    let view = core.device_approve(&auth, &code, grant).await?;
    let text = format!(
        "{} can now finish signing in as {handle}. You can close this page.",
        view.client_id
    );
    Ok(html_page(
        "Device approved",
        Some((&handle, &form.csrf)),
        html::message("Device approved", &text),
    ))
}

#[derive(Deserialize)]
struct CodeForm {
    csrf: String,
    user_code: String,
}

/// Deny: cancels the request for good.
async fn deny(core: web::Data<Core>, req: HttpRequest, body: web::Bytes) -> PageResult {
    let form: CodeForm = checked_form(&core, &req, &body)?;
    let code = canonical_code(&form.user_code)?;
    let (auth, handle) = need_session(&core, &req, &code)?;
    lookup_limit(&req, &auth)?;
    core.device_deny(&auth, &code).await?;
    Ok(html_page(
        "Request denied",
        Some((&handle, &form.csrf)),
        html::message(
            "Request denied",
            "The device's request is cancelled for good. It gets no access.",
        ),
    ))
}

/// Any form's CSRF token, whatever else it holds.
#[derive(Deserialize)]
struct CsrfForm {
    csrf: Option<String>,
}

/// Sign out: revokes the browser session and clears its cookie.
async fn sign_out(core: web::Data<Core>, req: HttpRequest, body: web::Bytes) -> PageResult {
    let _: CsrfForm = checked_form(&core, &req, &body)?;
    if let Some((auth, _)) = signed_in(&core, &req) {
        core.logout(&auth).await?;
    }
    let clear = set_cookie(SESSION_COOKIE, "", Some(0));
    Ok(with_cookie(see_other("/device"), Some(clear)))
}

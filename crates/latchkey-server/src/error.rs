//! The one place failures become HTTP: `ApiError` (status, code, message, Retry-After),
//! the mapping from `CoreError`, the handlers for actix extractor errors, and a last-resort
//! middleware that turns any non-JSON error response (unknown route, wrong method) into
//! the JSON shape. Messages never carry secrets or request bodies.

use actix_web::body::{BoxBody, EitherBody};
use actix_web::dev::ServiceResponse;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use latchkey_actors::error::DeviceFlowError;
use latchkey_actors::CoreError;
use latchkey_proto::{codes, oauth_codes, ErrorBody, OAuthError};
use std::fmt;

/// The largest request body accepted: 64 KiB.
pub const MAX_BODY: usize = 64 * 1024;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a status, a code from `latchkey_proto::codes` and a message. Private:
    /// other modules name the failure through the constructors below, and this file picks
    /// the status.
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 invalid_request.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, codes::INVALID_REQUEST, message)
    }

    /// 401 unauthorized.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED, message)
    }

    /// 404 not_found: `what` names the missing resource or route.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, what)
    }

    /// 403 forbidden: the credential lacks the scope `name`.
    pub fn missing_scope(name: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            codes::FORBIDDEN,
            format!("this token lacks the {name} scope"),
        )
    }

    /// 403 interactive_credential_required: a route that needs a session from an SSH
    /// sign-in was called with a personal or device token.
    pub fn interactive_credential_required() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            codes::INTERACTIVE_CREDENTIAL_REQUIRED,
            "this route needs a session token from an SSH sign-in; personal and device tokens cannot manage credentials",
        )
    }

    /// 429 rate_limited with `Retry-After: retry_after_secs` (at least 1: a 0 would invite
    /// an instant retry that is still refused).
    pub fn rate_limited(retry_after_secs: u64, message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(retry_after_secs.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, codes::RATE_LIMITED, message)
        }
    }

    /// 503 with Retry-After.
    pub fn unavailable(message: impl Into<String>, retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, codes::UNAVAILABLE, message)
        }
    }

    /// The `Retry-After` seconds, if any.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// The error code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        res.json(ErrorBody {
            error: self.code.to_string(),
            message: self.message.clone(),
        })
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        use StatusCode as S;
        let msg = e.to_string();
        match e {
            CoreError::InvalidRequest(_) => Self::invalid(msg),
            CoreError::UnsupportedKeyType(_) => {
                Self::new(S::BAD_REQUEST, codes::UNSUPPORTED_KEY_TYPE, msg)
            }
            CoreError::ChallengeInvalid => {
                Self::new(S::UNAUTHORIZED, codes::CHALLENGE_INVALID, msg)
            }
            CoreError::SignatureInvalid(_) => {
                Self::new(S::UNAUTHORIZED, codes::SIGNATURE_INVALID, msg)
            }
            CoreError::KeyUnknown => Self::new(S::UNAUTHORIZED, codes::KEY_UNKNOWN, msg),
            CoreError::Unauthorized => Self::unauthorized(msg),
            CoreError::Forbidden(_) => Self::new(S::FORBIDDEN, codes::FORBIDDEN, msg),
            CoreError::HandleTaken(_) => Self::new(S::CONFLICT, codes::HANDLE_TAKEN, msg),
            CoreError::NotFound(_) => Self::new(S::NOT_FOUND, codes::NOT_FOUND, msg),
            CoreError::NotAMember => Self::new(S::FORBIDDEN, codes::NOT_A_MEMBER, msg),
            CoreError::Conflict(_) => Self::new(S::CONFLICT, codes::CONFLICT, msg),
            CoreError::PairingCodeInvalid => {
                Self::new(S::UNAUTHORIZED, codes::PAIRING_CODE_INVALID, msg)
            }
            CoreError::Busy => Self::unavailable(msg, 1),
            CoreError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                Self::new(S::INTERNAL_SERVER_ERROR, codes::INTERNAL, "internal error")
            }
        }
    }
}

/// A 503 whose body is `body` rather than the error shape, with `Retry-After: 1` (`/readyz`
/// while the read models catch up).
pub fn not_ready<T: serde::Serialize>(body: &T) -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .insert_header((header::RETRY_AFTER, "1"))
        .json(body)
}

/// Maps JSON body failures: too large → 413, anything else → 400 without echoing input.
pub fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let api = match &err {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                codes::PAYLOAD_TOO_LARGE,
                format!("the body is over {MAX_BODY} bytes"),
            )
        }
        JsonPayloadError::Deserialize(e) => ApiError::invalid(describe_json(e)),
        JsonPayloadError::ContentType => ApiError::invalid("the body must be JSON"),
        _ => ApiError::invalid("the body could not be read as JSON"),
    };
    api.into()
}

/// A serde_json error in words that never repeat the client's values (they may be secrets).
fn describe_json(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let safe = ["missing field", "unknown field", "duplicate field"];
    if safe.iter().any(|p| text.starts_with(p)) {
        // These name a field of our schema, never a value.
        let upto = text.find(" at line").unwrap_or(text.len());
        return format!("invalid body: {}", &text[..upto]);
    }
    match e.classify() {
        serde_json::error::Category::Data => format!(
            "invalid body: a field has the wrong type or value (line {}, column {})",
            e.line(),
            e.column()
        ),
        serde_json::error::Category::Eof => "invalid body: the JSON ends too early".into(),
        _ => format!(
            "invalid body: not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ),
    }
}

/// Maps path parameter failures to 404: a malformed id names no resource.
pub fn path_error(_err: PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::not_found("no such resource").into()
}

/// Maps query string failures to 400.
pub fn query_error(_err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::invalid("invalid query parameters").into()
}

/// 404 for every unknown route.
pub async fn not_found() -> HttpResponse {
    ApiError::not_found("no such route").error_response()
}

/// Last resort: any error response that is not JSON yet (405 from a resource, 413 from a
/// payload limit, a 4xx/5xx from actix itself) gets the JSON error shape for its status.
pub fn render_json<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    // JSON already, or one of the `/device` page's HTML error pages.
    let is_json = res.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes().starts_with(b"application/json") || v.as_bytes().starts_with(b"text/html")
    });
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let (code, message) = match status {
        StatusCode::NOT_FOUND => (codes::NOT_FOUND, "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => (
            codes::METHOD_NOT_ALLOWED,
            "this route does not take that method",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (codes::PAYLOAD_TOO_LARGE, "the body is over 64 KiB"),
        StatusCode::UNAUTHORIZED => (codes::UNAUTHORIZED, "a valid bearer token is required"),
        StatusCode::FORBIDDEN => (codes::FORBIDDEN, "forbidden"),
        StatusCode::TOO_MANY_REQUESTS => (codes::RATE_LIMITED, "too many requests"),
        StatusCode::SERVICE_UNAVAILABLE => (codes::UNAVAILABLE, "unavailable; retry shortly"),
        s if s.is_server_error() => (codes::INTERNAL, "internal error"),
        _ => (codes::INVALID_REQUEST, "invalid request"),
    };
    let (req, old) = res.into_parts();
    let mut new = HttpResponse::build(status).json(ErrorBody {
        error: code.to_string(),
        message: message.to_string(),
    });
    if let Some(allow) = old.headers().get(header::ALLOW) {
        new.headers_mut().insert(header::ALLOW, allow.clone());
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        new.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    let res: ServiceResponse<EitherBody<B, BoxBody>> =
        ServiceResponse::new(req, new).map_into_right_body();
    Ok(ErrorHandlerResponse::Response(res))
}

/// An error of the device endpoints (`/api/auth/device/*`), in the OAuth 2.0 shape
/// `{"error", "error_description"}` (RFC 6749 §5.2), always with `Cache-Control: no-store`.
#[derive(Debug)]
pub struct OAuthFailure {
    status: StatusCode,
    code: &'static str,
    description: String,
    retry_after: Option<u64>,
}

impl OAuthFailure {
    fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            code,
            description: description.into(),
            retry_after: None,
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            oauth_codes::INVALID_REQUEST,
            description,
        )
    }

    /// 400 `invalid_scope`.
    pub fn invalid_scope() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            oauth_codes::INVALID_SCOPE,
            "scope must be a space-separated subset of chat:read chat:write",
        )
    }

    /// 400 `unsupported_grant_type`.
    pub fn unsupported_grant_type() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            oauth_codes::UNSUPPORTED_GRANT_TYPE,
            "grant_type must be urn:ietf:params:oauth:grant-type:device_code",
        )
    }

    /// 413 `invalid_request`: the body is over 64 KiB.
    pub fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            oauth_codes::INVALID_REQUEST,
            format!("the body is over {MAX_BODY} bytes"),
        )
    }

    /// 405 `invalid_request`: these endpoints take POST only.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            oauth_codes::INVALID_REQUEST,
            "this endpoint takes POST only",
        )
    }

    /// The error code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The answer.
    pub fn response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        res.insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"));
        if let Some(secs) = self.retry_after {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            res.insert_header((header::ALLOW, "POST"));
        }
        res.json(OAuthError {
            error: self.code.to_string(),
            error_description: self.description.clone(),
        })
    }
}

impl fmt::Display for OAuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.description
        )
    }
}

impl ResponseError for OAuthFailure {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        self.response()
    }
}

/// A rate limit (429) or an unavailable service (503) met on a device endpoint.
impl From<ApiError> for OAuthFailure {
    fn from(e: ApiError) -> Self {
        let code = match e.status {
            StatusCode::TOO_MANY_REQUESTS => oauth_codes::RATE_LIMITED,
            StatusCode::SERVICE_UNAVAILABLE => oauth_codes::TEMPORARILY_UNAVAILABLE,
            s if s.is_server_error() => oauth_codes::SERVER_ERROR,
            _ => oauth_codes::INVALID_REQUEST,
        };
        Self {
            status: e.status,
            code,
            description: e.message,
            retry_after: e.retry_after,
        }
    }
}

/// The device endpoints' view of a device-flow failure: HTTP 400 with the RFC code.
impl From<DeviceFlowError> for OAuthFailure {
    fn from(e: DeviceFlowError) -> Self {
        use DeviceFlowError as F;
        let description = e.to_string();
        let code = match e {
            F::Core(core) => return ApiError::from(core).into(),
            F::InvalidScope => oauth_codes::INVALID_SCOPE,
            F::InvalidClient => oauth_codes::INVALID_CLIENT,
            F::InvalidGrant | F::BadSignature => oauth_codes::INVALID_GRANT,
            F::AccessDenied(_) => oauth_codes::ACCESS_DENIED,
            F::ExpiredToken => oauth_codes::EXPIRED_TOKEN,
            F::AuthorizationPending => oauth_codes::AUTHORIZATION_PENDING,
            F::SlowDown(_) => oauth_codes::SLOW_DOWN,
            // The approval side's failures never reach the device endpoints.
            F::InvalidRequest(_)
            | F::UnsupportedKeyType(_)
            | F::NotFound
            | F::Closed(_)
            | F::KeyNotProven
            | F::KeyTaken => oauth_codes::INVALID_REQUEST,
        };
        Self::new(StatusCode::BAD_REQUEST, code, description)
    }
}

/// The approval routes' view of a device-flow failure (`/api/native/device/*`).
impl From<DeviceFlowError> for ApiError {
    fn from(e: DeviceFlowError) -> Self {
        use DeviceFlowError as F;
        use StatusCode as S;
        let msg = e.to_string();
        match e {
            F::InvalidRequest(_) | F::InvalidScope => Self::invalid(msg),
            F::NotFound => Self::new(S::NOT_FOUND, codes::NOT_FOUND, msg),
            F::KeyNotProven => Self::new(S::CONFLICT, codes::KEY_NOT_PROVEN, msg),
            F::KeyTaken | F::Closed(_) => Self::new(S::CONFLICT, codes::CONFLICT, msg),
            F::AccessDenied(_)
            | F::ExpiredToken
            | F::InvalidGrant
            | F::InvalidClient
            | F::AuthorizationPending
            | F::SlowDown(_)
            | F::BadSignature
            | F::UnsupportedKeyType(_) => Self::new(
                S::CONFLICT,
                codes::CONFLICT,
                format!("the request is no longer pending: {msg}"),
            ),
            F::Core(core) => core.into(),
        }
    }
}

/// A failure of the `/device` page: always an HTML page (`routes::device_page::error_page`),
/// never JSON, with the status picked here.
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    heading: &'static str,
    text: String,
    retry_after: Option<HeaderValue>,
}

impl PageError {
    fn new(status: StatusCode, heading: &'static str, text: impl Into<String>) -> Self {
        Self {
            status,
            heading,
            text: text.into(),
            retry_after: None,
        }
    }

    /// 403: a form from elsewhere (wrong `Origin`, missing or wrong CSRF token).
    pub fn forbidden(text: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Not allowed", text)
    }

    /// 400: an incomplete or invalid form.
    pub fn bad_form(text: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "That did not work", text)
    }

    /// 401: the page's sign-in has lapsed.
    pub fn sign_in_again(text: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Sign in again", text)
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The page's heading.
    pub fn heading(&self) -> &'static str {
        self.heading
    }

    /// The page's text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// `Retry-After`, for a rate limit.
    pub fn retry_after(&self) -> Option<&HeaderValue> {
        self.retry_after.as_ref()
    }
}

/// Any API failure, in the page's words: the same status, a human text.
impl<E: Into<ApiError>> From<E> for PageError {
    fn from(e: E) -> Self {
        let api: ApiError = e.into();
        let status = api.status;
        let message = api.message.clone();
        let (heading, text) = match status.as_u16() {
            401 if api.code == codes::KEY_UNKNOWN => (
                "Sign-in failed",
                "This key belongs to no latchkey account. Use a key that is on your account."
                    .to_string(),
            ),
            401 => ("Sign-in failed", message),
            403 => ("Not allowed", message),
            404 => ("No such request", "No pending request has this code. Check the code on your device: it may be mistyped, expired, or already approved or denied.".to_string()),
            409 if api.code == codes::KEY_NOT_PROVEN => ("Not yet", message),
            409 => ("This request is closed", message),
            429 => ("Too many attempts", "Too many attempts from here. Wait a minute and try again.".to_string()),
            _ if status.is_server_error() => ("Something went wrong", "The service could not answer. Try again in a moment.".to_string()),
            _ => ("That did not work", message),
        };
        Self {
            status,
            heading,
            text,
            retry_after: api
                .retry_after
                .and_then(|s| HeaderValue::from_str(&s.to_string()).ok()),
        }
    }
}

impl fmt::Display for PageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.heading)
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        crate::routes::device_page::error_page(self)
    }
}

#[cfg(test)]
mod page_tests {
    use super::*;

    #[test]
    fn a_refused_pairing_code_is_one_401() {
        let e = ApiError::from(CoreError::PairingCodeInvalid);
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        assert_eq!(e.code(), codes::PAIRING_CODE_INVALID);
    }

    #[test]
    fn page_errors_keep_the_status_and_speak_plainly() {
        let limited = PageError::from(ApiError::rate_limited(7, "slow down"));
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(limited.heading(), "Too many attempts");
        assert_eq!(limited.retry_after().map(|v| v.as_bytes()), Some(&b"7"[..]));
        let unknown = PageError::from(CoreError::KeyUnknown);
        assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
        assert!(unknown.text().contains("no latchkey account"));
        let hidden = PageError::from(CoreError::Internal("secret detail".into()));
        assert!(!hidden.text().contains("secret detail"));
        assert_eq!(PageError::forbidden("x").status(), StatusCode::FORBIDDEN);
    }
}

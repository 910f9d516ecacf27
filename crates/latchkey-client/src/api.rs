//! [`Api`]: one typed, blocking call per route of DESIGN §7, with `latchkey-proto`'s types
//! in and out. Errors are [`Error::Unreachable`] (nothing answered) or [`Error::Http`]
//! (the server's `{error, message}`).
//!
//! Must not: log, or put the token anywhere but the `Authorization` header.

use crate::Error;
use latchkey_proto::{
    AddKeyRequest, ChallengeRequest, ChallengeResponse, CreateRoomRequest, CreateTokenRequest,
    CreateTokenResponse, ErrorBody, HealthResponse, History, HistoryQuery, InfoResponse, KeyInfo,
    KeyList, MeResponse, PingResponse, PostMessageRequest, PostMessageResponse, RevokeAllRequest,
    RevokeAllResponse, RoomInfo, RoomList, RoomVisibility, TokenList, TokenRequest, TokenResponse,
    WsTicketResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;

/// How long one HTTP request may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A latchkey server, with or without a bearer token.
#[derive(Clone)]
pub struct Api {
    base: String,
    agent: ureq::Agent,
    token: Option<String>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token = if self.token.is_some() {
            "<token>"
        } else {
            "none"
        };
        write!(f, "Api({}, {token})", self.base)
    }
}

/// An HTTP method, as [`Api`]'s calls use them.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Method {
    Get,
    Post,
    Delete,
}

impl Api {
    /// A client for `server` (`http://host:port` or `https://...`; a trailing `/` is fine).
    pub fn new(server: &str) -> Result<Api, Error> {
        let base = server.trim().trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) || base.len() < 9 {
            return Err(Error::Protocol(format!(
                "{server:?} is not a server URL: use http://HOST:PORT or https://HOST"
            )));
        }
        let agent = ureq::AgentBuilder::new()
            .timeout(TIMEOUT)
            .redirects(0)
            .user_agent(concat!("latchkey-client/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Api {
            base,
            agent,
            token: None,
        })
    }

    /// The same server with a bearer token.
    pub fn with_token(&self, token: &str) -> Api {
        Api {
            token: Some(token.trim().to_string()),
            ..self.clone()
        }
    }

    /// The server URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The bearer token, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// `GET /api/native/info`: the server id, namespace and accepted key types.
    pub fn info(&self) -> Result<InfoResponse, Error> {
        self.get("/api/native/info", &[])
    }

    /// `POST /api/native/challenge`: a challenge for `public_key` (an OpenSSH key line).
    pub fn challenge(&self, public_key: &str) -> Result<ChallengeResponse, Error> {
        let body = ChallengeRequest {
            public_key: public_key.to_string(),
        };
        self.send(Method::Post, "/api/native/challenge", Some(&body))
    }

    /// `POST /api/native/token`: trades a signed challenge for a session token. Prefer
    /// [`crate::login`], which runs the relay defence first.
    pub fn redeem(&self, request: &TokenRequest) -> Result<TokenResponse, Error> {
        self.send(Method::Post, "/api/native/token", Some(request))
    }

    /// `GET /api/native/me`.
    pub fn me(&self) -> Result<MeResponse, Error> {
        self.get("/api/native/me", &[])
    }

    /// `GET /api/native/ping`: an auth-checked health check.
    pub fn ping(&self) -> Result<PingResponse, Error> {
        self.get("/api/native/ping", &[])
    }

    /// `DELETE /api/native/token`: revokes the presented token (log out).
    pub fn logout(&self) -> Result<(), Error> {
        self.send_empty(Method::Delete, "/api/native/token", None::<&()>)
    }

    /// `GET /api/native/tokens` (session only).
    pub fn tokens(&self) -> Result<TokenList, Error> {
        self.get("/api/native/tokens", &[])
    }

    /// `POST /api/native/tokens`: a personal access token, shown once (session only).
    pub fn create_token(&self, request: &CreateTokenRequest) -> Result<CreateTokenResponse, Error> {
        self.send(Method::Post, "/api/native/tokens", Some(request))
    }

    /// `DELETE /api/native/tokens/{id}` (session only).
    pub fn revoke_token(&self, token_id: &str) -> Result<(), Error> {
        let path = format!("/api/native/tokens/{}", segment(token_id)?);
        self.send_empty(Method::Delete, &path, None::<&()>)
    }

    /// `POST /api/native/tokens/revoke-all` (session only).
    pub fn revoke_all(&self, keep_current: bool) -> Result<RevokeAllResponse, Error> {
        let body = RevokeAllRequest { keep_current };
        self.send(Method::Post, "/api/native/tokens/revoke-all", Some(&body))
    }

    /// `GET /api/native/keys` (session only).
    pub fn keys(&self) -> Result<KeyList, Error> {
        self.get("/api/native/keys", &[])
    }

    /// `POST /api/native/keys/challenge`: a challenge the new key must sign (session only).
    pub fn key_challenge(&self, public_key: &str) -> Result<ChallengeResponse, Error> {
        let body = ChallengeRequest {
            public_key: public_key.to_string(),
        };
        self.send(Method::Post, "/api/native/keys/challenge", Some(&body))
    }

    /// `POST /api/native/keys`: adds the key that signed the challenge (session only).
    pub fn add_key(&self, request: &AddKeyRequest) -> Result<KeyInfo, Error> {
        self.send(Method::Post, "/api/native/keys", Some(request))
    }

    /// `DELETE /api/native/keys/{key_id}`: also revokes the sessions it minted.
    pub fn remove_key(&self, key_id: &str) -> Result<(), Error> {
        let path = format!("/api/native/keys/{}", segment(key_id)?);
        self.send_empty(Method::Delete, &path, None::<&()>)
    }

    /// `POST /api/native/ws-ticket`: a single-use ticket for `GET /api/native/ws?ticket=`.
    pub fn ws_ticket(&self) -> Result<WsTicketResponse, Error> {
        self.send(Method::Post, "/api/native/ws-ticket", None::<&()>)
    }

    /// `POST /api/native/rooms`.
    pub fn create_room(&self, name: &str, visibility: RoomVisibility) -> Result<RoomInfo, Error> {
        let body = CreateRoomRequest {
            name: name.to_string(),
            visibility,
        };
        self.send(Method::Post, "/api/native/rooms", Some(&body))
    }

    /// `GET /api/native/rooms`: mine, or with `discover` the public rooms.
    pub fn rooms(&self, discover: bool) -> Result<RoomList, Error> {
        let query = if discover {
            vec![("discover", "public".to_string())]
        } else {
            Vec::new()
        };
        self.get("/api/native/rooms", &query)
    }

    /// `GET /api/native/rooms/{id}`.
    pub fn room(&self, room_id: &str) -> Result<RoomInfo, Error> {
        self.get(&format!("/api/native/rooms/{}", segment(room_id)?), &[])
    }

    /// `POST /api/native/rooms/{id}/join` (public rooms).
    pub fn join(&self, room_id: &str) -> Result<RoomInfo, Error> {
        let path = format!("/api/native/rooms/{}/join", segment(room_id)?);
        self.send(Method::Post, &path, None::<&()>)
    }

    /// `POST /api/native/rooms/{id}/leave`.
    pub fn leave(&self, room_id: &str) -> Result<(), Error> {
        let path = format!("/api/native/rooms/{}/leave", segment(room_id)?);
        self.send_empty(Method::Post, &path, None::<&()>)
    }

    /// `POST /api/native/rooms/{id}/members`: the owner adds a member (private rooms).
    pub fn add_member(&self, room_id: &str, user_id: &str) -> Result<(), Error> {
        let path = format!("/api/native/rooms/{}/members", segment(room_id)?);
        let body = latchkey_proto::AddMemberRequest {
            user_id: user_id.to_string(),
        };
        self.send_empty(Method::Post, &path, Some(&body))
    }

    /// `DELETE /api/native/rooms/{id}/members/{user_id}`.
    pub fn remove_member(&self, room_id: &str, user_id: &str) -> Result<(), Error> {
        let path = format!(
            "/api/native/rooms/{}/members/{}",
            segment(room_id)?,
            segment(user_id)?
        );
        self.send_empty(Method::Delete, &path, None::<&()>)
    }

    /// `POST /api/native/rooms/{id}/messages`.
    pub fn post(
        &self,
        room_id: &str,
        request: &PostMessageRequest,
    ) -> Result<PostMessageResponse, Error> {
        let path = format!("/api/native/rooms/{}/messages", segment(room_id)?);
        self.send(Method::Post, &path, Some(request))
    }

    /// `GET /api/native/rooms/{id}/messages`: one page, newest first.
    pub fn history(&self, room_id: &str, query: &HistoryQuery) -> Result<History, Error> {
        let path = format!("/api/native/rooms/{}/messages", segment(room_id)?);
        let mut q = Vec::new();
        if let Some(b) = query.before {
            q.push(("before", b.to_string()));
        }
        if let Some(a) = query.after {
            q.push(("after", a.to_string()));
        }
        if let Some(l) = query.limit {
            q.push(("limit", l.to_string()));
        }
        self.get(&path, &q)
    }

    /// `GET /healthz`.
    pub fn healthz(&self) -> Result<HealthResponse, Error> {
        self.get("/healthz", &[])
    }

    /// `GET /readyz`.
    pub fn readyz(&self) -> Result<HealthResponse, Error> {
        self.get("/readyz", &[])
    }

    /// `GET /api/openapi.json`: the OpenAPI 3.1 document.
    pub fn openapi(&self) -> Result<serde_json::Value, Error> {
        self.get("/api/openapi.json", &[])
    }

    /// `GET /metrics`: the Prometheus text exposition.
    pub fn metrics(&self) -> Result<String, Error> {
        let resp = self.run(self.request(Method::Get, "/metrics").call())?;
        resp.into_string()
            .map_err(|e| Error::Protocol(format!("reading the answer: {e}")))
    }

    /// `ws://` or `wss://` URL of `/api/native/ws`.
    pub fn ws_url(&self) -> String {
        let rest = self
            .base
            .strip_prefix("https://")
            .map(|r| format!("wss://{r}"))
            .or_else(|| {
                self.base
                    .strip_prefix("http://")
                    .map(|r| format!("ws://{r}"))
            })
            .unwrap_or_else(|| self.base.clone());
        format!("{rest}/api/native/ws")
    }

    fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> Result<T, Error> {
        let mut req = self.request(Method::Get, path);
        for (k, v) in query {
            req = req.query(k, v);
        }
        decode(self.run(req.call())?)
    }

    fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, Error> {
        decode(self.send_raw(method, path, body)?)
    }

    fn send_empty(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<(), Error> {
        self.send_raw(method, path, body).map(|_| ())
    }

    fn send_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<ureq::Response, Error> {
        let req = self.request(method, path);
        let result = match body {
            Some(b) => {
                let value = serde_json::to_value(b)
                    .map_err(|e| Error::Protocol(format!("encoding the request: {e}")))?;
                req.send_json(value)
            }
            None => req.call(),
        };
        self.run(result)
    }

    /// A request with the bearer header, if any.
    pub(crate) fn request(&self, method: Method, path: &str) -> ureq::Request {
        let verb = match method {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        };
        let req = self.agent.request(verb, &format!("{}{path}", self.base));
        match &self.token {
            Some(t) => req.set("Authorization", &format!("Bearer {t}")),
            None => req,
        }
    }

    /// Turns a ureq result into a response or a typed error.
    pub(crate) fn run(
        &self,
        result: Result<ureq::Response, ureq::Error>,
    ) -> Result<ureq::Response, Error> {
        match result {
            Ok(resp) => Ok(resp),
            Err(ureq::Error::Status(status, resp)) => {
                let retry_after = resp
                    .header("Retry-After")
                    .and_then(|v| v.trim().parse::<u64>().ok());
                let text = resp.into_string().unwrap_or_default();
                let body = serde_json::from_str::<ErrorBody>(&text).unwrap_or_else(|_| ErrorBody {
                    error: format!("http_{status}"),
                    message: "the server's answer was not latchkey's error shape".to_string(),
                });
                Err(Error::Http {
                    status,
                    body,
                    retry_after,
                })
            }
            Err(ureq::Error::Transport(t)) => Err(Error::Unreachable {
                url: self.base.clone(),
                reason: t.kind().to_string(),
            }),
        }
    }
}

/// Reads a JSON body.
pub(crate) fn decode<T: DeserializeOwned>(resp: ureq::Response) -> Result<T, Error> {
    let text = resp
        .into_string()
        .map_err(|e| Error::Protocol(format!("reading the answer: {e}")))?;
    serde_json::from_str(&text).map_err(|e| Error::Protocol(format!("decoding the answer: {e}")))
}

/// An id as a path segment: ids are UUIDs or similar, never anything to escape.
fn segment(id: &str) -> Result<&str, Error> {
    if !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(id)
    } else {
        Err(Error::Protocol(format!("{id:?} is not an id")))
    }
}

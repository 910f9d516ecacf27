//! Chat fixtures for the room, WebSocket and model tests: signed-in users, the room REST
//! calls, a real WebSocket client ([`Ws`], tungstenite over a plain `TcpStream`) whose
//! frames are read on a thread of its own, and a [`Follower`] that follows one user's
//! events across reconnects with `resume`, the way a real client keeps its cursor.
//!
//! Must not: sleep to wait for a condition (every wait polls or blocks with a deadline),
//! or know anything about the server's internals: only what a client sees on the wire.

use crate::server::{Key, Resp, Server};
use latchkey_proto::TokenResponse;
use serde_json::{json, Value};
use std::net::TcpStream;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::{Duration, Instant};
use tungstenite::client::IntoClientRequest;
use tungstenite::http::HeaderValue;
use tungstenite::protocol::WebSocket;
use tungstenite::{Error as WsError, HandshakeError, Message};

/// The rooms collection.
pub const ROOMS: &str = "/api/native/rooms";
/// The WebSocket path.
pub const WS: &str = "/api/native/ws";

/// How long a test waits for a frame that must come.
pub const FRAME_DEADLINE: Duration = Duration::from_secs(10);

// ---- users ----

/// A user signed in with a real `ssh-keygen` key.
pub struct User {
    /// The key (kept, to sign in again after a revocation).
    pub key: Key,
    /// The current session token.
    pub token: String,
    /// Its id.
    pub token_id: String,
    /// The user's id.
    pub id: String,
    /// The handle asked for.
    pub handle: String,
}

impl User {
    /// A new key and a first sign-in (which registers the user) with `handle`.
    pub fn new(server: &Server, handle: &str) -> User {
        let key = Key::generate(server.scratch(), "ed25519", handle);
        let t: TokenResponse = server.sign_in(&key, Some(handle));
        assert_eq!(t.user.handle, handle, "handle of a new user");
        User {
            key,
            token: t.token,
            token_id: t.token_id,
            id: t.user.id,
            handle: handle.to_string(),
        }
    }

    /// A fresh session token for the same user (after a logout or revocation).
    pub fn sign_in_again(&mut self, server: &Server) {
        let t = server.sign_in(&self.key, None);
        assert_eq!(t.user.id, self.id, "same key, same user");
        self.token = t.token;
        self.token_id = t.token_id;
    }

    /// `DELETE /api/native/token` with the current token; asserts 204.
    pub fn log_out(&self, server: &Server) {
        server
            .send("DELETE", "/api/native/token", Some(&self.token), None)
            .expect(204);
    }
}

/// Signs in `n` users named `{prefix}{i}`.
pub fn users(server: &Server, prefix: &str, n: usize) -> Vec<User> {
    (0..n)
        .map(|i| User::new(server, &format!("{prefix}{i}")))
        .collect()
}

/// A personal access token of `user` with these scopes.
pub fn pat(server: &Server, user: &User, scopes: &[&str]) -> String {
    let body = json!({ "name": "test pat", "scopes": scopes });
    let resp = server.post_json("/api/native/tokens", &body, Some(&user.token));
    let v: Value = resp.expect(201).json();
    v["token"].as_str().expect("token").to_string()
}

// ---- rooms over REST ----

/// `/api/native/rooms/{id}{rest}`.
pub fn room_path(room: &str, rest: &str) -> String {
    format!("{ROOMS}/{room}{rest}")
}

/// `POST /api/native/rooms`; returns the answer whatever its status.
pub fn try_create_room(server: &Server, token: &str, name: &str, visibility: &str) -> Resp {
    let body = json!({ "name": name, "visibility": visibility });
    server.post_json(ROOMS, &body, Some(token))
}

/// Creates a room; asserts 201 and returns its id.
pub fn create_room(server: &Server, token: &str, name: &str, visibility: &str) -> String {
    let v: Value = try_create_room(server, token, name, visibility)
        .expect(201)
        .json();
    v["id"].as_str().expect("room id").to_string()
}

/// `POST .../join`.
pub fn join(server: &Server, token: &str, room: &str) -> Resp {
    server.send("POST", &room_path(room, "/join"), Some(token), None)
}

/// `POST .../leave`.
pub fn leave(server: &Server, token: &str, room: &str) -> Resp {
    server.send("POST", &room_path(room, "/leave"), Some(token), None)
}

/// `POST .../members {user_id}`.
pub fn add_member(server: &Server, token: &str, room: &str, user_id: &str) -> Resp {
    let body = json!({ "user_id": user_id });
    server.post_json(&room_path(room, "/members"), &body, Some(token))
}

/// `DELETE .../members/{user_id}`.
pub fn remove_member(server: &Server, token: &str, room: &str, user_id: &str) -> Resp {
    server.send(
        "DELETE",
        &room_path(room, &format!("/members/{user_id}")),
        Some(token),
        None,
    )
}

/// `POST .../messages`, with targets when any are given.
pub fn post(server: &Server, token: &str, room: &str, body: &str, targets: &[&str]) -> Resp {
    let mut req = json!({ "body": body });
    if !targets.is_empty() {
        req["target_user_ids"] = json!(targets);
    }
    server.post_json(&room_path(room, "/messages"), &req, Some(token))
}

/// Posts; asserts 201 and returns `(message_id, seq)`.
pub fn posted(
    server: &Server,
    token: &str,
    room: &str,
    body: &str,
    targets: &[&str],
) -> (String, u64) {
    let v: Value = post(server, token, room, body, targets).expect(201).json();
    let id = v["message_id"].as_str().expect("message_id").to_string();
    let seq = v["seq"].as_u64().expect("seq");
    (id, seq)
}

/// `GET .../messages?query`.
pub fn history(server: &Server, token: &str, room: &str, query: &str) -> Resp {
    let q = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    server.get(&room_path(room, &format!("/messages{q}")), Some(token))
}

/// Every message of a room the caller may see, newest first, following `next_before`
/// with pages of `limit`; asserts 200 on every page.
pub fn full_history(server: &Server, token: &str, room: &str, limit: u32) -> Vec<Value> {
    let mut out = Vec::new();
    let mut before: Option<u64> = None;
    for _ in 0..10_000 {
        let q = match before {
            Some(b) => format!("limit={limit}&before={b}"),
            None => format!("limit={limit}"),
        };
        let page: Value = history(server, token, room, &q).expect(200).json();
        let messages = page["messages"].as_array().expect("messages").clone();
        assert!(
            messages.len() <= limit as usize,
            "page over its limit: {page}"
        );
        out.extend(messages);
        match page["next_before"].as_u64() {
            Some(b) => {
                assert!(
                    before.is_none_or(|p| b < p),
                    "next_before must fall: {page}"
                );
                before = Some(b);
            }
            None => {
                assert!(page["next_before"].is_null(), "next_before: {page}");
                return out;
            }
        }
    }
    panic!("history of {room} does not end");
}

/// The `seq`s of history messages.
pub fn seqs(messages: &[Value]) -> Vec<u64> {
    messages
        .iter()
        .map(|m| m["seq"].as_u64().expect("message seq"))
        .collect()
}

// ---- the WebSocket client ----

/// What the reader thread saw, in order.
#[derive(Debug, Clone)]
pub enum Incoming {
    /// A text frame, parsed as JSON (`Value::String` of the raw text when it is not JSON).
    Text(Value),
    /// A binary frame (the server never sends one).
    Binary,
    /// A close frame: its code (none when the frame had no payload) and reason.
    Close(Option<u16>, String, Instant),
    /// The connection ended (after a close, or abruptly); no more items follow.
    Gone(String),
}

enum Out {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Close,
}

/// A refused upgrade: the HTTP status and body.
#[derive(Debug)]
pub struct Refused {
    /// The status.
    pub status: u16,
    /// The body.
    pub body: String,
}

/// A WebSocket connection whose frames a thread reads into a channel.
pub struct Ws {
    out: Option<Sender<Out>>,
    inbox: Receiver<Incoming>,
    /// The close frame, once one was read.
    pub closed: Option<(Option<u16>, String, Instant)>,
    gone: bool,
}

/// `ws://127.0.0.1:PORT` of a server.
fn ws_base(server: &Server) -> String {
    server.url().replacen("http://", "ws://", 1)
}

/// Opens `path` (with any query) with an optional bearer header.
pub fn try_connect(server: &Server, path: &str, bearer: Option<&str>) -> Result<Ws, Refused> {
    let url = format!("{}{path}", ws_base(server));
    let mut req = url.as_str().into_client_request().expect("ws request");
    if let Some(t) = bearer {
        let v = HeaderValue::from_str(&format!("Bearer {t}")).expect("header value");
        req.headers_mut().insert("Authorization", v);
    }
    let addr = server.url().trim_start_matches("http://").to_string();
    let stream = TcpStream::connect(&addr).expect("connect to the server");
    stream
        .set_read_timeout(Some(FRAME_DEADLINE))
        .expect("read timeout");
    stream.set_nodelay(true).expect("nodelay");
    let (ws, _resp) = match tungstenite::client::client(req, stream) {
        Ok(ok) => ok,
        Err(HandshakeError::Failure(WsError::Http(resp))) => {
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            return Err(Refused {
                status: resp.status().as_u16(),
                body,
            });
        }
        Err(e) => panic!("WebSocket handshake with {url}: {e}"),
    };
    // Short reads from now on, so the thread also gets to write what the test sends.
    ws.get_ref()
        .set_read_timeout(Some(Duration::from_millis(5)))
        .expect("read timeout");
    let (out_tx, out_rx) = mpsc::channel();
    let (in_tx, in_rx) = mpsc::channel();
    std::thread::spawn(move || pump(ws, out_rx, in_tx));
    Ok(Ws {
        out: Some(out_tx),
        inbox: in_rx,
        closed: None,
        gone: false,
    })
}

/// Opens the WebSocket with a bearer token; panics on a refusal.
pub fn connect(server: &Server, token: &str) -> Ws {
    try_connect(server, WS, Some(token))
        .unwrap_or_else(|r| panic!("upgrade refused: {} {}", r.status, r.body))
}

/// The reader/writer thread: writes what the test queued, then reads for a few ms.
fn pump(mut ws: WebSocket<TcpStream>, out: Receiver<Out>, inbox: Sender<Incoming>) {
    loop {
        loop {
            let sent = match out.try_recv() {
                Ok(Out::Text(t)) => ws.send(Message::text(t)),
                Ok(Out::Binary(b)) => ws.send(Message::binary(b)),
                Ok(Out::Ping(b)) => ws.send(Message::Ping(b.into())),
                Ok(Out::Close) => match ws.close(None) {
                    Ok(()) | Err(WsError::AlreadyClosed) | Err(WsError::ConnectionClosed) => {
                        ws.flush()
                    }
                    Err(e) => Err(e),
                },
                // The test dropped the client: drop the socket without a close frame.
                Err(TryRecvError::Disconnected) => return,
                Err(TryRecvError::Empty) => break,
            };
            match sent {
                Ok(()) | Err(WsError::AlreadyClosed) | Err(WsError::ConnectionClosed) => {}
                Err(WsError::Io(e)) if would_block(&e) => {}
                Err(e) => {
                    let _ = inbox.send(Incoming::Gone(format!("write: {e}")));
                    return;
                }
            }
        }
        let item = match ws.read() {
            Ok(Message::Text(t)) => {
                let text = t.as_str();
                let v = serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.into()));
                Incoming::Text(v)
            }
            Ok(Message::Binary(_)) => Incoming::Binary,
            Ok(Message::Close(f)) => {
                let (code, reason) = match f {
                    Some(f) => (Some(u16::from(f.code)), f.reason.as_str().to_string()),
                    None => (None, String::new()),
                };
                Incoming::Close(code, reason, Instant::now())
            }
            Ok(_) => continue, // ping/pong: tungstenite answers pings itself
            Err(WsError::Io(e)) if would_block(&e) => continue,
            Err(WsError::ConnectionClosed) | Err(WsError::AlreadyClosed) => {
                let _ = inbox.send(Incoming::Gone("closed".into()));
                return;
            }
            Err(e) => {
                let _ = inbox.send(Incoming::Gone(format!("read: {e}")));
                return;
            }
        };
        if inbox.send(item).is_err() {
            return;
        }
    }
}

fn would_block(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

impl Ws {
    /// Sends a text frame.
    pub fn send_text(&self, text: &str) {
        if let Some(out) = &self.out {
            let _ = out.send(Out::Text(text.to_string()));
        }
    }

    /// Sends a JSON value as a text frame.
    pub fn send_json(&self, v: &Value) {
        self.send_text(&v.to_string());
    }

    /// Sends a binary frame.
    pub fn send_binary(&self, bytes: &[u8]) {
        if let Some(out) = &self.out {
            let _ = out.send(Out::Binary(bytes.to_vec()));
        }
    }

    /// Sends a WebSocket ping control frame (not the `{"op":"ping"}` text frame).
    pub fn send_ping(&self, payload: &[u8]) {
        if let Some(out) = &self.out {
            let _ = out.send(Out::Ping(payload.to_vec()));
        }
    }

    /// Starts the close handshake (the reader goes on until the server closes).
    pub fn close(&self) {
        if let Some(out) = &self.out {
            let _ = out.send(Out::Close);
        }
    }

    /// The next item within `within`, or `None` at the deadline (or after `Gone`).
    pub fn next(&mut self, within: Duration) -> Option<Incoming> {
        if self.gone {
            return None;
        }
        match self.inbox.recv_timeout(within) {
            Ok(item) => Some(self.note(item)),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                self.gone = true;
                None
            }
        }
    }

    /// An item already received, without waiting.
    pub fn try_next(&mut self) -> Option<Incoming> {
        if self.gone {
            return None;
        }
        match self.inbox.try_recv() {
            Ok(item) => Some(self.note(item)),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                self.gone = true;
                None
            }
        }
    }

    fn note(&mut self, item: Incoming) -> Incoming {
        match &item {
            Incoming::Close(code, reason, at) => {
                self.closed.get_or_insert((*code, reason.clone(), *at));
            }
            Incoming::Gone(_) => self.gone = true,
            _ => {}
        }
        item
    }

    /// The next text frame within `within`; panics on a timeout, a close or anything else.
    #[track_caller]
    pub fn frame(&mut self, within: Duration) -> Value {
        match self.next(within) {
            Some(Incoming::Text(v)) => v,
            other => panic!("expected a text frame within {within:?}, got {other:?}"),
        }
    }

    /// The `hello` frame (the first one); asserts its shape.
    #[track_caller]
    pub fn hello(&mut self) -> Value {
        let v = self.frame(FRAME_DEADLINE);
        assert_eq!(v["type"], "hello", "first frame must be hello: {v}");
        assert!(v["user_id"].is_string(), "hello.user_id: {v}");
        assert!(v["connection_id"].is_string(), "hello.connection_id: {v}");
        assert!(v["head"].is_u64(), "hello.head: {v}");
        assert!(v["rooms"].is_array(), "hello.rooms: {v}");
        v
    }

    /// Text frames until one matches `pred`, which is returned with every frame before it.
    #[track_caller]
    pub fn until(
        &mut self,
        within: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> (Value, Vec<Value>) {
        let end = Instant::now() + within;
        let mut before = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.next(left) {
                Some(Incoming::Text(v)) if pred(&v) => return (v, before),
                Some(Incoming::Text(v)) => before.push(v),
                other => {
                    panic!("no matching frame within {within:?}: got {other:?} after {before:?}")
                }
            }
        }
    }

    /// Frames until the close frame, within `within`; returns the code, the reason, when
    /// it was read, and the text frames before it. Panics if the connection ends without
    /// a close frame or the deadline passes.
    #[track_caller]
    pub fn expect_close(&mut self, within: Duration) -> (Option<u16>, String, Instant, Vec<Value>) {
        let end = Instant::now() + within;
        let mut before = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.next(left) {
                Some(Incoming::Close(code, reason, at)) => return (code, reason, at, before),
                Some(Incoming::Text(v)) => before.push(v),
                Some(Incoming::Binary) => panic!("the server sent a binary frame"),
                Some(Incoming::Gone(why)) => {
                    panic!("connection ended without a close frame ({why}); frames: {before:?}")
                }
                None => panic!("no close frame within {within:?}; frames: {before:?}"),
            }
        }
    }

    /// Drops the socket without a close frame.
    pub fn drop_abruptly(mut self) {
        self.out = None;
    }
}

/// Sends `{"op":"ping"}` and reads up to its `pong`: live delivery starts at once.
#[track_caller]
pub fn start_live(ws: &mut Ws) {
    ws.send_json(&json!({"op": "ping"}));
    let (_, before) = ws.until(FRAME_DEADLINE, |v| v["type"] == "pong");
    assert!(
        before.is_empty(),
        "frames before the first pong: {before:?}"
    );
}

/// Connects, reads `hello`, and starts live delivery with a ping.
pub fn live(server: &Server, token: &str) -> (Ws, Value) {
    let mut ws = connect(server, token);
    let hello = ws.hello();
    start_live(&mut ws);
    (ws, hello)
}

/// Whether a frame is a room event of `room`.
pub fn is_event_of(v: &Value, room: &str) -> bool {
    v["type"] == "event" && v["room_id"] == room
}

// ---- a client that follows one user across reconnects ----

/// One connection's `hello` and what came of its `resume`.
#[derive(Debug, Clone)]
pub struct Session {
    /// The `hello` frame.
    pub hello: Value,
    /// The `since` sent.
    pub since: u64,
    /// The `resumed` frame, once it came.
    pub resumed: Option<Value>,
    /// The close code, if the server closed it.
    pub close: Option<Option<u16>>,
}

/// Follows one user's events over any number of connections, each opened with
/// `{"op":"resume","since":cursor}`, where the cursor is the highest seq the client has
/// seen (an event's seq, or a `resumed.to`).
pub struct Follower {
    /// For messages.
    pub name: String,
    ws: Option<Ws>,
    /// Highest seq seen.
    pub cursor: u64,
    /// Every event frame received, in order, over every connection.
    pub events: Vec<Value>,
    /// Every connection made.
    pub sessions: Vec<Session>,
    /// Frames that are neither events nor the expected protocol frames.
    pub odd: Vec<Value>,
}

impl Follower {
    /// A follower that has seen nothing (cursor 0: a first resume replays everything).
    pub fn new(name: &str) -> Follower {
        Follower {
            name: name.to_string(),
            ws: None,
            cursor: 0,
            events: Vec::new(),
            sessions: Vec::new(),
            odd: Vec::new(),
        }
    }

    /// Whether a connection is open.
    pub fn connected(&self) -> bool {
        self.ws.is_some()
    }

    /// Opens a connection with `token`, reads `hello`, and sends `resume` from the cursor.
    pub fn connect(&mut self, server: &Server, token: &str) {
        assert!(self.ws.is_none(), "{}: already connected", self.name);
        let mut ws = connect(server, token);
        let hello = ws.hello();
        ws.send_json(&json!({"op": "resume", "since": self.cursor}));
        self.sessions.push(Session {
            hello,
            since: self.cursor,
            resumed: None,
            close: None,
        });
        self.ws = Some(ws);
    }

    /// Takes in whatever has arrived, without waiting. False once the connection is gone.
    pub fn pump(&mut self) -> bool {
        self.pump_for(Duration::ZERO)
    }

    /// Like [`Follower::pump`], waiting up to `within` for the first item.
    pub fn pump_for(&mut self, within: Duration) -> bool {
        let Some(ws) = self.ws.as_mut() else {
            return false;
        };
        let mut first = Some(within);
        loop {
            let item = match first.take() {
                Some(w) if !w.is_zero() => ws.next(w),
                _ => ws.try_next(),
            };
            let Some(item) = item else {
                if ws.gone {
                    self.ws = None;
                    return false;
                }
                return true;
            };
            let session = self.sessions.last_mut().expect("a session");
            match item {
                Incoming::Text(v) => match v["type"].as_str() {
                    Some("event") => {
                        if let Some(seq) = v["seq"].as_u64() {
                            self.cursor = self.cursor.max(seq);
                        }
                        self.events.push(v);
                    }
                    Some("resumed") if session.resumed.is_none() => {
                        if let Some(to) = v["to"].as_u64() {
                            self.cursor = self.cursor.max(to);
                        }
                        session.resumed = Some(v);
                    }
                    _ => self.odd.push(v),
                },
                Incoming::Binary => self.odd.push(json!("binary frame")),
                Incoming::Close(code, _, _) => session.close = Some(code),
                Incoming::Gone(_) => {
                    self.ws = None;
                    return false;
                }
            }
        }
    }

    /// Pumps until the current connection's `resumed` arrived (or panics at `within`).
    #[track_caller]
    pub fn wait_resumed(&mut self, within: Duration) {
        let end = Instant::now() + within;
        while self.sessions.last().is_some_and(|s| s.resumed.is_none()) {
            let left = end.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{}: no `resumed` within {within:?}; session {:?}; odd frames {:?}",
                self.name,
                self.sessions.last(),
                self.odd
            );
            if !self.pump_for(left.min(Duration::from_millis(50))) && self.ws.is_none() {
                panic!(
                    "{}: connection ended before `resumed`: {:?}",
                    self.name,
                    self.sessions.last()
                );
            }
        }
    }

    /// Closes with a close frame, reading what arrives until the server's close frame (and
    /// then drops the socket without waiting for the server to end TCP), or drops the
    /// socket abruptly, discarding anything unread.
    pub fn disconnect(&mut self, graceful: bool) {
        let Some(ws) = self.ws.take() else { return };
        if !graceful {
            ws.drop_abruptly();
            return;
        }
        ws.close();
        self.ws = Some(ws);
        let end = Instant::now() + FRAME_DEADLINE;
        while self.pump_for(Duration::from_millis(50)) {
            if self.sessions.last().is_some_and(|s| s.close.is_some()) {
                break;
            }
            assert!(
                Instant::now() < end,
                "{}: the server did not answer the close frame",
                self.name
            );
        }
        if let Some(ws) = self.ws.take() {
            ws.drop_abruptly();
        }
    }

    /// Waits for the server's close frame (reading what comes before it), then drops the
    /// socket; returns the close code.
    #[track_caller]
    pub fn expect_closed(&mut self, within: Duration) -> Option<u16> {
        let end = Instant::now() + within;
        while self.pump_for(Duration::from_millis(50)) {
            if self.sessions.last().is_some_and(|s| s.close.is_some()) {
                break;
            }
            assert!(
                Instant::now() < end,
                "{}: not closed within {within:?}",
                self.name
            );
        }
        if let Some(ws) = self.ws.take() {
            ws.drop_abruptly();
        }
        self.sessions
            .last()
            .and_then(|s| s.close)
            .unwrap_or_else(|| panic!("{}: connection ended without a close frame", self.name))
    }

    /// The seqs of every event received, in order.
    pub fn seqs(&self) -> Vec<u64> {
        self.events
            .iter()
            .map(|e| e["seq"].as_u64().expect("event seq"))
            .collect()
    }
}

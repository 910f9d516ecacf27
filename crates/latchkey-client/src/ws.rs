//! [`Subscription`]: the WebSocket (DESIGN §8) as an iterator of events that survives
//! restarts. It reconnects with backoff and resumes from its last seq, so across any
//! number of reconnects every visible event arrives exactly once, in seq order. A 4001
//! close (credential revoked or expired) stops it with [`Error::CredentialClosed`];
//! `resume_failed` makes it refetch the gap's messages over REST.
//!
//! Must not: deliver a seq twice or out of order; retry forever against a server it never
//! reached (the first connection's failure is returned).

use crate::pace::{Backoff, RealSleeper, Sleeper};
use crate::{Api, Error};
use latchkey_proto::ws::ServerFrame;
use latchkey_proto::{HistoryQuery, Message};
use std::collections::VecDeque;
use std::net::TcpStream;
use std::time::Duration;
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::HandshakeError;
use tungstenite::protocol::WebSocket;

/// Close code (DESIGN §8): the credential was revoked or expired, or the user disabled.
pub const CLOSE_CREDENTIAL: u16 = 4001;
/// Close code (DESIGN §8): the server refused a client frame as malformed.
pub const CLOSE_MALFORMED: u16 = 4000;

/// How long a read may see nothing before the connection counts as dead (the server
/// pings every 25 s).
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one TCP connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// History page size for the refetch after `resume_failed`.
const PAGE: u32 = 200;

/// What a [`Subscription`] yields.
#[derive(Clone, Debug, PartialEq)]
pub enum SubscriptionEvent {
    /// A connection was (re)established.
    Hello {
        /// Who is connected.
        user_id: String,
        /// The server's connection id.
        connection_id: String,
        /// The seq at which the server registered this connection.
        head: u64,
        /// The rooms the user is a member of.
        rooms: Vec<String>,
        /// The seq this connection resumes after, if it resumes.
        resuming_after: Option<u64>,
    },
    /// A room event, exactly once and in seq order.
    Event {
        /// Global seq.
        seq: u64,
        /// The room.
        room_id: String,
        /// `message.posted`, `member.joined`, ...
        event: String,
        /// The event's data.
        data: serde_json::Value,
    },
    /// The replay after a reconnect is complete.
    Resumed {
        /// The `since` asked for.
        from: u64,
        /// The last replayed position.
        to: u64,
    },
    /// The server could not resume (too old); these are the room's messages of the gap,
    /// refetched over REST, oldest first. Other event kinds of the gap are not refetched.
    Refetched {
        /// The room.
        room_id: String,
        /// Its messages in the gap, oldest first.
        messages: Vec<Message>,
    },
    /// The connection dropped; the subscription waits `delay` and reconnects.
    Reconnecting {
        /// Why it dropped (close code and reason, or the transport error).
        reason: String,
        /// How long it waits first.
        delay: Duration,
    },
}

/// Choices for a [`Subscription`].
#[derive(Clone, Debug)]
pub struct SubscriptionOptions {
    /// Replay the visible events after this seq before going live.
    pub since: Option<u64>,
    /// First reconnect delay.
    pub initial_backoff: Duration,
    /// Longest reconnect delay.
    pub max_backoff: Duration,
}

impl Default for SubscriptionOptions {
    fn default() -> Self {
        SubscriptionOptions {
            since: None,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// A resuming WebSocket subscription. Blocking: call [`Subscription::next_event`] in a loop.
pub struct Subscription {
    api: Api,
    last_seq: Option<u64>,
    ws: Option<WebSocket<TcpStream>>,
    backoff: Backoff,
    sleeper: Box<dyn Sleeper + Send>,
    queue: VecDeque<SubscriptionEvent>,
    rooms: Vec<String>,
    head: u64,
    ever_connected: bool,
    pending_delay: Option<Duration>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Subscription({:?}, last_seq {:?})",
            self.api, self.last_seq
        )
    }
}

impl Subscription {
    /// A subscription with `api`'s token (it needs `chat:read`). Nothing connects until
    /// the first [`Subscription::next_event`].
    pub fn new(api: Api, options: SubscriptionOptions) -> Subscription {
        Subscription {
            api,
            last_seq: options.since,
            ws: None,
            backoff: Backoff::new(options.initial_backoff, options.max_backoff),
            sleeper: Box::new(RealSleeper),
            queue: VecDeque::new(),
            rooms: Vec::new(),
            head: 0,
            ever_connected: false,
            pending_delay: None,
        }
    }

    /// The same, waiting with `sleeper` between reconnects (tests pass a fake one).
    pub fn with_sleeper(mut self, sleeper: Box<dyn Sleeper + Send>) -> Subscription {
        self.sleeper = sleeper;
        self
    }

    /// The last seq delivered (or the position a fresh connection started at).
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// The next event. Reconnects as needed; returns an error only when it must stop: a
    /// 4001 close, a refused credential, or a server never reached.
    pub fn next_event(&mut self) -> Result<SubscriptionEvent, Error> {
        loop {
            if let Some(ev) = self.queue.pop_front() {
                return Ok(ev);
            }
            let Some(ws) = self.ws.as_mut() else {
                self.connect()?;
                continue;
            };
            match ws.read() {
                Ok(tungstenite::Message::Text(text)) => self.on_text(text.as_str())?,
                Ok(tungstenite::Message::Close(frame)) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    self.ws = None;
                    if code == CLOSE_CREDENTIAL {
                        return Err(Error::CredentialClosed { code, reason });
                    }
                    if code == CLOSE_MALFORMED {
                        return Err(Error::WebSocket(format!(
                            "the server refused a frame as malformed ({code}): {reason}"
                        )));
                    }
                    self.drop_connection(format!("closed {code} {reason}"));
                }
                Ok(_) => {}
                Err(e) => {
                    self.ws = None;
                    self.drop_connection(e.to_string());
                }
            }
        }
    }

    /// Queues a `Reconnecting` event; the next connect waits its delay first.
    fn drop_connection(&mut self, reason: String) {
        let delay = self.backoff.step();
        self.pending_delay = Some(delay);
        self.queue
            .push_back(SubscriptionEvent::Reconnecting { reason, delay });
    }

    /// Opens a connection and sends `resume` (or `ping` for a fresh start).
    fn connect(&mut self) -> Result<(), Error> {
        if let Some(delay) = self.pending_delay.take() {
            self.sleeper.sleep(delay);
        }
        match self.open() {
            Ok(ws) => {
                self.ws = Some(ws);
                self.ever_connected = true;
                self.backoff.reset();
                let first = match self.last_seq {
                    Some(since) => format!("{{\"op\":\"resume\",\"since\":{since}}}"),
                    None => "{\"op\":\"ping\"}".to_string(),
                };
                if let Some(ws) = self.ws.as_mut() {
                    if let Err(e) = ws.send(tungstenite::Message::text(first)) {
                        self.ws = None;
                        self.drop_connection(e.to_string());
                    }
                }
                Ok(())
            }
            Err(Retry::Stop(e)) => Err(e),
            Err(Retry::Again(_)) if !self.ever_connected => Err(Error::Unreachable {
                url: self.api.base_url().to_string(),
                reason: "the WebSocket could not connect".into(),
            }),
            Err(Retry::Again(reason)) => {
                self.drop_connection(reason);
                Ok(())
            }
        }
    }

    fn open(&self) -> Result<WebSocket<TcpStream>, Retry> {
        let url = self.api.ws_url();
        let host = url
            .strip_prefix("ws://")
            .ok_or_else(|| {
                Retry::Stop(Error::WebSocket(
                    "only ws:// (plain HTTP) servers are supported by this build".into(),
                ))
            })?
            .split('/')
            .next()
            .unwrap_or_default();
        let addr = if host.contains(':') {
            host.to_string()
        } else {
            format!("{host}:80")
        };
        let stream = connect_tcp(&addr).map_err(|e| Retry::Again(e.to_string()))?;
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .map_err(|e| Retry::Again(e.to_string()))?;
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| Retry::Stop(Error::WebSocket(e.to_string())))?;
        if let Some(token) = self.api.token() {
            let value = format!("Bearer {token}").parse().map_err(|_| {
                Retry::Stop(Error::WebSocket("the token is not a header value".into()))
            })?;
            request.headers_mut().insert("Authorization", value);
        }
        match tungstenite::client(request, stream) {
            Ok((ws, _)) => Ok(ws),
            Err(HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
                let status = resp.status().as_u16();
                let body = resp
                    .body()
                    .as_deref()
                    .and_then(|b| serde_json::from_slice::<latchkey_proto::ErrorBody>(b).ok());
                match (status, body) {
                    (429 | 503, _) => Err(Retry::Again(format!("HTTP {status}"))),
                    (_, Some(body)) => Err(Retry::Stop(Error::Http {
                        status,
                        body,
                        retry_after: None,
                    })),
                    _ => Err(Retry::Stop(Error::WebSocket(format!("HTTP {status}")))),
                }
            }
            Err(e) => Err(Retry::Again(e.to_string())),
        }
    }

    fn on_text(&mut self, text: &str) -> Result<(), Error> {
        let Ok(frame) = serde_json::from_str::<ServerFrame>(text) else {
            return Ok(()); // a frame type this client does not know: skip it
        };
        match frame {
            ServerFrame::Hello {
                user_id,
                connection_id,
                head,
                rooms,
            } => {
                self.rooms.clone_from(&rooms);
                self.head = head;
                let resuming_after = self.last_seq;
                if self.last_seq.is_none() {
                    self.last_seq = Some(head);
                }
                self.queue.push_back(SubscriptionEvent::Hello {
                    user_id,
                    connection_id,
                    head,
                    rooms,
                    resuming_after,
                });
            }
            ServerFrame::Event {
                seq,
                room_id,
                event,
                data,
            } => {
                if self.last_seq.is_some_and(|last| seq <= last) {
                    return Ok(()); // already delivered
                }
                self.last_seq = Some(seq);
                self.queue.push_back(SubscriptionEvent::Event {
                    seq,
                    room_id,
                    event,
                    data,
                });
            }
            ServerFrame::Resumed { from, to } => {
                self.queue
                    .push_back(SubscriptionEvent::Resumed { from, to });
            }
            ServerFrame::ResumeFailed { .. } => self.refetch()?,
            ServerFrame::Pong | ServerFrame::Error { .. } => {}
        }
        Ok(())
    }

    /// After `resume_failed`: the gap `(last_seq, head]` of every room, over REST.
    fn refetch(&mut self) -> Result<(), Error> {
        let after = self.last_seq.unwrap_or(0);
        let head = self.head;
        for room in self.rooms.clone() {
            let mut messages = Vec::new();
            let mut before = head.saturating_add(1);
            loop {
                let page = self.api.history(
                    &room,
                    &HistoryQuery {
                        before: Some(before),
                        after: Some(after),
                        limit: Some(PAGE),
                    },
                )?;
                let done = page.messages.is_empty();
                messages.extend(page.messages);
                match page.next_before {
                    Some(nb) if !done && nb > after.saturating_add(1) => before = nb,
                    _ => break,
                }
            }
            messages.retain(|m| m.seq.is_some_and(|s| s > after && s <= head));
            messages.sort_by_key(|m| m.seq);
            messages.dedup_by_key(|m| m.seq);
            self.queue.push_back(SubscriptionEvent::Refetched {
                room_id: room,
                messages,
            });
        }
        self.last_seq = Some(head.max(after));
        Ok(())
    }
}

/// Connects to the first address of `addr` that answers, each within [`CONNECT_TIMEOUT`].
fn connect_tcp(addr: &str) -> std::io::Result<TcpStream> {
    use std::net::ToSocketAddrs;
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for a in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Whether a failed connection attempt is worth retrying.
enum Retry {
    Again(String),
    Stop(Error),
}

#[cfg(test)]
mod tests;

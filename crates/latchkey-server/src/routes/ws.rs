//! `GET /api/native/ws`: the WebSocket (DESIGN §8). Auth by `Authorization: Bearer` or a
//! single-use `?ticket=`; `hello` with the hub's `head`; an optional `resume` replays the
//! visible events in `(since, head]` from the log while live events wait, bounded, in the
//! connection's queue; then live frames in seq order. Keep-alive pings, an inbound frame
//! limit, a per-connection rate limit, and close codes 4000/4001/4008/4029/1001.

use crate::auth::{authenticate_ws, scope_check};
use crate::error::ApiError;
use crate::frames::{event_frame, text};
use crate::limits::{IpLimit, Limits, StrLimit};
use crate::routes::native::limit;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message, MessageStream, Session};
use governor::{Quota, RateLimiter};
use latchkey_actors::hub::Registration;
use latchkey_actors::roommodel::resume_batch;
use latchkey_actors::{clock, Auth, Core};
use latchkey_domain::{Event, MessageId, RoomId, Scope, UserId};
use latchkey_proto::ws::{
    ClientFrame, ServerFrame, CLOSE_CREDENTIAL, CLOSE_MALFORMED, CLOSE_RATE_LIMITED,
};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Largest inbound frame.
pub const MAX_FRAME: usize = 64 * 1024;
/// Server ping interval.
pub const PING_EVERY: Duration = Duration::from_secs(25);
/// How long a pong may be late past the ping interval before the connection is dropped.
pub const PONG_GRACE: Duration = Duration::from_secs(10);
/// How long live delivery waits for a first client frame (a `resume` must come first).
pub const FIRST_FRAME_WAIT: Duration = Duration::from_secs(1);
/// Oldest `since` a resume accepts by default, in events behind `head`
/// (`latchkey serve --resume-window`).
pub const RESUME_WINDOW: u64 = 100_000;

/// WebSocket settings shared by every connection.
#[derive(Clone, Copy, Debug)]
pub struct WsSettings {
    /// Oldest `since` a resume accepts, in events behind `head`.
    pub resume_window: u64,
}
/// Client frames per second per connection (and the burst).
const FRAMES_PER_SEC: u32 = 20;
const FRAMES_BURST: u32 = 40;

/// Registers the route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/native/ws").route(web::get().to(ws)));
}

async fn ws(
    req: HttpRequest,
    body: web::Payload,
    core: web::Data<Core>,
    limits: web::Data<Limits>,
    settings: Option<web::Data<WsSettings>>,
) -> Result<HttpResponse, ApiError> {
    limit(&req, IpLimit::WsConnect)?;
    let resume_window = settings.map_or(RESUME_WINDOW, |s| s.resume_window);
    // Only a real upgrade spends a single-use ticket.
    let upgrade = req
        .headers()
        .get(actix_web::http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !upgrade {
        return Err(ApiError::invalid("expected a WebSocket upgrade request"));
    }
    let auth = authenticate_ws(&req)?;
    scope_check(&auth, Scope::ChatRead, "chat:read")?;
    let (response, session, stream) = actix_ws::handle(&req, body)
        .map_err(|_| ApiError::invalid("expected a WebSocket upgrade request"))?;
    let token = auth.token_id;
    let models = core.models().clone();
    // Registered after the handshake is accepted, and only while the token is still live
    // (checked under the hub's lock, so a revocation cannot slip between).
    let registered = core.hub().register(auth.user_id, token, || {
        models.token_by_id(token).ok().flatten().is_some()
    });
    let reg = match registered {
        Ok(reg) => reg,
        Err(code) => {
            let why = if code == CLOSE_CREDENTIAL {
                "credential revoked"
            } else {
                "server shutting down"
            };
            let reason = CloseReason {
                code: CloseCode::from(code),
                description: Some(why.into()),
            };
            actix_web::rt::spawn(async move {
                let _ = session.close(Some(reason)).await;
            });
            return Ok(response);
        }
    };
    let core = core.into_inner();
    let limits = limits.into_inner();
    actix_web::rt::spawn(async move {
        let id = reg.id;
        let hub = core.hub().clone();
        Connection {
            core,
            limits,
            auth,
            session,
            resume_window,
        }
        .run(reg, stream.max_frame_size(MAX_FRAME))
        .await;
        hub.unregister(id);
    });
    Ok(response)
}

struct Connection {
    core: Arc<Core>,
    limits: Arc<Limits>,
    auth: Auth,
    session: Session,
    resume_window: u64,
}

/// Why the loop ended: a close code and reason to send, or nothing (the peer is gone).
type Ending = Option<(u16, &'static str)>;

impl Connection {
    async fn send(&mut self, frame: &ServerFrame) -> Result<(), ()> {
        self.session.text(text(frame)).await.map_err(|_| ())
    }

    async fn run(mut self, reg: Registration, mut stream: MessageStream) {
        let Registration {
            id,
            head,
            rooms,
            mut frames,
            mut closed,
        } = reg;
        let hello = ServerFrame::Hello {
            user_id: self.auth.user_id.to_string(),
            connection_id: id.to_string(),
            head,
            rooms: rooms.iter().map(|r| r.to_string()).collect(),
        };
        if self.send(&hello).await.is_err() {
            return;
        }
        let expiry = actix_web::rt::time::sleep(self.until_expiry());
        let first_wait = actix_web::rt::time::sleep(FIRST_FRAME_WAIT);
        tokio::pin!(expiry, first_wait);
        let mut ping = actix_web::rt::time::interval_at(
            actix_web::rt::time::Instant::now() + PING_EVERY,
            PING_EVERY,
        );
        let per_sec = NonZeroU32::new(FRAMES_PER_SEC).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(FRAMES_BURST).unwrap_or(NonZeroU32::MIN);
        let limiter = RateLimiter::direct(Quota::per_second(per_sec).allow_burst(burst));
        let mut last_pong = Instant::now();
        let mut live = false;
        let mut first = true;

        let ending: Ending = loop {
            tokio::select! {
                biased;
                code = &mut closed => {
                    break Some(match code.unwrap_or(1000) {
                        CLOSE_CREDENTIAL => (CLOSE_CREDENTIAL, "credential revoked or user disabled"),
                        4008 => (4008, "slow consumer: resume from your last seq"),
                        1001 => (1001, "server shutting down"),
                        other => (other, "closed"),
                    });
                }
                () = &mut expiry => {
                    if self.auth.expires_at.is_some_and(|e| clock::now() >= e) {
                        break Some((CLOSE_CREDENTIAL, "credential expired"));
                    }
                    // A long-lived token: the timer only covered part of its life.
                    let next = actix_web::rt::time::Instant::now() + self.until_expiry();
                    expiry.as_mut().reset(next);
                }
                msg = stream.recv() => {
                    let msg = match msg {
                        None => break None,
                        Some(Err(_)) => break Some((CLOSE_MALFORMED, "malformed or oversized frame")),
                        Some(Ok(m)) => m,
                    };
                    match msg {
                        Message::Text(t) => {
                            if self.limits.is_enabled() && limiter.check().is_err() {
                                break Some((CLOSE_RATE_LIMITED, "too many frames"));
                            }
                            let Ok(frame) = serde_json::from_str::<ClientFrame>(&t) else {
                                break Some((CLOSE_MALFORMED, "not a valid client frame"));
                            };
                            let was_first = std::mem::replace(&mut first, false);
                            if let Err(()) = self.client_frame(frame, was_first, head).await {
                                break None;
                            }
                            live = true;
                        }
                        Message::Ping(b) if self.session.pong(&b).await.is_err() => break None,
                        Message::Ping(_) => {}
                        Message::Pong(_) => last_pong = Instant::now(),
                        Message::Close(_) => break Some((1000, "bye")),
                        Message::Binary(_) => break Some((CLOSE_MALFORMED, "binary frames are not accepted")),
                        _ => {}
                    }
                }
                frame = frames.recv(), if live => {
                    let Some(frame) = frame else { break None };
                    if self.session.text(frame.text).await.is_err() {
                        break None;
                    }
                }
                () = &mut first_wait, if !live => {
                    live = true;
                    first = false;
                }
                _ = ping.tick() => {
                    if last_pong.elapsed() > PING_EVERY + PONG_GRACE {
                        break Some((1011, "no pong"));
                    }
                    if self.session.ping(b"").await.is_err() {
                        break None;
                    }
                }
            }
        };
        let reason = ending.map(|(code, why)| CloseReason {
            code: CloseCode::from(code),
            description: Some(why.into()),
        });
        let _ = self.session.close(reason).await;
    }

    /// Time until the credential expires, capped at a day so the timer stays well inside
    /// what the runtime's timer wheel holds; the loop re-arms it until the real expiry.
    fn until_expiry(&self) -> Duration {
        const CAP: Duration = Duration::from_secs(24 * 3600);
        self.auth
            .expires_at
            .map(|e| Duration::from_millis((e.0 - clock::now().0).max(0) as u64))
            .map_or(CAP, |d| d.min(CAP))
    }

    async fn client_frame(&mut self, frame: ClientFrame, first: bool, head: u64) -> Result<(), ()> {
        match frame {
            ClientFrame::Resume { since } if first => self.resume(since, head).await,
            ClientFrame::Resume { .. } => {
                self.error("invalid_request", "resume is only valid as the first frame")
                    .await
            }
            ClientFrame::Ping {} => self.send(&ServerFrame::Pong).await,
            ClientFrame::Send {
                room_id,
                body,
                target_user_ids,
                reply_to,
            } => match self.post(room_id, body, target_user_ids, reply_to).await {
                Ok(()) => Ok(()),
                Err(e) => self.error(e.code(), e.message()).await,
            },
        }
    }

    async fn error(&mut self, code: &str, message: &str) -> Result<(), ()> {
        self.send(&ServerFrame::Error {
            error: code.into(),
            message: message.into(),
        })
        .await
    }

    async fn post(
        &self,
        room_id: String,
        body: String,
        targets: Option<Vec<String>>,
        reply_to: Option<String>,
    ) -> Result<(), ApiError> {
        scope_check(&self.auth, Scope::ChatWrite, "chat:write")?;
        self.limits
            .check_str(StrLimit::PostPerUser, &self.auth.user_id.to_string())?;
        let room = Uuid::parse_str(&room_id)
            .map(RoomId)
            .map_err(|_| ApiError::invalid("room_id must be a room id"))?;
        let targets = targets
            .unwrap_or_default()
            .iter()
            .map(|t| Uuid::parse_str(t).map(UserId))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| ApiError::invalid("target_user_ids must be user ids"))?;
        let reply_to = reply_to
            .map(|r| Uuid::parse_str(&r).map(MessageId))
            .transpose()
            .map_err(|_| ApiError::invalid("reply_to must be a message id"))?;
        self.core
            .post_message(&self.auth, room, body, targets, reply_to)
            .await?;
        Ok(())
    }

    /// Replays every event in `(since, head]` that the visibility rule lets this user see,
    /// then `resumed`. Live frames after `head` wait in the bounded queue meanwhile.
    async fn resume(&mut self, since: u64, head: u64) -> Result<(), ()> {
        if head.saturating_sub(since) > self.resume_window {
            return self
                .send(&ServerFrame::ResumeFailed {
                    reason: "too_old".into(),
                })
                .await;
        }
        let user = self.auth.user_id;
        let mut from = since.saturating_add(1);
        while from <= head {
            let batch = self.replay_batch(user, from, head);
            let Ok((texts, next)) = batch else {
                return self
                    .error("internal", "replay failed; refetch history")
                    .await;
            };
            for t in texts {
                self.session.text(t).await.map_err(|_| ())?;
            }
            from = next;
        }
        self.send(&ServerFrame::Resumed {
            from: since,
            to: head,
        })
        .await
    }

    /// Up to 1024 log entries from `from`, as the frames this user may see, and where to
    /// continue. Reads no further than `head`.
    fn replay_batch(
        &self,
        user: UserId,
        from: u64,
        head: u64,
    ) -> Result<(Vec<bytestring::ByteString>, u64), ApiError> {
        let batch = resume_batch(
            self.core.store().as_ref(),
            self.core.models().rooms(),
            user,
            (from, head),
            1024,
        )
        .map_err(latchkey_actors::CoreError::from)?;
        let texts = batch
            .events
            .iter()
            .filter_map(|(rec, room)| match &rec.event {
                Event::Room(event) => Some(event_frame(rec, *room, event)),
                _ => None,
            })
            .collect();
        Ok((texts, batch.next))
    }
}

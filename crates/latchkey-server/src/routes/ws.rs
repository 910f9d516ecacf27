//! `GET /api/native/ws`: the WebSocket (DESIGN §8). Auth by `Authorization: Bearer` or a
//! single-use `?ticket=`; `hello` with the hub's `head`; an optional `resume` replays the
//! visible events in `(since, head]` from the log while live events wait, bounded, in the
//! connection's queue; then live frames in seq order. Keep-alive pings, an inbound frame
//! limit, a per-connection rate limit, and close codes 4000/4001/4008/4029/1001.

use crate::auth::{authenticate_ws, scope_check};
use crate::error::ApiError;
use crate::frames::{event_frame, text};
use crate::limits::CoreClock;
use crate::limits::{IpLimit, Limits, StrLimit};
use crate::routes::native::limit;
use crate::wsin::Inbound;
use crate::wsout::{self, Control, Gate};
use actix_http::ws::{CloseCode, CloseReason, Frame, ProtocolError};
use actix_web::rt::time::{sleep, Instant as TimerInstant, Sleep};
use actix_web::{web, HttpRequest, HttpResponse};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::Quota;
use latchkey_actors::close::{
    CLOSE_CREDENTIAL, CLOSE_GOING_AWAY, CLOSE_MALFORMED, CLOSE_NORMAL, CLOSE_NO_PONG,
    CLOSE_RATE_LIMITED, CLOSE_SLOW_CONSUMER,
};
use latchkey_actors::hub::Registration;
use latchkey_actors::roommodel::resume_batch;
use latchkey_actors::{Auth, Core};
use latchkey_domain::{Event, MessageId, RoomId, Scope, Timestamp, UserId};
use latchkey_proto::codes;
use latchkey_proto::ws::{ClientFrame, ServerFrame};
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
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
    let auth = authenticate_ws(&req).await?;
    scope_check(&auth, Scope::ChatRead, "chat:read")?;
    wsout::check_handshake(&req)
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
        Err(code) => return refuse(&req, code),
    };
    let core = core.into_inner();
    let limits = limits.into_inner();
    let Registration {
        id,
        head,
        rooms,
        frames,
        closed,
    } = reg;
    // Live frames go from the hub's queue straight to the response body (the writer);
    // the connection task opens the gate when live delivery may start.
    let gate = Arc::new(Gate::default());
    let (response, control) = match wsout::open(&req, Some(frames), gate.clone()) {
        Ok(opened) => opened,
        Err(_) => {
            core.hub().unregister(id);
            return Err(ApiError::invalid("expected a WebSocket upgrade request"));
        }
    };
    // Spawned as it is, not inside another async block: every value a future captures
    // stays in its task for the connection's whole life, so one layer holds it once.
    let connection = Connection {
        core,
        limits,
        auth,
        control,
        resume_window,
        gate,
        id,
        inbound: Inbound::new(body.into_inner(), MAX_FRAME),
        closed,
    };
    actix_web::rt::spawn(connection.run(head, rooms));
    Ok(response)
}

/// Accepts the handshake the hub refused only to close it with its code: the token was
/// revoked meanwhile (4001) or the server is shutting down.
fn refuse(req: &HttpRequest, code: u16) -> Result<HttpResponse, ApiError> {
    let (response, control) = wsout::open(req, None, Arc::new(Gate::default()))
        .map_err(|_| ApiError::invalid("expected a WebSocket upgrade request"))?;
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
        let _ = control.close(Some(reason)).await;
    });
    Ok(response)
}

struct Connection {
    core: Arc<Core>,
    limits: Arc<Limits>,
    auth: Auth,
    control: Control,
    resume_window: u64,
    gate: Arc<Gate>,
    /// The hub's id for this connection.
    id: u64,
    /// The client's frames.
    inbound: Inbound,
    /// Fires with a close code when the hub closes the connection.
    closed: tokio::sync::oneshot::Receiver<u16>,
}

/// Why the loop ended: a close code and reason to send, or nothing (the peer is gone).
type Ending = Option<(u16, &'static str)>;

/// The per-connection limiter of client frames, on the core's clock.
type FrameLimiter =
    governor::RateLimiter<NotKeyed, InMemoryState, CoreClock, NoOpMiddleware<Duration>>;

/// Where a connection is in its life.
struct Flow {
    /// Live frames are being sent (after a first frame, or after the hold).
    live: bool,
    /// The next client frame is the first one (only it may be a `resume`).
    first: bool,
    /// When the last pong came, on the core's clock's monotonic side.
    last_pong: Duration,
    /// Until when live frames wait for a first frame (core clock).
    hold_until: Timestamp,
    /// The head at `hello`.
    head: u64,
}

/// The close a hub-initiated close code gets.
fn hub_close(code: u16) -> (u16, &'static str) {
    match code {
        CLOSE_CREDENTIAL => (CLOSE_CREDENTIAL, "credential revoked or user disabled"),
        CLOSE_SLOW_CONSUMER => (
            CLOSE_SLOW_CONSUMER,
            "slow consumer: resume from your last seq",
        ),
        CLOSE_GOING_AWAY => (CLOSE_GOING_AWAY, "server shutting down"),
        other => (other, "closed"),
    }
}

/// Resolves when a manual clock moves; never for a clock that simply runs (or once the
/// clock is gone).
async fn clock_moved(moves: &mut Option<watch::Receiver<u64>>) {
    let moved = match moves {
        Some(rx) => rx.changed().await.is_ok(),
        None => false,
    };
    if !moved {
        std::future::pending::<()>().await;
    }
}

/// The per-connection limiter of client frames, on `clock`.
fn frame_limiter(clock: &latchkey_actors::clock::SharedClock) -> FrameLimiter {
    let per_sec = NonZeroU32::new(FRAMES_PER_SEC).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(FRAMES_BURST).unwrap_or(NonZeroU32::MIN);
    FrameLimiter::direct_with_clock(
        Quota::per_second(per_sec).allow_burst(burst),
        CoreClock::new(clock.clone()),
    )
}

/// Re-arms a timer `after` from now.
fn rearm(timer: Pin<&mut Sleep>, after: Duration) {
    timer.reset(TimerInstant::now() + after);
}

impl Connection {
    async fn send(&mut self, frame: &ServerFrame) -> Result<(), ()> {
        self.control.text(text(frame)).await.map_err(|_| ())
    }

    /// The connection's life: `hello` (the hub's `head` and the user's `rooms` then),
    /// the loop, the close, and leaving the hub. Time-driven closes (expiry, the
    /// first-frame hold) follow the core's clock: a timer wakes the loop, and so does a
    /// manual clock's move, and either way the deadline is checked against the clock's
    /// "now".
    async fn run(mut self, head: u64, rooms: Vec<RoomId>) {
        self.greet_and_serve(head, rooms).await;
        self.core.hub().unregister(self.id);
    }

    /// `hello`, the loop until the connection ends, then the close frame.
    async fn greet_and_serve(&mut self, head: u64, rooms: Vec<RoomId>) {
        // Encoded in a block, and the room list dropped: a local of this async fn would
        // otherwise stay allocated for the whole life of the connection.
        let hello = text(&ServerFrame::Hello {
            user_id: self.auth.user_id.to_string(),
            connection_id: self.id.to_string(),
            head,
            rooms: rooms.iter().map(|r| r.to_string()).collect(),
        });
        drop(rooms);
        if self.control.text(hello).await.is_err() {
            return;
        }
        let ending = self.serve(head).await;
        // Nothing live follows the close frame.
        self.gate.stop();
        let reason = ending.map(|(code, why)| CloseReason {
            code: CloseCode::from(code),
            description: Some(why.into()),
        });
        let _ = self.control.close(reason).await;
    }

    /// Runs the connection after `hello` until it ends, and says how.
    async fn serve(&mut self, head: u64) -> Ending {
        let clock = self.core.config().clock.clone();
        let mut moves = clock.moves();
        let hold_ms = i64::try_from(FIRST_FRAME_WAIT.as_millis()).unwrap_or(i64::MAX);
        let mut flow = Flow {
            live: false,
            first: true,
            last_pong: clock.elapsed(),
            hold_until: Timestamp(self.core.now().0.saturating_add(hold_ms)),
            head,
        };
        let expiry = sleep(self.until_expiry());
        let first_wait = sleep(FIRST_FRAME_WAIT);
        tokio::pin!(expiry, first_wait);
        let mut ping =
            actix_web::rt::time::interval_at(TimerInstant::now() + PING_EVERY, PING_EVERY);
        let limiter = frame_limiter(&clock);

        loop {
            tokio::select! {
                biased;
                code = &mut self.closed => break Some(hub_close(code.unwrap_or(CLOSE_NORMAL))),
                () = clock_moved(&mut moves) => {
                    if let Some(end) = self.on_time(&mut flow) {
                        break end;
                    }
                }
                () = &mut expiry => {
                    if let Some(end) = self.on_time(&mut flow) {
                        break end;
                    }
                    // A long-lived token: the timer only covered part of its life.
                    rearm(expiry.as_mut(), self.until_expiry());
                }
                msg = self.inbound.recv() => {
                    // Boxed: handling a frame (a post, a resume) takes a large future, and
                    // unboxed it would size every idle connection's task by it.
                    let handled = Box::pin(self.on_message(msg, &limiter, &mut flow));
                    if let Some(end) = handled.await {
                        break end;
                    }
                }
                () = &mut first_wait, if !flow.live => {
                    if let Some(end) = self.on_time(&mut flow) {
                        break end;
                    }
                    let left = flow.hold_until.0.saturating_sub(self.core.now().0).max(1);
                    rearm(first_wait.as_mut(), Duration::from_millis(left as u64));
                }
                _ = ping.tick() => {
                    if clock.elapsed().saturating_sub(flow.last_pong) > PING_EVERY + PONG_GRACE {
                        break Some((CLOSE_NO_PONG, "no pong"));
                    }
                    if self.control.ping(b"").await.is_err() {
                        break None;
                    }
                }
            }
        }
    }

    /// What the clock says now: an expired credential ends the connection with 4001, and
    /// the end of the first-frame hold starts live delivery.
    fn on_time(&self, flow: &mut Flow) -> Option<Ending> {
        let now = self.core.now();
        if self.auth.is_expired_at(now) {
            return Some(Some((CLOSE_CREDENTIAL, "credential expired")));
        }
        if !flow.live && now >= flow.hold_until {
            flow.live = true;
            self.gate.open();
            flow.first = false;
        }
        None
    }

    /// One inbound message: `Some(ending)` when it ends the connection.
    async fn on_message(
        &mut self,
        msg: Option<Result<Frame, ProtocolError>>,
        limiter: &FrameLimiter,
        flow: &mut Flow,
    ) -> Option<Ending> {
        let msg = match msg {
            None => return Some(None),
            Some(Err(_)) => return Some(Some((CLOSE_MALFORMED, "malformed or oversized frame"))),
            Some(Ok(m)) => m,
        };
        // Every inbound frame counts toward the limit: text, ping, pong, binary and
        // continuation alike (a close ends the connection anyway).
        let counted = !matches!(msg, Frame::Close(_));
        if counted && self.limits.is_enabled() && limiter.check().is_err() {
            return Some(Some((CLOSE_RATE_LIMITED, "too many frames")));
        }
        match msg {
            Frame::Text(t) => {
                // Invalid UTF-8 fails here too: serde_json checks it in strings, and JSON
                // outside strings is ASCII.
                let Ok(frame) = serde_json::from_slice::<ClientFrame>(&t) else {
                    return Some(Some((CLOSE_MALFORMED, "not a valid client frame")));
                };
                let was_first = std::mem::replace(&mut flow.first, false);
                if let Err(()) = self.client_frame(frame, was_first, flow.head).await {
                    return Some(None);
                }
                flow.live = true;
                self.gate.open();
                None
            }
            Frame::Ping(b) if self.control.pong(&b).await.is_err() => Some(None),
            Frame::Pong(_) => {
                flow.last_pong = self.core.config().clock.elapsed();
                None
            }
            Frame::Close(_) => Some(Some((CLOSE_NORMAL, "bye"))),
            Frame::Binary(_) => Some(Some((CLOSE_MALFORMED, "binary frames are not accepted"))),
            _ => None,
        }
    }

    /// Time until the credential expires, capped at a day so the timer stays well inside
    /// what the runtime's timer wheel holds; the loop re-arms it until the real expiry.
    fn until_expiry(&self) -> Duration {
        const CAP: Duration = Duration::from_secs(24 * 3600);
        self.auth
            .expires_at
            .map(|e| Duration::from_millis((e.0 - self.core.now().0).max(0) as u64))
            .map_or(CAP, |d| d.min(CAP))
    }

    async fn client_frame(&mut self, frame: ClientFrame, first: bool, head: u64) -> Result<(), ()> {
        match frame {
            ClientFrame::Resume { since } if first => self.resume(since, head).await,
            ClientFrame::Resume { .. } => {
                self.error(
                    codes::INVALID_REQUEST,
                    "resume is only valid as the first frame",
                )
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
                    .error(codes::INTERNAL, "replay failed; refetch history")
                    .await;
            };
            for t in texts {
                self.control.text(t).await.map_err(|_| ())?;
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

//! The WebSocket writer: the response body of a WebSocket connection, which the HTTP
//! dispatcher polls. It writes the connection task's control frames (`hello`, a resume's
//! replay, `pong`, `error`, the close), which [`Control`] encodes into one buffer, and,
//! once the connection is live, the hub's live frames, taken straight from the
//! connection's hub queue: a delivery is one queue and one wake-up (the dispatcher's),
//! and every frame waiting when the dispatcher polls goes out in the same `write`.
//! Neither side allocates while the connection idles.
//!
//! Order: the connection task says when live delivery starts or stops through a [`Gate`].
//! Live frames are written only when the gate was open before the control frames were
//! taken and is still open after: so every control frame sent before the gate opened
//! (the replay, `resumed`) precedes the first live frame, and nothing follows a close
//! frame sent after the gate closed.

use actix_http::ws::{CloseReason, HandshakeError, OpCode, Parser};
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::web::{Bytes, BytesMut};
use actix_web::{HttpRequest, HttpResponse};
use futures_util::task::AtomicWaker;
use latchkey_actors::hub::FrameReceiver;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// Most bytes of live frames gathered into one body chunk.
const MAX_BATCH: usize = 64 * 1024;

/// Most bytes of control frames waiting for the writer before a sender waits (a resume's
/// replay is sent at the pace the client reads it).
const CONTROL_LIMIT: usize = 64 * 1024;

/// Longest payload of a control frame (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;

const HOLD: u8 = 0;
const LIVE: u8 = 1;
const STOPPED: u8 = 2;

/// Whether live frames may be written: held (before the first frame or the hold's end),
/// live, or stopped (the connection is closing). Shared by the connection task, which
/// sets it, and the writer, which reads it.
#[derive(Default)]
pub struct Gate {
    state: AtomicU8,
    waker: AtomicWaker,
}

impl Gate {
    /// Starts live delivery (once; a stopped gate stays stopped).
    pub fn open(&self) {
        if self
            .state
            .compare_exchange(HOLD, LIVE, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.waker.wake();
        }
    }

    /// Stops live delivery for good: call before sending the close frame.
    pub fn stop(&self) {
        self.state.store(STOPPED, Ordering::Release);
        self.waker.wake();
    }

    fn is_live(&self) -> bool {
        self.state.load(Ordering::Acquire) == LIVE
    }
}

/// Control frames encoded and not yet taken by the writer.
#[derive(Default)]
struct Pending {
    buf: BytesMut,
    /// The writer, waiting for frames.
    writer: Option<Waker>,
    /// The connection task, waiting for room.
    sender: Option<Waker>,
    /// A close frame is queued: nothing follows it.
    closing: bool,
    /// The writer is gone (the connection closed): nothing will be written.
    gone: bool,
}

#[derive(Default)]
struct Shared(Mutex<Pending>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // Nothing panics while holding it; a poisoned lock's data is still whole.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The connection is closed (or closing): the frame was not sent.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed;

/// The connection task's end of the writer: text, ping, pong and the close, encoded at
/// once into the buffer the writer takes whole. A send waits while [`CONTROL_LIMIT`]
/// bytes wait to be written, and fails once the connection is closed or closing.
pub struct Control(Arc<Shared>);

impl Control {
    /// Sends a text frame.
    pub async fn text(&self, text: impl AsRef<[u8]>) -> Result<(), Closed> {
        self.frame(|buf| Parser::write_message(buf, text.as_ref(), OpCode::Text, true, false))
            .await
    }

    /// Sends a ping (payload cut to 125 bytes).
    pub async fn ping(&self, payload: &[u8]) -> Result<(), Closed> {
        let payload = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
        self.frame(|buf| Parser::write_message(buf, payload, OpCode::Ping, true, false))
            .await
    }

    /// Answers a ping (payload cut to 125 bytes).
    pub async fn pong(&self, payload: &[u8]) -> Result<(), Closed> {
        let payload = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
        self.frame(|buf| Parser::write_message(buf, payload, OpCode::Pong, true, false))
            .await
    }

    /// Sends the close frame (the reason cut to fit a control frame); the writer ends
    /// after it.
    pub async fn close(&self, reason: Option<CloseReason>) -> Result<(), Closed> {
        let reason = reason.map(|mut r| {
            if let Some(d) = r.description.as_mut() {
                let mut end = d.len().min(MAX_CONTROL_PAYLOAD - 2);
                while !d.is_char_boundary(end) {
                    end -= 1;
                }
                d.truncate(end);
            }
            r
        });
        let mut reason = Some(reason);
        let sent = self
            .frame(|buf| Parser::write_close(buf, reason.take().flatten(), false))
            .await;
        self.0.lock().closing = true;
        sent
    }

    /// Encodes one frame with `write` once there is room, and wakes the writer.
    async fn frame(&self, mut write: impl FnMut(&mut BytesMut)) -> Result<(), Closed> {
        std::future::poll_fn(|cx| {
            let mut p = self.0.lock();
            if p.gone || p.closing {
                return Poll::Ready(Err(Closed));
            }
            if p.buf.len() >= CONTROL_LIMIT {
                p.sender = Some(cx.waker().clone());
                return Poll::Pending;
            }
            write(&mut p.buf);
            let writer = p.writer.take();
            drop(p);
            if let Some(w) = writer {
                w.wake();
            }
            Poll::Ready(Ok(()))
        })
        .await
    }
}

/// The body: the connection task's control frames, then the live frames.
struct Outbound {
    control: Arc<Shared>,
    /// None for a connection refused at the handshake: it only ever gets its close.
    frames: Option<FrameReceiver>,
    gate: Arc<Gate>,
    done: bool,
}

/// Appends one unmasked, final text frame (RFC 6455 §5.2) holding `payload`, with
/// actix-http's own frame writer.
fn encode_text(out: &mut BytesMut, payload: &[u8]) {
    Parser::write_message(out, payload, OpCode::Text, true, false);
}

impl Outbound {
    /// Takes every control frame waiting into `out`, and wakes a sender waiting for room.
    /// After the close frame the body ends.
    fn take_control(&mut self, cx: &mut Context<'_>, out: &mut BytesMut) {
        let mut p = self.control.lock();
        if p.buf.is_empty() {
            if p.closing {
                self.done = true;
            } else if !p.writer.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                p.writer = Some(cx.waker().clone());
            }
            return;
        }
        // Taken whole, not copied and cleared: the buffer's memory leaves with the chunk.
        *out = std::mem::take(&mut p.buf);
        let sender = p.sender.take();
        drop(p);
        if let Some(w) = sender {
            w.wake();
        }
    }

    /// Encodes the live frames that are waiting into `out`, up to [`MAX_BATCH`] bytes.
    fn take_frames(&mut self, cx: &mut Context<'_>, out: &mut BytesMut) {
        let Some(frames) = self.frames.as_mut() else {
            return;
        };
        while out.len() < MAX_BATCH {
            match frames.poll_recv(cx) {
                Poll::Ready(Some(frame)) => encode_text(out, frame.text.as_bytes()),
                Poll::Ready(None) | Poll::Pending => return,
            }
        }
    }
}

impl MessageBody for Outbound {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        this.gate.waker.register(cx.waker());
        let live_before = this.gate.is_live();
        let mut out = BytesMut::new();
        this.take_control(cx, &mut out);
        if !this.done && live_before && this.gate.is_live() {
            this.take_frames(cx, &mut out);
        }
        if !out.is_empty() {
            Poll::Ready(Some(Ok(out.freeze())))
        } else if this.done {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Outbound {
    fn drop(&mut self) {
        // The connection is gone: a sender waiting for room learns it now.
        let sender = {
            let mut p = self.control.lock();
            p.gone = true;
            p.buf = BytesMut::new();
            p.sender.take()
        };
        if let Some(w) = sender {
            w.wake();
        }
    }
}

/// Whether `req` is a WebSocket handshake this server can accept.
pub fn check_handshake(req: &HttpRequest) -> Result<(), HandshakeError> {
    actix_http::ws::verify_handshake(req.head())
}

/// Why a WebSocket answer could not be made.
#[derive(Debug)]
pub enum OpenError {
    /// The request is not a WebSocket handshake this server accepts.
    Handshake(HandshakeError),
    /// The response could not be built.
    Response(actix_http::Error),
}

/// The handshake's answer to `req`, whose body is the writer, and the [`Control`] that
/// feeds it; live `frames` follow as `gate` allows.
pub fn open(
    req: &HttpRequest,
    frames: Option<FrameReceiver>,
    gate: Arc<Gate>,
) -> Result<(HttpResponse, Control), OpenError> {
    let shared = Arc::new(Shared::default());
    let body = Outbound {
        control: shared.clone(),
        frames,
        gate,
        done: false,
    };
    let response = actix_http::ws::handshake(req.head())
        .map_err(OpenError::Handshake)?
        .message_body(BoxBody::new(body))
        .map_err(OpenError::Response)?;
    Ok((response.into(), Control(shared)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_http::ws::CloseCode;
    use bytestring::ByteString;
    use futures_util::FutureExt;
    use latchkey_actors::hub::queue::frame_queue;
    use latchkey_actors::hub::{Frame, FrameSender};
    use std::future::Future;

    /// A writer over a control buffer and a hub queue, as `open` builds it.
    fn writer() -> (Outbound, Control, FrameSender, Arc<Gate>) {
        let shared = Arc::new(Shared::default());
        let (tx, frames) = frame_queue(16);
        let gate = Arc::new(Gate::default());
        let out = Outbound {
            control: shared.clone(),
            frames: Some(frames),
            gate: gate.clone(),
            done: false,
        };
        (out, Control(shared), tx, gate)
    }

    fn frame(seq: u64, text: &str) -> Frame {
        Frame {
            seq,
            text: ByteString::from(text.to_string()),
        }
    }

    /// One poll: the chunk written, or None when nothing is ready.
    fn poll(out: &mut Outbound) -> Option<Vec<u8>> {
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        match Pin::new(out).poll_next(&mut cx) {
            Poll::Ready(Some(Ok(b))) => Some(b.to_vec()),
            _ => None,
        }
    }

    /// Sends a text frame that must not wait.
    fn say(control: &Control, text: &str) {
        assert_eq!(control.text(text).now_or_never(), Some(Ok(())));
    }

    #[test]
    fn control_frames_precede_live_ones_and_nothing_follows_the_close() {
        let (mut out, control, hub, gate) = writer();
        hub.try_send(frame(7, "live-7")).unwrap();
        say(&control, "HELLO");
        // Held: the hello goes, the live frame waits.
        assert_eq!(poll(&mut out), Some(b"\x81\x05HELLO".to_vec()));
        assert_eq!(poll(&mut out), None);
        // The replay was sent before the gate opened: it goes first, then the live frame.
        say(&control, "REPLAY");
        gate.open();
        hub.try_send(frame(8, "live-8")).unwrap();
        assert_eq!(
            poll(&mut out),
            Some(b"\x81\x06REPLAY\x81\x06live-7\x81\x06live-8".to_vec())
        );
        // Stopped before the close frame: nothing live after it, and the body ends.
        hub.try_send(frame(9, "live-9")).unwrap();
        gate.stop();
        let reason = CloseReason {
            code: CloseCode::from(4001),
            description: Some("bye".into()),
        };
        assert_eq!(control.close(Some(reason)).now_or_never(), Some(Ok(())));
        assert_eq!(poll(&mut out), Some(b"\x88\x05\x0f\xa1bye".to_vec()));
        assert_eq!(poll(&mut out), None);
        assert!(out.done);
    }

    #[test]
    fn a_sender_waits_for_room_and_learns_when_the_connection_is_gone() {
        let (mut out, control, _hub, _gate) = writer();
        let big = "x".repeat(CONTROL_LIMIT);
        say(&control, &big);
        // Over the bound: the next send waits until the writer takes the buffer.
        let mut next = Box::pin(control.text("after"));
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        assert!(next.as_mut().poll(&mut cx).is_pending());
        assert_eq!(poll(&mut out).map(|b| b.len()), Some(CONTROL_LIMIT + 10));
        assert_eq!(next.as_mut().poll(&mut cx), Poll::Ready(Ok(())));
        // The writer took the buffer whole: nothing stays allocated while idle.
        assert_eq!(poll(&mut out), Some(b"\x81\x05after".to_vec()));
        assert_eq!(control.0.lock().buf.capacity(), 0);
        // Once the body is dropped (the connection closed), every send fails.
        drop(out);
        assert_eq!(control.text("late").now_or_never(), Some(Err(Closed)));
    }

    #[test]
    fn control_payloads_are_cut_to_fit_a_control_frame() {
        let (mut out, control, _hub, _gate) = writer();
        assert_eq!(control.pong(&[7; 300]).now_or_never(), Some(Ok(())));
        let pong = poll(&mut out).unwrap();
        assert_eq!(&pong[..2], &[0x8a, 125]);
        assert_eq!(pong.len(), 127);
        let reason = CloseReason {
            code: CloseCode::from(4000),
            description: Some("é".repeat(100)),
        };
        assert_eq!(control.close(Some(reason)).now_or_never(), Some(Ok(())));
        let close = poll(&mut out).unwrap();
        // 2 bytes of code and at most 123 of reason, cut at a character boundary.
        assert_eq!(close[1] as usize, close.len() - 2);
        assert!(close.len() - 2 <= 125);
        assert!(std::str::from_utf8(&close[4..]).is_ok());
    }

    #[test]
    fn text_frame_headers() {
        let mut out = BytesMut::new();
        encode_text(&mut out, b"hi");
        assert_eq!(&out[..], b"\x81\x02hi");
        let mid = vec![b'x'; 300];
        let mut out = BytesMut::new();
        encode_text(&mut out, &mid);
        assert_eq!(&out[..4], &[0x81, 126, 0x01, 0x2c]);
        assert_eq!(out.len(), 304);
        let big = vec![b'y'; 70_000];
        let mut out = BytesMut::new();
        encode_text(&mut out, &big);
        assert_eq!(&out[..2], &[0x81, 127]);
        assert_eq!(&out[2..10], &70_000u64.to_be_bytes());
        assert_eq!(out.len(), 70_010);
    }
}

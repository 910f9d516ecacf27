//! The WebSocket writer: the response body of a WebSocket connection, which the HTTP
//! dispatcher polls. It writes the session's control frames (`hello`, a resume's replay,
//! `pong`, `error`, the close) and, once the connection is live, the hub's live frames,
//! taken straight from the connection's hub queue: a delivery is one queue and one
//! wake-up (the dispatcher's), and every frame waiting when the dispatcher polls goes
//! out in the same `write`.
//!
//! Order: the connection task says when live delivery starts or stops through a [`Gate`].
//! Live frames are written only when the gate was open before the control frames were
//! read and is still open after: so every control frame sent before the gate opened (the
//! replay, `resumed`) precedes the first live frame, and nothing follows a close frame
//! sent after the gate closed.

use actix_http::ws::{OpCode, Parser};
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::web::{Bytes, BytesMut};
use actix_web::HttpResponse;
use futures_util::task::AtomicWaker;
use latchkey_actors::hub::FrameReceiver;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// Most bytes of live frames gathered into one body chunk.
const MAX_BATCH: usize = 64 * 1024;

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

/// The body: the session's encoded control frames, then the live frames.
struct Outbound {
    control: BoxBody,
    frames: FrameReceiver,
    gate: Arc<Gate>,
    done: bool,
}

/// Appends one unmasked, final text frame (RFC 6455 §5.2) holding `payload`, with
/// actix-http's own frame writer (the one actix-ws's session uses).
fn encode_text(out: &mut BytesMut, payload: &[u8]) {
    Parser::write_message(out, payload, OpCode::Text, true, false);
}

impl Outbound {
    /// Moves every control chunk that is ready into `out`; an error ends the body.
    fn take_control(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut BytesMut,
    ) -> Result<(), Box<dyn std::error::Error>> {
        loop {
            match Pin::new(&mut self.control).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => out.extend_from_slice(&chunk),
                Poll::Ready(Some(Err(e))) => return Err(e),
                Poll::Ready(None) => {
                    self.done = true;
                    return Ok(());
                }
                Poll::Pending => return Ok(()),
            }
        }
    }

    /// Encodes the live frames that are waiting into `out`, up to [`MAX_BATCH`] bytes.
    fn take_frames(&mut self, cx: &mut Context<'_>, out: &mut BytesMut) {
        while out.len() < MAX_BATCH {
            match self.frames.poll_recv(cx) {
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
        if let Err(e) = this.take_control(cx, &mut out) {
            return Poll::Ready(Some(Err(e)));
        }
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

/// Makes `response` (a WebSocket handshake answer from `actix_ws::handle`) write the live
/// `frames` after the session's control frames, as `gate` allows.
pub fn attach(response: HttpResponse, frames: FrameReceiver, gate: Arc<Gate>) -> HttpResponse {
    response.map_body(|_, control| {
        BoxBody::new(Outbound {
            control,
            frames,
            gate,
            done: false,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::BodyStream;
    use bytestring::ByteString;
    use latchkey_actors::hub::queue::frame_queue;
    use latchkey_actors::hub::{Frame, FrameSender};
    use tokio::sync::mpsc;

    type Control = mpsc::UnboundedSender<Result<Bytes, std::io::Error>>;

    /// A writer over a control channel and a hub queue, as `attach` builds it.
    fn writer() -> (Outbound, Control, FrameSender, Arc<Gate>) {
        let (ctl_tx, mut ctl_rx) = mpsc::unbounded_channel();
        let control = BodyStream::new(futures_util::stream::poll_fn(move |cx| {
            ctl_rx.poll_recv(cx)
        }));
        let (tx, frames) = frame_queue(16);
        let gate = Arc::new(Gate::default());
        let out = Outbound {
            control: BoxBody::new(control),
            frames,
            gate: gate.clone(),
            done: false,
        };
        (out, ctl_tx, tx, gate)
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

    #[test]
    fn control_frames_precede_live_ones_and_nothing_follows_the_close() {
        let (mut out, control, hub, gate) = writer();
        hub.try_send(frame(7, "live-7")).unwrap();
        control.send(Ok(Bytes::from_static(b"HELLO"))).unwrap();
        // Held: the hello goes, the live frame waits.
        assert_eq!(poll(&mut out), Some(b"HELLO".to_vec()));
        assert_eq!(poll(&mut out), None);
        // The replay was sent before the gate opened: it goes first, then the live frame.
        control.send(Ok(Bytes::from_static(b"REPLAY"))).unwrap();
        gate.open();
        hub.try_send(frame(8, "live-8")).unwrap();
        assert_eq!(
            poll(&mut out),
            Some(b"REPLAY\x81\x06live-7\x81\x06live-8".to_vec())
        );
        // Stopped before the close frame: nothing live after it.
        hub.try_send(frame(9, "live-9")).unwrap();
        gate.stop();
        control.send(Ok(Bytes::from_static(b"CLOSE"))).unwrap();
        drop(control);
        assert_eq!(poll(&mut out), Some(b"CLOSE".to_vec()));
        assert_eq!(poll(&mut out), None);
        assert!(out.done);
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

//! The WebSocket reader: the client's frames, decoded from the upgraded request's payload
//! with actix-http's frame codec (which checks masking, opcodes and the size bound). It
//! keeps no buffer between frames, so an idle connection holds none.

use actix_http::ws::{Codec, Frame, ProtocolError};
use actix_web::dev::Payload;
use actix_web::web::BytesMut;
use futures_util::StreamExt;
use tokio_util::codec::Decoder;

/// The client's frames, in order.
pub struct Inbound {
    payload: Payload,
    buf: BytesMut,
    codec: Codec,
    /// The payload ended or failed: nothing more comes.
    done: bool,
}

impl Inbound {
    /// Reads `payload`, refusing frames over `max_frame` bytes.
    pub fn new(payload: Payload, max_frame: usize) -> Self {
        Self {
            payload,
            buf: BytesMut::new(),
            codec: Codec::new().max_size(max_frame),
            done: false,
        }
    }

    /// The next frame; `None` once the connection is gone. A protocol error (an unmasked
    /// or oversized frame, a bad opcode) ends the stream after it is returned.
    pub async fn recv(&mut self) -> Option<Result<Frame, ProtocolError>> {
        loop {
            match self.codec.decode(&mut self.buf) {
                Ok(Some(frame)) => {
                    self.release();
                    return Some(Ok(frame));
                }
                Ok(None) => {}
                Err(e) => {
                    // Nothing after a broken frame is read.
                    self.done = true;
                    self.buf = BytesMut::new();
                    return Some(Err(e));
                }
            }
            if self.done {
                return None;
            }
            match self.payload.next().await {
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(ProtocolError::Io(std::io::Error::other(e))));
                }
                None => self.done = true,
            }
        }
    }

    /// Frees the buffer once it holds nothing: a connection idles with none.
    fn release(&mut self) {
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_http::ws::{OpCode, Parser};
    use actix_web::web::Bytes;

    /// A client's (masked) frame.
    fn masked(op: OpCode, payload: &[u8]) -> Bytes {
        let mut out = BytesMut::new();
        Parser::write_message(&mut out, payload, op, true, true);
        out.freeze()
    }

    /// An inbound stream over these chunks, then the end of the connection.
    fn reader(chunks: Vec<Bytes>) -> Inbound {
        let stream = futures_util::stream::iter(chunks.into_iter().map(Ok));
        Inbound::new(
            Payload::Stream {
                payload: Box::pin(stream),
            },
            64,
        )
    }

    #[actix_rt::test]
    async fn frames_split_across_chunks_come_out_whole_and_in_order() {
        let text = masked(OpCode::Text, br#"{"op":"ping"}"#);
        let rest = Bytes::from([&text[5..], &masked(OpCode::Ping, b"p")[..]].concat());
        let mut inbound = reader(vec![text.slice(..5), rest]);
        match inbound.recv().await {
            Some(Ok(Frame::Text(t))) => assert_eq!(&t[..], br#"{"op":"ping"}"#),
            other => panic!("{other:?}"),
        }
        assert_eq!(inbound.buf.capacity(), inbound.buf.len());
        assert!(matches!(inbound.recv().await, Some(Ok(Frame::Ping(p))) if &p[..] == b"p"));
        assert!(inbound.recv().await.is_none());
        // Idle: no buffer kept.
        assert_eq!(inbound.buf.capacity(), 0);
    }

    #[actix_rt::test]
    async fn an_unmasked_or_oversized_frame_is_an_error_and_ends_the_stream() {
        let mut unmasked = BytesMut::new();
        Parser::write_message(&mut unmasked, b"hi", OpCode::Text, true, false);
        let mut inbound = reader(vec![unmasked.freeze(), masked(OpCode::Ping, b"p")]);
        assert!(matches!(inbound.recv().await, Some(Err(_))));
        assert!(inbound.recv().await.is_none());

        let mut inbound = reader(vec![masked(OpCode::Text, &[b'x'; 65])]);
        assert!(matches!(
            inbound.recv().await,
            Some(Err(ProtocolError::Overflow))
        ));
        assert!(inbound.recv().await.is_none());
    }
}

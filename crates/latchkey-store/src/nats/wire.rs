//! What one JetStream message holds: the events of one append (one command), and the
//! subject it is published on (DESIGN §11). Encoded with the log's codec.
//!
//! One message per append keeps an append atomic: JetStream 2.9 has no batch publish, and
//! a command's events (a registration, a disable with its revokes) must land together or
//! not at all. Every node expands a message into envelopes the same way, in stream order.
//!
//! Format 2 adds the **ciphertexts** of the detached bodies the batch posts
//! (`MessagePostedV2`); their secrets live in the keys stream (`nats::keys`), never here.
//! Format 1 batches (no bodies) still decode.

use crate::codec;
use crate::error::StoreResult;
use latchkey_domain::{Actor, StreamId, Timestamp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The message format written by this version.
pub const BATCH_FORMAT: u8 = 2;

/// The first format, without bodies: still read.
const BATCH_FORMAT_V1: u8 = 1;

/// The subjects of the log: `latchkey.ev.<kind>.<id>`.
pub const SUBJECT_PREFIX: &str = "latchkey.ev.";

/// The stream's subject filter.
pub const SUBJECTS: &str = "latchkey.ev.>";

/// The subject of a stream id (`user/<uuid>` -> `latchkey.ev.user.<uuid>`).
pub fn subject(stream: &StreamId) -> String {
    format!("{SUBJECT_PREFIX}{}", stream.as_str().replace('/', "."))
}

/// One event inside a batch, without the fields the reader assigns (seq, version, hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchEvent {
    /// UUID v7 of this event.
    pub event_id: Uuid,
    /// `Event::event_type()`.
    pub event_type: String,
    /// Payload schema version.
    pub schema: u16,
    /// `codec::encode(Event)`.
    pub payload: Vec<u8>,
}

/// The encrypted body of one message posted by a batch (format 2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchBody {
    /// The message (`MessagePostedV2::message_id`).
    pub message_id: Uuid,
    /// The text XORed with the keystream of the message's secret (`bodies::encrypt`).
    pub ciphertext: Vec<u8>,
}

/// The body of one JetStream message. Field order is the byte layout: never reorder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// [`BATCH_FORMAT`].
    pub format: u8,
    /// The stream the events belong to.
    pub stream: StreamId,
    /// The command that produced them (also the `Nats-Msg-Id`).
    pub command_id: Uuid,
    /// The writer's clock at publish time (unix ms).
    pub recorded_at: Timestamp,
    /// Who caused them.
    pub actor: Actor,
    /// The events, in order (never empty).
    pub events: Vec<BatchEvent>,
    /// The ciphertexts of the bodies these events post (format 2; empty in format 1).
    pub bodies: Vec<BatchBody>,
}

/// A format 1 batch: [`Batch`] without `bodies`. Field order is the byte layout.
#[derive(Deserialize)]
struct BatchV1 {
    format: u8,
    stream: StreamId,
    command_id: Uuid,
    recorded_at: Timestamp,
    actor: Actor,
    events: Vec<BatchEvent>,
}

impl Batch {
    /// The message body.
    pub fn encode(&self) -> StoreResult<Vec<u8>> {
        codec::encode(self)
    }

    /// Reads a message body of either format; `seq` is the stream sequence, for the error.
    pub fn decode(bytes: &[u8], seq: u64) -> StoreResult<Self> {
        let what = format!("JetStream message {seq}");
        if bytes.first() == Some(&BATCH_FORMAT_V1) {
            let v1: BatchV1 = codec::decode(bytes, &what)?;
            return Ok(Batch {
                format: v1.format,
                stream: v1.stream,
                command_id: v1.command_id,
                recorded_at: v1.recorded_at,
                actor: v1.actor,
                events: v1.events,
                bodies: Vec::new(),
            });
        }
        codec::decode(bytes, &what)
    }

    /// The ciphertext this batch carries for `message_id`, if any.
    pub fn body(&self, message_id: &Uuid) -> Option<&[u8]> {
        self.bodies
            .iter()
            .find(|b| b.message_id == *message_id)
            .map(|b| b.ciphertext.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(bodies: Vec<BatchBody>) -> Batch {
        Batch {
            format: BATCH_FORMAT,
            stream: StreamId("room/x".into()),
            command_id: Uuid::from_u128(7),
            recorded_at: Timestamp(1),
            actor: Actor::System,
            events: vec![BatchEvent {
                event_id: Uuid::from_u128(8),
                event_type: "room.created".into(),
                schema: 1,
                payload: vec![1, 2, 3],
            }],
            bodies,
        }
    }

    #[test]
    fn format_2_carries_bodies_and_format_1_still_decodes() {
        let b = batch(vec![BatchBody {
            message_id: Uuid::from_u128(9),
            ciphertext: vec![4, 5],
        }]);
        let bytes = b.encode().unwrap();
        assert_eq!(bytes[0], 2);
        assert_eq!(Batch::decode(&bytes, 1).unwrap(), b);
        assert_eq!(b.body(&Uuid::from_u128(9)), Some(&[4u8, 5][..]));

        #[derive(Serialize)]
        struct V1<'a>(u8, &'a StreamId, Uuid, Timestamp, Actor, &'a [BatchEvent]);
        let old = batch(Vec::new());
        let v1 = codec::encode(&V1(
            1,
            &old.stream,
            old.command_id,
            old.recorded_at,
            old.actor,
            &old.events,
        ))
        .unwrap();
        let read = Batch::decode(&v1, 2).unwrap();
        assert_eq!(read.format, 1);
        assert_eq!((read.events, read.bodies), (old.events, Vec::new()));
    }

    #[test]
    fn subjects_are_nats_tokens() {
        let id = Uuid::nil();
        let s = subject(&StreamId(format!("user/{id}")));
        assert_eq!(s, format!("latchkey.ev.user.{id}"));
    }
}

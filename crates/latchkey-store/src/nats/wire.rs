//! What one JetStream message holds: the events of one append (one command), and the
//! subject it is published on (DESIGN §11). Encoded with the log's codec.
//!
//! One message per append keeps an append atomic: JetStream 2.9 has no batch publish, and
//! a command's events (a registration, a disable with its revokes) must land together or
//! not at all. Every node expands a message into envelopes the same way, in stream order.

use crate::codec;
use crate::error::StoreResult;
use latchkey_domain::{Actor, StreamId, Timestamp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The message format written by this version.
pub const BATCH_FORMAT: u8 = 1;

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
}

impl Batch {
    /// The message body.
    pub fn encode(&self) -> StoreResult<Vec<u8>> {
        codec::encode(self)
    }

    /// Reads a message body; `seq` is the stream sequence, for the error.
    pub fn decode(bytes: &[u8], seq: u64) -> StoreResult<Self> {
        codec::decode(bytes, &format!("JetStream message {seq}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_nats_tokens() {
        let id = Uuid::nil();
        let s = subject(&StreamId(format!("user/{id}")));
        assert_eq!(s, format!("latchkey.ev.user.{id}"));
    }
}

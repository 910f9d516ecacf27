//! The envelope: the stored record around each event, and the hash that chains envelopes.
//!
//! Stored as `codec::encode(Envelope)` under the event's seq in the `log` tree. `prev_hash`
//! is SHA-256 of the previous envelope's stored bytes (all zeros for seq 1).

use crate::codec;
use crate::error::StoreResult;
use latchkey_domain::{Actor, Event, StreamId, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The envelope format written by this version.
pub const FORMAT: u8 = 1;

/// The hash of "nothing before": `prev_hash` of seq 1.
pub const GENESIS: [u8; 32] = [0; 32];

/// One stored event with its metadata. Field order is the byte layout: never reorder,
/// insert or remove a field; a layout change needs a new [`FORMAT`] and a migration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Envelope format ([`FORMAT`]).
    pub format: u8,
    /// Global position, contiguous from 1.
    pub seq: u64,
    /// The stream, e.g. `user/<uuid>`.
    pub stream: StreamId,
    /// Position in the stream, contiguous from 1.
    pub version: u64,
    /// UUID v7 of this event.
    pub event_id: Uuid,
    /// The command that produced it (idempotency key).
    pub command_id: Uuid,
    /// When the journal wrote it (unix ms; never decreases along the log).
    pub recorded_at: Timestamp,
    /// Who caused it.
    pub actor: Actor,
    /// SHA-256 of the previous envelope's bytes.
    pub prev_hash: [u8; 32],
    /// `Event::event_type()`, readable without decoding the payload.
    pub event_type: String,
    /// Payload schema version, for upcasting old events.
    pub schema: u16,
    /// `codec::encode(Event)`.
    pub payload: Vec<u8>,
}

impl Envelope {
    /// Decodes the payload into an event.
    pub fn event(&self) -> StoreResult<Event> {
        codec::decode(&self.payload, &format!("payload of log seq {}", self.seq))
    }
}

/// SHA-256 of stored bytes: the link of the chain.
pub fn hash(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// An event read back from the log: its envelope and the decoded event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The envelope (with the payload bytes).
    pub envelope: Envelope,
    /// The decoded payload.
    pub event: Event,
}

impl Recorded {
    /// Decodes stored envelope bytes found under `seq`.
    pub fn decode(seq: u64, bytes: &[u8]) -> StoreResult<Self> {
        let envelope: Envelope = codec::decode(bytes, &format!("log seq {seq}"))?;
        let event = envelope.event()?;
        Ok(Self { envelope, event })
    }

    /// The global seq.
    pub fn seq(&self) -> u64 {
        self.envelope.seq
    }
}

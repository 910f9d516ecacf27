//! The envelope: the stored record around each event, and the hash that chains envelopes.
//!
//! Stored as `codec::encode(Envelope)` under the event's seq in the `log` tree. `prev_hash`
//! is SHA-256 of the previous envelope's stored bytes (all zeros for seq 1).
//!
//! Compaction replaces an envelope by a [`Tombstone`] under the same seq: its leading byte
//! is [`TOMBSTONE_FORMAT`] instead of [`FORMAT`], and it keeps the dropped envelope's hash,
//! so the next entry's `prev_hash` still links to it and the chain stays provable.

use crate::codec;
use crate::error::StoreResult;
use latchkey_domain::{Actor, Event, StreamId, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The envelope format written by this version.
pub const FORMAT: u8 = 1;

/// The leading byte of a [`Tombstone`]; never an envelope [`FORMAT`].
pub const TOMBSTONE_FORMAT: u8 = 0x80;

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
        codec::decode(
            &self.payload,
            format_args!("payload of log seq {}", self.seq),
        )
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
        let envelope: Envelope = codec::decode(bytes, format_args!("log seq {seq}"))?;
        let event = envelope.event()?;
        Ok(Self { envelope, event })
    }

    /// The global seq.
    pub fn seq(&self) -> u64 {
        self.envelope.seq
    }
}

/// What is left of a dropped envelope: enough to keep seqs, stream versions and the hash
/// chain meaningful. Field order is the byte layout (as for [`Envelope`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    /// [`TOMBSTONE_FORMAT`]: the leading byte that tells a tombstone from an envelope.
    pub format: u8,
    /// The dropped envelope's seq.
    pub seq: u64,
    /// Its stream.
    pub stream: StreamId,
    /// Its version in that stream.
    pub version: u64,
    /// When it was recorded.
    pub recorded_at: Timestamp,
    /// Its `prev_hash`: the link to the entry before.
    pub prev_hash: [u8; 32],
    /// SHA-256 of its stored bytes: what the next entry's `prev_hash` holds.
    pub hash: [u8; 32],
    /// Its event type.
    pub event_type: String,
    /// Why it was dropped (e.g. `terminal pairing`, `superseded token.used`).
    pub why: String,
}

impl Tombstone {
    /// The tombstone of an envelope whose stored bytes are `bytes`.
    pub fn of(envelope: &Envelope, bytes: &[u8], why: &str) -> Self {
        Self {
            format: TOMBSTONE_FORMAT,
            seq: envelope.seq,
            stream: envelope.stream.clone(),
            version: envelope.version,
            recorded_at: envelope.recorded_at,
            prev_hash: envelope.prev_hash,
            hash: hash(bytes),
            event_type: envelope.event_type.clone(),
            why: why.to_string(),
        }
    }
}

/// What compaction has dropped so far (the `meta` key `compaction`): how many events
/// for each reason, and the seq from which an as-of state is exact again. A state as of
/// an earlier seq may lack facts that were dropped, and says so.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactionMark {
    /// As-of states at seqs below this may lack dropped facts (0: nothing dropped).
    pub exact_from: u64,
    /// Events dropped, by the `why` of their tombstones.
    pub dropped: std::collections::BTreeMap<String, u64>,
}

/// One entry of the `log` tree: a live event, or the tombstone of a dropped one.
// Most entries are events, read in bulk by the projector: boxing them would allocate once
// per event to save stack space for the rarer tombstone.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A live event.
    Event(Recorded),
    /// A dropped event.
    Tombstone(Tombstone),
}

impl Entry {
    /// Decodes the stored bytes found under `seq`, telling tombstones by their leading byte.
    pub fn decode(seq: u64, bytes: &[u8]) -> StoreResult<Self> {
        if is_tombstone(bytes) {
            let t = codec::decode(bytes, format_args!("tombstone at log seq {seq}"))?;
            return Ok(Self::Tombstone(t));
        }
        Recorded::decode(seq, bytes).map(Self::Event)
    }

    /// The global seq.
    pub fn seq(&self) -> u64 {
        match self {
            Self::Event(r) => r.seq(),
            Self::Tombstone(t) => t.seq,
        }
    }

    /// The stream.
    pub fn stream(&self) -> &StreamId {
        match self {
            Self::Event(r) => &r.envelope.stream,
            Self::Tombstone(t) => &t.stream,
        }
    }

    /// The version in its stream.
    pub fn version(&self) -> u64 {
        match self {
            Self::Event(r) => r.envelope.version,
            Self::Tombstone(t) => t.version,
        }
    }

    /// When it was recorded.
    pub fn recorded_at(&self) -> Timestamp {
        match self {
            Self::Event(r) => r.envelope.recorded_at,
            Self::Tombstone(t) => t.recorded_at,
        }
    }

    /// Its `prev_hash`.
    pub fn prev_hash(&self) -> [u8; 32] {
        match self {
            Self::Event(r) => r.envelope.prev_hash,
            Self::Tombstone(t) => t.prev_hash,
        }
    }

    /// The live event, if this is not a tombstone.
    pub fn event(self) -> Option<Recorded> {
        match self {
            Self::Event(r) => Some(r),
            Self::Tombstone(_) => None,
        }
    }
}

/// True when stored log bytes are a tombstone rather than an envelope.
pub fn is_tombstone(bytes: &[u8]) -> bool {
    bytes.first() == Some(&TOMBSTONE_FORMAT)
}

/// The hash the next entry's `prev_hash` must hold after these stored bytes: SHA-256 of an
/// envelope's bytes, or the hash a tombstone keeps.
pub fn link_hash(seq: u64, bytes: &[u8]) -> StoreResult<[u8; 32]> {
    if is_tombstone(bytes) {
        let t: Tombstone = codec::decode(bytes, format_args!("tombstone at log seq {seq}"))?;
        return Ok(t.hash);
    }
    Ok(hash(bytes))
}

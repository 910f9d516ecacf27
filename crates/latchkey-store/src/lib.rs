//! # latchkey-store
//!
//! The event log of latchkey on sled (DESIGN §3).
//!
//! **Architecture Invariant:** this is the only crate that knows the byte layout of the
//! log. It knows nothing of HTTP or actors; it stores `latchkey_domain::Event`s.
//!
//! # Layout
//! - `codec`: the one place that encodes and decodes bytes (bincode `=2.0.1`, size-limited).
//! - `envelope`: the stored record around each event, and its hash.
//! - `lock`: the `<data-dir>/LOCK` file with the holder's PID.
//! - `journal`: the single writer thread: group commit, version checks, fsync before ack.
//! - `sled_store`: `SledStore`, the embedded `EventStore`: trees, reads, head watch.
//! - `projection`: read-model trees whose checkpoint is written atomically with their
//!   changes, and the projector thread that feeds them in seq order.
//! - `import`: envelopes written back byte for byte (export/import, replay copies).
//! - `verify`: the hash-chain and consistency check behind `latchkey admin verify`.

pub mod codec;
pub mod envelope;
pub mod error;
mod import;
mod journal;
pub mod lock;
pub mod projection;
pub mod sled_store;
pub mod verify;

pub use envelope::{Envelope, Recorded};
pub use error::{AppendError, StoreError, StoreResult};
pub use sled_store::{SledStore, StoreOptions};

use latchkey_domain::{Actor, Event, StreamId};
use std::future::Future;
use std::pin::Pin;
use uuid::Uuid;

/// What the writer expects a stream's current version to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No check (used by tools that append on their own authority).
    Any,
    /// Exactly this version; `0` means the stream must not exist yet.
    Exact(u64),
}

/// One append: events for one stream, decided by one command.
#[derive(Clone, Debug)]
pub struct AppendRequest {
    /// The stream the events belong to.
    pub stream: StreamId,
    /// The version the decider saw.
    pub expected: ExpectedVersion,
    /// The events, in order. May be empty only to ask for the stream's current state.
    pub events: Vec<Event>,
    /// The command's id: a retry with the same id on the same stream returns the first result.
    pub command_id: Uuid,
    /// Who caused these events.
    pub actor: Actor,
}

/// Where an acknowledged append landed. Everything in it is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Version of the stream's first new event (`last_version + 1 - n`).
    pub first_version: u64,
    /// The stream's version after the append.
    pub last_version: u64,
    /// Global seq of the first new event (0 when no events were appended).
    pub first_seq: u64,
    /// Global seq of the last new event (0 when no events were appended).
    pub last_seq: u64,
    /// True when this is the stored result of an earlier append with the same command id.
    pub replayed: bool,
}

/// The future an append resolves to, once the events are durable (or refused).
pub type AppendFuture = Pin<Box<dyn Future<Output = Result<Appended, AppendError>> + Send>>;

/// An iterator over recorded events, in order.
pub type EventIter<'a> = Box<dyn Iterator<Item = StoreResult<Recorded>> + Send + 'a>;

/// The event log, whatever its backend (sled now; NATS JetStream later, DESIGN §11).
pub trait EventStore: Send + Sync {
    /// Appends events after checking the expected version. Resolves after the events are
    /// durable (flushed and fsynced); a version mismatch resolves to `AppendError::Conflict`.
    fn append(&self, req: AppendRequest) -> AppendFuture;

    /// The events of one stream with version >= `from_version` (versions start at 1).
    fn read_stream(&self, stream: &StreamId, from_version: u64) -> StoreResult<EventIter<'_>>;

    /// Every event with seq >= `from_seq` (seqs start at 1), in seq order.
    fn read_all(&self, from_seq: u64) -> StoreResult<EventIter<'_>>;

    /// A watch of the newest durable seq (0 for an empty log).
    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64>;

    /// The newest durable seq (0 for an empty log).
    fn head(&self) -> u64;
}

#[cfg(test)]
mod tests;

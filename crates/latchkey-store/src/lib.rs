//! # latchkey-store
//!
//! The event log of latchkey on sled (DESIGN §3), or on NATS JetStream (DESIGN §11).
//!
//! **Architecture Invariant:** this is the only crate that knows the byte layout of the
//! log. It knows nothing of HTTP or actors; it stores `latchkey_domain::Event`s.
//!
//! # Layout
//! - `codec`: the one place that encodes and decodes bytes (bincode `=2.0.1`, size-limited).
//! - `envelope`: the stored record around each event, and its hash.
//! - `lock`: the `<data-dir>/LOCK` file with the holder's PID.
//! - `bodies`: detached message bodies beside the log, encrypted at rest, erasable.
//! - `journal`: the single writer thread: group commit, version checks, fsync before ack.
//! - `sled_store`: `SledStore`, the embedded `EventStore`: trees, reads, head watch.
//! - `projection`: read-model trees whose checkpoint is written atomically with their
//!   changes, and the projector thread that feeds them in seq order.
//! - `snapshot`: the `snapshots` tree, derived and discardable states of long streams.
//! - `import`: envelopes written back byte for byte (export/import, replay copies).
//! - `nats`: `NatsStore`, the log on a JetStream stream shared by many nodes, each with a
//!   local sled copy it reads from.
//! - `tickets`: the `TicketStore` trait, single-use WebSocket tickets every node of a shared
//!   log sees (the JetStream KV bucket is in `nats`).
//! - `verify`: the hash-chain and consistency check behind `latchkey admin verify`.
//! - `reclaim`: rewriting a compacted data dir into a fresh sled database, to give the
//!   space sled keeps back to the file system.

mod bodies;
pub mod clock;
pub mod codec;
pub mod envelope;
pub mod error;
mod import;
mod journal;
pub mod lock;
pub mod nats;
pub mod projection;
pub mod reclaim;
pub mod sled_store;
pub mod snapshot;
pub mod tickets;
pub mod verify;

pub use envelope::{CompactionMark, Entry, Envelope, Recorded, Tombstone};
pub use error::{AppendError, StoreError, StoreResult};
pub use nats::{NatsOptions, NatsStore};
pub use sled_store::{JournalStats, SledStore, StoreOptions};
pub use snapshot::Snapshot;

use latchkey_domain::{Actor, Event, StreamId};
use projection::ReadModel;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use uuid::Uuid;
use verify::VerifyReport;

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

/// When an append is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ack {
    /// Once its events are durable ([`EventStore::append`]): every append but the few
    /// below.
    Durable,
    /// Once its events are written, maybe before they are durable
    /// ([`EventStore::append_written`]): for an event whose loss in a crash is harmless
    /// (an issued challenge) or whose caller waits for a later durable seq of its own
    /// (or for this one's durability) before it answers.
    Written,
}

/// Where an acknowledged append landed. Everything in it is durable, except after
/// [`EventStore::append_written`], whose answer may come before the fsync.
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

/// The future of [`EventStore::catch_up`]: the local head once caught up.
pub type CatchUpFuture = Pin<Box<dyn Future<Output = StoreResult<u64>> + Send>>;

/// An iterator over recorded events, in order.
pub type EventIter<'a> = Box<dyn Iterator<Item = StoreResult<Recorded>> + Send + 'a>;

/// One stored log entry (an envelope or a tombstone) as its exact bytes, with its seq and, for a message posted with a
/// detached body (`MessagePostedV2`), that body unless it was erased.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEntry {
    /// The global seq.
    pub seq: u64,
    /// The envelope's stored bytes.
    pub envelope: Vec<u8>,
    /// The detached body; `None` for other events and for an erased body.
    pub body: Option<latchkey_domain::MessageBody>,
}

/// An iterator over stored envelopes, in order.
pub type RawIter<'a> = Box<dyn Iterator<Item = StoreResult<RawEntry>> + Send + 'a>;

/// An iterator over log entries (live events and tombstones), in seq order.
pub type EntryIter<'a> = Box<dyn Iterator<Item = StoreResult<Entry>> + Send + 'a>;

/// The event log, whatever its backend (sled, or NATS JetStream: DESIGN §11).
pub trait EventStore: Send + Sync {
    /// Appends events after checking the expected version. Resolves after the events are
    /// durable (flushed and fsynced); a version mismatch resolves to `AppendError::Conflict`.
    fn append(&self, req: AppendRequest) -> AppendFuture;

    /// Like [`Self::append`], but may resolve once the events are written and visible to
    /// reads, before they are durable: for an event whose loss in a crash is harmless (a
    /// sign-in challenge: the client asks again), or one that a later durable append of
    /// the caller's covers. The events are durable once [`Self::head`] reaches the
    /// answer's `last_seq`; every append queued after this one becomes durable only after
    /// it. By default the same as [`Self::append`].
    fn append_written(&self, req: AppendRequest) -> AppendFuture {
        self.append(req)
    }

    /// The live events of one stream with version >= `from_version` (versions start at
    /// 1). Versions of dropped events are missing: the stream's head still counts them.
    fn read_stream(&self, stream: &StreamId, from_version: u64) -> StoreResult<EventIter<'_>>;

    /// Every live event with seq >= `from_seq` (seqs start at 1), in seq order. Tombstones
    /// are skipped: deciders and projections see only what the log still holds.
    fn read_all(&self, from_seq: u64) -> StoreResult<EventIter<'_>>;

    /// Every log entry with seq >= `from_seq`, tombstones included (`admin log`, verify).
    fn read_log(&self, from_seq: u64) -> StoreResult<EntryIter<'_>>;

    /// [`Self::read_log`] without joining detached message bodies (`body` stays `None`):
    /// for the projector's catch-up, since no read model holds a detached body. By
    /// default the same as `read_log`.
    fn read_log_bare(&self, from_seq: u64) -> StoreResult<EntryIter<'_>> {
        self.read_log(from_seq)
    }

    /// Replaces the events at `seqs` by tombstones saying `why` (their seq, stream,
    /// version, type, time and hash), dropping their stream index entries, atomically and
    /// durably, in order with appends. Already tombstoned seqs are skipped; returns how many
    /// events were replaced. The one way anything leaves the log (DESIGN §15).
    ///
    /// `exact_from` is the first seq whose as-of state does not depend on what is dropped
    /// (at least the largest seq in `seqs`); the [`CompactionMark`] keeps the largest.
    /// The whole set is one transaction: pass a few thousand seqs at a time.
    fn tombstone(&self, seqs: &[u64], why: &str, exact_from: u64) -> StoreResult<u64>;

    /// What compaction has dropped so far (default when nothing).
    fn compaction_mark(&self) -> StoreResult<CompactionMark>;

    /// A watch of the newest durable seq (0 for an empty log).
    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64>;

    /// The newest durable seq (0 for an empty log).
    fn head(&self) -> u64;

    /// The newest seq written to the log: [`Self::head`], or a later one whose group is
    /// written and not yet durable, which [`Self::append_written`] may already have
    /// answered. By default the head.
    fn written_head(&self) -> u64 {
        self.head()
    }

    /// Blocks until the durable head is above `seq` or `timeout` passes; returns the head.
    fn wait_for_head_above(&self, seq: u64, timeout: Duration) -> u64;

    /// Appends and blocks until the result is known (for tools and threads without a runtime).
    fn append_blocking(&self, req: AppendRequest) -> Result<Appended, AppendError>;

    /// The stream's current (version, seq of its last event); `(0, 0)` for a new stream.
    fn stream_head(&self, stream: &StreamId) -> StoreResult<(u64, u64)>;

    /// The hash of the newest envelope (all zeros for an empty log).
    fn chain_head(&self) -> StoreResult<[u8; 32]>;

    /// Every stored entry with seq >= `from_seq`, byte for byte, tombstones included, with
    /// its detached body (export, replay copies).
    fn read_raw(&self, from_seq: u64) -> StoreResult<RawIter<'_>>;

    /// Appends stored envelope bytes, in order, to this store, which must be empty; each
    /// is checked against the chain first, and each detached body against its hash. The
    /// entries' own `seq` is not trusted: the envelope's is. Returns the number written;
    /// `progress` gets each seq.
    fn import_envelopes(
        &self,
        envelopes: &mut dyn Iterator<Item = StoreResult<RawEntry>>,
        progress: &mut dyn FnMut(u64),
    ) -> StoreResult<u64>;

    /// The detached body of a `MessagePostedV2`, `None` once erased (or for an unknown or
    /// legacy message, whose text is in its envelope).
    fn message_body(
        &self,
        message_id: &latchkey_domain::MessageId,
    ) -> StoreResult<Option<latchkey_domain::MessageBody>>;

    /// Checks the hash chain, seqs, stream versions and read-model checkpoints.
    fn verify(&self, progress: &mut dyn FnMut(u64)) -> StoreResult<VerifyReport>;

    /// Opens (creating) the read model `name`: the storage a projection writes and its
    /// queries read (DESIGN §3).
    fn read_model(&self, name: &str) -> StoreResult<ReadModel>;

    /// The names of every read model the store holds.
    fn read_model_names(&self) -> StoreResult<Vec<String>>;

    /// The stored snapshot of `stream`, if any: derived from the log and discardable
    /// (DESIGN §15). The caller checks its format and that the log agrees with it.
    fn snapshot(&self, stream: &StreamId) -> StoreResult<Option<Snapshot>>;

    /// Stores (replacing) the snapshot of `stream`. Not durable by itself: a lost snapshot
    /// only means a longer fold.
    fn put_snapshot(&self, stream: &StreamId, snap: &Snapshot) -> StoreResult<()>;

    /// Removes every snapshot (`latchkey admin rebuild`); returns how many there were.
    fn clear_snapshots(&self) -> StoreResult<u64>;

    /// Bytes the store takes on disk.
    fn size_on_disk(&self) -> u64;

    /// Journal counters (flushes vs appends), for metrics and benchmarks.
    fn stats(&self) -> &JournalStats;

    /// The server id stored at creation (on JetStream: one id for the whole cluster).
    fn server_id(&self) -> StoreResult<Uuid>;

    /// Brings this node's copy of the log up to the newest event any node has written
    /// (waiting at most `timeout`) and resolves to the local head. A node does this before
    /// it answers 401 or 404 for a value it does not know (DESIGN §11). The sled store is
    /// the only writer of its log, so it is always caught up.
    fn catch_up(&self, _timeout: Duration) -> CatchUpFuture {
        let head = self.head();
        Box::pin(async move { Ok(head) })
    }

    /// Whether other nodes append to this log too (JetStream): entities then refresh
    /// before they decide, and lookups that miss catch up first.
    fn is_shared(&self) -> bool {
        false
    }

    /// Where WebSocket tickets live so that every node sees them (DESIGN §11); `None` on a
    /// store no other node writes, whose one node keeps its tickets in memory.
    fn tickets(&self) -> Option<&dyn tickets::TicketStore> {
        None
    }

    /// Stops background work and flushes (the server calls it after draining).
    fn shutdown(&self) -> StoreResult<()> {
        Ok(())
    }
}

/// Copies the log of `from` up to and including `to` into `into` (an empty store), byte
/// for byte: what `latchkey admin replay` builds its read models from.
pub fn copy_prefix(
    from: &dyn EventStore,
    into: &dyn EventStore,
    to: u64,
    progress: &mut dyn FnMut(u64),
) -> StoreResult<u64> {
    let mut source = from
        .read_raw(1)?
        .take_while(|r| r.as_ref().map_or(true, |e| e.seq <= to));
    into.import_envelopes(&mut source, progress)
}

#[cfg(test)]
mod tests;

//! `NatsStore`: the `EventStore` on a NATS JetStream stream shared by many latchkey nodes
//! (DESIGN §11), with this node's copy of it in a local sled store.
//!
//! - **Appends** publish one message per command on `latchkey.ev.<kind>.<id>` with
//!   `Nats-Msg-Id` (the command id: JetStream drops a retry inside its duplicate window)
//!   and `Nats-Expected-Last-Subject-Sequence` (the stream sequence of the entity's last
//!   message, as this node knows it: another node's write in between is a version
//!   conflict). An append resolves only after JetStream's acknowledgement (its quorum
//!   write) and after this node has applied the message, so the caller reads its writes.
//! - **Reads** go to the local copy: a follower task consumes the stream in order (an
//!   ordered consumer, recreated after any failure) and [`mirror::Mirror`] expands each
//!   message into envelopes, seqs and the hash chain, identically on every node.
//! - **Catch-up**: [`EventStore::catch_up`] asks the stream for its last sequence and
//!   waits until the local copy has it: what a node does before it answers 401 or 404.
//!
//! - **Bodies** (issue 16 on a shared log): a batch carries the ciphertexts of the bodies
//!   it posts; their secrets live in the keys stream, one message each, erased there when
//!   the message is deleted (see `keys`).
//!
//! Layout: `connect` (URLs, server checks, the streams' config), `wire` (the message
//! body), `keys` (the body secrets' stream), `mirror` (the local copy), `follow` (the
//! follower task), `append` (publishing), `import` (an export into an empty stream),
//! `tickets` (the WebSocket tickets' KV bucket).

mod append;
pub mod connect;
mod follow;
pub mod import;
pub mod keys;
pub(crate) mod mirror;
pub mod tickets;
pub mod wire;

pub use connect::NatsOptions;
pub use import::{import_stream, StreamImport};

use crate::error::{StoreError, StoreResult};
use crate::projection::ReadModel;
use crate::sled_store::{JournalStats, SledStore, StoreOptions};
use crate::verify::VerifyReport;
use crate::AppendError;
use crate::{
    AppendFuture, AppendRequest, Appended, CatchUpFuture, CompactionMark, EntryIter, EventIter,
    EventStore, RawEntry, RawIter,
};
use async_nats::jetstream;
use latchkey_domain::StreamId;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// What the appender, the follower and catch-up share.
pub(crate) struct Shared {
    pub js: jetstream::Context,
    pub opts: NatsOptions,
    pub local: Arc<SledStore>,
    pub nats: sled::Tree,
    /// The last stream sequence applied locally.
    pub applied: watch::Sender<u64>,
    /// The highest stream sequence an append on this node was acknowledged at: when the
    /// follower makes no progress towards it, it reopens its consumer.
    pub wanted: watch::Sender<u64>,
    /// Set to stop the follower.
    pub stop: watch::Sender<bool>,
    /// The wall clock that stamps `recorded_at`.
    pub clock: crate::clock::WallClock,
}

/// The JetStream-backed event store of one node.
pub struct NatsStore {
    shared: Arc<Shared>,
    rt: Mutex<Runtime>,
    handle: tokio::runtime::Handle,
    follower: Mutex<Option<std::thread::JoinHandle<()>>>,
    server_id: Uuid,
    /// The WebSocket tickets every node sees.
    tickets: tickets::TicketBucket,
}

impl NatsStore {
    /// Connects to JetStream, creates or checks the stream, opens this node's copy in
    /// `data_dir` and brings it up to the stream's last sequence before returning.
    pub fn open(data_dir: &Path, opts: NatsOptions, local: StoreOptions) -> StoreResult<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("latchkey-nats")
            .enable_all()
            .build()
            .map_err(runtime_failed)?;
        let handle = rt.handle().clone();
        // Dropped without blocking on every path (also an early `?` inside actix's runtime).
        let rt = Runtime(Some(rt));
        let clock = local.clock.clone();
        let o = opts.clone();
        let (js, info) = run_on(&handle, async move { open_streams(&o).await })??;
        let local = Arc::new(SledStore::open(data_dir, local)?);
        let nats = mirror::nats_tree(&local)?;
        let applied = mirror::applied(&nats)?;
        check_copy(&local, applied, info.state.last_sequence, &opts.stream)?;
        let shared = Arc::new(Shared {
            js,
            opts,
            local: local.clone(),
            nats,
            applied: watch::channel(applied).0,
            wanted: watch::channel(0).0,
            stop: watch::channel(false).0,
            clock,
        });
        let follower = follow::start(shared.clone(), handle.clone())?;
        let tickets =
            tickets::TicketBucket::new(shared.js.clone(), shared.opts.clone(), handle.clone());
        let store = Self {
            server_id: cluster_id(&info),
            tickets,
            shared,
            rt: Mutex::new(rt),
            handle,
            follower: Mutex::new(Some(follower)),
        };
        let timeout = Duration::from_secs(60).max(store.shared.opts.timeout);
        let caught = run_on(
            &store.handle,
            append::catch_up(store.shared.clone(), timeout),
        )??;
        tracing::info!(head = caught, stream = %store.shared.opts.stream, "the local copy of the stream is caught up");
        Ok(store)
    }

    /// This node's local copy (read models and the expanded log).
    pub fn local(&self) -> &SledStore {
        &self.shared.local
    }

    /// Stops the follower and closes the local store.
    pub fn close(&self) -> StoreResult<()> {
        self.shared.stop.send_replace(true);
        if let Some(t) = self.follower.lock().ok().and_then(|mut g| g.take()) {
            let _ = t.join();
        }
        if let Ok(mut rt) = self.rt.lock() {
            rt.stop();
        }
        self.shared.local.close()
    }
}

impl Drop for NatsStore {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!(error = %e, "closing the store failed");
        }
    }
}

/// The NATS runtime, shut down in the background when dropped: dropping a tokio runtime
/// the ordinary way panics inside another runtime (the server's).
struct Runtime(Option<tokio::runtime::Runtime>);

impl Runtime {
    fn stop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Why the NATS runtime did not start.
fn runtime_failed(source: std::io::Error) -> StoreError {
    StoreError::Io {
        context: "start the NATS runtime".into(),
        source,
    }
}

/// Connects, and creates or checks the log stream and its keys stream; the log stream's
/// info.
async fn open_streams(
    opts: &NatsOptions,
) -> StoreResult<(jetstream::Context, jetstream::stream::Info)> {
    let client = connect::connect(opts).await?;
    let mut js = jetstream::new(client);
    js.set_timeout(opts.timeout);
    let info = connect::ensure_stream_patiently(&js, opts).await?;
    Ok((js, info))
}

/// Runs a future on the NATS runtime and waits for it from any thread (also from inside
/// another runtime, where `block_on` is not allowed).
pub(crate) fn run_on<T: Send + 'static>(
    handle: &tokio::runtime::Handle,
    fut: impl Future<Output = T> + Send + 'static,
) -> StoreResult<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    handle.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().map_err(|_| StoreError::Closed)
}

/// Refuses a data dir that is not a copy of this stream: a sled log of its own, or a copy
/// of a longer (so another, or since deleted) stream.
fn check_copy(local: &SledStore, applied: u64, last: u64, stream: &str) -> StoreResult<()> {
    if applied == 0 && local.head() > 0 {
        return Err(StoreError::Unavailable(format!(
            "data dir {} holds a sled log of its own; with --store nats:// give each node a fresh --data-dir (import a sled log into the stream with `latchkey admin --store ... import`)",
            local.dir().display()
        )));
    }
    if applied > last {
        return Err(StoreError::Unavailable(format!(
            "data dir {} has applied stream {stream} up to {applied}, but the stream ends at {last}: it is a copy of another stream; use a fresh --data-dir",
            local.dir().display()
        )));
    }
    Ok(())
}

/// One id for the whole cluster: derived from the stream's name and creation time, so every
/// node writes the same `server=` line on challenges.
fn cluster_id(info: &jetstream::stream::Info) -> Uuid {
    let created = info.created.unix_timestamp_nanos().to_be_bytes();
    let mut h = crate::envelope::hash(&[info.config.name.as_bytes(), &created[..]].concat());
    h[6] = (h[6] & 0x0f) | 0x80; // version 8: custom
    h[8] = (h[8] & 0x3f) | 0x80;
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    Uuid::from_bytes(b)
}

impl EventStore for NatsStore {
    fn append(&self, req: AppendRequest) -> AppendFuture {
        let handle = self.handle.spawn(append::append(self.shared.clone(), req));
        Box::pin(async move {
            handle
                .await
                .map_err(|_| AppendError::Store(StoreError::Closed))?
        })
    }

    fn read_stream(&self, stream: &StreamId, from_version: u64) -> StoreResult<EventIter<'_>> {
        self.shared.local.read_stream(stream, from_version)
    }

    fn read_all(&self, from_seq: u64) -> StoreResult<EventIter<'_>> {
        self.shared.local.read_all(from_seq)
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.local.subscribe()
    }

    fn head(&self) -> u64 {
        self.shared.local.head()
    }

    fn wait_for_head_above(&self, seq: u64, timeout: Duration) -> u64 {
        self.shared.local.wait_for_head_above(seq, timeout)
    }

    fn append_blocking(&self, req: AppendRequest) -> Result<Appended, AppendError> {
        run_on(&self.handle, append::append(self.shared.clone(), req))?
    }

    fn stream_head(&self, stream: &StreamId) -> StoreResult<(u64, u64)> {
        self.shared.local.stream_head(stream)
    }

    fn chain_head(&self) -> StoreResult<[u8; 32]> {
        self.shared.local.chain_head()
    }

    fn read_raw(&self, from_seq: u64) -> StoreResult<RawIter<'_>> {
        self.shared.local.read_raw(from_seq)
    }

    fn read_log(&self, from_seq: u64) -> StoreResult<EntryIter<'_>> {
        self.shared.local.read_log(from_seq)
    }

    // Compaction rewrites the log in place; a shared stream is written only by appends,
    // and every node's copy must stay the expansion of the same messages.
    fn tombstone(&self, _seqs: &[u64], _why: &str, _exact_from: u64) -> StoreResult<u64> {
        Err(StoreError::Unsupported(
            "tombstones (compaction, erasing legacy messages) on a JetStream log".into(),
        ))
    }

    fn compaction_mark(&self) -> StoreResult<CompactionMark> {
        self.shared.local.compaction_mark()
    }

    fn import_envelopes(
        &self,
        _envelopes: &mut dyn Iterator<Item = StoreResult<RawEntry>>,
        _progress: &mut dyn FnMut(u64),
    ) -> StoreResult<u64> {
        Err(StoreError::Unsupported(
            "importing into a running node's copy of a JetStream stream".into(),
        ))
    }

    fn message_body(
        &self,
        message_id: &latchkey_domain::MessageId,
    ) -> StoreResult<Option<latchkey_domain::MessageBody>> {
        self.shared.local.message_body(message_id)
    }

    fn verify(&self, progress: &mut dyn FnMut(u64)) -> StoreResult<VerifyReport> {
        crate::verify::verify(&self.shared.local, progress)
    }

    fn read_model(&self, name: &str) -> StoreResult<ReadModel> {
        self.shared.local.read_model(name)
    }

    fn read_model_names(&self) -> StoreResult<Vec<String>> {
        self.shared.local.read_model_names()
    }

    // Snapshots are derived from this node's copy, so they live beside it: every node's
    // copy has the same seqs and versions, and a snapshot is checked against the log.
    fn snapshot(&self, stream: &StreamId) -> StoreResult<Option<crate::Snapshot>> {
        self.shared.local.snapshot(stream)
    }

    fn put_snapshot(&self, stream: &StreamId, snap: &crate::Snapshot) -> StoreResult<()> {
        self.shared.local.put_snapshot(stream, snap)
    }

    fn clear_snapshots(&self) -> StoreResult<u64> {
        self.shared.local.clear_snapshots()
    }

    fn size_on_disk(&self) -> u64 {
        self.shared.local.size_on_disk()
    }

    fn stats(&self) -> &JournalStats {
        self.shared.local.stats()
    }

    fn server_id(&self) -> StoreResult<Uuid> {
        Ok(self.server_id)
    }

    fn catch_up(&self, timeout: Duration) -> CatchUpFuture {
        let handle = self
            .handle
            .spawn(append::catch_up(self.shared.clone(), timeout));
        Box::pin(async move { handle.await.map_err(|_| StoreError::Closed)? })
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn tickets(&self) -> Option<&dyn crate::tickets::TicketStore> {
        Some(&self.tickets)
    }

    fn shutdown(&self) -> StoreResult<()> {
        self.close()
    }
}

//! `SledStore`: the embedded `EventStore` on one sled `Db` with a fixed set of trees.
//!
//! Trees (DESIGN §3): `log` (seq BE -> envelope), `streams` (stream ++ 0 ++ version BE ->
//! seq BE), `heads` (stream -> version BE ++ seq BE), `meta`, `commands` (command id ->
//! stored result), `snapshots` (stream -> derived state, see `snapshot`), `bodies`
//! (message id -> detached message body, see `bodies`), and one
//! `rm/<projection>` tree per read model. Never a tree per entity.
//! Writes go through the journal thread only; reads go straight to sled.

use crate::clock::WallClock;
use crate::codec::{self, key_u64, u64_key};
use crate::envelope::{is_tombstone, CompactionMark, Entry, Recorded};
use crate::error::{AppendError, StoreError, StoreResult};
use crate::journal::{self, JournalHandle};
use crate::lock::DataDirLock;
use crate::projection::{ReadModel, TREE_PREFIX};
use crate::snapshot::{self, Snapshot};
use crate::verify::VerifyReport;
use crate::{
    Ack, AppendFuture, AppendRequest, Appended, EntryIter, EventIter, EventStore, RawEntry, RawIter,
};
use latchkey_domain::{MessageBody, StreamId};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// Tunables of the store. `Default` is what `latchkey serve` uses.
#[derive(Clone)]
pub struct StoreOptions {
    /// sled's page cache, in bytes.
    pub cache_capacity: u64,
    /// Most append requests folded into one group commit.
    pub max_batch: usize,
    /// Bound of the journal's queue; a full queue refuses appends with `StoreError::Busy`.
    pub queue_capacity: usize,
    /// How long a command id is remembered for idempotent retries.
    pub command_retention: Duration,
    /// `sync_data()` on sled's data file after each group flush (DESIGN §3). Only the
    /// append benchmark turns this off, to measure its cost.
    pub sync_data: bool,
    /// The wall clock that stamps `recorded_at`: the system clock unless injected.
    pub clock: WallClock,
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("cache_capacity", &self.cache_capacity)
            .field("max_batch", &self.max_batch)
            .field("queue_capacity", &self.queue_capacity)
            .field("command_retention", &self.command_retention)
            .field("sync_data", &self.sync_data)
            .finish_non_exhaustive()
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            cache_capacity: 256 << 20,
            max_batch: 1024,
            queue_capacity: 16 * 1024,
            command_retention: Duration::from_secs(24 * 3600),
            sync_data: true,
            clock: crate::clock::system(),
        }
    }
}

/// The fixed trees of the log.
#[derive(Clone)]
pub(crate) struct Trees {
    pub log: sled::Tree,
    pub streams: sled::Tree,
    pub heads: sled::Tree,
    pub meta: sled::Tree,
    pub commands: sled::Tree,
    pub snapshots: sled::Tree,
    pub bodies: sled::Tree,
}

/// Counters for tests and benchmarks.
#[derive(Debug, Default)]
pub struct JournalStats {
    /// Group commits flushed.
    pub flushes: AtomicU64,
    /// Append requests acknowledged (including idempotent replays).
    pub appends: AtomicU64,
    /// Events written.
    pub events: AtomicU64,
}

/// The newest durable seq, for async (`watch`) and blocking (`Condvar`) waiters, and the
/// newest written one.
pub(crate) struct HeadSignal {
    pub tx: watch::Sender<u64>,
    pub blocking: (Mutex<u64>, Condvar),
    /// The newest seq in the trees: the durable head, or a later one whose group is
    /// written and not yet fsynced (what an `Ack::Written` append may have answered).
    pub written: AtomicU64,
}

impl HeadSignal {
    pub fn publish(&self, seq: u64) {
        self.written.fetch_max(seq, Ordering::AcqRel);
        self.tx.send_replace(seq);
        let (lock, cv) = &self.blocking;
        if let Ok(mut g) = lock.lock() {
            *g = seq;
        }
        cv.notify_all();
    }
}

pub(crate) struct Inner {
    pub db: sled::Db,
    pub trees: Trees,
    /// The `body-keys` file (outside sled, see `bodies`).
    pub keys: crate::bodies::BodyKeys,
    pub sled_path: PathBuf,
    pub head: HeadSignal,
    pub stats: JournalStats,
}

/// The sled-backed event store. Dropping it stops the journal after the queued appends.
pub struct SledStore {
    inner: Arc<Inner>,
    journal: Mutex<Option<JournalHandle>>,
    dir: PathBuf,
    // Declared last: released after the journal and sled are closed.
    _lock: DataDirLock,
}

/// Where sled keeps its files inside a data dir.
pub fn sled_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("sled")
}

impl SledStore {
    /// Opens (creating if needed) the store in `dir`, taking its LOCK.
    pub fn open(dir: &Path, opts: StoreOptions) -> StoreResult<Self> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            context: format!("create data dir {}", dir.display()),
            source,
        })?;
        let lock = DataDirLock::acquire(dir)?;
        crate::reclaim::recover(dir)?;
        let sled_path = sled_dir(dir);
        let db = open_sled(&sled_path, opts.cache_capacity)?;
        let map = |e| StoreError::from_sled(e, &sled_path);
        let trees = Trees {
            log: db.open_tree("log").map_err(map)?,
            streams: db.open_tree("streams").map_err(map)?,
            heads: db.open_tree("heads").map_err(map)?,
            meta: db.open_tree("meta").map_err(map)?,
            commands: db.open_tree("commands").map_err(map)?,
            snapshots: db.open_tree(snapshot::TREE).map_err(map)?,
            bodies: db.open_tree(crate::bodies::TREE).map_err(map)?,
        };
        let head = match trees.log.last().map_err(map)? {
            Some((k, _)) => key_u64(&k).ok_or_else(|| StoreError::Corruption {
                path: "tree log".into(),
                detail: "a key is not 8 bytes".into(),
            })?,
            None => 0,
        };
        let (tx, _) = watch::channel(head);
        let keys = crate::bodies::BodyKeys::open(dir)?;
        let inner = Arc::new(Inner {
            db,
            trees,
            keys,
            sled_path: sled_path.clone(),
            head: HeadSignal {
                tx,
                blocking: (Mutex::new(head), Condvar::new()),
                written: AtomicU64::new(head),
            },
            stats: JournalStats::default(),
        });
        let journal = journal::start(inner.clone(), &opts, head)?;
        Ok(Self {
            inner,
            journal: Mutex::new(Some(journal)),
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    /// Opens the store in `dir` if it exists: the read-only admin commands treat a missing
    /// data dir as an empty store (`Ok(None)`).
    pub fn open_existing(dir: &Path, opts: StoreOptions) -> StoreResult<Option<Self>> {
        if !sled_dir(dir).exists() && !dir.join("sled.new").exists() {
            return Ok(None);
        }
        Self::open(dir, opts).map(Some)
    }

    /// The data dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The raw sled database, for read-model trees and tools.
    pub fn db(&self) -> &sled::Db {
        &self.inner.db
    }

    /// The `log` tree (seq BE -> envelope bytes), for raw scans by tools and benchmarks.
    pub fn log_tree(&self) -> &sled::Tree {
        &self.inner.trees.log
    }

    pub(crate) fn trees(&self) -> &Trees {
        &self.inner.trees
    }

    pub(crate) fn keys(&self) -> &crate::bodies::BodyKeys {
        &self.inner.keys
    }

    fn submit(
        &self,
        req: AppendRequest,
        ack: Ack,
    ) -> Result<oneshot::Receiver<Result<Appended, AppendError>>, AppendError> {
        let guard = self.journal.lock().map_err(|_| StoreError::Closed)?;
        let journal = guard.as_ref().ok_or(StoreError::Closed)?;
        journal.submit(req, ack)
    }

    /// Flushes sled and fsyncs its data file (for bulk writes outside the journal).
    pub(crate) fn sync_all(&self) -> StoreResult<()> {
        self.inner.keys.sync()?;
        self.sled(self.inner.db.flush())?;
        let path = self.inner.sled_path.join("db");
        std::fs::File::open(&path)
            .and_then(|f| f.sync_data())
            .map_err(|source| StoreError::Io {
                context: format!("sync_data {}", path.display()),
                source,
            })
    }

    /// Announces a new durable head (after an import).
    pub(crate) fn publish_head(&self, seq: u64) {
        self.inner.head.publish(seq);
    }

    /// Stops the journal after everything queued is written, and flushes sled.
    pub fn close(&self) -> StoreResult<()> {
        let journal = self.journal.lock().ok().and_then(|mut g| g.take());
        if let Some(j) = journal {
            j.stop();
        }
        self.sled(self.inner.db.flush())?;
        Ok(())
    }

    fn sled<T>(&self, r: sled::Result<T>) -> StoreResult<T> {
        r.map_err(|e| StoreError::from_sled(e, &self.inner.sled_path))
    }

    /// Every log entry from `from_seq`, with detached bodies joined when `join`.
    fn entries(&self, from_seq: u64, join: bool) -> EntryIter<'_> {
        Box::new(
            self.inner
                .trees
                .log
                .range(u64_key(from_seq.max(1))..)
                .map(move |entry| self.decode_entry(entry, join)),
        )
    }

    /// Decodes one `log` entry, telling tombstones from envelopes, with its detached body
    /// joined back when `join`.
    fn decode_entry(
        &self,
        entry: sled::Result<(sled::IVec, sled::IVec)>,
        join: bool,
    ) -> StoreResult<Entry> {
        let (k, v) = self.sled(entry)?;
        let seq = key_u64(&k).ok_or_else(|| StoreError::Corruption {
            path: "tree log".into(),
            detail: "a key is not 8 bytes".into(),
        })?;
        match Entry::decode(seq, &v)? {
            Entry::Event(rec) if join => Ok(Entry::Event(self.joined(rec)?)),
            entry => Ok(entry),
        }
    }

    /// The detached body of a message, `None` once erased (or for a legacy message).
    pub(crate) fn body_of(
        &self,
        event: &latchkey_domain::Event,
    ) -> StoreResult<Option<MessageBody>> {
        match crate::bodies::detached_id(event) {
            Some(id) => self.message_body(&id),
            None => Ok(None),
        }
    }

    /// A decoded event with its detached body joined back.
    fn joined(&self, mut rec: Recorded) -> StoreResult<Recorded> {
        if crate::bodies::detached_id(&rec.event).is_some() {
            let body = self.body_of(&rec.event)?;
            crate::bodies::set(&mut rec, body);
        }
        Ok(rec)
    }

    /// Decodes one `log` entry as a live event; `None` for a tombstone (never decoded).
    fn decode_event(
        &self,
        entry: sled::Result<(sled::IVec, sled::IVec)>,
    ) -> Option<StoreResult<Recorded>> {
        let (k, v) = match self.sled(entry) {
            Ok(kv) => kv,
            Err(e) => return Some(Err(e)),
        };
        if is_tombstone(&v) {
            return None;
        }
        Some(
            log_key(&k)
                .and_then(|seq| Recorded::decode(seq, &v))
                .and_then(|rec| self.joined(rec)),
        )
    }

    /// Replaces the envelopes at `seqs` by tombstones saying `why`, and drops their
    /// stream index entries, in one atomic, durable write through the journal thread (so it
    /// never races an append). Seqs already tombstoned are skipped; a seq past the head is
    /// an error. Returns how many envelopes were replaced. Callers pass modest sets (a few
    /// thousand seqs): the whole set is one transaction.
    pub fn tombstone_blocking(&self, seqs: &[u64], why: &str, exact_from: u64) -> StoreResult<u64> {
        let rx = {
            let guard = self.journal.lock().map_err(|_| StoreError::Closed)?;
            let journal = guard.as_ref().ok_or(StoreError::Closed)?;
            journal.tombstone(seqs.to_vec(), why.to_string(), exact_from)?
        };
        rx.blocking_recv().map_err(|_| StoreError::Closed)?
    }
}

/// The seq of a `log` key.
fn log_key(k: &[u8]) -> StoreResult<u64> {
    key_u64(k).ok_or_else(|| StoreError::Corruption {
        path: "tree log".into(),
        detail: "a key is not 8 bytes".into(),
    })
}

impl Drop for SledStore {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!(error = %e, "closing the store failed");
        }
    }
}

/// Opens sled, turning its panics on some corrupt files into an error that names the path.
fn open_sled(path: &Path, cache_capacity: u64) -> StoreResult<sled::Db> {
    let config = sled::Config::new()
        .path(path)
        .cache_capacity(cache_capacity)
        .mode(sled::Mode::HighThroughput);
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open())) {
        Ok(r) => r.map_err(|e| StoreError::from_sled(e, path)),
        Err(_) => Err(StoreError::Corruption {
            path: path.display().to_string(),
            detail: "sled could not recover its files".into(),
        }),
    }
}

/// The `streams` key of a stream's version: stream bytes, a 0 byte, the version BE.
pub(crate) fn stream_key(stream: &StreamId, version: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(stream.as_str().len() + 9);
    k.extend_from_slice(stream.as_str().as_bytes());
    k.push(0);
    k.extend_from_slice(&u64_key(version));
    k
}

/// The future of an append submitted to the journal.
fn answer_of(
    rx: Result<oneshot::Receiver<Result<Appended, AppendError>>, AppendError>,
) -> AppendFuture {
    Box::pin(async move {
        match rx {
            Ok(rx) => rx
                .await
                .map_err(|_| AppendError::Store(StoreError::Closed))?,
            Err(e) => Err(e),
        }
    })
}

impl EventStore for SledStore {
    fn append(&self, req: AppendRequest) -> AppendFuture {
        answer_of(self.submit(req, Ack::Durable))
    }

    fn append_written(&self, req: AppendRequest) -> AppendFuture {
        answer_of(self.submit(req, Ack::Written))
    }

    fn read_stream(&self, stream: &StreamId, from_version: u64) -> StoreResult<EventIter<'_>> {
        let start = stream_key(stream, from_version.max(1));
        let mut end = stream.as_str().as_bytes().to_vec();
        end.push(1);
        let iter = self
            .inner
            .trees
            .streams
            .range(start..end)
            .map(move |entry| {
                let (_, seq_bytes) = self.sled(entry)?;
                let seq = key_u64(&seq_bytes).ok_or_else(|| StoreError::Corruption {
                    path: "tree streams".into(),
                    detail: "a value is not 8 bytes".into(),
                })?;
                let bytes = self
                    .sled(self.inner.trees.log.get(u64_key(seq)))?
                    .ok_or_else(|| StoreError::Corruption {
                        path: "tree log".into(),
                        detail: format!("seq {seq} is indexed by a stream but missing"),
                    })?;
                match Entry::decode(seq, &bytes)?.event() {
                    Some(rec) => self.joined(rec).map(Some),
                    None => Ok(None),
                }
            })
            .filter_map(Result::transpose);
        Ok(Box::new(iter))
    }

    fn read_all(&self, from_seq: u64) -> StoreResult<EventIter<'_>> {
        let iter = self
            .inner
            .trees
            .log
            .range(u64_key(from_seq.max(1))..)
            .filter_map(move |entry| self.decode_event(entry));
        Ok(Box::new(iter))
    }

    fn read_log(&self, from_seq: u64) -> StoreResult<EntryIter<'_>> {
        Ok(self.entries(from_seq, true))
    }

    fn read_log_bare(&self, from_seq: u64) -> StoreResult<EntryIter<'_>> {
        Ok(self.entries(from_seq, false))
    }

    fn tombstone(&self, seqs: &[u64], why: &str, exact_from: u64) -> StoreResult<u64> {
        self.tombstone_blocking(seqs, why, exact_from)
    }

    fn compaction_mark(&self) -> StoreResult<CompactionMark> {
        match self.sled(self.inner.trees.meta.get(journal::META_COMPACTION))? {
            Some(b) => codec::decode(&b, "tree meta: compaction"),
            None => Ok(CompactionMark::default()),
        }
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.head.tx.subscribe()
    }

    fn head(&self) -> u64 {
        *self.inner.head.tx.borrow()
    }

    fn written_head(&self) -> u64 {
        self.inner.head.written.load(Ordering::Acquire)
    }

    fn wait_for_head_above(&self, seq: u64, timeout: Duration) -> u64 {
        let (lock, cv) = &self.inner.head.blocking;
        let Ok(guard) = lock.lock() else {
            return self.head();
        };
        match cv.wait_timeout_while(guard, timeout, |h| *h <= seq) {
            Ok((g, _)) => *g,
            Err(_) => self.head(),
        }
    }

    fn append_blocking(&self, req: AppendRequest) -> Result<Appended, AppendError> {
        let rx = self.submit(req, Ack::Durable)?;
        rx.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    fn stream_head(&self, stream: &StreamId) -> StoreResult<(u64, u64)> {
        let v = self.sled(self.inner.trees.heads.get(stream.as_str().as_bytes()))?;
        Ok(v.map(|b| journal::decode_head(&b)).unwrap_or((0, 0)))
    }

    fn chain_head(&self) -> StoreResult<[u8; 32]> {
        let v = self.sled(self.inner.trees.meta.get(journal::META_CHAIN_HEAD))?;
        Ok(v.and_then(|b| <[u8; 32]>::try_from(b.as_ref()).ok())
            .unwrap_or(crate::envelope::GENESIS))
    }

    fn read_raw(&self, from_seq: u64) -> StoreResult<RawIter<'_>> {
        let iter = self
            .inner
            .trees
            .log
            .range(u64_key(from_seq.max(1))..)
            .map(move |entry| {
                let (k, v) = self.sled(entry)?;
                let seq = key_u64(&k).ok_or_else(|| StoreError::Corruption {
                    path: "tree log".into(),
                    detail: "a key is not 8 bytes".into(),
                })?;
                let body = match Entry::decode(seq, &v)? {
                    Entry::Event(rec) => self.body_of(&rec.event)?,
                    Entry::Tombstone(_) => None,
                };
                Ok(RawEntry {
                    seq,
                    envelope: v.to_vec(),
                    body,
                })
            });
        Ok(Box::new(iter))
    }

    fn import_envelopes(
        &self,
        envelopes: &mut dyn Iterator<Item = StoreResult<RawEntry>>,
        progress: &mut dyn FnMut(u64),
    ) -> StoreResult<u64> {
        self.import_all(envelopes, progress)
    }

    fn message_body(
        &self,
        message_id: &latchkey_domain::MessageId,
    ) -> StoreResult<Option<MessageBody>> {
        crate::bodies::load(
            &self.inner.trees.bodies,
            &self.inner.keys,
            message_id,
            |e| StoreError::from_sled(e, &self.inner.sled_path),
        )
    }

    fn verify(&self, progress: &mut dyn FnMut(u64)) -> StoreResult<VerifyReport> {
        crate::verify::verify(self, progress)
    }

    fn read_model(&self, name: &str) -> StoreResult<ReadModel> {
        ReadModel::open(&self.inner.db, name)
    }

    fn read_model_names(&self) -> StoreResult<Vec<String>> {
        Ok(self
            .inner
            .db
            .tree_names()
            .iter()
            .filter_map(|n| {
                String::from_utf8_lossy(n)
                    .strip_prefix(TREE_PREFIX)
                    .map(str::to_string)
            })
            .collect())
    }

    fn snapshot(&self, stream: &StreamId) -> StoreResult<Option<Snapshot>> {
        snapshot::get(&self.inner.trees.snapshots, &self.inner.sled_path, stream)
    }

    fn put_snapshot(&self, stream: &StreamId, snap: &Snapshot) -> StoreResult<()> {
        snapshot::put(
            &self.inner.trees.snapshots,
            &self.inner.sled_path,
            stream,
            snap,
        )
    }

    fn clear_snapshots(&self) -> StoreResult<u64> {
        snapshot::clear(&self.inner.trees.snapshots, &self.inner.sled_path)
    }

    fn size_on_disk(&self) -> u64 {
        dir_size(&self.dir)
    }

    fn stats(&self) -> &JournalStats {
        &self.inner.stats
    }

    fn shutdown(&self) -> StoreResult<()> {
        self.close()
    }

    fn server_id(&self) -> StoreResult<uuid::Uuid> {
        let v = self.sled(self.inner.trees.meta.get(journal::META_SERVER_ID))?;
        v.and_then(|b| uuid::Uuid::from_slice(&b).ok())
            .ok_or_else(|| StoreError::Corruption {
                path: "tree meta".into(),
                detail: "server_id is missing".into(),
            })
    }
}

/// Bytes under a directory.
pub(crate) fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Decodes a stored command record (used by the journal).
pub(crate) fn decode_command(bytes: &[u8]) -> StoreResult<journal::CommandRecord> {
    codec::decode(bytes, "tree commands")
}

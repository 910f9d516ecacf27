//! Read models: one `rm/<name>` tree per projection, whose checkpoint (the last applied
//! seq) is written in the same sled batch as its changes, and the projector thread that
//! feeds every projection the log in seq order and publishes `applied_seq`.
//!
//! Read models need no fsync: after a crash a projection resumes from its checkpoint, and
//! since the checkpoint and the changes it covers land atomically, replaying from there
//! gives the same state.

use crate::codec::{key_u64, u64_key};
use crate::envelope::{Entry, Recorded};
use crate::error::{StoreError, StoreResult};
use crate::EventStore;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::watch;

/// The key of a projection's checkpoint inside its tree. Keys starting with 0x00 are reserved.
pub const CHECKPOINT_KEY: &[u8] = b"\x00checkpoint";
/// The key of a projection's row layout version inside its tree (see [`Projection::layout`]).
pub const LAYOUT_KEY: &[u8] = b"\x00layout";

/// Prefix of read-model tree names.
pub const TREE_PREFIX: &str = "rm/";

/// Most events applied between two commits.
const CHUNK: usize = 1024;

/// Chunks a bulk catch-up's reader thread may decode ahead of the projections.
const READ_AHEAD: usize = 4;

/// One projection's tree.
#[derive(Clone)]
pub struct ReadModel {
    name: String,
    tree: sled::Tree,
}

impl ReadModel {
    /// Opens (creating) the tree `rm/<name>` (through `EventStore::read_model`).
    pub(crate) fn open(db: &sled::Db, name: &str) -> StoreResult<Self> {
        let tree = db
            .open_tree(format!("{TREE_PREFIX}{name}"))
            .map_err(|e| StoreError::Sled(e.to_string()))?;
        Ok(Self {
            name: name.to_string(),
            tree,
        })
    }

    /// The projection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The last seq applied to this read model (0 when it is empty).
    pub fn checkpoint(&self) -> StoreResult<u64> {
        checkpoint_of(&self.tree)
    }

    /// Reads one key.
    pub fn get(&self, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        self.tree
            .get(key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| StoreError::Sled(e.to_string()))
    }

    /// Every row whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Rows {
        Rows(self.tree.scan_prefix(prefix))
    }

    /// Every row with `lo <= key < hi`, in key order (reversible).
    pub fn range(&self, lo: &[u8], hi: &[u8]) -> Rows {
        Rows(self.tree.range(lo..hi))
    }

    /// Every row, checkpoint included (for `rebuild`'s comparison).
    pub fn iter(&self) -> Rows {
        Rows(self.tree.iter())
    }

    /// Deletes every key, checkpoint included (for a rebuild).
    pub fn clear(&self) -> StoreResult<()> {
        self.tree
            .clear()
            .map_err(|e| StoreError::Sled(e.to_string()))
    }

    /// Makes the tree's rows be of `layout`: a tree written by another layout (or by a
    /// version before layouts were recorded) is cleared, so its projection rebuilds from
    /// the log instead of misreading old rows. Returns whether it was cleared.
    pub fn ensure_layout(&self, layout: u32) -> StoreResult<bool> {
        let want = layout.to_be_bytes();
        let stored = self
            .tree
            .get(LAYOUT_KEY)
            .map_err(|e| StoreError::Sled(e.to_string()))?;
        if stored.as_deref() == Some(want.as_slice()) {
            return Ok(false);
        }
        let had_rows = !self.tree.is_empty();
        self.clear()?;
        self.tree
            .insert(LAYOUT_KEY, want.as_slice())
            .map_err(|e| StoreError::Sled(e.to_string()))?;
        Ok(had_rows)
    }
}

/// Rows of a read model: (key, value) pairs in key order.
pub struct Rows(sled::Iter);

fn row(kv: sled::Result<(sled::IVec, sled::IVec)>) -> StoreResult<(Vec<u8>, Vec<u8>)> {
    kv.map(|(k, v)| (k.to_vec(), v.to_vec()))
        .map_err(|e| StoreError::Sled(e.to_string()))
}

impl Iterator for Rows {
    type Item = StoreResult<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(row)
    }
}

impl DoubleEndedIterator for Rows {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(row)
    }
}

/// Reads the checkpoint stored in a read-model tree.
pub(crate) fn checkpoint_of(tree: &sled::Tree) -> StoreResult<u64> {
    let v = tree
        .get(CHECKPOINT_KEY)
        .map_err(|e| StoreError::Sled(e.to_string()))?;
    Ok(v.and_then(|b| key_u64(&b)).unwrap_or(0))
}

/// Changes to one read model, buffered until the chunk commits. Reads see pending writes.
pub struct ReadModelWriter<'a> {
    model: &'a ReadModel,
    pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> ReadModelWriter<'a> {
    fn new(model: &'a ReadModel) -> Self {
        Self {
            model,
            pending: BTreeMap::new(),
        }
    }

    /// Reads a key, seeing this chunk's pending writes first.
    pub fn get(&self, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        if let Some(v) = self.pending.get(key) {
            return Ok(v.clone());
        }
        self.model.get(key)
    }

    /// Sets a key. Keys starting with 0x00 are reserved for the store.
    pub fn insert(
        &mut self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> StoreResult<()> {
        let key = key.into();
        reserved(&key)?;
        self.pending.insert(key, Some(value.into()));
        Ok(())
    }

    /// Deletes a key.
    pub fn remove(&mut self, key: impl Into<Vec<u8>>) -> StoreResult<()> {
        let key = key.into();
        reserved(&key)?;
        self.pending.insert(key, None);
        Ok(())
    }

    /// Writes the changes and the checkpoint `seq` in one atomic batch.
    fn commit(self, seq: u64) -> StoreResult<()> {
        let mut batch = sled::Batch::default();
        for (k, v) in self.pending {
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        batch.insert(CHECKPOINT_KEY, &u64_key(seq));
        self.model
            .tree
            .apply_batch(batch)
            .map_err(|e| StoreError::Sled(e.to_string()))
    }
}

fn reserved(key: &[u8]) -> StoreResult<()> {
    if key.first() == Some(&0) {
        return Err(StoreError::Encode(
            "read-model keys starting with 0x00 are reserved".into(),
        ));
    }
    Ok(())
}

/// A read model built from the log. `apply` is called once per event, in seq order.
pub trait Projection: Send {
    /// The read model's name: its tree is `rm/<name>`.
    fn name(&self) -> &str;

    /// Applies one event. Reads through `rm` see this chunk's earlier writes.
    fn apply(&mut self, event: &Recorded, rm: &mut ReadModelWriter<'_>) -> StoreResult<()>;

    /// The version of this projection's row layout. Raise it whenever the rows change
    /// shape: on start, a tree of another layout is cleared and rebuilt from the log.
    fn layout(&self) -> u32 {
        1
    }
}

/// Called with each committed chunk, before `applied_seq` is published (the fanout hook).
pub type AfterApply = Box<dyn FnMut(&[Recorded]) + Send>;

/// Feeds projections from the log, in seq order.
pub struct Projector {
    store: Arc<dyn EventStore>,
    projections: Vec<(Box<dyn Projection>, ReadModel)>,
    applied: watch::Sender<u64>,
    after: Option<AfterApply>,
}

impl Projector {
    /// Prepares the projections; each resumes from its own checkpoint.
    pub fn new(
        store: Arc<dyn EventStore>,
        projections: Vec<Box<dyn Projection>>,
    ) -> StoreResult<Self> {
        let mut with_models = Vec::with_capacity(projections.len());
        for p in projections {
            let model = store.read_model(p.name())?;
            if model.ensure_layout(p.layout())? {
                tracing::info!(
                    read_model = p.name(),
                    layout = p.layout(),
                    "read model of another layout cleared; rebuilding it from the log"
                );
            }
            with_models.push((p, model));
        }
        let mut min = u64::MAX;
        for (_, m) in &with_models {
            min = min.min(m.checkpoint()?);
        }
        let applied = if with_models.is_empty() {
            store.head()
        } else {
            min
        };
        let (tx, _) = watch::channel(applied);
        Ok(Self {
            store,
            projections: with_models,
            applied: tx,
            after: None,
        })
    }

    /// Sets the hook that receives each applied chunk (the fanout hub, later).
    pub fn after_apply(mut self, hook: AfterApply) -> Self {
        self.after = Some(hook);
        self
    }

    /// A watch of the newest seq every projection has applied.
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// The newest seq every projection has applied.
    pub fn applied_seq(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Applies everything up to the current durable head; returns the applied seq.
    ///
    /// Without an [`AfterApply`] hook (on start, `admin rebuild`, `replay`) the log is read
    /// and decoded on a second thread, [`READ_AHEAD`] chunks ahead of the projections, and
    /// detached bodies are not joined: no read model holds one. The chunks, their order
    /// and their commits are the same as [`Self::step`]'s, so the rows are too.
    pub fn catch_up(&mut self) -> StoreResult<u64> {
        loop {
            let n = if self.after.is_none() {
                self.read_ahead()?
            } else {
                self.step()?
            };
            if n == 0 {
                return Ok(self.applied_seq());
            }
        }
    }

    /// Applies every chunk up to the end of the log, decoded by a reader thread that
    /// stays at most [`READ_AHEAD`] chunks ahead; returns how many entries it read.
    fn read_ahead(&mut self) -> StoreResult<usize> {
        let from = self.applied_seq() + 1;
        let store = self.store.clone();
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<StoreResult<Vec<Entry>>>(READ_AHEAD);
            std::thread::Builder::new()
                .name("latchkey-replay-read".into())
                .spawn_scoped(scope, move || read_chunks(store.as_ref(), from, &tx))
                .map_err(|source| StoreError::Io {
                    context: "spawn the replay reader thread".into(),
                    source,
                })?;
            let mut read = 0;
            // An error here drops `rx`, which stops the reader at its next send.
            for entries in rx {
                read += self.apply(entries?)?;
            }
            Ok(read)
        })
    }

    /// Applies at most one chunk, never past the durable head; returns how many events
    /// it read.
    fn step(&mut self) -> StoreResult<usize> {
        let from = self.applied_seq() + 1;
        let store = self.store.clone();
        // The journal writes a group to the trees before its fsync, so the log may hold
        // entries past the head: they are not durable yet, and a crash can still take
        // them, so nothing may project or fan them out before the head reaches them.
        let head = store.head();
        // Tombstones are read too, so the checkpoint moves past them (a log that ends in
        // tombstones is still applied to its head); projections see only live events.
        let entries: Vec<Entry> = store
            .read_log(from)?
            .take_while(|e| e.as_ref().map_or(true, |e| e.seq() <= head))
            .take(CHUNK)
            .collect::<StoreResult<_>>()?;
        self.apply(entries)
    }

    /// Applies one chunk of entries (in seq order) to every projection behind it, commits
    /// each, hands the chunk to the hook and publishes its last seq; returns its length.
    fn apply(&mut self, entries: Vec<Entry>) -> StoreResult<usize> {
        let Some(last) = entries.last().map(Entry::seq) else {
            return Ok(0);
        };
        let read = entries.len();
        let chunk: Vec<Recorded> = entries.into_iter().filter_map(Entry::event).collect();
        for (projection, model) in &mut self.projections {
            let checkpoint = model.checkpoint()?;
            if checkpoint >= last {
                continue;
            }
            let mut writer = ReadModelWriter::new(model);
            for rec in chunk.iter().filter(|r| r.seq() > checkpoint) {
                projection.apply(rec, &mut writer)?;
            }
            writer.commit(last)?;
        }
        // DESIGN §1: the read models first, then the fanout hub. A subscriber that receives
        // an event and then reads history (REST, or a resume) finds it there.
        // The hook still runs before `applied` moves, so a handler that answers once its
        // seq is applied has also had its events routed (a connection opened after that
        // answer starts at or after that seq, and a revocation has closed its connections
        // before the revoke is acknowledged).
        if let Some(hook) = self.after.as_mut() {
            hook(&chunk);
        }
        self.applied.send_replace(last);
        Ok(read)
    }

    /// Runs the projector on its own thread until stopped.
    pub fn spawn(mut self) -> StoreResult<ProjectorHandle> {
        let applied = self.applied();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("latchkey-projector".into())
            .spawn(move || {
                while !stop2.load(Ordering::Acquire) {
                    match self.step() {
                        Ok(0) => {
                            let applied = self.applied_seq();
                            self.store
                                .wait_for_head_above(applied, Duration::from_millis(100));
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::error!(error = %e, "projection failed; retrying");
                            std::thread::park_timeout(Duration::from_secs(1));
                        }
                    }
                }
            })
            .map_err(|source| StoreError::Io {
                context: "spawn the projector thread".into(),
                source,
            })?;
        Ok(ProjectorHandle {
            applied,
            stop,
            thread: Some(thread),
        })
    }
}

/// The reader thread of [`Projector::read_ahead`]: sends the log from `from` to the
/// durable head in chunks of [`CHUNK`] entries, detached bodies not joined, then an error
/// if any.
fn read_chunks(store: &dyn EventStore, from: u64, tx: &SyncSender<StoreResult<Vec<Entry>>>) {
    // Up to the durable head only, as in `step`.
    let head = store.head();
    let entries = match store.read_log_bare(from) {
        Ok(entries) => entries,
        Err(e) => {
            let _ = tx.send(Err(e));
            return;
        }
    };
    let mut chunk = Vec::with_capacity(CHUNK);
    for entry in entries {
        match entry {
            Ok(entry) if entry.seq() > head => break,
            Ok(entry) => chunk.push(entry),
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
        if chunk.len() == CHUNK {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
            if tx.send(Ok(full)).is_err() {
                return; // the projections failed; their error is the one reported
            }
        }
    }
    if !chunk.is_empty() {
        let _ = tx.send(Ok(chunk));
    }
}

/// The running projector thread.
pub struct ProjectorHandle {
    applied: watch::Receiver<u64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ProjectorHandle {
    /// A watch of the newest applied seq (read-your-writes waits on this).
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.applied.clone()
    }

    /// Stops the thread after its current chunk.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ProjectorHandle {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

/// Every read-model tree in the db with its checkpoint, for `verify` and `stats`.
pub(crate) fn checkpoints(db: &sled::Db) -> StoreResult<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for name in db.tree_names() {
        let name = String::from_utf8_lossy(&name).to_string();
        if let Some(short) = name.strip_prefix(TREE_PREFIX) {
            let tree = db
                .open_tree(&name)
                .map_err(|e| StoreError::Sled(e.to_string()))?;
            out.push((short.to_string(), checkpoint_of(&tree)?));
        }
    }
    Ok(out)
}

//! The journal: the one thread that writes the log.
//!
//! It takes append requests from any number of callers, folds whatever is waiting into one
//! group commit (the body secrets written to the `body-keys` file and fsynced first, then
//! one sled transaction over the log trees and the `bodies` tree, one flush, one
//! `sync_data()` on sled's data file), checks expected versions, assigns contiguous seqs, chains hashes,
//! and acknowledges only after the data is durable. It runs on its own OS thread because
//! sled calls block. It also writes tombstones (compaction), in order with the appends.

use crate::bodies::{self, BodyWrite};
use crate::clock::WallClock;
use crate::codec::{self, u64_key};
use crate::envelope::{self, is_tombstone, CompactionMark, Envelope, Tombstone, FORMAT};
use crate::error::{AppendError, StoreError, StoreResult};
use crate::sled_store::{decode_command, stream_key, Inner, StoreOptions};
use crate::{Ack, AppendRequest, Appended, ExpectedVersion};
use latchkey_domain::{StreamId, Timestamp, SCHEMA};
use serde::{Deserialize, Serialize};
use sled::Transactional;
use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::oneshot;
use uuid::Uuid;

pub(crate) const META_FORMAT: &[u8] = b"format";
pub(crate) const META_CHAIN_HEAD: &[u8] = b"chain_head";
pub(crate) const META_SERVER_ID: &[u8] = b"server_id";
pub(crate) const META_COMPACTION: &[u8] = b"compaction";

/// Where an append's answer goes, and when: after the group's fsync, or, for
/// [`Ack::Written`], as soon as its group is written to the trees (before the flush and
/// fsync).
struct Reply {
    tx: Option<oneshot::Sender<Result<Appended, AppendError>>>,
    ack: Ack,
}

impl Reply {
    /// Answers, once: a reply already sent early is not sent again.
    fn send(&mut self, result: Result<Appended, AppendError>) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(result);
        }
    }
}

enum Msg {
    Append(AppendRequest, Reply),
    Tombstone(TombstoneRequest),
    Stop,
}

/// Seqs to replace by tombstones, and where to say how many were.
struct TombstoneRequest {
    seqs: Vec<u64>,
    why: String,
    exact_from: u64,
    reply: oneshot::Sender<StoreResult<u64>>,
}

/// How often (by the store's clock) expired command ids are pruned.
const PRUNE_EVERY_MS: i64 = 60_000;

/// Most command ids one prune removes.
const PRUNE_BATCH: usize = 10_000;

/// The smallest UUIDv7 of unix millisecond `ms`: its 48-bit time, big-endian, then zeros.
/// Every v7 id made before `ms` sorts below it.
fn v7_floor(ms: i64) -> [u8; 16] {
    let mut key = [0u8; 16];
    let ms = u64::try_from(ms).unwrap_or(0).min((1 << 48) - 1);
    key[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    key
}

/// What `commands` remembers of an append, for idempotent retries.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct CommandRecord {
    pub stream: StreamId,
    pub first_version: u64,
    pub last_version: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub recorded_at: Timestamp,
}

impl CommandRecord {
    fn appended(&self) -> Appended {
        Appended {
            first_version: self.first_version,
            last_version: self.last_version,
            first_seq: self.first_seq,
            last_seq: self.last_seq,
            replayed: true,
        }
    }
}

/// The handle callers use to reach the journal thread.
pub(crate) struct JournalHandle {
    tx: SyncSender<Msg>,
    thread: Option<JoinHandle<()>>,
}

impl JournalHandle {
    /// Queues `req`; answered after its group's fsync, or for [`Ack::Written`] as soon as
    /// the group holding it is written to the trees, before its flush and fsync: the seqs
    /// are assigned and the version checked, and every later read sees the events, but a
    /// crash may still lose them. Such events are durable once the store's head reaches
    /// the answer's `last_seq`; every append after them in the queue becomes durable only
    /// after them. If the group's fsync then fails, the journal refuses every later append
    /// (as after any failed fsync).
    pub fn submit(
        &self,
        req: AppendRequest,
        ack: Ack,
    ) -> Result<oneshot::Receiver<Result<Appended, AppendError>>, AppendError> {
        let (tx, rx) = oneshot::channel();
        let reply = Reply { tx: Some(tx), ack };
        match self.tx.try_send(Msg::Append(req, reply)) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => Err(StoreError::Busy.into()),
            Err(TrySendError::Disconnected(_)) => Err(StoreError::Closed.into()),
        }
    }

    /// Queues a tombstone write (see `SledStore::tombstone_blocking`). It waits for room
    /// in the queue rather than refusing: compaction is not latency-bound.
    pub fn tombstone(
        &self,
        seqs: Vec<u64>,
        why: String,
        exact_from: u64,
    ) -> StoreResult<oneshot::Receiver<StoreResult<u64>>> {
        let (reply, rx) = oneshot::channel();
        let req = TombstoneRequest {
            seqs,
            why,
            exact_from,
            reply,
        };
        self.tx
            .send(Msg::Tombstone(req))
            .map_err(|_| StoreError::Closed)?;
        Ok(rx)
    }

    /// Asks the thread to stop after what is queued, and waits for it.
    pub fn stop(mut self) {
        // A full queue still drains: `send` waits for room behind the queued appends.
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub(crate) fn decode_head(bytes: &[u8]) -> (u64, u64) {
    let version = codec::key_u64(bytes.get(..8).unwrap_or_default()).unwrap_or(0);
    let seq = codec::key_u64(bytes.get(8..16).unwrap_or_default()).unwrap_or(0);
    (version, seq)
}

pub(crate) fn encode_head(version: u64, seq: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&u64_key(version));
    b[8..].copy_from_slice(&u64_key(seq));
    b
}

struct Writer {
    inner: Arc<Inner>,
    data_file: Option<File>,
    head: u64,
    chain_head: [u8; 32],
    last_recorded_at: i64,
    retention: Duration,
    /// Stamps `recorded_at` and ages command ids (the injected wall clock).
    clock: WallClock,
    /// When (by `clock`, unix ms) command ids were last pruned.
    last_prune_ms: i64,
    /// Set after a failed flush or fsync: every later append is refused until restart.
    poisoned: bool,
}

/// Starts the journal thread for a freshly opened store whose log ends at `head`.
pub(crate) fn start(
    inner: Arc<Inner>,
    opts: &StoreOptions,
    head: u64,
) -> StoreResult<JournalHandle> {
    let map = |e| StoreError::from_sled(e, &inner.sled_path);
    let meta = &inner.trees.meta;
    if meta.get(META_SERVER_ID).map_err(map)?.is_none() {
        meta.insert(META_SERVER_ID, Uuid::new_v4().as_bytes())
            .map_err(map)?;
        meta.insert(META_FORMAT, &[FORMAT]).map_err(map)?;
        inner.db.flush().map_err(map)?;
    }
    let chain_head = meta
        .get(META_CHAIN_HEAD)
        .map_err(map)?
        .and_then(|b| <[u8; 32]>::try_from(b.as_ref()).ok())
        .unwrap_or(envelope::GENESIS);
    match meta.get(META_FORMAT).map_err(map)?.as_deref() {
        Some([FORMAT]) | None => {}
        Some(other) => {
            return Err(StoreError::Corruption {
                path: "tree meta".into(),
                detail: format!("log format {other:?} is not the supported format {FORMAT}"),
            })
        }
    }
    // A last entry that does not decode must not keep the store from opening: `verify`
    // has to be able to name it. Appends then stamp times from the clock alone.
    let last_recorded_at = match inner.trees.log.last().map_err(map)? {
        Some((k, v)) => envelope::Entry::decode(codec::key_u64(&k).unwrap_or(0), &v)
            .map(|e| e.recorded_at().0)
            .unwrap_or(0),
        None => 0,
    };
    let data_file = if opts.sync_data {
        let path = inner.sled_path.join("db");
        Some(File::open(&path).map_err(|source| StoreError::Io {
            context: format!("open {} for sync_data", path.display()),
            source,
        })?)
    } else {
        None
    };
    let mut writer = Writer {
        inner,
        data_file,
        head,
        chain_head,
        last_recorded_at,
        retention: opts.command_retention,
        clock: opts.clock.clone(),
        last_prune_ms: (opts.clock)(),
        poisoned: false,
    };
    let (tx, rx) = mpsc::sync_channel(opts.queue_capacity);
    let max_batch = opts.max_batch.max(1);
    let thread = std::thread::Builder::new()
        .name("latchkey-journal".into())
        .spawn(move || writer.run(rx, max_batch))
        .map_err(|source| StoreError::Io {
            context: "spawn the journal thread".into(),
            source,
        })?;
    Ok(JournalHandle {
        tx,
        thread: Some(thread),
    })
}

/// A group commit that failed; `written` when the trees took it but it is not durable.
struct Failure {
    written: bool,
    error: StoreError,
}

/// One request's outcome inside a group, before the group is durable.
enum Pending {
    Done(Result<Appended, AppendError>),
    Written(Appended),
}

/// One group's writes, one batch per tree, applied in one transaction.
struct Batches<'a> {
    log: &'a sled::Batch,
    streams: &'a sled::Batch,
    heads: &'a sled::Batch,
    commands: &'a sled::Batch,
    bodies: &'a sled::Batch,
}

/// Where one event of a staged request goes.
struct Slot {
    seq: u64,
    version: u64,
}

/// A request checked and encoded, not yet added to the group's batches.
enum Staged {
    Done(Result<Appended, AppendError>),
    Write {
        rows: Vec<(Slot, Vec<u8>)>,
        /// What the events write to or remove from the `bodies` tree, in order.
        bodies: Vec<BodyWrite>,
        record: CommandRecord,
        chain: [u8; 32],
    },
}

impl Writer {
    /// Checks one request against the log and the group so far, and encodes its envelopes.
    /// Nothing is written: a failure leaves the group untouched.
    fn stage(
        &self,
        req: &AppendRequest,
        mut seq: u64,
        mut chain: [u8; 32],
        recorded_at: Timestamp,
        head_overlay: &HashMap<StreamId, (u64, u64)>,
        cmd_overlay: &HashMap<Uuid, CommandRecord>,
    ) -> Result<Staged, AppendError> {
        if let Some(rec) = self.known_command(cmd_overlay, &req.command_id)? {
            if rec.stream == req.stream {
                return Ok(Staged::Done(Ok(rec.appended())));
            }
            return Err(AppendError::CommandReused {
                command_id: req.command_id,
                stream: rec.stream,
            });
        }
        let (version, _) = self.current_head(head_overlay, &req.stream)?;
        if let ExpectedVersion::Exact(expected) = req.expected {
            if expected != version {
                return Err(AppendError::Conflict {
                    stream: req.stream.clone(),
                    expected,
                    actual: version,
                });
            }
        }
        if req.events.is_empty() {
            return Ok(Staged::Done(Ok(Appended {
                first_version: version + 1,
                last_version: version,
                first_seq: 0,
                last_seq: 0,
                replayed: false,
            })));
        }
        let first_seq = seq + 1;
        let mut v = version;
        let mut rows = Vec::with_capacity(req.events.len());
        let mut body_writes = Vec::new();
        for event in &req.events {
            let map = |e| StoreError::from_sled(e, &self.inner.sled_path);
            let tree = &self.inner.trees.bodies;
            body_writes.extend(bodies::write_of(event, seq + 1, tree, map)?);
            seq += 1;
            v += 1;
            let env = Envelope {
                format: FORMAT,
                seq,
                stream: req.stream.clone(),
                version: v,
                event_id: Uuid::now_v7(),
                command_id: req.command_id,
                recorded_at,
                actor: req.actor,
                prev_hash: chain,
                event_type: event.event_type().to_string(),
                schema: SCHEMA,
                payload: codec::encode(event)?,
            };
            let bytes = codec::encode(&env)?;
            chain = envelope::hash(&bytes);
            rows.push((Slot { seq, version: v }, bytes));
        }
        Ok(Staged::Write {
            rows,
            bodies: body_writes,
            record: CommandRecord {
                stream: req.stream.clone(),
                first_version: version + 1,
                last_version: v,
                first_seq,
                last_seq: seq,
                recorded_at,
            },
            chain,
        })
    }

    fn run(&mut self, rx: Receiver<Msg>, max_batch: usize) {
        let mut stop = false;
        while !stop {
            let Ok(first) = rx.recv() else { break };
            let mut group = Vec::new();
            // A tombstone request ends the group: it is written after the appends before it.
            let mut tombstone = None;
            match first {
                Msg::Append(r, reply) => group.push((r, reply)),
                Msg::Tombstone(t) => tombstone = Some(t),
                Msg::Stop => stop = true,
            }
            while tombstone.is_none() && group.len() < max_batch {
                match rx.try_recv() {
                    Ok(Msg::Append(r, reply)) => group.push((r, reply)),
                    Ok(Msg::Tombstone(t)) => tombstone = Some(t),
                    Ok(Msg::Stop) => {
                        stop = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            if self.poisoned {
                for (_, mut reply) in group.drain(..) {
                    reply.send(Err(StoreError::Poisoned.into()));
                }
            }
            if !group.is_empty() {
                self.commit_group(group);
            }
            if let Some(t) = tombstone {
                let result = self.tombstone(&t);
                let _ = t.reply.send(result);
            }
            if (self.clock)().saturating_sub(self.last_prune_ms) > PRUNE_EVERY_MS {
                self.prune_commands();
            }
        }
        // Drain anything sent after Stop so no caller waits forever.
        while let Ok(msg) = rx.try_recv() {
            match msg {
                Msg::Append(_, mut reply) => {
                    reply.send(Err(StoreError::Closed.into()));
                }
                Msg::Tombstone(t) => {
                    let _ = t.reply.send(Err(StoreError::Closed));
                }
                Msg::Stop => {}
            }
        }
    }

    fn sled<T>(&self, r: sled::Result<T>) -> StoreResult<T> {
        r.map_err(|e| StoreError::from_sled(e, &self.inner.sled_path))
    }

    fn current_head(
        &self,
        overlay: &HashMap<StreamId, (u64, u64)>,
        stream: &StreamId,
    ) -> StoreResult<(u64, u64)> {
        if let Some(h) = overlay.get(stream) {
            return Ok(*h);
        }
        let v = self.sled(self.inner.trees.heads.get(stream.as_str().as_bytes()))?;
        Ok(v.map(|b| decode_head(&b)).unwrap_or((0, 0)))
    }

    fn known_command(
        &self,
        overlay: &HashMap<Uuid, CommandRecord>,
        id: &Uuid,
    ) -> StoreResult<Option<CommandRecord>> {
        if let Some(r) = overlay.get(id) {
            return Ok(Some(r.clone()));
        }
        match self.sled(self.inner.trees.commands.get(id.as_bytes()))? {
            Some(b) => Ok(Some(decode_command(&b)?)),
            None => Ok(None),
        }
    }

    // tidy: long function: one group commit is stage every request, write the group
    // durably once, then publish the head and acknowledge; kept in one body so that order
    // (nothing acknowledged before the fsync, the head published before any ack) reads
    // top to bottom in one place.
    fn commit_group(&mut self, mut group: Vec<(AppendRequest, Reply)>) {
        let mut log = sled::Batch::default();
        let mut streams = sled::Batch::default();
        let mut heads = sled::Batch::default();
        let mut commands = sled::Batch::default();
        let mut body_batch = sled::Batch::default();
        let mut body_writes: Vec<BodyWrite> = Vec::new();
        let mut head_overlay: HashMap<StreamId, (u64, u64)> = HashMap::new();
        let mut cmd_overlay: HashMap<Uuid, CommandRecord> = HashMap::new();
        let mut seq = self.head;
        let mut chain = self.chain_head;
        let recorded_at = Timestamp((self.clock)().max(self.last_recorded_at));
        let mut outcomes = Vec::with_capacity(group.len());
        let mut events_written = 0u64;

        for (req, _) in &group {
            let outcome =
                match self.stage(req, seq, chain, recorded_at, &head_overlay, &cmd_overlay) {
                    Ok(Staged::Done(r)) => Ok(Pending::Done(r)),
                    Ok(Staged::Write {
                        rows,
                        bodies,
                        record,
                        chain: c,
                    }) => {
                        for w in bodies {
                            w.add_to(&mut body_batch);
                            body_writes.push(w);
                        }
                        for (s, bytes) in rows {
                            log.insert(&u64_key(s.seq), bytes);
                            streams.insert(stream_key(&req.stream, s.version), &u64_key(s.seq));
                            events_written += 1;
                        }
                        seq = record.last_seq;
                        chain = c;
                        head_overlay
                            .insert(req.stream.clone(), (record.last_version, record.last_seq));
                        heads.insert(
                            req.stream.as_str().as_bytes(),
                            &encode_head(record.last_version, record.last_seq),
                        );
                        match codec::encode(&record) {
                            Ok(b) => commands.insert(req.command_id.as_bytes(), b),
                            Err(e) => tracing::warn!(error = %e, "command record not stored"),
                        }
                        let appended = Appended {
                            replayed: false,
                            ..record.appended()
                        };
                        cmd_overlay.insert(req.command_id, record);
                        Ok(Pending::Written(appended))
                    }
                    Err(e) => Err(e),
                };
            outcomes.push(outcome);
        }

        let wrote_anything = events_written > 0;
        let durable = if wrote_anything {
            let batches = Batches {
                log: &log,
                streams: &streams,
                heads: &heads,
                commands: &commands,
                bodies: &body_batch,
            };
            // `Ack::Written` appends are answered once the trees hold them.
            let answer_early = || {
                self.inner.head.written.fetch_max(seq, Ordering::AcqRel);
                for ((_, reply), outcome) in group.iter_mut().zip(&outcomes) {
                    if let (Ack::Written, Ok(Pending::Written(a))) = (reply.ack, outcome) {
                        reply.send(Ok(*a));
                    }
                }
            };
            self.write_keys(&body_writes)
                .and_then(|()| self.write_durably(&batches, &chain, answer_early))
        } else {
            Ok(())
        };

        match durable {
            Ok(()) => {
                if wrote_anything {
                    self.head = seq;
                    self.chain_head = chain;
                    self.last_recorded_at = recorded_at.0;
                    self.inner.stats.flushes.fetch_add(1, Ordering::Relaxed);
                    self.inner
                        .stats
                        .events
                        .fetch_add(events_written, Ordering::Relaxed);
                }
                self.inner
                    .stats
                    .appends
                    .fetch_add(group.len() as u64, Ordering::Relaxed);
                // The head moves before any ack: whoever was told "durable" sees it in head().
                if wrote_anything {
                    self.inner.head.publish(seq);
                }
                for ((_, mut reply), outcome) in group.into_iter().zip(outcomes) {
                    let result = match outcome {
                        Ok(Pending::Done(r)) => r,
                        Ok(Pending::Written(a)) => Ok(a),
                        Err(e) => Err(e),
                    };
                    reply.send(result);
                }
            }
            Err(Failure { written, error }) => {
                if written {
                    // The trees hold the group but it may not be on disk: after a failed
                    // fsync the page cache cannot be trusted (PostgreSQL's "fsyncgate"), so
                    // the journal stops taking appends until a restart recovers from disk.
                    // Its in-memory head moves past the group so no seq is ever reused.
                    self.head = seq;
                    self.chain_head = chain;
                    self.poisoned = true;
                }
                tracing::error!(error = %error, written, "group commit failed; nothing of it was acknowledged");
                let msg = error.to_string();
                for (_, mut reply) in group {
                    reply.send(Err(StoreError::Sled(msg.clone()).into()));
                }
            }
        }
    }

    /// Writes the group's body secrets (and zeros the erased ones) in the key file and
    /// fsyncs it, before the sled transaction: a post is never acknowledged without its
    /// key, and an erasure that crashes before its event is written has still erased
    /// (the body then reads as erased; deleting it again writes the event).
    fn write_keys(&self, writes: &[BodyWrite]) -> Result<(), Failure> {
        if writes.is_empty() {
            return Ok(());
        }
        let keys = &self.inner.keys;
        writes
            .iter()
            .try_for_each(|w| w.write_key(keys))
            .and_then(|()| keys.sync())
            .map_err(|error| Failure {
                written: false,
                error,
            })
    }

    /// Writes the group's batches in one transaction, calls `written`, then flushes and
    /// fsyncs.
    fn write_durably(
        &self,
        b: &Batches<'_>,
        chain: &[u8; 32],
        written: impl FnOnce(),
    ) -> Result<(), Failure> {
        let t = &self.inner.trees;
        let result: sled::transaction::TransactionResult<(), ()> = (
            &t.log,
            &t.streams,
            &t.heads,
            &t.meta,
            &t.commands,
            &t.bodies,
        )
            .transaction(|(tl, ts, th, tm, tc, tb)| {
                tl.apply_batch(b.log)?;
                ts.apply_batch(b.streams)?;
                th.apply_batch(b.heads)?;
                tc.apply_batch(b.commands)?;
                tb.apply_batch(b.bodies)?;
                tm.insert(META_CHAIN_HEAD, &chain[..])?;
                Ok(())
            });
        let not_written = |error| Failure {
            written: false,
            error,
        };
        match result {
            Ok(()) => {}
            Err(sled::transaction::TransactionError::Storage(e)) => {
                return Err(not_written(StoreError::from_sled(e, &self.inner.sled_path)))
            }
            Err(sled::transaction::TransactionError::Abort(())) => {
                return Err(not_written(StoreError::Sled("transaction aborted".into())))
            }
        }
        written();
        self.flush_and_sync().map_err(|error| Failure {
            written: true,
            error,
        })
    }

    /// Flushes sled and `sync_data()`s its data file.
    fn flush_and_sync(&self) -> StoreResult<()> {
        self.sled(self.inner.db.flush())?;
        if let Some(f) = &self.data_file {
            f.sync_data().map_err(|source| StoreError::Io {
                context: "sync_data on sled's data file".into(),
                source,
            })?;
        }
        Ok(())
    }

    /// Replaces the envelopes at `seqs` by tombstones and removes their stream index
    /// entries, in one transaction with the updated compaction mark, made durable before
    /// the reply. `heads` and the chain head stay: a tombstone keeps its version and hash.
    fn tombstone(&mut self, req: &TombstoneRequest) -> StoreResult<u64> {
        if self.poisoned {
            return Err(StoreError::Poisoned);
        }
        let why = req.why.as_str();
        let t = &self.inner.trees;
        let mut seqs = req.seqs.clone();
        seqs.sort_unstable();
        seqs.dedup();
        let mut log = sled::Batch::default();
        let mut streams = sled::Batch::default();
        let mut n = 0u64;
        for seq in seqs {
            let missing = || StoreError::Encode(format!("no event at seq {seq} to tombstone"));
            if seq == 0 || seq > self.head {
                return Err(missing());
            }
            let bytes = self.sled(t.log.get(u64_key(seq)))?.ok_or_else(missing)?;
            if is_tombstone(&bytes) {
                continue;
            }
            let env: Envelope = codec::decode(&bytes, format_args!("log seq {seq}"))?;
            log.insert(
                &u64_key(seq),
                codec::encode(&Tombstone::of(&env, &bytes, why))?,
            );
            streams.remove(stream_key(&env.stream, env.version));
            n += 1;
        }
        if n == 0 {
            return Ok(0);
        }
        let mut mark: CompactionMark = match self.sled(t.meta.get(META_COMPACTION))? {
            Some(b) => codec::decode(&b, "tree meta: compaction")?,
            None => CompactionMark::default(),
        };
        mark.exact_from = mark.exact_from.max(req.exact_from);
        *mark.dropped.entry(why.to_string()).or_default() += n;
        let mark = codec::encode(&mark)?;
        let result: sled::transaction::TransactionResult<(), ()> = (&t.log, &t.streams, &t.meta)
            .transaction(|(tl, ts, tm)| {
                tl.apply_batch(&log)?;
                ts.apply_batch(&streams)?;
                tm.insert(META_COMPACTION, mark.as_slice())?;
                Ok(())
            });
        match result {
            Ok(()) => {}
            Err(sled::transaction::TransactionError::Storage(e)) => {
                return Err(StoreError::from_sled(e, &self.inner.sled_path))
            }
            Err(sled::transaction::TransactionError::Abort(())) => {
                return Err(StoreError::Sled("transaction aborted".into()))
            }
        }
        if let Err(e) = self.flush_and_sync() {
            // As for appends: after a failed fsync nothing more is trusted until a restart.
            self.poisoned = true;
            return Err(e);
        }
        Ok(n)
    }

    /// Forgets command ids older than the retention (bounded idempotency memory), at most
    /// [`PRUNE_BATCH`] a run (the next run goes on). Command ids are UUIDv7, made from the
    /// same clock (`Registry::execute`, `execute_blocking`), whose first 48 bits are their
    /// time in ms: the expired ones are a prefix of the tree, so the walk reads only them
    /// and stops at the cutoff, however many recent ones the tree holds. Each record's
    /// `recorded_at` still decides, so an id of another version that sorts early is kept
    /// while it is recent.
    fn prune_commands(&mut self) {
        self.last_prune_ms = (self.clock)();
        let cutoff = self.last_prune_ms - self.retention.as_millis() as i64;
        let mut batch = sled::Batch::default();
        let mut n = 0usize;
        let expired = self.inner.trees.commands.range(..v7_floor(cutoff));
        for (k, v) in expired.flatten().take(PRUNE_BATCH) {
            if decode_command(&v).is_ok_and(|rec| rec.recorded_at.0 < cutoff) {
                batch.remove(k);
                n += 1;
            }
        }
        if n > 0 {
            if let Err(e) = self.inner.trees.commands.apply_batch(batch) {
                tracing::warn!(error = %e, "pruning old command ids failed");
            }
        }
    }
}

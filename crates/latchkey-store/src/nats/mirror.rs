//! The node's copy of the stream: JetStream messages expanded, in stream order, into the
//! local sled log (`log`, `streams`, `heads`, `commands`, the chain head) so that reads,
//! projections and `verify` work exactly as on the sled backend.
//!
//! Every node expands the same messages in the same order, so every node assigns the same
//! seqs, versions and hash chain (DESIGN §11: the chain is computed in stream order on read).
//! The `nats` tree remembers the last stream sequence applied and, per entity stream, the
//! stream sequence of its last message (what `Nats-Expected-Last-Subject-Sequence` needs).
//! It is written in the same transaction as the log rows.
//!
//! Detached bodies: a `MessagePostedV2`'s ciphertext comes in its batch and its secret
//! from the keys stream (fetched by the follower); the secret goes to this node's
//! `body-keys` file (fsynced first) and the record to its `bodies` tree, in the log rows'
//! transaction, exactly as the sled journal writes them. A `MessageDeleted` zeroes the
//! local secret and removes the record. A post whose secret is gone (erased before this
//! node applied it) gets no body: it reads as erased.

use super::wire::Batch;
use crate::bodies::{self, BodyWrite};
use crate::codec::{self, key_u64, u64_key};
use crate::envelope::{self, Envelope, FORMAT};
use crate::error::{StoreError, StoreResult};
use crate::journal::{decode_head, encode_head, CommandRecord, META_CHAIN_HEAD};
use crate::sled_store::{stream_key, SledStore};
use crate::EventStore;
use latchkey_domain::{Event, RoomEvent, StreamId, Timestamp};
use sled::Transactional;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// The secrets the follower fetched for a batch's bodies, by message id.
pub(crate) type Secrets = HashMap<Uuid, [u8; 32]>;

/// `nats` key: the last stream sequence applied.
const APPLIED: &[u8] = b"applied";
/// `nats` key prefix: `s/<stream id>` -> stream sequence of that entity's last message.
const SUBJECT_SEQ: &[u8] = b"s/";

/// A batch expanded into envelopes, ready to write.
struct Expanded {
    rows: Vec<(u64, u64, Vec<u8>)>,
    /// What the events write to or remove from the bodies, in order.
    bodies: Vec<BodyWrite>,
    record: Vec<u8>,
    last_seq: u64,
    last_version: u64,
    chain: [u8; 32],
    recorded_at: Timestamp,
}

/// Writes JetStream messages into the local log. Only the follower task holds one.
pub(crate) struct Mirror {
    store: Arc<SledStore>,
    nats: sled::Tree,
    head: u64,
    chain: [u8; 32],
    last_recorded_at: i64,
    applied: u64,
}

/// The `nats` tree of a local store (read-only lookups for the appender).
pub(crate) fn nats_tree(store: &SledStore) -> StoreResult<sled::Tree> {
    store
        .db()
        .open_tree("nats")
        .map_err(|e| StoreError::from_sled(e, store.dir()))
}

/// The last stream sequence applied to this local store (0: none).
pub(crate) fn applied(nats: &sled::Tree) -> StoreResult<u64> {
    let v = nats
        .get(APPLIED)
        .map_err(|e| StoreError::Sled(e.to_string()))?;
    Ok(v.and_then(|b| key_u64(&b)).unwrap_or(0))
}

/// The stream sequence of `stream`'s last message (0: the entity has none yet).
pub(crate) fn subject_seq(nats: &sled::Tree, stream: &StreamId) -> StoreResult<u64> {
    let v = nats
        .get(subject_key(stream))
        .map_err(|e| StoreError::Sled(e.to_string()))?;
    Ok(v.and_then(|b| key_u64(&b)).unwrap_or(0))
}

fn subject_key(stream: &StreamId) -> Vec<u8> {
    let mut k = SUBJECT_SEQ.to_vec();
    k.extend_from_slice(stream.as_str().as_bytes());
    k
}

impl Mirror {
    /// Opens the mirror state of a local store.
    pub fn open(store: Arc<SledStore>) -> StoreResult<Self> {
        let nats = nats_tree(&store)?;
        let applied = applied(&nats)?;
        let head = store.head();
        let last_recorded_at = match store.read_all(head.max(1))?.last() {
            Some(r) => r.map(|r| r.envelope.recorded_at.0).unwrap_or(0),
            None => 0,
        };
        Ok(Self {
            chain: store.chain_head()?,
            store,
            nats,
            head,
            last_recorded_at,
            applied,
        })
    }

    /// The last stream sequence applied.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Reads the message at stream sequence `js_seq`: `None` when it is not a latchkey
    /// batch (every node skips it the same way; reported) or holds no events.
    pub fn decode(js_seq: u64, body: &[u8]) -> Option<Batch> {
        match Batch::decode(body, js_seq) {
            Ok(b) if !b.events.is_empty() => Some(b),
            Ok(_) => None,
            Err(e) => {
                tracing::error!(error = %e, seq = js_seq, "skipping a stream message that is not a latchkey batch");
                None
            }
        }
    }

    /// Expands the message at stream sequence `js_seq` (decoded by [`Self::decode`]) into
    /// the local log, with the secrets of the bodies it posts. A sequence at or below the
    /// applied one is a redelivery and is ignored.
    pub fn apply(
        &mut self,
        js_seq: u64,
        batch: Option<Batch>,
        secrets: &Secrets,
    ) -> StoreResult<()> {
        if js_seq <= self.applied {
            return Ok(());
        }
        let Some(batch) = batch else {
            return self.mark_applied(js_seq);
        };
        let t = self.store.trees().clone();
        let (version, _) = t
            .heads
            .get(batch.stream.as_str().as_bytes())
            .map_err(|e| StoreError::from_sled(e, self.store.dir()))?
            .map(|b| decode_head(&b))
            .unwrap_or((0, 0));
        let x = self.expand(&batch, version, secrets)?;
        self.write_keys(&x.bodies)?;
        let mut body_batch = sled::Batch::default();
        for w in &x.bodies {
            w.add_to(&mut body_batch);
        }
        let stream_bytes = batch.stream.as_str().as_bytes();
        let (last_seq, last_version, chain) = (x.last_seq, x.last_version, x.chain);
        let result: sled::transaction::TransactionResult<(), ()> = (
            &t.log,
            &t.streams,
            &t.heads,
            &t.meta,
            &t.commands,
            &self.nats,
            &t.bodies,
        )
            .transaction(|(tl, ts, th, tm, tc, tn, tb)| {
                for (seq, v, bytes) in &x.rows {
                    tl.insert(&u64_key(*seq), bytes.as_slice())?;
                    ts.insert(stream_key(&batch.stream, *v), &u64_key(*seq))?;
                }
                th.insert(stream_bytes, &encode_head(last_version, last_seq))?;
                tc.insert(batch.command_id.as_bytes(), x.record.as_slice())?;
                tm.insert(META_CHAIN_HEAD, &chain[..])?;
                tn.insert(subject_key(&batch.stream), &u64_key(js_seq))?;
                tn.insert(APPLIED, &u64_key(js_seq))?;
                tb.apply_batch(&body_batch)?;
                Ok(())
            });
        result.map_err(|e| match e {
            sled::transaction::TransactionError::Storage(e) => {
                StoreError::from_sled(e, self.store.dir())
            }
            sled::transaction::TransactionError::Abort(()) => {
                StoreError::Sled("transaction aborted".into())
            }
        })?;
        self.head = last_seq;
        self.chain = chain;
        self.last_recorded_at = x.recorded_at.0;
        self.applied = js_seq;
        self.store.publish_head(last_seq);
        Ok(())
    }

    /// Writes (or zeros) the batch's secrets in the `body-keys` file and fsyncs it, before
    /// the log rows: as the journal does, a post is never applied without its key, and an
    /// erasure is on disk before its event.
    fn write_keys(&self, writes: &[BodyWrite]) -> StoreResult<()> {
        if writes.is_empty() {
            return Ok(());
        }
        let keys = self.store.keys();
        writes.iter().try_for_each(|w| w.write_key(keys))?;
        keys.sync()
    }

    /// What event `payload` (at `seq`) writes to the bodies: a posted body whose
    /// ciphertext the batch carries and whose secret was fetched and matches its hash, or
    /// an erasure.
    fn body_write(
        &self,
        batch: &Batch,
        payload: &[u8],
        seq: u64,
        secrets: &Secrets,
    ) -> StoreResult<Option<BodyWrite>> {
        let Ok(event) = codec::decode::<Event>(payload, "an event payload") else {
            return Ok(None); // `verify` names it; the copy matches every other node's.
        };
        if let Event::Room(RoomEvent::MessagePostedV2 {
            message_id,
            body_hash,
            ..
        }) = &event
        {
            let opened = batch
                .body(&message_id.0)
                .zip(secrets.get(&message_id.0))
                .and_then(|(c, s)| bodies::decrypt(c, *s, body_hash));
            return match opened {
                Some(body) => Ok(Some(BodyWrite::Put {
                    key: bodies::key(message_id),
                    record: bodies::record(seq, bodies::encrypt(&body))?,
                    slot: seq,
                    secret: body.secret,
                })),
                None => Ok(None),
            };
        }
        let tree = &self.store.trees().bodies;
        bodies::erase_of(&event, tree, |e| StoreError::from_sled(e, self.store.dir()))
    }

    /// The envelopes (seq, version, bytes) of a batch for an entity at `version`, chained
    /// after the local head, and its command record.
    fn expand(&self, batch: &Batch, version: u64, secrets: &Secrets) -> StoreResult<Expanded> {
        let recorded_at = Timestamp(batch.recorded_at.0.max(self.last_recorded_at));
        let mut rows = Vec::with_capacity(batch.events.len());
        let mut body_writes = Vec::new();
        let (mut seq, mut v, mut chain) = (self.head, version, self.chain);
        for e in &batch.events {
            seq += 1;
            v += 1;
            body_writes.extend(self.body_write(batch, &e.payload, seq, secrets)?);
            let env = Envelope {
                format: FORMAT,
                seq,
                stream: batch.stream.clone(),
                version: v,
                event_id: e.event_id,
                command_id: batch.command_id,
                recorded_at,
                actor: batch.actor,
                prev_hash: chain,
                event_type: e.event_type.clone(),
                schema: e.schema,
                payload: e.payload.clone(),
            };
            let bytes = codec::encode(&env)?;
            chain = envelope::hash(&bytes);
            rows.push((seq, v, bytes));
        }
        let record = codec::encode(&CommandRecord {
            stream: batch.stream.clone(),
            first_version: version + 1,
            last_version: v,
            first_seq: self.head + 1,
            last_seq: seq,
            recorded_at,
        })?;
        Ok(Expanded {
            rows,
            bodies: body_writes,
            record,
            last_seq: seq,
            last_version: v,
            chain,
            recorded_at,
        })
    }

    fn mark_applied(&mut self, js_seq: u64) -> StoreResult<()> {
        self.nats
            .insert(APPLIED, &u64_key(js_seq))
            .map_err(|e| StoreError::from_sled(e, self.store.dir()))?;
        self.applied = js_seq;
        Ok(())
    }
}

//! The node's copy of the stream: JetStream messages expanded, in stream order, into the
//! local sled log (`log`, `streams`, `heads`, `commands`, the chain head) so that reads,
//! projections and `verify` work exactly as on the sled backend.
//!
//! Every node expands the same messages in the same order, so every node assigns the same
//! seqs, versions and hash chain (DESIGN §11: the chain is computed in stream order on read).
//! The `nats` tree remembers the last stream sequence applied and, per entity stream, the
//! stream sequence of its last message (what `Nats-Expected-Last-Subject-Sequence` needs).
//! It is written in the same transaction as the log rows.

use super::wire::Batch;
use crate::codec::{self, key_u64, u64_key};
use crate::envelope::{self, Envelope, FORMAT};
use crate::error::{StoreError, StoreResult};
use crate::journal::{decode_head, encode_head, CommandRecord, META_CHAIN_HEAD};
use crate::sled_store::{stream_key, SledStore};
use crate::EventStore;
use latchkey_domain::{StreamId, Timestamp};
use sled::Transactional;
use std::sync::Arc;

/// `nats` key: the last stream sequence applied.
const APPLIED: &[u8] = b"applied";
/// `nats` key prefix: `s/<stream id>` -> stream sequence of that entity's last message.
const SUBJECT_SEQ: &[u8] = b"s/";

/// A batch expanded into envelopes, ready to write.
struct Expanded {
    rows: Vec<(u64, u64, Vec<u8>)>,
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

    /// Expands the message at stream sequence `js_seq` into the local log. A sequence at or
    /// below the applied one is a redelivery and is ignored. A body that does not decode is
    /// skipped (every node skips it the same way) and reported.
    pub fn apply(&mut self, js_seq: u64, body: &[u8]) -> StoreResult<()> {
        if js_seq <= self.applied {
            return Ok(());
        }
        let batch = match Batch::decode(body, js_seq) {
            Ok(b) if !b.events.is_empty() => Some(b),
            Ok(_) => None,
            Err(e) => {
                tracing::error!(error = %e, seq = js_seq, "skipping a stream message that is not a latchkey batch");
                None
            }
        };
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
        let x = self.expand(&batch, version)?;
        let stream_bytes = batch.stream.as_str().as_bytes();
        let (last_seq, last_version, chain) = (x.last_seq, x.last_version, x.chain);
        let result: sled::transaction::TransactionResult<(), ()> = (
            &t.log,
            &t.streams,
            &t.heads,
            &t.meta,
            &t.commands,
            &self.nats,
        )
            .transaction(|(tl, ts, th, tm, tc, tn)| {
                for (seq, v, bytes) in &x.rows {
                    tl.insert(&u64_key(*seq), bytes.as_slice())?;
                    ts.insert(stream_key(&batch.stream, *v), &u64_key(*seq))?;
                }
                th.insert(stream_bytes, &encode_head(last_version, last_seq))?;
                tc.insert(batch.command_id.as_bytes(), x.record.as_slice())?;
                tm.insert(META_CHAIN_HEAD, &chain[..])?;
                tn.insert(subject_key(&batch.stream), &u64_key(js_seq))?;
                tn.insert(APPLIED, &u64_key(js_seq))?;
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

    /// The envelopes (seq, version, bytes) of a batch for an entity at `version`, chained
    /// after the local head, and its command record.
    fn expand(&self, batch: &Batch, version: u64) -> StoreResult<Expanded> {
        let recorded_at = Timestamp(batch.recorded_at.0.max(self.last_recorded_at));
        let mut rows = Vec::with_capacity(batch.events.len());
        let (mut seq, mut v, mut chain) = (self.head, version, self.chain);
        for e in &batch.events {
            seq += 1;
            v += 1;
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

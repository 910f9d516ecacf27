//! Importing an export (or a backup) into an **empty** JetStream stream (`latchkey admin
//! --store nats://... import FILE`): the sled log's envelopes become the stream's messages,
//! so that every node that then expands the stream gets the same log, chain head and all.
//!
//! Envelopes are checked as the sled import checks them (contiguous seqs, an unbroken hash
//! chain, contiguous stream versions, every payload decodes, every body matches its hash),
//! then grouped back into the appends that wrote them: the contiguous envelopes of one
//! command id become one [`Batch`], keeping each event's id, type, schema and payload, the
//! command id, the actor and `recorded_at`. Expanding those batches in stream order
//! (`mirror`) rebuilds byte-identical envelopes, so the copy's chain head is the source's.
//!
//! Bodies: a live detached body's secret is published to the keys stream (acknowledged
//! before its batch, as an append does) and its ciphertext goes in the batch; an erased
//! body (no secret in the export) has neither, so it stays erased. A compacted log
//! (tombstones) cannot be imported: a stream holds no tombstones (see `NatsStore::tombstone`).
//!
//! Every batch is published with `Nats-Expected-Last-Sequence` (the stream's own sequence
//! must be the previous batch's), so a writer that slips in while the import runs makes it
//! fail instead of interleaving; acknowledgements are awaited in a window, in order.

use super::connect::NatsOptions;
use super::keys;
use super::wire::{self, Batch, BatchBody, BatchEvent};
use crate::bodies;
use crate::envelope::{self, Entry, FORMAT};
use crate::error::{StoreError, StoreResult};
use crate::RawEntry;
use async_nats::jetstream::{self, context::PublishAckFuture};
use async_nats::HeaderMap;
use latchkey_domain::{Event, RoomEvent};
use std::collections::{HashMap, HashSet, VecDeque};
use uuid::Uuid;

/// Publishes awaiting their acknowledgement at most.
const WINDOW: usize = 256;

/// What an import into a stream wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamImport {
    /// Events imported (the source's last seq).
    pub events: u64,
    /// Stream messages published (one per append of the source).
    pub messages: u64,
    /// The source's chain head: every node's copy of the stream must end at it.
    pub chain_head: [u8; 32],
}

fn corrupt(detail: String) -> StoreError {
    StoreError::Corruption {
        path: "import".into(),
        detail,
    }
}

/// Imports `envelopes` (seq 1 on, as an export holds them) into the stream `opts` names,
/// creating it (and its keys stream) when missing; refuses a stream that has ever held a
/// message. `progress` is called with each seq. Call it outside any async runtime: it
/// runs its own.
pub fn import_stream(
    opts: &NatsOptions,
    envelopes: &mut dyn Iterator<Item = StoreResult<RawEntry>>,
    progress: &mut dyn FnMut(u64),
) -> StoreResult<StreamImport> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(StoreError::Unavailable(
            "import into a stream runs outside an async runtime".into(),
        ));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(super::runtime_failed)?;
    rt.block_on(async {
        let (js, info) = super::open_streams(opts).await?;
        if info.state.last_sequence > 0 || info.state.messages > 0 {
            return Err(StoreError::Encode(format!(
                "import needs an empty stream; stream {} at {} already holds messages (last sequence {}): import into a new stream (or delete this one)",
                opts.stream, opts.urls, info.state.last_sequence
            )));
        }
        let mut out = Importer::new(js, opts.clone());
        for raw in envelopes {
            let raw = raw?;
            out.take(raw, progress).await?;
        }
        out.finish().await
    })
}

/// The import in progress: the checks' state, the batch being gathered, and the publishes
/// awaiting their acknowledgement.
struct Importer {
    js: jetstream::Context,
    opts: NatsOptions,
    chain: [u8; 32],
    expected: u64,
    heads: HashMap<String, (u64, u64)>,
    batch: Option<Batch>,
    /// Bodies whose secret this import published (an erasure later in the log erases it).
    keyed: HashSet<Uuid>,
    messages: u64,
    acks: VecDeque<(u64, PublishAckFuture)>,
}

impl Importer {
    fn new(js: jetstream::Context, opts: NatsOptions) -> Self {
        Self {
            js,
            opts,
            chain: envelope::GENESIS,
            expected: 1,
            heads: HashMap::new(),
            batch: None,
            keyed: HashSet::new(),
            messages: 0,
            acks: VecDeque::new(),
        }
    }

    /// Checks one envelope and adds it to the batch of its command (publishing the batch
    /// before it when it starts another).
    async fn take(&mut self, raw: RawEntry, progress: &mut dyn FnMut(u64)) -> StoreResult<()> {
        let entry = Entry::decode(self.expected, &raw.envelope)?;
        crate::import::check(&entry, self.expected, self.chain, &mut self.heads)?;
        let rec = match entry {
            Entry::Event(rec) => rec,
            Entry::Tombstone(t) => {
                return Err(StoreError::Encode(format!(
                    "seq {} is a tombstone (the log was compacted): a JetStream stream holds no tombstones, so a compacted log cannot be imported into one",
                    t.seq
                )))
            }
        };
        let env = &rec.envelope;
        if env.format != FORMAT {
            return Err(corrupt(format!(
                "seq {} has envelope format {}",
                env.seq, env.format
            )));
        }
        let same = self
            .batch
            .as_ref()
            .is_some_and(|b| b.command_id == env.command_id);
        if !same {
            self.flush().await?;
            self.batch = Some(Batch {
                format: wire::BATCH_FORMAT,
                stream: env.stream.clone(),
                command_id: env.command_id,
                recorded_at: env.recorded_at,
                actor: env.actor,
                events: Vec::new(),
                bodies: Vec::new(),
            });
        }
        let body = self.body(&rec.event, raw.body, env.seq).await?;
        let Some(batch) = self.batch.as_mut() else {
            return Err(corrupt("no batch to add to".into()));
        };
        if batch.stream != env.stream
            || batch.recorded_at != env.recorded_at
            || batch.actor != env.actor
        {
            return Err(corrupt(format!(
                "seq {}: command {} wrote events that differ in stream, time or actor; they cannot be one stream message",
                env.seq, env.command_id
            )));
        }
        batch.events.push(BatchEvent {
            event_id: env.event_id,
            event_type: env.event_type.clone(),
            schema: env.schema,
            payload: env.payload.clone(),
        });
        batch.bodies.extend(body);
        self.chain = envelope::hash(&raw.envelope);
        progress(env.seq);
        self.expected += 1;
        Ok(())
    }

    /// The ciphertext of a live detached body, after its secret is in the keys stream;
    /// `None` for an erased body and for other events. A deletion of a body this import
    /// keyed erases the key again.
    async fn body(
        &mut self,
        event: &Event,
        body: Option<latchkey_domain::MessageBody>,
        seq: u64,
    ) -> StoreResult<Option<BatchBody>> {
        match (event, body) {
            (
                Event::Room(RoomEvent::MessagePostedV2 {
                    message_id,
                    body_hash,
                    ..
                }),
                Some(b),
            ) => {
                if b.hash() != *body_hash {
                    return Err(corrupt(format!(
                        "seq {seq}: the body of message {} does not match its hash",
                        message_id.0
                    )));
                }
                keys::publish(&self.js, &self.opts, message_id, &b.secret).await?;
                self.keyed.insert(message_id.0);
                Ok(Some(BatchBody {
                    message_id: message_id.0,
                    ciphertext: bodies::encrypt(&b),
                }))
            }
            (Event::Room(RoomEvent::MessageDeleted { message_id, .. }), None) => {
                if self.keyed.remove(&message_id.0) {
                    keys::erase(&self.js, &self.opts, message_id).await?;
                }
                Ok(None)
            }
            (_, None) => Ok(None),
            (_, Some(_)) => Err(corrupt(format!(
                "seq {seq} carries a body but is not a detached message"
            ))),
        }
    }

    /// Publishes the gathered batch, conditional on the stream's last sequence.
    async fn flush(&mut self) -> StoreResult<()> {
        let Some(batch) = self.batch.take() else {
            return Ok(());
        };
        let seq = self.messages + 1;
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", batch.command_id.to_string().as_str());
        headers.insert(
            "Nats-Expected-Last-Sequence",
            self.messages.to_string().as_str(),
        );
        let ack = self
            .js
            .publish_with_headers(
                wire::subject(&batch.stream),
                headers,
                batch.encode()?.into(),
            )
            .await
            .map_err(|e| StoreError::Unavailable(format!("publish stream message {seq}: {e}")))?;
        self.messages = seq;
        self.acks.push_back((seq, ack));
        while self.acks.len() >= WINDOW {
            self.settle_one().await?;
        }
        Ok(())
    }

    /// Awaits the oldest acknowledgement: it must be a new message at its sequence.
    async fn settle_one(&mut self) -> StoreResult<()> {
        let Some((seq, ack)) = self.acks.pop_front() else {
            return Ok(());
        };
        let ack = ack.await.map_err(|e| {
            StoreError::Unavailable(format!(
                "stream message {seq} was not acknowledged: {e} (did another writer use the stream during the import?)"
            ))
        })?;
        if ack.duplicate || ack.sequence != seq {
            return Err(corrupt(format!(
                "stream message {seq} landed at {} (duplicate: {}): a command id occurs twice in the log",
                ack.sequence, ack.duplicate
            )));
        }
        Ok(())
    }

    /// Publishes the last batch and awaits every acknowledgement.
    async fn finish(mut self) -> StoreResult<StreamImport> {
        self.flush().await?;
        while !self.acks.is_empty() {
            self.settle_one().await?;
        }
        Ok(StreamImport {
            events: self.expected - 1,
            messages: self.messages,
            chain_head: self.chain,
        })
    }
}

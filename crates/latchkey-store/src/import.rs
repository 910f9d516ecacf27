//! Importing a log: envelopes written back byte for byte into an empty store, checked on
//! the way (contiguous seqs, an unbroken hash chain, every payload decodes, every detached
//! body matches its hash), so an export re-imported elsewhere is the same log, hashes and
//! all, with the bodies that were not erased. Tombstones come across as they are: they keep
//! their seq, version and hash, and index no stream version. The prefix copy behind `latchkey admin
//! replay` is `crate::copy_prefix` on top of it.

use crate::codec::{self, u64_key};
use crate::envelope::{self, CompactionMark, Entry, Recorded};
use crate::error::{StoreError, StoreResult};
use crate::journal::{encode_head, META_CHAIN_HEAD, META_COMPACTION};
use crate::sled_store::{stream_key, SledStore};
use crate::{EventStore, RawEntry};
use latchkey_domain::{Event, RoomEvent};
use std::collections::HashMap;

/// Envelopes per write batch.
const BATCH: usize = 4096;

impl SledStore {
    /// Appends stored envelope bytes, in order, to this store, which must be empty. Each
    /// is decoded and checked against the chain before anything is written; the data is
    /// flushed and fsynced at the end. Returns the number of events written. `progress` is
    /// called with each seq.
    pub(crate) fn import_all(
        &self,
        envelopes: &mut dyn Iterator<Item = StoreResult<RawEntry>>,
        progress: &mut dyn FnMut(u64),
    ) -> StoreResult<u64> {
        if self.head() != 0 {
            return Err(StoreError::Encode(
                "import needs an empty data dir; this one already has events".into(),
            ));
        }
        let trees = self.trees().clone();
        let mut chain = envelope::GENESIS;
        let mut expected = 1u64;
        let mut heads: HashMap<String, (u64, u64)> = HashMap::new();
        let mut log = sled::Batch::default();
        let mut streams = sled::Batch::default();
        let mut bodies = sled::Batch::default();
        let mut pending = 0usize;
        let mut mark = CompactionMark::default();
        let flush = |log: &mut sled::Batch,
                     streams: &mut sled::Batch,
                     bodies: &mut sled::Batch|
         -> StoreResult<()> {
            let map = |e| StoreError::from_sled(e, self.dir());
            trees.log.apply_batch(std::mem::take(log)).map_err(map)?;
            trees
                .streams
                .apply_batch(std::mem::take(streams))
                .map_err(map)?;
            trees
                .bodies
                .apply_batch(std::mem::take(bodies))
                .map_err(map)?;
            Ok(())
        };
        for raw in envelopes {
            let RawEntry {
                envelope: bytes,
                body,
                ..
            } = raw?;
            let mut entry = Entry::decode(expected, &bytes)?;
            let seq = entry.seq();
            check(&entry, expected, chain, &mut heads)?;
            chain = self.link(&mut entry, &bytes, body, &mut mark, &mut bodies)?;
            log.insert(&u64_key(seq), bytes.as_slice());
            if let Entry::Event(_) = entry {
                streams.insert(stream_key(entry.stream(), entry.version()), &u64_key(seq));
            }
            progress(seq);
            expected += 1;
            pending += 1;
            if pending == BATCH {
                flush(&mut log, &mut streams, &mut bodies)?;
                pending = 0;
            }
        }
        flush(&mut log, &mut streams, &mut bodies)?;
        self.write_heads(&heads, chain, &mark)?;
        self.sync_all()?;
        let written = expected - 1;
        self.publish_head(written);
        Ok(written)
    }

    /// Takes one checked entry into the import: a live event's detached body (its key
    /// written now, its record into `bodies`), a tombstone's count into `mark`. Returns the
    /// hash the next entry must link to.
    fn link(
        &self,
        entry: &mut Entry,
        bytes: &[u8],
        body: Option<latchkey_domain::MessageBody>,
        mark: &mut CompactionMark,
        bodies: &mut sled::Batch,
    ) -> StoreResult<[u8; 32]> {
        match entry {
            Entry::Event(rec) => {
                if let Some(w) = import_body(rec, body, &self.trees().bodies)? {
                    w.write_key(self.keys())?;
                    w.add_to(bodies);
                }
                Ok(envelope::hash(bytes))
            }
            Entry::Tombstone(t) => {
                if body.is_some() {
                    return Err(StoreError::Corruption {
                        path: "import".into(),
                        detail: format!("seq {} is a tombstone but carries a body", t.seq),
                    });
                }
                // What the original's mark said is not exported: the import assumes the
                // least, that states before the last tombstone may lack facts.
                mark.exact_from = t.seq;
                *mark.dropped.entry(t.why.clone()).or_default() += 1;
                Ok(t.hash)
            }
        }
    }

    /// Writes the imported streams' heads, the chain head and the compaction mark.
    fn write_heads(
        &self,
        heads: &HashMap<String, (u64, u64)>,
        chain: [u8; 32],
        mark: &CompactionMark,
    ) -> StoreResult<()> {
        let trees = self.trees();
        let map = |e| StoreError::from_sled(e, self.dir());
        let mut hb = sled::Batch::default();
        for (stream, (version, seq)) in heads {
            hb.insert(stream.as_bytes(), &encode_head(*version, *seq));
        }
        trees.heads.apply_batch(hb).map_err(map)?;
        trees
            .meta
            .insert(META_CHAIN_HEAD, &chain[..])
            .map_err(map)?;
        if *mark != CompactionMark::default() {
            trees
                .meta
                .insert(META_COMPACTION, codec::encode(mark)?)
                .map_err(map)?;
        }
        Ok(())
    }
}

/// Checks one imported entry against the log so far: its seq, its link to the chain, and
/// its stream version (which it then takes in `heads`).
pub(crate) fn check(
    entry: &Entry,
    expected: u64,
    chain: [u8; 32],
    heads: &mut HashMap<String, (u64, u64)>,
) -> StoreResult<()> {
    let seq = entry.seq();
    let corrupt = |detail: String| StoreError::Corruption {
        path: "import".into(),
        detail,
    };
    if seq != expected {
        return Err(corrupt(format!("expected seq {expected}, found {seq}")));
    }
    if entry.prev_hash() != chain {
        return Err(corrupt(format!("the hash chain breaks before seq {seq}")));
    }
    let stream = entry.stream();
    let head = heads.entry(stream.0.clone()).or_insert((0, 0));
    if entry.version() != head.0 + 1 {
        return Err(corrupt(format!(
            "stream {stream} jumps to version {} at seq {seq}",
            entry.version()
        )));
    }
    *head = (entry.version(), seq);
    Ok(())
}

/// The body write an imported event carries: a detached body that matches its hash,
/// nothing for an erased one, and the erasure a deletion makes (of a body imported in an
/// earlier batch; one in the same batch is removed from the batch by the same key).
fn import_body(
    rec: &mut Recorded,
    body: Option<latchkey_domain::MessageBody>,
    tree: &sled::Tree,
) -> StoreResult<Option<crate::bodies::BodyWrite>> {
    let seq = rec.seq();
    match (&mut rec.event, body) {
        (Event::Room(RoomEvent::MessagePostedV2 { body: slot, .. }), Some(b)) => {
            *slot = Some(b);
        }
        (Event::Room(RoomEvent::MessagePostedV2 { .. }), None) => return Ok(None),
        (Event::Room(RoomEvent::MessageDeleted { .. }), _) => {}
        (_, Some(_)) => {
            return Err(StoreError::Corruption {
                path: "import".into(),
                detail: format!("seq {seq} carries a body but is not a detached message"),
            })
        }
        (_, None) => return Ok(None),
    }
    crate::bodies::write_of(&rec.event, seq, tree, |e| StoreError::Sled(e.to_string())).map_err(
        |e| StoreError::Corruption {
            path: "import".into(),
            detail: format!("seq {seq}: {e}"),
        },
    )
}

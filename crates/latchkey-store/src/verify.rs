//! The consistency check behind `latchkey admin verify`: hash chain, contiguous seqs,
//! stream versions and index, every payload decodes, every detached message body still
//! stored matches the hash its envelope holds, and read-model checkpoints <= head.
//!
//! A tombstone stands in for its dropped envelope: its `prev_hash` must link to the entry
//! before, the next entry's `prev_hash` must equal the hash it keeps, it takes its
//! stream's next version, and no stream index entry points at it. So the chain is proven
//! across every gap compaction leaves.

use crate::codec::key_u64;
use crate::envelope::{self, Envelope, Tombstone};
use crate::error::StoreResult;
use crate::projection;
use crate::sled_store::{stream_key, SledStore, Trees};
use crate::EventStore;
use std::collections::HashMap;

/// One thing wrong with the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The seq concerned, where there is one.
    pub seq: Option<u64>,
    /// What is wrong, in words.
    pub message: String,
}

/// The outcome of a verification.
#[derive(Clone, Debug, Default)]
pub struct VerifyReport {
    /// Log entries read (live events and tombstones).
    pub events: u64,
    /// Of those, tombstones.
    pub tombstones: u64,
    /// Distinct streams seen.
    pub streams: u64,
    /// The last seq.
    pub head: u64,
    /// Everything found wrong, in log order; empty means the log verifies.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// True when nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The state of one verification walk.
struct Walk<'a> {
    trees: &'a Trees,
    keys: &'a crate::bodies::BodyKeys,
    report: VerifyReport,
    /// Each stream's (version, seq) as seen in the log.
    streams: HashMap<String, (u64, u64)>,
    /// The previous envelope's seq and hash.
    prev: Option<(u64, [u8; 32])>,
    expected_seq: u64,
}

impl Walk<'_> {
    fn problem(&mut self, seq: Option<u64>, message: String) {
        self.report.problems.push(Problem { seq, message });
    }

    /// Checks one log entry: seq, hash chain, then the envelope itself.
    fn entry(&mut self, seq: u64, bytes: &[u8]) {
        self.report.events += 1;
        self.report.head = seq;
        if seq != self.expected_seq {
            let expected = self.expected_seq;
            self.problem(
                Some(seq),
                format!("seqs are not contiguous: expected {expected}, found {seq}"),
            );
        }
        self.expected_seq = seq + 1;
        if envelope::is_tombstone(bytes) {
            self.tombstone(seq, bytes);
            return;
        }
        let hash = envelope::hash(bytes);
        let env = match crate::codec::decode::<Envelope>(bytes, &format!("log seq {seq}")) {
            Ok(env) => env,
            Err(e) => {
                self.problem(Some(seq), format!("envelope does not decode: {e}"));
                self.prev = Some((seq, hash));
                return;
            }
        };
        self.link(seq, env.prev_hash);
        self.prev = Some((seq, hash));
        self.envelope(seq, &env);
    }

    /// Checks that an entry's `prev_hash` is the link the entry before left.
    fn link(&mut self, seq: u64, prev_hash: [u8; 32]) {
        if prev_hash == self.prev.map(|(_, h)| h).unwrap_or(envelope::GENESIS) {
            return;
        }
        let (at, message) = match self.prev {
            Some((p, _)) => (
                p,
                format!("hash chain breaks at seq {p}: its stored bytes do not match the prev_hash recorded by seq {seq}"),
            ),
            None => (seq, format!("hash chain breaks at seq {seq}: the first envelope's prev_hash is not zero")),
        };
        self.problem(Some(at), message);
    }

    /// Checks a tombstone: its seq, its link to the entry before, its stream version, and
    /// that no stream index entry still points at it. Its kept hash is the next link.
    fn tombstone(&mut self, seq: u64, bytes: &[u8]) {
        self.report.tombstones += 1;
        let t = match crate::codec::decode::<Tombstone>(bytes, &format!("log seq {seq}")) {
            Ok(t) => t,
            Err(e) => {
                self.problem(Some(seq), format!("tombstone does not decode: {e}"));
                self.prev = Some((seq, envelope::hash(bytes)));
                return;
            }
        };
        if t.seq != seq {
            self.problem(
                Some(seq),
                format!("tombstone says seq {} under key {seq}", t.seq),
            );
        }
        self.link(seq, t.prev_hash);
        self.prev = Some((seq, t.hash));
        self.version(seq, &t.stream.0, t.version);
        if let Ok(Some(v)) = self.trees.streams.get(stream_key(&t.stream, t.version)) {
            if key_u64(&v) == Some(seq) {
                self.problem(
                    Some(seq),
                    format!(
                        "stream index of {} v{} still points at tombstoned seq {seq}",
                        t.stream, t.version
                    ),
                );
            }
        }
    }

    /// Records a stream's next version, which must follow the last one seen.
    fn version(&mut self, seq: u64, stream: &str, version: u64) {
        let head = self.streams.entry(stream.to_string()).or_insert((0, 0));
        let last = head.0;
        *head = (version, seq);
        if version != last + 1 {
            self.problem(
                Some(seq),
                format!("stream {stream} jumps from version {last} to {version}"),
            );
        }
    }

    /// Checks an envelope's seq, payload, stream version and stream index entry.
    fn envelope(&mut self, seq: u64, env: &Envelope) {
        if env.seq != seq {
            self.problem(
                Some(seq),
                format!("envelope says seq {} under key {seq}", env.seq),
            );
        }
        match env.event() {
            Ok(ev) if ev.event_type() != env.event_type => self.problem(
                Some(seq),
                format!(
                    "event_type {} does not match its payload ({})",
                    env.event_type,
                    ev.event_type()
                ),
            ),
            Ok(ev) => self.body(seq, &ev),
            Err(e) => self.problem(Some(seq), format!("payload does not decode: {e}")),
        }
        self.version(seq, &env.stream.0, env.version);
        match self.trees.streams.get(stream_key(&env.stream, env.version)) {
            Ok(Some(v)) if key_u64(&v) == Some(seq) => {}
            _ => self.problem(
                Some(seq),
                format!(
                    "stream index of {} v{} does not point at seq {seq}",
                    env.stream, env.version
                ),
            ),
        }
    }

    /// Checks a detached body still stored against the hash in its envelope. An erased
    /// body is absent, which is not a problem: the hash alone keeps the chain whole.
    fn body(&mut self, seq: u64, event: &latchkey_domain::Event) {
        let latchkey_domain::Event::Room(latchkey_domain::RoomEvent::MessagePostedV2 {
            message_id,
            body_hash,
            ..
        }) = event
        else {
            return;
        };
        let loaded = crate::bodies::load(&self.trees.bodies, self.keys, message_id, |e| {
            crate::StoreError::Sled(e.to_string())
        });
        match loaded {
            Ok(Some(body)) if body.hash() == *body_hash => {}
            Ok(Some(_)) => self.problem(
                Some(seq),
                format!(
                    "the body of message {} does not match its hash",
                    message_id.0
                ),
            ),
            Ok(None) => {}
            Err(e) => self.problem(
                Some(seq),
                format!("the body of message {} does not decode: {e}", message_id.0),
            ),
        }
    }

    /// Checks `heads` against the streams seen in the log, both ways.
    fn heads(&mut self) {
        for entry in self.trees.heads.iter() {
            let Ok((k, v)) = entry else { continue };
            let name = String::from_utf8_lossy(&k).to_string();
            let stored = crate::journal::decode_head(&v);
            match self.streams.get(&name).copied() {
                Some(seen) if seen == stored => {}
                Some(seen) => self.problem(
                    Some(seen.1),
                    format!("heads says {name} is at (version {}, seq {}), the log says (version {}, seq {})", stored.0, stored.1, seen.0, seen.1),
                ),
                None => self.problem(None, format!("heads names {name}, which has no events")),
            }
        }
        let missing: Vec<String> = self
            .streams
            .keys()
            .filter(|name| {
                self.trees
                    .heads
                    .get(name.as_bytes())
                    .ok()
                    .flatten()
                    .is_none()
            })
            .cloned()
            .collect();
        for name in missing {
            self.problem(None, format!("stream {name} has no entry in heads"));
        }
    }
}

/// Walks the whole log. `progress` is called with each seq read.
pub(crate) fn verify(
    store: &SledStore,
    progress: &mut dyn FnMut(u64),
) -> StoreResult<VerifyReport> {
    let trees = store.trees();
    let mut walk = Walk {
        trees,
        keys: store.keys(),
        report: VerifyReport::default(),
        streams: HashMap::new(),
        prev: None,
        expected_seq: 1,
    };
    for entry in trees.log.iter() {
        let (k, bytes) = entry.map_err(|e| crate::StoreError::from_sled(e, store.dir()))?;
        let Some(seq) = key_u64(&k) else {
            walk.problem(None, "a log key is not 8 bytes".into());
            continue;
        };
        progress(seq);
        walk.entry(seq, &bytes);
    }
    if let Some((seq, hash)) = walk.prev {
        if store.chain_head()? != hash {
            walk.problem(
                Some(seq),
                format!("hash chain breaks at seq {seq}: its stored bytes do not match the chain head in meta"),
            );
        }
    }
    walk.report.streams = walk.streams.len() as u64;
    walk.heads();
    let head = walk.report.head;
    for (name, checkpoint) in projection::checkpoints(store.db())? {
        if checkpoint > head {
            walk.problem(
                None,
                format!("read model {name} claims seq {checkpoint}, past the log head {head}"),
            );
        }
    }
    Ok(walk.report)
}

//! The consistency check behind `latchkey admin verify`: hash chain, contiguous seqs,
//! stream versions and index, every payload decodes, and read-model checkpoints <= head.

use crate::codec::key_u64;
use crate::envelope::{self, Envelope};
use crate::error::StoreResult;
use crate::projection;
use crate::sled_store::{stream_key, SledStore};
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
    /// Events read.
    pub events: u64,
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

/// Walks the whole log. `progress` is called with each seq read.
pub(crate) fn verify(
    store: &SledStore,
    progress: &mut dyn FnMut(u64),
) -> StoreResult<VerifyReport> {
    let trees = store.trees();
    let mut report = VerifyReport::default();
    let problem = |report: &mut VerifyReport, seq: Option<u64>, message: String| {
        report.problems.push(Problem { seq, message });
    };
    let mut streams: HashMap<String, (u64, u64)> = HashMap::new();
    let mut prev: Option<(u64, [u8; 32])> = None;
    let mut expected_seq = 1u64;

    for entry in trees.log.iter() {
        let (k, bytes) = entry.map_err(|e| crate::StoreError::from_sled(e, store.dir()))?;
        let Some(seq) = key_u64(&k) else {
            problem(&mut report, None, "a log key is not 8 bytes".into());
            continue;
        };
        progress(seq);
        report.events += 1;
        report.head = seq;
        if seq != expected_seq {
            problem(
                &mut report,
                Some(seq),
                format!("seqs are not contiguous: expected {expected_seq}, found {seq}"),
            );
        }
        expected_seq = seq + 1;
        let hash = envelope::hash(&bytes);
        let env = match crate::codec::decode::<Envelope>(&bytes, &format!("log seq {seq}")) {
            Ok(env) => env,
            Err(e) => {
                problem(
                    &mut report,
                    Some(seq),
                    format!("envelope does not decode: {e}"),
                );
                prev = Some((seq, hash));
                continue;
            }
        };
        let prev_hash = prev.map(|(_, h)| h).unwrap_or(envelope::GENESIS);
        if env.prev_hash != prev_hash {
            let (at, message) = match prev {
                Some((p, _)) => (
                    p,
                    format!("hash chain breaks at seq {p}: its stored bytes do not match the prev_hash recorded by seq {seq}"),
                ),
                None => (seq, format!("hash chain breaks at seq {seq}: the first envelope's prev_hash is not zero")),
            };
            problem(&mut report, Some(at), message);
        }
        prev = Some((seq, hash));
        if env.seq != seq {
            problem(
                &mut report,
                Some(seq),
                format!("envelope says seq {} under key {seq}", env.seq),
            );
        }
        match env.event() {
            Ok(ev) if ev.event_type() != env.event_type => problem(
                &mut report,
                Some(seq),
                format!(
                    "event_type {} does not match its payload ({})",
                    env.event_type,
                    ev.event_type()
                ),
            ),
            Ok(_) => {}
            Err(e) => problem(
                &mut report,
                Some(seq),
                format!("payload does not decode: {e}"),
            ),
        }
        let head = streams.entry(env.stream.0.clone()).or_insert((0, 0));
        if env.version != head.0 + 1 {
            problem(
                &mut report,
                Some(seq),
                format!(
                    "stream {} jumps from version {} to {}",
                    env.stream, head.0, env.version
                ),
            );
        }
        *head = (env.version, seq);
        match trees.streams.get(stream_key(&env.stream, env.version)) {
            Ok(Some(v)) if key_u64(&v) == Some(seq) => {}
            _ => problem(
                &mut report,
                Some(seq),
                format!(
                    "stream index of {} v{} does not point at seq {seq}",
                    env.stream, env.version
                ),
            ),
        }
    }

    if let Some((seq, hash)) = prev {
        if store.chain_head()? != hash {
            problem(
                &mut report,
                Some(seq),
                format!("hash chain breaks at seq {seq}: its stored bytes do not match the chain head in meta"),
            );
        }
    }
    report.streams = streams.len() as u64;
    for entry in trees.heads.iter() {
        let Ok((k, v)) = entry else { continue };
        let name = String::from_utf8_lossy(&k).to_string();
        let stored = crate::journal::decode_head(&v);
        match streams.get(&name) {
            Some(seen) if *seen == stored => {}
            Some(seen) => problem(
                &mut report,
                Some(seen.1),
                format!("heads says {name} is at (version {}, seq {}), the log says (version {}, seq {})", stored.0, stored.1, seen.0, seen.1),
            ),
            None => problem(&mut report, None, format!("heads names {name}, which has no events")),
        }
    }
    for name in streams.keys() {
        if trees.heads.get(name.as_bytes()).ok().flatten().is_none() {
            problem(
                &mut report,
                None,
                format!("stream {name} has no entry in heads"),
            );
        }
    }
    let head = report.head;
    for (name, checkpoint) in projection::checkpoints(store.db())? {
        if checkpoint > head {
            problem(
                &mut report,
                None,
                format!("read model {name} claims seq {checkpoint}, past the log head {head}"),
            );
        }
    }
    Ok(report)
}

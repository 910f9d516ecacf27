//! Whole-log tools: replay into another store, rebuild the read models in place, and one
//! export line per envelope (its JSON, its exact bytes in base64, and a detached message
//! body that is not erased) and back.

use crate::read::any_entry;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use latchkey_actors::readmodel::projections;
use latchkey_domain::{Event, MessageBody, RoomEvent};
use latchkey_store::projection::Projector;
use latchkey_store::{copy_prefix, Entry, EventStore, RawEntry, StoreError, StoreResult};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Copies `from`'s log up to `to` into the empty store `into` (progress: each seq
/// copied), then builds every read model there; returns the number of events copied.
pub fn replay(
    from: &dyn EventStore,
    into: &Arc<dyn EventStore>,
    to: u64,
    progress: &mut dyn FnMut(u64),
) -> StoreResult<u64> {
    let n = copy_prefix(from, into.as_ref(), to, progress)?;
    Projector::new(into.clone(), projections())?.catch_up()?;
    Ok(n)
}

/// Every row of every read model, by model name.
type Snapshot = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

fn snapshot(store: &dyn EventStore) -> StoreResult<Snapshot> {
    let mut out = Snapshot::new();
    for name in store.read_model_names()? {
        let rows = store
            .read_model(&name)?
            .iter()
            .collect::<StoreResult<BTreeMap<_, _>>>()?;
        out.insert(name, rows);
    }
    Ok(out)
}

/// How one read model compares after a rebuild.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rebuilt {
    /// It did not exist before.
    New,
    /// Byte for byte the same.
    Identical,
    /// These keys differ (first few), out of `count`.
    Differs {
        /// Up to five differing keys.
        keys: Vec<Vec<u8>>,
        /// How many keys differ.
        count: usize,
    },
}

/// Rebuilds every read model from the log and compares each with what it was.
pub fn rebuild(store: &Arc<dyn EventStore>) -> StoreResult<BTreeMap<String, Rebuilt>> {
    let before = snapshot(store.as_ref())?;
    for name in before.keys() {
        store.read_model(name)?.clear()?;
    }
    Projector::new(store.clone(), projections())?.catch_up()?;
    let after = snapshot(store.as_ref())?;
    let mut report = BTreeMap::new();
    for (name, rows) in &after {
        let outcome = match before.get(name) {
            None => Rebuilt::New,
            Some(old) if old == rows => Rebuilt::Identical,
            Some(old) => {
                let differing: Vec<&Vec<u8>> = rows
                    .iter()
                    .filter(|(k, v)| old.get(*k) != Some(*v))
                    .map(|(k, _)| k)
                    .chain(old.keys().filter(|k| !rows.contains_key(*k)))
                    .collect();
                Rebuilt::Differs {
                    keys: differing.iter().take(5).map(|k| k.to_vec()).collect(),
                    count: differing.len(),
                }
            }
        };
        report.insert(name.clone(), outcome);
    }
    Ok(report)
}

/// One export line: the log entry's JSON (a tombstone's too; `data.body` the live body,
/// null once erased) plus `envelope`, its exact bytes in base64, and for a live detached
/// body `body_secret`, the secret that salts its hash (base64), so an import restores a
/// body that verifies. An erased body leaves no trace in the line.
pub fn export_line(entry: &RawEntry) -> StoreResult<Value> {
    let mut decoded = Entry::decode(entry.seq, &entry.envelope)?;
    if let Entry::Event(rec) = &mut decoded {
        if let Event::Room(RoomEvent::MessagePostedV2 { body, .. }) = &mut rec.event {
            body.clone_from(&entry.body);
        }
    }
    let mut line =
        serde_json::to_value(any_entry(&decoded)).map_err(|e| StoreError::Encode(e.to_string()))?;
    line["envelope"] = Value::String(B64.encode(&entry.envelope));
    if let Some(b) = &entry.body {
        line["body_secret"] = Value::String(B64.encode(b.secret));
    }
    Ok(line)
}

/// The envelope bytes of one export line, with its detached body (`data.body` and
/// `body_secret`) when it has one.
pub fn import_line(line: &str) -> StoreResult<RawEntry> {
    let v: Value =
        serde_json::from_str(line).map_err(|e| StoreError::Encode(format!("not JSON: {e}")))?;
    let b64 = v["envelope"]
        .as_str()
        .ok_or_else(|| StoreError::Encode("a line has no envelope".into()))?;
    let envelope = B64
        .decode(b64)
        .map_err(|e| StoreError::Encode(format!("bad envelope: {e}")))?;
    let body = match (v["body_secret"].as_str(), v["data"]["body"].as_str()) {
        (Some(secret), Some(text)) => {
            let secret = B64
                .decode(secret)
                .ok()
                .and_then(|s| <[u8; 32]>::try_from(s).ok())
                .ok_or_else(|| StoreError::Encode("bad body_secret".into()))?;
            Some(MessageBody {
                text: text.to_string(),
                secret,
            })
        }
        (Some(_), None) => return Err(StoreError::Encode("body_secret without data.body".into())),
        (None, _) => None,
    };
    Ok(RawEntry {
        seq: v["seq"].as_u64().unwrap_or(0),
        envelope,
        body,
    })
}

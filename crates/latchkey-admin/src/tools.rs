//! Whole-log tools: replay into another store, rebuild the read models in place, and one
//! export line per envelope (its JSON and its exact bytes, base64) and back.

use crate::read::any_entry;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use latchkey_actors::readmodel::projections;
use latchkey_store::projection::Projector;
use latchkey_store::{copy_prefix, Entry, EventStore, StoreError, StoreResult};
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

/// One export line: the log entry's JSON (a tombstone's too) plus `envelope`, its exact
/// bytes in base64.
pub fn export_line(seq: u64, bytes: &[u8]) -> StoreResult<Value> {
    let entry = Entry::decode(seq, bytes)?;
    let mut line =
        serde_json::to_value(any_entry(&entry)).map_err(|e| StoreError::Encode(e.to_string()))?;
    line["envelope"] = Value::String(B64.encode(bytes));
    Ok(line)
}

/// The envelope bytes of one export line.
pub fn import_line(line: &str) -> StoreResult<Vec<u8>> {
    let v: Value =
        serde_json::from_str(line).map_err(|e| StoreError::Encode(format!("not JSON: {e}")))?;
    let b64 = v["envelope"]
        .as_str()
        .ok_or_else(|| StoreError::Encode("a line has no envelope".into()))?;
    B64.decode(b64)
        .map_err(|e| StoreError::Encode(format!("bad envelope: {e}")))
}

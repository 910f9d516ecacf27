//! The `snapshots` tree: one derived, discardable snapshot per stream, so an entity with a
//! long stream rehydrates from it plus the tail instead of from event 1 (DESIGN §15).
//!
//! A snapshot is never the truth: the log is. The store keeps the bytes it is given and
//! checks nothing but their framing; the entity checks the format id and that the log still
//! holds the snapshot's version at its seq, and folds from event 1 otherwise. `latchkey
//! admin rebuild` clears the tree; entities write new snapshots as their streams grow.

use crate::codec;
use crate::error::{StoreError, StoreResult};
use latchkey_domain::StreamId;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The name of the snapshots tree.
pub const TREE: &str = "snapshots";

/// One stream's snapshot: its decider state as of one version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The layout id of `state` (the kind's snapshot format); another id is ignored.
    pub format: u32,
    /// The stream version the state is as of.
    pub version: u64,
    /// The global seq of that version's event.
    pub seq: u64,
    /// The decider state, encoded by `codec`.
    pub state: Vec<u8>,
}

/// Reads the snapshot of `stream`, if any.
pub(crate) fn get(
    tree: &sled::Tree,
    path: &Path,
    stream: &StreamId,
) -> StoreResult<Option<Snapshot>> {
    let bytes = tree
        .get(stream.as_str().as_bytes())
        .map_err(|e| StoreError::from_sled(e, path))?;
    bytes
        .map(|b| codec::decode(&b, format_args!("snapshot of {stream}")))
        .transpose()
}

/// Stores (replacing) the snapshot of `stream`. Not flushed: a snapshot lost in a crash is
/// folded again from the log.
pub(crate) fn put(
    tree: &sled::Tree,
    path: &Path,
    stream: &StreamId,
    snap: &Snapshot,
) -> StoreResult<()> {
    let bytes = codec::encode(snap)?;
    tree.insert(stream.as_str().as_bytes(), bytes)
        .map_err(|e| StoreError::from_sled(e, path))?;
    Ok(())
}

/// Removes every snapshot; returns how many there were.
pub(crate) fn clear(tree: &sled::Tree, path: &Path) -> StoreResult<u64> {
    let n = tree.len() as u64;
    tree.clear().map_err(|e| StoreError::from_sled(e, path))?;
    Ok(n)
}

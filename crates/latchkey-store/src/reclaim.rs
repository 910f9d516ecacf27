//! Giving freed space back to the file system: sled keeps the space of removed and
//! overwritten values for reuse and never shrinks its files, so after compaction the
//! offline `latchkey admin compact` rewrites the data dir's sled database into a fresh one
//! (every tree, entry for entry) and swaps the directories.
//!
//! The swap is two renames: `sled` -> `sled.old`, then `sled.new` -> `sled`. The copy is
//! flushed before either, so a crash leaves one complete database: [`recover`] (run by
//! every open) finishes or undoes a swap that was cut short.

use crate::error::{StoreError, StoreResult};
use crate::lock::DataDirLock;
use crate::sled_store::sled_dir;
use std::path::{Path, PathBuf};

/// Entries per write batch while copying.
const BATCH: usize = 8192;

/// Sizes before and after a rewrite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reclaimed {
    /// Bytes of the data dir before.
    pub before: u64,
    /// Bytes after.
    pub after: u64,
    /// Entries copied (every tree's).
    pub entries: u64,
}

fn new_dir(dir: &Path) -> PathBuf {
    dir.join("sled.new")
}

fn old_dir(dir: &Path) -> PathBuf {
    dir.join("sled.old")
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> StoreError {
    move |source| StoreError::Io { context, source }
}

/// Finishes or undoes a rewrite that a crash cut short. `sled.new` is complete only once
/// `sled` has been renamed away, so: no `sled` but a `sled.new` -> finish the swap; a
/// `sled` and a `sled.new` -> the copy was unfinished, drop it. A leftover `sled.old` goes.
pub(crate) fn recover(dir: &Path) -> StoreResult<()> {
    let (live, new, old) = (sled_dir(dir), new_dir(dir), old_dir(dir));
    if new.exists() {
        if live.exists() {
            std::fs::remove_dir_all(&new).map_err(io(format!("remove {}", new.display())))?;
        } else {
            std::fs::rename(&new, &live).map_err(io(format!("rename {}", new.display())))?;
        }
    }
    if old.exists() && live.exists() {
        std::fs::remove_dir_all(&old).map_err(io(format!("remove {}", old.display())))?;
    }
    Ok(())
}

/// Rewrites the sled database of the (stopped) data dir `dir` into a fresh one and swaps
/// it in. Takes the data dir's LOCK for the whole time.
pub fn rewrite(dir: &Path, progress: &mut dyn FnMut(u64)) -> StoreResult<Reclaimed> {
    let _lock = DataDirLock::acquire(dir)?;
    recover(dir)?;
    let before = crate::sled_store::dir_size(dir);
    let (live, new, old) = (sled_dir(dir), new_dir(dir), old_dir(dir));
    let mut copied = 0u64;
    {
        let map_live = |e| StoreError::from_sled(e, &live);
        let map_new = |e| StoreError::from_sled(e, &new);
        let from = sled::Config::new().path(&live).open().map_err(map_live)?;
        let into = sled::Config::new().path(&new).open().map_err(map_new)?;
        for name in from.tree_names() {
            let src = from.open_tree(&name).map_err(map_live)?;
            let dst = into.open_tree(&name).map_err(map_new)?;
            let mut batch = sled::Batch::default();
            let mut pending = 0;
            for kv in src.iter() {
                let (k, v) = kv.map_err(map_live)?;
                batch.insert(k, v);
                pending += 1;
                copied += 1;
                if pending == BATCH {
                    dst.apply_batch(std::mem::take(&mut batch))
                        .map_err(map_new)?;
                    pending = 0;
                    progress(copied);
                }
            }
            dst.apply_batch(batch).map_err(map_new)?;
        }
        into.flush().map_err(map_new)?;
        progress(copied);
    }
    let data = new.join("db");
    std::fs::File::open(&data)
        .and_then(|f| f.sync_all())
        .map_err(io(format!("sync {}", data.display())))?;
    std::fs::rename(&live, &old).map_err(io(format!("rename {}", live.display())))?;
    std::fs::rename(&new, &live).map_err(io(format!("rename {}", new.display())))?;
    std::fs::remove_dir_all(&old).map_err(io(format!("remove {}", old.display())))?;
    Ok(Reclaimed {
        before,
        after: crate::sled_store::dir_size(dir),
        entries: copied,
    })
}

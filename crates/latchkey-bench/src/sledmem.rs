//! Not a figure: sled 0.34's resident memory per stored key, with the soak's small page
//! cache. sled keeps a page-table record for every tree page, paged out or not (sled
//! issue #1093), and a leaf page holds at most 16 keys, so a store's RSS grows with the
//! number of keys it holds even when the cache is full. The soak's growth after its
//! warm-up is checked against this figure.

use crate::machine;
use rand::RngCore;
use std::process::Command;

/// Keys inserted before the baseline (the cache fills), then keys measured after it.
const WARM_KEYS: u64 = 200_000;
const MEASURED_KEYS: u64 = 400_000;

/// The key shapes measured, each in its own process.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Keys in insertion order (the log, command ids, a room's rows).
    Sequential,
    /// 16 random bytes, then a counter (new pairing streams' rows).
    Random,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Self::Sequential => "sequential",
            Self::Random => "random",
        }
    }
}

/// Runs each shape in a fresh process of this binary and prints its bytes per key.
pub fn run(cache_mib: u64) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    println!(
        "sled resident memory per stored key: one tree, 64-byte values, cache {cache_mib} MiB, \
         flush every 50 inserts; RSS after {WARM_KEYS} keys, then after {} more",
        MEASURED_KEYS
    );
    for shape in [Shape::Sequential, Shape::Random] {
        let shape = shape.name();
        let out = Command::new(&exe)
            .args([
                "sled-memory",
                "--cache-mib",
                &cache_mib.to_string(),
                "--shape",
                shape,
            ])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "sled-memory {shape} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
    Ok(())
}

/// One shape in this process: inserts keys into a fresh sled tree and prints
/// `shape: B per key` from the RSS grown between the baseline and the end.
pub fn run_shape(shape: Shape, cache_mib: u64) -> anyhow::Result<()> {
    let m = measure(shape, cache_mib, WARM_KEYS, MEASURED_KEYS)?;
    println!(
        "  {:>10} keys: RSS {:.1} -> {:.1} MiB with {} keys stored, {:.1} B per key",
        shape.name(),
        m.before as f64 / 1048576.0,
        m.after as f64 / 1048576.0,
        m.keys,
        m.after.saturating_sub(m.before) as f64 / MEASURED_KEYS as f64
    );
    Ok(())
}

/// What one shape measured: RSS at the baseline and at the end, and the keys stored.
struct Measured {
    before: u64,
    after: u64,
    keys: usize,
}

/// Inserts `warm` keys, takes the baseline, inserts `measured` more (flushing every 50).
fn measure(shape: Shape, cache_mib: u64, warm: u64, measured: u64) -> anyhow::Result<Measured> {
    let dir = tempfile::tempdir()?;
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(cache_mib << 20)
        .open()?;
    let tree = db.open_tree("t")?;
    let random = shape == Shape::Random;
    let pid = std::process::id();
    let value = [7u8; 64];
    let mut rng = rand::thread_rng();
    let mut insert = |i: u64| -> anyhow::Result<()> {
        // A random prefix (or none), then the counter: every key is new.
        let mut key = [0u8; 24];
        if random {
            rng.fill_bytes(&mut key[..16]);
        }
        key[16..].copy_from_slice(&i.to_be_bytes());
        tree.insert(key, &value[..])?;
        if i.is_multiple_of(50) {
            db.flush()?;
        }
        Ok(())
    };
    for i in 0..warm {
        insert(i)?;
    }
    let before = machine::rss_bytes(pid).unwrap_or(0);
    for i in warm..warm + measured {
        insert(i)?;
    }
    db.flush()?;
    let after = machine::rss_bytes(pid).unwrap_or(0);
    Ok(Measured {
        before,
        after,
        keys: tree.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_shape_stores_every_key_and_reads_rss() -> anyhow::Result<()> {
        for shape in [Shape::Sequential, Shape::Random] {
            let m = measure(shape, 1, 500, 1_500)?;
            assert_eq!(m.keys, 2_000);
            assert!(m.before > 0 && m.after > 0);
        }
        Ok(())
    }
}

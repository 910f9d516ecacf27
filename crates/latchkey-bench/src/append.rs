//! Durable appends/s through the journal (group commit, flush, `sync_data`) with 1, 16 and
//! 64 concurrent writers, beside raw sled doing the same work by hand: one batch of the
//! same size, one flush, one `sync_data`, in a loop on one thread.

use crate::report::Report;
use latchkey_domain::{Actor, Event, Timestamp, UserEvent, UserId};
use latchkey_store::{AppendRequest, EventStore, ExpectedVersion, SledStore, StoreOptions};
use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Appends/s and the mean group size, for `writers` concurrent writers.
fn journal(writers: usize, seconds: f64, sync_data: bool) -> anyhow::Result<(f64, f64)> {
    let dir = tempfile::tempdir()?;
    let opts = StoreOptions {
        sync_data,
        ..StoreOptions::default()
    };
    let store = Arc::new(SledStore::open(dir.path(), opts)?);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|_| {
            let (store, stop, done) = (store.clone(), stop.clone(), done.clone());
            std::thread::spawn(move || {
                let stream = UserId(Uuid::new_v4()).stream();
                let mut v = 0;
                while !stop.load(Ordering::Relaxed) {
                    let r = store.append_blocking(AppendRequest {
                        stream: stream.clone(),
                        expected: ExpectedVersion::Exact(v),
                        events: vec![Event::User(UserEvent::UserEnabled {
                            at: Timestamp(v as i64),
                        })],
                        command_id: Uuid::new_v4(),
                        actor: Actor::System,
                    });
                    if r.is_ok() {
                        v += 1;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let flushes = store.stats().flushes.load(Ordering::Relaxed).max(1);
    let appends = done.load(Ordering::Relaxed);
    Ok((appends as f64 / elapsed, appends as f64 / flushes as f64))
}

/// Raw sled: batches of `batch` ~100-byte values, each followed by flush + sync_data.
fn raw_sled(batch: usize, seconds: f64) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let db = sled::Config::new()
        .path(dir.path().join("sled"))
        .mode(sled::Mode::HighThroughput)
        .open()?;
    let tree = db.open_tree("log")?;
    let data = File::open(dir.path().join("sled").join("db"))?;
    let value = vec![7u8; 120];
    let mut seq = 0u64;
    let started = Instant::now();
    while started.elapsed().as_secs_f64() < seconds {
        let mut b = sled::Batch::default();
        for _ in 0..batch.max(1) {
            seq += 1;
            b.insert(&seq.to_be_bytes(), value.clone());
        }
        tree.apply_batch(b)?;
        db.flush()?;
        data.sync_data()?;
    }
    Ok(seq as f64 / started.elapsed().as_secs_f64())
}

/// Runs the scenario.
pub fn run(seconds: f64, report: &mut Report) -> anyhow::Result<()> {
    eprintln!("append: durable appends/s, journal vs raw sled batch+flush+sync_data");
    for writers in [1usize, 16, 64] {
        let (ours, group) = journal(writers, seconds, true)?;
        let raw = raw_sled(group.round() as usize, seconds)?;
        report.add(
            &format!("append, {writers} writers (mean group {group:.1})"),
            ours,
            "raw sled, same batch",
            raw,
            "appends/s",
        );
    }
    let (with_sync, _) = journal(16, seconds, true)?;
    let (without, _) = journal(16, seconds, false)?;
    report.add(
        "append, 16 writers, with sync_data",
        with_sync,
        "without sync_data",
        without,
        "appends/s",
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scenario_runs_at_a_tiny_size() {
        let (rate, group) = journal(4, 0.2, true).unwrap();
        assert!(rate > 0.0 && group >= 1.0, "{rate} {group}");
        assert!(raw_sled(2, 0.1).unwrap() > 0.0);
    }
}

//! Durable appends/s: W writers as tokio tasks on one runtime, each awaiting its own
//! append in a loop, driven the same way against (a) the journal (`EventStore::append`:
//! group commit, flush, `sync_data`) and (b) raw sled doing the same durable work by hand:
//! a committer thread that takes every write waiting, applies one batch to one tree,
//! flushes, calls `sync_data` and acknowledges them. Both sides form their groups from
//! whatever the same writers have waiting, so the batches are the same by construction.

use crate::report::{Better, Check, Headline, Op, Report};
use latchkey_domain::{Actor, Event, StreamId, Timestamp, UserEvent, UserId};
use latchkey_store::{AppendRequest, EventStore, ExpectedVersion, SledStore, StoreOptions};
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Writers of the headline figure.
pub const WRITERS: usize = 64;

/// What one side did: appends/s and the mean group (appends per fsync).
struct Side {
    rate: f64,
    group: f64,
}

/// Runs `writers` tasks for `seconds`, each calling `one(writer, n)` in a loop; appends/s.
pub(crate) async fn drive<F, Fut>(
    writers: usize,
    seconds: f64,
    one: F,
) -> anyhow::Result<(u64, f64)>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let one = Arc::new(one);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (one, stop, done) = (one.clone(), stop.clone(), done.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    one(w, n).await?;
                    n += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok(())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let counted = done.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await??;
    }
    Ok((counted, counted as f64 / elapsed))
}

/// A writer's `n`th append: one small event at version `n + 1` of its own `stream`.
pub(crate) fn one_append(
    store: &dyn EventStore,
    stream: &StreamId,
    n: u64,
) -> impl std::future::Future<Output = anyhow::Result<()>> + Send + 'static {
    let fut = store.append(AppendRequest {
        stream: stream.clone(),
        expected: ExpectedVersion::Exact(n),
        events: vec![Event::User(UserEvent::UserEnabled {
            at: Timestamp(n as i64),
        })],
        command_id: Uuid::new_v4(),
        actor: Actor::System,
    });
    async move {
        fut.await.map_err(|e| anyhow::anyhow!("append: {e}"))?;
        Ok(())
    }
}

/// The journal, `writers` tasks each appending one event to its own stream.
/// With `flame`, `perf` records this process while the writers run; it attaches after
/// the store and the runtime exist, since perf follows only the threads it found.
fn journal(
    rt: &tokio::runtime::Runtime,
    writers: usize,
    seconds: f64,
    sync_data: bool,
    flame: Option<&Path>,
) -> anyhow::Result<Side> {
    let dir = tempfile::tempdir()?;
    let opts = StoreOptions {
        sync_data,
        ..StoreOptions::default()
    };
    let store = Arc::new(SledStore::open(dir.path(), opts)?);
    let streams: Arc<Vec<_>> = Arc::new(
        (0..writers)
            .map(|_| UserId(Uuid::new_v4()).stream())
            .collect(),
    );
    let s = store.clone();
    let before = store.stats().flushes.load(Ordering::Relaxed);
    let perf = crate::perf::Recorder::start(flame, "append", std::process::id());
    let (appends, rate) = rt.block_on(drive(writers, seconds, move |w, n| {
        one_append(s.as_ref(), &streams[w], n)
    }))?;
    if let Some(p) = perf {
        p.finish();
    }
    let flushes = store.stats().flushes.load(Ordering::Relaxed) - before;
    Ok(Side {
        rate,
        group: appends as f64 / flushes.max(1) as f64,
    })
}

/// A write waiting for the raw committer (its writer and that writer's count), and where
/// to say it is durable.
type Pending = (usize, u64, oneshot::Sender<()>);

/// What the raw committer writes per append.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rows {
    /// One 120-byte value under the next seq, in one tree: the headline's reference.
    One,
    /// The keys the journal writes per event (DESIGN section 3), each tree in its own batch,
    /// no transaction: `log` (seq -> 120 bytes), `streams` (stream ++ version -> seq),
    /// `heads` (stream -> version, seq) and `commands` (command id -> 60 bytes).
    Journal,
}

/// Raw sled's committer: every waiting write in one batch per tree, flush, `sync_data`,
/// ack.
fn raw_committer(
    mut rx: mpsc::UnboundedReceiver<Pending>,
    dir: std::path::PathBuf,
    rows: Rows,
    groups: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let db = sled::Config::new()
        .path(dir.join("sled"))
        .mode(sled::Mode::HighThroughput)
        .open()?;
    let trees = ["log", "streams", "heads", "commands"]
        .map(|name| db.open_tree(name))
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let data = File::open(dir.join("sled").join("db"))?;
    let streams: Vec<[u8; 16]> = (0..WRITERS.max(1024))
        .map(|_| *Uuid::new_v4().as_bytes())
        .collect();
    let mut seq = 0u64;
    let mut acks = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut batches: [sled::Batch; 4] = Default::default();
        let mut next = Some(first);
        while let Some((writer, n, ack)) = next {
            seq += 1;
            batches[0].insert(&seq.to_be_bytes(), vec![7u8; 120]);
            if rows == Rows::Journal {
                let stream = &streams[writer % streams.len()];
                let version = (n + 1).to_be_bytes();
                let head = [version, seq.to_be_bytes()].concat();
                batches[1].insert([stream.as_slice(), &version].concat(), &seq.to_be_bytes());
                batches[2].insert(stream.as_slice(), head);
                batches[3].insert(Uuid::now_v7().as_bytes(), vec![3u8; 60]);
            }
            acks.push(ack);
            next = rx.try_recv().ok();
        }
        for (tree, batch) in trees.iter().zip(batches) {
            tree.apply_batch(batch)?;
        }
        db.flush()?;
        data.sync_data()?;
        groups.fetch_add(1, Ordering::Relaxed);
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
    }
    Ok(())
}

/// Raw sled driven by the same tasks: each asks for one append and awaits its ack.
fn raw_sled(
    rt: &tokio::runtime::Runtime,
    writers: usize,
    seconds: f64,
    rows: Rows,
) -> anyhow::Result<Side> {
    let dir = tempfile::tempdir()?;
    let (tx, rx) = mpsc::unbounded_channel::<Pending>();
    let groups = Arc::new(AtomicU64::new(0));
    let (path, g) = (dir.path().to_path_buf(), groups.clone());
    let committer = std::thread::spawn(move || raw_committer(rx, path, rows, g));
    let (appends, rate) = rt.block_on(drive(writers, seconds, move |w, n| {
        let tx = tx.clone();
        async move {
            let (ack, done) = oneshot::channel();
            tx.send((w, n, ack))
                .map_err(|_| anyhow::anyhow!("the raw committer stopped"))?;
            done.await
                .map_err(|_| anyhow::anyhow!("the raw committer stopped"))?;
            Ok(())
        }
    }))?;
    let groups = groups.load(Ordering::Relaxed);
    committer
        .join()
        .map_err(|_| anyhow::anyhow!("the raw committer panicked"))??;
    Ok(Side {
        rate,
        group: appends as f64 / groups.max(1) as f64,
    })
}

/// Runs the scenario.
pub fn run(seconds: f64, flame: Option<&Path>, report: &mut Report) -> anyhow::Result<()> {
    eprintln!("append: {WRITERS} writer tasks, journal vs raw sled (batch + flush + sync_data)");
    let rt = crate::fanout::ours::runtime()?;
    let ours = journal(&rt, WRITERS, seconds, true, flame)?;
    let raw = raw_sled(&rt, WRITERS, seconds, Rows::One)?;
    let ratio = (raw.rate > 0.0).then(|| ours.rate / raw.rate);
    report.headline(Headline {
        id: "append_64_vs_raw",
        figure: format!("durable appends/s, {WRITERS} writers"),
        ours: Some(ours.rate),
        unit: "appends/s".into(),
        reference_name: "raw sled, same driver, batch + flush + sync_data".into(),
        reference: Some(raw.rate),
        better: Better::Higher,
        checks: vec![
            Check::new("ratio", ratio, Op::AtLeast, 0.8),
            Check::new("appends/s", Some(ours.rate), Op::AtLeast, 50_000.0),
        ],
        includes: format!(
            "{WRITERS} writers as tokio tasks on one 2-thread runtime in the bench process, \
             each awaiting one append at a time to its own stream (one small event), for \
             {seconds} s. latchkey: `EventStore::append` on a `SledStore` (the journal thread \
             groups what is waiting: version checks, hash chain, five-tree transaction, \
             flush, `sync_data`); mean group {:.1} appends per fsync. Raw sled: the same \
             tasks send a 120-byte value to one committer thread that batches everything \
             waiting into one tree, flushes and calls `sync_data`; mean group {:.1}. Both \
             acknowledge only after the fsync.",
            ours.group, raw.group
        ),
    });
    report.baseline("append", ours.rate);
    let without = journal(&rt, WRITERS, seconds, false, None)?;
    report.add(
        &format!("journal appends/s, {WRITERS} writers, with sync_data"),
        ours.rate,
        "the journal without sync_data",
        without.rate,
        "appends/s",
    );
    let layout = raw_sled(&rt, WRITERS, seconds, Rows::Journal)?;
    report.add(
        &format!("journal appends/s, {WRITERS} writers"),
        ours.rate,
        "raw sled writing the journal's 4 keys per event (log, streams, heads, commands; a \
         batch per tree, no transaction), same driver",
        layout.rate,
        "appends/s",
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scenario_runs_at_a_tiny_size() -> anyhow::Result<()> {
        let rt = crate::fanout::ours::runtime()?;
        let ours = journal(&rt, 4, 0.2, true, None)?;
        assert!(ours.rate > 0.0 && ours.group >= 1.0, "{}", ours.rate);
        for rows in [Rows::One, Rows::Journal] {
            let raw = raw_sled(&rt, 4, 0.2, rows)?;
            assert!(raw.rate > 0.0 && raw.group >= 1.0, "{}", raw.rate);
        }
        Ok(())
    }
}

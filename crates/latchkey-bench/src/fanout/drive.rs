//! Driving one side of a run: open every connection (bounded handshakes), read the
//! server's RSS around that, publish on a fixed schedule from blocking threads, wait for
//! the deliveries to drain, stop, and add up. The protocols live in `ours` and `nats`.

use super::shape::{body, now_ns, Shape, Target};
use super::tally::{Outcome, Tally};
use crate::machine::rss_bytes;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Semaphore};

/// Concurrent WebSocket handshakes while connecting.
pub const CONNECT_CONCURRENCY: usize = 128;
/// How long deliveries may trail the last publish before the rest count as lost.
pub const DRAIN: Duration = Duration::from_secs(15);

/// Publishes every message of `shape` on schedule (message `k` at `k / rate` s) from
/// `threads` threads; `send(k, target, body)` delivers one. Returns (published, errors,
/// seconds from the first scheduled send to the last completed one, start in [`now_ns`]).
pub fn publish<S, F>(shape: Shape, threads: usize, make: F) -> anyhow::Result<(u64, u64, f64, u64)>
where
    S: FnMut(u64, Target, &str) -> anyhow::Result<()>,
    F: Fn(usize) -> anyhow::Result<S> + Send + Sync + 'static,
    S: 'static,
{
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let total = shape.messages();
    let start = now_ns() + 50_000_000; // 50 ms for the threads to start
    let make = Arc::new(make);
    let handles: Vec<_> = (0..threads.max(1))
        .map(|t| {
            let (next, errors, first_error, make) = (
                next.clone(),
                errors.clone(),
                first_error.clone(),
                make.clone(),
            );
            std::thread::spawn(move || -> anyhow::Result<u64> {
                let mut send = make(t)?;
                let mut sent = 0;
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= total {
                        return Ok(sent);
                    }
                    let due = start + (k as f64 * 1e9 / shape.rate) as u64;
                    let now = now_ns();
                    if due > now {
                        std::thread::sleep(Duration::from_nanos(due - now));
                    }
                    let stamp = now_ns();
                    match send(k, shape.target(k), &body(k, stamp)) {
                        Ok(()) => sent += 1,
                        Err(e) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            if let Ok(mut f) = first_error.lock() {
                                f.get_or_insert_with(|| e.to_string());
                            }
                        }
                    }
                }
            })
        })
        .collect();
    let mut published = 0;
    for h in handles {
        published += h
            .join()
            .map_err(|_| anyhow::anyhow!("a publisher panicked"))??;
    }
    let elapsed = now_ns().saturating_sub(start) as f64 / 1e9;
    let errors = errors.load(Ordering::Relaxed);
    if errors > 0 {
        let first = first_error.lock().ok().and_then(|f| f.clone());
        eprintln!(
            "  {errors} publishes failed; first: {}",
            first.unwrap_or_default()
        );
    }
    Ok((published, errors, elapsed, start))
}

/// What a driver's task for one connection gets: its index, a gate that bounds concurrent
/// handshakes, where to say it is ready, the shared delivery counter, and the stop signal.
pub struct Slot {
    /// The connection's index in the shape.
    pub index: usize,
    /// Counts every delivery of the run (for the drain).
    pub received: Arc<AtomicU64>,
    /// Flips to true when the run is over.
    pub stop: watch::Receiver<bool>,
    gate: Arc<Semaphore>,
    ready: mpsc::Sender<Result<(), String>>,
}

impl Slot {
    /// Runs `open` (a connect and handshake) while holding a handshake permit.
    pub async fn gated<T>(&self, open: impl Future<Output = T>) -> T {
        let _permit = self.gate.acquire().await;
        open.await
    }

    /// Says the connection is open and subscribed.
    pub async fn ready(&self) {
        let _ = self.ready.send(Ok(())).await;
    }

    /// Says the connection failed; the tally of a connection that never opened.
    pub async fn failed(&self, e: anyhow::Error) -> Tally {
        let _ = self.ready.send(Err(format!("{e:#}"))).await;
        Tally {
            closed_early: true,
            ..Tally::default()
        }
    }
}

/// One side of the run, once its server is up: opens every connection through `open`
/// (a task per connection that reports through its [`Slot`] and returns its tally when
/// stopped), reads the server's RSS (`pid`) before and after, publishes with `publisher`
/// on a blocking thread, drains, stops the connections and adds up their tallies.
pub async fn drive<O, Fut, P>(
    name: &str,
    shape: Shape,
    pid: u32,
    open: O,
    publisher: P,
) -> anyhow::Result<Outcome>
where
    O: Fn(Slot) -> Fut,
    Fut: Future<Output = Tally> + Send + 'static,
    P: FnOnce() -> anyhow::Result<(u64, u64, f64, u64)> + Send + 'static,
{
    let before = rss_bytes(pid);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready_tx, mut ready_rx) = mpsc::channel(shape.connections.max(1));
    let received = Arc::new(AtomicU64::new(0));
    let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let started = Instant::now();
    let tasks: Vec<_> = (0..shape.connections)
        .map(|index| {
            tokio::spawn(open(Slot {
                index,
                received: received.clone(),
                stop: stop_rx.clone(),
                gate: gate.clone(),
                ready: ready_tx.clone(),
            }))
        })
        .collect();
    drop(ready_tx);
    let mut failures = Vec::new();
    for _ in 0..shape.connections {
        match ready_rx.recv().await {
            Some(Ok(())) => {}
            Some(Err(e)) => failures.push(e),
            None => break,
        }
    }
    let connect_s = started.elapsed().as_secs_f64();
    if let Some(first) = failures.first() {
        let _ = stop_tx.send(true);
        anyhow::bail!(
            "{name}: {} of {} connections failed; first: {first}",
            failures.len(),
            shape.connections
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // let the server's RSS settle
    let after = rss_bytes(pid);
    let rss_per_conn = before
        .zip(after)
        .map(|(b, a)| a.saturating_sub(b) as f64 / shape.connections.max(1) as f64);
    eprintln!(
        "  {name}: {} connections open in {connect_s:.1} s; publishing",
        shape.connections
    );
    let published = tokio::task::spawn_blocking(publisher).await??;
    drain(&received, shape.expected()).await;
    let _ = stop_tx.send(true);
    let mut tallies = Vec::with_capacity(tasks.len());
    for t in tasks {
        tallies.push(t.await?);
    }
    Ok(Outcome::from_tallies(
        tallies,
        connect_s,
        rss_per_conn,
        shape.expected(),
        published,
    ))
}

/// Waits until `received` reaches `expected`, or [`DRAIN`] passes with no progress.
pub async fn drain(received: &AtomicU64, expected: u64) {
    let mut last = received.load(Ordering::Relaxed);
    let mut since = Instant::now();
    while last < expected && since.elapsed() < DRAIN {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = received.load(Ordering::Relaxed);
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
}

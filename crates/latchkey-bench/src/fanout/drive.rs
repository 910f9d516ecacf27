//! Driving one side of a run: open every connection once (bounded handshakes), read the
//! server's RSS around that (idle connections), then ramp the offered message rate step
//! by step until p99 > 50 ms, deliveries < 99.9% or the publisher cannot keep the
//! schedule, then run one step at half the best rate. The protocols live in `ours` and
//! `nats`; both publish through [`Publisher`] and count through [`Steps`].

use super::shape::{now_ns, Shape};
use super::tally::{Steps, Tally, MAX_STEPS};
use crate::machine::rss_bytes;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Semaphore};

/// Concurrent WebSocket handshakes while connecting.
pub const CONNECT_CONCURRENCY: usize = 128;
/// A step passes only with p99 at or under this.
pub const P99_LIMIT_MS: f64 = 50.0;
/// A step passes only when at least this share of its deliveries arrived.
pub const DELIVERED_MIN: f64 = 0.999;
/// A step passes only when the publisher achieved this share of the offered rate.
pub const ACHIEVED_MIN: f64 = 0.95;
/// How long deliveries may stop arriving before the rest of a step count as lost.
const QUIET: Duration = Duration::from_secs(1);
/// Longest wait for a step's deliveries after its last publish.
const DRAIN_MAX: Duration = Duration::from_secs(10);

/// The ramp's schedule.
#[derive(Clone, Copy, Debug)]
pub struct Ramp {
    /// Offered messages/s of the first step.
    pub start: f64,
    /// Each next step offers this many times more.
    pub growth: f64,
    /// Seconds each step publishes.
    pub step_seconds: f64,
    /// Most ramp steps before giving up (the last one then counts as the best).
    pub max_steps: usize,
}

/// One step's messages: numbers `first..first+count`, `rate` per second.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Step index (also written in every body).
    pub step: usize,
    /// First message number.
    pub first: u64,
    /// Messages.
    pub count: u64,
    /// Offered messages/s.
    pub rate: f64,
}

impl Plan {
    /// When message `k` of the plan is due, in [`now_ns`], for a step starting at `start`.
    pub fn due(&self, start: u64, k: u64) -> u64 {
        start + ((k - self.first) as f64 * 1e9 / self.rate) as u64
    }
}

/// What a publisher did in one step.
#[derive(Clone, Copy, Debug, Default)]
pub struct Published {
    /// Messages accepted by the server.
    pub published: u64,
    /// Messages refused or failed.
    pub errors: u64,
    /// Seconds from the first scheduled send to the last completed one.
    pub seconds: f64,
}

/// Publishes the messages of one step on schedule.
pub trait Publisher {
    /// Publishes `plan`, stamping each body with its send time.
    fn publish(&mut self, plan: Plan) -> impl Future<Output = anyhow::Result<Published>>;
}

/// One step's figures.
#[derive(Clone, Debug)]
pub struct StepResult {
    /// Offered messages/s.
    pub offered: f64,
    /// Achieved publish rate.
    pub achieved: f64,
    /// Publish errors.
    pub errors: u64,
    /// Deliveries the step's messages make.
    pub expected: u64,
    /// Deliveries received.
    pub received: u64,
    /// Deliveries/s over the step.
    pub deliveries_per_s: f64,
    /// Median publish-to-receive latency, ms.
    pub p50: f64,
    /// 99th percentile, ms.
    pub p99: f64,
    /// Deliveries a connection may not see.
    pub violations: u64,
    /// Why the step failed (empty when it passed).
    pub why: String,
    /// Its latencies (for the CDF chart).
    pub cdf_ms: Vec<f64>,
}

impl StepResult {
    /// True when the step was sustained.
    pub fn passed(&self) -> bool {
        self.why.is_empty()
    }

    /// A few words for the ramp notes.
    pub fn brief(&self) -> String {
        format!(
            "{:.0} msg/s -> {:.0}/s p99 {:.1} ms{}",
            self.offered,
            self.deliveries_per_s,
            self.p99,
            if self.passed() {
                String::new()
            } else {
                format!(" [{}]", self.why)
            }
        )
    }

    /// One line for the log.
    pub fn describe(&self) -> String {
        format!(
            "{:.0} msg/s offered ({:.0} achieved, {} errors) -> {:.0} deliveries/s, {}/{} \
             delivered, p50 {:.2} ms, p99 {:.2} ms{}",
            self.offered,
            self.achieved,
            self.errors,
            self.deliveries_per_s,
            self.received,
            self.expected,
            self.p50,
            self.p99,
            if self.passed() {
                String::new()
            } else {
                format!(" [{}]", self.why)
            }
        )
    }
}

/// The figures of one side.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Connections opened.
    pub connections: usize,
    /// Seconds to open them all.
    pub connect_s: f64,
    /// Server RSS growth per idle connection, bytes.
    pub rss_per_conn: Option<f64>,
    /// Every ramp step, in order.
    pub steps: Vec<StepResult>,
    /// The sustained step with the most deliveries/s.
    pub best: Option<StepResult>,
    /// The step at half the best rate.
    pub half: Option<StepResult>,
    /// Connections the server closed during the run.
    pub closed_early: usize,
    /// Connections whose hello named rooms other than their own.
    pub wrong_rooms: usize,
    /// Frames nobody could read.
    pub unreadable: u64,
}

impl Outcome {
    /// Deliveries a connection may not see, over every step.
    pub fn violations(&self) -> u64 {
        self.steps.iter().map(|s| s.violations).sum::<u64>()
            + self.half.as_ref().map_or(0, |h| h.violations)
    }

    /// The maximum sustained deliveries/s (0 when no step was sustained).
    pub fn max(&self) -> f64 {
        self.best.as_ref().map_or(0.0, |b| b.deliveries_per_s)
    }
}

/// What a connection task gets: its index, the shared counters, the stop signal, a gate
/// that bounds concurrent handshakes and where to say it is ready.
pub struct Slot {
    /// The connection's index in the shape.
    pub index: usize,
    /// Every step's counters.
    pub steps: Arc<Steps>,
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

/// Waits until step `i` has `expected` deliveries, or they stop coming.
async fn drain(steps: &Steps, i: usize, expected: u64) -> u64 {
    let counter = &steps.step(i).received;
    let started = Instant::now();
    let mut last = counter.load(Ordering::Relaxed);
    let mut since = Instant::now();
    while last < expected && since.elapsed() < QUIET && started.elapsed() < DRAIN_MAX {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = counter.load(Ordering::Relaxed);
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
    last
}

/// Publishes one step and measures it.
async fn step<P: Publisher>(
    shape: &Shape,
    steps: &Steps,
    publisher: &mut P,
    plan: Plan,
) -> anyhow::Result<StepResult> {
    let expected = shape.expected(plan.first, plan.first + plan.count);
    let p = publisher.publish(plan).await?;
    let received = drain(steps, plan.step, expected).await;
    let stats = steps.step(plan.step);
    let scheduled = plan.count as f64 / plan.rate;
    let achieved = p.published as f64 / p.seconds.max(scheduled).max(1e-9);
    let p99 = stats.latency.quantile_ms(0.99);
    let mut why = Vec::new();
    if p99 > P99_LIMIT_MS {
        why.push(format!("p99 {p99:.1} ms > {P99_LIMIT_MS} ms"));
    }
    if (received as f64) < expected as f64 * DELIVERED_MIN {
        why.push(format!("{received}/{expected} delivered"));
    }
    if achieved < plan.rate * ACHIEVED_MIN || p.errors > 0 {
        why.push(format!(
            "publisher reached {achieved:.0} of {:.0} msg/s, {} errors",
            plan.rate, p.errors
        ));
    }
    Ok(StepResult {
        offered: plan.rate,
        achieved,
        errors: p.errors,
        expected,
        received,
        deliveries_per_s: received as f64 / p.seconds.max(scheduled).max(1e-9),
        p50: stats.latency.quantile_ms(0.5),
        p99,
        violations: stats.violations.load(Ordering::Relaxed),
        why: why.join("; "),
        cdf_ms: stats.latency.cdf_ms(500),
    })
}

/// Ramps until a step is not sustained, then runs the half-load step. When the very first
/// step fails it halves the rate (up to three times) to find one that holds; a later
/// failed step is run again once at the same rate (at most twice per ramp), so a single
/// fsync stall on a shared machine does not end the ramp.
async fn ramp<P: Publisher>(
    name: &str,
    shape: &Shape,
    schedule: Ramp,
    steps: &Steps,
    publisher: &mut P,
) -> anyhow::Result<(Vec<StepResult>, Option<StepResult>, Option<StepResult>)> {
    let mut results: Vec<StepResult> = Vec::new();
    let mut first = 0u64;
    let mut rate = schedule.start;
    let max_steps = schedule.max_steps.min(MAX_STEPS - 1);
    let (mut down, mut retries, mut retried) = (0, 0, false);
    for i in 0..max_steps {
        let count = (rate * schedule.step_seconds).round().max(1.0) as u64;
        let r = step(
            shape,
            steps,
            publisher,
            Plan {
                step: i,
                first,
                count,
                rate,
            },
        )
        .await?;
        eprintln!("    {name} step {i}: {}", r.describe());
        first += count;
        let passed = r.passed();
        results.push(r);
        let none_yet = !results.iter().any(StepResult::passed);
        if passed {
            rate *= schedule.growth;
            retried = false;
        } else if none_yet && down < 3 {
            down += 1;
            rate /= 2.0;
        } else if !none_yet && retries < 2 && !retried {
            retries += 1;
            retried = true;
        } else {
            break;
        }
    }
    let best = results
        .iter()
        .filter(|r| r.passed())
        .max_by(|a, b| a.deliveries_per_s.total_cmp(&b.deliveries_per_s))
        .cloned();
    let half = match &best {
        Some(b) => {
            let rate = b.offered / 2.0;
            let count = (rate * schedule.step_seconds).round().max(1.0) as u64;
            let plan = Plan {
                step: max_steps,
                first,
                count,
                rate,
            };
            let r = step(shape, steps, publisher, plan).await?;
            eprintln!("    {name} half-load step: {}", r.describe());
            Some(r)
        }
        None => None,
    };
    Ok((results, best, half))
}

/// One side of the run, once its server is up: opens every connection through `open`
/// (a task per connection that counts through its [`Slot`] and returns its tally when
/// stopped), reads the server's RSS (`pid`) before and after, ramps with `publisher`,
/// stops the connections and adds up.
pub async fn drive<O, Fut, P>(
    name: &str,
    shape: Shape,
    schedule: Ramp,
    pid: u32,
    open: O,
    mut publisher: P,
) -> anyhow::Result<Outcome>
where
    O: Fn(Slot) -> Fut,
    Fut: Future<Output = Tally> + Send + 'static,
    P: Publisher,
{
    let before = rss_bytes(pid);
    let steps = Arc::new(Steps::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready_tx, mut ready_rx) = mpsc::channel(shape.connections.max(1));
    let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let started = Instant::now();
    let tasks: Vec<_> = (0..shape.connections)
        .map(|index| {
            tokio::spawn(open(Slot {
                index,
                steps: steps.clone(),
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
        "  {name}: {} connections open in {connect_s:.1} s (RSS/conn {}); ramping ({})",
        shape.connections,
        rss_per_conn
            .map(|b| format!("{:.1} KiB", b / 1024.0))
            .unwrap_or_else(|| "unknown".into()),
        shape.describe()
    );
    let ramped = ramp(name, &shape, schedule, &steps, &mut publisher).await;
    let _ = stop_tx.send(true);
    let mut tallies = Vec::with_capacity(tasks.len());
    for t in tasks {
        tallies.push(t.await?);
    }
    let (steps_run, best, half) = ramped?;
    Ok(Outcome {
        connections: shape.connections,
        connect_s,
        rss_per_conn,
        steps: steps_run,
        best,
        half,
        closed_early: tallies.iter().filter(|t| t.closed_early).count(),
        wrong_rooms: tallies.iter().filter(|t| t.wrong_rooms).count(),
        unreadable: steps.unreadable.load(Ordering::Relaxed),
    })
}

/// Sleeps until [`now_ns`] reaches `due`.
pub async fn sleep_until_ns(due: u64) {
    let now = now_ns();
    if due > now {
        tokio::time::sleep(Duration::from_nanos(due - now)).await;
    }
}

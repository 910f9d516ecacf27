//! What the receivers saw, per ramp step: deliveries, deliveries a connection may not see,
//! and a latency histogram, all atomic counters shared by every connection task (a
//! delivery costs a few relaxed adds, no allocation, no lock). Also what each connection
//! reports when it stops.

use super::shape::{now_ns, Shape, Stamp, Target};
use std::sync::atomic::{AtomicU64, Ordering};

/// Most ramp steps a run may take (the half-load step included).
pub const MAX_STEPS: usize = 40;
/// Histogram buckets: exact below 64 µs, then 32 per power of two (about 3%).
const BUCKETS: usize = 64 + 32 * 34;

/// A latency histogram in microseconds, shared by all receivers.
pub struct Histogram {
    buckets: Vec<AtomicU64>,
}

fn index(us: u64) -> usize {
    if us < 64 {
        return us as usize;
    }
    let e = 63 - us.leading_zeros() as usize; // >= 6
    let sub = ((us >> (e - 5)) & 31) as usize;
    (64 + (e - 6) * 32 + sub).min(BUCKETS - 1)
}

/// The upper edge of bucket `i`, µs.
fn upper(i: usize) -> f64 {
    if i < 64 {
        return (i + 1) as f64;
    }
    let e = (i - 64) / 32 + 6;
    let sub = (i - 64) % 32;
    ((32 + sub + 1) as f64) * (1u64 << (e - 5)) as f64
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Histogram {
    /// Counts one sample.
    pub fn record(&self, us: u64) {
        self.buckets[index(us)].fetch_add(1, Ordering::Relaxed);
    }

    fn counts(&self) -> Vec<u64> {
        self.buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect()
    }

    /// The `p` quantile (0..=1) in milliseconds (a bucket's upper edge: never flattering);
    /// 0 when empty.
    pub fn quantile_ms(&self, p: f64) -> f64 {
        quantile(&self.counts(), p)
    }

    /// `points` evenly spaced quantiles, ms, for a CDF chart.
    pub fn cdf_ms(&self, points: usize) -> Vec<f64> {
        let counts = self.counts();
        if counts.iter().all(|c| *c == 0) {
            return Vec::new();
        }
        (0..points)
            .map(|i| quantile(&counts, i as f64 / (points.max(2) - 1) as f64))
            .collect()
    }
}

fn quantile(counts: &[u64], p: f64) -> f64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let rank = ((total as f64 * p.clamp(0.0, 1.0)).ceil() as u64).max(1);
    let mut seen = 0;
    for (i, c) in counts.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return upper(i) / 1000.0;
        }
    }
    upper(counts.len() - 1) / 1000.0
}

/// The counters of one ramp step.
#[derive(Default)]
pub struct StepStats {
    /// Deliveries of this step's messages.
    pub received: AtomicU64,
    /// Deliveries a connection may not see (wrong room, or a message for another room).
    pub violations: AtomicU64,
    /// Publish-to-receive latency.
    pub latency: Histogram,
}

/// Every step's counters, plus frames nobody could read.
pub struct Steps {
    steps: Vec<StepStats>,
    /// Frames that were neither a run message nor a known control frame.
    pub unreadable: AtomicU64,
    /// Deliveries of any step (for draining).
    pub total: AtomicU64,
}

impl Default for Steps {
    fn default() -> Self {
        Self {
            steps: (0..MAX_STEPS).map(|_| StepStats::default()).collect(),
            unreadable: AtomicU64::new(0),
            total: AtomicU64::new(0),
        }
    }
}

impl Steps {
    /// Step `i`'s counters (the last one for an out-of-range step).
    pub fn step(&self, i: usize) -> &StepStats {
        &self.steps[i.min(MAX_STEPS - 1)]
    }

    /// Records a delivery to connection `conn` of a message the frame says was sent to
    /// `room` (None: a room not in the shape).
    pub fn delivery(&self, shape: &Shape, conn: usize, room: Option<Target>, stamp: Stamp) {
        let now = now_ns();
        let step = self.step(stamp.step);
        let target = shape.target(stamp.k);
        if room != Some(target) || !shape.may_see(conn, target) {
            step.violations.fetch_add(1, Ordering::Relaxed);
        }
        step.received.fetch_add(1, Ordering::Relaxed);
        step.latency
            .record(now.saturating_sub(stamp.sent_ns) / 1000);
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a frame nobody could read.
    pub fn unreadable(&self) {
        self.unreadable.fetch_add(1, Ordering::Relaxed);
    }
}

/// What one connection reports when it stops.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    /// Closed by the server (or failed) before the run ended.
    pub closed_early: bool,
    /// Its hello named rooms other than its own (latchkey only).
    pub wrong_rooms: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_close_and_never_low() {
        let h = Histogram::default();
        for us in 1..=10_000u64 {
            h.record(us);
        }
        let p50 = h.quantile_ms(0.5);
        let p99 = h.quantile_ms(0.99);
        assert!((5.0..5.2).contains(&p50), "{p50}");
        assert!((9.9..10.3).contains(&p99), "{p99}");
        assert_eq!(Histogram::default().quantile_ms(0.99), 0.0);
        assert_eq!(h.cdf_ms(5).len(), 5);
        for us in [0u64, 63, 64, 65, 1000, 1 << 30, u64::MAX] {
            assert!(upper(index(us)) >= us.min(1 << 39) as f64, "{us}");
        }
    }

    #[test]
    fn deliveries_outside_the_connections_rooms_are_violations() {
        let s = Shape::personal_rooms(20);
        let steps = Steps::default();
        let stamp = |k| Stamp {
            k,
            step: 1,
            sent_ns: now_ns(),
        };
        // Message 0 goes to group 0: connection 3 may see it, connection 13 may not.
        steps.delivery(&s, 3, Some(Target::Group(0)), stamp(0));
        steps.delivery(&s, 13, Some(Target::Group(0)), stamp(0));
        // A frame that names a different room than the message was sent to.
        steps.delivery(&s, 3, Some(Target::Personal(3)), stamp(0));
        let one = steps.step(1);
        assert_eq!(one.received.load(Ordering::Relaxed), 3);
        assert_eq!(one.violations.load(Ordering::Relaxed), 2);
    }
}

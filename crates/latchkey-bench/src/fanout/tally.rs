//! What each connection saw (deliveries, latencies, and deliveries it may not see), and
//! the figures of one side added up from every connection.

use super::shape::{now_ns, parse_body, Shape, Target};
use crate::stats::{summarize, thin, Summary};

/// What one connection saw.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Messages of this run received.
    pub received: u64,
    /// Publish-to-receive latency of each, microseconds.
    pub latencies_us: Vec<u32>,
    /// Deliveries this connection may not see (wrong room, or a message for another room).
    pub violations: u64,
    /// Frames that were neither a run message nor a known control frame.
    pub unexpected: u64,
    /// Closed by the server before the run ended.
    pub closed_early: bool,
    /// When the last message arrived ([`now_ns`]).
    pub last_ns: u64,
}

impl Tally {
    /// Records a message frame for connection `conn`, sent to `room` (None: a room that is
    /// not in the shape) with `body`.
    pub fn message(&mut self, shape: &Shape, conn: usize, room: Option<Target>, body: &str) {
        let now = now_ns();
        let Some((k, sent)) = parse_body(body) else {
            self.unexpected += 1;
            return;
        };
        let target = shape.target(k);
        if room != Some(target) || !shape.rooms_of(conn).contains(&target) {
            self.violations += 1;
        }
        self.received += 1;
        self.last_ns = now;
        let us = now.saturating_sub(sent) / 1000;
        self.latencies_us.push(us.min(u64::from(u32::MAX)) as u32);
    }

    /// Records a non-message room event (e.g. a join) for connection `conn`.
    pub fn room_event(&mut self, shape: &Shape, conn: usize, room: Option<Target>) {
        if !room.is_some_and(|r| shape.rooms_of(conn).contains(&r)) {
            self.violations += 1;
        }
    }
}

/// The figures of one side.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Connections that were open when publishing started.
    pub connections: usize,
    /// Seconds to open them all.
    pub connect_s: f64,
    /// Server RSS growth per connection, bytes.
    pub rss_per_conn: Option<f64>,
    /// Messages published.
    pub published: u64,
    /// Publish errors.
    pub publish_errors: u64,
    /// Achieved publish rate.
    pub publish_rate: f64,
    /// Deliveries a complete run makes.
    pub expected: u64,
    /// Deliveries received.
    pub received: u64,
    /// Deliveries a connection may not see.
    pub violations: u64,
    /// Unreadable frames.
    pub unexpected: u64,
    /// Connections the server closed during the run.
    pub closed_early: usize,
    /// Deliveries/s over the run (first publish to last delivery).
    pub deliveries_per_s: f64,
    /// Publish-to-receive latency.
    pub latency: Summary,
    /// The sorted latencies, ms (thinned), for the CDF chart.
    pub cdf_ms: Vec<f64>,
}

impl Outcome {
    /// Adds up the tallies of every connection.
    pub fn from_tallies(
        tallies: Vec<Tally>,
        connect_s: f64,
        rss_per_conn: Option<f64>,
        expected: u64,
        (published, publish_errors, publish_s, start_ns): (u64, u64, f64, u64),
    ) -> Self {
        let connections = tallies.len();
        let mut lat: Vec<f64> = tallies
            .iter()
            .flat_map(|t| t.latencies_us.iter().map(|u| f64::from(*u) / 1000.0))
            .collect();
        let received = tallies.iter().map(|t| t.received).sum();
        let last = tallies.iter().map(|t| t.last_ns).max().unwrap_or(0);
        let window = (last.saturating_sub(start_ns) as f64 / 1e9)
            .max(publish_s)
            .max(1e-9);
        let latency = summarize(&mut lat);
        Self {
            connections,
            connect_s,
            rss_per_conn,
            published,
            publish_errors,
            publish_rate: published as f64 / publish_s.max(1e-9),
            expected,
            received,
            violations: tallies.iter().map(|t| t.violations).sum(),
            unexpected: tallies.iter().map(|t| t.unexpected).sum(),
            closed_early: tallies.iter().filter(|t| t.closed_early).count(),
            deliveries_per_s: received as f64 / window,
            latency,
            cdf_ms: thin(&lat, 2000),
        }
    }

    /// One line for the log.
    pub fn describe(&self, name: &str) -> String {
        format!(
            "{name}: {} conns in {:.1} s, published {} ({:.0}/s, {} errors), received {}/{} \
             deliveries ({:.0}/s), latency p50 {:.2} ms p99 {:.2} ms max {:.2} ms, \
             {} violations, {} unexpected frames, {} closed early, RSS/conn {}",
            self.connections,
            self.connect_s,
            self.published,
            self.publish_rate,
            self.publish_errors,
            self.received,
            self.expected,
            self.deliveries_per_s,
            self.latency.p50,
            self.latency.p99,
            self.latency.max,
            self.violations,
            self.unexpected,
            self.closed_early,
            self.rss_per_conn
                .map(|b| format!("{:.1} KiB", b / 1024.0))
                .unwrap_or_else(|| "unknown".into()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::shape::body;

    #[test]
    fn tally_flags_deliveries_outside_the_connections_rooms() {
        let s = Shape {
            connections: 20,
            rate: 10.0,
            seconds: 1.0,
        };
        let mut t = Tally::default();
        // Message 0 goes to group 0: connection 3 may see it, connection 13 may not.
        t.message(&s, 3, Some(Target::Group(0)), &body(0, now_ns()));
        assert_eq!((t.received, t.violations), (1, 0));
        t.message(&s, 13, Some(Target::Group(0)), &body(0, now_ns()));
        assert_eq!(t.violations, 1);
        // A frame that names a different room than the message was sent to.
        t.message(&s, 3, Some(Target::Personal(3)), &body(0, now_ns()));
        assert_eq!(t.violations, 2);
        t.room_event(&s, 3, Some(Target::Personal(4)));
        assert_eq!(t.violations, 3);
    }
}

//! Fanout capacity: the most deliveries/s each server sustains, latchkey against
//! `nats-server` over its WebSocket listener, with the same client, in two shapes:
//! (a) each connection in a personal room plus one room of ten (half the messages to each
//! kind), (b) every connection in one room. The offered message rate ramps step by step
//! until p99 > 50 ms, deliveries < 99.9% or the publisher cannot keep up; the best
//! sustained step is the maximum, and one more step at half its rate gives the p99 a
//! user would see at half load. Shape (a)'s connect phase also gives the server RSS per
//! idle connection.
//!
//! This module adds the figures to the report; the submodules below own the shape, the
//! counters and the ramp. The drivers (`ours`, `nats`) own their protocol and their
//! server, and nothing else. Every delivery is checked: the message's number names the
//! room it was published to, which must be the room the frame says and one of the
//! connection's rooms.
//!
//! # Layout
//! - `shape`: rooms, message targets, bodies (stamped at fixed offsets).
//! - `tally`: per-step atomic counters and latency histograms.
//! - `drive`: connecting, the ramp, draining each step.
//! - `ours`: latchkey (REST posts, WebSocket frames); `nats`: nats-server.

mod drive;
pub mod nats;
pub mod ours;
mod shape;
mod tally;

pub use drive::{drive, Outcome, Ramp, Slot};
pub use shape::{Shape, Target};
pub use tally::Tally;

use crate::report::{Better, Check, Headline, Op, Report};
use std::path::Path;

/// The sizes of the fanout scenario.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Connections of shape (a) (also the RSS figure).
    pub connections: usize,
    /// Connections of shape (b), all in one room.
    pub room_connections: usize,
    /// Seconds each ramp step publishes.
    pub step_seconds: f64,
}

/// Limit of the p99 at half the maximum load, ms.
const HALF_P99_MS: f64 = 20.0;
/// RSS per idle connection target, KiB.
const RSS_KIB: f64 = 12.0;

/// The two shapes and their ramps: (a) starts at 100 msg/s (550 deliveries/s), (b) at
/// 5 msg/s (5 x connections deliveries/s); each step offers 1.5 times the last.
pub(crate) fn shapes(s: &Settings) -> [(Shape, Ramp); 2] {
    let ramp = |start| Ramp {
        start,
        growth: 1.5,
        step_seconds: s.step_seconds,
        max_steps: 24,
    };
    [
        (Shape::personal_rooms(s.connections), ramp(100.0)),
        (Shape::one_room(s.room_connections), ramp(5.0)),
    ]
}

/// The peer's side, or `None` with a note saying why it is missing.
fn run_nats(shape: Shape, ramp: Ramp, report: &mut Report) -> Option<Outcome> {
    let Some(program) = nats::program() else {
        report.note(
            "fanout: nats-server skipped, it is not installed (scripts/bench.sh installs \
             Debian's package with apt-get)",
        );
        return None;
    };
    match nats::run(shape, ramp, &program) {
        Ok(o) => Some(o),
        Err(e) => {
            report.note(format!("fanout: nats-server run failed: {e:#}"));
            None
        }
    }
}

/// The notes of one side: every step, and the correctness checks.
fn notes(report: &mut Report, who: &str, shape: &Shape, o: &Outcome) {
    let steps: Vec<String> = o.steps.iter().map(|s| s.brief()).collect();
    report.note(format!(
        "fanout {who}, {}: {} connections opened in {:.1} s; ramp (offered -> delivered): \
         {}; half load: {}",
        shape.describe(),
        o.connections,
        o.connect_s,
        steps.join(", "),
        o.half
            .as_ref()
            .map(|h| h.describe())
            .unwrap_or_else(|| "not run (no sustained step)".into())
    ));
    let pass =
        o.violations() == 0 && o.unreadable == 0 && o.closed_early == 0 && o.wrong_rooms == 0;
    report.note(format!(
        "fanout {who}, {}: {} deliveries a connection may not see, {} unreadable frames, {} \
         connections closed early, {} hellos with wrong rooms{}",
        shape.describe(),
        o.violations(),
        o.unreadable,
        o.closed_early,
        o.wrong_rooms,
        if pass { " (pass)" } else { " (FAIL)" }
    ));
}

/// Supporting rows of one shape.
fn rows(report: &mut Report, shape: &Shape, ours: &Outcome, peer: Option<&Outcome>) {
    let name = "nats-server over WebSocket";
    let d = shape.describe();
    report.push(
        &format!("fanout max sustained deliveries/s ({d})"),
        ours.max(),
        name,
        peer.map(Outcome::max),
        "per s",
        Better::Higher,
    );
    report.push(
        &format!("fanout max sustained messages/s offered ({d})"),
        ours.best.as_ref().map_or(0.0, |b| b.offered),
        name,
        peer.and_then(|p| p.best.as_ref()).map(|b| b.offered),
        "msg/s",
        Better::Higher,
    );
    for (label, pick) in [
        (
            "p50",
            (|s: &drive::StepResult| s.p50) as fn(&drive::StepResult) -> f64,
        ),
        ("p99", |s| s.p99),
    ] {
        if let Some(h) = &ours.half {
            report.push(
                &format!("fanout publish-to-receive {label} at half max load ({d})"),
                pick(h),
                &format!("{name}, at its half max load"),
                peer.and_then(|p| p.half.as_ref()).map(pick),
                "ms",
                Better::Lower,
            );
        }
    }
}

/// Runs both shapes against latchkey and (with `peer`) nats-server; adds the rows.
pub fn run(settings: Settings, bin: &Path, peer: bool, report: &mut Report) -> anyhow::Result<()> {
    let mut results = Vec::new();
    for (shape, ramp) in shapes(&settings) {
        eprintln!(
            "fanout: {}, ramp from {} msg/s",
            shape.describe(),
            ramp.start
        );
        let ours = ours::run(shape, ramp, bin)?;
        let theirs = if peer {
            run_nats(shape, ramp, report)
        } else {
            None
        };
        notes(report, "latchkey", &shape, &ours);
        if let Some(t) = &theirs {
            notes(report, "nats-server", &shape, t);
        }
        rows(report, &shape, &ours, theirs.as_ref());
        if !shape.personal {
            report.baseline("fanout_one_room", ours.max());
        }
        if let Some(h) = &ours.half {
            report.distribution(&format!("latchkey, {}", shape.describe()), h.cdf_ms.clone());
        }
        if let Some(h) = theirs.as_ref().and_then(|t| t.half.as_ref()) {
            report.distribution(
                &format!("nats-server, {}", shape.describe()),
                h.cdf_ms.clone(),
            );
        }
        results.push((shape, ours, theirs));
    }
    headlines(report, &settings, &results);
    report.note(
        "fanout: latchkey makes each post durable (fsync) and checks membership per \
         delivery; core NATS keeps nothing and checks nothing per message.",
    );
    Ok(())
}

/// The fanout and RSS headline rows.
fn headlines(report: &mut Report, s: &Settings, results: &[(Shape, Outcome, Option<Outcome>)]) {
    let mut checks = Vec::new();
    for (shape, ours, theirs) in results {
        let tag = if shape.personal { "(a)" } else { "(b)" };
        let ratio = theirs
            .as_ref()
            .filter(|t| t.max() > 0.0)
            .map(|t| ours.max() / t.max());
        checks.push(Check::new(&format!("ratio {tag}"), ratio, Op::AtLeast, 1.0));
        checks.push(Check::new(
            &format!("p99 ms at half load {tag}"),
            ours.half.as_ref().map(|h| h.p99),
            Op::Below,
            HALF_P99_MS,
        ));
    }
    let Some((a, ours_a, theirs_a)) = results.first() else {
        return;
    };
    let b = results
        .get(1)
        .map(|(b, ..)| b.describe())
        .unwrap_or_default();
    report.headline(Headline {
        id: "fanout_max_vs_nats",
        figure: format!(
            "fanout max sustained deliveries/s, shape (a): {}",
            a.describe()
        ),
        ours: Some(ours_a.max()),
        unit: "deliveries/s".into(),
        reference_name: "nats-server over WebSocket, same client".into(),
        reference: theirs_a.as_ref().map(Outcome::max),
        better: Better::Higher,
        checks,
        includes: format!(
            "one client process: every WebSocket a task on one 2-thread tokio runtime, \
             reading each frame with byte searches (room id, and the body's number, step \
             and send time at fixed offsets), counting into shared atomic histograms; no \
             JSON parse per frame. Shapes: (a) {} ; (b) {b}. The offered rate starts at \
             100 msg/s (a) or 5 msg/s (b) and grows 1.5x per {} s step until p99 > 50 ms, \
             deliveries < 99.9% or the publisher reaches < 95% of the offered rate (a failed \
             step is run once more at the same rate, at most twice per ramp); the figure is the best sustained step's deliveries/s, then one step at half that \
             rate gives the p99. latchkey: real server (`--no-rate-limit`, one actix worker \
             per core), messages posted over REST by up to {} concurrent keep-alive posters \
             (each post fsynced and projected before its answer). nats-server: Debian's \
             package, WebSocket listener without TLS, messages `PUB`lished over one TCP \
             connection. The ratio and the checks cover both shapes; the row shows (a).",
            a.describe(),
            s.step_seconds,
            ours::PUBLISHERS
        ),
    });
    rss_headline(report, a, ours_a, theirs_a.as_ref());
}

/// The RSS per idle connection row, from shape (a)'s connect phase.
fn rss_headline(report: &mut Report, a: &Shape, ours_a: &Outcome, theirs_a: Option<&Outcome>) {
    let nats_rss = theirs_a.and_then(|t| t.rss_per_conn).map(|b| b / 1024.0);
    let ours_rss = ours_a.rss_per_conn.map(|b| b / 1024.0);
    report.headline(Headline {
        id: "rss_per_idle_conn_kib",
        figure: format!(
            "server RSS per idle WebSocket, {} connections",
            a.connections
        ),
        ours: ours_rss,
        unit: "KiB".into(),
        reference_name: if nats_rss.is_some() {
            "nats-server's RSS per idle WebSocket, same connections".into()
        } else {
            "the 12 KiB ceiling (nats-server not measured)".into()
        },
        reference: nats_rss.or(Some(RSS_KIB)),
        better: Better::Lower,
        checks: vec![Check::new(
            "KiB per connection",
            ours_rss,
            Op::AtMost,
            RSS_KIB,
        )],
        includes: format!(
            "the server's VmRSS after opening {} authenticated WebSockets (shape (a), each \
             subscribed to its rooms, 128 handshakes at a time, 0.5 s to settle) minus \
             VmRSS before, divided by the connections; no messages yet. The reference is \
             nats-server's figure measured the same way in the same run; the target is \
             <= 12 KiB.",
            a.connections
        ),
    });
}

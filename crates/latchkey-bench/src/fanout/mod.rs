//! Fanout, Centrifugo's shape scaled down: C WebSocket connections, each user in a personal
//! room (only themselves) and in one room of ten; 100-byte messages published at a fixed
//! rate, alternating between the group rooms and the personal rooms. Measured the same way
//! against latchkey (`ours`) and against `nats-server` over its WebSocket listener (`nats`).
//!
//! This module adds the figures to the report; the submodules below own the shape, the
//! per-connection checks and the schedule. The drivers (`ours`, `nats`) own their protocol
//! and their server, and nothing else.
//!
//! Every connection checks each delivery: the message's number names the room it was
//! published to, which must be the room the frame says and one of the connection's two.
//!
//! # Layout
//! - `shape`: rooms, message targets, bodies.
//! - `tally`: per-connection checks and the added-up figures.
//! - `drive`: connecting, publishing on schedule, draining.
//! - `ours`: latchkey (REST posts, WebSocket frames); `nats`: nats-server.

mod drive;
pub mod nats;
pub mod ours;
mod shape;
mod tally;

pub use drive::{drive, publish, Slot};
pub use shape::{Shape, Target, BODY_LEN, GROUP};
pub use tally::{Outcome, Tally};

use crate::report::{Better, Report};
use crate::stats::Summary;
use std::path::Path;

/// Adds the fanout rows: ours against the peer when there is one.
pub fn add_rows(report: &mut Report, shape: &Shape, ours: &Outcome, peer: Option<&Outcome>) {
    let name = "nats-server over WebSocket";
    let c = shape.connections;
    report.push(
        &format!("fanout deliveries/s ({c} conns, {:.0} msg/s)", shape.rate),
        ours.deliveries_per_s,
        name,
        peer.map(|p| p.deliveries_per_s),
        "per s",
        Better::Higher,
    );
    for (label, get) in [
        ("p50", (|s: &Summary| s.p50) as fn(&Summary) -> f64),
        ("p99", |s| s.p99),
        ("max", |s| s.max),
    ] {
        report.push(
            &format!("fanout publish-to-receive {label} ({c} conns)"),
            get(&ours.latency),
            name,
            peer.map(|p| get(&p.latency)),
            "ms",
            Better::Lower,
        );
    }
    if let Some(rss) = ours.rss_per_conn {
        report.push(
            &format!("fanout server RSS per connection ({c} conns)"),
            rss / 1024.0,
            name,
            peer.and_then(|p| p.rss_per_conn).map(|b| b / 1024.0),
            "KiB",
            Better::Lower,
        );
    }
    report.push(
        &format!("fanout deliveries received / expected ({c} conns)"),
        ours.received as f64 / ours.expected.max(1) as f64,
        name,
        peer.map(|p| p.received as f64 / p.expected.max(1) as f64),
        "fraction",
        Better::Higher,
    );
    report.distribution("latchkey", ours.cdf_ms.clone());
    if let Some(p) = peer {
        report.distribution("nats-server", p.cdf_ms.clone());
    }
    let check = |o: &Outcome, who: &str| {
        let pass = o.violations == 0 && o.received == o.expected && o.closed_early == 0;
        format!(
            "fanout {who}: {} published ({} errors, {:.0}/s achieved); {}/{} deliveries; \
             visibility check: {} deliveries a connection may not see; {} unreadable frames; \
             {} connections closed early{}",
            o.published,
            o.publish_errors,
            o.publish_rate,
            o.received,
            o.expected,
            o.violations,
            o.unexpected,
            o.closed_early,
            if pass { " (pass)" } else { " (FAIL)" }
        )
    };
    report.note(check(ours, "latchkey"));
    if let Some(p) = peer {
        report.note(check(p, "nats-server"));
    }
}

/// Runs the shape against latchkey and, with `peer`, against nats-server; adds the rows.
pub fn run(shape: Shape, bin: &Path, peer: bool, report: &mut Report) -> anyhow::Result<()> {
    eprintln!(
        "fanout: {} connections (personal room + a room of {GROUP} each), {:.0} msg/s of \
         {BODY_LEN} bytes for {:.0} s, {} deliveries expected",
        shape.connections,
        shape.rate,
        shape.seconds,
        shape.expected()
    );
    let ours = ours::run(shape, bin)?;
    eprintln!("  {}", ours.describe("latchkey"));
    let theirs = if peer { run_nats(shape, report) } else { None };
    add_rows(report, &shape, &ours, theirs.as_ref());
    if theirs.is_some() {
        report.note(
            "fanout: latchkey makes each post durable (fsync) and checks membership per \
             delivery; core NATS keeps nothing and checks nothing per message. The ratio is \
             the price of those guarantees, not a like-for-like race.",
        );
    }
    Ok(())
}

/// The peer's side, or `None` with a note saying why it is missing.
fn run_nats(shape: Shape, report: &mut Report) -> Option<Outcome> {
    let Some(program) = nats::program() else {
        report.note(
            "fanout-peer: skipped, `nats-server` is not installed (scripts/bench.sh installs \
             Debian's package with apt-get)",
        );
        return None;
    };
    match nats::run(shape, &program) {
        Ok(o) => {
            eprintln!("  {}", o.describe("nats-server"));
            Some(o)
        }
        Err(e) => {
            report.note(format!("fanout-peer: nats-server run failed: {e:#}"));
            None
        }
    }
}

/// Runs only the peer and reports its figures without a reference.
pub fn run_peer_only(shape: Shape, report: &mut Report) -> anyhow::Result<()> {
    let Some(o) = run_nats(shape, report) else {
        return Ok(());
    };
    let c = shape.connections;
    let none = "none (peer alone)";
    report.push(
        &format!("nats-server fanout deliveries/s ({c} conns)"),
        o.deliveries_per_s,
        none,
        None,
        "per s",
        Better::Higher,
    );
    report.push(
        &format!("nats-server fanout p50 ({c} conns)"),
        o.latency.p50,
        none,
        None,
        "ms",
        Better::Lower,
    );
    report.push(
        &format!("nats-server fanout p99 ({c} conns)"),
        o.latency.p99,
        none,
        None,
        "ms",
        Better::Lower,
    );
    if let Some(rss) = o.rss_per_conn {
        report.push(
            &format!("nats-server RSS per connection ({c} conns)"),
            rss / 1024.0,
            none,
            None,
            "KiB",
            Better::Lower,
        );
    }
    report.distribution("nats-server", o.cdf_ms);
    Ok(())
}

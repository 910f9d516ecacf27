//! The JetStream column (issue 17): durable appends/s, sign-ins/s and fanout on 1 and 2
//! latchkey nodes sharing one local `nats-server -js` (Debian's package), each measured by
//! the same driver as its sled figure and shown beside the sled figure of the same run
//! (kept by `append`, `login` and `fanout` as report baselines).
//!
//! - append: [`WRITERS`] tasks in this process on `NatsStore`s (one per node, each with its
//!   own copy in a temp dir), writer `w` on node `w % nodes`, each on its own entity.
//! - sign-in: the login scenario's clients; with 2 nodes half of them sign in on each.
//! - fanout: shape (b) (every connection in one room) with the same ramp; users, rooms and
//!   posts on node A, every WebSocket on A (1 node) or on B (2 nodes), so that with two
//!   nodes each delivery crosses JetStream.
//!
//! Every figure gets a fresh nats-server (a fresh stream) and fresh nodes.

use crate::append::{drive, one_append, WRITERS};
use crate::client::Identity;
use crate::fanout;
use crate::fanout::nats::Nats;
use crate::report::{Compared, Report, JETSTREAM_IDS};
use crate::server::Server;
use latchkey_domain::UserId;
use latchkey_store::{NatsOptions, NatsStore};
use std::path::Path;
use std::sync::Arc;
use uuid::Uuid;

/// A latchkey node on `nats`'s stream.
fn node(nats: &Nats, bin: &Path) -> anyhow::Result<Server> {
    Server::start(bin, &["--no-rate-limit", "--store", &nats.url()])
}

/// Appends/s of [`WRITERS`] tasks spread over `nodes` stores on one stream.
fn append(
    rt: &tokio::runtime::Runtime,
    nats: &Nats,
    nodes: usize,
    seconds: f64,
) -> anyhow::Result<f64> {
    let dirs = (0..nodes)
        .map(|_| tempfile::tempdir())
        .collect::<Result<Vec<_>, _>>()?;
    let stores = dirs
        .iter()
        .map(|d| {
            let opts = NatsOptions::new(&nats.url());
            NatsStore::open(d.path(), opts, Default::default()).map(Arc::new)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let streams: Arc<Vec<_>> = Arc::new(
        (0..WRITERS)
            .map(|_| UserId(Uuid::new_v4()).stream())
            .collect(),
    );
    let s = stores.clone();
    let (_, rate) = rt.block_on(drive(WRITERS, seconds, move |w, n| {
        one_append(s[w % s.len()].as_ref(), &streams[w], n)
    }))?;
    drop(stores);
    Ok(rate)
}

/// Sign-ins/s of `clients` clients spread over `nodes` nodes (each registered first on
/// the node it then signs in on).
fn signin(
    rt: &tokio::runtime::Runtime,
    bin: &Path,
    nats: &Nats,
    nodes: usize,
    clients: usize,
    seconds: f64,
) -> anyhow::Result<f64> {
    let servers = (0..nodes)
        .map(|_| node(nats, bin))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let ids = (0..nodes)
        .map(|k| {
            (0..clients)
                .filter(|i| i % nodes == k)
                .map(|_| Identity::generate())
                .collect::<anyhow::Result<Vec<_>>>()
                .map(Arc::new)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let all = |secs: f64| {
        rt.block_on(futures_util::future::join_all(
            servers
                .iter()
                .zip(&ids)
                .map(|(s, ids)| crate::login::load(s.url(), ids, secs)),
        ))
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()
    };
    let reg: u64 = all(0.0)?.iter().map(|r| r.errors).sum();
    anyhow::ensure!(reg == 0, "jetstream sign-in: {reg} registrations failed");
    let runs = all(seconds)?;
    let errors: u64 = runs.iter().map(|r| r.errors).sum();
    anyhow::ensure!(errors == 0, "jetstream sign-in: {errors} sign-ins failed");
    Ok(runs
        .iter()
        .map(|r| r.lat.len() as f64 / r.window.max(1e-9))
        .sum())
}

/// Fanout shape (b)'s max sustained deliveries/s and its p99 at half that load: posts on
/// node A, WebSockets on A (1 node) or B (2 nodes).
fn fanout(
    bin: &Path,
    nats: &Nats,
    nodes: usize,
    settings: &fanout::Settings,
) -> anyhow::Result<(f64, Option<f64>)> {
    let [_, (shape, ramp)] = fanout::shapes(settings);
    let a = node(nats, bin)?;
    let b = if nodes > 1 {
        Some(node(nats, bin)?)
    } else {
        None
    };
    let o = fanout::ours::run_at(shape, ramp, &a, b.as_ref().unwrap_or(&a))?;
    Ok((o.max(), o.half.as_ref().map(|h| h.p99)))
}

/// The id of figure `kind` (0 append, 1 sign-in, 2 fanout) on `nodes` nodes.
fn id(kind: usize, nodes: usize) -> &'static str {
    JETSTREAM_IDS[kind * 2 + usize::from(nodes > 1)]
}

/// `1 node` or `2 nodes`.
fn nodes_text(nodes: usize) -> String {
    if nodes == 1 {
        "1 node".into()
    } else {
        format!("{nodes} nodes")
    }
}

/// The sizes of the scenario.
pub struct Sizes {
    /// Seconds of the append measurement (sign-in takes at least 2).
    pub seconds: f64,
    /// Sign-in clients, spread over the nodes.
    pub clients: usize,
    /// The fanout sizes (shape (b) is used).
    pub fanout: fanout::Settings,
}

/// Runs the scenario: each figure on 1 then 2 nodes, each on a fresh nats-server.
pub fn run(sizes: Sizes, bin: &Path, report: &mut Report) -> anyhow::Result<()> {
    let Some(program) = fanout::nats::program() else {
        report.note(
            "jetstream: skipped, nats-server is not installed (scripts/bench.sh installs \
             Debian's package with apt-get)",
        );
        return Ok(());
    };
    let rt = fanout::ours::runtime()?;
    for nodes in [1, 2] {
        eprintln!(
            "jetstream: {} on one local nats-server -js",
            nodes_text(nodes)
        );
        let rate = append(&rt, &Nats::start_jetstream(&program)?, nodes, sizes.seconds)?;
        add_append(report, nodes, rate, sizes.seconds);
        let (clients, secs) = (sizes.clients.max(2), sizes.seconds.max(2.0));
        let rate = signin(
            &rt,
            bin,
            &Nats::start_jetstream(&program)?,
            nodes,
            clients,
            secs,
        )?;
        add_signin(report, nodes, rate, clients, secs);
        let (max, half_p99) = fanout(bin, &Nats::start_jetstream(&program)?, nodes, &sizes.fanout)?;
        if let Some(p99) = half_p99 {
            report.note(format!(
                "jetstream fanout, {}: p99 publish-to-receive at half the max load {p99:.1} ms",
                nodes_text(nodes)
            ));
        }
        add_fanout(report, nodes, max, sizes.fanout.room_connections);
    }
    Ok(())
}

fn add_append(report: &mut Report, nodes: usize, rate: f64, seconds: f64) {
    report.compared(Compared {
        id: id(0, nodes),
        figure: format!(
            "durable appends/s, {WRITERS} writers, {}",
            nodes_text(nodes)
        ),
        jetstream: Some(rate),
        sled: report.baseline_of("append"),
        unit: "appends/s".into(),
        includes: format!(
            "the append scenario's driver ({WRITERS} tokio tasks in the bench process, each \
             awaiting one append to its own entity) on `NatsStore`s, one per node (writer w \
             on node w % {nodes}), for {seconds} s: each append publishes one message with \
             the expected-sequence and dedup headers, waits for JetStream's acknowledgement \
             (file storage, R1) and for the node's own copy to apply it. sled: \
             `append_64_vs_raw`'s journal figure."
        ),
    });
}

fn add_signin(report: &mut Report, nodes: usize, rate: f64, clients: usize, seconds: f64) {
    report.compared(Compared {
        id: id(1, nodes),
        figure: format!("sign-ins/s, {clients} clients, {}", nodes_text(nodes)),
        jetstream: Some(rate),
        sled: report.baseline_of("signin"),
        unit: "sign-ins/s".into(),
        includes: format!(
            "the login scenario's {clients} async clients (challenge + token in a closed \
             loop) against real `latchkey serve --store nats://...` nodes, {} per node, for \
             {seconds} s; the nodes and nats-server share the machine's cores with the \
             clients. sled: `signin_vs_verify_peer`'s latchkey figure.",
            clients / nodes
        ),
    });
}

fn add_fanout(report: &mut Report, nodes: usize, max: f64, connections: usize) {
    report.compared(Compared {
        id: id(2, nodes),
        figure: format!(
            "fanout max sustained deliveries/s, {connections} connections in one room, {}",
            nodes_text(nodes)
        ),
        jetstream: Some(max),
        sled: report.baseline_of("fanout_one_room"),
        unit: "deliveries/s".into(),
        includes: format!(
            "the fanout scenario's shape (b) ramp, same client, same limits; users, the room \
             and the REST posts on node A, every WebSocket on {}. sled: shape (b)'s latchkey \
             figure (supporting rows).",
            if nodes == 1 {
                "node A"
            } else {
                "node B (each delivery crosses JetStream)"
            }
        ),
    });
}

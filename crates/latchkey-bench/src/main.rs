//! # latchkey-bench
//!
//! Measures latchkey's capacity figures (issue 15's table), each beside its ceiling or a
//! peer measured in the same run on the same machine with the same client, and writes the
//! ratio, the target and whether it is met (`results.md`, `results.json`). Numbers are
//! never asserted; tests only check the parsing and arithmetic around them.
//!
//! # Layout
//! - `login`: sign-ins/s from 256 async clients vs the stateless verify peer
//!   (`signin_peer`, actix-web in the bench) and raw SSHSIG verifications/s.
//! - `authed`: bearer-authed `GET /api/native/ping` vs `GET /healthz`, driven by `wrk`.
//! - `append`: durable appends/s from 64 writer tasks, journal vs raw sled with the same
//!   driver (batch + flush + `sync_data` of whatever is waiting).
//! - `replay`: rebuilding every read model from the log vs a raw scan + decode.
//! - `fanout`: maximum sustained WebSocket deliveries/s by a rate ramp, latchkey
//!   (`fanout::ours`) vs nats-server over WebSocket (`fanout::nats`), two shapes, same
//!   client; RSS per idle connection.
//! - `jetstream`: append, sign-in and fanout on 1 and 2 latchkey nodes over a local
//!   `nats-server -js`, beside the sled figures of the same run (issue 17).
//! - `revoke`: from `DELETE /api/native/token` to the WS 4001 close and to the next 401.
//! - `crash`, `soak`: checks rather than figures (`scripts/crash.sh`, `scripts/soak.sh`):
//!   `kill -9` rounds under mixed load with every acknowledged write checked, and a steady
//!   load with WebSocket churn bounded in RSS growth and fds.
//! - `http1`: the minimal async keep-alive HTTP/1.1 client of the load scenarios.
//! - `client`: the blocking HTTP calls a user makes (sign-in with an in-process SSH key, rooms, posts).
//! - `server`: starts a real `latchkey serve` on a loopback port; finds other programs.
//! - `report`: the headline table (ours, reference, ratio, target, met), the supporting
//!   rows, notes, `results.md` and `results.json`.
//! - `chart`: PNG charts with an embedded font.
//! - `machine`: cores, memory, kernel, CPU, date, commit; a process's RSS.
//! - `stats`: percentiles.
//! - `perf`: optional `perf record` of the sign-in and append loads (`--flame-dir`).

mod append;
mod authed;
mod chart;
mod client;
mod crash;
mod fanout;
mod http1;
mod jetstream;
mod login;
mod machine;
mod perf;
mod replay;
mod report;
mod revoke;
mod server;
mod signin_peer;
mod sledmem;
mod soak;
mod stats;

use clap::{Parser, Subcommand};
use report::Report;
use std::path::PathBuf;
use std::time::Instant;

/// latchkey's benchmark harness.
#[derive(Parser, Debug)]
#[command(name = "latchkey-bench")]
struct Cli {
    /// The short run: smaller sizes and shorter measurements (`all` in under 3 minutes).
    #[arg(long, global = true)]
    quick: bool,
    /// Seconds each throughput measurement runs (default 3; quick 1).
    #[arg(long, global = true)]
    seconds: Option<f64>,
    /// The latchkey binary (default: next to this one).
    #[arg(long, global = true)]
    bin: Option<PathBuf>,
    /// Where results.md and the charts go. `all` writes to crates/latchkey-bench/results by
    /// default; a single scenario only prints unless this is given.
    #[arg(long, global = true)]
    out: Option<PathBuf>,
    /// Concurrent async sign-in clients (login).
    #[arg(long, global = true, default_value_t = 256)]
    clients: usize,
    /// wrk connections (authed).
    #[arg(long, global = true, default_value_t = 64)]
    wrk_connections: usize,
    /// Events in the replayed log (default 1,000,000; quick 100,000).
    #[arg(long, global = true)]
    events: Option<usize>,
    /// WebSocket connections of fanout shape (a) and the RSS figure (default 2,000;
    /// quick 500; scripts/bench.sh passes 10,000 when memory and open files allow).
    #[arg(long, global = true)]
    connections: Option<usize>,
    /// WebSocket connections of fanout shape (b), all in one room (default 1,000; quick 250).
    #[arg(long, global = true)]
    room_connections: Option<usize>,
    /// Seconds each fanout ramp step publishes (default 2.5; quick 1).
    #[arg(long, global = true)]
    step_seconds: Option<f64>,
    /// Record `perf` call graphs of the server during the sign-in load and of the journal
    /// during the append load into this directory (`scripts/bench.sh --flame`).
    #[arg(long, global = true)]
    flame_dir: Option<PathBuf>,
    /// Revocations timed (default 200; quick 50).
    #[arg(long, global = true)]
    revocations: Option<usize>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// Every scenario, then results.md and the charts.
    All,
    /// Sign-ins/s from async clients vs the stateless verify peer and raw verify.
    Login,
    /// Bearer-authed ping vs /healthz with wrk.
    Authed,
    /// Durable appends/s, 64 writer tasks, journal vs raw sled with the same driver.
    Append,
    /// Read-model rebuild events/s vs a raw scan + decode of the log.
    Replay,
    /// Fanout capacity ramps (two shapes): latchkey, then nats-server; RSS per connection.
    Fanout {
        /// Skip the nats-server side.
        #[arg(long)]
        no_peer: bool,
    },
    /// Time from token revocation to the WS 4001 close and to the next 401.
    Revoke,
    /// Append, sign-in and fanout on 1 and 2 nodes over a local nats-server -js, beside
    /// the sled figures of the same run (run after them: `all` does).
    Jetstream,
    /// Not a figure: kill -9 rounds under mixed load; every acknowledged write must
    /// survive, `admin verify` pass and `admin rebuild` find the read models identical.
    Crash {
        /// Kill -9 rounds.
        #[arg(long, default_value_t = 100)]
        rounds: usize,
        /// Concurrent load threads.
        #[arg(long, default_value_t = 4)]
        workers: usize,
        /// A clean stop and `admin rebuild` every this many rounds (and after the last).
        #[arg(long, default_value_t = 10)]
        rebuild_every: usize,
    },
    /// Not a figure: steady mixed load with WebSocket churn; RSS, fds and p99 each minute,
    /// failing on RSS growth over 10% after the warm-up or on an fd leak.
    Soak {
        /// Length of the run, in minutes.
        #[arg(long, default_value_t = 30)]
        minutes: u64,
        /// Warm-up minutes before the RSS baseline (default: 5 for runs of 20 minutes or
        /// more, 2 from 10 minutes, else 1).
        #[arg(long)]
        warmup: Option<u64>,
        /// The server's page cache in MiB (`serve --cache-mib`), small so that it fills
        /// during the warm-up.
        #[arg(long, default_value_t = 8)]
        cache_mib: u64,
        /// HTTP requests per second, over all workers.
        #[arg(long, default_value_t = 60)]
        request_rate: u64,
        /// Long-lived WebSocket connections receiving the fanout.
        #[arg(long, default_value_t = 16)]
        ws_pool: usize,
        /// WebSocket connect/subscribe/close cycles per second.
        #[arg(long, default_value_t = 4)]
        ws_churn: u64,
    },
    /// Not a figure: sled's resident memory per stored key with a small page cache, for
    /// sequential and random keys (what the soak's store growth is checked against).
    SledMemory {
        /// sled's page cache in MiB (the soak's default).
        #[arg(long, default_value_t = 8)]
        cache_mib: u64,
        /// One shape only, in this process (the scenario runs each in its own).
        #[arg(long)]
        shape: Option<sledmem::Shape>,
    },
}

/// The sizes of a run, with the quick/full defaults applied.
struct Settings {
    seconds: f64,
    events: usize,
    fanout: fanout::Settings,
    revocations: usize,
}

impl Settings {
    fn from(cli: &Cli) -> Self {
        let q = cli.quick;
        Self {
            seconds: cli.seconds.unwrap_or(if q { 1.0 } else { 3.0 }),
            events: cli.events.unwrap_or(if q { 100_000 } else { 1_000_000 }),
            fanout: fanout::Settings {
                connections: cli.connections.unwrap_or(if q { 500 } else { 2_000 }),
                room_connections: cli.room_connections.unwrap_or(if q { 250 } else { 1_000 }),
                step_seconds: cli.step_seconds.unwrap_or(if q { 1.0 } else { 2.5 }),
            },
            revocations: cli.revocations.unwrap_or(if q { 50 } else { 200 }),
        }
    }
}

/// Raises the open-file limit to its hard limit (thousands of sockets); the new limit.
fn raise_fd_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0)
}

fn run_one(scenario: Scenario, cli: &Cli, s: &Settings, report: &mut Report) -> anyhow::Result<()> {
    let bin = || server::latchkey_bin(cli.bin.clone());
    match scenario {
        Scenario::All => Ok(()),
        // At least 2 s a side: a sign-in takes up to a few hundred ms under load.
        Scenario::Login => login::run(
            s.seconds.max(2.0),
            cli.clients,
            &bin()?,
            cli.flame_dir.as_deref(),
            report,
        ),
        Scenario::Authed => authed::run(s.seconds.max(2.0), cli.wrk_connections, &bin()?, report),
        Scenario::Append => append::run(s.seconds, cli.flame_dir.as_deref(), report),
        Scenario::Replay => replay::run(s.events, report),
        Scenario::Fanout { no_peer } => fanout::run(s.fanout, &bin()?, !no_peer, report),
        Scenario::Revoke => revoke::run(s.revocations, &bin()?, report),
        Scenario::Jetstream => jetstream::run(
            jetstream::Sizes {
                seconds: s.seconds,
                clients: cli.clients,
                fanout: s.fanout,
            },
            &bin()?,
            report,
        ),
        Scenario::Crash { .. } | Scenario::Soak { .. } | Scenario::SledMemory { .. } => Ok(()),
    }
}

/// The command line without `--bin`/`--out` and their values (places, not parameters).
fn recorded_args() -> Vec<String> {
    let mut out = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bin" | "--out" | "--flame-dir" => {
                args.next();
            }
            _ if a.starts_with("--bin=")
                || a.starts_with("--out=")
                || a.starts_with("--flame-dir=") => {}
            _ => out.push(a),
        }
    }
    out
}

/// Runs `crash` or `soak`, the checks that report no figures; false for the others.
fn run_check(cli: &Cli) -> anyhow::Result<bool> {
    let bin = || server::latchkey_bin(cli.bin.clone());
    match cli.scenario {
        Scenario::Crash {
            rounds,
            workers,
            rebuild_every,
        } => crash::run(
            crash::Options {
                rounds,
                workers,
                rebuild_every,
            },
            &bin()?,
        )?,
        Scenario::Soak {
            minutes,
            warmup,
            request_rate,
            ws_pool,
            ws_churn,
            cache_mib,
        } => soak::run(
            soak::Options {
                minutes,
                warmup: warmup.unwrap_or(match minutes {
                    20.. => 5,
                    10.. => 2,
                    _ => 1,
                }),
                rate: request_rate as f64,
                ws_pool,
                ws_churn: ws_churn as f64,
                cache_mib,
            },
            &bin()?,
        )?,
        Scenario::SledMemory { cache_mib, shape } => match shape {
            Some(shape) => sledmem::run_shape(shape, cache_mib)?,
            None => sledmem::run(cache_mib)?,
        },
        _ => return Ok(false),
    }
    Ok(true)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    raise_fd_limit();
    if run_check(&cli)? {
        return Ok(());
    }
    let settings = Settings::from(&cli);
    let machine = machine::Machine::detect();
    let fds = raise_fd_limit();
    eprintln!(
        "machine: {} ({} cores, {:.1} GiB), kernel {}, commit {}; open files {fds}",
        machine.cpu, machine.cores, machine.memory_gib, machine.kernel, machine.commit
    );
    eprintln!(
        "the load generators and the server share these {} cores: absolute numbers are \
         understated, compare the ratios",
        machine.cores
    );
    // The client holds one socket per connection; the servers are other processes.
    let needed = settings.fanout.connections as u64 + 512;
    if fds < needed {
        eprintln!(
            "warning: {fds} open files may be too few for {needed} sockets; raise `ulimit -n`"
        );
    }
    let scenarios = match cli.scenario {
        Scenario::All => vec![
            Scenario::Login,
            Scenario::Authed,
            Scenario::Append,
            Scenario::Replay,
            Scenario::Fanout { no_peer: false },
            Scenario::Revoke,
            Scenario::Jetstream,
        ],
        one => vec![one],
    };
    let mut report = Report::new();
    let started = Instant::now();
    let mut failed = 0;
    for scenario in scenarios {
        let t = Instant::now();
        if let Err(e) = run_one(scenario, &cli, &settings, &mut report) {
            failed += 1;
            report.note(format!("{scenario:?} failed: {e:#}"));
        }
        eprintln!("  ({scenario:?} took {:.1} s)", t.elapsed().as_secs_f64());
    }
    report.note(format!(
        "load generators and server shared {} cores; the run took {:.0} s",
        machine.cores,
        started.elapsed().as_secs_f64()
    ));
    report.print();
    let out = cli.out.clone().or_else(|| {
        (cli.scenario == Scenario::All)
            .then(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/results")))
    });
    if let Some(dir) = out {
        let charts = chart::draw_all(&report, &dir)?;
        let command = format!("latchkey-bench {}", recorded_args().join(" "));
        report.write(&dir, &machine, &command, cli.quick, &charts)?;
        eprintln!(
            "wrote {}, results.json and {} charts",
            dir.join("results.md").display(),
            charts.len()
        );
    }
    anyhow::ensure!(failed == 0, "{failed} scenario(s) failed; see the notes");
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks the definition only when a subcommand is parsed; this checks all of them,
    /// so two flags of one name (a global and a subcommand's) fail here, not at run time.
    #[test]
    fn the_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn every_long_run_parses() {
        use clap::Parser;
        for args in [
            &["latchkey-bench", "soak", "--minutes", "3"][..],
            &[
                "latchkey-bench",
                "soak",
                "--minutes",
                "3",
                "--request-rate",
                "10",
            ],
            &["latchkey-bench", "crash", "--rounds", "2"],
            &["latchkey-bench", "all", "--quick", "--connections", "100"],
        ] {
            let parsed = super::Cli::try_parse_from(args);
            assert!(parsed.is_ok(), "{args:?}: {:?}", parsed.err());
        }
    }
}

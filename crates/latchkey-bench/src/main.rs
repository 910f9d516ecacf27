//! # latchkey-bench
//!
//! Measures latchkey's headline figures, each beside its ceiling or a peer measured in the
//! same run on the same machine, and prints the ratio. Numbers are never asserted.
//!
//! # Layout
//! - `append`: durable appends/s (journal, fsync before ack) vs raw sled batch + flush.
//! - `login`: challenge + token sign-ins/s over HTTP vs raw SSHSIG verifications/s.
//! - `report`: the table printed at the end (figure, ours, reference, ratio).
//! - `server`: starts a real `latchkey serve` on a loopback port for the HTTP scenarios.

mod append;
mod login;
mod report;
mod server;

use clap::{Parser, Subcommand};
use report::Report;

/// latchkey's benchmark harness.
#[derive(Parser, Debug)]
#[command(name = "latchkey-bench")]
struct Cli {
    /// Seconds each measurement runs.
    #[arg(long, default_value_t = 3.0, global = true)]
    seconds: f64,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// Durable appends/s with 1, 16 and 64 writers vs raw sled batch + flush.
    Append,
    /// Sign-ins/s over HTTP vs raw SSHSIG verifications/s.
    Login {
        /// Concurrent clients.
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// The latchkey binary (default: next to this one).
        #[arg(long)]
        bin: Option<std::path::PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut report = Report::new();
    eprintln!(
        "machine: {} cores; load generator and server share them: compare ratios, not absolute numbers",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    match cli.scenario {
        Scenario::Append => append::run(cli.seconds, &mut report)?,
        Scenario::Login { clients, bin } => login::run(cli.seconds, clients, bin, &mut report)?,
    }
    report.print();
    Ok(())
}

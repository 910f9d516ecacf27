//! # latchkey
//!
//! The one binary: `latchkey serve` runs the service, `latchkey admin ...` inspects and
//! verifies the event log.
//!
//! # Layout
//! - `tail`: a WebSocket subscriber that prints every event frame.
//! - `serve`: `latchkey serve` flags, handed to `latchkey-server`.
//! - `admin`: the admin commands on a data dir (offline).
//! - `output`: progress bars and summaries on stderr.

mod admin;
mod output;
mod serve;
mod tail;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// latchkey: SSH-key sign-in, rooms and live events for native chat clients.
#[derive(Parser, Debug)]
#[command(name = "latchkey", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the service.
    Serve(serve::ServeArgs),
    /// Inspect, verify and manage the event log.
    Admin(admin::AdminArgs),
    /// Subscribe over WebSocket and print every frame as a JSON line.
    Tail(tail::TailArgs),
    /// Print the OpenAPI document of the HTTP API (as served at /api/openapi.json).
    Openapi,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args).map(|()| ExitCode::SUCCESS),
        Command::Admin(args) => admin::run(args),
        Command::Tail(args) => tail::run(args),
        Command::Openapi => {
            println!("{}", latchkey_server::openapi::json());
            return ExitCode::SUCCESS;
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

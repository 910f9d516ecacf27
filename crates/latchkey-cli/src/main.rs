//! # latchkey
//!
//! The one binary: `latchkey serve` runs the service, `latchkey admin ...` inspects and
//! verifies the event log.
//!
//! # Layout
//! - `tail`: a WebSocket subscriber that prints every event frame.
//! - `serve`: `latchkey serve` flags, handed to `latchkey-server`.
//! - `admin`: the admin commands on a data dir (offline).
//! - `client`: the client commands (login, rooms, send, tokens, keys, device, ...).
//! - `output`: progress bars and summaries on stderr.

mod admin;
mod client;
mod output;
mod qr;
mod serve;
mod tail;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// jemalloc instead of glibc's malloc: under steady load glibc's arenas kept growing the
/// server's RSS while its live heap stayed flat (see `scripts/soak.sh`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    /// Sign in with an SSH key (a key file, or --agent) and store the session token.
    Login(client::session::LoginArgs),
    /// Revoke and forget the stored token.
    Logout(client::session::LogoutArgs),
    /// Show who the stored token belongs to.
    Whoami(client::session::WhoamiArgs),
    /// List, create, join and leave rooms.
    Rooms(client::chat::RoomsArgs),
    /// Post a message to a room.
    Send(client::chat::SendArgs),
    /// Show a room's messages.
    History(client::chat::HistoryArgs),
    /// List, create and revoke your tokens.
    Tokens(client::tokens::TokensArgs),
    /// List, add and remove your SSH keys.
    Keys(client::keys::KeysArgs),
    /// The device flow: sign a device in, or approve or deny one.
    Device(client::device::DeviceArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args).map(|()| ExitCode::SUCCESS),
        Command::Admin(args) => admin::run(args),
        Command::Tail(args) => tail::run(args),
        Command::Login(args) => client::session::login_cmd(args),
        Command::Logout(args) => client::session::logout_cmd(args),
        Command::Whoami(args) => client::session::whoami_cmd(args),
        Command::Rooms(args) => client::chat::rooms_cmd(args),
        Command::Send(args) => client::chat::send_cmd(args),
        Command::History(args) => client::chat::history_cmd(args),
        Command::Tokens(args) => client::tokens::tokens_cmd(args),
        Command::Keys(args) => client::keys::keys_cmd(args),
        Command::Device(args) => client::device::device_cmd(args),
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

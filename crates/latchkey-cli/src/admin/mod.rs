//! `latchkey admin`: the event log's tool, offline on a data dir (server stopped) or online
//! against `/api/admin/*` (`--server URL --token-file F`, an admin session token).
//!
//! With `--json`, stdout carries only JSON (JSON Lines for `log` and `export`); progress
//! bars and summaries go to stderr. Times are RFC 3339 with any offset.
//!
//! - `offline`: each command on a `SledStore`, through `latchkey_server::admin`.
//! - `online`: the same commands over HTTP.
//! - `print`: human and JSON output of the shared documents.
//! - `backup`: the online hot backup into a file.
//! - `pair`: pairing codes (`pair create|list|revoke`), online and offline.

mod backup;
mod jetstream;
mod offline;
mod online;
pub mod pair;
mod print;

use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Options shared by every admin command (before or after the command).
#[derive(Args, Debug)]
pub struct AdminArgs {
    /// The data dir of a stopped server.
    #[arg(
        long,
        global = true,
        env = "LATCHKEY_DATA_DIR",
        default_value = "./latchkey-data"
    )]
    data_dir: PathBuf,
    /// A running server (online form); needs --token-file.
    #[arg(long, global = true, env = "LATCHKEY_SERVER")]
    server: Option<String>,
    /// The JetStream log of a cluster (`nats://HOST:PORT[,...]`): the read commands run on
    /// a fresh copy of the stream, never on a node's data dir.
    #[arg(long, global = true, env = "LATCHKEY_STORE")]
    store: Option<String>,
    /// A file holding an admin session token (online form).
    #[arg(long, global = true, env = "LATCHKEY_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// Machine-readable output on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: TopCommand,
}

/// Every admin command: the log's tools, and pairing codes.
#[derive(Subcommand, Debug)]
pub enum TopCommand {
    /// The log's tools.
    #[command(flatten)]
    Log(AdminCommand),
    /// Mint, list or revoke one-time pairing codes for users' new devices.
    Pair {
        #[command(subcommand)]
        what: pair::PairWhat,
    },
}

/// The admin commands.
#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Print events, oldest first.
    Log(LogArgs),
    /// Print every event of one stream (`user/<uuid>` or a uuid).
    Stream {
        /// Stream name or uuid.
        id: String,
    },
    /// Build the read models as of a seq or a time into a separate dir (offline).
    Replay(ReplayArgs),
    /// A user's keys, tokens and rooms, now or at a time.
    State {
        #[command(subcommand)]
        what: StateWhat,
    },
    /// Rebuild every read model from the log and report differences (offline).
    Rebuild,
    /// Check the hash chain, seqs, stream versions, payloads and checkpoints.
    Verify,
    /// Export the log as JSON Lines, envelopes byte for byte (offline).
    Export(ExportArgs),
    /// Import an export or a backup into an empty or missing data dir (offline), or with
    /// `--store` into an empty JetStream stream.
    Import {
        /// The JSON Lines file.
        file: PathBuf,
    },
    /// Back up a running server's log as of one seq, while it keeps serving (online).
    Backup(BackupArgs),
    /// Events by type, streams, size on disk, tokens.
    Stats,
    /// Drop terminal pairings and superseded token uses that ended before a time, leaving
    /// tombstones, then give the freed space back to the disk (offline).
    Compact(CompactArgs),
    /// Add, disable or enable users, or erase their messages.
    User {
        #[command(subcommand)]
        what: UserWhat,
    },
    /// Revoke tokens.
    Token {
        #[command(subcommand)]
        what: TokenWhat,
    },
}

/// `log` filters.
#[derive(Args, Debug, Clone, Default)]
pub struct LogArgs {
    /// First seq.
    #[arg(long)]
    pub from: Option<u64>,
    /// Last seq.
    #[arg(long)]
    pub to: Option<u64>,
    /// Only this stream (full name or uuid).
    #[arg(long)]
    pub stream: Option<String>,
    /// Only this event type (e.g. `token.minted`).
    #[arg(long = "type")]
    pub event_type: Option<String>,
}

/// `replay` arguments.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Replay up to and including this seq.
    #[arg(long, conflicts_with = "at", required_unless_present = "at")]
    pub to: Option<u64>,
    /// Replay everything recorded at or before this time (RFC 3339).
    #[arg(long)]
    pub at: Option<String>,
    /// Where to build the read models (must not exist or be empty); a temp dir otherwise.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `compact` arguments.
#[derive(Args, Debug)]
pub struct CompactArgs {
    /// Drop what ended before this time (RFC 3339; a future time means now). Default:
    /// now minus --retain-pairings.
    #[arg(long)]
    pub before: Option<String>,
    /// The retention window used when --before is not given (e.g. 30d, 12h).
    #[arg(
        long,
        env = "LATCHKEY_RETAIN_PAIRINGS",
        default_value = "30d",
        value_parser = crate::serve::parse_retention
    )]
    pub retain_pairings: crate::serve::Retention,
    /// Leave the freed space inside sled's files (for reuse) instead of rewriting them.
    #[arg(long)]
    pub no_reclaim: bool,
}

/// `state` subjects.
#[derive(Subcommand, Debug)]
pub enum StateWhat {
    /// A user by id or handle.
    User {
        /// Id or handle.
        user: String,
        /// As of this time (RFC 3339); now by default.
        #[arg(long)]
        at: Option<String>,
    },
}

/// `export` arguments.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// JSON Lines (the only format).
    #[arg(long, default_value_t = true)]
    pub jsonl: bool,
    /// Write here instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `backup` arguments.
#[derive(Args, Debug)]
pub struct BackupArgs {
    /// The file to write (replaced only once the backup is complete).
    #[arg(long)]
    pub out: PathBuf,
}

/// `user` actions.
#[derive(Subcommand, Debug)]
pub enum UserWhat {
    /// Register a user with a first key (`--admin` for the first admin).
    Add {
        /// Handle.
        #[arg(long)]
        handle: String,
        /// An OpenSSH public key file (`id_ed25519.pub`).
        #[arg(long)]
        key_file: PathBuf,
        /// Make the user an admin.
        #[arg(long)]
        admin: bool,
    },
    /// Disable a user: revokes every live token.
    Disable {
        /// Id or handle.
        user: String,
    },
    /// Enable a user again.
    Enable {
        /// Id or handle.
        user: String,
    },
    /// Erase every message the user sent, in every room: members see `message.deleted`
    /// and the bodies are gone from storage.
    EraseMessages {
        /// Id or handle.
        user: String,
    },
}

/// `token` actions.
#[derive(Subcommand, Debug)]
pub enum TokenWhat {
    /// Revoke a token by id.
    Revoke {
        /// Token id.
        token_id: String,
    },
}

/// Runs an admin command; the exit code says whether it (or the check) passed.
pub fn run(args: AdminArgs) -> anyhow::Result<ExitCode> {
    let command = match args.command {
        TopCommand::Log(c) => c,
        TopCommand::Pair { what } => {
            let token = match (&args.server, &args.token_file) {
                (Some(_), Some(file)) => Some(
                    std::fs::read_to_string(file)
                        .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?,
                ),
                (Some(_), None) => {
                    anyhow::bail!("--server needs --token-file (an admin session token)")
                }
                (None, _) => None,
            };
            let target = pair::Target {
                data_dir: &args.data_dir,
                online: args.server.as_deref().zip(token.as_deref().map(str::trim)),
            };
            return pair::run(target, args.json, what);
        }
    };
    if let Some(urls) = args
        .store
        .as_deref()
        .filter(|s| !s.is_empty() && *s != "sled")
    {
        return jetstream::run(urls, args.json, command);
    }
    match (&args.server, &args.token_file) {
        (Some(server), Some(file)) => {
            let token = std::fs::read_to_string(file)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
            online::run(server, token.trim(), args.json, command)
        }
        (Some(_), None) => anyhow::bail!("--server needs --token-file (an admin session token)"),
        (None, _) => offline::run(&args.data_dir, args.json, command),
    }
}

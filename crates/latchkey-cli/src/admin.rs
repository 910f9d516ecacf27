//! `latchkey admin`: read, verify and summarize the event log of a data dir (offline).
//!
//! The server must be stopped: sled allows one process, and a running server's LOCK makes
//! the command fail with a message that names its PID and the online form. A missing data
//! dir is an empty store here. With `--json`, stdout carries only JSON (JSON Lines for
//! `log`); progress bars and summaries go to stderr.

use crate::output::{rfc3339_ms, Walk};
use anyhow::Context;
use clap::{Args, Subcommand};
use latchkey_domain::{Event, TokenId, UserEvent};
use latchkey_store::verify::verify;
use latchkey_store::{EventStore, Recorded, SledStore, StoreOptions};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Options shared by every admin command.
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
    /// Machine-readable output on stdout (JSON Lines for `log`).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Check the hash chain, contiguous seqs, stream versions, payloads and checkpoints.
    Verify,
    /// Print events, oldest first.
    Log(LogArgs),
    /// Summarize the log: events by type, streams, size on disk, tokens.
    Stats,
}

#[derive(Args, Debug)]
struct LogArgs {
    /// First seq to print.
    #[arg(long)]
    from: Option<u64>,
    /// Last seq to print.
    #[arg(long)]
    to: Option<u64>,
    /// Only this stream (`user/<uuid>`, or just the uuid).
    #[arg(long)]
    stream: Option<String>,
    /// Only this event type (e.g. `token.minted`).
    #[arg(long = "type")]
    event_type: Option<String>,
}

/// Runs an admin command; the exit code says whether the check passed.
pub fn run(args: AdminArgs) -> anyhow::Result<ExitCode> {
    let store = SledStore::open_existing(&args.data_dir, StoreOptions::default())?;
    match args.command {
        AdminCommand::Verify => verify_cmd(store.as_ref(), args.json),
        AdminCommand::Log(log) => log_cmd(store.as_ref(), &log, args.json),
        AdminCommand::Stats => stats_cmd(store.as_ref(), &args.data_dir, args.json),
    }
}

fn verify_cmd(store: Option<&SledStore>, json: bool) -> anyhow::Result<ExitCode> {
    let Some(store) = store else {
        if json {
            println!(
                "{}",
                json!({"ok": true, "events": 0, "streams": 0, "head": 0,
                       "chain_head": hex::encode([0u8; 32]), "problems": []})
            );
        } else {
            println!("ok: the data dir does not exist yet (an empty log)");
        }
        return Ok(ExitCode::SUCCESS);
    };
    let walk = Walk::new("verified", store.head());
    let report = verify(store, |seq| walk.at(seq))?;
    walk.finish(report.events);
    let chain = hex::encode(store.chain_head()?);
    if json {
        let problems: Vec<_> = report
            .problems
            .iter()
            .map(|p| json!({"seq": p.seq, "message": p.message}))
            .collect();
        println!(
            "{}",
            json!({"ok": report.ok(), "events": report.events, "streams": report.streams,
                   "head": report.head, "chain_head": chain, "problems": problems})
        );
    } else if report.ok() {
        println!(
            "ok: {} events in {} streams, head seq {}, chain head {chain}",
            report.events, report.streams, report.head
        );
    } else {
        for p in &report.problems {
            match p.seq {
                Some(seq) => println!("seq {seq}: {}", p.message),
                None => println!("{}", p.message),
            }
        }
        println!(
            "FAILED: {} problem(s) in {} events",
            report.problems.len(),
            report.events
        );
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn stream_matches(filter: &str, stream: &str) -> bool {
    stream == filter || stream.rsplit('/').next() == Some(filter)
}

fn log_cmd(store: Option<&SledStore>, args: &LogArgs, json: bool) -> anyhow::Result<ExitCode> {
    let Some(store) = store else {
        return Ok(ExitCode::SUCCESS);
    };
    let to = args.to.unwrap_or(u64::MAX);
    if !json {
        println!(
            "{:>8}  {:<24}  {:<44}  {:>4}  {:<20}  actor",
            "seq", "recorded_at", "stream", "ver", "type"
        );
    }
    for rec in store.read_all(args.from.unwrap_or(1))? {
        let rec = rec?;
        let env = &rec.envelope;
        if env.seq > to {
            break;
        }
        if let Some(s) = &args.stream {
            if !stream_matches(s, env.stream.as_str()) {
                continue;
            }
        }
        if let Some(t) = &args.event_type {
            if &env.event_type != t {
                continue;
            }
        }
        if json {
            println!("{}", log_json(&rec)?);
        } else {
            println!(
                "{:>8}  {:<24}  {:<44}  {:>4}  {:<20}  {}",
                env.seq,
                rfc3339_ms(env.recorded_at.0),
                env.stream,
                env.version,
                env.event_type,
                env.actor
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn log_json(rec: &Recorded) -> anyhow::Result<serde_json::Value> {
    let env = &rec.envelope;
    Ok(json!({
        "seq": env.seq,
        "recorded_at": rfc3339_ms(env.recorded_at.0),
        "stream": env.stream.as_str(),
        "version": env.version,
        "event_type": env.event_type,
        "event_id": env.event_id,
        "command_id": env.command_id,
        "actor": env.actor.to_string(),
        "schema": env.schema,
        "data": serde_json::to_value(&rec.event).context("event to JSON")?,
    }))
}

#[derive(Default)]
struct TokenTally {
    expires_at: Option<i64>,
    ended: Option<&'static str>,
}

fn stats_cmd(store: Option<&SledStore>, dir: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
    let mut streams: BTreeMap<String, u64> = BTreeMap::new();
    let mut seen_streams: HashMap<String, ()> = HashMap::new();
    let mut tokens: HashMap<TokenId, TokenTally> = HashMap::new();
    let mut events = 0u64;
    let mut head = 0u64;
    if let Some(store) = store {
        let walk = Walk::new("read", store.head());
        for rec in store.read_all(1)? {
            let rec = rec?;
            walk.at(rec.seq());
            events += 1;
            head = rec.seq();
            *by_type.entry(rec.envelope.event_type.clone()).or_default() += 1;
            let stream = rec.envelope.stream.as_str();
            if seen_streams.insert(stream.to_string(), ()).is_none() {
                *streams
                    .entry(rec.envelope.stream.kind().to_string())
                    .or_default() += 1;
            }
            if let Event::User(e) = &rec.event {
                match e {
                    UserEvent::TokenMinted {
                        token_id,
                        expires_at,
                        ..
                    } => {
                        tokens.insert(
                            *token_id,
                            TokenTally {
                                expires_at: expires_at.map(|t| t.0),
                                ended: None,
                            },
                        );
                    }
                    UserEvent::TokenRevoked { token_id, .. } => {
                        if let Some(t) = tokens.get_mut(token_id) {
                            t.ended.get_or_insert("revoked");
                        }
                    }
                    UserEvent::TokenExpired { token_id } => {
                        if let Some(t) = tokens.get_mut(token_id) {
                            t.ended.get_or_insert("expired");
                        }
                    }
                    _ => {}
                }
            }
        }
        walk.finish(events);
    }
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let (mut live, mut expired, mut revoked) = (0u64, 0u64, 0u64);
    for t in tokens.values() {
        match t.ended {
            Some("revoked") => revoked += 1,
            Some(_) => expired += 1,
            None if t.expires_at.is_some_and(|e| e <= now_ms) => expired += 1,
            None => live += 1,
        }
    }
    let bytes = dir_size(dir);
    if json {
        println!(
            "{}",
            json!({"events": events, "head": head, "events_by_type": by_type,
                   "streams_by_kind": streams, "size_on_disk_bytes": bytes,
                   "tokens": {"live": live, "expired": expired, "revoked": revoked}})
        );
    } else {
        println!("events        {events} (head seq {head})");
        println!("size on disk  {:.1} MiB", bytes as f64 / (1024.0 * 1024.0));
        println!("streams");
        for (kind, n) in &streams {
            println!("  {kind:<22}{n}");
        }
        println!("events by type");
        for (t, n) in &by_type {
            println!("  {t:<22}{n}");
        }
        println!("tokens        {live} live, {expired} expired, {revoked} revoked");
    }
    Ok(ExitCode::SUCCESS)
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_filter_takes_a_full_name_or_a_uuid() {
        let s = "user/0190f0d8-0000-7000-8000-000000000000";
        assert!(stream_matches(s, s));
        assert!(stream_matches("0190f0d8-0000-7000-8000-000000000000", s));
        assert!(!stream_matches("room", s));
    }
}

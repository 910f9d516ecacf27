//! `latchkey tail`: a [`Subscription`] that prints every frame (hello, events, resumed) as
//! one JSON line. It reconnects with backoff when the connection drops (the server
//! restarted, a slow-consumer close) and resumes from its last seq, so every event is
//! printed exactly once; notes about reconnecting go to stderr. A 4001 close stops it
//! with an error.

use super::Common;
use anyhow::Context;
use clap::Args;
use latchkey_client::ws::SubscriptionOptions;
use latchkey_client::{Api, Subscription, SubscriptionEvent};
use latchkey_proto::ws::ServerFrame;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `latchkey tail`.
#[derive(Args, Debug)]
pub struct TailArgs {
    /// The server (default: the one of the last login, else http://127.0.0.1:8080).
    #[arg(long, env = "LATCHKEY_URL")]
    server: Option<String>,
    /// A file holding a token with chat:read (default: the stored login's token).
    #[arg(long, env = "LATCHKEY_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// Replay the visible events after this seq before going live.
    #[arg(long)]
    since: Option<u64>,
}

/// Runs until a 4001 close or an unrecoverable error.
pub fn run(args: TailArgs) -> anyhow::Result<ExitCode> {
    let common = Common {
        server: args.server.clone(),
        json: true,
    };
    let api = match &args.token_file {
        Some(path) => {
            let token = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Api::new(&common.server_url()?)?.with_token(token.trim())
        }
        None => common.authed()?.0,
    };
    let mut sub = Subscription::new(
        api,
        SubscriptionOptions {
            since: args.since,
            ..SubscriptionOptions::default()
        },
    );
    loop {
        let line = match sub.next_event()? {
            SubscriptionEvent::Hello {
                user_id,
                connection_id,
                head,
                rooms,
                ..
            } => frame(&ServerFrame::Hello {
                user_id,
                connection_id,
                head,
                rooms,
            })?,
            SubscriptionEvent::Event {
                seq,
                room_id,
                event,
                data,
            } => frame(&ServerFrame::Event {
                seq,
                room_id,
                event,
                data,
            })?,
            SubscriptionEvent::Resumed { from, to } => frame(&ServerFrame::Resumed { from, to })?,
            SubscriptionEvent::Refetched { room_id, messages } => {
                json!({"type": "refetched", "room_id": room_id, "messages": messages}).to_string()
            }
            SubscriptionEvent::Reconnecting { reason, delay } => {
                eprintln!(
                    "connection lost ({reason}); reconnecting in {} ms, resuming after seq {}",
                    delay.as_millis(),
                    sub.last_seq()
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "-".into())
                );
                continue;
            }
        };
        println!("{line}");
    }
}

fn frame(f: &ServerFrame) -> anyhow::Result<String> {
    serde_json::to_string(f).context("encoding a frame")
}

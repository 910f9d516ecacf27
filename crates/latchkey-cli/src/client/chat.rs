//! `latchkey rooms`, `send` and `history`. A ROOM is a room id, or the name of one of
//! your rooms (of a public room for `join`) when that name is unique.

use super::{wire, Common};
use anyhow::bail;
use clap::{Args, Subcommand};
use latchkey_client::Api;
use latchkey_proto::{HistoryQuery, PostMessageRequest, RoomInfo, RoomVisibility};
use std::process::ExitCode;

/// Flags of `latchkey rooms`.
#[derive(Args, Debug)]
pub struct RoomsArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Option<RoomsCommand>,
}

/// `latchkey rooms ...`.
#[derive(Subcommand, Debug)]
pub enum RoomsCommand {
    /// List your rooms (the default), or with --public the public ones.
    List {
        /// Public rooms instead of yours.
        #[arg(long)]
        public: bool,
    },
    /// Create a room (public unless --private).
    Create {
        /// Its name.
        name: String,
        /// Only members the owner adds may join.
        #[arg(long)]
        private: bool,
    },
    /// Join a public room.
    Join {
        /// Room id or name.
        room: String,
    },
    /// Leave a room.
    Leave {
        /// Room id or name.
        room: String,
    },
}

/// `latchkey rooms`.
pub fn rooms_cmd(args: RoomsArgs) -> anyhow::Result<ExitCode> {
    let (api, _) = args.common.authed()?;
    let c = &args.common;
    match args.command.unwrap_or(RoomsCommand::List { public: false }) {
        RoomsCommand::List { public } => {
            let list = api.rooms(public)?;
            c.emit(&list, || {
                if list.rooms.is_empty() {
                    println!("no rooms");
                }
                for r in &list.rooms {
                    print_room(r);
                }
            })?;
        }
        RoomsCommand::Create { name, private } => {
            let visibility = if private {
                RoomVisibility::Private
            } else {
                RoomVisibility::Public
            };
            let room = api.create_room(&name, visibility)?;
            c.emit(&room, || print_room(&room))?;
        }
        RoomsCommand::Join { room } => {
            let id = resolve_room(&api, &room, true)?;
            let room = api.join(&id)?;
            c.emit(&room, || println!("joined {} ({})", room.name, room.id))?;
        }
        RoomsCommand::Leave { room } => {
            let id = resolve_room(&api, &room, false)?;
            api.leave(&id)?;
            c.emit(&serde_json::json!({"left": id}), || println!("left {id}"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_room(r: &RoomInfo) {
    let name = crate::output::printable(&r.name);
    println!("{}  {:<8} {name}", r.id, wire(&r.visibility));
}

/// A room id, or the id of the one room (mine, or public too) with that name.
pub fn resolve_room(api: &Api, room: &str, public_too: bool) -> anyhow::Result<String> {
    if room.len() == 36 && room.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Ok(room.to_string());
    }
    let mut rooms = api.rooms(false)?.rooms;
    if public_too {
        rooms.extend(api.rooms(true)?.rooms);
    }
    let mut ids: Vec<String> = rooms
        .into_iter()
        .filter(|r| r.name == room)
        .map(|r| r.id)
        .collect();
    ids.sort();
    ids.dedup();
    match ids.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("no room named {room:?}: pass a room id, or see `latchkey rooms`"),
        _ => bail!("{} rooms are named {room:?}: pass the room id", ids.len()),
    }
}

/// Flags of `latchkey send`.
#[derive(Args, Debug)]
pub struct SendArgs {
    #[command(flatten)]
    common: Common,
    /// Room id or name.
    room: String,
    /// The message.
    text: String,
    /// Only these members (user ids) and you see it.
    #[arg(long = "to")]
    to: Vec<String>,
    /// The message id this answers.
    #[arg(long)]
    reply_to: Option<String>,
}

/// `latchkey send ROOM TEXT`.
pub fn send_cmd(args: SendArgs) -> anyhow::Result<ExitCode> {
    let (api, _) = args.common.authed()?;
    let id = resolve_room(&api, &args.room, false)?;
    let posted = api.post(
        &id,
        &PostMessageRequest {
            body: args.text.clone(),
            target_user_ids: (!args.to.is_empty()).then(|| args.to.clone()),
            reply_to: args.reply_to.clone(),
        },
    )?;
    args.common.emit(&posted, || {
        println!("sent {} (seq {})", posted.message_id, posted.seq)
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Flags of `latchkey history`.
#[derive(Args, Debug)]
pub struct HistoryArgs {
    #[command(flatten)]
    common: Common,
    /// Room id or name.
    room: String,
    /// How many messages (1..=200).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Only messages older than this seq (the previous page's next_before).
    #[arg(long)]
    before: Option<u64>,
}

/// `latchkey history ROOM`: one page, oldest first in text (newest first in JSON, as the
/// server sends it).
pub fn history_cmd(args: HistoryArgs) -> anyhow::Result<ExitCode> {
    let (api, _) = args.common.authed()?;
    let id = resolve_room(&api, &args.room, false)?;
    let page = api.history(
        &id,
        &HistoryQuery {
            before: args.before,
            after: None,
            limit: Some(args.limit),
        },
    )?;
    args.common.emit(&page, || {
        for m in page.messages.iter().rev() {
            let seq = m.seq.map(|s| s.to_string()).unwrap_or_default();
            let body = crate::output::printable(&m.body);
            println!("{seq:>8}  {}  {}  {body}", m.sent_at, m.sender);
        }
        if let Some(nb) = page.next_before {
            println!("(older: --before {nb})");
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

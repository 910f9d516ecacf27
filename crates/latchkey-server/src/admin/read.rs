//! Admin reads over a store: log pages, one stream, stats, verify, and `state user`,
//! which folds the user's stream with the same `evolve` the actors use (no second code
//! path) and judges tokens as of the chosen time.

use super::json::event_json;
use crate::convert::{kind, rfc3339};
use crate::frames::visibility;
use latchkey_domain::user::TokenStatus;
use latchkey_domain::{
    Decider, Event, RoomEvent, RoomId, Timestamp, UserDecider, UserEvent, UserId, UserState,
};
use latchkey_proto::admin::*;
use latchkey_store::verify::verify as verify_store;
use latchkey_store::{EventStore, Recorded, SledStore, StoreResult};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use uuid::Uuid;

/// Most entries in one log page.
pub const MAX_PAGE: usize = 1000;

/// One log entry as admins see it.
pub fn log_entry(rec: &Recorded) -> LogEntry {
    let env = &rec.envelope;
    LogEntry {
        seq: env.seq,
        recorded_at: rfc3339(env.recorded_at),
        stream: env.stream.0.clone(),
        version: env.version,
        event_type: env.event_type.clone(),
        event_id: env.event_id.to_string(),
        command_id: env.command_id.to_string(),
        actor: env.actor.to_string(),
        schema: env.schema,
        data: event_json(&rec.event),
    }
}

/// Whether a `--stream` filter (a full name or just the uuid) matches a stream.
pub fn stream_matches(filter: &str, stream: &str) -> bool {
    stream == filter || stream.rsplit('/').next() == Some(filter)
}

/// Walks the log with the filters of `q`, calling `each` for every match, up to `limit`
/// matches; returns the seq to continue from when the limit stopped the walk.
pub fn walk_log(
    store: &SledStore,
    q: &LogQuery,
    limit: usize,
    mut each: impl FnMut(&Recorded),
) -> StoreResult<Option<u64>> {
    let to = q.to.unwrap_or(u64::MAX);
    let mut n = 0usize;
    for rec in store.read_all(q.from.unwrap_or(1))? {
        let rec = rec?;
        let env = &rec.envelope;
        if env.seq > to {
            break;
        }
        if q.stream
            .as_deref()
            .is_some_and(|s| !stream_matches(s, env.stream.as_str()))
            || q.event_type.as_deref().is_some_and(|t| t != env.event_type)
        {
            continue;
        }
        if n == limit {
            return Ok(Some(env.seq));
        }
        each(&rec);
        n += 1;
    }
    Ok(None)
}

/// A page of the log (online `GET /api/admin/events`).
pub fn log_page(store: &SledStore, q: &LogQuery) -> StoreResult<LogPage> {
    let limit = q.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    let mut events = Vec::new();
    let next_from = walk_log(store, q, limit, |r| events.push(log_entry(r)))?;
    Ok(LogPage { events, next_from })
}

/// Every event of one stream, given as a full name or a uuid (tried as user, room, pairing).
pub fn stream(store: &SledStore, id: &str) -> StoreResult<Vec<LogEntry>> {
    let candidates: Vec<String> = if id.contains('/') {
        vec![id.to_string()]
    } else {
        ["user", "room", "pairing"]
            .iter()
            .map(|k| format!("{k}/{id}"))
            .collect()
    };
    let mut out = Vec::new();
    for name in candidates {
        for rec in store.read_stream(&latchkey_domain::StreamId(name), 1)? {
            out.push(log_entry(&rec?));
        }
    }
    Ok(out)
}

/// Bytes under a directory.
pub fn dir_size(dir: &Path) -> u64 {
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

/// Stats over the whole log. `progress` gets each seq.
pub fn stats(
    store: &SledStore,
    now: Timestamp,
    mut progress: impl FnMut(u64),
) -> StoreResult<StatsDoc> {
    let mut doc = StatsDoc::default();
    let mut seen = HashSet::new();
    let mut tokens: HashMap<Uuid, (Option<i64>, Option<&'static str>)> = HashMap::new();
    for rec in store.read_all(1)? {
        let rec = rec?;
        progress(rec.seq());
        doc.events += 1;
        doc.head = rec.seq();
        *doc.events_by_type
            .entry(rec.envelope.event_type.clone())
            .or_default() += 1;
        if seen.insert(rec.envelope.stream.0.clone()) {
            *doc.streams_by_kind
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
                    tokens.insert(token_id.0, (expires_at.map(|t| t.0), None));
                }
                UserEvent::TokenRevoked { token_id, .. } => {
                    if let Some(t) = tokens.get_mut(&token_id.0) {
                        t.1.get_or_insert("revoked");
                    }
                }
                UserEvent::TokenExpired { token_id } => {
                    if let Some(t) = tokens.get_mut(&token_id.0) {
                        t.1.get_or_insert("expired");
                    }
                }
                _ => {}
            }
        }
    }
    for (expires, ended) in tokens.values() {
        match ended {
            Some("revoked") => doc.tokens.revoked += 1,
            Some(_) => doc.tokens.expired += 1,
            None if expires.is_some_and(|e| e <= now.0) => doc.tokens.expired += 1,
            None => doc.tokens.live += 1,
        }
    }
    doc.size_on_disk_bytes = dir_size(store.dir());
    Ok(doc)
}

/// `verify` as a document.
pub fn verify(store: &SledStore, progress: impl FnMut(u64)) -> StoreResult<VerifyDoc> {
    let report = verify_store(store, progress)?;
    Ok(VerifyDoc {
        ok: report.ok(),
        events: report.events,
        streams: report.streams,
        head: report.head,
        chain_head: store
            .chain_head()?
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        problems: report
            .problems
            .into_iter()
            .map(|p| Problem {
                seq: p.seq,
                message: p.message,
            })
            .collect(),
    })
}

/// Parses RFC 3339 with any offset.
pub fn parse_time(s: &str) -> Option<Timestamp> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    Some(Timestamp((t.unix_timestamp_nanos() / 1_000_000) as i64))
}

/// A user id from an id or a handle (the handle as registered in the log).
pub fn resolve_user(store: &SledStore, who: &str) -> StoreResult<Option<UserId>> {
    if let Ok(id) = Uuid::parse_str(who) {
        return Ok(Some(UserId(id)));
    }
    for rec in store.read_all(1)? {
        if let Event::User(UserEvent::UserRegistered {
            user_id, handle, ..
        }) = rec?.event
        {
            if handle == who {
                return Ok(Some(user_id));
            }
        }
    }
    Ok(None)
}

/// The last seq recorded at or before `at` (all of the log when `at` is `None`).
pub fn seq_at(store: &SledStore, at: Option<Timestamp>) -> StoreResult<u64> {
    let Some(at) = at else {
        return Ok(store.head());
    };
    let mut last = 0;
    for rec in store.read_all(1)? {
        let rec = rec?;
        if rec.envelope.recorded_at > at {
            break;
        }
        last = rec.seq();
    }
    Ok(last)
}

/// The `state user` document as of `at` (or now).
pub fn state_user(
    store: &SledStore,
    who: &str,
    at: Option<Timestamp>,
    now: Timestamp,
) -> StoreResult<Option<StateDoc>> {
    let Some(user_id) = resolve_user(store, who)? else {
        return Ok(None);
    };
    let as_of = seq_at(store, at)?;
    let mut state = UserState::default();
    for rec in store.read_stream(&user_id.stream(), 1)? {
        let rec = rec?;
        if rec.seq() > as_of {
            break;
        }
        if let Event::User(e) = &rec.event {
            state = UserDecider::evolve(state, e);
        }
    }
    let Some(user) = state.user() else {
        return Ok(None);
    };
    let when = at.unwrap_or(now);
    let tokens = user
        .tokens
        .iter()
        .map(|(id, t)| {
            let (status, revoked_at) = match &t.status {
                TokenStatus::Revoked { at, .. } => ("revoked", Some(rfc3339(*at))),
                TokenStatus::Expired => ("expired", None),
                TokenStatus::Live if t.expires_at.is_some_and(|e| e <= when) => ("expired", None),
                TokenStatus::Live => ("live", None),
            };
            StateToken {
                id: id.to_string(),
                kind: kind(t.kind).into(),
                name: t.name.clone(),
                status: status.into(),
                created_at: rfc3339(t.created_at),
                expires_at: t.expires_at.map(rfc3339),
                revoked_at,
            }
        })
        .collect();
    let keys = user
        .keys
        .iter()
        .map(|k| StateKey {
            key_id: k.key_id.to_string(),
            key_type: k.key.algorithm.as_str().into(),
            fingerprint: k.key.fingerprint.clone(),
            comment: k.key.comment.clone(),
            added_at: rfc3339(k.added_at),
        })
        .collect();
    // Rooms: walk room events up to `as_of`, tracking this user's membership.
    let mut rooms: BTreeMap<RoomId, StateRoom> = BTreeMap::new();
    let mut names: HashMap<RoomId, (String, String)> = HashMap::new();
    for rec in store.read_all(1)? {
        let rec = rec?;
        if rec.seq() > as_of {
            break;
        }
        let Event::Room(e) = &rec.event else { continue };
        let Some(room) = rec.envelope.stream.room() else {
            continue;
        };
        let joined = |rooms: &mut BTreeMap<RoomId, StateRoom>,
                      names: &HashMap<RoomId, (String, String)>| {
            let (name, vis) = names.get(&room).cloned().unwrap_or_default();
            rooms.insert(
                room,
                StateRoom {
                    id: room.to_string(),
                    name,
                    visibility: vis,
                    joined_seq: rec.seq(),
                },
            );
        };
        match e {
            RoomEvent::RoomCreated {
                name,
                visibility: v,
                owner,
                ..
            } => {
                names.insert(room, (name.clone(), visibility(*v).into()));
                if *owner == user_id {
                    joined(&mut rooms, &names);
                }
            }
            RoomEvent::MemberJoined { user_id: u, .. } if *u == user_id => {
                joined(&mut rooms, &names)
            }
            RoomEvent::MemberLeft { user_id: u, .. } if *u == user_id => {
                rooms.remove(&room);
            }
            _ => {}
        }
    }
    let time = match at {
        Some(t) => rfc3339(t),
        None => store
            .read_all(as_of.max(1))?
            .next()
            .transpose()?
            .map(|r| rfc3339(r.envelope.recorded_at))
            .unwrap_or_else(|| rfc3339(now)),
    };
    Ok(Some(StateDoc {
        as_of: AsOf { seq: as_of, time },
        user: StateUser {
            id: user.id.to_string(),
            handle: user.handle.clone(),
            admin: user.admin,
            disabled: user.disabled,
        },
        keys,
        tokens,
        rooms: rooms.into_values().collect(),
    }))
}

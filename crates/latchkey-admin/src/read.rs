//! Admin reads over a store: log pages, one stream, stats, verify, and `state user`,
//! which folds the user's stream with the same entity code the actors use (no second code
//! path), judges tokens as of the chosen time, and takes rooms from the rooms read model's
//! membership intervals. Users are found through the read models, never a log scan.

use crate::json::{event_json, rfc3339, wire_kind, wire_visibility};
use latchkey_actors::readmodel::ReadModels;
use latchkey_domain::user::{token_history, TokenRecord, TokenStatus, UserState};
use latchkey_domain::{Decider, Event, Timestamp, TokenId, UserDecider, UserEvent, UserId};
use latchkey_proto as proto;
use latchkey_proto::admin::*;
use latchkey_store::{Entry, EventStore, Recorded, StoreResult, Tombstone};
use std::collections::{HashMap, HashSet};
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

/// The `event_type` a tombstone is listed under.
pub const TOMBSTONE_TYPE: &str = "tombstone";

/// A tombstone as admins see it: type `tombstone`, its seq, stream and version, and in
/// `data` the dropped event's hash, type and why it was dropped.
pub fn tombstone_entry(t: &Tombstone) -> LogEntry {
    LogEntry {
        seq: t.seq,
        recorded_at: rfc3339(t.recorded_at),
        stream: t.stream.0.clone(),
        version: t.version,
        event_type: TOMBSTONE_TYPE.to_string(),
        event_id: String::new(),
        command_id: String::new(),
        actor: String::new(),
        schema: 0,
        data: serde_json::json!({
            "hash": crate::json::hex_hash(&t.hash),
            "dropped_type": t.event_type,
            "why": t.why,
        }),
    }
}

/// Any log entry as admins see it: an event, or a tombstone.
pub fn any_entry(entry: &Entry) -> LogEntry {
    match entry {
        Entry::Event(rec) => log_entry(rec),
        Entry::Tombstone(t) => tombstone_entry(t),
    }
}

/// Whether a `--stream` filter (a full name or just the uuid) matches a stream.
pub fn stream_matches(filter: &str, stream: &str) -> bool {
    stream == filter || stream.rsplit('/').next() == Some(filter)
}

/// Walks the log, tombstones included (type `tombstone`), with the filters of `q`,
/// calling `each` for every match, up to `limit` matches; returns the seq to continue from
/// when the limit stopped the walk.
pub fn walk_log(
    store: &dyn EventStore,
    q: &LogQuery,
    limit: usize,
    mut each: impl FnMut(&Entry),
) -> StoreResult<Option<u64>> {
    let to = q.to.unwrap_or(u64::MAX);
    let mut n = 0usize;
    for entry in store.read_log(q.from.unwrap_or(1))? {
        let entry = entry?;
        let seq = entry.seq();
        if seq > to {
            break;
        }
        let event_type = match &entry {
            Entry::Event(rec) => rec.envelope.event_type.as_str(),
            Entry::Tombstone(_) => TOMBSTONE_TYPE,
        };
        if q.stream
            .as_deref()
            .is_some_and(|s| !stream_matches(s, entry.stream().as_str()))
            || q.event_type.as_deref().is_some_and(|t| t != event_type)
        {
            continue;
        }
        if n == limit {
            return Ok(Some(seq));
        }
        each(&entry);
        n += 1;
    }
    Ok(None)
}

/// A page of the log (online `GET /api/admin/events`).
pub fn log_page(store: &dyn EventStore, q: &LogQuery) -> StoreResult<LogPage> {
    let limit = q.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    let mut events = Vec::new();
    let next_from = walk_log(store, q, limit, |e| events.push(any_entry(e)))?;
    Ok(LogPage { events, next_from })
}

/// Every event of one stream, given as a full name or a uuid (tried as user, room, pairing).
pub fn stream(store: &dyn EventStore, id: &str) -> StoreResult<Vec<LogEntry>> {
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

/// Stats over the whole log. `progress` gets each seq.
pub fn stats(
    store: &dyn EventStore,
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
    doc.size_on_disk_bytes = store.size_on_disk();
    Ok(doc)
}

/// `verify` as a document.
pub fn verify(store: &dyn EventStore, mut progress: impl FnMut(u64)) -> StoreResult<VerifyDoc> {
    let report = store.verify(&mut progress)?;
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

/// A user id from an id or a handle, through the users read model.
pub fn resolve_user(models: &ReadModels, who: &str) -> StoreResult<Option<UserId>> {
    if let Ok(id) = Uuid::parse_str(who) {
        return Ok(Some(UserId(id)));
    }
    models.user_by_handle(who)
}

/// When the entry at `seq` (an event or a tombstone) was recorded.
fn recorded_at(store: &dyn EventStore, seq: u64) -> StoreResult<Option<Timestamp>> {
    Ok(store
        .read_log(seq)?
        .next()
        .transpose()?
        .map(|e| e.recorded_at()))
}

/// The last seq recorded at or before `at` (all of the log when `at` is `None`). A binary
/// search by seq: the journal assigns `recorded_at` in seq order, never decreasing.
pub fn seq_at(store: &dyn EventStore, at: Option<Timestamp>) -> StoreResult<u64> {
    let head = store.head();
    let Some(at) = at else {
        return Ok(head);
    };
    // Invariant: every seq <= lo is recorded at or before `at`; every seq > hi after it.
    let (mut lo, mut hi) = (0u64, head);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        match recorded_at(store, mid)? {
            Some(t) if t <= at => lo = mid,
            _ => hi = mid - 1,
        }
    }
    Ok(lo)
}

/// The rooms `user` was a member of once the event at `as_of` applied, from the rooms
/// read model's intervals.
fn rooms_at(models: &ReadModels, user: UserId, as_of: u64) -> StoreResult<Vec<StateRoom>> {
    let rooms = models.rooms();
    let mut out = Vec::new();
    for room in rooms.rooms_ever(user)? {
        let Some(interval) = rooms
            .intervals(room, user)?
            .into_iter()
            .find(|i| i.member_after(as_of))
        else {
            continue;
        };
        let (name, vis) = match rooms.room(room)? {
            Some(r) => (r.name, wire_visibility(r.visibility)),
            None => (String::new(), proto::RoomVisibility::Private),
        };
        out.push(StateRoom {
            id: room.to_string(),
            name,
            visibility: vis,
            joined_seq: interval.joined_seq,
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// A token as `state user` shows it, judged at `when`.
fn state_token(id: &TokenId, t: &TokenRecord, when: Timestamp) -> StateToken {
    let (status, revoked_at) = match &t.status {
        TokenStatus::Revoked { at, .. } => (proto::TokenStatus::Revoked, Some(rfc3339(*at))),
        TokenStatus::Expired => (proto::TokenStatus::Expired, None),
        TokenStatus::Live if t.expires_at.is_some_and(|e| e <= when) => {
            (proto::TokenStatus::Expired, None)
        }
        TokenStatus::Live => (proto::TokenStatus::Live, None),
    };
    StateToken {
        id: id.to_string(),
        kind: wire_kind(t.kind),
        name: t.name.clone(),
        status,
        created_at: rfc3339(t.created_at),
        expires_at: t.expires_at.map(rfc3339),
        revoked_at,
    }
}

/// The `state user` document as of `at` (or now). `models` must be caught up with the log.
pub fn state_user(
    store: &dyn EventStore,
    models: &ReadModels,
    who: &str,
    at: Option<Timestamp>,
    now: Timestamp,
) -> StoreResult<Option<StateDoc>> {
    let Some(user_id) = resolve_user(models, who)? else {
        return Ok(None);
    };
    let as_of = seq_at(store, at)?;
    // One read of the stream gives the user as of `as_of` and every token it ever
    // minted: the aggregate's state keeps live tokens only, and the document lists all.
    let mut events = Vec::new();
    for rec in store.read_stream(&user_id.stream(), 1)? {
        let rec = rec?;
        if rec.seq() > as_of {
            break;
        }
        if let Event::User(e) = rec.event {
            events.push(e);
        }
    }
    let state = events
        .iter()
        .fold(UserState::default(), UserDecider::evolve);
    let Some(user) = state.user() else {
        return Ok(None);
    };
    let when = at.unwrap_or(now);
    let tokens = token_history(&events)
        .iter()
        .map(|(id, t)| state_token(id, t, when))
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
    let time = match at {
        Some(t) => rfc3339(t),
        None => recorded_at(store, as_of.max(1))?.map_or_else(|| rfc3339(now), rfc3339),
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
        rooms: rooms_at(models, user_id, as_of)?,
        compacted: compacted_before(store, as_of)?,
    }))
}

/// What a state as of `as_of` lacks because compaction dropped it; `None` when exact.
fn compacted_before(store: &dyn EventStore, as_of: u64) -> StoreResult<Option<StateCompacted>> {
    let mark = store.compaction_mark()?;
    if mark.dropped.is_empty() || as_of >= mark.exact_from {
        return Ok(None);
    }
    Ok(Some(StateCompacted {
        before_seq: mark.exact_from,
        dropped: mark.dropped,
    }))
}

#[cfg(test)]
mod tests;

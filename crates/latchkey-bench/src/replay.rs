//! Rebuilding read models from the log: events/s of the real projector (every read model
//! latchkey serves from) over a generated log, beside the ceiling: a raw scan of the `log`
//! tree that decodes each envelope and payload and does nothing else.
//!
//! The log is written straight through `SledStore::append_blocking` in large batches, with
//! a chat-shaped mix: per user a challenge, its verification, a registration and a session
//! token; rooms of ten members; and, for the rest, 100-byte messages with time-ordered
//! (v7) ids, as the server mints them.

use crate::report::{Better, Check, Headline, Op, Report};
use latchkey_domain::{
    Actor, ChallengePurpose, Event, KeyAlgorithm, KeyId, MessageId, PairingEvent, PairingId,
    RoomEvent, RoomId, RoomVisibility, Scope, SshPublicKey, Timestamp, TokenId, TokenKind,
    UserEvent, UserId,
};
use latchkey_store::projection::Projector;
use latchkey_store::{AppendRequest, Entry, EventStore, ExpectedVersion, SledStore, StoreOptions};
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

/// Threads writing the log, so the journal folds many requests into one commit.
const WRITERS: usize = 16;
/// Messages per append (one stream per append).
const MESSAGE_BATCH: usize = 500;
/// Members of each generated room.
const ROOM_SIZE: usize = 10;

fn append(
    store: &SledStore,
    stream: latchkey_domain::StreamId,
    at: u64,
    events: Vec<Event>,
) -> anyhow::Result<()> {
    store
        .append_blocking(AppendRequest {
            stream,
            expected: ExpectedVersion::Exact(at),
            events,
            command_id: Uuid::new_v4(),
            actor: Actor::System,
        })
        .map_err(|e| anyhow::anyhow!("generating the log: {e}"))?;
    Ok(())
}

fn key(i: usize) -> SshPublicKey {
    SshPublicKey {
        algorithm: KeyAlgorithm::Ed25519,
        openssh: format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{i:043} bench-{i}"),
        fingerprint: format!("SHA256:bench{i:038}"),
        comment: format!("bench-{i}"),
    }
}

/// The four sign-in events of user `i`: a pairing stream and a user stream.
fn user(store: &SledStore, i: usize, id: UserId, now: i64) -> anyhow::Result<()> {
    let pairing = PairingId(Uuid::new_v4());
    append(
        store,
        pairing.stream(),
        0,
        vec![
            Event::Pairing(PairingEvent::ChallengeIssued {
                challenge_id: pairing,
                server: "bench".into(),
                key: key(i),
                nonce: [i as u8; 32],
                purpose: ChallengePurpose::SignIn,
                issued_at: Timestamp(now),
                expires_at: Timestamp(now + 60_000),
                ip: None,
            }),
            Event::Pairing(PairingEvent::SignatureVerified {
                user_id: id,
                at: Timestamp(now),
            }),
        ],
    )?;
    append(
        store,
        id.stream(),
        0,
        vec![
            Event::User(UserEvent::UserRegistered {
                user_id: id,
                handle: format!("bench{i}"),
                key_id: KeyId(Uuid::new_v4()),
                key: key(i),
                admin: false,
                at: Timestamp(now),
            }),
            Event::User(UserEvent::TokenMinted {
                token_id: TokenId(Uuid::new_v4()),
                hash: rand::random::<[u8; 32]>(),
                kind: TokenKind::Session,
                scopes: vec![Scope::ChatRead, Scope::ChatWrite],
                name: None,
                device_name: Some("bench".into()),
                user_agent: Some("latchkey-bench".into()),
                ip: None,
                key_fingerprint: Some(key(i).fingerprint),
                created_at: Timestamp(now),
                expires_at: Some(Timestamp(now + 30 * 24 * 3600 * 1000)),
            }),
        ],
    )
}

/// Room `r` (created by its first member, joined by the others), then `messages` posts.
fn room(store: &SledStore, members: &[UserId], messages: usize, now: i64) -> anyhow::Result<()> {
    let id = RoomId(Uuid::new_v4());
    let owner = members.first().copied().unwrap_or(UserId(Uuid::nil()));
    let mut events = vec![Event::Room(RoomEvent::RoomCreated {
        room_id: id,
        name: format!("room {id}"),
        visibility: RoomVisibility::Private,
        owner,
        at: Timestamp(now),
    })];
    events.extend(members.iter().skip(1).map(|m| {
        Event::Room(RoomEvent::MemberJoined {
            user_id: *m,
            by: owner,
            at: Timestamp(now),
        })
    }));
    let mut version = events.len() as u64;
    append(store, id.stream(), 0, events)?;
    let mut left = messages;
    let mut k = 0usize;
    while left > 0 {
        let n = left.min(MESSAGE_BATCH);
        let batch = (0..n)
            .map(|j| {
                let sender = members[(k + j) % members.len().max(1)];
                Event::Room(RoomEvent::MessagePosted {
                    // Time-ordered, as the server mints them (`Uuid::now_v7`).
                    message_id: MessageId(Uuid::now_v7()),
                    sender,
                    body: format!("{:0100}", k + j),
                    target_user_ids: Vec::new(),
                    reply_to: None,
                    at: Timestamp(now),
                })
            })
            .collect();
        append(store, id.stream(), version, batch)?;
        version += n as u64;
        left -= n;
        k += n;
    }
    Ok(())
}

/// Writes about `events` events into `store`; how many it wrote.
fn generate(store: &Arc<SledStore>, events: usize) -> anyhow::Result<u64> {
    let users = (events / 200).max(ROOM_SIZE);
    let rooms = (events / 2000).max(1);
    let ids: Arc<Vec<UserId>> = Arc::new((0..users).map(|_| UserId(Uuid::new_v4())).collect());
    let now = 1_700_000_000_000i64;
    let run = |work: Arc<dyn Fn(usize) -> anyhow::Result<()> + Send + Sync>| -> anyhow::Result<()> {
        let handles: Vec<_> = (0..WRITERS)
            .map(|t| {
                let work = work.clone();
                std::thread::spawn(move || work(t))
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a writer panicked"))??;
        }
        Ok(())
    };
    {
        let (store, ids) = (store.clone(), ids.clone());
        run(Arc::new(move |t| {
            for i in (t..users).step_by(WRITERS) {
                user(&store, i, ids[i], now)?;
            }
            Ok(())
        }))?;
    }
    let written = last_seq(store)? as usize;
    let messages = events.saturating_sub(written + rooms * ROOM_SIZE);
    {
        let (store, ids) = (store.clone(), ids.clone());
        run(Arc::new(move |t| {
            for r in (t..rooms).step_by(WRITERS) {
                let members: Vec<UserId> = (0..ROOM_SIZE)
                    .map(|m| ids[(r * ROOM_SIZE + m) % users])
                    .collect();
                let share = messages / rooms + usize::from(r < messages % rooms);
                room(&store, &members, share, now)?;
            }
            Ok(())
        }))?;
    }
    last_seq(store)
}

/// The last seq in the log tree (the journal acknowledges before it publishes its head).
fn last_seq(store: &SledStore) -> anyhow::Result<u64> {
    match store.log_tree().last()? {
        Some((k, _)) => k
            .as_ref()
            .try_into()
            .map(u64::from_be_bytes)
            .map_err(|_| anyhow::anyhow!("a log key is not 8 bytes")),
        None => Ok(0),
    }
}

/// Scans the log tree, decoding each envelope and payload; events decoded.
fn raw_scan(store: &SledStore) -> anyhow::Result<u64> {
    let mut n = 0u64;
    for kv in store.log_tree().iter() {
        let (k, v) = kv?;
        let seq = k
            .as_ref()
            .try_into()
            .map(u64::from_be_bytes)
            .map_err(|_| anyhow::anyhow!("a log key is not 8 bytes"))?;
        let entry = Entry::decode(seq, &v)?;
        n += u64::from(entry.seq() == seq);
    }
    Ok(n)
}

/// The rows the rebuild left in every read-model tree, by tree name.
type Rows = Vec<(sled::IVec, Vec<(sled::IVec, sled::IVec)>)>;

fn read_model_rows(store: &SledStore) -> anyhow::Result<Rows> {
    let mut out = Vec::new();
    for name in store.db().tree_names() {
        if name.starts_with(b"rm/") {
            let rows = store
                .db()
                .open_tree(&name)?
                .iter()
                .collect::<Result<Vec<_>, _>>()?;
            out.push((name, rows));
        }
    }
    Ok(out)
}

/// Raw sled writing `rows` (each tree in batches of 4,096 rows, as many trees as the
/// read models) into a fresh database, no decode and no logic; seconds taken.
fn raw_rows_write(rows: &Rows) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let db = sled::Config::new()
        .path(dir.path())
        .mode(sled::Mode::HighThroughput)
        .open()?;
    let t = Instant::now();
    for (name, rows) in rows {
        let tree = db.open_tree(name)?;
        for chunk in rows.chunks(4096) {
            let mut batch = sled::Batch::default();
            for (k, v) in chunk {
                batch.insert(k.clone(), v.clone());
            }
            tree.apply_batch(batch)?;
        }
    }
    Ok(t.elapsed().as_secs_f64())
}

/// Runs the scenario.
pub fn run(events: usize, report: &mut Report) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let opts = StoreOptions {
        // Generation only: durability of the fixture does not matter, its speed does.
        sync_data: false,
        ..StoreOptions::default()
    };
    let store = Arc::new(SledStore::open(dir.path(), opts)?);
    let t = Instant::now();
    let head = generate(&store, events)?;
    eprintln!(
        "replay: generated {head} events in {:.1} s; timing a raw scan, then the projector",
        t.elapsed().as_secs_f64()
    );
    raw_scan(&store)?; // warm the page cache for both sides alike
    let t = Instant::now();
    let scanned = raw_scan(&store)?;
    let scan_rate = scanned as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let applied =
        Projector::new(store.clone(), latchkey_actors::readmodel::projections())?.catch_up()?;
    let rebuild_rate = applied as f64 / t.elapsed().as_secs_f64();
    anyhow::ensure!(
        scanned == head && applied == head,
        "replay: scanned {scanned} and applied {applied} of {head} events"
    );
    let ratio = (scan_rate > 0.0).then(|| rebuild_rate / scan_rate);
    report.headline(Headline {
        id: "replay_vs_raw",
        figure: format!("rebuild of every read model, {head} events"),
        ours: Some(rebuild_rate),
        unit: "events/s".into(),
        reference_name: "raw scan + decode of the log tree".into(),
        reference: Some(scan_rate),
        better: Better::Higher,
        checks: vec![
            Check::new("ratio", ratio, Op::AtLeast, 0.5),
            Check::new("events/s", Some(rebuild_rate), Op::AtLeast, 250_000.0),
        ],
        includes: format!(
            "in the bench process, over the same generated log of {head} \
             events (per user a challenge, its verification, a registration and a token; \
             rooms of {ROOM_SIZE}; the rest 100-byte legacy messages, body in the envelope, \
             with time-ordered (v7) ids as the server mints them), page cache warmed by one \
             scan first. latchkey: the real projector (`Projector::catch_up`) with every read \
             model the server serves, from an empty state, checkpoints included; its \
             catch-up decodes on a second thread, a bounded channel ahead. Raw: \
             one thread iterates the `log` tree and decodes each envelope and payload, \
             nothing else."
        ),
    });
    let rows = read_model_rows(&store)?;
    let count: usize = rows.iter().map(|(_, r)| r.len()).sum();
    let seconds = raw_rows_write(&rows)?;
    report.add(
        &format!("rebuild events/s ({count} read-model rows at the end)"),
        rebuild_rate,
        "raw sled writing the same rows in batches, no decode, as events/s",
        head as f64 / seconds.max(1e-9),
        "events/s",
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scenario_runs_at_a_tiny_size() {
        let mut report = Report::new();
        run(2_000, &mut report).unwrap();
    }
}

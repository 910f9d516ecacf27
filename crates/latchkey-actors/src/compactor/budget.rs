//! The growth budget (DESIGN §15), measured: bytes on disk per sign-in, per message and
//! per token use, and the data dir before and after compacting N sign-ins. The events are
//! the ones the actors write for each, appended through the real journal and projected
//! into the real read models; the data dir is measured after sled's flush. Ignored by
//! default (it writes a lot); run it as `proto-docs/storage.md` says:
//!
//! ```text
//! LATCHKEY_SIGNINS=1000000 cargo test -p latchkey-actors --release budget -- --ignored --nocapture
//! ```

use super::compact;
use crate::readmodel::projections;
use latchkey_domain::sshkey::parse_public_key;
use latchkey_domain::*;
use latchkey_store::projection::Projector;
use latchkey_store::{AppendRequest, EventStore, ExpectedVersion, SledStore, StoreOptions};
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop";
const USERS: usize = 1000;
const WINDOW: usize = 8192;
const DAY_MS: i64 = 86_400_000;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Appends every request, up to `WINDOW` in flight (the journal groups them).
fn append_all(store: &SledStore, reqs: impl Iterator<Item = AppendRequest>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut batch = Vec::with_capacity(WINDOW);
    let wait = |batch: &mut Vec<latchkey_store::AppendFuture>| {
        rt.block_on(async {
            for f in batch.drain(..) {
                f.await.unwrap();
            }
        })
    };
    for req in reqs {
        batch.push(store.append(req));
        if batch.len() == WINDOW {
            wait(&mut batch);
        }
    }
    wait(&mut batch);
}

fn req(stream: StreamId, events: Vec<Event>) -> AppendRequest {
    AppendRequest {
        stream,
        expected: ExpectedVersion::Any,
        events,
        command_id: Uuid::new_v4(),
        actor: Actor::System,
    }
}

/// The events of one sign-in: the challenge and its verdict on a pairing stream, the
/// session token on the user's stream, and its first use.
fn sign_in(user: UserId, at: Timestamp) -> [AppendRequest; 3] {
    let pairing = PairingId(Uuid::now_v7());
    let token_id = TokenId(Uuid::now_v7());
    let issued = PairingEvent::ChallengeIssued {
        challenge_id: pairing,
        server: "https://chat.example".into(),
        key: parse_public_key(KEY).unwrap(),
        nonce: [7; 32],
        purpose: ChallengePurpose::SignIn,
        issued_at: at,
        expires_at: Timestamp(at.0 + 60_000),
        ip: Some("192.0.2.0".parse().unwrap()),
    };
    let verified = PairingEvent::SignatureVerified { user_id: user, at };
    let minted = UserEvent::TokenMinted {
        token_id,
        hash: [9; 32],
        kind: TokenKind::Session,
        scopes: vec![Scope::ChatRead, Scope::ChatWrite],
        name: None,
        device_name: None,
        user_agent: Some("latchkey-cli/0.1".into()),
        ip: Some("192.0.2.0".parse().unwrap()),
        key_fingerprint: Some("SHA256:3lFqKnADSUFbsw+HCxHGlV14nOFM1mA+wH5HYHW7XyA".into()),
        created_at: at,
        expires_at: Some(Timestamp(at.0 + 30 * DAY_MS)),
    };
    let used = UserEvent::TokenUsed { token_id, at };
    [
        req(
            pairing.stream(),
            vec![Event::Pairing(issued), Event::Pairing(verified)],
        ),
        req(user.stream(), vec![Event::User(minted)]),
        req(user.stream(), vec![Event::User(used)]),
    ]
}

fn post(room: RoomId, sender: UserId, at: Timestamp) -> AppendRequest {
    let message = RoomEvent::MessagePosted {
        message_id: MessageId(Uuid::now_v7()),
        sender,
        body: "x".repeat(100),
        target_user_ids: vec![],
        reply_to: None,
        at,
    };
    req(room.stream(), vec![Event::Room(message)])
}

/// Projects to the head, flushes, and returns the data dir's size.
fn settle(store: &Arc<SledStore>) -> u64 {
    let as_dyn: Arc<dyn EventStore> = store.clone();
    Projector::new(as_dyn, projections())
        .unwrap()
        .catch_up()
        .unwrap();
    store.db().flush().unwrap();
    store.size_on_disk()
}

fn per(bytes_before: u64, bytes_after: u64, n: usize) -> f64 {
    (bytes_after as f64 - bytes_before as f64) / n as f64
}

// tidy: long function: one measurement, phase after phase (sign-ins, messages, token
// uses, compaction, rewrite), each printed as it ends; split up it would read worse.
#[test]
#[ignore = "writes a large log; run by hand (see the module doc)"]
fn budget() {
    let signins = env("LATCHKEY_SIGNINS", 50_000);
    let messages = env("LATCHKEY_MESSAGES", 50_000);
    let uses = env("LATCHKEY_USES", 50_000);
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        sync_data: false,
        ..StoreOptions::default()
    };
    let store = Arc::new(SledStore::open(dir.path(), opts).unwrap());
    let users: Vec<UserId> = (0..USERS).map(|_| UserId(Uuid::now_v7())).collect();
    let room = RoomId(Uuid::now_v7());
    let created = RoomEvent::RoomCreated {
        room_id: room,
        name: "general".into(),
        visibility: RoomVisibility::Public,
        owner: users[0],
        at: Timestamp(0),
    };
    let joined = RoomEvent::MemberJoined {
        user_id: users[0],
        by: users[0],
        at: Timestamp(0),
    };
    append_all(
        &store,
        std::iter::once(req(
            room.stream(),
            vec![Event::Room(created), Event::Room(joined)],
        )),
    );
    let empty = settle(&store);

    let t = Instant::now();
    let at = |i: usize| Timestamp(1_700_000_000_000 + i as i64);
    append_all(
        &store,
        (0..signins).flat_map(|i| sign_in(users[i % USERS], at(i))),
    );
    let after_signins = settle(&store);
    eprintln!(
        "sign-ins: {signins} in {:.1} s; {:.0} bytes each ({empty} -> {after_signins})",
        t.elapsed().as_secs_f64(),
        per(empty, after_signins, signins)
    );

    append_all(
        &store,
        (0..messages).map(|i| post(room, users[0], at(signins + i))),
    );
    let after_messages = settle(&store);
    eprintln!(
        "messages: {messages}; {:.0} bytes each",
        per(after_signins, after_messages, messages)
    );

    let token = TokenId(Uuid::now_v7());
    append_all(
        &store,
        (0..uses).map(|i| {
            let used = UserEvent::TokenUsed {
                token_id: token,
                at: at(signins + messages + i),
            };
            req(users[1].stream(), vec![Event::User(used)])
        }),
    );
    let after_uses = settle(&store);
    eprintln!(
        "token uses: {uses}; {:.0} bytes each",
        per(after_messages, after_uses, uses)
    );

    let t = Instant::now();
    let done = compact(store.as_ref(), Timestamp(i64::MAX), &mut |_| {}).unwrap();
    let compacted = settle(&store);
    eprintln!(
        "compacted in {:.1} s: {} pairing streams ({} events), {} token uses; {after_uses} -> {compacted} bytes in place",
        t.elapsed().as_secs_f64(),
        done.pairing_streams,
        done.pairing_events,
        done.token_used
    );
    assert_eq!(done.pairing_streams as usize, signins);
    assert!(store.verify(&mut |_| {}).unwrap().ok());
    drop(store);
    let t = Instant::now();
    let r = latchkey_store::reclaim::rewrite(dir.path(), &mut |_| {}).unwrap();
    eprintln!(
        "rewritten in {:.1} s: {} -> {} bytes",
        t.elapsed().as_secs_f64(),
        r.before,
        r.after
    );
    let store = SledStore::open(dir.path(), StoreOptions::default()).unwrap();
    assert!(store.verify(&mut |_| {}).unwrap().ok());
}

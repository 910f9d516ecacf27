//! The WebSocket (DESIGN §8; proto-docs/websocket.md) with a real client (tungstenite)
//! against a real `latchkey serve`: hello, live delivery by membership and targets,
//! resume with held live frames (also under concurrent posting), tickets, credentials in
//! the URL, revocation, expiry, malformed frames, floods and shutdown.
//!
//! "Nothing arrives" is never judged by waiting: a *barrier* (the user posts to a private
//! room of their own and waits for that event) proves that everything routed before it
//! has been delivered, because a connection gets its events in seq order.

use crate::chat::{
    add_member, connect, create_room, full_history, is_event_of, join, leave, live, pat, post,
    posted, remove_member, start_live, try_connect, users, Follower, Incoming, User, Ws,
    FRAME_DEADLINE, WS,
};
use crate::server::Server;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A user with a private room of their own, used as a delivery barrier.
struct Member {
    user: User,
    inbox: String,
}

fn members(server: &Server, prefix: &str, n: usize) -> Vec<Member> {
    users(server, prefix, n)
        .into_iter()
        .map(|user| {
            let inbox = create_room(server, &user.token, "inbox", "private");
            Member { user, inbox }
        })
        .collect()
}

/// Posts to the member's inbox and reads up to that event; returns every frame before it.
#[track_caller]
fn barrier(server: &Server, m: &Member, ws: &mut Ws) -> Vec<Value> {
    let (id, seq) = posted(server, &m.user.token, &m.inbox, "barrier", &[]);
    let (_, before) = ws.until(FRAME_DEADLINE, |v| {
        v["type"] == "event" && v["data"]["message_id"] == id.as_str()
    });
    assert!(
        before
            .iter()
            .filter(|v| v["type"] == "event")
            .all(|v| v["seq"].as_u64().is_some_and(|s| s < seq)),
        "frames after the barrier came before it: {before:?}"
    );
    before
}

/// A live connection that has read everything routed before it returns: the hub routes
/// an event just after the REST answer that made it, so a connection opened right after
/// a REST call may still get that call's event live. The barrier consumes it.
fn live_member(server: &Server, m: &Member) -> Ws {
    let (mut ws, _) = live(server, &m.user.token);
    barrier(server, m, &mut ws);
    ws
}

/// The frames of `room` among `frames`.
fn of_room<'a>(frames: &'a [Value], room: &str) -> Vec<&'a Value> {
    frames.iter().filter(|v| is_event_of(v, room)).collect()
}

fn event_seqs(frames: &[&Value]) -> Vec<u64> {
    frames
        .iter()
        .map(|v| v["seq"].as_u64().expect("seq"))
        .collect()
}

fn ping(ws: &mut Ws) {
    ws.send_json(&json!({"op": "ping"}));
    ws.until(FRAME_DEADLINE, |v| v["type"] == "pong");
}

/// Opens a connection until its `hello.head` reaches `seq` (the hub routes an event just
/// after the REST answer that made it), with a deadline.
fn connect_at(server: &Server, token: &str, seq: u64) -> (Ws, Value) {
    let end = Instant::now() + FRAME_DEADLINE;
    loop {
        let mut ws = connect(server, token);
        let hello = ws.hello();
        if hello["head"].as_u64().unwrap() >= seq {
            return (ws, hello);
        }
        assert!(
            Instant::now() < end,
            "hello.head never reached {seq}: {hello}"
        );
        ws.close();
    }
}

fn rooms_of(hello: &Value) -> BTreeSet<String> {
    hello["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().expect("room id").to_string())
        .collect()
}

// ---- the protocol document ----

#[test]
fn the_websocket_doc_examples_are_valid_frames() {
    use latchkey_proto::ws::{ClientFrame, ServerFrame};
    let path = crate::support::repo_root().join("proto-docs/websocket.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let (mut client, mut server) = (0, 0);
    let mut in_block = false;
    for line in doc.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        let json = line
            .strip_prefix("C: ")
            .or_else(|| line.strip_prefix("S: "))
            .unwrap_or(line);
        if !in_block || !json.starts_with('{') {
            continue;
        }
        let v: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
        if v.get("op").is_some() {
            serde_json::from_value::<ClientFrame>(v).unwrap_or_else(|e| panic!("{e}: {json}"));
            client += 1;
        } else {
            let f: ServerFrame =
                serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {json}"));
            // And the example is what the server would write for that frame.
            assert_eq!(serde_json::to_value(&f).unwrap(), v, "{json}");
            server += 1;
        }
    }
    assert!(
        client >= 4 && server >= 10,
        "{client} client, {server} server examples"
    );
    for t in [
        "hello",
        "event",
        "resumed",
        "resume_failed",
        "pong",
        "error",
    ] {
        assert!(doc.contains(&format!("### `{t}`")), "no section for `{t}`");
    }
    for code in [4000, 4001, 4008, 4029, 1001] {
        assert!(
            doc.contains(&format!("| {code} |")),
            "close code {code} undocumented"
        );
    }
}

// ---- hello ----

#[test]
fn hello_names_the_user_the_connection_the_head_and_the_rooms() {
    let server = Server::start_unlimited(&[]);
    let [alice, bob]: [User; 2] = users(&server, "he", 2).try_into().ok().unwrap();
    let public = create_room(&server, &alice.token, "pub", "public");
    let private = create_room(&server, &alice.token, "priv", "private");
    let (_, seq) = posted(&server, &alice.token, &public, "before", &[]);

    let (mut a1, hello) = connect_at(&server, &alice.token, seq);
    assert_eq!(hello["user_id"], alice.id.as_str());
    assert_eq!(
        rooms_of(&hello),
        BTreeSet::from([public.clone(), private.clone()])
    );
    let keys: BTreeSet<&str> = hello
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["type", "user_id", "connection_id", "head", "rooms"]),
        "{hello}"
    );
    let (mut a2, hello2) = connect_at(&server, &alice.token, seq);
    assert_ne!(
        hello["connection_id"], hello2["connection_id"],
        "connection ids are unique"
    );

    let (b, hello) = connect_at(&server, &bob.token, seq);
    assert_eq!(hello["user_id"], bob.id.as_str());
    assert_eq!(rooms_of(&hello), BTreeSet::new());
    b.close();
    join(&server, &bob.token, &public).expect(200);
    add_member(&server, &alice.token, &private, &bob.id).expect(204);
    let (_, seq) = posted(&server, &alice.token, &public, "after", &[]);
    let (_, hello) = connect_at(&server, &bob.token, seq);
    assert_eq!(
        rooms_of(&hello),
        BTreeSet::from([public.clone(), private.clone()])
    );
    leave(&server, &bob.token, &private).expect(204);
    let (_, seq) = posted(&server, &alice.token, &public, "later", &[]);
    let (_, hello) = connect_at(&server, &bob.token, seq);
    assert_eq!(rooms_of(&hello), BTreeSet::from([public.clone()]));

    // Both of Alice's connections get every event: one per connection, not per user.
    start_live(&mut a1);
    start_live(&mut a2);
    let (_, seq) = posted(&server, &alice.token, &public, "to both", &[]);
    let mut lists = Vec::new();
    for ws in [&mut a1, &mut a2] {
        let (_, before) = ws.until(FRAME_DEADLINE, |v| v["type"] == "event" && v["seq"] == seq);
        lists.push(before);
    }
    // a1 was opened earlier, so it also has the events between the two heads.
    let a2_seqs: Vec<&Value> = lists[1].iter().map(|v| &v["seq"]).collect();
    let a1_tail: Vec<&Value> = lists[0][lists[0].len() - lists[1].len()..]
        .iter()
        .map(|v| &v["seq"])
        .collect();
    assert_eq!(a1_tail, a2_seqs);
}

// ---- live delivery ----

#[test]
fn live_events_reach_members_only_with_the_documented_shape() {
    let server = Server::start_unlimited(&[]);
    let ms = members(&server, "lv", 3);
    let (alice, bob, carol) = (&ms[0], &ms[1], &ms[2]);
    let room = create_room(&server, &alice.user.token, "pub", "public");
    join(&server, &bob.user.token, &room).expect(200);
    let mut wa = live_member(&server, alice);
    let mut wb = live_member(&server, bob);
    let mut wc = live_member(&server, carol);

    let (id, seq) = posted(&server, &alice.user.token, &room, "hello room", &[]);
    for ws in [&mut wa, &mut wb] {
        let (v, before) = ws.until(FRAME_DEADLINE, |v| v["type"] == "event");
        assert!(before.is_empty(), "{before:?}");
        assert_eq!(v["seq"], seq);
        assert_eq!(v["room_id"], room.as_str());
        assert_eq!(v["event"], "message.posted");
        let keys: BTreeSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from(["type", "seq", "room_id", "event", "data"]),
            "{v}"
        );
        let d = &v["data"];
        assert_eq!(d["message_id"], id.as_str());
        assert_eq!(d["sender"], alice.user.id.as_str());
        assert_eq!(d["body"], "hello room");
        assert_eq!(d["target_user_ids"], json!([]));
        assert!(d["reply_to"].is_null(), "{d}");
        let at = d["sent_at"].as_str().expect("sent_at");
        assert!(at.ends_with('Z'));
        OffsetDateTime::parse(at, &Rfc3339).expect("sent_at is RFC 3339");
        let keys: BTreeSet<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from([
                "message_id",
                "sender",
                "body",
                "target_user_ids",
                "reply_to",
                "sent_at"
            ]),
            "{d}"
        );
    }
    // Carol is not a member: nothing before her own barrier.
    let before = barrier(&server, carol, &mut wc);
    assert!(before.is_empty(), "a non-member got: {before:?}");

    // Carol joins: every member sees member.joined {user_id, by} (no reason).
    join(&server, &carol.user.token, &room).expect(200);
    for ws in [&mut wa, &mut wb, &mut wc] {
        let (v, _) = ws.until(FRAME_DEADLINE, |v| is_event_of(v, &room));
        assert_eq!(v["event"], "member.joined", "{v}");
        assert_eq!(
            v["data"],
            json!({"user_id": carol.user.id, "by": carol.user.id})
        );
    }
    // A private room's creation reaches its owner only.
    let private = create_room(&server, &bob.user.token, "priv", "private");
    let (v, _) = wb.until(FRAME_DEADLINE, |v| is_event_of(v, &private));
    assert_eq!(v["event"], "room.created");
    let d = &v["data"];
    assert_eq!(d["name"], "priv");
    assert_eq!(d["visibility"], "private");
    assert_eq!(d["owner"], bob.user.id.as_str());
    assert!(
        d["created_at"].as_str().is_some_and(|s| s.ends_with('Z')),
        "{d}"
    );
    for (m, ws) in [(alice, &mut wa), (carol, &mut wc)] {
        let before = barrier(&server, m, ws);
        assert!(of_room(&before, &private).is_empty(), "{before:?}");
    }
}

#[test]
fn membership_takes_effect_from_the_next_event() {
    let server = Server::start_unlimited(&[]);
    let ms = members(&server, "mb", 3);
    let (alice, bob, carol) = (&ms[0], &ms[1], &ms[2]);
    let room = create_room(&server, &alice.user.token, "pub", "public");
    join(&server, &bob.user.token, &room).expect(200);
    let mut wa = live_member(&server, alice);
    let mut wb = live_member(&server, bob);
    let mut wc = live_member(&server, carol);
    let (_, early) = posted(&server, &alice.user.token, &room, "early", &[]);

    // Bob leaves: he sees his own member.left, then nothing more from the room.
    leave(&server, &bob.user.token, &room).expect(204);
    let (_, late) = posted(&server, &alice.user.token, &room, "after bob left", &[]);
    let before = barrier(&server, bob, &mut wb);
    let got = of_room(&before, &room);
    assert_eq!(got.len(), 2, "bob: {got:?}");
    assert_eq!(got[0]["seq"], early);
    assert_eq!(got[1]["event"], "member.left");
    assert_eq!(
        got[1]["data"],
        json!({"user_id": bob.user.id, "by": bob.user.id, "reason": "left"})
    );
    let left_seq = got[1]["seq"].as_u64().unwrap();
    assert!(early < left_seq && left_seq < late);
    // Alice saw the leave and the later post.
    let got = barrier(&server, alice, &mut wa);
    assert_eq!(
        event_seqs(&of_room(&got, &room)),
        vec![early, left_seq, late]
    );

    // Carol joins late: her join first, no earlier history, then live posts.
    join(&server, &carol.user.token, &room).expect(200);
    let (_, after_join) = posted(&server, &alice.user.token, &room, "welcome carol", &[]);
    let got = barrier(&server, carol, &mut wc);
    let got = of_room(&got, &room);
    assert_eq!(got.len(), 2, "carol: {got:?}");
    assert_eq!(got[0]["event"], "member.joined");
    assert_eq!(got[0]["data"]["user_id"], carol.user.id.as_str());
    assert!(got[0]["seq"].as_u64().unwrap() > late);
    assert_eq!(got[1]["seq"], after_join);

    // Removed by the owner: the member sees member.left {reason: removed, by: owner}.
    remove_member(&server, &alice.user.token, &room, &carol.user.id).expect(204);
    let (_, after_removal) = posted(&server, &alice.user.token, &room, "carol is gone", &[]);
    let got = barrier(&server, carol, &mut wc);
    let got = of_room(&got, &room);
    assert_eq!(got.len(), 1, "carol after removal: {got:?}");
    assert_eq!(
        got[0]["data"],
        json!({"user_id": carol.user.id, "by": alice.user.id, "reason": "removed"})
    );
    assert!(got[0]["seq"].as_u64().unwrap() < after_removal);

    // Bob rejoins: live again from his join on.
    join(&server, &bob.user.token, &room).expect(200);
    let (_, back) = posted(&server, &alice.user.token, &room, "bob is back", &[]);
    let got = barrier(&server, bob, &mut wb);
    let got = of_room(&got, &room);
    let events: Vec<&str> = got.iter().map(|v| v["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["member.joined", "message.posted"], "{got:?}");
    assert_eq!(got[1]["seq"], back);
    assert!(!event_seqs(&got).contains(&after_removal));
}

#[test]
fn targeted_messages_reach_targets_and_sender_only() {
    let server = Server::start_unlimited(&[]);
    let ms = members(&server, "tg", 3);
    let (alice, bob, carol) = (&ms[0], &ms[1], &ms[2]);
    let room = create_room(&server, &alice.user.token, "pub", "public");
    join(&server, &bob.user.token, &room).expect(200);
    join(&server, &carol.user.token, &room).expect(200);
    let mut conns: Vec<Ws> = ms.iter().map(|m| live_member(&server, m)).collect();

    let (_, to_bob) = posted(
        &server,
        &alice.user.token,
        &room,
        "for bob",
        &[&bob.user.id],
    );
    let (_, to_carol) = posted(
        &server,
        &bob.user.token,
        &room,
        "for carol",
        &[&carol.user.id],
    );
    let (_, to_two) = posted(
        &server,
        &carol.user.token,
        &room,
        "for a+b",
        &[&alice.user.id, &bob.user.id],
    );
    let (_, all) = posted(&server, &carol.user.token, &room, "for all", &[]);
    // A target that is not a member is refused, and nobody gets anything.
    let random = uuid::Uuid::new_v4().to_string();
    post(&server, &alice.user.token, &room, "nobody", &[&random])
        .expect_error(400, "invalid_request");

    let expect = [
        vec![to_bob, to_two, all],           // alice: sender, target, everyone
        vec![to_bob, to_carol, to_two, all], // bob: target, sender, target, everyone
        vec![to_carol, to_two, all],         // carol: target, sender, everyone
    ];
    for ((m, ws), want) in ms.iter().zip(conns.iter_mut()).zip(expect) {
        let got = barrier(&server, m, ws);
        let got = of_room(&got, &room);
        assert_eq!(event_seqs(&got), want, "{}: {got:?}", m.user.handle);
        for v in got.iter().filter(|v| v["seq"] == to_two) {
            assert_eq!(
                v["data"]["target_user_ids"],
                json!([alice.user.id, bob.user.id])
            );
        }
    }
}

#[test]
fn live_delivery_is_held_until_the_first_frame_or_one_second() {
    // On the test clock the hold ends only when the server's time passes hello + 1 s, so
    // the test moves time instead of timing the server.
    let server = Server::start_test_clock(&[]);
    let [alice]: [User; 1] = users(&server, "hold", 1).try_into().ok().unwrap();
    let room = create_room(&server, &alice.token, "r", "private");

    // No client frame: the event waits until a second after hello, then comes anyway.
    let mut ws = connect(&server, &alice.token);
    ws.hello();
    let (_, seq) = posted(&server, &alice.token, &room, "held", &[]);
    server.advance_ms(999);
    let early = ws.next(Duration::from_millis(300));
    assert!(
        early.is_none(),
        "live frames must be held for a resume until a second after hello: {early:?}"
    );
    server.advance_ms(1);
    let v = ws.frame(FRAME_DEADLINE);
    // The room's creation may be routed just after this connection registered.
    let v = if v["event"] == "room.created" {
        ws.frame(FRAME_DEADLINE)
    } else {
        v
    };
    assert_eq!(v["seq"], seq, "{v}");
    // After the hold, a resume is no longer the first frame: an error, and the connection
    // stays open.
    ws.send_json(&json!({"op": "resume", "since": 0}));
    let v = ws.frame(FRAME_DEADLINE);
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"], "invalid_request", "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    ping(&mut ws);

    // A ping first starts live delivery at once, with no replay: the clock does not move,
    // so the hold alone would keep these frames back for ever.
    let mut ws = connect(&server, &alice.token);
    let hello = ws.hello();
    let head = hello["head"].as_u64().unwrap();
    let (_, s1) = posted(&server, &alice.token, &room, "one", &[]);
    let (_, s2) = posted(&server, &alice.token, &room, "two", &[]);
    assert!(s1 > head);
    ws.send_json(&json!({"op": "ping"}));
    let (_, before) = ws.until(FRAME_DEADLINE, |v| v["type"] == "event" && v["seq"] == s2);
    let types: Vec<&Value> = before.iter().map(|v| &v["type"]).collect();
    assert_eq!(types, [&json!("pong"), &json!("event")], "{before:?}");
    assert_eq!(before[1]["seq"], s1);
}

// ---- resume ----

/// The seqs of `frames` up to (not including) `resumed`, the `resumed` frame, and the rest.
fn split_at_resumed(frames: &[Value]) -> (Vec<u64>, Value, Vec<u64>) {
    let i = frames
        .iter()
        .position(|v| v["type"] == "resumed")
        .unwrap_or_else(|| panic!("no resumed in {frames:?}"));
    let seqs = |fs: &[Value]| -> Vec<u64> {
        fs.iter()
            .map(|v| {
                assert_eq!(v["type"], "event", "{v}");
                v["seq"].as_u64().unwrap()
            })
            .collect()
    };
    (
        seqs(&frames[..i]),
        frames[i].clone(),
        seqs(&frames[i + 1..]),
    )
}

#[test]
fn resume_replays_visible_events_then_continues_live() {
    let server = Server::start_unlimited(&[]);
    let ms = members(&server, "rs", 3);
    let (alice, bob, carol) = (&ms[0], &ms[1], &ms[2]);
    let room = create_room(&server, &alice.user.token, "pub", "public");
    let (_, before_bob) = posted(&server, &alice.user.token, &room, "before bob", &[]);
    join(&server, &bob.user.token, &room).expect(200);
    join(&server, &carol.user.token, &room).expect(200);
    let (_, m1) = posted(&server, &alice.user.token, &room, "m1", &[]);
    let (_, not_bob) = posted(
        &server,
        &alice.user.token,
        &room,
        "for carol",
        &[&carol.user.id],
    );
    let (_, m2) = posted(
        &server,
        &carol.user.token,
        &room,
        "m2 for bob",
        &[&bob.user.id],
    );
    leave(&server, &carol.user.token, &room).expect(204);
    let (_, m3) = posted(&server, &alice.user.token, &room, "m3", &[]);

    // Bob resumes from 0: his join, carol's join, what he may see, carol's leave; then
    // `resumed`; nothing from before he joined, nothing addressed to others.
    let (mut ws, hello) = connect_at(&server, &bob.user.token, m3);
    let head = hello["head"].as_u64().unwrap();
    ws.send_json(&json!({"op": "resume", "since": 0}));
    let (resumed, replay) = ws.until(FRAME_DEADLINE, |v| v["type"] == "resumed");
    assert_eq!(resumed, json!({"type": "resumed", "from": 0, "to": head}));
    let got = of_room(&replay, &room);
    assert!(
        replay
            .iter()
            .all(|v| is_event_of(v, &room) || is_event_of(v, &bob.inbox)),
        "bob is only in two rooms: {replay:?}"
    );
    let kinds: Vec<(&str, &str)> = got
        .iter()
        .map(|v| {
            let who = v["data"]["user_id"].as_str().or(v["data"]["body"].as_str());
            (v["event"].as_str().unwrap(), who.unwrap())
        })
        .collect();
    let (b, c) = (bob.user.id.as_str(), carol.user.id.as_str());
    assert_eq!(
        kinds,
        [
            ("member.joined", b),
            ("member.joined", c),
            ("message.posted", "m1"),
            ("message.posted", "m2 for bob"),
            ("member.left", c),
            ("message.posted", "m3"),
        ]
    );
    let seqs = event_seqs(&got);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(!seqs.contains(&before_bob) && !seqs.contains(&not_bob));
    assert_eq!(&seqs[2..4], [m1, m2]);
    // Then live: a new post arrives after `resumed`.
    let (_, m4) = posted(&server, &alice.user.token, &room, "m4", &[]);
    let v = ws.frame(FRAME_DEADLINE);
    assert_eq!(v["seq"], m4, "{v}");

    // From a later point: only what came after it.
    let mut ws = connect(&server, &bob.user.token);
    let head = ws.hello()["head"].as_u64().unwrap();
    ws.send_json(&json!({"op": "resume", "since": m1}));
    let (resumed, replay) = ws.until(FRAME_DEADLINE, |v| v["type"] == "resumed");
    assert_eq!(resumed, json!({"type": "resumed", "from": m1, "to": head}));
    let seqs = event_seqs(&of_room(&replay, &room));
    assert_eq!(seqs.first(), Some(&m2));
    assert_eq!(seqs.last(), Some(&m4));
    assert_eq!(seqs.len(), 4, "{replay:?}");

    // From the head: nothing to replay.
    let mut ws = connect(&server, &bob.user.token);
    let head = ws.hello()["head"].as_u64().unwrap();
    ws.send_json(&json!({"op": "resume", "since": head}));
    let v = ws.frame(FRAME_DEADLINE);
    assert_eq!(v, json!({"type": "resumed", "from": head, "to": head}));

    // A second resume is an error frame; the connection stays usable.
    ws.send_json(&json!({"op": "resume", "since": 0}));
    let v = ws.frame(FRAME_DEADLINE);
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"], "invalid_request");
    ping(&mut ws);

    // Carol (a former member) resumes from 0: her stretch only, ending with her leave.
    let mut ws = connect(&server, &carol.user.token);
    ws.hello();
    ws.send_json(&json!({"op": "resume", "since": 0}));
    let (_, replay) = ws.until(FRAME_DEADLINE, |v| v["type"] == "resumed");
    let got = of_room(&replay, &room);
    let seqs = event_seqs(&got);
    assert!(seqs.contains(&not_bob) && seqs.contains(&m1) && seqs.contains(&m2));
    assert!(!seqs.contains(&before_bob) && !seqs.contains(&m3) && !seqs.contains(&m4));
    assert_eq!(got.last().unwrap()["event"], "member.left", "{got:?}");
}

#[test]
fn live_frames_wait_for_the_replay_in_order() {
    let server = Server::start_unlimited(&[]);
    let [alice]: [User; 1] = users(&server, "ord", 1).try_into().ok().unwrap();
    let room = create_room(&server, &alice.token, "r", "private");
    let mut old = Vec::new();
    for i in 0..30 {
        old.push(posted(&server, &alice.token, &room, &format!("old {i}"), &[]).1);
    }
    let mut ws = connect(&server, &alice.token);
    let head = ws.hello()["head"].as_u64().unwrap();
    // Events after `head` are routed to the connection before it asks to resume.
    let mut new = Vec::new();
    for i in 0..10 {
        new.push(posted(&server, &alice.token, &room, &format!("new {i}"), &[]).1);
    }
    ws.send_json(&json!({"op": "resume", "since": old[4]}));
    let (_, frames) = ws.until(FRAME_DEADLINE, |v| v["seq"] == *new.last().unwrap());
    let mut frames = frames;
    frames.push(json!({"type": "event", "seq": new.last().unwrap()}));
    let (replayed, resumed, after) = split_at_resumed(&frames);
    let want_replay: Vec<u64> = old[5..].iter().copied().filter(|s| *s <= head).collect();
    let mut want_live: Vec<u64> = old.iter().copied().filter(|s| *s > head).collect();
    want_live.extend(&new);
    assert_eq!(replayed, want_replay, "replay");
    assert_eq!(
        resumed,
        json!({"type": "resumed", "from": old[4], "to": head})
    );
    assert_eq!(
        after, want_live,
        "held live frames, in order, after the replay"
    );
}

/// What the poster thread recorded of one accepted post.
#[derive(Clone, Debug)]
struct Sent {
    seq: u64,
    room: usize,
    sender: usize,
    targets: Vec<usize>,
    body: String,
}

#[test]
fn resume_under_concurrent_posting_has_no_gap_and_no_duplicate() {
    let seed: u64 = rand::random();
    println!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let server = Server::start_unlimited(&[]);
    let us = users(&server, "cc", 4);
    let ids: Vec<&str> = us.iter().map(|u| u.id.as_str()).collect();
    // Room 0 (public): all four, user 3 keeps leaving and rejoining. Room 1 (private):
    // users 0, 1 and 2. Membership changes only through user 3 in room 0.
    let rooms = [
        create_room(&server, &us[0].token, "open", "public"),
        create_room(&server, &us[0].token, "closed", "private"),
    ];
    for u in &us[1..] {
        join(&server, &u.token, &rooms[0]).expect(200);
    }
    for u in &us[1..3] {
        add_member(&server, &us[0].token, &rooms[1], &u.id).expect(204);
    }
    let (_, start) = posted(&server, &us[0].token, &rooms[0], "start", &[]);

    let sent = Mutex::new(Vec::<Sent>::new());
    let stop = AtomicBool::new(false);
    let mut followers: Vec<Follower> = (0..4)
        .map(|i| Follower::new(&format!("user {i}")))
        .collect();
    for f in followers.iter_mut() {
        f.cursor = start;
    }
    let mut reconnects = 0;
    std::thread::scope(|scope| {
        // Posters: users 0..3 post in turn, a third of them targeted.
        let poster = scope.spawn(|| {
            let mut rng = StdRng::seed_from_u64(seed ^ 1);
            for n in 0..400 {
                let sender = n % 3;
                let room = rng.gen_range(0..2);
                let mut targets = Vec::new();
                if rng.gen_bool(0.35) {
                    for _ in 0..rng.gen_range(1..=2) {
                        targets.push(rng.gen_range(0..3));
                    }
                }
                let body = format!("post {n}");
                let tids: Vec<&str> = targets.iter().map(|t| ids[*t]).collect();
                let (_, seq) = posted(&server, &us[sender].token, &rooms[room], &body, &tids);
                sent.lock().unwrap().push(Sent {
                    seq,
                    room,
                    sender,
                    targets,
                    body,
                });
            }
            stop.store(true, Ordering::SeqCst);
        });
        // Churn: user 3 leaves and rejoins room 0, and posts while a member.
        let churn = scope.spawn(|| {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                leave(&server, &us[3].token, &rooms[0]).expect(204);
                join(&server, &us[3].token, &rooms[0]).expect(200);
                let body = format!("churn {n}");
                let (_, seq) = posted(&server, &us[3].token, &rooms[0], &body, &[]);
                sent.lock().unwrap().push(Sent {
                    seq,
                    room: 0,
                    sender: 3,
                    targets: vec![],
                    body,
                });
                n += 1;
            }
        });
        // The clients: connect, follow, and now and then drop and resume, sometimes in
        // the middle of a replay.
        for (f, u) in followers.iter_mut().zip(&us) {
            f.connect(&server, &u.token);
        }
        let t0 = Instant::now();
        let mut rounds = 0;
        while !stop.load(Ordering::SeqCst) {
            rounds += 1;
            for (f, u) in followers.iter_mut().zip(&us) {
                f.pump_for(Duration::from_millis(2));
                if rng.gen_bool(0.08) {
                    f.disconnect(rng.gen_bool(0.5));
                    f.connect(&server, &u.token);
                    reconnects += 1;
                } else if !f.connected() {
                    f.connect(&server, &u.token);
                }
            }
        }
        println!("{rounds} rounds in {:?}", t0.elapsed());
        poster.join().unwrap();
        churn.join().unwrap();
    });
    let sent = sent.into_inner().unwrap();
    let last = sent.iter().map(|s| s.seq).max().unwrap();
    // Quiescence: every client reads what is already there, then one more resume to a
    // head past the last post must replay nothing new that was visible before.
    for (f, u) in followers.iter_mut().zip(&us) {
        f.pump_for(Duration::from_millis(20));
        f.disconnect(true);
        loop {
            f.connect(&server, &u.token);
            f.wait_resumed(FRAME_DEADLINE);
            let head = f.sessions.last().unwrap().hello["head"].as_u64().unwrap();
            if head >= last {
                break;
            }
            f.disconnect(true);
        }
    }

    // The oracle: membership events of room 0 as user 0 (its owner, never leaving) saw
    // them, posts as the posters recorded them; walked in seq order with member sets.
    let owner_view: BTreeMap<u64, Value> = followers[0]
        .events
        .iter()
        .filter(|v| v["event"] == "member.joined" || v["event"] == "member.left")
        .map(|v| (v["seq"].as_u64().unwrap(), v.clone()))
        .collect();
    let mut timeline: BTreeMap<u64, (usize, Option<Sent>, Option<&Value>)> = BTreeMap::new();
    for s in &sent {
        timeline.insert(s.seq, (s.room, Some(s.clone()), None));
    }
    for (seq, v) in &owner_view {
        assert_eq!(v["room_id"], rooms[0].as_str(), "only room 0 changes: {v}");
        assert_eq!(v["data"]["user_id"], ids[3], "only user 3 moves: {v}");
        assert!(
            timeline.insert(*seq, (0, None, Some(v))).is_none(),
            "seq {seq} twice"
        );
    }
    let mut members = [BTreeSet::from([0, 1, 2, 3]), BTreeSet::from([0, 1, 2])];
    let mut expected: Vec<Vec<u64>> = vec![Vec::new(); 4];
    for (seq, (room, post, change)) in &timeline {
        if let Some(v) = change {
            if v["event"] == "member.joined" {
                assert!(members[*room].insert(3), "user 3 joined twice at {seq}");
            }
        }
        for (u, want) in expected.iter_mut().enumerate() {
            let visible = members[*room].contains(&u)
                && post.as_ref().is_none_or(|p| {
                    p.targets.is_empty() || p.targets.contains(&u) || p.sender == u
                });
            if visible {
                want.push(*seq);
            }
        }
        if let Some(v) = change {
            if v["event"] == "member.left" {
                assert!(members[*room].remove(&3), "user 3 left twice at {seq}");
            }
        }
    }

    let by_seq: BTreeMap<u64, &Sent> = sent.iter().map(|s| (s.seq, s)).collect();
    for (u, f) in followers.iter().enumerate() {
        let got = f.seqs();
        assert!(f.odd.is_empty(), "user {u}: unexpected frames {:?}", f.odd);
        for s in &f.sessions {
            let hello_head = s.hello["head"].as_u64().unwrap();
            let resumed = s.resumed.as_ref();
            if let Some(r) = resumed {
                assert_eq!(r["from"], s.since, "user {u}: {r}");
                assert_eq!(r["to"], hello_head, "user {u}: {r}");
            }
        }
        let want = &expected[u];
        let dups = got.len() - got.iter().collect::<BTreeSet<_>>().len();
        let leaked: Vec<&u64> = got.iter().filter(|s| !want.contains(s)).collect();
        let missing: Vec<&u64> = want.iter().filter(|s| !got.contains(s)).collect();
        assert!(
            leaked.is_empty(),
            "user {u} (seed {seed}) received events it may not see: {:?}",
            leaked
                .iter()
                .map(|s| f.events.iter().find(|v| v["seq"] == **s).unwrap())
                .collect::<Vec<_>>()
        );
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "user {u} (seed {seed}): not strictly increasing ({dups} duplicates) {got:?}"
        );
        assert!(
            missing.is_empty(),
            "user {u} (seed {seed}): gaps at {missing:?}"
        );
        assert_eq!(&got, want, "user {u} (seed {seed})");
        // Content: every message frame is the message that was posted.
        for v in f.events.iter().filter(|v| v["event"] == "message.posted") {
            let s = by_seq[&v["seq"].as_u64().unwrap()];
            assert_eq!(v["room_id"], rooms[s.room].as_str());
            assert_eq!(v["data"]["body"], s.body.as_str());
            assert_eq!(v["data"]["sender"], ids[s.sender]);
        }
        // REST history agrees with what the WebSocket delivered (user 3 is a member of
        // room 0 again at the end: its churn ends with a join).
        for (r, room) in rooms.iter().enumerate() {
            if !members[r].contains(&u) {
                continue;
            }
            let mut rest: Vec<u64> = full_history(&server, &us[u].token, room, 200)
                .iter()
                .map(|m| m["seq"].as_u64().unwrap())
                .filter(|s| *s > start)
                .collect();
            rest.reverse();
            let ws_posts: Vec<u64> = f
                .events
                .iter()
                .filter(|v| v["event"] == "message.posted" && v["room_id"] == room.as_str())
                .map(|v| v["seq"].as_u64().unwrap())
                .collect();
            assert_eq!(
                rest, ws_posts,
                "user {u}, room {r}: REST history and WS disagree"
            );
        }
    }
    // User 3's own view of its membership events matches the owner's.
    let own: Vec<u64> = followers[3]
        .events
        .iter()
        .filter(|v| v["event"] != "message.posted")
        .map(|v| v["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(own, owner_view.keys().copied().collect::<Vec<_>>());
    let cut_short = followers
        .iter()
        .flat_map(|f| &f.sessions)
        .filter(|s| s.resumed.is_none())
        .count();
    println!(
        "{} posts, {} membership changes, {reconnects} reconnects with resume \
         ({cut_short} dropped before `resumed`)",
        sent.len(),
        owner_view.len()
    );
}

#[test]
fn fanout_and_resume_follow_the_stored_membership_after_a_restart() {
    let mut server = Server::start_unlimited(&[]);
    let ms = members(&server, "rr", 4);
    let (alice, bob, carol, dave) = (&ms[0], &ms[1], &ms[2], &ms[3]);
    let room = create_room(&server, &alice.user.token, "pub", "public");
    let private = create_room(&server, &alice.user.token, "priv", "private");
    join(&server, &bob.user.token, &room).expect(200);
    join(&server, &carol.user.token, &room).expect(200);
    add_member(&server, &alice.user.token, &private, &dave.user.id).expect(204);
    add_member(&server, &alice.user.token, &private, &bob.user.id).expect(204);
    remove_member(&server, &alice.user.token, &private, &dave.user.id).expect(204);
    leave(&server, &carol.user.token, &room).expect(204);
    let mut fb = Follower::new("bob");
    fb.connect(&server, &bob.user.token);
    let (_, m1) = posted(&server, &alice.user.token, &room, "m1", &[]);
    let (_, p1) = posted(&server, &alice.user.token, &private, "p1", &[]);
    fb.wait_resumed(FRAME_DEADLINE);
    while !fb.seqs().contains(&p1) {
        assert!(
            fb.pump_for(Duration::from_millis(50)),
            "bob's connection ended"
        );
    }

    // kill -9 and start again on the same data: the hub is rebuilt from the read models.
    server.restart();
    let (_, m2) = posted(&server, &alice.user.token, &room, "m2", &[]);
    let (_, p2) = posted(
        &server,
        &alice.user.token,
        &private,
        "p2 for bob",
        &[&bob.user.id],
    );
    let mut conns: Vec<Ws> = ms.iter().map(|m| live(&server, &m.user.token).0).collect();
    let (_, m3) = posted(&server, &alice.user.token, &room, "m3", &[]);
    let (_, p3) = posted(&server, &alice.user.token, &private, "p3", &[]);
    let want = [vec![m3, p3], vec![m3, p3], vec![], vec![]];
    for ((m, ws), want) in ms.iter().zip(conns.iter_mut()).zip(want) {
        let got = barrier(&server, m, ws);
        let got: Vec<u64> = got
            .iter()
            .filter(|v| is_event_of(v, &room) || is_event_of(v, &private))
            .map(|v| v["seq"].as_u64().unwrap())
            .filter(|s| *s >= m3)
            .collect();
        assert_eq!(got, want, "{} after the restart", m.user.handle);
    }
    // Bob resumes across the restart from his last seq: exactly what he missed.
    fb.disconnect(false);
    fb.connect(&server, &bob.user.token);
    fb.wait_resumed(FRAME_DEADLINE);
    let tail: Vec<u64> = fb
        .seqs()
        .into_iter()
        .filter(|s| *s > p1)
        .filter(|s| [m2, p2, m3, p3].contains(s))
        .collect();
    assert_eq!(tail, vec![m2, p2, m3, p3]);
    assert!(fb.seqs().contains(&m1));
    // Carol comes back after the restart and is live again from her join.
    join(&server, &carol.user.token, &room).expect(200);
    let (_, m4) = posted(&server, &alice.user.token, &room, "m4", &[]);
    let got = barrier(&server, carol, &mut conns[2]);
    let got = of_room(&got, &room);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0]["event"], "member.joined");
    assert_eq!(got[1]["seq"], m4);
}

// ---- send ----

#[test]
fn the_send_op_posts_like_rest_and_errors_come_back_as_frames() {
    let server = Server::start_unlimited(&[]);
    let ms = members(&server, "sd", 3);
    let (alice, bob, carol) = (&ms[0], &ms[1], &ms[2]);
    let room = create_room(&server, &alice.user.token, "pub", "public");
    let private = create_room(&server, &alice.user.token, "priv", "private");
    join(&server, &bob.user.token, &room).expect(200);
    let mut wa = live_member(&server, alice);
    let mut wb = live_member(&server, bob);

    wb.send_json(&json!({"op": "send", "room_id": room, "body": "over the socket"}));
    for ws in [&mut wa, &mut wb] {
        let (v, _) = ws.until(FRAME_DEADLINE, |v| v["event"] == "message.posted");
        assert_eq!(v["event"], "message.posted");
        assert_eq!(v["data"]["body"], "over the socket");
        assert_eq!(v["data"]["sender"], bob.user.id.as_str());
    }
    wb.send_json(&json!({"op": "send", "room_id": room, "body": "just alice", "target_user_ids": [alice.user.id]}));
    let (v, _) = wa.until(FRAME_DEADLINE, |v| v["event"] == "message.posted");
    assert_eq!(v["data"]["target_user_ids"], json!([alice.user.id]));
    let seq = v["seq"].clone();
    let (v, _) = wb.until(FRAME_DEADLINE, |v| v["event"] == "message.posted");
    assert_eq!(v["seq"], seq);
    let page: Value = crate::chat::history(&server, &alice.user.token, &room, "limit=2")
        .expect(200)
        .json();
    assert_eq!(page["messages"][0]["body"], "just alice");
    assert_eq!(page["messages"][1]["body"], "over the socket");

    // Refusals come back as error frames with REST's codes; the connection stays open.
    let mut wc = live_member(&server, carol);
    let cases = [
        (
            json!({"op": "send", "room_id": room, "body": "hi"}),
            "not_a_member",
        ),
        (
            json!({"op": "send", "room_id": private, "body": "hi"}),
            "not_found",
        ),
        (
            json!({"op": "send", "room_id": uuid::Uuid::new_v4(), "body": "hi"}),
            "not_found",
        ),
        (
            json!({"op": "send", "room_id": "nope", "body": "hi"}),
            "invalid_request",
        ),
        (
            json!({"op": "send", "room_id": carol.inbox, "body": ""}),
            "invalid_request",
        ),
        (
            json!({"op": "send", "room_id": carol.inbox, "body": "x".repeat(4001)}),
            "invalid_request",
        ),
        (
            json!({"op": "send", "room_id": carol.inbox, "body": "hi", "target_user_ids": [alice.user.id]}),
            "invalid_request",
        ),
        (
            json!({"op": "send", "room_id": carol.inbox, "body": "hi", "target_user_ids": ["x"]}),
            "invalid_request",
        ),
    ];
    let mut bodies = BTreeMap::new();
    for (frame, code) in &cases {
        wc.send_json(frame);
        let v = wc.frame(FRAME_DEADLINE);
        assert_eq!(v["type"], "error", "{frame} -> {v}");
        assert_eq!(v["error"], *code, "{frame} -> {v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        bodies.insert(frame["room_id"].to_string(), v["message"].clone());
    }
    // The private room and a missing one answer the same.
    assert_eq!(
        bodies[&json!(private).to_string()],
        bodies[&cases[2].0["room_id"].to_string()]
    );
    ping(&mut wc);
    let before = barrier(&server, carol, &mut wc);
    assert!(before.is_empty(), "{before:?}");
    // A read-only credential may listen but not send.
    let reader = pat(&server, &bob.user, &["chat:read"]);
    let (mut wr, _) = live(&server, &reader);
    wr.send_json(&json!({"op": "send", "room_id": room, "body": "hi"}));
    let (v, _) = wr.until(FRAME_DEADLINE, |v| v["type"] != "event");
    assert_eq!(
        (&v["type"], &v["error"]),
        (&json!("error"), &json!("forbidden")),
        "{v}"
    );
    // Nobody got anything from the refusals.
    let before = barrier(&server, alice, &mut wa);
    assert!(of_room(&before, &room).is_empty(), "{before:?}");
}

// ---- credentials ----

#[test]
fn tickets_are_single_use_and_bound_to_their_token() {
    let server = Server::start_unlimited(&[]);
    let [alice]: [User; 1] = users(&server, "tk", 1).try_into().ok().unwrap();
    let mint = |token: &str| -> String {
        let v: Value = server
            .post_json("/api/native/ws-ticket", &json!({}), Some(token))
            .expect(201)
            .json();
        assert_eq!(v["expires_in"], 30, "{v}");
        let t = v["ticket"].as_str().expect("ticket").to_string();
        assert!(t.starts_with("lkw_"), "{t}");
        t
    };
    let ticket = mint(&alice.token);
    let mut ws = try_connect(&server, &format!("{WS}?ticket={ticket}"), None)
        .unwrap_or_else(|r| panic!("ticket refused: {r:?}"));
    assert_eq!(ws.hello()["user_id"], alice.id.as_str());
    start_live(&mut ws);
    // Single use.
    let again = try_connect(&server, &format!("{WS}?ticket={ticket}"), None).err();
    let again = again.expect("a used ticket must be refused");
    assert_eq!(again.status, 401, "{again:?}");
    // Unknown tickets, and other credentials as a ticket.
    let forged = latchkey_domain::token::generate(
        latchkey_domain::token::TokenPrefix::WsTicket,
        rand::random(),
    );
    for t in [forged.expose_secret(), "lkw_nope", alice.token.as_str(), ""] {
        let r = try_connect(&server, &format!("{WS}?ticket={t}"), None)
            .err()
            .unwrap_or_else(|| panic!("ticket {t:?} accepted"));
        assert_eq!(r.status, 401, "ticket {t:?}: {r:?}");
        assert!(r.body.contains("\"error\""), "a JSON error body: {r:?}");
    }

    // Another session's connection, to show revocation is per token.
    let (other, _) = another_session(&server, &alice);
    let (mut wo, _) = live(&server, &other);
    // Revoking the token that minted the ticket closes the ticket's connection.
    alice.log_out(&server);
    let (code, _, _, _) = ws.expect_close(Duration::from_secs(5));
    assert_eq!(code, Some(4001));
    ping(&mut wo);
    // A ticket whose token was revoked after minting it is worthless.
    let ticket = mint(&other);
    server
        .send("DELETE", "/api/native/token", Some(&other), None)
        .expect(204);
    let (code, _, _, _) = wo.expect_close(Duration::from_secs(5));
    assert_eq!(code, Some(4001));
    let r = try_connect(&server, &format!("{WS}?ticket={ticket}"), None).err();
    assert_eq!(r.expect("refused").status, 401);
}

/// A second session token `(token, token_id)` of the same user.
fn another_session(server: &Server, user: &User) -> (String, String) {
    let t = server.sign_in(&user.key, None);
    assert_eq!(t.user.id, user.id);
    (t.token, t.token_id)
}

#[test]
fn credentials_in_the_query_string_are_refused() {
    let server = Server::start_unlimited(&[]);
    let [alice]: [User; 1] = users(&server, "qs", 1).try_into().ok().unwrap();
    let t = alice.token.as_str();
    let cases = [
        (format!("{WS}?access_token={t}"), None),
        (format!("{WS}?token={t}"), None),
        (format!("{WS}?bearer={t}"), None),
        (format!("{WS}?x={t}"), None),
        (format!("{WS}?ticket={t}"), None),
        // Even next to a valid header: a token in a URL is a leak, refused outright.
        (format!("{WS}?token={t}"), Some(t)),
        (format!("{WS}?access_token=whatever"), Some(t)),
        (WS.to_string(), None),
    ];
    for (path, bearer) in &cases {
        let shown = path.replace(t, "<token>");
        match try_connect(&server, path, *bearer) {
            Ok(_) => panic!("{shown} (header: {}) was upgraded", bearer.is_some()),
            Err(r) => {
                assert_eq!(r.status, 401, "{shown}: {r:?}");
                let v: Value = serde_json::from_str(&r.body).expect("JSON error body");
                assert_eq!(v["error"], "unauthorized", "{shown}: {v}");
            }
        }
    }
    // A credential without chat:read is refused before the upgrade too.
    let writer = pat(&server, &alice, &["chat:write"]);
    let r = try_connect(&server, WS, Some(&writer))
        .err()
        .expect("refused");
    assert_eq!(r.status, 403, "{r:?}");
    // The header alone works.
    live(&server, t);
    // A plain GET without the upgrade headers is not a WebSocket.
    let resp = server.get(WS, Some(t));
    assert!(resp.status == 400 || resp.status == 426, "{resp:?}");
}

#[test]
fn revocation_closes_that_tokens_connections_with_4001_at_once() {
    let server = Server::start_unlimited(&[]);
    let [alice]: [User; 1] = users(&server, "lo", 1).try_into().ok().unwrap();
    let (second, second_id) = another_session(&server, &alice);
    let (mut w1, _) = live(&server, &alice.token);
    let mut held = connect(&server, &alice.token); // not yet live: still closed
    held.hello();
    let (mut w2, _) = live(&server, &second);

    let start = Instant::now();
    server
        .send("DELETE", "/api/native/token", Some(&alice.token), None)
        .expect(204);
    let answered = Instant::now();
    let (code, reason, at, _) = w1.expect_close(Duration::from_secs(5));
    let (held_code, _, _, _) = held.expect_close(Duration::from_secs(5));
    let after = at.saturating_duration_since(answered);
    println!(
        "logout: DELETE answered in {:?}; close frame {after:?} after the answer (reason {reason:?})",
        answered - start
    );
    assert_eq!(code, Some(4001));
    assert_eq!(held_code, Some(4001));
    assert!(
        after < Duration::from_secs(5),
        "close came {after:?} after the logout"
    );
    ping(&mut w2);
    let r = try_connect(&server, WS, Some(&alice.token))
        .err()
        .expect("refused");
    assert_eq!(r.status, 401);

    // DELETE /api/native/tokens/{id} from another session closes that token's connection.
    let (third, _) = another_session(&server, &alice);
    let (mut w3, _) = live(&server, &third);
    let start = Instant::now();
    server
        .delete(&format!("/api/native/tokens/{second_id}"), &third)
        .expect(204);
    let answered = Instant::now();
    let (code, _, at, _) = w2.expect_close(Duration::from_secs(5));
    println!(
        "revoke by id: DELETE answered in {:?}; close frame {:?} after",
        answered - start,
        at.saturating_duration_since(answered)
    );
    assert_eq!(code, Some(4001));
    ping(&mut w3);
}

#[test]
fn an_expiring_session_closes_with_4001() {
    let server = Server::start_test_clock(&["--session-ttl", "120"]);
    let key = crate::server::Key::generate(server.scratch(), "ed25519", "exp");
    let t = server.sign_in(&key, Some("expiring"));
    let expires = t.expires_at.clone().expect("a session expires");
    let expires = OffsetDateTime::parse(&expires, &Rfc3339).expect("expires_at");
    let (mut ws, _) = live(&server, &t.token);
    // A ticket's connection lives as long as the token that minted it, not 30 s.
    let ticket: Value = server
        .post_json("/api/native/ws-ticket", &json!({}), Some(&t.token))
        .expect(201)
        .json();
    let path = format!("{WS}?ticket={}", ticket["ticket"].as_str().unwrap());
    let mut wt = try_connect(&server, &path, None).unwrap_or_else(|r| panic!("{r:?}"));
    wt.hello();
    start_live(&mut wt);

    // Just before the expiry both connections stay open (a ping still gets its pong),
    // though the ticket's own 30 s are long gone.
    let now = server.advance_ms(119_999);
    let now = OffsetDateTime::parse(&now, &Rfc3339).expect("now");
    assert!(now < expires, "now {now}, expires {expires}");
    ping(&mut ws);
    ping(&mut wt);

    // At the expiry instant the clock's move closes both with 4001.
    let now = server.advance_ms(1);
    let now = OffsetDateTime::parse(&now, &Rfc3339).expect("now");
    assert!(now >= expires, "now {now}, expires {expires}");
    let (code, reason, _, frames) = ws.expect_close(FRAME_DEADLINE);
    let (ticket_code, _, _, _) = wt.expect_close(FRAME_DEADLINE);
    assert_eq!(code, Some(4001), "{reason}; frames {frames:?}");
    assert_eq!(
        ticket_code,
        Some(4001),
        "the ticket's connection at the token's expiry"
    );
    let r = try_connect(&server, WS, Some(&t.token))
        .err()
        .expect("an expired token is refused");
    assert_eq!(r.status, 401);
}

// ---- malformed frames, floods, shutdown ----

#[test]
fn malformed_frames_close_with_4000() {
    let server = Server::start_unlimited(&[]);
    let [alice]: [User; 1] = users(&server, "mf", 1).try_into().ok().unwrap();
    let big = format!("{{\"op\":\"ping\",\"pad\":\"{}\"}}", "x".repeat(70 * 1024));
    let texts = [
        "not json",
        "{",
        "[]",
        "{\"op\":\"nope\"}",
        "{\"op\":\"resume\"}",
        "{\"op\":\"resume\",\"since\":-1}",
        "{\"type\":\"hello\"}",
        big.as_str(),
    ];
    let mut failures = Vec::new();
    for text in texts {
        for when_live in [false, true] {
            let mut ws = connect(&server, &alice.token);
            ws.hello();
            if when_live {
                start_live(&mut ws);
            }
            ws.send_text(text);
            let (code, frames) = match ws.next(Duration::from_secs(3)) {
                Some(Incoming::Close(code, _, _)) => (code, vec![]),
                other => (None, vec![other]),
            };
            let shown: String = text.chars().take(40).collect();
            if code != Some(4000) {
                failures.push(format!(
                    "{shown:?} (live: {when_live}): {code:?}, frames {frames:?}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "not closed with 4000:\n{}",
        failures.join("\n")
    );
    let mut ws = connect(&server, &alice.token);
    ws.hello();
    ws.send_binary(b"{\"op\":\"ping\"}");
    let (code, _, _, _) = ws.expect_close(FRAME_DEADLINE);
    assert_eq!(code, Some(4000), "binary frame");
    // Just under the limit is fine.
    let mut ws = connect(&server, &alice.token);
    ws.hello();
    let room = create_room(&server, &alice.token, "r", "private");
    // A 60 KiB frame is within the 64 KiB limit: read, and refused as a post only.
    ws.send_json(&json!({"op": "send", "room_id": room, "body": "b".repeat(60 * 1024)}));
    let v = ws.frame(FRAME_DEADLINE);
    assert_eq!(
        (&v["type"], &v["error"]),
        (&json!("error"), &json!("invalid_request")),
        "{v}"
    );
    let body = "y".repeat(4000);
    ws.send_json(&json!({"op": "send", "room_id": room, "body": body}));
    let (v, _) = ws.until(FRAME_DEADLINE, |v| {
        v["type"] == "event" && v["event"] == "message.posted"
    });
    assert_eq!(v["data"]["body"].as_str().map(str::len), Some(4000));
}

/// The client frame type denies unknown fields (`deny_unknown_fields`): a frame with one is
/// not a valid client frame, whichever op it carries.
#[test]
fn unknown_fields_in_client_frames_close_with_4000() {
    let server = Server::start_unlimited(&[]);
    let [alice]: [User; 1] = users(&server, "uf", 1).try_into().ok().unwrap();
    let room = create_room(&server, &alice.token, "r", "private");
    let frames = [
        json!({"op": "resume", "since": 0, "extra": 1}),
        json!({"op": "send", "room_id": room, "body": "hi", "extra": 1}),
        json!({"op": "ping", "extra": 1}),
    ];
    let mut failures = Vec::new();
    for frame in &frames {
        let mut ws = connect(&server, &alice.token);
        ws.hello();
        ws.send_json(frame);
        match ws.next(Duration::from_secs(3)) {
            Some(Incoming::Close(Some(4000), _, _)) => {}
            other => failures.push(format!("{frame} -> {other:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "not closed with 4000:\n{}",
        failures.join("\n")
    );
}

#[test]
fn a_frame_flood_closes_with_4029() {
    // The per-connection frame limit is tested on a server with its default limits.
    let server = Server::start_limited(&[]);
    let [alice]: [User; 1] = users(&server, "fl", 1).try_into().ok().unwrap();
    let (mut ws, _) = live(&server, &alice.token);
    for _ in 0..200 {
        ws.send_json(&json!({"op": "ping"}));
    }
    let (code, reason, _, frames) = ws.expect_close(FRAME_DEADLINE);
    assert_eq!(code, Some(4029), "{reason}");
    let pongs = frames.iter().filter(|v| v["type"] == "pong").count();
    println!("{pongs} pongs before 4029 ({reason:?})");
    assert!(
        (39..200).contains(&pongs),
        "burst of 40 (one used by start_live): {pongs}"
    );
    // A polite client on the same server is unaffected.
    let (mut ws, _) = live(&server, &alice.token);
    for _ in 0..10 {
        ping(&mut ws);
    }
}

#[test]
fn sigterm_closes_every_connection_with_1001_and_exits() {
    let mut server = Server::start_unlimited(&[]);
    let us = users(&server, "st", 2);
    let room = create_room(&server, &us[0].token, "r", "public");
    join(&server, &us[1].token, &room).expect(200);
    let (w1, _) = live(&server, &us[0].token);
    let (w2, _) = live(&server, &us[1].token);
    let mut w3 = connect(&server, &us[1].token); // still in the hold before live delivery
    w3.hello();
    let mut w4 = connect(&server, &us[0].token); // resumed
    w4.hello();
    w4.send_json(&json!({"op": "resume", "since": 0}));
    w4.until(FRAME_DEADLINE, |v| v["type"] == "resumed");
    let mut conns = [w1, w2, w3, w4];

    let start = Instant::now();
    let status = std::thread::scope(|scope| {
        let closes = scope.spawn(|| {
            conns
                .iter_mut()
                .map(|ws| ws.expect_close(Duration::from_secs(10)).0)
                .collect::<Vec<_>>()
        });
        let status = server.terminate(Duration::from_secs(10));
        let codes = closes.join().unwrap();
        assert_eq!(codes, vec![Some(1001); 4], "every connection gets 1001");
        status
    });
    println!("SIGTERM to exit: {:?} ({status})", start.elapsed());
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(start.elapsed() < Duration::from_secs(10));
}

/// `latchkey_ws_connections` from `/metrics`.
fn ws_connections(server: &Server) -> u64 {
    let text = server.get("/metrics", None).expect(200).body;
    text.lines()
        .find_map(|l| l.strip_prefix("latchkey_ws_connections "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no latchkey_ws_connections in /metrics"))
}

#[test]
fn a_slow_consumer_is_closed_with_4008_and_resumes() {
    // A client that never reads: once the socket buffers are full, the server's queue of
    // 1024 frames overflows and the hub closes the connection rather than grow.
    let server = Server::start_unlimited(&[]);
    let [alice]: [User; 1] = users(&server, "slow", 1).try_into().ok().unwrap();
    let room = create_room(&server, &alice.token, "r", "private");
    let mut stalled = raw_connect(&server, &alice.token);
    let (mut ws, _) = live(&server, &alice.token);
    assert_eq!(ws_connections(&server), 2);
    let body = "z".repeat(4000);
    let mut sent = Vec::new();
    // A deadline, not a speed claim: each post is two fsyncs (the log and the body-key
    // file), and CI runs this on two shared cores.
    let end = Instant::now() + Duration::from_secs(120);
    loop {
        sent.push(posted(&server, &alice.token, &room, &body, &[]).1);
        // The reading connection keeps up.
        while let Some(item) = ws.try_next() {
            assert!(
                !matches!(item, Incoming::Close(..)),
                "the reader was closed: {item:?}"
            );
        }
        // The hub forgets a connection as soon as it closes it.
        if sent.len() % 50 == 0 && ws_connections(&server) < 2 {
            break;
        }
        assert!(
            Instant::now() < end,
            "no overflow after {} posts",
            sent.len()
        );
    }
    println!(
        "the stalled connection overflowed after {} posts",
        sent.len()
    );
    ping(&mut ws);

    // Reading it now: hello, some events in order, then the close with 4008.
    stalled
        .get_ref()
        .set_read_timeout(Some(FRAME_DEADLINE))
        .unwrap();
    let mut got = Vec::new();
    let code = loop {
        match stalled.read().expect("read the stalled socket") {
            tungstenite::Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "event" {
                    got.push(v["seq"].as_u64().unwrap());
                }
            }
            tungstenite::Message::Close(f) => break f.map(|f| u16::from(f.code)),
            _ => {}
        }
    };
    assert_eq!(code, Some(4008));
    let got: Vec<u64> = got.into_iter().filter(|s| sent.contains(s)).collect();
    assert!(
        got.len() < sent.len(),
        "all {} frames came anyway",
        got.len()
    );
    assert_eq!(
        got[..],
        sent[..got.len()],
        "what came, came in order without gaps"
    );
    // The client resumes from its last seq and gets the rest.
    let mut f = Follower::new("slow");
    f.cursor = *got.last().unwrap_or(&0);
    f.connect(&server, &alice.token);
    f.wait_resumed(FRAME_DEADLINE);
    let rest: Vec<u64> = f.seqs().into_iter().filter(|s| sent.contains(s)).collect();
    assert_eq!(rest[..], sent[got.len()..]);
}

/// A WebSocket that nobody reads (no reader thread): what the server sends piles up.
fn raw_connect(server: &Server, token: &str) -> tungstenite::WebSocket<std::net::TcpStream> {
    use tungstenite::client::IntoClientRequest;
    let url = format!("{}{WS}", server.url().replacen("http://", "ws://", 1));
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    let stream = std::net::TcpStream::connect(server.url().trim_start_matches("http://")).unwrap();
    let (ws, _) = tungstenite::client::client(req, stream).unwrap();
    ws
}

mod window_and_disable {
    //! The configurable resume window, and a disabled user's connections.

    use crate::chat::{connect, create_room, live, post, User};
    use crate::server::{Key, Server};
    use crate::support::latchkey;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn a_resume_older_than_the_window_fails_too_old() {
        let server = Server::start(&["--resume-window", "3"]);
        let alice = User::new(&server, "alice");
        let room = create_room(&server, &alice.token, "r", "public");
        for i in 0..5 {
            post(&server, &alice.token, &room, &format!("m{i}"), &[]).expect(201);
        }
        let mut ws = connect(&server, &alice.token);
        let hello = ws.hello();
        let head = hello["head"].as_u64().unwrap();
        ws.send_json(&json!({"op": "resume", "since": head - 4}));
        assert_eq!(
            ws.frame(Duration::from_secs(5)),
            json!({"type": "resume_failed", "reason": "too_old"})
        );
        // Within the window the same request replays.
        let mut ws = connect(&server, &alice.token);
        let head = ws.hello()["head"].as_u64().unwrap();
        ws.send_json(&json!({"op": "resume", "since": head - 3}));
        let (resumed, _) = ws.until(Duration::from_secs(5), |v| v["type"] == "resumed");
        assert_eq!(resumed["to"], head);
    }

    #[test]
    fn disabling_a_user_closes_their_connections_with_4001() {
        let tmp = tempfile::tempdir().unwrap();
        let mut server = Server::start(&[]);
        server.kill9();
        let root = Key::generate(tmp.path(), "ed25519", "root@ops");
        let pubfile = tmp.path().join("root.pub");
        std::fs::write(&pubfile, root.pubkey()).unwrap();
        let dir = server.data_dir().display().to_string();
        let out = latchkey(&[
            "admin",
            "--data-dir",
            &dir,
            "user",
            "add",
            "--handle",
            "root",
            "--key-file",
            &pubfile.display().to_string(),
            "--admin",
        ]);
        assert!(out.status.success());
        server.restart();
        let admin = server.sign_in(&root, None).token;
        let carol = User::new(&server, "carol");
        let (mut ws, _) = live(&server, &carol.token);
        server
            .send(
                "POST",
                "/api/admin/users/carol/disable",
                Some(&admin),
                Some(b"{}"),
            )
            .expect(200);
        let (code, _, _, _) = ws.expect_close(Duration::from_secs(5));
        assert_eq!(code, Some(4001));
        server.get("/api/native/me", Some(&carol.token)).expect(401);
    }
}

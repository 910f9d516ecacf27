//! The hardening issue's defects (issue 14), one test each, over the real binary: the
//! per-key sign-in limit, per-user limits on every write route, caps on names and
//! comments, the history cursor, former members on REST and WS alike, every WS frame
//! counted, escaped admin output, reserved handles and the per-user WS ticket cap.

use crate::chat::{
    add_member, connect, create_room, history, join, post, posted, remove_member, try_connect,
    User, FRAME_DEADLINE, ROOMS, WS,
};
use crate::server::{Key, Resp, Server, NAMESPACE};
use crate::support::{latchkey, repo_root, stderr, stdout};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Asserts a 429 `rate_limited` in the JSON shape with a whole-second `Retry-After` >= 1.
#[track_caller]
fn assert_limited(r: &Resp) {
    assert_eq!(r.status, 429, "{}: {}", r.what, r.body);
    let body: Value = serde_json::from_str(&r.body).expect("JSON error body");
    assert_eq!(body["error"], "rate_limited", "{}", r.body);
    let secs: u64 = r
        .retry_after
        .as_deref()
        .expect("Retry-After on a 429")
        .parse()
        .expect("Retry-After in whole seconds");
    assert!(secs >= 1, "Retry-After {secs}");
}

/// A JSON request from the client address `ip` (behind `--trusted-proxy 127.0.0.1/32`).
fn post_from(server: &Server, ip: &str, path: &str, body: &Value) -> Resp {
    let bytes = serde_json::to_vec(body).unwrap();
    server.request(
        "POST",
        path,
        &[
            ("Content-Type", "application/json"),
            ("X-Forwarded-For", ip),
        ],
        Some(&bytes),
    )
}

fn challenge_from(server: &Server, ip: &str, key: &Key) -> Value {
    post_from(
        server,
        ip,
        "/api/native/challenge",
        &json!({ "public_key": key.pubkey() }),
    )
    .expect(201)
    .json()
}

fn redeem_from(server: &Server, ip: &str, challenge_id: &str, signature: &str) -> Resp {
    post_from(
        server,
        ip,
        "/api/native/token",
        &json!({ "challenge_id": challenge_id, "signature": signature }),
    )
}

// ---- 1. the per-key sign-in limit ----

#[test]
fn junk_signatures_for_a_key_never_lock_its_owner_out() {
    let server = Server::start_limited_test_clock(&["--trusted-proxy", "127.0.0.1/32"]);
    let victim = Key::generate(server.scratch(), "ed25519", "victim@laptop");
    let home = "10.1.0.1";
    let ch = challenge_from(&server, home, &victim);
    let sig = victim.sign(ch["message"].as_str().unwrap().as_bytes(), NAMESPACE);
    redeem_from(&server, home, ch["challenge_id"].as_str().unwrap(), &sig).expect(201);

    // The attacker knows the public key: one challenge, then the spent id replayed with
    // junk, each from a fresh address so that no per-IP limit is what stops it.
    let unknown = redeem_from(
        &server,
        "10.2.0.1",
        &uuid::Uuid::new_v4().to_string(),
        "junk",
    );
    let generic = unknown.expect_error(401, "challenge_invalid");
    let spent = challenge_from(&server, "10.2.0.1", &victim);
    let spent_id = spent["challenge_id"].as_str().unwrap();
    redeem_from(&server, "10.2.0.1", spent_id, "junk").expect(401);
    for i in 0..12 {
        let r = redeem_from(&server, &format!("10.3.0.{i}"), spent_id, "junk");
        let e = r.expect_error(401, "challenge_invalid");
        assert_eq!(
            e.message, generic.message,
            "a spent challenge answers like an unknown one"
        );
    }
    // And fresh challenges with junk signatures, as many as the attacker likes.
    for i in 0..12 {
        let ip = format!("10.4.0.{i}");
        let ch = challenge_from(&server, &ip, &victim);
        let r = redeem_from(&server, &ip, ch["challenge_id"].as_str().unwrap(), "junk");
        assert!(
            matches!(r.status, 401 | 400 | 429),
            "{}: {}",
            r.what,
            r.body
        );
    }
    // The owner signs in from home, at once, with the clock standing still.
    let ch = challenge_from(&server, home, &victim);
    let sig = victim.sign(ch["message"].as_str().unwrap().as_bytes(), NAMESPACE);
    let r = redeem_from(&server, home, ch["challenge_id"].as_str().unwrap(), &sig);
    assert_eq!(
        r.status, 201,
        "a valid signature must never be refused by the per-key limit: {}",
        r.body
    );
}

// ---- 2. every write route is limited per user ----

/// A request body for `op` (an OpenAPI operation): for anonymous routes every property of
/// the request schema as the string "x" (well-formed, so the handler's own limit runs);
/// for authenticated routes a body that is not JSON, so nothing is written.
fn junk_body(doc: &Value, op: &Value, anonymous: bool) -> Option<(String, Vec<u8>)> {
    let content = op["requestBody"]["content"].as_object()?;
    if !anonymous {
        return Some(("application/json".into(), b"not json".to_vec()));
    }
    let schema = &content.get("application/json")?["schema"];
    let name = schema["$ref"].as_str()?.rsplit('/').next()?;
    let props = doc["components"]["schemas"][name]["properties"].as_object()?;
    let body: serde_json::Map<String, Value> =
        props.keys().map(|k| (k.clone(), json!("x"))).collect();
    Some((
        "application/json".into(),
        serde_json::to_vec(&body).unwrap(),
    ))
}

/// An admin (`root`) and a plain user, on a limited test-clock server.
fn admin_world() -> (Server, String, String) {
    let mut server = Server::start_limited_test_clock(&[]);
    server.kill9();
    let root_key = Key::generate(server.scratch(), "ed25519", "root@ops");
    let pubfile = server.scratch().join("root.pub");
    std::fs::write(&pubfile, root_key.pubkey()).unwrap();
    let out = latchkey(&[
        "admin",
        "--data-dir",
        &server.data_dir().display().to_string(),
        "user",
        "add",
        "--handle",
        "ops",
        "--key-file",
        &pubfile.display().to_string(),
        "--admin",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    server.restart();
    let root = server.sign_in(&root_key, None).token;
    let alice = Key::generate(server.scratch(), "ed25519", "alice@x");
    let alice = server.sign_in(&alice, Some("alice")).token;
    (server, root, alice)
}

#[test]
fn every_write_route_in_the_route_table_is_rate_limited() {
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("proto-docs/openapi.json")).unwrap(),
    )
    .unwrap();
    let (server, root, alice) = admin_world();
    let mut checked = 0;
    let mut unlimited = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method = method.to_uppercase();
            if !matches!(method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE") {
                continue;
            }
            // Logging out spends the credential it presents: one per session, and
            // sessions are minted under the sign-in limits.
            if method == "DELETE" && path == "/api/native/token" {
                continue;
            }
            let security = op["security"].as_array().cloned().unwrap_or_default();
            let anonymous = security.is_empty();
            let bearer = if path.starts_with("/api/admin/") {
                Some(root.as_str())
            } else if anonymous {
                None
            } else {
                Some(alice.as_str())
            };
            let concrete = path
                .split('/')
                .map(|s| {
                    if s.starts_with('{') {
                        uuid::Uuid::new_v4().to_string()
                    } else {
                        s.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            let body = junk_body(&doc, op, anonymous);
            // A full budget for every route: the test clock moves a minute on.
            server.advance(60);
            let auth = bearer.map(|t| format!("Bearer {t}"));
            let mut refused = None;
            for _ in 0..31 {
                let mut headers: Vec<(&str, &str)> = Vec::new();
                if let Some((ct, _)) = &body {
                    headers.push(("Content-Type", ct));
                }
                if let Some(a) = &auth {
                    headers.push(("Authorization", a));
                }
                let r = server.request(
                    &method,
                    &concrete,
                    &headers,
                    body.as_ref().map(|b| &b.1[..]),
                );
                assert!(r.status < 500, "{}: {}", r.what, r.body);
                if r.status == 429 {
                    refused = Some(r);
                    break;
                }
            }
            match refused {
                Some(r) => assert_limited(&r),
                None => unlimited.push(format!("{method} {path}")),
            }
            checked += 1;
        }
    }
    assert!(checked >= 25, "only {checked} write routes found");
    assert!(
        unlimited.is_empty(),
        "write routes without a limit (31 requests, no 429): {unlimited:?}"
    );
}

/// Write routes outside the OpenAPI document, each with the limit it has instead.
const WRITE_ROUTES_OUTSIDE_OPENAPI: &[(&str, &str, &str)] = &[
    (
        "POST",
        "/device/challenge",
        "the challenge limit per address",
    ),
    ("POST", "/device/session", "the token limit per address"),
    (
        "POST",
        "/device/approve",
        "the user-code lookup limits per address and user",
    ),
    (
        "POST",
        "/device/deny",
        "the user-code lookup limits per address and user",
    ),
    (
        "POST",
        "/device/sign-out",
        "revokes the browser's own session: once per session, minted under sign-in limits",
    ),
    (
        "POST",
        "/api/test/clock",
        "mounted only with serve --test-clock",
    ),
];

/// Every `(METHOD, path)` that writes, as the route modules register them.
fn registered_write_routes() -> BTreeSet<(String, String)> {
    let dir = repo_root().join("crates/latchkey-server/src/routes");
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for chunk in text.split("web::resource(\"").skip(1) {
            let route = chunk.split('"').next().unwrap().to_string();
            let until_next = chunk.split(".service(").next().unwrap();
            for method in ["post", "put", "patch", "delete"] {
                if until_next.contains(&format!("web::{method}()")) {
                    out.insert((method.to_uppercase(), route.clone()));
                }
            }
        }
    }
    out
}

#[test]
fn every_registered_write_route_is_in_the_openapi_document_or_listed_with_its_limit() {
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("proto-docs/openapi.json")).unwrap(),
    )
    .unwrap();
    let routes = registered_write_routes();
    assert!(routes.len() >= 30, "the route scan found only {routes:?}");
    let missing: Vec<_> = routes
        .iter()
        .filter(|(method, path)| {
            let in_doc = doc["paths"][path.as_str()][method.to_lowercase()].is_object();
            let listed = WRITE_ROUTES_OUTSIDE_OPENAPI
                .iter()
                .any(|(m, p, _)| m == method && p == path);
            !in_doc && !listed
        })
        .collect();
    assert!(
        missing.is_empty(),
        "write routes the limit test does not reach: {missing:?}"
    );
}

/// Rows and bytes (keys and values) of the rooms read model of a stopped server.
fn rooms_model_size(server: &Server) -> (usize, usize) {
    use latchkey_store::{EventStore, SledStore, StoreOptions};
    let store = SledStore::open(&server.data_dir(), StoreOptions::default()).unwrap();
    let model = store.read_model("rooms").unwrap();
    let mut size = (0, 0);
    for row in model.iter() {
        let (k, v) = row.unwrap();
        size.0 += 1;
        size.1 += k.len() + v.len();
    }
    size
}

/// Joins and leaves `n` times; then stops the server cleanly and measures the model.
fn cycles(server: &mut Server, bob: &User, room: &str, n: usize) -> (usize, usize) {
    for _ in 0..n {
        join(server, &bob.token, room).expect(200);
        crate::chat::leave(server, &bob.token, room).expect(204);
    }
    server.terminate(std::time::Duration::from_secs(10));
    let size = rooms_model_size(server);
    server.restart();
    size
}

#[test]
fn a_membership_change_writes_the_same_rows_however_long_the_history() {
    let mut server = Server::start(&[]);
    let alice = User::new(&server, "alice");
    let bob = User::new(&server, "bob");
    let room = create_room(&server, &alice.token, "lobby", "public");
    cycles(&mut server, &bob, &room, 1);
    let a = cycles(&mut server, &bob, &room, 0);
    let b = cycles(&mut server, &bob, &room, 1);
    let c = cycles(&mut server, &bob, &room, 300);
    let d = cycles(&mut server, &bob, &room, 1);
    let early = (b.0 - a.0, b.1 - a.1);
    let late = (d.0 - c.0, d.1 - c.1);
    // One interval row per join/leave: the leave closes it in place; nothing else grows.
    assert_eq!(
        early.0, 1,
        "rows added by one join and leave, early: {early:?}"
    );
    assert_eq!(
        late.0, 1,
        "rows added by one join and leave after 300 more: {late:?}"
    );
    // Bytes per change stay constant (a seq's encoding may grow by a few bytes).
    assert!(
        late.1 <= early.1 + 8,
        "bytes per join and leave grew with history: {early:?} then {late:?}"
    );
}

// ---- 3. caps and control characters ----

#[test]
fn names_and_comments_over_256_bytes_or_with_control_characters_are_refused() {
    let server = Server::start(&[]);
    let alice = User::new(&server, "alice");
    let key = Key::generate(server.scratch(), "ed25519", "k@x");
    let bare = key.pubkey();
    let bare = bare
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let long = "c".repeat(300);
    for comment in ["evil\u{1b}[2J\u{1b}]0;pwned\u{7}", long.as_str()] {
        let line = format!("{bare} {comment}");
        server
            .post_json(
                "/api/native/challenge",
                &json!({ "public_key": line }),
                None,
            )
            .expect_error(400, "invalid_request");
        server
            .post_json(
                "/api/native/keys/challenge",
                &json!({ "public_key": line }),
                Some(&alice.token),
            )
            .expect_error(400, "invalid_request");
    }
    let bad_names = ["pat\u{1b}[31m", "a\u{7}b", "tab\there", "x\u{202e}y"];
    for name in bad_names {
        server
            .post_json(
                "/api/native/tokens",
                &json!({ "name": name }),
                Some(&alice.token),
            )
            .expect_error(400, "invalid_request");
        server
            .post_json(
                ROOMS,
                &json!({ "name": name, "visibility": "public" }),
                Some(&alice.token),
            )
            .expect_error(400, "invalid_request");
    }
    // A device name at sign-in: refused, not stored (and not silently cut).
    for device_name in ["laptop\u{1b}[2J", long.as_str()] {
        let ch = server.challenge(&alice.key.pubkey());
        let sig = alice.key.sign(ch.message.as_bytes(), NAMESPACE);
        server
            .post_json(
                "/api/native/token",
                &json!({ "challenge_id": ch.challenge_id, "signature": sig, "device_name": device_name }),
                None,
            )
            .expect_error(400, "invalid_request");
    }
    // A handle with a control character.
    let k2 = Key::generate(server.scratch(), "ed25519", "h@x");
    let ch = server.challenge(&k2.pubkey());
    let sig = k2.sign(ch.message.as_bytes(), NAMESPACE);
    server
        .redeem(&ch.challenge_id, &sig, Some("bob\u{1b}"))
        .expect_error(400, "invalid_request");
    // Ordinary names still pass.
    server
        .post_json(
            "/api/native/tokens",
            &json!({ "name": "ci runner" }),
            Some(&alice.token),
        )
        .expect(201);
    create_room(&server, &alice.token, "Général 🎉", "public");
}

// ---- 4. the history cursor ----

#[test]
fn a_late_joiner_paging_back_never_sees_a_seq_it_may_not_see() {
    let server = Server::start(&[]);
    let alice = User::new(&server, "alice");
    let bob = User::new(&server, "bob");
    let room = create_room(&server, &alice.token, "busy", "public");
    // More messages before Bob joins than one history request scans (2,000).
    std::thread::scope(|s| {
        for t in 0..4 {
            let (server, alice, room) = (&server, &alice, &room);
            s.spawn(move || {
                for i in 0..520 {
                    posted(server, &alice.token, room, &format!("early {t}/{i}"), &[]);
                }
            });
        }
    });
    join(&server, &bob.token, &room).expect(200);
    let mut expected = BTreeSet::new();
    for i in 0..5 {
        expected.insert(posted(&server, &alice.token, &room, &format!("late {i}"), &[]).1);
        // A message Bob may not see, inside his membership.
        posted(&server, &alice.token, &room, "to myself", &[&alice.id]);
    }
    // Page back with every page size the cursor might trip on.
    for limit in [1, 2, 3, 50] {
        let mut before: Option<u64> = None;
        let mut seen = BTreeSet::new();
        for _ in 0..100 {
            let q = match before {
                Some(b) => format!("limit={limit}&before={b}"),
                None => format!("limit={limit}"),
            };
            let page: Value = history(&server, &bob.token, &room, &q).expect(200).json();
            for m in page["messages"].as_array().unwrap() {
                seen.insert(m["seq"].as_u64().unwrap());
            }
            match page["next_before"].as_u64() {
                Some(b) => {
                    assert!(
                        expected.contains(&b),
                        "next_before {b} names a seq Bob may not see (limit {limit}): {page}"
                    );
                    before = Some(b);
                }
                None => break,
            }
        }
        assert_eq!(seen, expected, "Bob's history with limit {limit}");
    }
}

// ---- 5. former members, on REST and WS alike ----

/// The `message.posted` ids of `room` that a `resume` from 0 replays to `token`.
fn resumed_messages(server: &Server, token: &str, room: &str) -> BTreeSet<String> {
    let mut ws = connect(server, token);
    ws.hello();
    ws.send_json(&json!({"op": "resume", "since": 0}));
    let (_, frames) = ws.until(FRAME_DEADLINE, |v| v["type"] == "resumed");
    frames
        .iter()
        .filter(|v| v["room_id"] == room && v["event"] == "message.posted")
        .map(|v| v["data"]["message_id"].as_str().unwrap().to_string())
        .collect()
}

fn rest_messages(server: &Server, token: &str, room: &str) -> BTreeSet<String> {
    let page: Value = history(server, token, room, "limit=200").expect(200).json();
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_former_member_reads_their_membership_period_on_rest_and_ws_alike() {
    let server = Server::start(&[]);
    let alice = User::new(&server, "alice");
    let bob = User::new(&server, "bob");
    let carol = User::new(&server, "carol");
    let private = create_room(&server, &alice.token, "private", "private");
    posted(&server, &alice.token, &private, "before bob", &[]);
    add_member(&server, &alice.token, &private, &bob.id).expect(204);
    let (m1, _) = posted(&server, &alice.token, &private, "while bob 1", &[]);
    let (m2, _) = posted(&server, &bob.token, &private, "while bob 2", &[]);
    remove_member(&server, &alice.token, &private, &bob.id).expect(204);
    posted(&server, &alice.token, &private, "after bob", &[]);
    let during: BTreeSet<String> = [m1, m2].into_iter().collect();

    let ws = resumed_messages(&server, &bob.token, &private);
    assert_eq!(ws, during, "WS resume gives Bob his membership period");
    let rest = rest_messages(&server, &bob.token, &private);
    assert_eq!(rest, ws, "REST history gives Bob the same set as WS resume");

    // Never a member: a private room is not found, a public one is 403.
    history(&server, &carol.token, &private, "").expect_error(404, "not_found");
    assert!(resumed_messages(&server, &carol.token, &private).is_empty());
    let public = create_room(&server, &alice.token, "public", "public");
    post(&server, &alice.token, &public, "hi", &[]).expect(201);
    history(&server, &carol.token, &public, "").expect_error(403, "not_a_member");
    assert!(resumed_messages(&server, &carol.token, &public).is_empty());
}

// ---- 6. every WS frame counts ----

#[test]
fn a_flood_of_ping_control_frames_is_closed_with_4029() {
    let server = Server::start_limited_test_clock(&[]);
    let alice = User::new(&server, "alice");
    let mut ws = connect(&server, &alice.token);
    ws.hello();
    for _ in 0..200 {
        ws.send_ping(b"p");
    }
    let (code, reason, _, _) = ws.expect_close(FRAME_DEADLINE);
    assert_eq!(code, Some(4029), "closed with {code:?} {reason:?}");
}

// ---- 7. terminal escapes in admin output ----

#[test]
fn admin_text_output_escapes_control_characters_that_got_into_the_log() {
    use latchkey_domain::{sshkey, Actor, Event, KeyId, Timestamp, UserEvent, UserId};
    use latchkey_store::{AppendRequest, EventStore, ExpectedVersion, SledStore, StoreOptions};
    let mut server = Server::start(&[]);
    server.kill9();
    let key = Key::generate(server.scratch(), "ed25519", "x");
    let mut parsed = sshkey::parse_public_key(&key.pubkey()).unwrap();
    parsed.comment = "evil\u{1b}[2J\u{1b}]0;pwned\u{7}".into();
    let user = UserId(uuid::Uuid::new_v4());
    {
        // An old log, written before comments were checked.
        let store = SledStore::open(&server.data_dir(), StoreOptions::default()).unwrap();
        store
            .append_blocking(AppendRequest {
                stream: user.stream(),
                expected: ExpectedVersion::Exact(0),
                events: vec![Event::User(UserEvent::UserRegistered {
                    user_id: user,
                    handle: "evil".into(),
                    key_id: KeyId(uuid::Uuid::new_v4()),
                    key: parsed,
                    admin: false,
                    at: Timestamp(1),
                })],
                command_id: uuid::Uuid::new_v4(),
                actor: Actor::System,
            })
            .unwrap();
    }
    // The server brings its read models up to the head, then stops.
    server.restart();
    server.kill9();
    let dir = server.data_dir().display().to_string();
    let stream = user.stream().to_string();
    for args in [
        vec!["state", "user", "evil"],
        vec!["log"],
        vec!["stream", stream.as_str()],
    ] {
        let mut all = vec!["admin", "--data-dir", dir.as_str()];
        all.extend(args.iter().copied());
        let out = latchkey(&all);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(
            !out.stdout.iter().any(|b| *b == 0x1b || *b == 0x07),
            "{args:?} printed a raw control byte: {:?}",
            stdout(&out)
        );
        if args[0] == "state" {
            assert!(
                stdout(&out).contains("evil\\x1b[2J\\x1b]0;pwned\\x07"),
                "the comment shows escaped: {}",
                stdout(&out)
            );
        }
    }
}

// ---- 8. reserved handles ----

#[test]
fn reserved_handles_are_refused_and_never_derived() {
    let server = Server::start(&[]);
    for h in [
        "admin",
        "root",
        "latchkey",
        "system",
        "administrator",
        "support",
        "security",
    ] {
        let key = Key::generate(server.scratch(), "ed25519", "someone@x");
        let ch = server.challenge(&key.pubkey());
        let sig = key.sign(ch.message.as_bytes(), NAMESPACE);
        server
            .redeem(&ch.challenge_id, &sig, Some(h))
            .expect_error(409, "handle_taken");
    }
    for comment in ["Administrator@host", "root@box", "admin"] {
        let key = Key::generate(server.scratch(), "ed25519", comment);
        let t = server.sign_in(&key, None);
        let reserved = ["admin", "root", "administrator"];
        assert!(
            !reserved.contains(&t.user.handle.as_str()),
            "the comment {comment:?} derived the reserved handle {:?}",
            t.user.handle
        );
    }
}

// ---- 9. WS tickets per user ----

fn ticket(server: &Server, token: &str) -> String {
    let v: Value = server
        .send("POST", "/api/native/ws-ticket", Some(token), None)
        .expect(201)
        .json();
    v["ticket"].as_str().unwrap().to_string()
}

#[test]
fn a_user_holds_at_most_32_outstanding_ws_tickets_and_the_oldest_goes_first() {
    let server = Server::start(&[]);
    let alice = User::new(&server, "alice");
    let tickets: Vec<String> = (0..33).map(|_| ticket(&server, &alice.token)).collect();
    let first = try_connect(&server, &format!("{WS}?ticket={}", tickets[0]), None);
    match first {
        Ok(_) => panic!("the oldest of 33 tickets must have been evicted"),
        Err(r) => assert_eq!(r.status, 401, "{}", r.body),
    }
    for t in [&tickets[1], &tickets[32]] {
        let mut ws = try_connect(&server, &format!("{WS}?ticket={t}"), None)
            .unwrap_or_else(|r| panic!("a kept ticket was refused: {} {}", r.status, r.body));
        ws.hello();
    }
}

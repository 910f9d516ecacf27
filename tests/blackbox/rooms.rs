//! Rooms over REST against a real `latchkey serve` (DESIGN §4 visibility rule, §7 room
//! routes): every route's happy path and refusals, history paging, history filtered by
//! membership intervals and targets, and private rooms that answer like missing ones.

use crate::chat::{
    add_member, create_room, full_history, history, join, leave, pat, post, posted, remove_member,
    room_path, seqs, try_create_room, users, User, ROOMS,
};
use crate::server::Server;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

fn room_info(server: &Server, token: &str, room: &str) -> Value {
    server
        .get(&room_path(room, ""), Some(token))
        .expect(200)
        .json()
}

fn room_ids(list: &Value) -> Vec<String> {
    let mut ids: Vec<String> = list["rooms"]
        .as_array()
        .unwrap_or_else(|| panic!("rooms list: {list}"))
        .iter()
        .map(|r| r["id"].as_str().expect("room id").to_string())
        .collect();
    ids.sort();
    ids
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn mine(server: &Server, user: &User) -> Vec<String> {
    room_ids(&server.get(ROOMS, Some(&user.token)).expect(200).json())
}

fn discover(server: &Server, user: &User) -> Vec<String> {
    let list = server
        .get(&format!("{ROOMS}?discover=public"), Some(&user.token))
        .expect(200)
        .json();
    room_ids(&list)
}

fn check_room_info(v: &Value, name: &str, visibility: &str, owner: &str) {
    let id = v["id"].as_str().unwrap_or_else(|| panic!("id: {v}"));
    Uuid::parse_str(id).unwrap_or_else(|e| panic!("room id {id:?} is not a UUID: {e}"));
    assert_eq!(v["name"], name, "{v}");
    assert_eq!(v["visibility"], visibility, "{v}");
    assert_eq!(v["owner"], owner, "{v}");
    let at = v["created_at"]
        .as_str()
        .unwrap_or_else(|| panic!("created_at: {v}"));
    assert!(at.ends_with('Z'), "created_at is not UTC: {at}");
    OffsetDateTime::parse(at, &Rfc3339).unwrap_or_else(|e| panic!("created_at {at:?}: {e}"));
    assert_eq!(
        v.as_object().map(|o| o.len()),
        Some(5),
        "RoomInfo has exactly id, name, visibility, owner, created_at: {v}"
    );
}

/// The 404 answer for a room id nobody ever created, on `method path`.
fn missing_room_body(
    server: &Server,
    token: &str,
    method: &str,
    rest: &str,
    body: Option<&Value>,
) -> String {
    let random = Uuid::new_v4().to_string();
    call(server, token, method, &room_path(&random, rest), body).expect_error(404, "not_found");
    call(server, token, method, &room_path(&random, rest), body).body
}

fn call(
    server: &Server,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> crate::server::Resp {
    let bytes = body.map(|b| serde_json::to_vec(b).unwrap());
    server.send(method, path, Some(token), bytes.as_deref())
}

// ---- create, list, get, discover ----

#[test]
fn create_list_get_and_discover_rooms() {
    let server = Server::start_unlimited(&[]);
    let [alice, bob]: [User; 2] = users(&server, "cl", 2).try_into().ok().unwrap();

    let resp = try_create_room(&server, &alice.token, "  Lobby  ", "public").expect(201);
    assert!(
        resp.content_type.starts_with("application/json"),
        "{resp:?}"
    );
    let lobby: Value = resp.json();
    check_room_info(&lobby, "Lobby", "public", &alice.id);
    let lobby_id = lobby["id"].as_str().unwrap().to_string();

    let secret: Value = try_create_room(&server, &alice.token, "Secret", "private")
        .expect(201)
        .json();
    check_room_info(&secret, "Secret", "private", &alice.id);
    let secret_id = secret["id"].as_str().unwrap().to_string();
    assert_ne!(lobby_id, secret_id);

    // GET answers the same RoomInfo as the create did.
    assert_eq!(room_info(&server, &alice.token, &lobby_id), lobby);
    assert_eq!(room_info(&server, &alice.token, &secret_id), secret);
    // A public room is visible to anyone signed in; a private one is not.
    assert_eq!(room_info(&server, &bob.token, &lobby_id), lobby);
    server
        .get(&room_path(&secret_id, ""), Some(&bob.token))
        .expect_error(404, "not_found");

    assert_eq!(
        mine(&server, &alice),
        sorted(vec![lobby_id.clone(), secret_id.clone()])
    );
    assert_eq!(mine(&server, &bob), Vec::<String>::new());
    let public = discover(&server, &bob);
    assert!(public.contains(&lobby_id), "{public:?}");
    assert!(
        !public.contains(&secret_id),
        "a private room is discoverable: {public:?}"
    );

    // Joining makes it Bob's; leaving takes it away again.
    join(&server, &bob.token, &lobby_id).expect(200);
    assert_eq!(mine(&server, &bob), vec![lobby_id.clone()]);
    leave(&server, &bob.token, &lobby_id).expect(204);
    assert_eq!(mine(&server, &bob), Vec::<String>::new());
    // Adding to a private room makes it visible to the new member only.
    add_member(&server, &alice.token, &secret_id, &bob.id).expect(204);
    assert_eq!(mine(&server, &bob), vec![secret_id.clone()]);
    assert_eq!(room_info(&server, &bob.token, &secret_id), secret);
    let public = discover(&server, &bob);
    assert!(!public.contains(&secret_id), "{public:?}");
}

#[test]
fn room_input_is_validated() {
    let server = Server::start_unlimited(&[]);
    let [alice]: [User; 1] = users(&server, "val", 1).try_into().ok().unwrap();
    let t = alice.token.as_str();

    try_create_room(&server, t, "x", "secret").expect_error(400, "invalid_request");
    try_create_room(&server, t, "", "public").expect_error(400, "invalid_request");
    try_create_room(&server, t, "   ", "public").expect_error(400, "invalid_request");
    try_create_room(&server, t, &"n".repeat(101), "public").expect_error(400, "invalid_request");
    // 100 characters (not bytes) is the limit.
    let name = "é".repeat(100);
    let v: Value = try_create_room(&server, t, &name, "private")
        .expect(201)
        .json();
    assert_eq!(v["name"], name.as_str());
    for body in [
        &b"not json"[..],
        br#"{"name":"x"}"#,
        br#"{"visibility":"public"}"#,
        br#"{"name":5,"visibility":"public"}"#,
    ] {
        server
            .send("POST", ROOMS, Some(t), Some(body))
            .expect_error(400, "invalid_request");
    }
    server
        .get(&format!("{ROOMS}?discover=private"), Some(t))
        .expect_error(400, "invalid_request");
    // A room id that is not a UUID is a room that does not exist.
    let missing = missing_room_body(&server, t, "GET", "", None);
    let resp = server.get(&room_path("not-a-uuid", ""), Some(t));
    resp.expect_error(404, "not_found");
    assert_eq!(resp.body, missing);
    let room = create_room(&server, t, "r", "public");
    for q in ["limit=0", "limit=201", "limit=x", "before=-1", "after=x"] {
        history(&server, t, &room, q).expect_error(400, "invalid_request");
    }
}

#[test]
fn room_routes_check_credentials_and_scopes() {
    let server = Server::start_unlimited(&[]);
    let [alice]: [User; 1] = users(&server, "sc", 1).try_into().ok().unwrap();
    let room = create_room(&server, &alice.token, "r", "public");
    posted(&server, &alice.token, &room, "hello", &[]);

    // No credential at all.
    server.get(ROOMS, None).expect_error(401, "unauthorized");
    server
        .get(&room_path(&room, "/messages"), None)
        .expect_error(401, "unauthorized");
    server
        .post_json(ROOMS, &json!({"name": "x", "visibility": "public"}), None)
        .expect_error(401, "unauthorized");

    // chat:read may look, not change; it is checked before the body is read.
    let reader = pat(&server, &alice, &["chat:read"]);
    server.get(ROOMS, Some(&reader)).expect(200);
    room_info(&server, &reader, &room);
    history(&server, &reader, &room, "").expect(200);
    try_create_room(&server, &reader, "x", "public").expect_error(403, "forbidden");
    server
        .send("POST", ROOMS, Some(&reader), Some(b"not json"))
        .expect_error(403, "forbidden");
    post(&server, &reader, &room, "hi", &[]).expect_error(403, "forbidden");
    join(&server, &reader, &room).expect_error(403, "forbidden");

    // chat:write alone may post, not read history.
    let writer = pat(&server, &alice, &["chat:write"]);
    posted(&server, &writer, &room, "from a writer", &[]);
    history(&server, &writer, &room, "").expect_error(403, "forbidden");
}

// ---- membership ----

#[test]
fn join_and_leave() {
    let server = Server::start_unlimited(&[]);
    let [alice, bob]: [User; 2] = users(&server, "jl", 2).try_into().ok().unwrap();
    let public = create_room(&server, &alice.token, "pub", "public");
    let private = create_room(&server, &alice.token, "priv", "private");
    let info = room_info(&server, &alice.token, &public);

    // Join answers the room; joining again changes nothing.
    let v: Value = join(&server, &bob.token, &public).expect(200).json();
    assert_eq!(v, info);
    let v: Value = join(&server, &bob.token, &public).expect(200).json();
    assert_eq!(v, info);
    // The owner joining their own room is a no-op too.
    join(&server, &alice.token, &public).expect(200);

    // A private room cannot be joined by a non-member: it "does not exist".
    let missing = missing_room_body(&server, &bob.token, "POST", "/join", None);
    let resp = join(&server, &bob.token, &private);
    resp.expect_error(404, "not_found");
    assert_eq!(
        resp.body, missing,
        "a private room must answer like a missing one"
    );
    // A member of a private room may "join" it again (idempotent).
    add_member(&server, &alice.token, &private, &bob.id).expect(204);
    join(&server, &bob.token, &private).expect(200);

    // Leave: 204; the owner cannot; a non-member of a public room is told so.
    let resp = leave(&server, &bob.token, &public).expect(204);
    assert!(resp.body.is_empty(), "204 with a body: {}", resp.body);
    leave(&server, &bob.token, &public).expect_error(403, "not_a_member");
    leave(&server, &alice.token, &public).expect_error(409, "conflict");
    leave(&server, &alice.token, &private).expect_error(409, "conflict");
    leave(&server, &bob.token, &private).expect(204);
    // Out of the private room, Bob no longer learns it exists.
    let missing = missing_room_body(&server, &bob.token, "POST", "/leave", None);
    let resp = leave(&server, &bob.token, &private);
    resp.expect_error(404, "not_found");
    assert_eq!(resp.body, missing);
    join(&server, &bob.token, &private).expect_error(404, "not_found");
    // Rejoining a public room works.
    join(&server, &bob.token, &public).expect(200);
}

#[test]
fn only_the_owner_manages_members() {
    let server = Server::start_unlimited(&[]);
    let [alice, bob, carol, dave]: [User; 4] = users(&server, "mm", 4).try_into().ok().unwrap();
    let public = create_room(&server, &alice.token, "pub", "public");
    let private = create_room(&server, &alice.token, "priv", "private");

    let resp = add_member(&server, &alice.token, &private, &bob.id).expect(204);
    assert!(resp.body.is_empty());
    // Adding a member twice changes nothing.
    add_member(&server, &alice.token, &private, &bob.id).expect(204);
    // A member who is not the owner may not add or remove.
    add_member(&server, &bob.token, &private, &carol.id).expect_error(403, "forbidden");
    remove_member(&server, &bob.token, &private, &alice.id).expect_error(403, "forbidden");
    // A non-member of a private room is told it does not exist, whoever they name.
    let body = json!({ "user_id": dave.id });
    let missing = missing_room_body(&server, &carol.token, "POST", "/members", Some(&body));
    let resp = add_member(&server, &carol.token, &private, &dave.id);
    resp.expect_error(404, "not_found");
    assert_eq!(resp.body, missing);
    let resp = add_member(&server, &carol.token, &private, &Uuid::new_v4().to_string());
    resp.expect_error(404, "not_found");
    assert_eq!(
        resp.body, missing,
        "an unknown user must not reveal the room"
    );
    let resp = remove_member(&server, &carol.token, &private, &bob.id);
    resp.expect_error(404, "not_found");
    // In a public room a non-owner gets 403.
    join(&server, &carol.token, &public).expect(200);
    add_member(&server, &carol.token, &public, &dave.id).expect_error(403, "forbidden");
    add_member(&server, &dave.token, &public, &dave.id).expect_error(403, "forbidden");
    remove_member(&server, &dave.token, &public, &carol.id).expect_error(403, "forbidden");
    // The owner: unknown users, bad ids, the owner, non-members.
    add_member(&server, &alice.token, &private, &Uuid::new_v4().to_string())
        .expect_error(404, "not_found");
    add_member(&server, &alice.token, &private, "nope").expect_error(400, "invalid_request");
    server
        .post_json(
            &room_path(&private, "/members"),
            &json!({}),
            Some(&alice.token),
        )
        .expect_error(400, "invalid_request");
    remove_member(&server, &alice.token, &private, &alice.id).expect_error(409, "conflict");
    remove_member(&server, &alice.token, &private, &dave.id).expect_error(403, "not_a_member");
    remove_member(&server, &alice.token, &private, "nope").expect_error(404, "not_found");

    // Removal takes effect at once: the removed member loses the room.
    let resp = remove_member(&server, &alice.token, &private, &bob.id).expect(204);
    assert!(resp.body.is_empty());
    server
        .get(&room_path(&private, ""), Some(&bob.token))
        .expect_error(404, "not_found");
    post(&server, &bob.token, &private, "still here?", &[]).expect_error(404, "not_found");
    // The owner adds to a public room too, and removes from it.
    add_member(&server, &alice.token, &public, &dave.id).expect(204);
    assert_eq!(mine(&server, &dave), vec![public.clone()]);
    remove_member(&server, &alice.token, &public, &dave.id).expect(204);
    assert_eq!(mine(&server, &dave), Vec::<String>::new());
    post(&server, &dave.token, &public, "hi", &[]).expect_error(403, "not_a_member");
}

// ---- posting ----

#[test]
fn posting_rules() {
    let server = Server::start_unlimited(&[]);
    let [alice, bob, carol]: [User; 3] = users(&server, "po", 3).try_into().ok().unwrap();
    let public = create_room(&server, &alice.token, "pub", "public");
    let private = create_room(&server, &alice.token, "priv", "private");
    join(&server, &bob.token, &public).expect(200);

    let v: Value = post(&server, &alice.token, &public, "first", &[])
        .expect(201)
        .json();
    let id = v["message_id"].as_str().expect("message_id");
    Uuid::parse_str(id).expect("message_id is a UUID");
    let first = v["seq"].as_u64().expect("seq");
    let (_, second) = posted(&server, &bob.token, &public, "second", &[]);
    assert!(second > first, "seqs grow: {first} then {second}");
    // Body limits: 1..=4000 bytes.
    posted(&server, &bob.token, &public, &"x".repeat(4000), &[]);
    posted(&server, &bob.token, &public, &"é".repeat(2000), &[]);
    for body in [
        "".to_string(),
        "   \n".to_string(),
        "x".repeat(4001),
        "é".repeat(2001),
    ] {
        post(&server, &bob.token, &public, &body, &[]).expect_error(400, "invalid_request");
    }
    // Targets must be current members (the sender may target themselves).
    posted(&server, &alice.token, &public, "to bob", &[&bob.id]);
    posted(&server, &alice.token, &public, "to me", &[&alice.id]);
    let resp = post(&server, &alice.token, &public, "to carol", &[&carol.id]);
    resp.expect_error(400, "invalid_request");
    post(&server, &alice.token, &public, "to ?", &["not-a-uuid"])
        .expect_error(400, "invalid_request");
    let random = Uuid::new_v4().to_string();
    post(&server, &alice.token, &public, "to ?", &[&random]).expect_error(400, "invalid_request");
    // reply_to must be an id.
    let req = json!({"body": "re", "reply_to": "nope"});
    server
        .post_json(&room_path(&public, "/messages"), &req, Some(&alice.token))
        .expect_error(400, "invalid_request");
    let req = json!({"body": "re", "reply_to": id});
    let resp = server.post_json(&room_path(&public, "/messages"), &req, Some(&bob.token));
    resp.expect(201);
    let page: Value = history(&server, &bob.token, &public, "limit=1")
        .expect(200)
        .json();
    assert_eq!(page["messages"][0]["reply_to"], id, "{page}");

    // Non-members: 403 not_a_member in a public room, 404 in a private one.
    post(&server, &carol.token, &public, "hi", &[]).expect_error(403, "not_a_member");
    let missing = missing_room_body(
        &server,
        &carol.token,
        "POST",
        "/messages",
        Some(&json!({"body": "hi"})),
    );
    let resp = post(&server, &carol.token, &private, "hi", &[]);
    resp.expect_error(404, "not_found");
    assert_eq!(resp.body, missing);
    // Even a valid-looking body does not tell a non-member anything more.
    let resp = post(&server, &carol.token, &private, "", &[]);
    resp.expect_error(404, "not_found");
}

// ---- history ----

#[test]
fn history_pages_with_before_after_and_limit() {
    let server = Server::start_unlimited(&[]);
    let [alice]: [User; 1] = users(&server, "hp", 1).try_into().ok().unwrap();
    let room = create_room(&server, &alice.token, "r", "private");
    let mut posts = Vec::new();
    for i in 0..12 {
        posts.push(posted(&server, &alice.token, &room, &format!("m{i}"), &[]));
    }
    let all: Vec<u64> = posts.iter().rev().map(|(_, s)| *s).collect(); // newest first

    let page: Value = history(&server, &alice.token, &room, "").expect(200).json();
    assert_eq!(
        seqs(page["messages"].as_array().unwrap()),
        all,
        "default page holds all 12"
    );
    assert!(
        page["next_before"].is_null(),
        "start of the room reached: {page}"
    );
    let m = &page["messages"][0];
    assert_eq!(m["body"], "m11");
    assert_eq!(m["message_id"], posts[11].0.as_str());
    assert_eq!(m["sender"], alice.id.as_str());
    assert_eq!(m["target_user_ids"], json!([]));
    assert!(m["reply_to"].is_null());
    assert!(
        m["sent_at"].as_str().is_some_and(|s| s.ends_with('Z')),
        "{m}"
    );
    let keys: Vec<&str> = m.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        sorted(keys.iter().map(|k| k.to_string()).collect()),
        sorted(
            [
                "message_id",
                "seq",
                "sender",
                "body",
                "target_user_ids",
                "reply_to",
                "sent_at"
            ]
            .iter()
            .map(|k| k.to_string())
            .collect()
        ),
        "history message fields"
    );

    // Pages of 5: 5, 5, 2, each continuing below the last.
    let p1: Value = history(&server, &alice.token, &room, "limit=5")
        .expect(200)
        .json();
    assert_eq!(seqs(p1["messages"].as_array().unwrap()), all[0..5]);
    assert_eq!(p1["next_before"].as_u64(), Some(all[4]), "{p1}");
    let p2: Value = history(
        &server,
        &alice.token,
        &room,
        &format!("limit=5&before={}", all[4]),
    )
    .expect(200)
    .json();
    assert_eq!(seqs(p2["messages"].as_array().unwrap()), all[5..10]);
    assert_eq!(p2["next_before"].as_u64(), Some(all[9]));
    let p3: Value = history(
        &server,
        &alice.token,
        &room,
        &format!("limit=5&before={}", all[9]),
    )
    .expect(200)
    .json();
    assert_eq!(seqs(p3["messages"].as_array().unwrap()), all[10..12]);
    assert!(p3["next_before"].is_null(), "{p3}");
    assert_eq!(seqs(&full_history(&server, &alice.token, &room, 5)), all);
    assert_eq!(seqs(&full_history(&server, &alice.token, &room, 1)), all);

    // after: only newer; before and after together: the open interval between them.
    let after: Value = history(&server, &alice.token, &room, &format!("after={}", all[3]))
        .expect(200)
        .json();
    assert_eq!(seqs(after["messages"].as_array().unwrap()), all[0..3]);
    let q = format!("after={}&before={}", all[8], all[2]);
    let between: Value = history(&server, &alice.token, &room, &q).expect(200).json();
    assert_eq!(seqs(between["messages"].as_array().unwrap()), all[3..8]);
    let q = format!("after={}&before={}&limit=2", all[8], all[2]);
    let between: Value = history(&server, &alice.token, &room, &q).expect(200).json();
    assert_eq!(seqs(between["messages"].as_array().unwrap()), all[3..5]);
    assert_eq!(between["next_before"].as_u64(), Some(all[4]));
    // Nothing there: an empty page.
    let q = format!("after={}", all[0]);
    let empty: Value = history(&server, &alice.token, &room, &q).expect(200).json();
    assert_eq!(empty["messages"], json!([]));
    assert!(empty["next_before"].is_null());
    let q = format!("before={}", all[11]);
    let empty: Value = history(&server, &alice.token, &room, &q).expect(200).json();
    assert_eq!(empty["messages"], json!([]));
    // limit=200 is allowed.
    history(&server, &alice.token, &room, "limit=200").expect(200);
}

#[test]
fn history_shows_only_what_the_reader_may_see() {
    let server = Server::start_unlimited(&[]);
    let [alice, bob, carol, dave]: [User; 4] = users(&server, "hv", 4).try_into().ok().unwrap();
    let room = create_room(&server, &alice.token, "pub", "public");
    join(&server, &bob.token, &room).expect(200);
    let (_, early) = posted(&server, &alice.token, &room, "before carol", &[]);
    join(&server, &carol.token, &room).expect(200);
    let (_, all1) = posted(&server, &alice.token, &room, "for all", &[]);
    let (_, to_bob) = posted(&server, &alice.token, &room, "for bob", &[&bob.id]);
    let (_, from_carol) = posted(&server, &carol.token, &room, "carol to alice", &[&alice.id]);
    let (_, to_two) = posted(
        &server,
        &bob.token,
        &room,
        "bob to carol+alice",
        &[&carol.id, &alice.id],
    );

    let alice_sees = seqs(&full_history(&server, &alice.token, &room, 50));
    assert_eq!(alice_sees, vec![to_two, from_carol, to_bob, all1, early]);
    let bob_sees = seqs(&full_history(&server, &bob.token, &room, 50));
    assert_eq!(bob_sees, vec![to_two, to_bob, all1, early]);
    // Carol joined late: nothing from before her join; and only what is addressed to her.
    let carol_sees = seqs(&full_history(&server, &carol.token, &room, 50));
    assert_eq!(carol_sees, vec![to_two, from_carol, all1]);
    // Pages are filled from visible messages, not cut short by invisible ones.
    let page: Value = history(&server, &carol.token, &room, "limit=2")
        .expect(200)
        .json();
    assert_eq!(
        seqs(page["messages"].as_array().unwrap()),
        vec![to_two, from_carol]
    );
    // Duplicate targets collapse to one.
    let (_, dup) = posted(&server, &alice.token, &room, "dup", &[&bob.id, &bob.id]);
    let page: Value = history(&server, &bob.token, &room, "limit=1")
        .expect(200)
        .json();
    assert_eq!(page["messages"][0]["seq"], dup);
    assert_eq!(page["messages"][0]["target_user_ids"], json!([bob.id]));
    // Dave never joined: a public room's history is for members.
    history(&server, &dave.token, &room, "").expect_error(403, "not_a_member");

    // Carol leaves: she still reads her own membership period, and nothing after it
    // (DESIGN §7: the visibility rule alone decides, as on WebSocket resume).
    let carol_before = seqs(&full_history(&server, &carol.token, &room, 50));
    leave(&server, &carol.token, &room).expect(204);
    let (_, while_away) = posted(&server, &alice.token, &room, "while carol is away", &[]);
    assert_eq!(
        seqs(&full_history(&server, &carol.token, &room, 50)),
        carol_before
    );
    // She comes back: she sees both stretches of membership, not the gap between them.
    join(&server, &carol.token, &room).expect(200);
    let (_, back) = posted(&server, &bob.token, &room, "welcome back", &[]);
    let carol_sees = seqs(&full_history(&server, &carol.token, &room, 50));
    assert_eq!(carol_sees, vec![back, to_two, from_carol, all1]);
    assert!(!carol_sees.contains(&while_away));
    let bob_sees = seqs(&full_history(&server, &bob.token, &room, 50));
    assert_eq!(
        bob_sees,
        vec![back, while_away, dup, to_two, to_bob, all1, early]
    );

    // A private room: a former member reads their period; a stranger gets 404.
    let private = create_room(&server, &alice.token, "priv", "private");
    add_member(&server, &alice.token, &private, &bob.id).expect(204);
    let (_, p1) = posted(&server, &bob.token, &private, "private hello", &[]);
    assert_eq!(
        seqs(&full_history(&server, &bob.token, &private, 50)),
        vec![p1]
    );
    remove_member(&server, &alice.token, &private, &bob.id).expect(204);
    assert_eq!(
        seqs(&full_history(&server, &bob.token, &private, 50)),
        vec![p1]
    );
    let missing = missing_room_body(&server, &dave.token, "GET", "/messages", None);
    let resp = history(&server, &dave.token, &private, "");
    resp.expect_error(404, "not_found");
    assert_eq!(resp.body, missing);
    // Added back later, Bob sees his first stretch and the new one, not the gap.
    let (_, gap) = posted(&server, &alice.token, &private, "gap", &[]);
    add_member(&server, &alice.token, &private, &bob.id).expect(204);
    let (_, p2) = posted(&server, &alice.token, &private, "again", &[]);
    assert_eq!(
        seqs(&full_history(&server, &bob.token, &private, 50)),
        vec![p2, p1]
    );
    assert_eq!(
        seqs(&full_history(&server, &alice.token, &private, 50)),
        vec![p2, gap, p1]
    );
}

#[test]
fn a_private_room_is_indistinguishable_from_a_missing_one() {
    let server = Server::start_unlimited(&[]);
    let [alice, mallory]: [User; 2] = users(&server, "pv", 2).try_into().ok().unwrap();
    let private = create_room(&server, &alice.token, "hidden", "private");
    posted(&server, &alice.token, &private, "secret", &[]);
    let random = Uuid::new_v4().to_string();
    let t = mallory.token.as_str();
    let member = json!({ "user_id": mallory.id });
    let message = json!({ "body": "hi" });
    let cases: [(&str, String, Option<&Value>); 8] = [
        ("GET", String::new(), None),
        ("GET", "/messages".into(), None),
        ("GET", "/messages?limit=5".into(), None),
        ("POST", "/join".into(), None),
        ("POST", "/leave".into(), None),
        ("POST", "/members".into(), Some(&member)),
        ("DELETE", format!("/members/{}", alice.id), None),
        ("POST", "/messages".into(), Some(&message)),
    ];
    for (method, rest, body) in cases {
        let hidden = call(&server, t, method, &room_path(&private, &rest), body);
        let missing = call(&server, t, method, &room_path(&random, &rest), body);
        hidden.expect_error(404, "not_found");
        assert_eq!(
            (hidden.status, &hidden.content_type, &hidden.body),
            (missing.status, &missing.content_type, &missing.body),
            "{method} {rest}: a private room answers differently from a missing one"
        );
    }
    // Nor does it show in any list.
    assert!(!mine(&server, &mallory).contains(&private));
    assert!(!discover(&server, &mallory).contains(&private));
}

#[test]
fn history_pages_past_a_long_run_of_invisible_messages() {
    // A reader who may see little of a busy room still reaches everything by following
    // next_before, however many invisible messages lie between (the server bounds how
    // many it scans per request).
    let server = Server::start_unlimited(&[]);
    let [alice, bob]: [User; 2] = users(&server, "lr", 2).try_into().ok().unwrap();
    let room = create_room(&server, &alice.token, "busy", "public");
    join(&server, &bob.token, &room).expect(200);
    let (_, early) = posted(&server, &alice.token, &room, "for everyone", &[]);
    const RUN: usize = 2_100;
    std::thread::scope(|scope| {
        for half in 0..2 {
            let (server, alice, room) = (&server, &alice, &room);
            scope.spawn(move || {
                for i in 0..RUN / 2 {
                    let body = format!("note to self {half}/{i}");
                    posted(server, &alice.token, room, &body, &[&alice.id]);
                }
            });
        }
    });
    let (_, late) = posted(&server, &alice.token, &room, "for everyone again", &[]);
    assert_eq!(
        seqs(&full_history(&server, &bob.token, &room, 50)),
        vec![late, early]
    );
    let alice_sees = full_history(&server, &alice.token, &room, 200);
    assert_eq!(alice_sees.len(), RUN + 2);
    let s = seqs(&alice_sees);
    assert!(
        s.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeats"
    );
}

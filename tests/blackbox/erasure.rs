//! Issue 16, erasure: a sender deletes their message, an admin erases a user's messages
//! (online and offline), and the erased body is never served again: not over WebSocket
//! (live or resume), not from history, not from `admin log`/`export`, and not from the raw
//! files of the data dir.

use crate::chat::{connect, create_room, join, posted, room_path, User, FRAME_DEADLINE};
use crate::server::{Key, Server};
use crate::support::{admin, latchkey, stderr, stdout};
use serde_json::{json, Value};
use std::path::Path;

/// Every byte of every file under `dir`, concatenated.
fn raw_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(raw_bytes(&path));
        } else {
            out.extend(std::fs::read(&path).unwrap());
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

pub fn delete(server: &Server, token: &str, room: &str, message: &str) -> crate::server::Resp {
    server.send(
        "DELETE",
        &room_path(room, &format!("/messages/{message}")),
        Some(token),
        None,
    )
}

fn history_of(server: &Server, token: &str, room: &str) -> Vec<Value> {
    crate::chat::full_history(server, token, room, 50)
}

fn message<'a>(messages: &'a [Value], id: &str) -> &'a Value {
    messages
        .iter()
        .find(|m| m["message_id"] == id)
        .unwrap_or_else(|| panic!("message {id} not in {messages:?}"))
}

/// The `body_secret` (base64) of each message in an offline export, by message id.
fn secrets(dir: &Path) -> std::collections::HashMap<String, Vec<u8>> {
    use base64::Engine;
    let out = admin(dir, &["export", "--jsonl"]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter_map(|l| {
            let secret = l["body_secret"].as_str()?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(secret)
                .unwrap();
            Some((l["data"]["message_id"].as_str()?.to_string(), bytes))
        })
        .collect()
}

#[test]
fn a_deleted_message_is_never_served_again() {
    let mut server = Server::start(&[]);
    let alice = User::new(&server, "alice");
    let bob = User::new(&server, "bob");
    let marker = uuid::Uuid::new_v4().simple().to_string();
    let control_room_name = format!("ROOM{marker}");
    let room = create_room(&server, &alice.token, &control_room_name, "public");
    join(&server, &bob.token, &room).expect(200);
    let kept = format!("KEPT{marker}");
    let secret = format!("ERASE{marker}");
    let (kept_id, _) = posted(&server, &alice.token, &room, &kept, &[]);
    let (gone_id, _) = posted(&server, &alice.token, &room, &secret, &[]);
    // Each body's key material, read from an export taken before the deletion.
    server.kill9();
    let keys = secrets(&server.data_dir());
    let (kept_key, gone_key) = (keys[&kept_id].clone(), keys[&gone_id].clone());
    assert_eq!(gone_key.len(), 32);
    server.restart();

    let mut ws = connect(&server, &bob.token);
    ws.hello();
    // Only the sender deletes; an unknown message is 404; a second delete is 204 again.
    delete(&server, &bob.token, &room, &gone_id).expect_error(403, "forbidden");
    let unknown = uuid::Uuid::now_v7().to_string();
    delete(&server, &alice.token, &room, &unknown).expect_error(404, "not_found");
    delete(&server, &alice.token, &room, "not-a-uuid").expect_error(404, "not_found");
    delete(&server, &alice.token, &room, &gone_id).expect(204);
    delete(&server, &alice.token, &room, &gone_id).expect(204);

    let (deleted, _) = ws.until(FRAME_DEADLINE, |v| v["event"] == "message.deleted");
    assert_eq!(deleted["room_id"], room.as_str());
    assert_eq!(
        deleted["data"],
        json!({"message_id": gone_id, "sender": alice.id, "by": alice.id, "reason": "sender"})
    );

    // History: the deleted message stays in place with a null body; the other is intact.
    for who in [&alice, &bob] {
        let h = history_of(&server, &who.token, &room);
        assert_eq!(message(&h, &gone_id)["body"], Value::Null, "{h:?}");
        assert_eq!(message(&h, &kept_id)["body"], kept.as_str());
    }

    // Resume from the start: the post replays with a null body, then the deletion.
    let mut again = connect(&server, &bob.token);
    again.send_json(&json!({"op": "resume", "since": 0}));
    let (_, replayed) = again.until(FRAME_DEADLINE, |v| v["type"] == "resumed");
    let text = serde_json::to_string(&replayed).unwrap();
    assert!(
        !text.contains(&secret),
        "resume served the erased body: {text}"
    );
    let post = replayed
        .iter()
        .find(|v| v["event"] == "message.posted" && v["data"]["message_id"] == gone_id)
        .unwrap_or_else(|| panic!("no post in {replayed:?}"));
    assert_eq!(post["data"]["body"], Value::Null);
    assert!(replayed.iter().any(|v| v["event"] == "message.deleted"));
    assert!(text.contains(&kept), "resume must still serve live bodies");

    // Offline: verify passes, log and export show null, the raw files hold no erased text.
    server.terminate(std::time::Duration::from_secs(10));
    let dir = server.data_dir();
    let out = admin(&dir, &["verify", "--json"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let export = admin(&dir, &["export", "--jsonl"]);
    assert!(export.status.success(), "{}", stderr(&export));
    let lines: Vec<Value> = stdout(&export)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let post_of = |id: &str| {
        lines
            .iter()
            .find(|l| l["event_type"] == "message.posted" && l["data"]["message_id"] == id)
            .unwrap()
            .clone()
    };
    let gone = post_of(&gone_id);
    assert_eq!(gone["data"]["body"], Value::Null, "{gone}");
    assert!(gone.get("body_secret").is_none(), "{gone}");
    assert_eq!(post_of(&kept_id)["data"]["body"], kept.as_str());
    assert!(!stdout(&export).contains(&secret));

    // The raw files: no body is ever stored as plaintext, and the erased body's key is
    // gone while the live one's is there (so neither grep can pass vacuously).
    let raw = raw_bytes(&dir);
    assert!(
        contains(&raw, &control_room_name),
        "the grep must find plaintext the store keeps (the room's name)"
    );
    assert!(!contains(&raw, &secret), "the erased text is on disk");
    assert!(!contains(&raw, &kept), "a body is stored as plaintext");
    let has_key = |k: &[u8]| raw.windows(k.len()).any(|w| w == k);
    assert!(has_key(&kept_key), "the live body's key must be on disk");
    assert!(
        !has_key(&gone_key),
        "the erased body's key is still on disk"
    );

    // An import of the export restores the live body, not the erased one, and verifies.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("export.jsonl");
    std::fs::write(&file, export.stdout).unwrap();
    let copy = tmp.path().join("copy");
    let out = admin(&copy, &["import", &file.display().to_string()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let log = stdout(&admin(
        &copy,
        &["log", "--json", "--type", "message.posted"],
    ));
    assert!(log.contains(&kept) && !log.contains(&secret), "{log}");
    server.restart();
    let h = history_of(&server, &bob.token, &room);
    assert_eq!(message(&h, &gone_id)["body"], Value::Null);
}

/// The first admin, added offline before the server starts, and a token file of their
/// session.
fn bootstrap_admin(server: &mut Server, dir: &Path) -> std::path::PathBuf {
    server.kill9();
    let key = Key::generate(dir, "ed25519", "root@ops");
    let pubfile = dir.join("root.pub");
    std::fs::write(&pubfile, key.pubkey()).unwrap();
    let out = admin(
        &server.data_dir(),
        &[
            "user",
            "add",
            "--handle",
            "root",
            "--key-file",
            &pubfile.display().to_string(),
            "--admin",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    server.restart();
    let session = server.sign_in(&key, None).token;
    let file = dir.join("token");
    std::fs::write(&file, session).unwrap();
    file
}

#[test]
fn an_admin_erases_a_users_messages_online_and_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(&[]);
    let token_file = bootstrap_admin(&mut server, tmp.path());
    let mallory = User::new(&server, "mallory");
    let carol = User::new(&server, "carol");
    let r1 = create_room(&server, &mallory.token, "one", "public");
    let r2 = create_room(&server, &carol.token, "two", "private");
    crate::chat::add_member(&server, &carol.token, &r2, &mallory.id).expect(204);
    let marker = uuid::Uuid::new_v4().simple().to_string();
    let (m1, _) = posted(&server, &mallory.token, &r1, &format!("SPAM1{marker}"), &[]);
    let (m2, _) = posted(&server, &mallory.token, &r2, &format!("SPAM2{marker}"), &[]);
    let (c1, _) = posted(&server, &carol.token, &r2, &format!("CAROL{marker}"), &[]);
    let mut ws = connect(&server, &carol.token);
    ws.hello();

    let tf = token_file.display().to_string();
    let out = latchkey(&[
        "admin",
        "--server",
        server.url(),
        "--token-file",
        &tf,
        "--json",
        "user",
        "erase-messages",
        "mallory",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["erased"], 2, "{doc}");
    assert_eq!(doc["user_id"], mallory.id.as_str());
    let (frame, _) = ws.until(FRAME_DEADLINE, |v| v["event"] == "message.deleted");
    assert_eq!(frame["data"]["message_id"], m2.as_str());
    assert_eq!(frame["data"]["reason"], "admin");
    let h = history_of(&server, &carol.token, &r2);
    assert_eq!(message(&h, &m2)["body"], Value::Null);
    assert_eq!(message(&h, &c1)["body"], format!("CAROL{marker}").as_str());
    let h = history_of(&server, &mallory.token, &r1);
    assert_eq!(message(&h, &m1)["body"], Value::Null);
    // Erasing again finds nothing left.
    let out = latchkey(&[
        "admin",
        "--server",
        server.url(),
        "--token-file",
        &tf,
        "--json",
        "user",
        "erase-messages",
        "mallory",
    ]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["erased"], 0, "{doc}");
    // A non-admin session is refused.
    let carol_file = tmp.path().join("carol");
    std::fs::write(&carol_file, &carol.token).unwrap();
    let out = latchkey(&[
        "admin",
        "--server",
        server.url(),
        "--token-file",
        &carol_file.display().to_string(),
        "user",
        "erase-messages",
        "mallory",
    ]);
    assert!(!out.status.success());

    // Offline: carol's message goes the same way, through the room decider.
    server.terminate(std::time::Duration::from_secs(10));
    let dir = server.data_dir();
    let out = admin(&dir, &["--json", "user", "erase-messages", "carol"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["erased"], 1, "{doc}");
    let out = admin(&dir, &["verify"]);
    assert!(out.status.success(), "{}", stdout(&out));
    let raw = raw_bytes(&dir);
    for text in [
        format!("SPAM1{marker}"),
        format!("SPAM2{marker}"),
        format!("CAROL{marker}"),
    ] {
        assert!(!contains(&raw, &text), "{text} is on disk");
    }
    let log = stdout(&admin(
        &dir,
        &["log", "--json", "--type", "message.deleted"],
    ));
    assert_eq!(log.lines().count(), 3, "{log}");
    server.restart();
    let h = history_of(&server, &carol.token, &r2);
    assert_eq!(message(&h, &c1)["body"], Value::Null);
}

//! `latchkey admin --store nats://... import`: a sled log exported and imported into an
//! empty JetStream stream serves a node (users, tokens, rooms, messages with their bodies,
//! an erased body still erased), verifies with the source's chain head and exports the
//! same lines; a non-empty stream is refused; and a stream's export imports into sled the
//! same way.

use crate::chat::{create_room, full_history, join, posted, User};
use crate::cluster::Nats;
use crate::server::Server;
use crate::support::{admin, latchkey, stderr, stdout};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// `latchkey admin --store URL ARGS...`; the output.
fn admin_store(url: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["admin", "--store", url];
    all.extend_from_slice(args);
    latchkey(&all)
}

/// `admin --store URL export --jsonl`, which must succeed.
fn export_stream(url: &str) -> String {
    let out = admin_store(url, &["export", "--jsonl"]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

/// `admin --data-dir DIR export --jsonl`, which must succeed.
fn export_dir(dir: &Path) -> String {
    let out = admin(dir, &["export", "--jsonl"]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

/// `verify --json` on a stream: it must pass; its chain head.
fn verified_stream(url: &str) -> String {
    let out = admin_store(url, &["--json", "verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    v["chain_head"].as_str().unwrap().to_string()
}

/// What a small chat leaves in the log: two users, a room, a kept and an erased body.
struct Chat {
    alice: User,
    bob: User,
    room: String,
    kept: (String, String),
    gone: String,
}

/// Writes [`Chat`] through `a` and `b` (the same node on sled, two nodes on a stream).
fn chat(a: &Server, b: &Server) -> Chat {
    let alice = User::new(a, "alice");
    let bob = User::new(b, "bob");
    let room = create_room(a, &alice.token, "moved", "public");
    join(b, &bob.token, &room).expect(200);
    let text = format!("KEPT{}", uuid::Uuid::new_v4().simple());
    let (kept, _) = posted(b, &bob.token, &room, &text, &[]);
    let (gone, _) = posted(a, &alice.token, &room, "erase me", &[]);
    crate::erasure::delete(a, &alice.token, &room, &gone).expect(204);
    posted(a, &alice.token, &room, "after the erasure", &[]);
    Chat {
        alice,
        bob,
        room,
        kept: (kept, text),
        gone,
    }
}

/// `at` serves what [`chat`] wrote: both tokens, the room, the kept body, the erased one.
fn serves(at: &Server, c: &Chat) {
    for u in [&c.alice, &c.bob] {
        let me: Value = at.get("/api/native/me", Some(&u.token)).expect(200).json();
        assert_eq!(me["user"]["id"], u.id.as_str(), "{me}");
    }
    let h = full_history(at, &c.bob.token, &c.room, 50);
    let body = |id: &str| {
        let m = h.iter().find(|m| m["message_id"] == id);
        m.unwrap_or_else(|| panic!("{id} not in {h:?}"))["body"].clone()
    };
    assert_eq!(body(&c.kept.0), c.kept.1.as_str(), "{h:?}");
    assert_eq!(body(&c.gone), Value::Null, "{h:?}");
    assert_eq!(h.len(), 3, "{h:?}");
    // And it writes on after the import.
    posted(at, &c.alice.token, &c.room, "after the import", &[]);
}

#[test]
fn a_sled_log_imported_into_an_empty_stream_serves_a_node_and_exports_the_same() {
    let mut sled = Server::start(&[]);
    let c = chat(&sled, &sled);
    sled.terminate(Duration::from_secs(10));
    let export = export_dir(&sled.data_dir());
    assert!(export.contains(&c.kept.1) && !export.contains("erase me"));
    let file = sled.scratch().join("export.jsonl");
    std::fs::write(&file, &export).unwrap();
    let sled_head = crate::support::admin_json(&sled.data_dir(), &["verify"])["chain_head"]
        .as_str()
        .unwrap()
        .to_string();

    let nats = Nats::start();
    let out = admin_store(&nats.url(), &["import", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The stream expands to the same log: same chain head, the same export line for line.
    assert_eq!(verified_stream(&nats.url()), sled_head);
    assert_eq!(export_stream(&nats.url()), export);
    // A stream that holds anything is refused, and left as it was.
    let again = admin_store(&nats.url(), &["import", file.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("empty stream"),
        "{}",
        stderr(&again)
    );
    assert_eq!(export_stream(&nats.url()), export);

    let node = Server::start(&["--store", &nats.url()]);
    serves(&node, &c);
    verified_stream(&nats.url());
}

#[test]
fn a_stream_exported_and_imported_into_sled_is_the_same_log() {
    let nats = Nats::start();
    let a = Server::start(&["--store", &nats.url()]);
    let b = Server::start(&["--store", &nats.url()]);
    let c = chat(&a, &b);
    let export = export_stream(&nats.url());
    let head = verified_stream(&nats.url());

    let mut sled = Server::start(&[]);
    sled.terminate(Duration::from_secs(10));
    std::fs::remove_dir_all(sled.data_dir()).unwrap();
    let file = sled.scratch().join("export.jsonl");
    std::fs::write(&file, &export).unwrap();
    let out = admin(&sled.data_dir(), &["import", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = crate::support::admin_json(&sled.data_dir(), &["verify"]);
    assert_eq!(v["chain_head"], head.as_str(), "{v}");
    assert_eq!(export_dir(&sled.data_dir()), export);
    sled.restart();
    serves(&sled, &c);
}

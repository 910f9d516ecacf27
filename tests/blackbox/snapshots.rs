//! Issue 16: snapshots on a real server. With `--snapshot-every 3` a user's stream gets a
//! snapshot as it grows; the server restarted on it answers as before; `admin rebuild`
//! clears them.

use crate::server::{Key, Server};
use crate::support::{latchkey, stderr, wait_until};
use latchkey_domain::StreamId;
use latchkey_store::{EventStore, SledStore, StoreOptions};
use serde_json::Value;
use std::time::Duration;

fn user_snapshot(dir: &std::path::Path, user: &str) -> Option<u64> {
    let store = SledStore::open(dir, StoreOptions::default()).unwrap();
    let stream = StreamId(format!("user/{user}"));
    store.snapshot(&stream).unwrap().map(|s| s.version)
}

#[test]
fn a_server_snapshots_long_streams_and_rebuild_clears_them() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(&["--snapshot-every", "3"]);
    let key = Key::generate(tmp.path(), "ed25519", "erin@x");
    let first = server.sign_in(&key, Some("erin")).token;
    let mut tokens = vec![first.clone()];
    for _ in 0..3 {
        tokens.push(server.sign_in(&key, None).token);
    }
    let me: Value = server
        .get("/api/native/me", Some(&first))
        .expect(200)
        .json();
    let user = me["user"]["id"].as_str().unwrap().to_string();
    // The use of `first` is recorded after its answer: wait until the list shows it.
    let mut list_before = String::new();
    assert!(wait_until(Duration::from_secs(10), || {
        let body = server
            .get("/api/native/tokens", Some(&first))
            .expect(200)
            .body;
        let doc: Value = serde_json::from_str(&body).unwrap();
        let seen = doc["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["current"] == true && !t["last_used_at"].is_null());
        list_before = body;
        seen
    }));
    // The first snapshot (after the second sign-in) was spawned before that sign-in's
    // answer and written during the requests since; a clean stop flushes it.
    assert!(server.terminate(Duration::from_secs(15)).success());
    let dir = server.data_dir();
    let version = user_snapshot(&dir, &user).expect("a snapshot of the user stream");
    assert!(version >= 3, "{version}");

    // Restarted, the entity rehydrates from the snapshot: same answers, and it still
    // takes commands (a logout is a new event on the stream).
    server.restart();
    assert_eq!(
        server
            .get("/api/native/tokens", Some(&first))
            .expect(200)
            .body,
        list_before
    );
    server.delete("/api/native/token", &tokens[1]).expect(204);
    server.get("/api/native/me", Some(&tokens[1])).expect(401);
    server.get("/api/native/me", Some(&tokens[2])).expect(200);
    assert!(server.terminate(Duration::from_secs(15)).success());

    let d = dir.display().to_string();
    let out = latchkey(&["admin", "--data-dir", &d, "rebuild", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["snapshots_cleared"].as_u64().unwrap() >= 1,
        "{report}"
    );
    assert_eq!(user_snapshot(&dir, &user), None);
}

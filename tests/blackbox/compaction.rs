//! Issue 16: compaction. The running server's schedule (driven by the test clock) and the
//! offline `latchkey admin compact` drop old terminal pairings and superseded token uses,
//! leave tombstones that `verify` proves and `log` lists, and change no read model.

use crate::server::{parse_time, Key, Server};
use crate::support::{admin, admin_json, log_json, stderr, stdout, wait_until};
use latchkey_proto::native::TokenList;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const DAY: u64 = 86_400;

/// The token's `last_used_at` as the server lists it (this request uses the token too).
fn last_used(server: &Server, token: &str, token_id: &str) -> Option<i64> {
    let list: TokenList = server
        .get("/api/native/tokens", Some(token))
        .expect(200)
        .json();
    let t = list.tokens.into_iter().find(|t| t.id == token_id)?;
    t.last_used_at.as_deref().map(parse_time)
}

/// Every read model identical after a rebuild from the compacted log.
fn assert_rebuild_identical(dir: &Path) {
    let rebuilt = admin_json(dir, &["rebuild"]);
    for (name, outcome) in rebuilt["read_models"].as_object().unwrap() {
        assert_eq!(outcome, "identical", "{name}: {rebuilt}");
    }
}

/// Tombstones in the log, by the type of the event they replaced.
fn tombstones(dir: &Path) -> Vec<Value> {
    let all = log_json(dir, &["--type", "tombstone"]);
    for t in &all {
        assert_eq!(t["data"]["hash"].as_str().unwrap().len(), 64, "{t}");
        assert!(t["seq"].as_u64().unwrap() > 0);
    }
    all
}

fn count_dropped(tombs: &[Value], event_type: &str) -> usize {
    tombs
        .iter()
        .filter(|t| t["data"]["dropped_type"] == event_type)
        .count()
}

#[test]
fn the_schedule_compacts_old_pairings_and_the_log_still_proves_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start_test_clock(&["--session-ttl", &(365 * DAY).to_string()]);
    let key = Key::generate(tmp.path(), "ed25519", "alice@laptop");
    let first = server.sign_in(&key, Some("alice"));
    server.sign_in(&key, None);
    server.sign_in(&key, None);
    server.challenge(&key.pubkey()); // never answered: the sweeper expires it
                                     // Three uses, ten minutes apart (uses are recorded at most every five minutes).
    let mut use_times = Vec::new();
    for _ in 0..3 {
        let at = server.advance(600);
        let now = parse_time(&at);
        assert!(wait_until(Duration::from_secs(10), || {
            last_used(&server, &first.token, &first.token_id) == Some(now)
        }));
        use_times.push(at);
    }
    // Between the first and the second use: a point whose state compaction will change.
    let inside_window = &use_times[0];

    // 31 days later: the clock move sweeps, and the daily compaction is due.
    server.advance(31 * DAY);
    server.get("/api/native/me", Some(&first.token)).expect(200);
    server.sign_in(&key, None);
    server.terminate(Duration::from_secs(10));
    let dir = server.data_dir();

    let verified = admin_json(&dir, &["verify"]);
    assert_eq!(verified["ok"], true, "{verified}");
    let tombs = tombstones(&dir);
    // Three sign-ins (issued + verified) and one expired challenge (issued + expired).
    assert_eq!(count_dropped(&tombs, "challenge.issued"), 4, "{tombs:?}");
    assert_eq!(count_dropped(&tombs, "signature.verified"), 3);
    assert_eq!(count_dropped(&tombs, "challenge.expired"), 1);
    // Of three uses before the window, the newest stays.
    assert_eq!(count_dropped(&tombs, "token.used"), 2);
    assert_eq!(tombs.len(), 10);
    // Only the sign-in after the compaction is left of the pairings.
    assert_eq!(log_json(&dir, &["--type", "challenge.issued"]).len(), 1);
    let text = stdout(&admin(&dir, &["log", "--type", "tombstone"]));
    assert!(
        text.contains("tombstone") && text.contains("hash "),
        "{text}"
    );

    // A state before the window says what it lacks; one after it is exact.
    let then = admin_json(&dir, &["state", "user", "alice", "--at", inside_window]);
    assert_eq!(then["compacted"]["dropped"]["pairing"], 8, "{then}");
    assert_eq!(then["compacted"]["dropped"]["token_used"], 2, "{then}");
    assert!(
        then["compacted"]["before_seq"].as_u64().unwrap() > then["as_of"]["seq"].as_u64().unwrap()
    );
    let text = stdout(&admin(
        &dir,
        &["state", "user", "alice", "--at", inside_window],
    ));
    assert!(text.contains("compacted:"), "{text}");
    let now = admin_json(&dir, &["state", "user", "alice"]);
    assert!(now["compacted"].is_null(), "{now}");
    assert_eq!(now["tokens"].as_array().unwrap().len(), 4);

    assert_rebuild_identical(&dir);
    server.restart();
    server.get("/api/native/me", Some(&first.token)).expect(200);
}

#[test]
fn offline_compact_drops_what_ended_before_the_time_and_gives_space_back() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(&["--retain-pairings", "off"]);
    let key = Key::generate(tmp.path(), "ed25519", "bob@laptop");
    let first = server.sign_in(&key, Some("bob"));
    for _ in 0..20 {
        server.sign_in(&key, None);
    }
    server.terminate(Duration::from_secs(10));
    let dir = server.data_dir();
    let events = admin_json(&dir, &["verify"])["events"].as_u64().unwrap();

    // Nothing ended before the epoch.
    let none = admin_json(&dir, &["compact", "--before", "1970-01-02T00:00:00Z"]);
    assert_eq!(none["dropped"]["pairing"], 0, "{none}");
    // A time in the future means now: every sign-in so far is terminal.
    let done = admin_json(&dir, &["compact", "--before", "2999-01-01T00:00:00+02:00"]);
    assert_eq!(done["dropped"]["pairing_streams"], 21, "{done}");
    assert_eq!(done["dropped"]["pairing"], 42, "{done}");
    assert!(done["size_after"].as_u64().unwrap() > 0);
    // Again: nothing more to drop.
    let again = admin_json(&dir, &["compact", "--before", "2999-01-01T00:00:00Z"]);
    assert_eq!(again["dropped"]["pairing"], 0, "{again}");

    let verified = admin_json(&dir, &["verify"]);
    assert_eq!(verified["ok"], true, "{verified}");
    assert_eq!(
        verified["events"].as_u64().unwrap(),
        events,
        "seqs keep their meaning"
    );
    assert_eq!(tombstones(&dir).len(), 42);
    assert_rebuild_identical(&dir);

    // An export of the compacted log imports into a new dir and verifies there.
    let export = tmp.path().join("export.jsonl");
    let out = admin(
        &dir,
        &["export", "--jsonl", "--out", &export.display().to_string()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let copy = tmp.path().join("copy");
    let imported = admin_json(&copy, &["import", &export.display().to_string()]);
    assert_eq!(imported["ok"], true, "{imported}");
    assert_eq!(tombstones(&copy).len(), 42);

    let out = admin(&dir, &["compact", "--before", "yesterday"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("RFC 3339"), "{}", stderr(&out));

    server.restart();
    server.get("/api/native/me", Some(&first.token)).expect(200);
    server.sign_in(&key, None);
}

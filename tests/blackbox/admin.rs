//! `latchkey admin verify | log | stats` against real data dirs.

use crate::support::{latchkey, stderr, stdout};
use latchkey_domain::{Actor, Event, Timestamp, UserEvent, UserId};
use latchkey_store::{AppendRequest, ExpectedVersion, SledStore, StoreOptions};
use std::path::Path;
use uuid::Uuid;

/// Writes `n` events to one user stream in a new store at `dir`.
fn seed(dir: &Path, n: u64) {
    let store = SledStore::open(dir, StoreOptions::default()).unwrap();
    let stream = UserId(Uuid::new_v4()).stream();
    for v in 0..n {
        store
            .append_blocking(AppendRequest {
                stream: stream.clone(),
                expected: ExpectedVersion::Exact(v),
                events: vec![Event::User(UserEvent::UserEnabled {
                    at: Timestamp(v as i64),
                })],
                command_id: Uuid::new_v4(),
                actor: Actor::System,
            })
            .unwrap();
    }
}

fn dir_arg(dir: &Path) -> String {
    dir.display().to_string()
}

#[test]
fn verify_on_a_missing_data_dir_is_an_empty_store() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("never-created");
    for cmd in ["verify", "log", "stats"] {
        let out = latchkey(&["admin", "--data-dir", &dir_arg(&missing), cmd]);
        assert!(out.status.success(), "{cmd}: {}", stderr(&out));
    }
    assert!(
        !missing.exists(),
        "read-only commands must not create the data dir"
    );
}

#[test]
fn verify_passes_on_a_healthy_store_and_names_the_tampered_seq() {
    let tmp = tempfile::tempdir().unwrap();
    seed(tmp.path(), 12);
    // Flags are global: before or after the command.
    let out = latchkey(&["admin", "verify", "--data-dir", &dir_arg(tmp.path())]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).starts_with("ok: 12 events in 1 streams"),
        "{}",
        stdout(&out)
    );

    {
        let store = SledStore::open(tmp.path(), StoreOptions::default()).unwrap();
        let key = 7u64.to_be_bytes();
        let mut bytes = store.log_tree().get(key).unwrap().unwrap().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        store.log_tree().insert(key, bytes).unwrap();
    }
    let out = latchkey(&["admin", "--data-dir", &dir_arg(tmp.path()), "verify"]);
    assert!(!out.status.success());
    assert!(stdout(&out).contains("seq 7:"), "{}", stdout(&out));

    let out = latchkey(&[
        "admin",
        "--data-dir",
        &dir_arg(tmp.path()),
        "verify",
        "--json",
    ]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["problems"][0]["seq"], 7);
}

#[test]
fn a_held_data_dir_names_the_holder_pid() {
    let tmp = tempfile::tempdir().unwrap();
    seed(tmp.path(), 1);
    let _held = SledStore::open(tmp.path(), StoreOptions::default()).unwrap();
    let out = latchkey(&["admin", "--data-dir", &dir_arg(tmp.path()), "verify"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    assert!(err.contains("stop it first"), "says what to do: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn log_and_stats_speak_json() {
    let tmp = tempfile::tempdir().unwrap();
    seed(tmp.path(), 5);
    let out = latchkey(&[
        "admin",
        "--data-dir",
        &dir_arg(tmp.path()),
        "log",
        "--json",
        "--from",
        "2",
        "--to",
        "4",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let seqs: Vec<u64> = stdout(&out)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, vec![2, 3, 4]);

    let out = latchkey(&[
        "admin",
        "--data-dir",
        &dir_arg(tmp.path()),
        "log",
        "--type",
        "user.enabled",
    ]);
    assert_eq!(
        stdout(&out).lines().count(),
        6,
        "header and five rows:\n{}",
        stdout(&out)
    );

    let out = latchkey(&[
        "admin",
        "--data-dir",
        &dir_arg(tmp.path()),
        "stats",
        "--json",
    ]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["events"], 5);
    assert_eq!(doc["events_by_type"]["user.enabled"], 5);
    assert_eq!(doc["streams_by_kind"]["user"], 1);
    assert!(doc["size_on_disk_bytes"].as_u64().unwrap() > 0);
}

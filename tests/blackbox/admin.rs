//! `latchkey admin verify | log | stats` against real data dirs.

use crate::support::{latchkey, stderr, stdout};
use latchkey_domain::{Actor, Event, Timestamp, UserEvent, UserId};
use latchkey_store::{AppendRequest, EventStore, ExpectedVersion, SledStore, StoreOptions};
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

mod replay_and_online {
    //! Issue 6: replay, state, rebuild, export/import, and the online form.

    use crate::server::{Key, Server};
    use crate::support::{admin, admin_json, latchkey, log_json, stderr, stdout};
    use serde_json::{json, Value};
    use std::path::Path;

    #[test]
    fn replay_at_a_time_between_mint_and_revoke_shows_the_token_valid() {
        let tmp = tempfile::tempdir().unwrap();
        let mut server = Server::start(&[]);
        let key = Key::generate(tmp.path(), "ed25519", "alice@laptop");
        let token = server.sign_in(&key, Some("alice")).token;
        server.delete("/api/native/token", &token).expect(204);
        server.kill9();
        let dir = server.data_dir();

        let minted = log_json(&dir, &["--type", "token.minted"]);
        let revoked = log_json(&dir, &["--type", "token.revoked"]);
        let mint_at = minted[0]["recorded_at"].as_str().unwrap().to_string();
        assert!(revoked[0]["seq"].as_u64() > minted[0]["seq"].as_u64());
        assert_ne!(
            revoked[0]["recorded_at"], minted[0]["recorded_at"],
            "distinct times"
        );

        let then = admin_json(&dir, &["state", "user", "alice", "--at", &mint_at]);
        assert_eq!(then["tokens"][0]["status"], "live", "{then}");
        assert_eq!(then["user"]["handle"], "alice");
        let now = admin_json(&dir, &["state", "user", "alice"]);
        assert_eq!(now["tokens"][0]["status"], "revoked", "{now}");
        assert_eq!(now["tokens"][0]["id"], then["tokens"][0]["id"]);
        // The same instant with another offset is the same point in the log.
        let t =
            time::OffsetDateTime::parse(&mint_at, &time::format_description::well_known::Rfc3339)
                .unwrap();
        let plus_two = t
            .to_offset(time::macros::offset!(+2))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        assert_eq!(
            admin_json(&dir, &["state", "user", "alice", "--at", &plus_two])["tokens"],
            then["tokens"]
        );

        let out = tmp.path().join("replayed");
        let stats = admin_json(
            &dir,
            &[
                "replay",
                "--at",
                &mint_at,
                "--out",
                &out.display().to_string(),
            ],
        );
        assert_eq!(stats["tokens"]["live"], 1, "{stats}");
        assert_eq!(stats["tokens"]["revoked"], 0, "{stats}");
        // The live store is untouched and still verifies.
        assert_eq!(admin_json(&dir, &["verify"])["ok"], true);
        assert!(out.join("sled").exists());
    }

    #[test]
    fn rebuild_restores_identical_read_models() {
        let tmp = tempfile::tempdir().unwrap();
        let mut server = Server::start(&[]);
        let key = Key::generate(tmp.path(), "ed25519", "bob@laptop");
        let token = server.sign_in(&key, Some("bob")).token;
        let room = server
            .post_json(
                "/api/native/rooms",
                &json!({"name":"r","visibility":"public"}),
                Some(&token),
            )
            .expect(201);
        let room: Value = serde_json::from_str(&room.body).unwrap();
        let path = format!(
            "/api/native/rooms/{}/messages",
            room["id"].as_str().unwrap()
        );
        server
            .post_json(&path, &json!({"body":"hi"}), Some(&token))
            .expect(201);
        let history_before = server.get(&path, Some(&token)).expect(200).body;
        // A clean stop flushes the read models; after kill -9 they may lag their log by the
        // last chunk (they are rebuilt from their checkpoint at start), which rebuild reports.
        assert!(server
            .terminate(std::time::Duration::from_secs(15))
            .success());
        let dir = server.data_dir();

        let report = admin_json(&dir, &["rebuild"]);
        for (name, line) in report["read_models"].as_object().unwrap() {
            assert_eq!(line, "identical", "{name}: {report}");
        }
        {
            let store =
                latchkey_store::SledStore::open(&dir, latchkey_store::StoreOptions::default())
                    .unwrap();
            for name in ["rm/users", "rm/tokens", "rm/rooms", "rm/expiry"] {
                store.db().drop_tree(name).unwrap();
            }
        }
        let report = admin_json(&dir, &["rebuild"]);
        assert_eq!(report["read_models"]["rm/tokens"], "new", "{report}");
        server.restart();
        server.get("/api/native/me", Some(&token)).expect(200);
        assert_eq!(
            server.get(&path, Some(&token)).expect(200).body,
            history_before
        );
    }

    #[test]
    fn export_then_import_is_the_same_log() {
        let tmp = tempfile::tempdir().unwrap();
        let mut server = Server::start(&[]);
        for i in 0..3 {
            let key = Key::generate(tmp.path(), "ed25519", &format!("u{i}@x"));
            server.sign_in(&key, None);
        }
        server.kill9();
        let dir = server.data_dir();
        let file = tmp.path().join("export.jsonl");
        let out = admin(
            &dir,
            &["export", "--jsonl", "--out", &file.display().to_string()],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let copy = tmp.path().join("copy");
        let out = admin(&copy, &["import", &file.display().to_string()]);
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
        assert_eq!(
            admin_json(&copy, &["verify"])["chain_head"],
            admin_json(&dir, &["verify"])["chain_head"]
        );
        assert_eq!(log_json(&copy, &[]), log_json(&dir, &[]));
        let (a, b) = (admin_json(&copy, &["stats"]), admin_json(&dir, &["stats"]));
        assert_eq!(
            (&a["events_by_type"], &a["tokens"]),
            (&b["events_by_type"], &b["tokens"])
        );
        // Importing again into a non-empty dir is refused.
        assert!(!admin(&copy, &["import", &file.display().to_string()])
            .status
            .success());
    }

    #[test]
    fn the_online_form_needs_an_admin_session() {
        let tmp = tempfile::tempdir().unwrap();
        let mut server = Server::start(&[]);
        server.kill9();
        let dir = server.data_dir();
        // Bootstrap: the first admin is added offline, before the server starts.
        let admin_key = Key::generate(tmp.path(), "ed25519", "root@ops");
        let pubfile = tmp.path().join("root.pub");
        std::fs::write(&pubfile, admin_key.pubkey()).unwrap();
        let added = admin_json(
            &dir,
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
        assert_eq!(added["admin"], true);
        server.restart();
        let session = server.sign_in(&admin_key, None).token;
        let me: Value = serde_json::from_str(
            &server
                .get("/api/native/me", Some(&session))
                .expect(200)
                .body,
        )
        .unwrap();
        assert_eq!(me["user"]["admin"], true);
        assert!(me["scopes"].as_array().unwrap().contains(&json!("admin")));

        let token_file = tmp.path().join("token");
        std::fs::write(&token_file, &session).unwrap();
        let online = |file: &Path, args: &[&str]| {
            let tf = file.display().to_string();
            let mut all = vec![
                "admin",
                "--server",
                server.url(),
                "--token-file",
                &tf,
                "--json",
            ];
            all.extend_from_slice(args);
            latchkey(&all)
        };
        let out = online(&token_file, &["stats"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(stats["events"].as_u64().unwrap() >= 4);
        let verify: Value =
            serde_json::from_slice(&online(&token_file, &["verify"]).stdout).unwrap();
        assert_eq!(verify["ok"], true);

        // A user, then disabled online: their token stops working at once.
        let user_key = Key::generate(tmp.path(), "ed25519", "carol@x");
        let carol = server.sign_in(&user_key, Some("carol")).token;
        let out = online(&token_file, &["user", "disable", "carol"]);
        assert!(out.status.success(), "{}", stderr(&out));
        server.get("/api/native/me", Some(&carol)).expect(401);
        // It reports the seq of its own last event (the disable, then the revocations):
        // the last of carol's stream.
        let disabled: Value = serde_json::from_slice(&out.stdout).unwrap();
        let stream = format!("user/{}", disabled["id"].as_str().unwrap());
        let page =
            String::from_utf8(online(&token_file, &["log", "--stream", &stream]).stdout).unwrap();
        let entries: Vec<Value> = page
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(entries.iter().any(|e| e["event_type"] == "user.disabled"));
        let last = entries.last().unwrap();
        assert_eq!(disabled["seq"], last["seq"], "{disabled} vs {last}");
        let state: Value =
            serde_json::from_slice(&online(&token_file, &["state", "user", "carol"]).stdout)
                .unwrap();
        assert_eq!(state["user"]["disabled"], true);
        assert_eq!(state["tokens"][0]["status"], "revoked");

        // A PAT of the admin, and a non-admin session, are refused.
        let pat: Value = serde_json::from_str(
            &server
                .post_json("/api/native/tokens", &json!({"name":"ci"}), Some(&session))
                .expect(201)
                .body,
        )
        .unwrap();
        let pat_file = tmp.path().join("pat");
        std::fs::write(&pat_file, pat["token"].as_str().unwrap()).unwrap();
        let out = online(&pat_file, &["stats"]);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("403"), "{}", stderr(&out));
        let dave_key = Key::generate(tmp.path(), "ed25519", "dave@x");
        let dave = server.sign_in(&dave_key, Some("dave")).token;
        let dave_file = tmp.path().join("dave");
        std::fs::write(&dave_file, &dave).unwrap();
        assert!(stderr(&online(&dave_file, &["log"])).contains("403"));

        // Offline commands on a running server's dir name the holder and the online form.
        let out = admin(&dir, &["stats"]);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("--server"), "{}", stderr(&out));
    }
}

mod ip_retention {
    //! The IP retention setting decides what reaches the log.

    use crate::server::{Key, Server};
    use crate::support::{latchkey, stderr, stdout};

    fn minted_ip(args: &[&str]) -> serde_json::Value {
        let tmp = tempfile::tempdir().unwrap();
        let mut server = Server::start(args);
        let key = Key::generate(tmp.path(), "ed25519", "ip@test");
        server.sign_in(&key, None);
        server.kill9();
        let dir = server.data_dir().display().to_string();
        let out = latchkey(&[
            "admin",
            "--data-dir",
            &dir,
            "log",
            "--json",
            "--type",
            "token.minted",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let line: serde_json::Value =
            serde_json::from_str(stdout(&out).lines().next().unwrap()).unwrap();
        line["data"]["ip"].clone()
    }

    #[test]
    fn the_log_keeps_only_what_the_retention_allows() {
        assert_eq!(minted_ip(&[]), "127.0.0.0", "truncated to /24 by default");
        assert_eq!(minted_ip(&["--ip-retention", "full"]), "127.0.0.1");
        assert_eq!(
            minted_ip(&["--ip-retention", "none"]),
            serde_json::Value::Null
        );
    }
}

//! Admin pairing codes (DESIGN §12; proto-docs/pairing.md) against a real `latchkey serve`
//! and the real `latchkey admin pair`: minting by admin sessions only, one redemption per
//! code with byte-identical refusals, key enrollment only with proof, the sweeper's
//! expiry, the per-IP limit, offline and online CLI, and the printed QR code decoded back
//! to its payload.

use crate::server::{Key, Server, NAMESPACE};
use crate::support::{admin, latchkey, stderr, stdout, wait_until};
use serde_json::{json, Value};
use std::time::Duration;
use tempfile::TempDir;

const CODES: &str = "/api/admin/pairing-codes";
const PAIR: &str = "/api/native/pair";

/// A server whose first admin `root` was added offline, the admin's session, and a
/// signed-in user `bob`.
struct World {
    server: Server,
    tmp: TempDir,
    root: String,
    bob: String,
}

fn world(args: &[&str], limited: bool) -> World {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = if limited {
        Server::start_limited(args)
    } else {
        Server::start(args)
    };
    server.kill9();
    let root_key = Key::generate(tmp.path(), "ed25519", "root@ops");
    let pubfile = tmp.path().join("root.pub");
    std::fs::write(&pubfile, root_key.pubkey()).unwrap();
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
    assert!(out.status.success(), "{}", stderr(&out));
    server.restart();
    let root = server.sign_in(&root_key, None).token;
    let bob_key = Key::generate(tmp.path(), "ed25519", "bob@laptop");
    let bob = server.sign_in(&bob_key, Some("bob")).token;
    World {
        server,
        tmp,
        root,
        bob,
    }
}

fn mint(w: &World, body: Value) -> Value {
    let r = w.server.post_json(CODES, &body, Some(&w.root)).expect(201);
    serde_json::from_str(&r.body).unwrap()
}

fn pair(w: &World, body: Value) -> crate::server::Resp {
    w.server.post_json(PAIR, &body, None)
}

#[test]
fn a_code_is_redeemed_once_and_every_other_use_gets_the_same_body() {
    let w = world(&[], false);
    let info = w.server.get("/api/native/info", None).expect(200).body;
    assert!(info.contains("\"pairing-codes\""), "{info}");
    let minted = mint(&w, json!({"user": "bob", "note": "bob's phone"}));
    let code = minted["code"].as_str().unwrap().to_string();
    assert!(code.starts_with("lkc_") && code.len() == 53, "{code}");
    assert_eq!(
        minted["qr"],
        format!("latchkey-pair:v1?server={}&code={code}", w.server.url())
    );
    assert_eq!(minted["user"]["handle"], "bob");
    assert_eq!(minted["scopes"], json!(["chat:read", "chat:write"]));
    let left = minted["expires_in"].as_i64().unwrap();
    assert!((590..=600).contains(&left), "expires_in {left}");

    // The list shows it, without its secret; a GET mints nothing.
    let list = w.server.get(CODES, Some(&w.root)).expect(200);
    assert!(!list.body.contains(&code));
    let listed: Value = serde_json::from_str(&list.body).unwrap();
    assert_eq!(listed["codes"].as_array().unwrap().len(), 1);
    assert_eq!(listed["codes"][0]["id"], minted["id"]);
    assert_eq!(listed["codes"][0]["note"], "bob's phone");

    let r = pair(&w, json!({"code": code, "device_name": "bob's phone"})).expect(201);
    let paired: Value = serde_json::from_str(&r.body).unwrap();
    let token = paired["token"].as_str().unwrap();
    assert!(token.starts_with("lkd_"));
    assert_eq!(paired["kind"], "device");
    assert_eq!(paired["user"]["handle"], "bob");
    assert!(paired["key_id"].is_null());
    let me: Value =
        serde_json::from_str(&w.server.get("/api/native/me", Some(token)).expect(200).body)
            .unwrap();
    assert_eq!(me["user"]["handle"], "bob");
    assert_eq!(me["kind"], "device");
    let listed: Value =
        serde_json::from_str(&w.server.get(CODES, Some(&w.root)).expect(200).body).unwrap();
    assert!(listed["codes"].as_array().unwrap().is_empty(), "{listed}");

    // Used, revoked, expired and unknown: one body, byte for byte.
    let used = pair(&w, json!({"code": code})).body;
    let revoked_code = mint(&w, json!({"user": "bob"}));
    let id = revoked_code["id"].as_str().unwrap();
    w.server
        .delete(&format!("{CODES}/{id}"), &w.root)
        .expect(204);
    w.server
        .delete(&format!("{CODES}/{id}"), &w.root)
        .expect(204);
    let revoked = pair(&w, json!({"code": revoked_code["code"]})).body;
    // A code nobody uses lapses: the sweeper records it, then it is refused.
    let short = mint(&w, json!({"user": "bob", "expires_in": 1}));
    let short_id = short["id"].as_str().unwrap().to_string();
    let expired_seen = wait_until(Duration::from_secs(15), || {
        let r = w
            .server
            .get("/api/admin/events?type=pairing_code.expired", Some(&w.root));
        r.body.contains(&short_id)
    });
    assert!(
        expired_seen,
        "no pairing_code.expired event: {}",
        w.server
            .get(&format!("/api/admin/streams/{short_id}"), Some(&w.root))
            .body
    );
    let expired = pair(&w, json!({"code": short["code"]})).body;
    let unknown = pair(&w, json!({"code": code.replacen("lkc_", "lkc_x", 1)})).body;
    let fake = pair(&w, json!({"code": "lkc_nope"})).body;
    let expected = r#"{"error":"pairing_code_invalid","message":"the pairing code is invalid, used, revoked or expired"}"#;
    for (what, body) in [
        ("used", &used),
        ("revoked", &revoked),
        ("expired", &expired),
        ("unknown", &unknown),
        ("malformed", &fake),
    ] {
        assert_eq!(body, expected, "{what}");
    }
    // A redeemed code cannot be revoked; an unknown id is 404.
    let redeemed_id = minted["id"].as_str().unwrap();
    w.server
        .delete(&format!("{CODES}/{redeemed_id}"), &w.root)
        .expect_error(409, "conflict");
    w.server
        .delete(&format!("{CODES}/{}", uuid::Uuid::new_v4()), &w.root)
        .expect_error(404, "not_found");

    // No code or token in the log.
    let log = w.server.log();
    for secret in [code.as_str(), token] {
        assert!(!log.contains(secret), "a secret reached the log");
    }
}

#[test]
fn only_an_admin_session_mints_and_bad_input_is_refused() {
    let w = world(&[], false);
    let pat: Value = serde_json::from_str(
        &w.server
            .post_json("/api/native/tokens", &json!({"name": "ci"}), Some(&w.root))
            .expect(201)
            .body,
    )
    .unwrap();
    let pat = pat["token"].as_str().unwrap();
    for bearer in [pat, w.bob.as_str()] {
        w.server
            .post_json(CODES, &json!({"user": "bob"}), Some(bearer))
            .expect(403);
        w.server.get(CODES, Some(bearer)).expect(403);
    }
    w.server
        .post_json(CODES, &json!({"user": "bob"}), None)
        .expect(401);
    for expires_in in [json!(0), json!(-5), json!(86401), json!(1.5), json!("600")] {
        w.server
            .post_json(
                CODES,
                &json!({"user": "bob", "expires_in": expires_in}),
                Some(&w.root),
            )
            .expect_error(400, "invalid_request");
    }
    let max = mint(&w, json!({"user": "bob", "expires_in": 86400}));
    let left = max["expires_in"].as_i64().unwrap();
    assert!((86390..=86400).contains(&left), "never clamped: {left}");
    for scopes in [json!(["admin"]), json!(["chat:delete"])] {
        w.server
            .post_json(
                CODES,
                &json!({"user": "bob", "scopes": scopes}),
                Some(&w.root),
            )
            .expect_error(400, "invalid_request");
    }
    w.server
        .post_json(CODES, &json!({"user": "nobody"}), Some(&w.root))
        .expect_error(404, "not_found");
    let read_only = mint(&w, json!({"user": "bob", "scopes": ["chat:read"]}));
    let r = pair(&w, json!({"code": read_only["code"]})).expect(201);
    let paired: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(paired["scopes"], json!(["chat:read"]));
    // A device token cannot mint either.
    let device = paired["token"].as_str().unwrap();
    w.server
        .post_json(CODES, &json!({"user": "bob"}), Some(device))
        .expect(403);
    // Exactly the codes minted above, no more: a GET never minted one.
    let minted = w
        .server
        .get("/api/admin/events?type=pairing_code.minted", Some(&w.root))
        .expect(200);
    let page: Value = serde_json::from_str(&minted.body).unwrap();
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
}

#[test]
fn a_key_is_enrolled_only_with_a_challenge_signed_by_it() {
    let w = world(&[], false);
    let phone = Key::generate(w.tmp.path(), "ed25519", "bob@phone");
    let other = Key::generate(w.tmp.path(), "ed25519", "mallory@x");
    let minted = mint(&w, json!({"user": "bob"}));
    let code = minted["code"].as_str().unwrap();

    // A key without a proof, and a proof by another key: refused, and the code survives.
    pair(&w, json!({"code": code, "public_key": phone.pubkey()}))
        .expect_error(400, "invalid_request");
    let ch = w.server.challenge(&phone.pubkey());
    let forged = other.sign(ch.message.as_bytes(), NAMESPACE);
    pair(
        &w,
        json!({"code": code, "public_key": phone.pubkey(), "challenge_id": ch.challenge_id, "signature": forged}),
    )
    .expect_error(401, "signature_invalid");
    // A challenge for another key does not prove this one.
    let ch_other = w.server.challenge(&other.pubkey());
    let sig_other = other.sign(ch_other.message.as_bytes(), NAMESPACE);
    pair(
        &w,
        json!({"code": code, "public_key": phone.pubkey(), "challenge_id": ch_other.challenge_id, "signature": sig_other}),
    )
    .expect_error(401, "challenge_invalid");

    let ch = w.server.challenge(&phone.pubkey());
    let sig = phone.sign(ch.message.as_bytes(), NAMESPACE);
    let r = pair(
        &w,
        json!({"code": code, "device_name": "phone", "public_key": phone.pubkey(),
               "challenge_id": ch.challenge_id, "signature": sig}),
    )
    .expect(201);
    let paired: Value = serde_json::from_str(&r.body).unwrap();
    assert!(paired["key_id"].is_string(), "{paired}");
    // The phone now signs in as bob through the ordinary flow.
    let session = w.server.sign_in(&phone, None);
    assert_eq!(session.user.handle, "bob");
    assert!(!session.registered);
    let keys: Value = serde_json::from_str(
        &w.server
            .get("/api/native/keys", Some(&session.token))
            .expect(200)
            .body,
    )
    .unwrap();
    assert!(keys.to_string().contains(&phone.fingerprint()));
}

#[test]
fn redemption_is_rate_limited_per_ip() {
    let w = world(&[], true);
    let mut limited = None;
    for i in 0..40 {
        let r = pair(&w, json!({"code": "lkc_guess"}));
        if r.status == 429 {
            limited = Some(i);
            break;
        }
        assert_eq!(r.status, 401);
    }
    assert!(limited.is_some_and(|i| i >= 5), "no 429: {limited:?}");
}

/// The QR modules of Unicode half-block text (`Dense1x2`, light modules drawn): true is dark.
fn modules(blocks: &str) -> Vec<Vec<bool>> {
    let mut rows = Vec::new();
    for line in blocks.lines() {
        let (mut top, mut bottom) = (Vec::new(), Vec::new());
        for c in line.chars() {
            // Drawn halves are light; blank halves are dark.
            let (t, b) = match c {
                '█' => (false, false),
                '▀' => (false, true),
                '▄' => (true, false),
                ' ' => (true, true),
                other => panic!("unexpected character {other:?} in the QR block"),
            };
            top.push(t);
            bottom.push(b);
        }
        rows.push(top);
        rows.push(bottom);
    }
    rows
}

/// Decodes a QR code from its module grid with `rqrr`, 4 pixels per module.
fn decode(grid: &[Vec<bool>]) -> String {
    const SCALE: usize = 4;
    let h = grid.len();
    let w = grid.iter().map(Vec::len).max().unwrap();
    let mut img = rqrr::PreparedImage::prepare_from_bitmap(w * SCALE, h * SCALE, |x, y| {
        grid[y / SCALE].get(x / SCALE).copied().unwrap_or(false)
    });
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code");
    grids[0].decode().unwrap().1
}

/// The block lines of `pair create` output: everything after the blank line.
fn qr_text(out: &str) -> String {
    let (_, blocks) = out
        .split_once("\n\n")
        .expect("a blank line before the QR code");
    blocks.trim_end_matches('\n').to_string()
}

#[test]
fn offline_pair_create_prints_a_qr_code_that_decodes_to_its_payload() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(&[]);
    server.kill9();
    let dir = server.data_dir();
    let key = Key::generate(tmp.path(), "ed25519", "alice@x");
    let pubfile = tmp.path().join("alice.pub");
    std::fs::write(&pubfile, key.pubkey()).unwrap();
    let p = pubfile.display().to_string();
    assert!(admin(
        &dir,
        &["user", "add", "--handle", "alice", "--key-file", &p]
    )
    .status
    .success());

    let out = admin(
        &dir,
        &[
            "pair",
            "create",
            "--user",
            "alice",
            "--expires",
            "15m",
            "--public-url",
            "https://chat.example/",
            "--note",
            "alice's tablet",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let code = text
        .lines()
        .find_map(|l| l.strip_prefix("code     "))
        .unwrap()
        .to_string();
    let payload = format!("latchkey-pair:v1?server=https://chat.example&code={code}");
    assert!(text.contains(&format!("qr       {payload}")), "{text}");
    let blocks = qr_text(&text);
    assert_eq!(
        decode(&modules(&blocks)),
        payload,
        "the printed QR code scans"
    );
    // Exactly what the qrcode crate renders for that payload.
    let expected = qrcode::QrCode::new(payload.as_bytes())
        .unwrap()
        .render::<qrcode::render::unicode::Dense1x2>()
        .dark_color(qrcode::render::unicode::Dense1x2::Light)
        .light_color(qrcode::render::unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build();
    assert_eq!(blocks, expected);

    // Without --public-url, server= is the server id; --json keeps stdout pure JSON.
    let out = admin(&dir, &["--json", "pair", "create", "--user", "alice"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let qr = doc["qr"].as_str().unwrap();
    let server_id = qr
        .strip_prefix("latchkey-pair:v1?server=")
        .and_then(|s| s.split_once("&code="))
        .unwrap()
        .0;
    assert!(uuid::Uuid::parse_str(server_id).is_ok(), "{qr}");
    assert_eq!(decode(&modules(stderr(&out).trim_end())), qr);

    // Out of range is refused, not clamped.
    let out = admin(
        &dir,
        &["pair", "create", "--user", "alice", "--expires", "25h"],
    );
    assert!(!out.status.success());

    let list: Value =
        serde_json::from_slice(&admin(&dir, &["--json", "pair", "list"]).stdout).unwrap();
    assert_eq!(list["codes"].as_array().unwrap().len(), 2);
    let id = doc["id"].as_str().unwrap();
    assert!(admin(&dir, &["pair", "revoke", id]).status.success());
    let list: Value =
        serde_json::from_slice(&admin(&dir, &["--json", "pair", "list"]).stdout).unwrap();
    assert_eq!(list["codes"].as_array().unwrap().len(), 1);

    // The running server honours what the offline tool did.
    server.restart();
    server
        .post_json(PAIR, &json!({"code": doc["code"]}), None)
        .expect_error(401, "pairing_code_invalid");
    let r = server
        .post_json(PAIR, &json!({"code": code}), None)
        .expect(201);
    assert!(r.body.contains("\"handle\":\"alice\""));
}

#[test]
fn online_pair_commands_use_the_admin_api() {
    let w = world(&[], false);
    let token_file = w.tmp.path().join("root.token");
    std::fs::write(&token_file, &w.root).unwrap();
    let tf = token_file.display().to_string();
    let online = |args: &[&str]| {
        let mut all = vec!["admin", "--server", w.server.url(), "--token-file", &tf];
        all.extend_from_slice(args);
        latchkey(&all)
    };
    let out = online(&["pair", "create", "--user", "bob", "--scopes", "chat:read"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let qr = text
        .lines()
        .find_map(|l| l.strip_prefix("qr       "))
        .unwrap();
    assert!(qr.starts_with(&format!(
        "latchkey-pair:v1?server={}&code=lkc_",
        w.server.url()
    )));
    assert_eq!(decode(&modules(&qr_text(&text))), qr);
    let list = online(&["--json", "pair", "list"]);
    let doc: Value = serde_json::from_slice(&list.stdout).unwrap();
    let id = doc["codes"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(doc["codes"][0]["scopes"], json!(["chat:read"]));
    assert!(online(&["pair", "revoke", &id]).status.success());
    let doc: Value = serde_json::from_slice(&online(&["--json", "pair", "list"]).stdout).unwrap();
    assert!(doc["codes"].as_array().unwrap().is_empty());
    // A non-admin session is refused.
    let bob_file = w.tmp.path().join("bob.token");
    std::fs::write(&bob_file, &w.bob).unwrap();
    let out = latchkey(&[
        "admin",
        "--server",
        w.server.url(),
        "--token-file",
        &bob_file.display().to_string(),
        "pair",
        "list",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("403"), "{}", stderr(&out));
}

/// One fixed sample of each pairing-code event, for the codec's golden bytes.
pub fn golden_samples() -> Vec<latchkey_domain::Event> {
    use latchkey_domain::*;
    let t = Timestamp(1_790_000_000_000);
    let gid = |n: u128| uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | n);
    vec![
        PairingEvent::PairingCodeMinted {
            code_id: PairingId(gid(40)),
            user_id: UserId(gid(1)),
            code_hash: [9; 32],
            scopes: vec![Scope::ChatRead, Scope::ChatWrite],
            note: Some("alice's phone".into()),
            by: Some(UserId(gid(12))),
            created_at: t,
            expires_at: t.plus_secs(600),
        }
        .into(),
        PairingEvent::PairingCodeRedeemed {
            token_id: TokenId(gid(41)),
            device_name: Some("phone".into()),
            key_id: Some(KeyId(gid(42))),
            at: t,
        }
        .into(),
        PairingEvent::PairingCodeRevoked { by: None, at: t }.into(),
        PairingEvent::PairingCodeExpired { at: t }.into(),
    ]
}

//! SSH-challenge sign-in, bearer tokens and logout, against a real `latchkey serve` with
//! keys and signatures from the real `ssh-keygen` (DESIGN §6, §7; proto-docs/auth.md).

use crate::server::{fingerprint, signature_body_lines, Key, Server, NAMESPACE};
use crate::support::{repo_root, wait_until};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::Signer;
use latchkey_domain::token::{generate, TokenPrefix};
use latchkey_proto::{
    HealthResponse, InfoResponse, MeResponse, PingResponse, Registration, Scope, TokenKind,
    TokenResponse,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use ssh_key::public::{Ed25519PublicKey, KeyData, SkEd25519};
use ssh_key::{Algorithm, HashAlg, LineEnding, PublicKey, SshSig};
use std::process::Command;
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const ME: &str = "/api/native/me";
const PING: &str = "/api/native/ping";
const TOKEN: &str = "/api/native/token";
const CHALLENGE: &str = "/api/native/challenge";

use crate::server::{now_secs, parse_time};

fn parse_time_ms(s: &str) -> i64 {
    assert!(s.ends_with('Z'), "not an RFC 3339 UTC time: {s:?}");
    let t = OffsetDateTime::parse(s, &Rfc3339).unwrap_or_else(|e| panic!("{s:?}: {e}"));
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn random_bytes() -> [u8; 32] {
    rand::random()
}

/// The fields of a challenge message, checked to be in the documented shape: exactly six
/// lines, in order, each ending with `\n` (the last one too).
struct Message {
    server: String,
    challenge: String,
    nonce: String,
    key: String,
    expires: i64,
}

fn parse_message(message: &str) -> Message {
    assert!(
        message.ends_with('\n'),
        "last line must end with \\n: {message:?}"
    );
    assert!(!message.contains('\r'), "{message:?}");
    let lines: Vec<&str> = message.strip_suffix('\n').unwrap().split('\n').collect();
    assert_eq!(lines.len(), 6, "{message:?}");
    assert_eq!(lines[0], "latchkey-auth-v1");
    let field = |i: usize, name: &str| -> String {
        lines[i]
            .strip_prefix(&format!("{name}="))
            .unwrap_or_else(|| panic!("line {i} is not `{name}=`: {message:?}"))
            .to_string()
    };
    Message {
        server: field(1, "server"),
        challenge: field(2, "challenge"),
        nonce: field(3, "nonce"),
        key: field(4, "key"),
        expires: field(5, "expires").parse().expect("expires= is an integer"),
    }
}

/// `message` with the line starting `name=` given another value.
fn replace_line(message: &str, name: &str, value: &str) -> String {
    let prefix = format!("{name}=");
    let out: String = message
        .split_inclusive('\n')
        .map(|l| {
            if l.starts_with(&prefix) {
                format!("{prefix}{value}\n")
            } else {
                l.to_string()
            }
        })
        .collect();
    assert_ne!(out, message, "no `{name}=` line to alter");
    out
}

fn check_token_shape(token: &str, prefix: &str) {
    assert!(token.starts_with(prefix), "{prefix} token expected");
    assert_eq!(token.len(), 4 + 43 + 6, "token length");
    assert!(
        token[4..].bytes().all(|c| c.is_ascii_alphanumeric()),
        "base62 body"
    );
    assert!(
        latchkey_domain::token::parse(token).is_ok(),
        "minted token fails its own checksum"
    );
}

fn me(server: &Server, token: &str) -> MeResponse {
    server.get(ME, Some(token)).expect(200).json()
}

// ---- the happy path ----

#[test]
fn info_sign_in_me_and_ping() {
    let server = Server::start(&[]);
    let info: InfoResponse = server.get("/api/native/info", None).expect(200).json();
    assert_eq!(info.namespace, NAMESPACE);
    let mut types = info.key_types.clone();
    types.sort();
    assert_eq!(
        types,
        [
            "ecdsa-sha2-nistp256",
            "sk-ssh-ed25519@openssh.com",
            "ssh-ed25519"
        ],
        "the key-type allowlist"
    );
    assert_eq!(
        info.registration,
        Registration::Open,
        "open registration is the default"
    );
    assert!(!info.version.is_empty());
    assert!(!info.server_id.is_empty());
    assert_eq!(
        info.server, info.server_id,
        "without --public-url the server= value is the server id"
    );

    let key = Key::generate(server.scratch(), "ed25519", "alice@laptop");
    let ch = server.challenge(&key.pubkey());
    assert_eq!(ch.namespace, NAMESPACE);
    assert_eq!(parse_message(&ch.message).server, info.server);

    let before = now_secs();
    let sig = key.sign(ch.message.as_bytes(), NAMESPACE);
    let resp = server
        .redeem(&ch.challenge_id, &sig, Some("alice"))
        .expect(201);
    assert!(
        resp.content_type.starts_with("application/json"),
        "{resp:?}"
    );
    let tok: TokenResponse = resp.json();
    check_token_shape(&tok.token, "lks_");
    assert_eq!(tok.kind, TokenKind::Session);
    assert_eq!(tok.user.handle, "alice");
    assert!(
        tok.registered,
        "the first sign-in of a key registers its user"
    );
    assert!(
        uuid::Uuid::parse_str(&tok.user.id).is_ok(),
        "{}",
        tok.user.id
    );
    assert!(!tok.token_id.is_empty());
    assert!(
        !tok.token.contains(&tok.token_id),
        "the token id is not the secret"
    );
    let expires = parse_time(tok.expires_at.as_deref().expect("a session expires"));
    let thirty_days = 30 * 24 * 3600;
    assert!(
        (before + thirty_days - 5..=now_secs() + thirty_days + 5).contains(&expires),
        "a session lives 30 days: {:?}",
        tok.expires_at
    );

    let m = me(&server, &tok.token);
    assert_eq!(m.user.id, tok.user.id);
    assert_eq!(m.user.handle, "alice");
    assert!(!m.user.admin);
    assert_eq!(m.token_id, tok.token_id);
    assert_eq!(m.kind, TokenKind::Session);
    assert_eq!(m.scopes, [Scope::ChatRead, Scope::ChatWrite]);
    assert_eq!(m.expires_at, tok.expires_at);

    let ping: PingResponse = server.get(PING, Some(&tok.token)).expect(200).json();
    assert!(ping.ok);
}

#[test]
fn health_readiness_and_metrics_answer() {
    let server = Server::start(&[]);
    let health: HealthResponse = server.get("/healthz", None).expect(200).json();
    assert_eq!(health.status, latchkey_proto::HealthStatus::Ok);
    // Ready once caught up; poll rather than assume it already is.
    assert!(
        wait_until(Duration::from_secs(10), || server
            .get("/readyz", None)
            .status
            == 200),
        "/readyz never answered 200: {:?}",
        server.get("/readyz", None)
    );
    let ready: HealthResponse = server.get("/readyz", None).json();
    assert!(ready.applied <= ready.head, "{ready:?}");
    let metrics = server.get("/metrics", None).expect(200);
    assert!(
        metrics.content_type.starts_with("text/plain"),
        "{metrics:?}"
    );
    assert!(
        metrics.body.contains("# TYPE "),
        "not Prometheus text: {}",
        metrics.body
    );
}

// ---- the challenge message ----

#[test]
fn the_message_binds_server_challenge_key_and_expiry() {
    let public_url = "https://chat.example.test";
    let server = Server::start(&["--public-url", public_url]);
    let info: InfoResponse = server.get("/api/native/info", None).expect(200).json();
    assert_eq!(info.server, public_url, "--public-url is the server= value");

    let key = Key::generate(server.scratch(), "ed25519", "binder@host");
    let other = Key::generate(server.scratch(), "ed25519", "other@host");
    let fingerprint = key.fingerprint();

    let before = now_secs();
    let ch = server.challenge(&key.pubkey());
    let after = now_secs();
    let msg = parse_message(&ch.message);
    assert_eq!(msg.server, info.server);
    assert_eq!(msg.server, public_url);
    assert_eq!(msg.challenge, ch.challenge_id);
    assert!(
        uuid::Uuid::parse_str(&ch.challenge_id).is_ok(),
        "{}",
        ch.challenge_id
    );
    assert_eq!(msg.nonce, ch.nonce);
    let nonce = URL_SAFE_NO_PAD
        .decode(&msg.nonce)
        .unwrap_or_else(|e| panic!("nonce {:?} is not unpadded base64url: {e}", msg.nonce));
    assert_eq!(nonce.len(), 32);
    assert_eq!(
        msg.key, fingerprint,
        "key= is ssh-keygen -l -E sha256's fingerprint"
    );
    assert!(
        (before + 59..=after + 61).contains(&msg.expires),
        "expires={} should be within the next minute (now {before})",
        msg.expires
    );
    assert_eq!(
        parse_time(&ch.expires_at),
        msg.expires,
        "expires_at and expires= agree"
    );
    assert!(
        (0..=60).contains(&ch.expires_in),
        "expires_in {}",
        ch.expires_in
    );
    assert_eq!(ch.namespace, NAMESPACE);

    // Two challenges for one key never share an id or a nonce.
    let ch2 = server.challenge(&key.pubkey());
    assert_ne!(ch2.challenge_id, ch.challenge_id);
    assert_ne!(ch2.nonce, ch.nonce);

    // The right key signs a message with one line altered: refused. Each try takes a
    // fresh challenge, since the first /token call consumes one.
    let alterations: Vec<(&str, String)> = vec![
        ("server", "https://evil.example.test".to_string()),
        ("challenge", uuid::Uuid::new_v4().to_string()),
        ("nonce", URL_SAFE_NO_PAD.encode(random_bytes())),
        ("key", other.fingerprint()),
        ("expires", (msg.expires + 3600).to_string()),
    ];
    for (name, value) in alterations {
        let ch = server.challenge(&key.pubkey());
        let altered = replace_line(&ch.message, name, &value);
        let sig = key.sign(altered.as_bytes(), NAMESPACE);
        server
            .redeem(&ch.challenge_id, &sig, None)
            .expect_error(401, "signature_invalid");
    }
    // A different version line, and a signature over the message without its last \n.
    let ch3 = server.challenge(&key.pubkey());
    let v2 = ch3
        .message
        .replacen("latchkey-auth-v1\n", "latchkey-auth-v2\n", 1);
    let sig = key.sign(v2.as_bytes(), NAMESPACE);
    server
        .redeem(&ch3.challenge_id, &sig, None)
        .expect_error(401, "signature_invalid");
    let ch4 = server.challenge(&key.pubkey());
    let sig = key.sign(ch4.message.trim_end().as_bytes(), NAMESPACE);
    server
        .redeem(&ch4.challenge_id, &sig, None)
        .expect_error(401, "signature_invalid");

    // The unaltered message still works, and none of the refusals registered the key.
    let tok = server.sign_in(&key, None);
    assert!(tok.registered);
}

// ---- single use ----

#[test]
fn a_challenge_is_consumed_by_its_first_token_call() {
    let server = Server::start(&[]);
    let key = Key::generate(server.scratch(), "ed25519", "once@host");

    let ch = server.challenge(&key.pubkey());
    let sig = key.sign(ch.message.as_bytes(), NAMESPACE);
    let first: TokenResponse = server
        .redeem(&ch.challenge_id, &sig, None)
        .expect(201)
        .json();
    server
        .redeem(&ch.challenge_id, &sig, None)
        .expect_error(401, "challenge_invalid");
    // The replay minted nothing and revoked nothing.
    assert_eq!(me(&server, &first.token).token_id, first.token_id);

    // A failed first call consumes it too: the good signature comes too late.
    let ch = server.challenge(&key.pubkey());
    let wrong = key.sign(ch.message.as_bytes(), "other");
    server
        .redeem(&ch.challenge_id, &wrong, None)
        .expect_error(401, "signature_invalid");
    let good = key.sign(ch.message.as_bytes(), NAMESPACE);
    server
        .redeem(&ch.challenge_id, &good, None)
        .expect_error(401, "challenge_invalid");

    // A challenge id the server never issued.
    server
        .redeem(&uuid::Uuid::new_v4().to_string(), &good, None)
        .expect_error(401, "challenge_invalid");
}

#[test]
fn expired_challenges_and_sessions_are_refused() {
    // The server's clock moves only when the test says (`--test-clock`): no waiting.
    let server = Server::start_test_clock(&["--challenge-ttl", "60", "--session-ttl", "120"]);
    let key = Key::generate(server.scratch(), "ed25519", "brief@host");
    let late = server.challenge(&key.pubkey());
    assert_eq!(late.expires_in, 60, "{late:?}");
    let late_sig = key.sign(late.message.as_bytes(), NAMESPACE);
    let tok = server.sign_in(&key, None);
    server.get(PING, Some(&tok.token)).expect(200);
    let challenge_expiry = parse_time_ms(&late.expires_at);
    let session_expiry = parse_time_ms(tok.expires_at.as_deref().unwrap());

    // One millisecond before the challenge's expiry it is still good (checked with a
    // second challenge, since redeeming consumes one), and so is the session.
    let early = server.challenge(&key.pubkey());
    let early_sig = key.sign(early.message.as_bytes(), NAMESPACE);
    let now = parse_time_ms(&server.advance_ms(59_999));
    assert!(now < challenge_expiry, "{now} {challenge_expiry}");
    server
        .redeem(&early.challenge_id, &early_sig, None)
        .expect(201);
    server.get(PING, Some(&tok.token)).expect(200);

    // At its expiry instant the challenge is refused; the session lives on.
    let now = parse_time_ms(&server.advance_ms(1));
    assert!(now >= challenge_expiry, "{now} {challenge_expiry}");
    server
        .redeem(&late.challenge_id, &late_sig, None)
        .expect_error(401, "challenge_invalid");
    server.get(PING, Some(&tok.token)).expect(200);

    // Past the session's expiry every use of the token is refused.
    let now = parse_time_ms(&server.advance(60));
    assert!(now >= session_expiry, "{now} {session_expiry}");
    server
        .get(ME, Some(&tok.token))
        .expect_error(401, "unauthorized");
    server
        .get(PING, Some(&tok.token))
        .expect_error(401, "unauthorized");
}

#[test]
fn the_test_clock_exists_only_behind_its_hidden_flag() {
    let server = Server::start(&[]);
    server
        .post_json("/api/test/clock", &json!({"advance_secs": 1}), None)
        .expect_error(404, "not_found");
    let help = std::process::Command::new(crate::support::latchkey_bin())
        .args(["serve", "--help"])
        .output()
        .expect("latchkey serve --help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--bind"), "{help}");
    assert!(!help.contains("test-clock"), "hidden from --help: {help}");

    let server = Server::start_test_clock(&[]);
    assert!(
        server.log().contains("TEST CLOCK"),
        "the test clock is announced in the log: {}",
        server.log()
    );
    let before = parse_time_ms(&server.advance(0));
    let after = parse_time_ms(&server.advance(3600));
    assert_eq!(after - before, 3_600_000, "the clock moved exactly as told");
}

/// Runs `f(i)` on `n` threads released together; returns the answers in order.
fn race<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let barrier = std::sync::Barrier::new(n);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (barrier, f) = (&barrier, &f);
                scope.spawn(move || {
                    barrier.wait();
                    f(i)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Signs `n` fresh challenges for `key` (one signature each), ready to redeem together.
fn presigned(server: &Server, key: &Key, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|_| {
            let ch = server.challenge(&key.pubkey());
            let sig = key.sign(ch.message.as_bytes(), NAMESPACE);
            (ch.challenge_id, sig)
        })
        .collect()
}

#[test]
fn racing_redemptions_of_one_challenge_mint_once() {
    let server = Server::start(&[]);
    let key = Key::generate(server.scratch(), "ed25519", "racer@host");
    let ch = server.challenge(&key.pubkey());
    let sig = key.sign(ch.message.as_bytes(), NAMESPACE);
    let answers = race(8, |_| server.redeem(&ch.challenge_id, &sig, None));
    let winners = answers.iter().filter(|r| r.status == 201).count();
    assert_eq!(winners, 1, "exactly one 201: {answers:#?}");
    for r in answers.iter().filter(|r| r.status != 201) {
        r.expect_error(401, "challenge_invalid");
    }
}

#[test]
fn a_new_key_signing_in_twice_at_once_becomes_one_user() {
    let server = Server::start(&[]);
    let dir = server.scratch();
    // Without handles (both derive the same one), then with two different handles.
    let cases: [(&str, [Option<&str>; 2]); 2] = [
        ("twin@host", [None, None]),
        ("pair@host", [Some("pair-one"), Some("pair-two")]),
    ];
    for (comment, handles) in cases {
        let key = Key::generate(dir, "ed25519", comment);
        let signed = presigned(&server, &key, 2);
        let answers = race(2, |i| server.redeem(&signed[i].0, &signed[i].1, handles[i]));
        let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
        assert_eq!(
            statuses,
            [201, 201],
            "{comment} {handles:?}: both sign-ins of one key succeed: {answers:#?}"
        );
        let toks: Vec<TokenResponse> = answers.iter().map(|r| r.json()).collect();
        assert_eq!(
            toks[0].user.id, toks[1].user.id,
            "{comment} {handles:?}: one key, one user: {toks:#?}"
        );
        assert_eq!(
            toks.iter().filter(|t| t.registered).count(),
            1,
            "{comment} {handles:?}: registered once: {toks:#?}"
        );
    }
}

#[test]
fn two_keys_racing_for_one_handle_one_wins() {
    let server = Server::start(&[]);
    let dir = server.scratch();
    let keys = [
        Key::generate(dir, "ed25519", "p@host"),
        Key::generate(dir, "ed25519", "q@host"),
    ];
    let signed: Vec<(String, String)> = keys
        .iter()
        .map(|k| presigned(&server, k, 1).remove(0))
        .collect();
    let answers = race(2, |i| {
        server.redeem(&signed[i].0, &signed[i].1, Some("contested"))
    });
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    statuses.sort();
    assert_eq!(statuses, [201, 409], "{answers:#?}");
    answers
        .iter()
        .find(|r| r.status == 409)
        .unwrap()
        .expect_error(409, "handle_taken");
}

#[test]
fn a_refused_handle_still_consumes_the_challenge() {
    // DESIGN §6: a challenge is consumed by its first /token call, whatever the result;
    // a 409 or a 400 about the handle is a result like any other.
    let server = Server::start(&[]);
    let dir = server.scratch();
    let owner = Key::generate(dir, "ed25519", "owner@host");
    server.sign_in(&owner, Some("owner"));
    let late = Key::generate(dir, "ed25519", "late@host");

    let ch = server.challenge(&late.pubkey());
    let sig = late.sign(ch.message.as_bytes(), NAMESPACE);
    server
        .redeem(&ch.challenge_id, &sig, Some("owner"))
        .expect_error(409, "handle_taken");
    server
        .redeem(&ch.challenge_id, &sig, Some("late"))
        .expect_error(401, "challenge_invalid");

    let ch = server.challenge(&late.pubkey());
    let sig = late.sign(ch.message.as_bytes(), NAMESPACE);
    server
        .redeem(&ch.challenge_id, &sig, Some("Not Valid"))
        .expect_error(400, "invalid_request");
    server
        .redeem(&ch.challenge_id, &sig, Some("late"))
        .expect_error(401, "challenge_invalid");

    // A fresh challenge works.
    assert_eq!(server.sign_in(&late, Some("late")).user.handle, "late");
}

// ---- signatures ----

#[test]
fn bad_signatures_are_refused() {
    let server = Server::start(&[]);
    let key = Key::generate(server.scratch(), "ed25519", "sig@host");
    let other = Key::generate(server.scratch(), "ed25519", "mallory@host");

    // Right key and message, wrong namespace (e.g. a git or file signature).
    let ch = server.challenge(&key.pubkey());
    let sig = key.sign(ch.message.as_bytes(), "other");
    server
        .redeem(&ch.challenge_id, &sig, None)
        .expect_error(401, "signature_invalid");

    // Right key and namespace, tampered message (one nonce character changed).
    let ch = server.challenge(&key.pubkey());
    let nonce_line = format!("nonce={}", ch.nonce);
    let flipped = if ch.nonce.starts_with('A') { "B" } else { "A" };
    let tampered = ch.message.replacen(
        &nonce_line,
        &format!("nonce={flipped}{}", &ch.nonce[1..]),
        1,
    );
    assert_ne!(tampered, ch.message);
    let sig = key.sign(tampered.as_bytes(), NAMESPACE);
    server
        .redeem(&ch.challenge_id, &sig, None)
        .expect_error(401, "signature_invalid");

    // The exact message, signed by another key than the challenge names.
    let ch = server.challenge(&key.pubkey());
    let sig = other.sign(ch.message.as_bytes(), NAMESPACE);
    server
        .redeem(&ch.challenge_id, &sig, None)
        .expect_error(401, "signature_invalid");

    // Not an SSHSIG at all, an empty armor, an oversized one: refused, never a 500.
    let huge = format!(
        "-----BEGIN SSH SIGNATURE-----\n{}\n-----END SSH SIGNATURE-----\n",
        "A".repeat(20_000)
    );
    let empty_armor = "-----BEGIN SSH SIGNATURE-----\n-----END SSH SIGNATURE-----\n";
    for garbage in ["hello", "", empty_armor, huge.as_str()] {
        let ch = server.challenge(&key.pubkey());
        server
            .redeem(&ch.challenge_id, garbage, None)
            .expect_error(401, "signature_invalid");
    }

    // None of that registered either key.
    assert!(server.sign_in(&key, None).registered);
    assert!(server.sign_in(&other, None).registered);
}

#[test]
fn key_comments_with_control_characters_or_over_256_bytes_get_no_challenge() {
    let server = Server::start(&[]);
    let key = Key::generate(server.scratch(), "ed25519", "fine@host");
    let base = key.pubkey();
    let mut parts = base.splitn(3, ' ');
    let (kind, blob) = (parts.next().unwrap(), parts.next().unwrap());
    let head = |s: &Server| s.get("/healthz", None).json::<HealthResponse>().head;
    let before = head(&server);
    for comment in [
        "evil\u{1b}[2J\u{1b}]0;pwned\u{7}".to_string(),
        "tab\there".to_string(),
        "rtl\u{202e}txt.exe".to_string(),
        "x".repeat(257),
    ] {
        server
            .post_json(
                CHALLENGE,
                &json!({ "public_key": format!("{kind} {blob} {comment}") }),
                None,
            )
            .expect_error(400, "invalid_request");
    }
    assert_eq!(head(&server), before, "a refused challenge stores nothing");
    // 256 bytes is the limit, and an ordinary comment is fine.
    let ok = format!("{kind} {blob} {}", "y".repeat(256));
    let ch = server.challenge(&ok);
    assert!(!ch.challenge_id.is_empty());
}

#[test]
fn only_allowlisted_key_types_get_a_challenge() {
    let server = Server::start(&[]);
    let dir = server.scratch();
    for kind in ["rsa", "ecdsa384", "dsa"] {
        let key = Key::generate(dir, kind, "refused@host");
        server
            .post_json(CHALLENGE, &json!({ "public_key": key.pubkey() }), None)
            .expect_error(400, "unsupported_key_type");
    }
    // sk-ecdsa is a FIDO key, but not on the list.
    let p256 = Key::generate(dir, "ecdsa", "p256@host");
    let KeyData::Ecdsa(ssh_key::public::EcdsaPublicKey::NistP256(point)) =
        PublicKey::from_openssh(&p256.pubkey())
            .unwrap()
            .key_data()
            .clone()
    else {
        panic!("not a P-256 key");
    };
    let sk_ecdsa = PublicKey::new(
        KeyData::SkEcdsaSha2NistP256(ssh_key::public::SkEcdsaSha2NistP256::new(point, "ssh:")),
        "fido",
    )
    .to_openssh()
    .unwrap();
    server
        .post_json(CHALLENGE, &json!({ "public_key": sk_ecdsa }), None)
        .expect_error(400, "unsupported_key_type");

    // Garbage is a malformed request, not a key type.
    for garbage in ["", "hello", "ssh-ed25519 AAAA!!!not-base64", "ssh-ed25519"] {
        server
            .post_json(CHALLENGE, &json!({ "public_key": garbage }), None)
            .expect_error(400, "invalid_request");
    }

    // A NIST P-256 key from ssh-keygen signs in end to end.
    let tok = server.sign_in(&p256, Some("pat256"));
    assert_eq!(me(&server, &tok.token).user.handle, "pat256");
}

// ---- FIDO (sk-ssh-ed25519), built by hand: ssh-keygen needs hardware for these ----

const SK_APP: &str = "ssh:";

fn sk_key_data(seed: u8) -> KeyData {
    let sk = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    KeyData::SkEd25519(SkEd25519::new(
        Ed25519PublicKey(sk.verifying_key().to_bytes()),
        SK_APP,
    ))
}

fn sk_public_line(seed: u8) -> String {
    PublicKey::new(sk_key_data(seed), "fido@token")
        .to_openssh()
        .unwrap()
}

/// An SSHSIG as a security key makes it (OpenSSH PROTOCOL.u2f): the authenticator signs
/// `sha256(application) || flags || counter (u32 BE) || sha256(SSHSIG signed data)`, and
/// the signature blob is `ed25519 sig || flags || counter`.
fn sk_sign(seed: u8, flags: u8, msg: &[u8]) -> String {
    let sk = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    let counter: u32 = 7;
    let signed_data = SshSig::signed_data(NAMESPACE, HashAlg::Sha512, msg).unwrap();
    let mut to_sign = Vec::new();
    to_sign.extend(Sha256::digest(SK_APP.as_bytes()));
    to_sign.push(flags);
    to_sign.extend(counter.to_be_bytes());
    to_sign.extend(Sha256::digest(&signed_data));
    let mut blob = sk.sign(&to_sign).to_bytes().to_vec();
    blob.push(flags);
    blob.extend(counter.to_be_bytes());
    let signature = ssh_key::Signature::new(Algorithm::SkEd25519, blob).unwrap();
    SshSig::new(sk_key_data(seed), NAMESPACE, HashAlg::Sha512, signature)
        .unwrap()
        .to_pem(LineEnding::LF)
        .unwrap()
}

#[test]
fn fido_keys_need_the_user_presence_flag() {
    let server = Server::start(&[]);
    let line = sk_public_line(9);
    let pub_path = server.scratch().join("sk.pub");
    std::fs::write(&pub_path, format!("{line}\n")).unwrap();

    // Without the user-presence flag: a valid signature, refused.
    let ch = server.challenge(&line);
    assert_eq!(parse_message(&ch.message).key, fingerprint(&pub_path));
    server
        .redeem(
            &ch.challenge_id,
            &sk_sign(9, 0x00, ch.message.as_bytes()),
            None,
        )
        .expect_error(401, "signature_invalid");

    // With it: accepted.
    let ch = server.challenge(&line);
    let tok: TokenResponse = server
        .redeem(
            &ch.challenge_id,
            &sk_sign(9, 0x01, ch.message.as_bytes()),
            Some("fido"),
        )
        .expect(201)
        .json();
    assert!(tok.registered);
    assert_eq!(me(&server, &tok.token).user.handle, "fido");

    // Other flags (user verified, 0x04) may ride along with presence, not replace it.
    let ch = server.challenge(&line);
    let again: TokenResponse = server
        .redeem(
            &ch.challenge_id,
            &sk_sign(9, 0x05, ch.message.as_bytes()),
            None,
        )
        .expect(201)
        .json();
    assert_eq!(again.user.id, tok.user.id);
    let ch = server.challenge(&line);
    server
        .redeem(
            &ch.challenge_id,
            &sk_sign(9, 0x04, ch.message.as_bytes()),
            None,
        )
        .expect_error(401, "signature_invalid");
}

// ---- registration ----

#[test]
fn closed_registration_admits_known_keys_only() {
    let mut server = Server::start(&[]);
    let known = Key::generate(server.scratch(), "ed25519", "known@host");
    let stranger = Key::generate(server.scratch(), "ed25519", "stranger@host");
    let first = server.sign_in(&known, Some("known"));

    server.restart_with(&["--registration", "closed"]);
    let info: InfoResponse = server.get("/api/native/info", None).expect(200).json();
    assert_eq!(info.registration, Registration::Closed);

    let again = server.sign_in(&known, Some("ignored"));
    assert!(!again.registered);
    assert_eq!(again.user.id, first.user.id);
    assert_eq!(again.user.handle, "known");

    for _ in 0..2 {
        let ch = server.challenge(&stranger.pubkey());
        let sig = stranger.sign(ch.message.as_bytes(), NAMESPACE);
        server
            .redeem(&ch.challenge_id, &sig, Some("stranger"))
            .expect_error(401, "key_unknown");
    }
}

// ---- handles ----

#[test]
fn handle_rules() {
    let server = Server::start(&[]);
    let dir = server.scratch();
    let a = Key::generate(dir, "ed25519", "a@host");
    let b = Key::generate(dir, "ed25519", "b@host");
    let c = Key::generate(dir, "ecdsa", "c@host");

    let ta = server.sign_in(&a, Some("dana_1-x"));
    assert_eq!(ta.user.handle, "dana_1-x");

    // Taken: 409, and b stays unregistered so it can try again.
    let ch = server.challenge(&b.pubkey());
    let sig = b.sign(ch.message.as_bytes(), NAMESPACE);
    server
        .redeem(&ch.challenge_id, &sig, Some("dana_1-x"))
        .expect_error(409, "handle_taken");
    let tb = server.sign_in(&b, Some("dana-2"));
    assert!(tb.registered);
    assert_ne!(tb.user.id, ta.user.id);

    // Invalid handles: 400, whatever the signature.
    let too_long = "a".repeat(33);
    for bad in [
        "",
        "Dana",
        "has space",
        "dana!",
        "dänä",
        "dana.x",
        too_long.as_str(),
    ] {
        let ch = server.challenge(&c.pubkey());
        let sig = c.sign(ch.message.as_bytes(), NAMESPACE);
        server
            .redeem(&ch.challenge_id, &sig, Some(bad))
            .expect_error(400, "invalid_request");
    }
    // 32 characters is the longest allowed.
    let longest = "z".repeat(32);
    let tc = server.sign_in(&c, Some(&longest));
    assert!(tc.registered);
    assert_eq!(tc.user.handle, longest);

    // A known key's later sign-in ignores `handle`, even a taken one.
    for h in ["another", "dana-2"] {
        let again = server.sign_in(&a, Some(h));
        assert!(!again.registered);
        assert_eq!(again.user.id, ta.user.id);
        assert_eq!(again.user.handle, "dana_1-x");
        assert_eq!(me(&server, &again.token).user.handle, "dana_1-x");
    }

    // Without a handle, one is derived from the key comment.
    let e = Key::generate(dir, "ed25519", "Erin.Smith@laptop");
    let te = server.sign_in(&e, None);
    assert_eq!(te.user.handle, "erin-smith");
    // A derived handle that is taken gets a suffix; it never fails the sign-in.
    let e2 = Key::generate(dir, "ed25519", "erin.smith@desktop");
    let te2 = server.sign_in(&e2, None);
    assert_ne!(te2.user.handle, "erin-smith");
    assert!(
        te2.user.handle.starts_with("erin-smith"),
        "{}",
        te2.user.handle
    );
    // No comment at all: `user-` and the fingerprint's first 8 letters and digits.
    let anon = Key::generate(dir, "ed25519", "");
    let expected: String = "user-"
        .chars()
        .chain(
            anon.fingerprint()["SHA256:".len()..]
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .map(|c| c.to_ascii_lowercase())
                .take(8),
        )
        .collect();
    assert_eq!(server.sign_in(&anon, None).user.handle, expected);
}

// ---- bearer tokens ----

#[test]
fn bad_bearer_values_are_unauthorized() {
    let server = Server::start(&[]);
    let key = Key::generate(server.scratch(), "ed25519", "bearer@host");
    let tok = server.sign_in(&key, None);
    let valid = tok.token.clone();
    server.get(ME, Some(&valid)).expect(200);

    // Same prefix and body, another checksum: rejected without a lookup.
    let last = valid.chars().last().unwrap();
    let swap = if last == '0' { '1' } else { '0' };
    let bad_checksum = format!("{}{swap}", &valid[..valid.len() - 1]);
    // Same checksum, one body character changed.
    let body_char = valid.as_bytes()[10] as char;
    let swap = if body_char == 'a' { 'b' } else { 'a' };
    let bad_body = format!("{}{swap}{}", &valid[..10], &valid[11..]);
    let unknown = generate(TokenPrefix::Session, random_bytes());
    let unknown_pat = generate(TokenPrefix::Personal, random_bytes());
    let unknown_device = generate(TokenPrefix::Device, random_bytes());
    let ticket = generate(TokenPrefix::WsTicket, random_bytes());

    let headers: Vec<Option<String>> = vec![
        None,
        Some("Bearer".into()),
        Some("Bearer ".into()),
        Some("Basic dXNlcjpwYXNzd29yZA==".into()),
        Some(format!("Basic {valid}")),
        Some("Bearer not-a-token".into()),
        Some(format!("Bearer {bad_checksum}")),
        Some(format!("Bearer {bad_body}")),
        Some(format!("Bearer {}", unknown.expose_secret())),
        Some(format!("Bearer {}", unknown_pat.expose_secret())),
        Some(format!("Bearer {}", unknown_device.expose_secret())),
        Some(format!("Bearer {}", ticket.expose_secret())),
        Some(format!("Bearer {valid}x")),
        Some(format!("Bearer {}", &valid[..valid.len() - 1])),
        Some(valid.clone()),
    ];
    for path in [ME, PING] {
        for h in &headers {
            let hs: Vec<(&str, &str)> = h
                .as_deref()
                .map(|v| ("Authorization", v))
                .into_iter()
                .collect();
            let resp = server.request("GET", path, &hs, None);
            assert_eq!(resp.status, 401, "{path} with {h:?}: {resp:?}");
            resp.expect_error(401, "unauthorized");
        }
        // A valid token in the query string is refused (it would land in access logs).
        for q in ["access_token", "token", "bearer_token"] {
            server
                .get(&format!("{path}?{q}={valid}"), None)
                .expect_error(401, "unauthorized");
        }
    }
    // Logout needs a credential too.
    server
        .request("DELETE", TOKEN, &[], None)
        .expect_error(401, "unauthorized");
    server
        .delete(TOKEN, &bad_checksum)
        .expect_error(401, "unauthorized");
    // None of that hurt the real token.
    assert_eq!(me(&server, &valid).token_id, tok.token_id);
}

#[test]
fn logout_revokes_the_presented_token_at_once() {
    let server = Server::start(&[]);
    let key = Key::generate(server.scratch(), "ed25519", "leaver@host");
    let keep = server.sign_in(&key, None);
    let gone = server.sign_in(&key, None);
    assert_ne!(keep.token, gone.token);
    assert_ne!(keep.token_id, gone.token_id);
    assert_eq!(keep.user.id, gone.user.id);

    let resp = server.delete(TOKEN, &gone.token).expect(204);
    assert!(resp.body.is_empty(), "204 has no body: {resp:?}");
    // The very next request, no waiting.
    server
        .get(ME, Some(&gone.token))
        .expect_error(401, "unauthorized");
    server
        .get(PING, Some(&gone.token))
        .expect_error(401, "unauthorized");
    server
        .delete(TOKEN, &gone.token)
        .expect_error(401, "unauthorized");
    // Only that token: the other session of the same user lives on.
    assert_eq!(me(&server, &keep.token).token_id, keep.token_id);
}

// ---- malformed requests ----

#[test]
fn malformed_requests_get_json_errors() {
    let server = Server::start(&[]);
    let json_ct = [("Content-Type", "application/json")];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (CHALLENGE, b"{".to_vec()),
        (CHALLENGE, b"".to_vec()),
        (CHALLENGE, b"null".to_vec()),
        (CHALLENGE, b"[]".to_vec()),
        (CHALLENGE, b"{}".to_vec()),
        (CHALLENGE, br#"{"public_key": 5}"#.to_vec()),
        (CHALLENGE, br#"{"public_key": null}"#.to_vec()),
        (CHALLENGE, vec![0xff, 0xfe, b'{']),
        (TOKEN, b"{".to_vec()),
        (TOKEN, b"{}".to_vec()),
        (TOKEN, br#"{"challenge_id": "x"}"#.to_vec()),
        (TOKEN, br#"{"signature": "x"}"#.to_vec()),
        (TOKEN, br#"{"challenge_id": 1, "signature": "x"}"#.to_vec()),
        (
            TOKEN,
            br#"{"challenge_id": "x", "signature": ["x"]}"#.to_vec(),
        ),
        (
            TOKEN,
            br#"{"challenge_id": "x", "signature": "x", "handle": 7}"#.to_vec(),
        ),
    ];
    for (path, body) in cases {
        let resp = server.request("POST", path, &json_ct, Some(&body));
        assert_eq!(
            (resp.status, resp.error_code().as_str()),
            (400, "invalid_request"),
            "POST {path} {:?}: {resp:?}",
            String::from_utf8_lossy(&body)
        );
        resp.expect_error_shape();
    }

    // Over 64 KiB: 413, as JSON.
    let big = json!({ "public_key": format!("ssh-ed25519 {}", "A".repeat(70_000)) });
    let body = serde_json::to_vec(&big).unwrap();
    assert!(body.len() > 70_000);
    for path in [CHALLENGE, TOKEN] {
        server
            .request("POST", path, &json_ct, Some(&body))
            .expect_error(413, "payload_too_large");
    }

    for (method, path) in [
        ("GET", "/api/native/nope"),
        ("POST", "/api/native/nope"),
        ("GET", "/nope"),
        ("GET", "/api/native"),
    ] {
        server
            .request(method, path, &[], None)
            .expect_error(404, "not_found");
    }
    for (method, path) in [
        ("GET", CHALLENGE),
        ("PUT", TOKEN),
        ("GET", TOKEN),
        ("POST", ME),
        ("DELETE", "/api/native/info"),
    ] {
        server
            .request(method, path, &[], None)
            .expect_error(405, "method_not_allowed");
    }
    // Still alive and well after all of that.
    server.get("/api/native/info", None).expect(200);
}

// ---- durability ----

#[test]
fn acknowledged_mint_and_logout_survive_kill_9() {
    let mut server = Server::start(&[]);
    let key = Key::generate(server.scratch(), "ed25519", "durable@host");
    let a = server.sign_in(&key, Some("durable"));
    let b = server.sign_in(&key, None);
    server.delete(TOKEN, &b.token).expect(204);
    server.kill9();

    server.restart();
    let m = me(&server, &a.token);
    assert_eq!(m.token_id, a.token_id);
    assert_eq!(m.user.handle, "durable");
    server
        .get(ME, Some(&b.token))
        .expect_error(401, "unauthorized");
    // The user is still known after the crash.
    let again = server.sign_in(&key, None);
    assert!(!again.registered);
    assert_eq!(again.user.id, a.user.id);

    // SIGTERM is a clean exit, and the same data dir starts again.
    let status = server.terminate(Duration::from_secs(15));
    assert!(
        status.success(),
        "SIGTERM exit: {status:?}\n{}",
        server.log()
    );
    server.restart();
    assert_eq!(me(&server, &again.token).token_id, again.token_id);
}

#[test]
fn a_second_server_on_the_same_data_dir_is_refused_and_names_the_holder() {
    let server = Server::start(&[]);
    let mut second = Command::new(crate::support::latchkey_bin())
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(server.data_dir())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let exited = wait_until(Duration::from_secs(15), || {
        second.try_wait().unwrap().is_some()
    });
    if !exited {
        let _ = second.kill();
    }
    let out = second.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(exited, "a second serve on a held data dir kept running");
    assert!(!out.status.success(), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening"),
        "the second server must not listen"
    );
    assert!(
        stderr.contains(&server.pid().to_string()),
        "the error should name the holder's pid {}: {stderr}",
        server.pid()
    );
    // The first one is unharmed.
    server.get("/api/native/info", None).expect(200);
}

// ---- logs ----

fn secrets_stay_out_of_the_log(format: &str) {
    let server = Server::start(&["--log-format", format]);
    let key = Key::generate(server.scratch(), "ed25519", "quiet@host");
    let mut secrets: Vec<String> = Vec::new();

    let (t1, s1) = server.sign_in_full(&key, Some("quiet"));
    let (t2, s2) = server.sign_in_full(&key, None);
    secrets.extend([t1.token.clone(), t2.token.clone()]);
    for s in [&s1, &s2] {
        secrets.extend(signature_body_lines(s));
    }
    // A refused signature is a secret too.
    let ch = server.challenge(&key.pubkey());
    let refused = key.sign(ch.message.as_bytes(), "other");
    server
        .redeem(&ch.challenge_id, &refused, None)
        .expect_error(401, "signature_invalid");
    secrets.extend(signature_body_lines(&refused));
    // Use the tokens every way a client might, including the refused query string.
    server.get(ME, Some(&t1.token)).expect(200);
    server
        .get(&format!("{ME}?access_token={}", t1.token), None)
        .expect(401);
    server
        .request(
            "GET",
            PING,
            &[("Cookie", &format!("session={}", t1.token))],
            None,
        )
        .expect(401);
    server.delete(TOKEN, &t2.token).expect(204);
    server.get(PING, Some(&t2.token)).expect(401);
    server.get(PING, Some(&t1.token)).expect(200);

    // The access log is written after the answer: wait for the last request's line.
    assert!(
        wait_until(Duration::from_secs(10), || server.log().contains(PING)),
        "no access-log line for {PING} in the {format} log:\n{}",
        server.log()
    );
    // Metrics are scraped by other systems: no secrets there either.
    let metrics = server.get("/metrics", None).expect(200).body;
    for secret in &secrets {
        assert!(!metrics.contains(secret.as_str()), "a secret in /metrics");
    }

    let log = server.log();
    if format == "json" {
        for line in log.lines().filter(|l| !l.trim().is_empty()) {
            assert!(
                serde_json::from_str::<Value>(line).is_ok_and(|v| v.is_object()),
                "a --log-format json line that is not a JSON object: {line}"
            );
        }
    }
    for path in [CHALLENGE, TOKEN, ME] {
        assert!(
            log.contains(path),
            "no access-log line for {path} in:\n{log}"
        );
    }
    let sig_lines = signature_body_lines(&s1).len();
    assert!(sig_lines >= 3, "an armored SSHSIG has several body lines");
    for secret in &secrets {
        assert!(secret.len() >= 20, "a short secret would match by chance");
        assert!(
            !log.contains(secret.as_str()),
            "secret {}... leaked into the {format} log",
            &secret[..8]
        );
    }
    // The token body alone, should a log cut the prefix off.
    for t in [&t1.token, &t2.token] {
        assert!(
            !log.contains(&t[4..]),
            "a token body leaked into the {format} log"
        );
    }
}

#[test]
fn no_token_or_signature_in_the_pretty_log() {
    secrets_stay_out_of_the_log("pretty");
}

#[test]
fn no_token_or_signature_in_the_json_log() {
    secrets_stay_out_of_the_log("json");
}

// ---- the by-hand walkthrough in proto-docs/auth.md ----

/// The shell code fenced inside `<!-- walkthrough:start -->` ... `<!-- walkthrough:end -->`.
fn walkthrough_script(file: &str) -> String {
    let doc = std::fs::read_to_string(repo_root().join(file)).unwrap();
    let start = doc
        .find("<!-- walkthrough:start -->")
        .expect("walkthrough:start marker");
    let end = doc
        .find("<!-- walkthrough:end -->")
        .expect("walkthrough:end marker");
    assert!(start < end);
    let mut script = String::new();
    let mut in_fence = false;
    for line in doc[start..end].lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            script.push_str(line);
            script.push('\n');
        }
    }
    assert!(!in_fence, "unclosed code fence in the walkthrough");
    assert!(
        script.contains("ssh-keygen -Y sign -n latchkey-auth"),
        "{script}"
    );
    script
}

#[test]
fn the_auth_md_walkthrough_runs() {
    run_walkthrough("proto-docs/auth.md");
}

#[test]
fn the_readme_walkthrough_runs() {
    run_walkthrough("README.md");
}

fn run_walkthrough(file: &str) {
    let server = Server::start(&[]);
    let work = server.scratch().join("walkthrough");
    std::fs::create_dir(&work).unwrap();
    let script = walkthrough_script(file);
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(&work)
        .env("LATCHKEY_URL", server.url())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "walkthrough failed ({:?})\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver log:\n{}",
        out.status,
        server.log()
    );
    // It printed the `me` answer, with the handle it chose.
    let me_answer = json_objects(&stdout)
        .into_iter()
        .find(|v| v.get("scopes").is_some() && v.get("token_id").is_some())
        .unwrap_or_else(|| panic!("no `me` answer in the walkthrough's output:\n{stdout}"));
    assert_eq!(me_answer["user"]["handle"], "alice", "{stdout}");
    assert_eq!(me_answer["kind"], "session", "{stdout}");
    // And the logout took: its last request is refused.
    assert!(stdout.contains("\"unauthorized\""), "{stdout}");
}

/// Every top-level JSON object in text that mixes them with other lines (as `jq .` prints).
fn json_objects(text: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut buf = String::new();
    for line in text.lines() {
        if buf.is_empty() && line.starts_with('{') {
            buf.push_str(line);
            buf.push('\n');
            if let Ok(v) = serde_json::from_str::<Value>(&buf) {
                out.push(v);
                buf.clear();
            }
        } else if !buf.is_empty() {
            buf.push_str(line);
            buf.push('\n');
            if line.starts_with('}') {
                if let Ok(v) = serde_json::from_str::<Value>(&buf) {
                    out.push(v);
                }
                buf.clear();
            }
        }
    }
    out
}

//! Rate limits over the real binary with its default numbers (proto-docs/auth.md): a burst
//! beyond each limit gets 429 `rate_limited` with `Retry-After`, and the limit recovers
//! once the server's test clock (`--test-clock`) has moved by that much.
//! Trusted proxies: `X-Forwarded-For` counts only behind `--trusted-proxy`.

use crate::server::{Key, Resp, Server};
use serde_json::json;

/// Asserts a 429 in the JSON shape with a whole-second `Retry-After` of at least 1.
#[track_caller]
fn assert_limited(r: &Resp) {
    assert_eq!(r.status, 429, "{}: {}", r.what, r.body);
    let body: serde_json::Value = serde_json::from_str(&r.body).expect("JSON error body");
    assert_eq!(body["error"], "rate_limited", "{}", r.body);
    let secs: u64 = r
        .retry_after
        .as_deref()
        .expect("Retry-After on a 429")
        .parse()
        .expect("Retry-After in whole seconds");
    assert!(secs >= 1, "Retry-After {secs}");
}

/// The refusal's `Retry-After`, in seconds.
fn retry_after(r: &Resp) -> u64 {
    r.retry_after
        .as_deref()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After on {}: {}", r.what, r.body))
}

/// On a `--test-clock` server: `send` stays refused while the clock stands still, and
/// passes once the clock has moved by the `Retry-After` of `refused`. Returns that answer.
fn recovers_after_retry_after(server: &Server, refused: &Resp, send: impl Fn() -> Resp) -> Resp {
    assert_limited(refused);
    assert_limited(&send());
    server.advance(retry_after(refused));
    send()
}

fn challenge(server: &Server, key: &Key, xff: Option<&str>) -> Resp {
    let body = serde_json::to_vec(&json!({ "public_key": key.pubkey() })).unwrap();
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(x) = xff {
        headers.push(("X-Forwarded-For", x));
    }
    server.request("POST", "/api/native/challenge", &headers, Some(&body))
}

#[test]
fn challenges_beyond_the_burst_get_429_and_recover() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_limited_test_clock(&[]);
    let key = Key::generate(tmp.path(), "ed25519", "limits@test");
    let mut answers = Vec::new();
    for _ in 0..15 {
        answers.push(challenge(&server, &key, None));
    }
    let ok = answers.iter().filter(|r| r.status == 201).count();
    assert_eq!(ok, 10, "the default burst is 10");
    let refused = answers.last().unwrap();
    recovers_after_retry_after(&server, refused, || challenge(&server, &key, None)).expect(201);
}

#[test]
fn failed_bearer_auth_is_limited_but_success_is_free() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_limited_test_clock(&[]);
    let key = Key::generate(tmp.path(), "ed25519", "good@test");
    let good = server.sign_in(&key, None).token;
    // Successful requests never count.
    for _ in 0..40 {
        server.get("/api/native/ping", Some(&good)).expect(200);
    }
    let mut statuses = Vec::new();
    for _ in 0..25 {
        statuses.push(server.get("/api/native/ping", Some("lks_bogus")).status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        20,
        "{statuses:?}"
    );
    let r = server.get("/api/native/ping", Some("lks_bogus"));
    assert_limited(&r);
    // The address is blocked before any lookup, even with a good token, until the clock
    // has moved by the Retry-After.
    recovers_after_retry_after(&server, &r, || server.get("/api/native/ping", Some(&good)))
        .expect(200);
}

#[test]
fn token_requests_are_limited_per_key() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_limited(&[]);
    let key = Key::generate(tmp.path(), "ed25519", "perkey@test");
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let ch = server.challenge(&key.pubkey());
        let r = server.post_json(
            "/api/native/token",
            &json!({ "challenge_id": ch.challenge_id, "signature": "not a signature" }),
            None,
        );
        statuses.push(r.status);
        if r.status == 429 {
            assert_limited(&r);
            assert!(r.body.contains("key"), "names the key limit: {}", r.body);
        }
    }
    assert_eq!(&statuses[..5], &[401; 5], "{statuses:?}");
    assert_eq!(statuses[5], 429, "the sixth try for one key: {statuses:?}");
}

#[test]
fn ws_tickets_and_ws_connects_are_limited() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_limited(&[]);
    let key = Key::generate(tmp.path(), "ed25519", "ws@test");
    let token = server.sign_in(&key, None).token;
    let mut statuses = Vec::new();
    for _ in 0..22 {
        statuses.push(
            server
                .send("POST", "/api/native/ws-ticket", Some(&token), None)
                .status,
        );
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        20,
        "{statuses:?}"
    );
    assert_limited(&server.send("POST", "/api/native/ws-ticket", Some(&token), None));

    // The WS connect limit is checked before auth, so plain GETs spend it.
    let mut last = None;
    for _ in 0..21 {
        last = Some(server.get("/api/native/ws", Some(&token)));
    }
    assert_limited(&last.unwrap());
}

#[test]
fn x_forwarded_for_counts_only_behind_a_trusted_proxy() {
    // Untrusted: a client cannot pick a fresh address per request.
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_limited(&[]);
    let key = Key::generate(tmp.path(), "ed25519", "spoof@test");
    let spoofed: Vec<u16> = (0..12)
        .map(|i| challenge(&server, &key, Some(&format!("203.0.113.{i}"))).status)
        .collect();
    assert_eq!(
        spoofed.iter().filter(|s| **s == 201).count(),
        10,
        "{spoofed:?}"
    );

    // Trusted loopback proxy: each forwarded client has its own budget.
    let server = Server::start_limited(&["--trusted-proxy", "127.0.0.1/32"]);
    let key = Key::generate(tmp.path(), "ed25519", "proxied@test");
    for _ in 0..10 {
        challenge(&server, &key, Some("203.0.113.7")).expect(201);
    }
    assert_limited(&challenge(&server, &key, Some("203.0.113.7")));
    challenge(&server, &key, Some("203.0.113.8")).expect(201);
}

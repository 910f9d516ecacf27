//! Token and key management (session tokens only), personal access tokens and WebSocket
//! tickets, against a real `latchkey serve` with real `ssh-keygen` keys (DESIGN §6, §7).
//!
//! Each test starts its own server and signs in a handful of times, well inside the
//! per-address sign-in limits.

use crate::server::{Key, Resp, Server, NAMESPACE};
use latchkey_proto::{
    ChallengeResponse, CreateTokenResponse, KeyInfo, KeyList, MeResponse, PingResponse,
    RevokeAllResponse, Scope, TokenKind, TokenList, TokenResponse, WsTicketResponse,
};
use serde_json::{json, Value};

const ME: &str = "/api/native/me";
const PING: &str = "/api/native/ping";
/// Sign-in (POST) and logout (DELETE).
const SIGN_IN: &str = "/api/native/token";
const LOGOUT: &str = SIGN_IN;
const TOKENS: &str = "/api/native/tokens";
const REVOKE_ALL: &str = "/api/native/tokens/revoke-all";
const KEYS: &str = "/api/native/keys";
const KEY_CHALLENGE: &str = "/api/native/keys/challenge";
const WS_TICKET: &str = "/api/native/ws-ticket";

/// The secret part of a token: 43 base62 characters after the 4-character prefix.
const SECRET_LEN: usize = 43;

use crate::server::{now_secs, parse_time};

fn check_token_shape(token: &str, prefix: &str) {
    assert!(
        token.starts_with(prefix),
        "a {prefix} token expected, got {}...",
        token.get(..4).unwrap_or(token)
    );
    assert_eq!(token.len(), 4 + SECRET_LEN + 6, "token length");
    assert!(
        token[4..].bytes().all(|c| c.is_ascii_alphanumeric()),
        "base62 body"
    );
    assert!(
        latchkey_domain::token::parse(token).is_ok(),
        "a minted token fails its own checksum"
    );
}

fn sorted(v: &[Scope]) -> Vec<Scope> {
    let mut v = v.to_vec();
    v.sort();
    v
}

fn default_scopes() -> Vec<Scope> {
    vec![Scope::ChatRead, Scope::ChatWrite]
}

/// A JSON body as bytes.
fn body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

/// `GET /api/native/me` with `token`; asserts 200.
fn me(server: &Server, token: &str) -> MeResponse {
    server.get(ME, Some(token)).expect(200).json()
}

/// Asserts `token` authenticates (`/me` answers 200).
#[track_caller]
fn assert_live(server: &Server, token: &str, what: &str) {
    let resp = server.get(ME, Some(token));
    assert_eq!(
        resp.status, 200,
        "{what} should still be valid; GET {ME} answered {} {}",
        resp.status, resp.body
    );
}

/// Asserts `token` is refused (`/me` answers 401 `unauthorized`) on the very next request.
#[track_caller]
fn assert_dead(server: &Server, token: &str, what: &str) {
    let resp = server.get(ME, Some(token));
    assert_eq!(
        (resp.status, resp.error_code().as_str()),
        (401, "unauthorized"),
        "{what} should be revoked; GET {ME} answered {} {}",
        resp.status,
        resp.body
    );
}

/// `POST /api/native/tokens` with `body` as `bearer`.
fn create_token(server: &Server, bearer: &str, body: &Value) -> Resp {
    server.post_json(TOKENS, body, Some(bearer))
}

/// A personal access token with default scopes; asserts 201.
fn pat(server: &Server, session: &str, name: &str) -> CreateTokenResponse {
    create_token(server, session, &json!({ "name": name }))
        .expect(201)
        .json()
}

/// `GET /api/native/tokens` as `session`; asserts 200 and returns the parsed list and the
/// raw body.
fn list_tokens(server: &Server, session: &str) -> (TokenList, String) {
    let resp = server.get(TOKENS, Some(session)).expect(200);
    (resp.json(), resp.body)
}

fn token_ids(server: &Server, session: &str) -> Vec<String> {
    let mut ids: Vec<String> = list_tokens(server, session)
        .0
        .tokens
        .into_iter()
        .map(|t| t.id)
        .collect();
    ids.sort();
    ids
}

fn list_keys(server: &Server, session: &str) -> Vec<KeyInfo> {
    server
        .get(KEYS, Some(session))
        .expect(200)
        .json::<KeyList>()
        .keys
}

/// The key id of `key` in the caller's key list.
fn key_id_of(server: &Server, session: &str, key: &Key) -> String {
    let fp = key.fingerprint();
    list_keys(server, session)
        .into_iter()
        .find(|k| k.fingerprint == fp)
        .unwrap_or_else(|| panic!("{fp} is not among the caller's keys"))
        .key_id
}

/// `POST /api/native/keys/challenge` for `key`; asserts 201.
fn key_challenge(server: &Server, session: &str, key: &Key) -> ChallengeResponse {
    server
        .post_json(
            KEY_CHALLENGE,
            &json!({ "public_key": key.pubkey() }),
            Some(session),
        )
        .expect(201)
        .json()
}

/// `POST /api/native/keys` with a challenge and signature.
fn add_key_with(server: &Server, session: &str, challenge_id: &str, signature: &str) -> Resp {
    server.post_json(
        KEYS,
        &json!({ "challenge_id": challenge_id, "signature": signature }),
        Some(session),
    )
}

/// Asks for a key challenge for `new_key`, has `signer` sign it, and posts the proof.
fn add_key(server: &Server, session: &str, new_key: &Key, signer: &Key) -> Resp {
    let ch = key_challenge(server, session, new_key);
    let sig = signer.sign(ch.message.as_bytes(), NAMESPACE);
    add_key_with(server, session, &ch.challenge_id, &sig)
}

/// A sign-in with a fresh ed25519 key.
fn new_user(server: &Server, handle: &str) -> (Key, TokenResponse) {
    let key = Key::generate(server.scratch(), "ed25519", &format!("{handle}@host"));
    let tok = server.sign_in(&key, Some(handle));
    (key, tok)
}

// ---- interactive only ----

#[test]
fn a_pat_is_refused_on_every_management_route_before_its_body_is_read() {
    let server = Server::start(&[]);
    let (key, s) = new_user(&server, "alice");
    let p = pat(&server, &s.token, "ci");
    let other_key = Key::generate(server.scratch(), "ed25519", "new@host");
    let own_key_id = key_id_of(&server, &s.token, &key);
    let tokens_before = token_ids(&server, &s.token);

    let malformed: &[u8] = b"{\"name\": ";
    let cases: Vec<(&str, String, Option<Vec<u8>>)> = vec![
        ("GET", TOKENS.into(), None),
        (
            "POST",
            TOKENS.into(),
            Some(body(&json!({ "name": "minted-by-pat" }))),
        ),
        ("POST", TOKENS.into(), Some(malformed.to_vec())),
        ("POST", TOKENS.into(), Some(body(&json!({ "name": 5 })))),
        (
            "POST",
            TOKENS.into(),
            Some(body(&json!({ "name": "x", "scopes": ["admin"] }))),
        ),
        ("POST", TOKENS.into(), None),
        ("DELETE", format!("{TOKENS}/{}", s.token_id), None),
        ("DELETE", format!("{TOKENS}/{}", p.token_id), None),
        ("DELETE", format!("{TOKENS}/{}", uuid::Uuid::new_v4()), None),
        ("DELETE", format!("{TOKENS}/not-a-uuid"), None),
        (
            "POST",
            REVOKE_ALL.into(),
            Some(body(&json!({ "keep_current": false }))),
        ),
        (
            "POST",
            REVOKE_ALL.into(),
            Some(body(&json!({ "keep_current": true }))),
        ),
        ("POST", REVOKE_ALL.into(), Some(body(&json!({})))),
        ("POST", REVOKE_ALL.into(), Some(malformed.to_vec())),
        ("POST", REVOKE_ALL.into(), None),
        ("GET", KEYS.into(), None),
        (
            "POST",
            KEY_CHALLENGE.into(),
            Some(body(&json!({ "public_key": other_key.pubkey() }))),
        ),
        ("POST", KEY_CHALLENGE.into(), Some(malformed.to_vec())),
        (
            "POST",
            KEY_CHALLENGE.into(),
            Some(body(&json!({ "public_key": 1 }))),
        ),
        (
            "POST",
            KEYS.into(),
            Some(body(&json!({
                "challenge_id": uuid::Uuid::new_v4().to_string(),
                "signature": "-----BEGIN SSH SIGNATURE-----\n-----END SSH SIGNATURE-----\n",
            }))),
        ),
        ("POST", KEYS.into(), Some(malformed.to_vec())),
        ("POST", KEYS.into(), Some(body(&json!({})))),
        ("DELETE", format!("{KEYS}/{own_key_id}"), None),
        ("DELETE", format!("{KEYS}/{}", uuid::Uuid::new_v4()), None),
        ("DELETE", format!("{KEYS}/not-a-uuid"), None),
    ];
    for (method, path, payload) in &cases {
        let resp = server.send(method, path, Some(&p.token), payload.as_deref());
        let sent = payload
            .as_deref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_else(|| "(no body)".into());
        assert_eq!(
            (resp.status, resp.error_code().as_str()),
            (403, "interactive_credential_required"),
            "{method} {path} with a PAT and body {sent}: got {} {}",
            resp.status,
            resp.body
        );
        resp.expect_error_shape();
    }

    // Nothing changed: both tokens live, no token minted, the key still there.
    assert_live(&server, &s.token, "the session");
    assert_live(&server, &p.token, "the PAT");
    assert_eq!(token_ids(&server, &s.token), tokens_before);
    let keys = list_keys(&server, &s.token);
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0].key_id, own_key_id);

    // The same malformed body from a session is a 400: the 403 above came first.
    server
        .send("POST", TOKENS, Some(&s.token), Some(malformed))
        .expect_error(400, "invalid_request");
}

// ---- personal access tokens ----

#[test]
fn a_pat_is_created_shown_once_and_works_on_me_and_ping() {
    let server = Server::start(&[]);
    let (_key, s) = new_user(&server, "alice");

    let resp = create_token(&server, &s.token, &json!({ "name": "laptop-cli" })).expect(201);
    assert!(
        resp.content_type.starts_with("application/json"),
        "{resp:?}"
    );
    let p: CreateTokenResponse = resp.json();
    check_token_shape(&p.token, "lkp_");
    assert_eq!(p.kind, TokenKind::Personal);
    assert_eq!(p.name, "laptop-cli");
    assert_eq!(sorted(&p.scopes), default_scopes(), "default PAT scopes");
    assert_eq!(p.expires_at, None, "no expires_in: no expiry");
    assert!(uuid::Uuid::parse_str(&p.token_id).is_ok(), "{}", p.token_id);
    assert!(!p.token.contains(&p.token_id));

    let who = me(&server, &p.token);
    assert_eq!(who.user.id, s.user.id, "a PAT acts as its creator");
    assert_eq!(who.kind, TokenKind::Personal);
    assert_eq!(who.token_id, p.token_id);
    assert_eq!(sorted(&who.scopes), default_scopes());
    assert_eq!(who.expires_at, None);
    let ping: PingResponse = server.get(PING, Some(&p.token)).expect(200).json();
    assert!(ping.ok);

    // Chosen scopes and lifetime.
    let before = now_secs();
    let narrow: CreateTokenResponse = create_token(
        &server,
        &s.token,
        &json!({ "name": "reader", "scopes": ["chat:read"], "expires_in": 3600 }),
    )
    .expect(201)
    .json();
    let after = now_secs();
    assert_eq!(narrow.scopes, [Scope::ChatRead]);
    let expires = parse_time(narrow.expires_at.as_deref().expect("it expires"));
    assert!(
        (before + 3600 - 1..=after + 3600 + 1).contains(&expires),
        "expires_at {expires} is not about now + 3600 ({before}..{after})"
    );
    let who = me(&server, &narrow.token);
    assert_eq!(who.kind, TokenKind::Personal);
    assert_eq!(who.scopes, [Scope::ChatRead]);
    assert_eq!(who.expires_at, narrow.expires_at);
    server.get(PING, Some(&narrow.token)).expect(200);

    // A name of exactly 64 characters is fine.
    let long_ok = "n".repeat(64);
    let created: CreateTokenResponse = create_token(&server, &s.token, &json!({ "name": long_ok }))
        .expect(201)
        .json();
    assert_eq!(created.name, long_ok);

    // Refused: admin scope, unknown scopes, empty and too-long names.
    let refused = [
        json!({ "name": "root", "scopes": ["admin"] }),
        json!({ "name": "root", "scopes": ["chat:read", "admin"] }),
        json!({ "name": "odd", "scopes": ["chat:delete"] }),
        json!({ "name": "odd", "scopes": ["CHAT:READ"] }),
        json!({ "name": "" }),
        json!({ "name": "n".repeat(65) }),
        json!({ "scopes": ["chat:read"] }),
    ];
    for body in &refused {
        let resp = create_token(&server, &s.token, body);
        assert_eq!(
            (resp.status, resp.error_code().as_str()),
            (400, "invalid_request"),
            "POST {TOKENS} {body}: got {} {}",
            resp.status,
            resp.body
        );
    }
    // None of the refused requests minted a token: the session and three PATs.
    assert_eq!(list_tokens(&server, &s.token).0.tokens.len(), 4);

    // Logging out with a PAT revokes that PAT only.
    server.delete(LOGOUT, &p.token).expect(204);
    assert_dead(&server, &p.token, "the logged-out PAT");
    assert_live(&server, &narrow.token, "another PAT");
    assert_live(&server, &s.token, "the session");
}

#[test]
fn the_token_list_never_shows_a_secret_and_marks_the_caller_current() {
    let server = Server::start(&[]);
    let (key, s1) = new_user(&server, "alice");
    let s2 = server.sign_in(&key, None);
    let p = pat(&server, &s1.token, "deploy");
    let (_bob_key, bob) = new_user(&server, "bob");
    let bob_pat = pat(&server, &bob.token, "bobs");
    let secrets = [&s1.token, &s2.token, &p.token, &bob.token, &bob_pat.token];

    for caller in [&s1, &s2] {
        let (list, raw) = list_tokens(&server, &caller.token);
        // The whole answer, re-serialized as well as raw: no secret in any form.
        let reserialized =
            serde_json::to_string(&serde_json::from_str::<Value>(&raw).unwrap()).unwrap();
        for text in [&raw, &reserialized] {
            for secret in secrets {
                assert!(!text.contains(secret.as_str()), "a token is listed: {text}");
                assert!(
                    !text.contains(&secret[4..4 + SECRET_LEN]),
                    "a token's secret part is listed: {text}"
                );
            }
            for prefix in ["lks_", "lkp_", "lkd_", "lkw_"] {
                for (at, _) in text.match_indices(prefix) {
                    let next = text[at + prefix.len()..].chars().next();
                    assert!(
                        !next.is_some_and(|c| c.is_ascii_alphanumeric()),
                        "something like a {prefix} token value is listed: {text}"
                    );
                }
            }
            let longest_run = text
                .split(|c: char| !c.is_ascii_alphanumeric())
                .map(str::len)
                .max()
                .unwrap_or(0);
            assert!(
                longest_run < SECRET_LEN,
                "a {longest_run}-character run (a secret or its hash?) is listed: {text}"
            );
        }

        let mut ids: Vec<&str> = list.tokens.iter().map(|t| t.id.as_str()).collect();
        ids.sort();
        let mut want = vec![
            s1.token_id.as_str(),
            s2.token_id.as_str(),
            p.token_id.as_str(),
        ];
        want.sort();
        assert_eq!(ids, want, "exactly alice's live tokens: {raw}");

        let current: Vec<&str> = list
            .tokens
            .iter()
            .filter(|t| t.current)
            .map(|t| t.id.as_str())
            .collect();
        assert_eq!(current, [caller.token_id.as_str()], "current: {raw}");

        for t in &list.tokens {
            parse_time(&t.created_at);
            if let Some(at) = &t.last_used_at {
                parse_time(at);
            }
            if t.id == p.token_id {
                assert_eq!((t.kind, t.prefix.as_str()), (TokenKind::Personal, "lkp_"));
                assert_eq!(t.name.as_deref(), Some("deploy"));
                assert_eq!(sorted(&t.scopes), default_scopes());
                assert_eq!(t.expires_at, None);
            } else {
                assert_eq!((t.kind, t.prefix.as_str()), (TokenKind::Session, "lks_"));
                let minted = if t.id == s1.token_id { &s1 } else { &s2 };
                assert_eq!(t.expires_at, minted.expires_at);
                parse_time(t.expires_at.as_deref().expect("a session expires"));
            }
        }
    }
}

// ---- revoking ----

#[test]
fn revoking_another_users_token_is_not_found_and_leaves_it_working() {
    let server = Server::start(&[]);
    let (_a, alice) = new_user(&server, "alice");
    let (_b, bob) = new_user(&server, "bob");
    let bob_pat = pat(&server, &bob.token, "bobs");

    for id in [
        bob.token_id.clone(),
        bob_pat.token_id.clone(),
        uuid::Uuid::new_v4().to_string(),
        "not-a-uuid".to_string(),
        "0".to_string(),
    ] {
        server
            .delete(&format!("{TOKENS}/{id}"), &alice.token)
            .expect_error(404, "not_found");
    }
    assert_live(&server, &bob.token, "bob's session");
    assert_live(&server, &bob_pat.token, "bob's PAT");
    assert_live(&server, &alice.token, "alice's session");
    let mut want = vec![bob.token_id.clone(), bob_pat.token_id.clone()];
    want.sort();
    assert_eq!(token_ids(&server, &bob.token), want);
}

#[test]
fn a_revoked_token_is_refused_on_the_very_next_request() {
    let server = Server::start(&[]);
    let (key, s1) = new_user(&server, "alice");
    let s2 = server.sign_in(&key, None);
    let p = pat(&server, &s1.token, "ci");

    server
        .delete(&format!("{TOKENS}/{}", s2.token_id), &s1.token)
        .expect(204);
    assert_dead(&server, &s2.token, "the revoked session");
    server
        .delete(&format!("{TOKENS}/{}", p.token_id), &s1.token)
        .expect(204);
    assert_dead(&server, &p.token, "the revoked PAT");
    server
        .get(PING, Some(&p.token))
        .expect_error(401, "unauthorized");
    assert_live(&server, &s1.token, "the revoking session");
    assert_eq!(token_ids(&server, &s1.token), [s1.token_id.as_str()]);

    // Revoking the token making the request, by id.
    server
        .delete(&format!("{TOKENS}/{}", s1.token_id), &s1.token)
        .expect(204);
    assert_dead(&server, &s1.token, "the session that revoked itself");
}

#[test]
fn revoke_all_keeps_the_caller_only_when_asked() {
    let server = Server::start(&[]);
    let (key, s1) = new_user(&server, "alice");
    let s2 = server.sign_in(&key, None);
    let p1 = pat(&server, &s1.token, "one");
    let (_b, bob) = new_user(&server, "bob");

    // The body is required: without one (or with a broken one) nothing is revoked.
    let no_body = server.send("POST", REVOKE_ALL, Some(&s1.token), None);
    assert_eq!(
        no_body.status, 400,
        "POST {REVOKE_ALL} without a body: {} {}",
        no_body.status, no_body.body
    );
    no_body.expect_error_shape();
    server
        .send(
            "POST",
            REVOKE_ALL,
            Some(&s1.token),
            Some(b"{\"keep_current\": "),
        )
        .expect_error(400, "invalid_request");
    server
        .post_json(
            REVOKE_ALL,
            &json!({ "keep_current": "yes" }),
            Some(&s1.token),
        )
        .expect_error(400, "invalid_request");
    for (t, what) in [(&s1.token, "s1"), (&s2.token, "s2"), (&p1.token, "p1")] {
        assert_live(&server, t, what);
    }

    let out: RevokeAllResponse = server
        .post_json(
            REVOKE_ALL,
            &json!({ "keep_current": true }),
            Some(&s1.token),
        )
        .expect(200)
        .json();
    assert_eq!(out.revoked, 2, "s2 and the PAT");
    assert_live(&server, &s1.token, "the caller (keep_current: true)");
    assert_dead(&server, &s2.token, "the other session");
    assert_dead(&server, &p1.token, "the PAT");
    assert_live(&server, &bob.token, "another user's session");
    assert_eq!(token_ids(&server, &s1.token), [s1.token_id.as_str()]);

    let s3 = server.sign_in(&key, None);
    let p2 = pat(&server, &s3.token, "two");
    // `{}` means keep_current: false: the caller goes too.
    let out: RevokeAllResponse = server
        .post_json(REVOKE_ALL, &json!({}), Some(&s1.token))
        .expect(200)
        .json();
    assert_eq!(out.revoked, 3, "s1, s3 and the second PAT");
    assert_dead(&server, &s1.token, "the caller (keep_current: false)");
    assert_dead(&server, &s3.token, "the other session");
    assert_dead(&server, &p2.token, "the second PAT");
    assert_live(&server, &bob.token, "another user's session");

    // Explicit false, from a fresh session that is the only live token.
    let s4 = server.sign_in(&key, None);
    let out: RevokeAllResponse = server
        .post_json(
            REVOKE_ALL,
            &json!({ "keep_current": false }),
            Some(&s4.token),
        )
        .expect(200)
        .json();
    assert_eq!(out.revoked, 1);
    assert_dead(&server, &s4.token, "the caller (keep_current: false)");
}

// ---- keys ----

#[test]
fn adding_a_key_needs_a_challenge_signed_by_it_and_signs_in_as_the_same_user() {
    let server = Server::start(&[]);
    let (k1, s) = new_user(&server, "alice");
    let k2 = Key::generate(server.scratch(), "ecdsa", "alice@desktop");

    let ch = key_challenge(&server, &s.token, &k2);
    assert_eq!(ch.namespace, NAMESPACE);
    assert!(
        ch.message
            .lines()
            .any(|l| l == format!("key={}", k2.fingerprint())),
        "the challenge names the new key: {:?}",
        ch.message
    );
    let sig = k2.sign(ch.message.as_bytes(), NAMESPACE);
    let resp = add_key_with(&server, &s.token, &ch.challenge_id, &sig).expect(201);
    let added: KeyInfo = resp.json();
    assert_eq!(added.fingerprint, k2.fingerprint());
    assert_eq!(added.key_type, "ecdsa-sha2-nistp256");
    assert_eq!(added.comment, "alice@desktop");
    assert!(uuid::Uuid::parse_str(&added.key_id).is_ok(), "{added:?}");
    parse_time(&added.added_at);

    let keys = list_keys(&server, &s.token);
    let fps: Vec<&str> = keys.iter().map(|k| k.fingerprint.as_str()).collect();
    assert_eq!(
        fps,
        [k1.fingerprint().as_str(), k2.fingerprint().as_str()],
        "oldest first"
    );
    assert_eq!(keys[0].key_type, "ssh-ed25519");
    assert_eq!(keys[0].comment, "alice@host");
    assert_eq!(keys[1], added);

    let via_k2 = server.sign_in(&k2, Some("ignored-handle"));
    assert!(!via_k2.registered, "the added key belongs to alice");
    assert_eq!(via_k2.user.id, s.user.id);
    assert_eq!(via_k2.user.handle, "alice");
    assert_eq!(me(&server, &via_k2.token).user.id, s.user.id);
}

#[test]
fn adding_a_key_refuses_wrong_proofs_and_keys_of_other_users() {
    let server = Server::start(&[]);
    let (_k1, s) = new_user(&server, "alice");
    let (bob_key, bob) = new_user(&server, "bob");
    let new = Key::generate(server.scratch(), "ed25519", "new@host");
    let stranger = Key::generate(server.scratch(), "ed25519", "stranger@host");

    // Signed by another key than the one the challenge names.
    add_key(&server, &s.token, &new, &stranger).expect_error(401, "signature_invalid");

    // A sign-in challenge is not an add-key challenge, even when properly signed.
    let ch = server.challenge(&new.pubkey());
    let sig = new.sign(ch.message.as_bytes(), NAMESPACE);
    add_key_with(&server, &s.token, &ch.challenge_id, &sig).expect_error(401, "challenge_invalid");

    // Another user's add-key challenge cannot be redeemed by alice.
    let bobs = key_challenge(&server, &bob.token, &new);
    let sig = new.sign(bobs.message.as_bytes(), NAMESPACE);
    add_key_with(&server, &s.token, &bobs.challenge_id, &sig)
        .expect_error(401, "challenge_invalid");

    // An unknown challenge id.
    let ch = key_challenge(&server, &s.token, &new);
    let sig = new.sign(ch.message.as_bytes(), NAMESPACE);
    add_key_with(&server, &s.token, &uuid::Uuid::new_v4().to_string(), &sig)
        .expect_error(401, "challenge_invalid");

    // Bob's key, properly signed by it, stays bob's.
    add_key(&server, &s.token, &bob_key, &bob_key).expect_error(409, "conflict");

    let keys = list_keys(&server, &s.token);
    assert_eq!(keys.len(), 1, "nothing was added: {keys:?}");
    assert_eq!(list_keys(&server, &bob.token).len(), 1);
    let again = server.sign_in(&bob_key, None);
    assert_eq!(
        again.user.id, bob.user.id,
        "bob's key still signs in as bob"
    );
    assert_live(&server, &bob.token, "bob's session");
}

#[test]
fn removing_a_key_revokes_its_sessions_only() {
    let server = Server::start(&[]);
    let (k1, s1) = new_user(&server, "alice");
    let s1b = server.sign_in(&k1, None);
    let p = pat(&server, &s1.token, "kept");
    let k2 = Key::generate(server.scratch(), "ed25519", "alice@second");
    add_key(&server, &s1.token, &k2, &k2).expect(201);
    let s2 = server.sign_in(&k2, None);
    assert_eq!(s2.user.id, s1.user.id);
    let (bob_key, bob) = new_user(&server, "bob");
    let k1_id = key_id_of(&server, &s1.token, &k1);
    let k2_id = key_id_of(&server, &s1.token, &k2);
    let bob_key_id = key_id_of(&server, &bob.token, &bob_key);

    // Unknown, malformed and other users' key ids.
    for id in [
        uuid::Uuid::new_v4().to_string(),
        "not-a-uuid".to_string(),
        bob_key_id.clone(),
    ] {
        server
            .delete(&format!("{KEYS}/{id}"), &s2.token)
            .expect_error(404, "not_found");
    }
    assert_eq!(list_keys(&server, &bob.token).len(), 1);

    server
        .delete(&format!("{KEYS}/{k1_id}"), &s2.token)
        .expect(204);
    assert_dead(&server, &s1.token, "a session minted with the removed key");
    assert_dead(
        &server,
        &s1b.token,
        "another session minted with the removed key",
    );
    assert_live(&server, &p.token, "a PAT (not a session of the key)");
    assert_live(&server, &s2.token, "a session of the other key");
    assert_live(&server, &bob.token, "another user's session");
    let keys = list_keys(&server, &s2.token);
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0].key_id, k2_id);

    // The last key stays.
    server
        .delete(&format!("{KEYS}/{k2_id}"), &s2.token)
        .expect_error(409, "conflict");
    assert_live(&server, &s2.token, "the session of the last key");
    assert_eq!(list_keys(&server, &s2.token).len(), 1);
    assert_eq!(me(&server, &p.token).user.id, s1.user.id);
}

// ---- WebSocket tickets ----

#[test]
fn a_ws_ticket_has_its_shape_and_is_not_a_bearer_token() {
    let server = Server::start(&[]);
    let (_k, s) = new_user(&server, "alice");
    let p = pat(&server, &s.token, "bot");

    server
        .send("POST", WS_TICKET, None, None)
        .expect_error(401, "unauthorized");

    let mut tickets = Vec::new();
    for (bearer, what) in [(&s.token, "session"), (&p.token, "PAT")] {
        let resp = server.send("POST", WS_TICKET, Some(bearer), None);
        assert_eq!(
            resp.status, 201,
            "POST {WS_TICKET} with a {what}: {} {}",
            resp.status, resp.body
        );
        let t: WsTicketResponse = resp.json();
        check_token_shape(&t.ticket, "lkw_");
        assert_eq!(t.expires_in, 30);
        tickets.push(t.ticket);
    }
    assert_ne!(tickets[0], tickets[1]);

    for ticket in &tickets {
        for (method, path) in [
            ("GET", ME),
            ("GET", PING),
            ("GET", TOKENS),
            ("POST", WS_TICKET),
        ] {
            server
                .send(method, path, Some(ticket), None)
                .expect_error(401, "unauthorized");
        }
    }
    let (_, raw) = list_tokens(&server, &s.token);
    for ticket in &tickets {
        assert!(!raw.contains(&ticket[4..]), "a ticket is listed: {raw}");
    }
    assert_live(&server, &s.token, "the session");
    assert_live(&server, &p.token, "the PAT");
}

#[test]
fn an_add_key_challenge_does_not_sign_anyone_in() {
    let server = Server::start(&[]);
    let (_k1, s) = new_user(&server, "alice");
    let new = Key::generate(server.scratch(), "ed25519", "new@host");
    // An add-key challenge redeemed at the sign-in route mints no session: not for a new
    // user, and not for alice.
    let ch = key_challenge(&server, &s.token, &new);
    let sig = new.sign(ch.message.as_bytes(), NAMESPACE);
    let resp = server.redeem(&ch.challenge_id, &sig, Some("mallory"));
    assert_eq!(
        (resp.status, resp.error_code().as_str()),
        (401, "challenge_invalid"),
        "POST {SIGN_IN} with an add-key challenge: {} {}",
        resp.status,
        resp.body
    );
    assert_eq!(list_keys(&server, &s.token).len(), 1);
    assert_eq!(token_ids(&server, &s.token), [s.token_id.as_str()]);
}

#[test]
fn one_key_cannot_be_added_to_two_users_at_once() {
    let server = Server::start(&[]);
    let (_, alice) = new_user(&server, "alice");
    let (_, bob) = new_user(&server, "bob");
    for round in 0..5 {
        let shared = Key::generate(server.scratch(), "ed25519", &format!("shared{round}@host"));
        let proofs: Vec<(String, String, String)> = [&alice.token, &bob.token]
            .iter()
            .map(|t| {
                let ch = key_challenge(&server, t, &shared);
                let sig = shared.sign(ch.message.as_bytes(), NAMESPACE);
                (t.to_string(), ch.challenge_id, sig)
            })
            .collect();
        let statuses: Vec<u16> = std::thread::scope(|s| {
            let handles: Vec<_> = proofs
                .iter()
                .map(|(t, c, sig)| s.spawn(|| add_key_with(&server, t, c, sig).status))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut sorted = statuses.clone();
        sorted.sort();
        assert_eq!(sorted, vec![201, 409], "round {round}: {statuses:?}");
        // Signing in with the key reaches its one owner.
        let owner = server.sign_in(&shared, None);
        assert!(!owner.registered, "round {round}: the key has an owner");
    }
}

//! Device pairing (RFC 8628, DESIGN §12; proto-docs/pairing.md) against a real
//! `latchkey serve`: the whole flow with the `oauth2` crate (a client library nobody here
//! wrote), `slow_down`, deny, cancel, the approval race, the interactive-only approval,
//! missed polls, key enrollment with proof and numeric comparison (and a relay that swaps
//! the key), device-token revocation closing its WebSocket, re-pairing, bad input, logs,
//! and the golden bytes of the device events.

use crate::server::{Key, Resp, Server, NAMESPACE};
use latchkey_domain::*;
use latchkey_proto::{MeResponse, TokenKind, TokenList};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::Duration;
use uuid::Uuid;

const CODE: &str = "/api/auth/device/code";
const TOKEN: &str = "/api/auth/device/token";
const CANCEL: &str = "/api/auth/device/cancel";
const PROVE: &str = "/api/auth/device/prove";
const APPROVE: &str = "/api/native/device/approve";
const DENY: &str = "/api/native/device/deny";
const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const CLIENT: &str = "Living Room TV";

/// An answer with the headers these tests look at.
pub(crate) struct Answer {
    pub(crate) status: u16,
    cache_control: String,
    pub(crate) body: Value,
}

impl Answer {
    /// Asserts the OAuth error shape (HTTP 400 unless said otherwise) with this code.
    #[track_caller]
    pub(crate) fn oauth_error(&self, code: &str) {
        assert_eq!(self.status, 400, "{code}: {}", self.body);
        self.oauth_shape(code);
    }

    #[track_caller]
    fn oauth_shape(&self, code: &str) {
        assert_eq!(self.body["error"], code, "{}", self.body);
        assert!(
            self.body["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "no error_description: {}",
            self.body
        );
        assert!(
            self.body.get("message").is_none(),
            "not the OAuth shape: {}",
            self.body
        );
        assert_eq!(self.cache_control, "no-store");
    }

    #[track_caller]
    pub(crate) fn ok(&self) -> &Value {
        assert_eq!(self.status, 200, "{}", self.body);
        assert_eq!(self.cache_control, "no-store");
        &self.body
    }
}

fn answer(result: Result<ureq::Response, ureq::Error>) -> Answer {
    let r = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = r.status();
    let cache_control = r.header("cache-control").unwrap_or("").to_string();
    let text = r.into_string().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        cache_control,
        body,
    }
}

/// POST a form-encoded body.
fn form(server: &Server, path: &str, pairs: &[(&str, &str)]) -> Answer {
    answer(ureq::post(&format!("{}{path}", server.url())).send_form(pairs))
}

/// POST a JSON body to an OAuth endpoint.
fn json_post(server: &Server, path: &str, body: &Value) -> Answer {
    answer(ureq::post(&format!("{}{path}", server.url())).send_json(body.clone()))
}

/// A started device authorization.
pub(crate) struct Started {
    pub(crate) device_code: String,
    pub(crate) user_code: String,
    body: Value,
}

pub(crate) fn start(server: &Server, extra: &[(&str, &str)]) -> Started {
    let mut pairs = vec![("client_id", CLIENT), ("device_name", "tv")];
    pairs.extend_from_slice(extra);
    let a = form(server, CODE, &pairs);
    let body = a.ok().clone();
    Started {
        device_code: body["device_code"].as_str().unwrap().to_string(),
        user_code: body["user_code"].as_str().unwrap().to_string(),
        body,
    }
}

pub(crate) fn poll(server: &Server, device_code: &str) -> Answer {
    form(
        server,
        TOKEN,
        &[
            ("grant_type", GRANT),
            ("device_code", device_code),
            ("client_id", CLIENT),
        ],
    )
}

pub(crate) fn approve(server: &Server, session: &str, user_code: &str) -> Resp {
    server.post_json(APPROVE, &json!({ "user_code": user_code }), Some(session))
}

pub(crate) fn lookup(server: &Server, session: &str, user_code: &str) -> Resp {
    server.get(&format!("/api/native/device/{user_code}"), Some(session))
}

pub(crate) fn session(server: &Server, handle: &str) -> (Key, String) {
    let key = Key::generate(server.scratch(), "ed25519", &format!("{handle}@laptop"));
    let token = server.sign_in(&key, Some(handle)).token;
    (key, token)
}

/// One poll after approval: it redeems at once, whatever the interval.
pub(crate) fn redeem(server: &Server, device_code: &str) -> Value {
    poll(server, device_code).ok().clone()
}

// ---- a real OAuth client library ----

/// The `oauth2` crate's blocking HTTP client trait, over ureq (plain HTTP to loopback).
struct UreqClient(ureq::Agent);

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl oauth2::SyncHttpClient for UreqClient {
    type Error = std::io::Error;

    fn call(&self, request: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, Self::Error> {
        let mut req = self
            .0
            .request(request.method().as_str(), &request.uri().to_string());
        for (name, value) in request.headers() {
            req = req.set(name.as_str(), value.to_str().map_err(io_err)?);
        }
        let resp = match req.send_bytes(request.body()) {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(io_err(e)),
        };
        let mut builder = oauth2::http::Response::builder().status(resp.status());
        for name in resp.headers_names() {
            if let Some(v) = resp.header(&name) {
                builder = builder.header(name.as_str(), v);
            }
        }
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut resp.into_reader(), &mut body)?;
        builder.body(body).map_err(io_err)
    }
}

type Oauth = oauth2::basic::BasicClient<
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

fn oauth_client(server: &Server) -> Oauth {
    oauth2::basic::BasicClient::new(oauth2::ClientId::new(CLIENT.into()))
        .set_device_authorization_url(
            oauth2::DeviceAuthorizationUrl::new(format!("{}{CODE}", server.url())).unwrap(),
        )
        .set_token_uri(oauth2::TokenUrl::new(format!("{}{TOKEN}", server.url())).unwrap())
}

#[test]
fn the_oauth2_crate_pairs_a_device_and_honours_slow_down() {
    use oauth2::TokenResponse;
    let server = Server::start(&[]);
    let (_, alice) = session(&server, "alice");
    let http = UreqClient(ureq::Agent::new());
    let client = oauth_client(&server);
    let details: oauth2::StandardDeviceAuthorizationResponse = client
        .exchange_device_code()
        .add_scope(oauth2::Scope::new("chat:read".into()))
        .add_scope(oauth2::Scope::new("chat:write".into()))
        .add_extra_param("device_name", "tv")
        .request(&http)
        .unwrap();
    assert_eq!(details.expires_in(), Duration::from_secs(600));
    assert_eq!(details.interval(), Duration::from_secs(5));
    let user_code = details.user_code().secret().clone();

    // The library polls, then calls this instead of sleeping: the first wait is the
    // server's interval; the library's second poll comes at once, gets `slow_down`, and
    // the library must wait 5 s longer. Then the user approves.
    let waits = std::cell::RefCell::new(Vec::new());
    let token = client
        .exchange_device_access_token(&details)
        .request(
            &http,
            |wait| {
                waits.borrow_mut().push(wait);
                if waits.borrow().len() == 2 {
                    approve(&server, &alice, &user_code).expect(200);
                }
            },
            None,
        )
        .unwrap();
    assert_eq!(
        *waits.borrow(),
        vec![Duration::from_secs(5), Duration::from_secs(10)],
        "pending, then slow_down adds 5 s"
    );
    let access = token.access_token().secret().clone();
    assert!(access.starts_with("lkd_"));
    assert_eq!(*token.token_type(), oauth2::basic::BasicTokenType::Bearer);
    assert_eq!(
        token.expires_in(),
        Some(Duration::from_secs(90 * 24 * 3600))
    );
    let scopes: Vec<String> = token
        .scopes()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(scopes, vec!["chat:read", "chat:write"]);
    let me: MeResponse = server
        .get("/api/native/me", Some(&access))
        .expect(200)
        .json();
    assert_eq!(me.user.handle, "alice");
    assert_eq!(me.device.unwrap().device_name.as_deref(), Some("tv"));
}

#[test]
fn the_oauth2_crate_sees_a_deny_as_access_denied() {
    let server = Server::start(&[]);
    let (_, alice) = session(&server, "alice");
    let http = UreqClient(ureq::Agent::new());
    let client = oauth_client(&server);
    let details: oauth2::StandardDeviceAuthorizationResponse =
        client.exchange_device_code().request(&http).unwrap();
    let user_code = details.user_code().secret().clone();
    let err = client
        .exchange_device_access_token(&details)
        .request(
            &http,
            |_| {
                server
                    .post_json(DENY, &json!({ "user_code": user_code }), Some(&alice))
                    .expect(200);
            },
            None,
        )
        .unwrap_err();
    match err {
        oauth2::RequestTokenError::ServerResponse(e) => {
            assert_eq!(
                *e.error(),
                oauth2::DeviceCodeErrorResponseType::AccessDenied
            )
        }
        other => panic!("expected access_denied, got {other:?}"),
    }
}

// ---- the flow ----

#[test]
fn init_approve_poll_token_me() {
    let server = Server::start(&[]);
    let (_, alice) = session(&server, "alice");
    let s = start(&server, &[("scope", "chat:read chat:write")]);

    let b = &s.body;
    assert_eq!(b["expires_in"], 600);
    assert_eq!(b["interval"], 5);
    let uc = s.user_code.as_str();
    assert_eq!(uc.len(), 9);
    assert_eq!(&uc[4..5], "-");
    assert!(uc
        .chars()
        .filter(|c| *c != '-')
        .all(|c| "BCDFGHJKLMNPQRSTVWXZ".contains(c)));
    let uri = b["verification_uri"].as_str().unwrap();
    assert_eq!(uri, format!("{}/device", server.url()));
    assert_eq!(
        b["verification_uri_complete"],
        format!("{uri}?user_code={uc}")
    );
    assert!(
        b.get("comparison_code").is_none(),
        "no key, no comparison code"
    );

    poll(&server, &s.device_code).oauth_error("authorization_pending");

    // The approver types it lower-case with a space: still the same code.
    let typed = uc.to_lowercase().replace('-', " ");
    let info: Value = lookup(&server, &alice, &typed).expect(200).json();
    assert_eq!(info["client_id"], CLIENT);
    assert_eq!(info["device_name"], "tv");
    assert_eq!(info["user_code"], uc);
    assert_eq!(info["scopes"], json!(["chat:read", "chat:write"]));
    assert_eq!(
        info["ip"], "127.0.0.0",
        "truncated under the default retention policy"
    );
    assert!(info["key"].is_null());

    let approved: Value = server
        .post_json(
            APPROVE,
            &json!({ "user_code": typed, "scopes": ["chat:read"], "expires_in": 2_592_000 }),
            Some(&alice),
        )
        .expect(200)
        .json();
    assert_eq!(approved["scopes"], json!(["chat:read"]));
    assert_eq!(approved["token_expires_in"], 2_592_000);

    let token = redeem(&server, &s.device_code);
    let access = token["access_token"].as_str().unwrap().to_string();
    assert!(access.starts_with("lkd_"));
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["scope"], "chat:read");
    assert_eq!(token["expires_in"], 2_592_000);

    let me: MeResponse = server
        .get("/api/native/me", Some(&access))
        .expect(200)
        .json();
    assert_eq!(me.user.handle, "alice");
    assert_eq!(me.kind, TokenKind::Device);
    assert_eq!(me.scopes, vec![latchkey_proto::Scope::ChatRead]);
    let device = me.device.expect("me names the device");
    assert_eq!(device.client_id.as_deref(), Some(CLIENT));
    assert_eq!(device.device_name.as_deref(), Some("tv"));

    // Single use: the code is spent.
    poll(&server, &s.device_code).oauth_error("invalid_grant");
    // It no longer shows up for approval.
    lookup(&server, &alice, uc).expect_error(404, "not_found");

    // The approver's token list shows it with client and device name; revocable.
    let list: TokenList = server
        .get("/api/native/tokens", Some(&alice))
        .expect(200)
        .json();
    let row = list
        .tokens
        .iter()
        .find(|t| t.kind == TokenKind::Device)
        .expect("device token listed");
    assert_eq!(row.name.as_deref(), Some(CLIENT));
    assert_eq!(row.device_name.as_deref(), Some("tv"));
    assert_eq!(row.prefix, "lkd_");
    server
        .delete(&format!("/api/native/tokens/{}", row.id), &alice)
        .expect(204);
    server
        .get("/api/native/me", Some(&access))
        .expect_error(401, "unauthorized");
}

/// Without `--public-url`, the verification URI is this request's own origin: forwarding
/// headers count only from a `--trusted-proxy`, as for the client address.
#[test]
fn forwarding_headers_move_the_verification_uri_only_from_a_trusted_proxy() {
    let server = Server::start(&[]);
    let code = |headers: &[(&str, &str)]| -> Value {
        let mut req = ureq::post(&format!("{}{CODE}", server.url()));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        answer(req.send_form(&[("client_id", "tv")])).ok().clone()
    };
    let own = format!("{}/device", server.url());
    for headers in [
        vec![
            ("X-Forwarded-Host", "evil.example"),
            ("X-Forwarded-Proto", "https"),
        ],
        vec![("Forwarded", "host=evil.example;proto=https")],
    ] {
        assert_eq!(
            code(&headers)["verification_uri"],
            own.as_str(),
            "{headers:?}"
        );
    }

    let proxied = Server::start(&["--trusted-proxy", "127.0.0.1"]);
    let a = answer(
        ureq::post(&format!("{}{CODE}", proxied.url()))
            .set("X-Forwarded-Host", "chat.example")
            .set("X-Forwarded-Proto", "https")
            .send_form(&[("client_id", "tv")]),
    );
    assert_eq!(a.ok()["verification_uri"], "https://chat.example/device");
}

#[test]
fn json_bodies_work_like_forms_and_every_answer_is_no_store() {
    let server = Server::start(&[]);
    let (_, alice) = session(&server, "alice");
    let a = json_post(
        &server,
        CODE,
        &json!({ "client_id": CLIENT, "device_name": "tv" }),
    );
    let dc = a.ok()["device_code"].as_str().unwrap().to_string();
    let uc = a.body["user_code"].as_str().unwrap().to_string();
    json_post(
        &server,
        TOKEN,
        &json!({ "grant_type": GRANT, "device_code": dc, "client_id": CLIENT }),
    )
    .oauth_error("authorization_pending");
    approve(&server, &alice, &uc).expect(200);
    let t = json_post(
        &server,
        TOKEN,
        &json!({ "grant_type": GRANT, "device_code": dc, "client_id": CLIENT }),
    );
    assert!(t.ok()["access_token"].as_str().unwrap().starts_with("lkd_"));
    // A wrong method still answers in the OAuth shape, never cached.
    let get = answer(ureq::get(&format!("{}{TOKEN}", server.url())).call());
    assert_eq!(get.status, 405);
    get.oauth_shape("invalid_request");
}

#[test]
fn missed_polls_still_get_the_token_until_expiry() {
    let server = Server::start(&[]);
    let (_, alice) = session(&server, "alice");
    let s = start(&server, &[]);
    poll(&server, &s.device_code).oauth_error("authorization_pending");
    // Polling again at once is too fast.
    poll(&server, &s.device_code).oauth_error("slow_down");
    approve(&server, &alice, &s.user_code).expect(200);
    // The device comes back whenever it likes (no slow_down once approved).
    let t = redeem(&server, &s.device_code);
    assert!(t["access_token"].as_str().unwrap().starts_with("lkd_"));
}

#[test]
fn slow_down_is_protocol_even_without_rate_limits() {
    // Server::start passes --no-rate-limit.
    let server = Server::start(&[]);
    let s = start(&server, &[]);
    poll(&server, &s.device_code).oauth_error("authorization_pending");
    for _ in 0..3 {
        poll(&server, &s.device_code).oauth_error("slow_down");
    }
}

#[test]
fn deny_answers_access_denied_and_can_never_be_approved() {
    let server = Server::start(&[]);
    let (_, alice) = session(&server, "alice");
    let s = start(&server, &[]);
    server
        .post_json(DENY, &json!({ "user_code": s.user_code }), Some(&alice))
        .expect(200);
    poll(&server, &s.device_code).oauth_error("access_denied");
    poll(&server, &s.device_code).oauth_error("access_denied");
    approve(&server, &alice, &s.user_code).expect_error(404, "not_found");
    form(&server, CANCEL, &[("device_code", &s.device_code)]).oauth_error("access_denied");
}

#[test]
fn cancel_answers_access_denied_and_can_never_be_approved() {
    let server = Server::start(&[]);
    let (_, alice) = session(&server, "alice");
    let s = start(&server, &[]);
    let c = form(&server, CANCEL, &[("device_code", &s.device_code)]);
    assert_eq!(c.ok()["status"], "cancelled");
    poll(&server, &s.device_code).oauth_error("access_denied");
    approve(&server, &alice, &s.user_code).expect_error(404, "not_found");
    lookup(&server, &alice, &s.user_code).expect_error(404, "not_found");
}

#[test]
fn two_concurrent_approvals_exactly_one_wins() {
    let server = Server::start(&[]);
    let (_, alice) = session(&server, "alice");
    let (_, bob) = session(&server, "bob");
    for _ in 0..3 {
        let s = start(&server, &[]);
        let statuses: Vec<u16> = std::thread::scope(|scope| {
            let a = scope.spawn(|| approve(&server, &alice, &s.user_code).status);
            let b = scope.spawn(|| approve(&server, &bob, &s.user_code).status);
            vec![a.join().unwrap(), b.join().unwrap()]
        });
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "{statuses:?}"
        );
        assert!(
            statuses.iter().all(|s| *s == 200 || *s == 409 || *s == 404),
            "{statuses:?}"
        );
        let t = redeem(&server, &s.device_code);
        let me: MeResponse = server
            .get("/api/native/me", t["access_token"].as_str())
            .expect(200)
            .json();
        let winner = if statuses[0] == 200 { "alice" } else { "bob" };
        assert_eq!(me.user.handle, winner);
    }
}

#[test]
fn only_a_session_may_look_up_approve_or_deny() {
    let server = Server::start(&[]);
    let (_, alice) = session(&server, "alice");
    let pat: Value = server
        .post_json("/api/native/tokens", &json!({ "name": "ci" }), Some(&alice))
        .expect(201)
        .json();
    let pat = pat["token"].as_str().unwrap().to_string();
    let s = start(&server, &[]);
    approve(&server, &alice, &s.user_code).expect(200);
    let device = redeem(&server, &s.device_code)["access_token"]
        .as_str()
        .unwrap()
        .to_string();

    let other = start(&server, &[]);
    for token in [&pat, &device] {
        lookup(&server, token, &other.user_code)
            .expect_error(403, "interactive_credential_required");
        approve(&server, token, &other.user_code)
            .expect_error(403, "interactive_credential_required");
        server
            .post_json(DENY, &json!({ "user_code": other.user_code }), Some(token))
            .expect_error(403, "interactive_credential_required");
        // Checked before the body: a malformed body still gets 403.
        server
            .send("POST", APPROVE, Some(token), Some(b"{not json"))
            .expect_error(403, "interactive_credential_required");
    }
    lookup(&server, &alice, &other.user_code).expect(200);
    server
        .get(&format!("/api/native/device/{}", other.user_code), None)
        .expect_error(401, "unauthorized");
}

#[test]
fn of_two_concurrent_polls_of_an_approved_code_exactly_one_gets_the_token() {
    let server = Server::start(&[]);
    let (_, alice) = session(&server, "alice");
    for _ in 0..3 {
        let s = start(&server, &[]);
        approve(&server, &alice, &s.user_code).expect(200);
        let answers: Vec<Answer> = std::thread::scope(|scope| {
            let a = scope.spawn(|| poll(&server, &s.device_code));
            let b = scope.spawn(|| poll(&server, &s.device_code));
            vec![a.join().unwrap(), b.join().unwrap()]
        });
        let ok: Vec<&Answer> = answers.iter().filter(|a| a.status == 200).collect();
        assert_eq!(
            ok.len(),
            1,
            "{:?}",
            answers.iter().map(|a| &a.body).collect::<Vec<_>>()
        );
        let other = answers.iter().find(|a| a.status != 200).unwrap();
        other.oauth_error("invalid_grant");
    }
    let list: TokenList = server
        .get("/api/native/tokens", Some(&alice))
        .expect(200)
        .json();
    // Re-pairing `tv` three times leaves one live device token.
    assert_eq!(
        list.tokens
            .iter()
            .filter(|t| t.kind == TokenKind::Device)
            .count(),
        1
    );
}

#[test]
fn a_cancel_after_approval_mints_nothing() {
    let server = Server::start(&[]);
    let (_, alice) = session(&server, "alice");
    let s = start(&server, &[]);
    approve(&server, &alice, &s.user_code).expect(200);
    form(&server, CANCEL, &[("device_code", &s.device_code)]).ok();
    poll(&server, &s.device_code).oauth_error("access_denied");
    let list: TokenList = server
        .get("/api/native/tokens", Some(&alice))
        .expect(200)
        .json();
    assert!(list.tokens.iter().all(|t| t.kind != TokenKind::Device));
}

#[test]
fn device_endpoints_answer_429_in_the_oauth_shape() {
    let server = Server::start_limited(&[]);
    let mut limited = None;
    for i in 0..20 {
        let a = form(&server, CODE, &[("client_id", CLIENT)]);
        if a.status == 429 {
            a.oauth_shape("rate_limited");
            limited = Some(i);
            break;
        }
        a.ok();
    }
    let n = limited.expect("device requests were never limited");
    assert_eq!(n, 5, "a burst of 5 device requests per address");
}

// ---- key enrollment ----

#[test]
fn a_key_of_another_user_is_not_enrolled() {
    let server = Server::start(&[]);
    let (_, alice) = session(&server, "alice");
    let (bob_key, _) = session(&server, "bob");
    // A device holding bob's key pairs, and alice approves: the key stays bob's.
    let s = start(&server, &[("public_key", &bob_key.pubkey())]);
    let ch = &s.body["key_challenge"];
    let sig = bob_key.sign(ch["message"].as_str().unwrap().as_bytes(), NAMESPACE);
    form(
        &server,
        PROVE,
        &[
            ("device_code", &s.device_code),
            ("challenge_id", ch["challenge_id"].as_str().unwrap()),
            ("signature", &sig),
        ],
    )
    .ok();
    approve(&server, &alice, &s.user_code).expect_error(409, "conflict");
    assert_eq!(server.sign_in(&bob_key, None).user.handle, "bob");
    // Still pending: it can be denied.
    server
        .post_json(DENY, &json!({ "user_code": s.user_code }), Some(&alice))
        .expect(200);
}

fn comparison(user_code: &str, fingerprint: &str) -> String {
    let d = Sha256::digest(format!("latchkey-compare-v1\n{user_code}\n{fingerprint}").as_bytes());
    format!(
        "{:06}",
        u32::from_be_bytes([d[0], d[1], d[2], d[3]]) % 1_000_000
    )
}

#[test]
fn a_proven_key_is_enrolled_and_signs_in_as_the_approver() {
    let server = Server::start(&[]);
    let (_, alice) = session(&server, "alice");
    let device_key = Key::generate(server.scratch(), "ed25519", "tv");
    let s = start(&server, &[("public_key", &device_key.pubkey())]);
    // The device computes the comparison code from its own key.
    let own = comparison(&s.user_code, &device_key.fingerprint());
    assert_eq!(s.body["comparison_code"], own);
    let info: Value = lookup(&server, &alice, &s.user_code).expect(200).json();
    assert_eq!(
        info["key"]["comparison_code"], own,
        "both screens show the same digits"
    );
    assert_eq!(info["key"]["fingerprint"], device_key.fingerprint());
    assert_eq!(info["key"]["proven"], false);
    approve(&server, &alice, &s.user_code).expect_error(409, "key_not_proven");

    let ch = &s.body["key_challenge"];
    let message = ch["message"].as_str().unwrap();
    let parsed = latchkey_domain::challenge::parse_message(message).unwrap();
    assert_eq!(parsed.fingerprint, device_key.fingerprint());
    // A signature by another key proves nothing.
    let stranger = Key::generate(server.scratch(), "ed25519", "stranger");
    let bad = stranger.sign(message.as_bytes(), NAMESPACE);
    let challenge_id = ch["challenge_id"].as_str().unwrap();
    form(
        &server,
        PROVE,
        &[
            ("device_code", &s.device_code),
            ("challenge_id", challenge_id),
            ("signature", &bad),
        ],
    )
    .oauth_error("invalid_grant");
    // The proof challenge is no sign-in challenge.
    server
        .redeem(challenge_id, &bad, None)
        .expect_error(401, "challenge_invalid");
    let sig = device_key.sign(message.as_bytes(), NAMESPACE);
    let p = form(
        &server,
        PROVE,
        &[
            ("device_code", &s.device_code),
            ("challenge_id", challenge_id),
            ("signature", &sig),
        ],
    );
    assert_eq!(p.ok()["status"], "proven");
    let info: Value = lookup(&server, &alice, &s.user_code).expect(200).json();
    assert_eq!(info["key"]["proven"], true);

    let approved: Value = approve(&server, &alice, &s.user_code).expect(200).json();
    assert_eq!(approved["key_added"], device_key.fingerprint());
    let keys: Value = server
        .get("/api/native/keys", Some(&alice))
        .expect(200)
        .json();
    assert!(keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["fingerprint"] == device_key.fingerprint()));
    // The device signs in on its own, through the ordinary §6 flow, as alice.
    let signed = server.sign_in(&device_key, None);
    assert_eq!(signed.user.handle, "alice");
    assert!(redeem(&server, &s.device_code)["access_token"].is_string());
}

#[test]
fn a_relay_that_swaps_the_key_shows_different_codes_and_adds_no_key() {
    let server = Server::start(&[]);
    let (_, alice) = session(&server, "alice");
    let device_key = Key::generate(server.scratch(), "ed25519", "tv");
    let relay_key = Key::generate(server.scratch(), "ed25519", "relay");
    // The relay forwards the device's request with its own key in place of the device's.
    let s = start(&server, &[("public_key", &relay_key.pubkey())]);
    // The device computes its code from its own key: it differs from the server's.
    let device_shows = comparison(&s.user_code, &device_key.fingerprint());
    let info: Value = lookup(&server, &alice, &s.user_code).expect(200).json();
    let screen_shows = info["key"]["comparison_code"].as_str().unwrap().to_string();
    assert_ne!(device_shows, screen_shows, "the approver sees the mismatch");
    // The device signs the challenge with its own key: that proves nothing for the
    // relay's key, and without proof no key is added.
    let message = s.body["key_challenge"]["message"].as_str().unwrap();
    let challenge_id = s.body["key_challenge"]["challenge_id"].as_str().unwrap();
    let sig = device_key.sign(message.as_bytes(), NAMESPACE);
    form(
        &server,
        PROVE,
        &[
            ("device_code", &s.device_code),
            ("challenge_id", challenge_id),
            ("signature", &sig),
        ],
    )
    .oauth_error("invalid_grant");
    approve(&server, &alice, &s.user_code).expect_error(409, "key_not_proven");
    let keys: Value = server
        .get("/api/native/keys", Some(&alice))
        .expect(200)
        .json();
    assert_eq!(
        keys["keys"].as_array().unwrap().len(),
        1,
        "no key added: {keys}"
    );
    // Neither key signs in as alice.
    for k in [&device_key, &relay_key] {
        let ch = server.challenge(&k.pubkey());
        let sig = k.sign(ch.message.as_bytes(), NAMESPACE);
        let r = server.redeem(&ch.challenge_id, &sig, None);
        if r.status == 201 {
            let t: Value = r.json();
            assert_ne!(
                t["user"]["handle"], "alice",
                "a relay key signed in as alice"
            );
        }
    }
}

// ---- expiry, on the server's test clock ----

#[test]
fn a_device_code_expires_after_600_seconds_and_the_sweeper_records_it() {
    let mut server = Server::start_test_clock(&[]);
    let (_, alice) = session(&server, "alice");
    let s = start(&server, &[]);
    // An approved code that is never redeemed lapses too.
    let late = json_post(
        &server,
        CODE,
        &json!({ "client_id": CLIENT, "device_name": "late" }),
    );
    let late_code = late.ok()["device_code"].as_str().unwrap().to_string();
    let late_user = late.body["user_code"].as_str().unwrap().to_string();
    approve(&server, &alice, &late_user).expect(200);

    server.advance(599);
    poll(&server, &s.device_code).oauth_error("authorization_pending");
    lookup(&server, &alice, &s.user_code).expect(200);

    server.advance(1);
    poll(&server, &s.device_code).oauth_error("expired_token");
    poll(&server, &late_code).oauth_error("expired_token");
    lookup(&server, &alice, &s.user_code).expect_error(404, "not_found");
    approve(&server, &alice, &s.user_code).expect_error(404, "not_found");
    form(&server, CANCEL, &[("device_code", &s.device_code)]).oauth_error("expired_token");

    // The sweeper wrote `device.expired` for both.
    server.kill9();
    let dir = server.data_dir().display().to_string();
    let out = crate::support::latchkey(&[
        "admin",
        "--data-dir",
        &dir,
        "log",
        "--json",
        "--type",
        "device.expired",
    ]);
    assert!(out.status.success(), "{}", crate::support::stderr(&out));
    let expired = crate::support::stdout(&out).lines().count();
    assert_eq!(expired, 2, "{}", crate::support::stdout(&out));
}

#[test]
fn the_oauth2_crate_sees_an_expired_code_as_expired_token() {
    let server = Server::start_test_clock(&[]);
    let http = UreqClient(ureq::Agent::new());
    let client = oauth_client(&server);
    let details: oauth2::StandardDeviceAuthorizationResponse =
        client.exchange_device_code().request(&http).unwrap();
    // Instead of sleeping, the library's wait moves the server's clock by that much.
    let err = client
        .exchange_device_access_token(&details)
        .request(
            &http,
            |wait| {
                server.advance(wait.as_secs());
            },
            Some(Duration::from_secs(3600)),
        )
        .unwrap_err();
    match err {
        oauth2::RequestTokenError::ServerResponse(e) => {
            assert_eq!(
                *e.error(),
                oauth2::DeviceCodeErrorResponseType::ExpiredToken
            )
        }
        other => panic!("expected expired_token, got {other:?}"),
    }
}

// ---- tokens ----

#[test]
fn revoking_a_device_token_closes_its_websocket_with_4001() {
    let server = Server::start(&[]);
    let (_, alice) = session(&server, "alice");
    let s = start(&server, &[]);
    approve(&server, &alice, &s.user_code).expect(200);
    let token = redeem(&server, &s.device_code)["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (mut ws, hello) = crate::chat::live(&server, &token);
    assert!(hello["user_id"].is_string());
    let me: MeResponse = server
        .get("/api/native/me", Some(&token))
        .expect(200)
        .json();
    server
        .delete(&format!("/api/native/tokens/{}", me.token_id), &alice)
        .expect(204);
    let (code, _, _, _) = ws.expect_close(Duration::from_secs(5));
    assert_eq!(code, Some(4001));
}

#[test]
fn re_pairing_the_same_device_revokes_the_earlier_token() {
    let server = Server::start(&[]);
    let (_, alice) = session(&server, "alice");
    // The same app and device name (`tv`) twice.
    let first = {
        let s = start(&server, &[]);
        approve(&server, &alice, &s.user_code).expect(200);
        redeem(&server, &s.device_code)["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let second = {
        let s = start(&server, &[]);
        approve(&server, &alice, &s.user_code).expect(200);
        redeem(&server, &s.device_code)["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    server
        .get("/api/native/me", Some(&first))
        .expect_error(401, "unauthorized");
    server.get("/api/native/me", Some(&second)).expect(200);
    // Another device of the same app keeps its own token.
    let kitchen = json_post(
        &server,
        CODE,
        &json!({ "client_id": CLIENT, "device_name": "kitchen" }),
    );
    let uc = kitchen.ok()["user_code"].as_str().unwrap().to_string();
    approve(&server, &alice, &uc).expect(200);
    let dc = kitchen.body["device_code"].as_str().unwrap().to_string();
    let third = redeem(&server, &dc)["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    server.get("/api/native/me", Some(&second)).expect(200);
    server.get("/api/native/me", Some(&third)).expect(200);
    let list: TokenList = server
        .get("/api/native/tokens", Some(&alice))
        .expect(200)
        .json();
    assert_eq!(
        list.tokens
            .iter()
            .filter(|t| t.kind == TokenKind::Device)
            .count(),
        2
    );
}

// ---- bad input ----

#[test]
fn malformed_device_requests_get_oauth_errors_and_store_nothing() {
    let server = Server::start(&[]);
    let head = |server: &Server| -> u64 {
        let v: Value = server.get("/healthz", None).expect(200).json();
        v["head"].as_u64().unwrap()
    };
    let before = head(&server);
    let long = "x".repeat(65);
    // A key comment lands on the approver's account: no control characters, <= 256 bytes.
    let key = Key::generate(server.scratch(), "ed25519", "tv");
    let bare = key.pubkey();
    let bare: Vec<&str> = bare.split(' ').take(2).collect();
    let escaped_comment = format!("{} evil\u{1b}[2J", bare.join(" "));
    let long_comment = format!("{} {}", bare.join(" "), "c".repeat(257));
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![], "invalid_request"),
        (vec![("client_id", "")], "invalid_request"),
        (vec![("client_id", &long)], "invalid_request"),
        (vec![("client_id", "tv\u{1b}[2J")], "invalid_request"),
        (
            vec![("client_id", "tv"), ("device_name", "a\nb")],
            "invalid_request",
        ),
        (
            vec![("client_id", "tv"), ("device_name", &long)],
            "invalid_request",
        ),
        (
            vec![("client_id", "tv"), ("scope", "admin")],
            "invalid_scope",
        ),
        (
            vec![("client_id", "tv"), ("scope", "chat:read openid")],
            "invalid_scope",
        ),
        (
            vec![("client_id", "tv"), ("public_key", "ssh-rsa AAAA")],
            "invalid_request",
        ),
        (
            vec![("client_id", "tv"), ("public_key", &escaped_comment)],
            "invalid_request",
        ),
        (
            vec![("client_id", "tv"), ("public_key", &long_comment)],
            "invalid_request",
        ),
        (
            vec![("client_id", "a"), ("client_id", "b")],
            "invalid_request",
        ),
    ];
    for (pairs, code) in &cases {
        form(&server, CODE, pairs).oauth_error(code);
    }
    let garbage = answer(
        ureq::post(&format!("{}{CODE}", server.url()))
            .set("Content-Type", "application/json")
            .send_string("{not json"),
    );
    garbage.oauth_error("invalid_request");
    // Form values are UTF-8 (RFC 6749 appendix B): undecodable bytes are refused, not
    // silently replaced.
    for raw in [
        "client_id=%FF%FE",
        "client_id=tv&device_name=%C3",
        "client_id=tv%80",
    ] {
        let bad_utf8 = answer(
            ureq::post(&format!("{}{CODE}", server.url()))
                .set("Content-Type", "application/x-www-form-urlencoded")
                .send_string(raw),
        );
        bad_utf8.oauth_error("invalid_request");
    }
    let xml = answer(
        ureq::post(&format!("{}{CODE}", server.url()))
            .set("Content-Type", "text/xml")
            .send_string("<a/>"),
    );
    xml.oauth_error("invalid_request");
    let big = answer(
        ureq::post(&format!("{}{CODE}", server.url()))
            .set("Content-Type", "application/x-www-form-urlencoded")
            .send_string(&format!("client_id={}", "x".repeat(70 * 1024))),
    );
    assert_eq!(big.status, 413);
    big.oauth_shape("invalid_request");
    assert_eq!(head(&server), before, "a refused request stores nothing");

    let s = start(&server, &[]);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("device_code", &s.device_code), ("client_id", CLIENT)],
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("device_code", &s.device_code),
                ("client_id", CLIENT),
            ],
            "unsupported_grant_type",
        ),
        (
            vec![("grant_type", GRANT), ("client_id", CLIENT)],
            "invalid_request",
        ),
        (
            vec![("grant_type", GRANT), ("device_code", &s.device_code)],
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", GRANT),
                ("device_code", "nope"),
                ("client_id", CLIENT),
            ],
            "invalid_grant",
        ),
        (
            vec![
                ("grant_type", GRANT),
                ("device_code", &s.device_code),
                ("client_id", "Other App"),
            ],
            "invalid_client",
        ),
    ];
    for (pairs, code) in &cases {
        form(&server, TOKEN, pairs).oauth_error(code);
    }
    form(&server, CANCEL, &[]).oauth_error("invalid_request");
    form(&server, CANCEL, &[("device_code", "nope")]).oauth_error("invalid_grant");
    form(&server, PROVE, &[("device_code", &s.device_code)]).oauth_error("invalid_request");
    form(
        &server,
        PROVE,
        &[
            ("device_code", &s.device_code),
            ("challenge_id", "x"),
            ("signature", "y"),
        ],
    )
    .oauth_error("invalid_request");
}

/// What the approver reads must be what it looks like: a right-to-left override, a
/// zero-width or a line separator in `client_id` or a device name is refused, at the
/// device endpoint and in an approval's `name`, and nothing is stored.
#[test]
fn bidi_overrides_and_invisible_characters_in_names_are_refused() {
    let server = Server::start(&[]);
    let head = |server: &Server| -> u64 {
        let v: Value = server.get("/healthz", None).expect(200).json();
        v["head"].as_u64().unwrap()
    };
    let bad_names = [
        "\u{202e}VT mooR gniviL",
        "Living\u{200b}Room",
        "tv\u{feff}",
        "line\u{2028}break",
    ];
    let before = head(&server);
    for bad in bad_names {
        form(&server, CODE, &[("client_id", bad)]).oauth_error("invalid_request");
        json_post(&server, CODE, &json!({ "client_id": bad })).oauth_error("invalid_request");
        form(&server, CODE, &[("client_id", "tv"), ("device_name", bad)])
            .oauth_error("invalid_request");
    }
    assert_eq!(head(&server), before, "a refused request stores nothing");

    let (_, alice) = session(&server, "alice");
    let s = start(&server, &[]);
    for bad in bad_names {
        server
            .post_json(
                APPROVE,
                &json!({ "user_code": s.user_code, "name": bad }),
                Some(&alice),
            )
            .expect_error(400, "invalid_request");
    }
    let v: Value = lookup(&server, &alice, &s.user_code).expect(200).json();
    assert_eq!(v["device_name"], "tv", "still pending, name unchanged: {v}");
}

#[test]
fn malformed_approvals_get_json_errors() {
    let server = Server::start(&[]);
    let (_, alice) = session(&server, "alice");
    let s = start(&server, &[]);
    for body in [
        json!({ "user_code": s.user_code, "scopes": ["admin"] }),
        json!({ "user_code": s.user_code, "scopes": [] }),
        json!({ "user_code": s.user_code, "expires_in": 0 }),
        json!({ "user_code": s.user_code, "expires_in": 31_536_001 }),
        json!({ "user_code": s.user_code, "name": "a\u{7}b" }),
        json!({ "user_code": 5 }),
    ] {
        server
            .post_json(APPROVE, &body, Some(&alice))
            .expect_error(400, "invalid_request");
    }
    for code in ["AAAA-AAAA", "BCDF-GHJ", "zzzz-zzzz%2F..", "BCDF-GHJKL"] {
        lookup(&server, &alice, code).expect_error(404, "not_found");
    }
    // Never expires: null.
    let v: Value = server
        .post_json(
            APPROVE,
            &json!({ "user_code": s.user_code, "expires_in": null }),
            Some(&alice),
        )
        .expect(200)
        .json();
    assert!(v["token_expires_in"].is_null());
    let t = redeem(&server, &s.device_code);
    assert!(
        t.get("expires_in").is_none(),
        "a token that never expires: {t}"
    );
}

#[test]
fn device_codes_and_user_codes_never_reach_the_log() {
    let server = Server::start(&[]);
    let (_, alice) = session(&server, "alice");
    let s = start(&server, &[]);
    lookup(&server, &alice, &s.user_code).expect(200);
    // The router decodes percent-escapes: the same route through an escaped path.
    server
        .get(
            &format!("/api/native/%64evice/{}", s.user_code),
            Some(&alice),
        )
        .expect(200);
    approve(&server, &alice, &s.user_code).expect(200);
    let token = redeem(&server, &s.device_code)["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let log = server.log();
    assert!(
        log.contains("/api/native/device/[redacted]"),
        "the access log names the route"
    );
    for secret in [
        &s.device_code,
        &s.user_code,
        &s.user_code.replace('-', ""),
        &token,
    ] {
        assert!(!log.contains(secret.as_str()), "a secret reached the log");
    }
}

#[test]
fn user_code_lookups_are_rate_limited_per_address() {
    let server = Server::start_limited(&[]);
    let (_, alice) = session(&server, "alice");
    let mut limited = None;
    for i in 0..40 {
        let r = lookup(&server, &alice, "BCDF-GHJK");
        if r.status == 429 {
            limited = Some(i);
            assert!(r.retry_after.is_some());
            r.expect_error(429, "rate_limited");
            break;
        }
        r.expect_error(404, "not_found");
    }
    let n = limited.expect("lookups were never limited");
    assert!(n >= 10, "burst of 10 allowed, limited after {n}");
}

#[test]
fn info_lists_the_device_flow() {
    let server = Server::start(&[]);
    let info: Value = server.get("/api/native/info", None).expect(200).json();
    assert!(info["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "device-authorization"));
}

// ---- golden bytes ----

fn gid(n: u128) -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | n)
}

/// One sample of every device event, for `golden`.
pub fn golden_samples() -> Vec<Event> {
    let t = Timestamp(1_790_000_000_000);
    let key = SshPublicKey {
        algorithm: KeyAlgorithm::Ed25519,
        openssh: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGolden".into(),
        fingerprint: "SHA256:golden".into(),
        comment: "tv".into(),
    };
    vec![
        PairingEvent::DeviceAuthorizationRequested {
            pairing_id: PairingId(gid(20)),
            client_id: "Living Room TV".into(),
            scopes: vec![Scope::ChatRead, Scope::ChatWrite],
            device_name: Some("tv".into()),
            device_code_hash: [3; 32],
            user_code_hash: [4; 32],
            key: Some(KeyChallenge {
                key,
                server: "https://chat.example".into(),
                nonce: [5; 32],
                expires_at: Timestamp(1_790_000_060_000),
            }),
            interval_secs: 5,
            requested_at: t,
            expires_at: Timestamp(1_790_000_600_000),
            ip: Some("192.0.2.0".parse().unwrap()),
            user_agent: Some("tv-app/1.0".into()),
        }
        .into(),
        PairingEvent::DeviceKeyProven { at: t }.into(),
        PairingEvent::DeviceApproved {
            by: UserId(gid(1)),
            scopes: vec![Scope::ChatRead],
            device_name: Some("Den TV".into()),
            token_ttl_secs: Some(7_776_000),
            key_id: Some(KeyId(gid(21))),
            at: t,
        }
        .into(),
        PairingEvent::DeviceDenied {
            by: UserId(gid(2)),
            at: t,
        }
        .into(),
        PairingEvent::DeviceAuthorizationCancelled { at: t }.into(),
        PairingEvent::DeviceTokenIssued {
            token_id: TokenId(gid(22)),
            at: t,
        }
        .into(),
        PairingEvent::DeviceAuthorizationExpired { at: t }.into(),
    ]
}

#[test]
fn replaced_is_revoke_reason_6() {
    // `RevokeReason` is an enum inside `token.revoked`; its index is the encoding.
    let e: Event = UserEvent::TokenRevoked {
        token_id: TokenId(gid(5)),
        reason: RevokeReason::Replaced,
        at: Timestamp(1_790_000_000_000),
    }
    .into();
    let bytes = latchkey_store::codec::encode(&e).unwrap();
    assert_eq!(&bytes[..2], &[0, 5], "user event 5: token.revoked");
    // The token id is a length-prefixed 16-byte string: 17 bytes.
    assert_eq!(bytes[2 + 17], 6, "reason index right after the token id");
}

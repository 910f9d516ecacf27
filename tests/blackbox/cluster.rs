//! Several latchkey nodes on one NATS JetStream log (DESIGN §11), with real `nats-server -js`
//! processes (Debian's package) on random loopback ports and temp dirs: a token minted on
//! one node works on the other at the next request, a revoke on one node closes the
//! credential's sockets on the other with 4001, single-use values stay single-use across
//! nodes (challenges, WebSocket tickets in their KV bucket, stored by hash only, with one
//! winner when two nodes redeem one at once, and device codes and user codes found on the
//! other node at once), a client of a killed node resumes on the other with no gap and no duplicate,
//! a message body posted on one node is read on the other and erased on the shared
//! log (its key message overwritten in the keys stream), and a missing server or one
//! without JetStream is named at start-up.

use crate::chat::{
    create_room, full_history, live, posted, try_connect, try_create_room, Follower, User,
    FRAME_DEADLINE, WS,
};
use crate::server::{Key, Server, NAMESPACE};
use crate::support::{latchkey, stderr, stdout};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How long a nats-server may take to say it is ready.
const NATS_START: Duration = Duration::from_secs(20);
/// Operations per sequence of the two-node model test.
const MODEL_OPS: usize = 200;

/// A `nats-server` child on a random loopback port, with its store in a temp dir; killed on
/// drop.
pub struct Nats {
    child: Option<Child>,
    port: u16,
    _dir: TempDir,
}

impl Nats {
    /// A single server with JetStream.
    pub fn start() -> Nats {
        Nats::spawn(true)
    }

    /// A single server without JetStream.
    pub fn start_without_jetstream() -> Nats {
        Nats::spawn(false)
    }

    /// Three JetStream servers in one cluster on loopback ports.
    pub fn cluster3() -> Vec<Nats> {
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes = |me: usize| -> String {
            (0..3)
                .filter(|i| *i != me)
                .map(|i| format!("nats://127.0.0.1:{}", ports[i]))
                .collect::<Vec<_>>()
                .join(",")
        };
        let spawn = |i: usize| {
            let dir = tempfile::tempdir().expect("temp dir");
            let mut cmd = Command::new("nats-server");
            cmd.args(["-a", "127.0.0.1", "-p", "-1", "-js", "--cluster_name", "lk"])
                .arg("-n")
                .arg(format!("n{i}"))
                .arg("-sd")
                .arg(dir.path().join("js"))
                .arg("--cluster")
                .arg(format!("nats://127.0.0.1:{}", ports[i]))
                .arg("--routes")
                .arg(routes(i));
            Nats::run(cmd, dir)
        };
        // Started one after the other: each waits for "Server is ready".
        (0..3).map(spawn).collect()
    }

    fn spawn(jetstream: bool) -> Nats {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cmd = Command::new("nats-server");
        cmd.args(["-a", "127.0.0.1", "-p", "-1"]);
        if jetstream {
            cmd.arg("-js").arg("-sd").arg(dir.path().join("js"));
        }
        Nats::run(cmd, dir)
    }

    fn run(mut cmd: Command, dir: TempDir) -> Nats {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nats-server (apt-get install nats-server)");
        let port = read_port(&mut child);
        Nats {
            child: Some(child),
            port,
            _dir: dir,
        }
    }

    /// SIGKILL, and reap the child.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The server's store dir (JetStream's files).
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// One JetStream API request (`$JS.API.<api>`) over the plain NATS protocol; the
    /// decoded JSON answer.
    pub fn js_api(&self, api: &str, body: &Value) -> Value {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let payload = body.to_string();
        write!(
            s,
            "CONNECT {{\"verbose\":false,\"pedantic\":false}}\r\nSUB _INBOX.t 1\r\n\
             PUB $JS.API.{api} _INBOX.t {}\r\n{payload}\r\n",
            payload.len()
        )
        .unwrap();
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                r.read_line(&mut line).unwrap() > 0,
                "NATS closed the connection"
            );
            if line.starts_with("PING") {
                s.write_all(b"PONG\r\n").unwrap();
            }
            assert!(!line.starts_with("-ERR"), "{line}");
            if let Some(head) = line.strip_prefix("MSG ") {
                let len: usize = head.split_whitespace().last().unwrap().parse().unwrap();
                let mut buf = vec![0u8; len + 2];
                r.read_exact(&mut buf).unwrap();
                return serde_json::from_slice(&buf[..len]).unwrap();
            }
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A loopback port nothing listens on (bound, then freed).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Reads the server's log until it says where it listens and that it is ready; keeps
/// draining the pipe afterwards so the child never blocks on it.
fn read_port(child: &mut Child) -> u16 {
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let end = Instant::now() + NATS_START;
    let mut port = None;
    let mut seen = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left.max(Duration::from_millis(1)))
            .unwrap_or_else(|e| panic!("nats-server did not start ({e:?}): {seen:#?}"));
        if let Some(rest) = line.split("Listening for client connections on ").nth(1) {
            port = rest.trim().rsplit(':').next().and_then(|p| p.parse().ok());
        }
        if line.contains("Server is ready") {
            return port.unwrap_or_else(|| panic!("no client port in {seen:#?}"));
        }
        seen.push(line);
    }
}

/// A latchkey node on the JetStream log at `nats`.
fn node(nats: &Nats) -> Server {
    Server::start(&["--store", &nats.url()])
}

/// The seq `at` has applied to its read models (`/healthz`).
fn applied(at: &Server) -> u64 {
    let v: Value = at.get("/healthz", None).expect(200).json();
    v["applied"].as_u64().unwrap_or_else(|| panic!("{v}"))
}

/// Waits (polling, bounded) until `at` has applied everything `ahead` had applied.
pub fn wait_caught_up(at: &Server, ahead: &Server) {
    let want = applied(ahead);
    let ok = crate::support::wait_until(Duration::from_secs(10), || applied(at) >= want);
    assert!(ok, "the node did not reach seq {want}: at {}", applied(at));
}

/// Signs in on `at` with a challenge issued there; the token.
fn sign_in(at: &Server, key: &Key, handle: Option<&str>) -> Value {
    let ch = at.challenge(&key.pubkey());
    let sig = key.sign(ch.message.as_bytes(), NAMESPACE);
    at.redeem(&ch.challenge_id, &sig, handle).expect(201).json()
}

/// `latchkey serve --store URL` on a fresh data dir: it must refuse to start; its stderr.
fn refused_at_start(url: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = latchkey(&[
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
        "--store",
        url,
    ]);
    assert!(!out.status.success(), "started on {url}");
    stderr(&out)
}

#[test]
fn a_missing_server_or_one_without_jetstream_is_named_at_start() {
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = refused_at_start(&format!("nats://127.0.0.1:{port}"));
    assert!(err.contains("cannot reach NATS"), "{err}");

    let plain = Nats::start_without_jetstream();
    let err = refused_at_start(&plain.url());
    assert!(err.contains("without JetStream"), "{err}");

    let err = refused_at_start("nats://");
    assert!(err.contains("NATS"), "{err}");
}

#[test]
fn a_token_minted_on_one_node_works_on_the_other_at_the_next_request() {
    let nats = Nats::start();
    let a = node(&nats);
    let b = node(&nats);
    for i in 0..15 {
        let (mint, other) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let key = Key::generate(mint.scratch(), "ed25519", &format!("k{i}"));
        let t = sign_in(mint, &key, Some(&format!("cl{i}")));
        let token = t["token"].as_str().unwrap();
        let me: Value = other.get("/api/native/me", Some(token)).expect(200).json();
        assert_eq!(me["user"]["id"], t["user"]["id"], "{me}");
        // Logged out on the other node: refused on the minting node at the next request.
        other
            .send("DELETE", "/api/native/token", Some(token), None)
            .expect(204);
        wait_refused(mint, token);
    }
    // The admin tool reads the stream itself while the nodes run: the log verifies, and
    // the stats count what the nodes wrote.
    let out = latchkey(&["admin", "--store", &nats.url(), "--json", "verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    let out = latchkey(&["admin", "--store", &nats.url(), "--json", "stats"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stats: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(stats["events"], v["events"], "{stats}");
    assert_eq!(stats["events_by_type"]["user.registered"], 15, "{stats}");
    let out = latchkey(&["admin", "--store", &nats.url(), "user", "disable", "cl0"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--server"), "{}", stderr(&out));
}

/// A revoked token is refused by a node once that node has the revocation: poll with a
/// deadline (a node may answer for a token until the revoke reaches it; DESIGN §11 bounds
/// only the 401 side).
fn wait_refused(at: &Server, token: &str) {
    let ok = crate::support::wait_until(Duration::from_secs(5), || {
        at.get("/api/native/me", Some(token)).status == 401
    });
    assert!(ok, "the revoked token still works on the other node");
}

#[test]
fn a_challenge_issued_on_one_node_is_redeemed_once_across_both() {
    let nats = Nats::start();
    let a = node(&nats);
    let b = node(&nats);
    for i in 0..5 {
        let key = Key::generate(a.scratch(), "ed25519", &format!("c{i}"));
        let ch = a.challenge(&key.pubkey());
        let sig = key.sign(ch.message.as_bytes(), NAMESPACE);
        // Redeemed on B at once, then refused on both.
        b.redeem(&ch.challenge_id, &sig, Some(&format!("ch{i}")))
            .expect(201);
        a.redeem(&ch.challenge_id, &sig, None)
            .expect_error(401, "challenge_invalid");
        b.redeem(&ch.challenge_id, &sig, None)
            .expect_error(401, "challenge_invalid");
    }
}

/// A fresh WebSocket ticket minted on `at` with `token`.
fn ticket(at: &Server, token: &str) -> String {
    let v: Value = at
        .post_json("/api/native/ws-ticket", &json!({}), Some(token))
        .expect(201)
        .json();
    v["ticket"].as_str().unwrap().to_string()
}

/// Opens the WebSocket on `at` with `ticket`.
fn open_with(at: &Server, ticket: &str) -> Result<crate::chat::Ws, crate::chat::Refused> {
    try_connect(at, &format!("{WS}?ticket={ticket}"), None)
}

/// Asserts that `ticket` is refused on `at` exactly as a ticket nobody minted is.
#[track_caller]
fn refused_like_unknown(at: &Server, ticket: &str) {
    let unknown = format!("lkw_{}", "x".repeat(ticket.len() - 4));
    let want = open_with(at, &unknown)
        .err()
        .expect("an unknown ticket opened");
    let got = open_with(at, ticket).err().expect("a spent ticket opened");
    assert_eq!(
        (got.status, &got.body),
        (401, &want.body),
        "{got:?} vs {want:?}"
    );
}

#[test]
fn a_ws_ticket_minted_on_one_node_opens_on_the_other_and_is_spent_on_both() {
    let nats = Nats::start();
    let a = node(&nats);
    let b = node(&nats);
    let alice = User::new(&a, "tix");
    for i in 0..6 {
        let (mint, other) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        // Minted on one node, opened at once on the other; the hello is Alice's.
        let t = ticket(mint, &alice.token);
        let mut ws = open_with(other, &t).unwrap_or_else(|r| panic!("refused: {r:?}"));
        assert_eq!(ws.hello()["user_id"], alice.id.as_str());
        refused_like_unknown(mint, &t);
        refused_like_unknown(other, &t);
        // Spent on the minting node: refused on the other.
        let t = ticket(mint, &alice.token);
        open_with(mint, &t).unwrap_or_else(|r| panic!("refused: {r:?}"));
        refused_like_unknown(other, &t);
    }
}

#[test]
fn two_nodes_redeeming_one_ws_ticket_at_once_have_exactly_one_winner() {
    const TRIALS: usize = 12;
    let nats = Nats::start();
    let a = node(&nats);
    let b = node(&nats);
    let alice = User::new(&a, "race");
    let mut wins = [0usize; 2];
    for i in 0..TRIALS {
        let t = ticket(if i % 2 == 0 { &a } else { &b }, &alice.token);
        let gate = std::sync::Barrier::new(2);
        let go = |at: &Server| {
            gate.wait();
            open_with(at, &t).map_err(|r| r.status)
        };
        let (on_a, on_b) = std::thread::scope(|s| {
            let x = s.spawn(|| go(&a));
            let y = s.spawn(|| go(&b));
            (x.join().unwrap(), y.join().unwrap())
        });
        let won: Vec<bool> = [&on_a, &on_b].iter().map(|r| r.is_ok()).collect();
        assert_eq!(
            won.iter().filter(|w| **w).count(),
            1,
            "trial {i}: A {:?}, B {:?}",
            on_a.as_ref().err(),
            on_b.as_ref().err()
        );
        for (n, r) in [on_a, on_b].into_iter().enumerate() {
            match r {
                Ok(_) => wins[n] += 1,
                Err(status) => assert_eq!(status, 401, "trial {i}"),
            }
        }
    }
    println!("ticket races: A won {}, B won {}", wins[0], wins[1]);
}

#[test]
fn a_ws_ticket_is_stored_by_its_hash_and_never_as_itself() {
    use sha2::{Digest, Sha256};
    let nats = Nats::start();
    let a = node(&nats);
    let b = node(&nats);
    let alice = User::new(&a, "hashed");
    let spent = ticket(&a, &alice.token);
    open_with(&b, &spent).unwrap_or_else(|r| panic!("refused: {r:?}"));
    let waiting = ticket(&b, &alice.token);
    // The KV bucket holds the unspent ticket under its hex SHA-256 (no vacuous grep)...
    let key = hex::encode(Sha256::digest(waiting.as_bytes()));
    let found =
        crate::support::wait_until(Duration::from_secs(5), || holds(nats.dir(), key.as_bytes()));
    assert!(found, "the ticket's hash is not in JetStream's files");
    // ...and no file of JetStream or of either node holds a raw ticket.
    for dir in [nats.dir().to_path_buf(), a.data_dir(), b.data_dir()] {
        for t in [&spent, &waiting] {
            assert!(
                !holds(&dir, t.as_bytes()),
                "{}: holds a ticket",
                dir.display()
            );
        }
    }
    open_with(&a, &waiting).unwrap_or_else(|r| panic!("refused: {r:?}"));
}

#[test]
fn a_device_code_from_one_node_is_polled_looked_up_and_approved_on_the_other() {
    use crate::device::{approve, lookup, poll, redeem, session, start};
    let nats = Nats::start();
    let a = node(&nats);
    let b = node(&nats);
    let (_, approver) = session(&a, "approver");
    for i in 0..4 {
        let (asked, other) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let s = start(asked, &[]);
        // At once on the other node: pending, not invalid_grant (unknown code).
        poll(other, &s.device_code).oauth_error("authorization_pending");
        // The user code is looked up and approved on the other node too.
        let shown: Value = lookup(other, &approver, &s.user_code).expect(200).json();
        assert_eq!(shown["user_code"], s.user_code.as_str(), "{shown}");
        approve(other, &approver, &s.user_code).expect(200);
        // Redeemed on the asking node once it has the approval (a lagging node answers
        // authorization_pending, which is no error), then spent on both.
        wait_caught_up(asked, other);
        let t = redeem(asked, &s.device_code);
        let token = t["access_token"].as_str().unwrap();
        other.get("/api/native/me", Some(token)).expect(200);
        poll(other, &s.device_code).oauth_error("invalid_grant");
        poll(asked, &s.device_code).oauth_error("invalid_grant");
    }
}

#[test]
fn a_revoke_on_one_node_closes_the_socket_on_the_other_with_4001() {
    const TRIALS: usize = 50;
    let nats = Nats::start();
    let a = node(&nats);
    let b = node(&nats);
    let mut alice = User::new(&a, "rv");
    let mut took = Vec::with_capacity(TRIALS);
    for i in 0..TRIALS {
        if i > 0 {
            alice.sign_in_again(&a);
        }
        // Connected on B, revoked on A.
        let (mut ws, _) = live(&b, &alice.token);
        a.send("DELETE", "/api/native/token", Some(&alice.token), None)
            .expect(204);
        // From A's answer (the revoke is durable in the stream) to B's close frame.
        let answered = Instant::now();
        let (code, _, at, _) = ws.expect_close(Duration::from_secs(5));
        assert_eq!(code, Some(4001), "trial {i}");
        took.push(at.saturating_duration_since(answered));
    }
    took.sort();
    let p50 = took[TRIALS / 2];
    let p99 = took[(TRIALS * 99).div_ceil(100) - 1];
    println!(
        "revoke on A -> 4001 on B, {TRIALS} trials: p50 {p50:?}, p99 {p99:?}, max {:?}",
        took[TRIALS - 1]
    );
    assert!(p99 < Duration::from_millis(50), "p99 {p99:?}");
}

#[test]
fn without_jetstream_writes_answer_503_with_retry_after_and_reads_still_serve() {
    let mut nats = Nats::start();
    let a = node(&nats);
    let b = node(&nats);
    let alice = User::new(&a, "nq");
    create_room(&a, &alice.token, "before", "public");
    b.get("/api/native/me", Some(&alice.token)).expect(200);
    ticket(&a, &alice.token);
    nats.kill9();
    for at in [&a, &b] {
        let started = Instant::now();
        let r = try_create_room(at, &alice.token, "after", "public");
        let took = started.elapsed();
        assert_eq!(r.status, 503, "{r:?}");
        assert!(r.retry_after.is_some(), "503 without Retry-After: {r:?}");
        assert!(r.body.contains("\"error\""), "{r:?}");
        assert!(
            took < Duration::from_secs(12),
            "the write hung for {took:?}"
        );
        // A WebSocket ticket lives in JetStream too: minting one is a write.
        let started = Instant::now();
        let r = at.post_json("/api/native/ws-ticket", &json!({}), Some(&alice.token));
        assert_eq!(r.status, 503, "{r:?}");
        assert!(r.retry_after.is_some(), "503 without Retry-After: {r:?}");
        assert!(started.elapsed() < Duration::from_secs(12), "the mint hung");
        // Reads of what the node knows keep serving.
        at.get("/api/native/me", Some(&alice.token)).expect(200);
        at.get("/api/native/rooms", Some(&alice.token)).expect(200);
    }
}

#[test]
fn losing_one_of_three_jetstream_servers_loses_no_acknowledged_write() {
    let mut cluster = Nats::cluster3();
    let urls = cluster.iter().map(Nats::url).collect::<Vec<_>>().join(",");
    let args = ["--store", urls.as_str(), "--store-replicas", "3"];
    let a = Server::start(&args);
    let b = Server::start(&args);
    let alice = User::new(&a, "fo");
    let mut acked = Vec::new();
    let mut refused = 0;
    let mut outage = Duration::ZERO;
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..60 {
        if i == 20 {
            cluster[0].kill9();
        }
        let at = if i % 2 == 0 { &a } else { &b };
        let started = Instant::now();
        loop {
            let r = try_create_room(at, &alice.token, &format!("fo{i}"), "public");
            match r.status {
                201 => {
                    let v: Value = r.json();
                    acked.push(v["id"].as_str().unwrap().to_string());
                    outage = outage.max(started.elapsed());
                    break;
                }
                503 => {
                    assert!(r.retry_after.is_some(), "{r:?}");
                    refused += 1;
                    assert!(Instant::now() < deadline, "writes did not come back");
                }
                s => panic!("write {i}: {s} {r:?}"),
            }
        }
    }
    println!(
        "failover: {} writes acknowledged, {refused} answers 503 while the cluster elected; \
         longest wait for one write {outage:?}",
        acked.len()
    );
    for at in [&a, &b] {
        for id in &acked {
            at.get(&format!("/api/native/rooms/{id}"), Some(&alice.token))
                .expect(200);
        }
    }
}

/// The secret of message `id` in the keys stream (`None`: JetStream has no message on its
/// subject, "no message found").
fn key_message(nats: &Nats, id: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let v = nats.js_api(
        "STREAM.MSG.GET.LATCHKEY_KEYS",
        &json!({ "last_by_subj": format!("latchkey.key.{id}") }),
    );
    if v["error"]["err_code"] == 10037 {
        return None;
    }
    let data = v["message"]["data"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"));
    Some(
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap(),
    )
}

/// Whether any file under `dir` holds `needle`. Files that vanish while it reads (a
/// running nats-server rewrites its index files) are skipped.
fn holds(dir: &std::path::Path, needle: &[u8]) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let path = e.path();
        if path.is_dir() {
            return holds(&path, needle);
        }
        let bytes = std::fs::read(&path).unwrap_or_default();
        bytes.windows(needle.len()).any(|w| w == needle)
    })
}

/// The body of message `id` in `messages` (a history); panics when it is missing.
fn body_in(messages: &[Value], id: &str) -> Value {
    let m = messages.iter().find(|m| m["message_id"] == id);
    m.unwrap_or_else(|| panic!("{id} not in {messages:?}"))["body"].clone()
}

#[test]
fn a_body_posted_on_one_node_is_read_on_the_other_and_erased_on_the_shared_log() {
    let nats = Nats::start();
    let a = node(&nats);
    let b = node(&nats);
    let alice = User::new(&a, "bodies");
    let room = create_room(&a, &alice.token, "bodies", "public");
    let marker = uuid::Uuid::new_v4().simple().to_string();
    let (kept, gone) = (format!("KEPT{marker}"), format!("GONE{marker}"));
    // Posted on A, delivered live on B with its body, and in B's history.
    let (mut on_b, _) = live(&b, &alice.token);
    let (kept_id, _) = posted(&a, &alice.token, &room, &kept, &[]);
    let (gone_id, _) = posted(&a, &alice.token, &room, &gone, &[]);
    for (id, text) in [(&kept_id, &kept), (&gone_id, &gone)] {
        let (ev, _) = on_b.until(FRAME_DEADLINE, |v| {
            v["event"] == "message.posted" && v["data"]["message_id"] == id.as_str()
        });
        assert_eq!(ev["data"]["body"], text.as_str(), "{ev}");
    }
    let h = full_history(&b, &alice.token, &room, 50);
    assert_eq!(body_in(&h, &kept_id), kept.as_str());
    assert_eq!(body_in(&h, &gone_id), gone.as_str());
    // Each secret is one message of the keys stream, never in the log stream's batch.
    let kept_key = key_message(&nats, &kept_id).expect("the live body's key message");
    let gone_key = key_message(&nats, &gone_id).expect("the body's key message");
    assert_eq!((kept_key.len(), gone_key.len()), (32, 32));

    // Deleted on B: A sends message.deleted and serves a null body, as B does.
    let (mut on_a, _) = live(&a, &alice.token);
    crate::erasure::delete(&b, &alice.token, &room, &gone_id).expect(204);
    let (ev, _) = on_a.until(FRAME_DEADLINE, |v| v["event"] == "message.deleted");
    assert_eq!(ev["data"]["message_id"], gone_id.as_str(), "{ev}");
    for at in [&a, &b] {
        let h = full_history(at, &alice.token, &room, 50);
        assert_eq!(body_in(&h, &gone_id), Value::Null, "{h:?}");
        assert_eq!(body_in(&h, &kept_id), kept.as_str());
    }

    // The key message is gone from the keys stream, overwritten in JetStream's files, and
    // zeroed in both nodes' copies; the live key is still everywhere (no vacuous grep).
    assert_eq!(key_message(&nats, &gone_id), None);
    assert!(key_message(&nats, &kept_id).is_some());
    for dir in [nats.dir().to_path_buf(), a.data_dir(), b.data_dir()] {
        let ok = crate::support::wait_until(Duration::from_secs(5), || {
            holds(&dir, &kept_key) && !holds(&dir, &gone_key)
        });
        assert!(
            ok,
            "{}: the erased key is on disk, or the live one is not",
            dir.display()
        );
        assert!(!holds(&dir, gone.as_bytes()) && !holds(&dir, kept.as_bytes()));
    }

    // A node that replays the stream later finds no key: a null body; the live one reads.
    let c = node(&nats);
    let h = full_history(&c, &alice.token, &room, 50);
    assert_eq!(body_in(&h, &gone_id), Value::Null, "{h:?}");
    assert_eq!(body_in(&h, &kept_id), kept.as_str());
    // The admin tool's copy of the stream says the same, and verifies.
    let out = latchkey(&["admin", "--store", &nats.url(), "export", "--jsonl"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let export = stdout(&out);
    assert!(export.contains(&kept) && !export.contains(&gone));
    let out = latchkey(&["admin", "--store", &nats.url(), "--json", "verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_client_of_a_killed_node_resumes_on_the_other_with_no_gap_and_no_duplicate() {
    const POSTS: usize = 40;
    let nats = Nats::start();
    let mut a = node(&nats);
    let b = node(&nats);
    let alice = User::new(&b, "poster");
    let bob = User::new(&b, "reader");
    let room = create_room(&b, &alice.token, "failover", "public");
    crate::chat::join(&b, &bob.token, &room).expect(200);
    // Bob follows on A (his token was minted on B) while Alice posts on B.
    let mut bob_ws = Follower::new("bob");
    bob_ws.connect(&a, &bob.token);
    bob_ws.wait_resumed(FRAME_DEADLINE);
    let mut sent = Vec::with_capacity(POSTS);
    for i in 0..POSTS {
        if i == POSTS / 2 {
            // A dies mid-stream: the socket ends without a close frame; Bob resumes on B
            // from the last seq he saw, after more posts have landed.
            a.kill9();
            let gone = crate::support::wait_until(FRAME_DEADLINE, || !bob_ws.pump());
            assert!(gone, "the killed node's socket did not end");
            let (id, _) = posted(&b, &alice.token, &room, &format!("while down {i}"), &[]);
            sent.push(id);
            bob_ws.connect(&b, &bob.token);
            bob_ws.wait_resumed(FRAME_DEADLINE);
        }
        let (id, _) = posted(&b, &alice.token, &room, &format!("post {i}"), &[]);
        sent.push(id);
        bob_ws.pump();
    }
    let posted_ids = |f: &Follower| -> Vec<String> {
        f.events
            .iter()
            .filter(|e| e["event"] == "message.posted" && e["room_id"] == room.as_str())
            .map(|e| e["data"]["message_id"].as_str().unwrap().to_string())
            .collect()
    };
    let all = crate::support::wait_until(FRAME_DEADLINE, || {
        bob_ws.pump_for(Duration::from_millis(50));
        posted_ids(&bob_ws).len() >= sent.len()
    });
    assert!(all, "missing posts: got {:?}", posted_ids(&bob_ws));
    // No gap, no duplicate: every post once, in order, and seqs strictly increasing
    // across both nodes (every node expands the stream into the same seqs).
    assert_eq!(posted_ids(&bob_ws), sent);
    let seqs = bob_ws.seqs();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(bob_ws.odd.is_empty(), "odd frames: {:?}", bob_ws.odd);
}

#[test]
fn a_room_or_user_made_on_one_node_is_found_on_the_other_at_the_next_request() {
    let nats = Nats::start();
    let a = node(&nats);
    let b = node(&nats);
    let alice = User::new(&a, "owner");
    let bob = User::new(&b, "guest");
    for i in 0..8 {
        // Created on A, then at once on B: B catches up before it would answer 404.
        let room = create_room(&a, &alice.token, &format!("r{i}"), "public");
        b.get(&format!("/api/native/rooms/{room}"), Some(&bob.token))
            .expect(200);
        crate::chat::join(&b, &bob.token, &room).expect(200);
        posted(&b, &bob.token, &room, &format!("hi {i}"), &[]);
        crate::chat::history(&b, &bob.token, &room, "").expect(200);
        // A user registered on B, added by the owner on A at once.
        let carol = User::new(&b, &format!("new{i}"));
        crate::chat::add_member(&a, &alice.token, &room, &carol.id).expect(204);
    }
}

#[test]
fn rooms_and_fanout_on_two_nodes_agree_with_the_naive_oracle() {
    // The model test's sequences, with requests and connections spread over two nodes.
    crate::model::run_seeds("cluster::rooms_and_fanout", MODEL_OPS, || {
        let nats = Nats::start();
        let url = nats.url();
        let nodes = (0..2)
            .map(|_| Server::start_unlimited(&["--store", &url]))
            .collect();
        (nats, nodes)
    });
}

/// Registers an admin with `key` straight on the shared log, as the offline
/// `latchkey admin user add --admin` does on a sled data dir (which a JetStream log has
/// not), through the store crate's own append. The admin's handle is `root`.
fn add_admin(nats: &Nats, key: &Key) {
    use latchkey_domain::{sshkey, Actor, Event, KeyId, Timestamp, UserEvent, UserId};
    use latchkey_store::{AppendRequest, EventStore, ExpectedVersion, NatsOptions, NatsStore};
    let dir = tempfile::tempdir().unwrap();
    let store = NatsStore::open(
        &dir.path().join("copy"),
        NatsOptions::new(&nats.url()),
        latchkey_store::StoreOptions::default(),
    )
    .expect("open the stream");
    let user_id = UserId(uuid::Uuid::new_v4());
    let registered = UserEvent::UserRegistered {
        user_id,
        handle: "root".into(),
        key_id: KeyId(uuid::Uuid::new_v4()),
        key: sshkey::parse_public_key(&key.pubkey()).unwrap(),
        admin: true,
        at: Timestamp(crate::server::now_secs() * 1000),
    };
    store
        .append_blocking(AppendRequest {
            stream: user_id.stream(),
            expected: ExpectedVersion::Exact(0),
            events: vec![Event::User(registered)],
            command_id: uuid::Uuid::new_v4(),
            actor: Actor::System,
        })
        .expect("append the admin");
    store.close().unwrap();
}

/// Two nodes on one stream that holds an admin, and the admin's session token. Bind the
/// nats-server first: bindings drop last to first, so the nodes stop before it does.
fn two_nodes_with_an_admin() -> (Nats, Server, Server, String) {
    let nats = Nats::start();
    let keys = tempfile::tempdir().unwrap();
    let root_key = Key::generate(keys.path(), "ed25519", "root@ops");
    add_admin(&nats, &root_key);
    let a = node(&nats);
    let b = node(&nats);
    let root = a.sign_in(&root_key, None).token;
    (nats, a, b, root)
}

#[test]
fn a_pairing_code_minted_on_one_node_is_redeemed_once_on_the_other() {
    let (_nats, a, b, root) = two_nodes_with_an_admin();
    for i in 0..4 {
        let (mint, other) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        // A user registered on the other node a moment ago is found by handle.
        let user = User::new(other, &format!("paired{i}"));
        let minted: Value = mint
            .post_json(
                "/api/admin/pairing-codes",
                &json!({ "user": format!("paired{i}") }),
                Some(&root),
            )
            .expect(201)
            .json();
        let code = minted["code"].as_str().unwrap();
        // Redeemed at once on the other node; the device token is the user's.
        let pair = |at: &Server| at.post_json("/api/native/pair", &json!({ "code": code }), None);
        let paired: Value = pair(other).expect(201).json();
        let token = paired["token"].as_str().unwrap();
        let me: Value = mint.get("/api/native/me", Some(token)).expect(200).json();
        assert_eq!(me["user"]["id"], user.id.as_str(), "{me}");
        // Spent everywhere, with one body for every refusal.
        let refused = pair(mint).expect_error(401, "pairing_code_invalid");
        assert_eq!(
            refused,
            pair(other).expect_error(401, "pairing_code_invalid")
        );
    }
}

#[test]
fn admin_routes_find_a_user_or_token_made_on_the_other_node_a_moment_ago() {
    let (_nats, a, b, root) = two_nodes_with_an_admin();
    let admin_post = |path: String| -> Value {
        b.post_json(&path, &json!({}), Some(&root))
            .expect(200)
            .json()
    };
    for i in 0..3 {
        // Made on A, acted on at once through B's admin routes.
        let user = User::new(&a, &format!("fresh{i}"));
        let state: Value = b
            .get(&format!("/api/admin/users/fresh{i}/state"), Some(&root))
            .expect(200)
            .json();
        assert_eq!(state["user"]["id"], user.id.as_str(), "{state}");
        let minted = a.sign_in(&user.key, None);
        let revoked = admin_post(format!("/api/admin/tokens/{}/revoke", minted.token_id));
        assert_eq!(revoked["user_id"], user.id.as_str(), "{revoked}");
        let fresh = User::new(&a, &format!("other{i}"));
        let disabled = admin_post(format!("/api/admin/users/{}/disable", fresh.id));
        assert_eq!(disabled["disabled"], true, "{disabled}");
        let erased = admin_post(format!("/api/admin/users/other{i}/erase-messages"));
        assert_eq!(erased["erased"], 0, "{erased}");
    }
}

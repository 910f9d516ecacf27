//! The client commands (`latchkey login`, `whoami`, `rooms`, `send`, `history`, `tail`,
//! `logout`, ...) against the real server: sign-in through a real `ssh-agent` with the
//! key file gone, the relay defence against a fake server, `tail` across a server kill
//! and restart, and `device login` approved (or denied) by `device approve` (`deny`) in
//! another process.
//!
//! Each test gives the client its own `XDG_CONFIG_HOME`, so tokens never leak between
//! tests. Nothing sleeps to wait: everything polls with a deadline.

use crate::server::{Key, Server};
use crate::support::latchkey_bin;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);

/// A client environment: its config dir and, optionally, an agent socket.
struct ClientEnv {
    config: PathBuf,
    agent_sock: Option<PathBuf>,
}

impl ClientEnv {
    fn new(dir: &Path) -> ClientEnv {
        let config = dir.join(format!("config-{}", rand::random::<u32>()));
        ClientEnv {
            config,
            agent_sock: None,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(latchkey_bin());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("LATCHKEY_") {
                cmd.env_remove(name);
            }
        }
        cmd.args(args)
            .env("XDG_CONFIG_HOME", &self.config)
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null());
        if let Some(sock) = &self.agent_sock {
            cmd.env("SSH_AUTH_SOCK", sock);
        }
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run latchkey")
    }

    /// Runs and asserts success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "latchkey {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs with `--json` appended and parses stdout, which must be one JSON document.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.ok(&all);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("{args:?}: stdout is not JSON ({e}): {out}"))
    }

    /// Runs, asserts failure, returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "latchkey {args:?} should have failed"
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

/// The private key path of a generated key (its `.pub` minus the extension).
fn private_path(key: &Key) -> PathBuf {
    key.pub_path().with_extension("")
}

/// A real `ssh-agent -D -a SOCK`, killed on drop.
struct Agent {
    child: Child,
    sock: PathBuf,
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        let sock = dir.join(format!("agent-{}.sock", rand::random::<u32>()));
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ssh-agent");
        let end = Instant::now() + DEADLINE;
        while !sock.exists() {
            assert!(Instant::now() < end, "ssh-agent made no socket");
            std::thread::yield_now();
        }
        Agent { child, sock }
    }

    fn add(&self, key: &Key) {
        let out = Command::new("ssh-add")
            .arg(private_path(key))
            .env("SSH_AUTH_SOCK", &self.sock)
            .output()
            .expect("run ssh-add");
        assert!(
            out.status.success(),
            "ssh-add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn login_through_a_real_ssh_agent_while_the_key_file_is_gone() {
    let server = Server::start(&[]);
    let agent = Agent::start(server.scratch());
    for (kind, handle) in [("ed25519", "agentuser"), ("ecdsa", "ecdsauser")] {
        let key = Key::generate(server.scratch(), kind, &format!("{handle}@laptop"));
        agent.add(&key);
        // The client can never read the private key: it no longer exists.
        std::fs::remove_file(private_path(&key)).unwrap();
        let mut env = ClientEnv::new(server.scratch());
        env.agent_sock = Some(agent.sock.clone());

        let key_arg = key.pub_path();
        let login = env.json(&[
            "login",
            "--server",
            server.url(),
            "--agent",
            "--key",
            key_arg.to_str().unwrap(),
            "--handle",
            handle,
        ]);
        assert_eq!(login["user"]["handle"], handle, "{login}");
        assert_eq!(login["key"], key.fingerprint());
        assert_eq!(login["registered"], true);
        assert!(
            login.get("token").is_none(),
            "the token is printed only when asked: {login}"
        );

        // One file per server, mode 0600, under $XDG_CONFIG_HOME/latchkey/.
        let file = PathBuf::from(login["token_file"].as_str().unwrap());
        assert!(
            file.starts_with(env.config.join("latchkey")),
            "{}",
            file.display()
        );
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        // The stored session works for every daily command, without --server.
        let me = env.json(&["whoami"]);
        assert_eq!(me["user"]["handle"], handle);
        assert_eq!(me["kind"], "session");
        let human = env.ok(&["whoami"]);
        assert!(
            human.starts_with(&format!("{handle} on {}", server.url())),
            "{human}"
        );

        let room = env.json(&["rooms", "create", &format!("{handle}-room")]);
        let sent = env.json(&["send", &format!("{handle}-room"), "hello through the agent"]);
        assert!(sent["seq"].as_u64().unwrap() > 0);
        let history = env.json(&["history", room["id"].as_str().unwrap()]);
        assert_eq!(history["messages"][0]["body"], "hello through the agent");
        let rooms = env.json(&["rooms"]);
        assert_eq!(rooms["rooms"][0]["id"], room["id"]);
        let keys = env.json(&["keys"]);
        assert_eq!(keys["keys"][0]["fingerprint"], key.fingerprint());
        let tokens = env.json(&["tokens"]);
        assert_eq!(tokens["tokens"][0]["current"], true);

        let out = env.json(&["logout"]);
        assert_eq!(out["revoked"], true);
        let err = env.fails(&["whoami"]);
        assert!(err.contains("not signed in to"), "{err}");
    }
}

#[test]
fn a_second_login_keeps_the_pinned_server_and_refuses_a_named_other() {
    let server = Server::start(&[]);
    let key = Key::generate(server.scratch(), "ed25519", "pin@host");
    let env = ClientEnv::new(server.scratch());
    let priv_key = private_path(&key);
    let k = priv_key.to_str().unwrap();
    env.ok(&["login", "--server", server.url(), "--key", k]);
    env.ok(&["login", "--server", server.url(), "--key", k]);
    let err = env.fails(&[
        "login",
        "--server",
        server.url(),
        "--key",
        k,
        "--server-id",
        "https://elsewhere.example",
    ]);
    assert!(
        err.contains("this challenge names server")
            && err.contains("not https://elsewhere.example: refusing to sign"),
        "{err}"
    );
}

#[test]
fn clear_errors_for_an_unreachable_server_and_an_unregistered_key() {
    let server = Server::start(&["--registration", "closed"]);
    let key = Key::generate(server.scratch(), "ed25519", "nobody@host");
    let env = ClientEnv::new(server.scratch());
    let priv_key = private_path(&key);
    let err = env.fails(&[
        "login",
        "--server",
        server.url(),
        "--key",
        priv_key.to_str().unwrap(),
    ]);
    assert!(
        err.contains("signature refused: the key is not registered"),
        "{err}"
    );

    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let err = env.fails(&[
        "login",
        "--server",
        &closed,
        "--key",
        priv_key.to_str().unwrap(),
    ]);
    assert!(err.contains("server unreachable"), "{err}");
}

/// What the fake server saw: request lines.
type Seen = Arc<Mutex<Vec<String>>>;

/// A look-alike server: its info says it is `http://fake.example`, and it relays a
/// challenge that names `https://real.example` (as a relaying phishing site would).
fn fake_relay(fingerprint: String) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut len = 0;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            log.lock().unwrap().push(line.trim().to_string());
            let expires = crate::server::now_secs() + 60;
            let (status, doc) = if line.starts_with("GET /api/native/info") {
                (
                    200,
                    json!({
                        "server_id": "fake", "server": "http://fake.example", "version": "1",
                        "namespace": "latchkey-auth", "key_types": ["ssh-ed25519"],
                        "capabilities": [], "registration": "open",
                    }),
                )
            } else if line.starts_with("POST /api/native/challenge") {
                let id = "0190d6c2-0000-7000-8000-000000000001";
                let message = format!(
                    "latchkey-auth-v1\nserver=https://real.example\nchallenge={id}\nnonce=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\nkey={fingerprint}\nexpires={expires}\n"
                );
                (
                    201,
                    json!({
                        "challenge_id": id, "nonce": "AAAA", "message": message,
                        "namespace": "latchkey-auth", "expires_at": "2030-01-01T00:00:00Z",
                        "expires_in": 60,
                    }),
                )
            } else {
                (404, json!({"error": "not_found", "message": "no"}))
            };
            let text = doc.to_string();
            let mut out = stream;
            let _ = write!(
                out,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    (url, seen)
}

/// An ssh-agent stand-in that offers one key and records every request type; it refuses
/// to sign (type 13), so a sign request would show up and fail.
fn recording_agent(sock: &Path, key_blob: Vec<u8>) -> Arc<Mutex<Vec<u8>>> {
    let listener = UnixListener::bind(sock).unwrap();
    let kinds = Arc::new(Mutex::new(Vec::new()));
    let log = kinds.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            loop {
                let mut len = [0u8; 4];
                if s.read_exact(&mut len).is_err() {
                    break;
                }
                let mut msg = vec![0u8; u32::from_be_bytes(len) as usize];
                if s.read_exact(&mut msg).is_err() || msg.is_empty() {
                    break;
                }
                log.lock().unwrap().push(msg[0]);
                let reply = if msg[0] == 11 {
                    let mut r = vec![12];
                    r.extend(1u32.to_be_bytes());
                    r.extend((key_blob.len() as u32).to_be_bytes());
                    r.extend(&key_blob);
                    r.extend(4u32.to_be_bytes());
                    r.extend(b"test");
                    r
                } else {
                    vec![5] // SSH_AGENT_FAILURE
                };
                let mut framed = (reply.len() as u32).to_be_bytes().to_vec();
                framed.extend(reply);
                if s.write_all(&framed).is_err() {
                    break;
                }
            }
        }
    });
    kinds
}

#[test]
fn a_relayed_challenge_naming_another_server_is_refused_with_nothing_signed() {
    let tmp = tempfile::tempdir().unwrap();
    let key = Key::generate(tmp.path(), "ed25519", "victim@host");
    let (url, seen) = fake_relay(key.fingerprint());
    let blob = {
        use base64::Engine;
        let line = key.pubkey();
        let b64 = line.split_whitespace().nth(1).unwrap();
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
    };
    let sock = tmp.path().join("recording.sock");
    let agent_log = recording_agent(&sock, blob);
    let mut env = ClientEnv::new(tmp.path());
    env.agent_sock = Some(sock);

    let err = env.fails(&["login", "--server", &url, "--agent"]);
    assert!(
        err.contains(
            "this challenge names server https://real.example, not http://fake.example: refusing to sign"
        ),
        "{err}"
    );
    // The agent was asked for its keys (11) and never to sign (13).
    assert_eq!(*agent_log.lock().unwrap(), vec![11u8]);
    // Nothing was sent on: no token request reached the look-alike.
    let first = seen.lock().unwrap().clone();
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(first[0].starts_with("GET /api/native/info"), "{first:?}");
    assert!(
        first[1].starts_with("POST /api/native/challenge"),
        "{first:?}"
    );

    // The same with a key file: refused, no token request.
    let env = ClientEnv::new(tmp.path());
    let err = env.fails(&[
        "login",
        "--server",
        &url,
        "--key",
        private_path(&key).to_str().unwrap(),
    ]);
    assert!(err.contains("refusing to sign"), "{err}");
    let all = seen.lock().unwrap().clone();
    assert_eq!(all.len(), 4, "{all:?}");
    assert!(
        !all.iter().any(|l| l.contains("/api/native/token")),
        "{all:?}"
    );
}

/// A `latchkey serve` on a fixed address (so a restart keeps the URL the client uses).
struct FixedServer {
    child: Child,
}

impl FixedServer {
    /// Starts on `bind` (`127.0.0.1:0` for any port) and returns it with its URL.
    fn start(data: &Path, bind: &str, log: &Path) -> (FixedServer, String) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut cmd = Command::new(latchkey_bin());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("LATCHKEY_") {
                cmd.env_remove(name);
            }
        }
        let mut child = cmd
            .args(["serve", "--no-rate-limit", "--bind", bind, "--data-dir"])
            .arg(data)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let end = Instant::now() + DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("latchkey listening on ") {
                        return (FixedServer { child }, url.trim().to_string());
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("no listening line from latchkey serve: {e:?}");
                }
            }
        }
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for FixedServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Lines of a child's pipe, through a channel.
fn lines_of(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Receives lines until `done` says so; returns them all.
fn read_until(
    rx: &mpsc::Receiver<String>,
    what: &str,
    mut done: impl FnMut(&[String]) -> bool,
) -> Vec<String> {
    let end = Instant::now() + DEADLINE;
    let mut got = Vec::new();
    while !done(&got) {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => got.push(line),
            Err(e) => panic!("waiting for {what}: {e:?}; so far: {got:#?}"),
        }
    }
    got
}

#[test]
fn tail_prints_every_event_exactly_once_across_a_server_kill_and_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("server.log");
    let (mut server, url) = FixedServer::start(&data, "127.0.0.1:0", &log);
    let bind = url.trim_start_matches("http://").to_string();

    let key = Key::generate(tmp.path(), "ed25519", "tail@host");
    let env = ClientEnv::new(tmp.path());
    env.ok(&[
        "login",
        "--server",
        &url,
        "--key",
        private_path(&key).to_str().unwrap(),
    ]);
    env.json(&["rooms", "create", "live"]);
    env.ok(&["send", "live", "before tail"]);

    let mut tail = env
        .command(&["tail"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = lines_of(tail.stdout.take().unwrap());
    let err = lines_of(tail.stderr.take().unwrap());
    let hello = read_until(&out, "hello", |l| !l.is_empty());
    assert!(hello[0].contains("\"type\":\"hello\""), "{hello:?}");

    let mut expected = Vec::new();
    let send = |text: String, expected: &mut Vec<String>| {
        env.ok(&["send", "live", &text]);
        expected.push(text);
    };
    for i in 0..3 {
        send(format!("before the kill {i}"), &mut expected);
    }
    let mut lines = read_until(&out, "the first three events", |l| l.len() >= 3);

    server.kill9();
    let (server2, url2) = FixedServer::start(&data, &bind, &log);
    assert_eq!(url2, url, "the server came back on another address");
    // Posted while the client may still be backing off: the resume must replay them.
    for i in 0..3 {
        send(format!("after the restart {i}"), &mut expected);
    }
    let reconnecting = read_until(&err, "a reconnect note", |l| {
        l.iter().any(|x| x.contains("reconnecting"))
    });
    assert!(
        reconnecting
            .iter()
            .any(|l| l.contains("resuming after seq")),
        "{reconnecting:?}"
    );
    // The reconnect replays what was missed, then says `resumed`; then live again.
    lines.extend(read_until(&out, "the resume", |l| {
        l.iter().any(|x| x.contains("\"type\":\"resumed\""))
    }));
    for i in 0..3 {
        send(format!("live again {i}"), &mut expected);
    }
    let want = expected.len();
    let seen_before = lines.len();
    lines.extend(read_until(&out, "every event", |l| {
        let new = l.iter().filter(|x| x.contains("message.posted")).count();
        let old = lines[..seen_before]
            .iter()
            .filter(|x| x.contains("message.posted"))
            .count();
        old + new >= want
    }));
    let _ = tail.kill();
    let _ = tail.wait();
    drop(server2);

    let events: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["type"] == "event")
        .collect();
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seqs not strictly increasing: {seqs:?}"
    );
    let bodies: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "message.posted")
        .map(|e| e["data"]["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, expected, "every message exactly once, in order");
    // Exactly one more hello (the reconnect), and one resume.
    let count = |t: &str| lines.iter().filter(|l| l.contains(t)).count();
    assert_eq!(count("\"type\":\"hello\""), 1, "{lines:#?}");
    assert_eq!(count("\"type\":\"resumed\""), 1, "{lines:#?}");
}

#[test]
fn tail_refetches_history_when_the_resume_is_too_old_and_stops_on_4001() {
    let server = Server::start(&["--resume-window", "2"]);
    let key = Key::generate(server.scratch(), "ed25519", "old@host");
    let env = ClientEnv::new(server.scratch());
    env.ok(&[
        "login",
        "--server",
        server.url(),
        "--key",
        private_path(&key).to_str().unwrap(),
    ]);
    env.json(&["rooms", "create", "archive"]);
    let bodies: Vec<String> = (0..4).map(|i| format!("old {i}")).collect();
    for b in &bodies {
        env.ok(&["send", "archive", b]);
    }

    let mut tail = env
        .command(&["tail", "--since", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = lines_of(tail.stdout.take().unwrap());
    let err = lines_of(tail.stderr.take().unwrap());
    let lines = read_until(&out, "the refetched history", |l| {
        l.iter().any(|x| x.contains("\"type\":\"refetched\""))
    });
    let refetched: Value =
        serde_json::from_str(lines.iter().find(|l| l.contains("refetched")).unwrap()).unwrap();
    let got: Vec<&str> = refetched["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(got, bodies, "the gap's messages, oldest first");

    env.ok(&["send", "archive", "live"]);
    let live = read_until(&out, "the live event", |l| {
        l.iter().any(|x| x.contains("\"body\":\"live\""))
    });
    assert_eq!(
        live.iter()
            .filter(|l| l.contains("\"type\":\"event\""))
            .count(),
        1,
        "{live:?}"
    );

    // Logging out revokes the token: the server closes with 4001 and tail stops.
    env.ok(&["logout"]);
    let end = Instant::now() + DEADLINE;
    let mut stderr = Vec::new();
    let status = loop {
        if let Some(s) = tail.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > end {
            let _ = tail.kill();
            let _ = tail.wait();
            panic!("tail kept running after its token was revoked: {stderr:?}");
        }
        if let Ok(line) = err.recv_timeout(Duration::from_millis(50)) {
            stderr.push(line);
        }
    };
    assert!(!status.success());
    // The pipe closes with the process: drain it to its end.
    while let Ok(line) = err.recv_timeout(DEADLINE) {
        stderr.push(line);
    }
    let all = stderr.join("\n");
    assert!(all.contains("closed the connection (4001)"), "{all}");
    assert!(!all.contains("reconnecting"), "{all}");
}

/// A running `latchkey device login`: its stdout lines and the first one, the codes.
struct DeviceLogin {
    child: Child,
    out: mpsc::Receiver<String>,
    err: mpsc::Receiver<String>,
    codes: Value,
}

impl DeviceLogin {
    fn start(env: &ClientEnv, url: &str, extra: &[&str]) -> DeviceLogin {
        let mut args = vec![
            "device",
            "login",
            "--server",
            url,
            "--json",
            "--device-name",
            "tv",
        ];
        args.extend_from_slice(extra);
        let mut child = env
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = lines_of(child.stdout.take().unwrap());
        let err = lines_of(child.stderr.take().unwrap());
        let first = read_until(&out, "the device codes", |l| !l.is_empty());
        let codes: Value = serde_json::from_str(&first[0]).unwrap();
        DeviceLogin {
            child,
            out,
            err,
            codes,
        }
    }

    fn user_code(&self) -> String {
        self.codes["user_code"].as_str().unwrap().to_string()
    }

    /// Waits (with a deadline) for the process to end; returns success and its last lines.
    fn finish(mut self) -> (bool, Vec<String>, Vec<String>) {
        let end = Instant::now() + Duration::from_secs(60);
        let mut out = Vec::new();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("device login did not finish; stdout so far: {out:?}");
            }
            // Wait on the pipe (bounded) instead of sleeping.
            if let Ok(line) = self.out.recv_timeout(Duration::from_millis(50)) {
                out.push(line);
            }
        };
        // Both pipes close with the process: drain them to their ends.
        while let Ok(line) = self.out.recv_timeout(DEADLINE) {
            out.push(line);
        }
        let mut err = Vec::new();
        while let Ok(line) = self.err.recv_timeout(DEADLINE) {
            err.push(line);
        }
        (status.success(), out, err)
    }
}

impl Drop for DeviceLogin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn device_login_is_approved_by_device_approve_in_another_process() {
    let server = Server::start(&[]);
    let approver = ClientEnv::new(server.scratch());
    let owner_key = Key::generate(server.scratch(), "ed25519", "owner@laptop");
    approver.ok(&[
        "login",
        "--server",
        server.url(),
        "--key",
        private_path(&owner_key).to_str().unwrap(),
        "--handle",
        "owner",
    ]);

    let device = ClientEnv::new(server.scratch());
    let tv_key = Key::generate(server.scratch(), "ed25519", "tv@livingroom");
    let tv = DeviceLogin::start(
        &device,
        server.url(),
        &["--key", private_path(&tv_key).to_str().unwrap()],
    );
    let code = tv.user_code();
    let ours = tv.codes["comparison_code"].as_str().unwrap().to_string();
    assert_eq!(ours.len(), 6);

    // Without --yes: EOF, then "no", change nothing and exit non-zero.
    let err = approver.fails(&["device", "approve", &code]);
    assert!(err.contains("not confirmed: nothing was changed"), "{err}");
    let mut no = approver
        .command(&["device", "approve", &code])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    no.stdin.take().unwrap().write_all(b"no\n").unwrap();
    let no = no.wait_with_output().unwrap();
    assert!(!no.status.success());
    let shown = String::from_utf8_lossy(&no.stdout).into_owned();
    // The exact request: app, device, scopes, key and the same comparison code.
    assert!(
        shown.contains("latchkey-cli") && shown.contains("tv"),
        "{shown}"
    );
    assert!(shown.contains(&tv_key.fingerprint()), "{shown}");
    assert!(
        shown.contains(&ours),
        "the approver sees another comparison code: {shown}"
    );

    let approved = approver.json(&["device", "approve", &code, "--yes"]);
    assert_eq!(approved["status"], "approved", "{approved}");
    assert_eq!(approved["key_added"], tv_key.fingerprint());

    let (ok, out, err) = tv.finish();
    assert!(ok, "device login failed: {err:?}");
    let done: Value = serde_json::from_str(out.last().unwrap()).unwrap();
    assert_eq!(done["user"]["handle"], "owner", "{done}");
    let me = device.json(&["whoami"]);
    assert_eq!(me["kind"], "device");
    assert_eq!(me["user"]["handle"], "owner");
    // The enrolled key now signs in as the owner, through the ordinary flow.
    let again = ClientEnv::new(server.scratch());
    let login = again.json(&[
        "login",
        "--server",
        server.url(),
        "--key",
        private_path(&tv_key).to_str().unwrap(),
    ]);
    assert_eq!(login["user"]["handle"], "owner");
}

#[test]
fn device_deny_ends_the_device_login_with_access_denied() {
    let server = Server::start(&[]);
    let approver = ClientEnv::new(server.scratch());
    let key = Key::generate(server.scratch(), "ed25519", "owner@laptop");
    approver.ok(&[
        "login",
        "--server",
        server.url(),
        "--key",
        private_path(&key).to_str().unwrap(),
    ]);
    let device = ClientEnv::new(server.scratch());
    let tv = DeviceLogin::start(&device, server.url(), &[]);
    let code = tv.user_code().to_lowercase().replace('-', " ");
    let denied = approver.json(&["device", "deny", &code, "--yes"]);
    assert_eq!(denied["status"], "denied");
    let (ok, _, err) = tv.finish();
    assert!(!ok);
    assert!(err.iter().any(|l| l.contains("access_denied")), "{err:?}");
    assert!(device.fails(&["whoami"]).contains("not signed in"));
}

//! A running `latchkey serve` for black-box tests, real `ssh-keygen` keys, and a blocking
//! HTTP client that hands back every answer (4xx and 5xx included) as a [`Resp`].
//!
//! Must not: sleep to wait for a condition. Everything that waits polls with a deadline.

use crate::support::latchkey_bin;
use latchkey_proto::{ChallengeResponse, ErrorBody, TokenResponse};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How long a server may take to print its listening line.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long a single HTTP request may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(15);
/// The line `serve` prints on stdout once it accepts connections.
const LISTENING_PREFIX: &str = "latchkey listening on ";

/// The SSHSIG namespace of latchkey sign-ins.
pub const NAMESPACE: &str = "latchkey-auth";

/// A `latchkey serve` child on `127.0.0.1:0` with its own data dir, killed on drop.
///
/// Its stderr (the log) goes to `server.log` in the temp dir, appended across restarts,
/// so [`Server::log`] returns everything the server ever wrote.
pub struct Server {
    child: Option<Child>,
    url: String,
    args: Vec<String>,
    tmp: TempDir,
    agent: ureq::Agent,
}

impl Server {
    /// Starts a server with extra `serve` flags (`--registration closed`, ...) and rate
    /// limits off: most tests send many requests from one address. Tests of the limits
    /// themselves use [`Server::start_limited`].
    pub fn start(args: &[&str]) -> Server {
        let mut all: Vec<&str> = args.to_vec();
        all.push("--no-rate-limit");
        Server::start_limited(&all)
    }

    /// Starts a server with its default rate limits.
    pub fn start_limited(args: &[&str]) -> Server {
        let tmp = tempfile::tempdir().expect("temp dir");
        let agent = ureq::AgentBuilder::new()
            .timeout(HTTP_TIMEOUT)
            .redirects(0)
            .build();
        let mut server = Server {
            child: None,
            url: String::new(),
            args: args.iter().map(|s| s.to_string()).collect(),
            tmp,
            agent,
        };
        server.spawn();
        server
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The data dir (kept across restarts).
    pub fn data_dir(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    /// A scratch dir that lives as long as the server (for keys, messages, scripts).
    pub fn scratch(&self) -> &Path {
        self.tmp.path()
    }

    /// Everything the server wrote to stderr so far, over every run.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The log file.
    pub fn log_path(&self) -> PathBuf {
        self.tmp.path().join("server.log")
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    /// SIGKILL, and reap the child.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits (with a deadline) for the child to exit.
    pub fn terminate(&mut self, deadline: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("server is running");
        let pid = child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let mut status = None;
        let exited = crate::support::wait_until(deadline, || {
            status = child.try_wait().expect("try_wait");
            status.is_some()
        });
        match status {
            Some(status) if exited => status,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("server did not exit within {deadline:?} of SIGTERM");
            }
        }
    }

    /// Like [`Server::start`], on the hidden test clock (`--test-clock`): the server's time
    /// stands still until [`Server::advance`] moves it.
    pub fn start_test_clock(args: &[&str]) -> Server {
        let mut all: Vec<&str> = args.to_vec();
        all.push("--test-clock");
        Server::start(&all)
    }

    /// Like [`Server::start_limited`] (default rate limits), on the test clock.
    pub fn start_limited_test_clock(args: &[&str]) -> Server {
        let mut all: Vec<&str> = args.to_vec();
        all.push("--test-clock");
        Server::start_limited(&all)
    }

    /// Moves a `--test-clock` server's clock forward by `ms` milliseconds; the server then
    /// sweeps what lapsed. Returns the server's new time (RFC 3339).
    pub fn advance_ms(&self, ms: u64) -> String {
        let r = self
            .post_json(
                "/api/test/clock",
                &serde_json::json!({ "advance_ms": ms }),
                None,
            )
            .expect(200);
        let v: Value = r.json();
        v["now"].as_str().expect("now").to_string()
    }

    /// Moves a `--test-clock` server's clock forward by `secs` seconds (see
    /// [`Server::advance_ms`]).
    pub fn advance(&self, secs: u64) -> String {
        self.advance_ms(secs * 1000)
    }

    /// The same as [`Server::start`] (rate limits off); kept for the callers that say so.
    pub fn start_unlimited(args: &[&str]) -> Server {
        Server::start(args)
    }

    /// Kills the child if it still runs, then starts it again on the same data dir with
    /// the same flags (a new port).
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Like [`Server::restart`], with other flags from now on.
    pub fn restart_with(&mut self, args: &[&str]) {
        let unlimited = self.args.iter().any(|a| a == "--no-rate-limit");
        self.args = args.iter().map(|s| s.to_string()).collect();
        if unlimited {
            self.args.push("--no-rate-limit".into());
        }
        self.restart();
    }

    fn spawn(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open server log");
        let data_dir = self.data_dir();
        let mut cmd = Command::new(latchkey_bin());
        // Flags come from the test alone, never from a LATCHKEY_* variable around it.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("LATCHKEY_") {
                cmd.env_remove(name);
            }
        }
        let mut child = cmd
            .arg("serve")
            .args(["--bind", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(&self.args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn latchkey serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel::<String>();
        // Reads stdout to its end, so the child never blocks on a full pipe; the first
        // lines go to the channel.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // Once the listening line is read nobody receives; keep draining anyway.
                let _ = tx.send(line);
            }
        });
        let end = Instant::now() + START_DEADLINE;
        let mut seen = Vec::new();
        let url = loop {
            let left = end.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left.max(Duration::from_millis(1))) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix(LISTENING_PREFIX) {
                        break url.trim().to_string();
                    }
                    seen.push(line);
                }
                Err(e) => {
                    let status = child.try_wait().ok().flatten();
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "no `{LISTENING_PREFIX}...` line ({e:?}; exit status {status:?}); \
                         stdout: {seen:?}\nlog:\n{}",
                        self.log()
                    );
                }
            }
        };
        assert!(
            url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"),
            "odd listening url {url:?}"
        );
        self.url = url;
        self.child = Some(child);
    }

    /// Sends a request with raw headers and an optional body; never fails on a status.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Resp {
        let mut req = self.agent.request(method, &format!("{}{path}", self.url));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let result = match body {
            Some(b) => req.send_bytes(b),
            None => req.call(),
        };
        let resp = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!(
                "{method} {path}: transport error: {e}\nlog:\n{}",
                self.log()
            ),
        };
        Resp::read(method, path, resp)
    }

    /// GET, with a bearer token when given.
    pub fn get(&self, path: &str, bearer: Option<&str>) -> Resp {
        let auth = bearer.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| ("Authorization", a))
            .into_iter()
            .collect();
        self.request("GET", path, &headers, None)
    }

    /// POST of a JSON value, with a bearer token when given.
    pub fn post_json(&self, path: &str, body: &Value, bearer: Option<&str>) -> Resp {
        let auth = bearer.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = auth.as_deref() {
            headers.push(("Authorization", a));
        }
        let bytes = serde_json::to_vec(body).expect("encode json");
        self.request("POST", path, &headers, Some(&bytes))
    }

    /// Any method, with a bearer token when given and a JSON body when given (sent with
    /// `Content-Type: application/json`); never fails on a status.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        json: Option<&[u8]>,
    ) -> Resp {
        let auth = bearer.map(|t| format!("Bearer {t}"));
        let mut headers = Vec::new();
        if json.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        if let Some(a) = auth.as_deref() {
            headers.push(("Authorization", a));
        }
        self.request(method, path, &headers, json)
    }

    /// DELETE with a bearer token.
    pub fn delete(&self, path: &str, bearer: &str) -> Resp {
        let auth = format!("Bearer {bearer}");
        self.request("DELETE", path, &[("Authorization", &auth)], None)
    }

    /// `POST /api/native/challenge` for a public key line; asserts 201.
    pub fn challenge(&self, public_key: &str) -> ChallengeResponse {
        let resp = self.post_json(
            "/api/native/challenge",
            &json!({ "public_key": public_key }),
            None,
        );
        resp.expect(201).json()
    }

    /// `POST /api/native/token`; returns the answer whatever its status.
    pub fn redeem(&self, challenge_id: &str, signature: &str, handle: Option<&str>) -> Resp {
        let mut body = json!({ "challenge_id": challenge_id, "signature": signature });
        if let Some(h) = handle {
            body["handle"] = json!(h);
        }
        self.post_json("/api/native/token", &body, None)
    }

    /// challenge -> `ssh-keygen -Y sign` -> token; asserts 201.
    pub fn sign_in(&self, key: &Key, handle: Option<&str>) -> TokenResponse {
        self.sign_in_full(key, handle).0
    }

    /// Like [`Server::sign_in`], and also returns the armored signature it sent.
    pub fn sign_in_full(&self, key: &Key, handle: Option<&str>) -> (TokenResponse, String) {
        let ch = self.challenge(&key.pubkey());
        let sig = key.sign(ch.message.as_bytes(), NAMESPACE);
        let token = self
            .redeem(&ch.challenge_id, &sig, handle)
            .expect(201)
            .json();
        (token, sig)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// An HTTP answer, read whole.
#[derive(Debug)]
pub struct Resp {
    /// What was asked, for failure messages.
    pub what: String,
    /// The status code.
    pub status: u16,
    /// The `Content-Type` header, or empty.
    pub content_type: String,
    /// The body as text (lossy).
    pub body: String,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
}

impl Resp {
    fn read(method: &str, path: &str, r: ureq::Response) -> Resp {
        let status = r.status();
        let content_type = r.header("content-type").unwrap_or("").to_string();
        let retry_after = r.header("retry-after").map(str::to_string);
        let mut bytes = Vec::new();
        r.into_reader()
            .take(16 * 1024 * 1024)
            .read_to_end(&mut bytes)
            .expect("read body");
        Resp {
            what: format!("{method} {path}"),
            status,
            content_type,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            retry_after,
        }
    }

    /// Asserts the status, naming the request and body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Resp {
        assert_eq!(
            self.status, status,
            "{}: expected {status}, got {} {}",
            self.what, self.status, self.body
        );
        self
    }

    /// The body as `T`; panics with the body when it does not parse.
    #[track_caller]
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "{}: body is not the expected JSON ({e}): {}",
                self.what, self.body
            )
        })
    }

    /// Asserts a JSON error answer `{"error": code, "message": text}` with this status
    /// and code, and a JSON content type.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) -> ErrorBody {
        assert_eq!(
            (self.status, self.error_code().as_str()),
            (status, code),
            "{}: expected {status} {code}, got {} {}",
            self.what,
            self.status,
            self.body
        );
        self.expect_error_shape()
    }

    /// Asserts the body is the JSON error shape (any code) with a JSON content type.
    #[track_caller]
    pub fn expect_error_shape(&self) -> ErrorBody {
        assert!(
            self.content_type.starts_with("application/json"),
            "{}: error content type is {:?}, body {}",
            self.what,
            self.content_type,
            self.body
        );
        let v: Value = self.json();
        let obj = v.as_object().expect("error body is an object");
        assert!(
            obj.get("error").is_some_and(Value::is_string)
                && obj.get("message").is_some_and(Value::is_string),
            "{}: error body lacks string `error`/`message`: {}",
            self.what,
            self.body
        );
        let body: ErrorBody = self.json();
        assert!(!body.message.is_empty(), "{}: empty message", self.what);
        body
    }

    /// The `error` field of a JSON body, or an empty string.
    pub fn error_code(&self) -> String {
        serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default()
    }
}

/// A key pair made by the real `ssh-keygen`.
pub struct Key {
    path: PathBuf,
    dir: PathBuf,
}

static SIGN_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Key {
    /// `ssh-keygen -q -t TYPE -N '' -C COMMENT -f DIR/NAME`. Types: `ed25519`, `ecdsa`
    /// (P-256), `ecdsa384`, `rsa`, `dsa`. The file name is unique within `dir`.
    pub fn generate(dir: &Path, kind: &str, comment: &str) -> Key {
        let type_args: &[&str] = match kind {
            "ed25519" => &["-t", "ed25519"],
            "ecdsa" => &["-t", "ecdsa", "-b", "256"],
            "ecdsa384" => &["-t", "ecdsa", "-b", "384"],
            // Small on purpose: only the public key is used, and it must be refused.
            "rsa" => &["-t", "rsa", "-b", "2048"],
            "dsa" => &["-t", "dsa"],
            other => panic!("unknown key type {other}"),
        };
        let n = SIGN_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("id_{kind}_{n}"));
        let out = Command::new("ssh-keygen")
            .args(["-q", "-N", "", "-C", comment])
            .args(type_args)
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .output()
            .expect("run ssh-keygen");
        assert!(
            out.status.success(),
            "ssh-keygen {type_args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Key {
            path,
            dir: dir.to_path_buf(),
        }
    }

    /// The private key file.
    pub fn private_path(&self) -> &Path {
        &self.path
    }

    /// The `.pub` file.
    pub fn pub_path(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".pub");
        PathBuf::from(p)
    }

    /// The OpenSSH public key line, without its newline.
    pub fn pubkey(&self) -> String {
        std::fs::read_to_string(self.pub_path())
            .expect("read .pub")
            .trim()
            .to_string()
    }

    /// `ssh-keygen -l -E sha256 -f KEY.pub`'s `SHA256:...` field.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.pub_path())
    }

    /// `ssh-keygen -Y sign -n NAMESPACE -f KEY FILE` over exactly `message`; returns the
    /// armored signature (FILE.sig).
    pub fn sign(&self, message: &[u8], namespace: &str) -> String {
        let n = SIGN_COUNTER.fetch_add(1, Ordering::Relaxed);
        let file = self.dir.join(format!("message-{n}"));
        std::fs::write(&file, message).expect("write message");
        let out = Command::new("ssh-keygen")
            .args(["-Y", "sign", "-n", namespace, "-f"])
            .arg(&self.path)
            .arg(&file)
            .stdin(Stdio::null())
            .output()
            .expect("run ssh-keygen -Y sign");
        assert!(
            out.status.success(),
            "ssh-keygen -Y sign: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut sig = file.into_os_string();
        sig.push(".sig");
        std::fs::read_to_string(PathBuf::from(sig)).expect("read .sig")
    }
}

/// The base64 body lines of an armored SSHSIG (what must never reach a log).
pub fn signature_body_lines(armored: &str) -> Vec<String> {
    armored
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .map(str::to_string)
        .collect()
}

/// `ssh-keygen -l -E sha256 -f PUB`'s `SHA256:...` field, for any public key file.
pub fn fingerprint(pub_path: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(pub_path)
        .output()
        .expect("run ssh-keygen -l");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let fp = text.split_whitespace().nth(1).expect("fingerprint field");
    assert!(fp.starts_with("SHA256:"), "{text}");
    fp.to_string()
}

/// Now, in unix seconds (the test's own clock).
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Parses an RFC 3339 UTC time (`...Z`) into unix seconds, asserting the format.
pub fn parse_time(s: &str) -> i64 {
    assert!(s.ends_with('Z'), "not an RFC 3339 UTC time: {s:?}");
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("not RFC 3339: {s:?}: {e}"))
        .unix_timestamp()
}

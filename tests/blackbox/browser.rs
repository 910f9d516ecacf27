//! The `/device` approval page (DESIGN §13) in a real browser: Debian's headless chromium,
//! driven through chromedriver by a Rust WebDriver client (`fantoccini`), against the real
//! `latchkey serve`. A device starts an RFC 8628 authorization; the browser opens
//! `verification_uri_complete`, signs in by pasting a signature made with the real
//! `ssh-keygen -Y sign` (running the very one-liner the page shows), and approves; the
//! device's next poll gets its token. A cross-site POST changes nothing.
//!
//! The approval screen is saved as `target/device-approval.png`.
//!
//! Must not: sleep. chromedriver gets a free port and is polled with a deadline.

use crate::server::{Key, Server};
use crate::support::repo_root;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CLIENT_ID: &str = "Living Room TV";
const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A chromedriver child on a free loopback port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_driver() -> Driver {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (Debian's chromium-driver; scripts/test.sh installs it)");
    let url = format!("http://127.0.0.1:{port}");
    let driver = Driver { child, url };
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = ureq::get(&format!("{}/status", driver.url))
            .timeout(Duration::from_secs(2))
            .call()
            .ok()
            .and_then(|r| r.into_json::<Value>().ok())
            .is_some_and(|v| v["value"]["ready"] == true);
        if ready {
            return driver;
        }
        assert!(Instant::now() < end, "chromedriver did not become ready");
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A headless chromium session with a fresh profile, phone-sized.
async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=412,915",
    ];
    let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": args, "binary": "/usr/bin/chromium"}),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session")
}

/// Starts a device authorization; returns its answer.
fn device_code(server: &Server) -> Value {
    ureq::post(&format!("{}/api/auth/device/code", server.url()))
        .send_form(&[("client_id", CLIENT_ID), ("device_name", "tv")])
        .unwrap()
        .into_json()
        .unwrap()
}

/// One poll of the token endpoint: (status, body).
fn poll(server: &Server, device_code: &str) -> (u16, Value) {
    let r = ureq::post(&format!("{}/api/auth/device/token", server.url())).send_form(&[
        ("grant_type", GRANT),
        ("device_code", device_code),
        ("client_id", CLIENT_ID),
    ]);
    let r = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    };
    (r.status(), r.into_json().unwrap())
}

/// Waits (with a deadline) until the page after a click shows the element `id`.
async fn wait_for(c: &Client, id: &'static str) -> fantoccini::elements::Element {
    match c
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Id(id))
        .await
    {
        Ok(e) => e,
        Err(e) => panic!("no #{id} ({e}) on:\n{}", c.source().await.unwrap()),
    }
}

/// The request is still pending: `slow_down` applies only to a pending request, and this
/// test polls faster than the interval on purpose.
#[track_caller]
fn assert_pending(server: &Server, device_code: &str) {
    let (status, body) = poll(server, device_code);
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"] == "authorization_pending" || body["error"] == "slow_down",
        "{body}"
    );
}

/// Runs the page's one-line command with the key's real path, returns the signature.
fn run_sign_command(command: &str, key: &Key) -> String {
    let line = command.replace(
        "~/.ssh/id_ed25519",
        &key.private_path().display().to_string(),
    );
    assert!(
        line.contains("| ssh-keygen -Y sign -n latchkey-auth -f "),
        "{line}"
    );
    let out = Command::new("sh").arg("-c").arg(&line).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Signs in on the page: public key, then the signature made by the page's command.
async fn sign_in(c: &Client, key: &Key) {
    let field = c.find(Locator::Id("public_key")).await.unwrap();
    field.send_keys(&key.pubkey()).await.unwrap();
    c.find(Locator::Id("continue"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let command = wait_for(c, "command").await.text().await.unwrap();
    let signature = run_sign_command(&command, key);
    assert!(signature.starts_with("-----BEGIN SSH SIGNATURE-----"));
    let field = c.find(Locator::Id("signature")).await.unwrap();
    field.send_keys(&signature).await.unwrap();
    c.find(Locator::Id("sign_in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(c, "approve").await;
}

fn screenshot_path(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    std::fs::create_dir_all(&target).unwrap();
    target.join(name)
}

#[test]
fn a_browser_signs_in_with_ssh_and_approves_a_device() {
    let server = Server::start(&[]);
    let key = Key::generate(server.scratch(), "ed25519", "alice@laptop");
    let alice = server.sign_in(&key, Some("alice")).token;
    let started = device_code(&server);
    let device = started["device_code"].as_str().unwrap().to_string();
    let user_code = started["user_code"].as_str().unwrap().to_string();
    let uri = started["verification_uri_complete"]
        .as_str()
        .unwrap()
        .to_string();
    assert_pending(&server, &device);

    let driver = start_driver();
    let profile = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let c = browser(&driver, profile.path()).await;
        c.goto(&uri).await.unwrap();
        // Until signed in, only sign-in: no request, no Approve.
        let source = c.source().await.unwrap();
        assert!(source.contains("Sign in to approve a device"));
        assert!(!source.contains("id=\"approve\"") && !source.contains(CLIENT_ID));
        sign_in(&c, &key).await;

        // The request, exactly: who asks, the code to compare, the scopes, the warning.
        let url = c.current_url().await.unwrap();
        assert_eq!(url.as_str(), uri, "back on the verification URI");
        let text = |id: &'static str| {
            let c = c.clone();
            async move { c.find(Locator::Id(id)).await.unwrap().text().await.unwrap() }
        };
        assert_eq!(text("client_id").await, CLIENT_ID);
        assert_eq!(text("device_name").await, "tv");
        assert_eq!(text("comparison_code").await, user_code);
        assert_eq!(text("handle").await, "alice");
        assert!(text("ip").await.starts_with("127.0.0."));
        for id in ["scope_chat_read", "scope_chat_write"] {
            let boxed = c.find(Locator::Id(id)).await.unwrap();
            assert_eq!(
                boxed.prop("checked").await.unwrap().as_deref(),
                Some("true")
            );
        }
        let source = c.source().await.unwrap();
        assert!(source.contains("Approving gives this device access to your account"));
        assert!(!source.contains("<script"));

        // The session cookie: __Host-, HttpOnly, Secure, SameSite=Strict, 15 minutes.
        let cookie = c.get_named_cookie("__Host-latchkey-session").await.unwrap();
        assert!(cookie.value().starts_with("lks_"));
        assert_eq!(cookie.http_only(), Some(true));
        assert_eq!(cookie.secure(), Some(true));
        assert_eq!(cookie.path(), Some("/"));
        assert_eq!(
            format!("{:?}", cookie.same_site()),
            "Some(Strict)",
            "SameSite"
        );

        // Phone width, tall enough to show Approve and Deny.
        c.set_window_size(412, 1400).await.unwrap();
        let png = c.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        std::fs::write(screenshot_path("device-approval.png"), &png).unwrap();

        // Uncheck chat:write, approve with one POST.
        c.find(Locator::Id("scope_chat_write"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        c.find(Locator::Id("approve"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let outcome = wait_for(&c, "outcome").await;
        assert_eq!(outcome.text().await.unwrap(), "Device approved");
        c.close().await.unwrap();
    });

    // The device's next poll gets its token, with the narrowed scope.
    let (status, body) = poll(&server, &device);
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    assert!(token.starts_with("lkd_"));
    assert_eq!(body["scope"], "chat:read");
    let me: Value =
        serde_json::from_str(&server.get("/api/native/me", Some(token)).expect(200).body).unwrap();
    assert_eq!(me["user"]["handle"], "alice");

    // The browser session is listed with alice's tokens, like any token.
    let list = server
        .get("/api/native/tokens", Some(&alice))
        .expect(200)
        .body;
    assert!(list.contains("browser sign-in (/device)"), "{list}");
}

/// GET the page with cookies; returns (status, headers we check, body).
fn get_page(server: &Server, path: &str, cookies: &str) -> (u16, ureq::Response) {
    let r = ureq::get(&format!("{}{path}", server.url()))
        .set("Cookie", cookies)
        .call();
    match r {
        Ok(r) => (r.status(), r),
        Err(ureq::Error::Status(s, r)) => (s, r),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_cross_site_post_changes_nothing() {
    let server = Server::start(&[]);
    let key = Key::generate(server.scratch(), "ed25519", "alice@laptop");
    let alice = server.sign_in(&key, Some("alice")).token;
    let started = device_code(&server);
    let device = started["device_code"].as_str().unwrap().to_string();
    let user_code = started["user_code"].as_str().unwrap().to_string();
    let uri = started["verification_uri_complete"]
        .as_str()
        .unwrap()
        .to_string();

    // The page's headers: strict CSP, no framing, a __Host- CSRF cookie.
    let (status, r) = get_page(&server, "/device", "");
    assert_eq!(status, 200);
    let csp = r.header("content-security-policy").unwrap().to_string();
    for part in [
        "default-src 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    let set = r.header("set-cookie").unwrap().to_string();
    assert!(set.starts_with("__Host-latchkey-csrf="), "{set}");
    for attr in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(set.contains(attr), "{set}");
    }
    // Error states are pages, not JSON.
    let (status, r) = get_page(&server, "/device?user_code=not-a-code", "");
    assert_eq!(status, 404);
    assert!(r.content_type().starts_with("text/html"));
    assert!(r.into_string().unwrap().contains("No such request"));

    let driver = start_driver();
    let profile = tempfile::tempdir().unwrap();
    let session_cookie = runtime().block_on(async {
        let c = browser(&driver, profile.path()).await;
        c.goto(&uri).await.unwrap();
        sign_in(&c, &key).await;
        assert!(c.find(Locator::Id("approve")).await.is_ok());
        // Another site's page posts Approve to us: its Origin is not ours, and it has no
        // CSRF token (and SameSite=Strict keeps the session cookie home).
        let attack = format!(
            "data:text/html,<form method=post action=\"{}/device/approve\"><input name=user_code value={user_code}><input name=scope_chat_read value=on><button id=go>win a prize</button></form>",
            server.url()
        );
        c.goto(&attack).await.unwrap();
        c.find(Locator::Id("go")).await.unwrap().click().await.unwrap();
        wait_for(&c, "outcome").await;
        let source = c.source().await.unwrap();
        assert!(source.contains("Not allowed"), "{source}");
        // The request is still pending on the real page.
        c.goto(&uri).await.unwrap();
        assert!(c.find(Locator::Id("approve")).await.is_ok());
        let cookie = c.get_named_cookie("__Host-latchkey-session").await.unwrap();
        let csrf = c.get_named_cookie("__Host-latchkey-csrf").await.unwrap();
        c.close().await.unwrap();
        (cookie.value().to_string(), csrf.value().to_string())
    });
    assert_pending(&server, &device);

    // The same by hand, with the real session cookie: a wrong Origin, a missing CSRF
    // token, a wrong one. Each is refused and changes nothing.
    let (session, csrf) = session_cookie;
    let cookies = format!("__Host-latchkey-session={session}; __Host-latchkey-csrf={csrf}");
    let post = |origin: &str, form: &[(&str, &str)]| {
        let r = ureq::post(&format!("{}/device/approve", server.url()))
            .set("Cookie", &cookies)
            .set("Origin", origin)
            .send_form(form);
        match r {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(s, _)) => s,
            Err(e) => panic!("{e}"),
        }
    };
    let good = [
        ("csrf", csrf.as_str()),
        ("user_code", user_code.as_str()),
        ("scope_chat_read", "on"),
    ];
    assert_eq!(post("https://evil.example", &good), 403);
    assert_eq!(
        post(
            server.url(),
            &[("user_code", user_code.as_str()), ("scope_chat_read", "on")]
        ),
        403
    );
    let wrong = [
        ("csrf", "0".repeat(64).leak() as &str),
        ("user_code", user_code.as_str()),
        ("scope_chat_read", "on"),
    ];
    assert_eq!(post(server.url(), &wrong), 403);
    assert_pending(&server, &device);

    // Neither cookie reaches the log.
    let log = server.log();
    assert!(!log.contains(&session) && !log.contains(&csrf));

    // Revoking the browser session like any token signs the page out.
    let tokens: Value = serde_json::from_str(
        &server
            .get("/api/native/tokens", Some(&alice))
            .expect(200)
            .body,
    )
    .unwrap();
    let browser_token = tokens["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "browser sign-in (/device)")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    server
        .delete(&format!("/api/native/tokens/{browser_token}"), &alice)
        .expect(204);
    let (status, r) = get_page(&server, &uri.replace(server.url(), ""), &cookies);
    assert_eq!(status, 200);
    assert!(r
        .into_string()
        .unwrap()
        .contains("Sign in to approve a device"));
    assert_eq!(post(server.url(), &good), 401);
    assert_pending(&server, &device);
}

#[test]
fn error_states_are_pages_rate_limits_included() {
    let server = Server::start_limited(&[]);
    let key = Key::generate(server.scratch(), "ed25519", "alice@laptop");
    let csrf = "ab".repeat(32);
    let cookies = format!("__Host-latchkey-csrf={csrf}");
    let post = |form: &[(&str, &str)]| {
        let r = ureq::post(&format!("{}/device/challenge", server.url()))
            .set("Cookie", &cookies)
            .set("Origin", server.url())
            .send_form(form);
        match r {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{e}"),
        }
    };
    // A key that is not an SSH key: a page saying so.
    let r = post(&[("csrf", &csrf), ("public_key", "not a key")]);
    assert_eq!(r.status(), 400);
    assert!(r.content_type().starts_with("text/html"));
    // Challenges until the per-address limit answers: a page with Retry-After.
    let pubkey = key.pubkey();
    let mut limited = None;
    for _ in 0..40 {
        let r = post(&[("csrf", &csrf), ("public_key", &pubkey)]);
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status(), 200);
        assert!(r
            .into_string()
            .unwrap()
            .contains("ssh-keygen -Y sign -n latchkey-auth"));
    }
    let r = limited.expect("a 429 within 40 challenges");
    assert!(r.header("retry-after").is_some());
    assert!(r.content_type().starts_with("text/html"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert!(r.into_string().unwrap().contains("Too many attempts"));
}

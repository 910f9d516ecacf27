//! `soak`: steady mixed load with WebSocket churn against a real server for N minutes.
//! Every minute it prints the server's RSS, its open file descriptors (`/proc/PID/fd`)
//! and the minute's p99 request latency. It fails when RSS after the warm-up grows more
//! than 10% over its value at the end of the warm-up, when the server holds more fds once
//! the load has stopped than it did before it started (a leak), on any unexpected
//! answer or transport error, or on a panic in the server's log.
//!
//! The load (paced, not flat out: the machine is shared): HTTP workers post messages,
//! read history, ping, and sign in then log out (session churn); a pool of long-lived
//! WebSockets receives the fanout; a churn thread opens WebSockets (bearer header or a
//! single-use ticket), subscribes (`resume`), waits for the answer, and closes them.

use crate::client::{self, Identity, Session};
use crate::machine;
use crate::server::Server;
use crate::stats;
use rand::Rng;
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, http::HeaderValue, Message};

/// What a run does.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Length of the run.
    pub minutes: u64,
    /// Minutes of warm-up before the RSS baseline is taken.
    pub warmup: u64,
    /// HTTP requests per second, over all workers.
    pub rate: f64,
    /// Long-lived WebSocket connections.
    pub ws_pool: usize,
    /// WebSocket connect/subscribe/close cycles per second.
    pub ws_churn: f64,
    /// The server's page cache (`serve --cache-mib`). A small cache fills during the
    /// warm-up, so growth after it is the server's own and not pages of a growing log.
    pub cache_mib: u64,
}

/// Shared between the load threads and the monitor.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    /// This minute's request latencies, in ms.
    latencies: Mutex<Vec<f64>>,
    requests: AtomicU64,
    ws_cycles: AtomicU64,
    ws_events: AtomicU64,
    /// The largest seq a post was answered with: the log's length, near enough.
    head: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Shared {
    fn error(&self, what: String) {
        if let Ok(mut e) = self.errors.lock() {
            if e.len() < 20 {
                e.push(what);
            }
        }
    }
}

/// One minute's figures.
#[derive(Clone, Copy, Debug)]
struct Minute {
    rss_mib: f64,
    fds: usize,
    p99_ms: f64,
    /// The log's head seq (from the posts' answers) at the end of the minute.
    head: u64,
}

/// The server's open file descriptors.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Runs the soak; an error says which bound broke.
pub fn run(opts: Options, bin: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        opts.minutes > opts.warmup,
        "the run must be longer than its warm-up"
    );
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("server.log");
    let cache = opts.cache_mib.to_string();
    let server = Server::start_in(
        bin,
        &dir.path().join("data"),
        Some(&log),
        &["--no-rate-limit", "--cache-mib", &cache],
    )?;
    let (url, pid) = (server.url().to_string(), server.pid());
    let users = setup(&url, 8)?;
    let idle_fds = open_fds(pid);
    println!(
        "soak: {} min ({} warm-up), {} req/s, {} pooled WebSockets, {} WS cycles/s, server cache \
         {} MiB; pid {pid}, idle fds {idle_fds}, RSS {:.1} MiB",
        opts.minutes,
        opts.warmup,
        opts.rate,
        opts.ws_pool,
        opts.ws_churn,
        opts.cache_mib,
        mib(machine::rss_bytes(pid))
    );
    let shared = Arc::new(Shared::default());
    let handles = start_load(&opts, &url, &users, &shared);
    let mut minutes: Vec<Minute> = Vec::new();
    let started = Instant::now();
    for m in 1..=opts.minutes {
        let next = started + Duration::from_secs(60 * m);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let mut lat = std::mem::take(&mut *shared.latencies.lock().map_err(poisoned)?);
        let s = stats::summarize(&mut lat);
        let minute = Minute {
            rss_mib: mib(machine::rss_bytes(pid)),
            fds: open_fds(pid),
            p99_ms: s.p99,
            head: shared.head.load(Ordering::Relaxed),
        };
        println!(
            "minute {m:>3}: RSS {:7.1} MiB  fds {:4}  p99 {:7.2} ms  p50 {:6.2} ms  requests {:6}  \
             WS cycles {:5}  WS events {:7}  log seq {:7}  errors {}",
            minute.rss_mib,
            minute.fds,
            minute.p99_ms,
            s.p50,
            s.n,
            shared.ws_cycles.swap(0, Ordering::Relaxed),
            shared.ws_events.swap(0, Ordering::Relaxed),
            minute.head,
            shared.errors.lock().map_err(poisoned)?.len()
        );
        minutes.push(minute);
    }
    shared.stop.store(true, Ordering::SeqCst);
    for h in handles {
        let _ = h.join();
    }
    let end_fds = settle_fds(pid, idle_fds);
    let verdict = judge(&opts, &minutes, idle_fds, end_fds, &shared);
    crate::crash::panics_in(&log)?;
    drop(server);
    verdict
}

fn mib(bytes: Option<u64>) -> f64 {
    bytes.unwrap_or(0) as f64 / (1024.0 * 1024.0)
}

fn poisoned<T>(_: T) -> anyhow::Error {
    anyhow::anyhow!("a load thread panicked")
}

/// After the load: waits (bounded) for the server to close what the clients closed; the
/// fd count then.
fn settle_fds(pid: u32, idle: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let fds = open_fds(pid);
        if fds <= idle || Instant::now() > deadline {
            return fds;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The bounds: RSS within +10% of the end of the warm-up, no fd leak, no errors.
fn judge(
    opts: &Options,
    minutes: &[Minute],
    idle_fds: usize,
    end_fds: usize,
    shared: &Shared,
) -> anyhow::Result<()> {
    let warm = minutes[opts.warmup as usize - 1];
    let end = minutes[minutes.len() - 1];
    let peak = minutes[opts.warmup as usize - 1..]
        .iter()
        .map(|m| m.rss_mib)
        .fold(0.0, f64::max);
    println!(
        "soak: start (end of warm-up) RSS {:.1} MiB, fds {}, p99 {:.2} ms; end RSS {:.1} MiB \
         (peak {:.1}), fds {}, p99 {:.2} ms; fds idle before {idle_fds}, after {end_fds}",
        warm.rss_mib, warm.fds, warm.p99_ms, end.rss_mib, peak, end.fds, end.p99_ms
    );
    let events = end.head.saturating_sub(warm.head).max(1);
    println!(
        "soak: after the warm-up the log grew {events} events and RSS {:.0} B per event (sled \
         alone holds about 100 to 240 B per event: 4.5 keys of 21 to 54 B, \
         proto-docs/storage.md section 1, `latchkey-bench sled-memory`)",
        (end.rss_mib - warm.rss_mib) * 1048576.0 / events as f64
    );
    let errors = shared.errors.lock().map_err(poisoned)?;
    anyhow::ensure!(errors.is_empty(), "errors under load: {errors:?}");
    anyhow::ensure!(
        peak <= warm.rss_mib * 1.10,
        "RSS grew {:.1}% after the warm-up ({:.1} -> {:.1} MiB peak)",
        (peak / warm.rss_mib - 1.0) * 100.0,
        warm.rss_mib,
        peak
    );
    anyhow::ensure!(
        end_fds <= idle_fds,
        "fd leak: {idle_fds} fds before the load, {end_fds} after it stopped"
    );
    println!("soak: passed");
    Ok(())
}

/// Signs in `n` users; the first makes a public room the others join.
fn setup(url: &str, n: usize) -> anyhow::Result<Vec<(Identity, Session, String)>> {
    let agent = client::agent();
    let mut users = Vec::new();
    let mut room = String::new();
    for i in 0..n {
        let id = Identity::generate()?;
        let s = client::sign_in(&agent, url, &id)?;
        if i == 0 {
            room = client::create_room_with(
                &agent,
                url,
                &s.token,
                "soak",
                latchkey_proto::RoomVisibility::Public,
            )?;
        } else {
            client::join_room(&agent, url, &s.token, &room)?;
        }
        users.push((id, s, room.clone()));
    }
    Ok(users)
}

fn start_load(
    opts: &Options,
    url: &str,
    users: &[(Identity, Session, String)],
    shared: &Arc<Shared>,
) -> Vec<std::thread::JoinHandle<()>> {
    let mut handles = Vec::new();
    let workers = users.len().min(4);
    let period = Duration::from_secs_f64(workers as f64 / opts.rate.max(0.1));
    for (i, (id, s, room)) in users.iter().take(workers).enumerate() {
        let (url, shared) = (url.to_string(), shared.clone());
        let (key, token, room) = (id.clone(), s.token.clone(), room.clone());
        handles.push(std::thread::spawn(move || {
            http_worker(i, &url, &key, &token, &room, period, &shared)
        }));
    }
    let addr = url.trim_start_matches("http://").to_string();
    for k in 0..opts.ws_pool {
        let token = users[k % users.len()].1.token.clone();
        let (addr, shared) = (addr.clone(), shared.clone());
        handles.push(std::thread::spawn(move || {
            pooled_ws(&addr, &token, &shared)
        }));
    }
    let tokens: Vec<String> = users.iter().map(|u| u.1.token.clone()).collect();
    let (url, shared) = (url.to_string(), shared.clone());
    let period = Duration::from_secs_f64(1.0 / opts.ws_churn.max(0.01));
    handles.push(std::thread::spawn(move || {
        ws_churn(&url, &addr, &tokens, period, &shared)
    }));
    handles
}

/// Times one HTTP request, recording its latency or the error.
fn timed<T>(shared: &Shared, what: &str, f: impl FnOnce() -> anyhow::Result<T>) -> Option<T> {
    timed_as(shared, what, true, f)
}

/// Runs one step, recording the error if it fails, and its latency if `record`.
fn timed_as<T>(
    shared: &Shared,
    what: &str,
    record: bool,
    f: impl FnOnce() -> anyhow::Result<T>,
) -> Option<T> {
    let t = Instant::now();
    let r = f();
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    shared.requests.fetch_add(1, Ordering::Relaxed);
    match r {
        Ok(v) => {
            if !record {
                return Some(v);
            }
            if let Ok(mut l) = shared.latencies.lock() {
                l.push(ms);
            }
            Some(v)
        }
        Err(e) => {
            shared.error(format!("{what}: {e}"));
            None
        }
    }
}

/// Paced HTTP load: posts, history, pings, and session churn (sign in, then log out).
fn http_worker(
    i: usize,
    url: &str,
    id: &Identity,
    token: &str,
    room: &str,
    period: Duration,
    shared: &Shared,
) {
    let agent = client::agent();
    let mut rng = rand::thread_rng();
    let mut next = Instant::now();
    let mut n = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        next += period;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        n += 1;
        match rng.gen_range(0..100) {
            0..=24 => {
                let posted = timed(shared, "post", || {
                    client::post_message_acked(&agent, url, token, room, &format!("soak {i}-{n}"))
                });
                if let Some(p) = posted {
                    shared.head.fetch_max(p.seq, Ordering::Relaxed);
                }
            }
            25..=59 => {
                timed(shared, "history", || {
                    client::message_at_or_below(&agent, url, token, room, u64::MAX - 1)
                });
            }
            60..=91 => {
                timed(shared, "ping", || {
                    match client::ping_status(&agent, url, token)? {
                        200 => Ok(()),
                        s => anyhow::bail!("ping answered {s}"),
                    }
                });
            }
            _ => {
                if let Some(s) = timed(shared, "sign-in", || client::sign_in(&agent, url, id)) {
                    timed(shared, "logout", || client::logout(&agent, url, &s.token));
                }
            }
        }
    }
}

type Socket = tungstenite::WebSocket<TcpStream>;

/// Opens `/api/native/ws` with a bearer header or `?ticket=`, and reads the hello; the
/// socket and the hello's head.
fn open_ws(
    addr: &str,
    bearer: Option<&str>,
    ticket: Option<&str>,
) -> anyhow::Result<(Socket, u64)> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let path = match ticket {
        Some(t) => format!("ws://{addr}/api/native/ws?ticket={t}"),
        None => format!("ws://{addr}/api/native/ws"),
    };
    let mut req = path.into_client_request()?;
    if let Some(token) = bearer {
        req.headers_mut().insert(
            "Authorization",
            HeaderValue::from_str(&client::bearer(token))?,
        );
    }
    let (mut ws, _) =
        tungstenite::client(req, stream).map_err(|e| anyhow::anyhow!("WS handshake: {e}"))?;
    let hello = match ws.read()? {
        Message::Text(t) => serde_json::from_str::<serde_json::Value>(t.as_str())?,
        other => anyhow::bail!("expected hello, got {other:?}"),
    };
    anyhow::ensure!(hello["type"] == "hello", "expected hello, got {hello}");
    let head = hello["head"].as_u64().unwrap_or(0);
    Ok((ws, head))
}

/// A long-lived WebSocket that receives the room's fanout until the run stops.
fn pooled_ws(addr: &str, token: &str, shared: &Shared) {
    let mut ws = match open_ws(addr, Some(token), None) {
        Ok((ws, _)) => ws,
        Err(e) => return shared.error(format!("pooled WS: {e}")),
    };
    let _ = ws
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(500)));
    while !shared.stop.load(Ordering::SeqCst) {
        match ws.read() {
            Ok(Message::Text(_)) => {
                shared.ws_events.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Message::Close(c)) => return shared.error(format!("pooled WS closed: {c:?}")),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return shared.error(format!("pooled WS: {e}")),
        }
    }
    let _ = ws.close(None);
    let _ = ws.flush();
}

/// Connect, subscribe (`resume` from the hello's head), wait for `resumed`, close; paced.
fn ws_churn(url: &str, addr: &str, tokens: &[String], period: Duration, shared: &Shared) {
    let agent = client::agent();
    let mut next = Instant::now();
    let mut n = 0usize;
    while !shared.stop.load(Ordering::SeqCst) {
        next += period;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        n += 1;
        let token = &tokens[n % tokens.len()];
        let cycle = || -> anyhow::Result<()> {
            let (mut ws, head) = if n.is_multiple_of(2) {
                let t: latchkey_proto::WsTicketResponse = agent
                    .post(&format!("{url}/api/native/ws-ticket"))
                    .set("Authorization", &client::bearer(token))
                    .call()?
                    .into_json()?;
                open_ws(addr, None, Some(&t.ticket))?
            } else {
                open_ws(addr, Some(token), None)?
            };
            // Subscribe with a short replay: the last few events before the hello.
            let since = head.saturating_sub(10);
            ws.send(Message::text(format!(
                r#"{{"op":"resume","since":{since}}}"#
            )))?;
            loop {
                match ws.read()? {
                    Message::Text(t) if t.as_str().contains("\"resumed\"") => break,
                    Message::Text(t) if t.as_str().contains("\"resume_failed\"") => break,
                    Message::Close(c) => anyhow::bail!("closed before resumed: {c:?}"),
                    _ => {}
                }
            }
            ws.close(None)?;
            // Read until the server's close frame, so both sides finish the handshake.
            while ws.read().is_ok() {}
            Ok(())
        };
        if timed_as(shared, "ws cycle", false, cycle).is_some() {
            shared.ws_cycles.fetch_add(1, Ordering::Relaxed);
        }
    }
}

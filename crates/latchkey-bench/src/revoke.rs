//! Revocation in force: after `DELETE /api/native/token` returns, how long until (a) that
//! token's WebSocket receives the 4001 close and (b) its next REST call answers 401. The
//! reference is the same REST call's round trip just before the revocation. A close that
//! arrives before the DELETE answer counts as 0 ms (and is counted), so the close is also
//! timed from sending the DELETE, beside the DELETE's own round trip.

use crate::client::{self, Identity};
use crate::report::{Better, Report};
use crate::server::Server;
use crate::stats::summarize;
use latchkey_actors::close::CLOSE_CREDENTIAL;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, http::HeaderValue, Message};

/// One revocation's timings.
struct Sample {
    baseline_ms: f64,
    close_ms: f64,
    /// From sending the DELETE to the close, and to the DELETE's answer.
    close_from_sent_ms: f64,
    delete_ms: f64,
    close_before_answer: bool,
    close_code: Option<u16>,
    rest_ms: f64,
    rest_status: u16,
}

type Socket = tungstenite::WebSocket<TcpStream>;

fn read_text(ws: &mut Socket) -> anyhow::Result<String> {
    loop {
        match ws.read()? {
            Message::Text(t) => return Ok(t.as_str().to_string()),
            Message::Close(c) => anyhow::bail!("closed during setup: {c:?}"),
            _ => {}
        }
    }
}

/// Opens a live WebSocket as `token` (hello, then ping/pong so delivery is live).
fn open_ws(addr: &str, token: &str) -> anyhow::Result<Socket> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!("ws://{addr}/api/native/ws").into_client_request()?;
    req.headers_mut().insert(
        "Authorization",
        HeaderValue::from_str(&client::bearer(token))?,
    );
    let (mut ws, _) =
        tungstenite::client(req, stream).map_err(|e| anyhow::anyhow!("WS handshake: {e}"))?;
    anyhow::ensure!(read_text(&mut ws)?.contains("\"hello\""), "expected hello");
    ws.send(Message::text(r#"{"op":"ping"}"#))?;
    while !read_text(&mut ws)?.contains("\"pong\"") {}
    Ok(ws)
}

fn once(agent: &ureq::Agent, url: &str, addr: &str, id: &Identity) -> anyhow::Result<Sample> {
    let token = client::sign_in(agent, url, id)?.token;
    let mut ws = open_ws(addr, &token)?;
    let reader = std::thread::spawn(move || -> anyhow::Result<(Instant, Option<u16>)> {
        loop {
            if let Message::Close(frame) = ws.read()? {
                return Ok((Instant::now(), frame.map(|f| u16::from(f.code))));
            }
        }
    });
    let t = Instant::now();
    anyhow::ensure!(
        client::ping_status(agent, url, &token)? == 200,
        "ping before revoke failed"
    );
    let baseline_ms = t.elapsed().as_secs_f64() * 1000.0;
    let sent = Instant::now();
    client::logout(agent, url, &token)?;
    let answered = Instant::now();
    let rest_status = client::ping_status(agent, url, &token)?;
    let rest_ms = answered.elapsed().as_secs_f64() * 1000.0;
    let (closed, close_code) = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the WS reader panicked"))??;
    Ok(Sample {
        baseline_ms,
        close_ms: closed.saturating_duration_since(answered).as_secs_f64() * 1000.0,
        close_from_sent_ms: closed.saturating_duration_since(sent).as_secs_f64() * 1000.0,
        delete_ms: answered.duration_since(sent).as_secs_f64() * 1000.0,
        close_before_answer: closed < answered,
        close_code,
        rest_ms,
        rest_status,
    })
}

/// Runs the scenario.
pub fn run(count: usize, bin: &Path, report: &mut Report) -> anyhow::Result<()> {
    let server = Server::start(bin, &["--no-rate-limit"])?;
    let url = server.url().to_string();
    let addr = url.trim_start_matches("http://").to_string();
    eprintln!("revoke: {count} sign-in, WS, DELETE /api/native/token rounds");
    let agent = client::agent();
    let id = Identity::generate()?;
    let samples = (0..count)
        .map(|_| once(&agent, &url, &addr, &id))
        .collect::<anyhow::Result<Vec<_>>>()?;
    drop(server);
    let pick = |f: fn(&Sample) -> f64| summarize(&mut samples.iter().map(f).collect::<Vec<_>>());
    let base = pick(|s| s.baseline_ms);
    let close = pick(|s| s.close_ms);
    let rest = pick(|s| s.rest_ms);
    for (label, ours, reference) in [("p50", close.p50, base.p50), ("p99", close.p99, base.p99)] {
        report.push(
            &format!("revoke: DELETE answered -> WS close 4001, {label}"),
            ours,
            &format!("authed REST round trip {label}"),
            Some(reference),
            "ms",
            Better::Lower,
        );
    }
    let from_sent = pick(|s| s.close_from_sent_ms);
    let delete = pick(|s| s.delete_ms);
    for (label, ours, reference) in [
        ("p50", from_sent.p50, delete.p50),
        ("p99", from_sent.p99, delete.p99),
    ] {
        report.push(
            &format!("revoke: DELETE sent -> WS close 4001, {label}"),
            ours,
            &format!("DELETE sent -> its answer {label}"),
            Some(reference),
            "ms",
            Better::Lower,
        );
    }
    for (label, ours, reference) in [("p50", rest.p50, base.p50), ("p99", rest.p99, base.p99)] {
        report.push(
            &format!("revoke: DELETE answered -> next REST call 401, {label}"),
            ours,
            &format!("authed REST round trip {label}"),
            Some(reference),
            "ms",
            Better::Lower,
        );
    }
    let early = samples.iter().filter(|s| s.close_before_answer).count();
    let not_401 = samples.iter().filter(|s| s.rest_status != 401).count();
    let not_4001 = samples
        .iter()
        .filter(|s| s.close_code != Some(CLOSE_CREDENTIAL))
        .count();
    report.note(format!(
        "revoke: {count} rounds; {early} WS closes arrived before the DELETE answer (0 ms); \
         {not_4001} closes without code 4001; {not_401} REST calls after revoke not answered 401{}",
        if not_401 == 0 && not_4001 == 0 {
            " (pass)"
        } else {
            " (FAIL)"
        }
    ));
    Ok(())
}

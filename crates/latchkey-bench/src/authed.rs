//! Cost of bearer auth: `GET /api/native/ping` with a token vs `GET /healthz` on the same
//! server (rate limits off), both driven by `wrk --latency`. Parses wrk's text output; if
//! wrk is missing it says so and skips.

use crate::client::{self, Identity};
use crate::report::{Better, Check, Headline, Op, Report};
use crate::server::{find_program, Server};
use anyhow::Context;
use std::path::Path;
use std::process::Command;

/// What one wrk run reported.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WrkResult {
    /// Requests/sec.
    pub rps: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// Responses that were not 2xx or 3xx.
    pub non_2xx: u64,
}

/// `1.23ms`, `850.00us`, `1.02s`, `1.5m` as milliseconds.
fn duration_ms(s: &str) -> Option<f64> {
    let (num, factor) = if let Some(n) = s.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000.0)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|v| v * factor)
}

/// Parses the output of `wrk --latency`.
pub fn parse_wrk(out: &str) -> anyhow::Result<WrkResult> {
    let mut r = WrkResult::default();
    let mut found = (false, false, false);
    for line in out.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Requests/sec:"), Some(v)) => {
                r.rps = v.parse()?;
                found.0 = true;
            }
            (Some("50%"), Some(v)) => {
                r.p50_ms = duration_ms(v).context("wrk's 50% latency")?;
                found.1 = true;
            }
            (Some("99%"), Some(v)) => {
                r.p99_ms = duration_ms(v).context("wrk's 99% latency")?;
                found.2 = true;
            }
            _ => {}
        }
        if let Some(n) = line.strip_prefix("Non-2xx or 3xx responses:") {
            r.non_2xx = n.trim().parse()?;
        }
    }
    anyhow::ensure!(
        found == (true, true, true),
        "could not read wrk's output:\n{out}"
    );
    Ok(r)
}

fn wrk(
    program: &Path,
    url: &str,
    header: Option<&str>,
    seconds: f64,
    connections: usize,
) -> anyhow::Result<WrkResult> {
    let mut cmd = Command::new(program);
    cmd.args(["-t2", &format!("-c{connections}")])
        .arg(format!("-d{}s", seconds.ceil().max(1.0) as u64))
        .arg("--latency");
    if let Some(h) = header {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).output()?;
    anyhow::ensure!(
        out.status.success(),
        "wrk failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

/// Alternating rounds of the two sides.
const ROUNDS: usize = 3;

/// Rounds of equal length as one: mean req/s and p50, worst p99, every non-2xx.
fn combine(rounds: impl Iterator<Item = WrkResult>) -> WrkResult {
    let all: Vec<WrkResult> = rounds.collect();
    let n = all.len().max(1) as f64;
    WrkResult {
        rps: all.iter().map(|r| r.rps).sum::<f64>() / n,
        p50_ms: all.iter().map(|r| r.p50_ms).sum::<f64>() / n,
        p99_ms: all.iter().map(|r| r.p99_ms).fold(0.0, f64::max),
        non_2xx: all.iter().map(|r| r.non_2xx).sum(),
    }
}

/// Runs the scenario.
pub fn run(
    seconds: f64,
    connections: usize,
    bin: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    let Some(program) = find_program("wrk") else {
        report.note(
            "authed: skipped, `wrk` is not installed (scripts/bench.sh installs it with apt-get)",
        );
        return Ok(());
    };
    let server = Server::start(bin, &["--no-rate-limit"])?;
    let url = server.url().to_string();
    let session = client::sign_in(&client::agent(), &url, &Identity::generate()?)?;
    let header = format!("Authorization: {}", client::bearer(&session.token));
    let ping = format!("{url}/api/native/ping");
    let health = format!("{url}/healthz");
    // Rounds alternate the two sides, so that load from other processes on this shared
    // machine (which comes and goes over seconds) lands on both sides alike instead of on
    // whichever side happened to run at the time.
    let per_side = (seconds / ROUNDS as f64).round().max(1.0);
    eprintln!(
        "authed: wrk -t2 -c{connections}, {ROUNDS} rounds of {per_side} s a side: \
         /api/native/ping vs /healthz"
    );
    wrk(&program, &ping, Some(&header), 1.0, connections)?; // warm-up
    let mut rounds = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let base = wrk(&program, &health, None, per_side, connections)?;
        let ours = wrk(&program, &ping, Some(&header), per_side, connections)?;
        rounds.push((ours, base));
    }
    let ours = combine(rounds.iter().map(|r| r.0));
    let base = combine(rounds.iter().map(|r| r.1));
    let ratio = (base.rps > 0.0).then(|| ours.rps / base.rps);
    report.headline(Headline {
        id: "authed_vs_healthz",
        figure: format!("authed GET /api/native/ping req/s, wrk {connections} conns"),
        ours: Some(ours.rps),
        unit: "req/s".into(),
        reference_name: "GET /healthz, same server, same wrk".into(),
        reference: Some(base.rps),
        better: Better::Higher,
        checks: vec![Check::new("ratio", ratio, Op::AtLeast, 0.9)],
        includes: format!(
            "`wrk -t2 -c{connections} -d{per_side}s --latency` (2 client threads, \
             {connections} keep-alive connections, a separate process) against one real \
             latchkey server (`--no-rate-limit`, one actix worker per core). Ping carries one \
             valid bearer token, so each request checks its format and checksum, hashes it, \
             looks it up in the in-memory token index and checks expiry; /healthz does no \
             auth. After a 1 s warm-up the sides alternate, /healthz then ping, {ROUNDS} \
             rounds of {per_side} s each (load from other processes on the machine falls on \
             both sides alike); req/s and p50 are the rounds' means, p99 the worst round's."
        ),
    });
    report.push(
        "authed ping latency p50",
        ours.p50_ms,
        "/healthz p50",
        Some(base.p50_ms),
        "ms",
        Better::Lower,
    );
    report.push(
        "authed ping latency p99",
        ours.p99_ms,
        "/healthz p99",
        Some(base.p99_ms),
        "ms",
        Better::Lower,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_combine_into_means_and_the_worst_p99() {
        let r = |rps, p50_ms, p99_ms, non_2xx| WrkResult {
            rps,
            p50_ms,
            p99_ms,
            non_2xx,
        };
        let c = combine([r(100.0, 1.0, 5.0, 0), r(300.0, 3.0, 9.0, 2)].into_iter());
        assert_eq!(c, r(200.0, 2.0, 9.0, 2));
    }

    #[test]
    fn parses_wrk_output() -> anyhow::Result<()> {
        let out = "Running 2s test @ http://127.0.0.1:1/healthz
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.52ms    2.01ms  40.00ms   93.00%
  Latency Distribution
     50%  850.00us
     75%    1.50ms
     90%    3.00ms
     99%    1.02s
  24000 requests in 2.00s, 3.00MB read
  Non-2xx or 3xx responses: 3
Requests/sec:  12000.50
Transfer/sec:      1.50MB
";
        let r = parse_wrk(out)?;
        assert_eq!(r.rps, 12000.5);
        assert!((r.p50_ms - 0.85).abs() < 1e-9);
        assert_eq!(r.p99_ms, 1020.0);
        assert_eq!(r.non_2xx, 3);
        assert!(parse_wrk("nothing").is_err());
        Ok(())
    }
}

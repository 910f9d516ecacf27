//! Sign-in capacity: N concurrent async clients (tokio tasks on one runtime, each with
//! its own keep-alive HTTP/1.1 connection and a pre-generated, pre-registered Ed25519 key)
//! doing challenge, SSHSIG sign, token in a closed loop against a real latchkey server and
//! against the stateless verify peer (`signin_peer`), the same client, in alternating
//! halves.
//! The second reference is raw SSHSIG verification with no HTTP at all.

use crate::client::Identity;
use crate::http1::Conn;
use crate::report::{Better, Check, Headline, Op, Report};
use crate::server::Server;
use crate::signin_peer::Peer;
use crate::stats::{summarize, Summary};
use latchkey_domain::sshkey::{parse_public_key, verify_signature};
use latchkey_proto::{ChallengeRequest, ChallengeResponse, TokenRequest, TokenResponse};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Raw SSHSIG verifications/s on `threads` threads.
fn raw_verify(threads: usize, seconds: f64) -> anyhow::Result<f64> {
    let id = Identity::generate()?;
    let public = parse_public_key(id.public())?;
    let message = "latchkey-auth-v1\nserver=bench\n";
    let sig = id.sign(message)?;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (public, sig) = (public.clone(), sig.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut n = 0u64;
                while started.elapsed().as_secs_f64() < seconds {
                    if verify_signature(&public, message.as_bytes(), &sig).is_ok() {
                        n += 1;
                    }
                }
                n as f64 / started.elapsed().as_secs_f64()
            })
        })
        .collect();
    Ok(handles.into_iter().filter_map(|h| h.join().ok()).sum())
}

/// One sign-in over `conn`: challenge, sign, token.
async fn sign_in(conn: &mut Conn, id: &Identity) -> anyhow::Result<()> {
    let req = serde_json::to_vec(&ChallengeRequest {
        public_key: id.public().to_string(),
    })?;
    let ch: ChallengeResponse = conn
        .post_json("/api/native/challenge", &req, None)
        .await?
        .json()?;
    let signature = id.sign(&ch.message)?;
    let req = serde_json::to_vec(&TokenRequest {
        challenge_id: ch.challenge_id,
        signature,
        device_name: Some("latchkey-bench".into()),
        handle: None,
    })?;
    let _: TokenResponse = conn
        .post_json("/api/native/token", &req, None)
        .await?
        .json()?;
    Ok(())
}

/// What one side did: sign-ins/s and their latency.
struct Side {
    rate: f64,
    latency: Summary,
    errors: u64,
}

/// What one timed run did: each sign-in's latency (ms), its window (s), its failures.
pub(crate) struct Run {
    /// Each sign-in's latency, ms.
    pub lat: Vec<f64>,
    /// The timed window, s.
    pub window: f64,
    /// Failed sign-ins.
    pub errors: u64,
}

impl Side {
    /// The runs of one side added up.
    fn of(runs: Vec<Run>) -> Self {
        let window: f64 = runs.iter().map(|r| r.window).sum();
        let errors = runs.iter().map(|r| r.errors).sum();
        let mut all: Vec<f64> = runs.into_iter().flat_map(|r| r.lat).collect();
        Self {
            rate: all.len() as f64 / window.max(1e-9),
            latency: summarize(&mut all),
            errors,
        }
    }
}

/// Runs every identity as a client against `url` for `seconds` (0: one sign-in each).
pub(crate) async fn load(url: &str, ids: &Arc<Vec<Identity>>, seconds: f64) -> anyhow::Result<Run> {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..ids.len())
        .map(|i| {
            let (ids, url) = (ids.clone(), url.to_string());
            tokio::spawn(async move {
                let mut conn = Conn::new(&url);
                let mut lat = Vec::new();
                let mut errors = 0u64;
                let mut first_error = None;
                loop {
                    let t = Instant::now();
                    match sign_in(&mut conn, &ids[i]).await {
                        Ok(()) if seconds == 0.0 || Instant::now() <= deadline => {
                            lat.push(t.elapsed().as_secs_f64() * 1000.0)
                        }
                        Ok(()) => {}
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert(e);
                        }
                    }
                    if seconds == 0.0 || Instant::now() >= deadline {
                        return (lat, errors, first_error);
                    }
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    let mut first = None;
    for t in tasks {
        let (lat, e, f) = t.await?;
        all.extend(lat);
        errors += e;
        first = first.or(f);
    }
    let window = if seconds == 0.0 {
        started.elapsed().as_secs_f64()
    } else {
        seconds
    };
    if let Some(e) = first {
        eprintln!("  login: {errors} sign-ins failed; first: {e:#}");
    }
    Ok(Run {
        lat: all,
        window,
        errors,
    })
}

/// Runs the scenario.
pub fn run(
    seconds: f64,
    clients: usize,
    bin: &Path,
    flame: Option<&Path>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let clients = clients.max(1);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let ids: Arc<Vec<Identity>> = Arc::new(
        (0..clients)
            .map(|_| Identity::generate())
            .collect::<anyhow::Result<_>>()?,
    );
    let rt = crate::fanout::ours::runtime()?;
    let server = Server::start(bin, &["--no-rate-limit"])?;
    eprintln!("login: {clients} async clients, {seconds} s each side; registering the users");
    let reg = rt.block_on(load(server.url(), &ids, 0.0))?;
    anyhow::ensure!(
        reg.errors == 0,
        "login: {} registrations failed",
        reg.errors
    );
    let keys: Vec<String> = ids.iter().map(|i| i.public().to_string()).collect();
    let peer = Peer::start(cores, &keys)?;
    rt.block_on(load(peer.url(), &ids, 0.0))?; // connections and caches, as for ours
                                               // Alternating halves, so a change in the machine's other load hits both sides alike.
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let perf = crate::perf::Recorder::start(flame, "signin", server.pid());
    for _ in 0..2 {
        ours.push(rt.block_on(load(server.url(), &ids, seconds / 2.0))?);
        theirs.push(rt.block_on(load(peer.url(), &ids, seconds / 2.0))?);
    }
    if let Some(p) = perf {
        p.finish();
    }
    let (ours, theirs) = (Side::of(ours), Side::of(theirs));
    drop(server);
    drop(peer);
    drop(rt);
    let raw = raw_verify(cores, seconds)?;
    anyhow::ensure!(
        ours.errors == 0 && theirs.errors == 0,
        "login: {} failed sign-ins against latchkey, {} against the peer",
        ours.errors,
        theirs.errors
    );
    report.baseline("signin", ours.rate);
    add_rows(report, clients, seconds, (&ours, &theirs, raw));
    Ok(())
}

/// The headline row and the supporting rows: ours, the peer's, raw verify/s.
fn add_rows(
    report: &mut Report,
    clients: usize,
    seconds: f64,
    (ours, theirs, raw): (&Side, &Side, f64),
) {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let ratio = (theirs.rate > 0.0).then(|| ours.rate / theirs.rate);
    report.headline(Headline {
        id: "signin_vs_verify_peer",
        figure: format!("sign-ins/s, {clients} concurrent clients"),
        ours: Some(ours.rate),
        unit: "sign-ins/s".into(),
        reference_name: "stateless actix-web verify peer, same client".into(),
        reference: Some(theirs.rate),
        better: Better::Higher,
        checks: vec![
            Check::new("ratio", ratio, Op::AtLeast, 0.5),
            Check::new("p99 ms", Some(ours.latency.p99), Op::Below, 50.0),
        ],
        includes: format!(
            "{clients} concurrent async clients (tokio tasks on one 2-thread runtime in the \
             bench process), each with its own keep-alive HTTP/1.1 connection and its own \
             Ed25519 key, generated and registered before timing; one sign-in is POST \
             /api/native/challenge, an SSHSIG signature made in the client, POST \
             /api/native/token, both answers parsed, in a closed loop; {seconds} s a side, \
             in alternating halves (latchkey, peer, latchkey, peer). \
             latchkey: the real server (`--no-rate-limit`, one actix worker per core, {cores} \
             cores), every sign-in durable in the log. Peer: actix-web in the bench process, \
             {cores} workers, the same JSON, parses the key, rebuilds the same message and \
             verifies the same SSHSIG with ssh-key, keeps nothing. Both listen with a backlog \
             of 4096 (std's bind gives 128, which the 256 connects at the start of each half \
             overflowed into 1 s SYN resends). Client, server and peer share the {cores} \
             cores."
        ),
    });
    for (label, a, b) in [
        ("p50", ours.latency.p50, theirs.latency.p50),
        ("p99", ours.latency.p99, theirs.latency.p99),
    ] {
        report.push(
            &format!("sign-in latency {label}, {clients} clients (challenge + token)"),
            a,
            &format!("verify peer {label}"),
            Some(b),
            "ms",
            Better::Lower,
        );
    }
    report.add(
        &format!("sign-ins/s, {clients} clients"),
        ours.rate,
        &format!("raw SSHSIG verify, {cores} threads, no HTTP"),
        raw,
        "per s",
    );
}

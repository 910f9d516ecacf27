//! `crash`: `kill -9` rounds against the real server under mixed load (sign-ins, posts,
//! revocations), the server-level companion of the store-level crash test
//! (`tests/blackbox/crash.rs` with its `crash-writer`). It checks, not measures: every
//! write the server acknowledged is there after the restart, `latchkey admin verify`
//! passes on the killed data dir, and `latchkey admin rebuild` finds the read models
//! equal to a rebuild from the log.
//!
//! Each round starts the server on the same data dir (it recovers from the last kill),
//! checks the previous round's acknowledgements over REST, runs the load, `kill -9`s the
//! server after a random number of acknowledgements while requests are in flight, and
//! runs `admin verify` offline. Every `rebuild_every` rounds, after the recovery, and at
//! the end, the server is stopped with SIGTERM and `admin rebuild` must report every read
//! model identical; at the end every acknowledgement of every round is checked again.

use crate::client::{self, Identity};
use crate::server::Server;
use rand::Rng;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a run does.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// How many kill -9 rounds.
    pub rounds: usize,
    /// Concurrent load threads.
    pub workers: usize,
    /// A clean stop and `admin rebuild` every this many rounds (and after the last).
    pub rebuild_every: usize,
}

/// A write the server acknowledged (or, for `Revoking`, one it was asked to make).
#[derive(Clone, Debug)]
enum Ack {
    /// A sign-in answered 201: the token must still authenticate, unless revoked.
    SignedIn { token: String },
    /// A post answered 201 with this id and seq; `reader` is a member's token.
    Posted {
        room: String,
        message_id: String,
        seq: u64,
        reader: String,
    },
    /// A logout was sent (its outcome is unknown until `Revoked`).
    Revoking { token: String },
    /// A logout answered 204: the token must be refused.
    Revoked { token: String },
}

/// What the rounds saw.
#[derive(Debug, Default)]
struct Tally {
    acks: usize,
    posts: usize,
    sign_ins: usize,
    revokes: usize,
    lost: usize,
}

/// Runs the rounds; an error names the first loss or failed check.
pub fn run(opts: Options, bin: &Path) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let start = || -> anyhow::Result<Server> {
        let server = Server::start_in(bin, &data, Some(&log), &["--no-rate-limit"])?;
        wait_ready(server.url())?;
        Ok(server)
    };
    let mut rng = rand::thread_rng();
    let mut all: Vec<Ack> = Vec::new();
    let mut pending: Vec<Ack> = Vec::new();
    let mut tally = Tally::default();
    let started = Instant::now();
    for round in 1..=opts.rounds {
        // Recovery from the last kill, then the last round's acks.
        let mut server = start()?;
        tally.settle(check(server.url(), &pending), &pending, round - 1, &log)?;
        all.append(&mut pending);
        if round > 1 && (round - 1) % opts.rebuild_every.max(1) == 0 {
            server.terminate(Duration::from_secs(15))?;
            rebuild_offline(bin, &data, round)?;
            server = start()?;
        }
        pending = load_until_killed(server, opts.workers, rng.gen_range(5..300usize))?;
        verify_offline(bin, &data, round)?;
        eprintln!(
            "round {round}/{}: killed after {} acknowledged writes ({} checked so far, {} lost; \
             {:.0} s)",
            opts.rounds,
            pending
                .iter()
                .filter(|a| !matches!(a, Ack::Revoking { .. }))
                .count(),
            tally.acks,
            tally.lost,
            started.elapsed().as_secs_f64()
        );
    }
    let server = start()?;
    tally.settle(check(server.url(), &pending), &pending, opts.rounds, &log)?;
    all.append(&mut pending);
    // Once more, everything: nothing acknowledged in an early round went missing later.
    let again = check(server.url(), &all);
    anyhow::ensure!(again.is_empty(), "lost by the end: {again:?}");
    server.terminate(Duration::from_secs(15))?;
    rebuild_offline(bin, &data, opts.rounds)?;
    verify_offline(bin, &data, opts.rounds)?;
    panics_in(&log)?;
    println!(
        "crash: {} rounds, {} acknowledged writes checked ({} sign-ins, {} posts, {} \
         revocations), 0 lost; admin verify passed after every kill; admin rebuild found \
         the read models identical every {} rounds and at the end ({:.0} s)",
        opts.rounds,
        tally.acks,
        tally.sign_ins,
        tally.posts,
        tally.revokes,
        opts.rebuild_every,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

impl Tally {
    /// Counts a round's checked acks; an error if any was lost.
    fn settle(
        &mut self,
        lost: Vec<String>,
        acks: &[Ack],
        round: usize,
        log: &Path,
    ) -> anyhow::Result<()> {
        acks.iter().for_each(|a| self.count(a));
        self.lost += lost.len();
        anyhow::ensure!(
            lost.is_empty(),
            "round {round}: acknowledged writes lost: {lost:?}; server log {}",
            log.display()
        );
        Ok(())
    }

    fn count(&mut self, ack: &Ack) {
        match ack {
            Ack::SignedIn { .. } => self.sign_ins += 1,
            Ack::Posted { .. } => self.posts += 1,
            Ack::Revoked { .. } => self.revokes += 1,
            Ack::Revoking { .. } => return,
        }
        self.acks += 1;
    }
}

/// Polls `/readyz` until it answers 200 (projections caught up), with a deadline.
fn wait_ready(url: &str) -> anyhow::Result<()> {
    let agent = client::agent();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = agent.get(&format!("{url}/readyz")).call() {
            if r.status() == 200 {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    anyhow::bail!("{url} was not ready within 60 s")
}

/// Runs the load until `kill_after` writes are acknowledged (or 30 s pass), then
/// `kill -9`s the server with requests in flight; every ack the workers got.
fn load_until_killed(
    server: Server,
    workers: usize,
    kill_after: usize,
) -> anyhow::Result<Vec<Ack>> {
    let url = server.url().to_string();
    let (tx, rx) = mpsc::channel::<Ack>();
    let dead = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let (url, tx, dead) = (url.clone(), tx.clone(), dead.clone());
            std::thread::spawn(move || worker(w, &url, &tx, &dead))
        })
        .collect();
    drop(tx);
    let mut acks = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while acks
        .iter()
        .filter(|a| !matches!(a, Ack::Revoking { .. }))
        .count()
        < kill_after
        && Instant::now() < deadline
    {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(a) => acks.push(a),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    server.kill9()?;
    dead.store(true, Ordering::SeqCst);
    for h in handles {
        let _ = h.join();
    }
    // What the workers were answered before the kill counts too.
    acks.extend(rx.try_iter());
    Ok(acks)
}

/// One load thread: sign in a fresh user, make a room, then post, sign in again and
/// revoke sessions at random until the server dies. Every answered write is sent as an
/// ack; a transport error (the kill) ends the thread.
fn worker(w: usize, url: &str, tx: &mpsc::Sender<Ack>, dead: &AtomicBool) {
    let agent = client::agent();
    let Ok(id) = Identity::generate() else { return };
    let Ok(main) = client::sign_in(&agent, url, &id) else {
        return;
    };
    let _ = tx.send(Ack::SignedIn {
        token: main.token.clone(),
    });
    let Ok(room) = client::create_room(&agent, url, &main.token, &format!("crash-{w}")) else {
        return;
    };
    let mut rng = rand::thread_rng();
    let mut extra: Vec<String> = Vec::new();
    let mut n = 0u64;
    while !dead.load(Ordering::SeqCst) {
        n += 1;
        let roll = rng.gen_range(0..100);
        let sent = if roll < 60 {
            client::post_message_acked(&agent, url, &main.token, &room, &format!("m{w}-{n}")).map(
                |r| Ack::Posted {
                    room: room.clone(),
                    message_id: r.message_id,
                    seq: r.seq,
                    reader: main.token.clone(),
                },
            )
        } else if roll < 85 || extra.is_empty() {
            client::sign_in(&agent, url, &id).map(|s| {
                extra.push(s.token.clone());
                Ack::SignedIn { token: s.token }
            })
        } else {
            let token = extra.swap_remove(rng.gen_range(0..extra.len()));
            let _ = tx.send(Ack::Revoking {
                token: token.clone(),
            });
            client::logout(&agent, url, &token).map(|()| Ack::Revoked { token })
        };
        match sent {
            Ok(ack) => {
                let _ = tx.send(ack);
            }
            Err(_) => return,
        }
    }
}

/// Checks acknowledgements against the restarted server; what is missing.
fn check(url: &str, acks: &[Ack]) -> Vec<String> {
    let agent = client::agent();
    let revoking: std::collections::HashSet<&str> = acks
        .iter()
        .filter_map(|a| match a {
            Ack::Revoking { token } => Some(token.as_str()),
            _ => None,
        })
        .collect();
    let mut lost = Vec::new();
    for ack in acks {
        let missing = match ack {
            Ack::SignedIn { token } if !revoking.contains(token.as_str()) => {
                let status = client::ping_status(&agent, url, token);
                (!matches!(status, Ok(200))).then(|| format!("sign-in: ping {status:?}"))
            }
            Ack::Posted {
                room,
                message_id,
                seq,
                reader,
            } => match client::message_at_or_below(&agent, url, reader, room, *seq) {
                Ok(Some(m)) if &m.message_id == message_id && m.seq == Some(*seq) => None,
                other => Some(format!("post {message_id} (seq {seq}): {other:?}")),
            },
            Ack::Revoked { token } => {
                let status = client::ping_status(&agent, url, token);
                (!matches!(status, Ok(401))).then(|| format!("revocation: ping {status:?}"))
            }
            _ => None,
        };
        lost.extend(missing);
    }
    lost
}

/// `latchkey admin --data-dir DATA verify` must exit 0.
fn verify_offline(bin: &Path, data: &Path, round: usize) -> anyhow::Result<()> {
    let out = Command::new(bin)
        .arg("admin")
        .arg("--data-dir")
        .arg(data)
        .arg("verify")
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "round {round}: admin verify failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// `latchkey admin --data-dir DATA --json rebuild` must find every read model identical.
fn rebuild_offline(bin: &Path, data: &Path, round: usize) -> anyhow::Result<()> {
    let out = Command::new(bin)
        .arg("admin")
        .arg("--data-dir")
        .arg(data)
        .args(["--json", "rebuild"])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "round {round}: admin rebuild failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let models = report["read_models"]
        .as_object()
        .ok_or_else(|| anyhow::anyhow!("round {round}: rebuild printed no read_models"))?;
    anyhow::ensure!(
        !models.is_empty(),
        "round {round}: rebuild named no read model"
    );
    let differing: Vec<String> = models
        .iter()
        .filter(|(_, v)| v.as_str() != Some("identical"))
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    anyhow::ensure!(
        differing.is_empty(),
        "round {round}: read models differ from a rebuild: {differing:?}"
    );
    Ok(())
}

/// Fails if the server's log (every start) has a panic.
pub fn panics_in(log: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let panics: Vec<&str> = text.lines().filter(|l| l.contains("panicked")).collect();
    anyhow::ensure!(panics.is_empty(), "the server panicked: {panics:?}");
    Ok(())
}

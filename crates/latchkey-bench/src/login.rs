//! Sign-ins/s over HTTP (challenge + ssh signature + token, N concurrent clients, each
//! with its own Ed25519 key, against a real server with rate limits off) beside the
//! ceiling: raw SSHSIG verifications/s with the same code on all cores.

use crate::client::{self, Identity};
use crate::report::{Better, Report};
use crate::server::Server;
use crate::stats::summarize;
use latchkey_domain::sshkey::{parse_public_key, verify_signature};
use std::path::Path;
use std::time::Instant;

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

/// Runs the scenario.
pub fn run(seconds: f64, clients: usize, bin: &Path, report: &mut Report) -> anyhow::Result<()> {
    let server = Server::start(bin, &["--no-rate-limit"])?;
    let url = server.url().to_string();
    eprintln!("login: {clients} clients, {seconds} s, against {url}");
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || -> anyhow::Result<Vec<f64>> {
                let agent = client::agent();
                let id = Identity::generate()?;
                client::sign_in(&agent, &url, &id)?; // registers the user
                let mut lat = Vec::new();
                let started = Instant::now();
                while started.elapsed().as_secs_f64() < seconds {
                    let t = Instant::now();
                    client::sign_in(&agent, &url, &id)?;
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                Ok(lat)
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        match h.join() {
            Ok(Ok(l)) => all.extend(l),
            Ok(Err(e)) => anyhow::bail!("a client failed: {e}"),
            Err(_) => anyhow::bail!("a client panicked"),
        }
    }
    drop(server);
    let rate = all.len() as f64 / seconds;
    let lat = summarize(&mut all);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let ceiling = raw_verify(cores, seconds)?;
    report.add(
        &format!("login sign-ins/s, {clients} clients"),
        rate,
        &format!("raw SSHSIG verify, {cores} threads"),
        ceiling,
        "per s",
    );
    report.push(
        "login latency p50 (challenge + token)",
        lat.p50,
        "none (absolute)",
        None,
        "ms",
        Better::Lower,
    );
    report.push(
        "login latency p99 (challenge + token)",
        lat.p99,
        "none (absolute)",
        None,
        "ms",
        Better::Lower,
    );
    Ok(())
}

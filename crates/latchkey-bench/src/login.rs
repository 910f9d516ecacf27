//! Sign-ins/s over HTTP (challenge + ssh signature + token, N concurrent clients, each
//! with its own Ed25519 key, against a real server) beside the ceiling: raw SSHSIG
//! verifications/s with the same code on all cores.

use crate::report::Report;
use crate::server::{latchkey_bin, Server};
use latchkey_domain::sshkey::{parse_public_key, verify_signature};
use latchkey_proto::{ChallengeResponse, TokenResponse};
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn sign(key: &PrivateKey, message: &str) -> anyhow::Result<String> {
    Ok(key
        .sign("latchkey-auth", HashAlg::Sha512, message.as_bytes())?
        .to_pem(LineEnding::LF)?)
}

fn sign_in(agent: &ureq::Agent, url: &str, key: &PrivateKey, public: &str) -> anyhow::Result<()> {
    let ch: ChallengeResponse = agent
        .post(&format!("{url}/api/native/challenge"))
        .send_json(serde_json::json!({ "public_key": public }))?
        .into_json()?;
    let signature = sign(key, &ch.message)?;
    let _: TokenResponse = agent
        .post(&format!("{url}/api/native/token"))
        .send_json(serde_json::json!({ "challenge_id": ch.challenge_id, "signature": signature }))?
        .into_json()?;
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// Raw SSHSIG verifications/s on `threads` threads.
fn raw_verify(threads: usize, seconds: f64) -> anyhow::Result<f64> {
    let key = PrivateKey::random(&mut rand::rngs::OsRng, Algorithm::Ed25519)?;
    let public = parse_public_key(&key.public_key().to_openssh()?)?;
    let message = "latchkey-auth-v1\nserver=bench\n";
    let sig = sign(&key, message)?;
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
pub fn run(
    seconds: f64,
    clients: usize,
    bin: Option<PathBuf>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let bin = latchkey_bin(bin)?;
    let server = Server::start(&bin, &[])?;
    let url = server.url().to_string();
    eprintln!("login: {clients} clients against {url}");
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || -> anyhow::Result<Vec<Duration>> {
                let agent = ureq::AgentBuilder::new().build();
                let key = PrivateKey::random(&mut rand::rngs::OsRng, Algorithm::Ed25519)?;
                let public = key.public_key().to_openssh()?;
                sign_in(&agent, &url, &key, &public)?; // registers the user
                let mut lat = Vec::new();
                let started = Instant::now();
                while started.elapsed().as_secs_f64() < seconds {
                    let t = Instant::now();
                    sign_in(&agent, &url, &key, &public)?;
                    lat.push(t.elapsed());
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
    all.sort();
    let rate = all.len() as f64 / seconds;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let ceiling = raw_verify(cores, seconds)?;
    report.add(
        &format!(
            "login, {clients} clients (p50 {:.1} ms, p99 {:.1} ms)",
            percentile(&all, 0.5),
            percentile(&all, 0.99)
        ),
        rate,
        &format!("raw SSHSIG verify, {cores} threads"),
        ceiling,
        "per s",
    );
    Ok(())
}

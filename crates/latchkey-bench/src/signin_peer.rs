//! The stateless sign-in peer: an actix-web server inside the bench that answers the same
//! `POST /api/native/challenge` and `POST /api/native/token` JSON as latchkey and verifies
//! the same SSHSIG over the same message bytes (`latchkey_domain::sshkey::verify_signature`,
//! ssh-key's `SshSig` verify, namespace `latchkey-auth`), with no log, no actors and no
//! state. It is the ceiling of "HTTP + verify" for the sign-in figure.
//!
//! Stateless: the challenge id carries the index of the pre-registered key (its first 8
//! bytes) and the nonce is SHA-256 of a per-run secret and the id, so `/token` rebuilds the
//! message from the request alone. It must not be used for anything but measuring.

use actix_web::{web, App, HttpResponse, HttpServer};
use latchkey_domain::challenge::{build_message, encode_nonce, NAMESPACE};
use latchkey_domain::sshkey::{parse_public_key, verify_signature};
use latchkey_domain::{PairingId, SshPublicKey, Timestamp};
use latchkey_proto::{
    ChallengeRequest, ChallengeResponse, TokenKind, TokenRequest, TokenResponse, UserRef,
};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use uuid::Uuid;

/// The listen backlog, as latchkey's (`latchkey-server`'s `app.rs`).
const LISTEN_BACKLOG: u32 = 4096;

/// The `server=` line of the peer's messages.
const SERVER: &str = "bench-peer";

/// What every worker shares, read-only.
struct Keys {
    by_fingerprint: HashMap<String, u64>,
    keys: Vec<SshPublicKey>,
    secret: [u8; 32],
    expires: Timestamp,
}

impl Keys {
    fn nonce(&self, id: &Uuid) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(id.as_bytes());
        h.finalize().into()
    }

    fn message(&self, id: Uuid, fingerprint: &str) -> String {
        build_message(
            SERVER,
            PairingId(id),
            &self.nonce(&id),
            fingerprint,
            self.expires,
        )
    }
}

fn refuse(code: &str) -> HttpResponse {
    HttpResponse::Unauthorized().json(serde_json::json!({"error": code, "message": code}))
}

async fn challenge(keys: web::Data<Keys>, req: web::Json<ChallengeRequest>) -> HttpResponse {
    let Ok(key) = parse_public_key(&req.public_key) else {
        return HttpResponse::BadRequest()
            .json(serde_json::json!({"error": "invalid_key", "message": "bad key"}));
    };
    let index = keys
        .by_fingerprint
        .get(&key.fingerprint)
        .copied()
        .unwrap_or(u64::MAX);
    let mut bytes: [u8; 16] = rand::random();
    bytes[..8].copy_from_slice(&index.to_be_bytes());
    let id = Uuid::from_bytes(bytes);
    HttpResponse::Created().json(ChallengeResponse {
        challenge_id: id.as_hyphenated().to_string(),
        nonce: encode_nonce(&keys.nonce(&id)),
        message: keys.message(id, &key.fingerprint),
        namespace: NAMESPACE.into(),
        expires_at: "2100-01-01T00:00:00Z".into(),
        expires_in: 300,
    })
}

async fn token(keys: web::Data<Keys>, req: web::Json<TokenRequest>) -> HttpResponse {
    let Ok(id) = req.challenge_id.parse::<Uuid>() else {
        return refuse("invalid_challenge");
    };
    let mut index = [0u8; 8];
    index.copy_from_slice(&id.as_bytes()[..8]);
    let Some(key) = keys.keys.get(u64::from_be_bytes(index) as usize) else {
        return refuse("unknown_key");
    };
    let message = keys.message(id, &key.fingerprint);
    if verify_signature(key, message.as_bytes(), &req.signature).is_err() {
        return refuse("invalid_signature");
    }
    let secret: [u8; 24] = rand::random();
    HttpResponse::Ok().json(TokenResponse {
        token: format!("lks_{}", hex_of(&secret)),
        token_id: Uuid::new_v4().to_string(),
        kind: TokenKind::Session,
        expires_at: None,
        user: UserRef {
            id: Uuid::from_u64_pair(0, u64::from_be_bytes(index)).to_string(),
            handle: "peer".into(),
        },
        registered: false,
    })
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A running peer; stopped on drop.
pub struct Peer {
    url: String,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Peer {
    /// Starts the peer on a loopback port with `workers` actix workers, knowing `keys`
    /// (OpenSSH public key lines) as registered users.
    pub fn start(workers: usize, keys: &[String]) -> anyhow::Result<Self> {
        let keys: Vec<SshPublicKey> = keys
            .iter()
            .map(|k| parse_public_key(k))
            .collect::<Result<_, _>>()?;
        let shared = web::Data::new(Keys {
            by_fingerprint: keys
                .iter()
                .enumerate()
                .map(|(i, k)| (k.fingerprint.clone(), i as u64))
                .collect(),
            keys,
            secret: rand::random(),
            expires: Timestamp(4_102_444_800_000),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let sys = actix_web::rt::System::new();
            let run = sys.block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(shared.clone())
                        .route("/api/native/challenge", web::post().to(challenge))
                        .route("/api/native/token", web::post().to(token))
                })
                .workers(workers.max(1))
                // latchkey's listen backlog (`serve` sets it; std's bind would give 128,
                // which a burst of hundreds of connects overflows into 1 s SYN resends).
                .backlog(LISTEN_BACKLOG)
                .bind(("127.0.0.1", 0))?;
                let addr = server.addrs().first().copied();
                let server = server.run();
                let _ = tx.send((server.handle(), addr));
                server.await
            });
            if let Err(e) = run {
                eprintln!("sign-in peer stopped: {e}");
            }
        });
        let (handle, addr) = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .map_err(|_| anyhow::anyhow!("the sign-in peer did not start"))?;
        let addr = addr.ok_or_else(|| anyhow::anyhow!("the sign-in peer bound no address"))?;
        Ok(Self {
            url: format!("http://{addr}"),
            handle,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // The handle's future finishes the stop; the server thread then returns.
        let stop = self.handle.stop(false);
        std::mem::drop(stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

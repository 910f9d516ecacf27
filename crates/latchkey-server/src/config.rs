//! `ServerConfig`: everything `latchkey serve` needs, filled from flags and `LATCHKEY_*`.

use crate::client_ip::TrustedProxies;
use crate::limits::LimitConfig;
use latchkey_actors::{IpRetention, Registration};
use std::path::PathBuf;
use std::time::Duration;

/// How logs are written to stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// The server's settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub bind: String,
    /// The data dir (created when missing).
    pub data_dir: PathBuf,
    /// Open or closed registration.
    pub registration: Registration,
    /// The public origin, used as the `server=` line; the server id when unset.
    pub public_url: Option<String>,
    /// Log format.
    pub log_format: LogFormat,
    /// How much of client IPs is stored.
    pub ip_retention: IpRetention,
    /// Challenge lifetime.
    pub challenge_ttl: Duration,
    /// Session lifetime.
    pub session_ttl: Duration,
    /// How long terminal pairings stay in the log before the scheduled compaction drops
    /// them (`None`: never compact).
    pub retain_pairings: Option<Duration>,
    /// HTTP worker threads (0: one per core).
    pub workers: usize,
    /// Rate limits (`LimitConfig::disabled()` for `--no-rate-limit`).
    pub limits: LimitConfig,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: TrustedProxies,
    /// Oldest WebSocket `resume`, in events behind the head.
    pub resume_window: u64,
    /// `nats://HOST:PORT[,...]`: the log lives in a JetStream stream shared by every node
    /// (DESIGN §11), and `data_dir` holds this node's copy and read models. `None`: sled.
    pub store: Option<String>,
    /// Replicas of the JetStream stream when this node creates it.
    pub store_replicas: usize,
    /// Events between two snapshots of a user or room stream (0: none), DESIGN §15.
    pub snapshot_every: u64,
    /// The sled page cache, in bytes: an upper bound on the memory the store keeps of
    /// pages it has read or written (DESIGN §9; default 256 MiB).
    pub cache_bytes: u64,
    /// Test-only (`serve --test-clock`): run on a manual clock that starts at the real
    /// time and moves only through `POST /api/test/clock`. Never on by default.
    pub test_clock: bool,
}

impl ServerConfig {
    /// Defaults of DESIGN §9 for a data dir.
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            data_dir,
            registration: Registration::Open,
            public_url: None,
            log_format: LogFormat::Pretty,
            ip_retention: IpRetention::Truncated,
            challenge_ttl: Duration::from_secs(60),
            session_ttl: Duration::from_secs(30 * 24 * 3600),
            retain_pairings: Some(Duration::from_secs(30 * 24 * 3600)),
            workers: 0,
            limits: LimitConfig::default(),
            trusted_proxies: TrustedProxies::none(),
            resume_window: crate::routes::ws::RESUME_WINDOW,
            store: None,
            store_replicas: 1,
            snapshot_every: 500,
            cache_bytes: latchkey_store::StoreOptions::default().cache_capacity,
            test_clock: false,
        }
    }
}

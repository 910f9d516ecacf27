//! `CoreConfig`: the core's settings, with the clock and entropy it is given, and the two
//! policies (`Registration`, `IpRetention`) the server's flags choose.

use crate::clock::{Entropy, OsEntropy, SharedClock, SystemClock};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// Whether a valid signature by an unknown key creates a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Registration {
    /// Yes: the first sign-in registers the key's holder.
    Open,
    /// No: unknown keys get `key_unknown`.
    Closed,
}

/// How much of a client IP is stored in events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpRetention {
    /// Nothing.
    None,
    /// IPv4 to /24, IPv6 to /48 (the default).
    Truncated,
    /// The whole address.
    Full,
}

impl IpRetention {
    /// Applies the policy to an address.
    pub fn apply(&self, ip: Option<IpAddr>) -> Option<IpAddr> {
        match (self, ip) {
            (IpRetention::None, _) | (_, None) => None,
            (IpRetention::Full, ip) => ip,
            (IpRetention::Truncated, Some(IpAddr::V4(v4))) => {
                let o = v4.octets();
                Some(IpAddr::from([o[0], o[1], o[2], 0]))
            }
            (IpRetention::Truncated, Some(IpAddr::V6(v6))) => {
                let mut s = v6.segments();
                s[3..].iter_mut().for_each(|x| *x = 0);
                Some(IpAddr::from(s))
            }
        }
    }
}

/// Settings of the core.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// The `server=` line of challenges: the public URL, or the server id.
    pub server: String,
    /// Open or closed registration.
    pub registration: Registration,
    /// Challenge lifetime.
    pub challenge_ttl: Duration,
    /// Session token lifetime.
    pub session_ttl: Duration,
    /// How much of client IPs to keep.
    pub ip_retention: IpRetention,
    /// Bound of each entity mailbox.
    pub mailbox: usize,
    /// How long a handler waits for its own events to be projected before answering 503.
    pub projection_timeout: Duration,
    /// Entity arbiters (threads); 0 means one per core.
    pub arbiters: usize,
    /// How often the sweeper looks for lapsed challenges and tokens.
    pub sweep_every: Duration,
    /// Bound of each WebSocket connection's queue of pending event frames.
    pub ws_queue: usize,
    /// A user or room entity snapshots its state every this many events (0: never), so a
    /// long stream rehydrates from the snapshot plus the tail (DESIGN §15).
    pub snapshot_every: u64,
    /// Every read of time: the system clock, or a `ManualClock` in tests.
    pub clock: SharedClock,
    /// Every secret random value (token secrets, nonces): the OS CSPRNG by default.
    pub entropy: Arc<dyn Entropy>,
}

impl CoreConfig {
    /// Defaults of DESIGN §6 for a server line, on the system clock and the OS CSPRNG.
    pub fn new(server: String) -> Self {
        Self {
            server,
            registration: Registration::Open,
            challenge_ttl: Duration::from_secs(60),
            session_ttl: Duration::from_secs(30 * 24 * 3600),
            ip_retention: IpRetention::Truncated,
            mailbox: 256,
            projection_timeout: Duration::from_secs(10),
            arbiters: 0,
            sweep_every: Duration::from_secs(1),
            ws_queue: 1024,
            snapshot_every: 500,
            clock: SystemClock::shared(),
            entropy: Arc::new(OsEntropy),
        }
    }
}

//! Rate limits (DESIGN §9): one keyed GCRA limiter (`governor`) per limited action, their
//! default numbers, and the 429 `rate_limited` answer with `Retry-After`. It decides only
//! "may this key act now"; which address a request comes from is `client_ip`'s job, and
//! wiring a limit to a route is the route's.
//!
//! # Keys
//! - Per client IP: challenge, token, failed bearer auth, ws-ticket, WS connect, device
//!   init, device poll ([`IpLimit`], plus the failed-auth pair of methods).
//!   An IPv6 client is keyed by its /64, because one host is routinely handed a whole /64
//!   and could otherwise mint a fresh key per request; an IPv4-mapped IPv6 address counts
//!   as its IPv4 form.
//! - Per string ([`StrLimit`]): the key fingerprint on `POST /api/native/token`, counting
//!   failed sign-ins only (so a valid signature is never refused by it, whatever others
//!   send for the same public key); the user id for message posts; and the user id for
//!   every other route that writes ([`StrLimit::WritePerUser`], applied by the credential
//!   extractors in `auth.rs` to every authenticated request whose method writes).
//!
//! # Failed bearer auth
//! Only failures cost anything, but an address that has run out is refused *before* its
//! token is looked up. Governor has no "peek", so the limiter is charged on failure
//! ([`Limits::charge_failed_auth`]) and, when a charge is refused, the address goes on a
//! block list until the limiter would accept it again. [`Limits::peek_failed_auth`] only
//! reads that list, so it costs nothing to a well-behaved client. The order in the auth
//! extractor is therefore:
//!
//! ```text
//! limits.peek_failed_auth(ip)?;            // 429 without a lookup if blocked
//! match lookup(token) {
//!     Ok(authed) => Ok(authed),            // success is free
//!     Err(e) => {
//!         limits.charge_failed_auth(ip)?;  // 429 if this failure used up the budget
//!         Err(e)                           // 401 otherwise
//!     }
//! }
//! ```
//!
//! # Memory
//! Each limiter holds one small state per key it has seen. [`Limits::retain_recent`] drops
//! every key whose state is back to fresh (and expired block-list entries); the server calls
//! it once a minute from a background task.

use crate::error::ApiError;
use dashmap::DashMap;
use governor::clock::{Clock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{NotUntil, Quota, RateLimiter};
use latchkey_actors::clock::SharedClock;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::time::Duration;

/// A sustained rate and a burst: `burst` requests may arrive at once, after which one more
/// is allowed every `60 / per_minute` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per minute, sustained.
    pub per_minute: NonZeroU32,
    /// Requests allowed back to back before the sustained rate applies.
    pub burst: NonZeroU32,
}

impl Rate {
    /// A rate of `per_minute` with a burst of `burst`.
    pub const fn new(per_minute: NonZeroU32, burst: NonZeroU32) -> Self {
        Self { per_minute, burst }
    }

    /// A rate from plain numbers (a flag, a config file); zero is refused.
    pub fn try_new(per_minute: u32, burst: u32) -> Result<Self, String> {
        match (NonZeroU32::new(per_minute), NonZeroU32::new(burst)) {
            (Some(per_minute), Some(burst)) => Ok(Self { per_minute, burst }),
            _ => Err(format!(
                "a rate limit needs a positive rate and burst, not {per_minute}/min burst {burst}; \
                 use --no-rate-limit to turn limits off"
            )),
        }
    }

    fn quota(self) -> Quota {
        Quota::per_minute(self.per_minute).allow_burst(self.burst)
    }
}

/// `NonZeroU32` for the literal defaults below. A zero would become 1; there is none, and a
/// test pins every default.
const fn nz(n: u32) -> NonZeroU32 {
    match NonZeroU32::new(n) {
        Some(n) => n,
        None => NonZeroU32::MIN,
    }
}

/// `POST /api/native/challenge`, per client IP: 30 per minute, burst 10.
pub const CHALLENGE_PER_IP: Rate = Rate::new(nz(30), nz(10));
/// `POST /api/native/token`, per client IP: 30 per minute, burst 10.
pub const TOKEN_PER_IP: Rate = Rate::new(nz(30), nz(10));
/// Failed `POST /api/native/token` attempts, per key fingerprint (whoever sends them): 10 per
/// minute, burst 5. Only failures are counted, and only for a challenge that could still be
/// redeemed; a valid signature is never refused by this limit.
pub const TOKEN_FAILURES_PER_KEY: Rate = Rate::new(nz(10), nz(5));
/// Failed bearer authentication (any route), per client IP: 60 per minute, burst 20.
/// Successful authentication is not counted.
pub const FAILED_AUTH_PER_IP: Rate = Rate::new(nz(60), nz(20));
/// `POST /api/native/ws-ticket`, per client IP: 60 per minute, burst 20.
pub const WS_TICKET_PER_IP: Rate = Rate::new(nz(60), nz(20));
/// `GET /api/native/ws` (the upgrade), per client IP: 60 per minute, burst 20.
pub const WS_CONNECT_PER_IP: Rate = Rate::new(nz(60), nz(20));
/// `POST /api/native/rooms/{id}/messages`, per user: 120 per minute, burst 30.
pub const POST_PER_USER: Rate = Rate::new(nz(120), nz(30));
/// Every other authenticated request that writes (POST, PUT, PATCH, DELETE), per user:
/// 60 per minute, burst 30 (DESIGN §9).
pub const WRITE_PER_USER: Rate = Rate::new(nz(60), nz(30));
/// Starting a device authorization (RFC 8628 device code request), per client IP:
/// 10 per minute, burst 5.
pub const DEVICE_INIT_PER_IP: Rate = Rate::new(nz(10), nz(5));
/// Polling for a device token, per client IP: 60 per minute, burst 20 (a device polls every
/// 5 s, so this leaves room for several devices behind one address).
pub const DEVICE_POLL_PER_IP: Rate = Rate::new(nz(60), nz(20));

/// Looking up, approving or denying a device request by its user code, per client IP:
/// 20 per minute, burst 10 (RFC 8628 §5.1; see `proto-docs/pairing.md` for the budget).
pub const DEVICE_LOOKUP_PER_IP: Rate = Rate::new(nz(20), nz(10));
/// The same, per signed-in user: 20 per minute, burst 10.
pub const DEVICE_LOOKUP_PER_USER: Rate = Rate::new(nz(20), nz(10));

/// Every limit's rate, and whether limits apply at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitConfig {
    /// False for `--no-rate-limit`: every check passes and nothing is stored.
    pub enabled: bool,
    /// [`IpLimit::Challenge`]; default [`CHALLENGE_PER_IP`].
    pub challenge_per_ip: Rate,
    /// [`IpLimit::Token`]; default [`TOKEN_PER_IP`].
    pub token_per_ip: Rate,
    /// [`StrLimit::TokenFailuresPerKey`]; default [`TOKEN_FAILURES_PER_KEY`].
    pub token_per_key: Rate,
    /// Failed bearer auth; default [`FAILED_AUTH_PER_IP`].
    pub failed_auth_per_ip: Rate,
    /// [`IpLimit::WsTicket`]; default [`WS_TICKET_PER_IP`].
    pub ws_ticket_per_ip: Rate,
    /// [`IpLimit::WsConnect`]; default [`WS_CONNECT_PER_IP`].
    pub ws_connect_per_ip: Rate,
    /// [`StrLimit::PostPerUser`]; default [`POST_PER_USER`].
    pub post_per_user: Rate,
    /// [`StrLimit::WritePerUser`]; default [`WRITE_PER_USER`].
    pub write_per_user: Rate,
    /// [`IpLimit::DeviceInit`]; default [`DEVICE_INIT_PER_IP`].
    pub device_init_per_ip: Rate,
    /// [`IpLimit::DevicePoll`]; default [`DEVICE_POLL_PER_IP`].
    pub device_poll_per_ip: Rate,
    /// [`IpLimit::DeviceLookup`]; default [`DEVICE_LOOKUP_PER_IP`].
    pub device_lookup_per_ip: Rate,
    /// [`StrLimit::DeviceLookupPerUser`]; default [`DEVICE_LOOKUP_PER_USER`].
    pub device_lookup_per_user: Rate,
}

impl Default for LimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            challenge_per_ip: CHALLENGE_PER_IP,
            token_per_ip: TOKEN_PER_IP,
            token_per_key: TOKEN_FAILURES_PER_KEY,
            failed_auth_per_ip: FAILED_AUTH_PER_IP,
            ws_ticket_per_ip: WS_TICKET_PER_IP,
            ws_connect_per_ip: WS_CONNECT_PER_IP,
            post_per_user: POST_PER_USER,
            write_per_user: WRITE_PER_USER,
            device_init_per_ip: DEVICE_INIT_PER_IP,
            device_poll_per_ip: DEVICE_POLL_PER_IP,
            device_lookup_per_ip: DEVICE_LOOKUP_PER_IP,
            device_lookup_per_user: DEVICE_LOOKUP_PER_USER,
        }
    }
}

impl LimitConfig {
    /// `--no-rate-limit`: the defaults, switched off.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }
}

/// A limit keyed by client IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpLimit {
    /// `POST /api/native/challenge`.
    Challenge,
    /// `POST /api/native/token`.
    Token,
    /// `POST /api/native/ws-ticket`.
    WsTicket,
    /// `GET /api/native/ws`.
    WsConnect,
    /// Starting a device authorization.
    DeviceInit,
    /// Polling for a device token.
    DevicePoll,
    /// Looking up, approving or denying a device request by user code.
    DeviceLookup,
}

impl IpLimit {
    /// What is counted, for the 429 message.
    fn what(self) -> &'static str {
        match self {
            Self::Challenge => "challenge requests",
            Self::Token => "token requests",
            Self::WsTicket => "ws-ticket requests",
            Self::WsConnect => "WebSocket connections",
            Self::DeviceInit => "device authorization requests",
            Self::DevicePoll => "device token polls",
            Self::DeviceLookup => "device code lookups",
        }
    }
}

/// A limit keyed by a string the caller supplies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrLimit {
    /// A failed `POST /api/native/token`, keyed by the key's fingerprint (`SHA256:...`).
    TokenFailuresPerKey,
    /// Posting a message, keyed by the sender's user id.
    PostPerUser,
    /// Any other authenticated write, keyed by the user id.
    WritePerUser,
    /// Device user-code lookups, keyed by the signed-in user's id.
    DeviceLookupPerUser,
}

impl StrLimit {
    /// What is counted and per what, for the 429 message.
    fn what(self) -> &'static str {
        match self {
            Self::TokenFailuresPerKey => "failed sign-ins for this key",
            Self::PostPerUser => "messages from this user",
            Self::WritePerUser => "changes by this user",
            Self::DeviceLookupPerUser => "device code lookups by this user",
        }
    }
}

/// The limiters' clock: the core's injected clock, read through its monotonic side, so a
/// test that moves a manual clock moves every limiter with it.
#[derive(Clone, Debug)]
pub struct CoreClock(SharedClock);

impl CoreClock {
    /// The limiters' view of `clock`.
    pub fn new(clock: SharedClock) -> Self {
        Self(clock)
    }
}

impl Clock for CoreClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// A keyed limiter on the clock `C`.
type Keyed<K, C> = RateLimiter<K, DashMapStateStore<K>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// Every rate limiter of the server; share one behind `web::Data`.
///
/// `C` is the clock: the core's clock in the server (the system clock, or the manual one
/// of `serve --test-clock`), `governor::clock::FakeRelativeClock` in unit tests, so that
/// recovery is tested without sleeping.
#[derive(Debug)]
pub struct Limits<C: Clock = CoreClock> {
    /// `None` when limits are off.
    on: Option<Enabled<C>>,
}

#[derive(Debug)]
struct Enabled<C: Clock> {
    clock: C,
    challenge: Keyed<IpAddr, C>,
    token: Keyed<IpAddr, C>,
    ws_ticket: Keyed<IpAddr, C>,
    ws_connect: Keyed<IpAddr, C>,
    device_init: Keyed<IpAddr, C>,
    device_poll: Keyed<IpAddr, C>,
    device_lookup: Keyed<IpAddr, C>,
    device_lookup_per_user: Keyed<String, C>,
    token_per_key: Keyed<String, C>,
    post_per_user: Keyed<String, C>,
    write_per_user: Keyed<String, C>,
    failed_auth: Keyed<IpAddr, C>,
    /// Addresses whose failed-auth budget ran out, and when the limiter will take them back.
    /// Read on every bearer request, so a concurrent map and not one mutex.
    blocked: DashMap<IpAddr, C::Instant>,
}

impl Limits<CoreClock> {
    /// The limits of `config`, on the core's clock.
    pub fn new(config: &LimitConfig, clock: SharedClock) -> Self {
        Self::with_clock(config, CoreClock::new(clock))
    }

    /// No limits at all (`--no-rate-limit`).
    pub fn disabled() -> Self {
        Self { on: None }
    }
}

impl<C: Clock + Clone> Limits<C> {
    /// The limits of `config`, on `clock`.
    pub fn with_clock(config: &LimitConfig, clock: C) -> Self {
        if !config.enabled {
            return Self { on: None };
        }
        let ip = |rate: Rate| Keyed::<IpAddr, C>::dashmap_with_clock(rate.quota(), clock.clone());
        let s = |rate: Rate| Keyed::<String, C>::dashmap_with_clock(rate.quota(), clock.clone());
        let on = Enabled {
            challenge: ip(config.challenge_per_ip),
            token: ip(config.token_per_ip),
            ws_ticket: ip(config.ws_ticket_per_ip),
            ws_connect: ip(config.ws_connect_per_ip),
            device_init: ip(config.device_init_per_ip),
            device_poll: ip(config.device_poll_per_ip),
            device_lookup: ip(config.device_lookup_per_ip),
            device_lookup_per_user: s(config.device_lookup_per_user),
            token_per_key: s(config.token_per_key),
            post_per_user: s(config.post_per_user),
            write_per_user: s(config.write_per_user),
            failed_auth: ip(config.failed_auth_per_ip),
            blocked: DashMap::new(),
            clock,
        };
        Self { on: Some(on) }
    }

    /// True unless built from [`LimitConfig::disabled`].
    pub fn is_enabled(&self) -> bool {
        self.on.is_some()
    }

    /// Counts one `kind` request from `ip`; a 429 `rate_limited` with `Retry-After` when
    /// `ip` is over the limit (the refused request is not counted).
    pub fn check(&self, kind: IpLimit, ip: &IpAddr) -> Result<(), ApiError> {
        let Some(on) = &self.on else {
            return Ok(());
        };
        let limiter = match kind {
            IpLimit::Challenge => &on.challenge,
            IpLimit::Token => &on.token,
            IpLimit::WsTicket => &on.ws_ticket,
            IpLimit::WsConnect => &on.ws_connect,
            IpLimit::DeviceInit => &on.device_init,
            IpLimit::DevicePoll => &on.device_poll,
            IpLimit::DeviceLookup => &on.device_lookup,
        };
        limiter
            .check_key(&ip_key(*ip))
            .map_err(|nu| on.refuse(&nu, kind.what(), " from this address"))
    }

    /// Counts one `kind` request for `key` (a fingerprint, a user id); a 429 as in
    /// [`Self::check`].
    pub fn check_str(&self, kind: StrLimit, key: &str) -> Result<(), ApiError> {
        let Some(on) = &self.on else {
            return Ok(());
        };
        let limiter = match kind {
            StrLimit::TokenFailuresPerKey => &on.token_per_key,
            StrLimit::PostPerUser => &on.post_per_user,
            StrLimit::WritePerUser => &on.write_per_user,
            StrLimit::DeviceLookupPerUser => &on.device_lookup_per_user,
        };
        limiter
            .check_key(&key.to_owned())
            .map_err(|nu| on.refuse(&nu, kind.what(), ""))
    }

    /// Before a bearer token is looked up: a 429 if failed authentications from `ip` have
    /// used up their budget and it has not recovered yet. Counts nothing.
    pub fn peek_failed_auth(&self, ip: &IpAddr) -> Result<(), ApiError> {
        let Some(on) = &self.on else {
            return Ok(());
        };
        let key = ip_key(*ip);
        // Copy the instant out: a DashMap guard must not be held across a remove.
        let Some(until) = on.blocked.get(&key).map(|r| *r) else {
            return Ok(());
        };
        let now = on.clock.now();
        if until > now {
            let wait: Duration = until.duration_since(now).into();
            return Err(failed_auth_error(wait));
        }
        on.blocked.remove_if(&key, |_, u| *u <= now);
        Ok(())
    }

    /// After a bearer token was refused: counts one failure for `ip`. A 429 when this
    /// failure used up the budget; the caller answers it instead of its 401, and
    /// [`Self::peek_failed_auth`] refuses `ip` until the budget recovers.
    pub fn charge_failed_auth(&self, ip: &IpAddr) -> Result<(), ApiError> {
        let Some(on) = &self.on else {
            return Ok(());
        };
        let key = ip_key(*ip);
        match on.failed_auth.check_key(&key) {
            Ok(()) => Ok(()),
            Err(nu) => {
                on.blocked.insert(key, nu.earliest_possible());
                Err(failed_auth_error(nu.wait_time_from(on.clock.now())))
            }
        }
    }

    /// Drops every key whose limiter state is back to fresh, and every expired block; call
    /// it once a minute so that memory follows the active clients, not all clients ever.
    pub fn retain_recent(&self) {
        let Some(on) = &self.on else {
            return;
        };
        for limiter in on.ip_limiters() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        for limiter in [
            &on.token_per_key,
            &on.post_per_user,
            &on.write_per_user,
            &on.device_lookup_per_user,
        ] {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        let now = on.clock.now();
        on.blocked.retain(|_, until| *until > now);
        on.blocked.shrink_to_fit();
    }

    /// How many keys are held over all limiters and the block list (for metrics and tests;
    /// may be slightly stale under concurrent use).
    pub fn len_keys(&self) -> usize {
        let Some(on) = &self.on else {
            return 0;
        };
        on.ip_limiters().iter().map(|l| l.len()).sum::<usize>()
            + on.token_per_key.len()
            + on.post_per_user.len()
            + on.write_per_user.len()
            + on.device_lookup_per_user.len()
            + on.blocked.len()
    }
}

impl<C: Clock> Enabled<C> {
    fn ip_limiters(&self) -> [&Keyed<IpAddr, C>; 8] {
        [
            &self.challenge,
            &self.token,
            &self.ws_ticket,
            &self.ws_connect,
            &self.device_init,
            &self.device_poll,
            &self.device_lookup,
            &self.failed_auth,
        ]
    }

    /// The 429 for a refused check.
    fn refuse(&self, nu: &NotUntil<C::Instant>, what: &str, per: &str) -> ApiError {
        let secs = retry_secs(nu.wait_time_from(self.clock.now()));
        ApiError::rate_limited(secs, format!("too many {what}{per}; retry in {secs} s"))
    }
}

fn failed_auth_error(wait: Duration) -> ApiError {
    let secs = retry_secs(wait);
    ApiError::rate_limited(
        secs,
        format!("too many failed authentications from this address; retry in {secs} s"),
    )
}

/// Whole seconds, rounded up, at least 1: `Retry-After: 0` would invite an instant retry
/// that is still refused.
fn retry_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// The limiter key for a client address: IPv4 as is (IPv4-mapped IPv6 included), IPv6
/// truncated to its /64.
fn ip_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::RETRY_AFTER;
    use actix_web::http::StatusCode;
    use actix_web::ResponseError;
    use governor::clock::FakeRelativeClock;
    use latchkey_proto::codes;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn rate(per_minute: u32, burst: u32) -> Rate {
        Rate::try_new(per_minute, burst).unwrap()
    }

    fn small() -> (Limits<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let config = LimitConfig {
            challenge_per_ip: rate(30, 3),
            failed_auth_per_ip: rate(60, 2),
            token_per_key: rate(10, 2),
            post_per_user: rate(120, 2),
            ..LimitConfig::default()
        };
        (Limits::with_clock(&config, clock.clone()), clock)
    }

    fn retry_after(e: &ApiError) -> u64 {
        let res = e.error_response();
        res.headers()
            .get(RETRY_AFTER)
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    fn assert_429(e: &ApiError, min_secs: u64, max_secs: u64) {
        assert_eq!(e.status_code(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.code(), codes::RATE_LIMITED);
        let secs = retry_after(e);
        assert!((min_secs..=max_secs).contains(&secs), "Retry-After {secs}");
    }

    #[test]
    fn defaults_are_the_documented_numbers() {
        let c = LimitConfig::default();
        let pairs = [
            (c.challenge_per_ip, 30, 10),
            (c.token_per_ip, 30, 10),
            (c.token_per_key, 10, 5),
            (c.failed_auth_per_ip, 60, 20),
            (c.ws_ticket_per_ip, 60, 20),
            (c.ws_connect_per_ip, 60, 20),
            (c.post_per_user, 120, 30),
            (c.device_init_per_ip, 10, 5),
            (c.device_poll_per_ip, 60, 20),
            (c.device_lookup_per_ip, 20, 10),
            (c.device_lookup_per_user, 20, 10),
        ];
        for (r, per_minute, burst) in pairs {
            assert_eq!((r.per_minute.get(), r.burst.get()), (per_minute, burst));
        }
        assert!(c.enabled);
        assert!(!LimitConfig::disabled().enabled);
        assert!(Rate::try_new(0, 5).is_err());
        assert!(Rate::try_new(5, 0).is_err());
    }

    #[test]
    fn burst_beyond_the_limit_is_refused_with_retry_after() {
        let (limits, _clock) = small();
        let a = ip("198.51.100.4");
        for _ in 0..3 {
            limits.check(IpLimit::Challenge, &a).unwrap();
        }
        let e = limits.check(IpLimit::Challenge, &a).unwrap_err();
        // 30/min: one cell every 2 s.
        assert_429(&e, 1, 2);
        assert!(e.to_string().contains("challenge requests"), "{e}");
    }

    #[test]
    fn default_burst_then_refusal() {
        let limits = Limits::with_clock(&LimitConfig::default(), FakeRelativeClock::default());
        let a = ip("198.51.100.4");
        for _ in 0..10 {
            limits.check(IpLimit::Token, &a).unwrap();
        }
        assert_429(&limits.check(IpLimit::Token, &a).unwrap_err(), 1, 2);
    }

    #[test]
    fn recovers_after_the_clock_advances() {
        let (limits, clock) = small();
        let a = ip("198.51.100.4");
        for _ in 0..3 {
            limits.check(IpLimit::Challenge, &a).unwrap();
        }
        assert!(limits.check(IpLimit::Challenge, &a).is_err());
        clock.advance(Duration::from_millis(1999));
        assert!(limits.check(IpLimit::Challenge, &a).is_err());
        clock.advance(Duration::from_millis(1));
        limits.check(IpLimit::Challenge, &a).unwrap();
        assert!(limits.check(IpLimit::Challenge, &a).is_err());
        // A full minute refills the whole burst.
        clock.advance(Duration::from_secs(60));
        for _ in 0..3 {
            limits.check(IpLimit::Challenge, &a).unwrap();
        }
    }

    #[test]
    fn keys_and_kinds_are_independent() {
        let (limits, _clock) = small();
        let a = ip("198.51.100.4");
        let b = ip("198.51.100.5");
        for _ in 0..3 {
            limits.check(IpLimit::Challenge, &a).unwrap();
        }
        assert!(limits.check(IpLimit::Challenge, &a).is_err());
        limits.check(IpLimit::Challenge, &b).unwrap();
        limits.check(IpLimit::Token, &a).unwrap();

        for _ in 0..2 {
            limits.check_str(StrLimit::PostPerUser, "user-1").unwrap();
        }
        let e = limits
            .check_str(StrLimit::PostPerUser, "user-1")
            .unwrap_err();
        assert_429(&e, 1, 1);
        assert!(e.to_string().contains("messages"), "{e}");
        limits.check_str(StrLimit::PostPerUser, "user-2").unwrap();
        limits
            .check_str(StrLimit::TokenFailuresPerKey, "user-1")
            .unwrap();
    }

    #[test]
    fn token_per_key_counts_across_addresses() {
        let (limits, _clock) = small();
        let fp = "SHA256:abc/def+ghi";
        limits.check_str(StrLimit::TokenFailuresPerKey, fp).unwrap();
        limits.check_str(StrLimit::TokenFailuresPerKey, fp).unwrap();
        let e = limits
            .check_str(StrLimit::TokenFailuresPerKey, fp)
            .unwrap_err();
        // 10/min: one cell every 6 s.
        assert_429(&e, 1, 6);
        assert!(e.to_string().contains("for this key"), "{e}");
    }

    #[test]
    fn ipv6_is_keyed_by_its_64() {
        let (limits, _clock) = small();
        for host in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::9"] {
            limits.check(IpLimit::Challenge, &ip(host)).unwrap();
        }
        assert!(limits
            .check(IpLimit::Challenge, &ip("2001:db8:1:2::77"))
            .is_err());
        limits
            .check(IpLimit::Challenge, &ip("2001:db8:1:3::1"))
            .unwrap();
        // An IPv4-mapped address is its IPv4 form.
        for _ in 0..3 {
            limits
                .check(IpLimit::Challenge, &ip("::ffff:192.0.2.1"))
                .unwrap();
        }
        assert!(limits.check(IpLimit::Challenge, &ip("192.0.2.1")).is_err());
    }

    #[test]
    fn disabled_never_refuses_and_stores_nothing() {
        let limits = Limits::disabled();
        assert!(!limits.is_enabled());
        let a = ip("198.51.100.4");
        for _ in 0..1000 {
            limits.check(IpLimit::Challenge, &a).unwrap();
            limits.check_str(StrLimit::PostPerUser, "u").unwrap();
            limits.peek_failed_auth(&a).unwrap();
            limits.charge_failed_auth(&a).unwrap();
        }
        limits.retain_recent();
        assert_eq!(limits.len_keys(), 0);
    }

    #[test]
    fn failed_auth_is_charged_only_on_failure() {
        let (limits, clock) = small();
        let a = ip("198.51.100.4");
        // Successful requests only peek: they never use the budget.
        for _ in 0..100 {
            limits.peek_failed_auth(&a).unwrap();
        }
        // Budget 2: two failures answer 401 (Ok here), the third uses it up.
        limits.charge_failed_auth(&a).unwrap();
        limits.charge_failed_auth(&a).unwrap();
        limits.peek_failed_auth(&a).unwrap();
        let e = limits.charge_failed_auth(&a).unwrap_err();
        assert_429(&e, 1, 1);
        assert!(e.to_string().contains("failed authentications"), "{e}");
        // Now refused before any lookup, for this address only.
        assert_429(&limits.peek_failed_auth(&a).unwrap_err(), 1, 1);
        limits.peek_failed_auth(&ip("198.51.100.5")).unwrap();
        // 60/min: one more failure is allowed after a second.
        clock.advance(Duration::from_secs(1));
        limits.peek_failed_auth(&a).unwrap();
        limits.charge_failed_auth(&a).unwrap();
        assert!(limits.charge_failed_auth(&a).is_err());
        assert!(limits.peek_failed_auth(&a).is_err());
    }

    #[test]
    fn retain_recent_drops_idle_keys() {
        let (limits, clock) = small();
        limits
            .check(IpLimit::Challenge, &ip("198.51.100.4"))
            .unwrap();
        limits.check(IpLimit::Token, &ip("198.51.100.5")).unwrap();
        limits.check_str(StrLimit::PostPerUser, "u").unwrap();
        let a = ip("198.51.100.6");
        for _ in 0..3 {
            let _ = limits.charge_failed_auth(&a);
        }
        assert_eq!(limits.len_keys(), 5);
        // Still recent: nothing goes.
        limits.retain_recent();
        assert_eq!(limits.len_keys(), 5);
        clock.advance(Duration::from_secs(120));
        limits.retain_recent();
        assert_eq!(limits.len_keys(), 0);
        limits.peek_failed_auth(&a).unwrap();
    }

    #[test]
    fn limits_can_be_shared_between_workers() {
        fn shared<T: Send + Sync + 'static>() {}
        shared::<Limits>();
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_secs(Duration::ZERO), 1);
        assert_eq!(retry_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_secs(Duration::from_millis(2001)), 3);
        assert_eq!(retry_after(&ApiError::rate_limited(0, "x")), 1);
    }
}

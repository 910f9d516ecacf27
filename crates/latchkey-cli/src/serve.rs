//! `latchkey serve`: flags (each also a `LATCHKEY_*` variable) turned into a
//! `ServerConfig`, and the actix system that runs it.

use clap::{Args, ValueEnum};
use latchkey_actors::{IpRetention, Registration};
use latchkey_server::client_ip::TrustedProxies;
use latchkey_server::limits::LimitConfig;
use latchkey_server::{LogFormat, ServerConfig};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum RegistrationArg {
    Open,
    Closed,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormatArg {
    Pretty,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum IpRetentionArg {
    None,
    Truncated,
    Full,
}

/// Flags of `latchkey serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, env = "LATCHKEY_BIND", default_value = "127.0.0.1:8080")]
    bind: String,
    /// Where the event log lives (created when missing).
    #[arg(long, env = "LATCHKEY_DATA_DIR", default_value = "./latchkey-data")]
    data_dir: PathBuf,
    /// `open`: a valid signature by an unknown key creates a user. `closed`: it gets key_unknown.
    #[arg(
        long,
        env = "LATCHKEY_REGISTRATION",
        value_enum,
        default_value = "open"
    )]
    registration: RegistrationArg,
    /// The public origin (e.g. https://chat.example), written on each challenge's server= line.
    #[arg(long, env = "LATCHKEY_PUBLIC_URL")]
    public_url: Option<String>,
    /// Log format on stderr.
    #[arg(
        long,
        env = "LATCHKEY_LOG_FORMAT",
        value_enum,
        default_value = "pretty"
    )]
    log_format: LogFormatArg,
    /// How much of client IPs is stored in events.
    #[arg(
        long,
        env = "LATCHKEY_IP_RETENTION",
        value_enum,
        default_value = "truncated"
    )]
    ip_retention: IpRetentionArg,
    /// Challenge lifetime in seconds.
    #[arg(long, env = "LATCHKEY_CHALLENGE_TTL", default_value_t = 60)]
    challenge_ttl: u64,
    /// Session token lifetime in seconds (30 days).
    #[arg(long, env = "LATCHKEY_SESSION_TTL", default_value_t = 30 * 24 * 3600)]
    session_ttl: u64,
    /// HTTP worker threads (0: one per core).
    #[arg(long, env = "LATCHKEY_WORKERS", default_value_t = 0)]
    workers: usize,
    /// Turn every rate limit off (for benchmarks; never in production).
    #[arg(long, env = "LATCHKEY_NO_RATE_LIMIT")]
    no_rate_limit: bool,
    /// A proxy (CIDR or address) whose X-Forwarded-For is believed; repeatable, or
    /// comma-separated in the variable.
    #[arg(long, env = "LATCHKEY_TRUSTED_PROXY", value_delimiter = ',')]
    trusted_proxy: Vec<String>,
    /// How long terminal pairings (and superseded token uses) stay in the log before the
    /// daily compaction drops them, e.g. `30d`, `12h`; `off` never compacts.
    #[arg(long, env = "LATCHKEY_RETAIN_PAIRINGS", default_value = "30d", value_parser = parse_retention)]
    retain_pairings: Retention,
    /// Oldest WebSocket resume accepted, in events behind the head (older: resume_failed).
    #[arg(long, env = "LATCHKEY_RESUME_WINDOW", default_value_t = 100_000)]
    resume_window: u64,
    /// Put the log in a NATS JetStream stream shared by several nodes:
    /// `nats://HOST:PORT[,nats://HOST:PORT...]`. Without it the log is sled in --data-dir,
    /// which then holds this node's copy and read models.
    #[arg(long, env = "LATCHKEY_STORE")]
    store: Option<String>,
    /// Replicas of the JetStream stream when this node creates it (3 on a 3-node cluster).
    #[arg(long, env = "LATCHKEY_STORE_REPLICAS", default_value_t = 1)]
    store_replicas: usize,
    /// A user or room entity snapshots its state every this many events, so a long
    /// stream rehydrates from the snapshot plus the tail (0: no snapshots).
    #[arg(long, env = "LATCHKEY_SNAPSHOT_EVERY", default_value_t = 500)]
    snapshot_every: u64,
    /// The store's page cache in MiB: the most memory it keeps of log and read-model pages.
    /// Memory then grows with load, not with the size of the data dir.
    #[arg(long, env = "LATCHKEY_CACHE_MIB", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    cache_mib: u64,
    /// Test only: a manual clock moved by `POST /api/test/clock` (hidden from --help).
    #[arg(long, env = "LATCHKEY_TEST_CLOCK", hide = true)]
    test_clock: bool,
}

/// Runs the server until SIGTERM.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = config(args)?;
    actix_rt::System::new().block_on(latchkey_server::run(config))
}

/// The server's configuration from the flags.
fn config(args: ServeArgs) -> anyhow::Result<ServerConfig> {
    let mut config = ServerConfig::new(args.data_dir);
    config.bind = args.bind;
    config.registration = match args.registration {
        RegistrationArg::Open => Registration::Open,
        RegistrationArg::Closed => Registration::Closed,
    };
    config.public_url = args.public_url;
    config.log_format = match args.log_format {
        LogFormatArg::Pretty => LogFormat::Pretty,
        LogFormatArg::Json => LogFormat::Json,
    };
    config.ip_retention = match args.ip_retention {
        IpRetentionArg::None => IpRetention::None,
        IpRetentionArg::Truncated => IpRetention::Truncated,
        IpRetentionArg::Full => IpRetention::Full,
    };
    config.challenge_ttl = Duration::from_secs(args.challenge_ttl.max(1));
    config.session_ttl = Duration::from_secs(args.session_ttl.max(1));
    config.retain_pairings = args.retain_pairings.0;
    config.workers = args.workers;
    config.resume_window = args.resume_window;
    config.snapshot_every = args.snapshot_every;
    config.cache_bytes = args.cache_mib << 20;
    config.test_clock = args.test_clock;
    config.store = args.store.filter(|s| !s.is_empty() && s != "sled");
    config.store_replicas = args.store_replicas.max(1);
    if args.no_rate_limit {
        config.limits = LimitConfig::disabled();
    }
    config.trusted_proxies = TrustedProxies::parse(&args.trusted_proxy)
        .map_err(|e| anyhow::anyhow!("--trusted-proxy: {e}"))?;
    Ok(config)
}

/// A retention window: a duration, or `None` for `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention(pub Option<Duration>);

/// Parses a retention window: a number with a unit (`s`, `m`, `h`, `d`), or `off`.
pub fn parse_retention(s: &str) -> Result<Retention, String> {
    if s == "off" {
        return Ok(Retention(None));
    }
    let bad = || format!("{s:?} is not a duration like 30d, 12h, 90m or 3600s (or off)");
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(secs)
        .map(|t| Retention(Some(Duration::from_secs(t))))
        .ok_or_else(bad)
}

#[cfg(test)]
mod retention_tests {
    use super::*;

    #[test]
    fn retention_windows_parse() {
        let day = Duration::from_secs(86_400);
        assert_eq!(parse_retention("30d"), Ok(Retention(Some(30 * day))));
        assert_eq!(parse_retention("12h"), Ok(Retention(Some(day / 2))));
        assert_eq!(parse_retention("off"), Ok(Retention(None)));
        for bad in ["", "30", "d", "3x", "-1d", "99999999999999999999d"] {
            assert!(parse_retention(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn parse(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("serve").chain(args.iter().copied())).map(|c| c.serve)
    }

    #[test]
    fn the_page_cache_is_256_mib_unless_set_in_mib() {
        let default = config(parse(&[]).unwrap()).unwrap();
        assert_eq!(default.cache_bytes, 256 << 20);
        let small = config(parse(&["--cache-mib", "8"]).unwrap()).unwrap();
        assert_eq!(small.cache_bytes, 8 << 20);
    }

    #[test]
    fn a_page_cache_of_zero_is_refused_at_parse() {
        let err = parse(&["--cache-mib", "0"]).err().unwrap().to_string();
        assert!(err.contains("--cache-mib"), "{err}");
    }
}

//! Reaching JetStream: parse `nats://HOST:PORT[,...]`, connect, check the server (version,
//! JetStream enabled), and create the `LATCHKEY` stream or check that its config is what
//! latchkey needs. Every failure says what is wrong and what to do.

use crate::error::{StoreError, StoreResult};
use async_nats::jetstream::{self, stream};
use async_nats::ServerAddr;
use std::time::Duration;

/// The oldest nats-server latchkey works with (Debian 12 ships 2.9.10).
pub const MIN_SERVER: (u64, u64) = (2, 9);

/// Where and how to reach the log.
#[derive(Clone, Debug)]
pub struct NatsOptions {
    /// `nats://HOST:PORT[,nats://HOST:PORT...]` (the scheme may be left out).
    pub urls: String,
    /// The stream name.
    pub stream: String,
    /// Replicas of the stream when latchkey creates it (1 for a single server, 3 for a
    /// 3-node cluster).
    pub replicas: usize,
    /// Create the stream when it is missing (`false` for the admin tool, which only reads).
    pub create: bool,
    /// How long a publish waits for JetStream's acknowledgement before the write answers
    /// 503 (and how long start-up waits for the server).
    pub timeout: Duration,
}

impl NatsOptions {
    /// The defaults of DESIGN §11 for these URLs: stream `LATCHKEY`, one replica.
    pub fn new(urls: &str) -> Self {
        Self {
            urls: urls.to_string(),
            stream: "LATCHKEY".into(),
            replicas: 1,
            create: true,
            timeout: Duration::from_secs(5),
        }
    }

    /// The server addresses.
    pub fn addrs(&self) -> StoreResult<Vec<ServerAddr>> {
        let addrs: Result<Vec<ServerAddr>, _> = self
            .urls
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<ServerAddr>())
            .collect();
        match addrs {
            Ok(a) if !a.is_empty() => Ok(a),
            Ok(_) => Err(unavailable("--store names no NATS server".into())),
            Err(e) => Err(unavailable(format!(
                "--store {}: not a NATS URL list (nats://HOST:PORT[,...]): {e}",
                self.urls
            ))),
        }
    }
}

fn unavailable(msg: String) -> StoreError {
    StoreError::Unavailable(msg)
}

/// Connects and checks the server: reachable, new enough, JetStream on.
pub async fn connect(opts: &NatsOptions) -> StoreResult<async_nats::Client> {
    let addrs = opts.addrs()?;
    let client = async_nats::ConnectOptions::new()
        .name("latchkey")
        .connection_timeout(opts.timeout)
        .request_timeout(Some(opts.timeout))
        .connect(addrs)
        .await
        .map_err(|e| {
            unavailable(format!(
                "cannot reach NATS at {}: {e}; is nats-server running (nats-server -js)?",
                opts.urls
            ))
        })?;
    let info = client.server_info();
    if !version_at_least(&info.version, MIN_SERVER) {
        return Err(unavailable(format!(
            "nats-server {} at {} is too old: latchkey needs {}.{} or newer",
            info.version, opts.urls, MIN_SERVER.0, MIN_SERVER.1
        )));
    }
    if !info.jetstream {
        return Err(unavailable(format!(
            "nats-server {} at {} runs without JetStream: start it with -js (or `jetstream {{}}` in its config)",
            info.version, opts.urls
        )));
    }
    Ok(client)
}

/// Whether a server version string (`2.9.10`, `v2.10.0-beta`) is at least `min`.
pub fn version_at_least(version: &str, min: (u64, u64)) -> bool {
    let mut parts = version
        .trim_start_matches('v')
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u64>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= min
}

/// The stream config latchkey creates.
pub fn wanted_config(opts: &NatsOptions) -> stream::Config {
    stream::Config {
        name: opts.stream.clone(),
        subjects: vec![super::wire::SUBJECTS.to_string()],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::New,
        num_replicas: opts.replicas.max(1),
        max_messages: -1,
        max_bytes: -1,
        max_messages_per_subject: -1,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    }
}

/// [`ensure_stream`], retried for up to four timeouts while JetStream is unavailable (a
/// cluster that is still electing its meta leader right after start); a stream whose config
/// is wrong is refused at once.
pub async fn ensure_stream_patiently(
    js: &jetstream::Context,
    opts: &NatsOptions,
) -> StoreResult<stream::Info> {
    let deadline = tokio::time::Instant::now() + opts.timeout * 4;
    loop {
        match ensure_stream(js, opts).await {
            Err(StoreError::Unavailable(msg))
                if !msg.contains("not usable")
                    && !msg.contains("there is no stream")
                    && tokio::time::Instant::now() < deadline =>
            {
                tracing::info!(error = %msg, "JetStream is not ready yet; retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => return other,
        }
    }
}

/// Creates the log stream and its keys stream (`keys`), or checks that the existing ones
/// keep every message, on file, for latchkey's subjects. Returns the log stream's info.
pub async fn ensure_stream(
    js: &jetstream::Context,
    opts: &NatsOptions,
) -> StoreResult<stream::Info> {
    let info = ensure_one(js, opts, wanted_config(opts)).await?;
    ensure_one(js, opts, super::keys::config(opts)).await?;
    Ok(info)
}

/// Creates the stream `wanted` describes, or checks the existing one against it.
async fn ensure_one(
    js: &jetstream::Context,
    opts: &NatsOptions,
    wanted: stream::Config,
) -> StoreResult<stream::Info> {
    let name = wanted.name.clone();
    match js.get_stream(&name).await {
        Ok(mut s) => {
            let info = s
                .info()
                .await
                .map_err(|e| unavailable(format!("stream {name}: {e}")))?
                .clone();
            check_config(&info.config, &wanted)?;
            Ok(info)
        }
        Err(e) if is_not_found(&e) && !opts.create => Err(unavailable(format!(
            "there is no stream {name} at {}",
            opts.urls
        ))),
        Err(e) if is_not_found(&e) => {
            let mut s = js
                .create_stream(wanted)
                .await
                .map_err(|e| unavailable(format!("creating stream {name}: {e}")))?;
            tracing::info!(stream = %name, replicas = opts.replicas, "created the JetStream stream");
            s.info()
                .await
                .cloned()
                .map_err(|e| unavailable(format!("stream {name}: {e}")))
        }
        Err(e) => Err(unavailable(format!(
            "JetStream did not answer for stream {name}: {e}; is JetStream enabled (nats-server -js) and, in a cluster, is there a quorum?"
        ))),
    }
}

fn is_not_found(e: &jetstream::context::GetStreamError) -> bool {
    matches!(
        e.kind(),
        jetstream::context::GetStreamErrorKind::JetStream(j)
            if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}

/// Refuses a stream that could lose or drop latchkey's events (or body keys): its
/// subjects must include `wanted`'s, and it must keep every message on file.
pub fn check_config(c: &stream::Config, wanted: &stream::Config) -> StoreResult<()> {
    let mut wrong = Vec::new();
    for need in &wanted.subjects {
        if !c.subjects.iter().any(|s| s == need) {
            wrong.push(format!("subjects {:?} (need {need})", c.subjects));
        }
    }
    if c.storage != stream::StorageType::File {
        wrong.push("memory storage (need file)".to_string());
    }
    if c.retention != stream::RetentionPolicy::Limits {
        wrong.push(format!("retention {:?} (need limits)", c.retention));
    }
    if c.max_messages > 0 || c.max_bytes > 0 || c.max_messages_per_subject > 0 {
        wrong.push("a message or byte limit (need none: the log keeps every event)".into());
    }
    if !c.max_age.is_zero() {
        wrong.push("a max age (need none: the log keeps every event)".into());
    }
    if c.num_replicas != wanted.num_replicas {
        tracing::warn!(
            stream = %wanted.name,
            has = c.num_replicas,
            asked = wanted.num_replicas,
            "the stream's replicas differ from --store-replicas; keeping the stream's"
        );
    }
    if wrong.is_empty() {
        return Ok(());
    }
    Err(unavailable(format!(
        "stream {} exists but is not usable by latchkey: {}",
        wanted.name,
        wrong.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_major_and_minor() {
        assert!(version_at_least("2.9.10", (2, 9)));
        assert!(version_at_least("v2.10.0-beta.1", (2, 9)));
        assert!(!version_at_least("2.8.4", (2, 9)));
        assert!(!version_at_least("", (2, 9)));
    }

    #[test]
    fn the_wanted_config_passes_its_own_check() {
        let opts = NatsOptions::new("nats://127.0.0.1:4222");
        let wanted = wanted_config(&opts);
        assert!(check_config(&wanted, &wanted).is_ok());
        let mut limited = wanted.clone();
        limited.max_messages = 10;
        assert!(check_config(&limited, &wanted).is_err());
        let keys = crate::nats::keys::config(&opts);
        assert!(check_config(&keys, &keys).is_ok());
        assert!(
            check_config(&wanted, &keys).is_err(),
            "the log is no keys stream"
        );
    }

    #[test]
    fn urls_are_split_on_commas() {
        let opts = NatsOptions::new("nats://127.0.0.1:4222, nats://127.0.0.1:4223");
        assert_eq!(opts.addrs().map(|a| a.len()).ok(), Some(2));
        assert!(NatsOptions::new("").addrs().is_err());
    }
}

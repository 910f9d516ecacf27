//! Observability: tracing to stderr (pretty or JSON), the access log, and Prometheus metrics.
//!
//! Redaction is by construction: the access log writes method, path *without* its query
//! string (with any token-shaped segment masked), status and latency; it never writes
//! headers or bodies, so `Authorization`, cookies, tickets and signatures cannot reach it.

use crate::config::LogFormat;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use latchkey_actors::Core;
use latchkey_domain::token::TokenPrefix;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};
use std::sync::atomic::Ordering;
use std::time::Instant;
use tracing_subscriber::EnvFilter;

/// Installs the global tracing subscriber (stderr). `RUST_LOG` overrides the level.
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// A path safe to log: any segment that looks like a credential is masked, and so is the
/// user code in `/api/native/device/{user_code}`. Segments are judged percent-decoded
/// (the router decodes them too), ignoring empty segments and case, so an escaped or
/// doubled path cannot carry a secret past the mask.
pub fn redact_path(path: &str) -> String {
    let decoded: Vec<String> = path
        .split('/')
        .map(|seg| String::from_utf8_lossy(&percent_decode(seg.as_bytes())).into_owned())
        .collect();
    let named: Vec<String> = decoded
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| s.to_ascii_lowercase())
        .collect();
    if let [api, native, device, rest @ ..] = named.as_slice() {
        let route = api == "api" && native == "native" && device == "device";
        let action = matches!(rest, [a] if a == "approve" || a == "deny");
        if route && !rest.is_empty() && !action {
            return "/api/native/device/[redacted]".into();
        }
    }
    path.split('/')
        .zip(&decoded)
        .map(|(raw, seg)| {
            match TokenPrefix::ALL
                .iter()
                .find(|p| seg.starts_with(p.as_str()))
            {
                Some(p) => format!("{}[redacted]", p.as_str()),
                None => raw.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Bytes with their `%XX` escapes decoded; a malformed escape stays as it is. Shared by
/// the access log's mask and the device endpoints' form check.
pub(crate) fn percent_decode(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |j: usize| b.get(j).and_then(|c| char::from(*c).to_digit(16));
        match (b[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The Prometheus registry and the request metrics.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    head: IntGauge,
    applied: IntGauge,
    flushes: IntGauge,
    appends: IntGauge,
    users_live: IntGauge,
    pairings_live: IntGauge,
    rooms_live: IntGauge,
    ws_connections: IntGauge,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "latchkey_http_requests_total",
                "HTTP requests by route and status",
            ),
            &["route", "method", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new("latchkey_http_request_seconds", "HTTP request latency").buckets(
                vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
                ],
            ),
            &["route"],
        )?;
        let gauge = |name: &str, help: &str| IntGauge::new(name, help);
        let head = gauge("latchkey_log_head_seq", "Newest durable seq")?;
        let applied = gauge(
            "latchkey_projection_applied_seq",
            "Newest seq applied to read models",
        )?;
        let flushes = gauge("latchkey_journal_flushes", "Group commits since start")?;
        let appends = gauge("latchkey_journal_appends", "Append requests since start")?;
        let users_live = gauge("latchkey_entities_user", "User actors in memory")?;
        let pairings_live = gauge("latchkey_entities_pairing", "Pairing actors in memory")?;
        let rooms_live = gauge("latchkey_entities_room", "Room actors in memory")?;
        let ws_connections = gauge("latchkey_ws_connections", "Open WebSocket connections")?;
        for c in [
            &head,
            &applied,
            &flushes,
            &appends,
            &users_live,
            &pairings_live,
            &rooms_live,
            &ws_connections,
        ] {
            registry.register(Box::new(c.clone()))?;
        }
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        Ok(Self {
            registry,
            requests,
            latency,
            head,
            applied,
            flushes,
            appends,
            users_live,
            pairings_live,
            rooms_live,
            ws_connections,
        })
    }

    /// The text exposition, with gauges read now.
    pub fn render(&self, core: &Core) -> String {
        let store = core.store();
        self.head.set(store.head() as i64);
        self.applied.set(core.applied_seq() as i64);
        self.flushes
            .set(store.stats().flushes.load(Ordering::Relaxed) as i64);
        self.appends
            .set(store.stats().appends.load(Ordering::Relaxed) as i64);
        let (users, pairings, rooms) = core.live_entities();
        self.users_live.set(users as i64);
        self.pairings_live.set(pairings as i64);
        self.rooms_live.set(rooms as i64);
        self.ws_connections.set(core.hub().connections() as i64);
        let mut buf = Vec::new();
        if let Err(e) = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
}

/// The access log and request metrics, as an actix middleware function.
pub async fn access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().clone();
    // Masking the path costs a dozen allocations per request (more for a longer path):
    // paid only when the access log is on.
    let path = tracing::enabled!(target: "latchkey::access", tracing::Level::INFO)
        .then(|| redact_path(req.path()));
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let res = next.call(req).await?;
    let status = res.status();
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".into());
    let elapsed = started.elapsed();
    if let Some(m) = metrics {
        m.requests
            .with_label_values(&[&route, method.as_str(), status.as_str()])
            .inc();
        m.latency
            .with_label_values(&[&route])
            .observe(elapsed.as_secs_f64());
    }
    if let Some(path) = path {
        tracing::info!(
            target: "latchkey::access",
            method = %method,
            path = %path,
            status = status.as_u16(),
            micros = elapsed.as_micros() as u64,
            "request"
        );
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shaped_segments_are_masked() {
        assert_eq!(
            redact_path("/api/native/lks_abcdef/x"),
            "/api/native/lks_[redacted]/x"
        );
        assert_eq!(redact_path("/api/native/me"), "/api/native/me");
        assert_eq!(
            redact_path("/api/native/device/BCDF-GHJK"),
            "/api/native/device/[redacted]"
        );
        assert_eq!(
            redact_path("/api/native/device/bcdf%20ghjk/x"),
            "/api/native/device/[redacted]"
        );
        assert_eq!(
            redact_path("/api/native/device/approve"),
            "/api/native/device/approve"
        );
    }

    /// The router decodes percent-escapes and the log must not be more literal than it:
    /// a user code reached through an escaped or doubled path is masked too.
    #[test]
    fn escaped_or_odd_paths_to_a_user_code_are_masked() {
        for path in [
            "/api/native/%64evice/BCDF-GHJK",
            "/api/native/devic%65/BCDF-GHJK",
            "/api/native/%64%65%76%69%63%65/bcdfghjk",
            "/api//native/device/BCDF-GHJK",
            "/API/Native/Device/BCDF-GHJK",
            "/api/native/device/approve/BCDF-GHJK",
        ] {
            assert_eq!(redact_path(path), "/api/native/device/[redacted]", "{path}");
        }
        assert_eq!(
            redact_path("/api/native/%6Cks_abcdef/x"),
            "/api/native/lks_[redacted]/x"
        );
        assert_eq!(
            redact_path("/api/native/device/deny"),
            "/api/native/device/deny"
        );
        assert_eq!(redact_path("/api/native/device/"), "/api/native/device/");
        assert_eq!(
            redact_path("/api/native/rooms/%zz"),
            "/api/native/rooms/%zz"
        );
    }
}

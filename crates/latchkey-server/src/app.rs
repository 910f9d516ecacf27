//! Start-up and shutdown: open the store, bring the read models to the durable head,
//! start the core, bind, serve until SIGTERM, then drain and flush.

use crate::config::ServerConfig;
use crate::error::{json_error, not_found, path_error, query_error, render_json, MAX_BODY};
use crate::limits::Limits;
use crate::observe::{self, Metrics};
use crate::routes;
use actix_web::middleware::{from_fn, ErrorHandlers};
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use latchkey_actors::clock::{ManualClock, SharedClock, SystemClock};
use latchkey_actors::{Core, CoreConfig};
use latchkey_store::{EventStore, NatsOptions, NatsStore, SledStore, StoreOptions};
use std::io::Write;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

/// How long SIGTERM waits for in-flight requests (DESIGN §8: the drain finishes in 10 s).
const DRAIN: Duration = Duration::from_secs(10);

/// Pending connections the kernel queues before `accept` (capped at net.core.somaxconn).
const LISTEN_BACKLOG: i32 = 4096;

/// Runs the server until SIGTERM/SIGINT. Prints `latchkey listening on http://ADDR` on
/// stdout once it accepts connections (tests read that line to find a port-0 server).
pub async fn run(config: ServerConfig) -> anyhow::Result<()> {
    observe::init_tracing(config.log_format);
    let (clock, test_clock) = choose_clock(&config);
    let store = open_store(&config, clock.clone())?;
    let core = start_core(&config, &store, clock.clone())?;
    let core_data = web::Data::from(core.clone());
    let metrics = web::Data::new(Metrics::new()?);
    let limits = web::Data::new(Limits::new(&config.limits, clock));
    let proxies = web::Data::new(config.trusted_proxies.clone());
    let ws_settings = web::Data::new(crate::routes::ws::WsSettings {
        resume_window: config.resume_window,
    });
    if !config.limits.enabled {
        tracing::warn!("rate limits are off (--no-rate-limit)");
    }
    spawn_limit_upkeep(limits.clone());

    let listener =
        TcpListener::bind(&config.bind).with_context(|| format!("binding {}", config.bind))?;
    // std listens with a backlog of 128: a few hundred clients connecting at once overflow
    // it, the kernel drops their SYNs, and each resends only a second later. Listen again
    // with a deeper queue (the kernel caps it at net.core.somaxconn).
    rustix::net::listen(&listener, LISTEN_BACKLOG).context("setting the listen backlog")?;
    let addr = listener.local_addr()?;
    let workers = match config.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let server = HttpServer::new(move || {
        App::new()
            .app_data(core_data.clone())
            .app_data(metrics.clone())
            .app_data(limits.clone())
            .app_data(proxies.clone())
            .app_data(ws_settings.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(MAX_BODY)
                    .content_type_required(false)
                    .error_handler(json_error),
            )
            .app_data(web::PayloadConfig::new(MAX_BODY))
            .app_data(web::PathConfig::default().error_handler(path_error))
            .app_data(web::QueryConfig::default().error_handler(query_error))
            .wrap(ErrorHandlers::new().default_handler(render_json))
            .wrap(from_fn(observe::access_log))
            .configure(routes::configure)
            .configure(|cfg| {
                if let Some(clock) = &test_clock {
                    routes::testclock::configure(cfg, clock.clone());
                }
            })
            .default_service(web::to(not_found))
    })
    // Small frames (a 4001 close, a pong, one event) must not wait for the peer's delayed
    // ACK under Nagle's algorithm: that costs ~40 ms per stall on Linux.
    .on_connect(|conn, _| {
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            let _ = tcp.set_nodelay(true);
        }
    })
    .workers(workers)
    .shutdown_timeout(DRAIN.as_secs())
    .disable_signals()
    .listen(listener)?
    .run();

    spawn_drain_on_signal(server.handle(), core.hub().clone());

    tracing::info!(%addr, data_dir = %config.data_dir.display(), "serving");
    println!("latchkey listening on http://{addr}");
    std::io::stdout().flush()?;
    let result = server.await;
    drain(core, &store)?;
    result.context("server")
}

/// After the HTTP server has stopped: stops the actors and the projector, lets the journal
/// finish what is queued, and flushes.
fn drain(core: Arc<Core>, store: &Arc<dyn EventStore>) -> anyhow::Result<()> {
    tracing::info!("draining: stopping actors and flushing the log");
    core.shutdown();
    drop(core);
    store.shutdown()?;
    // Appends that were in flight when the actors stopped are durable now, after the
    // projector stopped: one last pass, so a clean stop leaves the read models at the
    // head (equal to a rebuild), then flush again.
    latchkey_admin::write::catch_up(store).context("projecting the last appends")?;
    store.shutdown()?;
    tracing::info!("stopped");
    Ok(())
}

/// The data dir's store, or (`--store nats://...`) the JetStream log with this node's copy
/// in the data dir; either stamps `recorded_at` with the server's clock.
fn open_store(config: &ServerConfig, clock: SharedClock) -> anyhow::Result<Arc<dyn EventStore>> {
    let options = StoreOptions {
        clock: Arc::new(move || clock.now().0),
        cache_capacity: config.cache_bytes,
        ..StoreOptions::default()
    };
    if let Some(urls) = &config.store {
        let mut nats = NatsOptions::new(urls);
        nats.replicas = config.store_replicas;
        let store = NatsStore::open(&config.data_dir, nats, options)
            .with_context(|| format!("opening the JetStream log at {urls}"))?;
        return Ok(Arc::new(store));
    }
    let store = SledStore::open(&config.data_dir, options)
        .with_context(|| format!("opening {}", config.data_dir.display()))?;
    Ok(Arc::new(store))
}

/// The system clock, or (`--test-clock`) a manual one, which is returned too so that its
/// route can move it. The store's `recorded_at` and the core read the same clock.
fn choose_clock(config: &ServerConfig) -> (SharedClock, Option<Arc<ManualClock>>) {
    let test_clock = config
        .test_clock
        .then(|| Arc::new(ManualClock::starting_now()));
    match &test_clock {
        Some(clock) => {
            tracing::warn!(
                "TEST CLOCK: time stands still and moves only through POST /api/test/clock; \
                 never run a real server with --test-clock"
            );
            (clock.clone(), test_clock)
        }
        None => (SystemClock::shared(), None),
    }
}

/// The core's settings from the server's, on the given clock; then the core. Built once,
/// outside the per-worker closure: one registry, one read model, one core.
fn start_core(
    config: &ServerConfig,
    store: &Arc<dyn EventStore>,
    clock: SharedClock,
) -> anyhow::Result<Arc<Core>> {
    let server_line = match &config.public_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => store.server_id()?.to_string(),
    };
    let mut core_config = CoreConfig::new(server_line);
    core_config.registration = config.registration;
    core_config.ip_retention = config.ip_retention;
    core_config.challenge_ttl = config.challenge_ttl;
    core_config.snapshot_every = config.snapshot_every;
    core_config.session_ttl = config.session_ttl;
    core_config.retain_pairings = config.retain_pairings;
    core_config.clock = clock;
    let core = Core::start(
        store.clone(),
        core_config,
        Box::new(crate::frames::event_frame),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(core)
}

/// Drops fresh limiter keys once a minute, so that memory follows the active clients.
fn spawn_limit_upkeep(limits: web::Data<Limits>) {
    actix_rt::spawn(async move {
        let mut every = actix_rt::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            limits.retain_recent();
        }
    });
}

/// On SIGTERM/SIGINT: close every WebSocket with 1001 first, then stop accepting and let
/// in-flight requests finish (up to DRAIN).
fn spawn_drain_on_signal(
    handle: actix_web::dev::ServerHandle,
    hub: Arc<latchkey_actors::hub::Hub>,
) {
    actix_rt::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown signal: closing WebSockets with 1001 and draining");
        hub.close_all(latchkey_actors::close::CLOSE_GOING_AWAY);
        handle.stop(true).await;
    });
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            tracing::error!("cannot listen for signals; use the process manager's SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}

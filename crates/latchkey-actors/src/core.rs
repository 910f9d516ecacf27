//! `Core`: the facade the HTTP layer calls, its start-up and shutdown, and what every
//! operation shares: the clock and entropy, the registries, and `wait_applied`
//! (read-your-writes: an operation answers only once the projector has applied its own
//! events). The operations live by concern in `signin`, `auth`, `credentials` and `rooms`.
//!
//! Must not: hold a business rule. An operation loads, sends one command, waits for its
//! seq and maps the result; the deciders decide.

use crate::config::CoreConfig;
use crate::error::CoreError;
use crate::hub::{Encode, Hub};
use crate::readmodel::{self, ReadModels};
use crate::registry::{EntitySettings, Registry};
use crate::sweeper::Sweeper;
use actix::prelude::*;
use latchkey_domain::{PairingDecider, RoomDecider, Timestamp, TokenId, UserDecider};
use latchkey_store::projection::{Projector, ProjectorHandle};
use latchkey_store::EventStore;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// How long a shutdown waits for the projector to apply the durable head.
const SHUTDOWN_CATCH_UP: Duration = Duration::from_secs(5);

/// latchkey's operations, shared by every HTTP worker (build it once, outside
/// `HttpServer::new`).
pub struct Core {
    store: Arc<dyn EventStore>,
    models: ReadModels,
    users: Registry<UserDecider>,
    pairings: Registry<PairingDecider>,
    rooms: Registry<RoomDecider>,
    hub: Arc<Hub>,
    applied: watch::Receiver<u64>,
    config: CoreConfig,
    /// Handles being registered right now: the read model sees a handle only once its
    /// user is projected, so two concurrent registrations claim here first.
    handle_claims: Mutex<HashSet<String>>,
    /// Registration locks by key fingerprint (see `sign_in`).
    key_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Last `TokenUsed` sent per token, so a busy token does not message its user actor on
    /// every request. Cleared when it grows past a bound.
    recent_use: Mutex<HashMap<TokenId, Timestamp>>,
    arbiters: Vec<Arbiter>,
    tickets: crate::tickets::Tickets,
    device: crate::device::DeviceBook,
    projector: Mutex<Option<ProjectorHandle>>,
    sweeper: Mutex<Option<Addr<Sweeper>>>,
    /// When the sweeper runs a compaction (none when retention is off).
    compaction: Option<crate::compactor::Schedule>,
}

/// Holds a key's registration lock; removes the map entry when nobody else waits.
pub(crate) struct KeyLockGuard<'a> {
    core: &'a Core,
    fingerprint: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for KeyLockGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        if let Ok(mut map) = self.core.key_locks.lock() {
            if map
                .get(&self.fingerprint)
                .is_some_and(|l| Arc::strong_count(l) == 1)
            {
                map.remove(&self.fingerprint);
            }
        }
    }
}

/// When the sweeper compacts: never when retention is off, nor on a shared (JetStream) log,
/// which is written only by appends and takes no tombstones (proto-docs/storage.md §17).
fn compaction_schedule(config: &CoreConfig, shared: bool) -> Option<crate::compactor::Schedule> {
    let retain = config.retain_pairings?;
    if shared {
        tracing::info!("scheduled compaction is off: the log is shared (JetStream)");
        return None;
    }
    Some(crate::compactor::Schedule::new(
        retain,
        config.compact_every,
        config.clock.now(),
    ))
}

impl Core {
    /// Brings the read models to the durable head, starts the projector thread, the entity
    /// arbiters and the sweeper. Must run inside an actix `System`. The live-token index
    /// is loaded between the catch-up and the projector thread, so only one writes it.
    pub fn start(
        store: Arc<dyn EventStore>,
        config: CoreConfig,
        encode: Encode,
    ) -> Result<Arc<Self>, CoreError> {
        let index = crate::tokenindex::TokenIndex::default();
        let mut projector =
            Projector::new(store.clone(), readmodel::projections_with(index.clone()))?;
        let caught_up = projector.catch_up()?;
        tracing::info!(seq = caught_up, "read models at the durable head");
        let models = ReadModels::open_with(store.as_ref(), index)?;
        // The hub starts from the read models at `caught_up`; the projector thread feeds it
        // every later chunk, so it never misses or repeats an event.
        let hub = Arc::new(Hub::new(
            caught_up,
            models.rooms().all_memberships()?,
            encode,
            config.ws_queue,
        ));
        let feed = hub.clone();
        let projector = projector.after_apply(Box::new(move |chunk| feed.apply(chunk)));
        let applied = projector.applied();
        let projector = projector.spawn()?;
        let n = if config.arbiters == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        } else {
            config.arbiters
        };
        let arbiters: Vec<Arbiter> = (0..n).map(|_| Arbiter::new()).collect();
        let handles: Vec<ArbiterHandle> = arbiters.iter().map(Arbiter::handle).collect();
        let settings = |after| EntitySettings {
            mailbox: config.mailbox,
            passivate_after: after,
            snapshot_every: config.snapshot_every,
        };
        let users = Registry::new(
            store.clone(),
            &handles,
            settings(<UserDecider as crate::kind::Kind>::PASSIVATE_AFTER),
        );
        let pairings = Registry::new(
            store.clone(),
            &handles,
            settings(<PairingDecider as crate::kind::Kind>::PASSIVATE_AFTER),
        );
        let rooms = Registry::new(
            store.clone(),
            &handles,
            settings(<RoomDecider as crate::kind::Kind>::PASSIVATE_AFTER),
        );
        let config_schedule = compaction_schedule(&config, store.is_shared());
        let core = Arc::new(Self {
            store,
            models,
            users,
            pairings,
            rooms,
            hub,
            applied,
            config,
            handle_claims: Mutex::new(HashSet::new()),
            key_locks: Mutex::new(HashMap::new()),
            recent_use: Mutex::new(HashMap::new()),
            arbiters,
            tickets: crate::tickets::Tickets::default(),
            device: crate::device::DeviceBook::default(),
            projector: Mutex::new(Some(projector)),
            sweeper: Mutex::new(None),
            compaction: config_schedule,
        });
        let sweeper = Sweeper::new(Arc::downgrade(&core), core.config.sweep_every).start();
        if let Ok(mut s) = core.sweeper.lock() {
            *s = Some(sweeper);
        }
        Ok(core)
    }

    /// Stops the sweeper, the arbiters and the projector. The store flushes when dropped.
    pub fn shutdown(&self) {
        if let Some(s) = self.sweeper.lock().ok().and_then(|mut s| s.take()) {
            s.do_send(crate::sweeper::Stop);
        }
        for a in &self.arbiters {
            a.stop();
        }
        // Let the read models reach what is durable before the projector stops, so a clean
        // stop leaves them equal to a rebuild (a start would catch up anyway). Bounded: a
        // stop never hangs on a stuck projector.
        let head = self.store.head();
        let deadline = std::time::Instant::now() + SHUTDOWN_CATCH_UP;
        while self.applied_seq() < head && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        if let Some(p) = self.projector.lock().ok().and_then(|mut p| p.take()) {
            p.stop();
        }
    }

    /// The store (for health and metrics).
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The read models.
    pub fn models(&self) -> &ReadModels {
        &self.models
    }

    /// The settings.
    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    /// Now, on the core's clock.
    pub fn now(&self) -> Timestamp {
        self.config.clock.now()
    }

    /// Runs the scheduled compaction if one is due on the core's clock, on a blocking
    /// thread, and waits for it (the sweeper's tick and the test clock call this).
    pub async fn compact_if_due(&self) -> Result<(), CoreError> {
        let Some(schedule) = &self.compaction else {
            return Ok(());
        };
        // Held until the run ends: a second caller waits, then finds nothing due.
        let mut last = schedule.last.lock().await;
        let now = self.now();
        let Some(before) = schedule.due(*last, now) else {
            return Ok(());
        };
        *last = now;
        let store = self.store.clone();
        let run = tokio::task::spawn_blocking(move || {
            crate::compactor::compact(store.as_ref(), before, &mut |_| {})
        });
        match run.await {
            Ok(Ok(c)) => {
                tracing::info!(
                    pairing_streams = c.pairing_streams,
                    pairing_events = c.pairing_events,
                    token_used = c.token_used,
                    exact_from = c.exact_from,
                    "compacted the log"
                );
                Ok(())
            }
            Ok(Err(e)) => Err(e.into()),
            Err(e) => {
                tracing::error!(error = %e, "the compaction thread failed");
                Ok(())
            }
        }
    }

    /// 32 secret random bytes from the core's entropy source.
    pub(crate) fn random32(&self) -> [u8; 32] {
        self.config.entropy.random32()
    }

    pub(crate) fn handle_claims(&self) -> &Mutex<HashSet<String>> {
        &self.handle_claims
    }

    pub(crate) fn recent_use(&self) -> &Mutex<HashMap<TokenId, Timestamp>> {
        &self.recent_use
    }

    /// The newest seq every read model has applied.
    pub fn applied_seq(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Live entities per kind (users, pairings, rooms), for metrics.
    pub fn live_entities(&self) -> (usize, usize, usize) {
        (self.users.live(), self.pairings.live(), self.rooms.live())
    }

    pub(crate) fn users(&self) -> &Registry<UserDecider> {
        &self.users
    }

    pub(crate) fn pairings(&self) -> &Registry<PairingDecider> {
        &self.pairings
    }

    pub(crate) fn rooms_registry(&self) -> &Registry<RoomDecider> {
        &self.rooms
    }

    /// The fanout hub (the WebSocket route registers connections here).
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    pub(crate) fn tickets(&self) -> &crate::tickets::Tickets {
        &self.tickets
    }

    pub(crate) fn device_book(&self) -> &crate::device::DeviceBook {
        &self.device
    }

    /// Waits until the projector has applied `seq` (0: nothing to wait for).
    pub async fn wait_applied(&self, seq: u64) -> Result<(), CoreError> {
        if seq == 0 || self.applied_seq() >= seq {
            return Ok(());
        }
        let mut rx = self.applied.clone();
        let waited =
            tokio::time::timeout(self.config.projection_timeout, rx.wait_for(|a| *a >= seq)).await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            _ => Err(CoreError::Busy),
        }
    }

    /// Waits until `seq` is durable and projected: what an answer that depends on an event
    /// appended with `Ack::Written` waits for (its fsync may not have happened yet, and
    /// the projector may apply events its group has written before their fsync).
    pub(crate) async fn wait_settled(&self, seq: u64) -> Result<(), CoreError> {
        if seq > self.store.head() {
            let mut durable = self.store.subscribe();
            let waited = tokio::time::timeout(
                self.config.projection_timeout,
                durable.wait_for(|head| *head >= seq),
            )
            .await;
            if !matches!(waited, Ok(Ok(_))) {
                return Err(CoreError::Busy);
            }
        }
        self.wait_applied(seq).await
    }

    /// The registration lock of a key fingerprint. Entries are dropped when unused.
    pub(crate) async fn key_lock(&self, fingerprint: &str) -> KeyLockGuard<'_> {
        let lock = match self.key_locks.lock() {
            Ok(mut map) => map.entry(fingerprint.to_string()).or_default().clone(),
            Err(_) => Arc::new(tokio::sync::Mutex::new(())),
        };
        let guard = lock.clone().lock_owned().await;
        KeyLockGuard {
            core: self,
            fingerprint: fingerprint.to_string(),
            guard: Some(guard),
        }
    }
}

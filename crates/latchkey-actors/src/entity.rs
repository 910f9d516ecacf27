//! The entity actor: one per live aggregate instance, hosting its state and version.
//!
//! It handles one command at a time with no interleaving across the append (an
//! `AtomicResponse`): decide, append with the expected version, evolve, reply. The
//! journal's version check still guards against two live actors for one id. The steps
//! themselves are [`Loaded`]'s, shared with [`execute_blocking`], the offline path.

use crate::kind::Kind;
use crate::registry::EntitySettings;
use actix::prelude::*;
use latchkey_domain::{evolve_all, StreamId};
use latchkey_store::{
    AppendError, AppendRequest, Appended, EventIter, EventStore, ExpectedVersion, Snapshot,
    StoreError,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use uuid::Uuid;

/// The result of a command that was accepted (possibly with no events: a no-op).
#[derive(Debug)]
pub struct Executed<D: Kind> {
    /// The events appended, in order.
    pub events: Vec<D::Event>,
    /// The seq of the last appended event; 0 when nothing was appended.
    pub last_seq: u64,
    /// The state after the events, shared with the entity: no copy of the state is made
    /// per command (a room's or a user's state grows with its history).
    pub state: Arc<D::State>,
}

/// Why a command did not run.
#[derive(Debug, thiserror::Error)]
pub enum ExecError<E> {
    /// The domain refused it.
    #[error("refused: {0:?}")]
    Domain(E),
    /// Another writer changed the stream first; the entity reloaded. Retry the command.
    #[error("version conflict")]
    Conflict,
    /// A mailbox or the journal queue is full: answer 503 with Retry-After.
    #[error("busy")]
    Busy,
    /// The store failed; nothing was written.
    #[error("store: {0}")]
    Store(String),
    /// The entity stopped repeatedly while the message was in flight.
    #[error("entity unavailable")]
    Gone,
}

impl<E> From<StoreError> for ExecError<E> {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Busy | StoreError::Poisoned | StoreError::Unavailable(_) => ExecError::Busy,
            other => ExecError::Store(other.to_string()),
        }
    }
}

/// When a command's append is answered: the store's own choice.
pub use latchkey_store::Ack;

/// Run a command. Replies through the oneshot so the sender can use `try_send`.
pub struct Execute<D: Kind> {
    /// The command.
    pub cmd: D::Command,
    /// Who asks (recorded in the envelopes).
    pub actor: latchkey_domain::Actor,
    /// Idempotency key of this command.
    pub command_id: Uuid,
    /// When the append is answered.
    pub ack: Ack,
    /// Where the result goes.
    pub reply: oneshot::Sender<Result<Executed<D>, ExecError<D::Error>>>,
}

impl<D: Kind> Message for Execute<D> {
    type Result = ();
}

/// Read the current state.
pub struct Inspect<D: Kind> {
    /// Where the state goes.
    pub reply: oneshot::Sender<D::State>,
}

impl<D: Kind> Message for Inspect<D> {
    type Result = ();
}

/// The map a registry shard keeps; an entity removes itself from it when it passivates.
pub(crate) type ShardMap<D> = Arc<Mutex<HashMap<StreamId, Addr<Entity<D>>>>>;

/// One aggregate instance as folded from its stream: what an entity hosts, and what the
/// offline tools load before they decide. Its methods are the one execution path for
/// writes: load -> fold -> decide -> append with the expected version -> evolve.
pub struct Loaded<D: Kind> {
    /// The stream.
    pub stream: StreamId,
    /// The folded state; shared with the last [`Executed`] and copied only if that is
    /// still held when the next command evolves it.
    pub state: Arc<D::State>,
    /// The stream's version (0 when empty).
    pub version: u64,
    /// The seq of the event at `version` (0 when empty).
    pub seq: u64,
    /// The version of the newest snapshot taken or restored (0: none).
    pub snapshot_version: u64,
}

/// A snapshot to write, off the command's path: encoding and storing it happen after the
/// reply. A failure only means the next rehydration folds more events.
pub struct PendingSnapshot<D: Kind> {
    stream: StreamId,
    format: u32,
    version: u64,
    seq: u64,
    state: Arc<D::State>,
}

impl<D: Kind> PendingSnapshot<D> {
    /// Encodes the state and stores it in the `snapshots` tree.
    pub fn write(self, store: &dyn EventStore) {
        let Some(encoded) = D::encode_state(&self.state) else {
            return;
        };
        let result = encoded.and_then(|state| {
            store.put_snapshot(
                &self.stream,
                &Snapshot {
                    format: self.format,
                    version: self.version,
                    seq: self.seq,
                    state,
                },
            )
        });
        if let Err(e) = result {
            tracing::warn!(stream = %self.stream, error = %e, "snapshot not written");
        }
    }
}

/// Takes a fresh snapshot of every user and room stream with at least `every` live events
/// (what `latchkey admin rebuild` does after clearing the `snapshots` tree): one walk of
/// the log to count, then one fold per long stream. Returns how many were written.
pub fn remake_snapshots(store: &dyn EventStore, every: u64) -> Result<u64, StoreError> {
    if every == 0 {
        return Ok(0);
    }
    let mut lengths: HashMap<StreamId, u64> = HashMap::new();
    for rec in store.read_all(1)? {
        *lengths.entry(rec?.envelope.stream).or_default() += 1;
    }
    let mut written = 0;
    for (stream, len) in lengths {
        if len < every {
            continue;
        }
        written += match stream.kind() {
            "user" => remake::<latchkey_domain::UserDecider>(store, stream, every)?,
            "room" => remake::<latchkey_domain::RoomDecider>(store, stream, every)?,
            _ => 0,
        };
    }
    Ok(written)
}

/// Folds one stream and writes its snapshot when it is due.
fn remake<D: Kind>(
    store: &dyn EventStore,
    stream: StreamId,
    every: u64,
) -> Result<u64, StoreError> {
    let mut loaded = Loaded::<D>::load(store, stream)?;
    Ok(match loaded.snapshot_due(every) {
        Some(pending) => {
            pending.write(store);
            1
        }
        None => 0,
    })
}

/// What a command decided on a loaded state comes to.
pub enum Decided<D: Kind> {
    /// The command changed nothing: nothing to append.
    Nothing,
    /// These events, to append with this request.
    Append(Vec<D::Event>, AppendRequest),
}

impl<D: Kind> Loaded<D> {
    /// Folds a stream into (state, version) (version 0 and the default state when empty),
    /// from its snapshot when it has a usable one.
    pub fn load(store: &dyn EventStore, stream: StreamId) -> Result<Self, StoreError> {
        // The head is read first: a stream whose last events compaction dropped (a
        // terminal pairing) keeps its version, so a later append cannot reuse a version.
        let (head, _) = store.stream_head(&stream)?;
        let mut loaded = Self::load_until(store, stream, u64::MAX)?;
        loaded.version = loaded.version.max(head);
        Ok(loaded)
    }

    /// Folds the stream's events with seq <= `max_seq`: the state as of that seq. Starts
    /// from the stream's snapshot when it is usable for that seq (see [`Self::restore`]),
    /// from event 1 otherwise; the result is the same either way.
    pub fn load_until(
        store: &dyn EventStore,
        stream: StreamId,
        max_seq: u64,
    ) -> Result<Self, StoreError> {
        if let Some(loaded) = Self::restore(store, &stream, max_seq)? {
            return Ok(loaded);
        }
        let start = Self {
            stream,
            state: Arc::default(),
            version: 0,
            seq: 0,
            snapshot_version: 0,
        };
        let events = store.read_stream(&start.stream, 1)?;
        start.fold_tail(events, max_seq)
    }

    /// Folds `events` (the stream's next ones) onto this state, up to `max_seq`.
    fn fold_tail(mut self, events: EventIter<'_>, max_seq: u64) -> Result<Self, StoreError> {
        for rec in events {
            let rec = rec?;
            if rec.seq() > max_seq {
                break;
            }
            if let Some(e) = D::extract(&rec.event) {
                let state = Arc::make_mut(&mut self.state);
                *state = D::evolve(std::mem::take(state), e);
            }
            self.version = rec.envelope.version;
            self.seq = rec.seq();
        }
        Ok(self)
    }

    /// The state from the stream's snapshot plus its tail, or `None` when there is no
    /// usable snapshot: none stored, another format id, taken after `max_seq`, bytes that
    /// do not decode, or a log that no longer holds the snapshot's version at its seq
    /// (a restored or compacted log). A snapshot is only ever a shortcut.
    fn restore(
        store: &dyn EventStore,
        stream: &StreamId,
        max_seq: u64,
    ) -> Result<Option<Self>, StoreError> {
        let Some(format) = D::SNAPSHOT_FORMAT else {
            return Ok(None);
        };
        let Some(snap) = store.snapshot(stream)? else {
            return Ok(None);
        };
        if snap.format != format || snap.seq > max_seq || snap.version == 0 {
            return Ok(None);
        }
        let mut events = store.read_stream(stream, snap.version)?;
        match events.next() {
            Some(Ok(rec)) if rec.envelope.version == snap.version && rec.seq() == snap.seq => {}
            _ => return Ok(None),
        }
        let state = match D::decode_state(&snap.state) {
            Some(Ok(state)) => state,
            Some(Err(e)) => {
                tracing::warn!(%stream, error = %e, "ignoring a snapshot that does not decode");
                return Ok(None);
            }
            None => return Ok(None),
        };
        let start = Self {
            stream: stream.clone(),
            state: Arc::new(state),
            version: snap.version,
            seq: snap.seq,
            snapshot_version: snap.version,
        };
        start.fold_tail(events, max_seq).map(Some)
    }

    /// The snapshot of this state, when the stream has grown `every` events past its last
    /// snapshot (and the kind takes snapshots; `every` 0 turns them off). Marks the
    /// snapshot as taken.
    pub fn snapshot_due(&mut self, every: u64) -> Option<PendingSnapshot<D>> {
        let format = D::SNAPSHOT_FORMAT?;
        if every == 0 || self.seq == 0 || self.version < self.snapshot_version + every {
            return None;
        }
        self.snapshot_version = self.version;
        Some(PendingSnapshot {
            stream: self.stream.clone(),
            format,
            version: self.version,
            seq: self.seq,
            state: self.state.clone(),
        })
    }

    /// Decides `cmd` on the state; events come with the append request that expects this
    /// version.
    pub fn decide(
        &self,
        cmd: &D::Command,
        actor: latchkey_domain::Actor,
        command_id: Uuid,
    ) -> Result<Decided<D>, D::Error> {
        let events = D::decide(&self.state, cmd)?;
        if events.is_empty() {
            return Ok(Decided::Nothing);
        }
        let req = AppendRequest {
            stream: self.stream.clone(),
            expected: ExpectedVersion::Exact(self.version),
            events: events.iter().cloned().map(D::wrap).collect(),
            command_id,
            actor,
        };
        Ok(Decided::Append(events, req))
    }

    /// Takes in the outcome of appending `events`: evolves on a fresh append, reloads when
    /// the store answered with an earlier result or another writer moved the stream.
    pub fn settle(
        &mut self,
        store: &dyn EventStore,
        events: Vec<D::Event>,
        result: Result<Appended, AppendError>,
    ) -> Result<Executed<D>, ExecError<D::Error>> {
        match result {
            Ok(appended) => {
                if appended.replayed {
                    self.reload(store)?;
                } else {
                    let state = Arc::make_mut(&mut self.state);
                    *state = evolve_all::<D>(std::mem::take(state), &events);
                    self.version = appended.last_version;
                    self.seq = appended.last_seq;
                }
                Ok(Executed {
                    events,
                    last_seq: appended.last_seq,
                    state: self.state.clone(),
                })
            }
            Err(AppendError::Conflict { .. }) => {
                Err(self.reload(store).err().unwrap_or(ExecError::Conflict))
            }
            Err(AppendError::Store(e)) => Err(e.into()),
            Err(e) => Err(ExecError::Store(e.to_string())),
        }
    }

    /// The result of a command that appended nothing.
    fn unchanged<E>(&self) -> Result<Executed<D>, ExecError<E>> {
        Ok(Executed {
            events: Vec::new(),
            last_seq: 0,
            state: self.state.clone(),
        })
    }

    /// Reloads from the log after another writer moved the stream.
    fn reload<E>(&mut self, store: &dyn EventStore) -> Result<(), ExecError<E>> {
        *self = Self::load(store, self.stream.clone())?;
        Ok(())
    }
}

/// The whole write path, blocking, for tools without a runtime (offline admin writes):
/// load, decide, append with the expected version, evolve, exactly as an entity does.
pub fn execute_blocking<D: Kind>(
    store: &dyn EventStore,
    stream: StreamId,
    cmd: &D::Command,
    actor: latchkey_domain::Actor,
) -> Result<Executed<D>, ExecError<D::Error>> {
    let mut loaded = Loaded::<D>::load(store, stream)?;
    match loaded
        .decide(cmd, actor, Uuid::now_v7())
        .map_err(ExecError::Domain)?
    {
        Decided::Nothing => loaded.unchanged(),
        Decided::Append(events, req) => {
            let result = store.append_blocking(req);
            loaded.settle(store, events, result)
        }
    }
}

/// The actor hosting one aggregate instance.
pub struct Entity<D: Kind> {
    loaded: Loaded<D>,
    store: Arc<dyn EventStore>,
    last_active: Instant,
    passivate_after: Duration,
    snapshot_every: u64,
    shard: ShardMap<D>,
}

impl<D: Kind> Entity<D> {
    /// Rebuilds an entity from its stream (version 0 and the default state when empty).
    pub(crate) fn rehydrate(
        stream: StreamId,
        store: Arc<dyn EventStore>,
        settings: &EntitySettings,
        shard: ShardMap<D>,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            loaded: Loaded::load(store.as_ref(), stream)?,
            store,
            last_active: Instant::now(),
            passivate_after: settings.passivate_after,
            snapshot_every: settings.snapshot_every,
            shard,
        })
    }

    /// Writes a snapshot on the blocking pool when one is due, so no command waits for it.
    fn snapshot_if_due(&mut self) {
        if let Some(pending) = self.loaded.snapshot_due(self.snapshot_every) {
            let store = self.store.clone();
            tokio::task::spawn_blocking(move || pending.write(store.as_ref()));
        }
    }

    fn passivate(&mut self, ctx: &mut Context<Self>) {
        // Under the shard lock: no sender can pick up this address after it is removed; a
        // message already queued is dropped with the mailbox and its sender retries.
        if let Ok(mut map) = self.shard.lock() {
            if map
                .get(&self.loaded.stream)
                .is_some_and(|a| *a == ctx.address())
            {
                map.remove(&self.loaded.stream);
            }
        }
        ctx.stop();
    }
}

impl<D: Kind> Actor for Entity<D> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // A long fold from event 1 (no snapshot, or an old one) is not repeated next time.
        self.snapshot_if_due();
        let tick = (self.passivate_after / 4).max(Duration::from_millis(50));
        ctx.run_interval(tick, |act, ctx| {
            if act.last_active.elapsed() >= act.passivate_after {
                act.passivate(ctx);
            }
        });
    }
}

impl<D: Kind> Handler<Inspect<D>> for Entity<D> {
    type Result = ();

    fn handle(&mut self, msg: Inspect<D>, _ctx: &mut Context<Self>) {
        self.last_active = Instant::now();
        self.refresh_if_behind();
        let _ = msg.reply.send(D::State::clone(&self.loaded.state));
    }
}

/// Most times a command is decided again after version conflicts before it gives up
/// (503): each conflict means another node wrote this entity first.
const CONFLICT_RETRIES: u32 = 8;

/// A command decided again after a version conflict (the entity has reloaded).
struct Retry<D: Kind> {
    msg: Execute<D>,
    attempt: u32,
}

impl<D: Kind> Message for Retry<D> {
    type Result = ();
}

impl<D: Kind> Handler<Retry<D>> for Entity<D> {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: Retry<D>, _ctx: &mut Context<Self>) -> Self::Result {
        self.run(msg.msg, msg.attempt)
    }
}

impl<D: Kind> Handler<Execute<D>> for Entity<D> {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: Execute<D>, _ctx: &mut Context<Self>) -> Self::Result {
        self.last_active = Instant::now();
        self.run(msg, 0)
    }
}

impl<D: Kind> Entity<D> {
    /// On a shared log (JetStream), another node may have moved the stream since this
    /// entity loaded it: reload when the local copy is ahead, so reads and decisions start
    /// from the newest state this node knows. A no-op on sled.
    fn refresh_if_behind(&mut self) {
        if !self.store.is_shared() {
            return;
        }
        match self.store.stream_head(&self.loaded.stream) {
            Ok((v, _)) if v > self.loaded.version => {
                if let Err(e) = self.loaded.reload::<()>(self.store.as_ref()) {
                    tracing::warn!(error = %e, stream = %self.loaded.stream, "reloading an entity failed");
                }
            }
            _ => {}
        }
    }

    /// Decide, append, settle. A version conflict (another node wrote first) has already
    /// reloaded the state; the command is then decided again on it, never applied twice.
    fn run(&mut self, msg: Execute<D>, attempt: u32) -> AtomicResponse<Self, ()> {
        self.refresh_if_behind();
        let Execute {
            cmd,
            actor,
            command_id,
            ack,
            reply,
        } = msg;
        let (events, req) = match self.loaded.decide(&cmd, actor, command_id) {
            Ok(Decided::Append(events, req)) => (events, req),
            Ok(Decided::Nothing) => {
                let _ = reply.send(self.loaded.unchanged());
                return AtomicResponse::new(Box::pin(fut::ready(())));
            }
            Err(e) => {
                let _ = reply.send(Err(ExecError::Domain(e)));
                return AtomicResponse::new(Box::pin(fut::ready(())));
            }
        };
        let append = match ack {
            Ack::Durable => self.store.append(req),
            Ack::Written => self.store.append_written(req),
        };
        AtomicResponse::new(Box::pin(append.into_actor(self).map(
            move |result, act, ctx| {
                let store = act.store.clone();
                match act.loaded.settle(store.as_ref(), events, result) {
                    Err(ExecError::Conflict) if attempt < CONFLICT_RETRIES => {
                        let msg = Execute {
                            cmd,
                            actor,
                            command_id,
                            ack,
                            reply,
                        };
                        ctx.notify(Retry {
                            msg,
                            attempt: attempt + 1,
                        });
                    }
                    result => {
                        let _ = reply.send(result);
                        act.snapshot_if_due();
                        // A finished aggregate (a redeemed challenge) takes no more
                        // commands: stop now instead of idling until the passivation tick.
                        // A late command finds no actor and rehydrates one from the log,
                        // which answers as this would.
                        if D::is_terminal(&act.loaded.state) {
                            act.passivate(ctx);
                        }
                    }
                }
            },
        )))
    }
}

#[cfg(test)]
mod tests;

//! Registries: `id -> Addr` for one kind of entity, sharded over arbiters by a hash of the
//! id so both cores work. A registry spawns and rehydrates entities on first use, answers
//! `Busy` when a bounded mailbox is full (`try_send`, never a waiting `send`), and retries
//! a message that raced an entity's passivation.

use crate::entity::{Ack, Entity, ExecError, Execute, Executed, Inspect, ShardMap};
use crate::kind::Kind;
use actix::prelude::*;
use latchkey_domain::{Actor as Who, StreamId};
use latchkey_store::EventStore;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use uuid::Uuid;

/// How many times a message that raced a stop is re-delivered.
const ATTEMPTS: usize = 3;

/// Entity settings of a registry.
#[derive(Clone, Debug)]
pub struct EntitySettings {
    /// Bound of each entity's mailbox.
    pub mailbox: usize,
    /// Idle time before an entity stops (defaults to the kind's).
    pub passivate_after: Duration,
    /// Events between two snapshots of a stream (0: none); see `Loaded::snapshot_due`.
    pub snapshot_every: u64,
}

struct Shard<D: Kind> {
    arbiter: ArbiterHandle,
    map: ShardMap<D>,
}

/// The registry of one entity kind.
pub struct Registry<D: Kind> {
    shards: Arc<Vec<Shard<D>>>,
    store: Arc<dyn EventStore>,
    settings: EntitySettings,
}

impl<D: Kind> Clone for Registry<D> {
    fn clone(&self) -> Self {
        Self {
            shards: self.shards.clone(),
            store: self.store.clone(),
            settings: self.settings.clone(),
        }
    }
}

impl<D: Kind> Registry<D> {
    /// A registry whose entities live on `arbiters` (one shard each).
    pub fn new(
        store: Arc<dyn EventStore>,
        arbiters: &[ArbiterHandle],
        settings: EntitySettings,
    ) -> Self {
        let shards = arbiters
            .iter()
            .map(|a| Shard {
                arbiter: a.clone(),
                map: Arc::new(Mutex::new(HashMap::new())),
            })
            .collect();
        Self {
            shards: Arc::new(shards),
            store,
            settings,
        }
    }

    /// Runs a command on the entity of `stream`, spawning it if needed; answers once its
    /// events are durable.
    pub async fn execute(
        &self,
        stream: StreamId,
        cmd: D::Command,
        actor: Who,
    ) -> Result<Executed<D>, ExecError<D::Error>> {
        self.execute_as(stream, cmd, actor, Ack::Durable).await
    }

    /// [`Self::execute`], answered as `ack` says. With [`Ack::Written`] the answer may
    /// come before the events are durable: the caller either may lose them harmlessly or
    /// waits for their durability (or a later durable seq of its own) before it answers.
    pub async fn execute_as(
        &self,
        stream: StreamId,
        cmd: D::Command,
        actor: Who,
        ack: Ack,
    ) -> Result<Executed<D>, ExecError<D::Error>> {
        let command_id = Uuid::now_v7();
        for _ in 0..ATTEMPTS {
            let (reply, rx) = oneshot::channel();
            let msg = Execute {
                cmd: cmd.clone(),
                actor,
                command_id,
                ack,
                reply,
            };
            self.deliver(&stream, msg)?;
            match rx.await {
                Ok(result) => return result,
                Err(_) => continue, // the entity stopped with the message queued: respawn
            }
        }
        Err(ExecError::Gone)
    }

    /// The current state of the entity of `stream`.
    pub async fn inspect(&self, stream: StreamId) -> Result<D::State, ExecError<D::Error>> {
        for _ in 0..ATTEMPTS {
            let (reply, rx) = oneshot::channel();
            self.deliver(&stream, Inspect::<D> { reply })?;
            if let Ok(state) = rx.await {
                return Ok(state);
            }
        }
        Err(ExecError::Gone)
    }

    /// Number of live entities (for metrics).
    pub fn live(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.map.lock().map(|m| m.len()).unwrap_or(0))
            .sum()
    }

    fn shard(&self, stream: &StreamId) -> Result<&Shard<D>, ExecError<D::Error>> {
        let mut h = DefaultHasher::new();
        stream.hash(&mut h);
        let n = self.shards.len().max(1);
        self.shards
            .get((h.finish() % n as u64) as usize)
            .ok_or(ExecError::Gone)
    }

    fn deliver<M>(&self, stream: &StreamId, msg: M) -> Result<(), ExecError<D::Error>>
    where
        M: Message<Result = ()> + Send + 'static,
        Entity<D>: Handler<M> + Actor<Context = Context<Entity<D>>>,
    {
        let shard = self.shard(stream)?;
        let mut map = shard.map.lock().map_err(|_| ExecError::Gone)?;
        let mut msg = msg;
        for _ in 0..ATTEMPTS {
            let addr = match map.get(stream) {
                Some(a) => a.clone(),
                None => {
                    let addr = self.spawn(shard, stream)?;
                    map.insert(stream.clone(), addr.clone());
                    addr
                }
            };
            match addr.try_send(msg) {
                Ok(()) => return Ok(()),
                Err(SendError::Full(_)) => return Err(ExecError::Busy),
                Err(SendError::Closed(m)) => {
                    map.remove(stream);
                    msg = m;
                }
            }
        }
        Err(ExecError::Gone)
    }

    fn spawn(
        &self,
        shard: &Shard<D>,
        stream: &StreamId,
    ) -> Result<Addr<Entity<D>>, ExecError<D::Error>> {
        let entity = Entity::<D>::rehydrate(
            stream.clone(),
            self.store.clone(),
            &self.settings,
            shard.map.clone(),
        )?;
        let mailbox = self.settings.mailbox;
        Ok(Entity::start_in_arbiter(&shard.arbiter, move |ctx| {
            ctx.set_mailbox_capacity(mailbox);
            entity
        }))
    }
}

//! The entity actor: one per live aggregate instance, hosting its state and version.
//!
//! It handles one command at a time with no interleaving across the append (an
//! `AtomicResponse`): decide, append with the expected version, evolve, reply. The
//! journal's version check still guards against two live actors for one id.

use crate::kind::Kind;
use actix::prelude::*;
use latchkey_domain::{evolve_all, StreamId};
use latchkey_store::{
    AppendError, AppendRequest, EventStore, ExpectedVersion, SledStore, StoreError,
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
    /// The state after the events.
    pub state: D::State,
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
            StoreError::Busy | StoreError::Poisoned => ExecError::Busy,
            other => ExecError::Store(other.to_string()),
        }
    }
}

/// Run a command. Replies through the oneshot so the sender can use `try_send`.
pub struct Execute<D: Kind> {
    /// The command.
    pub cmd: D::Command,
    /// Who asks (recorded in the envelopes).
    pub actor: latchkey_domain::Actor,
    /// Idempotency key of this command.
    pub command_id: Uuid,
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

/// The actor hosting one aggregate instance.
pub struct Entity<D: Kind> {
    stream: StreamId,
    state: D::State,
    version: u64,
    store: Arc<SledStore>,
    last_active: Instant,
    passivate_after: Duration,
    shard: ShardMap<D>,
}

impl<D: Kind> Entity<D> {
    /// Rebuilds an entity from its stream (version 0 and the default state when empty).
    pub(crate) fn rehydrate(
        stream: StreamId,
        store: Arc<SledStore>,
        passivate_after: Duration,
        shard: ShardMap<D>,
    ) -> Result<Self, StoreError> {
        let (state, version) = load::<D>(&store, &stream)?;
        Ok(Self {
            stream,
            state,
            version,
            store,
            last_active: Instant::now(),
            passivate_after,
            shard,
        })
    }

    fn passivate(&mut self, ctx: &mut Context<Self>) {
        // Under the shard lock: no sender can pick up this address after it is removed; a
        // message already queued is dropped with the mailbox and its sender retries.
        if let Ok(mut map) = self.shard.lock() {
            if map.get(&self.stream).is_some_and(|a| *a == ctx.address()) {
                map.remove(&self.stream);
            }
        }
        ctx.stop();
    }
}

/// Folds a stream into (state, version): what an entity does when it starts, and what
/// offline tools do before they decide.
pub fn load<D: Kind>(store: &SledStore, stream: &StreamId) -> Result<(D::State, u64), StoreError> {
    let mut state = D::State::default();
    let mut version = 0;
    for rec in store.read_stream(stream, 1)? {
        let rec = rec?;
        if let Some(e) = D::extract(&rec.event) {
            state = D::evolve(state, e);
        }
        version = rec.envelope.version;
    }
    Ok((state, version))
}

impl<D: Kind> Actor for Entity<D> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
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
        let _ = msg.reply.send(self.state.clone());
    }
}

impl<D: Kind> Handler<Execute<D>> for Entity<D> {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: Execute<D>, _ctx: &mut Context<Self>) -> Self::Result {
        self.last_active = Instant::now();
        let Execute {
            cmd,
            actor,
            command_id,
            reply,
        } = msg;
        let events = match D::decide(&self.state, &cmd) {
            Ok(events) => events,
            Err(e) => {
                let _ = reply.send(Err(ExecError::Domain(e)));
                return AtomicResponse::new(Box::pin(fut::ready(())));
            }
        };
        if events.is_empty() {
            let _ = reply.send(Ok(Executed {
                events,
                last_seq: 0,
                state: self.state.clone(),
            }));
            return AtomicResponse::new(Box::pin(fut::ready(())));
        }
        let append = self.store.append(AppendRequest {
            stream: self.stream.clone(),
            expected: ExpectedVersion::Exact(self.version),
            events: events.iter().cloned().map(D::wrap).collect(),
            command_id,
            actor,
        });
        AtomicResponse::new(Box::pin(append.into_actor(self).map(
            move |result, act, _ctx| {
                let outcome = match result {
                    Ok(appended) if !appended.replayed => {
                        act.state = evolve_all::<D>(std::mem::take(&mut act.state), &events);
                        act.version = appended.last_version;
                        Ok(Executed {
                            events,
                            last_seq: appended.last_seq,
                            state: act.state.clone(),
                        })
                    }
                    Ok(appended) => act.reload().map(|()| Executed {
                        events,
                        last_seq: appended.last_seq,
                        state: act.state.clone(),
                    }),
                    Err(AppendError::Conflict { .. }) => {
                        Err(act.reload().err().unwrap_or(ExecError::Conflict))
                    }
                    Err(AppendError::Store(e)) => Err(e.into()),
                    Err(e) => Err(ExecError::Store(e.to_string())),
                };
                let _ = reply.send(outcome);
            },
        )))
    }
}

impl<D: Kind> Entity<D> {
    /// Reloads from the log after another writer moved the stream.
    fn reload<E>(&mut self) -> Result<(), ExecError<E>> {
        let (state, version) = load::<D>(&self.store, &self.stream)?;
        self.state = state;
        self.version = version;
        Ok(())
    }
}

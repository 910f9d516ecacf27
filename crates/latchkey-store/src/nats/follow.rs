//! The follower: one thread that consumes the stream in order from the last applied
//! sequence and hands each message to the [`Mirror`]. Any failure (a NATS node gone, a
//! consumer lost, a local write error) recreates the consumer from the last applied
//! sequence after a short backoff, so nothing is skipped and nothing applied twice.
//! Before a batch that posts bodies is applied, their secrets are fetched from the keys
//! stream; a fetch that fails is a failure like any other (retried), a secret that is gone
//! was erased.

use super::mirror::{Mirror, Secrets};
use super::wire::Batch;
use super::{keys, Shared};
use crate::error::{StoreError, StoreResult};
use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
use futures_util::StreamExt;
use latchkey_domain::MessageId;
use std::sync::Arc;
use std::time::Duration;

/// How long the follower may make no progress towards an acknowledged append.
const STALL: Duration = Duration::from_secs(1);

/// Longest pause between two attempts to reopen the consumer.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Starts the follower thread.
pub(crate) fn start(
    shared: Arc<Shared>,
    handle: tokio::runtime::Handle,
) -> StoreResult<std::thread::JoinHandle<()>> {
    let mirror = Mirror::open(shared.local.clone())?;
    std::thread::Builder::new()
        .name("latchkey-follow".into())
        .spawn(move || handle.block_on(run(shared, mirror)))
        .map_err(|source| StoreError::Io {
            context: "spawn the stream follower".into(),
            source,
        })
}

async fn run(shared: Arc<Shared>, mut mirror: Mirror) {
    let mut stop = shared.stop.subscribe();
    let mut backoff = Duration::from_millis(20);
    loop {
        if *stop.borrow() {
            return;
        }
        match follow_once(&shared, &mut mirror, &mut stop).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, applied = mirror.applied(), "following the stream failed; reopening");
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Follows until stopped (`Ok`) or until something fails.
async fn follow_once(
    shared: &Shared,
    mirror: &mut Mirror,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> StoreResult<()> {
    let unavailable = StoreError::Unavailable;
    let stream = shared
        .js
        .get_stream_no_info(&shared.opts.stream)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: mirror.applied() + 1,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| unavailable(format!("create consumer: {e}")))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| unavailable(format!("consume: {e}")))?;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + STALL, STALL);
    let mut at_last_tick = mirror.applied();
    loop {
        let next = tokio::select! {
            _ = stop.changed() => return Ok(()),
            _ = tick.tick() => {
                // An acknowledged append this node has not received, and no progress for a
                // whole tick: the consumer is stuck (its server went away); reopen it.
                let stuck = *shared.wanted.borrow() > mirror.applied()
                    && mirror.applied() == at_last_tick;
                at_last_tick = mirror.applied();
                if stuck {
                    return Err(StoreError::Unavailable("the consumer stalled".into()));
                }
                continue;
            }
            m = messages.next() => m,
        };
        let msg = match next {
            Some(Ok(m)) => m,
            Some(Err(e)) => return Err(unavailable(format!("consume: {e}"))),
            None => return Err(unavailable("the consumer ended".into())),
        };
        let seq = msg
            .info()
            .map_err(|e| unavailable(format!("message info: {e}")))?
            .stream_sequence;
        let batch = Mirror::decode(seq, &msg.payload);
        let secrets = match &batch {
            Some(b) if seq > mirror.applied() => secrets(shared, b).await?,
            _ => Secrets::new(),
        };
        mirror.apply(seq, batch, &secrets)?;
        shared.applied.send_replace(mirror.applied());
    }
}

/// The secrets of the bodies `batch` posts, from the keys stream (an erased one is absent).
async fn secrets(shared: &Shared, batch: &Batch) -> StoreResult<Secrets> {
    let mut out = Secrets::new();
    for b in &batch.bodies {
        let id = MessageId(b.message_id);
        if let Some(secret) = keys::fetch(&shared.js, &shared.opts, &id).await? {
            out.insert(b.message_id, secret);
        }
    }
    Ok(out)
}

//! WebSocket tickets in a JetStream KV bucket (`<log stream>_TICKETS`, stream
//! `KV_<log stream>_TICKETS`): one key per ticket, the hex SHA-256 of the raw ticket, whose
//! value is the 40-byte [`Ticket`]; history 1, and a max age of the ticket's lifetime, so
//! JetStream drops what nobody redeemed.
//!
//! Redeeming is atomic across nodes: read the entry and its revision, then put a delete
//! marker with `Nats-Expected-Last-Subject-Sequence` set to that revision. When two nodes
//! redeem one ticket at once, JetStream accepts exactly one marker; the other node gets
//! "wrong last sequence" and answers as for an unknown ticket. Must not: hold a raw ticket.

use super::connect::NatsOptions;
use crate::error::{StoreError, StoreResult};
use crate::tickets::{Ticket, TicketFuture, TicketStore, TICKET_TTL_SECS};
use async_nats::jetstream::{self, kv, stream};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

/// Most bytes the bucket holds (about 200,000 tickets); past it a mint answers 503.
const MAX_BYTES: i64 = 64 << 20;

/// The ticket bucket of one node: opened (or created) on first use, so a node that never
/// mints never touches it, and an outage at start does not stop the node.
#[derive(Clone)]
pub(crate) struct TicketBucket {
    js: jetstream::Context,
    opts: NatsOptions,
    handle: tokio::runtime::Handle,
    kv: Arc<OnceCell<kv::Store>>,
}

/// The bucket name that goes with the log stream `log`.
pub fn bucket_name(log: &str) -> String {
    format!("{log}_TICKETS")
}

/// A ticket's key: the hex SHA-256 of the raw ticket.
fn key(hash: &[u8; 32]) -> String {
    hex::encode(hash)
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("{what} a WebSocket ticket: {e}"))
}

impl TicketBucket {
    /// The bucket on `js`, run on the NATS runtime `handle`.
    pub(crate) fn new(
        js: jetstream::Context,
        opts: NatsOptions,
        handle: tokio::runtime::Handle,
    ) -> Self {
        Self {
            js,
            opts,
            handle,
            kv: Arc::new(OnceCell::new()),
        }
    }

    /// The bucket's stream, as a KV bucket lays it out: file storage, the log's replicas,
    /// one message per key, rollups and direct gets allowed. Made by hand because
    /// async-nats 0.51's `create_key_value` first asks for the account's info, whose
    /// answer from nats-server 2.9 it cannot decode.
    fn stream_config(&self) -> stream::Config {
        let bucket = bucket_name(&self.opts.stream);
        stream::Config {
            name: format!("KV_{bucket}"),
            description: Some("latchkey: single-use WebSocket tickets by SHA-256".into()),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_bytes: MAX_BYTES,
            max_age: Duration::from_secs(TICKET_TTL_SECS.unsigned_abs()),
            storage: stream::StorageType::File,
            num_replicas: self.opts.replicas.max(1),
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            ..Default::default()
        }
    }

    /// Opens the bucket, creating it when missing (two nodes racing both end up with it).
    async fn bucket(&self) -> StoreResult<&kv::Store> {
        self.kv
            .get_or_try_init(|| async {
                let name = bucket_name(&self.opts.stream);
                if let Ok(kv) = self.js.get_key_value(&name).await {
                    return Ok(kv);
                }
                let created = self.js.create_stream(self.stream_config()).await;
                match self.js.get_key_value(&name).await {
                    Ok(kv) => Ok(kv),
                    Err(e) => Err(match created {
                        Err(c) => unavailable("create the bucket for", c),
                        Ok(_) => unavailable("open the bucket for", e),
                    }),
                }
            })
            .await
    }

    /// Runs `f` on the NATS runtime, bounded by twice the store's timeout.
    fn run<T: Send + 'static, Fut>(&self, f: impl FnOnce(Self) -> Fut) -> TicketFuture<T>
    where
        Fut: std::future::Future<Output = StoreResult<T>> + Send + 'static,
    {
        let limit = self.opts.timeout * 2;
        let task = self
            .handle
            .spawn(tokio::time::timeout(limit, f(self.clone())));
        Box::pin(async move {
            match task.await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(unavailable("store", "JetStream did not answer in time")),
                Err(_) => Err(StoreError::Closed),
            }
        })
    }
}

impl TicketStore for TicketBucket {
    fn put(&self, hash: [u8; 32], ticket: Ticket) -> TicketFuture<()> {
        self.run(move |b| async move {
            let kv = b.bucket().await?;
            let value = ticket.encode().to_vec().into();
            kv.put(key(&hash), value)
                .await
                .map(|_| ())
                .map_err(|e| unavailable("store", e))
        })
    }

    fn take(&self, hash: [u8; 32]) -> TicketFuture<Option<Ticket>> {
        self.run(move |b| async move {
            let kv = b.bucket().await?;
            let k = key(&hash);
            let entry = kv.entry(&k).await.map_err(|e| unavailable("read", e))?;
            let Some(entry) = entry.filter(|e| e.operation == kv::Operation::Put) else {
                return Ok(None);
            };
            match kv.delete_expect_revision(&k, Some(entry.revision)).await {
                Ok(()) => Ok(Ticket::decode(&entry.value)),
                // Another node spent it between the read and the delete.
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
                Err(e) => Err(unavailable("spend", e)),
            }
        })
    }

    fn forget(&self, hash: [u8; 32]) -> TicketFuture<()> {
        self.run(move |b| async move {
            let kv = b.bucket().await?;
            kv.purge(key(&hash))
                .await
                .map_err(|e| unavailable("drop", e))
        })
    }
}

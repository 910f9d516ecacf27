//! Publishing an append to JetStream and waiting for it to come back through the local
//! copy; and catch-up, the wait for the stream's last sequence.
//!
//! Bodies: before the batch is published, the secret of every body it posts is published
//! to the keys stream, and the key of every message it deletes is erased there, each
//! acknowledged first (the sled journal's order: keys durable before the event). The
//! batch carries the bodies' ciphertexts.

use super::mirror;
use super::wire::{self, Batch, BatchBody, BatchEvent};
use super::{keys, Shared};
use crate::bodies;
use crate::codec;
use crate::error::{AppendError, StoreError, StoreResult};
use crate::journal::CommandRecord;
use crate::{AppendRequest, Appended, EventStore, ExpectedVersion};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::HeaderMap;
use latchkey_domain::{Event, RoomEvent, Timestamp, SCHEMA};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Appends one command's events as one message; resolves after JetStream acknowledged it
/// and this node applied it.
pub(crate) async fn append(
    shared: Arc<Shared>,
    req: AppendRequest,
) -> Result<Appended, AppendError> {
    if let Some(done) = known_command(&shared, &req)? {
        return Ok(done);
    }
    let (version, _) = shared.local.stream_head(&req.stream)?;
    let expected_subject_seq = match req.expected {
        ExpectedVersion::Any => None,
        ExpectedVersion::Exact(v) if v == version => {
            Some(mirror::subject_seq(&shared.nats, &req.stream)?)
        }
        ExpectedVersion::Exact(v) => return Err(conflict(&shared, &req, v).await),
    };
    if req.events.is_empty() {
        return Ok(Appended {
            first_version: version + 1,
            last_version: version,
            first_seq: 0,
            last_seq: 0,
            replayed: false,
        });
    }
    let bodies = keys_first(&shared, &req).await?;
    let ack = match publish(&shared, &req, expected_subject_seq, bodies).await {
        Ok(ack) => ack,
        Err(Published::WrongLastSequence) => {
            let expected = match req.expected {
                ExpectedVersion::Exact(v) => v,
                ExpectedVersion::Any => version,
            };
            return Err(conflict(&shared, &req, expected).await);
        }
        Err(Published::Failed(e)) => return Err(e),
    };
    shared.wanted.send_if_modified(|w| {
        let more = ack.sequence > *w;
        *w = (*w).max(ack.sequence);
        more
    });
    wait_applied(&shared, ack.sequence, shared.opts.timeout).await?;
    let record =
        command_record(&shared, &req.command_id)?.ok_or_else(|| StoreError::Corruption {
            path: "tree commands".into(),
            detail: format!("stream message {} has no command record", ack.sequence),
        })?;
    if record.stream != req.stream {
        return Err(AppendError::CommandReused {
            command_id: req.command_id,
            stream: record.stream,
        });
    }
    Ok(Appended {
        first_version: record.first_version,
        last_version: record.last_version,
        first_seq: record.first_seq,
        last_seq: record.last_seq,
        replayed: ack.duplicate,
    })
}

/// Why a publish did not get an acknowledgement.
enum Published {
    /// Another node wrote to the entity first.
    WrongLastSequence,
    /// Anything else: the append fails (503).
    Failed(AppendError),
}

/// Publishes one command's events as one message with the dedup and expected-sequence
/// headers, and waits for JetStream's acknowledgement (bounded by the timeout).
async fn publish(
    shared: &Shared,
    req: &AppendRequest,
    expected_subject_seq: Option<u64>,
    bodies: Vec<BatchBody>,
) -> Result<async_nats::jetstream::publish::PublishAck, Published> {
    let body = batch(shared, req, bodies)
        .and_then(|b| b.encode())
        .map_err(|e| Published::Failed(e.into()))?;
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", req.command_id.to_string().as_str());
    if let Some(seq) = expected_subject_seq {
        headers.insert(
            "Nats-Expected-Last-Subject-Sequence",
            seq.to_string().as_str(),
        );
    }
    let subject = wire::subject(&req.stream);
    let ack = async {
        shared
            .js
            .publish_with_headers(subject, headers, body.into())
            .await?
            .await
    };
    match tokio::time::timeout(shared.opts.timeout, ack).await {
        Ok(Ok(ack)) => Ok(ack),
        Ok(Err(e)) if e.kind() == PublishErrorKind::WrongLastSequence => {
            Err(Published::WrongLastSequence)
        }
        Ok(Err(e)) => Err(Published::Failed(unavailable(format!("publish: {e}")))),
        Err(_) => Err(Published::Failed(unavailable(format!(
            "JetStream did not acknowledge within {:?}",
            shared.opts.timeout
        )))),
    }
}

/// Publishes the secrets of the bodies `req` posts to the keys stream and erases the keys
/// of the messages it deletes, each acknowledged before the batch goes out; returns the
/// bodies' ciphertexts for the batch. A post without its body, or whose body does not
/// match its hash, is refused as on sled.
async fn keys_first(shared: &Shared, req: &AppendRequest) -> Result<Vec<BatchBody>, AppendError> {
    let mut out = Vec::new();
    for event in &req.events {
        if let Some((id, body)) = bodies::posted_body(event)? {
            keys::publish(&shared.js, &shared.opts, &id, &body.secret).await?;
            out.push(BatchBody {
                message_id: id.0,
                ciphertext: bodies::encrypt(body),
            });
        } else if let Event::Room(RoomEvent::MessageDeleted { message_id, .. }) = event {
            keys::erase(&shared.js, &shared.opts, message_id).await?;
        }
    }
    Ok(out)
}

fn batch(shared: &Shared, req: &AppendRequest, bodies: Vec<BatchBody>) -> StoreResult<Batch> {
    let events = req
        .events
        .iter()
        .map(|e| {
            Ok(BatchEvent {
                event_id: Uuid::now_v7(),
                event_type: e.event_type().to_string(),
                schema: SCHEMA,
                payload: codec::encode(e)?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(Batch {
        format: wire::BATCH_FORMAT,
        stream: req.stream.clone(),
        command_id: req.command_id,
        recorded_at: Timestamp((shared.clock)()),
        actor: req.actor,
        events,
        bodies,
    })
}

/// A command id this node has already applied: its first result (or a refusal when it
/// was used on another stream), as the sled journal answers.
fn known_command(shared: &Shared, req: &AppendRequest) -> Result<Option<Appended>, AppendError> {
    let Some(rec) = command_record(shared, &req.command_id)? else {
        return Ok(None);
    };
    if rec.stream != req.stream {
        return Err(AppendError::CommandReused {
            command_id: req.command_id,
            stream: rec.stream,
        });
    }
    Ok(Some(Appended {
        first_version: rec.first_version,
        last_version: rec.last_version,
        first_seq: rec.first_seq,
        last_seq: rec.last_seq,
        replayed: true,
    }))
}

fn command_record(shared: &Shared, id: &Uuid) -> StoreResult<Option<CommandRecord>> {
    let v = shared
        .local
        .trees()
        .commands
        .get(id.as_bytes())
        .map_err(|e| StoreError::from_sled(e, shared.local.dir()))?;
    v.map(|b| codec::decode(&b, "tree commands")).transpose()
}

/// Another node wrote to the stream first: catch up so that the caller's reload sees it,
/// and report the version found.
async fn conflict(shared: &Arc<Shared>, req: &AppendRequest, expected: u64) -> AppendError {
    if let Err(e) = catch_up(shared.clone(), shared.opts.timeout).await {
        return e.into();
    }
    match shared.local.stream_head(&req.stream) {
        Ok((actual, _)) => AppendError::Conflict {
            stream: req.stream.clone(),
            expected,
            actual,
        },
        Err(e) => e.into(),
    }
}

fn unavailable(msg: String) -> AppendError {
    AppendError::Store(StoreError::Unavailable(msg))
}

/// Waits until the local copy has applied stream sequence `seq`.
async fn wait_applied(shared: &Shared, seq: u64, timeout: Duration) -> StoreResult<()> {
    let mut rx = shared.applied.subscribe();
    let waited = tokio::time::timeout(timeout, rx.wait_for(|a| *a >= seq))
        .await
        .map(|r| r.map(|_| ()));
    match waited {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(StoreError::Closed),
        Err(_) => Err(StoreError::Unavailable(format!(
            "this node has not received stream message {seq} within {timeout:?}"
        ))),
    }
}

/// Asks the stream for its last sequence and waits until the local copy has applied it;
/// returns the local head.
pub(crate) async fn catch_up(shared: Arc<Shared>, timeout: Duration) -> StoreResult<u64> {
    let last = tokio::time::timeout(timeout, async {
        let stream = shared
            .js
            .get_stream(&shared.opts.stream)
            .await
            .map_err(|e| StoreError::Unavailable(format!("stream {}: {e}", shared.opts.stream)))?;
        Ok::<_, StoreError>(stream.cached_info().state.last_sequence)
    })
    .await
    .map_err(|_| StoreError::Unavailable("JetStream did not answer in time".into()))??;
    wait_applied(&shared, last, timeout).await?;
    Ok(shared.local.head())
}

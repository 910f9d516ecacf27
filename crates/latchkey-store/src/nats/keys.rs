//! The keys stream: the per-message secrets of detached bodies on a shared log, one
//! JetStream message per body on `latchkey.key.<message id>` in the stream
//! `<log stream>_KEYS`, apart from the log stream that carries the bodies' ciphertexts.
//!
//! Erasing a body is erasing its key message here with JetStream's message delete, which
//! overwrites the message in the server's files (`no_erase: false`): the log stream
//! stays whole and verifiable, and its ciphertext can no longer be read by anyone,
//! including a node that replays the stream later. Each node keeps its own copy of a
//! secret in its data dir's `body-keys` file, zeroed when it applies the deletion
//! (`mirror`). Must not: hold anything but secrets, or be read by anything but the mirror.

use super::connect::NatsOptions;
use crate::error::{StoreError, StoreResult};
use async_nats::jetstream::{self, stream};
use async_nats::HeaderMap;
use latchkey_domain::MessageId;
use serde::{Deserialize, Serialize};

/// The keys stream's subject filter.
pub const SUBJECTS: &str = "latchkey.key.>";

/// The name of the keys stream that goes with the log stream `log`.
pub fn stream_name(log: &str) -> String {
    format!("{log}_KEYS")
}

/// The subject of a message's secret.
pub fn subject(id: &MessageId) -> String {
    format!("latchkey.key.{}", id.0)
}

fn unavailable(what: &str, id: &MessageId, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("{what} the key of message {}: {e}", id.0))
}

/// Publishes the secret of message `id` and waits for JetStream's acknowledgement
/// (bounded by the timeout). A retry inside the duplicate window is dropped by JetStream.
pub(crate) async fn publish(
    js: &jetstream::Context,
    opts: &NatsOptions,
    id: &MessageId,
    secret: &[u8; 32],
) -> StoreResult<()> {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", format!("key-{}", id.0).as_str());
    let ack = async {
        js.publish_with_headers(subject(id), headers, secret.to_vec().into())
            .await?
            .await
    };
    match tokio::time::timeout(opts.timeout, ack).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(unavailable("publish", id, e)),
        Err(_) => Err(unavailable("publish", id, "no acknowledgement in time")),
    }
}

/// The key message of `id`: its stream sequence and secret; `None` when there is none
/// (erased, or never published).
async fn find(
    js: &jetstream::Context,
    opts: &NatsOptions,
    id: &MessageId,
) -> StoreResult<Option<(u64, [u8; 32])>> {
    use async_nats::jetstream::stream::LastRawMessageErrorKind;
    let keys = js
        .get_stream_no_info(stream_name(&opts.stream))
        .await
        .map_err(|e| unavailable("find", id, e))?;
    let got = tokio::time::timeout(
        opts.timeout,
        keys.get_last_raw_message_by_subject(&subject(id)),
    )
    .await
    .map_err(|_| unavailable("fetch", id, "no answer in time"))?;
    match got {
        Ok(m) => match <[u8; 32]>::try_from(m.payload.as_ref()) {
            Ok(secret) => Ok(Some((m.sequence, secret))),
            Err(_) => Err(StoreError::Corruption {
                path: format!("stream {}", stream_name(&opts.stream)),
                detail: format!("the key of message {} is not 32 bytes", id.0),
            }),
        },
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(unavailable("fetch", id, e)),
    }
}

/// The secret of message `id`; `None` once erased.
pub(crate) async fn fetch(
    js: &jetstream::Context,
    opts: &NatsOptions,
    id: &MessageId,
) -> StoreResult<Option<[u8; 32]>> {
    Ok(find(js, opts, id).await?.map(|(_, secret)| secret))
}

/// JetStream's message-delete request, with erase.
#[derive(Serialize)]
struct DeleteRequest {
    seq: u64,
    /// `false`: the server overwrites the message with random data, not just unlinks it.
    no_erase: bool,
}

/// JetStream's answer to a message delete.
#[derive(Deserialize)]
struct DeleteStatus {
    success: bool,
}

/// Erases the key message of `id` (overwritten in the server's files); `false` when there
/// was none (already erased). Returns only after JetStream confirmed it.
pub(crate) async fn erase(
    js: &jetstream::Context,
    opts: &NatsOptions,
    id: &MessageId,
) -> StoreResult<bool> {
    use async_nats::jetstream::response::Response;
    let Some((seq, _)) = find(js, opts, id).await? else {
        return Ok(false);
    };
    let api = format!("STREAM.MSG.DELETE.{}", stream_name(&opts.stream));
    let req = DeleteRequest {
        seq,
        no_erase: false,
    };
    let answer = tokio::time::timeout(
        opts.timeout,
        js.request::<_, _, Response<DeleteStatus>>(api, &req),
    )
    .await
    .map_err(|_| unavailable("erase", id, "no answer in time"))?
    .map_err(|e| unavailable("erase", id, e))?;
    match answer {
        Response::Ok(DeleteStatus { success: true }) => Ok(true),
        Response::Ok(DeleteStatus { success: false }) => {
            Err(unavailable("erase", id, "JetStream did not delete it"))
        }
        // Gone between the lookup and the delete (erased by another node) is no error.
        Response::Err { error } => match find(js, opts, id).await? {
            None => Ok(false),
            Some(_) => Err(unavailable("erase", id, error)),
        },
    }
}

/// The keys stream's config: like the log's (file, no limits, same replicas), on
/// [`SUBJECTS`].
pub fn config(opts: &NatsOptions) -> stream::Config {
    stream::Config {
        name: stream_name(&opts.stream),
        subjects: vec![SUBJECTS.to_string()],
        ..super::connect::wanted_config(opts)
    }
}

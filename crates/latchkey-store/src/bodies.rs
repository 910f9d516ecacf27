//! Detached message bodies (issue 16): where a `MessagePostedV2`'s body lives, and how
//! erasing it makes it unreadable for good.
//!
//! - The `bodies` tree: message id -> `BodyRecord { slot, ciphertext }`, written by the
//!   journal in the same sled transaction as the envelope, removed in the same transaction
//!   as the `MessageDeleted` that erases it.
//! - The `body-keys` file in the data dir, outside sled: slot `s` (the seq of the post) is
//!   bytes `32*s .. 32*s+32`, the message's secret. The text is encrypted with a key
//!   derived from it (ChaCha20), and the secret also salts `body_hash`.
//!
//! Why the key lives outside sled: sled is log-structured and keeps overwritten and
//! removed values in its segment files until it reuses them, so nothing removed from a
//! tree is gone from the disk. The key file is overwritten in place with zeros on erasure
//! (and fsynced), so the stale ciphertext sled may keep can no longer be read, and the
//! hash in the log can no longer confirm a guess. `proto-docs/storage.md` says exactly
//! what that does and does not guarantee.
//!
//! Must not: decide whether a body may be erased (the room decider does), or write a body
//! or a secret anywhere else.

use crate::codec;
use crate::error::{StoreError, StoreResult};
use crate::Recorded;
use latchkey_domain::{Event, MessageBody, MessageId, RoomEvent};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The name of the tree.
pub(crate) const TREE: &str = "bodies";

/// The key file's name in the data dir.
pub const KEYS_FILE: &str = "body-keys";

/// One stored body. Field order is the byte layout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct BodyRecord {
    /// Where its secret is in the key file (the seq of the post).
    slot: u64,
    /// The text XORed with the ChaCha20 keystream of [`cipher_key`].
    ciphertext: Vec<u8>,
}

/// The `body-keys` file: one 32-byte secret per slot, zeros once erased (or never set).
pub(crate) struct BodyKeys {
    file: File,
    path: PathBuf,
}

impl BodyKeys {
    /// Opens (creating) the key file of a data dir.
    pub(crate) fn open(dir: &Path) -> StoreResult<Self> {
        let path = dir.join(KEYS_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| StoreError::Io {
                context: format!("open {}", path.display()),
                source,
            })?;
        Ok(Self { file, path })
    }

    fn io(&self, what: &str, source: std::io::Error) -> StoreError {
        StoreError::Io {
            context: format!("{what} {}", self.path.display()),
            source,
        }
    }

    /// The secret in `slot`; `None` when it is zeros (erased) or past the end.
    pub(crate) fn get(&self, slot: u64) -> StoreResult<Option<[u8; 32]>> {
        let mut buf = [0u8; 32];
        match self.file.read_exact_at(&mut buf, slot.saturating_mul(32)) {
            Ok(()) => Ok((buf != [0u8; 32]).then_some(buf)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(self.io("read", e)),
        }
    }

    /// Writes `secret` (zeros to erase) into `slot`; durable only after [`Self::sync`].
    pub(crate) fn put(&self, slot: u64, secret: &[u8; 32]) -> StoreResult<()> {
        self.file
            .write_all_at(secret, slot.saturating_mul(32))
            .map_err(|e| self.io("write", e))
    }

    /// `fdatasync`s the file.
    pub(crate) fn sync(&self) -> StoreResult<()> {
        self.file.sync_data().map_err(|e| self.io("sync_data", e))
    }
}

/// The cipher key of a body: derived, so the secret itself never keys two things.
fn cipher_key(secret: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"latchkey-body-cipher-v1\0");
    h.update(secret);
    h.finalize().into()
}

/// XORs `data` with the keystream of `secret` (ChaCha20, stream 0, from block 0). Each
/// secret encrypts exactly one text, so a fixed nonce is safe.
fn apply_keystream(secret: &[u8; 32], data: &mut [u8]) {
    let mut rng = ChaCha20Rng::from_seed(cipher_key(secret));
    let mut stream = vec![0u8; data.len()];
    rng.fill_bytes(&mut stream);
    for (d, k) in data.iter_mut().zip(stream) {
        *d ^= k;
    }
}

/// The key of a message in the tree.
pub(crate) fn key(id: &MessageId) -> [u8; 16] {
    *id.0.as_bytes()
}

/// A body as its stored record bytes, its secret going to `slot`.
pub(crate) fn encode(body: &MessageBody, slot: u64) -> StoreResult<Vec<u8>> {
    record(slot, encrypt(body))
}

/// The ciphertext of a body: its text XORed with the keystream of its secret. What a
/// JetStream batch carries; the secret travels apart (the keys stream).
pub(crate) fn encrypt(body: &MessageBody) -> Vec<u8> {
    let mut ciphertext = body.text.as_bytes().to_vec();
    apply_keystream(&body.secret, &mut ciphertext);
    ciphertext
}

/// The stored record of a ciphertext whose secret goes to `slot`.
pub(crate) fn record(slot: u64, ciphertext: Vec<u8>) -> StoreResult<Vec<u8>> {
    codec::encode(&BodyRecord { slot, ciphertext })
}

/// The body of a ciphertext under `secret`, if it is UTF-8 and matches `hash` (the hash
/// the log commits to); `None` otherwise.
pub(crate) fn decrypt(ciphertext: &[u8], secret: [u8; 32], hash: &[u8; 32]) -> Option<MessageBody> {
    let mut text = ciphertext.to_vec();
    apply_keystream(&secret, &mut text);
    let body = MessageBody {
        text: String::from_utf8(text).ok()?,
        secret,
    };
    (body.hash() == *hash).then_some(body)
}

/// The body a `MessagePostedV2` carries, checked against its hash; `None` for other
/// events. A V2 post without its body, or whose body does not match its hash, is
/// refused: the log would commit to a body that was never stored.
pub(crate) fn posted_body(event: &Event) -> StoreResult<Option<(MessageId, &MessageBody)>> {
    let Event::Room(RoomEvent::MessagePostedV2 {
        message_id,
        body,
        body_hash,
        ..
    }) = event
    else {
        return Ok(None);
    };
    let body = body.as_ref().ok_or_else(|| {
        StoreError::Encode(format!(
            "message {} is posted without its body",
            message_id.0
        ))
    })?;
    if body.hash() != *body_hash {
        return Err(StoreError::Encode(format!(
            "message {} does not match its body hash",
            message_id.0
        )));
    }
    Ok(Some((*message_id, body)))
}

/// The slot a stored record's secret is in.
pub(crate) fn slot_of(bytes: &[u8], id: &MessageId) -> StoreResult<u64> {
    let rec: BodyRecord = codec::decode(bytes, format_args!("body of message {}", id.0))?;
    Ok(rec.slot)
}

/// A stored record back into the body; `None` when its secret is erased.
pub(crate) fn decode(
    bytes: &[u8],
    id: &MessageId,
    keys: &BodyKeys,
) -> StoreResult<Option<MessageBody>> {
    let rec: BodyRecord = codec::decode(bytes, format_args!("body of message {}", id.0))?;
    let Some(secret) = keys.get(rec.slot)? else {
        return Ok(None);
    };
    let mut text = rec.ciphertext;
    apply_keystream(&secret, &mut text);
    let text = String::from_utf8(text).map_err(|_| StoreError::Corruption {
        path: format!("tree {TREE}"),
        detail: format!("the body of message {} does not decrypt to UTF-8", id.0),
    })?;
    Ok(Some(MessageBody { text, secret }))
}

/// What an event does to the bodies: write a posted body, or erase one.
pub(crate) enum BodyWrite {
    /// Store this record under this key, and this secret in this slot.
    Put {
        key: [u8; 16],
        record: Vec<u8>,
        slot: u64,
        secret: [u8; 32],
    },
    /// Remove the record, and zero the slot of its secret (if it had a record).
    Erase { key: [u8; 16], slot: Option<u64> },
}

/// The body write an event at `seq` carries, if any. A V2 post without its body, or
/// whose body does not match its hash, is refused: the log would commit to a body that
/// was never stored.
pub(crate) fn write_of(
    event: &Event,
    seq: u64,
    tree: &sled::Tree,
    map: impl Fn(sled::Error) -> StoreError,
) -> StoreResult<Option<BodyWrite>> {
    if let Some((message_id, body)) = posted_body(event)? {
        return Ok(Some(BodyWrite::Put {
            key: key(&message_id),
            record: encode(body, seq)?,
            slot: seq,
            secret: body.secret,
        }));
    }
    erase_of(event, tree, map)
}

/// The erasure a `MessageDeleted` carries (its record's slot looked up in `tree`), if
/// `event` is one.
pub(crate) fn erase_of(
    event: &Event,
    tree: &sled::Tree,
    map: impl Fn(sled::Error) -> StoreError,
) -> StoreResult<Option<BodyWrite>> {
    match event {
        Event::Room(RoomEvent::MessageDeleted { message_id, .. }) => {
            let slot = match tree.get(key(message_id)).map_err(map)? {
                Some(bytes) => Some(slot_of(&bytes, message_id)?),
                None => None,
            };
            Ok(Some(BodyWrite::Erase {
                key: key(message_id),
                slot,
            }))
        }
        _ => Ok(None),
    }
}

impl BodyWrite {
    /// Writes (or zeros) the secret in the key file; durable after `BodyKeys::sync`.
    pub(crate) fn write_key(&self, keys: &BodyKeys) -> StoreResult<()> {
        match self {
            BodyWrite::Put { slot, secret, .. } => keys.put(*slot, secret),
            BodyWrite::Erase { slot: Some(s), .. } => keys.put(*s, &[0u8; 32]),
            BodyWrite::Erase { slot: None, .. } => Ok(()),
        }
    }

    /// Adds the record's write or removal to a batch of the `bodies` tree.
    pub(crate) fn add_to(&self, batch: &mut sled::Batch) {
        match self {
            BodyWrite::Put { key, record, .. } => batch.insert(key, record.as_slice()),
            BodyWrite::Erase { key, .. } => batch.remove(key),
        }
    }
}

/// The id of a detached-body message, if `event` is one.
pub(crate) fn detached_id(event: &Event) -> Option<MessageId> {
    match event {
        Event::Room(RoomEvent::MessagePostedV2 { message_id, .. }) => Some(*message_id),
        _ => None,
    }
}

/// Reads the body of a message; `None` when erased.
pub(crate) fn load(
    tree: &sled::Tree,
    keys: &BodyKeys,
    id: &MessageId,
    map: impl Fn(sled::Error) -> StoreError,
) -> StoreResult<Option<MessageBody>> {
    match tree.get(key(id)).map_err(map)? {
        Some(bytes) => decode(&bytes, id, keys),
        None => Ok(None),
    }
}

/// Puts the stored body back into a decoded `MessagePostedV2` (or leaves `None`).
pub(crate) fn set(rec: &mut Recorded, loaded: Option<MessageBody>) {
    if let Event::Room(RoomEvent::MessagePostedV2 { body, .. }) = &mut rec.event {
        *body = loaded;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_round_trips_and_its_record_holds_neither_text_nor_secret() {
        let dir = tempfile::tempdir().unwrap();
        let keys = BodyKeys::open(dir.path()).unwrap();
        let body = MessageBody {
            text: "attack at dawn".into(),
            secret: [3; 32],
        };
        let id = MessageId(uuid::Uuid::from_u128(1));
        let bytes = encode(&body, 7).unwrap();
        assert!(!bytes.windows(14).any(|w| w == body.text.as_bytes()));
        assert!(!bytes.windows(32).any(|w| w == body.secret));
        keys.put(7, &body.secret).unwrap();
        assert_eq!(decode(&bytes, &id, &keys).unwrap(), Some(body));
        keys.put(7, &[0; 32]).unwrap();
        assert_eq!(decode(&bytes, &id, &keys).unwrap(), None);
        assert_eq!(keys.get(1_000).unwrap(), None, "past the end is no key");
    }
}

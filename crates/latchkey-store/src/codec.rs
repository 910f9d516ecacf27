//! The one module that turns stored values into bytes and back (bincode `=2.0.1` with serde).
//!
//! bincode 3.0.0 is a compile-error tombstone and the crate is unmaintained, so every
//! bincode call lives here: swapping the codec touches this file only. Decoding is bounded
//! by [`DECODE_LIMIT`], so a corrupt length prefix cannot make the process allocate
//! gigabytes, and must consume every byte, so trailing garbage is corruption too.

use crate::error::{StoreError, StoreResult};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Display;

/// The largest value the codec will decode: 1 MiB. Envelopes are a few KiB at most.
pub const DECODE_LIMIT: usize = 1 << 20;

fn config() -> impl bincode::config::Config {
    bincode::config::standard()
}

/// Encodes a value with the log's fixed configuration.
/// Values over [`DECODE_LIMIT`] are refused: they could be written but never read back.
pub fn encode<T: Serialize>(value: &T) -> StoreResult<Vec<u8>> {
    let bytes = bincode::serde::encode_to_vec(value, config())
        .map_err(|e| StoreError::Encode(e.to_string()))?;
    if bytes.len() > DECODE_LIMIT {
        return Err(StoreError::Encode(format!(
            "{} bytes is over the {DECODE_LIMIT}-byte limit",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// Decodes a value, refusing anything over [`DECODE_LIMIT`] or with trailing bytes.
/// `what` names the value in the error (e.g. `log seq 12`); it is formatted only when
/// there is an error, so hot paths pass `format_args!` and allocate nothing for it.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: impl Display) -> StoreResult<T> {
    let corrupt = |detail: String| StoreError::Corruption {
        path: what.to_string(),
        detail,
    };
    if bytes.len() > DECODE_LIMIT {
        return Err(corrupt(format!(
            "{} bytes is over the {DECODE_LIMIT}-byte limit",
            bytes.len()
        )));
    }
    let (value, used) = bincode::serde::decode_from_slice(
        bytes,
        bincode::config::standard().with_limit::<DECODE_LIMIT>(),
    )
    .map_err(|e| corrupt(format!("does not decode: {e}")))?;
    if used != bytes.len() {
        return Err(corrupt(format!(
            "{} trailing bytes after the value",
            bytes.len() - used
        )));
    }
    Ok(value)
}

/// A u64 as 8 big-endian bytes: the key encoding of seqs and versions, so keys sort numerically.
pub fn u64_key(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// Reads an 8-byte big-endian key back; `None` when the slice is not 8 bytes long.
pub fn key_u64(bytes: &[u8]) -> Option<u64> {
    let arr: [u8; 8] = bytes.try_into().ok()?;
    Some(u64::from_be_bytes(arr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_length_prefix_is_refused_without_allocating() {
        // A Vec<u8> whose varint length claims u64::MAX elements.
        let bytes = [0xFFu8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        let err = decode::<Vec<u8>>(&bytes, "test").unwrap_err();
        assert!(matches!(err, StoreError::Corruption { .. }), "{err}");
    }

    #[test]
    fn trailing_bytes_are_corruption() {
        let mut bytes = encode(&7u32).unwrap();
        bytes.push(0);
        assert!(decode::<u32>(&bytes, "test").is_err());
    }

    #[test]
    fn u64_keys_sort_numerically() {
        assert!(u64_key(2) < u64_key(10));
        assert_eq!(key_u64(&u64_key(42)), Some(42));
        assert_eq!(key_u64(&[1, 2]), None);
    }
}

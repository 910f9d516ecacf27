//! Error types of the store: one for I/O and data problems, one for appends a caller branches on.

use latchkey_domain::StreamId;
use std::path::PathBuf;

/// A failure to read, write or decode the log.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data dir is held by another process.
    #[error("data dir {dir} is in use by another latchkey process (pid {pid}); stop it first, or use the online form `latchkey admin --server URL --token-file F ...`")]
    Locked {
        /// The data dir.
        dir: PathBuf,
        /// The PID written in its LOCK file, or "unknown".
        pid: String,
    },
    /// sled reported corruption, or stored bytes do not decode.
    #[error("corruption in {path}: {detail}")]
    Corruption {
        /// The file or tree concerned.
        path: String,
        /// What was found.
        detail: String,
    },
    /// An I/O error, with the file it concerns.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, and on which file.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Any other sled error.
    #[error("sled: {0}")]
    Sled(String),
    /// Encoding a value failed (a value too large, or a bug).
    #[error("encode: {0}")]
    Encode(String),
    /// The journal's queue is full: the caller should answer 503 and retry later.
    #[error("the journal is busy; retry later")]
    Busy,
    /// An earlier flush or fsync failed; the journal refuses appends until a restart.
    #[error("the log could not be made durable earlier; restart the server")]
    Poisoned,
    /// The journal thread is gone (the store is closing).
    #[error("the journal is closed")]
    Closed,
    /// The distributed log cannot be reached or has no quorum (JetStream): nothing was
    /// written; the caller should answer 503 and retry later. The text says what is wrong.
    #[error("the log is unavailable: {0}")]
    Unavailable(String),
    /// This backend cannot do that.
    #[error("not supported on this store: {0}")]
    Unsupported(String),
}

/// The store's result type.
pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// Maps a sled error, naming the data file on corruption.
    pub fn from_sled(err: sled::Error, path: &std::path::Path) -> Self {
        match err {
            sled::Error::Corruption { at, .. } => StoreError::Corruption {
                path: path.display().to_string(),
                detail: format!("sled reported corruption at {at:?}"),
            },
            sled::Error::Io(source) => StoreError::Io {
                context: format!("sled I/O on {}", path.display()),
                source,
            },
            other => StoreError::Sled(other.to_string()),
        }
    }
}

/// Why an append was refused.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The stream is not at the expected version: another writer got there first.
    #[error("version conflict on {stream}: expected {expected}, found {actual}")]
    Conflict {
        /// The stream.
        stream: StreamId,
        /// The version the caller expected.
        expected: u64,
        /// The stream's actual version.
        actual: u64,
    },
    /// The command id was already used on another stream.
    #[error("command id {command_id} was already used on stream {stream}")]
    CommandReused {
        /// The command id.
        command_id: uuid::Uuid,
        /// The stream it was used on first.
        stream: StreamId,
    },
    /// The store failed; nothing of this append is durable.
    #[error(transparent)]
    Store(#[from] StoreError),
}

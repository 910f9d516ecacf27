//! [`Error`]: every way a client call fails, as variants a caller branches on. Messages
//! name servers, codes and fingerprints, never a secret.

use crate::challenge::RelayError;
use latchkey_proto::{codes, ErrorBody};
use std::path::PathBuf;

/// A failed client operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nothing answered at this URL (connection refused, DNS, timeout, TLS).
    #[error("server unreachable: {url} ({reason})")]
    Unreachable {
        /// The URL that was tried.
        url: String,
        /// What the transport said.
        reason: String,
    },
    /// The server answered with an error status and its `{error, message}` body.
    #[error("{}", http_text(*status, body))]
    Http {
        /// The HTTP status.
        status: u16,
        /// The server's error body (`error` is a code from `latchkey_proto::codes`).
        body: ErrorBody,
        /// `Retry-After` in seconds, on 429 and 503.
        retry_after: Option<u64>,
    },
    /// The challenge failed the relay defence; nothing was signed.
    #[error(transparent)]
    Relay(#[from] RelayError),
    /// A key file that cannot be used (missing, encrypted, unsupported type).
    #[error("key: {0}")]
    Key(String),
    /// ssh-agent could not be reached, holds no usable key, or refused to sign.
    #[error("ssh-agent: {0}")]
    Agent(String),
    /// The token file could not be read or written.
    #[error("token store {}: {reason}", path.display())]
    Store {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// No stored token for this server.
    #[error("not signed in to {0}: run `latchkey login --server {0}`")]
    NotSignedIn(String),
    /// The server answered something this client cannot read.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    /// The WebSocket failed in a way reconnecting cannot fix.
    #[error("websocket: {0}")]
    WebSocket(String),
    /// The server closed the WebSocket with 4001: the credential was revoked or expired,
    /// or the user was disabled. The subscription stops.
    #[error("the server closed the connection ({code}): {reason}; sign in again")]
    CredentialClosed {
        /// The close code (4001).
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// A device flow ended without a token.
    #[error("device flow: {code}: {description}")]
    Device {
        /// The OAuth error code (`access_denied`, `expired_token`, ...).
        code: String,
        /// The server's `error_description`.
        description: String,
        /// `Retry-After` in seconds, on 429 and 503.
        retry_after: Option<u64>,
    },
}

impl Error {
    /// The server's error code, when the server answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Http { body, .. } => Some(&body.error),
            Error::Device { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// The text of an HTTP error: the well-known refusals in plain words.
fn http_text(status: u16, body: &ErrorBody) -> String {
    match body.error.as_str() {
        codes::KEY_UNKNOWN => "signature refused: the key is not registered".to_string(),
        codes::SIGNATURE_INVALID => format!("signature refused: {}", body.message),
        codes::CHALLENGE_INVALID => {
            format!("challenge refused: {} (try again)", body.message)
        }
        codes::UNAUTHORIZED => format!(
            "the server refused the token ({}): sign in again with `latchkey login`",
            body.message
        ),
        _ => format!("{status} {}: {}", body.error, body.message),
    }
}

//! The challenge message: the exact bytes a client signs with namespace `latchkey-auth`,
//! built by the server and parsed (and checked) by the client library.
//!
//! Must not: verify signatures (that is `sshkey`) or make the nonce (the caller passes it).
//! The format is a protocol: any change needs a new version line.

use crate::ids::{PairingId, Timestamp};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use thiserror::Error;
use uuid::Uuid;

/// The SSHSIG namespace every latchkey signature must carry.
pub const NAMESPACE: &str = "latchkey-auth";

/// The first line of every message; names the format version.
pub const VERSION_LINE: &str = "latchkey-auth-v1";

/// Why a challenge message (or a server name for one) was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ChallengeError {
    /// The first line is not `latchkey-auth-v1`.
    #[error("not a latchkey-auth-v1 message")]
    WrongVersion,
    /// A line is missing, out of order, or has a bad value.
    #[error("malformed challenge message: bad or missing `{0}` line")]
    BadField(&'static str),
    /// The message parses but is not byte-for-byte what the builder makes (extra lines,
    /// `\r\n`, upper-case UUID, ...). Signing only canonical messages keeps both sides in
    /// agreement about the exact bytes.
    #[error("challenge message is not in canonical form")]
    NotCanonical,
    /// The server name is empty or holds a control character (it must fit on one line).
    #[error("server name must be non-empty and on one line")]
    InvalidServer,
    /// The message names another server: signing it could let a look-alike site relay it.
    #[error("challenge is for server {found:?}, expected {expected:?}")]
    WrongServer {
        /// The server the client meant to talk to.
        expected: String,
        /// The server the message names.
        found: String,
    },
}

/// The fields of a challenge message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChallengeMessage {
    /// `server=`: the public origin or server id the signature is bound to.
    pub server: String,
    /// `challenge=`: the pairing id.
    pub challenge_id: PairingId,
    /// `nonce=`: 32 random bytes.
    pub nonce: [u8; 32],
    /// `key=`: the `SHA256:...` fingerprint of the key that must sign.
    pub fingerprint: String,
    /// `expires=`: unix seconds.
    pub expires: i64,
}

impl ChallengeMessage {
    /// The exact bytes to sign.
    pub fn to_message(&self) -> String {
        render(
            &self.server,
            self.challenge_id,
            &self.nonce,
            &self.fingerprint,
            self.expires,
        )
    }

    /// Refuses a message that names a server other than `expected`. The client library
    /// calls this before signing.
    pub fn check_server(&self, expected: &str) -> Result<(), ChallengeError> {
        if self.server == expected {
            Ok(())
        } else {
            Err(ChallengeError::WrongServer {
                expected: expected.to_string(),
                found: self.server.clone(),
            })
        }
    }
}

/// Checks that a server name can stand on the `server=` line.
pub fn validate_server(server: &str) -> Result<(), ChallengeError> {
    if server.is_empty() || server.chars().any(char::is_control) {
        return Err(ChallengeError::InvalidServer);
    }
    Ok(())
}

/// Builds the message a client signs. Every line ends with `\n`, the last one too.
///
/// `expires_at` is written in whole unix seconds, rounded down.
pub fn build_message(
    server: &str,
    challenge_id: PairingId,
    nonce: &[u8; 32],
    fingerprint: &str,
    expires_at: Timestamp,
) -> String {
    render(
        server,
        challenge_id,
        nonce,
        fingerprint,
        expires_at.as_secs(),
    )
}

/// The nonce as it stands on the `nonce=` line: base64url without padding.
pub fn encode_nonce(nonce: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(nonce)
}

fn render(
    server: &str,
    challenge_id: PairingId,
    nonce: &[u8; 32],
    fingerprint: &str,
    expires: i64,
) -> String {
    format!(
        "{VERSION_LINE}\nserver={server}\nchallenge={}\nnonce={}\nkey={fingerprint}\nexpires={expires}\n",
        challenge_id.0.as_hyphenated(),
        encode_nonce(nonce),
    )
}

/// Parses a message strictly: the six lines in order, each ending in `\n`, nothing else.
pub fn parse_message(message: &str) -> Result<ChallengeMessage, ChallengeError> {
    let mut lines = message.split_inclusive('\n');
    let mut next_line = || lines.next().and_then(|l| l.strip_suffix('\n'));

    if next_line() != Some(VERSION_LINE) {
        return Err(ChallengeError::WrongVersion);
    }
    let mut field = |name: &'static str| {
        next_line()
            .and_then(|l| l.strip_prefix(name))
            .and_then(|l| l.strip_prefix('='))
            .ok_or(ChallengeError::BadField(name))
    };
    let server = field("server")?;
    validate_server(server).map_err(|_| ChallengeError::BadField("server"))?;
    let challenge_id = field("challenge")?
        .parse::<Uuid>()
        .map_err(|_| ChallengeError::BadField("challenge"))?;
    let nonce: [u8; 32] = URL_SAFE_NO_PAD
        .decode(field("nonce")?)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or(ChallengeError::BadField("nonce"))?;
    let fingerprint = field("key")?;
    if !fingerprint.starts_with("SHA256:") {
        return Err(ChallengeError::BadField("key"));
    }
    let expires = field("expires")?
        .parse::<i64>()
        .map_err(|_| ChallengeError::BadField("expires"))?;

    let parsed = ChallengeMessage {
        server: server.to_string(),
        challenge_id: PairingId(challenge_id),
        nonce,
        fingerprint: fingerprint.to_string(),
        expires,
    };
    if parsed.to_message() != message {
        return Err(ChallengeError::NotCanonical);
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (String, ChallengeMessage) {
        let id = PairingId(Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0001));
        let msg = ChallengeMessage {
            server: "https://chat.example".into(),
            challenge_id: id,
            nonce: [0xfb; 32],
            fingerprint: "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s".into(),
            expires: 1_700_000_060,
        };
        let built = build_message(
            &msg.server,
            id,
            &msg.nonce,
            &msg.fingerprint,
            Timestamp(1_700_000_060_999),
        );
        (built, msg)
    }

    #[test]
    fn message_has_the_exact_documented_bytes() {
        let (built, _) = sample();
        assert_eq!(
            built,
            "latchkey-auth-v1\n\
             server=https://chat.example\n\
             challenge=01920000-0000-7000-8000-000000000001\n\
             nonce=-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_s\n\
             key=SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s\n\
             expires=1700000060\n"
        );
    }

    #[test]
    fn parse_round_trips() {
        let (built, msg) = sample();
        assert_eq!(parse_message(&built), Ok(msg.clone()));
        assert_eq!(msg.to_message(), built);
    }

    #[test]
    fn parse_refuses_other_versions_and_shapes() {
        let (built, _) = sample();
        assert_eq!(
            parse_message(&built.replace("-v1", "-v2")),
            Err(ChallengeError::WrongVersion)
        );
        assert_eq!(parse_message(""), Err(ChallengeError::WrongVersion));
        // Missing final newline.
        assert_eq!(
            parse_message(built.trim_end()),
            Err(ChallengeError::BadField("expires"))
        );
        assert_eq!(
            parse_message(&format!("{built}extra\n")),
            Err(ChallengeError::NotCanonical)
        );
        assert_eq!(
            parse_message(&built.replace('\n', "\r\n")),
            Err(ChallengeError::WrongVersion)
        );
        assert_eq!(
            parse_message(&built.replace("challenge=0192", "challenge=0192X")),
            Err(ChallengeError::BadField("challenge"))
        );
        assert_eq!(
            parse_message(&built.replace("nonce=-_v7", "nonce=")),
            Err(ChallengeError::BadField("nonce"))
        );
        assert_eq!(
            parse_message(&built.replace("key=SHA256:", "key=MD5:")),
            Err(ChallengeError::BadField("key"))
        );
        assert_eq!(
            parse_message(&built.replace("server=https://chat.example", "server=")),
            Err(ChallengeError::BadField("server"))
        );
    }

    #[test]
    fn parse_refuses_non_canonical_uuid() {
        let (built, _) = sample();
        let upper = built.replace("000000000001", "00000000000A");
        assert_eq!(parse_message(&upper), Err(ChallengeError::NotCanonical));
        let simple = built.replace(
            "01920000-0000-7000-8000-000000000001",
            "01920000000070008000000000000001",
        );
        assert_eq!(parse_message(&simple), Err(ChallengeError::NotCanonical));
    }

    #[test]
    fn check_server_refuses_another_server() {
        let (_, msg) = sample();
        assert_eq!(msg.check_server("https://chat.example"), Ok(()));
        assert_eq!(
            msg.check_server("https://chat.example.evil"),
            Err(ChallengeError::WrongServer {
                expected: "https://chat.example.evil".into(),
                found: "https://chat.example".into(),
            })
        );
    }

    #[test]
    fn servers_must_fit_on_one_line() {
        assert_eq!(validate_server("srv-1"), Ok(()));
        assert_eq!(validate_server(""), Err(ChallengeError::InvalidServer));
        assert_eq!(
            validate_server("a\nexpires=0"),
            Err(ChallengeError::InvalidServer)
        );
    }
}

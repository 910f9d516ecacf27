//! The relay defence (DESIGN §6, §14): parses a `latchkey-auth-v1` challenge message and
//! refuses it, before anything is signed, unless it names the server this client meant to
//! reach, this client's own key, the `latchkey-auth` namespace, and an expiry ahead.
//!
//! Must not: sign, or do I/O. The caller passes `now`.

/// The SSHSIG namespace of every latchkey sign-in.
pub const NAMESPACE: &str = "latchkey-auth";

/// The first line of every challenge message.
pub const VERSION_LINE: &str = "latchkey-auth-v1";

/// Why a challenge was refused. Nothing was signed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// `server=` names another server: a look-alike site may be relaying the challenge.
    #[error("this challenge names server {named}, not {expected}: refusing to sign")]
    WrongServer {
        /// The `server=` line.
        named: String,
        /// The server this client meant to reach (pinned or given).
        expected: String,
    },
    /// `key=` is not the fingerprint of the key that would sign.
    #[error("this challenge names key {named}, not this client's key {own}: refusing to sign")]
    WrongKey {
        /// The `key=` line.
        named: String,
        /// The signing key's fingerprint.
        own: String,
    },
    /// The server asked for another SSHSIG namespace.
    #[error("this challenge asks for namespace {0:?}, not latchkey-auth: refusing to sign")]
    WrongNamespace(String),
    /// The challenge id in the message differs from the one the answer carried.
    #[error("this challenge's message names another challenge id: refusing to sign")]
    WrongChallengeId,
    /// `expires=` is not ahead of now.
    #[error("this challenge expired at {expires} (now {now}): refusing to sign")]
    Expired {
        /// `expires=`, unix seconds.
        expires: i64,
        /// The client's clock, unix seconds.
        now: i64,
    },
    /// Not a well-formed `latchkey-auth-v1` message.
    #[error("not a latchkey-auth-v1 challenge (bad `{0}` line): refusing to sign")]
    Malformed(&'static str),
}

/// A parsed challenge message (the six lines of DESIGN §6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// `server=`: the public origin or server id the signature is bound to.
    pub server: String,
    /// `challenge=`: the challenge id.
    pub challenge_id: String,
    /// `nonce=`: base64url of 32 random bytes.
    pub nonce: String,
    /// `key=`: the fingerprint of the key asked to sign (`SHA256:...`).
    pub key: String,
    /// `expires=`: unix seconds.
    pub expires: i64,
}

/// What the signer expects of a challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expectation<'a> {
    /// The server id this client meant to reach.
    pub server: &'a str,
    /// The signing key's `SHA256:...` fingerprint.
    pub key: &'a str,
    /// The challenge id the server's answer carried.
    pub challenge_id: &'a str,
    /// The namespace the server's answer asked for.
    pub namespace: &'a str,
    /// Now, in unix seconds.
    pub now: i64,
}

impl Challenge {
    /// Parses a message strictly: six `\n`-terminated lines in order, nothing else.
    pub fn parse(message: &str) -> Result<Challenge, RelayError> {
        let mut lines = message.split_inclusive('\n');
        let mut next = || lines.next().and_then(|l| l.strip_suffix('\n'));
        if next() != Some(VERSION_LINE) {
            return Err(RelayError::Malformed("latchkey-auth-v1"));
        }
        let mut field = |name: &'static str| {
            next()
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix('='))
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .ok_or(RelayError::Malformed(name))
        };
        let server = field("server")?;
        let challenge_id = field("challenge")?;
        let nonce = field("nonce")?;
        let key = field("key")?;
        let expires = field("expires")?
            .parse::<i64>()
            .map_err(|_| RelayError::Malformed("expires"))?;
        if next().is_some() || !key.starts_with("SHA256:") {
            return Err(RelayError::Malformed(if key.starts_with("SHA256:") {
                "end"
            } else {
                "key"
            }));
        }
        Ok(Challenge {
            server,
            challenge_id,
            nonce,
            key,
            expires,
        })
    }

    /// Parses `message` and checks it against what this client expects: the relay
    /// defence. `Ok` is the only answer after which a caller may sign.
    pub fn check(message: &str, expected: &Expectation<'_>) -> Result<Challenge, RelayError> {
        if expected.namespace != NAMESPACE {
            return Err(RelayError::WrongNamespace(expected.namespace.to_string()));
        }
        let c = Challenge::parse(message)?;
        if c.server != expected.server {
            return Err(RelayError::WrongServer {
                named: c.server,
                expected: expected.server.to_string(),
            });
        }
        if c.key != expected.key {
            return Err(RelayError::WrongKey {
                named: c.key,
                own: expected.key.to_string(),
            });
        }
        if c.challenge_id != expected.challenge_id {
            return Err(RelayError::WrongChallengeId);
        }
        if c.expires <= expected.now {
            return Err(RelayError::Expired {
                expires: c.expires,
                now: expected.now,
            });
        }
        Ok(c)
    }
}

/// Now, in unix seconds (the one clock read of the relay defence).
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "SHA256:3lFqKnADSUFbsw+HCxHGlV14nOFM1mA+wH5HYHW7XyA";
    const ID: &str = "0190d6c2-0000-7000-8000-000000000001";

    fn message(server: &str, key: &str, expires: i64) -> String {
        format!(
            "latchkey-auth-v1\nserver={server}\nchallenge={ID}\nnonce=AAAA\nkey={key}\nexpires={expires}\n"
        )
    }

    fn expect(now: i64) -> Expectation<'static> {
        Expectation {
            server: "https://chat.example",
            key: FP,
            challenge_id: ID,
            namespace: NAMESPACE,
            now,
        }
    }

    #[test]
    fn accepts_the_expected_challenge() {
        let c =
            Challenge::check(&message("https://chat.example", FP, 1060), &expect(1000)).unwrap();
        assert_eq!(c.server, "https://chat.example");
        assert_eq!(c.expires, 1060);
    }

    #[test]
    fn refuses_another_server() {
        let err = Challenge::check(&message("https://evil.example", FP, 1060), &expect(1000))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "this challenge names server https://evil.example, not https://chat.example: refusing to sign"
        );
    }

    #[test]
    fn refuses_another_key_an_expired_one_and_another_namespace() {
        let other = "SHA256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        assert!(matches!(
            Challenge::check(&message("https://chat.example", other, 1060), &expect(1000)),
            Err(RelayError::WrongKey { .. })
        ));
        assert_eq!(
            Challenge::check(&message("https://chat.example", FP, 1000), &expect(1000)),
            Err(RelayError::Expired {
                expires: 1000,
                now: 1000
            })
        );
        let mut e = expect(1000);
        e.namespace = "file";
        assert_eq!(
            Challenge::check(&message("https://chat.example", FP, 1060), &e),
            Err(RelayError::WrongNamespace("file".into()))
        );
    }

    #[test]
    fn refuses_malformed_messages() {
        let good = message("s", FP, 1060);
        for bad in [
            good.replace("latchkey-auth-v1", "latchkey-auth-v2"),
            good.trim_end().to_string(),
            format!("{good}extra\n"),
            good.replace("server=s\n", ""),
            good.replace("expires=1060", "expires=soon"),
            good.replace(FP, "MD5:00"),
        ] {
            assert!(
                matches!(Challenge::parse(&bad), Err(RelayError::Malformed(_))),
                "{bad:?}"
            );
        }
    }
}

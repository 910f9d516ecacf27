//! [`Signer`]: SSHSIG signatures in the `latchkey-auth` namespace, the same bytes as
//! `ssh-keygen -Y sign`, from a key file or through ssh-agent. With an agent this process
//! builds the SSHSIG signed-data blob itself and only asks the agent to sign it, so the
//! private key never enters the process.
//!
//! Must not: sign a challenge without the relay check ([`Signer::sign_challenge`] runs it).

use crate::challenge::{now_unix, Challenge, Expectation, NAMESPACE};
use crate::Error;
use latchkey_proto::ChallengeResponse;
use ssh_agent_client_rs::Client as AgentClient;
use ssh_key::{Algorithm, EcdsaCurve, HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};
use std::path::{Path, PathBuf};

/// The hash `ssh-keygen -Y sign` uses.
const HASH: HashAlg = HashAlg::Sha512;

/// Where signatures come from.
pub enum Signer {
    /// An unencrypted OpenSSH private key file.
    KeyFile {
        /// The key (held in memory only while the signer lives).
        key: Box<PrivateKey>,
    },
    /// An ssh-agent holding the private key.
    Agent {
        /// The agent's socket.
        socket: PathBuf,
        /// The key the agent signs with.
        public: Box<PublicKey>,
    },
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            Signer::KeyFile { .. } => "key file",
            Signer::Agent { .. } => "ssh-agent",
        };
        write!(f, "Signer({kind}, {})", self.fingerprint())
    }
}

/// Whether latchkey accepts this key type (DESIGN §6's allowlist).
pub fn accepted(algorithm: &Algorithm) -> bool {
    matches!(
        algorithm,
        Algorithm::Ed25519
            | Algorithm::SkEd25519
            | Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP256
            }
    )
}

impl Signer {
    /// Loads an unencrypted private key file. An encrypted key is refused with a hint to
    /// use ssh-agent, which never hands the key out.
    pub fn from_key_file(path: &Path) -> Result<Signer, Error> {
        let key = PrivateKey::read_openssh_file(path)
            .map_err(|e| Error::Key(format!("{}: {e}", path.display())))?;
        if key.is_encrypted() {
            return Err(Error::Key(format!(
                "{} is encrypted: add it to ssh-agent (`ssh-add {}`) and use --agent",
                path.display(),
                path.display()
            )));
        }
        let algorithm = key.algorithm();
        if algorithm == Algorithm::SkEd25519 {
            return Err(Error::Key(format!(
                "{}: a security-key (sk-) key signs through its hardware: add it to ssh-agent and use --agent",
                path.display()
            )));
        }
        if !accepted(&algorithm) {
            return Err(Error::Key(format!(
                "{}: latchkey does not accept {algorithm} keys (use ed25519, ecdsa P-256 or ed25519-sk)",
                path.display()
            )));
        }
        Ok(Signer::KeyFile { key: Box::new(key) })
    }

    /// Uses the ssh-agent at `socket`. With `want`, the agent must hold that key;
    /// without, the first key of an accepted type is used.
    pub fn from_agent(socket: &Path, want: Option<&PublicKey>) -> Result<Signer, Error> {
        let mut agent = connect(socket)?;
        let identities = agent
            .list_all_identities()
            .map_err(|e| Error::Agent(format!("listing keys: {e}")))?;
        let keys: Vec<PublicKey> = identities
            .into_iter()
            .filter_map(|i| match i {
                ssh_agent_client_rs::Identity::PublicKey(pk) => Some(pk.into_owned()),
                ssh_agent_client_rs::Identity::Certificate(_) => None,
            })
            .collect();
        let found = match want {
            Some(w) => keys.into_iter().find(|k| k.key_data() == w.key_data()),
            None => keys.into_iter().find(|k| accepted(&k.algorithm())),
        };
        let public = found.ok_or_else(|| {
            Error::Agent(match want {
                Some(w) => format!(
                    "the agent does not hold {} (add it with ssh-add)",
                    w.fingerprint(HashAlg::Sha256)
                ),
                None => "the agent holds no ed25519, ecdsa P-256 or ed25519-sk key (add one with ssh-add)"
                    .to_string(),
            })
        })?;
        if !accepted(&public.algorithm()) {
            return Err(Error::Key(format!(
                "latchkey does not accept {} keys",
                public.algorithm()
            )));
        }
        Ok(Signer::Agent {
            socket: socket.to_path_buf(),
            public: Box::new(public),
        })
    }

    /// [`Signer::from_agent`] on `$SSH_AUTH_SOCK`.
    pub fn from_agent_env(want: Option<&PublicKey>) -> Result<Signer, Error> {
        let socket = std::env::var_os("SSH_AUTH_SOCK")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Error::Agent("SSH_AUTH_SOCK is not set: is ssh-agent running?".into())
            })?;
        Signer::from_agent(Path::new(&socket), want)
    }

    /// The public key that signs.
    pub fn public_key(&self) -> PublicKey {
        match self {
            Signer::KeyFile { key } => key.public_key().clone(),
            Signer::Agent { public, .. } => (**public).clone(),
        }
    }

    /// The OpenSSH public key line (`ssh-ed25519 AAAA... comment`).
    pub fn public_key_line(&self) -> Result<String, Error> {
        self.public_key()
            .to_openssh()
            .map_err(|e| Error::Key(format!("encoding the public key: {e}")))
    }

    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        self.public_key().fingerprint(HashAlg::Sha256).to_string()
    }

    /// Signs `message` in `namespace` and returns the armored SSHSIG
    /// (`-----BEGIN SSH SIGNATURE-----`), byte for byte what `ssh-keygen -Y sign` writes.
    pub fn sign(&self, namespace: &str, message: &[u8]) -> Result<String, Error> {
        let sig = match self {
            Signer::KeyFile { key } => key
                .sign(namespace, HASH, message)
                .map_err(|e| Error::Key(format!("signing: {e}")))?,
            Signer::Agent { socket, public } => {
                let data = SshSig::signed_data(namespace, HASH, message)
                    .map_err(|e| Error::Agent(format!("building the signed data: {e}")))?;
                let signature = connect(socket)?
                    .sign(&**public, &data)
                    .map_err(|e| Error::Agent(format!("the agent refused to sign: {e}")))?;
                SshSig::new(public.key_data().clone(), namespace, HASH, signature)
                    .map_err(|e| Error::Agent(format!("assembling the signature: {e}")))?
            }
        };
        sig.to_pem(LineEnding::LF)
            .map_err(|e| Error::Key(format!("encoding the signature: {e}")))
    }

    /// The relay defence, then the signature: checks `challenge` against the server this
    /// client meant to reach (`expected_server`) and its own key, and only then signs
    /// its message in the `latchkey-auth` namespace. On refusal nothing is signed.
    pub fn sign_challenge(
        &self,
        challenge: &ChallengeResponse,
        expected_server: &str,
    ) -> Result<String, Error> {
        let fingerprint = self.fingerprint();
        Challenge::check(
            &challenge.message,
            &Expectation {
                server: expected_server,
                key: &fingerprint,
                challenge_id: &challenge.challenge_id,
                namespace: &challenge.namespace,
                now: now_unix(),
            },
        )?;
        self.sign(NAMESPACE, challenge.message.as_bytes())
    }
}

/// Reads a public key: `path` itself when it is a `.pub` line, else `path.pub`.
pub fn read_public_key(path: &Path) -> Result<PublicKey, Error> {
    let text = std::fs::read_to_string(path)
        .ok()
        .filter(|t| t.trim_start().starts_with(|c: char| c.is_ascii_lowercase()))
        .or_else(|| {
            let mut p = path.as_os_str().to_owned();
            p.push(".pub");
            std::fs::read_to_string(PathBuf::from(p)).ok()
        })
        .ok_or_else(|| {
            Error::Key(format!(
                "{}: no public key there or in {}.pub",
                path.display(),
                path.display()
            ))
        })?;
    PublicKey::from_openssh(text.trim()).map_err(|e| {
        Error::Key(format!(
            "{}: not an OpenSSH public key: {e}",
            path.display()
        ))
    })
}

fn connect(socket: &Path) -> Result<AgentClient, Error> {
    AgentClient::connect(socket).map_err(|e| {
        Error::Agent(format!(
            "cannot reach the agent at {}: {e}",
            socket.display()
        ))
    })
}

#[cfg(test)]
mod tests;

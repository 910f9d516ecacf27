//! SSH public keys and SSHSIG signatures: the key-type allowlist, fingerprints, and the
//! verification of a signed challenge (namespace, key, cryptography, FIDO user presence).
//!
//! Must not: know about challenges' lifetimes or users. It answers one question: did this
//! key sign these bytes under the `latchkey-auth` namespace, with a finger on the token
//! if it is a FIDO key?

use crate::challenge::NAMESPACE;
use crate::events::{KeyAlgorithm, SshPublicKey};
use ssh_key::public::KeyData;
use ssh_key::{authorized_keys::Entry, Algorithm, EcdsaCurve, HashAlg, PublicKey, SshSig};
use std::str::FromStr;
use thiserror::Error;

/// The longest armored signature accepted. Real ones are under 1 KiB; this bounds the work
/// an anonymous caller can ask for.
pub const MAX_ARMORED_SIGNATURE_LEN: usize = 8 * 1024;

/// The FIDO "user present" bit of an sk signature's flags byte (OpenSSH PROTOCOL.u2f).
const SK_USER_PRESENT: u8 = 0x01;
/// An sk signature ends with `flags (u8) || counter (u32 BE)`.
const SK_TRAILER_LEN: usize = 5;

/// Why a public key was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum KeyError {
    /// A well-known key type that is not on the allowlist (RSA, DSA, other curves,
    /// sk-ecdsa, certificates). Carries the OpenSSH type name.
    #[error("unsupported key type {0}")]
    UnsupportedKeyType(String),
    /// Not an OpenSSH public key line, or a curve point that does not decode.
    #[error("malformed public key")]
    Malformed,
}

/// Why a signature was refused. Callers that store a reason map everything but
/// [`SigError::UserPresenceMissing`] to "invalid signature"; the detail is for logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum SigError {
    /// Not an armored SSHSIG (or too long, or an unknown version).
    #[error("signature is not an armored SSHSIG")]
    Unparsable,
    /// Signed under another namespace, e.g. for git or a file.
    #[error("signature namespace is not {NAMESPACE}")]
    WrongNamespace,
    /// Made by another key than the one the challenge names.
    #[error("signature was made by another key")]
    WrongKey,
    /// The cryptographic check failed: tampered message or signature.
    #[error("signature does not verify")]
    Invalid,
    /// A valid FIDO signature made without touching the token.
    #[error("FIDO signature without the user-presence flag")]
    UserPresenceMissing,
    /// The stored key does not parse (a corrupt record, never the caller's fault).
    #[error("stored public key is malformed")]
    BadStoredKey,
}

/// Parses an `authorized_keys`-style line (`[options] <type> <base64> [comment]`) into a
/// key on the allowlist: `ssh-ed25519`, `sk-ssh-ed25519@openssh.com`,
/// `ecdsa-sha2-nistp256`. Options are accepted and dropped.
pub fn parse_public_key(line: &str) -> Result<SshPublicKey, KeyError> {
    let line = line.trim();
    if line.is_empty() || line.contains(['\n', '\r']) {
        return Err(KeyError::Malformed);
    }
    match Entry::from_str(line) {
        Ok(entry) => from_ssh_key(entry.public_key()),
        Err(_) => Err(unparsable_key_error(line)),
    }
}

/// Verifies an armored SSHSIG over `message` by `key` in the `latchkey-auth` namespace.
///
/// For `sk-ssh-ed25519@openssh.com` it also requires the user-presence flag, which the
/// `ssh-key` crate does not check. The flag is read only after the signature verified, so
/// [`SigError::UserPresenceMissing`] is never an answer to a forged signature.
pub fn verify_signature(key: &SshPublicKey, message: &[u8], armored: &str) -> Result<(), SigError> {
    let public = PublicKey::from_openssh(&key.openssh).map_err(|_| SigError::BadStoredKey)?;
    let sig = parse_armored(armored)?;
    if sig.namespace() != NAMESPACE {
        return Err(SigError::WrongNamespace);
    }
    if sig.public_key() != public.key_data() {
        return Err(SigError::WrongKey);
    }
    if sig.algorithm() != signature_algorithm(key.algorithm) {
        return Err(SigError::Invalid);
    }
    public
        .verify(NAMESPACE, message, &sig)
        .map_err(|_| SigError::Invalid)?;
    if key.algorithm == KeyAlgorithm::SkEd25519 && !user_present(sig.signature_bytes()) {
        return Err(SigError::UserPresenceMissing);
    }
    Ok(())
}

impl SshPublicKey {
    /// The key as an `ssh-key` value, e.g. for the client library to sign with an agent.
    pub fn to_ssh_key(&self) -> Result<PublicKey, KeyError> {
        PublicKey::from_openssh(&self.openssh).map_err(|_| KeyError::Malformed)
    }
}

fn from_ssh_key(public: &PublicKey) -> Result<SshPublicKey, KeyError> {
    let data = public.key_data();
    let algorithm = match public.algorithm() {
        Algorithm::Ed25519 => KeyAlgorithm::Ed25519,
        Algorithm::SkEd25519 => KeyAlgorithm::SkEd25519,
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        } => KeyAlgorithm::EcdsaP256,
        other => return Err(KeyError::UnsupportedKeyType(other.as_str().to_string())),
    };
    check_point(data)?;
    let openssh = PublicKey::new(data.clone(), "")
        .to_openssh()
        .map_err(|_| KeyError::Malformed)?;
    Ok(SshPublicKey {
        algorithm,
        openssh,
        fingerprint: public.fingerprint(HashAlg::Sha256).to_string(),
        comment: public.comment().to_string(),
    })
}

/// Refuses a key whose bytes are not a point on its curve, so a bad key fails at
/// `/challenge` rather than at every signature.
fn check_point(data: &KeyData) -> Result<(), KeyError> {
    let ok = match data {
        KeyData::Ed25519(k) => ed25519_dalek::VerifyingKey::try_from(k).is_ok(),
        KeyData::SkEd25519(k) => ed25519_dalek::VerifyingKey::try_from(k.public_key()).is_ok(),
        KeyData::Ecdsa(k) => p256::ecdsa::VerifyingKey::try_from(k).is_ok(),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(KeyError::Malformed)
    }
}

/// Tells "a key type we refuse" from garbage when the line did not parse (the crate may not
/// decode every type we refuse): the first token naming a known OpenSSH key or certificate
/// type that is not on the allowlist wins. A broken allowed key is just malformed.
fn unparsable_key_error(line: &str) -> KeyError {
    line.split_whitespace()
        .find(|token| {
            let known = Algorithm::new(token)
                .or_else(|_| Algorithm::new_certificate(token))
                .is_ok_and(|a| !matches!(a, Algorithm::Other(_)) && !is_allowed(&a));
            known || token.ends_with("-cert-v01@openssh.com")
        })
        .map_or(KeyError::Malformed, |t| {
            KeyError::UnsupportedKeyType(t.to_string())
        })
}

fn is_allowed(algorithm: &Algorithm) -> bool {
    matches!(
        algorithm,
        Algorithm::Ed25519
            | Algorithm::SkEd25519
            | Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP256
            }
    )
}

fn parse_armored(armored: &str) -> Result<SshSig, SigError> {
    if armored.len() > MAX_ARMORED_SIGNATURE_LEN {
        return Err(SigError::Unparsable);
    }
    let normalized = armored.trim().replace("\r\n", "\n");
    SshSig::from_pem(normalized).map_err(|_| SigError::Unparsable)
}

fn signature_algorithm(key: KeyAlgorithm) -> Algorithm {
    match key {
        KeyAlgorithm::Ed25519 => Algorithm::Ed25519,
        KeyAlgorithm::SkEd25519 => Algorithm::SkEd25519,
        KeyAlgorithm::EcdsaP256 => Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        },
    }
}

/// Reads the flags byte of an sk signature (`sig || flags || counter`).
fn user_present(sk_signature: &[u8]) -> bool {
    sk_signature
        .len()
        .checked_sub(SK_TRAILER_LEN)
        .and_then(|i| sk_signature.get(i))
        .is_some_and(|flags| flags & SK_USER_PRESENT != 0)
}

#[cfg(test)]
pub(crate) mod tests;

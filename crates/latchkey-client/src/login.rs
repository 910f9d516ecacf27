//! Sign-in (DESIGN §6): challenge -> relay defence -> SSHSIG -> token; and adding a key,
//! which is the same dance with the new key on `/api/native/keys/challenge`.

use crate::{Api, Error, Signer};
use latchkey_proto::{AddKeyRequest, KeyInfo, TokenRequest, TokenResponse};

/// Choices for [`login`].
#[derive(Clone, Debug, Default)]
pub struct LoginOptions {
    /// The `server=` value to insist on: the id pinned at first contact, or one the user
    /// gave. Without it, the server's own `/api/native/info` answer is taken (first
    /// contact: trust on first use).
    pub server_id: Option<String>,
    /// The handle to register with, if this sign-in creates the user.
    pub handle: Option<String>,
    /// A name for this device, shown in the token list.
    pub device_name: Option<String>,
}

/// A successful sign-in.
#[derive(Clone, Debug)]
pub struct SignedIn {
    /// The server's answer, with the session token (shown once).
    pub token: TokenResponse,
    /// The `server=` value the signature is bound to: pin it.
    pub server_id: String,
    /// The fingerprint of the key that signed.
    pub fingerprint: String,
}

/// The server id to insist on: the given one, else what the server says it is.
pub fn expected_server(api: &Api, given: Option<&str>) -> Result<String, Error> {
    match given {
        Some(s) => Ok(s.to_string()),
        None => Ok(api.info()?.server),
    }
}

/// Signs in with `signer`. A challenge that names another server or key, another
/// namespace, or has lapsed is refused with [`Error::Relay`] before anything is signed.
pub fn login(api: &Api, signer: &Signer, options: &LoginOptions) -> Result<SignedIn, Error> {
    let server_id = expected_server(api, options.server_id.as_deref())?;
    let challenge = api.challenge(&signer.public_key_line()?)?;
    let signature = signer.sign_challenge(&challenge, &server_id)?;
    let token = api.redeem(&TokenRequest {
        challenge_id: challenge.challenge_id,
        signature,
        device_name: options.device_name.clone(),
        handle: options.handle.clone(),
    })?;
    Ok(SignedIn {
        token,
        server_id,
        fingerprint: signer.fingerprint(),
    })
}

/// Adds `new_key`'s key to the signed-in account (`api` carries a session token): the new
/// key signs a key challenge, after the same relay defence.
pub fn add_key(api: &Api, new_key: &Signer, server_id: &str) -> Result<KeyInfo, Error> {
    let challenge = api.key_challenge(&new_key.public_key_line()?)?;
    let signature = new_key.sign_challenge(&challenge, server_id)?;
    api.add_key(&AddKeyRequest {
        challenge_id: challenge.challenge_id,
        signature,
    })
}

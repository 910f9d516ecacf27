//! # latchkey-client
//!
//! What a native chat client embeds to talk to latchkey (DESIGN §14), and what the
//! `latchkey` CLI's client commands are built on. It depends on `latchkey-proto` for every
//! wire type and never on the server.
//!
//! ```no_run
//! use latchkey_client::{Api, Signer, login, LoginOptions};
//! # fn main() -> Result<(), latchkey_client::Error> {
//! let api = Api::new("http://127.0.0.1:8080")?;
//! let signer = Signer::from_agent_env(None)?; // SSH_AUTH_SOCK, first accepted key
//! let signed_in = login(&api, &signer, &LoginOptions::default())?;
//! let me = api.with_token(&signed_in.token.token).me()?;
//! println!("signed in as {}", me.user.handle);
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - `api`: [`Api`], a typed blocking call for every route of DESIGN §7.
//! - `challenge`: parses a `latchkey-auth-v1` message and refuses a relayed one
//!   ([`RelayError`]) before anything is signed.
//! - `signer`: [`Signer`], SSHSIG signatures from a key file or through ssh-agent (the
//!   private key then never enters this process).
//! - `login`: [`login`], challenge -> relay check -> signature -> token.
//! - `store`: [`TokenStore`], one 0600 file per server under `$XDG_CONFIG_HOME/latchkey/`,
//!   holding the token and the pinned server id.
//! - `ws`: [`Subscription`], a WebSocket that reconnects with backoff and resumes from its
//!   last seq with no gap and no duplicate.
//! - `device`: the RFC 8628 device flow from both sides (with `latchkey_proto::device`'s
//!   types), and [`comparison_code`].
//! - `pace`: [`Sleeper`] and backoff, the one way this crate waits.
//! - `error`: [`Error`], whose variants callers branch on.
//!
//! **Must not:** print anything, read the wall clock for anything but challenge expiry,
//! or put a secret (token, signature, device code, user code) into an error message.

pub mod api;
pub mod challenge;
pub mod device;
pub mod error;
pub mod login;
pub mod pace;
pub mod signer;
pub mod store;
pub mod ws;

#[cfg(test)]
mod testing;

pub use api::Api;
pub use challenge::{Challenge, RelayError, NAMESPACE};
pub use device::{comparison_code, DeviceFlow, PollOutcome};
pub use error::Error;
pub use login::{login, LoginOptions, SignedIn};
pub use pace::Sleeper;
pub use signer::Signer;
pub use store::{StoredLogin, TokenStore};
pub use ws::{Subscription, SubscriptionEvent};

//! # latchkey-proto
//!
//! The wire types of latchkey's HTTP API (DESIGN §7): JSON request and response bodies and
//! the error codes. Server, client and CLI share them.
//!
//! **Architecture Invariant:** this is the only crate whose types go on the wire. It knows
//! nothing of the server's internals, the domain's events or the store; the server converts
//! by hand. Stability: everything here is API v1; fields are only ever added.
//!
//! # Layout
//! - `admin`: `latchkey admin` and `/api/admin/*` documents.
//! - `device`: the RFC 8628 device flow: `/api/auth/device/*` (OAuth shapes) and
//!   `/api/native/device/*` (approval).
//! - `error`: the error body and every error code.
//! - `native`: `/api/native/*` bodies (sign-in, tokens, keys).
//! - `pairing_code`: admin pairing codes and their redemption (`/api/native/pair`).
//! - `rooms`: room, membership and message bodies.
//! - `ws`: WebSocket frames and close codes.

pub mod admin;
pub mod device;
pub mod error;
pub mod native;
pub mod pairing_code;
pub mod rooms;
pub mod ws;

pub use device::*;
pub use error::{codes, ErrorBody};
pub use native::*;
pub use pairing_code::*;
pub use rooms::*;

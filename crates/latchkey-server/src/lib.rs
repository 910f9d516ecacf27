//! # latchkey-server
//!
//! The actix-web side of latchkey: routes (DESIGN §7), the bearer-auth extractor, the one
//! place errors become HTTP, metrics, and access logs with secrets redacted.
//!
//! **Architecture Invariant:** handlers hold no domain rule. Each extracts, makes one call
//! to `latchkey_actors::Core`, and maps the result; `error.rs` is the only file that picks
//! status codes. Wire types come from `latchkey-proto`, converted by hand in `convert`.
//!
//! # Layout
//! - `config`: `ServerConfig`, what `latchkey serve` passes in.
//! - `app`: builds the store, the core and the `HttpServer`, and runs it until SIGTERM.
//! - `auth`: credential extractors (bearer header only; a token in the URL is refused).
//! - `client_ip`: the client's address, through `--trusted-proxy` hops only.
//! - `limits`: rate limits (governor) and the 429 answer.
//! - `error`: `ApiError` and the JSON error shape for every failure, extractor errors too.
//! - `frames`: the one encoder of room events into WebSocket frames.
//! - `wsout`: the WebSocket writer: control frames, then live frames from the hub queue.
//! - `convert`: domain values to wire values (times, kinds, scopes).
//! - `routes`: one module per route family.
//! - `openapi`: the OpenAPI document generated from the handlers' annotations.
//! - `observe`: tracing setup, the access log (path without query, secrets redacted),
//!   Prometheus metrics.

pub mod app;
pub mod auth;
pub mod client_ip;
pub mod config;
pub mod convert;
pub mod error;
pub mod frames;
pub mod limits;
pub mod observe;
pub mod openapi;
pub mod routes;
pub mod wsin;
pub mod wsout;

pub use app::run;
pub use config::{LogFormat, ServerConfig};

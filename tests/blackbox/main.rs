//! latchkey's black-box tests: one test binary (each file in `tests/` is a link step).
//!
//! They run the real `latchkey` binary (found through `LATCHKEY_BIN` or the target dir) and
//! the crash-writer child, and check what a user or an admin would see.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod auth;
mod backup;
mod browser;
mod chat;
mod client;
mod cluster;
mod cluster_import;
mod compaction;
mod crash;
mod credentials;
mod device;
mod docs;
mod erasure;
mod golden;
mod hardening;
mod limits;
mod model;
mod openapi;
mod pairing_codes;
mod rooms;
mod server;
mod snapshots;
mod support;
mod tidy;
mod ws;

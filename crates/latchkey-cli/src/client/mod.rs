//! The client commands of `latchkey` (DESIGN §14), each a thin shell over
//! `latchkey-client`: `login`/`logout`/`whoami` (`session`), `rooms`/`send`/`history`
//! (`chat`), `tail`, `tokens`, `keys` and `device`. Human output by default; with
//! `--json`, stdout carries only JSON and everything for people goes to stderr.
//!
//! Must not: print a token unless asked, or hold a rule the server enforces.

pub mod chat;
pub mod device;
pub mod keys;
pub mod session;
pub mod tail;
pub mod tokens;

use anyhow::Context;
use clap::Args;
use latchkey_client::store::StoredSession;
use latchkey_client::{Api, TokenStore};
use latchkey_proto::Scope;
use serde::Serialize;

/// The server a command talks to when none is given or remembered.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// Flags every client command takes.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// The server URL (default: the one of the last login, else http://127.0.0.1:8080).
    #[arg(long, env = "LATCHKEY_URL", global = true)]
    pub server: Option<String>,
    /// Print JSON on stdout (for scripts) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Common {
    /// The token store (`$XDG_CONFIG_HOME/latchkey`).
    pub fn store(&self) -> anyhow::Result<TokenStore> {
        Ok(TokenStore::default_location()?)
    }

    /// The server URL: `--server`, else the last login's, else the default.
    pub fn server_url(&self) -> anyhow::Result<String> {
        if let Some(s) = &self.server {
            return Ok(s.trim().trim_end_matches('/').to_string());
        }
        Ok(self
            .store()?
            .current_server()
            .unwrap_or_else(|| DEFAULT_SERVER.to_string()))
    }

    /// An anonymous client for the server.
    pub fn api(&self) -> anyhow::Result<Api> {
        Ok(Api::new(&self.server_url()?)?)
    }

    /// A client carrying the stored token for the server, and that session.
    pub fn authed(&self) -> anyhow::Result<(Api, StoredSession)> {
        let url = self.server_url()?;
        let session = self.store()?.session(&url)?;
        Ok((Api::new(&url)?.with_token(&session.token), session))
    }

    /// Prints `value` as JSON with `--json`, else runs `human`.
    pub fn emit<T: Serialize>(&self, value: &T, human: impl FnOnce()) -> anyhow::Result<()> {
        if self.json {
            println!(
                "{}",
                serde_json::to_string(value).context("encoding the output")?
            );
        } else {
            human();
        }
        Ok(())
    }
}

/// The wire name of a serde enum (`session`, `chat:read`, `public`, ...).
pub fn wire<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "?".to_string(),
    }
}

/// Scopes as the server writes them, space-separated.
pub fn scopes_text(scopes: &[Scope]) -> String {
    scopes.iter().map(wire).collect::<Vec<_>>().join(" ")
}

/// `chat:read`, `chat:write` or `admin`.
pub fn parse_scope(text: &str) -> anyhow::Result<Scope> {
    serde_json::from_value(serde_json::Value::String(text.to_string()))
        .map_err(|_| anyhow::anyhow!("{text:?} is not a scope: use chat:read or chat:write"))
}

/// `--scope` flags as scopes: `None` when none were given (the server's default).
pub fn parse_scopes(texts: &[String]) -> anyhow::Result<Option<Vec<Scope>>> {
    if texts.is_empty() {
        return Ok(None);
    }
    texts
        .iter()
        .map(|s| parse_scope(s))
        .collect::<anyhow::Result<Vec<_>>>()
        .map(Some)
}

/// `-` for an absent value.
pub fn or_dash(v: Option<&str>) -> &str {
    v.unwrap_or("-")
}

//! The online form: the same commands against `/api/admin/*` of a running server, with an
//! admin session token. Commands that rewrite the data dir (replay, rebuild, export,
//! import) need the server stopped and are refused here; `backup` is the online copy.

use super::{print, AdminCommand, LogArgs, StateWhat, TokenWhat, UserWhat};
use anyhow::{anyhow, bail, Context};
use latchkey_proto::admin::*;
use latchkey_proto::ErrorBody;
use serde::de::DeserializeOwned;
use std::process::ExitCode;

struct Client<'a> {
    base: String,
    token: &'a str,
    agent: ureq::Agent,
}

impl Client<'_> {
    fn call<T: DeserializeOwned>(
        &self,
        req: ureq::Request,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<T> {
        let req = req.set("Authorization", &format!("Bearer {}", self.token));
        let result = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match result {
            Ok(r) => r.into_json().context("reading the answer"),
            Err(ureq::Error::Status(code, r)) => {
                let e: ErrorBody = r.into_json().unwrap_or(ErrorBody {
                    error: "error".into(),
                    message: format!("HTTP {code}"),
                });
                bail!("{} ({code} {})", e.message, e.error)
            }
            Err(e) => Err(anyhow!("{e}")),
        }
    }

    fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<T> {
        let mut req = self.agent.get(&format!("{}{path}", self.base));
        for (k, v) in query {
            req = req.query(k, v);
        }
        self.call(req, None)
    }

    fn post<T: DeserializeOwned>(&self, path: &str, body: serde_json::Value) -> anyhow::Result<T> {
        self.call(self.agent.post(&format!("{}{path}", self.base)), Some(body))
    }
}

fn seg(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_".contains(c) {
                c.to_string()
            } else {
                format!("%{:02X}", c as u32)
            }
        })
        .collect()
}

/// Runs one command online.
pub fn run(
    server: &str,
    token: &str,
    as_json: bool,
    cmd: AdminCommand,
) -> anyhow::Result<ExitCode> {
    let c = Client {
        base: server.trim_end_matches('/').to_string(),
        token,
        agent: ureq::AgentBuilder::new().build(),
    };
    match cmd {
        AdminCommand::Log(a) => log(&c, &a, as_json)?,
        AdminCommand::Stream { id } => {
            let page: LogPage = c.get(&format!("/api/admin/streams/{}", seg(&id)), &[])?;
            if !as_json {
                print::log_header();
            }
            for e in &page.events {
                print::log_entry(e, as_json);
            }
        }
        AdminCommand::State {
            what: StateWhat::User { user, at },
        } => {
            let q: Vec<(&str, String)> = at.map(|a| ("at", a)).into_iter().collect();
            let doc: StateDoc = c.get(&format!("/api/admin/users/{}/state", seg(&user)), &q)?;
            print::state(&doc, as_json);
        }
        AdminCommand::Verify => {
            let doc: VerifyDoc = c.get("/api/admin/verify", &[])?;
            return Ok(print::verify(&doc, as_json));
        }
        AdminCommand::Stats => {
            let doc: StatsDoc = c.get("/api/admin/stats", &[])?;
            print::stats(&doc, as_json);
        }
        AdminCommand::User { what } => user(&c, what, as_json)?,
        AdminCommand::Backup(a) => super::backup::run(&c.base, c.token, &c.agent, &a.out, as_json)?,
        AdminCommand::Token {
            what: TokenWhat::Revoke { token_id },
        } => {
            let doc: RevokedToken = c.post(
                &format!("/api/admin/tokens/{}/revoke", seg(&token_id)),
                serde_json::json!({}),
            )?;
            print::revoked(&doc, as_json);
        }
        AdminCommand::Replay(_)
        | AdminCommand::Rebuild
        | AdminCommand::Export(_)
        | AdminCommand::Import { .. } => {
            bail!("this command rewrites or copies the data dir: stop the server and run it with --data-dir")
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn log(c: &Client<'_>, a: &LogArgs, as_json: bool) -> anyhow::Result<()> {
    if !as_json {
        print::log_header();
    }
    let mut from = a.from;
    loop {
        let mut q = Vec::new();
        if let Some(f) = from {
            q.push(("from", f.to_string()));
        }
        if let Some(t) = a.to {
            q.push(("to", t.to_string()));
        }
        if let Some(s) = &a.stream {
            q.push(("stream", s.clone()));
        }
        if let Some(t) = &a.event_type {
            q.push(("type", t.clone()));
        }
        let page: LogPage = c.get("/api/admin/events", &q)?;
        for e in &page.events {
            print::log_entry(e, as_json);
        }
        match page.next_from {
            Some(n) => from = Some(n),
            None => return Ok(()),
        }
    }
}

fn user(c: &Client<'_>, what: UserWhat, as_json: bool) -> anyhow::Result<()> {
    let doc: AdminUser = match what {
        UserWhat::Add {
            handle,
            key_file,
            admin,
        } => {
            let key = std::fs::read_to_string(&key_file)
                .with_context(|| format!("reading {}", key_file.display()))?;
            c.post(
                "/api/admin/users",
                serde_json::json!({"handle": handle, "public_key": key.trim(), "admin": admin}),
            )?
        }
        UserWhat::Disable { user } => c.post(
            &format!("/api/admin/users/{}/disable", seg(&user)),
            serde_json::json!({}),
        )?,
        UserWhat::Enable { user } => c.post(
            &format!("/api/admin/users/{}/enable", seg(&user)),
            serde_json::json!({}),
        )?,
    };
    print::user(&doc, as_json);
    Ok(())
}

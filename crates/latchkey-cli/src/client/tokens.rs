//! `latchkey tokens [list|create|revoke]`: your tokens (a session token is needed).

use super::{or_dash, parse_scopes, scopes_text, wire, Common};
use clap::{Args, Subcommand};
use latchkey_proto::CreateTokenRequest;
use std::process::ExitCode;

/// Flags of `latchkey tokens`.
#[derive(Args, Debug)]
pub struct TokensArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Option<TokensCommand>,
}

/// `latchkey tokens ...`.
#[derive(Subcommand, Debug)]
pub enum TokensCommand {
    /// List your live tokens (the default).
    List,
    /// Create a personal access token; it is printed once.
    Create {
        /// A name to recognize it by.
        name: String,
        /// `chat:read` and/or `chat:write` (repeat; default both).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Lifetime in seconds (default: no expiry).
        #[arg(long)]
        expires_in: Option<u64>,
    },
    /// Revoke a token by id, or every token with --all.
    Revoke {
        /// The token id (see `latchkey tokens`).
        #[arg(required_unless_present = "all")]
        id: Option<String>,
        /// Revoke all your tokens.
        #[arg(long, conflicts_with = "id")]
        all: bool,
        /// With --all: keep the one this CLI uses.
        #[arg(long, requires = "all")]
        keep_current: bool,
    },
}

/// `latchkey tokens`.
pub fn tokens_cmd(args: TokensArgs) -> anyhow::Result<ExitCode> {
    let (api, _) = args.common.authed()?;
    let c = &args.common;
    match args.command.unwrap_or(TokensCommand::List) {
        TokensCommand::List => {
            let list = api.tokens()?;
            c.emit(&list, || {
                for t in &list.tokens {
                    let current = if t.current { " (this CLI)" } else { "" };
                    println!(
                        "{}  {:<8} {:<24} expires {}  last used {}{current}",
                        t.id,
                        wire(&t.kind),
                        crate::output::printable(or_dash(
                            t.name.as_deref().or(t.device_name.as_deref())
                        )),
                        or_dash(t.expires_at.as_deref()),
                        or_dash(t.last_used_at.as_deref()),
                    );
                }
            })?;
        }
        TokensCommand::Create {
            name,
            scopes,
            expires_in,
        } => {
            let made = api.create_token(&CreateTokenRequest {
                name,
                scopes: parse_scopes(&scopes)?,
                expires_in,
            })?;
            c.emit(&made, || {
                println!(
                    "created {} {} ({})",
                    wire(&made.kind),
                    made.token_id,
                    scopes_text(&made.scopes)
                );
                println!("expires {}", or_dash(made.expires_at.as_deref()));
                println!("token   {}", made.token);
                println!("(shown once: store it now)");
            })?;
        }
        TokensCommand::Revoke {
            id,
            all,
            keep_current,
        } => match id {
            Some(id) if !all => {
                api.revoke_token(&id)?;
                c.emit(&serde_json::json!({"revoked": id}), || {
                    println!("revoked {id}")
                })?;
            }
            _ => {
                let n = api.revoke_all(keep_current)?;
                c.emit(&n, || println!("revoked {} tokens", n.revoked))?;
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

//! `latchkey keys [list|add|remove]`: the SSH keys of your account (a session token is
//! needed). Adding a key makes the new key sign a challenge, through the same relay
//! defence as a sign-in.

use super::session::KeyChoice;
use super::Common;
use anyhow::Context;
use clap::{Args, Subcommand};
use latchkey_client::login::{add_key, expected_server};
use std::process::ExitCode;

/// Flags of `latchkey keys`.
#[derive(Args, Debug)]
pub struct KeysArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Option<KeysCommand>,
}

/// `latchkey keys ...`.
#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// List your keys (the default).
    List,
    /// Add a key: it signs a challenge (key file, or --agent).
    Add {
        #[command(flatten)]
        key: KeyChoice,
    },
    /// Remove a key by id; the sessions it minted are revoked.
    Remove {
        /// The key id (see `latchkey keys`).
        key_id: String,
    },
}

/// `latchkey keys`.
pub fn keys_cmd(args: KeysArgs) -> anyhow::Result<ExitCode> {
    let (api, _) = args.common.authed()?;
    let c = &args.common;
    match args.command.unwrap_or(KeysCommand::List) {
        KeysCommand::List => {
            let list = api.keys()?;
            c.emit(&list, || {
                for k in &list.keys {
                    println!(
                        "{}  {:<28} {}  {}",
                        k.key_id,
                        k.key_type,
                        k.fingerprint,
                        crate::output::printable(&k.comment)
                    );
                }
            })?;
        }
        KeysCommand::Add { key } => {
            let signer = key.signer()?;
            let url = api.base_url().to_string();
            let pinned = c.store()?.load(&url)?.map(|l| l.server_id);
            let server_id = expected_server(&api, pinned.as_deref())?;
            let added = add_key(&api, &signer, &server_id).context("adding the key")?;
            c.emit(&added, || {
                println!(
                    "added {} {} ({})",
                    added.key_type, added.fingerprint, added.key_id
                )
            })?;
        }
        KeysCommand::Remove { key_id } => {
            api.remove_key(&key_id)?;
            c.emit(&serde_json::json!({"removed": key_id}), || {
                println!("removed {key_id}")
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

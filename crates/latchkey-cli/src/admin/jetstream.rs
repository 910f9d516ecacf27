//! `latchkey admin --store nats://...`: the read commands (`log`, `stream`, `state`,
//! `verify`, `stats`, `export`, `replay`) on the JetStream log of a running cluster. The
//! stream is read into a fresh copy in a temp dir, expanded exactly as every node expands
//! it (same seqs, same hash chain), and the offline command runs on that copy: no node's
//! data dir is opened or locked. Writes go through a node (`--server`).

use super::{offline, AdminCommand};
use anyhow::{bail, Context};
use latchkey_store::{NatsOptions, NatsStore, StoreOptions};
use std::process::ExitCode;

/// Runs one read command against the stream at `urls`.
pub fn run(urls: &str, as_json: bool, cmd: AdminCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AdminCommand::Log(_)
        | AdminCommand::Stream { .. }
        | AdminCommand::State { .. }
        | AdminCommand::Verify
        | AdminCommand::Stats
        | AdminCommand::Export(_)
        | AdminCommand::Replay(_) => {}
        _ => bail!(
            "with --store this command is not available: writes go through a node \
             (`latchkey admin --server URL --token-file F ...`)"
        ),
    }
    let copy = tempfile::tempdir().context("a temp dir for the copy of the stream")?;
    let mut opts = NatsOptions::new(urls);
    opts.create = false;
    {
        let store = NatsStore::open(copy.path(), opts, StoreOptions::default())
            .with_context(|| format!("reading the JetStream log at {urls}"))?;
        store.close()?;
    }
    offline::run(copy.path(), as_json, cmd)
}

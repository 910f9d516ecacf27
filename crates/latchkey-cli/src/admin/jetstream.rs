//! `latchkey admin --store nats://...`: the read commands (`log`, `stream`, `state`,
//! `verify`, `stats`, `export`, `replay`) on the JetStream log of a running cluster. The
//! stream is read into a fresh copy in a temp dir, expanded exactly as every node expands
//! it (same seqs, same hash chain), and the offline command runs on that copy: no node's
//! data dir is opened or locked. Writes go through a node (`--server`).
//!
//! `import FILE` is the one write: an export or a backup into an empty stream
//! (`latchkey_store::nats::import_stream`), then read back into a fresh copy, built and
//! verified there, and checked to end at the source's chain head.

use super::{offline, AdminCommand};
use crate::output::Walk;
use anyhow::{bail, Context};
use latchkey_store::{EventStore, NatsOptions, NatsStore, StoreOptions};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

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
        AdminCommand::Import { file } => {
            import(urls, &file, as_json)?;
            return Ok(ExitCode::SUCCESS);
        }
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

/// Imports `file` into the empty stream at `urls`, then reads the stream back into a fresh
/// copy and checks it: it verifies, and ends at the source's chain head.
fn import(urls: &str, file: &Path, as_json: bool) -> anyhow::Result<()> {
    let (header, mut envelopes) = offline::import_source(file)?;
    let opts = NatsOptions::new(urls);
    let walk = Walk::new("imported", header.as_ref().map_or(0, |h| h.seq));
    let done = latchkey_store::nats::import_stream(&opts, &mut envelopes, &mut |s| walk.at(s))
        .with_context(|| {
            format!(
                "importing {} into the JetStream log at {urls}",
                file.display()
            )
        })?;
    walk.finish(done.events);
    let copy = tempfile::tempdir().context("a temp dir for the copy of the stream")?;
    let store = NatsStore::open(copy.path(), opts, StoreOptions::default())
        .with_context(|| format!("reading back the JetStream log at {urls}"))?;
    let store: Arc<dyn EventStore> = Arc::new(store);
    if store.chain_head()? != done.chain_head || store.head() != done.events {
        bail!(
            "the stream expands to {} events, not the {} imported, or to another chain head",
            store.head(),
            done.events
        );
    }
    offline::check_imported(&store, done.events, header, as_json)?;
    store.shutdown()?;
    if !as_json {
        eprintln!(
            "{} events in {} stream messages; every node started on the stream reads this log",
            done.events, done.messages
        );
    }
    Ok(())
}

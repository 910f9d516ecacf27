//! The offline form: every command on a stopped server's data dir. Read-only commands
//! treat a missing data dir as an empty log; `user add` and `import` create it.

use super::{
    print, AdminCommand, CompactArgs, ExportArgs, LogArgs, ReplayArgs, StateWhat, TokenWhat,
    UserWhat,
};
use crate::output::Walk;
use anyhow::{bail, Context};
use latchkey_actors::clock;
use latchkey_admin::tools::{self, Rebuilt};
use latchkey_admin::{read, write};
use latchkey_domain::{Actor, TokenId};
use latchkey_proto::admin::{LogQuery, StatsDoc, VerifyDoc};
use latchkey_store::projection::TREE_PREFIX;
use latchkey_store::{EventStore, SledStore, StoreOptions};
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// The store of a data dir. This is the composition root of the offline form: the only
/// place it names the sled backend.
type Store = Arc<dyn EventStore>;

fn open(dir: &Path) -> anyhow::Result<Option<Store>> {
    Ok(SledStore::open_existing(dir, StoreOptions::default())?.map(|s| Arc::new(s) as Store))
}

fn open_or_create(dir: &Path) -> anyhow::Result<Store> {
    Ok(Arc::new(SledStore::open(dir, StoreOptions::default())?))
}

fn need(store: Option<Store>, dir: &Path) -> anyhow::Result<Store> {
    store.with_context(|| format!("{} holds no log", dir.display()))
}

fn time_arg(at: Option<&str>) -> anyhow::Result<Option<latchkey_domain::Timestamp>> {
    at.map(|s| read::parse_time(s).with_context(|| format!("{s} is not an RFC 3339 time")))
        .transpose()
}

/// Runs one command offline.
pub fn run(dir: &Path, as_json: bool, cmd: AdminCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AdminCommand::Log(a) => log(open(dir)?, &a, as_json)?,
        AdminCommand::Stream { id } => {
            if !as_json {
                print::log_header();
            }
            if let Some(store) = open(dir)? {
                for e in read::stream(store.as_ref(), &id)? {
                    print::log_entry(&e, as_json);
                }
            }
        }
        AdminCommand::State {
            what: StateWhat::User { user, at },
        } => {
            let store = need(open(dir)?, dir)?;
            let models = write::catch_up(&store)?;
            let at = time_arg(at.as_deref())?;
            let doc = read::state_user(store.as_ref(), &models, &user, at, clock::now())?
                .with_context(|| format!("no user {user}"))?;
            print::state(&doc, as_json);
        }
        AdminCommand::Verify => {
            let doc = match open(dir)? {
                Some(store) => {
                    let walk = Walk::new("verified", store.head());
                    let doc = read::verify(store.as_ref(), |s| walk.at(s))?;
                    walk.finish(doc.events);
                    doc
                }
                None => VerifyDoc {
                    ok: true,
                    events: 0,
                    streams: 0,
                    head: 0,
                    chain_head: "0".repeat(64),
                    problems: vec![],
                },
            };
            return Ok(print::verify(&doc, as_json));
        }
        AdminCommand::Stats => {
            let doc = match open(dir)? {
                Some(store) => {
                    let walk = Walk::new("read", store.head());
                    let doc = read::stats(store.as_ref(), clock::now(), |s| walk.at(s))?;
                    walk.finish(doc.events);
                    doc
                }
                None => StatsDoc::default(),
            };
            print::stats(&doc, as_json);
        }
        AdminCommand::Replay(a) => replay(need(open(dir)?, dir)?, &a, as_json)?,
        AdminCommand::Rebuild => rebuild(need(open(dir)?, dir)?, as_json)?,
        AdminCommand::Export(a) => export(open(dir)?, &a)?,
        AdminCommand::Import { file } => import(dir, &file, as_json)?,
        AdminCommand::Backup(_) => bail!(
            "backup reads a running server (--server URL --token-file F); \
             with the server stopped, use export"
        ),
        AdminCommand::Compact(a) => compact(dir, need(open(dir)?, dir)?, &a, as_json)?,
        AdminCommand::User { what } => user(dir, what, as_json)?,
        AdminCommand::Token {
            what: TokenWhat::Revoke { token_id },
        } => {
            let store = need(open(dir)?, dir)?;
            let id = uuid::Uuid::parse_str(&token_id).context("a token id is a UUID")?;
            let doc = write::revoke_token(&store, TokenId(id), Actor::System, clock::now())?;
            print::revoked(&doc, as_json);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn user(dir: &Path, what: UserWhat, as_json: bool) -> anyhow::Result<()> {
    let now = clock::now();
    let doc = match what {
        UserWhat::Add {
            handle,
            key_file,
            admin,
        } => {
            let key = std::fs::read_to_string(&key_file)
                .with_context(|| format!("reading {}", key_file.display()))?;
            let store = open_or_create(dir)?;
            write::add_user(&store, &handle, key.trim(), admin, Actor::System, now)?
        }
        UserWhat::Disable { user } => {
            let store = need(open(dir)?, dir)?;
            write::set_disabled(&store, &user, true, Actor::System, now)?
        }
        UserWhat::Enable { user } => {
            let store = need(open(dir)?, dir)?;
            write::set_disabled(&store, &user, false, Actor::System, now)?
        }
        UserWhat::EraseMessages { user } => {
            let store = need(open(dir)?, dir)?;
            let doc = write::erase_messages(&store, &user, Actor::System, now)?;
            print::erased(&doc, as_json);
            return Ok(());
        }
    };
    print::user(&doc, as_json);
    Ok(())
}

fn log(store: Option<Store>, a: &LogArgs, as_json: bool) -> anyhow::Result<()> {
    if !as_json {
        print::log_header();
    }
    let Some(store) = store else { return Ok(()) };
    let q = LogQuery {
        from: a.from,
        to: a.to,
        stream: a.stream.clone(),
        event_type: a.event_type.clone(),
        limit: None,
    };
    read::walk_log(store.as_ref(), &q, usize::MAX, |r| {
        print::log_entry(&read::any_entry(r), as_json)
    })?;
    Ok(())
}

fn replay(store: Store, a: &ReplayArgs, as_json: bool) -> anyhow::Result<()> {
    let at = time_arg(a.at.as_deref())?;
    let to = match (a.to, at) {
        (Some(seq), _) => seq.min(store.head()),
        (None, at) => read::seq_at(store.as_ref(), at)?,
    };
    let tmp;
    let out = match &a.out {
        Some(p) => {
            if p.exists() && std::fs::read_dir(p)?.next().is_some() {
                bail!("{} is not empty: replay builds into a new dir", p.display());
            }
            p.clone()
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let dest: Store = Arc::new(SledStore::open(&out, StoreOptions::default())?);
    let walk = Walk::new("replayed", to);
    let n = tools::replay(store.as_ref(), &dest, to, &mut |s| walk.at(s))?;
    walk.finish(n);
    let when = at.unwrap_or_else(clock::now);
    let doc = read::stats(dest.as_ref(), when, |_| {})?;
    if !as_json {
        eprintln!("read models as of seq {to} are in {}", out.display());
    }
    print::stats(&doc, as_json);
    Ok(())
}

/// Compacts, closes the store, then rewrites the sled database to give the space back.
fn compact(dir: &Path, store: Store, a: &CompactArgs, as_json: bool) -> anyhow::Result<()> {
    let now = clock::now();
    let before = match (time_arg(a.before.as_deref())?, a.retain_pairings.0) {
        (Some(t), _) => t.min(now),
        (None, Some(window)) => latchkey_domain::Timestamp(now.0 - window.as_millis() as i64),
        (None, None) => bail!("--retain-pairings is off: give --before TIME"),
    };
    let walk = Walk::new("compacted", store.head());
    let done = latchkey_actors::compactor::compact(store.as_ref(), before, &mut |s| walk.at(s))?;
    walk.finish(done.scanned);
    let size_compacted = store.size_on_disk();
    drop(store);
    let reclaimed = if a.no_reclaim {
        None
    } else {
        let walk = Walk::new("rewrote", 0);
        let r = latchkey_store::reclaim::rewrite(dir, &mut |n| walk.at(n))?;
        walk.finish(r.entries);
        Some(r)
    };
    let doc = serde_json::json!({
        "before": latchkey_admin::json::rfc3339(before),
        "scanned": done.scanned,
        "dropped": {
            "pairing_streams": done.pairing_streams,
            "pairing": done.pairing_events,
            "token_used": done.token_used,
        },
        "exact_from_seq": done.exact_from,
        "size_before": reclaimed.map_or(size_compacted, |r| r.before),
        "size_after": reclaimed.map_or(size_compacted, |r| r.after),
    });
    if as_json {
        print::json(&doc);
    } else {
        println!("before         {}", latchkey_admin::json::rfc3339(before));
        println!(
            "dropped        {} pairing streams ({} events), {} token uses",
            done.pairing_streams, done.pairing_events, done.token_used
        );
        println!("exact from     seq {}", done.exact_from);
        match reclaimed {
            Some(r) => println!("size on disk   {} -> {} bytes", r.before, r.after),
            None => println!("size on disk   {size_compacted} bytes (not reclaimed)"),
        }
    }
    Ok(())
}

fn rebuild(store: Store, as_json: bool) -> anyhow::Result<()> {
    let walk = Walk::new("rebuilt", store.head());
    let started = std::time::Instant::now();
    // Snapshots are derived too: cleared here, then taken afresh for every long stream.
    let snapshots = store.clear_snapshots()?;
    let report = tools::rebuild(&store)?;
    let remade = latchkey_actors::entity::remake_snapshots(
        store.as_ref(),
        latchkey_actors::config::DEFAULT_SNAPSHOT_EVERY,
    )?;
    walk.finish(store.head());
    let secs = started.elapsed().as_secs_f64();
    let mut lines = std::collections::BTreeMap::new();
    for (name, outcome) in &report {
        let name = format!("{TREE_PREFIX}{name}");
        let line = match outcome {
            Rebuilt::New => "new".to_string(),
            Rebuilt::Identical => "identical".to_string(),
            Rebuilt::Differs { keys, count } => {
                // Name the first few differing keys (read-model keys are short, printable
                // tags followed by ids); the count follows.
                for k in keys {
                    eprintln!("  {name}: key {} differs", hex::encode(k));
                }
                format!("{count} keys differ")
            }
        };
        lines.insert(name, line);
    }
    if as_json {
        print::json(
            &serde_json::json!({"events": store.head(), "seconds": secs, "read_models": lines,
                "snapshots_cleared": snapshots, "snapshots_written": remade}),
        );
    } else {
        for (name, line) in &lines {
            println!("{name:<16} {line}");
        }
        println!("{:<16} {snapshots} cleared, {remade} written", "snapshots");
    }
    Ok(())
}

fn export(store: Option<Store>, a: &ExportArgs) -> anyhow::Result<()> {
    let mut out: Box<dyn Write> = match &a.out {
        Some(p) => Box::new(BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let Some(store) = store else { return Ok(()) };
    let walk = Walk::new("exported", store.head());
    let mut n = 0;
    for entry in store.read_raw(1)? {
        let entry = entry?;
        serde_json::to_writer(&mut out, &tools::export_line(&entry)?)?;
        out.write_all(b"\n")?;
        walk.at(entry.seq);
        n += 1;
    }
    out.flush()?;
    walk.finish(n);
    Ok(())
}

fn import(dir: &Path, file: &Path, as_json: bool) -> anyhow::Result<()> {
    let (header, mut envelopes) = import_source(file)?;
    let store = open_or_create(dir)?;
    let walk = Walk::new("imported", header.as_ref().map_or(0, |h| h.seq));
    let n = store.import_envelopes(&mut envelopes, &mut |s| walk.at(s))?;
    walk.finish(n);
    check_imported(&store, n, header, as_json)
}

/// The envelopes of an export or a backup file, and the backup's header if it is one.
pub(super) fn import_source(
    file: &Path,
) -> anyhow::Result<(
    Option<latchkey_proto::admin::BackupHeader>,
    impl Iterator<Item = latchkey_store::StoreResult<latchkey_store::RawEntry>>,
)> {
    let reader = std::io::BufReader::new(
        std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?,
    );
    let mut lines = reader.lines().peekable();
    // A backup starts with a header naming its seq; an export starts with seq 1.
    let header = match lines.peek() {
        Some(Ok(first)) => latchkey_admin::backup::read_header(first),
        _ => None,
    };
    if header.is_some() {
        lines.next();
    }
    let envelopes = lines.map(|line| {
        let line = line.map_err(|e| latchkey_store::StoreError::Encode(e.to_string()))?;
        tools::import_line(&line)
    });
    Ok((header, envelopes))
}

/// After an import of `n` events: builds the read models, verifies the log (printed), and
/// checks a backup's header against what was imported.
pub(super) fn check_imported(
    store: &Store,
    n: u64,
    header: Option<latchkey_proto::admin::BackupHeader>,
    as_json: bool,
) -> anyhow::Result<()> {
    write::catch_up(store)?;
    let doc = read::verify(store.as_ref(), |_| {})?;
    print::verify(&doc, as_json);
    if !doc.ok {
        bail!("the imported log does not verify");
    }
    if let Some(h) = header {
        if n != h.seq || doc.chain_head != h.chain_head {
            bail!(
                "the backup names seq {} and chain head {}, but holds {n} events ending at {}",
                h.seq,
                h.chain_head,
                doc.chain_head
            );
        }
        if !as_json {
            eprintln!(
                "restored the log of server {} as of seq {} (taken {})",
                h.server_id, h.seq, h.taken_at
            );
        }
    }
    Ok(())
}

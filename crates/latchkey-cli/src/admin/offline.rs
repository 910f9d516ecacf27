//! The offline form: every command on a stopped server's data dir. Read-only commands
//! treat a missing data dir as an empty log; `user add` and `import` create it.

use super::{print, AdminCommand, ExportArgs, LogArgs, ReplayArgs, StateWhat, TokenWhat, UserWhat};
use crate::output::Walk;
use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use latchkey_actors::clock;
use latchkey_actors::readmodel::projections;
use latchkey_domain::{Actor, TokenId};
use latchkey_proto::admin::{LogQuery, StatsDoc, VerifyDoc};
use latchkey_server::admin::{read, write};
use latchkey_store::projection::{Projector, TREE_PREFIX};
use latchkey_store::{EventStore, SledStore, StoreOptions};
use std::collections::BTreeMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

fn open(dir: &Path) -> anyhow::Result<Option<Arc<SledStore>>> {
    Ok(SledStore::open_existing(dir, StoreOptions::default())?.map(Arc::new))
}

fn open_or_create(dir: &Path) -> anyhow::Result<Arc<SledStore>> {
    Ok(Arc::new(SledStore::open(dir, StoreOptions::default())?))
}

fn need(store: Option<Arc<SledStore>>, dir: &Path) -> anyhow::Result<Arc<SledStore>> {
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
                for e in read::stream(&store, &id)? {
                    print::log_entry(&e, as_json);
                }
            }
        }
        AdminCommand::State {
            what: StateWhat::User { user, at },
        } => {
            let store = need(open(dir)?, dir)?;
            let doc = read::state_user(&store, &user, time_arg(at.as_deref())?, clock::now())?
                .with_context(|| format!("no user {user}"))?;
            print::state(&doc, as_json);
        }
        AdminCommand::Verify => {
            let doc = match open(dir)? {
                Some(store) => {
                    let walk = Walk::new("verified", store.head());
                    let doc = read::verify(&store, |s| walk.at(s))?;
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
                    let doc = read::stats(&store, clock::now(), |s| walk.at(s))?;
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
        AdminCommand::User { what } => {
            let now = clock::now();
            let doc = match what {
                UserWhat::Add {
                    handle,
                    key_file,
                    admin,
                } => {
                    let key = std::fs::read_to_string(&key_file)
                        .with_context(|| format!("reading {}", key_file.display()))?;
                    write::add_user(
                        &open_or_create(dir)?,
                        &handle,
                        key.trim(),
                        admin,
                        Actor::System,
                        now,
                    )?
                }
                UserWhat::Disable { user } => set_disabled(dir, &user, true)?,
                UserWhat::Enable { user } => set_disabled(dir, &user, false)?,
            };
            print::user(&doc, as_json);
        }
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

fn set_disabled(
    dir: &Path,
    who: &str,
    disabled: bool,
) -> anyhow::Result<latchkey_proto::admin::AdminUser> {
    let store = need(open(dir)?, dir)?;
    let user = read::resolve_user(&store, who)?.with_context(|| format!("no user {who}"))?;
    Ok(write::set_disabled(
        &store,
        user,
        disabled,
        Actor::System,
        clock::now(),
    )?)
}

fn log(store: Option<Arc<SledStore>>, a: &LogArgs, as_json: bool) -> anyhow::Result<()> {
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
    read::walk_log(&store, &q, usize::MAX, |r| {
        print::log_entry(&read::log_entry(r), as_json)
    })?;
    Ok(())
}

fn replay(store: Arc<SledStore>, a: &ReplayArgs, as_json: bool) -> anyhow::Result<()> {
    let at = time_arg(a.at.as_deref())?;
    let to = match (a.to, at) {
        (Some(seq), _) => seq.min(store.head()),
        (None, at) => read::seq_at(&store, at)?,
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
    let dest = Arc::new(SledStore::open(&out, StoreOptions::default())?);
    let walk = Walk::new("copied", to);
    let n = store.copy_prefix(&dest, to, |s| walk.at(s))?;
    walk.finish(n);
    let walk = Walk::new("projected", to);
    Projector::new(dest.clone(), projections())?.catch_up()?;
    walk.finish(n);
    let when = at.unwrap_or_else(clock::now);
    let doc = read::stats(&dest, when, |_| {})?;
    if !as_json {
        eprintln!("read models as of seq {to} are in {}", out.display());
    }
    print::stats(&doc, as_json);
    Ok(())
}

type Snapshot = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

fn snapshot(db: &sled::Db) -> anyhow::Result<Snapshot> {
    let mut out = Snapshot::new();
    for name in db.tree_names() {
        let name = String::from_utf8_lossy(&name).to_string();
        if !name.starts_with(TREE_PREFIX) {
            continue;
        }
        let tree = db.open_tree(&name)?;
        let mut rows = BTreeMap::new();
        for kv in tree.iter() {
            let (k, v) = kv?;
            rows.insert(k.to_vec(), v.to_vec());
        }
        out.insert(name, rows);
    }
    Ok(out)
}

fn rebuild(store: Arc<SledStore>, as_json: bool) -> anyhow::Result<()> {
    let before = snapshot(store.db())?;
    for name in before.keys() {
        store.db().open_tree(name)?.clear()?;
    }
    let walk = Walk::new("rebuilt", store.head());
    let started = std::time::Instant::now();
    Projector::new(store.clone(), projections())?.catch_up()?;
    walk.finish(store.head());
    let after = snapshot(store.db())?;
    let mut report = BTreeMap::new();
    for (name, rows) in &after {
        let line = match before.get(name) {
            None => "new".to_string(),
            Some(old) if old == rows => "identical".to_string(),
            Some(old) => {
                // Name the first few differing keys (read-model keys are short, printable
                // tags followed by ids); the count follows.
                let differing = rows
                    .iter()
                    .filter(|(k, v)| old.get(*k) != Some(*v))
                    .map(|(k, _)| k)
                    .chain(old.keys().filter(|k| !rows.contains_key(*k)));
                for k in differing.take(5) {
                    eprintln!("  {name}: key {} differs", hex::encode(k));
                }
                let changed = rows.iter().filter(|(k, v)| old.get(*k) != Some(*v)).count()
                    + old.keys().filter(|k| !rows.contains_key(*k)).count();
                format!("{changed} keys differ")
            }
        };
        report.insert(name.clone(), line);
    }
    let secs = started.elapsed().as_secs_f64();
    if as_json {
        print::json(
            &serde_json::json!({"events": store.head(), "seconds": secs, "read_models": report}),
        );
    } else {
        for (name, line) in &report {
            println!("{name:<16} {line}");
        }
    }
    Ok(())
}

fn export(store: Option<Arc<SledStore>>, a: &ExportArgs) -> anyhow::Result<()> {
    let mut out: Box<dyn Write> = match &a.out {
        Some(p) => Box::new(BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let Some(store) = store else { return Ok(()) };
    let walk = Walk::new("exported", store.head());
    let mut n = 0;
    for kv in store.log_tree().iter() {
        let (k, bytes) = kv?;
        let seq = latchkey_store::codec::key_u64(&k).unwrap_or(0);
        let rec = latchkey_store::Recorded::decode(seq, &bytes)?;
        let mut line = serde_json::to_value(read::log_entry(&rec))?;
        line["envelope"] = serde_json::Value::String(B64.encode(&bytes));
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
        walk.at(seq);
        n += 1;
    }
    out.flush()?;
    walk.finish(n);
    Ok(())
}

fn import(dir: &Path, file: &Path, as_json: bool) -> anyhow::Result<()> {
    let reader = std::io::BufReader::new(
        std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?,
    );
    let store = open_or_create(dir)?;
    let walk = Walk::new("imported", 0);
    let envelopes = reader.lines().map(|line| {
        let line = line.map_err(|e| latchkey_store::StoreError::Encode(e.to_string()))?;
        let v: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| latchkey_store::StoreError::Encode(format!("not JSON: {e}")))?;
        let b64 = v["envelope"]
            .as_str()
            .ok_or_else(|| latchkey_store::StoreError::Encode("a line has no envelope".into()))?;
        B64.decode(b64)
            .map_err(|e| latchkey_store::StoreError::Encode(format!("bad envelope: {e}")))
    });
    let n = store.import_envelopes(envelopes, |s| walk.at(s))?;
    walk.finish(n);
    Projector::new(store.clone(), projections())?.catch_up()?;
    let doc = read::verify(&store, |_| {})?;
    print::verify(&doc, as_json);
    if !doc.ok {
        bail!("the imported log does not verify");
    }
    Ok(())
}

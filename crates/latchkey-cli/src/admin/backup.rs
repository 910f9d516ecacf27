//! `latchkey admin backup --out FILE`: downloads `GET /api/admin/backup` (the log as of one
//! seq, streamed while the server keeps serving) into FILE. The file is written beside as
//! `FILE.partial` and renamed only once it holds every seq the header names, with the chain
//! head the header names; a cut-short download leaves no FILE behind.

use super::print;
use crate::output::Walk;
use anyhow::{anyhow, bail, Context};
use latchkey_admin::backup::read_header;
use latchkey_admin::tools::import_line;
use latchkey_proto::admin::{BackupHeader, BackupSummary};
use latchkey_proto::ErrorBody;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Downloads a backup into `out`; prints the summary (stderr, or JSON on stdout).
pub fn run(
    base: &str,
    token: &str,
    agent: &ureq::Agent,
    out: &Path,
    as_json: bool,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let resp = match agent
        .get(&format!("{base}/api/admin/backup"))
        .set("Authorization", &format!("Bearer {token}"))
        .call()
    {
        Ok(r) => r,
        Err(ureq::Error::Status(code, r)) => {
            let e: ErrorBody = r.into_json().unwrap_or(ErrorBody {
                error: "error".into(),
                message: format!("HTTP {code}"),
            });
            bail!("{} ({code} {})", e.message, e.error)
        }
        Err(e) => return Err(anyhow!("{e}")),
    };
    let partial = PathBuf::from(format!("{}.partial", out.display()));
    let result = download(resp.into_reader(), &partial);
    let (header, bytes) = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, out)
        .with_context(|| format!("renaming {} to {}", partial.display(), out.display()))?;
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    let summary = BackupSummary {
        file: out.display().to_string(),
        seq: header.seq,
        events: header.seq,
        bytes,
        chain_head: header.chain_head,
        seconds,
        events_per_second: header.seq as f64 / seconds,
        mb_per_second: bytes as f64 / 1e6 / seconds,
    };
    if as_json {
        print::json(&summary);
    } else {
        eprintln!(
            "backup as of seq {}: {} events, {:.1} MB in {:.2} s ({:.0} events/s, {:.1} MB/s), \
             chain head {} -> {}",
            summary.seq,
            summary.events,
            bytes as f64 / 1e6,
            seconds,
            summary.events_per_second,
            summary.mb_per_second,
            summary.chain_head,
            summary.file
        );
    }
    Ok(())
}

/// Copies the stream into `partial`, checking it holds seqs 1 to the header's seq and ends
/// at the header's chain head; returns the header and the bytes written.
fn download(body: impl Read, partial: &Path) -> anyhow::Result<(BackupHeader, u64)> {
    let mut reader = BufReader::with_capacity(256 * 1024, body);
    let mut first = String::new();
    reader.read_line(&mut first).context("reading the backup")?;
    let header = read_header(first.trim_end()).context("the answer is not a backup")?;
    let mut file = BufWriter::new(
        std::fs::File::create(partial)
            .with_context(|| format!("creating {}", partial.display()))?,
    );
    file.write_all(first.as_bytes())?;
    let walk = Walk::new("backed up", header.seq);
    let (mut n, mut bytes) = (0u64, first.len() as u64);
    let mut line = String::new();
    let mut last = String::new();
    loop {
        line.clear();
        let k = reader.read_line(&mut line).context("reading the backup")?;
        if k == 0 {
            break;
        }
        if !line.ends_with('\n') {
            bail!(
                "the backup was cut short after {n} of {} events",
                header.seq
            );
        }
        file.write_all(line.as_bytes())?;
        n += 1;
        bytes += k as u64;
        walk.at(n);
        if n == header.seq {
            std::mem::swap(&mut last, &mut line);
        }
    }
    walk.finish(n);
    if n != header.seq {
        bail!(
            "the backup holds {n} events, its header names seq {}",
            header.seq
        );
    }
    if n > 0 {
        let envelope = import_line(last.trim_end())?;
        let hash: String = latchkey_store::envelope::hash(&envelope)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if hash != header.chain_head {
            bail!("the backup's last envelope is not the chain head its header names");
        }
    }
    let file = file.into_inner().map_err(|e| anyhow!("{}", e.error()))?;
    file.sync_all()
        .with_context(|| format!("syncing {}", partial.display()))?;
    Ok((header, bytes))
}

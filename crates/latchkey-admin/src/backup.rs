//! Hot backup: the log as of one seq, as a header line and one export line per seq, written
//! while the server keeps appending (DESIGN §15).
//!
//! The log is append-only, so the seqs up to the head taken at the start never change:
//! reading them needs no lock and blocks no writer. Each line is made by `tools::export_line`,
//! the same as `admin export`, so whatever an export leaves out (an erased body, a
//! compacted event) a backup leaves out too, as of the moment that line is read.

use crate::json::rfc3339;
use crate::tools::export_line;
use latchkey_domain::Timestamp;
use latchkey_proto::admin::{BackupHeader, BackupLine};
use latchkey_store::{envelope, EventStore, StoreError, StoreResult};
use std::io::Write;

/// The `format` of a backup header.
pub const FORMAT: &str = "latchkey-backup/1";

/// The header of a backup of `store` as of its durable head now.
pub fn header(store: &dyn EventStore, now: Timestamp) -> StoreResult<BackupHeader> {
    let seq = store.head();
    let chain_head = match seq {
        0 => [0u8; 32],
        _ => {
            let (_, bytes) =
                store
                    .read_raw(seq)?
                    .next()
                    .ok_or_else(|| StoreError::Corruption {
                        path: "tree log".into(),
                        detail: format!("the head seq {seq} is missing"),
                    })??;
            envelope::hash(&bytes)
        }
    };
    Ok(BackupHeader {
        format: FORMAT.into(),
        seq,
        chain_head: chain_head.iter().map(|b| format!("{b:02x}")).collect(),
        server_id: store.server_id()?.to_string(),
        taken_at: rfc3339(now),
    })
}

/// Writes the backup `header` describes: the header line, then the export line of every
/// seq from 1 to `header.seq`. `progress` gets each seq. Returns the events written.
pub fn write(
    store: &dyn EventStore,
    header: &BackupHeader,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64),
) -> StoreResult<u64> {
    let io = |e: std::io::Error| StoreError::Io {
        context: "writing the backup".into(),
        source: e,
    };
    let first = BackupLine {
        backup: header.clone(),
    };
    serde_json::to_writer(&mut *out, &first).map_err(|e| StoreError::Encode(e.to_string()))?;
    out.write_all(b"\n").map_err(io)?;
    let mut n = 0;
    for entry in store.read_raw(1)? {
        let (seq, bytes) = entry?;
        if seq > header.seq {
            break;
        }
        serde_json::to_writer(&mut *out, &export_line(seq, &bytes)?)
            .map_err(|e| StoreError::Encode(e.to_string()))?;
        out.write_all(b"\n").map_err(io)?;
        progress(seq);
        n += 1;
    }
    out.flush().map_err(io)?;
    Ok(n)
}

/// The header, if `line` is a backup's first line (an export has none).
pub fn read_header(line: &str) -> Option<BackupHeader> {
    serde_json::from_str::<BackupLine>(line)
        .ok()
        .map(|l| l.backup)
}

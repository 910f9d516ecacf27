//! Output of the shared admin documents: a readable terminal form, or JSON on stdout.
//! Every string that came from the log goes through `output::printable` in the terminal
//! form, so a control character that got into the log is shown escaped, never sent raw.

use crate::output::printable as p;
use latchkey_proto::admin::*;
use serde::Serialize;
use std::process::ExitCode;

/// Prints a document as one JSON line.
pub fn json<T: Serialize>(doc: &T) {
    match serde_json::to_string(doc) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: cannot encode output: {e}"),
    }
}

/// The header of the log table.
pub fn log_header() {
    println!(
        "{:>8}  {:<24}  {:<44}  {:>4}  {:<18}  actor",
        "seq", "recorded_at", "stream", "ver", "type"
    );
}

/// One log entry, as a table row or a JSON line.
pub fn log_entry(e: &LogEntry, as_json: bool) {
    if as_json {
        json(e);
    } else {
        println!(
            "{:>8}  {:<24}  {:<44}  {:>4}  {:<18}  {}",
            e.seq,
            e.recorded_at,
            p(&e.stream),
            e.version,
            p(&e.event_type),
            p(&e.actor)
        );
    }
}

/// Stats.
pub fn stats(d: &StatsDoc, as_json: bool) {
    if as_json {
        return json(d);
    }
    println!("events        {} (head seq {})", d.events, d.head);
    println!(
        "size on disk  {:.1} MiB",
        d.size_on_disk_bytes as f64 / (1024.0 * 1024.0)
    );
    println!("streams");
    for (kind, n) in &d.streams_by_kind {
        println!("  {kind:<22}{n}");
    }
    println!("events by type");
    for (t, n) in &d.events_by_type {
        println!("  {t:<22}{n}");
    }
    println!(
        "tokens        {} live, {} expired, {} revoked",
        d.tokens.live, d.tokens.expired, d.tokens.revoked
    );
}

/// A verify report; its exit code is non-zero when something is wrong.
pub fn verify(d: &VerifyDoc, as_json: bool) -> ExitCode {
    if as_json {
        json(d);
    } else if d.ok {
        println!(
            "ok: {} events in {} streams, head seq {}, chain head {}",
            d.events, d.streams, d.head, d.chain_head
        );
    } else {
        for problem in &d.problems {
            match problem.seq {
                Some(seq) => println!("seq {seq}: {}", p(&problem.message)),
                None => println!("{}", p(&problem.message)),
            }
        }
        println!(
            "FAILED: {} problem(s) in {} events",
            d.problems.len(),
            d.events
        );
    }
    if d.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A user's state.
pub fn state(d: &StateDoc, as_json: bool) {
    if as_json {
        return json(d);
    }
    let u = &d.user;
    println!("user    {} ({})", p(&u.handle), u.id);
    println!(
        "as of   seq {} at {}{}{}",
        d.as_of.seq,
        d.as_of.time,
        if u.admin { ", admin" } else { "" },
        if u.disabled { ", DISABLED" } else { "" }
    );
    println!("keys");
    for k in &d.keys {
        println!(
            "  {}  {}  {}  {}",
            k.key_id,
            p(&k.key_type),
            p(&k.fingerprint),
            p(&k.comment)
        );
    }
    println!("tokens");
    for t in &d.tokens {
        println!(
            "  {}  {:<8}  {:<7}  created {}  expires {}{}",
            t.id,
            t.kind,
            t.status,
            t.created_at,
            t.expires_at.as_deref().unwrap_or("never"),
            t.revoked_at
                .as_deref()
                .map(|r| format!("  revoked {r}"))
                .unwrap_or_default()
        );
    }
    println!("rooms");
    for r in &d.rooms {
        println!(
            "  {}  {} ({}), joined at seq {}",
            r.id,
            p(&r.name),
            r.visibility,
            r.joined_seq
        );
    }
}

/// A user after an admin action.
pub fn user(u: &AdminUser, as_json: bool) {
    if as_json {
        return json(u);
    }
    println!(
        "{} {} admin={} disabled={} (seq {})",
        u.id,
        p(&u.handle),
        u.admin,
        u.disabled,
        u.seq
    );
}

/// A revoked token.
pub fn revoked(r: &RevokedToken, as_json: bool) {
    if as_json {
        return json(r);
    }
    if r.seq == 0 {
        println!(
            "token {} of user {} was already revoked",
            r.token_id, r.user_id
        );
    } else {
        println!(
            "revoked token {} of user {} (seq {})",
            r.token_id, r.user_id, r.seq
        );
    }
}

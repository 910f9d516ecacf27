//! Crash-test child: appends from several concurrent writers to a data dir and prints one
//! `ack <stream> <version> <seq>` line per acknowledged event, until it is killed.
//!
//! Usage: `crash-writer DATA_DIR WRITERS`

use latchkey_domain::{Actor, Event, Timestamp, UserEvent, UserId};
use latchkey_store::{AppendRequest, EventStore, ExpectedVersion, SledStore, StoreOptions};
use std::io::Write;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: crash-writer DATA_DIR WRITERS")?;
    let writers: usize = args
        .next()
        .ok_or("usage: crash-writer DATA_DIR WRITERS")?
        .parse()?;
    let store = Arc::new(SledStore::open(
        std::path::Path::new(&dir),
        StoreOptions::default(),
    )?);
    let out = Arc::new(Mutex::new(std::io::stdout()));
    println!("ready");
    std::io::stdout().flush()?;
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            let out = out.clone();
            std::thread::spawn(move || -> Result<(), String> {
                let stream = UserId(Uuid::new_v4()).stream();
                let mut version = 0u64;
                loop {
                    // Writers alternate between one and three events per append.
                    let n = if (version + w as u64).is_multiple_of(2) {
                        1
                    } else {
                        3
                    };
                    let events = (0..n)
                        .map(|i| Event::User(UserEvent::UserEnabled { at: Timestamp(i) }))
                        .collect();
                    let r = store
                        .append_blocking(AppendRequest {
                            stream: stream.clone(),
                            expected: ExpectedVersion::Exact(version),
                            events,
                            command_id: Uuid::new_v4(),
                            actor: Actor::System,
                        })
                        .map_err(|e| e.to_string())?;
                    let mut o = out.lock().map_err(|e| e.to_string())?;
                    for (i, v) in (r.first_version..=r.last_version).enumerate() {
                        writeln!(o, "ack {stream} {v} {}", r.first_seq + i as u64)
                            .map_err(|e| e.to_string())?;
                    }
                    o.flush().map_err(|e| e.to_string())?;
                    version = r.last_version;
                }
            })
        })
        .collect();
    for h in handles {
        if let Ok(Err(e)) = h.join() {
            eprintln!("writer failed: {e}");
            std::process::exit(1);
        }
    }
    Ok(())
}

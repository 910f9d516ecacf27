//! The crash test: a child appends from several writers and prints every acknowledged
//! event; the parent `kill -9`s it at random moments, reopens the store, and checks that
//! every acknowledged event is there, seqs are contiguous, and the chain verifies.

use latchkey_domain::StreamId;
use latchkey_store::{EventStore, SledStore, StoreOptions};
use rand::Rng;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROUNDS: usize = 24;
const WRITERS: &str = "8";

#[test]
fn kill_9_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::thread_rng();
    let mut acked: HashMap<(String, u64), u64> = HashMap::new();
    let mut total_acks = 0usize;
    for round in 0..ROUNDS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash-writer"))
            .arg(dir.path())
            .arg(WRITERS)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Kill after a random number of acknowledgements: a random moment inside the
        // stream of group commits, chosen by a condition rather than by sleeping.
        let kill_after = rng.gen_range(1..400usize);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = 0usize;
        let mut record = |line: &str| {
            let parts: Vec<&str> = line.split(' ').collect();
            if parts.len() == 4 && parts[0] == "ack" {
                let prev = acked.insert(
                    (parts[1].to_string(), parts[2].parse().unwrap()),
                    parts[3].parse().unwrap(),
                );
                assert!(prev.is_none(), "acknowledged twice: {line}");
                return true;
            }
            false
        };
        for line in lines.by_ref() {
            if record(&line.unwrap()) {
                seen += 1;
            }
            if seen >= kill_after {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: too slow to acknowledge"
            );
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Lines the child wrote before it died were acknowledged too.
        for line in lines {
            let Ok(line) = line else { break };
            if record(&line) {
                seen += 1;
            }
        }
        total_acks += seen;

        let store = SledStore::open(dir.path(), StoreOptions::default()).unwrap();
        for ((stream, version), seq) in &acked {
            let got = store
                .read_stream(&StreamId(stream.clone()), *version)
                .unwrap()
                .next()
                .unwrap_or_else(|| panic!("round {round}: lost {stream} v{version} (seq {seq})"))
                .unwrap();
            assert_eq!(
                (got.envelope.version, got.seq()),
                (*version, *seq),
                "round {round}: {stream} v{version} moved"
            );
        }
        let seqs: Vec<u64> = store
            .read_all(1)
            .unwrap()
            .map(|r| r.unwrap().seq())
            .collect();
        assert!(
            seqs.iter().copied().eq(1..=seqs.len() as u64),
            "round {round}: seqs are not contiguous"
        );
        let report = store.verify(&mut |_| {}).unwrap();
        assert!(report.ok(), "round {round}: {:?}", report.problems);
    }
    assert!(total_acks >= ROUNDS, "every round acknowledged something");
}

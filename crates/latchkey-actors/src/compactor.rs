//! Compaction over a store (DESIGN §15): the domain's `DropRule` fed the live log up to
//! the cutoff, then what it found replaced by tombstones in chunks, each atomic and in
//! order with the appends. Shared by `latchkey admin compact` (offline) and the running
//! server's schedule ([`Schedule`], driven by the core's clock from the sweeper).

use latchkey_domain::compaction::{DropRule, WHY_PAIRING, WHY_TOKEN_USED};
use latchkey_domain::Timestamp;
use latchkey_store::{EventStore, StoreResult};
use std::time::Duration;

/// Seqs tombstoned per store call (one transaction each).
const CHUNK: usize = 4096;

/// What one compaction did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Compacted {
    /// The cutoff: what ended before it could go.
    pub before: Timestamp,
    /// Live events read to find what to drop.
    pub scanned: u64,
    /// Terminal pairing streams dropped.
    pub pairing_streams: u64,
    /// Their events, now tombstones.
    pub pairing_events: u64,
    /// Superseded `TokenUsed` events, now tombstones.
    pub token_used: u64,
    /// The first seq whose as-of state is exact after this compaction.
    pub exact_from: u64,
}

/// Drops, from `store`, terminal pairing streams that ended before `before` and the
/// `TokenUsed` events superseded before it. `progress` gets each seq read, then each seq
/// tombstoned. Safe while the store takes appends: nothing it drops can change again.
pub fn compact(
    store: &dyn EventStore,
    before: Timestamp,
    progress: &mut dyn FnMut(u64),
) -> StoreResult<Compacted> {
    let mut rule = DropRule::new(before);
    let mut scanned = 0u64;
    for rec in store.read_all(1)? {
        let rec = rec?;
        let env = &rec.envelope;
        if !rule.observe(env.seq, &env.stream, env.recorded_at, &rec.event) {
            break;
        }
        scanned += 1;
        progress(env.seq);
    }
    let exact_from = rule.exact_from();
    let mut pairing = std::mem::take(&mut rule.pairing);
    let mut token_used = std::mem::take(&mut rule.token_used);
    pairing.sort_unstable();
    token_used.sort_unstable();
    Ok(Compacted {
        before,
        scanned,
        pairing_streams: rule.pairing_streams,
        pairing_events: drop_all(store, &pairing, WHY_PAIRING, exact_from, progress)?,
        token_used: drop_all(store, &token_used, WHY_TOKEN_USED, exact_from, progress)?,
        exact_from,
    })
}

fn drop_all(
    store: &dyn EventStore,
    seqs: &[u64],
    why: &str,
    exact_from: u64,
    progress: &mut dyn FnMut(u64),
) -> StoreResult<u64> {
    let mut n = 0;
    for chunk in seqs.chunks(CHUNK) {
        n += store.tombstone(chunk, why, exact_from)?;
        if let Some(last) = chunk.last() {
            progress(*last);
        }
    }
    Ok(n)
}

/// When the running server compacts: every `every` of the core's clock, dropping what
/// ended more than `retain` ago. The first run is `every` after start.
#[derive(Debug)]
pub struct Schedule {
    retain: Duration,
    every: Duration,
    /// When the last run started. Held for the whole run, so a second caller (the
    /// sweeper's tick and a test-clock move) waits for a running compaction to finish.
    pub(crate) last: tokio::sync::Mutex<Timestamp>,
}

impl Schedule {
    /// A schedule that starts counting at `now`.
    pub fn new(retain: Duration, every: Duration, now: Timestamp) -> Self {
        Self {
            retain,
            every,
            last: tokio::sync::Mutex::new(now),
        }
    }

    /// The cutoff to compact with if a run that last started at `last` is due again at
    /// `now`, else `None`.
    pub fn due(&self, last: Timestamp, now: Timestamp) -> Option<Timestamp> {
        if now.0 - last.0 < self.every.as_millis() as i64 {
            return None;
        }
        Some(Timestamp(now.0 - self.retain.as_millis() as i64))
    }
}

#[cfg(test)]
mod budget;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_runs_every_period_of_the_clock() {
        let day = Duration::from_secs(86_400);
        let s = Schedule::new(30 * day, day, Timestamp(0));
        let day_ms = day.as_millis() as i64;
        assert_eq!(s.due(Timestamp(0), Timestamp(1000)), None);
        assert_eq!(
            s.due(Timestamp(0), Timestamp(31 * day_ms)),
            Some(Timestamp(day_ms))
        );
        assert_eq!(
            s.due(Timestamp(31 * day_ms), Timestamp(31 * day_ms + 5)),
            None
        );
        assert!(s
            .due(Timestamp(31 * day_ms), Timestamp(32 * day_ms))
            .is_some());
    }
}

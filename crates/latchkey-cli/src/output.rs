//! Terminal output shared by the admin commands: RFC 3339 times, progress bars on stderr,
//! and the closing summary line. Machine-readable output goes to stdout only.

use indicatif::{ProgressBar, ProgressStyle};
use std::time::Instant;

/// Formats unix milliseconds as RFC 3339 UTC (`2026-11-24T01:02:03.456Z`).
pub fn rfc3339_ms(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => t
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| ms.to_string()),
        Err(_) => ms.to_string(),
    }
}

/// A progress bar over `total` log entries, drawn on stderr (hidden when stderr is no terminal).
pub struct Walk {
    bar: ProgressBar,
    started: Instant,
    verb: &'static str,
}

impl Walk {
    /// Starts a walk over `total` events.
    pub fn new(verb: &'static str, total: u64) -> Self {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} events ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(verb);
        Self {
            bar,
            started: Instant::now(),
            verb,
        }
    }

    /// Records progress (the seq just read).
    pub fn at(&self, seq: u64) {
        if seq.is_multiple_of(1024) {
            self.bar.set_position(seq);
        }
    }

    /// Clears the bar and prints the summary line on stderr.
    pub fn finish(self, events: u64) {
        self.bar.finish_and_clear();
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            events as f64 / secs
        } else {
            0.0
        };
        eprintln!(
            "{} {events} events in {secs:.2} s ({rate:.0} events/s)",
            self.verb
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_ms(1_500), "1970-01-01T00:00:01.5Z");
    }
}

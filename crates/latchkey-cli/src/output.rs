//! Terminal output shared by the admin commands: RFC 3339 times, progress bars on stderr,
//! and the closing summary line. Machine-readable output goes to stdout only.

use indicatif::{ProgressBar, ProgressStyle};
use std::time::Instant;

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

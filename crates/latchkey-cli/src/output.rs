//! Terminal output shared by the admin commands: RFC 3339 times, progress bars on stderr,
//! and the closing summary line; and `printable`, which every text (non-JSON) output of
//! the admin and client commands passes client-made strings through. Machine-readable
//! output goes to stdout only.

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

/// `s` made safe for a terminal: every control character (C0, DEL, C1) and every invisible
/// format character shows as an escape (`\x1b`, `\u{202e}`) and a backslash as `\\`, so
/// text that came from a client (a key comment, a name, a message) can neither move the
/// cursor, retitle the window, nor hide or reorder what is around it. Text output only:
/// JSON output is escaped by its encoder.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char =
        |c: char| c == '\\' || c.is_control() || latchkey_domain::device::is_invisible(c);
    if !s.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x80 && c.is_control() => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_and_invisible_characters_are_escaped() {
        assert_eq!(
            printable("evil\u{1b}[2J\u{1b}]0;pwned\u{7}"),
            "evil\\x1b[2J\\x1b]0;pwned\\x07"
        );
        assert_eq!(
            printable("a\u{202e}b\u{9b}c\\d"),
            "a\\u{202e}b\\u{9b}c\\\\d"
        );
        assert_eq!(printable("Général 🎉"), "Général 🎉");
    }
}

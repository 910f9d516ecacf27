//! The shape of a fanout run (who is in which room, which room each message goes to, how
//! many deliveries a complete run makes) and the message bodies, which carry their number
//! and their publish time. Pure values: no I/O.

use std::sync::OnceLock;
use std::time::Instant;

/// Members of each group room.
pub const GROUP: usize = 10;
/// Bytes of each message body.
pub const BODY_LEN: usize = 100;

/// A room of the shape: a user's personal room, or a group of ten.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// Connection `i`'s own room.
    Personal(usize),
    /// Group `g`: connections `10g .. 10g+10`.
    Group(usize),
}

/// The size of a run.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// WebSocket connections (one user each).
    pub connections: usize,
    /// Messages published per second.
    pub rate: f64,
    /// Seconds of publishing.
    pub seconds: f64,
}

impl Shape {
    /// Number of group rooms.
    pub fn groups(&self) -> usize {
        self.connections.div_ceil(GROUP)
    }

    /// Messages published in a run.
    pub fn messages(&self) -> u64 {
        (self.rate * self.seconds).round().max(1.0) as u64
    }

    /// The room message `k` goes to: even numbers to groups, odd to personal rooms.
    pub fn target(&self, k: u64) -> Target {
        let half = (k / 2) as usize;
        if k.is_multiple_of(2) {
            Target::Group(half % self.groups().max(1))
        } else {
            Target::Personal(half % self.connections.max(1))
        }
    }

    /// Connection indices in a room.
    pub fn members(&self, t: Target) -> std::ops::Range<usize> {
        match t {
            Target::Personal(i) => i..i + 1,
            Target::Group(g) => g * GROUP..((g + 1) * GROUP).min(self.connections),
        }
    }

    /// The two rooms of connection `i`.
    pub fn rooms_of(&self, i: usize) -> [Target; 2] {
        [Target::Personal(i), Target::Group(i / GROUP)]
    }

    /// Deliveries a complete run makes.
    pub fn expected(&self) -> u64 {
        (0..self.messages())
            .map(|k| self.members(self.target(k)).len() as u64)
            .sum()
    }
}

/// Nanoseconds since this process's first call: one clock for publishers and receivers.
pub fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// A 100-byte body carrying message number `k` and its publish time.
pub fn body(k: u64, sent_ns: u64) -> String {
    let mut s = format!("k={k:012} t={sent_ns:020} ");
    while s.len() < BODY_LEN {
        s.push('x');
    }
    s
}

/// `(k, sent_ns)` from a body made by [`body`].
pub fn parse_body(s: &str) -> Option<(u64, u64)> {
    let rest = s.strip_prefix("k=")?;
    let (k, rest) = rest.split_once(" t=")?;
    let (t, _) = rest.split_once(' ')?;
    Some((k.parse().ok()?, t.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_and_bodies() {
        let s = Shape {
            connections: 25,
            rate: 10.0,
            seconds: 1.0,
        };
        assert_eq!(s.groups(), 3);
        assert_eq!(s.target(0), Target::Group(0));
        assert_eq!(s.target(1), Target::Personal(0));
        assert_eq!(s.target(4), Target::Group(2));
        assert_eq!(s.members(Target::Group(2)), 20..25);
        // 5 group messages (groups 0,1,2,0,1: 10+10+5+10+10) and 5 personal ones.
        assert_eq!(s.expected(), 50);
        let b = body(42, 123_456_789);
        assert_eq!(b.len(), BODY_LEN);
        assert_eq!(parse_body(&b), Some((42, 123_456_789)));
        assert_eq!(parse_body("hello"), None);
    }
}

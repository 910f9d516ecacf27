//! The shape of a fanout run (who is in which room, which room each message goes to, how
//! many deliveries a range of messages makes) and the message bodies, which carry their
//! number, their ramp step and their publish time at fixed offsets, so a receiver reads
//! them with a few byte comparisons. Pure values: no I/O.

use std::sync::OnceLock;
use std::time::Instant;

/// Members of each group room in the personal-rooms shape.
pub const GROUP: usize = 10;
/// Bytes of each message body.
pub const BODY_LEN: usize = 100;

/// A room of the shape: a user's personal room, or a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// Connection `i`'s own room.
    Personal(usize),
    /// Group `g`: connections `group*g .. group*(g+1)`.
    Group(usize),
}

/// Who is where.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// WebSocket connections (one user each).
    pub connections: usize,
    /// Members of each group room.
    pub group: usize,
    /// Whether every connection also has a personal room (half the messages go there).
    pub personal: bool,
}

impl Shape {
    /// (a): each connection in a personal room plus one room of ten.
    pub fn personal_rooms(connections: usize) -> Self {
        Self {
            connections,
            group: GROUP,
            personal: true,
        }
    }

    /// (b): every connection in one room.
    pub fn one_room(connections: usize) -> Self {
        Self {
            connections,
            group: connections.max(1),
            personal: false,
        }
    }

    /// How the shape reads in the report.
    pub fn describe(&self) -> String {
        if self.personal {
            format!(
                "{} conns, each in a personal room + a room of {}",
                self.connections, self.group
            )
        } else {
            format!("{} conns in one room", self.connections)
        }
    }

    /// Number of group rooms.
    pub fn groups(&self) -> usize {
        self.connections.div_ceil(self.group.max(1))
    }

    /// The room message `k` goes to: with personal rooms, even numbers to groups and odd
    /// ones to personal rooms; otherwise every message to a group.
    pub fn target(&self, k: u64) -> Target {
        if !self.personal {
            return Target::Group(k as usize % self.groups().max(1));
        }
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
            Target::Group(g) => g * self.group..((g + 1) * self.group).min(self.connections),
        }
    }

    /// The rooms of connection `i`.
    pub fn rooms_of(&self, i: usize) -> Vec<Target> {
        let group = Target::Group(i / self.group.max(1));
        if self.personal {
            vec![Target::Personal(i), group]
        } else {
            vec![group]
        }
    }

    /// Whether connection `conn` may see a message sent to `t`.
    pub fn may_see(&self, conn: usize, t: Target) -> bool {
        match t {
            Target::Personal(i) => self.personal && i == conn,
            Target::Group(g) => conn / self.group.max(1) == g,
        }
    }

    /// Deliveries messages `from..to` make.
    pub fn expected(&self, from: u64, to: u64) -> u64 {
        (from..to)
            .map(|k| self.members(self.target(k)).len() as u64)
            .sum()
    }
}

/// Nanoseconds since this process's first call: one clock for publishers and receivers.
pub fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// A 100-byte body: `k=<12 digits> s=<2 digits> t=<20 digits> xxx...`.
pub fn body(k: u64, step: usize, sent_ns: u64) -> String {
    let mut s = format!("k={k:012} s={:02} t={sent_ns:020} ", step % 100);
    while s.len() < BODY_LEN {
        s.push('x');
    }
    s
}

fn digits(b: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(c - b'0');
    }
    Some(v)
}

/// What a body says: message number, ramp step, publish time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Message number.
    pub k: u64,
    /// Ramp step.
    pub step: usize,
    /// Publish time ([`now_ns`]).
    pub sent_ns: u64,
}

/// Reads a body made by [`body`] from the start of `b` (more bytes may follow).
pub fn parse_body(b: &[u8]) -> Option<Stamp> {
    if b.len() < 42 || &b[..2] != b"k=" || &b[14..17] != b" s=" || &b[19..22] != b" t=" {
        return None;
    }
    Some(Stamp {
        k: digits(&b[2..14])?,
        step: digits(&b[17..19])? as usize,
        sent_ns: digits(&b[22..42])?,
    })
}

/// Where `needle` starts in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_bodies() {
        let s = Shape::personal_rooms(25);
        assert_eq!(s.groups(), 3);
        assert_eq!(s.target(0), Target::Group(0));
        assert_eq!(s.target(1), Target::Personal(0));
        assert_eq!(s.target(4), Target::Group(2));
        assert_eq!(s.members(Target::Group(2)), 20..25);
        // 5 group messages (groups 0,1,2,0,1: 10+10+5+10+10) and 5 personal ones.
        assert_eq!(s.expected(0, 10), 50);
        assert!(s.may_see(3, Target::Group(0)) && !s.may_see(13, Target::Group(0)));
        assert!(s.may_see(3, Target::Personal(3)) && !s.may_see(3, Target::Personal(4)));
        let one = Shape::one_room(30);
        assert_eq!((one.groups(), one.target(7)), (1, Target::Group(0)));
        assert_eq!(one.expected(0, 3), 90);
        assert_eq!(one.rooms_of(29), vec![Target::Group(0)]);
        assert!(!one.may_see(0, Target::Personal(0)));
        let b = body(42, 7, 123_456_789);
        assert_eq!(b.len(), BODY_LEN);
        let stamp = Stamp {
            k: 42,
            step: 7,
            sent_ns: 123_456_789,
        };
        assert_eq!(parse_body(b.as_bytes()), Some(stamp));
        assert_eq!(parse_body(b"hello"), None);
        assert_eq!(find(b"ab\"body\":\"k=", b"\"body\":\""), Some(2));
    }
}

//! A model-based test of rooms and WebSocket fanout against the real server: seeded
//! random sequences of room operations over REST (create, join, leave, add, remove, post
//! with and without targets) mixed with WebSocket disconnects, resumes and token
//! revocations, while every user follows its events over a WebSocket.
//!
//! Two independent judges, both naive and both in this file (not the server's code):
//! - a *model* of current membership predicts every REST answer (status and code);
//! - an *oracle* walks the accepted operations in seq order with a member set per room
//!   (a join or creation adds before the event is judged, a leave removes after) and says
//!   which events each user may see.
//!
//! Seqs: a post's comes from its REST answer. A membership event's is learned from the
//! frames: its subject always sees it (the joiner their join, the leaver their leave, the
//! owner the creation), and every user ends caught up by `resume`, so the union of all
//! frames holds each one. Because the driver is sequential and every REST call returns
//! after its event is applied, seq order is operation order, which the labelling checks.
//!
//! The same model runs across two nodes on one JetStream log (`cluster::`): each request
//! goes to a seeded choice of node, once that node has applied what the other has (the
//! driver reads its own writes), and every WebSocket delivery and every history answer on
//! either node must be the oracle's.
//!
//! `MODEL_SEED=N` reruns one sequence; `MODEL_OPS=N` changes its length.

use crate::chat::{
    add_member, full_history, join, leave, post, remove_member, room_path, try_create_room,
    Follower, User, ROOMS,
};
use crate::server::{Resp, Server};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

const USERS: usize = 6;
const MIN_ROOMS: usize = 4;
const MAX_ROOMS: usize = 6;
const DEFAULT_OPS: usize = 200;
/// Fixed seeds, so CI always covers them; one more random seed is added per run.
const SEEDS: [u64; 2] = [0x5eed_0001, 0x5eed_0002];
/// How long delivery may take once the operations have stopped.
const QUIESCENCE: Duration = Duration::from_secs(15);

/// A room as the model knows it.
struct Room {
    id: String,
    name: String,
    owner: usize,
    public: bool,
    /// Current members, as the model predicts them.
    members: BTreeSet<usize>,
    /// Everyone who was ever a member (current ones included): they may read history.
    ever: BTreeSet<usize>,
}

/// A room event made by an accepted operation.
#[derive(Clone, Debug)]
enum Kind {
    Created,
    Joined {
        user: usize,
        by: usize,
    },
    Left {
        user: usize,
        by: usize,
        removed: bool,
    },
    Posted {
        sender: usize,
        targets: Vec<usize>,
        body: String,
        message_id: String,
        seq: u64,
    },
}

#[derive(Clone, Debug)]
struct Event {
    room: usize,
    kind: Kind,
    /// The operation (its index in the log) that made it.
    op: usize,
}

struct Run {
    /// The nodes: one server, or several on one shared log.
    nodes: Vec<Server>,
    rng: StdRng,
    users: Vec<User>,
    followers: Vec<Follower>,
    rooms: Vec<Room>,
    /// Each user's private room outside the model, for delivery barriers.
    inboxes: Vec<String>,
    events: Vec<Event>,
    /// Every operation, described, for failure messages.
    log: Vec<String>,
}

thread_local! {
    /// The operations of the sequence this thread runs, for the failure message.
    static LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

#[test]
fn rooms_and_fanout_agree_with_a_naive_oracle() {
    run_seeds("model::", DEFAULT_OPS, || {
        ((), vec![Server::start_unlimited(&[])])
    });
}

/// Runs the fixed seeds and one random one (or `MODEL_SEED`), each `ops` operations long
/// (or `MODEL_OPS`), on fresh nodes from `start` (its first value is kept alive for the
/// run: the nodes' shared log, if any). `filter` names the test for the rerun line.
pub fn run_seeds<G>(filter: &str, ops: usize, start: impl Fn() -> (G, Vec<Server>)) {
    let ops = std::env::var("MODEL_OPS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(ops);
    let seeds: Vec<u64> = match std::env::var("MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(seed) => vec![seed],
        None => SEEDS.iter().copied().chain([rand::random()]).collect(),
    };
    for seed in seeds {
        println!("model sequence: seed {seed}, {ops} operations");
        let started = Instant::now();
        let run = || {
            let (_guard, nodes) = start();
            run_sequence(nodes, seed, ops)
        };
        if let Err(e) = catch_unwind(AssertUnwindSafe(run)) {
            let log = LOG.with(|l| l.borrow().clone());
            let from = log.len().saturating_sub(60);
            eprintln!(
                "\nMODEL TEST FAILED with seed {seed} (rerun: MODEL_SEED={seed} cargo test -p \
                 latchkey-tests --test blackbox {filter}). Last operations:\n{}",
                log[from..]
                    .iter()
                    .enumerate()
                    .map(|(i, l)| format!("  #{}: {l}", from + i))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            resume_unwind(e);
        }
        println!("seed {seed}: passed in {:?}", started.elapsed());
    }
}

fn run_sequence(nodes: Vec<Server>, seed: u64, ops: usize) {
    LOG.with(|l| l.borrow_mut().clear());
    let server = &nodes[0];
    let users: Vec<User> = (0..USERS)
        .map(|i| User::new(server, &format!("m{i}")))
        .collect();
    let followers = (0..USERS)
        .map(|i| Follower::new(&format!("m{i}")))
        .collect();
    let inboxes = users
        .iter()
        .map(|u| crate::chat::create_room(server, &u.token, "inbox", "private"))
        .collect();
    let mut run = Run {
        nodes,
        rng: StdRng::seed_from_u64(seed),
        users,
        followers,
        rooms: Vec::new(),
        inboxes,
        events: Vec::new(),
        log: Vec::new(),
    };
    for u in 0..USERS {
        let node = &run.nodes[u % run.nodes.len()];
        run.followers[u].connect(node, &run.users[u].token);
    }
    for step in 0..ops {
        if step < MIN_ROOMS {
            let owner = run.rng.gen_range(0..USERS);
            run.create(owner, step % 2 == 0);
        } else {
            run.random_op();
        }
        for f in run.followers.iter_mut() {
            f.pump();
        }
    }
    run.quiesce();
    run.check();
}

impl Run {
    fn note(&mut self, text: String) -> usize {
        LOG.with(|l| l.borrow_mut().push(text.clone()));
        self.log.push(text);
        self.log.len() - 1
    }

    /// The node the next request goes to: the one node, or a seeded choice once it has
    /// applied every event the others have (a client that reads its own writes).
    fn pick(&mut self) -> usize {
        if self.nodes.len() == 1 {
            return 0;
        }
        let n = self.rng.gen_range(0..self.nodes.len());
        self.note(format!("  (on node {n})"));
        self.sync_to(n);
        n
    }

    /// Waits until node `n` has applied what every other node has.
    fn sync_to(&self, n: usize) {
        for (m, other) in self.nodes.iter().enumerate() {
            if m != n {
                crate::cluster::wait_caught_up(&self.nodes[n], other);
            }
        }
    }

    fn id(&self, u: usize) -> &str {
        &self.users[u].id
    }

    fn token(&self, u: usize) -> &str {
        &self.users[u].token
    }

    /// Whether `u` may know room `r` exists (public, or a member).
    fn sees(&self, u: usize, r: usize) -> bool {
        self.rooms[r].public || self.rooms[r].members.contains(&u)
    }

    fn random_op(&mut self) {
        let rooms = self.rooms.len();
        let r = self.rng.gen_range(0..rooms);
        let u = self.rng.gen_range(0..USERS);
        let members: Vec<usize> = self.rooms[r].members.iter().copied().collect();
        let outsiders: Vec<usize> = (0..USERS).filter(|x| !members.contains(x)).collect();
        let owner = self.rooms[r].owner;
        // Mostly sensible choices, so events happen; sometimes anyone, so refusals do.
        let member_or_any = |rng: &mut StdRng| -> usize {
            if rng.gen_bool(0.8) {
                *members.choose(rng).unwrap_or(&u)
            } else {
                u
            }
        };
        let owner_or_any = |rng: &mut StdRng| if rng.gen_bool(0.75) { owner } else { u };
        match self.rng.gen_range(0..100) {
            0..=3 if rooms < MAX_ROOMS => {
                let public = self.rng.gen_bool(0.5);
                self.create(u, public)
            }
            0..=15 => self.join(u, r),
            16..=25 => {
                let who = member_or_any(&mut self.rng);
                self.leave(who, r)
            }
            26..=36 => {
                let by = owner_or_any(&mut self.rng);
                let x = *outsiders.choose(&mut self.rng).unwrap_or(&u);
                self.add(by, r, x)
            }
            37..=44 => {
                let by = owner_or_any(&mut self.rng);
                let x = member_or_any(&mut self.rng);
                self.remove(by, r, x)
            }
            45..=79 => {
                let sender = member_or_any(&mut self.rng);
                let mut targets = Vec::new();
                if self.rng.gen_bool(0.5) {
                    for _ in 0..self.rng.gen_range(1..=3) {
                        targets.push(*members.choose(&mut self.rng).unwrap_or(&sender));
                    }
                }
                let stray = self.rng.gen_bool(0.08) && !outsiders.is_empty();
                if stray {
                    targets.push(*outsiders.choose(&mut self.rng).unwrap_or(&u));
                }
                self.post(sender, r, targets, stray)
            }
            80..=87 => {
                let graceful = self.rng.gen_bool(0.5);
                self.disconnect(u, graceful)
            }
            88..=95 => self.reconnect(u),
            _ => self.revoke(u),
        }
    }

    // ---- operations ----

    fn create(&mut self, owner: usize, public: bool) {
        let name = format!("room {}", self.rooms.len());
        let visibility = if public { "public" } else { "private" };
        let op = self.note(format!(
            "m{owner} creates {visibility} room {}",
            self.rooms.len()
        ));
        let n = self.pick();
        let resp = try_create_room(&self.nodes[n], self.token(owner), &name, visibility);
        let v: Value = resp.expect(201).json();
        assert_eq!(v["owner"], self.id(owner));
        self.rooms.push(Room {
            id: v["id"].as_str().expect("room id").to_string(),
            name,
            owner,
            public,
            members: BTreeSet::from([owner]),
            ever: BTreeSet::from([owner]),
        });
        self.events.push(Event {
            room: self.rooms.len() - 1,
            kind: Kind::Created,
            op,
        });
    }

    fn join(&mut self, u: usize, r: usize) {
        let op = self.note(format!("m{u} joins room {r}"));
        let n = self.pick();
        let resp = join(&self.nodes[n], self.token(u), &self.rooms[r].id);
        let room = &mut self.rooms[r];
        if !room.public && !room.members.contains(&u) {
            return expect(&resp, 404, "not_found");
        }
        expect(&resp, 200, "");
        room.ever.insert(u);
        if room.members.insert(u) {
            self.events.push(Event {
                room: r,
                kind: Kind::Joined { user: u, by: u },
                op,
            });
        }
    }

    fn leave(&mut self, u: usize, r: usize) {
        let op = self.note(format!("m{u} leaves room {r}"));
        let n = self.pick();
        let resp = leave(&self.nodes[n], self.token(u), &self.rooms[r].id);
        let room = &mut self.rooms[r];
        if room.owner == u {
            return expect(&resp, 409, "conflict");
        }
        if !room.members.contains(&u) {
            return if room.public {
                expect(&resp, 403, "not_a_member")
            } else {
                expect(&resp, 404, "not_found")
            };
        }
        expect(&resp, 204, "");
        room.members.remove(&u);
        self.events.push(Event {
            room: r,
            kind: Kind::Left {
                user: u,
                by: u,
                removed: false,
            },
            op,
        });
    }

    fn add(&mut self, by: usize, r: usize, x: usize) {
        let op = self.note(format!("m{by} adds m{x} to room {r}"));
        let n = self.pick();
        let resp = add_member(
            &self.nodes[n],
            self.token(by),
            &self.rooms[r].id,
            self.id(x),
        );
        if !self.sees(by, r) {
            return expect(&resp, 404, "not_found");
        }
        let room = &mut self.rooms[r];
        if room.owner != by {
            return expect(&resp, 403, "forbidden");
        }
        expect(&resp, 204, "");
        room.ever.insert(x);
        if room.members.insert(x) {
            self.events.push(Event {
                room: r,
                kind: Kind::Joined { user: x, by },
                op,
            });
        }
    }

    fn remove(&mut self, by: usize, r: usize, x: usize) {
        let op = self.note(format!("m{by} removes m{x} from room {r}"));
        let n = self.pick();
        let resp = remove_member(
            &self.nodes[n],
            self.token(by),
            &self.rooms[r].id,
            self.id(x),
        );
        if !self.sees(by, r) {
            return expect(&resp, 404, "not_found");
        }
        let room = &mut self.rooms[r];
        if room.owner != by {
            return expect(&resp, 403, "forbidden");
        }
        if x == room.owner {
            return expect(&resp, 409, "conflict");
        }
        if !room.members.contains(&x) {
            return expect(&resp, 403, "not_a_member");
        }
        expect(&resp, 204, "");
        room.members.remove(&x);
        self.events.push(Event {
            room: r,
            kind: Kind::Left {
                user: x,
                by,
                removed: true,
            },
            op,
        });
    }

    fn post(&mut self, sender: usize, r: usize, targets: Vec<usize>, stray: bool) {
        let body = format!("#{} from m{sender} to {targets:?}", self.log.len());
        let op = self.note(format!("m{sender} posts in room {r} to {targets:?}"));
        let n = self.pick();
        let ids: Vec<&str> = targets.iter().map(|t| self.id(*t)).collect();
        let resp = post(
            &self.nodes[n],
            self.token(sender),
            &self.rooms[r].id,
            &body,
            &ids,
        );
        let room = &self.rooms[r];
        if !room.members.contains(&sender) {
            return if room.public {
                expect(&resp, 403, "not_a_member")
            } else {
                expect(&resp, 404, "not_found")
            };
        }
        if targets.iter().any(|t| !room.members.contains(t)) {
            assert!(stray, "the model picked a non-member target by accident");
            return expect(&resp, 400, "invalid_request");
        }
        expect(&resp, 201, "");
        let v: Value = resp.json();
        let mut unique = Vec::new();
        for t in targets {
            if !unique.contains(&t) {
                unique.push(t);
            }
        }
        self.events.push(Event {
            room: r,
            kind: Kind::Posted {
                sender,
                targets: unique,
                body,
                message_id: v["message_id"].as_str().expect("message_id").to_string(),
                seq: v["seq"].as_u64().expect("seq"),
            },
            op,
        });
    }

    fn disconnect(&mut self, u: usize, graceful: bool) {
        self.note(format!("m{u} disconnects (graceful: {graceful})"));
        self.followers[u].disconnect(graceful);
    }

    fn reconnect(&mut self, u: usize) {
        if self.followers[u].connected() {
            return;
        }
        let since = self.followers[u].cursor;
        self.note(format!("m{u} reconnects, resume since {since}"));
        let n = self.pick();
        self.followers[u].connect(&self.nodes[n], &self.users[u].token);
    }

    fn revoke(&mut self, u: usize) {
        let was = self.followers[u].connected();
        self.note(format!(
            "m{u} logs out (connected: {was}), signs in again, resumes"
        ));
        let n = self.pick();
        self.users[u].log_out(&self.nodes[n]);
        if was {
            let code = self.followers[u].expect_closed(Duration::from_secs(5));
            assert_eq!(
                code,
                Some(4001),
                "m{u}: close code after its token was revoked"
            );
        }
        let n = self.pick();
        self.users[u].sign_in_again(&self.nodes[n]);
        let n = self.pick();
        self.followers[u].connect(&self.nodes[n], &self.users[u].token);
    }

    // ---- the end ----

    /// Everyone reconnects and posts a barrier to their inbox: once a user's connection
    /// delivered its barrier, it delivered every earlier event it was going to (events
    /// come in seq order). Then one more resume, to a head past every barrier, must
    /// replay nothing.
    fn quiesce(&mut self) {
        for u in 0..USERS {
            if !self.followers[u].connected() {
                let n = self.pick();
                self.followers[u].connect(&self.nodes[n], &self.users[u].token);
            }
        }
        let mut last = 0;
        for u in 0..USERS {
            self.followers[u].wait_resumed(QUIESCENCE);
            let n = self.pick();
            let (id, seq) = crate::chat::posted(
                &self.nodes[n],
                self.token(u),
                &self.inboxes[u],
                "barrier",
                &[],
            );
            last = last.max(seq);
            let f = &mut self.followers[u];
            let end = Instant::now() + QUIESCENCE;
            while !f
                .events
                .iter()
                .any(|v| v["data"]["message_id"] == id.as_str())
            {
                assert!(
                    Instant::now() < end,
                    "m{u}: its barrier (seq {seq}) was not delivered; last session {:?}",
                    f.sessions.last()
                );
                assert!(
                    f.pump_for(Duration::from_millis(20)),
                    "m{u}: closed during quiescence: {:?}",
                    f.sessions.last()
                );
            }
        }
        for u in 0..USERS {
            let node = &self.nodes[u % self.nodes.len()];
            let f = &mut self.followers[u];
            let before = f.events.len();
            f.disconnect(true);
            let end = Instant::now() + QUIESCENCE;
            loop {
                f.connect(node, &self.users[u].token);
                f.wait_resumed(QUIESCENCE);
                let head = f.sessions.last().unwrap().hello["head"].as_u64().unwrap();
                if head >= last {
                    break;
                }
                assert!(Instant::now() < end, "hello.head never reached {last}");
                f.disconnect(true);
            }
            assert_eq!(
                f.events.len(),
                before,
                "m{u}: a final resume replayed events that live delivery had not: {:?}",
                &f.events[before..]
            );
        }
    }

    /// The event frames of `f` in the model's rooms (its inbox aside).
    fn events_of<'a>(&self, f: &'a Follower) -> Vec<&'a Value> {
        f.events
            .iter()
            .filter(|v| {
                let room = v["room_id"].as_str().unwrap_or_default();
                !self.inboxes.iter().any(|i| i == room)
            })
            .collect()
    }

    /// The naive oracle over operation order: for each user, the indexes (into `events`)
    /// of the events it may see.
    fn oracle_by_op(&self) -> Vec<Vec<usize>> {
        let mut members: Vec<BTreeSet<usize>> = Vec::new();
        let mut visible = vec![Vec::new(); USERS];
        for (i, e) in self.events.iter().enumerate() {
            if members.len() <= e.room {
                members.resize(e.room + 1, BTreeSet::new());
            }
            let set = &mut members[e.room];
            match &e.kind {
                Kind::Created => {
                    set.insert(self.rooms[e.room].owner);
                }
                Kind::Joined { user, .. } => {
                    set.insert(*user);
                }
                _ => {}
            }
            for (u, list) in visible.iter_mut().enumerate() {
                let addressed = match &e.kind {
                    Kind::Posted {
                        sender, targets, ..
                    } => targets.is_empty() || targets.contains(&u) || *sender == u,
                    _ => true,
                };
                if set.contains(&u) && addressed {
                    list.push(i);
                }
            }
            if let Kind::Left { user, .. } = &e.kind {
                set.remove(user);
            }
        }
        visible
    }

    /// The frame the oracle expects for event `i`, without its seq.
    fn expected_frame(&self, e: &Event) -> (String, Value) {
        let id = |u: &usize| self.users[*u].id.clone();
        let room = &self.rooms[e.room];
        match &e.kind {
            Kind::Created => (
                "room.created".into(),
                json!({
                    "name": room.name,
                    "visibility": if room.public { "public" } else { "private" },
                    "owner": id(&room.owner),
                }),
            ),
            Kind::Joined { user, by } => (
                "member.joined".into(),
                json!({"user_id": id(user), "by": id(by)}),
            ),
            Kind::Left { user, by, removed } => (
                "member.left".into(),
                json!({"user_id": id(user), "by": id(by), "reason": if *removed { "removed" } else { "left" }}),
            ),
            Kind::Posted {
                sender,
                targets,
                body,
                message_id,
                ..
            } => (
                "message.posted".into(),
                json!({
                    "message_id": message_id,
                    "sender": id(sender),
                    "body": body,
                    "target_user_ids": targets.iter().map(id).collect::<Vec<_>>(),
                    "reply_to": null,
                }),
            ),
        }
    }

    /// Whether a received frame is the expected event (`sent_at`/`created_at` aside).
    fn frame_matches(&self, e: &Event, frame: &Value) -> bool {
        let (event, data) = self.expected_frame(e);
        if frame["type"] != "event"
            || frame["event"] != event.as_str()
            || frame["room_id"] != self.rooms[e.room].id.as_str()
        {
            return false;
        }
        let mut got = frame["data"].clone();
        if let Some(o) = got.as_object_mut() {
            o.remove("sent_at");
            o.remove("created_at");
        }
        got == data
    }

    fn check(&self) {
        // Every frame anyone received, by seq; one seq, one frame, whoever got it.
        let mut union: BTreeMap<u64, &Value> = BTreeMap::new();
        for f in &self.followers {
            assert!(
                f.odd.is_empty(),
                "{}: unexpected frames {:?}",
                f.name,
                f.odd
            );
            let all = f.seqs();
            assert!(
                all.windows(2).all(|w| w[0] < w[1]),
                "{}: events (inbox included) not strictly increasing: {all:?}",
                f.name
            );
            for v in self.events_of(f) {
                let seq = v["seq"].as_u64().expect("event seq");
                let seen = union.entry(seq).or_insert(v);
                assert_eq!(*seen, v, "two different frames for seq {seq}");
            }
        }

        // Seqs of the oracle's events, in operation order.
        let mut seqs: Vec<u64> = Vec::with_capacity(self.events.len());
        let mut prev = 0u64;
        for e in &self.events {
            let seq = match &e.kind {
                Kind::Posted { seq, .. } => *seq,
                _ => union
                    .range(prev + 1..)
                    .find(|(_, v)| self.frame_matches(e, v))
                    .map(|(s, _)| *s)
                    .unwrap_or_else(|| {
                        panic!(
                            "op #{} ({}): its event reached no connection, not even its \
                             subject's (after seq {prev})",
                            e.op, self.log[e.op]
                        )
                    }),
            };
            assert!(
                seq > prev,
                "op #{} ({}) has seq {seq}, not after the previous operation's {prev}",
                e.op,
                self.log[e.op]
            );
            seqs.push(seq);
            prev = seq;
        }
        let event_at: BTreeMap<u64, &Event> = seqs.iter().copied().zip(&self.events).collect();
        for (seq, v) in &union {
            let e = event_at.get(seq).unwrap_or_else(|| {
                panic!("a frame for seq {seq} that no accepted operation made: {v}")
            });
            assert!(
                self.frame_matches(e, v),
                "seq {seq}: frame {v} is not op #{} ({}): expected {:?}",
                e.op,
                self.log[e.op],
                self.expected_frame(e)
            );
        }

        let expected = self.oracle_by_op();
        for (u, f) in self.followers.iter().enumerate() {
            let want: Vec<u64> = expected[u].iter().map(|i| seqs[*i]).collect();
            let events = self.events_of(f);
            let got: Vec<u64> = events.iter().map(|v| v["seq"].as_u64().unwrap()).collect();
            let wanted: BTreeSet<u64> = want.iter().copied().collect();
            for (seq, v) in got.iter().zip(&events) {
                if !wanted.contains(seq) {
                    let e = event_at[seq];
                    panic!(
                        "LEAK: m{u} received seq {seq} from op #{} ({}), which the oracle says \
                         it may not see: {v}",
                        e.op, self.log[e.op]
                    );
                }
            }
            let mut seen = BTreeSet::new();
            for seq in &got {
                assert!(seen.insert(*seq), "m{u} received seq {seq} twice: {got:?}");
            }
            assert!(
                got.windows(2).all(|w| w[0] < w[1]),
                "m{u}: events out of order: {got:?}"
            );
            let missing: Vec<String> = want
                .iter()
                .filter(|s| !got.contains(s))
                .map(|s| {
                    format!(
                        "seq {s} (op #{}: {})",
                        event_at[s].op, self.log[event_at[s].op]
                    )
                })
                .collect();
            assert!(missing.is_empty(), "m{u} never received: {missing:#?}");
            assert_eq!(got, want, "m{u}");

            // Each connection: hello.rooms is the membership at hello.head; resumed spans
            // (since, head].
            for s in &f.sessions {
                let head = s.hello["head"].as_u64().expect("head");
                assert_eq!(s.hello["user_id"], self.users[u].id.as_str());
                let mut got: Vec<&str> = s.hello["rooms"]
                    .as_array()
                    .expect("rooms")
                    .iter()
                    .map(|r| r.as_str().expect("room id"))
                    .collect();
                got.sort();
                let mut want: Vec<&str> = self
                    .members_at(head, u)
                    .into_iter()
                    .map(|r| self.rooms[r].id.as_str())
                    .chain([self.inboxes[u].as_str()])
                    .collect();
                want.sort();
                assert_eq!(got, want, "m{u}: hello.rooms at head {head}");
                if let Some(r) = &s.resumed {
                    assert_eq!(r, &json!({"type": "resumed", "from": s.since, "to": head}));
                }
            }
        }
        self.check_rest(&seqs);
        let sessions: usize = self.followers.iter().map(|f| f.sessions.len()).sum();
        let leaves = self
            .events
            .iter()
            .filter(|e| matches!(e.kind, Kind::Left { .. }))
            .count();
        let targeted = self
            .events
            .iter()
            .filter(|e| matches!(&e.kind, Kind::Posted { targets, .. } if !targets.is_empty()))
            .count();
        let count = |what: &str| self.log.iter().filter(|l| l.contains(what)).count();
        println!(
            "{} operations, {} events ({leaves} leaves, {targeted} targeted posts), {} rooms, \
             {sessions} connections ({} disconnects, {} revocations)",
            self.log.len() - count("  (on node "),
            self.events.len(),
            self.rooms.len(),
            count("disconnects"),
            count("logs out"),
        );
        assert!(
            leaves > 0 && targeted > 0,
            "the sequence exercised too little"
        );
    }

    /// The rooms `u` is a member of once every event up to `seq` applied.
    fn members_at(&self, seq: u64, u: usize) -> BTreeSet<usize> {
        let mut rooms = BTreeSet::new();
        for (e, s) in self.events.iter().zip(self.labels()) {
            if s > seq {
                break;
            }
            match &e.kind {
                Kind::Created if self.rooms[e.room].owner == u => {
                    rooms.insert(e.room);
                }
                Kind::Joined { user, .. } if *user == u => {
                    rooms.insert(e.room);
                }
                Kind::Left { user, .. } if *user == u => {
                    rooms.remove(&e.room);
                }
                _ => {}
            }
        }
        rooms
    }

    /// The seq of every event, as `check` labelled them (recomputed: cheap at this size).
    fn labels(&self) -> Vec<u64> {
        let mut union: BTreeMap<u64, &Value> = BTreeMap::new();
        for f in &self.followers {
            for v in self.events_of(f) {
                union.entry(v["seq"].as_u64().unwrap_or(0)).or_insert(v);
            }
        }
        let mut prev = 0;
        self.events
            .iter()
            .map(|e| {
                prev = match &e.kind {
                    Kind::Posted { seq, .. } => *seq,
                    _ => union
                        .range(prev + 1..)
                        .find(|(_, v)| self.frame_matches(e, v))
                        .map(|(s, _)| *s)
                        .unwrap_or(u64::MAX),
                };
                prev
            })
            .collect()
    }

    /// REST agrees on every node, once each has applied everything: my rooms, and each
    /// room's history is the oracle's visible posts.
    fn check_rest(&self, seqs: &[u64]) {
        for (n, node) in self.nodes.iter().enumerate() {
            self.sync_to(n);
            for (u, visible) in self.oracle_by_op().iter().enumerate() {
                self.check_rest_of(node, u, visible, seqs);
            }
        }
    }

    /// [`Run::check_rest`] for user `u` on `node`.
    fn check_rest_of(&self, node: &Server, u: usize, visible: &[usize], seqs: &[u64]) {
        let list: Value = node.get(ROOMS, Some(self.token(u))).expect(200).json();
        let mut mine: Vec<&str> = list["rooms"]
            .as_array()
            .expect("rooms")
            .iter()
            .map(|r| r["id"].as_str().expect("id"))
            .filter(|id| *id != self.inboxes[u])
            .collect();
        mine.sort();
        let mut want: Vec<&str> = self
            .rooms
            .iter()
            .filter(|r| r.members.contains(&u))
            .map(|r| r.id.as_str())
            .collect();
        want.sort();
        assert_eq!(mine, want, "m{u}: GET /rooms");
        for (r, room) in self.rooms.iter().enumerate() {
            // The visibility rule alone decides (DESIGN §7): a former member reads their
            // own membership periods; only a never-member is refused.
            if !room.ever.contains(&u) {
                let resp = node.get(&room_path(&room.id, "/messages"), Some(self.token(u)));
                if room.public {
                    resp.expect_error(403, "not_a_member");
                } else {
                    resp.expect_error(404, "not_found");
                }
                continue;
            }
            let got: Vec<u64> = full_history(node, self.token(u), &room.id, 7)
                .iter()
                .map(|m| m["seq"].as_u64().expect("seq"))
                .collect();
            let mut want: Vec<u64> = visible
                .iter()
                .filter(|i| {
                    self.events[**i].room == r
                        && matches!(self.events[**i].kind, Kind::Posted { .. })
                })
                .map(|i| seqs[*i])
                .collect();
            want.reverse();
            assert_eq!(got, want, "m{u}: REST history of room {r}");
        }
    }
}

/// Asserts a REST answer: a success status, or an error status with its code.
#[track_caller]
fn expect(resp: &Resp, status: u16, code: &str) {
    if code.is_empty() {
        assert_eq!(resp.status, status, "{}: {}", resp.what, resp.body);
    } else {
        resp.expect_error(status, code);
    }
}

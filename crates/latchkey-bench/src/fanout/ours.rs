//! The fanout shapes against latchkey: users signed in with in-process SSH keys, their
//! private rooms, WebSocket connections authenticated with `Authorization: Bearer`, and
//! messages posted over REST by up to [`PUBLISHERS`] concurrent async posters on
//! keep-alive connections (each post is a durable, fsynced append that answers after it
//! is projected and handed to the fanout hub). Receivers read each frame with byte
//! searches (the room id and the body's stamp), never a JSON parse.

use super::drive::{sleep_until_ns, Plan, Published, Publisher, Ramp};
use super::shape::{find, now_ns, parse_body, Shape, Target};
use super::{drive, Outcome, Slot, Tally};
use crate::client::{self, Identity, Session};
use crate::http1::Conn;
use crate::server::Server;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Threads signing users in and creating rooms.
const SETUP_THREADS: usize = 32;
/// Concurrent posters (each waits for its post's fsync and projection).
pub const PUBLISHERS: usize = 128;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The users and rooms of a run.
struct World {
    sessions: Vec<Session>,
    personal: Vec<String>,
    groups: Vec<String>,
    rooms: HashMap<String, Target>,
}

impl World {
    /// Who posts message `k` to `target`, and where: the owner of a personal room, or a
    /// rotating member of a group.
    fn sender(&self, shape: &Shape, target: Target, k: u64) -> Option<(&str, &str)> {
        let (member, room) = match target {
            Target::Personal(i) => (i, self.personal.get(i)?),
            Target::Group(g) => {
                let members = shape.members(target);
                let turn = (k / 2) as usize / shape.groups().max(1);
                (
                    members.start + turn % members.len().max(1),
                    self.groups.get(g)?,
                )
            }
        };
        Some((self.sessions.get(member)?.token.as_str(), room.as_str()))
    }
}

/// Runs `work(i)` for `i in 0..n` on `threads` threads; the results in order.
fn parallel<T: Send>(
    n: usize,
    threads: usize,
    work: impl Fn(&ureq::Agent, usize) -> anyhow::Result<T> + Sync,
) -> anyhow::Result<Vec<T>> {
    let work = &work;
    let mut out: Vec<(usize, T)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|t| {
                s.spawn(move || -> anyhow::Result<Vec<(usize, T)>> {
                    let agent = client::agent();
                    (t..n)
                        .step_by(threads.max(1))
                        .map(|i| work(&agent, i).map(|v| (i, v)))
                        .collect()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(n);
        for h in handles {
            all.extend(
                h.join()
                    .map_err(|_| anyhow::anyhow!("a setup thread panicked"))??,
            );
        }
        anyhow::Ok(all)
    })?;
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, v)| v).collect())
}

/// Signs every user in, creates the personal rooms (if the shape has them) and the
/// groups, and adds every member.
fn setup(url: &str, shape: &Shape) -> anyhow::Result<World> {
    let users = parallel(shape.connections, SETUP_THREADS, |agent, i| {
        let session = client::sign_in(agent, url, &Identity::generate()?)?;
        let room = if shape.personal {
            client::create_room(agent, url, &session.token, &format!("personal {i}"))?
        } else {
            String::new()
        };
        Ok((session, room))
    })?;
    let (sessions, personal): (Vec<Session>, Vec<String>) = users.into_iter().unzip();
    let groups = parallel(shape.groups(), SETUP_THREADS, |agent, g| {
        let owner = &sessions[shape.members(Target::Group(g)).start];
        client::create_room(agent, url, &owner.token, &format!("group {g}"))
    })?;
    let adds: Vec<(usize, usize)> = (0..shape.groups())
        .flat_map(|g| shape.members(Target::Group(g)).skip(1).map(move |m| (g, m)))
        .collect();
    parallel(adds.len(), SETUP_THREADS, |agent, i| {
        let (g, m) = adds[i];
        let owner = &sessions[shape.members(Target::Group(g)).start];
        client::add_member(agent, url, &owner.token, &groups[g], &sessions[m].user_id)
    })?;
    let mut rooms = HashMap::new();
    if shape.personal {
        for (i, r) in personal.iter().enumerate() {
            rooms.insert(r.clone(), Target::Personal(i));
        }
    }
    for (g, r) in groups.iter().enumerate() {
        rooms.insert(r.clone(), Target::Group(g));
    }
    Ok(World {
        sessions,
        personal,
        groups,
        rooms,
    })
}

/// The parts of a setup frame the client reads (hello, pong).
#[derive(Deserialize)]
struct Frame {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    rooms: Option<Vec<String>>,
}

/// A lean client config: thousands of these share the machine with the server.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

async fn next_text(ws: &mut Ws) -> anyhow::Result<String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(t.as_str().to_string()),
            Some(Ok(Message::Close(c))) => anyhow::bail!("closed during setup: {c:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => anyhow::bail!("the connection ended during setup"),
        }
    }
}

/// Opens a connection as `token`, reads `hello` (its rooms), and sends `ping` so that live
/// delivery starts at once; returns after the `pong`.
async fn connect(ws_url: &str, token: &str) -> anyhow::Result<(Ws, Vec<String>)> {
    let mut req = format!("{ws_url}/api/native/ws").into_client_request()?;
    req.headers_mut().insert(
        "Authorization",
        HeaderValue::from_str(&client::bearer(token))?,
    );
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(req, Some(ws_config()), true).await?;
    let hello: Frame = serde_json::from_str(&next_text(&mut ws).await?)?;
    anyhow::ensure!(hello.kind == "hello", "expected hello, got {}", hello.kind);
    ws.send(Message::text(r#"{"op":"ping"}"#)).await?;
    loop {
        let f: Frame = serde_json::from_str(&next_text(&mut ws).await?)?;
        if f.kind == "pong" {
            return Ok((ws, hello.rooms.unwrap_or_default()));
        }
    }
}

/// Counts one frame: a message (room id and stamp found by byte search) or not.
fn count(frame: &[u8], slot: &Slot, shape: &Shape, world: &World) {
    const BODY: &[u8] = b"\"body\":\"";
    const ROOM: &[u8] = b"\"room_id\":\"";
    let stamp = find(frame, BODY).and_then(|i| parse_body(&frame[i + BODY.len()..]));
    let Some(stamp) = stamp else {
        if find(frame, b"\"pong\"").is_none() {
            slot.steps.unreadable();
        }
        return;
    };
    let room = find(frame, ROOM)
        .and_then(|i| frame.get(i + ROOM.len()..i + ROOM.len() + 36))
        .and_then(|r| std::str::from_utf8(r).ok())
        .and_then(|r| world.rooms.get(r))
        .copied();
    slot.steps.delivery(shape, slot.index, room, stamp);
}

/// Reads frames until told to stop.
async fn receive(
    mut ws: Ws,
    mut slot: Slot,
    shape: Shape,
    world: Arc<World>,
    mut tally: Tally,
) -> Tally {
    loop {
        let msg = tokio::select! {
            _ = slot.stop.changed() => break,
            m = ws.next() => m,
        };
        match msg {
            Some(Ok(Message::Text(t))) => count(t.as_bytes(), &slot, &shape, &world),
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                tally.closed_early = true;
                break;
            }
            Some(Ok(_)) => {}
        }
    }
    tally
}

/// Builds a two-thread runtime for the clients (the server has the same two cores).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Posts each message over REST from [`PUBLISHERS`] keep-alive connections.
struct Poster {
    world: Arc<World>,
    shape: Shape,
    conns: Vec<Conn>,
}

impl Publisher for Poster {
    async fn publish(&mut self, plan: Plan) -> anyhow::Result<Published> {
        let start = now_ns() + 20_000_000;
        let next = Arc::new(AtomicU64::new(plan.first));
        let end = plan.first + plan.count;
        let tasks: Vec<_> = std::mem::take(&mut self.conns)
            .into_iter()
            .map(|mut conn| {
                let (next, world, shape) = (next.clone(), self.world.clone(), self.shape);
                tokio::spawn(async move {
                    let (mut ok, mut errors) = (0u64, 0u64);
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        if k >= end {
                            return (conn, ok, errors);
                        }
                        sleep_until_ns(plan.due(start, k)).await;
                        let target = shape.target(k);
                        let Some((token, room)) = world.sender(&shape, target, k) else {
                            errors += 1;
                            continue;
                        };
                        let body = serde_json::json!({
                            "body": super::shape::body(k, plan.step, now_ns())
                        });
                        let path = format!("/api/native/rooms/{room}/messages");
                        match conn
                            .post_json(&path, body.to_string().as_bytes(), Some(token))
                            .await
                        {
                            Ok(a) if (200..300).contains(&a.status) => ok += 1,
                            _ => errors += 1,
                        }
                    }
                })
            })
            .collect();
        let (mut published, mut errors) = (0, 0);
        for t in tasks {
            let (conn, ok, e) = t.await?;
            self.conns.push(conn);
            published += ok;
            errors += e;
        }
        Ok(Published {
            published,
            errors,
            seconds: now_ns().saturating_sub(start) as f64 / 1e9,
        })
    }
}

/// Runs the shape against a fresh latchkey server.
pub fn run(shape: Shape, schedule: Ramp, bin: &Path) -> anyhow::Result<Outcome> {
    let server = Server::start(bin, &["--no-rate-limit"])?;
    let outcome = run_at(shape, schedule, &server, &server);
    drop(server);
    outcome
}

/// Runs the shape with users, rooms and posts on `post` and every WebSocket on `watch`
/// (the same server, or two nodes of one JetStream log).
pub fn run_at(
    shape: Shape,
    schedule: Ramp,
    post: &Server,
    watch: &Server,
) -> anyhow::Result<Outcome> {
    let url = post.url().to_string();
    let t = Instant::now();
    let world = Arc::new(setup(&url, &shape)?);
    eprintln!(
        "  latchkey: {} users, {} personal rooms and {} groups set up in {:.1} s",
        world.sessions.len(),
        world.personal.len(),
        world.groups.len(),
        t.elapsed().as_secs_f64()
    );
    let ws_url = watch.ws_url();
    let open = |slot: Slot| {
        let (world, ws_url) = (world.clone(), ws_url.clone());
        async move {
            let Some(token) = world.sessions.get(slot.index).map(|s| s.token.clone()) else {
                return slot.failed(anyhow::anyhow!("no user")).await;
            };
            match slot.gated(connect(&ws_url, &token)).await {
                Err(e) => slot.failed(e).await,
                Ok((ws, rooms)) => {
                    let want: HashSet<Target> = shape.rooms_of(slot.index).into_iter().collect();
                    let got: HashSet<Target> = rooms
                        .iter()
                        .filter_map(|r| world.rooms.get(r).copied())
                        .collect();
                    let tally = Tally {
                        wrong_rooms: got != want || rooms.len() != want.len(),
                        ..Tally::default()
                    };
                    slot.ready().await;
                    receive(ws, slot, shape, world, tally).await
                }
            }
        }
    };
    let poster = Poster {
        world: world.clone(),
        shape,
        conns: (0..PUBLISHERS).map(|_| Conn::new(&url)).collect(),
    };
    let outcome = runtime()?.block_on(drive(
        "latchkey",
        shape,
        schedule,
        watch.pid(),
        open,
        poster,
    ))?;
    Ok(outcome)
}

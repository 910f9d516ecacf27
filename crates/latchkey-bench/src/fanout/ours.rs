//! The fanout shape against latchkey: users signed in with in-process SSH keys, a private
//! personal room each and private rooms of ten, WebSocket connections authenticated with
//! `Authorization: Bearer`, and messages posted over REST (each post is a durable,
//! fsynced append that answers after it is projected and handed to the fanout hub).

use super::{drive, publish, Outcome, Shape, Slot, Tally, Target};
use crate::client::{self, Identity, Session};
use crate::server::Server;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::Ordering;
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
/// Threads posting messages (each post waits for its fsync and projection).
const PUBLISH_THREADS: usize = 32;

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

/// Signs every user in, creates the personal rooms and the groups of ten.
fn setup(url: &str, shape: &Shape) -> anyhow::Result<World> {
    let users = parallel(shape.connections, SETUP_THREADS, |agent, i| {
        let session = client::sign_in(agent, url, &Identity::generate()?)?;
        let room = client::create_room(agent, url, &session.token, &format!("personal {i}"))?;
        Ok((session, room))
    })?;
    let (sessions, personal): (Vec<Session>, Vec<String>) = users.into_iter().unzip();
    let groups = parallel(shape.groups(), SETUP_THREADS, |agent, g| {
        let members = shape.members(Target::Group(g));
        let owner = &sessions[members.start];
        let room = client::create_room(agent, url, &owner.token, &format!("group {g}"))?;
        for m in members.skip(1) {
            client::add_member(agent, url, &owner.token, &room, &sessions[m].user_id)?;
        }
        Ok(room)
    })?;
    let mut rooms = HashMap::new();
    for (i, r) in personal.iter().enumerate() {
        rooms.insert(r.clone(), Target::Personal(i));
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

/// The parts of a server frame the client reads.
#[derive(Deserialize)]
struct Frame {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    room_id: Option<String>,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    rooms: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(default)]
    body: Option<String>,
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

/// Reads frames until told to stop, checking each against the shape.
async fn receive(
    mut ws: Ws,
    slot: Slot,
    shape: Shape,
    world: Arc<World>,
    mut tally: Tally,
) -> Tally {
    let Slot {
        index: conn,
        received,
        mut stop,
        ..
    } = slot;
    loop {
        let msg = tokio::select! {
            _ = stop.changed() => break,
            m = ws.next() => m,
        };
        let text = match msg {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                tally.closed_early = true;
                break;
            }
            Some(Ok(_)) => continue,
        };
        let Ok(frame) = serde_json::from_str::<Frame>(text.as_str()) else {
            tally.unexpected += 1;
            continue;
        };
        if frame.kind != "event" {
            tally.unexpected += u64::from(frame.kind != "pong");
            continue;
        }
        let room = frame
            .room_id
            .as_ref()
            .and_then(|r| world.rooms.get(r))
            .copied();
        match (frame.event.as_deref(), frame.data.and_then(|d| d.body)) {
            (Some("message.posted"), Some(body)) => {
                tally.message(&shape, conn, room, &body);
                received.fetch_add(1, Ordering::Relaxed);
            }
            _ => tally.room_event(&shape, conn, room),
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

/// Runs the shape against a fresh latchkey server.
pub fn run(shape: Shape, bin: &Path) -> anyhow::Result<Outcome> {
    let server = Server::start(bin, &["--no-rate-limit"])?;
    let url = server.url().to_string();
    let t = Instant::now();
    let world = Arc::new(setup(&url, &shape)?);
    eprintln!(
        "  latchkey: {} users, {} personal rooms and {} groups set up in {:.1} s",
        world.sessions.len(),
        world.personal.len(),
        world.groups.len(),
        t.elapsed().as_secs_f64()
    );
    let ws_url = server.ws_url();
    let open = |slot: Slot| {
        let (world, ws_url) = (world.clone(), ws_url.clone());
        async move {
            let Some(token) = world.sessions.get(slot.index).map(|s| s.token.clone()) else {
                return slot.failed(anyhow::anyhow!("no user")).await;
            };
            match slot.gated(connect(&ws_url, &token)).await {
                Err(e) => slot.failed(e).await,
                Ok((ws, rooms)) => {
                    let mut tally = Tally::default();
                    let want: HashSet<Target> = shape.rooms_of(slot.index).into_iter().collect();
                    let got: HashSet<Target> = rooms
                        .iter()
                        .filter_map(|r| world.rooms.get(r).copied())
                        .collect();
                    if got != want || rooms.len() != want.len() {
                        tally.violations += 1; // hello named rooms other than its own
                    }
                    slot.ready().await;
                    receive(ws, slot, shape, world, tally).await
                }
            }
        }
    };
    let (w, u) = (world.clone(), url.clone());
    let publisher = move || {
        publish(shape, PUBLISH_THREADS, move |_| {
            let agent = client::agent();
            let (w, u) = (w.clone(), u.clone());
            Ok(move |k: u64, target: Target, body: &str| {
                let (token, room) = w
                    .sender(&shape, target, k)
                    .ok_or_else(|| anyhow::anyhow!("no sender for {target:?}"))?;
                client::post_message(&agent, &u, token, room, body)
            })
        })
    };
    let outcome = runtime()?.block_on(drive("latchkey", shape, server.pid(), open, publisher))?;
    drop(server);
    Ok(outcome)
}

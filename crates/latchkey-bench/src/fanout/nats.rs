//! The fanout shapes against `nats-server` (the peer a team would pick): its WebSocket
//! listener on loopback without TLS, one WebSocket per user subscribed to its subjects
//! (`room.p.<i>`, `room.g.<g>`), and messages published with `PUB` over one plain TCP
//! connection on the same schedule (every message due is written at once, stamped when
//! written). Core NATS keeps nothing on disk and checks no per-message permission: it is
//! the speed of bare routing. Receivers parse the protocol in place, with no allocation
//! per message.

use super::drive::{sleep_until_ns, Plan, Published, Publisher, Ramp};
use super::shape::{body, now_ns, parse_body, Stamp};
use super::{drive, Outcome, Shape, Slot, Tally, Target};
use crate::fanout::ours::{runtime, ws_config};
use crate::server::{find_program, free_port};
use futures_util::{SinkExt, StreamExt};
use std::net::TcpStream as StdTcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The subject of a room.
pub fn subject(t: Target) -> String {
    match t {
        Target::Personal(i) => format!("room.p.{i}"),
        Target::Group(g) => format!("room.g.{g}"),
    }
}

/// The room of a subject.
pub fn target_of(subject: &str) -> Option<Target> {
    if let Some(i) = subject.strip_prefix("room.p.") {
        return i.parse().ok().map(Target::Personal);
    }
    subject
        .strip_prefix("room.g.")
        .and_then(|g| g.parse().ok())
        .map(Target::Group)
}

/// One item of the NATS text protocol from the server.
#[derive(Debug, PartialEq, Eq)]
pub enum Item {
    /// `MSG <subject> <sid> [reply] <n>` and its payload, read in place.
    Msg {
        /// The room of the subject (None: not a subject of the shape).
        target: Option<Target>,
        /// The payload's stamp (None: not a run message).
        stamp: Option<Stamp>,
    },
    /// `PING`: answer `PONG`.
    Ping,
    /// `PONG`.
    Pong,
    /// `-ERR ...`.
    Err(String),
    /// `INFO`, `+OK`, or anything else.
    Other,
}

/// Splits a byte stream (WebSocket frames may cut or join protocol lines) into items,
/// reading from a cursor and compacting once per push.
#[derive(Default)]
pub struct Parser {
    buf: Vec<u8>,
    pos: usize,
}

impl Parser {
    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete item, if the buffer holds one.
    pub fn next_item(&mut self) -> Option<Item> {
        let rest = &self.buf[self.pos..];
        let end = rest.windows(2).position(|w| w == b"\r\n")?;
        let line = &rest[..end];
        if let Some(fields) = line.strip_prefix(b"MSG ") {
            let mut words = fields.split(|b| *b == b' ').filter(|w| !w.is_empty());
            let subject = words.next().unwrap_or_default();
            let n: usize = words
                .next_back()
                .and_then(|n| std::str::from_utf8(n).ok())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let start = end + 2;
            if rest.len() < start + n + 2 {
                return None;
            }
            let item = Item::Msg {
                target: std::str::from_utf8(subject).ok().and_then(target_of),
                stamp: parse_body(&rest[start..start + n]),
            };
            self.pos += start + n + 2;
            return Some(item);
        }
        let item = match line {
            b"PING" => Item::Ping,
            b"PONG" => Item::Pong,
            l if l.starts_with(b"-ERR") => Item::Err(String::from_utf8_lossy(l).to_string()),
            _ => Item::Other,
        };
        self.pos += end + 2;
        Some(item)
    }
}

/// A running nats-server on loopback, its config and store in a temp dir; killed on drop.
pub(crate) struct Nats {
    child: Child,
    port: u16,
    ws_port: u16,
    _dir: tempfile::TempDir,
}

impl Nats {
    /// Core NATS with a WebSocket listener without TLS (the fanout peer).
    fn start(program: &Path) -> anyhow::Result<Self> {
        Self::spawn(program, true, |port, ws_port, _| {
            format!(
                "listen: \"127.0.0.1:{port}\"\n\
                 websocket {{\n  listen: \"127.0.0.1:{ws_port}\"\n  no_tls: true\n}}\n"
            )
        })
    }

    /// With JetStream, its store in the temp dir (the shared log of `latchkey --store`);
    /// no WebSocket listener.
    pub(crate) fn start_jetstream(program: &Path) -> anyhow::Result<Self> {
        Self::spawn(program, false, |port, _, dir| {
            format!(
                "listen: \"127.0.0.1:{port}\"\njetstream {{\n  store_dir: {:?}\n}}\n",
                dir.display().to_string()
            )
        })
    }

    /// Writes the config `conf(port, ws_port, dir)`, starts nats-server with it, and waits
    /// (bounded) until it listens on `port`, and on `ws_port` with `websocket`.
    fn spawn(
        program: &Path,
        websocket: bool,
        conf: impl FnOnce(u16, u16, &Path) -> String,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let (port, ws_port) = (free_port()?, free_port()?);
        let file = dir.path().join("nats.conf");
        std::fs::write(&file, conf(port, ws_port, dir.path()))?;
        let child = Command::new(program)
            .arg("-c")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let nats = Self {
            child,
            port,
            ws_port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let listening = |p: u16| StdTcpStream::connect(("127.0.0.1", p)).is_ok();
        while !(listening(port) && (!websocket || listening(ws_port))) {
            anyhow::ensure!(
                Instant::now() < deadline,
                "nats-server did not start listening"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(nats)
    }

    /// The client URL.
    pub(crate) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The nats-server binary, if installed.
pub fn program() -> Option<PathBuf> {
    find_program("nats-server")
}

async fn read_until(ws: &mut Ws, parser: &mut Parser, want: &Item) -> anyhow::Result<()> {
    loop {
        while let Some(item) = parser.next_item() {
            match item {
                ref i if i == want => return Ok(()),
                Item::Err(e) => anyhow::bail!("nats: {e}"),
                _ => {}
            }
        }
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => parser.push(&b),
            Some(Ok(Message::Text(t))) => parser.push(t.as_bytes()),
            Some(Ok(Message::Close(c))) => anyhow::bail!("closed during setup: {c:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => anyhow::bail!("the connection ended during setup"),
        }
    }
}

/// Connects, subscribes to the connection's subjects, and waits for the `PONG` that says
/// the subscriptions are in place.
async fn connect(ws_port: u16, shape: &Shape, i: usize) -> anyhow::Result<(Ws, Parser)> {
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(
        format!("ws://127.0.0.1:{ws_port}/"),
        Some(ws_config()),
        true,
    )
    .await?;
    let mut parser = Parser::default();
    read_until(&mut ws, &mut parser, &Item::Other).await?; // INFO
    let mut hello = String::from("CONNECT {\"verbose\":false,\"pedantic\":false}\r\n");
    for (sid, room) in shape.rooms_of(i).into_iter().enumerate() {
        hello.push_str(&format!("SUB {} {}\r\n", subject(room), sid + 1));
    }
    hello.push_str("PING\r\n");
    ws.send(Message::binary(hello.into_bytes())).await?;
    read_until(&mut ws, &mut parser, &Item::Pong).await?;
    Ok((ws, parser))
}

async fn receive(mut ws: Ws, mut parser: Parser, mut slot: Slot, shape: Shape) -> Tally {
    let mut tally = Tally::default();
    loop {
        while let Some(item) = parser.next_item() {
            match item {
                Item::Msg {
                    target,
                    stamp: Some(stamp),
                } => slot.steps.delivery(&shape, slot.index, target, stamp),
                Item::Msg { stamp: None, .. } | Item::Err(_) => slot.steps.unreadable(),
                Item::Ping => {
                    if ws
                        .send(Message::binary(b"PONG\r\n".to_vec()))
                        .await
                        .is_err()
                    {
                        tally.closed_early = true;
                        return tally;
                    }
                }
                Item::Pong | Item::Other => {}
            }
        }
        let msg = tokio::select! {
            _ = slot.stop.changed() => return tally,
            m = ws.next() => m,
        };
        match msg {
            Some(Ok(Message::Binary(b))) => parser.push(&b),
            Some(Ok(Message::Text(t))) => parser.push(t.as_bytes()),
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                tally.closed_early = true;
                return tally;
            }
            Some(Ok(_)) => {}
        }
    }
}

/// Publishes over one plain TCP connection: every message due is written at once, each
/// stamped with the write time. A reader task drains what the server sends (INFO, and a
/// PING every two minutes, which a run never lasts long enough to miss twice).
struct Pub {
    writer: tokio::net::tcp::OwnedWriteHalf,
    shape: Shape,
}

impl Pub {
    async fn connect(port: u16, shape: Shape) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        let (mut reader, mut writer) = stream.into_split();
        let mut info = [0u8; 4];
        reader.read_exact(&mut info).await?;
        anyhow::ensure!(&info == b"INFO", "nats: expected INFO");
        tokio::spawn(async move {
            let mut sink = [0u8; 4096];
            while reader.read(&mut sink).await.is_ok_and(|n| n > 0) {}
        });
        writer
            .write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\n")
            .await?;
        Ok(Self { writer, shape })
    }
}

impl Publisher for Pub {
    async fn publish(&mut self, plan: Plan) -> anyhow::Result<Published> {
        let start = now_ns() + 20_000_000;
        let end = plan.first + plan.count;
        let mut next = plan.first;
        let mut frame = Vec::new();
        while next < end {
            sleep_until_ns(plan.due(start, next)).await;
            let now = now_ns();
            frame.clear();
            while next < end && plan.due(start, next) <= now {
                let body = body(next, plan.step, now);
                let subject = subject(self.shape.target(next));
                frame.extend_from_slice(
                    format!("PUB {subject} {}\r\n{body}\r\n", body.len()).as_bytes(),
                );
                next += 1;
            }
            self.writer.write_all(&frame).await?;
        }
        Ok(Published {
            published: plan.count,
            errors: 0,
            seconds: now_ns().saturating_sub(start) as f64 / 1e9,
        })
    }
}

/// Runs the shape against a fresh nats-server.
pub fn run(shape: Shape, schedule: Ramp, program: &Path) -> anyhow::Result<Outcome> {
    let nats = Nats::start(program)?;
    let (port, ws_port) = (nats.port, nats.ws_port);
    let open = |slot: Slot| async move {
        match slot.gated(connect(ws_port, &shape, slot.index)).await {
            Err(e) => slot.failed(e).await,
            Ok((ws, parser)) => {
                slot.ready().await;
                receive(ws, parser, slot, shape).await
            }
        }
    };
    let rt = runtime()?;
    let publisher = rt.block_on(Pub::connect(port, shape))?;
    let outcome = rt.block_on(drive(
        "nats-server",
        shape,
        schedule,
        nats.child.id(),
        open,
        publisher,
    ))?;
    drop(nats);
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_split_and_joined_frames() {
        let mut p = Parser::default();
        let b = body(9, 3, 77);
        p.push(b"INFO {\"x\":1}\r\nMSG room.g.3 2 100\r\n");
        assert_eq!(p.next_item(), Some(Item::Other));
        assert_eq!(p.next_item(), None);
        p.push(&b.as_bytes()[..50]);
        assert_eq!(p.next_item(), None);
        p.push(&b.as_bytes()[50..]);
        p.push(b"\r\nPING\r\nMSG room.p.1 1 reply.x 0\r\n\r\n");
        let stamp = Stamp {
            k: 9,
            step: 3,
            sent_ns: 77,
        };
        assert_eq!(
            p.next_item(),
            Some(Item::Msg {
                target: Some(Target::Group(3)),
                stamp: Some(stamp)
            })
        );
        assert_eq!(p.next_item(), Some(Item::Ping));
        assert_eq!(
            p.next_item(),
            Some(Item::Msg {
                target: Some(Target::Personal(1)),
                stamp: None
            })
        );
        assert_eq!(p.next_item(), None);
        assert_eq!(
            target_of(&subject(Target::Group(7))),
            Some(Target::Group(7))
        );
        assert_eq!(target_of("other"), None);
    }
}

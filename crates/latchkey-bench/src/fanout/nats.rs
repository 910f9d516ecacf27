//! The fanout shape against `nats-server` (the peer a team would pick): its WebSocket
//! listener on loopback without TLS, one WebSocket per user subscribed to its two subjects
//! (`room.p.<i>`, `room.g.<g>`), and messages published with `PUB` over one plain TCP
//! connection on the same schedule. Core NATS keeps nothing on disk and checks no
//! per-message permission: it is the speed of bare routing.

use super::{drive, publish, Outcome, Shape, Slot, Tally, Target};
use crate::fanout::ours::{runtime, ws_config};
use crate::server::{find_program, free_port};
use futures_util::{SinkExt, StreamExt};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream as StdTcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
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
    /// `MSG <subject> <sid> [reply] <n>` and its payload.
    Msg {
        /// The subject.
        subject: String,
        /// The payload.
        payload: Vec<u8>,
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

/// Splits a byte stream (WebSocket frames may cut or join protocol lines) into items.
#[derive(Default)]
pub struct Parser {
    buf: Vec<u8>,
}

impl Parser {
    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete item, if the buffer holds one.
    pub fn next_item(&mut self) -> Option<Item> {
        let end = self.buf.windows(2).position(|w| w == b"\r\n")?;
        let line = String::from_utf8_lossy(&self.buf[..end]).to_string();
        if let Some(rest) = line.strip_prefix("MSG ") {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let n: usize = fields.last().and_then(|n| n.parse().ok()).unwrap_or(0);
            let start = end + 2;
            if self.buf.len() < start + n + 2 {
                return None;
            }
            let payload = self.buf[start..start + n].to_vec();
            self.buf.drain(..start + n + 2);
            return Some(Item::Msg {
                subject: fields.first().map(|s| s.to_string()).unwrap_or_default(),
                payload,
            });
        }
        self.buf.drain(..end + 2);
        Some(match line.as_str() {
            "PING" => Item::Ping,
            "PONG" => Item::Pong,
            l if l.starts_with("-ERR") => Item::Err(l.to_string()),
            _ => Item::Other,
        })
    }
}

/// A running nats-server; killed on drop.
struct Nats {
    child: Child,
    port: u16,
    ws_port: u16,
    _dir: tempfile::TempDir,
}

impl Nats {
    fn start(program: &Path) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let (port, ws_port) = (free_port()?, free_port()?);
        let conf = dir.path().join("nats.conf");
        std::fs::write(
            &conf,
            format!(
                "listen: \"127.0.0.1:{port}\"\n\
                 websocket {{\n  listen: \"127.0.0.1:{ws_port}\"\n  no_tls: true\n}}\n"
            ),
        )?;
        let child = Command::new(program)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let nats = Self {
            child,
            port,
            ws_port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while StdTcpStream::connect(("127.0.0.1", ws_port)).is_err()
            || StdTcpStream::connect(("127.0.0.1", port)).is_err()
        {
            anyhow::ensure!(
                Instant::now() < deadline,
                "nats-server did not start listening"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(nats)
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

/// Connects, subscribes to the connection's two subjects, and waits for the `PONG` that
/// says the subscriptions are in place.
async fn connect(ws_port: u16, shape: &Shape, i: usize) -> anyhow::Result<(Ws, Parser)> {
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(
        format!("ws://127.0.0.1:{ws_port}/"),
        Some(ws_config()),
        true,
    )
    .await?;
    let mut parser = Parser::default();
    read_until(&mut ws, &mut parser, &Item::Other).await?; // INFO
    let [own, group] = shape.rooms_of(i);
    let hello = format!(
        "CONNECT {{\"verbose\":false,\"pedantic\":false}}\r\nSUB {} 1\r\nSUB {} 2\r\nPING\r\n",
        subject(own),
        subject(group)
    );
    ws.send(Message::binary(hello.into_bytes())).await?;
    read_until(&mut ws, &mut parser, &Item::Pong).await?;
    Ok((ws, parser))
}

async fn receive(mut ws: Ws, mut parser: Parser, slot: Slot, shape: Shape) -> Tally {
    let Slot {
        index: conn,
        received,
        mut stop,
        ..
    } = slot;
    let mut tally = Tally::default();
    loop {
        while let Some(item) = parser.next_item() {
            match item {
                Item::Msg { subject, payload } => {
                    let body = String::from_utf8_lossy(&payload);
                    tally.message(&shape, conn, target_of(&subject), &body);
                    received.fetch_add(1, Ordering::Relaxed);
                }
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
                Item::Err(_) => tally.unexpected += 1,
                Item::Pong | Item::Other => {}
            }
        }
        let msg = tokio::select! {
            _ = stop.changed() => return tally,
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

/// A publishing connection over plain TCP; a reader thread answers the server's PINGs.
fn publisher(port: u16) -> anyhow::Result<impl FnMut(u64, Target, &str) -> anyhow::Result<()>> {
    let stream = StdTcpStream::connect(("127.0.0.1", port))?;
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut info = String::new();
    reader.read_line(&mut info)?;
    anyhow::ensure!(
        info.starts_with("INFO"),
        "nats: expected INFO, got {info:?}"
    );
    let writer = Arc::new(Mutex::new(stream));
    {
        let mut w = writer
            .lock()
            .map_err(|_| anyhow::anyhow!("publisher lock poisoned"))?;
        w.write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\n")?;
    }
    let pong = writer.clone();
    std::thread::spawn(move || {
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
            if line.trim_end() == "PING" {
                if let Ok(mut w) = pong.lock() {
                    let _ = w.write_all(b"PONG\r\n");
                }
            }
            line.clear();
        }
    });
    Ok(move |_k: u64, target: Target, body: &str| {
        let frame = format!("PUB {} {}\r\n{body}\r\n", subject(target), body.len());
        let mut w = writer
            .lock()
            .map_err(|_| anyhow::anyhow!("publisher lock poisoned"))?;
        w.write_all(frame.as_bytes())?;
        Ok(())
    })
}

/// Runs the shape against a fresh nats-server.
pub fn run(shape: Shape, program: &Path) -> anyhow::Result<Outcome> {
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
    let publisher = move || publish(shape, 1, move |_| publisher(port));
    let outcome = runtime()?.block_on(drive(
        "nats-server",
        shape,
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
        p.push(b"INFO {\"x\":1}\r\nMSG room.g.3 2 5\r\nhel");
        assert_eq!(p.next_item(), Some(Item::Other));
        assert_eq!(p.next_item(), None);
        p.push(b"lo\r\nPING\r\nMSG room.p.1 1 reply.x 0\r\n\r\n");
        assert_eq!(
            p.next_item(),
            Some(Item::Msg {
                subject: "room.g.3".into(),
                payload: b"hello".to_vec()
            })
        );
        assert_eq!(p.next_item(), Some(Item::Ping));
        assert_eq!(
            p.next_item(),
            Some(Item::Msg {
                subject: "room.p.1".into(),
                payload: Vec::new()
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

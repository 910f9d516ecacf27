//! A minimal async HTTP/1.1 client for load: one keep-alive connection per task, requests
//! written in one `write_all`, answers read by `Content-Length`. It is the same client for
//! latchkey and for every in-bench peer, so it costs both sides alike and costs little:
//! no pool, no header map, no TLS. It refuses chunked answers (none of the servers it
//! talks to sends them for these routes).

use anyhow::Context;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A connection idle this long is dropped and opened again before the next request:
/// actix-web closes keep-alive connections idle for 5 s, and a request written into a
/// connection the server is closing fails (at low offered rates a poster waits longer
/// than that between two posts).
const IDLE_REOPEN: Duration = Duration::from_secs(4);

/// One keep-alive connection to `host:port`.
pub struct Conn {
    addr: String,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    /// When the last answer was read.
    used: Instant,
    /// Idle time after which the connection is opened again ([`IDLE_REOPEN`]).
    idle_reopen: Duration,
}

/// An answer: status and body.
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON of type `T`, if the status is 2xx.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> anyhow::Result<T> {
        anyhow::ensure!(
            (200..300).contains(&self.status),
            "HTTP {}: {}",
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        Ok(serde_json::from_slice(&self.body)?)
    }
}

/// Where the header block ends (after `\r\n\r\n`).
fn header_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Status and content length of a header block.
pub fn parse_head(head: &[u8]) -> anyhow::Result<(u16, usize)> {
    let text = std::str::from_utf8(head).context("answer headers are not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .context("no status line")?;
    let mut length = 0;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse()?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            anyhow::bail!("chunked answers are not supported");
        }
    }
    Ok((status, length))
}

impl Conn {
    /// A connection to `http://host:port` (opened on first use).
    pub fn new(url: &str) -> Self {
        Self {
            addr: url
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string(),
            stream: None,
            buf: Vec::with_capacity(4096),
            used: Instant::now(),
            idle_reopen: IDLE_REOPEN,
        }
    }

    async fn stream(&mut self) -> anyhow::Result<&mut TcpStream> {
        if self.stream.is_none() {
            let s = TcpStream::connect(&self.addr).await?;
            s.set_nodelay(true)?;
            self.stream = Some(s);
            self.buf.clear();
        }
        self.stream.as_mut().context("no stream")
    }

    /// `POST path` with a JSON body and an optional bearer token.
    pub async fn post_json(
        &mut self,
        path: &str,
        body: &[u8],
        bearer: Option<&str>,
    ) -> anyhow::Result<Answer> {
        let mut req = Vec::with_capacity(256 + body.len());
        req.extend_from_slice(b"POST ");
        req.extend_from_slice(path.as_bytes());
        req.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        req.extend_from_slice(self.addr.as_bytes());
        req.extend_from_slice(b"\r\nContent-Type: application/json\r\n");
        if let Some(t) = bearer {
            req.extend_from_slice(b"Authorization: Bearer ");
            req.extend_from_slice(t.as_bytes());
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        req.extend_from_slice(body);
        match self.round_trip(&req).await {
            Ok(a) => Ok(a),
            Err(e) => {
                self.stream = None; // a broken connection is not reused
                Err(e)
            }
        }
    }

    async fn round_trip(&mut self, req: &[u8]) -> anyhow::Result<Answer> {
        if self.used.elapsed() >= self.idle_reopen {
            self.stream = None;
        }
        self.stream().await?.write_all(req).await?;
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = header_end(&self.buf) {
                let (status, length) = parse_head(&self.buf[..end])?;
                while self.buf.len() < end + length {
                    let n = self.read(&mut chunk).await?;
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                let body = self.buf[end..end + length].to_vec();
                self.buf.drain(..end + length);
                self.used = Instant::now();
                return Ok(Answer { status, body });
            }
            let n = self.read(&mut chunk).await?;
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn read(&mut self, chunk: &mut [u8]) -> anyhow::Result<usize> {
        let n = self.stream().await?.read(chunk).await?;
        anyhow::ensure!(n > 0, "the server closed the connection");
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_and_length() {
        let head = b"HTTP/1.1 201 Created\r\ncontent-length: 17\r\nx: y\r\n\r\n";
        assert_eq!(header_end(head), Some(head.len()));
        assert_eq!(parse_head(head).unwrap(), (201, 17));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
        assert!(parse_head(b"garbage").is_err());
    }

    /// A server that answers every request on every connection; counts connections.
    async fn counting_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = std::sync::Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0
                            || s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                                .await
                                .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        (url, accepted)
    }

    #[tokio::test]
    async fn an_idle_connection_is_opened_again_and_a_busy_one_is_kept() {
        use std::sync::atomic::Ordering;
        let (url, accepted) = counting_server().await;
        let mut kept = Conn::new(&url);
        for _ in 0..3 {
            assert_eq!(kept.post_json("/x", b"{}", None).await.unwrap().body, b"ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        let mut reopened = Conn::new(&url);
        reopened.idle_reopen = Duration::ZERO;
        for _ in 0..3 {
            assert_eq!(
                reopened.post_json("/x", b"{}", None).await.unwrap().body,
                b"ok"
            );
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 4);
    }
}

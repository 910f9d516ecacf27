//! `latchkey tail`: subscribes to `/api/native/ws` with a bearer token and prints every
//! frame (hello, events, resumed) as one JSON line, until the server closes the
//! connection; then prints the close code and reason on stderr.

use anyhow::{bail, Context};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use tungstenite::client::IntoClientRequest;
use tungstenite::Message;

/// Flags of `latchkey tail`.
#[derive(Args, Debug)]
pub struct TailArgs {
    /// The server, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "LATCHKEY_URL", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// A file holding a token with chat:read.
    #[arg(long, env = "LATCHKEY_TOKEN_FILE")]
    token_file: PathBuf,
    /// Replay the visible events after this seq before going live.
    #[arg(long)]
    since: Option<u64>,
}

/// Runs until the connection closes.
pub fn run(args: TailArgs) -> anyhow::Result<ExitCode> {
    let token = std::fs::read_to_string(&args.token_file)
        .with_context(|| format!("reading {}", args.token_file.display()))?;
    let url = match args.server.trim_end_matches('/') {
        s if s.starts_with("http://") => format!("ws://{}/api/native/ws", &s[7..]),
        s if s.starts_with("ws://") => format!("{s}/api/native/ws"),
        s => bail!("{s}: use an http:// or ws:// URL (plain loopback or a TLS-terminating proxy)"),
    };
    let mut request = url.as_str().into_client_request()?;
    request.headers_mut().insert(
        "Authorization",
        format!("Bearer {}", token.trim())
            .parse()
            .context("token")?,
    );
    let (mut ws, _) = tungstenite::connect(request).context("connecting")?;
    let first = match args.since {
        Some(since) => format!("{{\"op\":\"resume\",\"since\":{since}}}"),
        None => "{\"op\":\"ping\"}".to_string(),
    };
    ws.send(Message::text(first))?;
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => {
                if t.as_str() != "{\"type\":\"pong\"}" {
                    println!("{}", t.as_str());
                }
            }
            Ok(Message::Close(frame)) => {
                if let Some(f) = frame {
                    eprintln!("closed: {} {}", u16::from(f.code), f.reason);
                }
                return Ok(ExitCode::SUCCESS);
            }
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => return Ok(ExitCode::SUCCESS),
            Err(e) => bail!("websocket: {e}"),
        }
    }
}

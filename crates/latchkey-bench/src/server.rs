//! Starts a real `latchkey serve` on a loopback port with a temporary data dir.

use anyhow::Context;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A running server; killed and its data dir removed on drop.
pub struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

/// The latchkey binary: the given path, or the one next to this executable.
pub fn latchkey_bin(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p);
    }
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .map(|d| d.join("latchkey"))
        .context("no directory for the latchkey binary")?;
    anyhow::ensure!(
        bin.exists(),
        "{} is missing: build -p latchkey-cli",
        bin.display()
    );
    Ok(bin)
}

impl Server {
    /// Starts the server with extra flags and waits for its listening line.
    pub fn start(bin: &PathBuf, extra: &[&str]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut child = Command::new(bin)
            .arg("serve")
            .args(["--bind", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let url = line
            .trim()
            .rsplit(' ')
            .next()
            .filter(|u| u.starts_with("http://"))
            .context("the server did not print its address")?
            .to_string();
        Ok(Self {
            child,
            url,
            _dir: dir,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

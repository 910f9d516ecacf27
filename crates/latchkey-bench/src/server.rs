//! Starts a real `latchkey serve` on a loopback port (with a temporary data dir, or a given
//! one that outlives it for the crash rounds), stops it with SIGKILL or SIGTERM, and finds
//! the binaries the scenarios drive (latchkey, wrk, nats-server).

use anyhow::Context;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running server; killed on drop, and its data dir removed if it made one.
pub struct Server {
    child: Child,
    url: String,
    _dir: Option<tempfile::TempDir>,
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

/// An executable on `PATH`, or in the sbin directories Debian installs daemons to.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A free loopback TCP port (bound and released; another process could take it first).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Server {
    /// Starts the server with extra flags and waits for its listening line.
    pub fn start(bin: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut server = Self::start_in(bin, &dir.path().join("data"), None, extra)?;
        server._dir = Some(dir);
        Ok(server)
    }

    /// Starts the server on `data` (kept when it stops), its log (stderr) appended to
    /// `log` or dropped, and waits for its listening line.
    pub fn start_in(
        bin: &Path,
        data: &Path,
        log: Option<&Path>,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let stderr = match log {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
            None => Stdio::null(),
        };
        let mut child = Command::new(bin)
            .arg("serve")
            .args(["--bind", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(stderr)
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
            _dir: None,
        })
    }

    /// `kill -9`: the server dies wherever it is.
    pub fn kill9(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// SIGTERM, then waits for the graceful drain (DESIGN §8: within 10 s); SIGKILL and
    /// an error if it takes longer than `grace`.
    pub fn terminate(mut self, grace: std::time::Duration) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -TERM failed");
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if let Some(exit) = self.child.try_wait()? {
                anyhow::ensure!(exit.success(), "the server exited with {exit} on SIGTERM");
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        anyhow::bail!("the server did not stop within {grace:?} of SIGTERM")
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `ws://127.0.0.1:PORT`.
    pub fn ws_url(&self) -> String {
        self.url.replacen("http://", "ws://", 1)
    }

    /// The server's process id (for its RSS).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

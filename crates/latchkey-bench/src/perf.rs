//! Optional `perf record` around a timed phase (`--flame-dir`): samples one process
//! (the latchkey server during the sign-in load, the bench itself during the append load)
//! with call graphs into `<dir>/<name>.perf.data`, for `scripts/bench.sh --flame` to fold
//! into an SVG with inferno. Never required: when perf is missing or cannot record, it
//! says so and the figure is measured anyway.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `perf record`; stop it with [`Recorder::finish`].
pub struct Recorder {
    child: Child,
    out: PathBuf,
}

impl Recorder {
    /// Starts recording process `pid` into `<dir>/<name>.perf.data`, if `dir` is given.
    pub fn start(dir: Option<&Path>, name: &str, pid: u32) -> Option<Self> {
        let dir = dir?;
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("  perf: cannot create {}: {e}", dir.display());
            return None;
        }
        let out = dir.join(format!("{name}.perf.data"));
        let child = Command::new("perf")
            .args(["record", "-F", "499", "-g", "-o"])
            .arg(&out)
            .args(["-p", &pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(child) => {
                // perf needs a moment to attach before the phase starts.
                std::thread::sleep(Duration::from_millis(300));
                eprintln!("  perf: recording pid {pid} into {}", out.display());
                Some(Self { child, out })
            }
            Err(e) => {
                eprintln!("  perf: cannot start `perf record`: {e}");
                None
            }
        }
    }

    /// Stops recording (SIGINT, so perf writes its file) and waits for it.
    pub fn finish(mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        match self.child.wait() {
            Ok(status) if self.out.exists() => {
                eprintln!("  perf: wrote {} ({status})", self.out.display())
            }
            Ok(status) => eprintln!("  perf: recorded nothing ({status})"),
            Err(e) => eprintln!("  perf: {e}"),
        }
    }
}

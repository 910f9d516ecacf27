//! Test support: finding binaries, running them, polling with a deadline.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The `latchkey` binary: `LATCHKEY_BIN`, or next to this test's target dir.
pub fn latchkey_bin() -> PathBuf {
    if let Ok(p) = std::env::var("LATCHKEY_BIN") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/blackbox-<hash> -> target/<profile>/latchkey
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = profile_dir.join("latchkey");
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo build -p latchkey-cli`), or set LATCHKEY_BIN",
        bin.display()
    );
    bin
}

/// Runs `latchkey` with arguments and returns its output.
pub fn latchkey(args: &[&str]) -> Output {
    Command::new(latchkey_bin())
        .args(args)
        .output()
        .expect("run latchkey")
}

/// Stdout as a string.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr as a string.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The workspace root (for proto-docs and fixtures).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Polls `cond` every 20 ms until it holds or `deadline` passes; whether it held.
pub fn wait_until(deadline: std::time::Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + deadline;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() > end {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `latchkey admin --data-dir DIR ARGS...`, offline.
pub fn admin(dir: &std::path::Path, args: &[&str]) -> Output {
    let d = dir.display().to_string();
    let mut all = vec!["admin", "--data-dir", &d];
    all.extend_from_slice(args);
    latchkey(&all)
}

/// An offline admin command with `--json` that must succeed: its one JSON document.
pub fn admin_json(dir: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = admin(dir, &all);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", stdout(&out)))
}

/// `admin log --json ARGS...` offline, one JSON value per line.
pub fn log_json(dir: &std::path::Path, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["log", "--json"];
    all.extend_from_slice(args);
    let out = admin(dir, &all);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

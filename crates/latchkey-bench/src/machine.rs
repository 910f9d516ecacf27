//! What the numbers were measured on: cores, memory, kernel, CPU model, date, git commit;
//! and a process's resident memory. Reads `/proc` and asks `git`; changes nothing.

use std::process::Command;

/// The machine a run measured.
#[derive(Clone, Debug)]
pub struct Machine {
    /// Cores the process may use.
    pub cores: usize,
    /// Total memory, GiB.
    pub memory_gib: f64,
    /// `uname -r`.
    pub kernel: String,
    /// `model name` from `/proc/cpuinfo`.
    pub cpu: String,
    /// UTC, to the second.
    pub date: String,
    /// `git rev-parse --short HEAD`, with `-dirty` when the tree has changes.
    pub commit: String,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A `/proc/*` field line `Name:   1234 kB` as bytes.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse::<u64>().ok())
        .map(|kib| kib * 1024)
}

/// Resident memory (`VmRSS`) of a process, in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    kib_field(&read(&format!("/proc/{pid}/status")), "VmRSS:")
}

impl Machine {
    /// Looks at this machine now.
    pub fn detect() -> Self {
        let cpu = read("/proc/cpuinfo")
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let commit = match git(&["rev-parse", "--short", "HEAD"]) {
            Some(c) => {
                let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                    .is_some_and(|s| !s.is_empty());
                if dirty {
                    format!("{c}-dirty")
                } else {
                    c
                }
            }
            None => "unknown".into(),
        };
        let date = time::OffsetDateTime::now_utc()
            .format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
            ))
            .unwrap_or_default();
        Self {
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            memory_gib: kib_field(&read("/proc/meminfo"), "MemTotal:").unwrap_or(0) as f64
                / (1u64 << 30) as f64,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            cpu,
            date,
            commit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kib_fields() {
        let text = "Name:\tx\nVmRSS:\t   2048 kB\n";
        assert_eq!(kib_field(text, "VmRSS:"), Some(2 << 20));
        assert_eq!(kib_field(text, "VmHWM:"), None);
        assert!(rss_bytes(std::process::id()).is_some_and(|b| b > 0));
    }
}

//! The `<data-dir>/LOCK` file: an exclusive `flock` held for the life of the process, with
//! the holder's PID inside, so a second process can say who holds the data dir.

use crate::error::{StoreError, StoreResult};
use rustix::fs::{flock, FlockOperation};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a busy LOCK is retried before the holder is reported.
const GRACE: Duration = Duration::from_millis(1500);

/// Holds the lock until dropped (the kernel releases it when the file closes, even on kill -9).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Takes the lock on `dir/LOCK` without waiting; `StoreError::Locked` names the holder.
    pub fn acquire(dir: &Path) -> StoreResult<Self> {
        let path = dir.join("LOCK");
        let io = |context: &str, source| StoreError::Io {
            context: format!("{context} {}", path.display()),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io("open", e))?;
        // A holder that is going away (a server stopping, or a forked child that shares the
        // descriptor until its exec) gets a moment to let go before we report it.
        let deadline = Instant::now() + GRACE;
        let mut locked = flock(&file, FlockOperation::NonBlockingLockExclusive);
        while locked == Err(rustix::io::Errno::WOULDBLOCK) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            locked = flock(&file, FlockOperation::NonBlockingLockExclusive);
        }
        if let Err(errno) = locked {
            if errno == rustix::io::Errno::WOULDBLOCK {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(StoreError::Locked {
                    dir: dir.to_path_buf(),
                    pid: if pid.is_empty() {
                        "unknown".into()
                    } else {
                        pid.into()
                    },
                });
            }
            return Err(io("flock", errno.into()));
        }
        file.set_len(0).map_err(|e| io("truncate", e))?;
        file.seek(SeekFrom::Start(0)).map_err(|e| io("seek", e))?;
        writeln!(file, "{}", std::process::id()).map_err(|e| io("write", e))?;
        file.sync_data().map_err(|e| io("sync", e))?;
        Ok(Self { _file: file, path })
    }

    /// The LOCK file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let _held = DataDirLock::acquire(dir.path()).unwrap();
        // flock locks belong to the open file description, so a second open conflicts
        // even inside one process.
        match DataDirLock::acquire(dir.path()) {
            Err(StoreError::Locked { pid, .. }) => assert_eq!(pid, std::process::id().to_string()),
            other => panic!("expected Locked, got {other:?}"),
        }
    }

    #[test]
    fn the_lock_is_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        drop(DataDirLock::acquire(dir.path()).unwrap());
        DataDirLock::acquire(dir.path()).unwrap();
    }
}

//! A data plane announces itself with a lock file: it holds an exclusive `flock` on the file for
//! its whole life and writes its process ID into it once it forwards. The kernel drops the lock
//! when the process dies, however it dies, so a stale file never looks alive; and the process
//! ID is only there once the workers run, so "running" means ready.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The lock a running data plane holds.
#[derive(Debug)]
pub struct PidLock {
    file: File,
    path: PathBuf,
}

/// Why the lock could not be taken.
#[derive(Debug)]
pub enum PidLockError {
    /// Another data plane holds it (its process ID when it has written one).
    Held(Option<u32>),
    /// The file could not be opened or locked (a local fault).
    Io(io::Error),
}

impl std::fmt::Display for PidLockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PidLockError::Held(Some(pid)) => write!(f, "another data plane runs (pid {pid})"),
            PidLockError::Held(None) => f.write_str("another data plane is starting"),
            PidLockError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for PidLockError {}

impl PidLock {
    /// Takes the lock at `path` (created 0644 if missing), without waiting. The file stays
    /// empty until [`ready`](Self::ready).
    pub fn acquire(path: &Path) -> Result<PidLock, PidLockError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(PidLockError::Io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(PidLockError::Held(read_pid(&mut &file)));
            }
            Err(TryLockError::Error(e)) => return Err(PidLockError::Io(e)),
        }
        // A predecessor that died before removing the file left its ID behind.
        file.set_len(0).map_err(PidLockError::Io)?;
        Ok(PidLock {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Announces that this process forwards: writes its ID into the file.
    pub fn ready(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        writeln!(self.file, "{}", std::process::id())?;
        self.file.sync_data()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PidLock {
    fn drop(&mut self) {
        // Removed while still locked, so no one can mistake the file for a live data plane.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Where the data plane with the lock `pid_file` reports its counters (replaced about once
/// a second; removed when it stops).
pub fn stats_path(pid_file: &Path) -> PathBuf {
    pid_file.with_extension("stats")
}

/// A data plane found through its lock file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunningDataplane {
    /// `None` while it starts (the lock is held, no ID written yet).
    pub pid: Option<u32>,
}

/// Whether a data plane holds the lock at `path`, without disturbing it.
pub fn running(path: &Path) -> io::Result<Option<RunningDataplane>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // A shared lock succeeds only when no one holds the exclusive one.
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            Ok(None)
        }
        Err(TryLockError::WouldBlock) => Ok(Some(RunningDataplane {
            pid: read_pid(&mut file),
        })),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

fn read_pid(file: &mut impl Read) -> Option<u32> {
    let mut text = String::new();
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok().filter(|pid| *pid > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("xipsec-pidlock-{}-{name}", std::process::id()))
    }

    #[test]
    fn a_second_data_plane_is_refused_and_sees_the_first() {
        let p = path("second");
        let mut first = PidLock::acquire(&p).expect("first");
        assert_eq!(
            running(&p).unwrap(),
            Some(RunningDataplane { pid: None }),
            "locked but not ready yet"
        );
        first.ready().unwrap();
        let me = std::process::id();
        assert_eq!(
            running(&p).unwrap(),
            Some(RunningDataplane { pid: Some(me) })
        );
        match PidLock::acquire(&p) {
            Err(PidLockError::Held(Some(pid))) => assert_eq!(pid, me),
            other => panic!("expected Held, got {other:?}"),
        }
        drop(first);
        assert_eq!(running(&p).unwrap(), None);
        assert!(!p.exists(), "the file goes with the lock");
    }

    #[test]
    fn a_stale_file_is_not_a_running_data_plane() {
        let p = path("stale");
        std::fs::write(&p, "12345\n").unwrap();
        assert_eq!(running(&p).unwrap(), None);
        let mut lock = PidLock::acquire(&p).expect("a stale file is taken over");
        lock.ready().unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
    }
}

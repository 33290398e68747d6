//! The AF_XDP data plane runs as a process of its own (`xipsec-dataplane`), so that it keeps
//! forwarding on the installed SAs while xipsecd is stopped, crashes or restarts (DESIGN.md,
//! room 2). xipsecd starts one when none runs, re-attaches to a running one after a restart,
//! and stops it at a clean stop (which deletes every SA anyway).
//!
//! The two find each other through a lock file beside the SA table
//! (`xipsec_dataplane::process::PidLock`): held for the data plane's life, its PID written
//! once it forwards.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tracing::{info, warn};
use xipsec_dataplane::process::{running, send_stop, Stop};

/// How long a starting data plane may take to attach and bind before xipsecd gives up.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a stopping one may take to detach.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// What to start the data plane with (`[dataplane]` and the command line).
#[derive(Clone, Debug)]
pub struct DataplaneSpec {
    pub table: PathBuf,
    pub pid_file: PathBuf,
    pub interfaces: Vec<String>,
    pub workers: Option<u32>,
    pub natt_port: u16,
}

/// A data plane process xipsecd started or found running.
#[derive(Debug)]
pub struct DataplaneProcess {
    pid_file: PathBuf,
    pid: u32,
    /// Set when this xipsecd started it (reaped at stop, so no zombie stays).
    child: Option<Child>,
}

impl DataplaneProcess {
    /// The data plane already forwarding with the lock at `pid_file`, if any.
    pub fn find(pid_file: &Path) -> io::Result<Option<DataplaneProcess>> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match running(pid_file)? {
                None => return Ok(None),
                Some(found) => {
                    if let Some(pid) = found.pid {
                        return Ok(Some(DataplaneProcess {
                            pid_file: pid_file.to_path_buf(),
                            pid,
                            child: None,
                        }));
                    }
                }
            }
            // Locked but not ready: one is starting; wait for it rather than start another.
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{}: a data plane holds the lock but never became ready",
                        pid_file.display()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts `program` and waits until it forwards. Its own process group, so a Ctrl-C meant
    /// for xipsecd's terminal does not stop forwarding, and nothing ties its life to ours.
    pub fn start(program: &Path, spec: &DataplaneSpec) -> Result<DataplaneProcess, String> {
        let mut command = Command::new(program);
        command
            .arg("--table")
            .arg(&spec.table)
            .arg("--pid-file")
            .arg(&spec.pid_file)
            .arg("--natt-port")
            .arg(spec.natt_port.to_string())
            .arg("--interface")
            .arg(spec.interfaces.join(","))
            .stdin(Stdio::null());
        if let Some(workers) = spec.workers {
            command.arg("--workers").arg(workers.to_string());
        }
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "{} exited ({status}) before forwarding; its log says why",
                    program.display()
                ));
            }
            if let Ok(Some(found)) = running(&spec.pid_file) {
                if found.pid == Some(child.id()) {
                    info!(pid = child.id(), interfaces = ?spec.interfaces, "data plane started");
                    return Ok(DataplaneProcess {
                        pid_file: spec.pid_file.clone(),
                        pid: child.id(),
                        child: Some(child),
                    });
                }
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} did not become ready within {START_TIMEOUT:?}",
                    program.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether it still forwards.
    pub fn is_running(&self) -> bool {
        matches!(running(&self.pid_file), Ok(Some(found)) if found.pid == Some(self.pid))
    }

    /// SIGTERM, then waits for it to detach and let go of the lock.
    pub fn stop(mut self) {
        let pid = self.pid;
        // The lock proves the PID is still the data plane's (a dead process holds no lock).
        if !self.is_running() {
            return;
        }
        if let Err(e) = send_stop(pid, Stop::Terminate) {
            warn!(pid, "cannot stop the data plane: {e}");
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while self.is_running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.is_running() {
            warn!(
                pid,
                "the data plane did not stop within {STOP_TIMEOUT:?}; killing it"
            );
            let _ = send_stop(pid, Stop::Kill);
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        info!(pid, "data plane stopped");
    }
}

/// The data plane as xipsecd keeps it: started again when it dies (its workers re-attach to the
/// table: SAs, sequence numbers and replay windows are there), stopped at a clean stop.
#[derive(Debug)]
pub struct Supervised {
    process: Option<DataplaneProcess>,
    spec: DataplaneSpec,
    program: PathBuf,
    /// After a failed start: not before this, and the pause doubles (one that keeps failing
    /// must not stall the event loop or flood the log every second).
    retry_at: Option<Instant>,
    retry_pause: Duration,
}

/// The first pause after a failed restart, and the longest.
const RETRY_FIRST: Duration = Duration::from_secs(2);
const RETRY_MAX: Duration = Duration::from_secs(60);

impl Supervised {
    pub fn new(process: DataplaneProcess, spec: DataplaneSpec, program: PathBuf) -> Supervised {
        Supervised {
            process: Some(process),
            spec,
            program,
            retry_at: None,
            retry_pause: RETRY_FIRST,
        }
    }

    /// Starts the data plane again if it died; returns whether it had to.
    pub fn check(&mut self) -> bool {
        if self
            .process
            .as_ref()
            .is_some_and(DataplaneProcess::is_running)
        {
            return false;
        }
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return true;
        }
        if let Some(dead) = self.process.take() {
            warn!(pid = dead.pid, "the data plane died; starting it again");
            // Reap it, if it was ours.
            if let Some(mut child) = dead.child {
                let _ = child.wait();
            }
        }
        match DataplaneProcess::start(&self.program, &self.spec) {
            Ok(process) => {
                info!(
                    pid = process.pid,
                    "data plane restarted; its workers re-attached to the SA table"
                );
                self.process = Some(process);
                self.retry_at = None;
                self.retry_pause = RETRY_FIRST;
            }
            Err(e) => {
                warn!(
                    "the data plane did not restart: {e}; trying again in {:?}",
                    self.retry_pause
                );
                self.retry_at = Some(Instant::now() + self.retry_pause);
                self.retry_pause = (self.retry_pause * 2).min(RETRY_MAX);
            }
        }
        true
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(DataplaneProcess::pid)
    }

    pub fn stop(mut self) {
        if let Some(process) = self.process.take() {
            process.stop();
        }
    }
}

/// The data plane program: `XIPSEC_DATAPLANE` if set, else `xipsec-dataplane` beside xipsecd,
/// else the one on `PATH`.
pub fn program() -> PathBuf {
    if let Some(path) = std::env::var_os("XIPSEC_DATAPLANE") {
        return PathBuf::from(path);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("xipsec-dataplane")))
        .filter(|path| path.exists())
        .unwrap_or_else(|| PathBuf::from("xipsec-dataplane"))
}

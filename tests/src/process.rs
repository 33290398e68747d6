//! Running system tools from tests: found even when PATH lacks the sbin directories, and never
//! waited on for longer than the test allows.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Where a tool is: the first match on PATH, then the usual system directories (a test run by
/// a user whose PATH has no `/usr/sbin` still finds `swanctl`).
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// [`find_tool`], or the bare name (so that the error, when it comes, names the tool).
pub fn tool(name: &str) -> PathBuf {
    find_tool(name).unwrap_or_else(|| PathBuf::from(name))
}

/// Runs `command` to completion, with stdin closed and stdout and stderr collected, for at most
/// `timeout`. On timeout its whole process group is killed and the error holds what it had
/// printed. A non-zero exit is not an error here: look at `status`.
pub fn run_bounded(command: &mut Command, timeout: Duration) -> Result<Output, String> {
    let shown = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so a timeout takes its children with it.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("starting {shown}: {e}"))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                kill_group(&mut child);
                return Err(format!("waiting for {shown}: {e}"));
            }
        }
    };
    let Some(status) = status else {
        kill_group(&mut child);
        let stdout = stdout.join().unwrap_or_default();
        let stderr = stderr.join().unwrap_or_default();
        return Err(format!(
            "{shown} did not finish within {timeout:?}; it printed:\n{}{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ));
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Like [`run_bounded`], but a non-zero exit is an error too; returns stdout as text.
pub fn run_ok(command: &mut Command, timeout: Duration) -> Result<String, String> {
    let shown = format!("{command:?}");
    let output = run_bounded(command, timeout)?;
    if !output.status.success() {
        return Err(format!(
            "{shown} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Whether `child` has exited, without reaping it: while it is a zombie its pid (and so its
/// process group id) cannot be reused, and [`kill_group`] stays safe.
pub(crate) fn has_exited(child: &Child) -> bool {
    let pid: libc::id_t = child.id();
    // SAFETY: siginfo_t is plain data; zero is a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: a live siginfo_t for the kernel to fill; WNOWAIT leaves the child unreaped.
    let result = unsafe {
        libc::waitid(
            libc::P_PID,
            pid,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: waitid filled (or left zeroed) the union; si_pid is valid for SIGCHLD info.
    result == -1 || unsafe { info.si_pid() } != 0
}

/// Kills the process group `child` leads (SIGKILL) and reaps `child`. `child` must not have
/// been reaped yet (use [`has_exited`], not `try_wait`), or its pid could name someone else.
pub(crate) fn kill_group(child: &mut Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) takes no pointers; a negative pid names the group the child leads
        // (spawned with process_group(0), so its pgid is its pid).
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Reads a pipe to its end on a thread of its own, so a chatty child never blocks on a full
/// pipe while we wait for it.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

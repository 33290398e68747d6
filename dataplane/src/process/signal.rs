//! Stopping a data plane found through its lock file (the control plane forbids `unsafe`, so
//! the one system call it needs for this lives here).

use std::io;

/// How to ask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM: detach and exit cleanly.
    Terminate,
    /// SIGKILL: for one that did not.
    Kill,
}

/// Sends the signal to `pid`.
pub fn send_stop(pid: u32, how: Stop) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a process ID"))?;
    let signal = match how {
        Stop::Terminate => libc::SIGTERM,
        Stop::Kill => libc::SIGKILL,
    };
    // SAFETY: kill(2) takes two integers and touches no memory of ours.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

//! SIGTERM, SIGINT and SIGHUP taken synchronously by the main thread (sigtimedwait), so no
//! handler runs in a worker's hot loop and nothing needs async-signal safety.

use std::io;
use std::time::Duration;

pub struct Signals {
    set: libc::sigset_t,
}

impl Signals {
    /// Blocks the signals in the calling thread; threads spawned afterwards inherit the mask.
    pub fn block() -> io::Result<Signals> {
        // SAFETY: sigset_t is plain data that sigemptyset initialises before any other use.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid, exclusively borrowed sigset_t.
        unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGHUP);
        }
        // SAFETY: `set` is initialised; the old mask is not wanted (null).
        let result = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if result != 0 {
            return Err(io::Error::from_raw_os_error(result));
        }
        Ok(Signals { set })
    }

    /// Waits up to `timeout` for SIGTERM or SIGINT; returns its name. SIGHUP is taken and
    /// ignored (there is nothing to reload: the table is the configuration).
    pub fn wait(&self, timeout: Duration) -> Option<&'static str> {
        let spec = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `set` is an initialised signal set and `spec` a valid timespec; no siginfo
        // is wanted (null).
        let signal = unsafe { libc::sigtimedwait(&self.set, std::ptr::null_mut(), &spec) };
        match signal {
            libc::SIGTERM => Some("SIGTERM"),
            libc::SIGINT => Some("SIGINT"),
            _ => None,
        }
    }
}

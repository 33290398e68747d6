//! Ctrl-C and SIGTERM: the handler only sets a flag; the harness checks it between steps and
//! inside its loops, stops the run, and lets its guards remove everything it created. A second
//! Ctrl-C kills at once (the handler resets itself), for when cleaning up hangs.

use std::sync::atomic::{AtomicBool, Ordering};

static SIGNALLED: AtomicBool = AtomicBool::new(false);

/// Whether the harness has been asked to stop.
#[derive(Clone, Copy, Debug, Default)]
pub struct StopFlag {
    _private: (),
}

impl StopFlag {
    /// The process-wide flag.
    pub fn global() -> StopFlag {
        StopFlag { _private: () }
    }

    /// Whether a stop was asked for.
    pub fn is_set(&self) -> bool {
        SIGNALLED.load(Ordering::Relaxed)
    }

    /// Asks for a stop (what the signal handler does).
    pub fn set(&self) {
        SIGNALLED.store(true, Ordering::Relaxed);
    }
}

extern "C" fn on_signal(_signal: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    SIGNALLED.store(true, Ordering::Relaxed);
}

/// Installs the handler for SIGINT and SIGTERM.
pub fn install_handlers() -> std::io::Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: sigaction is plain data; zero is a valid start (empty mask, no flags).
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
        // SA_RESETHAND: a second signal takes the default action (termination).
        action.sa_flags = libc::SA_RESETHAND | libc::SA_RESTART;
        // SAFETY: a valid signal number, a live sigaction, no old action wanted; the handler
        // does nothing but an atomic store.
        if unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) } == -1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

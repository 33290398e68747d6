//! Waking a worker that sleeps in `poll(2)` when another worker hands it a packet: its inbox
//! is no file descriptor, so each worker also polls an eventfd that senders ring.
//!
//! A system call per hand-off would cost more than the hand-off, so senders ring only a worker
//! that said it is going to sleep, and only the first sender does (Dekker's handshake with
//! sequentially consistent fences): the sleeper raises its flag and then looks at its inbox
//! once more; a sender pushes and then looks at the flag. One of the two sees the other.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{fence, AtomicBool, Ordering};

/// One worker's doorbell.
#[derive(Debug)]
pub(super) struct Wake {
    sleeping: AtomicBool,
    eventfd: OwnedFd,
}

impl Wake {
    pub(super) fn new() -> io::Result<Self> {
        // SAFETY: eventfd(2) takes no pointers; the result is checked before use.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            sleeping: AtomicBool::new(false),
            // SAFETY: `fd` was just returned by eventfd(2) and nothing else owns it.
            eventfd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// The descriptor to poll for reading.
    pub(super) fn fd(&self) -> RawFd {
        self.eventfd.as_raw_fd()
    }

    /// The worker is about to sleep. It must look at its inbox after this and sleep only if
    /// the inbox is still empty; [`woke`](Self::woke) afterwards in any case.
    pub(super) fn going_to_sleep(&self) {
        self.sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// The worker is awake again; `rung` when `poll(2)` found the eventfd readable.
    pub(super) fn woke(&self, rung: bool) {
        self.sleeping.store(false, Ordering::Relaxed);
        if rung {
            let mut count = 0u64;
            // SAFETY: reads at most 8 bytes into a live u64; non-blocking. Failure (nothing to
            // read) leaves nothing to do.
            unsafe {
                libc::read(
                    self.fd(),
                    (&mut count as *mut u64).cast(),
                    std::mem::size_of::<u64>(),
                );
            }
        }
    }

    /// A packet was just pushed into this worker's inbox: wake it if it sleeps.
    pub(super) fn ring(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.swap(false, Ordering::SeqCst) {
            let one = 1u64;
            // SAFETY: writes 8 bytes from a live u64. It only fails when the counter would
            // overflow, and then the worker has a wake-up pending anyway.
            unsafe {
                libc::write(
                    self.fd(),
                    (&one as *const u64).cast(),
                    std::mem::size_of::<u64>(),
                );
            }
        }
    }
}

//! The data plane as a process of its own, apart from the control plane, so that either can
//! restart while the other runs (DESIGN.md, room 2): how the two find each other.

pub mod forwarded_esp;
mod pid_lock;
mod signal;

pub use pid_lock::{running, stats_path, PidLock, PidLockError, RunningDataplane};
pub use signal::{send_stop, Stop};

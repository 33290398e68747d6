//! Why a worker could not be set up or stopped running.

use std::fmt;
use std::io;

/// Why an [`XskWorker`](super::XskWorker) (or its [`Pipeline`](super::Pipeline)) cannot be
/// built or cannot go on. The first three are the caller's doing; the last two this host's.
#[derive(Debug)]
#[non_exhaustive]
pub enum XskWorkerError {
    /// No interface to send on.
    NoPorts,
    /// Two ports on one interface: which one a route's packets take would be ambiguous.
    DuplicateInterface(u32),
    /// The worker's index is not below the number of workers its hand-off was made for.
    WorkerIndex { worker: usize, workers: usize },
    /// The thread could not be pinned to the core.
    Pin { core: usize },
    /// `poll(2)` failed.
    Poll(io::Error),
}

impl fmt::Display for XskWorkerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoPorts => write!(f, "an AF_XDP worker needs at least one port"),
            Self::DuplicateInterface(ifindex) => write!(
                f,
                "two ports of one AF_XDP worker on interface {ifindex}; one per interface"
            ),
            Self::WorkerIndex { worker, workers } => write!(
                f,
                "worker index {worker} given to a hand-off among {workers} workers"
            ),
            Self::Pin { core } => write!(f, "cannot pin the worker's thread to core {core}"),
            Self::Poll(e) => write!(f, "AF_XDP worker poll(2): {e}"),
        }
    }
}

impl std::error::Error for XskWorkerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Poll(e) => Some(e),
            _ => None,
        }
    }
}

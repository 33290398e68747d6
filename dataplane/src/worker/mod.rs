//! What a worker needs beyond the ESP core and its I/O: the SAs it owns, taken from the shared
//! table and kept current, with their counters, lifetimes and sequence state reported back.

mod sa_cache;
mod sa_source;
mod spd;
#[cfg(target_os = "linux")]
mod xsk_worker;

pub use sa_cache::{owner_of, SaCache, OUTBOUND_SEQUENCE_RESERVATION};
pub use sa_source::{SaSource, StaticSas, TableSas};
pub(crate) use spd::reversed;
pub use spd::{flow_of, SharedSpd, SpdIndexer, SpdMirror, SHARED_FROM};
#[cfg(target_os = "linux")]
pub use xsk_worker::{
    merge_stats, Handoff, HandoffConfig, HandoffError, HandoffPacket, HandoffRefused, HandoffWork,
    MergedStats, Outcome, Pipeline, WorkerCounters, WorkerPort, WorkerStats, XskWorker,
    XskWorkerConfig, XskWorkerError, HANDOFF_HEADROOM, HANDOFF_TAILROOM, LATENCY_MAX_NS,
    PUBLISH_INTERVAL,
};

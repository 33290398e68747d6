//! Indexing a large SPD once per process, off the packet path.
//!
//! Re-reading and re-indexing the SPD costs a worker milliseconds per 100k policies
//! (docs/benchmarks.md); done in the packet loop, every Child SA added or removed at carrier
//! scale would stall every worker for that long. The indexer thread does it instead, once for
//! all workers, and publishes each version through an `ArcSwap`; a worker whose table holds
//! more than [`SHARED_FROM`] policies takes the newest published index (one atomic load per
//! batch, and an `Arc` clone when it moved) and keeps matching against the one it has until
//! then. Smaller SPDs are still read by each worker itself, at once, as before.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwapOption;

use crate::table::{TableError, TableReader};

use super::indexed::{self, IndexedSpd};

/// From this many policies on, workers with an indexer take its index instead of reading
/// the SPD themselves (a few hundred microseconds of work at this size).
pub const SHARED_FROM: usize = 4096;
/// How often the indexer looks at the SPD's version (one atomic load).
const POLL: Duration = Duration::from_millis(2);

/// The newest index the indexer published.
#[derive(Debug, Default)]
pub struct SharedSpd {
    latest: ArcSwapOption<IndexedSpd>,
}

impl SharedSpd {
    /// The SPD version of the newest index, if any: one atomic load.
    pub fn version(&self) -> Option<u64> {
        self.latest.load().as_ref().map(|spd| spd.version)
    }

    pub(super) fn latest(&self) -> Option<Arc<IndexedSpd>> {
        self.latest.load_full()
    }

    fn publish(&self, spd: IndexedSpd) {
        self.latest.store(Some(Arc::new(spd)));
    }
}

/// The thread that indexes each new SPD version; stopped when dropped.
#[derive(Debug)]
pub struct SpdIndexer {
    shared: Arc<SharedSpd>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SpdIndexer {
    /// Opens the table at `path` and starts indexing it.
    pub fn start(path: &Path) -> Result<Self, TableError> {
        let table = TableReader::open(path)?;
        let shared = Arc::new(SharedSpd::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let shared = Arc::clone(&shared);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("xipsec-spd-index".to_owned())
                .spawn(move || index_each_version(&table, &shared, &stop))
                .map_err(TableError::Io)?
        };
        Ok(Self {
            shared,
            stop,
            thread: Some(thread),
        })
    }

    /// What workers read the index from.
    pub fn shared(&self) -> Arc<SharedSpd> {
        Arc::clone(&self.shared)
    }
}

impl Drop for SpdIndexer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn index_each_version(table: &TableReader, shared: &SharedSpd, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        if shared.version() != Some(table.spd_version()) {
            let owner = |slot| indexed::record_owner(table, slot);
            // Busy (the writer mid-update): the next poll tries again.
            if let Ok(spd) = IndexedSpd::read(table, owner) {
                shared.publish(spd);
            }
        }
        std::thread::sleep(POLL);
    }
}

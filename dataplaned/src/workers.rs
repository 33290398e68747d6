//! The workers: one per core, pinned, each with an AF_XDP socket on its queue of every
//! interface, registered in that interface's XSKMAP; SAs from the shared table (each worker
//! owns the slots `owner_of` gives it and hands the rest over), next hops from the FIB mirror.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;

use tracing::{error, info, warn};
use xipsec_dataplane::fib::FibMirror;
use xipsec_dataplane::io::xsk::XskConfig;
use xipsec_dataplane::table::TableReader;
use xipsec_dataplane::worker::{
    merge_stats, Handoff, HandoffConfig, MergedStats, SharedSpd, SpdIndexer, TableSas, WorkerPort,
    WorkerStats, XskWorker, XskWorkerConfig,
};

use crate::interfaces::Interface;

/// How the workers are set up.
pub struct Setup<'a> {
    pub table: &'a Path,
    pub natt_port: u16,
    pub batch: usize,
    pub count: u32,
    /// Try zero-copy AF_XDP first.
    pub zero_copy: bool,
}

/// The running workers and what they share.
pub struct Running {
    threads: Vec<Option<JoinHandle<()>>>,
    stats: Vec<WorkerStats>,
    handoff: Arc<Handoff>,
    /// Kept alive for the workers' handles; stopped after them.
    fib: Option<FibMirror>,
    spd: Option<SpdIndexer>,
}

/// Binds every worker's sockets, registers them with the classifiers, and starts the threads.
pub fn start(
    setup: &Setup<'_>,
    interfaces: &mut [Interface],
    stop: &Arc<AtomicBool>,
) -> Result<Running, String> {
    let count = setup.count as usize;
    let fib = FibMirror::start().map_err(|e| format!("routing and neighbour mirror: {e}"))?;
    let handoff =
        Handoff::new(HandoffConfig::new(count)).map_err(|e| format!("worker hand-off: {e:?}"))?;
    let spd = SpdIndexer::start(setup.table).map_err(|e| format!("SPD indexer: {e:?}"))?;
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let mut running = Running {
        threads: Vec::new(),
        stats: Vec::new(),
        handoff: Arc::clone(&handoff),
        fib: None,
        spd: None,
    };
    for worker in 0..count {
        let mut ports = Vec::new();
        for interface in interfaces.iter_mut() {
            let queue = worker as u32;
            let port = bind(&interface.name, queue, setup.zero_copy)?;
            interface
                .classifier
                .register_xsk(queue, port.socket())
                .map_err(|e| format!("XSKMAP of {} queue {queue}: {e}", interface.name))?;
            ports.push(port);
        }
        let config = XskWorkerConfig {
            worker,
            batch: setup.batch,
            natt_port: setup.natt_port,
            core: cores.get(worker % cores.len().max(1)).map(|c| c.id),
            ..XskWorkerConfig::default()
        };
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let table = setup.table.to_path_buf();
        let next_hops = fib.handle();
        let handoff = handoff.clone();
        let shared_spd = spd.shared();
        let stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("xipsec-worker-{worker}"))
            .spawn(move || {
                run_worker(
                    &table, config, ports, count, next_hops, handoff, shared_spd, &stop, ready_tx,
                )
            })
            .map_err(|e| format!("worker thread: {e}"))?;
        running.threads.push(Some(thread));
        match ready_rx.recv() {
            Ok(Ok(stats)) => running.stats.push(stats),
            Ok(Err(e)) => return Err(format!("worker {worker}: {e}")),
            Err(_) => return Err(format!("worker {worker} died while starting")),
        }
    }
    running.fib = Some(fib);
    running.spd = Some(spd);
    Ok(running)
}

/// An AF_XDP socket on `queue` of `interface`: zero-copy when asked and the driver has it
/// (veth does not), copy mode otherwise.
fn bind(interface: &str, queue: u32, zero_copy: bool) -> Result<WorkerPort, String> {
    let copy = XskConfig::default();
    if zero_copy {
        let config = XskConfig {
            zero_copy: true,
            ..copy
        };
        match WorkerPort::bind(interface, queue, config) {
            Ok(port) => return Ok(port),
            Err(e) => warn!(interface, queue, "zero-copy refused ({e}); copy mode"),
        }
    }
    WorkerPort::bind(interface, queue, copy)
        .map_err(|e| format!("AF_XDP socket on {interface} queue {queue}: {e}"))
}

#[allow(clippy::too_many_arguments)] // One call site; a struct would only rename them.
fn run_worker(
    table: &Path,
    config: XskWorkerConfig,
    ports: Vec<WorkerPort>,
    count: usize,
    next_hops: xipsec_dataplane::fib::FibHandle,
    handoff: Arc<Handoff>,
    shared_spd: Arc<SharedSpd>,
    stop: &AtomicBool,
    ready: std::sync::mpsc::Sender<Result<WorkerStats, String>>,
) {
    let index = config.worker;
    // Each worker maps the table itself: nothing shared but the file.
    let reader = match TableReader::open(table) {
        Ok(reader) => reader,
        Err(e) => {
            let _ = ready.send(Err(format!("SA table: {e:?}")));
            return;
        }
    };
    let sas = TableSas::for_worker(&reader, index, count).with_shared_spd(shared_spd);
    let mut worker = match XskWorker::new(config, ports, sas, next_hops, handoff) {
        Ok(worker) => worker,
        Err(e) => {
            let _ = ready.send(Err(e.to_string()));
            return;
        }
    };
    let _ = ready.send(Ok(worker.stats()));
    info!(worker = index, core = ?config.core, "worker running");
    if let Err(e) = worker.run(stop) {
        error!(worker = index, "worker stopped: {e}");
    }
}

impl Running {
    /// A worker thread that ended although no one asked it to.
    pub fn finished(&self) -> Option<usize> {
        self.threads
            .iter()
            .position(|t| t.as_ref().is_some_and(JoinHandle::is_finished))
    }

    /// Waits for every worker (after the stop flag is set), then stops the mirror.
    pub fn join(mut self) {
        for thread in self.threads.iter_mut().filter_map(Option::take) {
            let _ = thread.join();
        }
        drop(self.fib.take());
        drop(self.spd.take());
    }

    /// The workers' inboxes: a packet for one of them goes in there.
    pub fn handoff(&self) -> &Arc<Handoff> {
        &self.handoff
    }

    /// All workers' counters and latencies added up.
    pub fn merged(&self) -> MergedStats {
        merge_stats(&self.stats)
    }

    /// Each worker's counters.
    pub fn per_worker(&self) -> &[WorkerStats] {
        &self.stats
    }

    pub fn log_counters(&self) {
        let merged = self.merged();
        let c = merged.counters;
        info!(
            received = c.received,
            encapsulated = c.encapsulated,
            decapsulated = c.decapsulated,
            dropped = c.esp_dropped
                + c.no_sa
                + c.no_route
                + c.neighbour_unresolved
                + c.handoff_dropped
                + c.tx_dropped,
            p50_ns = merged.latency.value_at_quantile(0.5),
            p99_ns = merged.latency.value_at_quantile(0.99),
            "workers"
        );
    }
}

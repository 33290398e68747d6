//! The per-core AF_XDP worker: one per core, pinned, with an AF_XDP socket on its queue of
//! every gateway interface. Each round it takes the packets other workers handed it, then a
//! batch from each socket; classifies each frame, finds its SA, encapsulates or decapsulates
//! in place in the frame, asks [`NextHops`] where the result leaves, writes the Ethernet
//! header and transmits on that interface's socket; then refills the receive rings.
//!
//! Ownership. Every SA has one owner ([`owner_of`](super::owner_of): its record's
//! `owner_worker`, or its slot modulo the worker count for `ANY_WORKER`), the only worker that touches its sequence counter (no two cores ever
//! send with one counter), its replay window and its worker area in the table. A packet whose
//! SA another worker owns is copied into a [`Handoff`] buffer and pushed into the owner's
//! inbox; the owner processes it like its own and sends it on its own sockets. A full inbox
//! or no free buffer is a counted drop, never a wait. Sources with fixed SAs name no slots,
//! and their packets stay where they arrived: give one to a single worker.
//!
//! Where packets leave. The destination of each packet after ESP (the outer one after
//! encapsulation, the inner one after decapsulation) goes to [`NextHops`]: a resolved next
//! hop gives the interface, both MAC addresses and the interface's MTU; an unresolved one
//! (the answerer asked the kernel to resolve it) and no route are counted drops. Each socket
//! has its own UMEM, so a packet leaving through another interface is copied once into that
//! socket's frame; one going back out of the interface it came in on is sent from its own
//! frame.
//!
//! Path MTU. A packet whose ESP packet would not fit the MTU of the link towards the peer is
//! not encapsulated: its sender gets an ICMP Fragmentation Needed (IPv4 with DF) or ICMPv6
//! Packet Too Big with the MTU left inside the tunnel, at most
//! [`too_big_per_second`](XskWorkerConfig::too_big_per_second) a second per worker; IPv4
//! without DF is fragmented before encryption, each fragment its own ESP packet. Counted as
//! `too_big`, `fragmented` and `too_big_dropped` ([`Pipeline`] has the details).
//!
//! Not handled: ESP between hosts behind the gateway (all ESP that reaches the worker is
//! taken as addressed to it, as the XDP classifier decides), more than one VLAN tag, IKE on
//! the NAT-T port (counted as `control_plane` and dropped; the classifier passes it to the
//! kernel), the inner TTL (not decremented).
//!
//! Statistics ([`WorkerStats`]) are published without a lock on the worker's side and merged
//! on read.

mod error;
mod frame;
mod handoff;
mod icmp_too_big;
mod pipeline;
mod port;
mod prefragment;
mod rate_limit;
mod stats;
mod tunnel_mtu;
mod wake;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use error::XskWorkerError;
pub use handoff::{
    Handoff, HandoffConfig, HandoffError, HandoffPacket, HandoffRefused, HandoffWork,
    HANDOFF_HEADROOM, HANDOFF_TAILROOM,
};
pub use pipeline::{Outcome, Pipeline};
use pipeline::{TOO_BIG_BURST, TOO_BIG_PER_SECOND};
pub use port::WorkerPort;
pub use stats::{
    merge_stats, MergedStats, WorkerCounters, WorkerStats, LATENCY_MAX_NS, PUBLISH_INTERVAL,
};

use super::SaSource;
use crate::fib::NextHops;
use crate::io::xsk::Descriptor;
use port::{pair_mut, Port};
use stats::StatsRecorder;

/// The largest batch taken from one socket (and from the inbox) per round.
const MAX_BATCH: usize = 64;
/// The longest a worker sleeps in `poll(2)` before it looks at its stop flag again.
const MAX_IDLE_POLL: Duration = Duration::from_millis(100);

const EMPTY: Descriptor = Descriptor {
    addr: 0,
    len: 0,
    options: 0,
};

/// How a worker runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XskWorkerConfig {
    /// This worker's index among the hand-off's workers.
    pub worker: usize,
    /// Frames taken from each socket per round, clamped to 1..=64.
    pub batch: usize,
    /// The UDP port ESP in UDP arrives on (RFC 3948).
    pub natt_port: u16,
    /// How long [`XskWorker::run`] sleeps in `poll(2)` when idle before it looks at its stop
    /// flag again; at most 100 ms.
    pub idle_poll: Duration,
    /// The core [`XskWorker::run`] pins its thread to, if any.
    pub core: Option<usize>,
    /// ICMP errors about packets too big for their tunnel sent per second at most (a token
    /// bucket per worker; 1000 by default); 0: none.
    pub too_big_per_second: u32,
    /// How many of them may go at once after a quiet spell (100 by default); 0: none.
    pub too_big_burst: u32,
}

impl Default for XskWorkerConfig {
    fn default() -> Self {
        Self {
            worker: 0,
            batch: MAX_BATCH,
            natt_port: 4500,
            idle_poll: Duration::from_millis(50),
            core: None,
            too_big_per_second: TOO_BIG_PER_SECOND,
            too_big_burst: TOO_BIG_BURST,
        }
    }
}

/// One worker: its ports, its [`Pipeline`], its inbox and its statistics.
pub struct XskWorker<S, N> {
    ports: Vec<Port>,
    pipeline: Pipeline<S, N>,
    handoff: Arc<Handoff>,
    stats: StatsRecorder,
    stats_handle: WorkerStats,
    config: XskWorkerConfig,
    received: [Descriptor; MAX_BATCH],
    refill: [u64; MAX_BATCH],
    /// When each handed-over packet sent this round was first received.
    handed_over_at: [Instant; MAX_BATCH],
}

impl<S, N> std::fmt::Debug for XskWorker<S, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskWorker")
            .field("config", &self.config)
            .field("ports", &self.ports)
            .field("counters", self.pipeline.counters())
            .finish_non_exhaustive()
    }
}

impl<S: SaSource, N: NextHops> XskWorker<S, N> {
    /// Worker `config.worker` of the `handoff.workers()` that share `handoff`, receiving and
    /// sending on `ports` (one per interface), with SAs from `sas` (for a table:
    /// [`TableSas::for_worker`](crate::worker::TableSas::for_worker) with the same index and
    /// count) and next hops from `next_hops`.
    pub fn new(
        mut config: XskWorkerConfig,
        ports: Vec<WorkerPort>,
        sas: S,
        next_hops: N,
        handoff: Arc<Handoff>,
    ) -> Result<Self, XskWorkerError> {
        config.batch = config.batch.clamp(1, MAX_BATCH);
        config.idle_poll = config.idle_poll.min(MAX_IDLE_POLL);
        let egress: Vec<u32> = ports.iter().map(WorkerPort::ifindex).collect();
        let pipeline = Pipeline::new(
            sas,
            next_hops,
            &egress,
            Some((Arc::clone(&handoff), config.worker)),
        )?
        .with_natt_port(config.natt_port)
        .with_too_big_limit(config.too_big_per_second, config.too_big_burst);
        let (stats, stats_handle) = StatsRecorder::new();
        let now = Instant::now();
        Ok(Self {
            ports: ports.into_iter().map(Port::new).collect(),
            pipeline,
            handoff,
            stats,
            stats_handle,
            config,
            received: [EMPTY; MAX_BATCH],
            refill: [0; MAX_BATCH],
            handed_over_at: [now; MAX_BATCH],
        })
    }

    /// A handle on this worker's statistics for other threads.
    pub fn stats(&self) -> WorkerStats {
        self.stats_handle.clone()
    }

    /// The counters as of now (the worker's own copy).
    pub fn counters(&self) -> WorkerCounters {
        *self.pipeline.counters()
    }

    /// The per-packet part: its SAs, next hops and receive-path drops.
    pub fn pipeline(&self) -> &Pipeline<S, N> {
        &self.pipeline
    }

    /// The configuration, with the batch and the idle wait clamped.
    pub fn config(&self) -> &XskWorkerConfig {
        &self.config
    }

    /// One round: the inbox, then a batch from each socket. Returns how many packets it took
    /// in; never blocks.
    pub fn run_once(&mut self) -> usize {
        self.pipeline.begin_batch();
        // Handed-over packets first: they have waited longest.
        let (mut taken, handed_sent) = self.drain_inbox();
        let mut batch_start = None;
        let mut sent_own = 0;
        for index in 0..self.ports.len() {
            let count = self.ports[index]
                .socket
                .receive(&mut self.received[..self.config.batch]);
            if count == 0 {
                continue;
            }
            taken += count;
            let received_at = *batch_start.get_or_insert_with(Instant::now);
            for k in 0..count {
                sent_own += self.process_received(index, k, received_at);
            }
            self.ports[index].refill(&self.refill[..count]);
        }
        let counters = self.pipeline.counters_mut();
        for port in &mut self.ports {
            port.flush(counters);
        }
        self.pipeline.end_batch();
        if taken > 0 {
            let now = Instant::now();
            if let Some(start) = batch_start {
                self.stats.record(now.duration_since(start), sent_own);
            }
            for &at in &self.handed_over_at[..handed_sent] {
                self.stats.record(now.saturating_duration_since(at), 1);
            }
            self.stats.publish(self.pipeline.counters(), now, false);
        }
        taken
    }

    /// Processes up to a batch of handed-over packets; returns how many, and how many of them
    /// were sent on (their first reception times are in `handed_over_at`).
    fn drain_inbox(&mut self) -> (usize, usize) {
        let mut taken = 0;
        let mut sent = 0;
        while taken < self.config.batch {
            let Some(mut packet) = self.handoff.receive(self.config.worker) else {
                break;
            };
            taken += 1;
            if let Outcome::Transmit { port, start, len } =
                self.pipeline.process_handed_over(&mut packet)
            {
                let counters = self.pipeline.counters_mut();
                let queued = match (packet.bytes(start, len), self.ports.get_mut(port)) {
                    (Some(bytes), Some(port)) => port.send_copy(bytes, counters),
                    _ => {
                        counters.tx_dropped += 1;
                        false
                    }
                };
                if queued {
                    self.handed_over_at[sent] = packet.received_at();
                    sent += 1;
                }
            }
            self.handoff.recycle(packet);
        }
        (taken, sent)
    }

    /// Processes received frame `k` of port `index`, sets the frame that goes back to the
    /// fill ring in its place, and returns 1 if it was queued for sending.
    fn process_received(&mut self, index: usize, k: usize, received_at: Instant) -> u64 {
        let descriptor = self.received[k];
        self.refill[k] = descriptor.addr;
        let Some((buffer, offset)) = self.ports[index].socket.frame_mut(descriptor.addr) else {
            // An address outside the UMEM: only a kernel fault could give one.
            let counters = self.pipeline.counters_mut();
            counters.received += 1;
            counters.not_ip += 1;
            return 0;
        };
        let outcome =
            self.pipeline
                .process_frame(buffer, offset, descriptor.len as usize, received_at);
        let Outcome::Transmit { port, start, len } = outcome else {
            return 0;
        };
        let counters = self.pipeline.counters_mut();
        if port == index {
            return match self.ports[index].hairpin(descriptor.addr, start, len, counters) {
                Some(replacement) => {
                    self.refill[k] = replacement;
                    1
                }
                None => 0,
            };
        }
        let chunk = descriptor.addr - offset as u64;
        let queued = match pair_mut(&mut self.ports, index, port) {
            Some((from, to)) => match from.socket.frame(chunk + start as u64, len) {
                Some(bytes) => to.send_copy(bytes, counters),
                None => {
                    counters.tx_dropped += 1;
                    false
                }
            },
            None => {
                counters.tx_dropped += 1;
                false
            }
        };
        u64::from(queued)
    }

    /// Runs rounds until `stop` is set, sleeping in `poll(2)` on every socket and the inbox's
    /// eventfd when there is nothing to do, for at most `idle_poll` at a time. Pins the
    /// thread first if the configuration names a core. Publishes everything before it
    /// returns.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<(), XskWorkerError> {
        if let Some(core) = self.config.core {
            if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                return Err(XskWorkerError::Pin { core });
            }
        }
        let handoff = Arc::clone(&self.handoff);
        let worker = self.config.worker;
        let wake = handoff.wake(worker).ok_or(XskWorkerError::WorkerIndex {
            worker,
            workers: handoff.workers(),
        })?;
        // Allocated once: the sockets, then the doorbell.
        let mut fds: Vec<libc::pollfd> = self
            .ports
            .iter()
            .map(|port| port.socket.fd())
            .chain(std::iter::once(wake.fd()))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let result = loop {
            if stop.load(Ordering::Acquire) {
                break Ok(());
            }
            if self.run_once() > 0 {
                continue;
            }
            // Idle: what was recorded goes to the readers now.
            self.stats
                .publish(self.pipeline.counters(), Instant::now(), true);
            wake.going_to_sleep();
            if handoff.waiting(worker) > 0 {
                wake.woke(false);
                continue;
            }
            let polled = poll_readable(&mut fds, self.config.idle_poll);
            let rung = fds
                .last()
                .is_some_and(|doorbell| doorbell.revents & libc::POLLIN != 0);
            wake.woke(rung);
            if let Err(e) = polled {
                break Err(XskWorkerError::Poll(e));
            }
        };
        self.finish();
        result
    }

    /// Publishes everything recorded so far, latencies included, for readers; what
    /// [`run`](Self::run) does before it returns. For callers that drive
    /// [`run_once`](Self::run_once) themselves.
    pub fn finish(&mut self) {
        self.stats.finish(self.pipeline.counters());
    }
}

/// `poll(2)` for reading on `fds` for at most `timeout`; an interruption counts as a timeout.
fn poll_readable(fds: &mut [libc::pollfd], timeout: Duration) -> io::Result<()> {
    for fd in fds.iter_mut() {
        fd.revents = 0;
    }
    let timeout_ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: `fds` is a live, exclusively borrowed slice of pollfds and its exact length is
    // passed; the kernel writes only their `revents`.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if ready == -1 {
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
    Ok(())
}

//! A worker's counters and latency histogram, published for readers on other threads without
//! the worker ever taking a lock.
//!
//! Counters: the worker counts in plain integers and stores them into atomics once per batch
//! (relaxed: each is a monotonic count of its own; a reader may see one batch's counts in
//! some fields and not yet in others).
//!
//! Latency: the worker records into a histogram of its own (no allocation, no lock). When it
//! goes idle, and at least every [`PUBLISH_INTERVAL`] while busy, it swaps that histogram for
//! an empty one taken from a queue of spares and pushes the filled one onto a queue for
//! readers (`ArrayQueue`s: two pointer moves). A reader drains that queue into its running
//! total under a mutex that only readers take, resets the drained histograms and returns them
//! as spares. With no spare or a full queue (no one reads) the worker keeps accumulating.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use hdrhistogram::Histogram;

/// The longest latency told apart: 10 s in nanoseconds; longer ones count as 10 s.
pub const LATENCY_MAX_NS: u64 = 10_000_000_000;
/// Significant decimal digits of each latency recorded.
const LATENCY_DIGITS: u8 = 3;
/// How long a busy worker's latencies may stay unpublished.
pub const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);
/// Histograms in circulation per worker besides the one it records into.
const SPARES: usize = 2;

macro_rules! worker_counters {
    ($($(#[doc = $doc:literal])* $field:ident,)*) => {
        /// What one worker did (or several, [`merge`](Self::merge)d). Packets received from
        /// the worker's own sockets are `received`; packets from other workers,
        /// `handoff_received`; each of them ends in exactly one of the other counters but
        /// `handed_off` and `transmitted`, which say where it went.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct WorkerCounters {
            $($(#[doc = $doc])* pub $field: u64,)*
        }

        impl WorkerCounters {
            /// Adds `other` into `self`.
            pub fn merge(&mut self, other: &WorkerCounters) {
                $(self.$field += other.$field;)*
            }

            /// Every counter with its name, for reports.
            pub fn named(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($field), self.$field),)*]
            }
        }

        #[derive(Debug, Default)]
        struct SharedCounters {
            $($field: AtomicU64,)*
        }

        impl SharedCounters {
            fn store(&self, counters: &WorkerCounters) {
                $(self.$field.store(counters.$field, Ordering::Relaxed);)*
            }

            fn load(&self) -> WorkerCounters {
                WorkerCounters { $($field: self.$field.load(Ordering::Relaxed),)* }
            }
        }
    };
}

worker_counters! {
    /// Frames taken from the worker's own sockets.
    received,
    /// Packets encapsulated (whether or not they could then be sent).
    encapsulated,
    /// Packets decapsulated and let through by the inbound policy check.
    decapsulated,
    /// Dropped by the ESP core, the inbound policy check included (each SA and the
    /// decapsulator's unattributed counters say why).
    esp_dropped,
    /// Plaintext no policy covers, or whose SA is gone: dropped, never sent in the clear.
    no_sa,
    /// No route to the packet's destination: dropped.
    no_route,
    /// The next hop's MAC address is not known yet (the kernel was asked): dropped.
    neighbour_unresolved,
    /// The route leaves through an interface this worker has no socket on: dropped.
    no_port,
    /// Packets handed to the worker that owns their SA.
    handed_off,
    /// Packets other workers handed to this one.
    handoff_received,
    /// Packets for another worker's SA that could not be handed over (its inbox full, no free
    /// buffer, too long): dropped.
    handoff_dropped,
    /// Frames queued for transmission.
    transmitted,
    /// Forwardable packets dropped for want of a transmit frame, room in it or in the ring.
    tx_dropped,
    /// Frames that were not IPv4 or IPv6 (with at most one VLAN tag).
    not_ip,
    /// IKE on the NAT-T port that reached the worker instead of the kernel: dropped (the XDP
    /// program passes it to the kernel).
    control_plane,
    /// Packets too big for their tunnel's egress link, answered with an ICMP Fragmentation
    /// Needed or ICMPv6 Packet Too Big (which is then sent on like any packet:
    /// `transmitted` or a drop counter).
    too_big,
    /// IPv4 packets without DF too big for their tunnel, split into fragments that fit before
    /// encryption: the first is encapsulated at once, the others go through this worker's own
    /// inbox (and count in `handoff_received` and `encapsulated` there).
    fragmented,
    /// Packets too big for their egress link and not answered: IPv4 without DF that could not
    /// be fragmented (no room in the inbox, an SA named by no slot), the ICMP rate limit, a tunnel of the other family (no
    /// source address for the error), a tunnel leaving less than the family's minimum MTU,
    /// ICMP errors and other packets never answered; and any packet, decapsulated ones
    /// included, longer than its egress link's MTU. Dropped.
    too_big_dropped,
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_NS, LATENCY_DIGITS)
        .expect("constant histogram bounds that hdrhistogram accepts")
}

#[derive(Debug)]
struct Shared {
    counters: SharedCounters,
    /// Filled histograms, worker to readers.
    filled: ArrayQueue<Histogram<u64>>,
    /// Empty histograms, readers to worker.
    spare: ArrayQueue<Histogram<u64>>,
    /// Everything readers drained so far.
    merged: Mutex<Histogram<u64>>,
}

/// A reader's handle on one worker's statistics: cheap to clone, usable from any thread.
#[derive(Clone, Debug)]
pub struct WorkerStats {
    shared: Arc<Shared>,
}

impl WorkerStats {
    /// The counters as of the worker's last batch.
    pub fn counters(&self) -> WorkerCounters {
        self.shared.counters.load()
    }

    /// Every latency the worker published so far (nanoseconds from receiving a packet to
    /// queueing it for transmission): at most [`PUBLISH_INTERVAL`] behind while it is busy,
    /// complete once it is idle or stopped.
    pub fn latency(&self) -> Histogram<u64> {
        let mut merged = self
            .shared
            .merged
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while let Some(mut filled) = self.shared.filled.pop() {
            // Same bounds on both sides: adding cannot fail.
            let _ = merged.add(&filled);
            filled.reset();
            let _ = self.shared.spare.push(filled);
        }
        merged.clone()
    }
}

/// Several workers' statistics added up.
#[derive(Clone, Debug)]
pub struct MergedStats {
    pub counters: WorkerCounters,
    pub latency: Histogram<u64>,
}

/// Adds up the counters and latencies of `workers`.
pub fn merge_stats(workers: &[WorkerStats]) -> MergedStats {
    let mut counters = WorkerCounters::default();
    let mut latency = new_histogram();
    for worker in workers {
        counters.merge(&worker.counters());
        let _ = latency.add(worker.latency());
    }
    MergedStats { counters, latency }
}

/// The worker's side: records latencies and publishes.
#[derive(Debug)]
pub(super) struct StatsRecorder {
    shared: Arc<Shared>,
    recording: Histogram<u64>,
    unpublished: bool,
    last_published: Instant,
}

impl StatsRecorder {
    /// A recorder and the readers' handle on it. Allocates every histogram it will use.
    pub(super) fn new() -> (Self, WorkerStats) {
        let spare = ArrayQueue::new(SPARES);
        for _ in 0..SPARES {
            let _ = spare.push(new_histogram());
        }
        let shared = Arc::new(Shared {
            counters: SharedCounters::default(),
            filled: ArrayQueue::new(SPARES),
            spare,
            merged: Mutex::new(new_histogram()),
        });
        let recorder = Self {
            shared: Arc::clone(&shared),
            recording: new_histogram(),
            unpublished: false,
            last_published: Instant::now(),
        };
        (recorder, WorkerStats { shared })
    }

    /// `packets` packets that took `latency` each.
    pub(super) fn record(&mut self, latency: Duration, packets: u64) {
        if packets == 0 {
            return;
        }
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.recording
            .saturating_record_n(nanos.clamp(1, LATENCY_MAX_NS), packets);
        self.unpublished = true;
    }

    /// Publishes the counters, and the latencies when `idle` or due.
    pub(super) fn publish(&mut self, counters: &WorkerCounters, now: Instant, idle: bool) {
        self.shared.counters.store(counters);
        if !self.unpublished
            || !(idle || now.duration_since(self.last_published) >= PUBLISH_INTERVAL)
            || self.shared.filled.is_full()
        {
            return;
        }
        // The worker is the only producer of `filled`: it cannot fill up behind our back.
        let Some(mut empty) = self.shared.spare.pop() else {
            return;
        };
        std::mem::swap(&mut self.recording, &mut empty);
        let _ = self.shared.filled.push(empty);
        self.unpublished = false;
        self.last_published = now;
    }

    /// The worker stops: everything goes to the readers, through their lock if need be (off
    /// the packet path).
    pub(super) fn finish(&mut self, counters: &WorkerCounters) {
        self.publish(counters, Instant::now(), true);
        if self.unpublished {
            let mut merged = self
                .shared
                .merged
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let _ = merged.add(&self.recording);
            self.recording.reset();
            self.unpublished = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_on_any_thread() {
        fn shareable<T: Send + Sync + Clone>() {}
        shareable::<WorkerStats>();
    }

    #[test]
    fn latencies_reach_readers_without_the_worker_locking() {
        let (mut recorder, stats) = StatsRecorder::new();
        let start = Instant::now();
        recorder.record(Duration::from_micros(10), 5);
        // Busy and not yet due: nothing published but the counters.
        let counters = WorkerCounters {
            received: 5,
            ..WorkerCounters::default()
        };
        recorder.publish(&counters, start, false);
        assert_eq!(stats.counters(), counters);
        assert_eq!(stats.latency().len(), 0);
        // Idle: published.
        recorder.publish(&counters, start, true);
        let latency = stats.latency();
        assert_eq!(latency.len(), 5);
        assert!(
            latency.equivalent(latency.max(), 10_000),
            "{}",
            latency.max()
        );
        // More publications than spares, each drained by a reader: none lost.
        for round in 0..3 * SPARES as u64 {
            recorder.record(Duration::from_nanos(100 + round), 1);
            recorder.publish(
                &counters,
                start + PUBLISH_INTERVAL * (round as u32 + 1),
                false,
            );
            assert_eq!(stats.latency().len(), 6 + round);
        }
        // With no reader the worker runs out of spares and keeps the rest: finish hands it
        // over all the same.
        for _ in 0..3 * SPARES {
            recorder.record(Duration::from_secs(20), 1);
            recorder.publish(&counters, Instant::now(), true);
        }
        recorder.finish(&counters);
        let all = stats.latency();
        assert_eq!(all.len(), 5 + 2 * 3 * SPARES as u64);
        // Longer than the bound: counted at the bound.
        assert!(all.equivalent(all.max(), LATENCY_MAX_NS));
        let merged = merge_stats(&[stats.clone(), stats]);
        assert_eq!(merged.counters.received, 10);
        assert_eq!(merged.latency.len(), 2 * all.len());
    }
}

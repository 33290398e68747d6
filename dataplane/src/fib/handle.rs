//! [`FibHandle`]: one worker's view of the mirror. Per batch one atomic load (has a new
//! snapshot been published?); per packet a probe of a small direct-mapped cache, or a lookup
//! in the snapshot it holds. No lock, no allocation, no reference-count traffic unless the
//! snapshot changed.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::mirror::Shared;
use super::next_hop::{NextHop, NextHops};
use super::resolve::ResolveRequest;
use super::snapshot::FibSnapshot;

/// Entries of the per-worker cache (a power of two).
const CACHE_SLOTS: usize = 256;
/// A cached unresolved next hop is asked about again after this many batches without a new
/// snapshot: a request lost to a full queue is made again, and the mirror's own limit keeps
/// the kernel from hearing it more than once per interval.
const REQUEST_AGAIN_AFTER_BATCHES: u64 = 64;

#[derive(Clone, Copy, Debug)]
struct Slot {
    /// The snapshot generation it was filled under; 0 is never published, so a fresh slot
    /// never matches.
    generation: u64,
    destination: IpAddr,
    next_hop: NextHop,
    /// The batch in which its resolution was last requested (unresolved only).
    requested_in: u64,
}

const EMPTY: Slot = Slot {
    generation: 0,
    destination: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    next_hop: NextHop::Unreachable,
    requested_in: 0,
};

/// A worker's handle on a [`FibMirror`](super::FibMirror), from
/// [`FibMirror::handle`](super::FibMirror::handle). `Send`: made on one thread, used on the
/// worker's. For [`NextHop::Unresolved`] it queues a request for the mirror's thread, which
/// asks the kernel to resolve the neighbour.
pub struct FibHandle {
    shared: Arc<Shared>,
    snapshot: Arc<FibSnapshot>,
    generation: u64,
    batch: u64,
    cache: Box<[Slot]>,
}

impl std::fmt::Debug for FibHandle {
    // Not the cache: 256 entries say nothing useful.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FibHandle")
            .field("generation", &self.generation)
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

impl FibHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let generation = shared.generation.load(Ordering::Acquire);
        let snapshot = shared.snapshot.load_full();
        Self {
            shared,
            snapshot,
            generation,
            batch: 0,
            cache: vec![EMPTY; CACHE_SLOTS].into_boxed_slice(),
        }
    }

    /// The snapshot this handle's lookups use (the one current at the last
    /// [`begin_batch`](NextHops::begin_batch)).
    pub fn snapshot(&self) -> &FibSnapshot {
        &self.snapshot
    }

    fn request(&self, ifindex: u32, address: IpAddr) {
        let shared = &*self.shared;
        if shared
            .requests
            .push(ResolveRequest { ifindex, address })
            .is_err()
        {
            shared
                .counters
                .resolve_dropped
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        // One eventfd write per round of the mirror's thread, not per request.
        if !shared.request_pending.swap(true, Ordering::SeqCst) {
            shared.wake.wake();
        }
    }
}

/// Fibonacci hashing of the address into a slot index.
fn slot_of(destination: IpAddr) -> usize {
    let folded = match destination {
        IpAddr::V4(a) => u64::from(u32::from(a)),
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            (bits as u64) ^ ((bits >> 64) as u64)
        }
    };
    (folded.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - CACHE_SLOTS.trailing_zeros())) as usize
}

impl NextHops for FibHandle {
    fn begin_batch(&mut self) {
        self.batch = self.batch.wrapping_add(1);
        let generation = self.shared.generation.load(Ordering::Acquire);
        if generation != self.generation {
            // At least as new as `generation`: the mirror stores the snapshot first.
            self.snapshot = self.shared.snapshot.load_full();
            self.generation = generation;
        }
    }

    fn lookup(&mut self, destination: IpAddr) -> NextHop {
        let index = slot_of(destination);
        let slot = self.cache[index];
        if slot.generation == self.generation && slot.destination == destination {
            if let NextHop::Unresolved { ifindex, address } = slot.next_hop {
                if self.batch.wrapping_sub(slot.requested_in) >= REQUEST_AGAIN_AFTER_BATCHES {
                    self.request(ifindex, address);
                    self.cache[index].requested_in = self.batch;
                }
            }
            return slot.next_hop;
        }
        let next_hop = self.snapshot.lookup(destination);
        if let NextHop::Unresolved { ifindex, address } = next_hop {
            self.request(ifindex, address);
        }
        self.cache[index] = Slot {
            generation: self.generation,
            destination,
            next_hop,
            requested_in: self.batch,
        };
        next_hop
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fib::parse::tests::v4;
    use crate::fib::snapshot::RouteEntry;
    use crate::fib::types::{Link, RouteTarget};

    const OWN: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const PEER: [u8; 6] = [2, 0, 0, 0, 0, 2];

    fn snapshot(generation: u64, neighbours: &[(u32, IpAddr, [u8; 6])]) -> FibSnapshot {
        let link = Link {
            ifindex: 3,
            name: "wan".into(),
            mac: Some(OWN),
            up: true,
            running: true,
            mtu: 1500,
        };
        let route = RouteEntry {
            prefix: "10.77.0.0/24".parse().unwrap(),
            metric: 0,
            target: RouteTarget::Via {
                ifindex: 3,
                gateway: None,
            },
        };
        FibSnapshot::from_parts([link], [route], neighbours.iter().copied())
            .with_generation(generation)
    }

    fn publish(shared: &Shared, snapshot: FibSnapshot) {
        let generation = snapshot.generation();
        shared.snapshot.store(Arc::new(snapshot));
        shared.generation.store(generation, Ordering::Release);
    }

    fn queued(shared: &Shared) -> Vec<ResolveRequest> {
        std::iter::from_fn(|| shared.requests.pop()).collect()
    }

    #[test]
    fn an_unresolved_next_hop_is_requested_once_then_again_much_later() {
        let shared = Arc::new(Shared::new(snapshot(1, &[]), 8).unwrap());
        let mut handle = FibHandle::new(shared.clone());
        handle.begin_batch();
        let unresolved = NextHop::Unresolved {
            ifindex: 3,
            address: v4("10.77.0.2"),
        };
        assert_eq!(handle.lookup(v4("10.77.0.2")), unresolved);
        assert_eq!(
            queued(&shared),
            vec![ResolveRequest {
                ifindex: 3,
                address: v4("10.77.0.2")
            }]
        );
        assert!(shared.request_pending.load(Ordering::SeqCst));
        // From the cache: no second request for a while.
        for _ in 0..REQUEST_AGAIN_AFTER_BATCHES - 1 {
            handle.begin_batch();
            assert_eq!(handle.lookup(v4("10.77.0.2")), unresolved);
        }
        assert!(queued(&shared).is_empty());
        handle.begin_batch();
        handle.lookup(v4("10.77.0.2"));
        assert_eq!(queued(&shared).len(), 1);
    }

    #[test]
    fn a_new_snapshot_is_picked_up_at_the_next_batch_only() {
        let shared = Arc::new(Shared::new(snapshot(1, &[]), 8).unwrap());
        let mut handle = FibHandle::new(shared.clone());
        handle.begin_batch();
        assert!(matches!(
            handle.lookup(v4("10.77.0.2")),
            NextHop::Unresolved { .. }
        ));
        publish(&shared, snapshot(2, &[(3, v4("10.77.0.2"), PEER)]));
        // Within the batch the answer stays put.
        assert!(matches!(
            handle.lookup(v4("10.77.0.2")),
            NextHop::Unresolved { .. }
        ));
        handle.begin_batch();
        assert_eq!(
            handle.lookup(v4("10.77.0.2")),
            NextHop::Resolved {
                ifindex: 3,
                src_mac: OWN,
                dst_mac: PEER,
                mtu: 1500
            }
        );
        assert_eq!(handle.snapshot().generation(), 2);
    }

    #[test]
    fn colliding_destinations_each_get_their_own_answer() {
        let shared = Arc::new(Shared::new(snapshot(1, &[(3, v4("10.77.0.2"), PEER)]), 8).unwrap());
        let mut handle = FibHandle::new(shared.clone());
        handle.begin_batch();
        // Every address of the /24 and some outside it, twice: the cache must never answer
        // for the wrong one.
        for _ in 0..2 {
            for last in 0..=255u8 {
                let destination = v4(&format!("10.77.0.{last}"));
                let expected = if last == 2 {
                    NextHop::Resolved {
                        ifindex: 3,
                        src_mac: OWN,
                        dst_mac: PEER,
                        mtu: 1500,
                    }
                } else {
                    NextHop::Unresolved {
                        ifindex: 3,
                        address: destination,
                    }
                };
                assert_eq!(handle.lookup(destination), expected);
                assert_eq!(
                    handle.lookup(v4(&format!("10.78.0.{last}"))),
                    NextHop::Unreachable
                );
            }
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let shared = Arc::new(Shared::new(snapshot(1, &[]), 2).unwrap());
        let mut handle = FibHandle::new(shared.clone());
        handle.begin_batch();
        for last in 10..15u8 {
            handle.lookup(v4(&format!("10.77.0.{last}")));
        }
        assert_eq!(queued(&shared).len(), 2);
        assert_eq!(shared.counters.resolve_dropped.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_handle_can_move_to_a_worker_thread() {
        fn is_send<T: Send>() {}
        is_send::<FibHandle>();
    }
}

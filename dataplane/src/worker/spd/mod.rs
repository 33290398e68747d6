//! A worker's copy of the outbound SPD and the selector fields of a plaintext packet.
//!
//! Per-resource Child SAs (RFC 9611). A peer that supports them negotiates several Child SAs
//! with identical traffic selectors: one per resource (here a worker, the SA's record pinning
//! it with `owner_worker`), and a fallback that is no resource's. Each worker sends through
//! its own per-resource SA, so that no two cores share a sequence counter and no packet is
//! handed over. The SPD lists them all, each with a policy of the same selectors; the first
//! match alone would send every worker's traffic through one SA. So among the policies with
//! exactly the selectors of the first match (which all match the packet too), a worker takes:
//!
//! 1. the first whose SA is pinned to this worker;
//! 2. else, if the first match's SA is pinned to another worker, the first whose SA is pinned
//!    to none (the fallback: RFC 9611 sends a resource's traffic there until it has an SA of
//!    its own);
//! 3. else the first match.
//!
//! "First" keeps the SPD's order, newest first, so a rekeyed SA takes over from the one it
//! replaces in each role. The choice is made when the copy is refreshed: per packet the cost
//! stays one first-match lookup ([`index`]) and one array load.

mod flow;
mod index;
mod indexed;
mod shared;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use foldhash::fast::RandomState;

use crate::table::{AddressRange, Flow, Policy, SlotId, TableReader, ANY_WORKER};

use super::owner_of;
pub use flow::{flow_of, reversed};
use indexed::IndexedSpd;
pub use shared::{SharedSpd, SpdIndexer, SHARED_FROM};

/// The policies as of one SPD version, seen by one worker, indexed by destination so that
/// the first match in priority order costs about the same with 100k tunnels as with one.
/// Refreshing it after the SPD changed reads and indexes every policy (milliseconds per
/// 100k; docs/benchmarks.md), unless an [`SpdIndexer`] does that for a large SPD.
#[derive(Debug)]
pub struct SpdMirror {
    /// `None` until the first refresh.
    spd: Option<Arc<IndexedSpd>>,
    /// For each policy, the outbound SA this worker sends through when that policy is the
    /// first match (the module's documentation says which), and that SA's `owner_worker`;
    /// empty when no SA is pinned to a worker: then each policy's own SA and owner.
    chosen: Vec<(SlotId, u16)>,
    worker: usize,
    workers: usize,
    shared: Option<Arc<SharedSpd>>,
}

impl Default for SpdMirror {
    /// The mirror of the only worker.
    fn default() -> Self {
        Self::for_worker(0, 1)
    }
}

/// The selectors of a policy: policies with equal ones are the SAs of one traffic class.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Selectors {
    local: AddressRange,
    remote: AddressRange,
    protocol: Option<u8>,
    local_ports: (u16, u16),
    remote_ports: (u16, u16),
}

impl Selectors {
    fn of(policy: &Policy) -> Self {
        Self {
            local: policy.local,
            remote: policy.remote,
            protocol: policy.protocol,
            local_ports: policy.local_ports,
            remote_ports: policy.remote_ports,
        }
    }
}

/// A class of policies with equal selectors, walked from the last to the first: its
/// earliest members so far whose SA is pinned to this worker, and to none.
#[derive(Default)]
struct Class {
    mine: Option<(SlotId, u16)>,
    unpinned: Option<(SlotId, u16)>,
}

impl SpdMirror {
    /// An empty mirror for worker `worker` of `workers` (zero counts as one), which prefers
    /// that worker's per-resource SAs; [`refresh`](Self::refresh) fills it.
    pub fn for_worker(worker: usize, workers: usize) -> Self {
        Self {
            spd: None,
            chosen: Vec::new(),
            worker,
            workers: workers.max(1),
            shared: None,
        }
    }

    /// Takes the index of an SPD larger than [`SHARED_FROM`] policies from `shared` rather
    /// than building it in the packet loop.
    pub fn use_shared(&mut self, shared: Arc<SharedSpd>) {
        self.shared = Some(shared);
    }

    /// Brings the copy up to date; one atomic load when nothing changed. `false` when the
    /// writer was mid-update (the old copy stays; try again next batch). When the SPD moved,
    /// also reads the record of every SA a policy names, for its owner.
    pub fn refresh(&mut self, table: &TableReader) -> bool {
        self.refresh_with(table, |slot| indexed::record_owner(table, slot))
    }

    /// [`refresh`](Self::refresh), with the owners (`SaRecord::owner_worker`) of the SAs the
    /// policies name from `owner_worker` (`None`: unknown, taken as
    /// [`ANY_WORKER`]): a worker's SA cache knows them without reading records
    /// that did not change.
    pub fn refresh_with(
        &mut self,
        table: &TableReader,
        owner_worker: impl FnMut(SlotId) -> Option<u16>,
    ) -> bool {
        if self.is_current(table) {
            return true;
        }
        if let Some(shared) = &self.shared {
            if table.policy_count() >= SHARED_FROM as u64 {
                // The indexer's newest, even if the table has moved on since: it catches up
                // within milliseconds, and this worker keeps forwarding meanwhile.
                if shared.version() != self.spd.as_ref().map(|spd| spd.version) {
                    if let Some(spd) = shared.latest() {
                        self.adopt(spd);
                    }
                }
                return true;
            }
        }
        match IndexedSpd::read(table, owner_worker) {
            Ok(spd) => {
                self.adopt(Arc::new(spd));
                true
            }
            Err(_) => false,
        }
    }

    fn adopt(&mut self, spd: Arc<IndexedSpd>) {
        self.choose(&spd);
        self.spd = Some(spd);
    }

    /// Fills `chosen`. Allocates, once per SPD version. The owners are as of now: should a
    /// slot be reused without the SPD changing (the control plane rewrites the SPD before it
    /// deletes an SA and after it installs one), a packet may be kept or handed over wrongly
    /// until the next change, and then dropped by the SA cache, which checks every SA's
    /// owner against its record: never sent by two workers.
    fn choose(&mut self, spd: &IndexedSpd) {
        self.chosen.clear();
        // Only a class with a pinned member can choose other than its first match; without
        // per-resource SAs (most tunnels) none has, and 100k tunnels cost nothing here.
        if !spd.pinned {
            return;
        }
        self.chosen.extend(
            (spd.policies.iter().zip(&spd.owners)).map(|(policy, &owner)| (policy.outbound, owner)),
        );
        let pinned: HashSet<Selectors, RandomState> = (spd.policies.iter().zip(&self.chosen))
            .filter(|(_, &(_, owner))| owner != ANY_WORKER)
            .map(|(policy, _)| Selectors::of(policy))
            .collect();
        if pinned.is_empty() {
            return;
        }
        let mut classes: HashMap<Selectors, Class, RandomState> =
            HashMap::with_capacity_and_hasher(pinned.len(), RandomState::default());
        // Backwards, so that each class holds its earliest members when its first is reached.
        for (i, policy) in spd.policies.iter().enumerate().rev() {
            let selectors = Selectors::of(policy);
            if !pinned.contains(&selectors) {
                continue;
            }
            let class = classes.entry(selectors).or_default();
            let own = self.chosen[i];
            let pinned_elsewhere = if own.1 == ANY_WORKER {
                class.unpinned = Some(own);
                false
            } else if owner_of(own.0, own.1, self.workers) == self.worker {
                class.mine = Some(own);
                false
            } else {
                true
            };
            let fallback = class.unpinned.filter(|_| pinned_elsewhere);
            if let Some(choice) = class.mine.or(fallback) {
                self.chosen[i] = choice;
            }
        }
    }

    /// Whether the copy is of the table's current SPD: one atomic load.
    pub fn is_current(&self, table: &TableReader) -> bool {
        self.spd.as_ref().map(|spd| spd.version) == Some(table.spd_version())
    }

    /// The outbound SA this worker sends a plaintext packet through, if a policy covers it:
    /// the first match's, or this worker's per-resource SA (or the fallback) among the
    /// policies with the first match's selectors.
    pub fn lookup(&self, flow: &Flow) -> Option<SlotId> {
        self.lookup_with_owner(flow).map(|(slot, _)| slot)
    }

    /// [`lookup`](Self::lookup), with the SA's `owner_worker` as its record said when the SPD
    /// was copied (for [`owner_of`]).
    pub fn lookup_with_owner(&self, flow: &Flow) -> Option<(SlotId, u16)> {
        let spd = self.spd.as_deref()?;
        let first = spd.index.first_match(&spd.policies, flow)?;
        match self.chosen.get(first) {
            Some(&chosen) => Some(chosen),
            None => Some((spd.policies[first].outbound, spd.owners[first])),
        }
    }

    /// Whether a decrypted inbound packet with selector fields `flow` may have come through
    /// the Child SA whose outbound SA is in `outbound` (RFC 4301 §5.2): its reverse (their
    /// source is our remote, their destination our local) matches a policy into `outbound`.
    /// Any such policy, not only the first match: while a rekeyed Child SA takes over, the
    /// older one has the same selectors and still receives, though the newer one's policies
    /// come first.
    pub fn allows_inbound(&self, outbound: SlotId, flow: &Flow) -> bool {
        let reverse = reversed(flow);
        self.spd.as_deref().is_some_and(|spd| {
            spd.index
                .any_into(&spd.policies, outbound, |policy| policy.matches(&reverse))
        })
    }

    pub fn len(&self) -> usize {
        self.spd.as_deref().map_or(0, IndexedSpd::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{AddressRange, ANY_PORT};

    fn prefix(text: &str) -> AddressRange {
        let (address, len) = text.split_once('/').unwrap();
        AddressRange::prefix(address.parse().unwrap(), len.parse().unwrap()).unwrap()
    }

    fn policy(local: &str, remote: &str, outbound: u32) -> Policy {
        Policy {
            local: prefix(local),
            remote: prefix(remote),
            protocol: None,
            local_ports: ANY_PORT,
            remote_ports: ANY_PORT,
            outbound: SlotId(outbound),
        }
    }

    /// `policies` as read at version 2, each SA's owner from `owner_worker`.
    fn indexed(policies: Vec<Policy>, owner_worker: impl Fn(SlotId) -> Option<u16>) -> IndexedSpd {
        let owners: Vec<u16> = policies
            .iter()
            .map(|policy| owner_worker(policy.outbound).unwrap_or(ANY_WORKER))
            .collect();
        IndexedSpd {
            version: 2,
            index: index::PolicyIndex::build(&policies),
            pinned: owners.iter().any(|&owner| owner != ANY_WORKER),
            owners,
            policies,
        }
    }

    /// A packet from the peer's side: `source` is theirs, `destination` ours.
    fn from_peer(source: &str, destination: &str, ports: Option<(u16, u16)>) -> Flow {
        Flow {
            source: source.parse().unwrap(),
            destination: destination.parse().unwrap(),
            protocol: 17,
            ports,
        }
    }

    #[test]
    fn inbound_packets_match_their_child_sas_policies_reversed() {
        let policies = vec![
            // A rekey under way: the newer pair (outbound slot 3) first, the older one
            // (slot 1) with the same selectors after it.
            policy("10.2.0.0/24", "10.1.0.0/24", 3),
            policy("10.2.0.0/24", "10.1.0.0/24", 1),
            Policy {
                protocol: Some(17),
                local_ports: (1000, 2000),
                remote_ports: (53, 53),
                ..policy("10.2.0.0/24", "10.1.3.0/24", 5)
            },
        ];
        let mirror = SpdMirror {
            spd: Some(Arc::new(indexed(policies, |_| None))),
            ..SpdMirror::default()
        };
        let inside = from_peer("10.1.0.5", "10.2.0.7", Some((5000, 6000)));
        assert!(mirror.allows_inbound(SlotId(3), &inside));
        // Not the first match, still a match: the older SA keeps receiving.
        assert!(mirror.allows_inbound(SlotId(1), &inside));
        // Slot 5's selectors do not cover it, nor does a slot with no policies.
        assert!(!mirror.allows_inbound(SlotId(5), &inside));
        assert!(!mirror.allows_inbound(SlotId(7), &inside));
        for outside in [
            from_peer("10.9.9.9", "10.2.0.7", None),
            from_peer("10.1.0.5", "10.3.0.7", None),
            // Our side as the source: the unreversed direction.
            from_peer("10.2.0.7", "10.1.0.5", None),
            from_peer("fd00::1", "fd00::2", None),
        ] {
            assert!(!mirror.allows_inbound(SlotId(1), &outside), "{outside:?}");
        }
        // Ports: their source port is the policy's remote port.
        let dns = |ports| from_peer("10.1.3.9", "10.2.0.7", ports);
        assert!(mirror.allows_inbound(SlotId(5), &dns(Some((53, 1500)))));
        assert!(!mirror.allows_inbound(SlotId(5), &dns(Some((1500, 53)))));
        assert!(!mirror.allows_inbound(SlotId(5), &dns(Some((53, 999)))));
        // No ports to check (a non-first fragment): only port-less selectors take it.
        assert!(!mirror.allows_inbound(SlotId(5), &dns(None)));
        assert!(mirror.allows_inbound(SlotId(1), &from_peer("10.1.0.5", "10.2.0.7", None)));
    }

    /// What `worker` of 3 sends through when each policy is the first match, given each
    /// slot's `owner_worker` (slot `n` pinned as `owners[n]`).
    fn chosen(policies: &[Policy], owners: &[u16], worker: usize) -> Vec<u32> {
        let mut mirror = SpdMirror::for_worker(worker, 3);
        mirror.adopt(Arc::new(indexed(policies.to_vec(), |slot| {
            owners.get(slot.0 as usize).copied()
        })));
        if mirror.chosen.is_empty() {
            // Nothing pinned: each policy's own SA.
            let spd = mirror.spd.as_deref().unwrap();
            mirror.chosen = (spd.policies.iter().zip(&spd.owners))
                .map(|(policy, &owner)| (policy.outbound, owner))
                .collect();
        }
        // Each choice carries its own SA's owner (unknown: no one's).
        for &(slot, owner) in &mirror.chosen {
            let expected = owners.get(slot.0 as usize).copied();
            assert_eq!(owner, expected.unwrap_or(ANY_WORKER));
        }
        mirror.chosen.iter().map(|(slot, _)| slot.0).collect()
    }

    #[test]
    fn each_worker_takes_its_own_sa_among_identical_policies() {
        const ANY: u16 = ANY_WORKER;
        let same = |slot| policy("10.2.0.0/24", "10.1.0.0/24", slot);
        let udp = |slot| Policy {
            protocol: Some(17),
            ..same(slot)
        };
        // Slots 0..=6: a rekeyed per-resource SA of worker 1 (new 0, old 1), worker 2's (2),
        // a rekeyed fallback (new 3, old 4), worker 0's, pinned as 3 (5), and a UDP-only SA
        // pinned to worker 1 (6).
        let owners = [1, 1, 2, ANY, ANY, 3, 1];
        let policies = [same(0), same(1), same(2), same(3), same(4), same(5), udp(6)];
        // Policy 0 is the first match of the class: each worker gets its newest own SA; a
        // class member that is no one's own falls back to the newest fallback after it.
        assert_eq!(chosen(&policies, &owners, 0)[0], 5);
        assert_eq!(chosen(&policies, &owners, 1)[0], 0);
        assert_eq!(chosen(&policies, &owners, 2)[0], 2);
        // The UDP policy is a class of its own, whatever the worker.
        for worker in 0..3 {
            assert_eq!(chosen(&policies, &owners, worker)[6], 6);
        }
        // Without per-resource SAs of worker 0: the newest fallback, not another's SA.
        let policies = [same(0), same(2), same(3), same(4)];
        assert_eq!(chosen(&policies, &owners, 0)[0], 3);
        // Without a fallback: the first match.
        let policies = [same(0), same(2)];
        assert_eq!(chosen(&policies, &owners, 0)[0], 0);
        // A fallback first stays first for a worker without its own SA.
        let policies = [same(4), same(0)];
        assert_eq!(chosen(&policies, &owners, 0)[0], 4);
        assert_eq!(chosen(&policies, &owners, 1)[0], 0);
        // An owner that cannot be read counts as no one's.
        let policies = [same(0), same(9)];
        assert_eq!(chosen(&policies, &owners, 0)[0], 9);
    }
}

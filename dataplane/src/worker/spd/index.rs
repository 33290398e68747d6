//! The first matching policy without scanning them all.
//!
//! An outbound packet's destination must lie in a policy's remote range, so the policies are
//! indexed by that range: the range boundaries of all policies cut each family's address
//! space into elementary intervals, and each interval lists, in priority order, the policies
//! whose remote range covers it. A lookup is a binary search for the interval and a short
//! scan of its list for the first policy whose other selectors (local range, protocol,
//! ports) match too. With 100k tunnels of distinct remote subnets that is ~17 comparisons and
//! one or two candidates, instead of 100k selector checks.
//!
//! A policy covering many intervals (a catch-all such as 0.0.0.0/0 beside specific tunnels,
//! or ranges nested deep) would appear in every list it covers; past [`WIDE`] intervals it is
//! kept in one list of wide policies instead, which every lookup of the family also scans as
//! far as the best narrow candidate. Memory stays at most `WIDE` entries per policy, and the
//! worst case (many wide policies) degrades to the scan this replaces, never to quadratic
//! memory.
//!
//! Inbound, the check that a decrypted packet fits a policy into its Child SA's outbound SA
//! (RFC 4301 §5.2) needs that SA's policies: an index sorted by outbound slot.

use crate::table::{AddressRange, Flow, Policy, SlotId};

/// Past this many elementary intervals a policy goes in the wide list.
const WIDE: usize = 32;

/// Up to this many policies a scan is quicker than the index (`cargo bench --bench spd`:
/// about 1.3 ns a policy scanned, against 11 ns for an indexed lookup of one policy), and a
/// site-to-site gateway rarely has more.
const SCAN_UP_TO: usize = 16;

/// The index of one SPD version's policies; positions are indices into that policy list.
#[derive(Debug, Default)]
pub(super) struct PolicyIndex {
    /// Few policies: no index, a scan.
    scan: bool,
    v4: Intervals<u32>,
    v6: Intervals<u128>,
    /// (outbound slot, policy position), sorted.
    by_slot: Vec<(u32, u32)>,
}

impl PolicyIndex {
    /// Allocates; called once per SPD version, never per packet.
    pub(super) fn build(policies: &[Policy]) -> Self {
        if policies.len() <= SCAN_UP_TO {
            return Self {
                scan: true,
                ..Self::default()
            };
        }
        let positions = 0..u32::try_from(policies.len()).unwrap_or(u32::MAX);
        let mut by_slot: Vec<(u32, u32)> = positions
            .clone()
            .zip(policies)
            .map(|(position, policy)| (policy.outbound.0, position))
            .collect();
        by_slot.sort_unstable();
        let v4 = positions
            .clone()
            .zip(policies)
            .filter_map(|(i, p)| match p.remote {
                AddressRange::V4 { start, end } => Some((i, start, end)),
                AddressRange::V6 { .. } => None,
            });
        let v6 = positions.zip(policies).filter_map(|(i, p)| match p.remote {
            AddressRange::V6 { start, end } => Some((i, start, end)),
            AddressRange::V4 { .. } => None,
        });
        Self {
            scan: false,
            v4: Intervals::build(v4),
            v6: Intervals::build(v6),
            by_slot,
        }
    }

    /// The position of the first of `policies` (those the index was built from) that
    /// matches `flow`.
    pub(super) fn first_match(&self, policies: &[Policy], flow: &Flow) -> Option<usize> {
        if self.scan {
            return policies.iter().position(|policy| policy.matches(flow));
        }
        let matches = |position: u32| {
            policies
                .get(position as usize)
                .is_some_and(|policy| policy.matches(flow))
        };
        let first = match flow.destination {
            std::net::IpAddr::V4(address) => self.v4.first(u32::from(address), matches),
            std::net::IpAddr::V6(address) => self.v6.first(u128::from(address), matches),
        };
        first.map(|position| position as usize)
    }

    /// Whether any of `policies` into outbound SA `slot` satisfies `predicate`.
    pub(super) fn any_into(
        &self,
        policies: &[Policy],
        slot: SlotId,
        mut predicate: impl FnMut(&Policy) -> bool,
    ) -> bool {
        if self.scan {
            return policies
                .iter()
                .any(|policy| policy.outbound == slot && predicate(policy));
        }
        self.policies_into(slot)
            .any(|position| policies.get(position).is_some_and(&mut predicate))
    }

    /// The positions of the policies into outbound SA `slot` (an indexed SPD's).
    fn policies_into(&self, slot: SlotId) -> impl Iterator<Item = usize> + '_ {
        let from = self.by_slot.partition_point(|&(s, _)| s < slot.0);
        self.by_slot[from..]
            .iter()
            .take_while(move |&&(s, _)| s == slot.0)
            .map(|&(_, position)| position as usize)
    }
}

/// Interval stabbing over one family's addresses.
#[derive(Debug)]
struct Intervals<K> {
    /// Distinct and ascending; interval `i` runs from `bounds[i]` up to `bounds[i + 1]`
    /// (the last to the end of the address space). Addresses below `bounds[0]` are in none.
    bounds: Vec<K>,
    /// The candidates of interval `i` are `entries[offsets[i]..offsets[i + 1]]`, ascending.
    offsets: Vec<u32>,
    entries: Vec<u32>,
    /// Positions of the policies covering more than [`WIDE`] intervals, ascending.
    wide: Vec<u32>,
}

impl<K> Default for Intervals<K> {
    fn default() -> Self {
        Self {
            bounds: Vec::new(),
            offsets: vec![0],
            entries: Vec::new(),
            wide: Vec::new(),
        }
    }
}

/// An address of one family: what the intervals need of it.
trait Address: Copy + Ord {
    /// The next address, `None` past the last.
    fn successor(self) -> Option<Self>;
}

impl Address for u32 {
    fn successor(self) -> Option<Self> {
        self.checked_add(1)
    }
}

impl Address for u128 {
    fn successor(self) -> Option<Self> {
        self.checked_add(1)
    }
}

impl<K: Address> Intervals<K> {
    /// From `(position, start, end)` of each policy, positions ascending.
    fn build(ranges: impl Iterator<Item = (u32, K, K)> + Clone) -> Self {
        let mut bounds: Vec<K> = ranges
            .clone()
            .flat_map(|(_, start, end)| [Some(start), end.successor()])
            .flatten()
            .collect();
        bounds.sort_unstable();
        bounds.dedup();
        let interval_count = bounds.len();
        // The intervals a range covers: from its start's up to its end's successor's.
        let covered = |start: K, end: K| {
            let from = bounds.partition_point(|b| *b < start);
            let to = end.successor().map_or(interval_count, |after| {
                bounds.partition_point(|b| *b < after)
            });
            from..to
        };
        // Each narrow policy's intervals, found once (two binary searches, the build's main
        // cost); the wide ones go to their own list.
        let mut narrow: Vec<(u32, u32, u32)> = Vec::new();
        let mut wide = Vec::new();
        for (position, start, end) in ranges {
            let intervals = covered(start, end);
            if intervals.len() > WIDE {
                wide.push(position);
            } else {
                narrow.push((position, intervals.start as u32, intervals.end as u32));
            }
        }
        let mut counts = vec![0u32; interval_count + 1];
        for &(_, from, to) in &narrow {
            for i in from..to {
                counts[i as usize] += 1;
            }
        }
        // Counts become offsets (a prefix sum); a cursor per interval fills the entries in
        // position order, so each list comes out ascending.
        let mut offsets = Vec::with_capacity(interval_count + 1);
        let mut total = 0u32;
        for count in &counts {
            offsets.push(total);
            total += count;
        }
        let mut cursor = offsets.clone();
        let mut entries = vec![0u32; total as usize];
        for &(position, from, to) in &narrow {
            for i in from as usize..to as usize {
                entries[cursor[i] as usize] = position;
                cursor[i] += 1;
            }
        }
        Self {
            bounds,
            offsets,
            entries,
            wide,
        }
    }

    /// The lowest position among the candidates for `address` that `matches`.
    fn first(&self, address: K, matches: impl Fn(u32) -> bool) -> Option<u32> {
        let interval = self.bounds.partition_point(|b| *b <= address);
        let narrow = match interval.checked_sub(1) {
            Some(i) => {
                let from = self.offsets[i] as usize;
                let to = self.offsets[i + 1] as usize;
                self.entries[from..to].iter().copied().find(|&p| matches(p))
            }
            None => None,
        };
        // A wide policy wins only from before the best narrow one.
        let limit = narrow.unwrap_or(u32::MAX);
        self.wide
            .iter()
            .copied()
            .take_while(|&p| p < limit)
            .find(|&p| matches(p))
            .or(narrow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::ANY_PORT;
    use proptest::prelude::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    /// Addresses from a small space, so that ranges overlap, nest and touch often; the v6
    /// ones at the top of the space, so that ranges ending at the last address are common.
    fn address(v6: bool, offset: u8) -> IpAddr {
        if v6 {
            IpAddr::V6(Ipv6Addr::from(u128::MAX - 80 + u128::from(offset)))
        } else {
            IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + u32::from(offset)))
        }
    }

    fn range(v6: bool, a: u8, b: u8) -> AddressRange {
        AddressRange::new(address(v6, a.min(b)), address(v6, a.max(b))).unwrap()
    }

    prop_compose! {
        fn policy()(
            v6 in any::<bool>(),
            remote in (0u8..80, 0u8..80),
            // Mostly narrow, sometimes wide remote ranges.
            wide in prop::bool::weighted(0.1),
            local in (0u8..80, 0u8..80),
            protocol in prop::option::of(prop::sample::select(vec![6u8, 17])),
            remote_ports in prop::sample::select(vec![ANY_PORT, (53, 53), (1000, 2000)]),
            outbound in 0u32..8,
        ) -> Policy {
            let remote = if wide { (0, 79) } else { remote };
            Policy {
                local: range(v6, local.0, local.1),
                remote: range(v6, remote.0, remote.1),
                protocol,
                local_ports: ANY_PORT,
                remote_ports,
                outbound: SlotId(outbound),
            }
        }
    }

    prop_compose! {
        fn flow()(
            v6 in any::<bool>(),
            source in 0u8..80,
            destination in 0u8..80,
            protocol in prop::sample::select(vec![6u8, 17, 1]),
            ports in prop::option::of((0u16..3000, 0u16..3000)),
        ) -> Flow {
            Flow {
                source: address(v6, source),
                destination: address(v6, destination),
                protocol,
                ports,
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The index finds exactly what the first-match scan of RFC 4301 §4.4.1 finds, and
        /// the policies into each SA that the inbound check needs.
        #[test]
        fn index_agrees_with_the_scan(
            policies in prop::collection::vec(policy(), 0..120),
            flows in prop::collection::vec(flow(), 64),
        ) {
            let index = PolicyIndex::build(&policies);
            for flow in &flows {
                let scan = policies.iter().position(|policy| policy.matches(flow));
                prop_assert_eq!(index.first_match(&policies, flow), scan, "{:?}", flow);
            }
            for slot in (0..9).map(SlotId) {
                for flow in &flows {
                    let scan = policies.iter().any(|p| p.outbound == slot && p.matches(flow));
                    let found = index.any_into(&policies, slot, |p| p.matches(flow));
                    prop_assert_eq!(found, scan, "{:?} {:?}", slot, flow);
                }
            }
        }
    }

    #[test]
    fn a_catch_all_behind_many_tunnels_goes_to_the_wide_list_and_still_matches() {
        // 100 /24 tunnels, then 0.0.0.0/0 last, then one /24 that only the catch-all precedes.
        let tunnel = |i: u32, slot: u32| Policy {
            local: AddressRange::prefix("10.0.0.0".parse().unwrap(), 24).unwrap(),
            remote: AddressRange::prefix(Ipv4Addr::from(0x0A01_0000 + (i << 8)).into(), 24)
                .unwrap(),
            protocol: None,
            local_ports: ANY_PORT,
            remote_ports: ANY_PORT,
            outbound: SlotId(slot),
        };
        let mut policies: Vec<Policy> = (0..100).map(|i| tunnel(i, i)).collect();
        policies.push(Policy {
            remote: AddressRange::prefix("0.0.0.0".parse().unwrap(), 0).unwrap(),
            ..tunnel(0, 1000)
        });
        policies.push(tunnel(5, 2000));
        let index = PolicyIndex::build(&policies);
        assert_eq!(index.v4.wide, [100]);
        assert!(index.v4.entries.len() <= 101, "{}", index.v4.entries.len());
        let to = |destination: &str| Flow {
            source: "10.0.0.1".parse().unwrap(),
            destination: destination.parse().unwrap(),
            protocol: 17,
            ports: Some((1, 2)),
        };
        assert_eq!(index.first_match(&policies, &to("10.1.5.9")), Some(5));
        assert_eq!(index.first_match(&policies, &to("10.1.99.1")), Some(99));
        assert_eq!(index.first_match(&policies, &to("192.0.2.1")), Some(100));
        assert_eq!(index.first_match(&policies, &to("fd00::1")), None);
    }
}

//! One immutable copy of the forwarding information, shared by every worker: routes in a
//! longest-prefix-match table per family, neighbours and links in sorted arrays. A lookup
//! allocates nothing, takes no lock and hashes nothing.

use std::net::IpAddr;

use ipnet::IpNet;

use super::lpm::PrefixTable;
use super::next_hop::NextHop;
use super::parse::RouteKey;
use super::types::{Link, RouteTarget};

/// A route of the main table, as mirrored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteEntry {
    /// The destination prefix.
    pub prefix: IpNet,
    /// The route's priority (`ip route ... metric N`); among routes to the same prefix, the
    /// lowest is used.
    pub metric: u32,
    /// Where it sends packets.
    pub target: RouteTarget,
}

/// The kernel's routing, neighbour and link tables at one moment (see
/// [`FibMirror`](super::FibMirror)), or built by hand.
#[derive(Clone, Debug, Default)]
pub struct FibSnapshot {
    generation: u64,
    /// Sorted by prefix, then metric: the lowest metric of a prefix comes first.
    routes: Vec<RouteEntry>,
    v4: PrefixTable<u32>,
    v6: PrefixTable<u128>,
    /// Sorted by (interface, address).
    neighbours: Vec<((u32, IpAddr), [u8; 6])>,
    /// Sorted by interface index.
    links: Vec<Link>,
}

impl FibSnapshot {
    pub(crate) fn build(
        generation: u64,
        links: impl IntoIterator<Item = Link>,
        routes: impl IntoIterator<Item = (RouteKey, RouteTarget)>,
        neighbours: impl IntoIterator<Item = (u32, IpAddr, [u8; 6])>,
    ) -> Self {
        let mut routes: Vec<(RouteKey, RouteTarget)> = routes.into_iter().collect();
        routes.sort_by_key(|(key, _)| (key.network, key.prefix_len, key.metric));
        let routes: Vec<RouteEntry> = routes
            .into_iter()
            .filter_map(|(key, target)| {
                // The parser only lets through prefix lengths that fit their family.
                let prefix = IpNet::new(key.network, key.prefix_len).ok()?;
                Some(RouteEntry {
                    prefix,
                    metric: key.metric,
                    target,
                })
            })
            .collect();
        // In ascending metric order per prefix, so the table keeps the lowest.
        let v4 = PrefixTable::build(routes.iter().enumerate().filter_map(|(i, r)| {
            match r.prefix.network() {
                IpAddr::V4(a) => Some((u32::from(a), r.prefix.prefix_len(), i as u32)),
                IpAddr::V6(_) => None,
            }
        }));
        let v6 = PrefixTable::build(routes.iter().enumerate().filter_map(|(i, r)| {
            match r.prefix.network() {
                IpAddr::V6(a) => Some((u128::from(a), r.prefix.prefix_len(), i as u32)),
                IpAddr::V4(_) => None,
            }
        }));
        let mut neighbours: Vec<((u32, IpAddr), [u8; 6])> = neighbours
            .into_iter()
            .map(|(ifindex, address, mac)| ((ifindex, address), mac))
            .collect();
        neighbours.sort_by_key(|&(key, _)| key);
        neighbours.dedup_by_key(|&mut (key, _)| key);
        let mut links: Vec<Link> = links.into_iter().collect();
        links.sort_by_key(|link| link.ifindex);
        links.dedup_by_key(|link| link.ifindex);
        Self {
            generation,
            routes,
            v4,
            v6,
            neighbours,
            links,
        }
    }

    /// Builds a snapshot by hand (tests, benchmarks, tools): `links`, main-table `routes`
    /// and the usable `neighbours` as (interface, address, MAC). Host bits of the prefixes
    /// are ignored; among routes to the same prefix, the lowest metric is used.
    pub fn from_parts(
        links: impl IntoIterator<Item = Link>,
        routes: impl IntoIterator<Item = RouteEntry>,
        neighbours: impl IntoIterator<Item = (u32, IpAddr, [u8; 6])>,
    ) -> Self {
        Self::build(
            0,
            links,
            routes.into_iter().map(|route| {
                let prefix = route.prefix.trunc();
                (
                    RouteKey {
                        network: prefix.network(),
                        prefix_len: prefix.prefix_len(),
                        metric: route.metric,
                    },
                    route.target,
                )
            }),
            neighbours,
        )
    }

    /// The same snapshot as publication `generation`, the way the mirror stamps it.
    #[cfg(test)]
    pub(crate) fn with_generation(mut self, generation: u64) -> Self {
        self.generation = generation;
        self
    }

    /// Which publication this is: the mirror counts up from 1 (0 for one built by hand).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Where a packet to `destination` leaves: the longest matching route of the main table
    /// (the lowest metric among equals), its interface (which must be an Ethernet device, up
    /// and running) with the interface's MTU, and the link-layer address of its gateway — or
    /// of the destination itself when the route has none — on that interface. A route's own
    /// `mtu` metric is not mirrored: the link's MTU is the limit.
    pub fn lookup(&self, destination: IpAddr) -> NextHop {
        let Some(route) = self.route(destination) else {
            return NextHop::Unreachable;
        };
        let RouteTarget::Via { ifindex, gateway } = route.target else {
            return NextHop::Unreachable;
        };
        let Some(link) = self.link(ifindex) else {
            return NextHop::Unreachable;
        };
        let Some(src_mac) = link.usable_mac() else {
            return NextHop::Unreachable;
        };
        let address = gateway.unwrap_or(destination);
        match self.neighbour(ifindex, address) {
            Some(dst_mac) => NextHop::Resolved {
                ifindex,
                src_mac,
                dst_mac,
                mtu: link.mtu,
            },
            None => NextHop::Unresolved { ifindex, address },
        }
    }

    /// The route a packet to `destination` takes, if any.
    pub fn route(&self, destination: IpAddr) -> Option<&RouteEntry> {
        let index = match destination {
            IpAddr::V4(a) => self.v4.lookup(u32::from(a)),
            IpAddr::V6(a) => self.v6.lookup(u128::from(a)),
        }?;
        self.routes.get(index as usize)
    }

    /// Every route, by prefix and then metric.
    pub fn routes(&self) -> impl Iterator<Item = &RouteEntry> {
        self.routes.iter()
    }

    /// The link-layer address of `address` on interface `ifindex`, if the kernel has a
    /// usable one (reachable, stale, delay, probe, permanent, noarp).
    pub fn neighbour(&self, ifindex: u32, address: IpAddr) -> Option<[u8; 6]> {
        self.neighbours
            .binary_search_by_key(&(ifindex, address), |&(key, _)| key)
            .ok()
            .map(|at| self.neighbours[at].1)
    }

    /// Every usable neighbour as (interface, address, MAC).
    pub fn neighbours(&self) -> impl Iterator<Item = (u32, IpAddr, [u8; 6])> + '_ {
        self.neighbours
            .iter()
            .map(|&((ifindex, address), mac)| (ifindex, address, mac))
    }

    /// The interface with index `ifindex`.
    pub fn link(&self, ifindex: u32) -> Option<&Link> {
        self.links
            .binary_search_by_key(&ifindex, |link| link.ifindex)
            .ok()
            .map(|at| &self.links[at])
    }

    /// The interface called `name`.
    pub fn link_by_name(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|link| link.name == name)
    }

    /// Every interface, by index.
    pub fn links(&self) -> impl Iterator<Item = &Link> {
        self.links.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fib::parse::tests::{v4, v6};

    const OWN: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const PEER: [u8; 6] = [2, 0, 0, 0, 0, 2];

    fn wan(ifindex: u32) -> Link {
        Link {
            ifindex,
            name: "wan".into(),
            mac: Some(OWN),
            up: true,
            running: true,
            mtu: 1500,
        }
    }

    fn entry(prefix: &str, metric: u32, target: RouteTarget) -> RouteEntry {
        RouteEntry {
            prefix: prefix.parse().unwrap(),
            metric,
            target,
        }
    }

    #[test]
    fn built_by_hand_it_answers_like_the_mirror() {
        let snapshot = FibSnapshot::from_parts(
            [wan(3)],
            [
                entry(
                    "fd00:99::1/64",
                    1024,
                    RouteTarget::Via {
                        ifindex: 3,
                        gateway: Some(v6("fd00:77::2")),
                    },
                ),
                entry("fd00:99::/64", 1, RouteTarget::Reject),
            ],
            [(3, v6("fd00:77::2"), PEER)],
        );
        assert_eq!(snapshot.lookup(v6("fd00:99::5")), NextHop::Unreachable);
        assert_eq!(snapshot.routes().count(), 2);
        assert_eq!(snapshot.routes().next().map(|r| r.metric), Some(1));
        let snapshot = FibSnapshot::from_parts(
            [wan(3)],
            [entry(
                "fd00:99::/64",
                1024,
                RouteTarget::Via {
                    ifindex: 3,
                    gateway: Some(v6("fd00:77::2")),
                },
            )],
            [(3, v6("fd00:77::2"), PEER)],
        );
        assert_eq!(
            snapshot.lookup(v6("fd00:99::5")),
            NextHop::Resolved {
                ifindex: 3,
                src_mac: OWN,
                dst_mac: PEER,
                mtu: 1500
            }
        );
        assert_eq!(snapshot.lookup(v4("10.0.0.1")), NextHop::Unreachable);
        assert_eq!(snapshot.link_by_name("wan").map(|l| l.ifindex), Some(3));
        assert_eq!(snapshot.neighbour(4, v6("fd00:77::2")), None);
        assert_eq!(snapshot.generation(), 0);
    }

    #[test]
    fn links_without_a_usable_mac_are_unreachable() {
        let route = entry(
            "0.0.0.0/0",
            0,
            RouteTarget::Via {
                ifindex: 3,
                gateway: None,
            },
        );
        let mut tun = wan(3);
        tun.mac = None;
        let snapshot = FibSnapshot::from_parts([tun], [route], [(3, v4("8.8.8.8"), PEER)]);
        assert_eq!(snapshot.lookup(v4("8.8.8.8")), NextHop::Unreachable);
        let mut no_carrier = wan(3);
        no_carrier.running = false;
        let snapshot = FibSnapshot::from_parts([no_carrier], [route], [(3, v4("8.8.8.8"), PEER)]);
        assert_eq!(snapshot.lookup(v4("8.8.8.8")), NextHop::Unreachable);
        let snapshot = FibSnapshot::from_parts([wan(3)], [route], [(3, v4("8.8.8.8"), PEER)]);
        assert!(matches!(
            snapshot.lookup(v4("8.8.8.8")),
            NextHop::Resolved { .. }
        ));
        // The answer carries the egress link's MTU, whatever it is.
        let mut jumbo = wan(3);
        jumbo.mtu = 9000;
        let snapshot = FibSnapshot::from_parts([jumbo], [route], [(3, v4("8.8.8.8"), PEER)]);
        assert!(matches!(
            snapshot.lookup(v4("8.8.8.8")),
            NextHop::Resolved { mtu: 9000, .. }
        ));
    }
}

//! The mirror's working copy of the kernel's tables, changed message by message, from which
//! immutable [`FibSnapshot`]s are built. Sans-IO: it never touches a socket; it tells its
//! caller which tables must be read again.

use std::collections::HashMap;
use std::net::IpAddr;

use super::netlink::Dump;
use super::parse::{RouteKey, Update};
use super::snapshot::FibSnapshot;
use super::types::{Link, RouteTarget};

/// Tables to read again, as a set of [`Dump`]s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Redump(u8);

impl Redump {
    pub const NONE: Redump = Redump(0);
    pub const ROUTES_AND_NEIGHBOURS: Redump = Redump(0b11110);
    pub const ALL: Redump = Redump(0b11111);

    fn bit(dump: Dump) -> u8 {
        match dump {
            Dump::Links => 1,
            Dump::Routes4 => 2,
            Dump::Routes6 => 4,
            Dump::Neighbours4 => 8,
            Dump::Neighbours6 => 16,
        }
    }

    pub fn contains(self, dump: Dump) -> bool {
        self.0 & Self::bit(dump) != 0
    }

    pub fn insert(&mut self, other: Redump) {
        self.0 |= other.0;
    }

    pub fn remove(&mut self, dump: Dump) {
        self.0 &= !Self::bit(dump);
    }

    pub fn only(dump: Dump) -> Redump {
        Redump(Self::bit(dump))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct StoredRoute {
    target: RouteTarget,
    multipath: bool,
}

/// Links, main-table routes and usable neighbours, as the kernel last told.
#[derive(Debug, Default)]
pub(crate) struct FibState {
    links: HashMap<u32, Link>,
    routes: HashMap<RouteKey, StoredRoute>,
    neighbours: HashMap<(u32, IpAddr), [u8; 6]>,
    /// Something a snapshot shows changed since the last [`FibState::take_dirty`].
    dirty: bool,
}

impl FibState {
    /// Applies one change; returns the tables that must be read again because the kernel
    /// changes them without telling (see the cases below).
    pub fn apply(&mut self, update: Update) -> Redump {
        match update {
            Update::Link(link) => {
                let ifindex = link.ifindex;
                let old = self.links.insert(ifindex, link);
                let new = &self.links[&ifindex];
                if old.as_ref() == Some(new) {
                    return Redump::NONE;
                }
                self.dirty = true;
                // Taking a link down deletes its IPv4 routes (and a later up does not bring
                // the static ones back) without a single RTM_DELROUTE; IPv6 marks and drops
                // routes its own way. Read them again, and the neighbours the kernel flushed.
                match old {
                    Some(old) if (old.up, old.running) != (new.up, new.running) => {
                        Redump::ROUTES_AND_NEIGHBOURS
                    }
                    _ => Redump::NONE,
                }
            }
            Update::LinkGone { ifindex } => {
                if self.links.remove(&ifindex).is_some() {
                    self.dirty = true;
                }
                // Its routes and neighbours went with it, silently for IPv4.
                self.forget_interface(ifindex);
                Redump::ROUTES_AND_NEIGHBOURS
            }
            Update::Route {
                key,
                target,
                multipath,
                append,
            } => {
                let new = StoredRoute { target, multipath };
                if append && self.routes.contains_key(&key) {
                    // Another next hop for a route we mirror by its first one.
                    if let Some(route) = self.routes.get_mut(&key) {
                        route.multipath = true;
                    }
                    return Redump::NONE;
                }
                if self.routes.insert(key, new) != Some(new) {
                    self.dirty = true;
                }
                Redump::NONE
            }
            Update::RouteGone { key } => match self.routes.remove(&key) {
                Some(old) => {
                    self.dirty = true;
                    // Deleting one next hop of an IPv6 multipath route says only that one
                    // went: the rest of the route may still be there.
                    if old.multipath {
                        Redump::only(if key.network.is_ipv4() {
                            Dump::Routes4
                        } else {
                            Dump::Routes6
                        })
                    } else {
                        Redump::NONE
                    }
                }
                None => Redump::NONE,
            },
            Update::Neighbour {
                ifindex,
                address,
                mac: Some(mac),
            } => {
                if self.neighbours.insert((ifindex, address), mac) != Some(mac) {
                    self.dirty = true;
                }
                Redump::NONE
            }
            Update::Neighbour {
                ifindex,
                address,
                mac: None,
            }
            | Update::NeighbourGone { ifindex, address } => {
                if self.neighbours.remove(&(ifindex, address)).is_some() {
                    self.dirty = true;
                }
                Redump::NONE
            }
            Update::Ignore => Redump::NONE,
        }
    }

    fn forget_interface(&mut self, ifindex: u32) {
        let before = (self.routes.len(), self.neighbours.len());
        self.routes.retain(|_, route| match route.target {
            RouteTarget::Via { ifindex: oif, .. } => oif != ifindex,
            RouteTarget::Reject => true,
        });
        self.neighbours.retain(|&(oif, _), _| oif != ifindex);
        if before != (self.routes.len(), self.neighbours.len()) {
            self.dirty = true;
        }
    }

    /// Forgets what a dump of `dump` is about to tell again.
    pub fn clear(&mut self, dump: Dump) {
        let before = (self.links.len(), self.routes.len(), self.neighbours.len());
        match dump {
            Dump::Links => self.links.clear(),
            Dump::Routes4 => self.routes.retain(|key, _| !key.network.is_ipv4()),
            Dump::Routes6 => self.routes.retain(|key, _| key.network.is_ipv4()),
            Dump::Neighbours4 => self.neighbours.retain(|(_, a), _| !a.is_ipv4()),
            Dump::Neighbours6 => self.neighbours.retain(|(_, a), _| a.is_ipv4()),
        }
        if before != (self.links.len(), self.routes.len(), self.neighbours.len()) {
            self.dirty = true;
        }
    }

    /// Whether anything changed since the last call, and resets it.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// Whether `address` on `ifindex` has a usable link-layer address.
    pub fn has_neighbour(&self, ifindex: u32, address: IpAddr) -> bool {
        self.neighbours.contains_key(&(ifindex, address))
    }

    /// An immutable copy for the workers.
    pub fn snapshot(&self, generation: u64) -> FibSnapshot {
        FibSnapshot::build(
            generation,
            self.links.values().cloned(),
            self.routes.iter().map(|(key, route)| (*key, route.target)),
            self.neighbours
                .iter()
                .map(|(&(ifindex, address), &mac)| (ifindex, address, mac)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fib::parse::tests::{v4, v6};
    use crate::fib::NextHop;

    const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
    const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

    fn link(ifindex: u32, up: bool) -> Update {
        Update::Link(Link {
            ifindex,
            name: format!("eth{ifindex}"),
            mac: Some(MAC_A),
            up,
            running: up,
            mtu: 1500,
        })
    }

    fn route(network: IpAddr, prefix_len: u8, metric: u32, target: RouteTarget) -> Update {
        Update::Route {
            key: RouteKey {
                network,
                prefix_len,
                metric,
            },
            target,
            multipath: false,
            append: false,
        }
    }

    fn via(ifindex: u32, gateway: &str) -> RouteTarget {
        RouteTarget::Via {
            ifindex,
            gateway: Some(v4(gateway)),
        }
    }

    #[test]
    fn lookups_follow_route_then_neighbour_then_link() {
        let mut state = FibState::default();
        state.apply(link(3, true));
        state.apply(route(v4("10.99.0.0"), 24, 0, via(3, "10.77.0.2")));
        state.apply(route(
            v4("10.77.0.0"),
            24,
            0,
            RouteTarget::Via {
                ifindex: 3,
                gateway: None,
            },
        ));
        assert!(state.take_dirty());
        let snapshot = state.snapshot(1);
        assert_eq!(
            snapshot.lookup(v4("10.99.0.5")),
            NextHop::Unresolved {
                ifindex: 3,
                address: v4("10.77.0.2")
            }
        );
        assert_eq!(
            snapshot.lookup(v4("10.77.0.9")),
            NextHop::Unresolved {
                ifindex: 3,
                address: v4("10.77.0.9")
            }
        );
        assert_eq!(snapshot.lookup(v4("192.0.2.1")), NextHop::Unreachable);
        state.apply(Update::Neighbour {
            ifindex: 3,
            address: v4("10.77.0.2"),
            mac: Some(MAC_B),
        });
        let resolved = NextHop::Resolved {
            ifindex: 3,
            src_mac: MAC_A,
            dst_mac: MAC_B,
            mtu: 1500,
        };
        let snapshot = state.snapshot(2);
        assert_eq!(snapshot.lookup(v4("10.99.0.5")), resolved);
        assert_eq!(snapshot.lookup(v4("10.77.0.2")), resolved);
        // The same address on another interface is another neighbour.
        state.apply(route(v4("10.98.0.0"), 16, 0, via(4, "10.77.0.2")));
        state.apply(link(4, true));
        assert_eq!(
            state.snapshot(3).lookup(v4("10.98.0.1")),
            NextHop::Unresolved {
                ifindex: 4,
                address: v4("10.77.0.2")
            }
        );
    }

    #[test]
    fn a_down_or_unknown_link_is_unreachable() {
        let mut state = FibState::default();
        state.apply(route(v4("0.0.0.0"), 0, 0, via(3, "10.77.0.1")));
        assert_eq!(
            state.snapshot(1).lookup(v4("8.8.8.8")),
            NextHop::Unreachable
        );
        state.apply(link(3, false));
        assert_eq!(
            state.snapshot(2).lookup(v4("8.8.8.8")),
            NextHop::Unreachable
        );
        assert_eq!(state.apply(link(3, true)), Redump::ROUTES_AND_NEIGHBOURS);
        assert!(matches!(
            state.snapshot(3).lookup(v4("8.8.8.8")),
            NextHop::Unresolved { .. }
        ));
        // The same link again changes nothing and needs nothing read.
        state.take_dirty();
        assert_eq!(state.apply(link(3, true)), Redump::NONE);
        assert!(!state.take_dirty());
    }

    #[test]
    fn the_lowest_metric_wins_and_reject_routes_are_unreachable() {
        let mut state = FibState::default();
        state.apply(link(3, true));
        state.apply(link(4, true));
        state.apply(route(v4("10.0.0.0"), 8, 200, via(4, "10.4.0.1")));
        state.apply(route(v4("10.0.0.0"), 8, 100, via(3, "10.3.0.1")));
        state.apply(route(v4("10.66.0.0"), 16, 0, RouteTarget::Reject));
        let snapshot = state.snapshot(1);
        assert_eq!(
            snapshot.lookup(v4("10.1.1.1")),
            NextHop::Unresolved {
                ifindex: 3,
                address: v4("10.3.0.1")
            }
        );
        assert_eq!(snapshot.lookup(v4("10.66.1.1")), NextHop::Unreachable);
        state.apply(Update::RouteGone {
            key: RouteKey {
                network: v4("10.0.0.0"),
                prefix_len: 8,
                metric: 100,
            },
        });
        assert_eq!(
            state.snapshot(2).lookup(v4("10.1.1.1")),
            NextHop::Unresolved {
                ifindex: 4,
                address: v4("10.4.0.1")
            }
        );
    }

    #[test]
    fn unusable_or_deleted_neighbours_are_forgotten() {
        let mut state = FibState::default();
        state.apply(link(3, true));
        state.apply(route(
            v6("fd00:77::"),
            64,
            256,
            RouteTarget::Via {
                ifindex: 3,
                gateway: None,
            },
        ));
        let neighbour = |mac| Update::Neighbour {
            ifindex: 3,
            address: v6("fd00:77::2"),
            mac,
        };
        state.apply(neighbour(Some(MAC_B)));
        assert!(matches!(
            state.snapshot(1).lookup(v6("fd00:77::2")),
            NextHop::Resolved { .. }
        ));
        state.take_dirty();
        // REACHABLE -> STALE with the same MAC: nothing a worker sees.
        state.apply(neighbour(Some(MAC_B)));
        assert!(!state.take_dirty());
        state.apply(neighbour(None));
        assert!(state.take_dirty());
        assert!(matches!(
            state.snapshot(2).lookup(v6("fd00:77::2")),
            NextHop::Unresolved { .. }
        ));
        state.apply(neighbour(Some(MAC_B)));
        state.apply(Update::NeighbourGone {
            ifindex: 3,
            address: v6("fd00:77::2"),
        });
        assert!(!state.has_neighbour(3, v6("fd00:77::2")));
    }

    #[test]
    fn a_deleted_link_takes_its_routes_and_neighbours_along() {
        let mut state = FibState::default();
        state.apply(link(3, true));
        state.apply(route(v4("10.99.0.0"), 24, 0, via(3, "10.77.0.2")));
        state.apply(route(v4("10.66.0.0"), 16, 0, RouteTarget::Reject));
        state.apply(Update::Neighbour {
            ifindex: 3,
            address: v4("10.77.0.2"),
            mac: Some(MAC_B),
        });
        assert_eq!(
            state.apply(Update::LinkGone { ifindex: 3 }),
            Redump::ROUTES_AND_NEIGHBOURS
        );
        let snapshot = state.snapshot(1);
        assert_eq!(snapshot.routes().count(), 1);
        assert!(!state.has_neighbour(3, v4("10.77.0.2")));
    }

    #[test]
    fn appended_next_hops_keep_the_first_and_multipath_deletes_ask_for_a_redump() {
        let mut state = FibState::default();
        let key = RouteKey {
            network: v6("fd00:99::"),
            prefix_len: 64,
            metric: 1024,
        };
        let target = |i| RouteTarget::Via {
            ifindex: i,
            gateway: None,
        };
        state.apply(Update::Route {
            key,
            target: target(3),
            multipath: false,
            append: false,
        });
        state.apply(Update::Route {
            key,
            target: target(4),
            multipath: false,
            append: true,
        });
        assert_eq!(
            state.snapshot(1).routes().next().map(|r| r.target),
            Some(target(3))
        );
        assert_eq!(
            state.apply(Update::RouteGone { key }),
            Redump::only(Dump::Routes6)
        );
    }

    #[test]
    fn clearing_before_a_dump_forgets_one_table() {
        let mut state = FibState::default();
        state.apply(route(v4("10.0.0.0"), 8, 0, RouteTarget::Reject));
        state.apply(route(v6("fd00::"), 8, 0, RouteTarget::Reject));
        state.apply(Update::Neighbour {
            ifindex: 3,
            address: v4("10.0.0.1"),
            mac: Some(MAC_B),
        });
        state.clear(Dump::Routes4);
        assert_eq!(state.snapshot(1).routes().count(), 1);
        state.clear(Dump::Neighbours6);
        assert!(state.has_neighbour(3, v4("10.0.0.1")));
        state.clear(Dump::Neighbours4);
        assert!(!state.has_neighbour(3, v4("10.0.0.1")));
    }

    #[test]
    fn redump_sets() {
        let mut set = Redump::NONE;
        assert!(set.is_empty());
        set.insert(Redump::only(Dump::Routes6));
        assert!(set.contains(Dump::Routes6) && !set.contains(Dump::Routes4));
        set.insert(Redump::ALL);
        for dump in Dump::ALL {
            assert!(set.contains(dump));
            set.remove(dump);
        }
        assert!(set.is_empty());
        assert!(!Redump::ROUTES_AND_NEIGHBOURS.contains(Dump::Links));
    }
}

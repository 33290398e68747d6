//! What the mirror keeps of the kernel's links and routes.

use std::net::IpAddr;

/// A network interface as the kernel describes it (`RTM_NEWLINK`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// The interface index, the key everything else refers to.
    pub ifindex: u32,
    /// Its name (`IFLA_IFNAME`), for people: indexes are what the kernel matches on.
    pub name: String,
    /// Its own link-layer address, when it is an Ethernet device (`ARPHRD_ETHER`, which
    /// includes veth, VLAN, bridge and bond devices) with a six-byte `IFLA_ADDRESS`.
    pub mac: Option<[u8; 6]>,
    /// `IFF_UP`: administratively up.
    pub up: bool,
    /// `IFF_RUNNING`: operationally up (carrier, the peer of a veth up).
    pub running: bool,
    /// `IFLA_MTU`.
    pub mtu: u32,
}

impl Link {
    /// The MAC to send from, when frames can leave through this link at all: an Ethernet
    /// device, up and running. Anything else (loopback, TUN, a down link) cannot carry the
    /// frames an AF_XDP worker builds.
    pub fn usable_mac(&self) -> Option<[u8; 6]> {
        if self.up && self.running {
            self.mac
        } else {
            None
        }
    }
}

/// Where a route of the main table sends packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteTarget {
    /// Out of `ifindex`, to `gateway`, or, without one, to the destination itself (on-link).
    /// For a multipath route, the first next hop (the first that the kernel has not marked
    /// dead or link-down, if any).
    Via {
        ifindex: u32,
        gateway: Option<IpAddr>,
    },
    /// Nowhere the data plane can send: blackhole, unreachable, prohibit and throw routes,
    /// routes of other types (local, broadcast, multicast) and unicast routes with no
    /// interface the kernel tells about.
    Reject,
}

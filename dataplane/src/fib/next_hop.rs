//! Where a packet leaves: the question every AF_XDP worker asks once per packet, after
//! encapsulation (the outer destination) or decapsulation (the inner one).
//!
//! The answer comes from the kernel's routing and neighbour tables, mirrored over netlink
//! ([`super`]); tests and benchmarks answer it from a fixed list instead.

use std::net::IpAddr;

/// The link-layer answer for one destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextHop {
    /// Send on `ifindex`, from `src_mac` to `dst_mac`. `mtu` is the interface's MTU: the
    /// largest IP packet (the Ethernet payload) it carries; 0 when the kernel did not say, and
    /// then no packet is refused for its size.
    Resolved {
        ifindex: u32,
        src_mac: [u8; 6],
        dst_mac: [u8; 6],
        mtu: u32,
    },
    /// The route goes out of `ifindex` through `address`, whose MAC the kernel does not know
    /// yet. The answerer has asked the kernel to resolve it; the packet is dropped and counted,
    /// later ones find the neighbour.
    Unresolved { ifindex: u32, address: IpAddr },
    /// No route, or a route the data plane cannot use (blackhole, unreachable, a device with
    /// no link layer).
    Unreachable,
}

/// Answers [`NextHop`] questions for one worker. Implementations are per worker (`&mut self`),
/// so that a cache needs no lock.
pub trait NextHops {
    /// Called before each batch: pick up a changed routing or neighbour table. Cheap when
    /// nothing changed.
    fn begin_batch(&mut self) {}

    /// Where a packet to `destination` leaves.
    fn lookup(&mut self, destination: IpAddr) -> NextHop;
}

//! From one rtnetlink message to the change it makes to the mirror: links, routes of the main
//! table, usable neighbours. Everything else the groups carry (bridge port events, other
//! routing tables, cached IPv6 routes, proxy entries, incomplete neighbours) is recognised and
//! ignored. Bounds-checked throughout: a malformed message is an error, never a panic.

use std::net::IpAddr;

use super::netlink::*;
use super::types::{Link, RouteTarget};

/// What identifies a route in the main table: the kernel keeps one route per prefix and
/// metric (TOS-specific IPv4 routes are ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct RouteKey {
    /// The network address: host bits clear.
    pub network: IpAddr,
    pub prefix_len: u8,
    /// `RTA_PRIORITY`; the lowest wins among routes to the same prefix.
    pub metric: u32,
}

/// One change a message makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Update {
    Link(Link),
    LinkGone {
        ifindex: u32,
    },
    Route {
        key: RouteKey,
        target: RouteTarget,
        /// It has more than one next hop.
        multipath: bool,
        /// `NLM_F_APPEND`: a next hop added to an existing route, not a new route.
        append: bool,
    },
    RouteGone {
        key: RouteKey,
    },
    /// A neighbour entry changed; `mac` is `None` when it is no longer usable (incomplete,
    /// failed, no link-layer address).
    Neighbour {
        ifindex: u32,
        address: IpAddr,
        mac: Option<[u8; 6]>,
    },
    NeighbourGone {
        ifindex: u32,
        address: IpAddr,
    },
    /// Nothing the mirror keeps.
    Ignore,
}

/// The change `message` makes.
pub(crate) fn parse(message: &Message<'_>) -> Result<Update, Malformed> {
    match message.kind {
        RTM_NEWLINK | RTM_DELLINK => link(message),
        RTM_NEWROUTE | RTM_DELROUTE => route(message),
        RTM_NEWNEIGH | RTM_DELNEIGH => neighbour(message),
        _ => Ok(Update::Ignore),
    }
}

fn link(message: &Message<'_>) -> Result<Update, Malformed> {
    let bytes = message.payload;
    if bytes.len() < IFINFOMSG_LEN {
        return Err(Malformed("link message shorter than ifinfomsg"));
    }
    // Bridges send their port events to the link group too, with family AF_BRIDGE; they
    // describe the port's bridging, not the device.
    if bytes[0] != AF_UNSPEC {
        return Ok(Update::Ignore);
    }
    let kind = u16_at(bytes, 2).ok_or(Malformed("ifinfomsg"))?;
    let ifindex = u32_at(bytes, 4).ok_or(Malformed("ifinfomsg"))?;
    let flags = u32_at(bytes, 8).ok_or(Malformed("ifinfomsg"))?;
    if ifindex == 0 {
        return Err(Malformed("link with interface index 0"));
    }
    if message.kind == RTM_DELLINK {
        return Ok(Update::LinkGone { ifindex });
    }
    let mut link = Link {
        ifindex,
        name: String::new(),
        mac: None,
        up: flags & IFF_UP != 0,
        running: flags & IFF_RUNNING != 0,
        mtu: 0,
    };
    for attribute in attributes(&bytes[IFINFOMSG_LEN..]) {
        let (kind_attr, value) = attribute?;
        match kind_attr {
            IFLA_ADDRESS if kind == ARPHRD_ETHER => link.mac = <[u8; 6]>::try_from(value).ok(),
            IFLA_IFNAME => {
                let name = value.split(|&b| b == 0).next().unwrap_or_default();
                link.name = String::from_utf8_lossy(name).into_owned();
            }
            IFLA_MTU => link.mtu = u32_value(value)?,
            _ => {}
        }
    }
    Ok(Update::Link(link))
}

fn route(message: &Message<'_>) -> Result<Update, Malformed> {
    let bytes = message.payload;
    if bytes.len() < RTMSG_LEN {
        return Err(Malformed("route message shorter than rtmsg"));
    }
    let family = bytes[0];
    let (prefix_len, source_len, tos, route_type) = (bytes[1], bytes[2], bytes[3], bytes[7]);
    let flags = u32_at(bytes, 8).ok_or(Malformed("rtmsg"))?;
    if family != AF_INET && family != AF_INET6 {
        // IPv4/IPv6 multicast routing (RTNL_FAMILY_IPMR, ...), MPLS: not ours.
        return Ok(Update::Ignore);
    }
    let bits = if family == AF_INET { 32 } else { 128 };
    if prefix_len > bits {
        return Err(Malformed("route prefix longer than its address"));
    }
    let mut table = u32::from(bytes[4]);
    let mut destination = None;
    let mut oif = None;
    let mut gateway = None;
    let mut metric = 0;
    let mut multipath = None;
    for attribute in attributes(&bytes[RTMSG_LEN..]) {
        let (kind, value) = attribute?;
        match kind {
            RTA_DST => destination = Some(address(family, value)?),
            RTA_OIF => oif = Some(u32_value(value)?),
            RTA_GATEWAY => gateway = Some(address(family, value)?),
            RTA_VIA => gateway = Some(via(value)?),
            RTA_PRIORITY => metric = u32_value(value)?,
            RTA_TABLE => table = u32_value(value)?,
            RTA_MULTIPATH => multipath = Some(first_next_hop(family, value)?),
            _ => {}
        }
    }
    // Source-specific (IPv6 "from") and TOS-specific routes select on more than the
    // destination; cached clones (PMTU exceptions) are not routes of the table.
    if table != RT_TABLE_MAIN || source_len != 0 || tos != 0 || flags & RTM_F_CLONED != 0 {
        return Ok(Update::Ignore);
    }
    let unspecified = if family == AF_INET {
        IpAddr::from([0u8; 4])
    } else {
        IpAddr::from([0u8; 16])
    };
    let key = RouteKey {
        network: network(destination.unwrap_or(unspecified), prefix_len),
        prefix_len,
        metric,
    };
    if message.kind == RTM_DELROUTE {
        return Ok(Update::RouteGone { key });
    }
    let (target, is_multipath) = match (route_type, multipath) {
        (RTN_UNICAST, Some(Some((ifindex, hop_gateway, count)))) => (
            RouteTarget::Via {
                ifindex,
                gateway: hop_gateway,
            },
            count > 1,
        ),
        (RTN_UNICAST, _) => match oif {
            Some(ifindex) if ifindex != 0 => (RouteTarget::Via { ifindex, gateway }, false),
            _ => (RouteTarget::Reject, false),
        },
        // Blackhole, unreachable, prohibit, throw, and the types a data plane cannot send
        // to (local, broadcast, anycast, multicast, NAT).
        _ => (RouteTarget::Reject, false),
    };
    Ok(Update::Route {
        key,
        target,
        multipath: is_multipath,
        append: message.flags & NLM_F_APPEND != 0,
    })
}

/// `RTA_VIA`: a gateway of either family (`struct rtvia`: a 16-bit family, the address).
fn via(value: &[u8]) -> Result<IpAddr, Malformed> {
    let family = u16_at(value, 0).ok_or(Malformed("RTA_VIA shorter than its family"))?;
    let family = u8::try_from(family).map_err(|_| Malformed("RTA_VIA of an unknown family"))?;
    address(family, &value[2..])
}

const RTNH_LEN: usize = 8;
const RTNH_F_DEAD: u8 = 1;
const RTNH_F_LINKDOWN: u8 = 16;

/// The next hop a multipath route is mirrored with: the first one the kernel has not marked
/// dead or link-down, or else the first. Returns (interface, gateway, how many there are);
/// `None` for an empty list.
fn first_next_hop(
    family: u8,
    mut bytes: &[u8],
) -> Result<Option<(u32, Option<IpAddr>, usize)>, Malformed> {
    let mut first = None;
    let mut first_alive = None;
    let mut count = 0;
    while !bytes.is_empty() {
        let len = u16_at(bytes, 0).map(usize::from);
        let len = match len {
            Some(len) if len >= RTNH_LEN && len <= bytes.len() => len,
            _ => return Err(Malformed("rtnexthop length out of bounds")),
        };
        let flags = bytes[2];
        let ifindex = u32_at(bytes, 4).ok_or(Malformed("rtnexthop"))?;
        let mut gateway = None;
        for attribute in attributes(&bytes[RTNH_LEN..len]) {
            let (kind, value) = attribute?;
            match kind {
                RTA_GATEWAY => gateway = Some(address(family, value)?),
                RTA_VIA => gateway = Some(via(value)?),
                _ => {}
            }
        }
        count += 1;
        if ifindex != 0 {
            first.get_or_insert((ifindex, gateway));
            if flags & (RTNH_F_DEAD | RTNH_F_LINKDOWN) == 0 {
                first_alive.get_or_insert((ifindex, gateway));
            }
        }
        bytes = bytes.get(align(len)..).unwrap_or(&[]);
    }
    Ok(first_alive
        .or(first)
        .map(|(ifindex, gateway)| (ifindex, gateway, count)))
}

/// `address` with the bits beyond `prefix_len` cleared.
pub(crate) fn network(address: IpAddr, prefix_len: u8) -> IpAddr {
    match address {
        IpAddr::V4(a) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix_len.min(32)))
                .unwrap_or(0);
            IpAddr::from((u32::from(a) & mask).to_be_bytes())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix_len.min(128)))
                .unwrap_or(0);
            IpAddr::from((u128::from(a) & mask).to_be_bytes())
        }
    }
}

fn neighbour(message: &Message<'_>) -> Result<Update, Malformed> {
    let bytes = message.payload;
    if bytes.len() < NDMSG_LEN {
        return Err(Malformed("neighbour message shorter than ndmsg"));
    }
    let family = bytes[0];
    let ifindex = u32_at(bytes, 4).ok_or(Malformed("ndmsg"))?;
    let state = u16_at(bytes, 8).ok_or(Malformed("ndmsg"))?;
    let flags = bytes[10];
    // Bridge forwarding entries (AF_BRIDGE) share the group; proxy entries answer for others.
    if (family != AF_INET && family != AF_INET6) || flags & NTF_PROXY != 0 {
        return Ok(Update::Ignore);
    }
    let mut destination = None;
    let mut mac = None;
    for attribute in attributes(&bytes[NDMSG_LEN..]) {
        let (kind, value) = attribute?;
        match kind {
            NDA_DST => destination = Some(address(family, value)?),
            NDA_LLADDR => mac = <[u8; 6]>::try_from(value).ok(),
            _ => {}
        }
    }
    let address = destination.ok_or(Malformed("neighbour without NDA_DST"))?;
    if message.kind == RTM_DELNEIGH {
        return Ok(Update::NeighbourGone { ifindex, address });
    }
    Ok(Update::Neighbour {
        ifindex,
        address,
        mac: mac.filter(|_| state & NUD_USABLE != 0),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// Builds netlink messages the way the kernel lays them out, for the parser tests and
    /// the state tests.
    #[derive(Debug)]
    pub(crate) struct Builder {
        bytes: Vec<u8>,
    }

    impl Builder {
        pub fn new(fixed: &[u8]) -> Self {
            let mut bytes = fixed.to_vec();
            bytes.resize(align(bytes.len()), 0);
            Self { bytes }
        }

        pub fn attr(mut self, kind: u16, value: &[u8]) -> Self {
            let len = 4 + value.len();
            self.bytes.extend((len as u16).to_ne_bytes());
            self.bytes.extend(kind.to_ne_bytes());
            self.bytes.extend(value);
            self.bytes.resize(align(self.bytes.len()), 0);
            self
        }

        pub fn bytes(&self) -> &[u8] {
            &self.bytes
        }

        pub fn message(&self, kind: u16, flags: u16) -> Message<'_> {
            Message {
                kind,
                flags,
                seq: 0,
                port: 0,
                payload: &self.bytes,
            }
        }
    }

    pub(crate) fn ifinfomsg(ifindex: u32, kind: u16, flags: u32) -> Vec<u8> {
        let mut m = vec![0u8; IFINFOMSG_LEN];
        m[2..4].copy_from_slice(&kind.to_ne_bytes());
        m[4..8].copy_from_slice(&ifindex.to_ne_bytes());
        m[8..12].copy_from_slice(&flags.to_ne_bytes());
        m
    }

    pub(crate) fn rtmsg(family: u8, prefix_len: u8, table: u8, route_type: u8) -> Vec<u8> {
        vec![
            family, prefix_len, 0, 0, table, 4, 0, route_type, 0, 0, 0, 0,
        ]
    }

    pub(crate) fn ndmsg(family: u8, ifindex: u32, state: u16, flags: u8) -> Vec<u8> {
        let mut m = vec![0u8; NDMSG_LEN];
        m[0] = family;
        m[4..8].copy_from_slice(&ifindex.to_ne_bytes());
        m[8..10].copy_from_slice(&state.to_ne_bytes());
        m[10] = flags;
        m
    }

    pub(crate) fn v4(a: &str) -> IpAddr {
        IpAddr::V4(a.parse::<Ipv4Addr>().unwrap())
    }

    pub(crate) fn v6(a: &str) -> IpAddr {
        IpAddr::V6(a.parse::<Ipv6Addr>().unwrap())
    }

    fn octets(a: IpAddr) -> Vec<u8> {
        match a {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        }
    }

    const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x2a];

    #[test]
    fn a_link_message_gives_index_name_mac_flags_and_mtu() {
        let m = Builder::new(&ifinfomsg(3, ARPHRD_ETHER, IFF_UP | IFF_RUNNING | 0x1000))
            .attr(IFLA_IFNAME, b"wan\0")
            .attr(IFLA_ADDRESS, &MAC)
            .attr(IFLA_MTU, &1500u32.to_ne_bytes())
            .attr(99, &[1, 2, 3]);
        let link = Link {
            ifindex: 3,
            name: "wan".into(),
            mac: Some(MAC),
            up: true,
            running: true,
            mtu: 1500,
        };
        assert_eq!(parse(&m.message(RTM_NEWLINK, 0)), Ok(Update::Link(link)));
        assert_eq!(
            parse(&m.message(RTM_DELLINK, 0)),
            Ok(Update::LinkGone { ifindex: 3 })
        );
    }

    #[test]
    fn only_ethernet_links_have_a_mac() {
        // Loopback (772) carries a six-byte address of zeros; a TUN device (0xfffe) none.
        let lo = Builder::new(&ifinfomsg(1, 772, IFF_UP | IFF_RUNNING)).attr(IFLA_ADDRESS, &[0; 6]);
        match parse(&lo.message(RTM_NEWLINK, 0)) {
            Ok(Update::Link(link)) => assert_eq!(link.mac, None),
            other => panic!("{other:?}"),
        }
        let down = Builder::new(&ifinfomsg(2, ARPHRD_ETHER, 0)).attr(IFLA_ADDRESS, &MAC);
        match parse(&down.message(RTM_NEWLINK, 0)) {
            Ok(Update::Link(link)) => {
                assert_eq!(link.mac, Some(MAC));
                assert_eq!(link.usable_mac(), None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bridge_port_events_are_not_link_events() {
        let mut fixed = ifinfomsg(3, ARPHRD_ETHER, IFF_UP);
        fixed[0] = 7; // AF_BRIDGE
        let m = Builder::new(&fixed);
        assert_eq!(parse(&m.message(RTM_DELLINK, 0)), Ok(Update::Ignore));
    }

    #[test]
    fn a_unicast_route_via_a_gateway() {
        let m = Builder::new(&rtmsg(AF_INET, 24, 254, RTN_UNICAST))
            .attr(RTA_TABLE, &254u32.to_ne_bytes())
            .attr(RTA_DST, &[10, 99, 0, 0])
            .attr(RTA_GATEWAY, &[10, 77, 0, 2])
            .attr(RTA_OIF, &3u32.to_ne_bytes())
            .attr(RTA_PRIORITY, &100u32.to_ne_bytes());
        let key = RouteKey {
            network: v4("10.99.0.0"),
            prefix_len: 24,
            metric: 100,
        };
        assert_eq!(
            parse(&m.message(RTM_NEWROUTE, 0)),
            Ok(Update::Route {
                key,
                target: RouteTarget::Via {
                    ifindex: 3,
                    gateway: Some(v4("10.77.0.2"))
                },
                multipath: false,
                append: false,
            })
        );
        assert_eq!(
            parse(&m.message(RTM_DELROUTE, 0)),
            Ok(Update::RouteGone { key })
        );
    }

    #[test]
    fn a_default_route_has_no_destination_attribute() {
        let m = Builder::new(&rtmsg(AF_INET6, 0, 254, RTN_UNICAST))
            .attr(RTA_GATEWAY, &octets(v6("fe80::1")))
            .attr(RTA_OIF, &2u32.to_ne_bytes());
        match parse(&m.message(RTM_NEWROUTE, 0)) {
            Ok(Update::Route { key, target, .. }) => {
                assert_eq!(key.network, v6("::"));
                assert_eq!(key.prefix_len, 0);
                assert_eq!(
                    target,
                    RouteTarget::Via {
                        ifindex: 2,
                        gateway: Some(v6("fe80::1"))
                    }
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reject_types_other_tables_clones_and_source_routes() {
        for route_type in [
            RTN_BLACKHOLE,
            RTN_UNREACHABLE,
            RTN_PROHIBIT,
            RTN_THROW,
            2, /* local */
        ] {
            let m =
                Builder::new(&rtmsg(AF_INET, 16, 254, route_type)).attr(RTA_DST, &[10, 66, 0, 0]);
            match parse(&m.message(RTM_NEWROUTE, 0)) {
                Ok(Update::Route { target, .. }) => assert_eq!(target, RouteTarget::Reject),
                other => panic!("type {route_type}: {other:?}"),
            }
        }
        // A unicast route with no interface (a nexthop object, compat mode off).
        let m = Builder::new(&rtmsg(AF_INET, 16, 254, RTN_UNICAST)).attr(RTA_DST, &[10, 66, 0, 0]);
        match parse(&m.message(RTM_NEWROUTE, 0)) {
            Ok(Update::Route { target, .. }) => assert_eq!(target, RouteTarget::Reject),
            other => panic!("{other:?}"),
        }
        let local_table = Builder::new(&rtmsg(AF_INET, 32, 255, 2)).attr(RTA_DST, &[10, 0, 0, 1]);
        assert_eq!(
            parse(&local_table.message(RTM_NEWROUTE, 0)),
            Ok(Update::Ignore)
        );
        // RTA_TABLE overrides the 8-bit field.
        let big_table = Builder::new(&rtmsg(AF_INET, 0, 252, RTN_UNICAST))
            .attr(RTA_TABLE, &1000u32.to_ne_bytes());
        assert_eq!(
            parse(&big_table.message(RTM_NEWROUTE, 0)),
            Ok(Update::Ignore)
        );
        let mut clone = rtmsg(AF_INET6, 128, 254, RTN_UNICAST);
        clone[8..12].copy_from_slice(&RTM_F_CLONED.to_ne_bytes());
        assert_eq!(
            parse(&Builder::new(&clone).message(RTM_NEWROUTE, 0)),
            Ok(Update::Ignore)
        );
        let mut from = rtmsg(AF_INET6, 0, 254, RTN_UNICAST);
        from[2] = 64;
        assert_eq!(
            parse(&Builder::new(&from).message(RTM_NEWROUTE, 0)),
            Ok(Update::Ignore)
        );
        let ipmr = rtmsg(128, 0, 254, RTN_UNICAST);
        assert_eq!(
            parse(&Builder::new(&ipmr).message(RTM_NEWROUTE, 0)),
            Ok(Update::Ignore)
        );
    }

    fn rtnexthop(flags: u8, ifindex: u32, attrs: &[u8]) -> Vec<u8> {
        let mut hop = vec![0u8; 8];
        hop[0..2].copy_from_slice(&((8 + attrs.len()) as u16).to_ne_bytes());
        hop[2] = flags;
        hop[4..8].copy_from_slice(&ifindex.to_ne_bytes());
        hop.extend(attrs);
        hop
    }

    #[test]
    fn multipath_takes_the_first_live_next_hop() {
        let gw = |a: [u8; 4]| Builder::new(&[]).attr(RTA_GATEWAY, &a).bytes().to_vec();
        let mut hops = rtnexthop(RTNH_F_DEAD, 5, &gw([10, 0, 5, 1]));
        hops.extend(rtnexthop(0, 6, &gw([10, 0, 6, 1])));
        hops.extend(rtnexthop(0, 7, &gw([10, 0, 7, 1])));
        let m = Builder::new(&rtmsg(AF_INET, 0, 254, RTN_UNICAST)).attr(RTA_MULTIPATH, &hops);
        match parse(&m.message(RTM_NEWROUTE, 0)) {
            Ok(Update::Route {
                target, multipath, ..
            }) => {
                assert!(multipath);
                assert_eq!(
                    target,
                    RouteTarget::Via {
                        ifindex: 6,
                        gateway: Some(v4("10.0.6.1"))
                    }
                );
            }
            other => panic!("{other:?}"),
        }
        // All dead: the first.
        let dead = rtnexthop(RTNH_F_LINKDOWN, 5, &gw([10, 0, 5, 1]));
        let m = Builder::new(&rtmsg(AF_INET, 0, 254, RTN_UNICAST)).attr(RTA_MULTIPATH, &dead);
        match parse(&m.message(RTM_NEWROUTE, 0)) {
            Ok(Update::Route { target, .. }) => assert_eq!(
                target,
                RouteTarget::Via {
                    ifindex: 5,
                    gateway: Some(v4("10.0.5.1"))
                }
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_ipv4_route_via_an_ipv6_gateway() {
        let mut via = 10u16.to_ne_bytes().to_vec();
        via.extend(octets(v6("fe80::2")));
        let m = Builder::new(&rtmsg(AF_INET, 8, 254, RTN_UNICAST))
            .attr(RTA_DST, &[10, 0, 0, 0])
            .attr(RTA_VIA, &via)
            .attr(RTA_OIF, &4u32.to_ne_bytes());
        match parse(&m.message(RTM_NEWROUTE, 0)) {
            Ok(Update::Route { target, .. }) => assert_eq!(
                target,
                RouteTarget::Via {
                    ifindex: 4,
                    gateway: Some(v6("fe80::2"))
                }
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn neighbours_are_usable_only_in_usable_states() {
        let entry = |state| {
            Builder::new(&ndmsg(AF_INET, 3, state, 0))
                .attr(NDA_DST, &[10, 77, 0, 2])
                .attr(NDA_LLADDR, &MAC)
        };
        for state in [
            NUD_REACHABLE,
            NUD_STALE,
            NUD_DELAY,
            NUD_PROBE,
            NUD_PERMANENT,
            NUD_NOARP,
        ] {
            assert_eq!(
                parse(&entry(state).message(RTM_NEWNEIGH, 0)),
                Ok(Update::Neighbour {
                    ifindex: 3,
                    address: v4("10.77.0.2"),
                    mac: Some(MAC)
                }),
                "state {state:#x}"
            );
        }
        for state in [NUD_INCOMPLETE, NUD_FAILED, 0] {
            assert_eq!(
                parse(&entry(state).message(RTM_NEWNEIGH, 0)),
                Ok(Update::Neighbour {
                    ifindex: 3,
                    address: v4("10.77.0.2"),
                    mac: None
                }),
                "state {state:#x}"
            );
        }
        assert_eq!(
            parse(&entry(NUD_REACHABLE).message(RTM_DELNEIGH, 0)),
            Ok(Update::NeighbourGone {
                ifindex: 3,
                address: v4("10.77.0.2")
            })
        );
        let proxy = Builder::new(&ndmsg(AF_INET6, 3, NUD_NOARP, NTF_PROXY))
            .attr(NDA_DST, &octets(v6("fd00::1")));
        assert_eq!(parse(&proxy.message(RTM_NEWNEIGH, 0)), Ok(Update::Ignore));
        let fdb = Builder::new(&ndmsg(7, 3, NUD_PERMANENT, 0)).attr(NDA_LLADDR, &MAC);
        assert_eq!(parse(&fdb.message(RTM_NEWNEIGH, 0)), Ok(Update::Ignore));
        let no_dst = Builder::new(&ndmsg(AF_INET, 3, NUD_REACHABLE, 0)).attr(NDA_LLADDR, &MAC);
        assert!(parse(&no_dst.message(RTM_NEWNEIGH, 0)).is_err());
    }

    /// Every truncation of every kind of message the mirror reads is an error or a
    /// consistent (shorter) answer, never a panic; garbage too.
    #[test]
    fn truncated_and_garbage_messages_never_panic() {
        let gateway = Builder::new(&[]).attr(RTA_GATEWAY, &octets(v6("fd00:6::1")));
        let mut hops = rtnexthop(0, 6, gateway.bytes());
        hops.extend(rtnexthop(0, 7, &[]));
        let samples: Vec<(u16, Builder)> = vec![
            (
                RTM_NEWLINK,
                Builder::new(&ifinfomsg(3, ARPHRD_ETHER, IFF_UP))
                    .attr(IFLA_IFNAME, b"wan\0")
                    .attr(IFLA_ADDRESS, &MAC)
                    .attr(IFLA_MTU, &1500u32.to_ne_bytes()),
            ),
            (
                RTM_NEWROUTE,
                Builder::new(&rtmsg(AF_INET6, 64, 254, RTN_UNICAST))
                    .attr(RTA_DST, &octets(v6("fd00:99::")))
                    .attr(RTA_GATEWAY, &octets(v6("fd00:77::2")))
                    .attr(RTA_OIF, &3u32.to_ne_bytes())
                    .attr(RTA_MULTIPATH, &hops),
            ),
            (
                RTM_NEWNEIGH,
                Builder::new(&ndmsg(AF_INET6, 3, NUD_REACHABLE, 0))
                    .attr(NDA_DST, &octets(v6("fd00:77::2")))
                    .attr(NDA_LLADDR, &MAC),
            ),
        ];
        for (kind, sample) in &samples {
            let whole = sample.bytes();
            assert!(parse(&sample.message(*kind, 0)).is_ok());
            for cut in 0..whole.len() {
                let message = Message {
                    kind: *kind,
                    flags: 0,
                    seq: 0,
                    port: 0,
                    payload: &whole[..cut],
                };
                let _ = parse(&message);
            }
            // Every byte flipped to every "interesting" value.
            for at in 0..whole.len() {
                for value in [0u8, 1, 3, 4, 0x7f, 0xff] {
                    let mut bytes = whole.to_vec();
                    bytes[at] = value;
                    let message = Message {
                        kind: *kind,
                        flags: 0,
                        seq: 0,
                        port: 0,
                        payload: &bytes,
                    };
                    let _ = parse(&message);
                }
            }
        }
        let short = Message {
            kind: RTM_NEWROUTE,
            flags: 0,
            seq: 0,
            port: 0,
            payload: &[2, 24],
        };
        assert!(parse(&short).is_err());
    }

    #[test]
    fn network_clears_host_bits() {
        assert_eq!(network(v4("10.1.2.3"), 16), v4("10.1.0.0"));
        assert_eq!(network(v4("10.1.2.3"), 0), v4("0.0.0.0"));
        assert_eq!(network(v4("10.1.2.3"), 32), v4("10.1.2.3"));
        assert_eq!(network(v6("fd00:1:2:3::9"), 48), v6("fd00:1:2::"));
        assert_eq!(network(v6("fd00::9"), 128), v6("fd00::9"));
    }
}

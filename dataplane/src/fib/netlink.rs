//! The rtnetlink wire format, as far as the mirror needs it: walking the messages of a
//! datagram and the attributes of a message, bounds-checked, and encoding the few requests it
//! sends (dumps, neighbour resolution). Plain functions over bytes, tested without a kernel.
//!
//! The constants are the kernel's ABI (`linux/netlink.h`, `linux/rtnetlink.h`,
//! `linux/neighbour.h`, `linux/if_link.h`); they are spelled out here rather than taken from
//! `libc` so that the parsers build and are tested on every platform.

use std::fmt;
use std::net::IpAddr;

pub(crate) const NLMSG_HEADER_LEN: usize = 16;
pub(crate) const IFINFOMSG_LEN: usize = 16;
pub(crate) const RTMSG_LEN: usize = 12;
pub(crate) const NDMSG_LEN: usize = 12;

pub(crate) const NLMSG_NOOP: u16 = 1;
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
pub(crate) const NLMSG_OVERRUN: u16 = 4;

pub(crate) const NLM_F_REQUEST: u16 = 0x1;
pub(crate) const NLM_F_ACK: u16 = 0x4;
pub(crate) const NLM_F_DUMP_INTR: u16 = 0x10;
pub(crate) const NLM_F_APPEND: u16 = 0x800;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
/// `NLM_F_ROOT | NLM_F_MATCH`.
pub(crate) const NLM_F_DUMP: u16 = 0x300;

pub(crate) const RTM_NEWLINK: u16 = 16;
pub(crate) const RTM_DELLINK: u16 = 17;
pub(crate) const RTM_GETLINK: u16 = 18;
pub(crate) const RTM_NEWROUTE: u16 = 24;
pub(crate) const RTM_DELROUTE: u16 = 25;
pub(crate) const RTM_GETROUTE: u16 = 26;
pub(crate) const RTM_NEWNEIGH: u16 = 28;
pub(crate) const RTM_DELNEIGH: u16 = 29;
pub(crate) const RTM_GETNEIGH: u16 = 30;

pub(crate) const AF_UNSPEC: u8 = 0;
pub(crate) const AF_INET: u8 = 2;
pub(crate) const AF_INET6: u8 = 10;

/// The multicast groups the mirror listens to (`RTNLGRP_*`).
pub(crate) const RTNLGRP_LINK: u32 = 1;
pub(crate) const RTNLGRP_NEIGH: u32 = 3;
pub(crate) const RTNLGRP_IPV4_ROUTE: u32 = 7;
pub(crate) const RTNLGRP_IPV6_ROUTE: u32 = 11;

pub(crate) const IFLA_ADDRESS: u16 = 1;
pub(crate) const IFLA_IFNAME: u16 = 3;
pub(crate) const IFLA_MTU: u16 = 4;

pub(crate) const RTA_DST: u16 = 1;
pub(crate) const RTA_OIF: u16 = 4;
pub(crate) const RTA_GATEWAY: u16 = 5;
pub(crate) const RTA_PRIORITY: u16 = 6;
pub(crate) const RTA_MULTIPATH: u16 = 9;
pub(crate) const RTA_TABLE: u16 = 15;
pub(crate) const RTA_VIA: u16 = 18;

pub(crate) const NDA_DST: u16 = 1;
pub(crate) const NDA_LLADDR: u16 = 2;

pub(crate) const RT_TABLE_MAIN: u32 = 254;
pub(crate) const RTM_F_CLONED: u32 = 0x200;

pub(crate) const RTN_UNICAST: u8 = 1;
// Every other type is a reject route to the mirror; these are named for the tests.
#[cfg(test)]
pub(crate) const RTN_BLACKHOLE: u8 = 6;
#[cfg(test)]
pub(crate) const RTN_UNREACHABLE: u8 = 7;
#[cfg(test)]
pub(crate) const RTN_PROHIBIT: u8 = 8;
#[cfg(test)]
pub(crate) const RTN_THROW: u8 = 9;

#[cfg(test)]
pub(crate) const NUD_INCOMPLETE: u16 = 0x01;
pub(crate) const NUD_REACHABLE: u16 = 0x02;
pub(crate) const NUD_STALE: u16 = 0x04;
pub(crate) const NUD_DELAY: u16 = 0x08;
pub(crate) const NUD_PROBE: u16 = 0x10;
#[cfg(test)]
pub(crate) const NUD_FAILED: u16 = 0x20;
pub(crate) const NUD_NOARP: u16 = 0x40;
pub(crate) const NUD_PERMANENT: u16 = 0x80;
/// The states in which the kernel itself sends to the neighbour's link-layer address.
pub(crate) const NUD_USABLE: u16 =
    NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT | NUD_NOARP;

pub(crate) const NTF_USE: u8 = 0x01;
pub(crate) const NTF_PROXY: u8 = 0x08;

pub(crate) const IFF_UP: u32 = 0x1;
pub(crate) const IFF_RUNNING: u32 = 0x40;
pub(crate) const ARPHRD_ETHER: u16 = 1;

/// The type bits of `nla_type` (without `NLA_F_NESTED` and `NLA_F_NET_BYTEORDER`).
const NLA_TYPE_MASK: u16 = 0x3fff;

/// A message the kernel sent that does not hold together: a length pointing past the end, a
/// fixed header cut short. The kernel is at fault (or whoever forged the datagram); the
/// message is counted and skipped, or the whole state re-read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Malformed(pub &'static str);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed netlink message from the kernel: {}", self.0)
    }
}

impl std::error::Error for Malformed {}

/// Netlink lengths are padded to 4 bytes.
pub(crate) const fn align(len: usize) -> usize {
    (len + 3) & !3
}

pub(crate) fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(
        bytes.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

pub(crate) fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        bytes.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// One netlink message: its header fields and the bytes after the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Message<'a> {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub port: u32,
    pub payload: &'a [u8],
}

/// The messages of one datagram, in order. A message whose length does not fit ends the walk
/// with one `Err`: nothing after it can be trusted to start where it claims.
pub(crate) fn messages(datagram: &[u8]) -> Messages<'_> {
    Messages { rest: datagram }
}

#[derive(Debug)]
pub(crate) struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<Message<'a>, Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let bytes = self.rest;
        let fail = |rest: &mut &'a [u8], what| {
            *rest = &[];
            Some(Err(Malformed(what)))
        };
        if bytes.len() < NLMSG_HEADER_LEN {
            return fail(&mut self.rest, "datagram ends inside a message header");
        }
        let len = u32_at(bytes, 0)? as usize;
        if len < NLMSG_HEADER_LEN || len > bytes.len() {
            return fail(&mut self.rest, "message length out of bounds");
        }
        let message = Message {
            kind: u16_at(bytes, 4)?,
            flags: u16_at(bytes, 6)?,
            seq: u32_at(bytes, 8)?,
            port: u32_at(bytes, 12)?,
            payload: &bytes[NLMSG_HEADER_LEN..len],
        };
        // The last message of a datagram may lack its padding.
        self.rest = bytes.get(align(len)..).unwrap_or(&[]);
        Some(Ok(message))
    }
}

/// The attributes in `bytes` (what follows a message's fixed header), as (type, value).
pub(crate) fn attributes(bytes: &[u8]) -> Attributes<'_> {
    Attributes { rest: bytes }
}

#[derive(Debug, Clone)]
pub(crate) struct Attributes<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Attributes<'a> {
    type Item = Result<(u16, &'a [u8]), Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let bytes = self.rest;
        let len = u16_at(bytes, 0).map(usize::from);
        let kind = u16_at(bytes, 2);
        match (len, kind) {
            (Some(len), Some(kind)) if len >= 4 && len <= bytes.len() => {
                self.rest = bytes.get(align(len)..).unwrap_or(&[]);
                Some(Ok((kind & NLA_TYPE_MASK, &bytes[4..len])))
            }
            _ => {
                self.rest = &[];
                Some(Err(Malformed("attribute length out of bounds")))
            }
        }
    }
}

/// An address attribute of `family`: 4 bytes for IPv4, 16 for IPv6.
pub(crate) fn address(family: u8, value: &[u8]) -> Result<IpAddr, Malformed> {
    match family {
        AF_INET => <[u8; 4]>::try_from(value)
            .map(IpAddr::from)
            .map_err(|_| Malformed("IPv4 address attribute not 4 bytes")),
        AF_INET6 => <[u8; 16]>::try_from(value)
            .map(IpAddr::from)
            .map_err(|_| Malformed("IPv6 address attribute not 16 bytes")),
        _ => Err(Malformed("address of an unknown family")),
    }
}

/// A 4-byte attribute.
pub(crate) fn u32_value(value: &[u8]) -> Result<u32, Malformed> {
    <[u8; 4]>::try_from(value)
        .map(u32::from_ne_bytes)
        .map_err(|_| Malformed("32-bit attribute not 4 bytes"))
}

fn put_header(out: &mut [u8], len: usize, kind: u16, flags: u16, seq: u32) {
    out[0..4].copy_from_slice(&(len as u32).to_ne_bytes());
    out[4..6].copy_from_slice(&kind.to_ne_bytes());
    out[6..8].copy_from_slice(&flags.to_ne_bytes());
    out[8..12].copy_from_slice(&seq.to_ne_bytes());
    // Port id 0: the kernel fills in ours.
    out[12..16].fill(0);
}

/// The tables the mirror reads, one dump request each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dump {
    Links,
    Routes4,
    Routes6,
    Neighbours4,
    Neighbours6,
}

impl Dump {
    pub const ALL: [Dump; 5] = [
        Dump::Links,
        Dump::Routes4,
        Dump::Routes6,
        Dump::Neighbours4,
        Dump::Neighbours6,
    ];
}

/// The longest request [`encode_dump`] and [`encode_resolve`] write.
pub(crate) const MAX_REQUEST_LEN: usize = NLMSG_HEADER_LEN + NDMSG_LEN + 4 + 16;

/// Writes the dump request for `dump` into `out`; returns its length. The fixed header is
/// the one the answer carries (the kernel accepts it and, when strict checking is on, asks
/// for exactly it).
pub(crate) fn encode_dump(dump: Dump, seq: u32, out: &mut [u8; MAX_REQUEST_LEN]) -> usize {
    out.fill(0);
    let (kind, fixed, family) = match dump {
        Dump::Links => (RTM_GETLINK, IFINFOMSG_LEN, AF_UNSPEC),
        Dump::Routes4 => (RTM_GETROUTE, RTMSG_LEN, AF_INET),
        Dump::Routes6 => (RTM_GETROUTE, RTMSG_LEN, AF_INET6),
        Dump::Neighbours4 => (RTM_GETNEIGH, NDMSG_LEN, AF_INET),
        Dump::Neighbours6 => (RTM_GETNEIGH, NDMSG_LEN, AF_INET6),
    };
    // The family is the first byte of ifinfomsg, rtmsg and ndmsg alike.
    out[NLMSG_HEADER_LEN] = family;
    let len = NLMSG_HEADER_LEN + fixed;
    put_header(out, len, kind, NLM_F_REQUEST | NLM_F_DUMP, seq);
    len
}

/// Writes the request that makes the kernel resolve `address` on `ifindex` into `out`;
/// returns its length.
///
/// `RTM_NEWNEIGH` with `NTF_USE`: the kernel's `neigh_add` creates the entry if need be
/// (`NLM_F_CREATE`, state `NUD_NONE`, so not permanent and not exempt from garbage
/// collection), leaves an existing entry's state alone (`NEIGH_UPDATE_F_USE` only clears
/// `NUD_PERMANENT`), and calls `neigh_event_send`, as if a packet were waiting: a new or
/// failed entry goes to `INCOMPLETE` and ARP/ND solicitations go out; a stale one is probed.
/// No `NLM_F_REPLACE`, so a known link-layer address is never overridden.
pub(crate) fn encode_resolve(
    ifindex: u32,
    address: IpAddr,
    seq: u32,
    out: &mut [u8; MAX_REQUEST_LEN],
) -> usize {
    out.fill(0);
    let (family, bytes, address_len) = match address {
        IpAddr::V4(a) => {
            let mut bytes = [0u8; 16];
            bytes[..4].copy_from_slice(&a.octets());
            (AF_INET, bytes, 4)
        }
        IpAddr::V6(a) => (AF_INET6, a.octets(), 16),
    };
    let nd = NLMSG_HEADER_LEN;
    out[nd] = family;
    out[nd + 4..nd + 8].copy_from_slice(&ifindex.to_ne_bytes());
    // ndm_state NUD_NONE (0) is already there.
    out[nd + 10] = NTF_USE;
    let at = nd + NDMSG_LEN;
    let attr_len = 4 + address_len;
    out[at..at + 2].copy_from_slice(&(attr_len as u16).to_ne_bytes());
    out[at + 2..at + 4].copy_from_slice(&NDA_DST.to_ne_bytes());
    out[at + 4..at + attr_len].copy_from_slice(&bytes[..address_len]);
    let len = at + attr_len;
    put_header(
        out,
        len,
        RTM_NEWNEIGH,
        NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK,
        seq,
    );
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn message(kind: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = NLMSG_HEADER_LEN + payload.len();
        let mut m = vec![0u8; align(len)];
        put_header(&mut m, len, kind, 0, seq);
        m[NLMSG_HEADER_LEN..len].copy_from_slice(payload);
        m
    }

    #[test]
    fn messages_are_walked_in_order_with_padding() {
        let mut datagram = message(RTM_NEWLINK, 1, &[1, 2, 3]);
        datagram.extend(message(NLMSG_DONE, 2, &[0, 0, 0, 0]));
        let all: Vec<_> = messages(&datagram).collect::<Result<_, _>>().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(
            (all[0].kind, all[0].seq, all[0].payload),
            (16, 1, &[1, 2, 3][..])
        );
        assert_eq!((all[1].kind, all[1].seq), (NLMSG_DONE, 2));
    }

    #[test]
    fn truncated_or_lying_messages_end_the_walk_with_an_error() {
        let good = message(RTM_NEWLINK, 1, &[0; 8]);
        // Every prefix of a valid message is either empty or malformed, never a panic.
        for cut in 1..good.len() {
            let all: Vec<_> = messages(&good[..cut]).collect();
            assert_eq!(all.len(), 1, "cut at {cut}");
            assert!(all[0].is_err(), "cut at {cut}");
        }
        let mut short_len = good.clone();
        short_len[0..4].copy_from_slice(&15u32.to_ne_bytes());
        assert!(messages(&short_len).next().unwrap().is_err());
        let mut huge_len = good.clone();
        huge_len[0..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        let all: Vec<_> = messages(&huge_len).collect();
        assert_eq!(all.len(), 1);
        assert!(all[0].is_err());
    }

    #[test]
    fn attributes_are_bounds_checked() {
        // RTA_OIF = 7, then a nested-flagged RTA_TABLE = 254, then a truncated one.
        let mut bytes = vec![8, 0, 4, 0, 7, 0, 0, 0];
        bytes.extend([8, 0, 15 | 0x80, 0x80, 254, 0, 0, 0]);
        if cfg!(target_endian = "little") {
            let all: Vec<_> = attributes(&bytes).collect::<Result<_, _>>().unwrap();
            assert_eq!(
                all,
                vec![(4, &[7, 0, 0, 0][..]), (0x0f | 0x80, &[254, 0, 0, 0][..])]
            );
        }
        bytes.extend([12, 0, 1, 0, 1, 2]);
        let all: Vec<_> = attributes(&bytes).collect();
        assert_eq!(all.len(), 3);
        assert!(all[2].is_err());
        for cut in 0..bytes.len() {
            // Never a panic, never an attribute reaching past the cut.
            for item in attributes(&bytes[..cut]).flatten() {
                assert!(item.1.len() <= cut);
            }
        }
        assert!(attributes(&[3, 0, 1, 0]).next().unwrap().is_err());
    }

    #[test]
    fn addresses_must_have_their_family_length() {
        assert_eq!(
            address(AF_INET, &[10, 0, 0, 1]),
            Ok(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))
        );
        assert!(address(AF_INET, &[10, 0, 0]).is_err());
        assert!(address(AF_INET6, &[0; 4]).is_err());
        assert_eq!(
            address(AF_INET6, &[0; 16]),
            Ok(IpAddr::V6(Ipv6Addr::UNSPECIFIED))
        );
        assert!(address(7, &[0; 4]).is_err());
        assert!(u32_value(&[1, 2, 3]).is_err());
    }

    #[test]
    fn a_resolve_request_is_what_iproute2_would_send_for_neigh_add_use() {
        let mut out = [0u8; MAX_REQUEST_LEN];
        let len = encode_resolve(3, IpAddr::V4(Ipv4Addr::new(10, 77, 0, 2)), 9, &mut out);
        // Written out from linux/neighbour.h and rtnetlink(7), little-endian host.
        #[rustfmt::skip]
        let expected: [u8; 36] = [
            36, 0, 0, 0,   28, 0,   0x05, 0x04,   9, 0, 0, 0,   0, 0, 0, 0, // nlmsghdr
            2, 0, 0, 0,   3, 0, 0, 0,   0, 0,   1, 0, // ndmsg: inet, if 3, NONE, NTF_USE
            8, 0, 1, 0,   10, 77, 0, 2, // NDA_DST
        ];
        assert_eq!(len, 36);
        if cfg!(target_endian = "little") {
            assert_eq!(&out[..len], &expected[..]);
        }
        let v6: Ipv6Addr = "fd00:77::2".parse().unwrap();
        let len = encode_resolve(4, IpAddr::V6(v6), 10, &mut out);
        assert_eq!(len, MAX_REQUEST_LEN);
        assert_eq!(out[16], AF_INET6);
        assert_eq!(&out[32..48], &v6.octets());
    }

    #[test]
    fn dump_requests_carry_the_family_in_the_fixed_header() {
        let mut out = [0u8; MAX_REQUEST_LEN];
        let len = encode_dump(Dump::Routes6, 5, &mut out);
        assert_eq!(len, NLMSG_HEADER_LEN + RTMSG_LEN);
        assert_eq!(u16_at(&out, 4), Some(RTM_GETROUTE));
        assert_eq!(u16_at(&out, 6), Some(NLM_F_REQUEST | NLM_F_DUMP));
        assert_eq!(out[16], AF_INET6);
        let len = encode_dump(Dump::Links, 6, &mut out);
        assert_eq!(len, 32);
        assert_eq!(u32_at(&out, 0), Some(32));
        assert_eq!(u16_at(&out, 4), Some(RTM_GETLINK));
    }
}

//! Telling a sender that its packet is too big for the tunnel: ICMP Destination Unreachable,
//! Fragmentation Needed (RFC 792, RFC 1191) for IPv4, ICMPv6 Packet Too Big (RFC 4443 §3.2,
//! RFC 8201) for IPv6, with the MTU left for inner packets, so that the sender's path MTU
//! discovery shrinks what it sends (RFC 4301 §8.2.1). This is what a Linux IPsec gateway,
//! strongSwan and VPP answer; without it TCP through the tunnel stalls on its first full-size
//! segment.
//!
//! The message is built in place: the new IP and ICMP headers go in front of the packet (into
//! the frame's headroom) and the packet's leading bytes become the quotation — the whole IP
//! header and as much after it as Linux quotes (the message at most 576 bytes, RFC 1812
//! §4.3.2.3) or RFC 4443 §2.4(c) allows (at most 1280).
//!
//! Not answered (RFC 1812 §4.3.2.7, RFC 4443 §2.4(e)): ICMP errors, IPv4 fragments but the
//! first, sources that name no single host, IPv4 multicast and broadcast destinations. IPv4
//! without DF is not answered either: the pipeline fragments it before encryption where it
//! can, and drops it where it cannot (see [`NoReply::DontFragmentClear`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::esp::ip::{
    self, fold_checksum, ones_complement_sum, proto, Family, IPV4_DF, IPV4_HEADER_LEN,
    IPV6_HEADER_LEN,
};
use crate::esp::PacketBuf;

const PROTO_ICMP: u8 = 1;
const PROTO_ICMPV6: u8 = 58;
const PROTO_AH: u8 = 51;
/// ICMP and ICMPv6 headers: type, code, checksum, four bytes of type-specific data.
const ICMP_HEADER_LEN: usize = 8;
/// Linux's limit on an ICMPv4 error, and every host's minimum reassembly size.
const IPV4_ERROR_MAX: usize = 576;
/// RFC 4443 §2.4(c): as much of the packet as fits without exceeding the IPv6 minimum MTU.
const IPV6_ERROR_MAX: usize = 1280;
/// The smallest MTU an IPv4 host must accept (RFC 791); a tunnel leaving less is useless.
const IPV4_MIN_MTU: u32 = 68;
/// IPv6's minimum link MTU (RFC 8200 §5).
const IPV6_MIN_MTU: u32 = 1280;
const HOP_LIMIT: u8 = 64;
/// Extension headers walked to find an ICMPv6 type; a longer chain is not answered.
const MAX_EXTENSION_HEADERS: usize = 8;

/// Why a packet too big for its tunnel gets no ICMP error. Each is a counted drop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum NoReply {
    /// IPv4 without DF: the sender is not asking for an error; the pipeline fragments it
    /// where it can.
    DontFragmentClear,
    /// The tunnel's local address is of the other family: there is no source address for
    /// the error.
    FamilyMismatch,
    /// The tunnel leaves less than the family's minimum MTU (68 for IPv4, 1280 for IPv6).
    MtuTooSmall,
    /// An ICMP error, a later fragment, a source that is no single host, a broadcast or
    /// multicast IPv4 destination, or headers too broken to tell.
    NotAnswered,
    /// No headroom in front of the packet for the new headers.
    NoRoom,
}

/// An error to send: from `source` (this gateway's end of the tunnel) to `destination` (the
/// packet's sender), reporting `mtu`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Reply {
    pub source: IpAddr,
    pub destination: IpAddr,
    pub mtu: u32,
}

/// Decides whether `packet` (an IP packet, its length as its header states), too big for a
/// tunnel that leaves `inner_mtu` bytes for inner packets (`None`: not even a header fits),
/// gets an error from `local`.
pub(super) fn plan(packet: &[u8], local: IpAddr, inner_mtu: Option<u32>) -> Result<Reply, NoReply> {
    match (Family::of(packet), local) {
        (Some(Family::V4), IpAddr::V4(local)) => plan_v4(packet, local, inner_mtu),
        (Some(Family::V6), IpAddr::V6(local)) => plan_v6(packet, local, inner_mtu),
        (Some(Family::V4), _) if !dont_fragment(packet) => Err(NoReply::DontFragmentClear),
        (Some(_), _) => Err(NoReply::FamilyMismatch),
        (None, _) => Err(NoReply::NotAnswered),
    }
}

fn dont_fragment(packet: &[u8]) -> bool {
    packet.len() >= IPV4_HEADER_LEN && ip::read_u16(packet, 6) & IPV4_DF != 0
}

fn plan_v4(packet: &[u8], local: Ipv4Addr, inner_mtu: Option<u32>) -> Result<Reply, NoReply> {
    let header_len = usize::from(packet.first().ok_or(NoReply::NotAnswered)? & 0x0F) * 4;
    if header_len < IPV4_HEADER_LEN || packet.len() < header_len {
        return Err(NoReply::NotAnswered);
    }
    if !dont_fragment(packet) {
        return Err(NoReply::DontFragmentClear);
    }
    if ip::read_u16(packet, 6) & 0x1FFF != 0 {
        return Err(NoReply::NotAnswered);
    }
    let source = v4_at(packet, 12);
    let destination = v4_at(packet, 16);
    let no_single_host = source.is_unspecified()
        || source.is_broadcast()
        || source.is_multicast()
        || source.is_loopback()
        || source.octets()[0] >= 240;
    if no_single_host || destination.is_multicast() || destination.is_broadcast() {
        return Err(NoReply::NotAnswered);
    }
    if packet[9] == PROTO_ICMP {
        // Only queries are answered (errors are 3, 4, 5, 11, 12; an unknown type might be
        // one); so is a first fragment too short to show its type.
        match packet.get(header_len) {
            Some(0 | 8 | 9 | 10 | 13..=18 | 42 | 43) => {}
            _ => return Err(NoReply::NotAnswered),
        }
    }
    let mtu = inner_mtu
        .filter(|&mtu| mtu >= IPV4_MIN_MTU)
        .ok_or(NoReply::MtuTooSmall)?;
    Ok(Reply {
        source: IpAddr::V4(local),
        destination: IpAddr::V4(source),
        mtu: mtu.min(u32::from(u16::MAX)),
    })
}

fn plan_v6(packet: &[u8], local: Ipv6Addr, inner_mtu: Option<u32>) -> Result<Reply, NoReply> {
    if packet.len() < IPV6_HEADER_LEN {
        return Err(NoReply::NotAnswered);
    }
    let source = v6_at(packet, 8);
    // Link-local sources are never forwarded (RFC 4291 §2.5.6); multicast destinations are
    // answered, Packet Too Big being the exception of RFC 4443 §2.4(e.3).
    if source.is_unspecified()
        || source.is_multicast()
        || source.is_loopback()
        || source.is_unicast_link_local()
    {
        return Err(NoReply::NotAnswered);
    }
    if is_icmpv6_error_or_unknown(packet) {
        return Err(NoReply::NotAnswered);
    }
    let mtu = inner_mtu
        .filter(|&mtu| mtu >= IPV6_MIN_MTU)
        .ok_or(NoReply::MtuTooSmall)?;
    Ok(Reply {
        source: IpAddr::V6(local),
        destination: IpAddr::V6(source),
        mtu,
    })
}

/// Whether an IPv6 packet is an ICMPv6 error (type below 128), or might be one: a chain of
/// extension headers that cannot be followed, a later fragment of ICMPv6.
fn is_icmpv6_error_or_unknown(packet: &[u8]) -> bool {
    let mut next_header = packet[6];
    let mut at = IPV6_HEADER_LEN;
    for _ in 0..MAX_EXTENSION_HEADERS {
        let length = match next_header {
            proto::HOP_BY_HOP | proto::ROUTING | proto::DEST_OPTS => {
                let Some(&units) = packet.get(at + 1) else {
                    return true;
                };
                (usize::from(units) + 1) * 8
            }
            PROTO_AH => {
                let Some(&units) = packet.get(at + 1) else {
                    return true;
                };
                (usize::from(units) + 2) * 4
            }
            proto::FRAGMENT => {
                let Some(header) = packet.get(at..at + 8) else {
                    return true;
                };
                if ip::read_u16(header, 2) & 0xFFF8 != 0 {
                    // A later fragment: what it carries is only known from the first.
                    return header[0] == PROTO_ICMPV6;
                }
                8
            }
            PROTO_ICMPV6 => return packet.get(at).is_none_or(|&kind| kind < 128),
            _ => return false,
        };
        let Some(&following) = packet.get(at) else {
            return true;
        };
        next_header = following;
        at += length;
    }
    true
}

fn v4_at(packet: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(packet[at], packet[at + 1], packet[at + 2], packet[at + 3])
}

fn v6_at(packet: &[u8], at: usize) -> Ipv6Addr {
    let mut octets = [0u8; 16];
    octets.copy_from_slice(&packet[at..at + 16]);
    Ipv6Addr::from(octets)
}

/// Turns the window of `packet` (the packet [`plan`] accepted) into the error `reply`
/// describes: headers in front, the quotation cut to size. `id` is the IPv4 identification.
/// On `Err` the window is unchanged.
pub(super) fn write(packet: &mut PacketBuf<'_>, reply: &Reply, id: u16) -> Result<(), NoReply> {
    let (head_len, limit) = match reply.source {
        IpAddr::V4(_) => (IPV4_HEADER_LEN + ICMP_HEADER_LEN, IPV4_ERROR_MAX),
        IpAddr::V6(_) => (IPV6_HEADER_LEN + ICMP_HEADER_LEN, IPV6_ERROR_MAX),
    };
    let quote_len = packet.len().min(limit - head_len);
    let (frame, start, _) = packet.frame_mut();
    let new_start = start.checked_sub(head_len).ok_or(NoReply::NoRoom)?;
    let message = &mut frame[new_start..start + quote_len];
    match (reply.source, reply.destination) {
        (IpAddr::V4(source), IpAddr::V4(destination)) => {
            write_v4(message, source, destination, reply.mtu, id)
        }
        (IpAddr::V6(source), IpAddr::V6(destination)) => {
            write_v6(message, source, destination, reply.mtu)
        }
        _ => return Err(NoReply::FamilyMismatch),
    }
    packet.set_window(new_start, start + quote_len);
    Ok(())
}

fn write_v4(message: &mut [u8], source: Ipv4Addr, destination: Ipv4Addr, mtu: u32, id: u16) {
    let total_len = message.len() as u16;
    let (header, icmp) = message.split_at_mut(IPV4_HEADER_LEN);
    header[0] = 0x45;
    header[1] = 0;
    ip::write_u16(header, 2, total_len);
    ip::write_u16(header, 4, id);
    // DF clear, as Linux sends its ICMP errors: a router on the way back may fragment it.
    ip::write_u16(header, 6, 0);
    header[8] = HOP_LIMIT;
    header[9] = PROTO_ICMP;
    header[12..16].copy_from_slice(&source.octets());
    header[16..20].copy_from_slice(&destination.octets());
    ip::set_ipv4_checksum(header);
    // Type 3 (destination unreachable), code 4 (fragmentation needed and DF set); the
    // next-hop MTU in the low half of the second word (RFC 1191 §4).
    icmp[..4].copy_from_slice(&[3, 4, 0, 0]);
    ip::write_u16(icmp, 4, 0);
    ip::write_u16(icmp, 6, mtu as u16);
    let checksum = fold_checksum(ones_complement_sum(icmp, 0));
    ip::write_u16(icmp, 2, checksum);
}

fn write_v6(message: &mut [u8], source: Ipv6Addr, destination: Ipv6Addr, mtu: u32) {
    let (header, icmp) = message.split_at_mut(IPV6_HEADER_LEN);
    header[..4].copy_from_slice(&[0x60, 0, 0, 0]);
    ip::write_u16(header, 4, icmp.len() as u16);
    header[6] = PROTO_ICMPV6;
    header[7] = HOP_LIMIT;
    header[8..24].copy_from_slice(&source.octets());
    header[24..40].copy_from_slice(&destination.octets());
    // Type 2 (packet too big), code 0, the MTU as the second word.
    icmp[..4].copy_from_slice(&[2, 0, 0, 0]);
    icmp[4..8].copy_from_slice(&mtu.to_be_bytes());
    // RFC 4443 §2.3: over the pseudo-header of RFC 8200 §8.1 and the message.
    let mut sum = ones_complement_sum(&source.octets(), 0);
    sum = ones_complement_sum(&destination.octets(), sum);
    sum += icmp.len() as u32 + u32::from(PROTO_ICMPV6);
    sum = ones_complement_sum(icmp, sum);
    ip::write_u16(icmp, 2, fold_checksum(sum));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4_packet(protocol: u8, flags: u16, source: [u8; 4], destination: [u8; 4]) -> Vec<u8> {
        let mut packet = vec![0u8; 1500];
        packet[0] = 0x45;
        packet[2..4].copy_from_slice(&1500u16.to_be_bytes());
        packet[6..8].copy_from_slice(&flags.to_be_bytes());
        packet[8] = 64;
        packet[9] = protocol;
        packet[12..16].copy_from_slice(&source);
        packet[16..20].copy_from_slice(&destination);
        packet
    }

    fn v6_packet(next_header: u8, source: &str, extension: &[u8]) -> Vec<u8> {
        let mut packet = vec![0u8; 40];
        packet[0] = 0x60;
        packet[6] = next_header;
        packet[8..24].copy_from_slice(&source.parse::<Ipv6Addr>().unwrap().octets());
        packet[24..40].copy_from_slice(&"2001:db8:2::2".parse::<Ipv6Addr>().unwrap().octets());
        packet.extend_from_slice(extension);
        packet.resize(1500, 0);
        let payload = (packet.len() - 40) as u16;
        packet[4..6].copy_from_slice(&payload.to_be_bytes());
        packet
    }

    const LOCAL4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const HOST: [u8; 4] = [10, 1, 0, 2];
    const REMOTE: [u8; 4] = [10, 2, 0, 2];

    fn local6() -> IpAddr {
        "2001:db8::1".parse().unwrap()
    }

    #[test]
    fn ipv4_with_df_is_answered_and_without_it_dropped() {
        let packet = v4_packet(proto::UDP, IPV4_DF, HOST, REMOTE);
        assert_eq!(
            plan(&packet, LOCAL4, Some(1438)),
            Ok(Reply {
                source: LOCAL4,
                destination: IpAddr::V4(HOST.into()),
                mtu: 1438
            })
        );
        let no_df = v4_packet(proto::UDP, 0, HOST, REMOTE);
        assert_eq!(
            plan(&no_df, LOCAL4, Some(1438)),
            Err(NoReply::DontFragmentClear)
        );
        assert_eq!(
            plan(&no_df, local6(), Some(1438)),
            Err(NoReply::DontFragmentClear)
        );
        assert_eq!(
            plan(&packet, local6(), Some(1438)),
            Err(NoReply::FamilyMismatch)
        );
        assert_eq!(plan(&packet, LOCAL4, Some(67)), Err(NoReply::MtuTooSmall));
        assert_eq!(plan(&packet, LOCAL4, None), Err(NoReply::MtuTooSmall));
    }

    #[test]
    fn what_must_not_be_answered_is_not() {
        let not_answered = |packet: &[u8]| plan(packet, LOCAL4, Some(1400));
        for source in [
            [0, 0, 0, 0],
            [255; 4],
            [224, 0, 0, 1],
            [127, 0, 0, 1],
            [240, 0, 0, 1],
        ] {
            let packet = v4_packet(proto::UDP, IPV4_DF, source, REMOTE);
            assert_eq!(
                not_answered(&packet),
                Err(NoReply::NotAnswered),
                "{source:?}"
            );
        }
        for destination in [[224, 0, 0, 1], [255; 4]] {
            let packet = v4_packet(proto::UDP, IPV4_DF, HOST, destination);
            assert_eq!(not_answered(&packet), Err(NoReply::NotAnswered));
        }
        // A later fragment.
        let packet = v4_packet(proto::UDP, IPV4_DF | 0x00B9, HOST, REMOTE);
        assert_eq!(not_answered(&packet), Err(NoReply::NotAnswered));
        // ICMP errors are not; echo requests are.
        let mut icmp = v4_packet(PROTO_ICMP, IPV4_DF, HOST, REMOTE);
        for (kind, answered) in [(3u8, false), (11, false), (12, false), (8, true), (0, true)] {
            icmp[20] = kind;
            assert_eq!(not_answered(&icmp).is_ok(), answered, "type {kind}");
        }
        // Options that claim more than there is.
        let mut broken = v4_packet(proto::UDP, IPV4_DF, HOST, REMOTE);
        broken[0] = 0x4F;
        assert_eq!(not_answered(&broken[..40]), Err(NoReply::NotAnswered));
        broken[0] = 0x44;
        assert_eq!(not_answered(&broken), Err(NoReply::NotAnswered));
        assert_eq!(not_answered(&[]), Err(NoReply::NotAnswered));
        assert_eq!(not_answered(&[0x45]), Err(NoReply::NotAnswered));
    }

    #[test]
    fn ipv6_is_answered_unless_it_is_an_icmpv6_error_or_below_1280() {
        let host = "2001:db8:1::2";
        let packet = v6_packet(proto::UDP, host, &[]);
        assert_eq!(
            plan(&packet, local6(), Some(1418)),
            Ok(Reply {
                source: local6(),
                destination: host.parse().unwrap(),
                mtu: 1418
            })
        );
        assert_eq!(
            plan(&packet, local6(), Some(1279)),
            Err(NoReply::MtuTooSmall)
        );
        assert_eq!(
            plan(&packet, LOCAL4, Some(1418)),
            Err(NoReply::FamilyMismatch)
        );
        for source in ["::", "ff02::1", "::1", "fe80::1"] {
            let packet = v6_packet(proto::UDP, source, &[]);
            assert_eq!(
                plan(&packet, local6(), Some(1418)),
                Err(NoReply::NotAnswered),
                "{source}"
            );
        }
        let answered = |packet: &[u8]| plan(packet, local6(), Some(1418)).is_ok();
        // ICMPv6 behind a hop-by-hop header: an error (1) is not answered, an echo (128) is.
        let hop_by_hop = |kind: u8| [PROTO_ICMPV6, 0, 0, 0, 0, 0, 0, 0, kind];
        assert!(!answered(&v6_packet(
            proto::HOP_BY_HOP,
            host,
            &hop_by_hop(1)
        )));
        assert!(answered(&v6_packet(
            proto::HOP_BY_HOP,
            host,
            &hop_by_hop(128)
        )));
        // A first fragment shows its type; a later one of ICMPv6 cannot.
        let fragment = |offset: u16, next: u8| {
            let mut header = vec![next, 0];
            header.extend_from_slice(&(offset << 3).to_be_bytes());
            header.extend_from_slice(&[0, 0, 0, 1, 129]);
            header
        };
        assert!(answered(&v6_packet(
            proto::FRAGMENT,
            host,
            &fragment(0, PROTO_ICMPV6)
        )));
        assert!(!answered(&v6_packet(
            proto::FRAGMENT,
            host,
            &fragment(10, PROTO_ICMPV6)
        )));
        assert!(answered(&v6_packet(
            proto::FRAGMENT,
            host,
            &fragment(10, proto::TCP)
        )));
        // A chain longer than the walk: not answered.
        let mut chain = Vec::new();
        for _ in 0..MAX_EXTENSION_HEADERS {
            chain.extend_from_slice(&[proto::DEST_OPTS, 0, 0, 0, 0, 0, 0, 0]);
        }
        assert!(!answered(&v6_packet(proto::DEST_OPTS, host, &chain)));
        assert!(!answered(&packet[..39]));
    }

    #[test]
    fn the_message_goes_in_front_of_the_quotation() {
        let packet = v4_packet(proto::UDP, IPV4_DF, HOST, REMOTE);
        let mut buffer = vec![0u8; 64 + packet.len()];
        buffer[64..].copy_from_slice(&packet);
        let mut buf = PacketBuf::new(&mut buffer, 64, packet.len()).unwrap();
        let reply = plan(buf.data(), LOCAL4, Some(1438)).unwrap();
        write(&mut buf, &reply, 7).unwrap();
        assert_eq!(buf.offset(), 64 - 28);
        assert_eq!(buf.len(), 576);
        let message = buf.data();
        assert!(ip::ipv4_checksum_ok(&message[..20]));
        assert_eq!(fold_checksum(ones_complement_sum(&message[20..], 0)), 0);
        assert_eq!(&message[28..], &packet[..548]);
        // Without headroom nothing changes.
        let mut tight = packet.clone();
        let mut buf = PacketBuf::new(&mut tight, 0, packet.len()).unwrap();
        assert_eq!(write(&mut buf, &reply, 7), Err(NoReply::NoRoom));
        assert_eq!((buf.offset(), buf.len()), (0, packet.len()));
    }
}

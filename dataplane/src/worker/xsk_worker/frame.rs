//! What a worker reads from a received Ethernet frame before any SA is involved — where the IP
//! packet starts, whether it is ESP for this gateway or plaintext to protect, its SPI — and
//! the Ethernet header it writes in front of a packet it sends.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::esp::ip::{
    self, proto, Family, IPV4_FRAGMENT_MASK, IPV4_HEADER_LEN, IPV6_HEADER_LEN, UDP_HEADER_LEN,
};
use crate::esp::{classify_udp_payload, UdpPayload};

/// Destination and source MAC addresses and the EtherType.
pub(super) const ETHERNET_HEADER_LEN: usize = 14;
/// An 802.1Q tag: the tag control word and the EtherType it shifts along.
const VLAN_TAG_LEN: usize = 4;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
const ETHERTYPE_VLAN: u16 = 0x8100;

/// Where the IP packet starts in an Ethernet frame: after the header and at most one 802.1Q
/// tag, which is thereby stripped. `None` for anything else (ARP, a second tag, a frame too
/// short to hold an IP version, an EtherType that disagrees with the IP version).
pub(super) fn ip_offset(frame: &[u8]) -> Option<usize> {
    let mut at = 12;
    let mut ethertype = u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]);
    if ethertype == ETHERTYPE_VLAN {
        at += VLAN_TAG_LEN;
        ethertype = u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]);
    }
    let offset = at + 2;
    let family = Family::of(frame.get(offset..)?)?;
    match (ethertype, family) {
        (ETHERTYPE_IPV4, Family::V4) | (ETHERTYPE_IPV6, Family::V6) => Some(offset),
        _ => None,
    }
}

/// The length of the IP packet at the start of `packet`, as its header states it (a short
/// frame carries Ethernet padding after it). `None` when the header states more than there
/// is, or less than itself.
pub(super) fn ip_len(packet: &[u8]) -> Option<usize> {
    let len = match Family::of(packet)? {
        Family::V4 => {
            let total = usize::from(ip::read_u16(packet.get(..4)?, 2));
            if total < IPV4_HEADER_LEN {
                return None;
            }
            total
        }
        Family::V6 => IPV6_HEADER_LEN + usize::from(ip::read_u16(packet.get(..6)?, 4)),
    };
    (len <= packet.len()).then_some(len)
}

/// What a received IP packet asks of the worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Class {
    /// ESP, or UDP to the NAT-T port: decapsulate. `spi` when the packet shows one (the owner
    /// of its SA can then be found); `None` for what the decapsulator will turn away or hand
    /// to the control plane (IKE, keepalives, fragments, truncated headers).
    Inbound { spi: Option<u32> },
    /// Anything else: plaintext for the outbound policy.
    Outbound,
}

/// Classifies an IP packet (as [`ip_offset`] found it). Every ESP or NAT-T packet that reaches
/// the worker is taken as addressed to this gateway, as the XDP classifier sends it: ESP that
/// hosts behind the gateway exchange with others is not told apart.
pub(super) fn classify(packet: &[u8], natt_port: u16) -> Class {
    let Some((protocol, transport, fragment)) = upper_layer(packet) else {
        // Too short to say: the decapsulator counts it.
        return Class::Inbound { spi: None };
    };
    match protocol {
        proto::ESP if fragment => Class::Inbound { spi: None },
        proto::ESP => Class::Inbound {
            spi: transport.get(..4).map(|spi| ip::read_u32(spi, 0)),
        },
        proto::UDP if !fragment && transport.len() >= UDP_HEADER_LEN => {
            if ip::read_u16(transport, 2) != natt_port {
                return Class::Outbound;
            }
            let payload = &transport[UDP_HEADER_LEN..];
            let spi = (classify_udp_payload(payload) == UdpPayload::Esp)
                .then(|| ip::read_u32(payload, 0));
            Class::Inbound { spi }
        }
        _ => Class::Outbound,
    }
}

/// The protocol after the IP header, the bytes from there on, and whether the packet is a
/// fragment (IPv4 offset or more-fragments, an IPv6 Fragment header).
fn upper_layer(packet: &[u8]) -> Option<(u8, &[u8], bool)> {
    match Family::of(packet)? {
        Family::V4 => {
            if packet.len() < IPV4_HEADER_LEN {
                return None;
            }
            let header_len = usize::from(packet[0] & 0x0F) * 4;
            let fragment = ip::read_u16(packet, 6) & IPV4_FRAGMENT_MASK != 0;
            Some((packet[9], packet.get(header_len..)?, fragment))
        }
        Family::V6 => {
            let (next_header_at, header_len) = ip::ipv6_insertion_point(packet)?;
            let protocol = *packet.get(next_header_at)?;
            Some((
                protocol,
                packet.get(header_len..)?,
                protocol == proto::FRAGMENT,
            ))
        }
    }
}

/// The destination address of an IP packet.
pub(super) fn destination(packet: &[u8]) -> Option<IpAddr> {
    match Family::of(packet)? {
        Family::V4 => {
            let bytes: [u8; 4] = packet.get(16..20)?.try_into().ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(bytes)))
        }
        Family::V6 => {
            let bytes: [u8; 16] = packet.get(24..40)?.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(bytes)))
        }
    }
}

/// Writes an untagged Ethernet header for the IP packet at `frame[start..]` into the bytes
/// just before it; returns where the frame now starts. `None` (nothing written) when there is
/// no room in front or the packet is not IP.
pub(super) fn write_ethernet(
    frame: &mut [u8],
    start: usize,
    source: [u8; 6],
    destination: [u8; 6],
) -> Option<usize> {
    let ethertype = match Family::of(frame.get(start..)?)? {
        Family::V4 => ETHERTYPE_IPV4,
        Family::V6 => ETHERTYPE_IPV6,
    };
    let header_at = start.checked_sub(ETHERNET_HEADER_LEN)?;
    let header = &mut frame[header_at..start];
    header[..6].copy_from_slice(&destination);
    header[6..12].copy_from_slice(&source);
    header[12..].copy_from_slice(&ethertype.to_be_bytes());
    Some(header_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4(protocol: u8, payload: &[u8]) -> Vec<u8> {
        let mut packet = vec![0u8; 20];
        packet[0] = 0x45;
        packet[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
        packet[9] = protocol;
        packet[16..20].copy_from_slice(&[192, 0, 2, 1]);
        packet.extend_from_slice(payload);
        packet
    }

    fn udp(destination_port: u16, payload: &[u8]) -> Vec<u8> {
        let mut datagram = vec![0u8; 8];
        datagram[2..4].copy_from_slice(&destination_port.to_be_bytes());
        datagram[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        datagram.extend_from_slice(payload);
        datagram
    }

    #[test]
    fn esp_natt_and_plaintext_are_told_apart() {
        let esp = ipv4(proto::ESP, &[0, 0, 0x12, 0x34, 0, 0, 0, 1]);
        assert_eq!(classify(&esp, 4500), Class::Inbound { spi: Some(0x1234) });
        let natt = ipv4(proto::UDP, &udp(4500, &[0, 0, 0x56, 0x78, 0, 0, 0, 1]));
        assert_eq!(classify(&natt, 4500), Class::Inbound { spi: Some(0x5678) });
        // IKE behind the non-ESP marker and keepalives: the decapsulator's to sort out.
        let ike = ipv4(proto::UDP, &udp(4500, &[0, 0, 0, 0, 1, 2, 3, 4]));
        assert_eq!(classify(&ike, 4500), Class::Inbound { spi: None });
        let keepalive = ipv4(proto::UDP, &udp(4500, &[0xFF]));
        assert_eq!(classify(&keepalive, 4500), Class::Inbound { spi: None });
        // Another NAT-T port configured: plain UDP to 4500 is plaintext.
        assert_eq!(classify(&natt, 4501), Class::Outbound);
        assert_eq!(classify(&ipv4(proto::TCP, &[0; 20]), 4500), Class::Outbound);
        let mut fragment = esp.clone();
        fragment[6] = 0x20; // more fragments
        assert_eq!(classify(&fragment, 4500), Class::Inbound { spi: None });
        assert_eq!(classify(&[0x45, 0], 4500), Class::Inbound { spi: None });
    }

    #[test]
    fn one_vlan_tag_is_stripped_and_others_are_not_ip() {
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x81, 0x00, 0x00, 0x05, 0x08, 0x00]);
        frame.extend_from_slice(&ipv4(proto::TCP, &[]));
        assert_eq!(ip_offset(&frame), Some(18));
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        // Untagged IPv4 EtherType, but what follows is the tag, not IPv4.
        assert_eq!(ip_offset(&frame), None);
        let mut plain = vec![0u8; 12];
        plain.extend_from_slice(&[0x08, 0x00]);
        plain.extend_from_slice(&ipv4(proto::TCP, &[]));
        assert_eq!(ip_offset(&plain), Some(14));
        plain[12..14].copy_from_slice(&[0x08, 0x06]); // ARP
        assert_eq!(ip_offset(&plain), None);
        plain[12..14].copy_from_slice(&[0x86, 0xDD]); // IPv6 EtherType, IPv4 inside
        assert_eq!(ip_offset(&plain), None);
        assert_eq!(ip_offset(&plain[..13]), None);
    }

    #[test]
    fn padding_is_not_part_of_the_packet() {
        let mut padded = ipv4(proto::UDP, &udp(7000, b"x"));
        let len = padded.len();
        padded.resize(46, 0);
        assert_eq!(ip_len(&padded), Some(len));
        assert_eq!(ip_len(&padded[..len - 1]), None);
        padded[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(ip_len(&padded), None);
        let mut v6 = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
        v6.resize(40 + 8 + 6, 0);
        assert_eq!(ip_len(&v6), Some(48));
        assert_eq!(ip_len(&v6[..47]), None);
        assert_eq!(ip_len(&[0x45, 0, 0]), None);
    }

    #[test]
    fn the_ethernet_header_goes_in_front() {
        let mut frame = vec![0u8; 14];
        frame.extend_from_slice(&ipv4(proto::UDP, &[]));
        let start = write_ethernet(&mut frame, 14, [1; 6], [2; 6]).unwrap();
        assert_eq!(start, 0);
        assert_eq!(&frame[..6], &[2; 6]);
        assert_eq!(&frame[6..12], &[1; 6]);
        assert_eq!(&frame[12..14], &[0x08, 0x00]);
        assert_eq!(
            destination(&frame[14..]),
            Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)))
        );
        // Ten bytes in front of the packet are not enough.
        let mut short = vec![0u8; 10];
        short.extend_from_slice(&ipv4(proto::UDP, &[]));
        assert_eq!(write_ethernet(&mut short, 10, [1; 6], [2; 6]), None);
        assert!(short[..10].iter().all(|&byte| byte == 0));
    }
}

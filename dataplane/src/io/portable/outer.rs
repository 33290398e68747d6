//! Rebuilding the outer IP (and UDP) header that a socket strips, so that the decapsulator sees
//! the whole packet it parses (see the module documentation of [`super`]).

use std::net::SocketAddr;

use crate::esp::ip::{
    proto, set_ipv4_checksum, write_u16, IPV4_HEADER_LEN, IPV6_HEADER_LEN, UDP_HEADER_LEN,
};

/// Room a receive frame keeps in front of the datagram for the headers written there: an IPv6
/// header and a UDP header.
pub const RX_HEADROOM: usize = IPV6_HEADER_LEN + UDP_HEADER_LEN;

/// The hop limit written into synthesised headers; nothing downstream reads it.
const SYNTHETIC_TTL: u8 = 64;

/// Writes the outer headers of a packet that arrived from `src` at `dst` directly in front of
/// `frame[payload_at..payload_at + payload_len]`: IP, plus UDP with the addresses' ports when
/// `udp` is set (ESP in UDP), or with next header ESP when it is not (a raw IPv6 socket).
/// `traffic_class` is the received TOS byte / traffic class (DSCP and ECN).
///
/// Returns where the packet now starts in the frame; `None` when the headers do not fit in
/// front of the payload, the lengths overflow their fields, or the two addresses are of
/// different families.
pub fn synthesize(
    frame: &mut [u8],
    payload_at: usize,
    payload_len: usize,
    src: SocketAddr,
    dst: SocketAddr,
    traffic_class: u8,
    udp: bool,
) -> Option<usize> {
    if payload_at.checked_add(payload_len)? > frame.len() {
        return None;
    }
    let udp_len = if udp { UDP_HEADER_LEN } else { 0 };
    let transport_len = u16::try_from(udp_len + payload_len).ok()?;
    let ip_len = match (src, dst) {
        (SocketAddr::V4(_), SocketAddr::V4(_)) => IPV4_HEADER_LEN,
        (SocketAddr::V6(_), SocketAddr::V6(_)) => IPV6_HEADER_LEN,
        _ => return None,
    };
    let start = payload_at.checked_sub(ip_len + udp_len)?;
    let header = &mut frame[start..payload_at];
    let protocol = if udp { proto::UDP } else { proto::ESP };
    match (src, dst) {
        (SocketAddr::V4(src), SocketAddr::V4(dst)) => {
            let total_len = u16::try_from(IPV4_HEADER_LEN + usize::from(transport_len)).ok()?;
            header[0] = 0x45;
            header[1] = traffic_class;
            write_u16(header, 2, total_len);
            // Identification, flags and fragment offset: a reassembled, unfragmented packet.
            header[4..8].fill(0);
            header[8] = SYNTHETIC_TTL;
            header[9] = protocol;
            header[12..16].copy_from_slice(&src.ip().octets());
            header[16..20].copy_from_slice(&dst.ip().octets());
            set_ipv4_checksum(&mut header[..IPV4_HEADER_LEN]);
        }
        (SocketAddr::V6(src), SocketAddr::V6(dst)) => {
            // Version 6, the traffic class, flow label 0.
            header[0] = 0x60 | (traffic_class >> 4);
            header[1] = traffic_class << 4;
            header[2] = 0;
            header[3] = 0;
            write_u16(header, 4, transport_len);
            header[6] = protocol;
            header[7] = SYNTHETIC_TTL;
            header[8..24].copy_from_slice(&src.ip().octets());
            header[24..40].copy_from_slice(&dst.ip().octets());
        }
        _ => return None,
    }
    if udp {
        let udp_header = &mut header[ip_len..];
        write_u16(udp_header, 0, src.port());
        write_u16(udp_header, 2, dst.port());
        write_u16(udp_header, 4, transport_len);
        // Checksum 0: the kernel verified the real one, and the ESP core does not look at it
        // (RFC 3948 §2.1; the ICV covers every byte it would).
        write_u16(udp_header, 6, 0);
    }
    Some(start)
}

/// Where an outer packet built by the ESP core is going, and what a socket that builds its own
/// IP (and UDP) header must send of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OuterFacts {
    /// Destination address, with the UDP destination port (0 without UDP).
    pub dst: SocketAddr,
    /// TOS byte / traffic class: DSCP and ECN.
    pub traffic_class: u8,
    /// The IP protocol after the IP header (and its IPv6 extension headers).
    pub protocol: u8,
    /// Offset of the first byte after the IP header, and after the UDP header when the
    /// protocol is UDP.
    pub payload_at: usize,
    /// End of the IP packet as its header states it.
    pub end: usize,
}

/// Reads the facts of an outer IPv4 or IPv6 packet; `None` when it is not a well-formed one.
pub(crate) fn outer_facts(packet: &[u8]) -> Option<OuterFacts> {
    use crate::esp::ip::{ipv6_insertion_point, read_u16, Family};
    let (dst_ip, traffic_class, protocol, header_len, end) = match Family::of(packet)? {
        Family::V4 => {
            let header = packet.get(..IPV4_HEADER_LEN)?;
            let header_len = usize::from(header[0] & 0x0F) * 4;
            let end = usize::from(read_u16(header, 2));
            let dst: [u8; 4] = header[16..20].try_into().ok()?;
            (dst.into(), header[1], header[9], header_len, end)
        }
        Family::V6 => {
            let header = packet.get(..IPV6_HEADER_LEN)?;
            let end = IPV6_HEADER_LEN + usize::from(read_u16(header, 4));
            let (next_header_at, header_len) = ipv6_insertion_point(packet.get(..end)?)?;
            let dst: [u8; 16] = header[24..40].try_into().ok()?;
            let traffic_class = (header[0] << 4) | (header[1] >> 4);
            (
                dst.into(),
                traffic_class,
                packet[next_header_at],
                header_len,
                end,
            )
        }
    };
    if header_len < IPV4_HEADER_LEN || header_len > end || end > packet.len() {
        return None;
    }
    let (port, payload_at) = if protocol == proto::UDP {
        let udp = packet.get(header_len..header_len + UDP_HEADER_LEN)?;
        (read_u16(udp, 2), header_len + UDP_HEADER_LEN)
    } else {
        (0, header_len)
    };
    if payload_at > end {
        return None;
    }
    Some(OuterFacts {
        dst: SocketAddr::new(dst_ip, port),
        traffic_class,
        protocol,
        payload_at,
        end,
    })
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

    use super::*;
    use crate::esp::{
        CipherSuite, Decapsulator, DropReason, Endpoints, InboundSa, OutboundSa, PacketBuf,
        SaParams, UdpEncap, Verdict, ENCAP_HEADROOM,
    };

    const KEYMAT: [u8; 20] = [7; 20];

    fn inner_v4(payload: &[u8]) -> Vec<u8> {
        let mut packet = vec![0u8; 28 + payload.len()];
        packet[0] = 0x45;
        write_u16(&mut packet, 2, (28 + payload.len()) as u16);
        packet[8] = 64;
        packet[9] = proto::UDP;
        packet[12..16].copy_from_slice(&[10, 1, 0, 2]);
        packet[16..20].copy_from_slice(&[10, 2, 0, 2]);
        set_ipv4_checksum(&mut packet[..20]);
        write_u16(&mut packet, 24, (8 + payload.len()) as u16);
        packet[28..].copy_from_slice(payload);
        packet
    }

    fn mirrored(endpoints: Endpoints) -> Endpoints {
        match endpoints {
            Endpoints::V4 { local, remote } => Endpoints::V4 {
                local: remote,
                remote: local,
            },
            Endpoints::V6 { local, remote } => Endpoints::V6 {
                local: remote,
                remote: local,
            },
        }
    }

    fn pair(endpoints: Endpoints, udp: bool) -> (OutboundSa, InboundSa) {
        let mut params = SaParams::tunnel(0x1234, CipherSuite::Aes128Gcm16, endpoints);
        params.udp_encap = udp.then_some(UdpEncap::NATT_DEFAULT);
        let outbound = OutboundSa::new(params, &KEYMAT).unwrap();
        params.endpoints = mirrored(endpoints);
        (outbound, InboundSa::new(params, &KEYMAT).unwrap())
    }

    /// Encapsulates, strips what the kernel strips, synthesises it back and decapsulates.
    fn round_trip(endpoints: Endpoints, udp: bool) {
        let (mut outbound, mut inbound) = pair(endpoints, udp);
        let plaintext = inner_v4(b"through the socket and back");
        let mut frame = vec![0u8; 256];
        frame[ENCAP_HEADROOM..ENCAP_HEADROOM + plaintext.len()].copy_from_slice(&plaintext);
        let mut packet = PacketBuf::new(&mut frame, ENCAP_HEADROOM, plaintext.len()).unwrap();
        outbound.encap(&mut packet).unwrap();
        let wire = packet.data().to_vec();
        let facts = outer_facts(&wire).unwrap();
        assert_eq!(facts.end, wire.len());
        assert_eq!(facts.protocol, if udp { proto::UDP } else { proto::ESP });
        let (src, dst) = match endpoints {
            Endpoints::V4 { local, remote } => {
                assert_eq!(facts.dst.ip(), remote);
                (
                    SocketAddr::new(local.into(), 4500),
                    SocketAddr::new(remote.into(), 4500),
                )
            }
            Endpoints::V6 { local, remote } => {
                assert_eq!(facts.dst.ip(), remote);
                (
                    SocketAddr::new(local.into(), 4500),
                    SocketAddr::new(remote.into(), 4500),
                )
            }
        };
        assert_eq!(facts.dst.port(), if udp { 4500 } else { 0 });
        let payload = &wire[facts.payload_at..facts.end];

        let mut rx = vec![0u8; 256];
        rx[RX_HEADROOM..RX_HEADROOM + payload.len()].copy_from_slice(payload);
        let start = synthesize(&mut rx, RX_HEADROOM, payload.len(), src, dst, 0, udp).unwrap();
        let len = RX_HEADROOM + payload.len() - start;
        let mut received = PacketBuf::new(&mut rx, start, len).unwrap();
        let mut decapsulator = Decapsulator::new(4500);
        assert_eq!(
            decapsulator.decap(&mut inbound, &mut received),
            Verdict::Forward
        );
        assert_eq!(received.data(), &plaintext[..]);
    }

    const V4: Endpoints = Endpoints::V4 {
        local: Ipv4Addr::new(192, 0, 2, 1),
        remote: Ipv4Addr::new(192, 0, 2, 2),
    };
    const V6: Endpoints = Endpoints::V6 {
        local: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
        remote: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2),
    };

    #[test]
    fn synthesised_headers_satisfy_the_decapsulator() {
        round_trip(V4, true);
        round_trip(V6, true);
        round_trip(V6, false);
    }

    #[test]
    fn ike_and_keepalives_keep_their_verdicts() {
        let src: SocketAddr = "192.0.2.2:4500".parse().unwrap();
        let dst: SocketAddr = "192.0.2.1:4500".parse().unwrap();
        let mut decapsulator = Decapsulator::new(4500);
        let (_, mut inbound) = pair(V4, true);
        for (payload, verdict) in [
            (&[0u8, 0, 0, 0, 1, 2, 3][..], Verdict::ToControlPlane),
            (&[0xFF][..], Verdict::Drop(DropReason::NattKeepalive)),
        ] {
            let mut rx = vec![0u8; 128];
            rx[RX_HEADROOM..RX_HEADROOM + payload.len()].copy_from_slice(payload);
            let start = synthesize(&mut rx, RX_HEADROOM, payload.len(), src, dst, 0, true).unwrap();
            let mut packet =
                PacketBuf::new(&mut rx, start, RX_HEADROOM + payload.len() - start).unwrap();
            assert_eq!(decapsulator.decap(&mut inbound, &mut packet), verdict);
            assert_eq!(&packet.data()[28..], payload);
        }
    }

    #[test]
    fn synthesis_refuses_what_does_not_fit() {
        let v4: SocketAddr = "192.0.2.1:4500".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:4500".parse().unwrap();
        let mut frame = vec![0u8; 100];
        assert_eq!(synthesize(&mut frame, 48, 10, v4, v6, 0, true), None);
        assert_eq!(synthesize(&mut frame, 20, 10, v4, v4, 0, true), None);
        assert_eq!(synthesize(&mut frame, 48, 60, v4, v4, 0, true), None);
        assert_eq!(synthesize(&mut frame, 48, 10, v4, v4, 0, true), Some(20));
        assert_eq!(synthesize(&mut frame, 48, 10, v6, v6, 0, true), Some(0));
        let mut big = vec![0u8; 70_000];
        assert_eq!(synthesize(&mut big, 48, 65_530, v4, v4, 0, true), None);
    }

    #[test]
    fn outer_facts_reject_garbage() {
        assert_eq!(outer_facts(&[]), None);
        assert_eq!(outer_facts(&[0x45; 19]), None);
        let mut packet = inner_v4(b"x");
        write_u16(&mut packet, 2, 200);
        assert_eq!(outer_facts(&packet), None);
    }
}

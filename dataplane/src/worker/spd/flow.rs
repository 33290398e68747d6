//! The selector fields of a plaintext packet (RFC 4301 §4.4.1.1), as the SPD matches them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::esp::ip::{self, proto, Family};
use crate::table::Flow;

/// Protocols whose first four payload bytes are source and destination ports.
fn has_ports(protocol: u8) -> bool {
    matches!(
        protocol,
        proto::TCP | proto::UDP | 132 /* SCTP */ | 136 /* UDP-Lite */
    )
}

/// The selector fields of a plaintext IP packet, or `None` when it is too short to say.
pub fn flow_of(packet: &[u8]) -> Option<Flow> {
    let (source, destination, protocol, transport) = match Family::of(packet)? {
        Family::V4 => {
            let header_len = usize::from(packet.first()? & 0x0F) * 4;
            if header_len < ip::IPV4_HEADER_LEN || packet.len() < header_len {
                return None;
            }
            let source: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
            let destination: [u8; 4] = packet.get(16..20)?.try_into().ok()?;
            // A non-first fragment carries no ports (RFC 4301 §7).
            let first_fragment = ip::read_u16(packet, 6) & 0x1FFF == 0;
            (
                IpAddr::V4(Ipv4Addr::from(source)),
                IpAddr::V4(Ipv4Addr::from(destination)),
                packet[9],
                first_fragment.then(|| &packet[header_len..]),
            )
        }
        Family::V6 => {
            let (next_header_at, header_len) = ip::ipv6_insertion_point(packet)?;
            let source: [u8; 16] = packet.get(8..24)?.try_into().ok()?;
            let destination: [u8; 16] = packet.get(24..40)?.try_into().ok()?;
            let protocol = packet[next_header_at];
            (
                IpAddr::V6(Ipv6Addr::from(source)),
                IpAddr::V6(Ipv6Addr::from(destination)),
                protocol,
                (protocol != proto::FRAGMENT).then(|| &packet[header_len..]),
            )
        }
    };
    let ports = match transport {
        Some(t) if has_ports(protocol) && t.len() >= 4 => {
            Some((ip::read_u16(t, 0), ip::read_u16(t, 2)))
        }
        _ => None,
    };
    Some(Flow {
        source,
        destination,
        protocol,
        ports,
    })
}

/// The flow a policy of ours names for a packet coming the other way: a decrypted inbound
/// packet's source is our remote, its destination our local (RFC 4301 §5.2).
pub fn reversed(flow: &Flow) -> Flow {
    Flow {
        source: flow.destination,
        destination: flow.source,
        protocol: flow.protocol,
        ports: flow
            .ports
            .map(|(source, destination)| (destination, source)),
    }
}

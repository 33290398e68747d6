//! A worker's copy of the outbound SPD and the selector fields of a plaintext packet.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::esp::ip::{self, proto, Family};
use crate::table::{Flow, Policy, SlotId, TableReader};

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

/// The policies as of one SPD version. Matching is a first-match scan in priority order:
/// right for the tens of policies of a site-to-site gateway, not for 100k tunnels, which need
/// an index by destination (a later step).
#[derive(Debug, Default)]
pub struct SpdMirror {
    version: Option<u64>,
    policies: Vec<Policy>,
}

impl SpdMirror {
    /// Brings the copy up to date; one atomic load when nothing changed. `false` when the
    /// writer was mid-update (the old copy stays; try again next batch).
    pub fn refresh(&mut self, table: &TableReader) -> bool {
        if self.is_current(table) {
            return true;
        }
        match table.read_policies(&mut self.policies) {
            Ok(version) => {
                self.version = Some(version);
                true
            }
            Err(_) => false,
        }
    }

    /// Whether the copy is of the table's current SPD: one atomic load.
    pub fn is_current(&self, table: &TableReader) -> bool {
        self.version == Some(table.spd_version())
    }

    /// The outbound SA for a plaintext packet, if a policy covers it.
    pub fn lookup(&self, flow: &Flow) -> Option<SlotId> {
        self.policies
            .iter()
            .find(|policy| policy.matches(flow))
            .map(|policy| policy.outbound)
    }

    /// Whether a decrypted inbound packet with selector fields `flow` may have come through
    /// the Child SA whose outbound SA is in `outbound` (RFC 4301 §5.2): its reverse (their
    /// source is our remote, their destination our local) matches a policy into `outbound`.
    /// Any such policy, not only the first match: while a rekeyed Child SA takes over, the
    /// older one has the same selectors and still receives, though the newer one's policies
    /// come first.
    pub fn allows_inbound(&self, outbound: SlotId, flow: &Flow) -> bool {
        let reverse = Flow {
            source: flow.destination,
            destination: flow.source,
            protocol: flow.protocol,
            ports: flow
                .ports
                .map(|(source, destination)| (destination, source)),
        };
        self.policies
            .iter()
            .any(|policy| policy.outbound == outbound && policy.matches(&reverse))
    }

    pub fn len(&self) -> usize {
        self.policies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{AddressRange, ANY_PORT};

    fn prefix(text: &str) -> AddressRange {
        let (address, len) = text.split_once('/').unwrap();
        AddressRange::prefix(address.parse().unwrap(), len.parse().unwrap()).unwrap()
    }

    fn policy(local: &str, remote: &str, outbound: u32) -> Policy {
        Policy {
            local: prefix(local),
            remote: prefix(remote),
            protocol: None,
            local_ports: ANY_PORT,
            remote_ports: ANY_PORT,
            outbound: SlotId(outbound),
        }
    }

    /// A packet from the peer's side: `source` is theirs, `destination` ours.
    fn from_peer(source: &str, destination: &str, ports: Option<(u16, u16)>) -> Flow {
        Flow {
            source: source.parse().unwrap(),
            destination: destination.parse().unwrap(),
            protocol: 17,
            ports,
        }
    }

    #[test]
    fn inbound_packets_match_their_child_sas_policies_reversed() {
        let mirror = SpdMirror {
            version: Some(2),
            policies: vec![
                // A rekey under way: the newer pair (outbound slot 3) first, the older one
                // (slot 1) with the same selectors after it.
                policy("10.2.0.0/24", "10.1.0.0/24", 3),
                policy("10.2.0.0/24", "10.1.0.0/24", 1),
                Policy {
                    protocol: Some(17),
                    local_ports: (1000, 2000),
                    remote_ports: (53, 53),
                    ..policy("10.2.0.0/24", "10.1.3.0/24", 5)
                },
            ],
        };
        let inside = from_peer("10.1.0.5", "10.2.0.7", Some((5000, 6000)));
        assert!(mirror.allows_inbound(SlotId(3), &inside));
        // Not the first match, still a match: the older SA keeps receiving.
        assert!(mirror.allows_inbound(SlotId(1), &inside));
        // Slot 5's selectors do not cover it, nor does a slot with no policies.
        assert!(!mirror.allows_inbound(SlotId(5), &inside));
        assert!(!mirror.allows_inbound(SlotId(7), &inside));
        for outside in [
            from_peer("10.9.9.9", "10.2.0.7", None),
            from_peer("10.1.0.5", "10.3.0.7", None),
            // Our side as the source: the unreversed direction.
            from_peer("10.2.0.7", "10.1.0.5", None),
            from_peer("fd00::1", "fd00::2", None),
        ] {
            assert!(!mirror.allows_inbound(SlotId(1), &outside), "{outside:?}");
        }
        // Ports: their source port is the policy's remote port.
        let dns = |ports| from_peer("10.1.3.9", "10.2.0.7", ports);
        assert!(mirror.allows_inbound(SlotId(5), &dns(Some((53, 1500)))));
        assert!(!mirror.allows_inbound(SlotId(5), &dns(Some((1500, 53)))));
        assert!(!mirror.allows_inbound(SlotId(5), &dns(Some((53, 999)))));
        // No ports to check (a non-first fragment): only port-less selectors take it.
        assert!(!mirror.allows_inbound(SlotId(5), &dns(None)));
        assert!(mirror.allows_inbound(SlotId(1), &from_peer("10.1.0.5", "10.2.0.7", None)));
    }
}

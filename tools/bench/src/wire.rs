//! What a packet costs on the wire between the gateways, as an estimate from the inner size:
//! the exact ESP tunnel-mode layout for AES-GCM and ChaCha20-Poly1305 (RFC 4106, RFC 7634), and
//! Ethernet's framing on top.

use serde::{Deserialize, Serialize};

use crate::size::{PacketSize, IMIX_CYCLE};

/// Ethernet per frame beyond the IP packet: header 14, FCS 4, preamble and start 8,
/// inter-frame gap 12. What a line-rate figure counts.
pub const ETHERNET_FRAMING: usize = 14 + 4 + 8 + 12;

/// How the inner packet travels between the gateways.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encapsulation {
    /// Routed as it is (no tunnel).
    Plain,
    /// ESP tunnel mode over IPv4 with an 8-byte IV and a 16-byte ICV, in UDP when `udp`.
    EspTunnel {
        /// ESP in UDP (RFC 3948): 8 bytes more.
        udp: bool,
    },
}

impl Encapsulation {
    /// The IP packet on the wire for an inner packet of `inner` bytes.
    pub fn outer_ip_len(self, inner: usize) -> usize {
        match self {
            Encapsulation::Plain => inner,
            Encapsulation::EspTunnel { udp } => {
                // Outer IPv4, SPI and sequence, IV; the inner packet with pad length and next
                // header padded to four bytes; the ICV.
                let body = (inner + 2).div_ceil(4) * 4;
                20 + if udp { 8 } else { 0 } + 8 + 8 + body + 16
            }
        }
    }

    /// Mean bytes on the wire per packet of `size`, Ethernet framing included.
    pub fn mean_wire_bytes(self, size: PacketSize) -> f64 {
        match size {
            PacketSize::Fixed(len) => {
                (self.outer_ip_len(usize::from(len)) + ETHERNET_FRAMING) as f64
            }
            PacketSize::Imix => {
                let total: usize = IMIX_CYCLE
                    .iter()
                    .map(|&len| self.outer_ip_len(usize::from(len)) + ETHERNET_FRAMING)
                    .sum();
                total as f64 / IMIX_CYCLE.len() as f64
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esp_tunnel_layout_matches_a_hand_count() {
        // 64 inner: 64 + 2 = 66 → 68 padded; 20 + 8 + 8 + 68 + 16 = 120.
        assert_eq!(
            Encapsulation::EspTunnel { udp: false }.outer_ip_len(64),
            120
        );
        // 1400: 1402 → 1404; 20 + 8 + 8 + 8 + 1404 + 16 = 1464, under a 1500 MTU.
        assert_eq!(
            Encapsulation::EspTunnel { udp: true }.outer_ip_len(1400),
            1464
        );
        assert_eq!(Encapsulation::Plain.outer_ip_len(512), 512);
    }

    #[test]
    fn wire_bytes_add_ethernet_framing_and_average_imix() {
        assert_eq!(
            Encapsulation::Plain.mean_wire_bytes(PacketSize::Fixed(64)),
            102.0
        );
        let imix = Encapsulation::Plain.mean_wire_bytes(PacketSize::Imix);
        assert!((imix - (344.0 + 38.0)).abs() < 1e-9);
    }
}

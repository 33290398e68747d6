//! How long an outbound SA makes a packet, and the longest inner packet whose ESP packet still
//! fits a link: what a worker checks before it encapsulates, and the MTU it tells a sender
//! whose packet does not fit (RFC 4301 §8.2.1).
//!
//! The arithmetic follows the layout `OutboundSa::encap` writes (esp/encap.rs): outer IP
//! header (tunnel mode), NAT-T UDP header, ESP header, IV, the payload (in tunnel mode padded
//! to the SA's TFC length), padding to a multiple of 4 with the two trailer bytes, ICV. The
//! tests check it against real encapsulation, for every SA shape and many lengths.

use crate::esp::ip::{IPV4_HEADER_LEN, IPV6_HEADER_LEN, UDP_HEADER_LEN};
use crate::esp::{Endpoints, Mode, SaParams, ICV_LEN, IV_LEN};

/// SPI and sequence number.
const ESP_HEADER_LEN: usize = 8;
/// Pad length and next header.
const TRAILER_LEN: usize = 2;

/// The bytes an SA adds whatever the packet: everything but the payload, its padding and the
/// trailer.
fn fixed_overhead(params: &SaParams) -> usize {
    let outer_ip = match (params.mode, params.endpoints) {
        (Mode::Tunnel, Endpoints::V4 { .. }) => IPV4_HEADER_LEN,
        (Mode::Tunnel, Endpoints::V6 { .. }) => IPV6_HEADER_LEN,
        // The packet's own header stays in front; what the ESP part adds comes after it,
        // and the header's length is a multiple of 4, so the padding is the same as if it
        // were not there.
        (Mode::Transport, _) => 0,
    };
    let udp = if params.udp_encap.is_some() {
        UDP_HEADER_LEN
    } else {
        0
    };
    outer_ip + udp + ESP_HEADER_LEN + IV_LEN + ICV_LEN
}

/// The TFC length every inner packet is padded to (tunnel mode), 0 for none.
fn tfc_len(params: &SaParams) -> usize {
    match params.mode {
        Mode::Tunnel => params.tfc_pad_to.map_or(0, usize::from),
        Mode::Transport => 0,
    }
}

/// The length of the IP packet the SA with `params` makes of an IP packet of `inner_len`
/// bytes.
pub(super) fn outer_len(params: &SaParams, inner_len: usize) -> usize {
    let payload = inner_len.max(tfc_len(params));
    fixed_overhead(params) + (payload + TRAILER_LEN).next_multiple_of(4)
}

/// The longest inner packet whose ESP packet is at most `mtu` bytes long; `None` when not even
/// an empty one fits.
pub(super) fn inner_mtu(params: &SaParams, mtu: u32) -> Option<u32> {
    let room = usize::try_from(mtu)
        .ok()?
        .checked_sub(fixed_overhead(params))?;
    // The padded payload and trailer take a multiple of 4.
    let longest = (room / 4 * 4).checked_sub(TRAILER_LEN)?;
    // Below the TFC length every packet takes the TFC length's room.
    if longest < tfc_len(params) {
        return None;
    }
    u32::try_from(longest).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esp::{CipherSuite, OutboundSa, PacketBuf, UdpEncap};

    /// An IPv4 or IPv6 packet of `len` bytes (header lengths right, payload zero).
    fn packet(v6: bool, len: usize) -> Vec<u8> {
        let mut packet = vec![0u8; len];
        if v6 {
            packet[0] = 0x60;
            packet[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
            packet[6] = 17;
        } else {
            packet[0] = 0x45;
            packet[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            packet[9] = 17;
        }
        packet
    }

    fn shapes() -> Vec<SaParams> {
        let v4 = Endpoints::V4 {
            local: "192.0.2.1".parse().unwrap(),
            remote: "192.0.2.2".parse().unwrap(),
        };
        let v6 = Endpoints::V6 {
            local: "2001:db8::1".parse().unwrap(),
            remote: "2001:db8::2".parse().unwrap(),
        };
        let mut all = Vec::new();
        for endpoints in [v4, v6] {
            for udp in [None, Some(UdpEncap::NATT_DEFAULT)] {
                for mode in [Mode::Tunnel, Mode::Transport] {
                    for tfc in [None, Some(300)] {
                        let mut params = SaParams::tunnel(7, CipherSuite::Aes128Gcm16, endpoints);
                        params.udp_encap = udp;
                        params.mode = mode;
                        params.tfc_pad_to = tfc;
                        all.push(params);
                    }
                }
            }
        }
        all
    }

    /// What the ESP core really makes of a packet of `len` bytes of the SA's family.
    fn encapsulated_len(params: &SaParams, len: usize) -> usize {
        let v6 = matches!(params.endpoints, Endpoints::V6 { .. });
        let mut sa = OutboundSa::new(*params, &[7u8; 20]).unwrap();
        let inner = packet(v6, len);
        let mut buffer = vec![0u8; 128 + len + 512];
        buffer[128..128 + len].copy_from_slice(&inner);
        let mut buf = PacketBuf::new(&mut buffer, 128, len).unwrap();
        sa.encap(&mut buf).unwrap();
        buf.len()
    }

    #[test]
    fn the_arithmetic_agrees_with_encapsulation() {
        for params in shapes() {
            for len in (40..=200).chain(1270..1290).chain([1400, 1500, 9000]) {
                assert_eq!(
                    outer_len(&params, len),
                    encapsulated_len(&params, len),
                    "{params:?}, {len} bytes"
                );
            }
        }
    }

    #[test]
    fn the_inner_mtu_is_the_longest_packet_that_fits() {
        for params in shapes() {
            for mtu in (1280..1300).chain([1400, 1500, 9000]) {
                let longest = inner_mtu(&params, mtu).expect("something fits") as usize;
                assert!(encapsulated_len(&params, longest) <= mtu as usize);
                assert!(
                    encapsulated_len(&params, longest + 1) > mtu as usize,
                    "{params:?}: {} fits {mtu}",
                    longest + 1
                );
            }
        }
    }

    #[test]
    fn known_values_and_links_too_small_for_anything() {
        let mut params = SaParams::tunnel(
            7,
            CipherSuite::Aes256Gcm16,
            Endpoints::V4 {
                local: "192.0.2.1".parse().unwrap(),
                remote: "192.0.2.2".parse().unwrap(),
            },
        );
        // 20 + 8 + 8 + 1446 + 2 + 16 = 1500: what Linux reports through a GCM tunnel.
        assert_eq!(inner_mtu(&params, 1500), Some(1446));
        params.udp_encap = Some(UdpEncap::NATT_DEFAULT);
        assert_eq!(inner_mtu(&params, 1500), Some(1438));
        assert_eq!(inner_mtu(&params, 68), Some(6));
        assert_eq!(inner_mtu(&params, 20), None);
        assert_eq!(inner_mtu(&params, 0), None);
        params.tfc_pad_to = Some(1450);
        assert_eq!(inner_mtu(&params, 1500), None);
    }
}

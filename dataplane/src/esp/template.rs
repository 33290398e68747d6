//! The headers in front of a tunnel-mode SA's ESP payload — outer IP, the NAT-T UDP header,
//! the SPI — built once with the SA. Per packet only the fields that change are written, and
//! the IPv4 checksum is finished from a precomputed sum of the fixed fields, as VPP and DPDK
//! do: the headers are the same for every packet of an SA but for lengths, ID and TOS.

use super::ip::{
    fold_checksum, ones_complement_sum, proto, udp_ipv6_checksum, write_u16, IPV4_DF,
    IPV4_HEADER_LEN, IPV6_HEADER_LEN, UDP_HEADER_LEN,
};
use super::sa::{Endpoints, UdpEncap};

/// The largest template: IPv6, UDP and the SPI.
const MAX_LEN: usize = IPV6_HEADER_LEN + UDP_HEADER_LEN + 4;

/// What an outer header takes from each packet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PacketFields {
    /// DSCP and ECN for the TOS byte or traffic class.
    pub traffic_class: u8,
    pub dont_fragment: bool,
    pub flow_label: u32,
    /// IPv4 identification.
    pub id: u16,
}

#[derive(Clone, Debug)]
pub(crate) struct OuterTemplate {
    bytes: [u8; MAX_LEN],
    ip_len: usize,
    udp: bool,
    /// IPv4: the one's-complement sum of the header with TOS, length, ID, flags and checksum
    /// zero.
    fixed_sum: u32,
    ipv6_addresses: Option<([u8; 16], [u8; 16])>,
}

impl OuterTemplate {
    pub(crate) fn new(
        endpoints: Endpoints,
        udp_encap: Option<UdpEncap>,
        ttl: u8,
        spi: u32,
    ) -> Self {
        let mut bytes = [0u8; MAX_LEN];
        let payload_protocol = if udp_encap.is_some() {
            proto::UDP
        } else {
            proto::ESP
        };
        let (ip_len, ipv6_addresses) = match endpoints {
            Endpoints::V4 { local, remote } => {
                bytes[0] = 0x45;
                bytes[8] = ttl;
                bytes[9] = payload_protocol;
                bytes[12..16].copy_from_slice(&local.octets());
                bytes[16..20].copy_from_slice(&remote.octets());
                (IPV4_HEADER_LEN, None)
            }
            Endpoints::V6 { local, remote } => {
                bytes[0] = 0x60;
                bytes[6] = payload_protocol;
                bytes[7] = ttl;
                bytes[8..24].copy_from_slice(&local.octets());
                bytes[24..40].copy_from_slice(&remote.octets());
                (IPV6_HEADER_LEN, Some((local.octets(), remote.octets())))
            }
        };
        let mut spi_at = ip_len;
        if let Some(ports) = udp_encap {
            write_u16(&mut bytes, ip_len, ports.local_port);
            write_u16(&mut bytes, ip_len + 2, ports.remote_port);
            spi_at += UDP_HEADER_LEN;
        }
        bytes[spi_at..spi_at + 4].copy_from_slice(&spi.to_be_bytes());
        Self {
            fixed_sum: ones_complement_sum(&bytes[..IPV4_HEADER_LEN], 0),
            bytes,
            ip_len,
            udp: udp_encap.is_some(),
            ipv6_addresses,
        }
    }

    /// Bytes from the start of the outer packet to the sequence number.
    pub(crate) fn len(&self) -> usize {
        self.ip_len + if self.udp { UDP_HEADER_LEN } else { 0 } + 4
    }

    /// Writes the headers at the front of `packet`, the whole outer packet with the ESP part
    /// already sealed (the UDP checksum over IPv6 covers it).
    #[inline]
    pub(crate) fn write(&self, packet: &mut [u8], fields: PacketFields) {
        let total_len = packet.len();
        let len = self.len();
        packet[..len].copy_from_slice(&self.bytes[..len]);
        if self.ipv6_addresses.is_none() {
            let flags = if fields.dont_fragment { IPV4_DF } else { 0 };
            packet[1] = fields.traffic_class;
            write_u16(packet, 2, total_len as u16);
            write_u16(packet, 4, fields.id);
            write_u16(packet, 6, flags);
            let sum = self.fixed_sum
                + u32::from(fields.traffic_class)
                + total_len as u32
                + u32::from(fields.id)
                + u32::from(flags);
            write_u16(packet, 10, fold_checksum(sum));
        } else {
            let first_word = (6u32 << 28)
                | (u32::from(fields.traffic_class) << 20)
                | (fields.flow_label & 0xF_FFFF);
            packet[..4].copy_from_slice(&first_word.to_be_bytes());
            write_u16(packet, 4, (total_len - IPV6_HEADER_LEN) as u16);
        }
        if self.udp {
            let udp_at = self.ip_len;
            write_u16(packet, udp_at + 4, (total_len - udp_at) as u16);
            // Zero over IPv4 (RFC 3948 §2.1); over IPv6 UDP needs a real one (RFC 8200 §8.1).
            if let Some((src, dst)) = &self.ipv6_addresses {
                let checksum = udp_ipv6_checksum(src, dst, &packet[udp_at..]);
                write_u16(packet, udp_at + 6, checksum);
            }
        }
    }
}

//! Probe frames for the generators that write whole packets (AF_XDP, AF_PACKET, raw IP):
//! Ethernet, IPv4 and UDP headers computed once per packet length, then per packet only the
//! probe ([`crate::payload`]) is written or patched. With an outbound ESP SA the inner packet
//! is encrypted in place behind the outer headers (tunnel mode), as a gateway would send it.
//! Sans-IO: the callers own the buffers.

use std::net::Ipv4Addr;

use xipsec_dataplane::esp::{OutboundSa, PacketBuf, ENCAP_HEADROOM, ENCAP_TAILROOM};

use crate::mac::Mac;
use crate::payload::{self, Probe};
use crate::size::{PacketSize, IP_UDP_HEADERS};

/// An Ethernet header without VLAN tags.
pub const ETH_LEN: usize = 14;

/// Ethernet, IPv4 and UDP headers of a probe frame.
pub const HEADERS_LEN: usize = ETH_LEN + IP_UDP_HEADERS;

/// The shortest inner packet that holds a probe: IPv4 and UDP headers and the probe.
pub const MIN_PROBE_PACKET: usize = IP_UDP_HEADERS + payload::LEN;

/// The UDP source port of probes written by these generators (the socket generator's is the
/// kernel's choice).
pub const PROBE_SRC_PORT: u16 = 47000;

/// Where a probe goes, on the link and in IP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    /// The generator's interface.
    pub src_mac: Mac,
    /// The next hop: the gateway's interface, or the device under test's.
    pub dst_mac: Mac,
    /// The probe's source address.
    pub src: Ipv4Addr,
    /// The sink's address.
    pub dst: Ipv4Addr,
    /// UDP source port.
    pub src_port: u16,
    /// UDP destination port (the sink's).
    pub dst_port: u16,
}

/// The one's-complement checksum of an IPv4 header (RFC 1071), over 16-bit words.
pub fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// Writes the IPv4 and UDP headers of a probe packet `len` bytes long (IP total length) into
/// `out`: no options, TTL 64, DF clear, ID 0, UDP checksum 0 (none, allowed over IPv4).
pub fn write_ip_udp_headers(out: &mut [u8; IP_UDP_HEADERS], flow: &Flow, len: u16) {
    out.fill(0);
    out[0] = 0x45;
    out[2..4].copy_from_slice(&len.to_be_bytes());
    out[8] = 64;
    out[9] = 17;
    out[12..16].copy_from_slice(&flow.src.octets());
    out[16..20].copy_from_slice(&flow.dst.octets());
    let checksum = ipv4_checksum(&out[..20]);
    out[10..12].copy_from_slice(&checksum.to_be_bytes());
    out[20..22].copy_from_slice(&flow.src_port.to_be_bytes());
    out[22..24].copy_from_slice(&flow.dst_port.to_be_bytes());
    out[24..26].copy_from_slice(&len.saturating_sub(20).to_be_bytes());
}

/// The headers of every length a [`PacketSize`] produces, built once: one for a fixed size,
/// three for IMIX.
#[derive(Clone, Debug)]
pub struct ProbeTemplates {
    /// (inner length, Ethernet + IPv4 + UDP headers).
    entries: Vec<(u16, [u8; HEADERS_LEN])>,
}

impl ProbeTemplates {
    /// Headers for `flow` at every length of `size`.
    pub fn new(flow: &Flow, size: PacketSize) -> ProbeTemplates {
        let mut lengths: Vec<u16> = match size {
            PacketSize::Fixed(len) => vec![len],
            PacketSize::Imix => crate::size::IMIX_CYCLE.to_vec(),
        };
        lengths.sort_unstable();
        lengths.dedup();
        let entries = lengths
            .into_iter()
            .map(|len| {
                let mut headers = [0u8; HEADERS_LEN];
                headers[..6].copy_from_slice(&flow.dst_mac.0);
                headers[6..12].copy_from_slice(&flow.src_mac.0);
                headers[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
                let ip: &mut [u8; IP_UDP_HEADERS] = (&mut headers[ETH_LEN..])
                    .try_into()
                    .expect("HEADERS_LEN - ETH_LEN == IP_UDP_HEADERS");
                write_ip_udp_headers(ip, flow, len);
                (len, headers)
            })
            .collect();
        ProbeTemplates { entries }
    }

    #[inline]
    fn headers(&self, len: u16) -> Option<&[u8; HEADERS_LEN]> {
        if usize::from(len) < MIN_PROBE_PACKET {
            return None;
        }
        self.entries
            .iter()
            .find(|(l, _)| *l == len)
            .map(|(_, headers)| headers)
    }

    /// Writes the headers of an inner packet `len` bytes long and the probe at the start of
    /// `frame`; the rest of the payload is left as it is (the caller keeps it zero). Returns
    /// the frame's length, or `None` when `len` is not one of this template's lengths or the
    /// frame is too short.
    #[inline]
    pub fn write_frame(&self, frame: &mut [u8], len: u16, probe: &Probe) -> Option<usize> {
        let total = ETH_LEN + usize::from(len);
        let headers = self.headers(len)?;
        let frame = frame.get_mut(..total)?;
        frame[..HEADERS_LEN].copy_from_slice(headers);
        probe.write(&mut frame[HEADERS_LEN..HEADERS_LEN + payload::LEN]);
        Some(total)
    }

    /// Writes the IP packet alone (no Ethernet header) `len` bytes long at the start of
    /// `packet`, payload after the probe zeroed. Returns its length.
    #[inline]
    pub fn write_ip_packet(&self, packet: &mut [u8], len: u16, probe: &Probe) -> Option<usize> {
        let headers = self.headers(len)?;
        let packet = packet.get_mut(..usize::from(len))?;
        packet[..IP_UDP_HEADERS].copy_from_slice(&headers[ETH_LEN..]);
        probe.write(&mut packet[IP_UDP_HEADERS..IP_UDP_HEADERS + payload::LEN]);
        packet[IP_UDP_HEADERS + payload::LEN..].fill(0);
        Some(usize::from(len))
    }
}

/// Patches the sequence number and send time of a probe frame written by
/// [`ProbeTemplates::write_frame`] for the same run: the cheapest per-packet work there is.
/// A frame too short to hold a probe is left alone.
#[inline]
pub fn patch_probe(frame: &mut [u8], seq: u64, sent_ns: u64) {
    let at = HEADERS_LEN + 8;
    if let Some(fields) = frame.get_mut(at..at + 16) {
        fields[..8].copy_from_slice(&seq.to_be_bytes());
        fields[8..].copy_from_slice(&sent_ns.to_be_bytes());
    }
}

/// Bytes an ESP frame needs beyond the inner packet: Ethernet, the encapsulation's headroom
/// and tailroom.
pub const ESP_FRAME_OVERHEAD: usize = ETH_LEN + ENCAP_HEADROOM + ENCAP_TAILROOM;

/// Probes inside ESP tunnel mode: the inner packet is written, encrypted in place with the
/// outbound SA (whose outer addresses are the generator's and the gateway's), and framed.
#[derive(Debug)]
pub struct EspProbes {
    sa: OutboundSa,
    eth: [u8; ETH_LEN],
    /// Packets the SA refused (sequence numbers used up).
    pub refused: u64,
}

impl EspProbes {
    /// Frames from `src_mac` to `dst_mac` with packets sealed by `sa`.
    pub fn new(sa: OutboundSa, src_mac: Mac, dst_mac: Mac) -> EspProbes {
        let mut eth = [0u8; ETH_LEN];
        eth[..6].copy_from_slice(&dst_mac.0);
        eth[6..12].copy_from_slice(&src_mac.0);
        eth[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        EspProbes {
            sa,
            eth,
            refused: 0,
        }
    }

    /// Continues the SA's sequence numbers at `next`: the gateway's replay window remembers
    /// the numbers of earlier runs.
    pub fn resume_at(mut self, next: u64) -> EspProbes {
        self.sa.advance_sequence_to(next);
        self
    }

    /// The sequence number the next packet gets.
    pub fn next_sequence(&self) -> u64 {
        self.sa.next_sequence()
    }

    /// Writes the probe's inner packet (`len` bytes, from `inner`) into `buf`, encrypts it
    /// and, when `ethernet`, puts the Ethernet header in front. Returns where the result
    /// starts in `buf` and how long it is; `None` when `buf` is too small or the SA refused.
    #[inline]
    pub fn write(
        &mut self,
        buf: &mut [u8],
        inner: &ProbeTemplates,
        len: u16,
        probe: &Probe,
        ethernet: bool,
    ) -> Option<(usize, usize)> {
        let at = ETH_LEN + ENCAP_HEADROOM;
        inner.write_ip_packet(buf.get_mut(at..)?, len, probe)?;
        let mut packet = PacketBuf::new(buf, at, usize::from(len))?;
        if packet.tailroom() < ENCAP_TAILROOM {
            return None;
        }
        if self.sa.encap(&mut packet).is_err() {
            self.refused += 1;
            return None;
        }
        let (start, outer_len) = (packet.offset(), packet.len());
        if !ethernet {
            return Some((start, outer_len));
        }
        let eth_at = start.checked_sub(ETH_LEN)?;
        buf[eth_at..start].copy_from_slice(&self.eth);
        Some((eth_at, outer_len + ETH_LEN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xipsec_dataplane::esp::ip::ipv4_checksum_ok;

    fn flow() -> Flow {
        Flow {
            src_mac: "02:00:00:00:00:0a".parse().unwrap(),
            dst_mac: "02:00:00:00:00:0b".parse().unwrap(),
            src: Ipv4Addr::new(10, 1, 0, 2),
            dst: Ipv4Addr::new(10, 2, 0, 2),
            src_port: PROBE_SRC_PORT,
            dst_port: 47001,
        }
    }

    #[test]
    fn the_checksum_matches_rfc_1071s_worked_example_and_the_dataplanes() {
        // RFC 1071 §3's sample words 0001 f203 f4f5 f6f7 sum to ddf2; the checksum is ~ddf2.
        assert_eq!(
            ipv4_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
        let mut headers = [0u8; IP_UDP_HEADERS];
        for len in [64u16, 570, 1400] {
            write_ip_udp_headers(&mut headers, &flow(), len);
            assert!(ipv4_checksum_ok(&headers[..20]), "{len}");
        }
    }

    #[test]
    fn a_probe_frame_reads_back_field_by_field() {
        let templates = ProbeTemplates::new(&flow(), PacketSize::Fixed(100));
        let mut frame = [0u8; 2048];
        let probe = Probe {
            run: 9,
            seq: 77,
            sent_ns: 123_456,
        };
        let n = templates.write_frame(&mut frame, 100, &probe).unwrap();
        assert_eq!(n, 114);
        assert_eq!(&frame[..6], &[2, 0, 0, 0, 0, 0x0b]);
        assert_eq!(&frame[6..12], &[2, 0, 0, 0, 0, 0x0a]);
        assert_eq!(&frame[12..14], &[0x08, 0x00]);
        let ip = &frame[14..114];
        assert_eq!(ip[0], 0x45);
        assert_eq!(u16::from_be_bytes([ip[2], ip[3]]), 100);
        assert_eq!(ip[9], 17);
        assert_eq!(&ip[12..16], &[10, 1, 0, 2]);
        assert_eq!(&ip[16..20], &[10, 2, 0, 2]);
        assert!(ipv4_checksum_ok(&ip[..20]));
        assert_eq!(u16::from_be_bytes([ip[20], ip[21]]), 47000);
        assert_eq!(u16::from_be_bytes([ip[22], ip[23]]), 47001);
        assert_eq!(u16::from_be_bytes([ip[24], ip[25]]), 80);
        assert_eq!(Probe::read(&ip[28..]), Some(probe));

        patch_probe(&mut frame, 78, 999);
        assert_eq!(
            Probe::read(&frame[42..]),
            Some(Probe {
                run: 9,
                seq: 78,
                sent_ns: 999
            })
        );
        // A length the templates were not built for, and a frame too short.
        assert_eq!(templates.write_frame(&mut frame, 101, &probe), None);
        assert_eq!(templates.write_frame(&mut frame[..113], 100, &probe), None);
        // Too short for a probe, even when asked for.
        let tiny = ProbeTemplates::new(&flow(), PacketSize::Fixed(40));
        assert_eq!(tiny.write_frame(&mut frame, 40, &probe), None);
        let mut short = [0u8; 60];
        patch_probe(&mut short, 1, 2);
        assert_eq!(short, [0u8; 60]);
    }

    #[test]
    fn imix_has_a_template_for_each_of_its_lengths() {
        let templates = ProbeTemplates::new(&flow(), PacketSize::Imix);
        let mut frame = [0u8; 2048];
        let probe = Probe {
            run: 1,
            seq: 0,
            sent_ns: 0,
        };
        for len in [64u16, 570, 1400] {
            let n = templates.write_frame(&mut frame, len, &probe).unwrap();
            assert_eq!(n, 14 + usize::from(len));
            assert_eq!(u16::from_be_bytes([frame[16], frame[17]]), len);
            assert!(ipv4_checksum_ok(&frame[14..34]));
        }
        assert!(templates.write_frame(&mut frame, 65, &probe).is_none());
    }

    #[test]
    fn an_ip_packet_has_a_zero_payload_after_the_probe() {
        let templates = ProbeTemplates::new(&flow(), PacketSize::Fixed(64));
        let mut packet = [0xAAu8; 64];
        let probe = Probe {
            run: 3,
            seq: 4,
            sent_ns: 5,
        };
        assert_eq!(templates.write_ip_packet(&mut packet, 64, &probe), Some(64));
        assert_eq!(Probe::read(&packet[28..]), Some(probe));
        assert!(packet[52..].iter().all(|&b| b == 0));
    }
}

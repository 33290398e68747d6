//! What the frame-level sinks (AF_XDP, AF_PACKET, raw ESP socket) do with one received packet:
//! decrypt it when it is ESP and the sink holds the SA, then find the probe in the UDP payload
//! and count it in the [`Tally`]. Sans-IO and in place: the buffer is the receive frame.

use xipsec_dataplane::esp::{Decapsulator, InboundSa, PacketBuf, Verdict};

use crate::frame::ETH_LEN;
use crate::sink::Tally;

/// ESP is IP protocol 50.
const PROTO_ESP: u8 = 50;
/// UDP is IP protocol 17.
const PROTO_UDP: u8 = 17;
/// RFC 3948's port for ESP in UDP.
const NATT_PORT: u16 = 4500;

/// Finds probes in received frames or IP packets.
#[derive(Debug)]
pub struct Receiver {
    /// The sink's UDP port: other datagrams are foreign.
    port: u16,
    /// The SA the probes arrive under, when the sink decrypts.
    esp: Option<(Decapsulator, InboundSa)>,
}

/// What one packet was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// A probe of this run, first arrival.
    First,
    /// A probe seen before, or of another run, or a datagram to another port, or no IPv4/UDP.
    Other,
    /// ESP the sink could not decrypt (counted in [`Tally::esp_dropped`]).
    EspDropped,
}

impl Receiver {
    /// Probes to UDP `port`; ESP decrypted with `sa` when given.
    pub fn new(port: u16, sa: Option<InboundSa>) -> Receiver {
        Receiver {
            port,
            esp: sa.map(|sa| (Decapsulator::new(NATT_PORT), sa)),
        }
    }

    /// Whether it decrypts.
    pub fn decrypts(&self) -> bool {
        self.esp.is_some()
    }

    /// An Ethernet frame at `buf[start..start + len]`, received at `now_ns`.
    #[inline]
    pub fn frame(
        &mut self,
        buf: &mut [u8],
        start: usize,
        len: usize,
        tally: &mut Tally,
        now_ns: u64,
    ) -> Received {
        let ethertype = buf
            .get(start + 12..start + 14)
            .map(|t| u16::from_be_bytes([t[0], t[1]]));
        if ethertype != Some(0x0800) || len <= ETH_LEN {
            tally.foreign += 1;
            return Received::Other;
        }
        self.ip_packet(buf, start + ETH_LEN, len - ETH_LEN, tally, now_ns)
    }

    /// An IPv4 packet at `buf[start..start + len]` (link-layer padding may follow its total
    /// length), received at `now_ns`.
    #[inline]
    pub fn ip_packet(
        &mut self,
        buf: &mut [u8],
        start: usize,
        len: usize,
        tally: &mut Tally,
        now_ns: u64,
    ) -> Received {
        let Some(packet) = buf.get(start..start.saturating_add(len)) else {
            tally.foreign += 1;
            return Received::Other;
        };
        if let Some((decapsulator, sa)) = self.esp.as_mut() {
            if is_esp(packet) {
                let Some(mut window) = PacketBuf::new(buf, start, len) else {
                    tally.foreign += 1;
                    return Received::Other;
                };
                if decapsulator.decap(sa, &mut window) != Verdict::Forward {
                    tally.esp_dropped += 1;
                    return Received::EspDropped;
                }
                let (inner_start, inner_len) = (window.offset(), window.len());
                return self.udp(&buf[inner_start..inner_start + inner_len], tally, now_ns);
            }
        }
        self.udp(packet, tally, now_ns)
    }

    #[inline]
    fn udp(&self, packet: &[u8], tally: &mut Tally, now_ns: u64) -> Received {
        match udp_payload(packet, self.port) {
            Some(payload) if tally.record(payload, now_ns) => Received::First,
            Some(_) => Received::Other,
            None => {
                tally.foreign += 1;
                Received::Other
            }
        }
    }
}

/// Whether an IPv4 packet is ESP or ESP-in-UDP-looking (UDP to the NAT-T port): what the
/// decapsulator should see.
#[inline]
fn is_esp(packet: &[u8]) -> bool {
    if packet.len() < 20 || packet[0] >> 4 != 4 {
        return false;
    }
    let header_len = usize::from(packet[0] & 0x0F) * 4;
    match packet[9] {
        PROTO_ESP => true,
        PROTO_UDP => packet
            .get(header_len + 2..header_len + 4)
            .is_some_and(|port| u16::from_be_bytes([port[0], port[1]]) == NATT_PORT),
        _ => false,
    }
}

/// The payload of an IPv4 UDP datagram to `port`, bounded by the IP total length and the UDP
/// length; `None` for anything else (fragments included).
#[inline]
pub fn udp_payload(packet: &[u8], port: u16) -> Option<&[u8]> {
    if packet.len() < 28 || packet[0] >> 4 != 4 || packet[9] != PROTO_UDP {
        return None;
    }
    let header_len = usize::from(packet[0] & 0x0F) * 4;
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    // A fragment (MF set or an offset) carries no whole datagram.
    if u16::from_be_bytes([packet[6], packet[7]]) & 0x3FFF != 0 {
        return None;
    }
    let packet = packet.get(..total)?;
    let udp = packet.get(header_len..)?;
    if udp.len() < 8 || u16::from_be_bytes([udp[2], udp[3]]) != port {
        return None;
    }
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    udp.get(8..udp_len)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::frame::{EspProbes, Flow, ProbeTemplates, PROBE_SRC_PORT};
    use crate::manual;
    use crate::payload::Probe;
    use crate::size::PacketSize;

    const PORT: u16 = 47001;

    fn flow() -> Flow {
        Flow {
            src_mac: "02:00:00:00:00:0a".parse().unwrap(),
            dst_mac: "02:00:00:00:00:0b".parse().unwrap(),
            src: Ipv4Addr::new(10, 1, 0, 2),
            dst: Ipv4Addr::new(10, 2, 0, 2),
            src_port: PROBE_SRC_PORT,
            dst_port: PORT,
        }
    }

    fn probe(seq: u64) -> Probe {
        Probe {
            run: 5,
            seq,
            sent_ns: 1_000,
        }
    }

    #[test]
    fn plain_probe_frames_are_counted_and_everything_else_is_foreign() {
        let templates = ProbeTemplates::new(&flow(), PacketSize::Imix);
        let mut receiver = Receiver::new(PORT, None);
        let mut tally = Tally::new(5);
        let mut buf = [0u8; 2048];
        for seq in 0..12 {
            let len = PacketSize::Imix.len_of(seq);
            // At an offset, as in a receive frame behind the kernel's headroom.
            let n = templates
                .write_frame(&mut buf[256..], len, &probe(seq))
                .unwrap();
            assert_eq!(
                receiver.frame(&mut buf, 256, n, &mut tally, 11_000),
                Received::First
            );
        }
        // The same probe again is no first arrival; IMIX bytes add up.
        let n = templates.write_frame(&mut buf, 64, &probe(0)).unwrap();
        assert_eq!(
            receiver.frame(&mut buf, 0, n, &mut tally, 11_000),
            Received::Other
        );
        assert_eq!(tally.seq.unique(), 12);
        assert_eq!(tally.seq.duplicates(), 1);
        assert_eq!(tally.bytes, 7 * 64 + 4 * 570 + 1400);
        assert_eq!(tally.latency.count(), 12);

        // To another port; ARP; cut short; a fragment.
        let other = ProbeTemplates::new(
            &Flow {
                dst_port: 9,
                ..flow()
            },
            PacketSize::Fixed(64),
        );
        let n = other.write_frame(&mut buf, 64, &probe(50)).unwrap();
        receiver.frame(&mut buf, 0, n, &mut tally, 0);
        let n = templates.write_frame(&mut buf, 64, &probe(51)).unwrap();
        buf[12] = 0x08;
        buf[13] = 0x06;
        receiver.frame(&mut buf, 0, n, &mut tally, 0);
        let n = templates.write_frame(&mut buf, 64, &probe(52)).unwrap();
        receiver.frame(&mut buf, 0, n - 10, &mut tally, 0);
        let n = templates.write_frame(&mut buf, 64, &probe(53)).unwrap();
        buf[14 + 6] = 0x20;
        receiver.frame(&mut buf, 0, n, &mut tally, 0);
        assert_eq!(tally.foreign, 4);
        assert_eq!(tally.seq.unique(), 12);
    }

    #[test]
    fn esp_from_gateway_a_is_decrypted_and_counted_and_forgeries_are_not() {
        // Gateway A's outbound SA seals; the sink holds gateway B's inbound side.
        let inner = ProbeTemplates::new(&flow(), PacketSize::Fixed(200));
        let mut esp = EspProbes::new(
            manual::outbound_at_a(),
            "02:00:00:00:00:01".parse().unwrap(),
            "02:00:00:00:00:02".parse().unwrap(),
        );
        let mut receiver = Receiver::new(PORT, Some(manual::inbound_at_b()));
        assert!(receiver.decrypts());
        let mut tally = Tally::new(5);
        let mut buf = [0u8; 2048];
        for seq in 0..3 {
            let (start, len) = esp.write(&mut buf, &inner, 200, &probe(seq), true).unwrap();
            // ESP header right behind a 20-byte outer IPv4 header, SPI A → B.
            assert_eq!(buf[start + 14 + 9], 50);
            assert_eq!(
                &buf[start + 34..start + 38],
                &manual::A_TO_B.0.to_be_bytes()
            );
            // 200 inner + 2 trailer → 204; 20 + 8 + 8 + 204 + 16, plus Ethernet.
            assert_eq!(len, 14 + 256);
            // The probe is not readable in the clear.
            assert!(!buf[start..start + len]
                .windows(4)
                .any(|w| w == crate::payload::MAGIC.to_be_bytes()));
            assert_eq!(
                receiver.frame(&mut buf, start, len, &mut tally, 2_000),
                Received::First
            );
        }
        assert_eq!(tally.seq.unique(), 3);
        assert_eq!(tally.bytes, 3 * 200);

        // One bit flipped in the ciphertext: authentication fails, nothing is counted.
        let (start, len) = esp.write(&mut buf, &inner, 200, &probe(3), true).unwrap();
        buf[start + 60] ^= 1;
        assert_eq!(
            receiver.frame(&mut buf, start, len, &mut tally, 2_000),
            Received::EspDropped
        );
        // A replay of an earlier packet is dropped by the window.
        let (start, len) = esp.write(&mut buf, &inner, 200, &probe(4), true).unwrap();
        let copy = buf;
        assert_eq!(
            receiver.frame(&mut buf, start, len, &mut tally, 2_000),
            Received::First
        );
        buf = copy;
        assert_eq!(
            receiver.frame(&mut buf, start, len, &mut tally, 2_000),
            Received::EspDropped
        );
        assert_eq!(tally.esp_dropped, 2);
        assert_eq!(tally.seq.unique(), 4);
    }

    #[test]
    fn esp_for_the_gateway_decrypts_with_its_inbound_sa() {
        // The decrypt topology's generator plays gateway B; gateway A's inbound SA opens it.
        let inner = ProbeTemplates::new(&flow(), PacketSize::Fixed(64));
        let mut esp = EspProbes::new(
            manual::outbound_at_b(),
            "02:00:00:00:00:01".parse().unwrap(),
            "02:00:00:00:00:02".parse().unwrap(),
        );
        let mut buf = [0u8; 2048];
        // Without Ethernet: what a raw IP socket sends.
        let (start, len) = esp.write(&mut buf, &inner, 64, &probe(0), false).unwrap();
        assert_eq!(buf[start] >> 4, 4);
        assert_eq!(&buf[start + 12..start + 16], &[192, 0, 2, 2]);
        assert_eq!(&buf[start + 16..start + 20], &[192, 0, 2, 1]);
        let mut receiver = Receiver::new(PORT, Some(manual::inbound_at_a()));
        let mut tally = Tally::new(5);
        assert_eq!(
            receiver.ip_packet(&mut buf, start, len, &mut tally, 5_000),
            Received::First
        );
        // The wrong SA (B's inbound) does not open it.
        let (start, len) = esp.write(&mut buf, &inner, 64, &probe(1), false).unwrap();
        let mut wrong = Receiver::new(PORT, Some(manual::inbound_at_b()));
        assert_eq!(
            wrong.ip_packet(&mut buf, start, len, &mut tally, 5_000),
            Received::EspDropped
        );
    }

    #[test]
    fn udp_payload_respects_both_lengths() {
        let templates = ProbeTemplates::new(&flow(), PacketSize::Fixed(64));
        let mut packet = [0u8; 80];
        templates
            .write_ip_packet(&mut packet, 64, &probe(0))
            .unwrap();
        // 16 bytes of link-layer padding after the packet are not payload.
        assert_eq!(udp_payload(&packet, PORT).map(<[u8]>::len), Some(36));
        assert_eq!(udp_payload(&packet, PORT + 1), None);
        // A UDP length beyond the IP packet.
        packet[25] = 200;
        assert_eq!(udp_payload(&packet, PORT), None);
        assert_eq!(udp_payload(&packet[..27], PORT), None);
    }
}

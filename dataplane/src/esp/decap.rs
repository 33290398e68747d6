//! Inbound ESP (RFC 4303 §3.4), in place, in the RFC's order: parse, look up the SA by SPI,
//! a cheap replay check, the AEAD open, and only then the replay window update — a forged
//! packet never moves the window. The decrypted packet is left where it lies; only the buffer's
//! window moves (tunnel mode), or the outer IP header moves up to meet the payload (transport).

use super::cipher::{ICV_LEN, IV_LEN};
use super::drop::{DropCounters, DropReason, Verdict};
use super::ecn;
use super::encap::{build_aad, ESP_HEADER_LEN};
use super::esn::infer_sequence;
use super::ip::{
    ipv4_checksum_ok, ipv6_insertion_point, proto, read_u16, read_u32, set_ipv4_checksum,
    write_u16, Family, IPV4_FRAGMENT_MASK, IPV4_HEADER_LEN, IPV6_HEADER_LEN, UDP_HEADER_LEN,
};
use super::natt::{classify_udp_payload, UdpPayload};
use super::packet::PacketBuf;
use super::replay::ReplayRejection;
use super::sa::{InboundSa, InboundSaLookup, Mode};

/// The smallest ESP packet: header, IV, a 4-byte-aligned encrypted trailer (two bytes padded to
/// four) and the ICV.
const MIN_ESP_LEN: usize = ESP_HEADER_LEN + IV_LEN + 4 + ICV_LEN;

/// State of the receive path that belongs to no SA: the NAT-T port it listens on and the drops
/// that happen before an SA is known.
#[derive(Clone, Debug)]
pub struct Decapsulator {
    /// UDP port on which ESP-in-UDP arrives (RFC 3948; 4500 unless configured otherwise).
    pub natt_port: u16,
    /// Drops that could not be attributed to an SA (malformed outer headers, unknown SPIs, …).
    pub unattributed: DropCounters,
}

impl Default for Decapsulator {
    fn default() -> Self {
        Self::new(4500)
    }
}

/// Where the ESP header is, and what of the outer header the rest of the path needs.
struct Outer {
    family: Family,
    /// Length of the IP header including the extension headers that precede ESP or UDP.
    ip_header_len: usize,
    /// Offset of the byte that holds the protocol after the IP header (transport mode
    /// rewrites it).
    next_header_at: usize,
    esp_at: usize,
    /// End of the IP packet; bytes beyond it (link-layer padding) are not part of it.
    ip_end: usize,
    ecn: u8,
}

impl Decapsulator {
    pub fn new(natt_port: u16) -> Self {
        Self {
            natt_port,
            unattributed: DropCounters::default(),
        }
    }

    /// Decapsulates a batch: each buffer's window holds a received IP packet. `verdicts[i]`
    /// tells what became of `packets[i]`; on [`Verdict::Forward`] the window holds the inner
    /// (tunnel) or restored (transport) packet. Processes as many packets as both slices have
    /// room for.
    pub fn decap_batch<L: InboundSaLookup + ?Sized>(
        &mut self,
        sas: &mut L,
        packets: &mut [PacketBuf<'_>],
        verdicts: &mut [Verdict],
    ) {
        for (packet, verdict) in packets.iter_mut().zip(verdicts.iter_mut()) {
            *verdict = self.decap(sas, packet);
        }
    }

    /// Decapsulates one packet; see [`decap_batch`](Self::decap_batch).
    #[inline]
    pub fn decap<L: InboundSaLookup + ?Sized>(
        &mut self,
        sas: &mut L,
        packet: &mut PacketBuf<'_>,
    ) -> Verdict {
        let outer = match self.parse_outer(packet.data()) {
            Ok(Some(outer)) => outer,
            Ok(None) => return Verdict::ToControlPlane,
            Err(reason) => {
                self.unattributed.count(reason);
                return Verdict::Drop(reason);
            }
        };
        let data = packet.data();
        if outer.ip_end - outer.esp_at < ESP_HEADER_LEN {
            self.unattributed.count(DropReason::Truncated);
            return Verdict::Drop(DropReason::Truncated);
        }
        let spi = read_u32(data, outer.esp_at);
        let Some(sa) = sas.inbound_sa(spi) else {
            self.unattributed.count(DropReason::UnknownSpi);
            return Verdict::Drop(DropReason::UnknownSpi);
        };
        match sa.decap(packet, &outer) {
            Ok(plaintext_len) => {
                sa.counters.packets += 1;
                sa.counters.bytes += plaintext_len as u64;
                Verdict::Forward
            }
            Err(reason) => {
                sa.counters.drops.count(reason);
                Verdict::Drop(reason)
            }
        }
    }

    /// Checks the outer IP (and UDP) headers. `Ok(None)`: an IKE message on the NAT-T port.
    #[inline]
    fn parse_outer(&self, data: &[u8]) -> Result<Option<Outer>, DropReason> {
        let (family, ip_header_len, next_header_at, ip_end, ecn) = match Family::of(data) {
            Some(Family::V4) => {
                if data.len() < IPV4_HEADER_LEN {
                    return Err(DropReason::Truncated);
                }
                let header_len = usize::from(data[0] & 0x0F) * 4;
                let total_len = usize::from(read_u16(data, 2));
                if header_len < IPV4_HEADER_LEN || total_len < header_len {
                    return Err(DropReason::MalformedOuter);
                }
                if total_len > data.len() {
                    return Err(DropReason::Truncated);
                }
                if !ipv4_checksum_ok(&data[..header_len]) {
                    return Err(DropReason::OuterChecksum);
                }
                if read_u16(data, 6) & IPV4_FRAGMENT_MASK != 0 {
                    return Err(DropReason::OuterFragment);
                }
                (Family::V4, header_len, 9, total_len, data[1] & 0b11)
            }
            Some(Family::V6) => {
                if data.len() < IPV6_HEADER_LEN {
                    return Err(DropReason::Truncated);
                }
                let total_len = IPV6_HEADER_LEN + usize::from(read_u16(data, 4));
                if total_len > data.len() {
                    return Err(DropReason::Truncated);
                }
                let (next_header_at, header_len) =
                    ipv6_insertion_point(&data[..total_len]).ok_or(DropReason::MalformedOuter)?;
                let ecn = (data[1] >> 4) & 0b11;
                (Family::V6, header_len, next_header_at, total_len, ecn)
            }
            None => return Err(DropReason::MalformedOuter),
        };
        let esp_at = match data[next_header_at] {
            proto::ESP => ip_header_len,
            proto::UDP => {
                let udp = &data[ip_header_len..ip_end];
                if udp.len() < UDP_HEADER_LEN {
                    return Err(DropReason::Truncated);
                }
                if usize::from(read_u16(udp, 4)) != udp.len() {
                    return Err(DropReason::MalformedOuter);
                }
                if read_u16(udp, 2) != self.natt_port {
                    return Err(DropReason::NotEsp);
                }
                match classify_udp_payload(&udp[UDP_HEADER_LEN..]) {
                    UdpPayload::Esp => ip_header_len + UDP_HEADER_LEN,
                    UdpPayload::Ike => return Ok(None),
                    UdpPayload::Keepalive => return Err(DropReason::NattKeepalive),
                    UdpPayload::Malformed => return Err(DropReason::Truncated),
                }
            }
            proto::FRAGMENT => return Err(DropReason::OuterFragment),
            _ => return Err(DropReason::NotEsp),
        };
        Ok(Some(Outer {
            family,
            ip_header_len,
            next_header_at,
            esp_at,
            ip_end,
            ecn,
        }))
    }
}

impl InboundSa {
    /// Everything after the SA is known. Returns the length of the packet left in the window.
    #[inline]
    fn decap(&mut self, packet: &mut PacketBuf<'_>, outer: &Outer) -> Result<usize, DropReason> {
        let esp_len = outer.ip_end - outer.esp_at;
        if esp_len < MIN_ESP_LEN {
            return Err(DropReason::Truncated);
        }
        let encrypted_len = esp_len - ESP_HEADER_LEN - IV_LEN - ICV_LEN;
        if !encrypted_len.is_multiple_of(4) {
            return Err(DropReason::BadAlignment);
        }
        let data = packet.data();
        let esp = &data[outer.esp_at..outer.ip_end];
        let sequence_low = read_u32(esp, 4);
        let sequence = if self.params.esn {
            infer_sequence(self.replay.top(), self.replay.size(), sequence_low)
        } else {
            u64::from(sequence_low)
        };
        self.replay
            .check(sequence)
            .map_err(|rejection| match rejection {
                ReplayRejection::Duplicate => DropReason::Replayed,
                ReplayRejection::TooOld => DropReason::BehindWindow,
                ReplayRejection::Zero => DropReason::ZeroSequence,
            })?;
        let mut iv = [0u8; IV_LEN];
        iv.copy_from_slice(&esp[ESP_HEADER_LEN..ESP_HEADER_LEN + IV_LEN]);
        let mut aad = [0u8; 12];
        let spi = self.params.spi.to_be_bytes();
        let aad = build_aad(&mut aad, spi, sequence, self.params.esn);

        let (frame, start, _) = packet.frame_mut();
        let payload_at = start + outer.esp_at + ESP_HEADER_LEN + IV_LEN;
        let icv_end = start + outer.ip_end;
        self.key
            .open(&iv, aad, &mut frame[payload_at..icv_end])
            .map_err(|_| DropReason::AuthenticationFailed)?;
        // Authentic: from here on the window moves whatever else is wrong with the packet.
        self.replay.mark(sequence);

        let trailer_end = icv_end - ICV_LEN;
        let pad_len = usize::from(frame[trailer_end - 2]);
        let next_header = frame[trailer_end - 1];
        if pad_len + 2 > encrypted_len {
            return Err(DropReason::BadPadding);
        }
        let payload_end = trailer_end - 2 - pad_len;
        if !frame[payload_end..payload_end + pad_len]
            .iter()
            .enumerate()
            .all(|(i, &byte)| usize::from(byte) == i + 1)
        {
            return Err(DropReason::BadPadding);
        }
        if next_header == proto::NO_NEXT_HEADER {
            return Err(DropReason::DummyPacket);
        }
        match self.params.mode {
            Mode::Tunnel => {
                let inner_len = restore_tunnel_inner(
                    &mut frame[payload_at..payload_end],
                    next_header,
                    outer.ecn,
                )?;
                packet.set_window(payload_at, payload_at + inner_len);
                Ok(inner_len)
            }
            Mode::Transport => {
                let header_at = start;
                let shift = payload_at - (header_at + outer.ip_header_len);
                frame.copy_within(
                    header_at..header_at + outer.ip_header_len,
                    header_at + shift,
                );
                let new_start = header_at + shift;
                let restored = &mut frame[new_start..payload_end];
                restored[outer.next_header_at] = next_header;
                match outer.family {
                    Family::V4 => {
                        write_u16(restored, 2, restored.len() as u16);
                        set_ipv4_checksum(&mut restored[..outer.ip_header_len]);
                    }
                    Family::V6 => {
                        write_u16(restored, 4, (restored.len() - IPV6_HEADER_LEN) as u16);
                    }
                }
                packet.set_window(new_start, payload_end);
                Ok(payload_end - new_start)
            }
        }
    }
}

/// Validates the inner packet of a tunnel-mode SA, trims TFC padding (whatever follows the
/// length its own header states) and merges the outer ECN into it (RFC 6040). Returns the inner
/// packet's length.
#[inline]
fn restore_tunnel_inner(
    inner: &mut [u8],
    next_header: u8,
    outer_ecn: u8,
) -> Result<usize, DropReason> {
    let family = match next_header {
        proto::IPV4 => Family::V4,
        proto::IPV6 => Family::V6,
        _ => return Err(DropReason::BadNextHeader),
    };
    if Family::of(inner) != Some(family) {
        return Err(DropReason::MalformedInner);
    }
    match family {
        Family::V4 => {
            if inner.len() < IPV4_HEADER_LEN {
                return Err(DropReason::MalformedInner);
            }
            let header_len = usize::from(inner[0] & 0x0F) * 4;
            let total_len = usize::from(read_u16(inner, 2));
            if header_len < IPV4_HEADER_LEN || total_len < header_len || total_len > inner.len() {
                return Err(DropReason::MalformedInner);
            }
            let inner_ecn = inner[1] & 0b11;
            let merged =
                ecn::on_decapsulation(outer_ecn, inner_ecn).ok_or(DropReason::EcnConflict)?;
            if merged != inner_ecn {
                inner[1] = (inner[1] & !0b11) | merged;
                set_ipv4_checksum(&mut inner[..header_len]);
            }
            Ok(total_len)
        }
        Family::V6 => {
            if inner.len() < IPV6_HEADER_LEN {
                return Err(DropReason::MalformedInner);
            }
            let total_len = IPV6_HEADER_LEN + usize::from(read_u16(inner, 4));
            if total_len > inner.len() {
                return Err(DropReason::MalformedInner);
            }
            let inner_ecn = (inner[1] >> 4) & 0b11;
            let merged =
                ecn::on_decapsulation(outer_ecn, inner_ecn).ok_or(DropReason::EcnConflict)?;
            inner[1] = (inner[1] & 0xCF) | (merged << 4);
            Ok(total_len)
        }
    }
}

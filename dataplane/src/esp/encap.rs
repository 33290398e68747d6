//! Outbound ESP (RFC 4303 §3.3), in place: the outer headers grow into the frame's headroom and
//! the padding, trailer and ICV into its tailroom; the payload is encrypted where it lies.

use super::cipher::{ICV_LEN, IV_LEN};
use super::drop::{DropReason, Verdict};
use super::ecn;
use super::ip::{
    ipv6_insertion_point, proto, read_u16, set_ipv4_checksum, udp_ipv6_checksum, write_u16, Family,
    IPV4_DF, IPV4_HEADER_LEN, IPV6_HEADER_LEN, UDP_HEADER_LEN,
};
use super::packet::PacketBuf;
use super::sa::{DfPolicy, Endpoints, Mode, OutboundSa};
use super::template::PacketFields;

pub(crate) const ESP_HEADER_LEN: usize = 8;

/// What the outer header copies from the inner one (tunnel mode).
struct InnerFacts {
    family: Family,
    /// DSCP and ECN (IPv4 TOS byte, IPv6 traffic class).
    traffic_class: u8,
    dont_fragment: bool,
    flow_label: u32,
}

#[inline]
fn inner_facts(inner: &[u8]) -> Result<InnerFacts, DropReason> {
    match Family::of(inner) {
        Some(Family::V4) if inner.len() >= IPV4_HEADER_LEN => Ok(InnerFacts {
            family: Family::V4,
            traffic_class: inner[1],
            dont_fragment: read_u16(inner, 6) & IPV4_DF != 0,
            flow_label: 0,
        }),
        Some(Family::V6) if inner.len() >= IPV6_HEADER_LEN => Ok(InnerFacts {
            family: Family::V6,
            traffic_class: (inner[0] << 4) | (inner[1] >> 4),
            dont_fragment: true,
            flow_label: (u32::from(inner[1] & 0x0F) << 16)
                | (u32::from(inner[2]) << 8)
                | u32::from(inner[3]),
        }),
        _ => Err(DropReason::MalformedPlaintext),
    }
}

/// Padding that makes payload + padding + the two trailer bytes a multiple of 4 (RFC 4303
/// §2.4; the AEADs here have no block size of their own).
fn padding_for(payload_len: usize) -> usize {
    (4 - (payload_len + 2) % 4) % 4
}

/// Writes the padding (1, 2, 3, … as RFC 4303 §2.4 prescribes), pad length and next header at
/// `at`; returns the end of the trailer.
#[inline]
fn write_trailer(frame: &mut [u8], at: usize, pad_len: usize, next_header: u8) -> usize {
    for (i, byte) in frame[at..at + pad_len].iter_mut().enumerate() {
        *byte = i as u8 + 1;
    }
    frame[at + pad_len] = pad_len as u8;
    frame[at + pad_len + 1] = next_header;
    at + pad_len + 2
}

impl OutboundSa {
    /// Encapsulates one packet. The buffer's window holds the plaintext IP packet on entry and
    /// the packet to transmit (outer IP header first) on success; on a drop it is unchanged.
    pub fn encap(&mut self, packet: &mut PacketBuf<'_>) -> Result<(), DropReason> {
        let plaintext_len = packet.len() as u64;
        let result = match self.params.mode {
            Mode::Tunnel => self.encap_tunnel(packet),
            Mode::Transport => self.encap_transport(packet),
        };
        match result {
            Ok(()) => {
                self.counters.packets += 1;
                self.counters.bytes += plaintext_len;
            }
            Err(reason) => self.counters.drops.count(reason),
        }
        result
    }

    /// Encapsulates a batch; `verdicts[i]` tells what became of `packets[i]`. Processes as many
    /// packets as both slices have room for.
    pub fn encap_batch(&mut self, packets: &mut [PacketBuf<'_>], verdicts: &mut [Verdict]) {
        for (packet, verdict) in packets.iter_mut().zip(verdicts.iter_mut()) {
            *verdict = match self.encap(packet) {
                Ok(()) => Verdict::Forward,
                Err(reason) => Verdict::Drop(reason),
            };
        }
    }

    fn udp_len(&self) -> usize {
        if self.params.udp_encap.is_some() {
            UDP_HEADER_LEN
        } else {
            0
        }
    }

    /// Writes the sequence number and IV of the ESP header at `esp_at` (the SPI is the caller's)
    /// and seals `frame[payload_at..trailer_end]`, the ICV going right after it. The IV is the
    /// sequence number: unique under the key by construction, as RFC 4106 §3.1 suggests.
    #[inline]
    fn seal_into(
        &self,
        frame: &mut [u8],
        esp_at: usize,
        trailer_end: usize,
        sequence: u64,
    ) -> Result<(), DropReason> {
        let iv = sequence.to_be_bytes();
        #[cfg(test)]
        let iv = self.iv_override.unwrap_or(iv);
        frame[esp_at + 4..esp_at + 8].copy_from_slice(&(sequence as u32).to_be_bytes());
        frame[esp_at + 8..esp_at + 16].copy_from_slice(&iv);
        let mut aad = [0u8; 12];
        let aad = build_aad(
            &mut aad,
            self.params.spi.to_be_bytes(),
            sequence,
            self.params.esn,
        );
        let payload_at = esp_at + ESP_HEADER_LEN + IV_LEN;
        let (payload, icv) =
            frame[payload_at..trailer_end + ICV_LEN].split_at_mut(trailer_end - payload_at);
        self.key
            .seal(&iv, aad, payload, icv)
            .map_err(|_| DropReason::SealFailed)
    }

    fn encap_tunnel(&mut self, packet: &mut PacketBuf<'_>) -> Result<(), DropReason> {
        let inner = inner_facts(packet.data())?;
        let inner_len = packet.len();
        let tfc_len = self
            .params
            .tfc_pad_to
            .map_or(0, |pad_to| usize::from(pad_to).saturating_sub(inner_len));
        let pad_len = padding_for(inner_len + tfc_len);
        let tail_len = tfc_len + pad_len + 2 + ICV_LEN;
        let headers_len = self.template.len();
        let head_len = headers_len + 4 + IV_LEN;
        if packet.headroom() < head_len {
            return Err(DropReason::NoHeadroom);
        }
        if packet.tailroom() < tail_len {
            return Err(DropReason::NoTailroom);
        }
        let total_len = head_len + inner_len + tail_len;
        // IPv4 counts the header in its length field, IPv6 does not.
        let length_field = match self.params.endpoints {
            Endpoints::V4 { .. } => total_len,
            Endpoints::V6 { .. } => total_len - IPV6_HEADER_LEN,
        };
        if length_field > usize::from(u16::MAX) {
            return Err(DropReason::TooBig);
        }
        let sequence = self.take_sequence().ok_or(DropReason::SequenceExhausted)?;

        let (frame, start, end) = packet.frame_mut();
        frame[end..end + tfc_len].fill(0);
        let trailer_end = write_trailer(
            frame,
            end + tfc_len,
            pad_len,
            inner.family.tunnel_protocol(),
        );
        let outer_at = start - head_len;
        self.seal_into(frame, outer_at + headers_len - 4, trailer_end, sequence)?;
        let dont_fragment = match self.params.df {
            DfPolicy::Copy => inner.dont_fragment,
            DfPolicy::Set => true,
            DfPolicy::Clear => false,
        };
        let fields = PacketFields {
            traffic_class: (inner.traffic_class & !0b11)
                | ecn::on_encapsulation(inner.traffic_class),
            dont_fragment,
            flow_label: inner.flow_label,
            // With DF clear the ID must be unique per (src, dst, protocol) for the reassembly
            // lifetime (RFC 6864); the low sequence bits are, for 65536 packets.
            id: sequence as u16,
        };
        self.template
            .write(&mut frame[outer_at..trailer_end + ICV_LEN], fields);
        packet.set_window(outer_at, trailer_end + ICV_LEN);
        Ok(())
    }

    /// Transport mode (RFC 4303 §3.1.1): ESP goes between the packet's own IP header (and the
    /// IPv6 extension headers that must precede it) and its payload. The header moves forward
    /// into the headroom; the payload stays put.
    fn encap_transport(&mut self, packet: &mut PacketBuf<'_>) -> Result<(), DropReason> {
        let data = packet.data();
        let family = Family::of(data).ok_or(DropReason::MalformedPlaintext)?;
        let (next_header_at, header_len) = match (family, self.params.endpoints) {
            (Family::V4, Endpoints::V4 { .. }) => {
                let header_len = usize::from(data[0] & 0x0F) * 4;
                if header_len < IPV4_HEADER_LEN
                    || data.len() < header_len
                    || usize::from(read_u16(data, 2)) != data.len()
                {
                    return Err(DropReason::MalformedPlaintext);
                }
                (9, header_len)
            }
            (Family::V6, Endpoints::V6 { .. }) => {
                if data.len() < IPV6_HEADER_LEN
                    || usize::from(read_u16(data, 4)) + IPV6_HEADER_LEN != data.len()
                {
                    return Err(DropReason::MalformedPlaintext);
                }
                ipv6_insertion_point(data).ok_or(DropReason::MalformedPlaintext)?
            }
            _ => return Err(DropReason::FamilyMismatch),
        };
        let upper_protocol = data[next_header_at];
        let payload_len = data.len() - header_len;
        let insert_len = self.udp_len() + ESP_HEADER_LEN + IV_LEN;
        let pad_len = padding_for(payload_len);
        if packet.headroom() < insert_len {
            return Err(DropReason::NoHeadroom);
        }
        if packet.tailroom() < pad_len + 2 + ICV_LEN {
            return Err(DropReason::NoTailroom);
        }
        let total_len = packet.len() + insert_len + pad_len + 2 + ICV_LEN;
        let length_field = match family {
            Family::V4 => total_len,
            Family::V6 => total_len - IPV6_HEADER_LEN,
        };
        if length_field > usize::from(u16::MAX) {
            return Err(DropReason::TooBig);
        }
        let sequence = self.take_sequence().ok_or(DropReason::SequenceExhausted)?;

        let (frame, start, end) = packet.frame_mut();
        let trailer_end = write_trailer(frame, end, pad_len, upper_protocol);
        let new_start = start - insert_len;
        frame.copy_within(start..start + header_len, new_start);
        let esp_at = new_start + header_len + self.udp_len();
        frame[esp_at..esp_at + 4].copy_from_slice(&self.params.spi.to_be_bytes());
        self.seal_into(frame, esp_at, trailer_end, sequence)?;

        let out = &mut frame[new_start..trailer_end + ICV_LEN];
        out[next_header_at] = if self.params.udp_encap.is_some() {
            proto::UDP
        } else {
            proto::ESP
        };
        write_u16(
            out,
            if family == Family::V4 { 2 } else { 4 },
            length_field as u16,
        );
        if family == Family::V4 {
            set_ipv4_checksum(&mut out[..header_len]);
        }
        self.write_udp_header(out, header_len);
        packet.set_window(new_start, trailer_end + ICV_LEN);
        Ok(())
    }

    /// The NAT-T UDP header at `udp_at` of the finished packet (RFC 3948 §2.1): checksum zero
    /// over IPv4; over IPv6 a real one, which UDP there requires.
    #[inline]
    fn write_udp_header(&self, packet: &mut [u8], udp_at: usize) {
        let Some(ports) = self.params.udp_encap else {
            return;
        };
        let udp_len = packet.len() - udp_at;
        let udp = &mut packet[udp_at..];
        write_u16(udp, 0, ports.local_port);
        write_u16(udp, 2, ports.remote_port);
        write_u16(udp, 4, udp_len as u16);
        write_u16(udp, 6, 0);
        if let Endpoints::V6 { local, remote } = self.params.endpoints {
            let checksum = udp_ipv6_checksum(&local.octets(), &remote.octets(), udp);
            write_u16(udp, 6, checksum);
        }
    }
}

/// The AAD of RFC 4106 §5 / RFC 7634 §2.1: SPI and the 32-bit sequence number, or SPI and the
/// 64-bit extended sequence number (high word first).
pub(crate) fn build_aad(buffer: &mut [u8; 12], spi: [u8; 4], sequence: u64, esn: bool) -> &[u8] {
    buffer[..4].copy_from_slice(&spi);
    if esn {
        buffer[4..12].copy_from_slice(&sequence.to_be_bytes());
        &buffer[..12]
    } else {
        buffer[4..8].copy_from_slice(&(sequence as u32).to_be_bytes());
        &buffer[..8]
    }
}

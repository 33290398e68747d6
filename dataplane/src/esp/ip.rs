//! The few facts about IPv4, IPv6 and UDP headers that ESP needs, over plain byte slices.

/// IP protocol numbers (IANA "Assigned Internet Protocol Numbers").
pub mod proto {
    pub const HOP_BY_HOP: u8 = 0;
    pub const IPV4: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    /// "No next header": an ESP dummy packet carrying only TFC padding (RFC 4303 §2.6).
    pub const NO_NEXT_HEADER: u8 = 59;
    pub const DEST_OPTS: u8 = 60;
}

pub const IPV4_HEADER_LEN: usize = 20;
pub const IPV6_HEADER_LEN: usize = 40;
pub const UDP_HEADER_LEN: usize = 8;

/// IPv4 "don't fragment" bit in the flags/fragment-offset word.
pub const IPV4_DF: u16 = 0x4000;
/// IPv4 "more fragments" bit and fragment offset: any of them set means a fragment.
pub const IPV4_FRAGMENT_MASK: u16 = 0x3FFF;

/// Extension headers walked before an IPv6 packet's upper-layer protocol; bounded so that a
/// crafted chain cannot make us loop.
const MAX_IPV6_EXTENSION_HEADERS: usize = 8;

/// The IP family of a header, from its first nibble.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(packet: &[u8]) -> Option<Family> {
        match packet.first()? >> 4 {
            4 => Some(Family::V4),
            6 => Some(Family::V6),
            _ => None,
        }
    }

    /// The ESP next-header value that announces an inner packet of this family (tunnel mode).
    pub fn tunnel_protocol(self) -> u8 {
        match self {
            Family::V4 => proto::IPV4,
            Family::V6 => proto::IPV6,
        }
    }
}

pub fn read_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

pub fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

pub fn write_u16(bytes: &mut [u8], at: usize, value: u16) {
    bytes[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

/// The 16-bit one's-complement sum of `data` (RFC 1071), not yet folded or inverted.
pub fn ones_complement_sum(data: &[u8], mut sum: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for pair in &mut chunks {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
        // Fold early enough that a 64 KiB packet cannot overflow the accumulator.
        if sum >= 0x8000_0000 {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

/// Folds and inverts a one's-complement sum into a checksum field value.
pub fn fold_checksum(mut sum: u32) -> u16 {
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// Recomputes the IPv4 header checksum of `header` (its full IHL length) in place.
pub fn set_ipv4_checksum(header: &mut [u8]) {
    header[10] = 0;
    header[11] = 0;
    let checksum = fold_checksum(ones_complement_sum(header, 0));
    write_u16(header, 10, checksum);
}

/// Whether an IPv4 header's checksum is right.
pub fn ipv4_checksum_ok(header: &[u8]) -> bool {
    fold_checksum(ones_complement_sum(header, 0)) == 0
}

/// The UDP checksum over IPv6 (mandatory there, RFC 8200 §8.1), for a datagram whose checksum
/// field is zero while this runs.
pub fn udp_ipv6_checksum(src: &[u8; 16], dst: &[u8; 16], udp: &[u8]) -> u16 {
    let mut sum = ones_complement_sum(src, 0);
    sum = ones_complement_sum(dst, sum);
    sum += udp.len() as u32;
    sum += u32::from(proto::UDP);
    sum = ones_complement_sum(udp, sum);
    match fold_checksum(sum) {
        // RFC 768: a computed zero is sent as all ones.
        0 => 0xFFFF,
        checksum => checksum,
    }
}

/// Where an IPv6 packet's upper-layer protocol starts, past the extension headers that must
/// precede ESP (hop-by-hop, routing, destination options; RFC 4303 lets the last go either side;
/// §3.1.1): the offset of the byte that holds the next-header value, and the header length.
pub fn ipv6_insertion_point(packet: &[u8]) -> Option<(usize, usize)> {
    if packet.len() < IPV6_HEADER_LEN {
        return None;
    }
    let mut next_header_at = 6;
    let mut offset = IPV6_HEADER_LEN;
    for _ in 0..MAX_IPV6_EXTENSION_HEADERS {
        match packet[next_header_at] {
            proto::HOP_BY_HOP | proto::ROUTING | proto::DEST_OPTS => {
                let length = (usize::from(*packet.get(offset + 1)?) + 1) * 8;
                if offset + length > packet.len() {
                    return None;
                }
                next_header_at = offset;
                offset += length;
            }
            _ => return Some((next_header_at, offset)),
        }
    }
    None
}

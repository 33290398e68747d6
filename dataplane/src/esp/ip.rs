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

/// The one's-complement sum of `data` as 16-bit words (RFC 1071), added to `sum`; not yet
/// folded to 16 bits or inverted.
///
/// Adds 32-bit words into a 64-bit accumulator and folds once at the end: the sum of big-endian
/// 32-bit words folds to the same 16-bit sum (RFC 1071 §2(B), byte-order and word-size
/// independence), in a quarter of the additions of the 16-bit loop.
pub fn ones_complement_sum(data: &[u8], sum: u32) -> u32 {
    let mut accumulator = u64::from(sum);
    let mut words = data.chunks_exact(4);
    for word in &mut words {
        accumulator += u64::from(u32::from_be_bytes([word[0], word[1], word[2], word[3]]));
    }
    let mut tail = [0u8; 4];
    tail[..words.remainder().len()].copy_from_slice(words.remainder());
    accumulator += u64::from(u32::from_be_bytes(tail));
    // Fold 64 -> 32 -> 16 bits, carrying the overflow around each time.
    accumulator = (accumulator & 0xFFFF_FFFF) + (accumulator >> 32);
    accumulator = (accumulator & 0xFFFF_FFFF) + (accumulator >> 32);
    let mut folded = (accumulator & 0xFFFF) + (accumulator >> 16);
    folded = (folded & 0xFFFF) + (folded >> 16);
    folded as u32
}

/// Folds and inverts a one's-complement sum into a checksum field value.
pub fn fold_checksum(mut sum: u32) -> u16 {
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// The one's-complement sum of an IPv4 header. Headers without options (nearly all) take a
/// straight-line path over five words: this runs for every packet, twice on some.
#[inline]
fn ipv4_header_sum(header: &[u8]) -> u32 {
    match <&[u8; IPV4_HEADER_LEN]>::try_from(header) {
        Ok(h) => {
            let word =
                |i: usize| u64::from(u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
            let sum = word(0) + word(4) + word(8) + word(12) + word(16);
            let sum = (sum & 0xFFFF_FFFF) + (sum >> 32);
            let sum = (sum & 0xFFFF) + (sum >> 16);
            ((sum & 0xFFFF) + (sum >> 16)) as u32
        }
        Err(_) => ones_complement_sum(header, 0),
    }
}

/// Recomputes the IPv4 header checksum of `header` (its full IHL length) in place.
#[inline]
pub fn set_ipv4_checksum(header: &mut [u8]) {
    header[10] = 0;
    header[11] = 0;
    let checksum = fold_checksum(ipv4_header_sum(header));
    write_u16(header, 10, checksum);
}

/// Whether an IPv4 header's checksum is right.
#[inline]
pub fn ipv4_checksum_ok(header: &[u8]) -> bool {
    fold_checksum(ipv4_header_sum(header)) == 0
}

/// The UDP checksum over IPv6 (mandatory there, RFC 8200 §8.1), for a datagram whose checksum
/// field is zero while this runs.
pub fn udp_ipv6_checksum(src: &[u8; 16], dst: &[u8; 16], udp: &[u8]) -> u16 {
    let mut sum = ones_complement_sum(src, 0);
    sum = ones_complement_sum(dst, sum);
    sum += udp.len() as u32 + u32::from(proto::UDP);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain RFC 1071 loop over 16-bit words, as the reference.
    fn reference_sum(data: &[u8]) -> u16 {
        let mut sum = 0u64;
        for pair in data.chunks(2) {
            sum += u64::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
        }
        while sum > 0xFFFF {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn matches_the_rfc1071_loop_for_every_length_and_odd_content() {
        let mut state = 0x9E37_79B9u32;
        for len in 0..200 {
            for fill in [0x00u8, 0xFF, 0x80] {
                let data: Vec<u8> = (0..len)
                    .map(|i| {
                        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                        if i % 3 == 0 {
                            fill
                        } else {
                            (state >> 24) as u8
                        }
                    })
                    .collect();
                assert_eq!(
                    fold_checksum(ones_complement_sum(&data, 0)),
                    reference_sum(&data)
                );
            }
        }
        // All ones everywhere: the largest carries.
        let ones = vec![0xFFu8; 65535];
        assert_eq!(
            fold_checksum(ones_complement_sum(&ones, 0)),
            reference_sum(&ones)
        );
    }

    #[test]
    fn a_known_ipv4_header() {
        // The common worked example of the IPv4 header checksum (192.168.0.1 -> .199, 0xB861).
        let mut header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xC0, 0xA8,
            0x00, 0x01, 0xC0, 0xA8, 0x00, 0xC7,
        ];
        set_ipv4_checksum(&mut header);
        assert_eq!(read_u16(&header, 10), 0xB861);
        assert!(ipv4_checksum_ok(&header));
        // The same through the general path: a header with four bytes of options.
        let mut with_options = [0u8; 24];
        with_options[..20].copy_from_slice(&header);
        with_options[0] = 0x46;
        with_options[20..].copy_from_slice(&[0x94, 0x04, 0x00, 0x00]);
        set_ipv4_checksum(&mut with_options);
        assert_eq!(
            read_u16(&with_options, 10),
            reference_sum(&{
                let mut zeroed = with_options;
                zeroed[10] = 0;
                zeroed[11] = 0;
                zeroed
            })
        );
        assert!(ipv4_checksum_ok(&with_options));
    }
}

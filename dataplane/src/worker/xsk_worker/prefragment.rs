//! Splitting an IPv4 packet without DF that its tunnel cannot carry whole into fragments that
//! fit, before encryption: RFC 4459 §5.1's pre-fragmentation, which is Cisco's default
//! ("crypto ipsec fragmentation before-encryption") and what VPP does. Each fragment becomes an
//! ESP packet of its own, so no gateway on the way needs to reassemble outer fragments (this
//! data plane does not; RFC 4303 §3.4.1 asks it of every receiver of fragmented ESP) and the
//! destination host reassembles, as it would any fragmented packet.
//!
//! RFC 791's rules: fragment data is a multiple of 8 bytes except in the last fragment; offsets
//! count 8-byte units from the original packet's own offset (a fragment may be fragmented
//! again), MF is set on every fragment but the last, and the last keeps the original's MF;
//! the first fragment keeps every option, the others only those whose copied flag is set.
//! Identification, TOS, TTL, protocol and addresses stay as they were.

use crate::esp::ip::{self, Family, IPV4_DF, IPV4_HEADER_LEN};

/// More fragments.
const IPV4_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1FFF;
/// End of the option list, and the one-byte no-operation.
const OPTION_END: u8 = 0;
const OPTION_NOP: u8 = 1;
/// An option with this bit in its type goes into every fragment (RFC 791).
const OPTION_COPIED: u8 = 0x80;
/// The smallest datagram every IPv4 host takes (RFC 791): no fragment is made smaller.
const IPV4_MIN_MTU: usize = 68;

/// How a packet is cut: `count` fragments of `data_per_fragment` bytes of data each (the last
/// what is left).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Plan {
    header_len: usize,
    total_len: usize,
    data_per_fragment: usize,
    pub count: usize,
}

impl Plan {
    /// The data bytes of fragment `k`.
    fn data(&self, k: usize) -> std::ops::Range<usize> {
        let start = self.header_len + k * self.data_per_fragment;
        start..(start + self.data_per_fragment).min(self.total_len)
    }
}

/// How to cut `packet` (an IPv4 packet, its length as its header says) into fragments of at
/// most `mtu` bytes; `None` when it must not or cannot be fragmented: not IPv4, DF set, a
/// broken header, or an `mtu` below IPv4's minimum or too small for its header and 8 bytes.
pub(super) fn plan(packet: &[u8], mtu: usize) -> Option<Plan> {
    if Family::of(packet)? != Family::V4 || packet.len() < IPV4_HEADER_LEN {
        return None;
    }
    let header_len = usize::from(packet[0] & 0x0F) * 4;
    let total_len = usize::from(ip::read_u16(packet, 2));
    let flags = ip::read_u16(packet, 6);
    if flags & IPV4_DF != 0
        || header_len < IPV4_HEADER_LEN
        || total_len != packet.len()
        || total_len <= mtu
        || mtu < IPV4_MIN_MTU
    {
        return None;
    }
    let data_per_fragment = mtu.checked_sub(header_len)? / 8 * 8;
    if data_per_fragment == 0 {
        return None;
    }
    let data_len = total_len - header_len;
    // The last fragment's offset must still fit the 13-bit field.
    let last_offset = usize::from(flags & OFFSET_MASK) + (data_len - 1) / 8;
    if last_offset > usize::from(OFFSET_MASK) {
        return None;
    }
    Some(Plan {
        header_len,
        total_len,
        data_per_fragment,
        count: data_len.div_ceil(data_per_fragment),
    })
}

/// Writes fragment `k` (1 or later) of `packet` into `out`: its header (the copied options
/// only) and its data. Returns its length, or `None` when `out` is too short.
pub(super) fn write_later(packet: &[u8], plan: &Plan, k: usize, out: &mut [u8]) -> Option<usize> {
    let data = plan.data(k);
    let mut header_len = IPV4_HEADER_LEN;
    out.get_mut(..IPV4_HEADER_LEN)?
        .copy_from_slice(&packet[..IPV4_HEADER_LEN]);
    for option in copied_options(&packet[IPV4_HEADER_LEN..plan.header_len]) {
        out.get_mut(header_len..header_len + option.len())?
            .copy_from_slice(option);
        header_len += option.len();
    }
    let padded = header_len.next_multiple_of(4);
    out.get_mut(header_len..padded)?.fill(OPTION_END);
    let len = padded + data.len();
    out.get_mut(padded..len)?
        .copy_from_slice(&packet[data.clone()]);
    let flags = ip::read_u16(packet, 6);
    finish_header(&mut out[..len], flags, plan, k, padded);
    Some(len)
}

/// Turns `packet` into its own first fragment, in place: the header (every option kept) and
/// the first fragment's data. Returns the fragment's length.
pub(super) fn make_first(packet: &mut [u8], plan: &Plan) -> usize {
    let len = plan.data(0).end;
    let flags = ip::read_u16(packet, 6);
    finish_header(&mut packet[..len], flags, plan, 0, plan.header_len);
    len
}

/// Sets total length, flags and offset of fragment `k` (header `header_len` bytes long) and
/// its checksum; `flags` is the unfragmented packet's flags and offset word.
fn finish_header(fragment: &mut [u8], flags: u16, plan: &Plan, k: usize, header_len: usize) {
    let more = k + 1 < plan.count || flags & IPV4_MF != 0;
    let offset = (flags & OFFSET_MASK) + (k * plan.data_per_fragment / 8) as u16;
    fragment[0] = 0x40 | (header_len / 4) as u8;
    ip::write_u16(fragment, 2, fragment.len() as u16);
    ip::write_u16(fragment, 6, if more { IPV4_MF } else { 0 } | offset);
    ip::set_ipv4_checksum(&mut fragment[..header_len]);
}

/// The options of an IPv4 header that later fragments carry; stops at the end of the list or
/// at an option whose length runs past the header.
fn copied_options(mut options: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || loop {
        let (&kind, _) = options.split_first()?;
        match kind {
            OPTION_END => return None,
            OPTION_NOP => options = &options[1..],
            _ => {
                let len = usize::from(*options.get(1)?);
                if len < 2 || len > options.len() {
                    return None;
                }
                let (option, rest) = options.split_at(len);
                options = rest;
                if kind & OPTION_COPIED != 0 {
                    return Some(option);
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An IPv4 UDP-ish packet: `options` after the fixed header, then `data_len` bytes.
    fn packet(options: &[u8], data_len: usize, flags: u16) -> Vec<u8> {
        let header_len = IPV4_HEADER_LEN + options.len();
        assert_eq!(header_len % 4, 0);
        let mut packet = vec![0u8; header_len + data_len];
        packet[0] = 0x40 | (header_len / 4) as u8;
        packet[1] = 0xB8;
        ip::write_u16(&mut packet, 2, (header_len + data_len) as u16);
        ip::write_u16(&mut packet, 4, 0xBEEF);
        ip::write_u16(&mut packet, 6, flags);
        packet[8] = 61;
        packet[9] = 17;
        packet[12..16].copy_from_slice(&[10, 0, 0, 1]);
        packet[16..20].copy_from_slice(&[10, 9, 0, 2]);
        packet[IPV4_HEADER_LEN..header_len].copy_from_slice(options);
        for (i, byte) in packet[header_len..].iter_mut().enumerate() {
            *byte = (i % 251) as u8;
        }
        ip::set_ipv4_checksum(&mut packet[..header_len]);
        packet
    }

    fn fragments(original: &[u8], mtu: usize) -> Vec<Vec<u8>> {
        let plan = plan(original, mtu).expect("a plan");
        let mut out = Vec::new();
        for k in 1..plan.count {
            let mut buffer = vec![0u8; 4096];
            let len = write_later(original, &plan, k, &mut buffer).unwrap();
            buffer.truncate(len);
            out.push(buffer);
        }
        let mut first = original.to_vec();
        let len = make_first(&mut first, &plan);
        first.truncate(len);
        out.insert(0, first);
        out
    }

    /// What a receiver does (RFC 791 reassembly, written from the RFC, not from the code
    /// above): checks every header and puts the data back by offset.
    fn reassemble(fragments: &[Vec<u8>], original_flags: u16) -> Vec<u8> {
        let mut data = Vec::new();
        for (k, fragment) in fragments.iter().enumerate() {
            let header_len = usize::from(fragment[0] & 0x0F) * 4;
            assert_eq!(fragment[0] >> 4, 4);
            assert!(ip::ipv4_checksum_ok(&fragment[..header_len]), "{k}");
            assert_eq!(usize::from(ip::read_u16(fragment, 2)), fragment.len());
            assert_eq!(ip::read_u16(fragment, 4), 0xBEEF);
            let flags = ip::read_u16(fragment, 6);
            assert_eq!(flags & IPV4_DF, 0);
            let last = k + 1 == fragments.len();
            let more = flags & IPV4_MF != 0;
            assert_eq!(more, !last || original_flags & IPV4_MF != 0, "{k}");
            let offset = usize::from((flags & OFFSET_MASK) - (original_flags & OFFSET_MASK)) * 8;
            let body = &fragment[header_len..];
            if !last {
                assert_eq!(body.len() % 8, 0);
            }
            assert_eq!(offset, data.len(), "{k}: fragments in order and contiguous");
            data.extend_from_slice(body);
            assert_eq!(fragment[8], 61);
            assert_eq!(&fragment[12..20], &[10, 0, 0, 1, 10, 9, 0, 2]);
        }
        data
    }

    proptest! {
        #[test]
        fn fragments_fit_and_reassemble_to_the_original(
            data_len in 1usize..3000,
            mtu in 68usize..1600,
            offset in 0u16..64,
            more in any::<bool>(),
        ) {
            let flags = offset | if more { IPV4_MF } else { 0 };
            let original = packet(&[], data_len, flags);
            prop_assume!(original.len() > mtu);
            let fragments = fragments(&original, mtu);
            for fragment in &fragments {
                prop_assert!(fragment.len() <= mtu);
            }
            prop_assert_eq!(reassemble(&fragments, flags), original[20..].to_vec());
            prop_assert_eq!(&fragments[0][..20][..2], &original[..2]);
        }
    }

    #[test]
    fn later_fragments_keep_only_the_copied_options() {
        // Record Route (7, not copied), NOP, Security (130, copied, 11 bytes), End, padding:
        // later fragments carry Security alone, padded to 4.
        let mut options = vec![7, 7, 4, 0, 0, 0, 0, OPTION_NOP];
        options.extend_from_slice(&[130, 11, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        options.extend_from_slice(&[OPTION_END]);
        assert_eq!(options.len(), 20);
        let original = packet(&options, 1000, 0);
        let fragments = fragments(&original, 576);
        assert_eq!(fragments.len(), 2);
        assert_eq!(&fragments[0][20..40], &options[..]);
        assert_eq!(fragments[1][0] & 0x0F, 8);
        assert_eq!(&fragments[1][20..31], &options[8..19]);
        assert_eq!(fragments[1][31], OPTION_END);
        assert_eq!(reassemble(&fragments, 0), original[40..].to_vec());
    }

    #[test]
    fn what_is_never_fragmented() {
        let fits = packet(&[], 100, 0);
        assert_eq!(plan(&fits, 1500), None);
        let dont_fragment = packet(&[], 2000, IPV4_DF);
        assert_eq!(plan(&dont_fragment, 1500), None);
        let big = packet(&[], 2000, 0);
        assert_eq!(plan(&big, 67), None);
        assert!(plan(&big, 68).is_some());
        let mut lying = big.clone();
        ip::write_u16(&mut lying, 2, 1999);
        assert_eq!(plan(&lying, 1500), None);
        // The last offset would not fit 13 bits.
        let late = packet(&[], 2000, OFFSET_MASK - 10);
        assert_eq!(plan(&late, 1500), None);
        let mut v6 = big;
        v6[0] = 0x60;
        assert_eq!(plan(&v6, 1500), None);
    }
}

//! Extended sequence numbers (RFC 4303 §2.2.1 and Appendix A): only the low 32 bits travel in
//! the packet; the receiver infers the high 32 bits from its replay window.

/// Reconstructs the 64-bit sequence number of a packet carrying `seq_low`, given the highest
/// number received so far (`top`) and the replay window size, per RFC 4303 Appendix A2.2.
///
/// A wrong guess is harmless: the high bits are part of the AEAD's AAD, so the packet then fails
/// authentication and is dropped.
pub fn infer_sequence(top: u64, window: u32, seq_low: u32) -> u64 {
    let top_low = top as u32;
    let top_high = (top >> 32) as u32;
    let span = window.saturating_sub(1);
    let bottom = top_low.wrapping_sub(span);
    let high = if top_low >= span {
        // The window lies inside one 2^32 subspace: a low number below its bottom has wrapped.
        if seq_low >= bottom {
            top_high
        } else {
            top_high.wrapping_add(1)
        }
    } else if seq_low >= bottom && top_high > 0 {
        // The window straddles two subspaces and the number sits in the older one.
        top_high - 1
    } else {
        // Either in the current subspace, or (in the first subspace, which has no older one) a
        // jump forward.
        top_high
    };
    (u64::from(high) << 32) | u64::from(seq_low)
}

#[cfg(test)]
mod tests {
    use super::infer_sequence;

    #[test]
    fn inside_one_subspace() {
        assert_eq!(infer_sequence(1000, 64, 1001), 1001);
        assert_eq!(infer_sequence(1000, 64, 990), 990);
        assert_eq!(infer_sequence(0x5_0000_1000, 64, 0x1001), 0x5_0000_1001);
    }

    #[test]
    fn crossing_two_to_the_32() {
        let top = 0xFFFF_FFF0u64;
        // The sender crossed 2^32: the low bits start again from 0.
        assert_eq!(infer_sequence(top, 64, 5), 0x1_0000_0005);
        assert_eq!(infer_sequence(top, 64, 0xFFFF_FFF5), 0xFFFF_FFF5);
        // Window straddling the boundary: late packets from before it.
        let top = 0x1_0000_0010u64;
        assert_eq!(infer_sequence(top, 64, 0xFFFF_FFF0), 0xFFFF_FFF0);
        assert_eq!(infer_sequence(top, 64, 0x11), 0x1_0000_0011);
    }

    #[test]
    fn first_subspace_has_no_older_one() {
        // With top = 5 the window reaches "below zero"; a huge low number is a jump forward.
        assert_eq!(infer_sequence(5, 1024, 0xFFFF_FF00), 0xFFFF_FF00);
        assert_eq!(infer_sequence(0, 1024, 1), 1);
    }
}

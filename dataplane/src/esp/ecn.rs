//! ECN across the tunnel, RFC 6040 "normal mode": the encapsulator copies the inner ECN field
//! to the outer header; the decapsulator merges the outer field back into the inner one.

pub const NOT_ECT: u8 = 0b00;
pub const ECT1: u8 = 0b01;
pub const ECT0: u8 = 0b10;
pub const CE: u8 = 0b11;

/// The outer header's ECN field for an inner header with `inner` (RFC 6040 §4.1, normal mode).
pub fn on_encapsulation(inner: u8) -> u8 {
    inner & 0b11
}

/// The inner header's new ECN field, or `None` when the packet must be dropped (RFC 6040 §4.2,
/// Figure 4): congestion marked on a packet whose endpoints do not speak ECN.
pub fn on_decapsulation(outer: u8, inner: u8) -> Option<u8> {
    match (inner & 0b11, outer & 0b11) {
        (NOT_ECT, CE) => None,
        (NOT_ECT, _) => Some(NOT_ECT),
        (CE, _) => Some(CE),
        (_, CE) => Some(CE),
        // ECT(1) in the outer header wins over ECT(0) in the inner one; otherwise the inner stays.
        (ECT0, ECT1) => Some(ECT1),
        (inner, _) => Some(inner),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6040_figure_4() {
        // Rows: inner Not-ECT, ECT(0), ECT(1), CE; columns: outer Not-ECT, ECT(0), ECT(1), CE.
        let table = [
            [Some(NOT_ECT), Some(NOT_ECT), Some(NOT_ECT), None],
            [Some(ECT0), Some(ECT0), Some(ECT1), Some(CE)],
            [Some(ECT1), Some(ECT1), Some(ECT1), Some(CE)],
            [Some(CE), Some(CE), Some(CE), Some(CE)],
        ];
        for (inner, row) in [NOT_ECT, ECT0, ECT1, CE].into_iter().zip(table) {
            for (outer, expected) in [NOT_ECT, ECT0, ECT1, CE].into_iter().zip(row) {
                assert_eq!(on_decapsulation(outer, inner), expected, "{inner} {outer}");
            }
        }
    }

    #[test]
    fn normal_mode_copies() {
        for ecn in [NOT_ECT, ECT0, ECT1, CE] {
            assert_eq!(on_encapsulation(ecn), ecn);
        }
    }
}

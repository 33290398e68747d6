//! Telling apart what arrives on the NAT-T port (RFC 3948 §2): ESP, IKE and keepalives share it.

/// What a UDP datagram on the NAT-T port carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpPayload {
    /// ESP: the first four bytes are a non-zero SPI.
    Esp,
    /// IKE: preceded by the four-byte non-ESP marker, all zeros (RFC 3948 §2.2).
    Ike,
    /// A NAT-keepalive: the single byte 0xFF (RFC 3948 §2.3).
    Keepalive,
    /// Anything else: too short to be any of them.
    Malformed,
}

pub fn classify_udp_payload(payload: &[u8]) -> UdpPayload {
    match payload {
        [0xFF] => UdpPayload::Keepalive,
        [0, 0, 0, 0, ..] => UdpPayload::Ike,
        [_, _, _, _, ..] => UdpPayload::Esp,
        _ => UdpPayload::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3948_classes() {
        assert_eq!(classify_udp_payload(&[0xFF]), UdpPayload::Keepalive);
        assert_eq!(classify_udp_payload(&[0, 0, 0, 0, 1]), UdpPayload::Ike);
        assert_eq!(classify_udp_payload(&[0, 0, 0, 0]), UdpPayload::Ike);
        assert_eq!(
            classify_udp_payload(&[0, 0, 0, 1, 0, 0, 0, 1]),
            UdpPayload::Esp
        );
        assert_eq!(classify_udp_payload(&[]), UdpPayload::Malformed);
        assert_eq!(classify_udp_payload(&[0xFF, 0]), UdpPayload::Malformed);
        assert_eq!(classify_udp_payload(&[1, 2, 3]), UdpPayload::Malformed);
    }
}

//! The static SAs of the benchmark: one SPI and AES-128-GCM key each way between gateway A
//! (`WAN_A`) and gateway B (`WAN_B`). `xipsecd` gets them as `[[manual_sa]]`; with one gateway
//! (`--topology encrypt|decrypt`) the harness plays gateway B itself with the data plane's ESP
//! core: the sink decrypts what gateway A encrypted, or the generator encrypts what gateway A
//! is to decrypt. Fixed keys: the traffic is synthetic and never leaves the machine.

use std::net::Ipv4Addr;

use xipsec_dataplane::esp::{CipherSuite, Endpoints, InboundSa, OutboundSa, SaParams};

/// The gateways' WAN addresses.
pub const WAN_A: &str = "192.0.2.1";
/// See [`WAN_A`].
pub const WAN_B: &str = "192.0.2.2";

/// The SPI and keying material (AES-128 key then salt, 20 bytes, hex) of the SA from gateway A
/// to gateway B.
pub const A_TO_B: (u32, &str) = (0x0000_b001, "000102030405060708090a0b0c0d0e0f10111213");
/// The SA from gateway B to gateway A; see [`A_TO_B`].
pub const B_TO_A: (u32, &str) = (0x0000_b002, "202122232425262728292a2b2c2d2e2f30313233");

fn unhex(text: &str) -> Vec<u8> {
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digit = |c: u8| (c as char).to_digit(16).expect("a constant hex key") as u8;
            (digit(pair[0]) << 4) | digit(pair[1])
        })
        .collect()
}

/// The cipher of every manual SA.
pub const SUITE: CipherSuite = CipherSuite::Aes128Gcm16;

fn params((spi, _): (u32, &str), local: Ipv4Addr, remote: Ipv4Addr) -> SaParams {
    SaParams::tunnel(spi, SUITE, Endpoints::V4 { local, remote })
}

fn wan(text: &str) -> Ipv4Addr {
    text.parse().expect("a constant address")
}

/// Gateway B's side of the A → B SA: what the sink decrypts with.
pub fn inbound_at_b() -> InboundSa {
    InboundSa::new(params(A_TO_B, wan(WAN_B), wan(WAN_A)), &unhex(A_TO_B.1))
        .expect("the constant key fits AES-128-GCM")
}

/// Gateway B's side of the B → A SA: what the generator encrypts with.
pub fn outbound_at_b() -> OutboundSa {
    OutboundSa::new(params(B_TO_A, wan(WAN_B), wan(WAN_A)), &unhex(B_TO_A.1))
        .expect("the constant key fits AES-128-GCM")
}

/// Gateway A's side of the A → B SA (tests play gateway A with it).
pub fn outbound_at_a() -> OutboundSa {
    OutboundSa::new(params(A_TO_B, wan(WAN_A), wan(WAN_B)), &unhex(A_TO_B.1))
        .expect("the constant key fits AES-128-GCM")
}

/// Gateway A's side of the B → A SA (tests play gateway A with it).
pub fn inbound_at_a() -> InboundSa {
    InboundSa::new(params(B_TO_A, wan(WAN_A), wan(WAN_B)), &unhex(B_TO_A.1))
        .expect("the constant key fits AES-128-GCM")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_decode_to_the_suites_length() {
        for (_, key) in [A_TO_B, B_TO_A] {
            assert_eq!(unhex(key).len(), SUITE.keymat_len(), "{key}");
        }
        assert_eq!(unhex("00ff10"), vec![0x00, 0xff, 0x10]);
        assert_eq!(inbound_at_b().params().spi, A_TO_B.0);
        assert_eq!(outbound_at_b().params().spi, B_TO_A.0);
    }
}

//! Fixtures shared by the criterion benchmarks in `benches/`: one SA shape and one packet
//! shape, so every benchmark measures the same thing.

use std::net::Ipv4Addr;

use xipsec_dataplane::esp::{ip, CipherSuite, Endpoints, SaParams, ENCAP_HEADROOM, ENCAP_TAILROOM};

/// Packets per batch, as a worker would process them.
pub const BATCH: usize = 32;
/// The inner packet sizes every benchmark runs.
pub const SIZES: [usize; 5] = [64, 128, 512, 1420, 9000];
pub const SUITE: CipherSuite = CipherSuite::Aes128Gcm16;

/// Keying material for [`SUITE`]: key, then salt.
pub fn keymat() -> Vec<u8> {
    (0..SUITE.keymat_len() as u8).collect()
}

/// A tunnel-mode SA over IPv4.
pub fn params() -> SaParams {
    SaParams::tunnel(
        0x1000,
        SUITE,
        Endpoints::V4 {
            local: Ipv4Addr::new(192, 0, 2, 1),
            remote: Ipv4Addr::new(192, 0, 2, 2),
        },
    )
}

/// An inner IPv4 UDP packet of `len` bytes.
pub fn inner_packet(len: usize) -> Vec<u8> {
    let mut packet = vec![0xA5u8; len];
    packet[0] = 0x45;
    packet[1] = 0;
    packet[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    packet[6] = 0x40;
    packet[8] = 64;
    packet[9] = ip::proto::UDP;
    ip::set_ipv4_checksum(&mut packet[..20]);
    packet
}

/// A batch of frames, each holding `packet` after the encapsulation headroom and just big
/// enough for its encapsulation, so that raw AEAD and ESP touch the same amount of memory.
pub fn frames(packet: &[u8]) -> Vec<Vec<u8>> {
    (0..BATCH)
        .map(|_| {
            let mut frame = vec![0u8; ENCAP_HEADROOM + packet.len() + ENCAP_TAILROOM];
            frame[ENCAP_HEADROOM..ENCAP_HEADROOM + packet.len()].copy_from_slice(packet);
            frame
        })
        .collect()
}

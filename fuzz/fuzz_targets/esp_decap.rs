//! ESP decapsulation on arbitrary input. The first byte picks the SA's shape; with its top bit
//! set, the rest is taken as the plaintext of an ESP packet that is then sealed with the SA's
//! key, so that the fuzzer also reaches what happens after authentication (trailer, padding,
//! inner headers, transport-mode rebuild) — code random ciphertext never gets to.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use xipsec_dataplane::esp::{
    ip, CipherSuite, Decapsulator, Endpoints, EspKey, InboundSa, Mode, PacketBuf, SaParams,
    UdpEncap, ICV_LEN,
};

const SPI: u32 = 0x0102_0304;

fn sealed_packet(suite: CipherSuite, keymat: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let key = EspKey::new(suite, keymat).expect("keymat length matches the suite");
    let sequence = 1u32;
    let iv = u64::from(sequence).to_be_bytes();
    let mut aad = [0u8; 8];
    aad[..4].copy_from_slice(&SPI.to_be_bytes());
    aad[4..].copy_from_slice(&sequence.to_be_bytes());
    let mut body = plaintext.to_vec();
    let mut icv = [0u8; ICV_LEN];
    key.seal(&iv, &aad, &mut body, &mut icv).expect("small input");
    let mut packet = vec![0u8; 20];
    let total = (20 + 16 + body.len() + icv.len()).min(usize::from(u16::MAX));
    packet[0] = 0x45;
    packet[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    packet[8] = 64;
    packet[9] = ip::proto::ESP;
    ip::set_ipv4_checksum(&mut packet);
    packet.extend_from_slice(&SPI.to_be_bytes());
    packet.extend_from_slice(&sequence.to_be_bytes());
    packet.extend_from_slice(&iv);
    packet.extend_from_slice(&body);
    packet.extend_from_slice(&icv);
    packet
}

fuzz_target!(|data: &[u8]| {
    let Some((&shape, rest)) = data.split_first() else {
        return;
    };
    let suite = CipherSuite::ALL[usize::from(shape & 0b11) % 3];
    let mut params = SaParams::tunnel(
        SPI,
        suite,
        Endpoints::V4 {
            local: Ipv4Addr::new(192, 0, 2, 2),
            remote: Ipv4Addr::new(192, 0, 2, 1),
        },
    );
    params.mode = if shape & 0b100 != 0 { Mode::Transport } else { Mode::Tunnel };
    params.esn = shape & 0b1000 != 0;
    params.udp_encap = (shape & 0b1_0000 != 0).then_some(UdpEncap::NATT_DEFAULT);
    let keymat: Vec<u8> = (0..suite.keymat_len() as u8).collect();
    let mut sa = InboundSa::new(params, &keymat).expect("valid parameters");
    let mut packet = if shape & 0x80 != 0 && !params.esn {
        sealed_packet(suite, &keymat, rest)
    } else {
        rest.to_vec()
    };
    let len = packet.len();
    let mut buf = PacketBuf::new(&mut packet, 0, len).expect("window inside the buffer");
    let _ = Decapsulator::default().decap(&mut sa, &mut buf);
});

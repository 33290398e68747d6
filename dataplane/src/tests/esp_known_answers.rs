//! Byte-exact known answers from published ESP vectors (tests/vectors/esp_kat.json): RFC 7634
//! Appendix A (ChaCha20-Poly1305) and draft-mcgrew-gcm-test-01 (AES-GCM in ESP, cross-checked
//! against the Linux kernel's rfc4106 templates). `verify_esp_kat.py` beside the JSON checks
//! the vectors themselves with Python's `cryptography`.
//!
//! The vectors are ESP packets without an IP header, so each is wrapped in a minimal IPv4
//! header and run through transport mode, where the header stays and the ESP payload is the
//! vector's. Encapsulation must then reproduce the published packet byte for byte (with the
//! published IV, which is not the sequence number our sender would pick).

use std::net::Ipv4Addr;

use serde::Deserialize;

use crate::esp::ip::{self, proto};
use crate::esp::{
    CipherSuite, Decapsulator, Endpoints, InboundSa, Mode, OutboundSa, PacketBuf, SaParams, Verdict,
};

#[derive(Deserialize)]
struct Vectors {
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    name: String,
    kind: String,
    cipher: String,
    key: String,
    salt: String,
    spi: Option<String>,
    seq: Option<String>,
    iv: String,
    payload: String,
    next_header: Option<u8>,
    esp_packet: Option<String>,
}

fn unhex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn ipv4_header(protocol: u8, total_len: usize) -> Vec<u8> {
    let mut header = vec![0u8; 20];
    header[0] = 0x45;
    header[2..4].copy_from_slice(&(total_len as u16).to_be_bytes());
    header[8] = 64;
    header[9] = protocol;
    header[12..16].copy_from_slice(&[198, 51, 100, 1]);
    header[16..20].copy_from_slice(&[198, 51, 100, 2]);
    ip::set_ipv4_checksum(&mut header);
    header
}

const ROOM: usize = 64;

fn run(frame: &mut Vec<u8>, len: usize, f: impl FnOnce(&mut PacketBuf<'_>)) -> Vec<u8> {
    frame.resize(ROOM + len + ROOM, 0);
    let mut buf = PacketBuf::new(frame, ROOM, len).unwrap();
    f(&mut buf);
    buf.data().to_vec()
}

#[test]
fn published_esp_packets() {
    let text = include_str!("../../tests/vectors/esp_kat.json");
    let vectors: Vectors = serde_json::from_str(text).unwrap();
    let mut checked = 0;
    for v in vectors.vectors {
        let Some(suite) = CipherSuite::from_name(&v.cipher) else {
            continue; // AES-192 and GMAC vectors: suites xipsec does not offer.
        };
        if v.kind != "esp" {
            continue;
        }
        let (Some(spi), Some(seq), Some(next_header), Some(esp_packet)) =
            (&v.spi, &v.seq, v.next_header, &v.esp_packet)
        else {
            panic!("{}: incomplete ESP vector", v.name);
        };
        let spi = u32::from_be_bytes(unhex(spi).try_into().unwrap());
        let seq_bytes = unhex(seq);
        let esn = seq_bytes.len() == 8;
        let sequence = seq_bytes
            .iter()
            .fold(0u64, |acc, &b| acc << 8 | u64::from(b));
        let mut keymat = unhex(&v.key);
        keymat.extend(unhex(&v.salt));
        let payload = unhex(&v.payload);
        let esp_packet = unhex(esp_packet);
        let params = SaParams {
            mode: Mode::Transport,
            esn,
            ..SaParams::tunnel(
                spi,
                suite,
                Endpoints::V4 {
                    local: Ipv4Addr::new(198, 51, 100, 1),
                    remote: Ipv4Addr::new(198, 51, 100, 2),
                },
            )
        };

        // Encapsulation reproduces the published packet.
        let mut out = OutboundSa::new(params, &keymat).unwrap();
        out.advance_sequence_to(sequence);
        out.iv_override = Some(unhex(&v.iv).try_into().unwrap());
        let mut plaintext = ipv4_header(next_header, 20 + payload.len());
        plaintext.extend_from_slice(&payload);
        let mut frame = vec![0u8; ROOM];
        frame.extend_from_slice(&plaintext);
        let wire = run(&mut frame, plaintext.len(), |buf| out.encap(buf).unwrap());
        assert_eq!(&wire[20..], &esp_packet[..], "{}: encap", v.name);
        assert_eq!(wire[9], proto::ESP);
        assert!(ip::ipv4_checksum_ok(&wire[..20]));

        // Decapsulation of the published packet gives back the payload.
        let mut inbound = InboundSa::new(params, &keymat).unwrap();
        inbound.resume_after(sequence - 1);
        let mut received = ipv4_header(proto::ESP, 20 + esp_packet.len());
        received.extend_from_slice(&esp_packet);
        let mut frame = vec![0u8; ROOM];
        frame.extend_from_slice(&received);
        let mut decapsulator = Decapsulator::default();
        let mut verdict = Verdict::ToControlPlane;
        let restored = run(&mut frame, received.len(), |buf| {
            verdict = decapsulator.decap(&mut inbound, buf)
        });
        assert_eq!(verdict, Verdict::Forward, "{}: decap", v.name);
        assert_eq!(restored, plaintext, "{}: decap", v.name);

        // An inner IP packet (RFC 7634's example) decapsulates in tunnel mode too.
        if next_header == proto::IPV4 {
            let mut inbound = InboundSa::new(
                SaParams {
                    mode: Mode::Tunnel,
                    ..params
                },
                &keymat,
            )
            .unwrap();
            inbound.resume_after(sequence - 1);
            let mut frame = vec![0u8; ROOM];
            frame.extend_from_slice(&received);
            let inner = run(&mut frame, received.len(), |buf| {
                verdict = decapsulator.decap(&mut inbound, buf)
            });
            assert_eq!(
                (verdict, inner),
                (Verdict::Forward, payload.clone()),
                "{}",
                v.name
            );
        }
        checked += 1;
    }
    // 1 ChaCha20-Poly1305 and 15 AES-GCM-128/256 vectors apply.
    assert_eq!(checked, 16);
}

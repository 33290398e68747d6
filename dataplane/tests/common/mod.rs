//! Packet builders and SA pairs shared by the ESP integration tests.
#![allow(dead_code)]

use std::net::{Ipv4Addr, Ipv6Addr};

use xipsec_dataplane::esp::{
    ip, CipherSuite, Decapsulator, Endpoints, EspKey, InboundSa, InboundSaLookup, OutboundSa,
    PacketBuf, SaParams, Verdict,
};

/// Room around every test packet; more than encapsulation needs, so that tests of the limits
/// set their own.
pub const ROOM: usize = 128;

pub const V4_ENDPOINTS: Endpoints = Endpoints::V4 {
    local: Ipv4Addr::new(192, 0, 2, 1),
    remote: Ipv4Addr::new(192, 0, 2, 2),
};

pub const V6_ENDPOINTS: Endpoints = Endpoints::V6 {
    local: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
    remote: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2),
};

/// The same endpoints seen from the other gateway.
pub fn mirrored(endpoints: Endpoints) -> Endpoints {
    match endpoints {
        Endpoints::V4 { local, remote } => Endpoints::V4 {
            local: remote,
            remote: local,
        },
        Endpoints::V6 { local, remote } => Endpoints::V6 {
            local: remote,
            remote: local,
        },
    }
}

pub fn keymat(suite: CipherSuite) -> Vec<u8> {
    (0..suite.keymat_len() as u8)
        .map(|i| i.wrapping_mul(37) ^ 0x5a)
        .collect()
}

/// An outbound SA and the inbound SA that receives it, as the two gateways would hold them.
pub fn sa_pair(params: SaParams) -> (OutboundSa, InboundSa) {
    let keymat = keymat(params.suite);
    let mut inbound_params = params;
    inbound_params.endpoints = mirrored(params.endpoints);
    if let Some(ports) = params.udp_encap {
        inbound_params.udp_encap = Some(xipsec_dataplane::esp::UdpEncap {
            local_port: ports.remote_port,
            remote_port: ports.local_port,
        });
    }
    (
        OutboundSa::new(params, &keymat).unwrap(),
        InboundSa::new(inbound_params, &keymat).unwrap(),
    )
}

/// An IPv4 UDP packet of `total_len` bytes (at least 28) with a recognisable payload.
pub fn ipv4_udp(total_len: usize, tos: u8, dont_fragment: bool) -> Vec<u8> {
    assert!(total_len >= 28);
    let mut packet = vec![0u8; total_len];
    packet[0] = 0x45;
    packet[1] = tos;
    packet[2..4].copy_from_slice(&(total_len as u16).to_be_bytes());
    packet[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    if dont_fragment {
        packet[6] = 0x40;
    }
    packet[8] = 63;
    packet[9] = ip::proto::UDP;
    packet[12..16].copy_from_slice(&[10, 1, 0, 5]);
    packet[16..20].copy_from_slice(&[10, 2, 0, 7]);
    ip::set_ipv4_checksum(&mut packet[..20]);
    let udp_len = (total_len - 20) as u16;
    packet[20..22].copy_from_slice(&5000u16.to_be_bytes());
    packet[22..24].copy_from_slice(&6000u16.to_be_bytes());
    packet[24..26].copy_from_slice(&udp_len.to_be_bytes());
    for (i, byte) in packet[28..].iter_mut().enumerate() {
        *byte = (i * 7 + 3) as u8;
    }
    packet
}

/// An IPv6 UDP packet of `total_len` bytes (at least 48).
pub fn ipv6_udp(total_len: usize, traffic_class: u8, flow_label: u32) -> Vec<u8> {
    assert!(total_len >= 48);
    let mut packet = vec![0u8; total_len];
    let word = (6u32 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0xFFFFF);
    packet[0..4].copy_from_slice(&word.to_be_bytes());
    packet[4..6].copy_from_slice(&((total_len - 40) as u16).to_be_bytes());
    packet[6] = ip::proto::UDP;
    packet[7] = 63;
    packet[8..24].copy_from_slice(&Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 5).octets());
    packet[24..40].copy_from_slice(&Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, 7).octets());
    packet[40..42].copy_from_slice(&5000u16.to_be_bytes());
    packet[42..44].copy_from_slice(&6000u16.to_be_bytes());
    packet[44..46].copy_from_slice(&((total_len - 40) as u16).to_be_bytes());
    for (i, byte) in packet[48..].iter_mut().enumerate() {
        *byte = (i * 11 + 1) as u8;
    }
    packet
}

/// A packet between the endpoints themselves, as transport mode carries.
pub fn packet_for(endpoints: Endpoints, total_len: usize) -> Vec<u8> {
    match endpoints {
        Endpoints::V4 { local, remote } => {
            let mut packet = ipv4_udp(total_len, 0, true);
            packet[12..16].copy_from_slice(&local.octets());
            packet[16..20].copy_from_slice(&remote.octets());
            ip::set_ipv4_checksum(&mut packet[..20]);
            packet
        }
        Endpoints::V6 { local, remote } => {
            let mut packet = ipv6_udp(total_len, 0, 0);
            packet[8..24].copy_from_slice(&local.octets());
            packet[24..40].copy_from_slice(&remote.octets());
            packet
        }
    }
}

/// A frame with `head` bytes of headroom and `tail` bytes of tailroom around `packet`.
pub struct Frame {
    pub bytes: Vec<u8>,
    pub start: usize,
    pub len: usize,
}

impl Frame {
    pub fn new(packet: &[u8]) -> Self {
        Self::with_room(packet, ROOM, ROOM + usize::from(u16::MAX))
    }

    pub fn with_room(packet: &[u8], head: usize, tail: usize) -> Self {
        let mut bytes = vec![0xEE; head + packet.len() + tail];
        bytes[head..head + packet.len()].copy_from_slice(packet);
        Self {
            bytes,
            start: head,
            len: packet.len(),
        }
    }

    pub fn data(&self) -> &[u8] {
        &self.bytes[self.start..self.start + self.len]
    }

    /// Runs `f` on the frame as a packet buffer and keeps the window it leaves.
    pub fn with_buf<R>(&mut self, f: impl FnOnce(&mut PacketBuf<'_>) -> R) -> R {
        let mut buf = PacketBuf::new(&mut self.bytes, self.start, self.len).unwrap();
        let result = f(&mut buf);
        self.start = buf.offset();
        self.len = buf.len();
        result
    }
}

/// Encapsulates `plaintext` and returns the wire packet.
pub fn encap(sa: &mut OutboundSa, plaintext: &[u8]) -> Vec<u8> {
    let mut frame = Frame::new(plaintext);
    frame.with_buf(|buf| sa.encap(buf)).expect("encap");
    frame.data().to_vec()
}

/// Decapsulates `wire` and returns the verdict and what the window holds afterwards.
pub fn decap<L: InboundSaLookup + ?Sized>(
    decapsulator: &mut Decapsulator,
    sa: &mut L,
    wire: &[u8],
) -> (Verdict, Vec<u8>) {
    let mut frame = Frame::new(wire);
    let verdict = frame.with_buf(|buf| decapsulator.decap(sa, buf));
    (verdict, frame.data().to_vec())
}

/// An ESP packet over IPv4 built by hand around an arbitrary plaintext (payload, padding and
/// trailer as the test wants them), sealed with the SA's key: for testing what the receiver does
/// with authentic but malformed content.
pub fn hand_sealed_ipv4(suite: CipherSuite, spi: u32, sequence: u32, plaintext: &[u8]) -> Vec<u8> {
    let key = EspKey::new(suite, &keymat(suite)).unwrap();
    let iv = u64::from(sequence).to_be_bytes();
    let mut aad = Vec::new();
    aad.extend_from_slice(&spi.to_be_bytes());
    aad.extend_from_slice(&sequence.to_be_bytes());
    let mut body = plaintext.to_vec();
    let mut icv = [0u8; xipsec_dataplane::esp::ICV_LEN];
    key.seal(&iv, &aad, &mut body, &mut icv).unwrap();
    let total_len = 20 + 8 + 8 + body.len() + icv.len();
    let mut packet = vec![0u8; 20];
    packet[0] = 0x45;
    packet[2..4].copy_from_slice(&(total_len as u16).to_be_bytes());
    packet[8] = 64;
    packet[9] = ip::proto::ESP;
    packet[12..16].copy_from_slice(&[192, 0, 2, 1]);
    packet[16..20].copy_from_slice(&[192, 0, 2, 2]);
    ip::set_ipv4_checksum(&mut packet);
    packet.extend_from_slice(&spi.to_be_bytes());
    packet.extend_from_slice(&sequence.to_be_bytes());
    packet.extend_from_slice(&iv);
    packet.extend_from_slice(&body);
    packet.extend_from_slice(&icv);
    packet
}

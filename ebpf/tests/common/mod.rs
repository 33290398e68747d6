//! Shared by the integration tests: the root check and hand-built frames.
#![allow(dead_code)]

use std::io::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Whether the test may run: it needs root (CAP_BPF, CAP_NET_ADMIN). When not root it prints a
/// loud SKIPPED line and returns false, unless XIPSEC_REQUIRE_ALL is set: then it fails.
pub fn have_root(test: &str) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|euid| euid.parse::<u32>().ok());
    if euid == Some(0) {
        return true;
    }
    if std::env::var_os("XIPSEC_REQUIRE_ALL").is_some() {
        panic!("{test}: needs root (CAP_BPF, CAP_NET_ADMIN) and XIPSEC_REQUIRE_ALL is set");
    }
    // Straight to stderr: the test harness captures eprintln! of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: needs root: {test} (set XIPSEC_REQUIRE_ALL to make this a failure)"
    );
    false
}

pub const MAC_DST: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const MAC_SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;

pub const PROTO_HOPOPTS: u8 = 0;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ROUTING: u8 = 43;
pub const PROTO_FRAGMENT: u8 = 44;
pub const PROTO_ESP: u8 = 50;
pub const PROTO_ICMPV6: u8 = 58;
pub const PROTO_NONE: u8 = 59;
pub const PROTO_DSTOPTS: u8 = 60;

/// An Ethernet frame with the given VLAN tags (each `(tpid, vid)`), outermost first.
pub fn ethernet(vlans: &[(u16, u16)], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(14 + 4 * vlans.len() + payload.len());
    frame.extend_from_slice(&MAC_DST);
    frame.extend_from_slice(&MAC_SRC);
    for &(tpid, vid) in vlans {
        frame.extend_from_slice(&tpid.to_be_bytes());
        frame.extend_from_slice(&vid.to_be_bytes());
    }
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// IPv4 fragment fields.
#[derive(Clone, Copy, Default)]
pub struct Frag {
    pub more: bool,
    /// In 8-byte units.
    pub offset: u16,
}

/// An IPv4 packet (no options, correct header checksum).
pub fn ipv4(protocol: u8, dst: Ipv4Addr, frag: Frag, payload: &[u8]) -> Vec<u8> {
    ipv4_with_options(protocol, dst, frag, &[], payload)
}

/// An IPv4 packet with options (`options.len()` a multiple of 4).
pub fn ipv4_with_options(
    protocol: u8,
    dst: Ipv4Addr,
    frag: Frag,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0);
    let header_len = 20 + options.len();
    let total = u16::try_from(header_len + payload.len()).unwrap();
    let frag_field = (u16::from(frag.more) << 13) | frag.offset;
    let mut packet = vec![0x40 | (header_len / 4) as u8, 0];
    packet.extend_from_slice(&total.to_be_bytes());
    packet.extend_from_slice(&[0x12, 0x34]);
    packet.extend_from_slice(&frag_field.to_be_bytes());
    packet.extend_from_slice(&[64, protocol, 0, 0]);
    packet.extend_from_slice(&Ipv4Addr::new(198, 51, 100, 2).octets());
    packet.extend_from_slice(&dst.octets());
    packet.extend_from_slice(options);
    let sum = checksum(&packet);
    packet[10..12].copy_from_slice(&sum.to_be_bytes());
    packet.extend_from_slice(payload);
    packet
}

/// An IPv6 packet whose first Next Header is `next` and whose payload is `payload` (extension
/// headers included, see [`ext`] and [`fragment_header`]).
pub fn ipv6(next: u8, dst: Ipv6Addr, payload: &[u8]) -> Vec<u8> {
    let mut packet = vec![0x60, 0, 0, 0];
    packet.extend_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
    packet.extend_from_slice(&[next, 64]);
    packet.extend_from_slice(&"2001:db8:ffff::2".parse::<Ipv6Addr>().unwrap().octets());
    packet.extend_from_slice(&dst.octets());
    packet.extend_from_slice(payload);
    packet
}

/// A hop-by-hop, routing or destination-options header of `8 * (units + 1)` bytes (padding
/// only), followed by `rest`.
pub fn ext(next: u8, units: u8, rest: &[u8]) -> Vec<u8> {
    let mut header = vec![next, units];
    header.resize(8 * (usize::from(units) + 1), 0);
    if header.len() > 2 {
        // PadN covering the rest of the header (a valid options area).
        header[2] = 1;
        header[3] = (header.len() - 4) as u8;
    }
    header.extend_from_slice(rest);
    header
}

/// An IPv6 Fragment header followed by `rest`.
pub fn fragment_header(next: u8, offset: u16, more: bool, rest: &[u8]) -> Vec<u8> {
    let mut header = vec![next, 0];
    header.extend_from_slice(&((offset << 3) | u16::from(more)).to_be_bytes());
    header.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    header.extend_from_slice(rest);
    header
}

/// A UDP datagram (checksum 0; XDP does not look at it).
pub fn udp(dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut datagram = Vec::with_capacity(8 + payload.len());
    datagram.extend_from_slice(&4500u16.to_be_bytes());
    datagram.extend_from_slice(&dport.to_be_bytes());
    datagram.extend_from_slice(&u16::try_from(8 + payload.len()).unwrap().to_be_bytes());
    datagram.extend_from_slice(&[0, 0]);
    datagram.extend_from_slice(payload);
    datagram
}

/// An ESP packet: SPI, sequence number and `body` (stands for IV, ciphertext and ICV).
pub fn esp(spi: u32, body: &[u8]) -> Vec<u8> {
    let mut packet = spi.to_be_bytes().to_vec();
    packet.extend_from_slice(&1u32.to_be_bytes());
    packet.extend_from_slice(body);
    packet
}

/// An IKE message after the non-ESP marker on the NAT-T port: four zero bytes, then a fake
/// IKE header.
pub fn ike_with_marker() -> Vec<u8> {
    let mut payload = vec![0, 0, 0, 0];
    payload.extend_from_slice(&ike());
    payload
}

/// A fake IKE_SA_INIT header (28 bytes): SPIs, next payload, version 2.0, exchange 34.
pub fn ike() -> Vec<u8> {
    let mut header = vec![0x11; 8];
    header.extend_from_slice(&[0; 8]);
    header.extend_from_slice(&[33, 0x20, 34, 0x08, 0, 0, 0, 0, 0, 0, 0, 28]);
    header
}

pub const KEEPALIVE: [u8; 1] = [0xff];

pub fn v4(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

pub fn v6(text: &str) -> Ipv6Addr {
    text.parse().unwrap()
}

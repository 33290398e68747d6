//! ESP in UDP that reached xipsecd's NAT-T socket instead of the workers, handed to the data
//! plane over a Unix datagram socket beside its lock file.
//!
//! The XDP program sends ESP in UDP to the workers, but a datagram the peer's kernel
//! fragmented reaches the kernel (fragments are passed), which reassembles it into the UDP
//! socket bound to the NAT-T port: xipsecd's. xipsecd sends each such datagram on, with the
//! addresses and ports the socket saw, and the data plane rebuilds the outer headers and
//! gives the packet to the worker owning its SA.
//!
//! One message per datagram: family (4 or 6), source address and port, destination address
//! and port (ports big-endian), then the UDP payload (the ESP packet).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// Where the data plane with the lock `pid_file` takes forwarded ESP.
pub fn esp_socket_path(pid_file: &Path) -> PathBuf {
    pid_file.with_extension("esp")
}

/// Writes the message for `payload`, which came from `source` to `destination`, into `out`
/// (cleared first). `None` when the two addresses are of different families.
pub fn encode(
    source: SocketAddr,
    destination: SocketAddr,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Option<()> {
    out.clear();
    match (source.ip(), destination.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.push(4);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&source.port().to_be_bytes());
            out.extend_from_slice(&d.octets());
            out.extend_from_slice(&destination.port().to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            out.push(6);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&source.port().to_be_bytes());
            out.extend_from_slice(&d.octets());
            out.extend_from_slice(&destination.port().to_be_bytes());
        }
        _ => return None,
    }
    out.extend_from_slice(payload);
    Some(())
}

/// A forwarded datagram: source, destination, payload.
pub fn decode(message: &[u8]) -> Option<(SocketAddr, SocketAddr, &[u8])> {
    let (&family, rest) = message.split_first()?;
    let address_len = match family {
        4 => 4,
        6 => 16,
        _ => return None,
    };
    let endpoint = |bytes: &[u8]| -> Option<SocketAddr> {
        let (address, port) = bytes.split_at_checked(address_len)?;
        let port = u16::from_be_bytes(port.try_into().ok()?);
        let ip = match family {
            4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(address).ok()?)),
            _ => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(address).ok()?)),
        };
        Some(SocketAddr::new(ip, port))
    };
    let one = address_len + 2;
    let source = endpoint(rest.get(..one)?)?;
    let destination = endpoint(rest.get(one..2 * one)?)?;
    Some((source, destination, &rest[2 * one..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_back_and_bad_ones_are_refused() {
        let mut out = Vec::new();
        for (source, destination) in [
            ("192.0.2.2:4500", "192.0.2.1:4500"),
            ("[2001:db8::2]:61000", "[2001:db8::1]:4500"),
        ] {
            let (s, d) = (source.parse().unwrap(), destination.parse().unwrap());
            encode(s, d, b"\x00\x00\x10\x02esp", &mut out).unwrap();
            assert_eq!(decode(&out), Some((s, d, &b"\x00\x00\x10\x02esp"[..])));
            for cut in 0..out.len() - 7 {
                assert_eq!(decode(&out[..cut]), None, "{cut}");
            }
        }
        let mixed = encode(
            "192.0.2.2:4500".parse().unwrap(),
            "[2001:db8::1]:4500".parse().unwrap(),
            b"",
            &mut out,
        );
        assert_eq!(mixed, None);
        assert_eq!(decode(&[5, 0, 0]), None);
    }
}

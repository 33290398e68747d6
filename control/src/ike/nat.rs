//! NAT detection (RFC 7296 §2.23): NAT_DETECTION_SOURCE_IP and NAT_DETECTION_DESTINATION_IP.
//!
//! Each is `SHA-1(SPIi | SPIr | IP address | port)` over the IKE header's SPIs of the message
//! that carries it (SPIr is zero in the first IKE_SA_INIT request). A receiver compares them with
//! the addresses it knows: a destination hash that does not match our address means we are
//! behind a NAT; a source hash that matches none of the peer's means the peer is.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use aws_lc_rs::digest;

use super::{NatStatus, NatTraversal};
use crate::wire::{Header, Message, Notify, NotifyType, Payload};

/// `SHA-1(SPIi | SPIr | IP | port)` (§2.23).
pub fn nat_detection_hash(spi_i: u64, spi_r: u64, addr: SocketAddr) -> [u8; 20] {
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(&spi_i.to_be_bytes());
    ctx.update(&spi_r.to_be_bytes());
    match addr.ip() {
        IpAddr::V4(a) => ctx.update(&a.octets()),
        IpAddr::V6(a) => ctx.update(&a.octets()),
    }
    ctx.update(&addr.port().to_be_bytes());
    let mut out = [0u8; 20];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The notifications a sender puts in its IKE_SA_INIT message with header `header`: none
/// with NAT traversal off; with [`NatTraversal::Force`] a source hash over the unspecified
/// address and port 0, which matches no real address, so the peer sees us behind a NAT.
pub(crate) fn notifications(
    header: &Header,
    local: SocketAddr,
    remote: SocketAddr,
    mode: NatTraversal,
) -> Vec<Payload> {
    let (i, r) = (header.initiator_spi, header.responder_spi);
    let source = match mode {
        NatTraversal::Off => return Vec::new(),
        NatTraversal::Detect => local,
        NatTraversal::Force => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
    };
    vec![
        Payload::Notify(Notify::new(
            NotifyType::NatDetectionSourceIp,
            nat_detection_hash(i, r, source).to_vec(),
        )),
        Payload::Notify(Notify::new(
            NotifyType::NatDetectionDestinationIp,
            nat_detection_hash(i, r, remote).to_vec(),
        )),
    ]
}

/// What the NAT_DETECTION_* notifications of a received IKE_SA_INIT message say, given the
/// addresses we believe in.
pub(crate) fn evaluate(message: &Message, local: SocketAddr, remote: SocketAddr) -> NatStatus {
    let (i, r) = (message.header.initiator_spi, message.header.responder_spi);
    let mut sources = Vec::new();
    let mut destinations = Vec::new();
    for p in &message.payloads {
        if let Payload::Notify(n) = p {
            match n.notify_type {
                NotifyType::NatDetectionSourceIp => sources.push(n.data.as_slice()),
                NotifyType::NatDetectionDestinationIp => destinations.push(n.data.as_slice()),
                _ => {}
            }
        }
    }
    if sources.is_empty() || destinations.is_empty() {
        return NatStatus::default();
    }
    let expect_source = nat_detection_hash(i, r, remote);
    let expect_destination = nat_detection_hash(i, r, local);
    NatStatus {
        peer_supports: true,
        remote_behind_nat: !sources.contains(&expect_source.as_slice()),
        local_behind_nat: !destinations.contains(&expect_destination.as_slice()),
    }
}

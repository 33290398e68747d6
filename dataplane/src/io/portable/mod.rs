//! The portable backend: the ESP core over a TUN device and ordinary sockets, for hosts where
//! XDP cannot be used (no `CAP_BPF`, a driver without XDP, a host rather than a gateway).
//!
//! ```text
//!             inner (plaintext) side                    outer (ESP) side
//!  kernel --read()--> Tun --OutboundSa::encap_batch--> EspSocket --sendmmsg--> peer
//!  kernel <-write()-- Tun <--Decapsulator::decap_batch-- EspSocket <-recvmmsg-- peer
//! ```
//!
//! - [`Tun`]: `/dev/net/tun` with `IFF_TUN | IFF_NO_PI` (and `IFF_MULTI_QUEUE` on request, one
//!   fd per worker), non-blocking. Packets are read straight into a frame at
//!   [`ENCAP_HEADROOM`](crate::esp::ENCAP_HEADROOM), so encapsulation grows the outer headers in
//!   front of them in place: the kernel's copy is the only one.
//! - [`EspSocket`]: the outer side, batched with `recvmmsg`/`sendmmsg`. Either a UDP socket on
//!   the NAT-T port (ESP in UDP, RFC 3948) or a raw `IPPROTO_ESP` socket (plain ESP).
//! - [`PortableGateway`]: one thread, `poll(2)` on both fds, bounded batches, one outbound and
//!   one inbound SA, counters, a stop flag.
//! - [`PortableWorker`]: the same loop for any number of SAs from an
//!   [`SaSource`](crate::worker::SaSource) — the shared SA table in service, changed by the
//!   IKE daemon while the worker runs — over up to four ESP sockets (UDP and raw, IPv4 and
//!   IPv6), each SA's packets through the socket that fits it.
//! - [`IkeSender`]: sends IKE from a worker's NAT-T socket on the daemon's thread.
//! - [`RouteSocket`]: routes to the SAs' remote subnets through the TUN device (rtnetlink).
//!
//! # The outer headers the decapsulator needs
//!
//! [`Decapsulator`](crate::esp::Decapsulator) parses a whole outer IP packet. Sockets do not
//! always deliver one, so [`EspSocket::recv_batch`] receives each datagram into its frame at
//! [`RX_HEADROOM`] (room for an IPv6 and a UDP header) and writes the missing headers right in
//! front of it, from what the kernel reports in the `msghdr`:
//!
//! | socket | kernel delivers | written in front |
//! |---|---|---|
//! | UDP, IPv4 | the ESP-in-UDP payload | IPv4 (source = `msg_name`, destination = `IP_PKTINFO`, TOS = `IP_RECVTOS`, checksum) + UDP (ports; checksum 0) |
//! | UDP, IPv6 | the ESP-in-UDP payload | IPv6 (source = `msg_name`, destination = `IPV6_PKTINFO`, traffic class = `IPV6_RECVTCLASS`) + UDP |
//! | raw, IPv4 | the whole IP packet | nothing |
//! | raw, IPv6 | the ESP header onwards | IPv6 (next header 50) |
//!
//! The synthesised header carries the real addresses, ports and ECN bits (so RFC 6040 ECN
//! propagation works and a later outer-address check on inbound SAs can trust them) but no
//! fragment bits: the kernel has already reassembled the datagram, which is the "reassembly in
//! front of the core" that the ESP core asks for.
//!
//! # Sending
//!
//! The ESP core builds the complete outer packet. [`EspSocket::send_batch`] reads the
//! destination from it and then:
//! - **UDP**: sends the bytes after the outer IP and UDP headers to the header's destination
//!   address and port; the kernel rebuilds IP and UDP. The TOS byte / traffic class (DSCP and
//!   ECN) is passed along per packet as an `IP_TOS` / `IPV6_TCLASS` control message; TTL and DF
//!   follow the socket's defaults, not [`SaParams`](crate::esp::SaParams). The source address is
//!   the one the socket is bound to (bind it to the SA's local address on a multi-homed host).
//! - **raw**: sends the packet as built, outer header included (`IP_HDRINCL` /
//!   `IPV6_HDRINCL`), so DF, ID, TTL and ECN are exactly what the core decided, as they will be on
//!   the AF_XDP path. The price: the kernel does not fragment such packets — one larger than the
//!   route's MTU fails with `EMSGSIZE` and is counted; keep the TUN MTU below the path MTU minus
//!   the ESP overhead.
//!
//! # What is not ESP
//!
//! On the NAT-T port IKE (behind the four-byte non-ESP marker) and NAT keepalives arrive too.
//! They are not swallowed: [`PortableGateway`] hands them to the caller as a
//! [`ControlDatagram`] (the decapsulator says [`Verdict::ToControlPlane`](crate::esp::Verdict)
//! or drops them as `NattKeepalive`, and the gateway turns both into a hand-off), and
//! [`EspSocket::send_ike`] sends IKE back from the same port with the marker in front;
//! [`PortableWorker`] does the same, and [`IkeSender`] sends from another thread.

mod frames;
mod gateway;
mod ike_sender;
mod outer;
mod route;
mod socket;
mod sys;
mod tun;
mod worker;

pub use gateway::{ControlDatagram, ControlKind, GatewayConfig, GatewayCounters, PortableGateway};
pub use ike_sender::IkeSender;
pub use outer::{synthesize, RX_HEADROOM};
pub use route::{interface_index, Route, RouteSocket, RT_TABLE_MAIN};
pub use socket::{EspSocket, EspTransport, RecvMeta};
pub use sys::IoStats;
pub use tun::{Tun, TunConfig};
pub use worker::{PortableWorker, WorkerCounters, WorkerSetupError, MAX_ESP_SOCKETS};

/// The most packets one batch call handles; [`GatewayConfig::batch_size`] is capped to it.
pub const MAX_BATCH: usize = 64;

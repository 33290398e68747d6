//! Packet I/O: how frames get from the kernel or the NIC into the ESP core and back out.
//!
//! - [`portable`] (Linux): a TUN device for inner packets and a UDP (NAT-T) or raw `IPPROTO_ESP`
//!   socket for outer ones, with batched system calls. For hosts without XDP and for
//!   host-to-gateway clients (`../shared/DESIGN.md`, "Workers").
//! - [`xsk`] (Linux): AF_XDP sockets over UMEM rings, fed by the XDP classifier.

#[cfg(target_os = "linux")]
pub mod portable;
#[cfg(target_os = "linux")]
pub mod xsk;

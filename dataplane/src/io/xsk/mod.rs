//! AF_XDP sockets: a thin layer of our own over the kernel ABI (`linux/if_xdp.h`).
//!
//! Why our own and not a crate: the ABI is small (a UMEM registration, four rings, mmap, bind)
//! and stable; `xsk-rs` would vendor and build libxdp/libbpf in C for the same calls, and
//! `xdpilone`'s EUPL-1.2 licence does not sit well in an MIT/Apache-2.0 project (docs/
//! dependencies.md). The ring discipline follows libxdp's: cached indices, one shared load per
//! batch, release/acquire on the producer and consumer words.

mod ring;
mod socket;

pub use socket::{Descriptor, XskConfig, XskError, XskSocket};

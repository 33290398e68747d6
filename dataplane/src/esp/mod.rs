//! The ESP core (RFC 4303): pure functions over packet buffers, one batch at a time, with no
//! allocation, lock or system call per packet.
//!
//! - [`OutboundSa::encap`] / [`OutboundSa::encap_batch`]: tunnel mode (IPv4 and IPv6, inner and
//!   outer in any combination) and transport mode; NAT-T (RFC 3948); ESN.
//! - [`Decapsulator::decap`] / [`Decapsulator::decap_batch`]: the RFC 4303 §3.4 order — replay
//!   pre-check, AEAD open, window update — with every drop counted by [`DropReason`].
//! - Frames need [`ENCAP_HEADROOM`] bytes before the packet and [`ENCAP_TAILROOM`] after it.

mod cipher;
mod decap;
mod drop;
pub mod ecn;
mod encap;
pub mod esn;
pub mod ip;
mod natt;
mod packet;
pub mod replay;
mod sa;
mod template;

pub use cipher::{
    AuthenticationFailed, CipherSuite, EspKey, KeyLengthError, SealFailed, ICV_LEN, IV_LEN,
    SALT_LEN,
};
pub use decap::Decapsulator;
pub use drop::{DropCounters, DropReason, Fault, SaCounters, Verdict};
pub use natt::{classify_udp_payload, UdpPayload};
pub use packet::{PacketBuf, ENCAP_HEADROOM, ENCAP_TAILROOM};
pub use replay::{ReplayWindow, DEFAULT_REPLAY_WINDOW, MAX_REPLAY_WINDOW, MIN_REPLAY_WINDOW};
pub use sa::{
    DfPolicy, Endpoints, InboundSa, InboundSaLookup, Mode, OutboundSa, SaError, SaParams,
    SequenceStatus, UdpEncap,
};

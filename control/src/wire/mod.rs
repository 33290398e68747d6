//! The IKEv2 wire codec: RFC 7296 §3 (header and payloads) and RFC 7383 (SKF fragments).
//!
//! Modelled on smoltcp's `wire` and rustls' `Codec`: every structure has
//! `encode(&self, &mut Vec<u8>)` and a decoder over a bounds-checked [`Reader`] that returns a
//! typed [`DecodeError`]. The entry points are [`Message::decode`] and [`Message::encode`]; the
//! crypto layer uses [`decode_chain`] / [`encode_chain`] for the payloads inside a decrypted SK
//! payload and [`locate_encrypted`] to find the bytes it must authenticate and decrypt.
//!
//! # Guarantees
//! - No input panics the decoder and nothing allocates without bound: every length is checked
//!   against its container, datagrams are at most [`MAX_MESSAGE_LEN`] bytes, and element counts
//!   are capped ([`MAX_PAYLOADS`], [`MAX_PROPOSALS`], [`MAX_TRANSFORMS`], [`MAX_ATTRIBUTES`],
//!   [`MAX_TRAFFIC_SELECTORS`], [`MAX_CONFIG_ATTRIBUTES`]). Allocation is linear in the input.
//! - `decode(encode(m)) == m` for every message the decoder produced.
//! - `encode(decode(b)) == b` byte for byte whenever `b` is in canonical form. The only
//!   non-canonical inputs the decoder accepts are the ones RFC 7296 tells a receiver to tolerate:
//!   reserved bits and octets that are non-zero ("MUST be ignored on receipt", §3.1, §3.2, …) and
//!   the Critical bit on a payload type we understand (§3.2: "MUST be ignored by the recipient if
//!   the recipient understands the payload type code"). Those are re-encoded as zero.
//!   Unknown registry values (`Unknown(n)`), unknown non-critical payloads, unknown transform
//!   attributes and unknown traffic-selector types are all kept, so they round-trip exactly.
//!
//! # What this layer does not do
//! It does not encrypt, decrypt or check integrity (the SK payload is opaque IV‖ciphertext‖ICV
//! here), and it does not enforce exchange semantics (which payloads belong in which exchange,
//! proposal numbering, SPI sizes per protocol). Those belong to the layers above.
// Every public item of the codec is documented, and nothing in it can panic on input: the
// lints below make the compiler hold us to that (tests may index and unwrap freely).
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented,
        clippy::cast_possible_truncation,
        clippy::arithmetic_side_effects
    )
)]

mod auth;
mod cert;
mod codec;
mod cp;
mod delete;
mod encrypted;
mod error;
mod header;
mod id;
mod ke;
mod message;
mod notify;
mod opaque;
mod payload;
mod reader;
mod sa;
mod ts;
mod types;

pub use auth::Authentication;
pub use cert::{Certificate, CertificateRequest};
pub use codec::Codec;
pub use cp::{ConfigAttribute, Configuration};
pub use delete::Delete;
pub use encrypted::{locate_encrypted, Encrypted, EncryptedFragment, EncryptedLocation};
pub use error::DecodeError;
pub use header::{Flags, Header};
pub use id::Identification;
pub use ke::KeyExchange;
pub use message::Message;
pub use notify::{Notify, NotifyType};
pub use opaque::{Eap, Nonce, VendorId};
pub use payload::{decode_chain, encode_chain, Payload, UnknownPayload};
pub use reader::Reader;
pub use sa::{Proposal, SecurityAssociation, Transform, TransformAttribute, TransformId};
pub use ts::{TrafficSelector, TrafficSelectors};
pub use types::{
    AuthMethod, CertEncoding, CfgAttributeType, CfgType, EncrId, EsnId, ExchangeType, IdType,
    IntegId, KeMethod, PayloadType, PrfId, ProtocolId, TransformType, TsType,
};

/// The largest datagram the decoder accepts. IKE over UDP cannot exceed 65,535 octets and
/// IKE over TCP (RFC 8229 §3) frames messages with a 16-bit length, so nothing real is larger.
pub const MAX_MESSAGE_LEN: usize = 65_535;

/// The most payloads accepted in one chain (the message's, or the inner chain of an SK payload).
/// Real messages carry a dozen or so; the cap bounds the work a hostile peer can cause.
pub const MAX_PAYLOADS: usize = 64;

/// The most proposals accepted in one SA payload (the Proposal Num field allows 255).
pub const MAX_PROPOSALS: usize = 32;

/// The most transforms accepted in one proposal (strongSwan's default proposal has about 30).
pub const MAX_TRANSFORMS: usize = 64;

/// The most attributes accepted on one transform (RFC 7296 defines only Key Length).
pub const MAX_ATTRIBUTES: usize = 8;

/// The most traffic selectors accepted in one TSi or TSr payload.
pub const MAX_TRAFFIC_SELECTORS: usize = 64;

/// The most configuration attributes accepted in one CP payload.
pub const MAX_CONFIG_ATTRIBUTES: usize = 64;

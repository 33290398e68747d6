//! The IKEv2 crypto suite: PRFs and `prf+` (RFC 7296 §2.13), the IKE SA and Child SA keys
//! (§2.14, §2.17, §2.18), key exchange (groups 14, 15, 19, 20, 21, 31) and the Encrypted payload
//! (SK, §3.14; RFC 5282 for AES-GCM, RFC 7634 for ChaCha20-Poly1305, RFC 4868 for HMAC-SHA2).
//!
//! Every primitive comes from `aws-lc-rs` except the MODP groups, which use `crypto-bigint`'s
//! constant-time Montgomery exponentiation. Nothing here does I/O or reads a clock; randomness is
//! injected through [`Rng`] ([`SystemRng`] is aws-lc's generator), so the sans-IO core and its
//! tests stay deterministic.
//!
//! # Map of the module
//! - [`Prf`], [`Integ`], [`Encr`]: the transforms we implement, mapped from the wire registries
//!   ([`crate::wire::PrfId`], [`crate::wire::IntegId`], [`crate::wire::EncrId`] + Key Length);
//!   anything else is [`Unsupported`]. [`IkeSuite`] is a checked ENCR/INTEG/PRF combination.
//! - [`KeyExchange`]: one ephemeral key pair for a [`crate::wire::KeMethod`]; its public value is
//!   the KE payload's data, [`KeyExchange::agree`] validates the peer's and yields `g^ir`.
//! - [`skeyseed`], [`skeyseed_rekey`], [`IkeSaKeys::derive`], [`ChildSaKeys::derive`]: the key
//!   schedule.
//! - [`SkCipher`]: seals and opens the SK / SKF payload of one direction.
//! - [`SigningKey`], [`PublicKey`], [`SignatureScheme`]: signatures for IKE authentication
//!   (RFC 7427, RFC 4754, RFC 8420); [`Certificate`] and [`TrustAnchors`]: X.509 parsing and
//!   path validation (`cert.rs`), with `der.rs` and `pem.rs` underneath.
//!
//! # Secrets
//! Keys, `g^ir`, SKEYSEED and private exponents live in [`SecretBytes`] / [`SharedSecret`] or in
//! aws-lc / crypto-bigint objects that are wiped on drop; their `Debug` shows lengths, never
//! bytes. Copies that pass through the stack of aws-lc-rs (e.g. an HMAC `Tag`) are outside our
//! control; see the crate docs of those libraries.
//!
//! # Errors
//! [`CryptoError`] says who is at fault ([`CryptoError::fault`]): the peer (an invalid public
//! value, a bad ICV, bad padding, a truncated payload) or this side (an unsupported transform, a
//! key of the wrong length, `prf+` asked for too much, the RNG failing).
// Same discipline as the wire codec: documented, and no input can panic anything here.
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

mod cert;
mod der;
mod encr;
mod error;
mod integ;
mod ke;
mod keys;
mod modp;
mod pem;
mod prf;
mod rng;
mod secret;
mod signature;
mod sk;
mod suite;

pub use cert::{dn_equal, encode_dn, CertError, Certificate, TrustAnchors, MAX_INTERMEDIATES};
pub use encr::Encr;
pub use error::{CryptoError, Fault, Unsupported};
pub use integ::Integ;
pub use ke::{KeyExchange, SharedSecret};
pub use keys::{skeyseed, skeyseed_rekey, ChildKeyLengths, ChildSaKeys, IkeSaKeys, Role};
pub use prf::{Prf, PRF_PLUS_MAX_BLOCKS};
pub use rng::{Rng, SystemRng};
pub use secret::SecretBytes;
pub use signature::{
    Curve, HashAlgorithm, KeyError, KeyType, PublicKey, SignatureError, SignatureScheme, SigningKey,
};
pub use sk::{Opened, SkCipher};
pub use suite::IkeSuite;

//! Why a crypto operation failed, and whose fault that is.

use core::fmt;

use crate::wire::{DecodeError, KeMethod, TransformType};

/// A transform (or transform + Key Length) this suite does not implement. Proposal selection
/// should skip it; if nothing else is left, the answer is NO_PROPOSAL_CHOSEN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unsupported {
    /// The transform type (ENCR, PRF, INTEG, KE).
    pub transform_type: TransformType,
    /// The Transform ID as on the wire.
    pub id: u16,
    /// The Key Length attribute in bits, if one was given.
    pub key_bits: Option<u16>,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unsupported {} transform {}",
            self.transform_type, self.id
        )?;
        if let Some(bits) = self.key_bits {
            write!(f, " with key length {bits}")?;
        }
        Ok(())
    }
}

/// Who caused a [`CryptoError`]: the peer (answer or drop as the exchange rules say, and count
/// it against the peer) or this side (a bug, a misconfiguration or a failing RNG: log it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The peer sent something invalid (or an attacker forged it).
    Peer,
    /// This side asked for something impossible, or a local resource failed.
    Local,
}

/// Everything that can go wrong in the crypto suite.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CryptoError {
    // ---- the peer is at fault ----
    /// The KE payload's data is not the length the group prescribes (RFC 7296 §3.4; RFC 5903
    /// §7; RFC 8031 §2). The answer to a KE of the wrong group is INVALID_KE_PAYLOAD, decided
    /// by the exchange layer; this is the right group with a wrong-sized value: INVALID_SYNTAX.
    InvalidKeLength {
        /// The group.
        method: KeMethod,
        /// The length the group prescribes.
        expected: usize,
        /// The length received.
        actual: usize,
    },
    /// The peer's public value fails validation: not a point on the curve (ECP), outside
    /// 1 < y < p-1 (MODP), or an X25519 value that yields the all-zero secret (RFC 8031 §2.3).
    InvalidPublicValue {
        /// The group.
        method: KeMethod,
    },
    /// The IV‖ciphertext‖ICV of an SK/SKF payload is too short to hold an IV, one block (or the
    /// Pad Length octet) and the ICV.
    EncryptedTooShort {
        /// The length received.
        len: usize,
        /// The least this suite accepts.
        min: usize,
    },
    /// The ciphertext of a block cipher is not a whole number of blocks.
    EncryptedNotAligned {
        /// The ciphertext length (without IV and ICV).
        len: usize,
        /// The cipher's block size.
        block: usize,
    },
    /// The ICV (or AEAD tag) does not verify. The message must be dropped silently (RFC 7296
    /// §2.21.2 / §3.14): it may be a forgery.
    IntegrityCheckFailed,
    /// The authenticated plaintext's Pad Length exceeds the plaintext (RFC 7296 §3.14).
    InvalidPadding {
        /// The Pad Length octet.
        pad_len: u8,
        /// Octets available for padding (plaintext length minus the Pad Length octet).
        available: usize,
    },
    /// The datagram does not parse far enough to find its SK/SKF payload.
    Decode(DecodeError),
    /// The datagram has no SK or SKF payload although one was required.
    NotEncrypted,

    // ---- this side is at fault ----
    /// A transform this suite does not implement.
    Unsupported(Unsupported),
    /// An ENCR/INTEG combination RFC 7296 forbids: an AEAD with an integrity transform, or a
    /// plain cipher without one (§3.3).
    InvalidSuite {
        /// What is wrong.
        reason: &'static str,
    },
    /// `prf+` was asked for more than 255 blocks (RFC 7296 §2.13).
    PrfPlusTooLong {
        /// Octets asked for.
        requested: usize,
        /// The most this PRF can produce.
        max: usize,
    },
    /// A key handed to a constructor has the wrong length for its transform.
    KeyLength {
        /// Which key.
        what: &'static str,
        /// The length the transform needs.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// The AEAD IV counter of this key is used up (2^64 messages): rekey the IKE SA.
    IvExhausted,
    /// The message being sealed would not fit the 16-bit payload or 32-bit message length
    /// fields, or [`super::SkCipher::seal_message`] was given a buffer that is not an IKE header
    /// followed by an SK/SKF generic header at the stated offset.
    MessageLayout {
        /// What is wrong.
        reason: &'static str,
    },
    /// The random number generator failed.
    Rng,
    /// Key generation failed after the allowed number of attempts (the RNG keeps producing
    /// invalid scalars), or aws-lc refused an operation that cannot fail on valid input.
    Internal {
        /// The operation.
        what: &'static str,
    },
}

impl CryptoError {
    /// Whose fault this is.
    pub fn fault(&self) -> Fault {
        match self {
            CryptoError::InvalidKeLength { .. }
            | CryptoError::InvalidPublicValue { .. }
            | CryptoError::EncryptedTooShort { .. }
            | CryptoError::EncryptedNotAligned { .. }
            | CryptoError::IntegrityCheckFailed
            | CryptoError::InvalidPadding { .. }
            | CryptoError::Decode(_)
            | CryptoError::NotEncrypted => Fault::Peer,
            CryptoError::Unsupported(_)
            | CryptoError::InvalidSuite { .. }
            | CryptoError::PrfPlusTooLong { .. }
            | CryptoError::KeyLength { .. }
            | CryptoError::IvExhausted
            | CryptoError::MessageLayout { .. }
            | CryptoError::Rng
            | CryptoError::Internal { .. } => Fault::Local,
        }
    }

    /// Shorthand for `self.fault() == Fault::Peer`.
    pub fn is_peer_fault(&self) -> bool {
        self.fault() == Fault::Peer
    }
}

impl From<Unsupported> for CryptoError {
    fn from(u: Unsupported) -> Self {
        CryptoError::Unsupported(u)
    }
}

impl From<DecodeError> for CryptoError {
    fn from(e: DecodeError) -> Self {
        CryptoError::Decode(e)
    }
}

impl fmt::Display for CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CryptoError::InvalidKeLength {
                method,
                expected,
                actual,
            } => write!(
                f,
                "{method} public value of {actual} octets (expected {expected})"
            ),
            CryptoError::InvalidPublicValue { method } => {
                write!(f, "invalid {method} public value")
            }
            CryptoError::EncryptedTooShort { len, min } => {
                write!(
                    f,
                    "encrypted payload of {len} octets (at least {min} needed)"
                )
            }
            CryptoError::EncryptedNotAligned { len, block } => {
                write!(f, "ciphertext of {len} octets is not a multiple of {block}")
            }
            CryptoError::IntegrityCheckFailed => f.write_str("integrity check failed"),
            CryptoError::InvalidPadding { pad_len, available } => write!(
                f,
                "pad length {pad_len} exceeds the {available} octets available"
            ),
            CryptoError::Decode(e) => write!(f, "cannot locate the encrypted payload: {e}"),
            CryptoError::NotEncrypted => f.write_str("message has no encrypted payload"),
            CryptoError::Unsupported(u) => u.fmt(f),
            CryptoError::InvalidSuite { reason } => write!(f, "invalid suite: {reason}"),
            CryptoError::PrfPlusTooLong { requested, max } => {
                write!(f, "prf+ asked for {requested} octets (at most {max})")
            }
            CryptoError::KeyLength {
                what,
                expected,
                actual,
            } => write!(f, "{what} of {actual} octets (expected {expected})"),
            CryptoError::IvExhausted => f.write_str("IV counter exhausted; rekey"),
            CryptoError::MessageLayout { reason } => write!(f, "cannot seal message: {reason}"),
            CryptoError::Rng => f.write_str("random number generator failed"),
            CryptoError::Internal { what } => write!(f, "{what} failed"),
        }
    }
}

impl std::error::Error for CryptoError {}

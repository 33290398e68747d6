//! Why a message could not be decoded, and which notification that calls for.

use core::fmt;

use super::{Notify, NotifyType, PayloadType};

/// A message, payload chain or payload that is not valid IKEv2 on the wire.
///
/// Every variant names the field or structure at fault (`what` strings use RFC 7296's names,
/// e.g. `"SA proposal length"`). The peer is always the one at fault: the decoder only sees
/// bytes from the network. [`DecodeError::notify_type`] says which notification RFC 7296 calls
/// for; whether to send it at all (e.g. never in answer to an unauthenticated message, §2.21)
/// is the exchange layer's decision.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended in the middle of `what`.
    Truncated {
        /// The field being read.
        what: &'static str,
    },
    /// The datagram is longer than [`super::MAX_MESSAGE_LEN`].
    MessageTooLong {
        /// The datagram's length.
        len: usize,
    },
    /// The IKE header's Length field (RFC 7296 §3.1) is not the datagram's length.
    MessageLength {
        /// The Length field.
        declared: u32,
        /// The datagram's length.
        actual: usize,
    },
    /// The IKE header's Major Version is not 2 (RFC 7296 §3.1); the answer is
    /// INVALID_MAJOR_VERSION. Use [`super::Header::peek`] to read the SPIs for it.
    UnsupportedMajorVersion {
        /// The Major Version received.
        major: u8,
        /// The Minor Version received.
        minor: u8,
    },
    /// A generic payload header (RFC 7296 §3.2) gives a Payload Length below 4 or beyond the
    /// bytes that are left in the message.
    PayloadLength {
        /// The type of the payload whose header is wrong.
        payload_type: PayloadType,
        /// The Payload Length field.
        length: u16,
        /// How many bytes were left in the container, header included.
        available: usize,
    },
    /// A payload we do not understand has the Critical bit set (RFC 7296 §2.5): the whole
    /// message must be rejected with UNSUPPORTED_CRITICAL_PAYLOAD carrying this type.
    UnsupportedCriticalPayload {
        /// The payload type, as the one octet of notification data.
        payload_type: u8,
    },
    /// Bytes are left over after `what`, whose own fields say where it ends (e.g. data after the
    /// last payload, or after the last proposal of an SA payload).
    TrailingBytes {
        /// The structure that should have filled its container.
        what: &'static str,
        /// How many bytes were left.
        count: usize,
    },
    /// A length field inside a payload is out of range or disagrees with its container.
    InvalidLength {
        /// The length field.
        what: &'static str,
        /// Its value.
        length: usize,
    },
    /// A count field disagrees with the number of structures actually present
    /// (e.g. Num Transforms, Number of TSs, Num of SPIs).
    CountMismatch {
        /// The count field.
        what: &'static str,
        /// What the field said.
        declared: usize,
        /// What was found.
        found: usize,
    },
    /// A "last substructure" octet is wrong (RFC 7296 §3.3.1, §3.3.2: 0 on the last proposal or
    /// transform, 2 or 3 on the others).
    LastSubstructure {
        /// The substructure.
        what: &'static str,
        /// The octet received.
        value: u8,
    },
    /// More elements than this decoder accepts (see the `MAX_*` constants).
    TooMany {
        /// The elements.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// A field holds a value the RFCs forbid (e.g. a 10-octet nonce, fragment 3 of 2).
    InvalidValue {
        /// The field.
        what: &'static str,
        /// Its value.
        value: u32,
    },
}

impl DecodeError {
    /// The notification RFC 7296 prescribes for this error (§2.5, §3.1, §3.10.1).
    pub fn notify_type(&self) -> NotifyType {
        match self {
            DecodeError::UnsupportedCriticalPayload { .. } => {
                NotifyType::UnsupportedCriticalPayload
            }
            DecodeError::UnsupportedMajorVersion { .. } => NotifyType::InvalidMajorVersion,
            _ => NotifyType::InvalidSyntax,
        }
    }

    /// The complete Notify payload for [`DecodeError::notify_type`], with its notification data
    /// (the payload type for UNSUPPORTED_CRITICAL_PAYLOAD, nothing otherwise).
    pub fn to_notify(&self) -> Notify {
        match self {
            DecodeError::UnsupportedCriticalPayload { payload_type } => {
                Notify::unsupported_critical_payload(*payload_type)
            }
            other => Notify::new(other.notify_type(), Vec::new()),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { what } => write!(f, "truncated in {what}"),
            DecodeError::MessageTooLong { len } => {
                write!(f, "datagram of {len} octets is too long")
            }
            DecodeError::MessageLength { declared, actual } => write!(
                f,
                "IKE header length {declared} does not match datagram length {actual}"
            ),
            DecodeError::UnsupportedMajorVersion { major, minor } => {
                write!(f, "unsupported IKE version {major}.{minor}")
            }
            DecodeError::PayloadLength {
                payload_type,
                length,
                available,
            } => write!(
                f,
                "{payload_type} payload length {length} invalid ({available} octets available)"
            ),
            DecodeError::UnsupportedCriticalPayload { payload_type } => {
                write!(f, "unsupported critical payload type {payload_type}")
            }
            DecodeError::TrailingBytes { what, count } => {
                write!(f, "{count} trailing octets after {what}")
            }
            DecodeError::InvalidLength { what, length } => write!(f, "invalid {what}: {length}"),
            DecodeError::CountMismatch {
                what,
                declared,
                found,
            } => write!(f, "{what} says {declared} but {found} present"),
            DecodeError::LastSubstructure { what, value } => {
                write!(f, "wrong last-substructure value {value} in {what}")
            }
            DecodeError::TooMany { what, limit } => write!(f, "more than {limit} {what}"),
            DecodeError::InvalidValue { what, value } => write!(f, "invalid {what}: {value}"),
        }
    }
}

impl std::error::Error for DecodeError {}

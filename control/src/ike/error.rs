//! Why a datagram was dropped or an IKE SA failed, whose fault it was, and which notification
//! (if any) RFC 7296 says to answer with.

use core::fmt;

use crate::crypto::CryptoError;
use crate::wire::{DecodeError, KeMethod, NotifyType};

/// Who caused an [`Error`]: what the daemon should log, count, or fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The peer sent something invalid or unexpected (or an attacker forged it).
    Peer,
    /// Both sides behave correctly but their configurations do not meet (no common proposal,
    /// disjoint traffic selectors, a different PSK or identity): one of them must change.
    Incompatible,
    /// The peer or the path between us is silent.
    Network,
    /// This side: configuration, a failing RNG, or a call in the wrong state.
    Local,
}

/// A configuration that cannot work (see [`super::IkeConfig::validate`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The configuration field at fault.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// Everything that can go wrong in an IKE SA.
///
/// Returned by [`super::IkeSa::handle`] for a datagram that was dropped or refused, and carried
/// by [`super::Event::Failed`] / [`super::Event::ChildSaFailed`] when it ends an SA or a Child SA.
/// [`Error::fault`] says who is to blame, [`Error::notify_type`] what a responder answers.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    // ---- the peer: dropped without an answer (§2.21: never answer what we cannot trust) ----
    /// Not valid IKEv2 on the wire.
    Malformed(DecodeError),
    /// Valid, but not for this SA or not now: wrong SPI, message ID, flags or exchange, a
    /// response to no request, a request while we wait for a response. Dropped silently.
    Unexpected {
        /// What did not fit.
        what: &'static str,
    },
    /// The SK payload failed its integrity check or could not be opened. Dropped silently: it
    /// may be a forgery, and the genuine message may still come (§2.21.2).
    Undecryptable(CryptoError),

    // ---- the peer: answered with a notification ----
    /// Payloads missing, duplicated, or contradicting each other: INVALID_SYNTAX.
    InvalidSyntax {
        /// What is wrong.
        what: &'static str,
    },
    /// The peer's key exchange value failed validation (wrong length, not on the curve):
    /// INVALID_SYNTAX.
    KeyExchange(CryptoError),

    // ---- the configurations do not meet ----
    /// No proposal was acceptable: NO_PROPOSAL_CHOSEN.
    NoProposalChosen,
    /// The KE payload's group is not the one selected: INVALID_KE_PAYLOAD naming `wanted`.
    InvalidKePayload {
        /// The group the responder selected.
        wanted: KeMethod,
    },
    /// The traffic selectors do not intersect our policy: TS_UNACCEPTABLE.
    TsUnacceptable,
    /// The peer asked for a per-resource Child SA (RFC 9611) beyond the number we take for
    /// that child: TS_MAX_QUEUE. The peer is to ask no more; the IKE SA stays.
    TooManyResourceSas {
        /// How many per-resource Child SAs we take beside the fallback.
        limit: u32,
    },
    /// The peer's AUTH payload does not verify, or its identity is not the configured one:
    /// AUTHENTICATION_FAILED.
    AuthenticationFailed {
        /// What did not match.
        what: &'static str,
    },
    /// The peer answered our request with an error notification (NO_PROPOSAL_CHOSEN,
    /// AUTHENTICATION_FAILED, TS_UNACCEPTABLE, …).
    Refused {
        /// The notification.
        notify: NotifyType,
    },
    /// Something valid that this implementation does not do yet (cookies, EAP, certificates,
    /// fragments).
    Unsupported {
        /// What it is.
        what: &'static str,
    },

    // ---- the network ----
    /// No response after the configured retransmissions.
    Timeout {
        /// How many times the request was sent.
        transmissions: u32,
    },
    /// A responder's half-open SA saw no IKE_AUTH in time.
    HalfOpenTimeout,

    // ---- this side ----
    /// The configuration cannot work.
    Config(ConfigError),
    /// A local crypto failure (the RNG, a key of the wrong length: a bug).
    Crypto(CryptoError),
    /// The SA has failed or closed and takes no more input.
    Closed,
    /// A call that needs an established IKE SA was made before IKE_AUTH completed.
    NotEstablished,
    /// A request this side cannot take now (the Child SA to rekey is being deleted):
    /// TEMPORARY_FAILURE (§2.25); the peer may retry later.
    TemporaryFailure {
        /// Why not now.
        what: &'static str,
    },
    /// No Child SA of this IKE SA has this SPI (inbound SPI for calls, the peer's view in a
    /// REKEY_SA): CHILD_SA_NOT_FOUND when the peer asked.
    NoSuchChildSa {
        /// The SPI.
        spi: u32,
    },
}

impl Error {
    /// Who is to blame.
    pub fn fault(&self) -> Fault {
        match self {
            Error::Malformed(_)
            | Error::Unexpected { .. }
            | Error::Undecryptable(_)
            | Error::InvalidSyntax { .. }
            | Error::KeyExchange(_) => Fault::Peer,
            Error::NoProposalChosen
            | Error::InvalidKePayload { .. }
            | Error::TsUnacceptable
            | Error::TooManyResourceSas { .. }
            | Error::AuthenticationFailed { .. }
            | Error::Refused { .. }
            | Error::Unsupported { .. } => Fault::Incompatible,
            Error::Timeout { .. } | Error::HalfOpenTimeout => Fault::Network,
            Error::Config(_)
            | Error::Crypto(_)
            | Error::Closed
            | Error::NotEstablished
            | Error::TemporaryFailure { .. }
            | Error::NoSuchChildSa { .. } => Fault::Local,
        }
    }

    /// The notification a responder sends for this error in answer to a request it could
    /// authenticate (or to an IKE_SA_INIT request), or `None` if the request is dropped silently.
    pub fn notify_type(&self) -> Option<NotifyType> {
        match self {
            Error::Malformed(e) => Some(e.notify_type()),
            Error::InvalidSyntax { .. } | Error::KeyExchange(_) => Some(NotifyType::InvalidSyntax),
            Error::NoProposalChosen => Some(NotifyType::NoProposalChosen),
            Error::InvalidKePayload { .. } => Some(NotifyType::InvalidKePayload),
            Error::TsUnacceptable => Some(NotifyType::TsUnacceptable),
            Error::TooManyResourceSas { .. } => Some(NotifyType::TsMaxQueue),
            Error::AuthenticationFailed { .. } => Some(NotifyType::AuthenticationFailed),
            Error::NoSuchChildSa { .. } => Some(NotifyType::ChildSaNotFound),
            Error::TemporaryFailure { .. } => Some(NotifyType::TemporaryFailure),
            Error::NotEstablished
            | Error::Unexpected { .. }
            | Error::Undecryptable(_)
            | Error::Refused { .. }
            | Error::Unsupported { .. }
            | Error::Timeout { .. }
            | Error::HalfOpenTimeout
            | Error::Config(_)
            | Error::Crypto(_)
            | Error::Closed => None,
        }
    }

    /// Maps a crypto failure by its own [`crate::crypto::Fault`]: a peer fault while opening an
    /// SK payload is [`Error::Undecryptable`], a local one [`Error::Crypto`].
    pub(crate) fn opening(e: CryptoError) -> Error {
        if e.is_peer_fault() {
            Error::Undecryptable(e)
        } else {
            Error::Crypto(e)
        }
    }

    /// Maps a key agreement failure: the peer's value is invalid, or a local failure.
    pub(crate) fn agreeing(e: CryptoError) -> Error {
        if e.is_peer_fault() {
            Error::KeyExchange(e)
        } else {
            Error::Crypto(e)
        }
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e)
    }
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        Error::Malformed(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Malformed(e) => write!(f, "malformed message: {e}"),
            Error::Unexpected { what } => write!(f, "unexpected message: {what}"),
            Error::Undecryptable(e) => write!(f, "SK payload does not open: {e}"),
            Error::InvalidSyntax { what } => write!(f, "invalid syntax: {what}"),
            Error::KeyExchange(e) => write!(f, "invalid key exchange value: {e}"),
            Error::NoProposalChosen => f.write_str("no proposal chosen"),
            Error::InvalidKePayload { wanted } => {
                write!(f, "invalid KE payload: the responder wants {wanted}")
            }
            Error::TsUnacceptable => f.write_str("traffic selectors unacceptable"),
            Error::TooManyResourceSas { limit } => {
                write!(f, "no per-resource Child SA beyond {limit} (TS_MAX_QUEUE)")
            }
            Error::AuthenticationFailed { what } => write!(f, "authentication failed: {what}"),
            Error::Refused { notify } => write!(f, "the peer refused with {notify}"),
            Error::Unsupported { what } => write!(f, "not supported: {what}"),
            Error::Timeout { transmissions } => {
                write!(f, "no response after {transmissions} transmissions")
            }
            Error::HalfOpenTimeout => f.write_str("half-open IKE SA timed out"),
            Error::Config(e) => write!(f, "configuration: {e}"),
            Error::Crypto(e) => write!(f, "local crypto failure: {e}"),
            Error::Closed => f.write_str("the IKE SA is closed"),
            Error::TemporaryFailure { what } => write!(f, "temporary failure: {what}"),
            Error::NotEstablished => f.write_str("the IKE SA is not established yet"),
            Error::NoSuchChildSa { spi } => write!(f, "no Child SA with SPI {spi:08x}"),
        }
    }
}

impl std::error::Error for Error {}

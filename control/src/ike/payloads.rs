//! Finding payloads in a message: exactly one of a kind, notifications by type.

use super::Error;
use crate::wire::{
    Authentication, Identification, KeyExchange as KePayload, Nonce, Notify, NotifyType, Payload,
    SecurityAssociation, TrafficSelectors,
};

/// The only payload `pick` accepts; none or several is INVALID_SYNTAX naming `what`.
pub(crate) fn one<'a, T: 'a>(
    payloads: &'a [Payload],
    pick: impl Fn(&'a Payload) -> Option<&'a T>,
    what: &'static str,
) -> Result<&'a T, Error> {
    let mut found = payloads.iter().filter_map(pick);
    match (found.next(), found.next()) {
        (Some(p), None) => Ok(p),
        _ => Err(Error::InvalidSyntax { what }),
    }
}

/// Like [`one`], but none is fine.
pub(crate) fn optional<'a, T: 'a>(
    payloads: &'a [Payload],
    pick: impl Fn(&'a Payload) -> Option<&'a T>,
    what: &'static str,
) -> Result<Option<&'a T>, Error> {
    let mut found = payloads.iter().filter_map(pick);
    match (found.next(), found.next()) {
        (p, None) => Ok(p),
        _ => Err(Error::InvalidSyntax { what }),
    }
}

/// The notifications in `payloads`.
pub(crate) fn notifies(payloads: &[Payload]) -> impl Iterator<Item = &Notify> {
    payloads.iter().filter_map(|p| match p {
        Payload::Notify(n) => Some(n),
        _ => None,
    })
}

/// The first notification of type `t`.
pub(crate) fn notify(payloads: &[Payload], t: NotifyType) -> Option<&Notify> {
    notifies(payloads).find(|n| n.notify_type == t)
}

/// The first error notification (types below 16384, §3.10.1).
pub(crate) fn first_error(payloads: &[Payload]) -> Option<&Notify> {
    notifies(payloads).find(|n| n.notify_type.is_error())
}

/// Projections for [`one`] and [`optional`]: the payload if it is of that kind.
pub(crate) fn auth_of(p: &Payload) -> Option<&Authentication> {
    match p {
        Payload::Auth(x) => Some(x),
        _ => None,
    }
}

pub(crate) fn idi_of(p: &Payload) -> Option<&Identification> {
    match p {
        Payload::IdI(x) => Some(x),
        _ => None,
    }
}

pub(crate) fn idr_of(p: &Payload) -> Option<&Identification> {
    match p {
        Payload::IdR(x) => Some(x),
        _ => None,
    }
}

pub(crate) fn ke_of(p: &Payload) -> Option<&KePayload> {
    match p {
        Payload::Ke(x) => Some(x),
        _ => None,
    }
}

pub(crate) fn nonce_of(p: &Payload) -> Option<&Nonce> {
    match p {
        Payload::Nonce(x) => Some(x),
        _ => None,
    }
}

pub(crate) fn sa_of(p: &Payload) -> Option<&SecurityAssociation> {
    match p {
        Payload::Sa(x) => Some(x),
        _ => None,
    }
}

pub(crate) fn tsi_of(p: &Payload) -> Option<&TrafficSelectors> {
    match p {
        Payload::TsI(x) => Some(x),
        _ => None,
    }
}

pub(crate) fn tsr_of(p: &Payload) -> Option<&TrafficSelectors> {
    match p {
        Payload::TsR(x) => Some(x),
        _ => None,
    }
}

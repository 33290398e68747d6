//! [`Identity`]: the IDi / IDr of a peer (RFC 7296 §3.5) as configuration and events see it.

use core::fmt;
use std::net::IpAddr;

use crate::wire::{IdType, Identification};

/// An IKE identity. Converts to and from the wire's [`Identification`]; types without a
/// variant here (DER_ASN1_DN, …) are kept as [`Identity::Other`].
#[derive(Clone, PartialEq, Eq)]
pub enum Identity {
    /// ID_FQDN, e.g. `vpn.example.com`.
    Fqdn(String),
    /// ID_RFC822_ADDR, e.g. `alice@example.com`.
    UserFqdn(String),
    /// ID_IPV4_ADDR or ID_IPV6_ADDR.
    Addr(IpAddr),
    /// ID_KEY_ID: an opaque octet string.
    KeyId(Vec<u8>),
    /// Any other type, or an FQDN that is not UTF-8, as received.
    Other(Identification),
}

impl Identity {
    /// An ID_DER_ASN1_DN identity from `(attribute, value)` pairs (see
    /// [`crate::crypto::encode_dn`]); `None` for an unknown attribute.
    pub fn dn<'a>(rdns: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<Identity> {
        crate::crypto::encode_dn(rdns).map(|data| {
            Identity::Other(Identification {
                id_type: IdType::DerAsn1Dn,
                data,
            })
        })
    }

    /// The wire form (the body of an IDi / IDr payload).
    pub fn to_wire(&self) -> Identification {
        match self {
            Identity::Fqdn(name) => Identification::fqdn(name),
            Identity::UserFqdn(addr) => Identification::rfc822(addr),
            Identity::Addr(addr) => Identification::ip(*addr),
            Identity::KeyId(key) => Identification {
                id_type: IdType::KeyId,
                data: key.clone(),
            },
            Identity::Other(id) => id.clone(),
        }
    }

    /// The identity a peer sent.
    pub fn from_wire(id: &Identification) -> Identity {
        let text = || String::from_utf8(id.data.clone()).ok();
        let typed = match id.id_type {
            IdType::Fqdn => text().map(Identity::Fqdn),
            IdType::Rfc822Addr => text().map(Identity::UserFqdn),
            IdType::Ipv4Addr | IdType::Ipv6Addr => id.ip_addr().map(Identity::Addr),
            IdType::KeyId => Some(Identity::KeyId(id.data.clone())),
            _ => None,
        };
        typed.unwrap_or_else(|| Identity::Other(id.clone()))
    }

    /// Whether `id` (from the wire) names this identity: the same type and octets, except that
    /// FQDNs and the domain part of user FQDNs compare without regard to ASCII case, and
    /// DER_ASN1_DNs compare as DNs ([`crate::crypto::dn_equal`]).
    pub fn matches(&self, id: &Identification) -> bool {
        match (self, Identity::from_wire(id)) {
            (Identity::Fqdn(a), Identity::Fqdn(b)) => a.eq_ignore_ascii_case(&b),
            (Identity::UserFqdn(a), Identity::UserFqdn(b)) => {
                match (a.rsplit_once('@'), b.rsplit_once('@')) {
                    (Some((la, da)), Some((lb, db))) => la == lb && da.eq_ignore_ascii_case(db),
                    _ => a == &b,
                }
            }
            (Identity::Other(a), Identity::Other(b))
                if a.id_type == IdType::DerAsn1Dn && b.id_type == IdType::DerAsn1Dn =>
            {
                crate::crypto::dn_equal(&a.data, &b.data)
            }
            (a, b) => *a == b,
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Fqdn(name) => write!(f, "fqdn:{name}"),
            Identity::UserFqdn(addr) => write!(f, "user-fqdn:{addr}"),
            Identity::Addr(addr) => write!(f, "addr:{addr}"),
            Identity::KeyId(key) => {
                f.write_str("keyid:")?;
                key.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
            Identity::Other(id) => write!(f, "{}:{} octets", id.id_type, id.data.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_matching() {
        for id in [
            Identity::Fqdn("vpn.example.com".into()),
            Identity::UserFqdn("alice@example.com".into()),
            Identity::Addr("192.0.2.1".parse().unwrap()),
            Identity::Addr("2001:db8::1".parse().unwrap()),
            Identity::KeyId(vec![1, 2, 3]),
        ] {
            assert_eq!(Identity::from_wire(&id.to_wire()), id);
            assert!(id.matches(&id.to_wire()));
        }
        let fqdn = Identity::Fqdn("VPN.example.com".into());
        assert!(fqdn.matches(&Identification::fqdn("vpn.EXAMPLE.com")));
        assert!(!fqdn.matches(&Identification::rfc822("vpn.example.com")));
        let bad = Identification {
            id_type: IdType::Fqdn,
            data: vec![0xff],
        };
        assert_eq!(Identity::from_wire(&bad), Identity::Other(bad.clone()));
        assert_eq!(format!("{:?}", Identity::KeyId(vec![0xab])), "keyid:ab");
    }
}

//! The Identification payloads (IDi and IDr, RFC 7296 §3.5).
//!
//! ```text
//! body = ID Type(1) RESERVED(3) | Identification Data
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::codec::put_u8;
use super::{Codec, DecodeError, IdType, Reader};

/// The body of an IDi or IDr payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identification {
    /// ID Type.
    pub id_type: IdType,
    /// Identification Data, in the format the type prescribes (kept opaque: an ID_FQDN is not
    /// guaranteed to be valid text).
    pub data: Vec<u8>,
}

impl Identification {
    /// An ID_IPV4_ADDR or ID_IPV6_ADDR identity.
    pub fn ip(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(a) => Identification {
                id_type: IdType::Ipv4Addr,
                data: a.octets().to_vec(),
            },
            IpAddr::V6(a) => Identification {
                id_type: IdType::Ipv6Addr,
                data: a.octets().to_vec(),
            },
        }
    }

    /// An ID_FQDN identity ("vpn.example.com").
    pub fn fqdn(name: &str) -> Self {
        Identification {
            id_type: IdType::Fqdn,
            data: name.as_bytes().to_vec(),
        }
    }

    /// An ID_RFC822_ADDR identity ("user@example.com").
    pub fn rfc822(addr: &str) -> Self {
        Identification {
            id_type: IdType::Rfc822Addr,
            data: addr.as_bytes().to_vec(),
        }
    }

    /// The address of an ID_IPV4_ADDR / ID_IPV6_ADDR identity of the right length.
    pub fn ip_addr(&self) -> Option<IpAddr> {
        match self.id_type {
            IdType::Ipv4Addr => <[u8; 4]>::try_from(self.data.as_slice())
                .ok()
                .map(|a| IpAddr::V4(Ipv4Addr::from(a))),
            IdType::Ipv6Addr => <[u8; 16]>::try_from(self.data.as_slice())
                .ok()
                .map(|a| IpAddr::V6(Ipv6Addr::from(a))),
            _ => None,
        }
    }
}

impl Codec for Identification {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u8(out, self.id_type.value());
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&self.data);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let id_type = IdType::from(r.u8("ID type")?);
        r.skip(3, "ID reserved")?;
        Ok(Identification {
            id_type,
            data: r.rest().to_vec(),
        })
    }
}

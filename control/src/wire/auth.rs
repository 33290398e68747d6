//! The Authentication payload (AUTH, RFC 7296 §3.8).
//!
//! ```text
//! body = Auth Method(1) RESERVED(3) | Authentication Data
//! ```

use super::codec::put_u8;
use super::{AuthMethod, Codec, DecodeError, Reader};

/// The body of an AUTH payload.
#[doc(alias = "AUTH")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authentication {
    /// Auth Method.
    pub method: AuthMethod,
    /// Authentication Data: a MAC for shared keys, a signature otherwise. For
    /// [`AuthMethod::DigitalSignature`] (RFC 7427 §3) it begins with a one-octet length and an
    /// ASN.1 AlgorithmIdentifier; [`Authentication::signature_parts`] splits it.
    pub data: Vec<u8>,
}

impl Authentication {
    /// For RFC 7427 Digital Signature authentication: the DER AlgorithmIdentifier and the
    /// signature value. `None` for other methods or if the length octet overruns the data.
    pub fn signature_parts(&self) -> Option<(&[u8], &[u8])> {
        if self.method != AuthMethod::DigitalSignature {
            return None;
        }
        let (&len, rest) = self.data.split_first()?;
        rest.split_at_checked(usize::from(len))
    }
}

impl Codec for Authentication {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u8(out, self.method.value());
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&self.data);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let method = AuthMethod::from(r.u8("AUTH method")?);
        r.skip(3, "AUTH reserved")?;
        Ok(Authentication {
            method,
            data: r.rest().to_vec(),
        })
    }
}

//! The Certificate and Certificate Request payloads (CERT, CERTREQ; RFC 7296 §3.6, §3.7).
//!
//! ```text
//! CERT body    = Cert Encoding(1) | Certificate Data
//! CERTREQ body = Cert Encoding(1) | Certification Authority (concatenated SHA-1 key hashes)
//! ```

use super::codec::put_u8;
use super::{CertEncoding, Codec, DecodeError, Reader};

/// The body of a CERT payload.
#[doc(alias = "CERT")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    /// Certificate Encoding.
    pub encoding: CertEncoding,
    /// Certificate Data (e.g. a DER X.509 certificate), opaque here.
    pub data: Vec<u8>,
}

/// The body of a CERTREQ payload.
#[doc(alias = "CERTREQ")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateRequest {
    /// Certificate Encoding requested.
    pub encoding: CertEncoding,
    /// Certification Authority: for X.509, concatenated 20-octet SHA-1 hashes of trusted CAs'
    /// public keys (§3.7), opaque here.
    pub authorities: Vec<u8>,
}

impl Codec for Certificate {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u8(out, self.encoding.value());
        out.extend_from_slice(&self.data);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let encoding = CertEncoding::from(r.u8("CERT encoding")?);
        Ok(Certificate {
            encoding,
            data: r.rest().to_vec(),
        })
    }
}

impl Codec for CertificateRequest {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u8(out, self.encoding.value());
        out.extend_from_slice(&self.authorities);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let encoding = CertEncoding::from(r.u8("CERTREQ encoding")?);
        Ok(CertificateRequest {
            encoding,
            authorities: r.rest().to_vec(),
        })
    }
}

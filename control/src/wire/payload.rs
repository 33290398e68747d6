//! The payload enum and the payload chain (RFC 7296 §3.2).
//!
//! Every payload starts with a generic header whose Next Payload field gives the type of the
//! *following* payload (the first type is in the IKE header, or, inside SK/SKF, in the SK
//! header). The chain ends at Next Payload 0, or at an SK/SKF payload, whose Next Payload field
//! instead names the first payload *inside* the encrypted data (§3.14, RFC 7383 §2.5).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Next Payload  |C|  RESERVED   |         Payload Length        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use super::codec::{patch_len16, put_u16, put_u8};
use super::{
    Authentication, Certificate, CertificateRequest, Codec, Configuration, DecodeError, Delete,
    Eap, Encrypted, EncryptedFragment, Identification, KeyExchange, Nonce, Notify, PayloadType,
    Reader, SecurityAssociation, TrafficSelectors, VendorId, MAX_PAYLOADS,
};

/// The Critical bit of the generic payload header (§3.2).
const CRITICAL: u8 = 0x80;

/// The generic payload header's length.
const GENERIC_HEADER_LEN: usize = 4;

/// One IKEv2 payload. Variant names follow RFC 7296's notation (`SA`, `KE`, `IDi`, …).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Payload {
    /// SA, Security Association (§3.3).
    Sa(SecurityAssociation),
    /// KE, Key Exchange (§3.4).
    Ke(KeyExchange),
    /// IDi, Identification - Initiator (§3.5).
    IdI(Identification),
    /// IDr, Identification - Responder (§3.5).
    IdR(Identification),
    /// CERT, Certificate (§3.6).
    Cert(Certificate),
    /// CERTREQ, Certificate Request (§3.7).
    CertReq(CertificateRequest),
    /// AUTH, Authentication (§3.8).
    Auth(Authentication),
    /// Ni/Nr, Nonce (§3.9).
    Nonce(Nonce),
    /// N, Notify (§3.10).
    Notify(Notify),
    /// D, Delete (§3.11).
    Delete(Delete),
    /// V, Vendor ID (§3.12).
    VendorId(VendorId),
    /// TSi, Traffic Selector - Initiator (§3.13).
    TsI(TrafficSelectors),
    /// TSr, Traffic Selector - Responder (§3.13).
    TsR(TrafficSelectors),
    /// SK, Encrypted and Authenticated (§3.14). Always the last payload of its chain.
    Sk(Encrypted),
    /// CP, Configuration (§3.15).
    Cp(Configuration),
    /// EAP, Extensible Authentication (§3.16).
    Eap(Eap),
    /// SKF, Encrypted and Authenticated Fragment (RFC 7383 §2.5). Always the last payload.
    Skf(EncryptedFragment),
    /// A payload type this codec does not understand, sent without the Critical bit: skipped
    /// by the protocol (§2.5) but kept so the message re-encodes byte for byte.
    Unknown(UnknownPayload),
}

/// A non-critical payload of a type the codec does not understand, kept as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownPayload {
    /// The payload type.
    pub payload_type: PayloadType,
    /// The payload body (after the generic header).
    pub data: Vec<u8>,
}

impl Payload {
    /// The payload type of this payload (what the preceding Next Payload field says).
    pub fn payload_type(&self) -> PayloadType {
        match self {
            Payload::Sa(_) => PayloadType::Sa,
            Payload::Ke(_) => PayloadType::Ke,
            Payload::IdI(_) => PayloadType::IdI,
            Payload::IdR(_) => PayloadType::IdR,
            Payload::Cert(_) => PayloadType::Cert,
            Payload::CertReq(_) => PayloadType::CertReq,
            Payload::Auth(_) => PayloadType::Auth,
            Payload::Nonce(_) => PayloadType::Nonce,
            Payload::Notify(_) => PayloadType::Notify,
            Payload::Delete(_) => PayloadType::Delete,
            Payload::VendorId(_) => PayloadType::VendorId,
            Payload::TsI(_) => PayloadType::TsI,
            Payload::TsR(_) => PayloadType::TsR,
            Payload::Sk(_) => PayloadType::Sk,
            Payload::Cp(_) => PayloadType::Cp,
            Payload::Eap(_) => PayloadType::Eap,
            Payload::Skf(_) => PayloadType::Skf,
            Payload::Unknown(u) => u.payload_type,
        }
    }

    /// Writes the body (everything after the generic header).
    fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            Payload::Sa(p) => p.encode(out),
            Payload::Ke(p) => p.encode(out),
            Payload::IdI(p) | Payload::IdR(p) => p.encode(out),
            Payload::Cert(p) => p.encode(out),
            Payload::CertReq(p) => p.encode(out),
            Payload::Auth(p) => p.encode(out),
            Payload::Nonce(p) => p.encode(out),
            Payload::Notify(p) => p.encode(out),
            Payload::Delete(p) => p.encode(out),
            Payload::VendorId(p) => p.encode(out),
            Payload::TsI(p) | Payload::TsR(p) => p.encode(out),
            Payload::Sk(p) => p.encode_body(out),
            Payload::Cp(p) => p.encode(out),
            Payload::Eap(p) => p.encode(out),
            Payload::Skf(p) => p.encode_body(out),
            Payload::Unknown(p) => out.extend_from_slice(&p.data),
        }
    }

    /// Reads the body of a payload of type `payload_type`; `next` is its header's Next Payload
    /// field (needed by SK and SKF, for which it names the first inner payload).
    fn read_body(
        payload_type: PayloadType,
        next: PayloadType,
        critical: bool,
        body: &mut Reader<'_>,
    ) -> Result<Payload, DecodeError> {
        Ok(match payload_type {
            PayloadType::Sa => Payload::Sa(SecurityAssociation::read(body)?),
            PayloadType::Ke => Payload::Ke(KeyExchange::read(body)?),
            PayloadType::IdI => Payload::IdI(Identification::read(body)?),
            PayloadType::IdR => Payload::IdR(Identification::read(body)?),
            PayloadType::Cert => Payload::Cert(Certificate::read(body)?),
            PayloadType::CertReq => Payload::CertReq(CertificateRequest::read(body)?),
            PayloadType::Auth => Payload::Auth(Authentication::read(body)?),
            PayloadType::Nonce => Payload::Nonce(Nonce::read(body)?),
            PayloadType::Notify => Payload::Notify(Notify::read(body)?),
            PayloadType::Delete => Payload::Delete(Delete::read(body)?),
            PayloadType::VendorId => Payload::VendorId(VendorId::read(body)?),
            PayloadType::TsI => Payload::TsI(TrafficSelectors::read(body)?),
            PayloadType::TsR => Payload::TsR(TrafficSelectors::read(body)?),
            PayloadType::Sk => Payload::Sk(Encrypted::read_body(next, body)),
            PayloadType::Cp => Payload::Cp(Configuration::read(body)?),
            PayloadType::Eap => Payload::Eap(Eap::read(body)?),
            PayloadType::Skf => Payload::Skf(EncryptedFragment::read_body(next, body)?),
            // §2.5: an unrecognised payload with the Critical bit means the whole message is
            // rejected with UNSUPPORTED_CRITICAL_PAYLOAD; without it, the payload is skipped.
            other if critical => {
                return Err(DecodeError::UnsupportedCriticalPayload {
                    payload_type: other.value(),
                })
            }
            other => Payload::Unknown(UnknownPayload {
                payload_type: other,
                data: body.rest().to_vec(),
            }),
        })
    }

    /// Writes the payload with its generic header.
    fn encode_with_header(&self, next: PayloadType, out: &mut Vec<u8>) {
        let start = out.len();
        put_u8(out, next.value());
        put_u8(out, 0); // Critical bit clear: every payload we send is one we understand.
        put_u16(out, 0); // Payload Length, patched below.
        self.encode_body(out);
        patch_len16(out, start);
    }
}

/// Reads a generic payload header (§3.2) for a payload of type `payload_type` and splits off
/// its body. Returns the Next Payload field, the Critical bit and the body.
pub(crate) fn read_generic_header<'a>(
    r: &mut Reader<'a>,
    payload_type: PayloadType,
) -> Result<(PayloadType, bool, Reader<'a>), DecodeError> {
    let available = r.remaining();
    let next = PayloadType::from(r.u8("generic payload header Next Payload")?);
    let critical = r.u8("generic payload header Critical bit")? & CRITICAL != 0;
    let length = r.u16("generic payload header Payload Length")?;
    let body_len = usize::from(length)
        .checked_sub(GENERIC_HEADER_LEN)
        .filter(|&n| n <= r.remaining())
        .ok_or(DecodeError::PayloadLength {
            payload_type,
            length,
            available,
        })?;
    let body = r.sub(body_len, "payload body")?;
    Ok((next, critical, body))
}

/// Decodes a payload chain whose first payload has type `first`: the payloads of a message
/// (after the IKE header) or the plaintext of an SK payload once the crypto layer has
/// decrypted it and removed the padding.
///
/// The chain must fill `bytes` exactly, hold at most [`MAX_PAYLOADS`] payloads, and end either
/// with Next Payload 0 or with an SK/SKF payload that is the last thing in `bytes`.
pub fn decode_chain(first: PayloadType, bytes: &[u8]) -> Result<Vec<Payload>, DecodeError> {
    let mut r = Reader::new(bytes);
    let mut payloads = Vec::new();
    let mut current = first;
    while current != PayloadType::NoNextPayload {
        if payloads.len() >= MAX_PAYLOADS {
            return Err(DecodeError::TooMany {
                what: "payloads in a chain",
                limit: MAX_PAYLOADS,
            });
        }
        let (next, critical, mut body) = read_generic_header(&mut r, current)?;
        let payload = Payload::read_body(current, next, critical, &mut body)?;
        body.finish("payload body")?;
        let ends_chain = matches!(payload, Payload::Sk(_) | Payload::Skf(_));
        payloads.push(payload);
        if ends_chain {
            // §3.14: "the Encrypted payload, if present in a message, MUST be the last payload
            // in the message"; RFC 7383 §2.5 says the same of SKF.
            r.finish("SK/SKF payload (must be last)")?;
            return Ok(payloads);
        }
        current = next;
    }
    r.finish("last payload (Next Payload 0)")?;
    Ok(payloads)
}

/// Encodes a payload chain and returns the type of its first payload, for the IKE header's
/// (or the enclosing SK header's) Next Payload field; [`PayloadType::NoNextPayload`] if empty.
///
/// An SK or SKF payload writes its own inner type as Next Payload and so must be the last
/// payload of the chain: anything after it would not decode.
pub fn encode_chain(payloads: &[Payload], out: &mut Vec<u8>) -> PayloadType {
    let mut rest = payloads.iter().peekable();
    while let Some(payload) = rest.next() {
        let next = match payload {
            Payload::Sk(sk) => sk.next_payload,
            Payload::Skf(skf) => skf.next_payload,
            _ => rest
                .peek()
                .map_or(PayloadType::NoNextPayload, |p| p.payload_type()),
        };
        payload.encode_with_header(next, out);
    }
    payloads
        .first()
        .map_or(PayloadType::NoNextPayload, Payload::payload_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_of_two_known_bytes() -> Result<(), DecodeError> {
        let chain = vec![
            Payload::VendorId(VendorId(vec![0xaa])),
            Payload::Notify(Notify::new(
                super::super::NotifyType::InitialContact,
                vec![],
            )),
        ];
        let mut out = Vec::new();
        assert_eq!(encode_chain(&chain, &mut out), PayloadType::VendorId);
        assert_eq!(out, [41, 0, 0, 5, 0xaa, 0, 0, 0, 8, 0, 0, 0x40, 0x00]);
        assert_eq!(decode_chain(PayloadType::VendorId, &out)?, chain);
        Ok(())
    }

    #[test]
    fn unknown_payloads_critical_or_not() -> Result<(), DecodeError> {
        // Type 200, not critical: kept.
        let bytes = [0, 0x00, 0, 6, 1, 2];
        let chain = decode_chain(PayloadType::from(200), &bytes)?;
        assert_eq!(
            chain,
            [Payload::Unknown(UnknownPayload {
                payload_type: PayloadType::from(200),
                data: vec![1, 2]
            })]
        );
        let mut out = Vec::new();
        encode_chain(&chain, &mut out);
        assert_eq!(out, bytes);
        // Critical: the whole chain is refused, naming the type.
        let bytes = [0, 0x80, 0, 6, 1, 2];
        assert_eq!(
            decode_chain(PayloadType::from(200), &bytes),
            Err(DecodeError::UnsupportedCriticalPayload { payload_type: 200 })
        );
        Ok(())
    }

    #[test]
    fn payload_lengths_are_checked_against_the_container() {
        // Length 3 (< header).
        assert!(matches!(
            decode_chain(PayloadType::VendorId, &[0, 0, 0, 3]),
            Err(DecodeError::PayloadLength { length: 3, .. })
        ));
        // Length 9 with 8 octets.
        assert!(matches!(
            decode_chain(PayloadType::VendorId, &[0, 0, 0, 9, 1, 2, 3, 4]),
            Err(DecodeError::PayloadLength { length: 9, .. })
        ));
        // Bytes after the last payload.
        assert!(matches!(
            decode_chain(PayloadType::VendorId, &[0, 0, 0, 4, 0]),
            Err(DecodeError::TrailingBytes { count: 1, .. })
        ));
        // Next Payload says more, but nothing follows.
        assert!(matches!(
            decode_chain(PayloadType::VendorId, &[43, 0, 0, 4]),
            Err(DecodeError::Truncated { .. })
        ));
    }
}

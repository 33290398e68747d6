//! The Encrypted and Authenticated payload (SK, RFC 7296 §3.14) and its fragmented form
//! (SKF, RFC 7383 §2.5), kept opaque, plus [`locate_encrypted`], which tells the crypto layer
//! which bytes of a datagram to authenticate and decrypt.
//!
//! ```text
//! SK  = generic header (Next Payload = first inner payload) | IV | ciphertext | ICV
//! SKF = generic header (Next Payload = first inner payload in fragment 1, else 0)
//!       | Fragment Number(2) | Total Fragments(2) | IV | ciphertext | ICV
//! ```

use std::ops::Range;

use super::codec::put_u16;
use super::message::read_checked_header;
use super::payload::read_generic_header;
use super::{DecodeError, PayloadType, Reader, MAX_PAYLOADS};

/// The body of an SK payload: opaque IV‖ciphertext‖ICV. Encryption, padding and the ICV are
/// the crypto layer's business; it decodes the plaintext with [`super::decode_chain`].
#[doc(alias = "SK")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encrypted {
    /// The SK header's Next Payload field: the type of the first payload inside the ciphertext
    /// ([`PayloadType::NoNextPayload`] for an empty INFORMATIONAL, e.g. a liveness check).
    pub next_payload: PayloadType,
    /// IV, ciphertext (inner payloads, padding, Pad Length) and ICV, as sent.
    pub data: Vec<u8>,
}

/// The body of an SKF payload (RFC 7383 §2.5): one fragment of an SK payload's content.
#[doc(alias = "SKF")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptedFragment {
    /// The first inner payload's type in fragment 1; 0 in the others (RFC 7383 §2.5).
    pub next_payload: PayloadType,
    /// Fragment Number, from 1.
    pub fragment_number: u16,
    /// Total Fragments, at least 1 and at least `fragment_number`.
    pub total_fragments: u16,
    /// IV, ciphertext and ICV of this fragment, as sent.
    pub data: Vec<u8>,
}

impl Encrypted {
    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.data);
    }

    pub(crate) fn read_body(next_payload: PayloadType, r: &mut Reader<'_>) -> Self {
        Encrypted {
            next_payload,
            data: r.rest().to_vec(),
        }
    }
}

impl EncryptedFragment {
    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) {
        put_u16(out, self.fragment_number);
        put_u16(out, self.total_fragments);
        out.extend_from_slice(&self.data);
    }

    pub(crate) fn read_body(
        next_payload: PayloadType,
        r: &mut Reader<'_>,
    ) -> Result<Self, DecodeError> {
        let fragment_number = r.u16("SKF Fragment Number")?;
        let total_fragments = r.u16("SKF Total Fragments")?;
        // RFC 7383 §2.5: numbering starts at 1; a fragment numbered above the total is bogus
        // and must be discarded.
        if fragment_number == 0 || fragment_number > total_fragments {
            return Err(DecodeError::InvalidValue {
                what: "SKF Fragment Number",
                value: u32::from(fragment_number),
            });
        }
        Ok(EncryptedFragment {
            next_payload,
            fragment_number,
            total_fragments,
            data: r.rest().to_vec(),
        })
    }
}

/// Where the SK or SKF payload sits in a datagram: what the crypto layer needs to verify and
/// decrypt it in place, without re-encoding anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptedLocation {
    /// [`PayloadType::Sk`] or [`PayloadType::Skf`].
    pub payload_type: PayloadType,
    /// Offset of the SK/SKF generic payload header. Its first octet is the Next Payload field,
    /// which holds the first inner payload's type.
    pub payload_offset: usize,
    /// The first inner payload's type (the value at `payload_offset`).
    pub first_inner: PayloadType,
    /// `datagram[..aad_end]` is authenticated but not encrypted: the IKE header, any payloads
    /// before SK and the SK header (the AEAD associated data of RFC 5282 §5.1), and for SKF
    /// also the Fragment Number and Total Fragments fields (RFC 7383 §2.5).
    pub aad_end: usize,
    /// IV‖ciphertext‖ICV. For integrity-checked (non-AEAD) transforms the ICV covers
    /// `datagram[..encrypted.end - icv_len]` (§3.14).
    pub encrypted: Range<usize>,
    /// `(Fragment Number, Total Fragments)` for SKF.
    pub fragment: Option<(u16, u16)>,
}

/// Finds the SK or SKF payload of a datagram, checking the IKE header and every generic payload
/// header on the way (but not the bodies of the payloads before it). `Ok(None)` if the message
/// has no encrypted payload.
pub fn locate_encrypted(datagram: &[u8]) -> Result<Option<EncryptedLocation>, DecodeError> {
    let mut r = Reader::new(datagram);
    let (_, mut current) = read_checked_header(datagram, &mut r)?;
    let mut count = 0usize;
    while current != PayloadType::NoNextPayload {
        if count >= MAX_PAYLOADS {
            return Err(DecodeError::TooMany {
                what: "payloads in a chain",
                limit: MAX_PAYLOADS,
            });
        }
        count = count.saturating_add(1);
        let payload_offset = r.position();
        let (next, _critical, mut body) = read_generic_header(&mut r, current)?;
        let end = r.position();
        let body_start = end.saturating_sub(body.remaining());
        match current {
            PayloadType::Sk => {
                r.finish("SK payload (must be last)")?;
                return Ok(Some(EncryptedLocation {
                    payload_type: current,
                    payload_offset,
                    first_inner: next,
                    aad_end: body_start,
                    encrypted: body_start..end,
                    fragment: None,
                }));
            }
            PayloadType::Skf => {
                r.finish("SKF payload (must be last)")?;
                let fragment = EncryptedFragment::read_body(next, &mut body)?;
                let aad_end = body_start.saturating_add(4);
                return Ok(Some(EncryptedLocation {
                    payload_type: current,
                    payload_offset,
                    first_inner: next,
                    aad_end,
                    encrypted: aad_end..end,
                    fragment: Some((fragment.fragment_number, fragment.total_fragments)),
                }));
            }
            _ => current = next,
        }
    }
    r.finish("last payload (Next Payload 0)")?;
    Ok(None)
}

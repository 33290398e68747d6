//! The one encode/decode pattern every wire structure follows, and the writing helpers.

use super::{DecodeError, Reader};

/// A wire structure, in the shape of rustls' `Codec`.
///
/// For payloads, `encode` writes and `read` reads the payload *body* only; the 4-octet generic
/// payload header (RFC 7296 §3.2) belongs to the payload chain ([`super::encode_chain`],
/// [`super::decode_chain`]), because its Next Payload field describes the *following* payload.
/// `read` is given a reader limited to the structure's container and may leave bytes unread;
/// the caller decides whether leftovers are an error.
pub trait Codec: Sized {
    /// Appends the wire form to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// Reads one value from `r`.
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Convenience: the wire form in a fresh vector.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

pub(crate) fn put_u8(out: &mut Vec<u8>, v: u8) {
    out.push(v);
}

pub(crate) fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Fills in a 16-bit length field for the structure that starts at `start`.
///
/// Every length-prefixed structure of RFC 7296 below the header (generic payload header §3.2,
/// proposal §3.3.1, transform §3.3.2, traffic selector §3.13.1, configuration attribute §3.15.1,
/// TLV transform attribute §3.3.5) keeps its 16-bit length at offset 2 and counts from its own
/// first octet, so one helper serves them all. A structure longer than 65,535 octets cannot be
/// represented; its length saturates, and the result will not decode (the caller built something
/// no peer could parse: fragment it or make it smaller).
pub(crate) fn patch_len16(out: &mut [u8], start: usize) {
    let len = u16::try_from(out.len().saturating_sub(start)).unwrap_or(u16::MAX);
    patch_u16_at(out, start.saturating_add(2), len);
}

/// Overwrites two octets at `at` (no-op if `at` is out of range, which callers never pass).
pub(crate) fn patch_u16_at(out: &mut [u8], at: usize, v: u16) {
    if let Some(slot) = out.get_mut(at..at.saturating_add(2)) {
        slot.copy_from_slice(&v.to_be_bytes());
    }
}

/// Overwrites four octets at `at` (no-op if `at` is out of range).
pub(crate) fn patch_u32_at(out: &mut [u8], at: usize, v: u32) {
    if let Some(slot) = out.get_mut(at..at.saturating_add(4)) {
        slot.copy_from_slice(&v.to_be_bytes());
    }
}

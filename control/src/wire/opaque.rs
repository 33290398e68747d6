//! Payloads whose body is one opaque field: Nonce (§3.9), Vendor ID (§3.12) and EAP (§3.16).

use super::{Codec, DecodeError, Reader};

/// The body of an Ni/Nr payload (RFC 7296 §3.9).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nonce(pub Vec<u8>);

impl Nonce {
    /// §3.9: "The size of the Nonce Data MUST be between 16 and 256 octets, inclusive."
    pub const MIN_LEN: usize = 16;
    /// See [`Nonce::MIN_LEN`].
    pub const MAX_LEN: usize = 256;
}

impl Codec for Nonce {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let data = r.rest();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&data.len()) {
            return Err(DecodeError::InvalidLength {
                what: "Nonce data length",
                length: data.len(),
            });
        }
        Ok(Nonce(data.to_vec()))
    }
}

/// The body of a V payload (RFC 7296 §3.12): an opaque identifier chosen by the vendor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VendorId(pub Vec<u8>);

impl Codec for VendorId {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(VendorId(r.rest().to_vec()))
    }
}

/// The body of an EAP payload (RFC 7296 §3.16): one EAP message (RFC 3748), opaque here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Eap(pub Vec<u8>);

impl Codec for Eap {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Eap(r.rest().to_vec()))
    }
}

//! A whole IKE message: the header (RFC 7296 §3.1) and its payload chain.

use super::codec::patch_u32_at;
use super::{
    decode_chain, encode_chain, DecodeError, Header, Payload, PayloadType, Reader, MAX_MESSAGE_LEN,
};

/// An IKEv2 message as it travels in one UDP datagram (without the 4-octet non-ESP marker of
/// port 4500, RFC 3948, which the socket layer strips).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The header, less Next Payload and Length, which are derived from `payloads`.
    pub header: Header,
    /// The payloads, in order. An SK or SKF payload, if any, is the last.
    pub payloads: Vec<Payload>,
}

/// Reads the IKE header of `datagram` from `r` (positioned at its start) and checks what must
/// hold before any payload is looked at: at most [`MAX_MESSAGE_LEN`] octets, major version 2,
/// and a Length field equal to the datagram's length. Returns the header and the first
/// payload's type.
pub(crate) fn read_checked_header(
    datagram: &[u8],
    r: &mut Reader<'_>,
) -> Result<(Header, PayloadType), DecodeError> {
    if datagram.len() > MAX_MESSAGE_LEN {
        return Err(DecodeError::MessageTooLong {
            len: datagram.len(),
        });
    }
    let (header, first, length) = Header::read(r)?;
    // §3.1: a major version above 2 is answered with INVALID_MAJOR_VERSION (or ignored); check
    // it before the length so that such a message is recognised even if the layout differs.
    if header.major_version != 2 {
        return Err(DecodeError::UnsupportedMajorVersion {
            major: header.major_version,
            minor: header.minor_version,
        });
    }
    // §3.1 Length is "of the total message (header + payloads)": a datagram with fewer octets is
    // truncated, one with more carries something that is not part of the message.
    if usize::try_from(length).ok() != Some(datagram.len()) {
        return Err(DecodeError::MessageLength {
            declared: length,
            actual: datagram.len(),
        });
    }
    Ok((header, first))
}

impl Message {
    /// A message with no payloads yet.
    pub fn new(header: Header) -> Self {
        Message {
            header,
            payloads: Vec::new(),
        }
    }

    /// Decodes one datagram. Strict: every length is checked against its container and the
    /// chain must fill the datagram exactly; see [`DecodeError`] for what can be wrong.
    pub fn decode(datagram: &[u8]) -> Result<Message, DecodeError> {
        let mut r = Reader::new(datagram);
        let (header, first) = read_checked_header(datagram, &mut r)?;
        let payloads = decode_chain(first, r.rest())?;
        Ok(Message { header, payloads })
    }

    /// Encodes the message, filling in the header's Next Payload and Length fields.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoded message to `out` (which may already hold, e.g., a non-ESP marker).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        // The header goes first with placeholders, because Next Payload and Length are only
        // known once the payloads are written.
        self.header.write(PayloadType::NoNextPayload, 0, out);
        let first = encode_chain(&self.payloads, out);
        let length = u32::try_from(out.len().saturating_sub(start)).unwrap_or(u32::MAX);
        if let Some(next_payload) = out.get_mut(start.saturating_add(16)) {
            *next_payload = first.value();
        }
        patch_u32_at(out, start.saturating_add(24), length);
    }

    /// The payloads of one type, e.g. every Notify.
    pub fn payloads_of(&self, payload_type: PayloadType) -> impl Iterator<Item = &Payload> {
        self.payloads
            .iter()
            .filter(move |p| p.payload_type() == payload_type)
    }
}

//! The IKE header (RFC 7296 §3.1).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       IKE SA Initiator's SPI                  |
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       IKE SA Responder's SPI                  |
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Next Payload | MjVer | MnVer | Exchange Type |     Flags     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                          Message ID                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                            Length                             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use super::codec::{put_u32, put_u64, put_u8};
use super::{DecodeError, ExchangeType, PayloadType, Reader};

/// The Flags octet of the IKE header. Bits other than I, V and R are reserved: ignored on
/// receipt and sent as zero (§3.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags {
    /// I (Initiator, 0x08): set by the original initiator of the IKE SA.
    pub initiator: bool,
    /// V (Version, 0x10): the sender can speak a higher major version. Sent as zero by IKEv2.
    pub version: bool,
    /// R (Response, 0x20): this message is a response.
    pub response: bool,
}

impl Flags {
    const INITIATOR: u8 = 0x08;
    const VERSION: u8 = 0x10;
    const RESPONSE: u8 = 0x20;

    /// The flags from the wire octet.
    pub const fn from_bits(bits: u8) -> Self {
        Flags {
            initiator: bits & Self::INITIATOR != 0,
            version: bits & Self::VERSION != 0,
            response: bits & Self::RESPONSE != 0,
        }
    }

    /// The wire octet.
    pub const fn bits(self) -> u8 {
        (if self.initiator { Self::INITIATOR } else { 0 })
            | (if self.version { Self::VERSION } else { 0 })
            | (if self.response { Self::RESPONSE } else { 0 })
    }
}

/// The IKE header without the two fields the codec derives from the payloads (Next Payload and
/// Length): [`super::Message::encode`] fills those in.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// IKE SA Initiator's SPI.
    pub initiator_spi: u64,
    /// IKE SA Responder's SPI (zero in the first IKE_SA_INIT request).
    pub responder_spi: u64,
    /// Major Version (4 bits on the wire): 2 for IKEv2. [`super::Message::decode`] rejects
    /// anything else.
    pub major_version: u8,
    /// Minor Version (4 bits): 0 for RFC 7296, "MUST be ignored" above that, kept for re-encoding.
    pub minor_version: u8,
    /// Exchange Type.
    pub exchange_type: ExchangeType,
    /// Flags (I, V, R).
    pub flags: Flags,
    /// Message ID.
    pub message_id: u32,
}

impl Header {
    /// The header's length on the wire.
    pub const LEN: usize = 28;

    /// A version 2.0 header.
    pub fn new(
        initiator_spi: u64,
        responder_spi: u64,
        exchange_type: ExchangeType,
        flags: Flags,
        message_id: u32,
    ) -> Self {
        Header {
            initiator_spi,
            responder_spi,
            major_version: 2,
            minor_version: 0,
            exchange_type,
            flags,
            message_id,
        }
    }

    /// Reads the header; returns it with the Next Payload and Length fields. Checks nothing but
    /// that 28 octets are there: version and length are the message decoder's business.
    pub fn read(r: &mut Reader<'_>) -> Result<(Header, PayloadType, u32), DecodeError> {
        let initiator_spi = r.u64("IKE header Initiator's SPI")?;
        let responder_spi = r.u64("IKE header Responder's SPI")?;
        let next_payload = PayloadType::from(r.u8("IKE header Next Payload")?);
        let version = r.u8("IKE header version")?;
        let exchange_type = ExchangeType::from(r.u8("IKE header Exchange Type")?);
        let flags = Flags::from_bits(r.u8("IKE header Flags")?);
        let message_id = r.u32("IKE header Message ID")?;
        let length = r.u32("IKE header Length")?;
        let header = Header {
            initiator_spi,
            responder_spi,
            major_version: version >> 4,
            minor_version: version & 0x0f,
            exchange_type,
            flags,
            message_id,
        };
        Ok((header, next_payload, length))
    }

    /// Reads only the header of a datagram, without checking version or length: enough to
    /// dispatch on SPIs, or to answer INVALID_MAJOR_VERSION with the right SPIs (§2.5).
    pub fn peek(datagram: &[u8]) -> Result<Header, DecodeError> {
        Header::read(&mut Reader::new(datagram)).map(|(h, _, _)| h)
    }

    /// Writes the header with the given Next Payload and Length fields.
    pub fn write(&self, next_payload: PayloadType, length: u32, out: &mut Vec<u8>) {
        put_u64(out, self.initiator_spi);
        put_u64(out, self.responder_spi);
        put_u8(out, next_payload.value());
        put_u8(out, (self.major_version << 4) | (self.minor_version & 0x0f));
        put_u8(out, self.exchange_type.value());
        put_u8(out, self.flags.bits());
        put_u32(out, self.message_id);
        put_u32(out, length);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() -> Result<(), DecodeError> {
        let h = Header::new(
            0x0102_0304_0506_0708,
            0,
            ExchangeType::IkeSaInit,
            Flags {
                initiator: true,
                ..Flags::default()
            },
            0,
        );
        let mut out = Vec::new();
        h.write(PayloadType::Sa, 28, &mut out);
        assert_eq!(out.len(), Header::LEN);
        assert_eq!(&out[16..20], &[33, 0x20, 34, 0x08]);
        let (back, next, len) = Header::read(&mut Reader::new(&out))?;
        assert_eq!((back, next, len), (h, PayloadType::Sa, 28));
        Ok(())
    }

    #[test]
    fn reserved_flag_bits_are_ignored() {
        let f = Flags::from_bits(0xff);
        assert!(f.initiator && f.version && f.response);
        assert_eq!(f.bits(), 0x38);
    }
}

//! The Delete payload (D, RFC 7296 §3.11).
//!
//! ```text
//! body = Protocol ID(1) SPI Size(1) Num of SPIs(2) | SPI{Num of SPIs}
//! ```

use super::codec::{put_u16, put_u8};
use super::{Codec, DecodeError, ProtocolId, Reader};

/// The body of a Delete payload.
///
/// The SPIs are kept concatenated rather than one vector each, so that a hostile payload of
/// 65,535 one-octet SPIs costs one allocation, not 65,535.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delete {
    /// The protocol of the SAs to delete: IKE (then there are no SPIs: the IKE SA is the one
    /// the message travels in), AH or ESP.
    pub protocol: ProtocolId,
    /// SPI Size: 0 for IKE, 4 for AH and ESP.
    pub spi_size: u8,
    /// The SPIs, concatenated (`spi_size` octets each); see [`Delete::spis`].
    pub spis: Vec<u8>,
}

impl Delete {
    /// A Delete for the IKE SA itself.
    pub fn ike() -> Self {
        Delete {
            protocol: ProtocolId::Ike,
            spi_size: 0,
            spis: Vec::new(),
        }
    }

    /// A Delete for Child SAs of `protocol` (AH or ESP) with these 4-octet SPIs.
    pub fn child(protocol: ProtocolId, spis: &[u32]) -> Self {
        Delete {
            protocol,
            spi_size: 4,
            spis: spis.iter().flat_map(|s| s.to_be_bytes()).collect(),
        }
    }

    /// The SPIs, one slice each.
    pub fn spis(&self) -> impl Iterator<Item = &[u8]> {
        // chunks_exact panics on a zero size; with size 0 there are no SPIs.
        self.spis
            .chunks_exact(usize::from(self.spi_size.max(1)))
            .take(if self.spi_size == 0 { 0 } else { usize::MAX })
    }

    /// The SPIs as 32-bit values, when they are 4 octets long (AH, ESP).
    pub fn spis_u32(&self) -> impl Iterator<Item = u32> + '_ {
        self.spis()
            .filter_map(|s| <[u8; 4]>::try_from(s).ok())
            .map(u32::from_be_bytes)
    }

    /// The Num of SPIs field.
    fn count(&self) -> usize {
        self.spis
            .len()
            .checked_div(usize::from(self.spi_size))
            .unwrap_or(0)
    }
}

impl Codec for Delete {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u8(out, self.protocol.value());
        put_u8(out, self.spi_size);
        put_u16(out, u16::try_from(self.count()).unwrap_or(u16::MAX));
        out.extend_from_slice(&self.spis);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let protocol = ProtocolId::from(r.u8("Delete protocol ID")?);
        let spi_size = r.u8("Delete SPI size")?;
        let declared = usize::from(r.u16("Delete Num of SPIs")?);
        let found = r
            .remaining()
            .checked_div(usize::from(spi_size))
            .unwrap_or(0);
        // Both the count and the SPI bytes must agree exactly: with SPI Size 0 nothing may be
        // counted, and no partial SPI may be left over.
        if declared != found || r.remaining() != found.saturating_mul(usize::from(spi_size)) {
            return Err(DecodeError::CountMismatch {
                what: "Delete Num of SPIs",
                declared,
                found,
            });
        }
        Ok(Delete {
            protocol,
            spi_size,
            spis: r.rest().to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_delete_round_trips() -> Result<(), DecodeError> {
        let d = Delete::child(ProtocolId::Esp, &[0xdead_beef, 1]);
        let bytes = d.to_bytes();
        assert_eq!(bytes, [3, 4, 0, 2, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1]);
        let back = Delete::read(&mut Reader::new(&bytes))?;
        assert_eq!(back.spis_u32().collect::<Vec<_>>(), [0xdead_beef, 1]);
        assert_eq!(back, d);
        assert_eq!(Delete::ike().to_bytes(), [1, 0, 0, 0]);
        assert_eq!(Delete::ike().spis().count(), 0);
        Ok(())
    }

    #[test]
    fn inconsistent_counts_are_refused() {
        // Size 0 but 65535 SPIs claimed: refused rather than allocating.
        assert!(Delete::read(&mut Reader::new(&[1, 0, 0xff, 0xff])).is_err());
        // Two SPIs claimed, one and a half present.
        assert!(Delete::read(&mut Reader::new(&[3, 4, 0, 2, 1, 2, 3, 4, 5, 6])).is_err());
        // One claimed, two present.
        assert!(Delete::read(&mut Reader::new(&[3, 4, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8])).is_err());
    }
}

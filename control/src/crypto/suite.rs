//! [`IkeSuite`]: the ENCR / INTEG / PRF triple of an IKE SA, checked for consistency.

use super::{CryptoError, Encr, Integ, Prf};
use crate::wire::{EncrId, IntegId, PrfId};

/// The negotiated transforms of an IKE SA (the KE method is handled by [`super::KeyExchange`]).
/// An AEAD has no integrity transform; a plain cipher must have one (RFC 7296 §3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IkeSuite {
    encr: Encr,
    integ: Option<Integ>,
    prf: Prf,
}

impl IkeSuite {
    /// Checks the combination.
    pub fn new(encr: Encr, integ: Option<Integ>, prf: Prf) -> Result<IkeSuite, CryptoError> {
        match (encr.is_aead(), integ) {
            (true, Some(_)) => Err(CryptoError::InvalidSuite {
                reason: "an AEAD cipher with an integrity transform",
            }),
            (false, None) => Err(CryptoError::InvalidSuite {
                reason: "a non-AEAD cipher without an integrity transform",
            }),
            _ => Ok(IkeSuite { encr, integ, prf }),
        }
    }

    /// Maps the negotiated Transform IDs (`integ` is `None` when no INTEG transform was
    /// negotiated; `Some(IntegId::None)` means the same).
    pub fn from_ids(
        encr: EncrId,
        key_bits: Option<u16>,
        integ: Option<IntegId>,
        prf: PrfId,
    ) -> Result<IkeSuite, CryptoError> {
        let encr = Encr::from_transform(encr, key_bits)?;
        let integ = match integ {
            Some(id) => Integ::from_id(id)?,
            None => None,
        };
        let prf = Prf::from_id(prf)?;
        IkeSuite::new(encr, integ, prf)
    }

    /// The encryption algorithm.
    pub fn encr(&self) -> Encr {
        self.encr
    }

    /// The integrity algorithm (`None` for an AEAD).
    pub fn integ(&self) -> Option<Integ> {
        self.integ
    }

    /// The PRF.
    pub fn prf(&self) -> Prf {
        self.prf
    }

    /// Length of SK_ai / SK_ar (0 for an AEAD).
    pub fn integ_key_len(&self) -> usize {
        self.integ.map_or(0, Integ::key_len)
    }

    /// Length of SK_ei / SK_er (key and, for an AEAD, salt).
    pub fn encr_key_len(&self) -> usize {
        self.encr.keymat_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combinations() {
        assert!(IkeSuite::new(Encr::AesGcm16_128, None, Prf::HmacSha2_256).is_ok());
        assert!(IkeSuite::new(
            Encr::AesCbc128,
            Some(Integ::HmacSha2_256_128),
            Prf::HmacSha2_256
        )
        .is_ok());
        assert!(IkeSuite::new(
            Encr::AesGcm16_128,
            Some(Integ::HmacSha2_256_128),
            Prf::HmacSha2_256
        )
        .is_err());
        assert!(IkeSuite::new(Encr::AesCbc256, None, Prf::HmacSha2_256).is_err());
        let s = IkeSuite::from_ids(
            EncrId::Chacha20Poly1305,
            None,
            Some(IntegId::None),
            PrfId::HmacSha2_512,
        )
        .unwrap();
        assert_eq!(s.integ_key_len(), 0);
        assert_eq!(s.encr_key_len(), 36);
        assert!(matches!(
            IkeSuite::from_ids(
                EncrId::AesCbc,
                Some(128),
                Some(IntegId::HmacMd5_96),
                PrfId::HmacSha2_256
            ),
            Err(CryptoError::Unsupported(_))
        ));
    }
}

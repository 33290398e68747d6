//! Integrity transforms (RFC 7296 §3.3.2 Transform Type 3): HMAC-SHA2 truncated to half its
//! output (RFC 4868 §2.1.1), and HMAC-SHA1-96 (RFC 2404) for old peers.

use aws_lc_rs::{constant_time, hmac};

use super::{CryptoError, Unsupported};
use crate::wire::{IntegId, TransformType};

/// A negotiated integrity algorithm for the SK payload of a non-AEAD suite.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Integ {
    /// AUTH_HMAC_SHA1_96 (2): 20-octet key, 12-octet ICV. For old peers only.
    HmacSha1_96,
    /// AUTH_HMAC_SHA2_256_128 (12): 32-octet key, 16-octet ICV.
    HmacSha2_256_128,
    /// AUTH_HMAC_SHA2_384_192 (13): 48-octet key, 24-octet ICV.
    HmacSha2_384_192,
    /// AUTH_HMAC_SHA2_512_256 (14): 64-octet key, 32-octet ICV.
    HmacSha2_512_256,
}

impl Integ {
    /// Every implemented integrity algorithm.
    pub const ALL: &'static [Integ] = &[
        Integ::HmacSha1_96,
        Integ::HmacSha2_256_128,
        Integ::HmacSha2_384_192,
        Integ::HmacSha2_512_256,
    ];

    /// Maps a negotiated INTEG transform. `NONE` is not an algorithm: it is `Ok(None)`, which
    /// an AEAD suite needs (RFC 7296 §3.3).
    pub fn from_id(id: IntegId) -> Result<Option<Integ>, Unsupported> {
        match id {
            IntegId::None => Ok(None),
            IntegId::HmacSha1_96 => Ok(Some(Integ::HmacSha1_96)),
            IntegId::HmacSha2_256_128 => Ok(Some(Integ::HmacSha2_256_128)),
            IntegId::HmacSha2_384_192 => Ok(Some(Integ::HmacSha2_384_192)),
            IntegId::HmacSha2_512_256 => Ok(Some(Integ::HmacSha2_512_256)),
            other => Err(Unsupported {
                transform_type: TransformType::Integ,
                id: other.value(),
                key_bits: None,
            }),
        }
    }

    /// The Transform ID to send.
    pub fn id(self) -> IntegId {
        match self {
            Integ::HmacSha1_96 => IntegId::HmacSha1_96,
            Integ::HmacSha2_256_128 => IntegId::HmacSha2_256_128,
            Integ::HmacSha2_384_192 => IntegId::HmacSha2_384_192,
            Integ::HmacSha2_512_256 => IntegId::HmacSha2_512_256,
        }
    }

    fn algorithm(self) -> hmac::Algorithm {
        match self {
            Integ::HmacSha1_96 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Integ::HmacSha2_256_128 => hmac::HMAC_SHA256,
            Integ::HmacSha2_384_192 => hmac::HMAC_SHA384,
            Integ::HmacSha2_512_256 => hmac::HMAC_SHA512,
        }
    }

    /// Key length in octets (SK_ai, SK_ar, and the ESP integrity keys): the hash's output
    /// length (RFC 4868 §2.1.1, RFC 2404 §3).
    pub fn key_len(self) -> usize {
        self.algorithm().digest_algorithm().output_len
    }

    /// ICV length in octets: half the hash output for SHA-2, 96 bits for SHA-1.
    pub fn icv_len(self) -> usize {
        match self {
            Integ::HmacSha1_96 => 12,
            Integ::HmacSha2_256_128 => 16,
            Integ::HmacSha2_384_192 => 24,
            Integ::HmacSha2_512_256 => 32,
        }
    }

    fn key(self, key: &[u8]) -> Result<hmac::Key, CryptoError> {
        if key.len() != self.key_len() {
            return Err(CryptoError::KeyLength {
                what: "integrity key",
                expected: self.key_len(),
                actual: key.len(),
            });
        }
        Ok(hmac::Key::new(self.algorithm(), key))
    }

    /// The ICV of `data[0] | data[1] | …`: the leftmost [`Integ::icv_len`] octets of the HMAC.
    pub fn icv(self, key: &[u8], data: &[&[u8]]) -> Result<Vec<u8>, CryptoError> {
        let key = self.key(key)?;
        Ok(self.icv_with(&key, data))
    }

    /// Checks `icv` against `data` in constant time.
    pub fn verify(self, key: &[u8], data: &[&[u8]], icv: &[u8]) -> Result<(), CryptoError> {
        let key = self.key(key)?;
        self.verify_with(&key, data, icv)
    }

    pub(crate) fn prepare(self, key: &[u8]) -> Result<hmac::Key, CryptoError> {
        self.key(key)
    }

    pub(crate) fn icv_with(self, key: &hmac::Key, data: &[&[u8]]) -> Vec<u8> {
        let mut ctx = hmac::Context::with_key(key);
        for part in data {
            ctx.update(part);
        }
        let tag = ctx.sign();
        let full = tag.as_ref();
        full.get(..self.icv_len()).unwrap_or(full).to_vec()
    }

    pub(crate) fn verify_with(
        self,
        key: &hmac::Key,
        data: &[&[u8]],
        icv: &[u8],
    ) -> Result<(), CryptoError> {
        let expected = self.icv_with(key, data);
        constant_time::verify_slices_are_equal(&expected, icv)
            .map_err(|_| CryptoError::IntegrityCheckFailed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for &i in Integ::ALL {
            assert_eq!(Integ::from_id(i.id()), Ok(Some(i)));
            assert!(i.icv_len() * 2 <= i.key_len() + 4);
        }
        assert_eq!(Integ::from_id(IntegId::None), Ok(None));
        assert!(Integ::from_id(IntegId::AesXcbc96).is_err());
    }

    #[test]
    fn wrong_key_length_is_local() {
        let e = Integ::HmacSha2_256_128.icv(&[0; 31], &[b"x"]).unwrap_err();
        assert!(!e.is_peer_fault());
    }
}

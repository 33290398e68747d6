//! Pseudorandom functions (RFC 7296 §2.13, §3.3.2 Transform Type 2; RFC 4868 §2.1.2) and
//! `prf+`.

use aws_lc_rs::hmac;

use super::{CryptoError, SecretBytes, Unsupported};
use crate::wire::{PrfId, TransformType};

/// `prf+` stops at 255 blocks: its counter is a single octet (RFC 7296 §2.13).
pub const PRF_PLUS_MAX_BLOCKS: usize = 255;

/// A negotiated PRF. Only the HMAC-based ones are implemented: their key may be of any length,
/// and their preferred key length is their output length (RFC 4868 §2.1.2, RFC 2104).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Prf {
    /// PRF_HMAC_SHA1 (2): for old peers only.
    HmacSha1,
    /// PRF_HMAC_SHA2_256 (5).
    HmacSha2_256,
    /// PRF_HMAC_SHA2_384 (6).
    HmacSha2_384,
    /// PRF_HMAC_SHA2_512 (7).
    HmacSha2_512,
}

impl Prf {
    /// Every implemented PRF, strongest last.
    pub const ALL: &'static [Prf] = &[
        Prf::HmacSha1,
        Prf::HmacSha2_256,
        Prf::HmacSha2_384,
        Prf::HmacSha2_512,
    ];

    /// Maps a negotiated PRF transform.
    pub fn from_id(id: PrfId) -> Result<Prf, Unsupported> {
        match id {
            PrfId::HmacSha1 => Ok(Prf::HmacSha1),
            PrfId::HmacSha2_256 => Ok(Prf::HmacSha2_256),
            PrfId::HmacSha2_384 => Ok(Prf::HmacSha2_384),
            PrfId::HmacSha2_512 => Ok(Prf::HmacSha2_512),
            other => Err(Unsupported {
                transform_type: TransformType::Prf,
                id: other.value(),
                key_bits: None,
            }),
        }
    }

    /// The Transform ID to send.
    pub fn id(self) -> PrfId {
        match self {
            Prf::HmacSha1 => PrfId::HmacSha1,
            Prf::HmacSha2_256 => PrfId::HmacSha2_256,
            Prf::HmacSha2_384 => PrfId::HmacSha2_384,
            Prf::HmacSha2_512 => PrfId::HmacSha2_512,
        }
    }

    /// Output length in octets.
    pub fn output_len(self) -> usize {
        self.algorithm().digest_algorithm().output_len
    }

    /// The preferred key length: the length of SK_d, SK_pi and SK_pr (RFC 7296 §2.14).
    pub fn key_len(self) -> usize {
        self.output_len()
    }

    /// The most `prf+` can produce with this PRF.
    pub fn prf_plus_max_len(self) -> usize {
        self.output_len().saturating_mul(PRF_PLUS_MAX_BLOCKS)
    }

    pub(crate) fn algorithm(self) -> hmac::Algorithm {
        match self {
            Prf::HmacSha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Prf::HmacSha2_256 => hmac::HMAC_SHA256,
            Prf::HmacSha2_384 => hmac::HMAC_SHA384,
            Prf::HmacSha2_512 => hmac::HMAC_SHA512,
        }
    }

    /// `prf(key, data[0] | data[1] | …)`: the parts are fed in order, never copied together.
    pub fn prf(self, key: &[u8], data: &[&[u8]]) -> SecretBytes {
        let key = hmac::Key::new(self.algorithm(), key);
        let mut ctx = hmac::Context::with_key(&key);
        for part in data {
            ctx.update(part);
        }
        SecretBytes::from_slice(ctx.sign().as_ref())
    }

    /// `prf+(key, seed)` truncated to `len` octets (RFC 7296 §2.13):
    /// `T1 = prf(K, S | 0x01)`, `Tn = prf(K, Tn-1 | S | n)`, output `T1 | T2 | …`.
    /// `seed` is the concatenation of its parts. More than 255 blocks is
    /// [`CryptoError::PrfPlusTooLong`].
    pub fn prf_plus(
        self,
        key: &[u8],
        seed: &[&[u8]],
        len: usize,
    ) -> Result<SecretBytes, CryptoError> {
        let block = self.output_len();
        let max = self.prf_plus_max_len();
        if len > max {
            return Err(CryptoError::PrfPlusTooLong {
                requested: len,
                max,
            });
        }
        let key = hmac::Key::new(self.algorithm(), key);
        // Reserve whole blocks up front so the buffer never reallocates (a reallocation would
        // leave an unwiped copy of the key stream behind).
        let mut out = SecretBytes::new(Vec::with_capacity(len.saturating_add(block)));
        let mut previous: Option<hmac::Tag> = None;
        let mut counter: u8 = 1;
        while out.len() < len {
            let mut ctx = hmac::Context::with_key(&key);
            if let Some(t) = &previous {
                ctx.update(t.as_ref());
            }
            for part in seed {
                ctx.update(part);
            }
            ctx.update(&[counter]);
            let tag = ctx.sign();
            out.extend_within_capacity(tag.as_ref());
            previous = Some(tag);
            // len <= 255 * block, so the loop ends before the counter would wrap.
            counter = counter.wrapping_add(1);
        }
        out.truncate(len);
        Ok(out)
    }
}

impl SecretBytes {
    /// Appends without reallocating when capacity allows (callers reserve enough up front).
    pub(crate) fn extend_within_capacity(&mut self, bytes: &[u8]) {
        self.vec_mut().extend_from_slice(bytes);
    }

    /// Shortens to `len` octets; the cut-off tail is wiped.
    pub(crate) fn truncate(&mut self, len: usize) {
        let v = self.vec_mut();
        if let Some(tail) = v.get_mut(len..) {
            zeroize::Zeroize::zeroize(tail);
        }
        v.truncate(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for &p in Prf::ALL {
            assert_eq!(Prf::from_id(p.id()), Ok(p));
        }
        assert!(Prf::from_id(PrfId::Aes128Xcbc).is_err());
        assert!(Prf::from_id(PrfId::HmacMd5).is_err());
    }

    #[test]
    fn prf_plus_limit() {
        for &p in Prf::ALL {
            let max = p.prf_plus_max_len();
            assert_eq!(p.prf_plus(b"k", &[b"s"], max).unwrap().len(), max);
            assert_eq!(
                p.prf_plus(b"k", &[b"s"], max + 1),
                Err(CryptoError::PrfPlusTooLong {
                    requested: max + 1,
                    max
                })
            );
            assert!(p.prf_plus(b"k", &[b"s"], 0).unwrap().is_empty());
        }
    }

    #[test]
    fn prf_plus_is_prefix_consistent_and_matches_definition() {
        let p = Prf::HmacSha2_256;
        let long = p.prf_plus(b"key", &[b"se", b"ed"], 100).unwrap();
        let short = p.prf_plus(b"key", &[b"seed"], 33).unwrap();
        assert_eq!(&long.expose()[..33], short.expose());
        let t1 = p.prf(b"key", &[b"seed", &[1]]);
        let t2 = p.prf(b"key", &[t1.expose(), b"seed", &[2]]);
        assert_eq!(&long.expose()[..32], t1.expose());
        assert_eq!(&long.expose()[32..64], t2.expose());
    }
}

//! Encryption transforms (RFC 7296 §3.3.2 Transform Type 1) for the SK payload, and their key
//! sizes for the key schedule (which also serves the ESP Child SAs).

use super::Unsupported;
use crate::wire::{EncrId, TransformType};

/// A negotiated encryption algorithm with its key length.
///
/// For the AEADs the keying material taken from `prf+` is the key followed by a 4-octet salt
/// (RFC 5282 §7.1 for AES-GCM in IKEv2, RFC 4106 §8.1 for ESP, RFC 7634 §3/§4 for
/// ChaCha20-Poly1305): [`Encr::keymat_len`] includes it.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encr {
    /// ENCR_AES_CBC (12) with a 128-bit key (RFC 3602); needs an integrity transform.
    AesCbc128,
    /// ENCR_AES_CBC (12) with a 256-bit key.
    AesCbc256,
    /// ENCR_AES_GCM_16 (20) with a 128-bit key: 16-octet ICV (RFC 5282).
    AesGcm16_128,
    /// ENCR_AES_GCM_16 (20) with a 256-bit key.
    AesGcm16_256,
    /// ENCR_CHACHA20_POLY1305 (28): 256-bit key, no Key Length attribute (RFC 7634 §2).
    Chacha20Poly1305,
}

/// The salt that completes an AEAD nonce: `nonce = salt | IV` (RFC 5282 §4, RFC 7634 §2).
pub(crate) const SALT_LEN: usize = 4;
/// The AEAD tag length of every AEAD here.
pub(crate) const AEAD_TAG_LEN: usize = 16;
/// The explicit IV of the AEADs (RFC 5282 §3.1, RFC 7634 §2).
pub(crate) const AEAD_IV_LEN: usize = 8;
/// AES block size (and CBC IV length).
pub(crate) const AES_BLOCK: usize = 16;

impl Encr {
    /// Every implemented encryption algorithm.
    pub const ALL: &'static [Encr] = &[
        Encr::AesCbc128,
        Encr::AesCbc256,
        Encr::AesGcm16_128,
        Encr::AesGcm16_256,
        Encr::Chacha20Poly1305,
    ];

    /// Maps a negotiated ENCR transform and its Key Length attribute (in bits). AES needs the
    /// attribute (RFC 7296 §3.3.5); ChaCha20-Poly1305 must not have one (RFC 7634 §2).
    pub fn from_transform(id: EncrId, key_bits: Option<u16>) -> Result<Encr, Unsupported> {
        let found = match (id, key_bits) {
            (EncrId::AesCbc, Some(128)) => Some(Encr::AesCbc128),
            (EncrId::AesCbc, Some(256)) => Some(Encr::AesCbc256),
            (EncrId::AesGcm16, Some(128)) => Some(Encr::AesGcm16_128),
            (EncrId::AesGcm16, Some(256)) => Some(Encr::AesGcm16_256),
            (EncrId::Chacha20Poly1305, None) => Some(Encr::Chacha20Poly1305),
            _ => None,
        };
        found.ok_or(Unsupported {
            transform_type: TransformType::Encr,
            id: id.value(),
            key_bits,
        })
    }

    /// The Transform ID to send.
    pub fn id(self) -> EncrId {
        match self {
            Encr::AesCbc128 | Encr::AesCbc256 => EncrId::AesCbc,
            Encr::AesGcm16_128 | Encr::AesGcm16_256 => EncrId::AesGcm16,
            Encr::Chacha20Poly1305 => EncrId::Chacha20Poly1305,
        }
    }

    /// The Key Length attribute to send with [`Encr::id`], in bits.
    pub fn key_bits(self) -> Option<u16> {
        match self {
            Encr::AesCbc128 | Encr::AesGcm16_128 => Some(128),
            Encr::AesCbc256 | Encr::AesGcm16_256 => Some(256),
            Encr::Chacha20Poly1305 => None,
        }
    }

    /// Whether this is an AEAD (then the suite has no integrity transform).
    pub fn is_aead(self) -> bool {
        !matches!(self, Encr::AesCbc128 | Encr::AesCbc256)
    }

    /// The cipher key alone, in octets.
    pub fn key_len(self) -> usize {
        match self {
            Encr::AesCbc128 | Encr::AesGcm16_128 => 16,
            Encr::AesCbc256 | Encr::AesGcm16_256 | Encr::Chacha20Poly1305 => 32,
        }
    }

    /// The salt taken from the keying material after the key (4 for the AEADs, else 0).
    pub fn salt_len(self) -> usize {
        if self.is_aead() {
            SALT_LEN
        } else {
            0
        }
    }

    /// Octets of keying material per direction: the length of SK_ei / SK_er, and of the ESP
    /// encryption keys (key | salt).
    pub fn keymat_len(self) -> usize {
        self.key_len().saturating_add(self.salt_len())
    }

    /// The IV sent in each SK payload.
    pub fn iv_len(self) -> usize {
        if self.is_aead() {
            AEAD_IV_LEN
        } else {
            AES_BLOCK
        }
    }

    /// The alignment the padding must reach: the AES block for CBC, none (1) for the AEADs,
    /// which are stream modes (RFC 5282 §3 and RFC 7634 §3 need no padding).
    pub fn block_len(self) -> usize {
        if self.is_aead() {
            1
        } else {
            AES_BLOCK
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transforms_round_trip() {
        for &e in Encr::ALL {
            assert_eq!(Encr::from_transform(e.id(), e.key_bits()), Ok(e));
        }
        assert!(Encr::from_transform(EncrId::AesCbc, None).is_err());
        assert!(Encr::from_transform(EncrId::AesCbc, Some(192)).is_err());
        assert!(Encr::from_transform(EncrId::AesGcm8, Some(128)).is_err());
        assert!(Encr::from_transform(EncrId::Chacha20Poly1305, Some(256)).is_err());
        assert!(Encr::from_transform(EncrId::TripleDes, None).is_err());
        assert_eq!(Encr::AesGcm16_256.keymat_len(), 36);
        assert_eq!(Encr::Chacha20Poly1305.keymat_len(), 36);
        assert_eq!(Encr::AesCbc128.keymat_len(), 16);
    }
}

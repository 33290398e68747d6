//! The ESP AEADs: AES-GCM with a 16-byte ICV (RFC 4106) and ChaCha20-Poly1305 (RFC 7634).
//!
//! Both take keying material `key || salt` (4-byte salt) and a 12-byte nonce `salt || IV`, where
//! the 8-byte IV travels in the packet. The key schedule lives in aws-lc, which cleanses it when
//! the context is freed (`OPENSSL_free`); the salt is ours and is zeroized on drop.

use aws_lc_rs::aead::{
    Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM, CHACHA20_POLY1305,
};
use zeroize::Zeroize;

/// Length of the explicit IV carried in every ESP packet (RFC 4106 §3.1, RFC 7634 §2).
pub const IV_LEN: usize = 8;
/// Length of the integrity check value; every suite here uses the full 16-byte tag.
pub const ICV_LEN: usize = 16;
/// Length of the salt taken from the end of the keying material.
pub const SALT_LEN: usize = 4;

/// The ESP encryption transforms xipsec speaks, named as strongSwan names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CipherSuite {
    /// ENCR_AES_GCM_16 with a 128-bit key (RFC 4106).
    Aes128Gcm16,
    /// ENCR_AES_GCM_16 with a 256-bit key (RFC 4106).
    Aes256Gcm16,
    /// ENCR_CHACHA20_POLY1305 (RFC 7634).
    ChaCha20Poly1305,
}

impl CipherSuite {
    pub const ALL: [CipherSuite; 3] = [
        CipherSuite::Aes128Gcm16,
        CipherSuite::Aes256Gcm16,
        CipherSuite::ChaCha20Poly1305,
    ];

    /// The strongSwan proposal keyword (`aes128gcm16`, `aes256gcm16`, `chacha20poly1305`).
    pub const fn name(self) -> &'static str {
        match self {
            CipherSuite::Aes128Gcm16 => "aes128gcm16",
            CipherSuite::Aes256Gcm16 => "aes256gcm16",
            CipherSuite::ChaCha20Poly1305 => "chacha20poly1305",
        }
    }

    /// Parses a strongSwan proposal keyword; `aes128gcm128` and friends are strongSwan's aliases.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "aes128gcm16" | "aes128gcm128" => Some(CipherSuite::Aes128Gcm16),
            "aes256gcm16" | "aes256gcm128" => Some(CipherSuite::Aes256Gcm16),
            "chacha20poly1305" => Some(CipherSuite::ChaCha20Poly1305),
            _ => None,
        }
    }

    /// Length of the cipher key alone.
    pub const fn key_len(self) -> usize {
        match self {
            CipherSuite::Aes128Gcm16 => 16,
            CipherSuite::Aes256Gcm16 | CipherSuite::ChaCha20Poly1305 => 32,
        }
    }

    /// Length of the keying material an SA is created from: the key, then the salt.
    pub const fn keymat_len(self) -> usize {
        self.key_len() + SALT_LEN
    }

    fn algorithm(self) -> &'static aws_lc_rs::aead::Algorithm {
        match self {
            CipherSuite::Aes128Gcm16 => &AES_128_GCM,
            CipherSuite::Aes256Gcm16 => &AES_256_GCM,
            CipherSuite::ChaCha20Poly1305 => &CHACHA20_POLY1305,
        }
    }
}

/// Keying material of the wrong length for the suite: a configuration or key-derivation fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyLengthError {
    pub suite: CipherSuite,
    pub expected: usize,
    pub got: usize,
}

impl std::fmt::Display for KeyLengthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} needs {} bytes of keying material (key then 4-byte salt), got {}",
            self.suite.name(),
            self.expected,
            self.got
        )
    }
}

impl std::error::Error for KeyLengthError {}

/// The AEAD open failed: the packet was forged, corrupted, or keyed differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthenticationFailed;

/// The AEAD refused to seal (input beyond its length limit): a local fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealFailed;

/// One direction's ESP key: the expanded AEAD key and the salt.
pub struct EspKey {
    key: LessSafeKey,
    salt: [u8; SALT_LEN],
    suite: CipherSuite,
}

impl std::fmt::Debug for EspKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material, not even the salt.
        f.debug_struct("EspKey")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

impl Drop for EspKey {
    fn drop(&mut self) {
        self.salt.zeroize();
    }
}

impl EspKey {
    /// Expands `keymat` (`key || salt`, as RFC 4106 §8.1 and RFC 7634 §2 take it from the KEYMAT).
    pub fn new(suite: CipherSuite, keymat: &[u8]) -> Result<Self, KeyLengthError> {
        let length_error = KeyLengthError {
            suite,
            expected: suite.keymat_len(),
            got: keymat.len(),
        };
        if keymat.len() != suite.keymat_len() {
            return Err(length_error);
        }
        let (key, salt) = keymat.split_at(suite.key_len());
        let key = UnboundKey::new(suite.algorithm(), key).map_err(|_| length_error)?;
        let mut salt_bytes = [0u8; SALT_LEN];
        salt_bytes.copy_from_slice(salt);
        Ok(Self {
            key: LessSafeKey::new(key),
            salt: salt_bytes,
            suite,
        })
    }

    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    fn nonce(&self, iv: &[u8; IV_LEN]) -> Nonce {
        let mut nonce = [0u8; 12];
        nonce[..SALT_LEN].copy_from_slice(&self.salt);
        nonce[SALT_LEN..].copy_from_slice(iv);
        Nonce::assume_unique_for_key(nonce)
    }

    /// Encrypts `in_out` in place and writes the ICV into `icv`. The caller guarantees that
    /// `iv` is never used twice under this key (ESP derives it from the sequence number).
    pub fn seal(
        &self,
        iv: &[u8; IV_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        icv: &mut [u8],
    ) -> Result<(), SealFailed> {
        // aws-lc only refuses inputs beyond the AEAD's limit (2^36 bytes for GCM), far beyond
        // any IP packet, and an ICV buffer of the wrong size; both are typed, counted failures
        // rather than panics.
        self.key
            .seal_in_place_scatter(self.nonce(iv), Aad::from(aad), in_out, &[], icv)
            .map_err(|_| SealFailed)
    }

    /// Decrypts `in_out_and_icv` (ciphertext followed by the ICV) in place; on success the first
    /// `len - ICV_LEN` bytes are the plaintext.
    pub fn open(
        &self,
        iv: &[u8; IV_LEN],
        aad: &[u8],
        in_out_and_icv: &mut [u8],
    ) -> Result<(), AuthenticationFailed> {
        self.key
            .open_in_place(self.nonce(iv), Aad::from(aad), in_out_and_icv)
            .map(|_| ())
            .map_err(|_| AuthenticationFailed)
    }
}

//! The Encrypted and Authenticated payload (SK, RFC 7296 §3.14) and its fragments (SKF,
//! RFC 7383 §2.5): sealing an inner payload chain into IV | ciphertext | ICV and back.
//!
//! ```text
//! plaintext  = inner payloads | Padding | Pad Length(1)
//! AEAD       : IV(8) | AEAD(key, nonce = salt | IV, aad, plaintext) | tag(16)
//!              aad = the datagram up to the IV: IKE header .. SK header (RFC 5282 §5.1,
//!              RFC 7634 §3); for SKF also Fragment Number and Total Fragments (RFC 7383)
//! AES-CBC    : IV(16) | CBC(key, IV, plaintext) | ICV,
//!              ICV = HMAC(SK_a, datagram up to the ICV) truncated (RFC 7296 §3.14, RFC 4868)
//! ```
//! The AEAD IV is a per-key counter, so it never repeats; the CBC IV is random (§3.14: it
//! must be unpredictable). Padding: none for the AEADs, minimal zeros to the AES block for CBC;
//! on receipt any Pad Length that fits is accepted and the padding's contents are ignored.
//! Integrity is always checked before anything is decrypted or the padding looked at.

use core::fmt;

use aws_lc_rs::{aead, cipher, hmac};
use zeroize::Zeroizing;

use super::encr::{AEAD_TAG_LEN, AES_BLOCK, SALT_LEN};
use super::{CryptoError, Encr, IkeSuite, Integ, Rng, SecretBytes};
use crate::wire::{locate_encrypted, PayloadType, MAX_MESSAGE_LEN};

/// Length of the IKE header (RFC 7296 §3.1); its Length field is at offset 24.
const IKE_HEADER_LEN: usize = 28;
const IKE_LENGTH_OFFSET: usize = 24;

enum Key {
    Aead {
        key: aead::LessSafeKey,
        salt: Zeroizing<[u8; SALT_LEN]>,
    },
    Cbc(Box<CbcKey>),
}

/// AES-CBC with its HMAC (boxed: far larger than the AEAD key).
struct CbcKey {
    enc: cipher::EncryptingKey,
    dec: cipher::DecryptingKey,
    integ: Integ,
    mac: hmac::Key,
}

/// Seals and opens the SK/SKF payloads of one direction of an IKE SA (one SK_e/SK_a pair).
/// Get one from [`super::IkeSaKeys::sk_cipher`] or build it with [`SkCipher::new`].
pub struct SkCipher {
    encr: Encr,
    key: Key,
    /// The next AEAD IV; `None` once all 2^64 have been used.
    next_iv: Option<u64>,
}

impl fmt::Debug for SkCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let integ = match &self.key {
            Key::Cbc(k) => Some(k.integ),
            Key::Aead { .. } => None,
        };
        f.debug_struct("SkCipher")
            .field("encr", &self.encr)
            .field("integ", &integ)
            .field("next_iv", &self.next_iv)
            .finish_non_exhaustive()
    }
}

/// An opened SK or SKF payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    /// The first inner payload's type (the SK/SKF header's Next Payload): give it and
    /// [`Opened::plaintext`] to [`crate::wire::decode_chain`].
    pub first_inner: PayloadType,
    /// `(Fragment Number, Total Fragments)` for an SKF payload.
    pub fragment: Option<(u16, u16)>,
    /// The inner payload chain (padding and Pad Length removed).
    pub plaintext: Vec<u8>,
}

impl SkCipher {
    /// Builds the cipher for one direction from SK_e (key | salt for an AEAD) and SK_a (empty
    /// for an AEAD). Wrong key lengths are [`CryptoError::KeyLength`].
    pub fn new(
        suite: &IkeSuite,
        encr_key: &SecretBytes,
        integ_key: &SecretBytes,
    ) -> Result<SkCipher, CryptoError> {
        let encr = suite.encr();
        let expect = |what, key: &SecretBytes, expected: usize| {
            if key.len() == expected {
                Ok(())
            } else {
                Err(CryptoError::KeyLength {
                    what,
                    expected,
                    actual: key.len(),
                })
            }
        };
        expect("encryption key", encr_key, encr.keymat_len())?;
        expect("integrity key", integ_key, suite.integ_key_len())?;
        let cipher_key = encr_key.expose().get(..encr.key_len());
        let aws_failed = CryptoError::Internal {
            what: "setting up a cipher key",
        };
        let key = match (encr, suite.integ()) {
            (Encr::AesCbc128 | Encr::AesCbc256, Some(integ)) => {
                let alg = if encr == Encr::AesCbc128 {
                    &cipher::AES_128
                } else {
                    &cipher::AES_256
                };
                let raw = cipher_key.ok_or(aws_failed.clone())?;
                let enc = cipher::UnboundCipherKey::new(alg, raw)
                    .and_then(cipher::EncryptingKey::cbc)
                    .map_err(|_| aws_failed.clone())?;
                let dec = cipher::UnboundCipherKey::new(alg, raw)
                    .and_then(cipher::DecryptingKey::cbc)
                    .map_err(|_| aws_failed.clone())?;
                let mac = integ.prepare(integ_key.expose())?;
                Key::Cbc(Box::new(CbcKey {
                    enc,
                    dec,
                    integ,
                    mac,
                }))
            }
            (Encr::AesGcm16_128 | Encr::AesGcm16_256 | Encr::Chacha20Poly1305, None) => {
                let alg = match encr {
                    Encr::AesGcm16_128 => &aead::AES_128_GCM,
                    Encr::AesGcm16_256 => &aead::AES_256_GCM,
                    _ => &aead::CHACHA20_POLY1305,
                };
                let raw = cipher_key.ok_or(aws_failed.clone())?;
                let key = aead::UnboundKey::new(alg, raw).map_err(|_| aws_failed.clone())?;
                let mut salt = Zeroizing::new([0u8; SALT_LEN]);
                let salt_src = encr_key
                    .expose()
                    .get(encr.key_len()..)
                    .ok_or(aws_failed.clone())?;
                salt.copy_from_slice(salt_src);
                Key::Aead {
                    key: aead::LessSafeKey::new(key),
                    salt,
                }
            }
            _ => {
                return Err(CryptoError::InvalidSuite {
                    reason: "cipher and integrity transform do not match",
                })
            }
        };
        Ok(SkCipher {
            encr,
            key,
            next_iv: Some(0),
        })
    }

    /// Sets the next AEAD IV counter (the IV is its 8-octet big-endian form). Only for
    /// known-answer tests and for resuming a counter: an IV used twice under one key destroys
    /// the AEAD's security. No effect on CBC, whose IVs are random.
    pub fn with_iv_counter(mut self, next: u64) -> SkCipher {
        self.next_iv = Some(next);
        self
    }

    /// The encryption algorithm.
    pub fn encr(&self) -> Encr {
        self.encr
    }

    fn icv_len(&self) -> usize {
        match &self.key {
            Key::Aead { .. } => AEAD_TAG_LEN,
            Key::Cbc(k) => k.integ.icv_len(),
        }
    }

    /// Padding octets for an inner chain of `len` octets: the least that aligns
    /// `len + padding + 1` to the block.
    fn pad_len(&self, len: usize) -> usize {
        let block = self.encr.block_len();
        let rem = len.saturating_add(1).checked_rem(block).unwrap_or(0);
        if rem == 0 {
            0
        } else {
            block.saturating_sub(rem)
        }
    }

    /// The length of IV | ciphertext | ICV that [`SkCipher::seal`] produces for an inner chain
    /// of `plaintext_len` octets: what the SK payload's and the IKE header's Length fields must
    /// account for.
    pub fn sealed_len(&self, plaintext_len: usize) -> usize {
        self.encr
            .iv_len()
            .saturating_add(plaintext_len)
            .saturating_add(self.pad_len(plaintext_len))
            .saturating_add(1)
            .saturating_add(self.icv_len())
    }

    /// Encrypts and authenticates `plaintext` (an encoded inner payload chain, see
    /// [`crate::wire::encode_chain`]) and returns IV | ciphertext | ICV.
    ///
    /// `aad` is the datagram as it will be sent, from the IKE header up to and including the SK
    /// generic header (and for SKF the Fragment Number and Total Fragments): its Length fields
    /// must already include [`SkCipher::sealed_len`]. [`SkCipher::seal_message`] does that.
    /// `rng` supplies the CBC IV; the AEADs use their counter and do not touch it.
    pub fn seal(
        &mut self,
        aad: &[u8],
        plaintext: &[u8],
        rng: &mut dyn Rng,
    ) -> Result<Vec<u8>, CryptoError> {
        let pad = self.pad_len(plaintext.len());
        let pad_octet = u8::try_from(pad).map_err(|_| CryptoError::Internal {
            what: "computing the padding",
        })?;
        let iv_len = self.encr.iv_len();
        let mut out = Vec::with_capacity(self.sealed_len(plaintext.len()));
        match &self.key {
            Key::Aead { key, salt } => {
                let counter = self.next_iv.ok_or(CryptoError::IvExhausted)?;
                self.next_iv = counter.checked_add(1);
                let iv = counter.to_be_bytes();
                let mut nonce = [0u8; 12];
                let (nonce_salt, nonce_iv) = nonce.split_at_mut(SALT_LEN);
                nonce_salt.copy_from_slice(salt.as_slice());
                nonce_iv.copy_from_slice(&iv);
                out.extend_from_slice(&iv);
                out.extend_from_slice(plaintext);
                out.resize(out.len().saturating_add(pad), 0);
                out.push(pad_octet);
                let body = out.get_mut(iv_len..).unwrap_or_default();
                let tag = key
                    .seal_in_place_separate_tag(
                        aead::Nonce::assume_unique_for_key(nonce),
                        aead::Aad::from(aad),
                        body,
                    )
                    .map_err(|_| CryptoError::Internal { what: "AEAD seal" })?;
                out.extend_from_slice(tag.as_ref());
            }
            Key::Cbc(k) => {
                let CbcKey {
                    enc, integ, mac, ..
                } = &**k;
                let mut iv = [0u8; AES_BLOCK];
                rng.fill(&mut iv)?;
                out.extend_from_slice(&iv);
                out.extend_from_slice(plaintext);
                out.resize(out.len().saturating_add(pad), 0);
                out.push(pad_octet);
                let body = out.get_mut(iv_len..).unwrap_or_default();
                enc.less_safe_encrypt(body, cipher::EncryptionContext::Iv128(iv.into()))
                    .map_err(|_| CryptoError::Internal {
                        what: "AES-CBC encrypt",
                    })?;
                let icv = integ.icv_with(mac, &[aad, &out]);
                out.extend_from_slice(&icv);
            }
        }
        Ok(out)
    }

    /// Seals `plaintext` into a message under construction. `message` holds the IKE header,
    /// any unencrypted payloads, and the SK generic header (4 octets) or SKF generic header
    /// plus Fragment Number and Total Fragments (8 octets) starting at `sk_offset`; the
    /// Length fields may hold anything. This sets the SK/SKF Payload Length and the IKE
    /// header's Length, then appends IV | ciphertext | ICV.
    pub fn seal_message(
        &mut self,
        message: &mut Vec<u8>,
        sk_offset: usize,
        plaintext: &[u8],
        rng: &mut dyn Rng,
    ) -> Result<(), CryptoError> {
        let layout = |reason| CryptoError::MessageLayout { reason };
        let header_len = message
            .len()
            .checked_sub(sk_offset)
            .ok_or(layout("sk_offset lies beyond the message"))?;
        if sk_offset < IKE_HEADER_LEN {
            return Err(layout("sk_offset lies inside the IKE header"));
        }
        if header_len != 4 && header_len != 8 {
            return Err(layout(
                "the message must end with the SK header (4 octets) or SKF header (8 octets)",
            ));
        }
        let sealed = self.sealed_len(plaintext.len());
        let payload_len = u16::try_from(header_len.saturating_add(sealed))
            .map_err(|_| layout("the SK payload would exceed 65535 octets"))?;
        let total = message.len().saturating_add(sealed);
        if total > MAX_MESSAGE_LEN {
            return Err(layout("the message would exceed 65535 octets"));
        }
        let total = u32::try_from(total).map_err(|_| layout("message too long"))?;
        let length_field = sk_offset.saturating_add(2)..sk_offset.saturating_add(4);
        message
            .get_mut(length_field)
            .ok_or(layout("SK header out of range"))?
            .copy_from_slice(&payload_len.to_be_bytes());
        message
            .get_mut(IKE_LENGTH_OFFSET..IKE_HEADER_LEN)
            .ok_or(layout("IKE header out of range"))?
            .copy_from_slice(&total.to_be_bytes());
        let body = self.seal(message, plaintext, rng)?;
        message.extend_from_slice(&body);
        Ok(())
    }

    /// Verifies and decrypts IV | ciphertext | ICV. `aad` is the datagram before the IV (see
    /// [`crate::wire::EncryptedLocation::aad_end`]). Returns the inner payload chain.
    pub fn open(&self, aad: &[u8], encrypted: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let iv_len = self.encr.iv_len();
        let icv_len = self.icv_len();
        // The smallest plaintext is the Pad Length octet (AEAD) or one block (CBC).
        let min = iv_len
            .saturating_add(self.encr.block_len())
            .saturating_add(icv_len);
        if encrypted.len() < min {
            return Err(CryptoError::EncryptedTooShort {
                len: encrypted.len(),
                min,
            });
        }
        let (iv, rest) =
            encrypted
                .split_at_checked(iv_len)
                .ok_or(CryptoError::EncryptedTooShort {
                    len: encrypted.len(),
                    min,
                })?;
        let plaintext = match &self.key {
            Key::Aead { key, salt } => {
                let mut nonce = [0u8; 12];
                let (nonce_salt, nonce_iv) = nonce.split_at_mut(SALT_LEN);
                nonce_salt.copy_from_slice(salt.as_slice());
                nonce_iv.copy_from_slice(iv);
                let mut buf = rest.to_vec();
                let len = key
                    .open_in_place(
                        aead::Nonce::assume_unique_for_key(nonce),
                        aead::Aad::from(aad),
                        &mut buf,
                    )
                    .map_err(|_| CryptoError::IntegrityCheckFailed)?
                    .len();
                buf.truncate(len);
                buf
            }
            Key::Cbc(k) => {
                let CbcKey {
                    dec, integ, mac, ..
                } = &**k;
                let ct_len = rest.len().saturating_sub(icv_len);
                if ct_len.checked_rem(AES_BLOCK) != Some(0) {
                    return Err(CryptoError::EncryptedNotAligned {
                        len: ct_len,
                        block: AES_BLOCK,
                    });
                }
                let signed_len = encrypted.len().saturating_sub(icv_len);
                let (signed, icv) = encrypted.split_at_checked(signed_len).ok_or(
                    CryptoError::EncryptedTooShort {
                        len: encrypted.len(),
                        min,
                    },
                )?;
                integ.verify_with(mac, &[aad, signed], icv)?;
                let iv: [u8; AES_BLOCK] = iv.try_into().map_err(|_| CryptoError::Internal {
                    what: "reading the CBC IV",
                })?;
                let mut buf = rest.get(..ct_len).unwrap_or_default().to_vec();
                let len = dec
                    .decrypt(&mut buf, cipher::DecryptionContext::Iv128(iv.into()))
                    .map_err(|_| CryptoError::Internal {
                        what: "AES-CBC decrypt",
                    })?
                    .len();
                buf.truncate(len);
                buf
            }
        };
        strip_padding(plaintext)
    }

    /// Finds the SK or SKF payload of a received datagram with
    /// [`crate::wire::locate_encrypted`], then verifies and decrypts it.
    pub fn open_message(&self, datagram: &[u8]) -> Result<Opened, CryptoError> {
        let loc = locate_encrypted(datagram)?.ok_or(CryptoError::NotEncrypted)?;
        let aad = datagram.get(..loc.aad_end).unwrap_or_default();
        let encrypted = datagram.get(loc.encrypted.clone()).unwrap_or_default();
        let plaintext = self.open(aad, encrypted)?;
        Ok(Opened {
            first_inner: loc.first_inner,
            fragment: loc.fragment,
            plaintext,
        })
    }
}

/// Removes Padding and Pad Length from an authenticated plaintext (RFC 7296 §3.14).
fn strip_padding(mut plaintext: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
    let Some(&pad_len) = plaintext.last() else {
        return Err(CryptoError::InvalidPadding {
            pad_len: 0,
            available: 0,
        });
    };
    let available = plaintext.len().saturating_sub(1);
    let inner = available
        .checked_sub(usize::from(pad_len))
        .ok_or(CryptoError::InvalidPadding { pad_len, available })?;
    plaintext.truncate(inner);
    Ok(plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_rules() {
        assert_eq!(strip_padding(vec![1, 2, 0]).unwrap(), vec![1, 2]);
        assert_eq!(strip_padding(vec![1, 9, 9, 2]).unwrap(), vec![1]);
        assert_eq!(strip_padding(vec![9, 9, 2]).unwrap(), Vec::<u8>::new());
        assert_eq!(
            strip_padding(vec![9, 9, 3]),
            Err(CryptoError::InvalidPadding {
                pad_len: 3,
                available: 2
            })
        );
        assert!(strip_padding(vec![]).is_err());
    }
}

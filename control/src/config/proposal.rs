//! IKE and ESP proposal strings in strongSwan's syntax: keywords joined by `-`, e.g.
//! `aes128gcm16-prfsha256-x25519`, `aes256-sha256-modp2048`, `aes256gcm16-esn`.

use core::fmt;

/// An encryption algorithm of an IKE proposal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encryption {
    /// `aes128`: ENCR_AES_CBC, 128-bit key.
    AesCbc128,
    /// `aes192`.
    AesCbc192,
    /// `aes256`.
    AesCbc256,
    /// `aes128gcm16`: ENCR_AES_GCM_16 (RFC 5282), 128-bit key.
    AesGcm16_128,
    /// `aes192gcm16`.
    AesGcm16_192,
    /// `aes256gcm16`.
    AesGcm16_256,
    /// `chacha20poly1305` (RFC 7634).
    ChaCha20Poly1305,
}

impl Encryption {
    /// Whether it is an AEAD (then the proposal has no integrity algorithm).
    pub fn is_aead(self) -> bool {
        !matches!(self, Self::AesCbc128 | Self::AesCbc192 | Self::AesCbc256)
    }

    fn from_keyword(k: &str) -> Option<Self> {
        Some(match k {
            "aes128" => Self::AesCbc128,
            "aes192" => Self::AesCbc192,
            "aes256" => Self::AesCbc256,
            "aes128gcm16" => Self::AesGcm16_128,
            "aes192gcm16" => Self::AesGcm16_192,
            "aes256gcm16" => Self::AesGcm16_256,
            "chacha20poly1305" => Self::ChaCha20Poly1305,
            _ => return None,
        })
    }
}

/// An integrity algorithm of an IKE proposal (HMAC-SHA2, RFC 4868).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Integrity {
    /// `sha256`: AUTH_HMAC_SHA2_256_128.
    Sha256_128,
    /// `sha384`: AUTH_HMAC_SHA2_384_192.
    Sha384_192,
    /// `sha512`: AUTH_HMAC_SHA2_512_256.
    Sha512_256,
}

/// A pseudo-random function (RFC 4868).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Prf {
    /// `prfsha256`.
    HmacSha256,
    /// `prfsha384`.
    HmacSha384,
    /// `prfsha512`.
    HmacSha512,
}

/// A Diffie-Hellman group (key exchange method).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DhGroup {
    /// `modp2048`: group 14.
    Modp2048,
    /// `modp3072`: group 15.
    Modp3072,
    /// `ecp256`: group 19.
    Ecp256,
    /// `ecp384`: group 20.
    Ecp384,
    /// `ecp521`: group 21.
    Ecp521,
    /// `x25519` or `curve25519`: group 31.
    Curve25519,
}

impl DhGroup {
    /// The IANA transform ID.
    pub fn number(self) -> u16 {
        match self {
            Self::Modp2048 => 14,
            Self::Modp3072 => 15,
            Self::Ecp256 => 19,
            Self::Ecp384 => 20,
            Self::Ecp521 => 21,
            Self::Curve25519 => 31,
        }
    }

    fn from_keyword(k: &str) -> Option<Self> {
        Some(match k {
            "modp2048" => Self::Modp2048,
            "modp3072" => Self::Modp3072,
            "ecp256" => Self::Ecp256,
            "ecp384" => Self::Ecp384,
            "ecp521" => Self::Ecp521,
            "x25519" | "curve25519" => Self::Curve25519,
            _ => return None,
        })
    }
}

/// An IKE proposal: every transform of each type, in the order written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IkeProposal {
    /// At least one; all AEAD or all not.
    pub encryption: Vec<Encryption>,
    /// Empty for AEAD proposals, otherwise at least one.
    pub integrity: Vec<Integrity>,
    /// At least one (derived from the integrity algorithms when not written, as strongSwan
    /// does).
    pub prf: Vec<Prf>,
    /// At least one.
    pub dh: Vec<DhGroup>,
}

fn push<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

impl IkeProposal {
    /// Parses `aes128gcm16-prfsha256-x25519` and the like.
    pub fn parse(s: &str) -> Result<IkeProposal, String> {
        let mut p = IkeProposal {
            encryption: vec![],
            integrity: vec![],
            prf: vec![],
            dh: vec![],
        };
        for k in s.split('-') {
            if k.is_empty() {
                return Err(format!("empty keyword in IKE proposal '{s}'"));
            }
            if let Some(e) = Encryption::from_keyword(k) {
                push(&mut p.encryption, e);
            } else if let Some(g) = DhGroup::from_keyword(k) {
                push(&mut p.dh, g);
            } else {
                match k {
                    "sha256" | "sha2_256" => push(&mut p.integrity, Integrity::Sha256_128),
                    "sha384" | "sha2_384" => push(&mut p.integrity, Integrity::Sha384_192),
                    "sha512" | "sha2_512" => push(&mut p.integrity, Integrity::Sha512_256),
                    "prfsha256" => push(&mut p.prf, Prf::HmacSha256),
                    "prfsha384" => push(&mut p.prf, Prf::HmacSha384),
                    "prfsha512" => push(&mut p.prf, Prf::HmacSha512),
                    "esn" | "noesn" => {
                        return Err(format!(
                            "'{k}' belongs in esp_proposals, not in an IKE proposal"
                        ))
                    }
                    _ => return Err(format!("unknown keyword '{k}' in IKE proposal '{s}'")),
                }
            }
        }
        if p.encryption.is_empty() {
            return Err(format!("IKE proposal '{s}' has no encryption algorithm"));
        }
        let aead = p.encryption[0].is_aead();
        if p.encryption.iter().any(|e| e.is_aead() != aead) {
            return Err(format!(
                "IKE proposal '{s}' mixes AEAD and non-AEAD encryption; write two proposals"
            ));
        }
        if aead && !p.integrity.is_empty() {
            return Err(format!(
                "IKE proposal '{s}': an AEAD needs no integrity algorithm (did you mean prf{}?)",
                integ_keyword(p.integrity[0])
            ));
        }
        if !aead && p.integrity.is_empty() {
            return Err(format!("IKE proposal '{s}' has no integrity algorithm"));
        }
        if p.prf.is_empty() {
            if aead {
                return Err(format!(
                    "IKE proposal '{s}' has no PRF (an AEAD proposal needs one, e.g. prfsha256)"
                ));
            }
            for i in p.integrity.clone() {
                push(
                    &mut p.prf,
                    match i {
                        Integrity::Sha256_128 => Prf::HmacSha256,
                        Integrity::Sha384_192 => Prf::HmacSha384,
                        Integrity::Sha512_256 => Prf::HmacSha512,
                    },
                );
            }
        }
        if p.dh.is_empty() {
            return Err(format!(
                "IKE proposal '{s}' has no key exchange (DH group), e.g. x25519"
            ));
        }
        Ok(p)
    }
}

fn integ_keyword(i: Integrity) -> &'static str {
    match i {
        Integrity::Sha256_128 => "sha256",
        Integrity::Sha384_192 => "sha384",
        Integrity::Sha512_256 => "sha512",
    }
}

/// The ESP AEADs the data plane implements (also `cipher` of a manual SA).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EspCipher {
    /// `aes128gcm16` (RFC 4106).
    Aes128Gcm16,
    /// `aes256gcm16`.
    Aes256Gcm16,
    /// `chacha20poly1305` (RFC 7634).
    ChaCha20Poly1305,
}

impl EspCipher {
    /// Parses a strongSwan name.
    pub fn from_keyword(k: &str) -> Option<Self> {
        Some(match k {
            "aes128gcm16" => Self::Aes128Gcm16,
            "aes256gcm16" => Self::Aes256Gcm16,
            "chacha20poly1305" => Self::ChaCha20Poly1305,
            _ => return None,
        })
    }

    /// Bytes of keying material: the key then the 4-byte salt.
    pub fn keymat_len(self) -> usize {
        match self {
            Self::Aes128Gcm16 => 20,
            Self::Aes256Gcm16 | Self::ChaCha20Poly1305 => 36,
        }
    }
}

impl fmt::Display for EspCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Aes128Gcm16 => "aes128gcm16",
            Self::Aes256Gcm16 => "aes256gcm16",
            Self::ChaCha20Poly1305 => "chacha20poly1305",
        })
    }
}

/// Extended sequence numbers transform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Esn {
    /// `noesn` (the default).
    NoEsn,
    /// `esn`.
    Esn,
}

/// An ESP proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EspProposal {
    /// At least one AEAD.
    pub encryption: Vec<EspCipher>,
    /// DH groups for PFS in CREATE_CHILD_SA; empty = no PFS.
    pub dh: Vec<DhGroup>,
    /// `[NoEsn]` when neither `esn` nor `noesn` is written.
    pub esn: Vec<Esn>,
}

impl EspProposal {
    /// Parses `aes128gcm16`, `aes256gcm16-esn`, `chacha20poly1305-x25519` and the like.
    pub fn parse(s: &str) -> Result<EspProposal, String> {
        let mut p = EspProposal {
            encryption: vec![],
            dh: vec![],
            esn: vec![],
        };
        for k in s.split('-') {
            if k.is_empty() {
                return Err(format!("empty keyword in ESP proposal '{s}'"));
            }
            if let Some(c) = EspCipher::from_keyword(k) {
                push(&mut p.encryption, c);
            } else if let Some(g) = DhGroup::from_keyword(k) {
                push(&mut p.dh, g);
            } else {
                match k {
                    "esn" => push(&mut p.esn, Esn::Esn),
                    "noesn" => push(&mut p.esn, Esn::NoEsn),
                    "aes128" | "aes192" | "aes256" | "aes192gcm16" | "sha256" | "sha384"
                    | "sha512" => {
                        return Err(format!(
                            "'{k}' is not supported for ESP (the data plane implements aes128gcm16, aes256gcm16 and chacha20poly1305)"
                        ))
                    }
                    _ => return Err(format!("unknown keyword '{k}' in ESP proposal '{s}'")),
                }
            }
        }
        if p.encryption.is_empty() {
            return Err(format!("ESP proposal '{s}' has no encryption algorithm"));
        }
        if p.esn.is_empty() {
            p.esn.push(Esn::NoEsn);
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ike() {
        let p = IkeProposal::parse("aes128gcm16-prfsha256-x25519").unwrap();
        assert_eq!(p.encryption, [Encryption::AesGcm16_128]);
        assert!(p.integrity.is_empty());
        assert_eq!(p.prf, [Prf::HmacSha256]);
        assert_eq!(p.dh, [DhGroup::Curve25519]);
        let p = IkeProposal::parse("aes256-sha256-modp2048").unwrap();
        assert_eq!(p.encryption, [Encryption::AesCbc256]);
        assert_eq!(p.integrity, [Integrity::Sha256_128]);
        assert_eq!(p.prf, [Prf::HmacSha256]);
        assert_eq!(p.dh, [DhGroup::Modp2048]);
        let p =
            IkeProposal::parse("aes256gcm16-prfsha384-ecp384-ecp521-curve25519-modp3072").unwrap();
        assert_eq!(
            p.dh.iter().map(|g| g.number()).collect::<Vec<_>>(),
            [20, 21, 31, 15]
        );
    }

    #[test]
    fn ike_errors() {
        let e = |s| IkeProposal::parse(s).unwrap_err();
        assert_eq!(
            e("aes128-sha1-modp2048"),
            "unknown keyword 'sha1' in IKE proposal 'aes128-sha1-modp2048'"
        );
        assert!(e("aes128gcm16-sha256-x25519").contains("needs no integrity"));
        assert!(e("aes128gcm16-x25519").contains("no PRF"));
        assert!(e("aes128-x25519").contains("no integrity"));
        assert!(e("aes128-sha256").contains("no key exchange"));
        assert!(e("prfsha256-x25519").contains("no encryption"));
        assert!(e("aes128-aes128gcm16-sha256-x25519").contains("mixes"));
        assert!(e("aes128--sha256").contains("empty keyword"));
    }

    #[test]
    fn esp() {
        let p = EspProposal::parse("aes256gcm16-esn").unwrap();
        assert_eq!(p.encryption, [EspCipher::Aes256Gcm16]);
        assert_eq!(p.esn, [Esn::Esn]);
        let p = EspProposal::parse("chacha20poly1305").unwrap();
        assert_eq!(p.esn, [Esn::NoEsn]);
        assert!(p.dh.is_empty());
        let p = EspProposal::parse("aes128gcm16-x25519-esn-noesn").unwrap();
        assert_eq!(p.dh, [DhGroup::Curve25519]);
        assert_eq!(p.esn, [Esn::Esn, Esn::NoEsn]);
        assert_eq!(
            EspProposal::parse("aes128gcm16-foo").unwrap_err(),
            "unknown keyword 'foo' in ESP proposal 'aes128gcm16-foo'"
        );
        assert!(EspProposal::parse("aes256-sha256")
            .unwrap_err()
            .contains("not supported for ESP"));
        assert!(EspProposal::parse("esn")
            .unwrap_err()
            .contains("no encryption"));
    }
}

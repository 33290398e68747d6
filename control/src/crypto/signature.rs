//! Public-key signatures for IKE authentication (RFC 7427, RFC 4754, RFC 8420) and for
//! certificate chains: ECDSA on P-256/P-384/P-521, RSA PKCS#1 v1.5 and RSASSA-PSS with
//! SHA-256/384/512, Ed25519. Every primitive is aws-lc-rs's.
//!
//! - [`PublicKey`]: a peer's key, from a DER SubjectPublicKeyInfo (a certificate's, an RFC 7670
//!   raw public key, or a configured one).
//! - [`SigningKey`]: our private key, from PEM or DER (PKCS#8, SEC1 `EC PRIVATE KEY`, PKCS#1
//!   `RSA PRIVATE KEY`). It holds aws-lc key objects, which wipe themselves on drop.
//! - [`SignatureScheme`]: what we sign with, and its RFC 7427 Appendix A AlgorithmIdentifier.
//!   Verification parses the AlgorithmIdentifier the peer sent ([`PublicKey::verify`]).
//!
//! SHA-1 signatures are refused everywhere (RFC 8247 §3.2: MUST NOT).

use core::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use zeroize::Zeroizing;

use super::der::{self, tag, Der};

/// OIDs, as the contents octets of an OBJECT IDENTIFIER.
mod oid {
    pub const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    pub const RSASSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
    pub const MGF1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08];
    pub const SHA256_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
    pub const SHA384_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c];
    pub const SHA512_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d];
    pub const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    pub const ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    pub const ECDSA_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
    pub const ECDSA_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];
    pub const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    pub const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
    pub const P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
    pub const ED25519: &[u8] = &[0x2b, 0x65, 0x70];
    pub const SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
    pub const SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
    pub const SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];
}

/// Why a signature or key was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureError {
    /// The signature does not verify with the key.
    BadSignature,
    /// The AlgorithmIdentifier is not DER, or names parameters we do not accept.
    MalformedAlgorithm,
    /// A signature algorithm we do not implement or refuse (SHA-1, DSA, PSS with odd
    /// parameters).
    UnsupportedAlgorithm,
    /// The algorithm does not fit the key (ECDSA with an RSA key, the wrong curve).
    WrongKeyType,
    /// The public key is not a well-formed key of a type we know.
    BadPublicKey,
    /// Signing failed inside aws-lc (a local failure).
    SigningFailed,
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SignatureError::BadSignature => "the signature does not verify",
            SignatureError::MalformedAlgorithm => "malformed signature AlgorithmIdentifier",
            SignatureError::UnsupportedAlgorithm => "unsupported signature algorithm",
            SignatureError::WrongKeyType => "the signature algorithm does not fit the key",
            SignatureError::BadPublicKey => "malformed or unsupported public key",
            SignatureError::SigningFailed => "signing failed",
        })
    }
}

impl std::error::Error for SignatureError {}

/// Why a private key did not load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// Neither PEM with a key label nor DER.
    NotAKey,
    /// Encrypted PEM or PKCS#8 (`ENCRYPTED PRIVATE KEY`): decrypt it first.
    Encrypted,
    /// A key type we do not sign with (DSA, a curve other than P-256/P-384/P-521, Ed448).
    UnsupportedType,
    /// aws-lc rejected the key (malformed, inconsistent, an RSA key under 2048 bits).
    Rejected,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyError::NotAKey => "not a PEM or DER private key",
            KeyError::Encrypted => "the private key is encrypted",
            KeyError::UnsupportedType => "unsupported private key type",
            KeyError::Rejected => "the private key is malformed or too weak",
        })
    }
}

impl std::error::Error for KeyError {}

/// IKEv2 Hash Algorithms (RFC 7427 §7; RFC 8420 for Identity), as sent in
/// SIGNATURE_HASH_ALGORITHMS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// SHA1 (1): announced by nobody sane; never used here.
    Sha1,
    /// SHA2-256 (2).
    Sha256,
    /// SHA2-384 (3).
    Sha384,
    /// SHA2-512 (4).
    Sha512,
    /// Identity (5): the "hash" of Ed25519 (RFC 8420).
    Identity,
}

impl HashAlgorithm {
    /// What we announce: every hash we can sign and verify with.
    pub const ANNOUNCED: [HashAlgorithm; 4] = [
        HashAlgorithm::Sha256,
        HashAlgorithm::Sha384,
        HashAlgorithm::Sha512,
        HashAlgorithm::Identity,
    ];

    /// The registry value.
    pub fn value(self) -> u16 {
        match self {
            HashAlgorithm::Sha1 => 1,
            HashAlgorithm::Sha256 => 2,
            HashAlgorithm::Sha384 => 3,
            HashAlgorithm::Sha512 => 4,
            HashAlgorithm::Identity => 5,
        }
    }

    /// From the registry value; `None` for values we do not know.
    pub fn from_value(v: u16) -> Option<HashAlgorithm> {
        Some(match v {
            1 => HashAlgorithm::Sha1,
            2 => HashAlgorithm::Sha256,
            3 => HashAlgorithm::Sha384,
            4 => HashAlgorithm::Sha512,
            5 => HashAlgorithm::Identity,
            _ => return None,
        })
    }

    /// The body of a SIGNATURE_HASH_ALGORITHMS notification listing `hashes`.
    pub fn encode_list(hashes: &[HashAlgorithm]) -> Vec<u8> {
        hashes
            .iter()
            .flat_map(|h| h.value().to_be_bytes())
            .collect()
    }

    /// The hashes a SIGNATURE_HASH_ALGORITHMS body lists (unknown values skipped). `None` if
    /// the body is not a whole number of 2-octet values.
    pub fn decode_list(body: &[u8]) -> Option<Vec<HashAlgorithm>> {
        if !body.len().is_multiple_of(2) {
            return None;
        }
        Some(
            body.chunks_exact(2)
                .filter_map(|c| match c {
                    [a, b] => HashAlgorithm::from_value(u16::from_be_bytes([*a, *b])),
                    _ => None,
                })
                .collect(),
        )
    }
}

/// An elliptic curve.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Curve {
    /// NIST P-256 (secp256r1).
    P256,
    /// NIST P-384.
    P384,
    /// NIST P-521.
    P521,
}

/// What kind of key a [`PublicKey`] or [`SigningKey`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// ECDSA on a curve.
    Ecdsa(Curve),
    /// RSA (PKCS#1 v1.5 and PSS), with the modulus size in bits.
    Rsa {
        /// Modulus size.
        bits: usize,
    },
    /// Ed25519.
    Ed25519,
}

/// A signature algorithm we sign with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignatureScheme {
    /// ECDSA on P-256 with SHA-256.
    EcdsaP256Sha256,
    /// ECDSA on P-384 with SHA-384.
    EcdsaP384Sha384,
    /// ECDSA on P-521 with SHA-512.
    EcdsaP521Sha512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RsaPkcs1Sha256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RsaPkcs1Sha384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RsaPkcs1Sha512,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256, a 32-octet salt.
    RsaPssSha256,
    /// RSASSA-PSS with SHA-384, MGF1-SHA-384, a 48-octet salt.
    RsaPssSha384,
    /// RSASSA-PSS with SHA-512, MGF1-SHA-512, a 64-octet salt.
    RsaPssSha512,
    /// Ed25519 (RFC 8420).
    Ed25519,
}

impl SignatureScheme {
    /// The DER AlgorithmIdentifier of RFC 7427 Appendix A (RFC 8420 §2 for Ed25519) that
    /// precedes the signature in an AUTH payload of method 14.
    pub fn algorithm_identifier(self) -> &'static [u8] {
        use SignatureScheme as S;
        match self {
            S::EcdsaP256Sha256 => &[
                0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
            ],
            S::EcdsaP384Sha384 => &[
                0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03,
            ],
            S::EcdsaP521Sha512 => &[
                0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04,
            ],
            S::RsaPkcs1Sha256 => &[
                0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05,
                0x00,
            ],
            S::RsaPkcs1Sha384 => &[
                0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c, 0x05,
                0x00,
            ],
            S::RsaPkcs1Sha512 => &[
                0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d, 0x05,
                0x00,
            ],
            S::RsaPssSha256 => &PSS_SHA256,
            S::RsaPssSha384 => &PSS_SHA384,
            S::RsaPssSha512 => &PSS_SHA512,
            S::Ed25519 => &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70],
        }
    }

    /// The hash the peer must have announced for us to use this scheme (RFC 7427 §4).
    pub fn hash(self) -> HashAlgorithm {
        use SignatureScheme as S;
        match self {
            S::EcdsaP256Sha256 | S::RsaPkcs1Sha256 | S::RsaPssSha256 => HashAlgorithm::Sha256,
            S::EcdsaP384Sha384 | S::RsaPkcs1Sha384 | S::RsaPssSha384 => HashAlgorithm::Sha384,
            S::EcdsaP521Sha512 | S::RsaPkcs1Sha512 | S::RsaPssSha512 => HashAlgorithm::Sha512,
            S::Ed25519 => HashAlgorithm::Identity,
        }
    }
}

/// RSASSA-PSS AlgorithmIdentifier: `id-RSASSA-PSS` with `[0] hash`, `[1] MGF1(hash)`,
/// `[2] saltLength = hash length` (trailerField default), the hash AlgorithmIdentifiers with
/// NULL parameters, as RFC 7427 A.4.3 encodes SHA-256.
const fn pss(hash_last: u8, salt: u8) -> [u8; 67] {
    [
        0x30, 0x41, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, 0x30, 0x34,
        0xa0, 0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
        hash_last, 0x05, 0x00, 0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7,
        0x0d, 0x01, 0x01, 0x08, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04,
        0x02, hash_last, 0x05, 0x00, 0xa2, 0x03, 0x02, 0x01, salt,
    ]
}
const PSS_SHA256: [u8; 67] = pss(0x01, 32);
const PSS_SHA384: [u8; 67] = pss(0x02, 48);
const PSS_SHA512: [u8; 67] = pss(0x03, 64);

/// A signature algorithm as a verifier sees it (any hash with any curve is allowed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verify {
    EcdsaAsn1(HashAlgorithm),
    /// r | s (RFC 4754).
    EcdsaFixed(HashAlgorithm),
    RsaPkcs1(HashAlgorithm),
    RsaPss(HashAlgorithm),
    Ed25519,
}

fn hash_of_oid(oid: &[u8]) -> Option<HashAlgorithm> {
    match oid {
        oid::SHA256 => Some(HashAlgorithm::Sha256),
        oid::SHA384 => Some(HashAlgorithm::Sha384),
        oid::SHA512 => Some(HashAlgorithm::Sha512),
        _ => None,
    }
}

/// A hash AlgorithmIdentifier's hash: parameters absent or NULL.
fn hash_algorithm(tlv_contents: &[u8]) -> Result<HashAlgorithm, SignatureError> {
    let (o, params) =
        der::algorithm_identifier(tlv_contents).map_err(|_| SignatureError::MalformedAlgorithm)?;
    if params.is_some_and(|p| p != [tag::NULL, 0]) {
        return Err(SignatureError::MalformedAlgorithm);
    }
    hash_of_oid(o).ok_or(SignatureError::UnsupportedAlgorithm)
}

/// RSASSA-PSS-params (RFC 4055 §3.1): only MGF1 with the same hash, a salt as long as the
/// hash, the trailer 1; the defaults (SHA-1) are refused.
fn pss_params(params: &[u8]) -> Result<HashAlgorithm, SignatureError> {
    let malformed = |_| SignatureError::MalformedAlgorithm;
    let seq = Der::new(params).expect(tag::SEQUENCE).map_err(malformed)?;
    let mut d = Der::new(seq);
    let hash = d.optional(tag::context(0)).map_err(malformed)?;
    let mgf = d.optional(tag::context(1)).map_err(malformed)?;
    let salt = d.optional(tag::context(2)).map_err(malformed)?;
    let trailer = d.optional(tag::context(3)).map_err(malformed)?;
    d.finish().map_err(malformed)?;
    let (Some(hash), Some(mgf), Some(salt)) = (hash, mgf, salt) else {
        return Err(SignatureError::UnsupportedAlgorithm);
    };
    let hash = hash_algorithm(Der::new(hash).expect(tag::SEQUENCE).map_err(malformed)?)?;
    let mgf = Der::new(mgf).expect(tag::SEQUENCE).map_err(malformed)?;
    let (mgf_oid, mgf_params) = der::algorithm_identifier(mgf).map_err(malformed)?;
    let mgf_hash = Der::new(mgf_params.ok_or(SignatureError::MalformedAlgorithm)?)
        .expect(tag::SEQUENCE)
        .map_err(malformed)?;
    if mgf_oid != oid::MGF1 || hash_algorithm(mgf_hash)? != hash {
        return Err(SignatureError::UnsupportedAlgorithm);
    }
    let salt = Der::new(salt)
        .expect(tag::INTEGER)
        .and_then(der::small_uint);
    let salt = salt.map_err(malformed)?;
    let trailer = trailer
        .map(|t| Der::new(t).expect(tag::INTEGER).and_then(der::small_uint))
        .transpose()
        .map_err(malformed)?;
    let hash_len = match hash {
        HashAlgorithm::Sha256 => 32,
        HashAlgorithm::Sha384 => 48,
        _ => 64,
    };
    if salt != hash_len || trailer.is_some_and(|t| t != 1) {
        return Err(SignatureError::UnsupportedAlgorithm);
    }
    Ok(hash)
}

impl Verify {
    /// Parses a DER AlgorithmIdentifier (the whole TLV).
    fn from_algorithm_identifier(tlv: &[u8]) -> Result<Verify, SignatureError> {
        let malformed = |_| SignatureError::MalformedAlgorithm;
        let mut d = Der::new(tlv);
        let contents = d.expect(tag::SEQUENCE).map_err(malformed)?;
        d.finish().map_err(malformed)?;
        let (o, params) = der::algorithm_identifier(contents).map_err(malformed)?;
        let null_or_absent = params.is_none_or(|p| p == [tag::NULL, 0]);
        let absent = params.is_none();
        let v = match o {
            oid::SHA256_WITH_RSA if null_or_absent => Verify::RsaPkcs1(HashAlgorithm::Sha256),
            oid::SHA384_WITH_RSA if null_or_absent => Verify::RsaPkcs1(HashAlgorithm::Sha384),
            oid::SHA512_WITH_RSA if null_or_absent => Verify::RsaPkcs1(HashAlgorithm::Sha512),
            oid::ECDSA_SHA256 if absent => Verify::EcdsaAsn1(HashAlgorithm::Sha256),
            oid::ECDSA_SHA384 if absent => Verify::EcdsaAsn1(HashAlgorithm::Sha384),
            oid::ECDSA_SHA512 if absent => Verify::EcdsaAsn1(HashAlgorithm::Sha512),
            oid::ED25519 if absent => Verify::Ed25519,
            oid::RSASSA_PSS => Verify::RsaPss(pss_params(
                params.ok_or(SignatureError::UnsupportedAlgorithm)?,
            )?),
            oid::SHA256_WITH_RSA
            | oid::SHA384_WITH_RSA
            | oid::SHA512_WITH_RSA
            | oid::ECDSA_SHA256
            | oid::ECDSA_SHA384
            | oid::ECDSA_SHA512
            | oid::ED25519 => return Err(SignatureError::MalformedAlgorithm),
            _ => return Err(SignatureError::UnsupportedAlgorithm),
        };
        Ok(v)
    }
}

/// A public key: what a certificate, a raw public key (RFC 7670) or the configuration
/// gives for a peer.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key_type: KeyType,
    /// The key as aws-lc verifies with it: the uncompressed point, RSAPublicKey DER, or the
    /// 32 octets of Ed25519.
    key: Vec<u8>,
    /// The SubjectPublicKeyInfo DER it came from.
    spki: Vec<u8>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PublicKey({:?}, {} octets)",
            self.key_type,
            self.key.len()
        )
    }
}

/// The bit count of an RSAPublicKey's modulus, or `None` if it does not parse.
fn rsa_bits(rsa_public_key: &[u8]) -> Option<usize> {
    let seq = Der::new(rsa_public_key).expect(tag::SEQUENCE).ok()?;
    let mut d = Der::new(seq);
    let modulus = d.expect(tag::INTEGER).ok()?;
    d.expect(tag::INTEGER).ok()?;
    d.finish().ok()?;
    let modulus = match modulus {
        [0, rest @ ..] => rest,
        m => m,
    };
    let (&top, _) = modulus.split_first()?;
    let top_bits = 8usize.saturating_sub(top.leading_zeros() as usize);
    Some(
        modulus
            .len()
            .saturating_sub(1)
            .saturating_mul(8)
            .saturating_add(top_bits),
    )
}

impl PublicKey {
    /// Parses a DER SubjectPublicKeyInfo (RFC 5280 §4.1.2.7): an RSA, EC (P-256/384/521) or
    /// Ed25519 key.
    pub fn from_spki(spki: &[u8]) -> Result<PublicKey, SignatureError> {
        let bad = |_| SignatureError::BadPublicKey;
        let mut outer = Der::new(spki);
        let seq = outer.expect(tag::SEQUENCE).map_err(bad)?;
        outer.finish().map_err(bad)?;
        let mut d = Der::new(seq);
        let alg = d.expect(tag::SEQUENCE).map_err(bad)?;
        let bits = d.expect(tag::BIT_STRING).map_err(bad)?;
        d.finish().map_err(bad)?;
        let key = match bits {
            [0, key @ ..] => key,
            _ => return Err(SignatureError::BadPublicKey),
        };
        let (o, params) = der::algorithm_identifier(alg).map_err(bad)?;
        let key_type = match o {
            // An id-RSASSA-PSS key (RFC 4055 §1.2) is an RSA key too; its parameters only
            // restrict how it may sign, and we check each signature's own parameters.
            oid::RSA_ENCRYPTION | oid::RSASSA_PSS => KeyType::Rsa {
                bits: rsa_bits(key).ok_or(SignatureError::BadPublicKey)?,
            },
            oid::EC_PUBLIC_KEY => {
                let params = params.ok_or(SignatureError::BadPublicKey)?;
                let curve = Der::new(params).expect(tag::OID).map_err(bad)?;
                let (curve, len) = match curve {
                    oid::P256 => (Curve::P256, 65),
                    oid::P384 => (Curve::P384, 97),
                    oid::P521 => (Curve::P521, 133),
                    _ => return Err(SignatureError::BadPublicKey),
                };
                if key.len() != len || key.first() != Some(&4) {
                    return Err(SignatureError::BadPublicKey);
                }
                KeyType::Ecdsa(curve)
            }
            oid::ED25519 if params.is_none() && key.len() == 32 => KeyType::Ed25519,
            _ => return Err(SignatureError::BadPublicKey),
        };
        Ok(PublicKey {
            key_type,
            key: key.to_vec(),
            spki: spki.to_vec(),
        })
    }

    /// The key's type.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The SubjectPublicKeyInfo DER (the data of an RFC 7670 Raw Public Key CERT payload).
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }

    /// Verifies `signature` over `message` made with the algorithm that the DER
    /// AlgorithmIdentifier `algorithm` names (RFC 7427 §3; a certificate's
    /// signatureAlgorithm).
    pub fn verify(
        &self,
        algorithm: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureError> {
        self.verify_with(
            Verify::from_algorithm_identifier(algorithm)?,
            message,
            signature,
        )
    }

    /// Verifies an RFC 4754 ECDSA signature (r | s, each as long as the curve's order) made
    /// with `hash`: AUTH methods 9, 10 and 11.
    pub fn verify_ecdsa_fixed(
        &self,
        hash: HashAlgorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureError> {
        self.verify_with(Verify::EcdsaFixed(hash), message, signature)
    }

    fn verify_with(
        &self,
        v: Verify,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureError> {
        use HashAlgorithm as H;
        let alg: &'static dyn sig::VerificationAlgorithm = match (self.key_type, v) {
            (KeyType::Ecdsa(c), Verify::EcdsaAsn1(h)) => match (c, h) {
                (Curve::P256, H::Sha256) => &sig::ECDSA_P256_SHA256_ASN1,
                (Curve::P256, H::Sha384) => &sig::ECDSA_P256_SHA384_ASN1,
                (Curve::P256, H::Sha512) => &sig::ECDSA_P256_SHA512_ASN1,
                (Curve::P384, H::Sha256) => &sig::ECDSA_P384_SHA256_ASN1,
                (Curve::P384, H::Sha384) => &sig::ECDSA_P384_SHA384_ASN1,
                (Curve::P384, H::Sha512) => &sig::ECDSA_P384_SHA512_ASN1,
                (Curve::P521, H::Sha256) => &sig::ECDSA_P521_SHA256_ASN1,
                (Curve::P521, H::Sha384) => &sig::ECDSA_P521_SHA384_ASN1,
                (Curve::P521, H::Sha512) => &sig::ECDSA_P521_SHA512_ASN1,
                _ => return Err(SignatureError::UnsupportedAlgorithm),
            },
            // RFC 4754 ties each method to one curve and hash.
            (KeyType::Ecdsa(c), Verify::EcdsaFixed(h)) => match (c, h) {
                (Curve::P256, H::Sha256) => &sig::ECDSA_P256_SHA256_FIXED,
                (Curve::P384, H::Sha384) => &sig::ECDSA_P384_SHA384_FIXED,
                (Curve::P521, H::Sha512) => &sig::ECDSA_P521_SHA512_FIXED,
                _ => return Err(SignatureError::WrongKeyType),
            },
            (KeyType::Rsa { .. }, Verify::RsaPkcs1(h)) => match h {
                H::Sha256 => &sig::RSA_PKCS1_2048_8192_SHA256,
                H::Sha384 => &sig::RSA_PKCS1_2048_8192_SHA384,
                H::Sha512 => &sig::RSA_PKCS1_2048_8192_SHA512,
                _ => return Err(SignatureError::UnsupportedAlgorithm),
            },
            (KeyType::Rsa { .. }, Verify::RsaPss(h)) => match h {
                H::Sha256 => &sig::RSA_PSS_2048_8192_SHA256,
                H::Sha384 => &sig::RSA_PSS_2048_8192_SHA384,
                H::Sha512 => &sig::RSA_PSS_2048_8192_SHA512,
                _ => return Err(SignatureError::UnsupportedAlgorithm),
            },
            (KeyType::Ed25519, Verify::Ed25519) => &sig::ED25519,
            _ => return Err(SignatureError::WrongKeyType),
        };
        sig::UnparsedPublicKey::new(alg, &self.key)
            .verify(message, signature)
            .map_err(|_| SignatureError::BadSignature)
    }
}

enum Inner {
    Ecdsa {
        curve: Curve,
        /// DER signatures (RFC 7427).
        asn1: EcdsaKeyPair,
        /// r | s (RFC 4754).
        fixed: EcdsaKeyPair,
    },
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// Our private key. Wiped on drop (by aws-lc); `Debug` shows the type only.
pub struct SigningKey {
    inner: Inner,
    public: PublicKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({:?})", self.public.key_type)
    }
}

/// The SPKI DER for a key of `key_type` whose public value is `key`.
fn spki_for(key_type: KeyType, key: &[u8]) -> Vec<u8> {
    fn tlv(t: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![t];
        // Keys are far below 64 KiB; the length octets are big-endian, shortest form.
        let [hi, lo] = u16::try_from(contents.len())
            .unwrap_or(u16::MAX)
            .to_be_bytes();
        match (hi, lo) {
            (0, lo) if lo < 0x80 => out.push(lo),
            (0, lo) => out.extend([0x81, lo]),
            (hi, lo) => out.extend([0x82, hi, lo]),
        }
        out.extend_from_slice(contents);
        out
    }
    let alg = match key_type {
        KeyType::Rsa { .. } => [tlv(tag::OID, oid::RSA_ENCRYPTION), vec![tag::NULL, 0]].concat(),
        KeyType::Ecdsa(c) => {
            let curve = match c {
                Curve::P256 => oid::P256,
                Curve::P384 => oid::P384,
                Curve::P521 => oid::P521,
            };
            [tlv(tag::OID, oid::EC_PUBLIC_KEY), tlv(tag::OID, curve)].concat()
        }
        KeyType::Ed25519 => tlv(tag::OID, oid::ED25519),
    };
    let bits = [&[0u8][..], key].concat();
    tlv(
        tag::SEQUENCE,
        &[tlv(tag::SEQUENCE, &alg), tlv(tag::BIT_STRING, &bits)].concat(),
    )
}

/// The PEM blocks of a key file, decoded into buffers that are wiped on drop.
type PemBlocks = Vec<(String, Zeroizing<Vec<u8>>)>;

/// The PEM blocks of a key file.
fn pem_blocks(text: &[u8]) -> Result<PemBlocks, KeyError> {
    let blocks = super::pem::blocks(text).map_err(|_| KeyError::NotAKey)?;
    if blocks
        .iter()
        .any(|b| b.encrypted || b.label.contains("ENCRYPTED"))
    {
        return Err(KeyError::Encrypted);
    }
    Ok(blocks.into_iter().map(|b| (b.label, b.der)).collect())
}

impl SigningKey {
    /// Loads a private key from PEM (`PRIVATE KEY`, `EC PRIVATE KEY`, `RSA PRIVATE KEY`; other
    /// blocks such as `EC PARAMETERS` are skipped) or, failing that, from DER in any of those
    /// forms.
    pub fn from_pem_or_der(bytes: &[u8]) -> Result<SigningKey, KeyError> {
        let looks_pem = bytes.windows(11).any(|w| w == b"-----BEGIN ");
        if !looks_pem {
            return SigningKey::from_der(bytes);
        }
        let blocks = pem_blocks(bytes)?;
        let mut keys = blocks
            .iter()
            .filter(|(label, _)| label.ends_with("PRIVATE KEY"));
        match (keys.next(), keys.next()) {
            (Some((label, der)), None) => match label.as_str() {
                "PRIVATE KEY" => SigningKey::from_pkcs8(der),
                "EC PRIVATE KEY" => SigningKey::from_sec1(der),
                "RSA PRIVATE KEY" => {
                    SigningKey::from_rsa(RsaKeyPair::from_der(der).map_err(|_| KeyError::Rejected)?)
                }
                _ => Err(KeyError::UnsupportedType),
            },
            _ => Err(KeyError::NotAKey),
        }
    }

    /// Loads a DER private key: PKCS#8, SEC1 or PKCS#1.
    pub fn from_der(der: &[u8]) -> Result<SigningKey, KeyError> {
        SigningKey::from_pkcs8(der)
            .or_else(|_| SigningKey::from_sec1(der))
            .or_else(|_| {
                RsaKeyPair::from_der(der)
                    .map_err(|_| KeyError::NotAKey)
                    .and_then(SigningKey::from_rsa)
            })
    }

    /// A PKCS#8 PrivateKeyInfo (RFC 5208, RFC 5958).
    pub fn from_pkcs8(der: &[u8]) -> Result<SigningKey, KeyError> {
        let not = |_| KeyError::NotAKey;
        let seq = Der::new(der).expect(tag::SEQUENCE).map_err(not)?;
        let mut d = Der::new(seq);
        d.expect(tag::INTEGER).map_err(not)?;
        let alg = d.expect(tag::SEQUENCE).map_err(not)?;
        let (o, params) = der::algorithm_identifier(alg).map_err(not)?;
        match o {
            oid::RSA_ENCRYPTION => {
                SigningKey::from_rsa(RsaKeyPair::from_pkcs8(der).map_err(|_| KeyError::Rejected)?)
            }
            oid::EC_PUBLIC_KEY => {
                let curve = params
                    .and_then(|p| Der::new(p).expect(tag::OID).ok())
                    .ok_or(KeyError::Rejected)?;
                let curve = match curve {
                    oid::P256 => Curve::P256,
                    oid::P384 => Curve::P384,
                    oid::P521 => Curve::P521,
                    _ => return Err(KeyError::UnsupportedType),
                };
                SigningKey::from_ec(curve, der)
            }
            oid::ED25519 => {
                let kp = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                    .map_err(|_| KeyError::Rejected)?;
                let public = PublicKey {
                    key_type: KeyType::Ed25519,
                    key: kp.public_key().as_ref().to_vec(),
                    spki: spki_for(KeyType::Ed25519, kp.public_key().as_ref()),
                };
                Ok(SigningKey {
                    inner: Inner::Ed25519(kp),
                    public,
                })
            }
            _ => Err(KeyError::UnsupportedType),
        }
    }

    /// A SEC1 ECPrivateKey (RFC 5915) naming its curve.
    pub fn from_sec1(der: &[u8]) -> Result<SigningKey, KeyError> {
        let not = |_| KeyError::NotAKey;
        let seq = Der::new(der).expect(tag::SEQUENCE).map_err(not)?;
        let mut d = Der::new(seq);
        d.expect(tag::INTEGER).map_err(not)?;
        d.expect(tag::OCTET_STRING).map_err(not)?;
        let params = d.optional(tag::context(0)).map_err(not)?;
        let curve = params
            .and_then(|p| Der::new(p).expect(tag::OID).ok())
            .ok_or(KeyError::UnsupportedType)?;
        let curve = match curve {
            oid::P256 => Curve::P256,
            oid::P384 => Curve::P384,
            oid::P521 => Curve::P521,
            _ => return Err(KeyError::UnsupportedType),
        };
        SigningKey::from_ec(curve, der)
    }

    fn from_ec(curve: Curve, der: &[u8]) -> Result<SigningKey, KeyError> {
        let (a, f) = match curve {
            Curve::P256 => (
                &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
                &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
            ),
            Curve::P384 => (
                &sig::ECDSA_P384_SHA384_ASN1_SIGNING,
                &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
            ),
            Curve::P521 => (
                &sig::ECDSA_P521_SHA512_ASN1_SIGNING,
                &sig::ECDSA_P521_SHA512_FIXED_SIGNING,
            ),
        };
        let asn1 = EcdsaKeyPair::from_private_key_der(a, der).map_err(|_| KeyError::Rejected)?;
        let fixed = EcdsaKeyPair::from_private_key_der(f, der).map_err(|_| KeyError::Rejected)?;
        let key_type = KeyType::Ecdsa(curve);
        let point = asn1.public_key().as_ref().to_vec();
        let public = PublicKey {
            key_type,
            spki: spki_for(key_type, &point),
            key: point,
        };
        Ok(SigningKey {
            inner: Inner::Ecdsa { curve, asn1, fixed },
            public,
        })
    }

    fn from_rsa(kp: RsaKeyPair) -> Result<SigningKey, KeyError> {
        let key = kp.public_key().as_ref().to_vec();
        let key_type = KeyType::Rsa {
            bits: rsa_bits(&key).ok_or(KeyError::Rejected)?,
        };
        let public = PublicKey {
            key_type,
            spki: spki_for(key_type, &key),
            key,
        };
        Ok(SigningKey {
            inner: Inner::Rsa(kp),
            public,
        })
    }

    /// The public half.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The curve, for ECDSA keys.
    pub fn curve(&self) -> Option<Curve> {
        match &self.inner {
            Inner::Ecdsa { curve, .. } => Some(*curve),
            _ => None,
        }
    }

    /// The scheme we sign with under RFC 7427 when the peer announced `hashes`: ECDSA with
    /// the curve's hash, Ed25519, RSA with the first of SHA-256/384/512 the peer takes, PSS if
    /// `rsa_pss`. `None` if nothing fits.
    pub fn scheme_for(&self, hashes: &[HashAlgorithm], rsa_pss: bool) -> Option<SignatureScheme> {
        use SignatureScheme as S;
        let candidates: &[SignatureScheme] = match &self.inner {
            Inner::Ecdsa { curve, .. } => match curve {
                Curve::P256 => &[S::EcdsaP256Sha256],
                Curve::P384 => &[S::EcdsaP384Sha384],
                Curve::P521 => &[S::EcdsaP521Sha512],
            },
            Inner::Ed25519(_) => &[S::Ed25519],
            Inner::Rsa(_) if rsa_pss => &[S::RsaPssSha256, S::RsaPssSha384, S::RsaPssSha512],
            Inner::Rsa(_) => &[S::RsaPkcs1Sha256, S::RsaPkcs1Sha384, S::RsaPkcs1Sha512],
        };
        candidates
            .iter()
            .copied()
            .find(|s| hashes.contains(&s.hash()))
    }

    /// Signs `message` with `scheme` (RFC 7427: ECDSA signatures in DER).
    pub fn sign(&self, scheme: SignatureScheme, message: &[u8]) -> Result<Vec<u8>, SignatureError> {
        use SignatureScheme as S;
        let rng = SystemRandom::new();
        match (&self.inner, scheme) {
            (Inner::Ecdsa { curve, asn1, .. }, s)
                if matches!(
                    (curve, s),
                    (Curve::P256, S::EcdsaP256Sha256)
                        | (Curve::P384, S::EcdsaP384Sha384)
                        | (Curve::P521, S::EcdsaP521Sha512)
                ) =>
            {
                asn1.sign(&rng, message)
                    .map(|s| s.as_ref().to_vec())
                    .map_err(|_| SignatureError::SigningFailed)
            }
            (Inner::Ed25519(kp), S::Ed25519) => Ok(kp.sign(message).as_ref().to_vec()),
            (Inner::Rsa(kp), s) => {
                let padding: &'static dyn sig::RsaEncoding = match s {
                    S::RsaPkcs1Sha256 => &sig::RSA_PKCS1_SHA256,
                    S::RsaPkcs1Sha384 => &sig::RSA_PKCS1_SHA384,
                    S::RsaPkcs1Sha512 => &sig::RSA_PKCS1_SHA512,
                    S::RsaPssSha256 => &sig::RSA_PSS_SHA256,
                    S::RsaPssSha384 => &sig::RSA_PSS_SHA384,
                    S::RsaPssSha512 => &sig::RSA_PSS_SHA512,
                    _ => return Err(SignatureError::WrongKeyType),
                };
                let mut out = vec![0u8; kp.public_modulus_len()];
                kp.sign(padding, &rng, message, &mut out)
                    .map_err(|_| SignatureError::SigningFailed)?;
                Ok(out)
            }
            _ => Err(SignatureError::WrongKeyType),
        }
    }

    /// An RFC 4754 signature (r | s) with the curve's own hash, for AUTH methods 9, 10, 11.
    /// `None` for keys that are not ECDSA.
    pub fn sign_ecdsa_fixed(&self, message: &[u8]) -> Option<Result<Vec<u8>, SignatureError>> {
        match &self.inner {
            Inner::Ecdsa { fixed, .. } => Some(
                fixed
                    .sign(&SystemRandom::new(), message)
                    .map(|s| s.as_ref().to_vec())
                    .map_err(|_| SignatureError::SigningFailed),
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_algorithm_identifiers_parse_back() {
        use SignatureScheme as S;
        for (s, v) in [
            (S::EcdsaP256Sha256, Verify::EcdsaAsn1(HashAlgorithm::Sha256)),
            (S::EcdsaP384Sha384, Verify::EcdsaAsn1(HashAlgorithm::Sha384)),
            (S::EcdsaP521Sha512, Verify::EcdsaAsn1(HashAlgorithm::Sha512)),
            (S::RsaPkcs1Sha256, Verify::RsaPkcs1(HashAlgorithm::Sha256)),
            (S::RsaPkcs1Sha384, Verify::RsaPkcs1(HashAlgorithm::Sha384)),
            (S::RsaPkcs1Sha512, Verify::RsaPkcs1(HashAlgorithm::Sha512)),
            (S::RsaPssSha256, Verify::RsaPss(HashAlgorithm::Sha256)),
            (S::RsaPssSha384, Verify::RsaPss(HashAlgorithm::Sha384)),
            (S::RsaPssSha512, Verify::RsaPss(HashAlgorithm::Sha512)),
            (S::Ed25519, Verify::Ed25519),
        ] {
            assert_eq!(
                Verify::from_algorithm_identifier(s.algorithm_identifier()),
                Ok(v),
                "{s:?}"
            );
        }
    }

    #[test]
    fn refuses_sha1_and_odd_pss() {
        // RFC 7427 A.1.1 sha1WithRSAEncryption, A.3.1 ecdsa-with-sha1.
        let sha1_rsa = hex_decode("300d06092a864886f70d0101050500");
        let sha1_ecdsa = hex_decode("300906072a8648ce3d0401");
        // RFC 7427 A.4.1 / A.4.2: PSS with absent / default (SHA-1) parameters.
        let pss_empty = hex_decode("300b06092a864886f70d01010a");
        let pss_default = hex_decode("300d06092a864886f70d01010a3000");
        for a in [sha1_rsa, sha1_ecdsa, pss_empty, pss_default] {
            assert_eq!(
                Verify::from_algorithm_identifier(&a),
                Err(SignatureError::UnsupportedAlgorithm)
            );
        }
        let mut salt_20 = PSS_SHA256.to_vec();
        *salt_20.last_mut().unwrap() = 20;
        assert_eq!(
            Verify::from_algorithm_identifier(&salt_20),
            Err(SignatureError::UnsupportedAlgorithm)
        );
        // Trailing garbage after the AlgorithmIdentifier.
        let mut trailing = SignatureScheme::Ed25519.algorithm_identifier().to_vec();
        trailing.push(0);
        assert_eq!(
            Verify::from_algorithm_identifier(&trailing),
            Err(SignatureError::MalformedAlgorithm)
        );
    }

    fn hex_decode(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn hash_lists() {
        let body = HashAlgorithm::encode_list(&HashAlgorithm::ANNOUNCED);
        assert_eq!(body, [0, 2, 0, 3, 0, 4, 0, 5]);
        assert_eq!(
            HashAlgorithm::decode_list(&[0, 2, 0x12, 0x34, 0, 5]),
            Some(vec![HashAlgorithm::Sha256, HashAlgorithm::Identity])
        );
        assert_eq!(HashAlgorithm::decode_list(&[0, 2, 0]), None);
    }
}

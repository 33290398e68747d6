//! Key exchange (RFC 7296 §1.2, §3.4): X25519 (group 31, RFC 8031), the NIST ECP groups 19, 20
//! and 21 (RFC 5903) through aws-lc, and the MODP groups 14 and 15 (RFC 3526) in [`super::modp`].

use core::fmt;

use aws_lc_rs::agreement;

use super::modp::ModpSecret;
use super::{CryptoError, Rng, SecretBytes, Unsupported};
use crate::wire::{KeMethod, TransformType};

/// The shared secret `g^ir` of a key exchange, in the form RFC 7296 feeds to the PRF: for MODP
/// left-padded to the modulus length (§2.14), for ECP the x coordinate (RFC 5903 §7), for X25519
/// the 32-octet output (RFC 8031 §2.2). Wiped on drop; `Debug` shows the length only.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedSecret(SecretBytes);

impl SharedSecret {
    /// Wraps bytes obtained elsewhere (known-answer tests, or a future hybrid KEM).
    pub fn new(bytes: Vec<u8>) -> Self {
        SharedSecret(SecretBytes::new(bytes))
    }

    /// The secret itself.
    pub fn expose(&self) -> &[u8] {
        self.0.expose()
    }

    /// Length in octets.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty (never, for a real agreement).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedSecret({} octets)", self.0.len())
    }
}

/// How many scalars we draw before giving up on an RNG that only produces invalid ones (for a
/// working RNG a single retry happens with probability below 2^-32).
const MAX_KEYGEN_ATTEMPTS: usize = 16;

enum Private {
    /// X25519 or an ECP group: an aws-lc key, wiped by aws-lc when dropped.
    Ecdh(agreement::PrivateKey),
    Modp(ModpSecret),
}

/// One side's ephemeral key pair for a key exchange method.
///
/// ```text
/// let ke = KeyExchange::generate(KeMethod::Curve25519, &mut rng)?;
/// send(ke.public_value());                 // the KE payload's Key Exchange Data
/// let g_ir = ke.agree(peer_ke_data)?;      // validates the peer's value first
/// ```
/// [`KeyExchange::agree`] takes `&self`: an initiator that receives a forged IKE_SA_INIT answer
/// with an invalid KE value can keep its key and wait for the genuine one (RFC 7296 §2.4).
pub struct KeyExchange {
    method: KeMethod,
    private: Private,
    public: Vec<u8>,
}

impl fmt::Debug for KeyExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyExchange")
            .field("method", &self.method)
            .field("public_len", &self.public.len())
            .finish_non_exhaustive()
    }
}

/// The aws-lc algorithm, the private scalar length and the KE data length of an ECDH group.
fn ecdh_params(method: KeMethod) -> Option<(&'static agreement::Algorithm, usize, usize)> {
    match method {
        KeMethod::Curve25519 => Some((&agreement::X25519, 32, 32)),
        KeMethod::Ecp256 => Some((&agreement::ECDH_P256, 32, 64)),
        KeMethod::Ecp384 => Some((&agreement::ECDH_P384, 48, 96)),
        KeMethod::Ecp521 => Some((&agreement::ECDH_P521, 66, 132)),
        _ => None,
    }
}

impl KeyExchange {
    /// Every method implemented here, in the order we would propose them.
    pub const METHODS: &'static [KeMethod] = &[
        KeMethod::Curve25519,
        KeMethod::Ecp256,
        KeMethod::Ecp384,
        KeMethod::Ecp521,
        KeMethod::Modp3072,
        KeMethod::Modp2048,
    ];

    /// Whether `method` is implemented.
    pub fn supports(method: KeMethod) -> bool {
        Self::METHODS.contains(&method)
    }

    /// The length of the KE payload's data for `method`, if implemented.
    pub fn public_len(method: KeMethod) -> Option<usize> {
        if let Some((_, _, len)) = ecdh_params(method) {
            return Some(len);
        }
        ModpSecret::modulus_len(method)
    }

    /// Generates an ephemeral key pair, drawing the private value from `rng`.
    ///
    /// ECP scalars are drawn as fixed-length big-endian integers (for P-521 the top 7 bits
    /// cleared) and redrawn if aws-lc rejects them (zero, or not below the group order). X25519
    /// takes 32 random octets (clamped by aws-lc). MODP exponents are 256 bits (group 14) or
    /// 384 bits (group 15): at least twice the group's security strength (RFC 3526 §8).
    pub fn generate(method: KeMethod, rng: &mut dyn Rng) -> Result<KeyExchange, CryptoError> {
        if let Some((alg, scalar_len, _)) = ecdh_params(method) {
            return Self::generate_ecdh(method, alg, scalar_len, rng);
        }
        if let Some(secret) = ModpSecret::generate(method, rng)? {
            let public = secret.public_value();
            return Ok(KeyExchange {
                method,
                private: Private::Modp(secret),
                public,
            });
        }
        Err(CryptoError::Unsupported(Unsupported {
            transform_type: TransformType::Ke,
            id: method.value(),
            key_bits: None,
        }))
    }

    fn generate_ecdh(
        method: KeMethod,
        alg: &'static agreement::Algorithm,
        scalar_len: usize,
        rng: &mut dyn Rng,
    ) -> Result<KeyExchange, CryptoError> {
        let mut scalar = SecretBytes::new(vec![0u8; scalar_len]);
        for _ in 0..MAX_KEYGEN_ATTEMPTS {
            rng.fill(scalar.vec_mut())?;
            if method == KeMethod::Ecp521 {
                // 521 bits in 66 octets: only the lowest bit of the first octet may be set.
                if let Some(first) = scalar.vec_mut().first_mut() {
                    *first &= 0x01;
                }
            }
            let Ok(private) = agreement::PrivateKey::from_private_key(alg, scalar.expose()) else {
                continue;
            };
            let public = private
                .compute_public_key()
                .map_err(|_| CryptoError::Internal {
                    what: "computing an ECDH public key",
                })?;
            let public = ike_encoding(method, public.as_ref()).ok_or(CryptoError::Internal {
                what: "encoding an ECDH public key",
            })?;
            return Ok(KeyExchange {
                method,
                private: Private::Ecdh(private),
                public,
            });
        }
        Err(CryptoError::Internal {
            what: "drawing a valid private scalar",
        })
    }

    /// The key exchange method.
    pub fn method(&self) -> KeMethod {
        self.method
    }

    /// The public value: the Key Exchange Data of the KE payload (RFC 7296 §3.4). For ECP
    /// groups `x | y` without a point-format octet (RFC 5903 §7), for X25519 the 32-octet
    /// u-coordinate, for MODP `g^x mod p` left-padded to the modulus length.
    pub fn public_value(&self) -> &[u8] {
        &self.public
    }

    /// Computes `g^ir` from the peer's Key Exchange Data, after checking its length and
    /// validating it (point on the curve, 1 < y < p-1, X25519 not yielding zero).
    pub fn agree(&self, peer: &[u8]) -> Result<SharedSecret, CryptoError> {
        let expected = Self::public_len(self.method).unwrap_or(self.public.len());
        if peer.len() != expected {
            return Err(CryptoError::InvalidKeLength {
                method: self.method,
                expected,
                actual: peer.len(),
            });
        }
        match &self.private {
            Private::Modp(secret) => secret.agree(peer),
            Private::Ecdh(private) => self.agree_ecdh(private, peer),
        }
    }

    fn agree_ecdh(
        &self,
        private: &agreement::PrivateKey,
        peer: &[u8],
    ) -> Result<SharedSecret, CryptoError> {
        let invalid = CryptoError::InvalidPublicValue {
            method: self.method,
        };
        let mut encoded = Vec::with_capacity(peer.len().saturating_add(1));
        if self.method != KeMethod::Curve25519 {
            // SEC 1 uncompressed point: aws-lc checks that it lies on the curve.
            encoded.push(0x04);
        }
        encoded.extend_from_slice(peer);
        let peer_key = agreement::UnparsedPublicKey::new(private.algorithm(), &encoded);
        let secret = agreement::agree(private, peer_key, invalid.clone(), |k| {
            Ok(SharedSecret::new(k.to_vec()))
        })?;
        // RFC 8031 §2.3 (and RFC 7748 §6.1): an X25519 result of all zeros means the peer sent
        // a low-order point. aws-lc already refuses it; check again, in constant time. (Not for
        // the ECP groups: there x = 0 is a legitimate point.)
        if self.method == KeMethod::Curve25519 {
            let zero = [0u8; 32];
            if aws_lc_rs::constant_time::verify_slices_are_equal(secret.expose(), &zero).is_ok() {
                return Err(invalid);
            }
        }
        Ok(secret)
    }
}

/// From aws-lc's encoding of our public key to the KE payload's.
fn ike_encoding(method: KeMethod, aws: &[u8]) -> Option<Vec<u8>> {
    if method == KeMethod::Curve25519 {
        return Some(aws.to_vec());
    }
    match aws.split_first() {
        Some((0x04, xy)) => Some(xy.to_vec()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SystemRng;

    #[test]
    fn every_method_agrees_with_itself() {
        for &m in KeyExchange::METHODS {
            let a = KeyExchange::generate(m, &mut SystemRng).unwrap();
            let b = KeyExchange::generate(m, &mut SystemRng).unwrap();
            assert_eq!(a.public_value().len(), KeyExchange::public_len(m).unwrap());
            let s1 = a.agree(b.public_value()).unwrap();
            let s2 = b.agree(a.public_value()).unwrap();
            assert_eq!(s1, s2, "{m}");
            assert!(format!("{a:?}").contains("public_len"));
        }
    }

    #[test]
    fn unsupported_methods() {
        for m in [
            KeMethod::Modp1024,
            KeMethod::Curve448,
            KeMethod::MlKem768,
            KeMethod::None,
        ] {
            assert!(matches!(
                KeyExchange::generate(m, &mut SystemRng),
                Err(CryptoError::Unsupported(_))
            ));
            assert!(!KeyExchange::supports(m));
        }
    }
}

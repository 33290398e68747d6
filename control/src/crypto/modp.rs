//! The MODP groups 14 (2048-bit) and 15 (3072-bit) of RFC 3526, generator 2, with
//! crypto-bigint's constant-time Montgomery exponentiation.
//!
//! The exponent is secret and processed in constant time for its fixed bit length; the peer's
//! public value is public, so its range check may branch.

use std::sync::OnceLock;

use crypto_bigint::modular::{MontyForm, MontyParams};
use crypto_bigint::{Odd, Uint, U2048, U256, U3072, U384};
use zeroize::Zeroizing;

use super::{CryptoError, Rng, SharedSecret};
use crate::wire::KeMethod;

/// RFC 3526 §3: p = 2^2048 - 2^1984 - 1 + 2^64 * ( [2^1918 pi] + 124476 ).
const P2048: Odd<U2048> = Odd::<U2048>::from_be_hex(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
);

/// RFC 3526 §4: p = 2^3072 - 2^3008 - 1 + 2^64 * ( [2^2942 pi] + 1690314 ).
const P3072: Odd<U3072> = Odd::<U3072>::from_be_hex(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
);

/// Exponent sizes: twice the strength RFC 3526 §8 estimates, rounded up (group 14: ~110-128
/// bits -> 256; group 15: ~128-160 bits -> 384).
const EXP_BITS_2048: u32 = 256;
const EXP_BITS_3072: u32 = 384;

fn params_2048() -> &'static MontyParams<{ U2048::LIMBS }> {
    static PARAMS: OnceLock<MontyParams<{ U2048::LIMBS }>> = OnceLock::new();
    // The modulus is public: the variable-time setup leaks nothing.
    PARAMS.get_or_init(|| MontyParams::new_vartime(P2048))
}

fn params_3072() -> &'static MontyParams<{ U3072::LIMBS }> {
    static PARAMS: OnceLock<MontyParams<{ U3072::LIMBS }>> = OnceLock::new();
    PARAMS.get_or_init(|| MontyParams::new_vartime(P3072))
}

/// A secret MODP exponent; wiped on drop.
pub(crate) enum ModpSecret {
    G14(Zeroizing<U256>),
    G15(Zeroizing<U384>),
}

/// Draws a uniformly random exponent of `bits` bits, at least 2.
fn draw_exponent<const L: usize>(rng: &mut dyn Rng) -> Result<Zeroizing<Uint<L>>, CryptoError> {
    let mut bytes = Zeroizing::new(vec![0u8; L.saturating_mul(crypto_bigint::Limb::BYTES)]);
    for _ in 0..16 {
        rng.fill(&mut bytes)?;
        let x = Zeroizing::new(Uint::<L>::from_be_slice(&bytes));
        // x in {0, 1} would make the public value (or the secret) trivial.
        if *x > Uint::<L>::ONE {
            return Ok(x);
        }
    }
    Err(CryptoError::Internal {
        what: "drawing a MODP exponent",
    })
}

/// y^x mod p in constant time for the fixed exponent length.
fn pow<const L: usize, const XL: usize>(
    base: &Uint<L>,
    exponent: &Uint<XL>,
    exponent_bits: u32,
    params: &MontyParams<L>,
) -> Uint<L> {
    MontyForm::new(base, *params)
        .pow_bounded_exp(exponent, exponent_bits)
        .retrieve()
}

/// Parses and validates the peer's value: exactly the modulus length, and 1 < y < p-1
/// (RFC 7296 §3.4 and RFC 6989 §2.2: with a safe prime this excludes the only small subgroup).
fn peer_value<const L: usize>(peer: &[u8], p: &Odd<Uint<L>>) -> Option<Uint<L>> {
    if peer.len() != L.saturating_mul(crypto_bigint::Limb::BYTES) {
        return None;
    }
    let y = Uint::<L>::from_be_slice(peer);
    let p_minus_1 = p.as_ref().wrapping_sub(&Uint::ONE);
    (y > Uint::ONE && y < p_minus_1).then_some(y)
}

fn to_be_vec<const L: usize>(x: &Uint<L>) -> Vec<u8> {
    let mut out = Vec::with_capacity(L.saturating_mul(crypto_bigint::Limb::BYTES));
    for limb in x.as_limbs().iter().rev() {
        out.extend_from_slice(&limb.0.to_be_bytes());
    }
    out
}

impl ModpSecret {
    /// Octets of a public value or shared secret of `method`, if it is a MODP group we have.
    pub(crate) fn modulus_len(method: KeMethod) -> Option<usize> {
        match method {
            KeMethod::Modp2048 => Some(256),
            KeMethod::Modp3072 => Some(384),
            _ => None,
        }
    }

    /// A fresh exponent for `method`, or `None` if it is not one of our MODP groups.
    pub(crate) fn generate(
        method: KeMethod,
        rng: &mut dyn Rng,
    ) -> Result<Option<ModpSecret>, CryptoError> {
        Ok(match method {
            KeMethod::Modp2048 => Some(ModpSecret::G14(draw_exponent(rng)?)),
            KeMethod::Modp3072 => Some(ModpSecret::G15(draw_exponent(rng)?)),
            _ => None,
        })
    }

    pub(crate) fn method(&self) -> KeMethod {
        match self {
            ModpSecret::G14(_) => KeMethod::Modp2048,
            ModpSecret::G15(_) => KeMethod::Modp3072,
        }
    }

    /// g^x mod p, big-endian, left-padded to the modulus length.
    pub(crate) fn public_value(&self) -> Vec<u8> {
        match self {
            ModpSecret::G14(x) => {
                to_be_vec(&pow(&U2048::from_u8(2), &**x, EXP_BITS_2048, params_2048()))
            }
            ModpSecret::G15(x) => {
                to_be_vec(&pow(&U3072::from_u8(2), &**x, EXP_BITS_3072, params_3072()))
            }
        }
    }

    /// y^x mod p for the peer's value y, after validating y.
    pub(crate) fn agree(&self, peer: &[u8]) -> Result<SharedSecret, CryptoError> {
        let invalid = CryptoError::InvalidPublicValue {
            method: self.method(),
        };
        let bytes = match self {
            ModpSecret::G14(x) => {
                let y = peer_value(peer, &P2048).ok_or(invalid)?;
                let z = Zeroizing::new(pow(&y, &**x, EXP_BITS_2048, params_2048()));
                to_be_vec(&z)
            }
            ModpSecret::G15(x) => {
                let y = peer_value(peer, &P3072).ok_or(invalid)?;
                let z = Zeroizing::new(pow(&y, &**x, EXP_BITS_3072, params_3072()));
                to_be_vec(&z)
            }
        };
        Ok(SharedSecret::new(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(U2048::LIMBS * crypto_bigint::Limb::BYTES, 256);
        assert_eq!(U3072::LIMBS * crypto_bigint::Limb::BYTES, 384);
        assert_eq!(U256::BITS, EXP_BITS_2048);
        assert_eq!(U384::BITS, EXP_BITS_3072);
    }
}

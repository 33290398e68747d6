//! Injected randomness: the sans-IO core never reaches for a global generator on its own.

use super::CryptoError;

/// A source of cryptographically secure random octets. The protocol core takes one as an
/// argument wherever it needs randomness (key generation, CBC IVs), so tests can inject a
/// deterministic one and production passes [`SystemRng`].
pub trait Rng {
    /// Fills `dest` entirely with random octets, or fails with [`CryptoError::Rng`].
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), CryptoError>;
}

/// aws-lc's generator (`aws_lc_rs::rand::fill`): the one to use outside tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemRng;

impl Rng for SystemRng {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), CryptoError> {
        aws_lc_rs::rand::fill(dest).map_err(|_| CryptoError::Rng)
    }
}

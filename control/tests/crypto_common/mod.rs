//! Helpers shared by the crypto integration tests: hex, the vector files, a scripted RNG.
#![allow(dead_code)]

use serde_json::Value;
use xipsec_control::crypto::{CryptoError, Rng};

pub fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

pub fn path(name: &str) -> String {
    format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A JSON file from tests/vectors.
pub fn load(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path(name)).unwrap()).unwrap()
}

/// An RNG that hands out given bytes, then fails.
pub struct FixedRng(pub Vec<u8>);

impl Rng for FixedRng {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), CryptoError> {
        if self.0.len() < dest.len() {
            return Err(CryptoError::Rng);
        }
        let rest = self.0.split_off(dest.len());
        dest.copy_from_slice(&self.0);
        self.0 = rest;
        Ok(())
    }
}

//! [`SecretBytes`]: key material that is wiped on drop and never printed.

use core::fmt;

use zeroize::Zeroizing;

/// Secret bytes (a key, SKEYSEED, `prf+` output): zeroed when dropped, and `Debug` shows only
/// the length. Equality is constant-time.
#[derive(Clone)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Takes ownership of `bytes` (no copy is left behind by this call).
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(Zeroizing::new(bytes))
    }

    /// Copies `bytes`; the caller remains responsible for wiping its own copy.
    pub fn from_slice(bytes: &[u8]) -> Self {
        SecretBytes::new(bytes.to_vec())
    }

    /// The secret itself. Named so that every use is easy to find in review.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in octets (not secret).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether this is the empty key (e.g. SK_ai for an AEAD).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn vec_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }

    /// Splits off the first `len` octets into a new secret, keeping the rest.
    /// Returns `None` (and leaves `self` unchanged) if fewer than `len` octets remain.
    pub(crate) fn take_front(&mut self, len: usize) -> Option<SecretBytes> {
        let front = self.0.get(..len)?.to_vec();
        let rest = self.0.get(len..)?.to_vec();
        // The old buffer is wiped when it is replaced (Zeroizing drops it).
        self.0 = Zeroizing::new(rest);
        Some(SecretBytes::new(front))
    }
}

impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(&self.0, &other.0).is_ok()
    }
}

impl Eq for SecretBytes {}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes({} octets)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_bytes() {
        let s = SecretBytes::from_slice(&[0xab; 5]);
        let shown = format!("{s:?}");
        assert_eq!(shown, "SecretBytes(5 octets)");
        assert!(!shown.to_lowercase().contains("ab"));
    }

    #[test]
    fn take_front_splits() {
        let mut s = SecretBytes::from_slice(&[1, 2, 3, 4, 5]);
        assert_eq!(s.take_front(2).unwrap().expose(), &[1, 2]);
        assert_eq!(s.expose(), &[3, 4, 5]);
        assert!(s.take_front(4).is_none());
        assert_eq!(s.expose(), &[3, 4, 5]);
        assert!(s.take_front(3).unwrap().len() == 3 && s.is_empty());
    }
}

//! A bounds-checked reader over a byte slice: the only way the decoder touches input.
//!
//! Every read names the field it is reading so that a short input reports exactly what was cut
//! off ([`DecodeError::Truncated`]). Nothing here can panic: slices are split with
//! `split_at_checked`, never indexed.

use super::DecodeError;

/// A cursor over untrusted bytes. Reads advance it; a read past the end fails and leaves it
/// where it was.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    /// The whole input, kept so that [`Reader::position`] can report offsets.
    whole: &'a [u8],
    /// The part not read yet (always a suffix of `whole`).
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader positioned at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader {
            whole: buf,
            rest: buf,
        }
    }

    /// How many bytes are left.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// How many bytes have been read so far (the offset of the next byte in the input).
    pub fn position(&self) -> usize {
        self.whole.len().saturating_sub(self.rest.len())
    }

    /// Takes the next `n` bytes; `what` names the field for the error.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let (head, tail) = self
            .rest
            .split_at_checked(n)
            .ok_or(DecodeError::Truncated { what })?;
        self.rest = tail;
        Ok(head)
    }

    /// Takes the next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N, what)?;
        <[u8; N]>::try_from(bytes).map_err(|_| DecodeError::Truncated { what })
    }

    /// Reads one octet.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(u8::from_be_bytes(self.array(what)?))
    }

    /// Reads a big-endian (network order) 16-bit integer.
    pub fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    /// Reads a big-endian 32-bit integer.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    /// Reads a big-endian 64-bit integer.
    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    /// Skips `n` bytes (reserved fields, which RFC 7296 says to ignore on receipt).
    pub fn skip(&mut self, n: usize, what: &'static str) -> Result<(), DecodeError> {
        self.take(n, what).map(|_| ())
    }

    /// Takes everything that is left.
    pub fn rest(&mut self) -> &'a [u8] {
        let rest = self.rest;
        self.rest = &[];
        rest
    }

    /// Splits off the next `n` bytes as a reader of their own: the container for a payload or
    /// substructure whose length field said `n`.
    pub fn sub(&mut self, n: usize, what: &'static str) -> Result<Reader<'a>, DecodeError> {
        self.take(n, what).map(Reader::new)
    }

    /// Succeeds only if every byte has been read: a structure that defines its own end must fill
    /// its container exactly.
    pub fn finish(&self, what: &'static str) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                what,
                count: self.rest.len(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_in_network_order_and_tracks_position() -> Result<(), DecodeError> {
        let mut r = Reader::new(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
        assert_eq!(r.u8("a")?, 1);
        assert_eq!(r.u16("b")?, 0x0203);
        assert_eq!(r.u32("c")?, 0x0405_0607);
        assert_eq!(r.u64("d")?, 0x0809_0a0b_0c0d_0e0f);
        assert_eq!(r.position(), 15);
        assert!(r.is_empty());
        r.finish("end")
    }

    #[test]
    fn short_reads_fail_without_moving() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(
            r.u32("field"),
            Err(DecodeError::Truncated { what: "field" })
        );
        assert_eq!(r.remaining(), 3);
        assert_eq!(r.take(4, "x"), Err(DecodeError::Truncated { what: "x" }));
        assert_eq!(
            r.take(usize::MAX, "x"),
            Err(DecodeError::Truncated { what: "x" })
        );
        assert_eq!(r.take(3, "x"), Ok(&[1u8, 2, 3][..]));
    }

    #[test]
    fn sub_readers_are_bounded() -> Result<(), DecodeError> {
        let mut r = Reader::new(&[1, 2, 3, 4]);
        let mut s = r.sub(2, "sub")?;
        assert_eq!(s.remaining(), 2);
        assert_eq!(
            s.u32("too long"),
            Err(DecodeError::Truncated { what: "too long" })
        );
        assert_eq!(s.u16("fits")?, 0x0102);
        assert_eq!(r.rest(), &[3, 4]);
        assert_eq!(
            Reader::new(&[0]).finish("t"),
            Err(DecodeError::TrailingBytes {
                what: "t",
                count: 1
            })
        );
        Ok(())
    }
}

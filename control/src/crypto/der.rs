//! Just enough DER (X.690) to take apart the few structures the signature code needs: an
//! AlgorithmIdentifier, a SubjectPublicKeyInfo, a PKCS#8 PrivateKeyInfo, RSASSA-PSS parameters.
//! Certificates themselves are parsed by `x509-parser`.
//!
//! Only definite lengths and single-octet tags, as DER requires; anything else is an error.

/// A DER tag octet.
pub(crate) mod tag {
    pub const INTEGER: u8 = 0x02;
    pub const BIT_STRING: u8 = 0x03;
    pub const OCTET_STRING: u8 = 0x04;
    pub const NULL: u8 = 0x05;
    pub const OID: u8 = 0x06;
    pub const SEQUENCE: u8 = 0x30;
    /// `[n]` EXPLICIT, constructed.
    pub const fn context(n: u8) -> u8 {
        0xa0 | n
    }
}

/// Malformed DER; the caller names what it was reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DerError;

/// A cursor over DER elements.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    pub fn new(bytes: &'a [u8]) -> Der<'a> {
        Der { rest: bytes }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next element's tag, if any.
    pub fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next element: its tag, its contents, and the whole TLV.
    pub fn any(&mut self) -> Result<(u8, &'a [u8], &'a [u8]), DerError> {
        let all = self.rest;
        let (&t, rest) = all.split_first().ok_or(DerError)?;
        // High tag numbers (0x1f) never occur in what we read.
        if t & 0x1f == 0x1f {
            return Err(DerError);
        }
        let (&first, mut rest) = rest.split_first().ok_or(DerError)?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return Err(DerError);
            }
            let (octets, r) = rest.split_at_checked(n).ok_or(DerError)?;
            rest = r;
            let len = octets
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            // DER: the shortest form.
            if len < 0x80 || octets.first() == Some(&0) {
                return Err(DerError);
            }
            len
        };
        let (contents, rest) = rest.split_at_checked(len).ok_or(DerError)?;
        let whole = all.len().saturating_sub(rest.len());
        self.rest = rest;
        Ok((t, contents, all.get(..whole).ok_or(DerError)?))
    }

    /// The next element, which must have tag `want`: its contents.
    pub fn expect(&mut self, want: u8) -> Result<&'a [u8], DerError> {
        match self.any()? {
            (t, contents, _) if t == want => Ok(contents),
            _ => Err(DerError),
        }
    }

    /// The next element if it has tag `want`.
    pub fn optional(&mut self, want: u8) -> Result<Option<&'a [u8]>, DerError> {
        if self.peek_tag() == Some(want) {
            self.expect(want).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Nothing may follow.
    pub fn finish(&self) -> Result<(), DerError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DerError)
        }
    }
}

/// A small non-negative INTEGER's value.
pub(crate) fn small_uint(contents: &[u8]) -> Result<u32, DerError> {
    if contents.is_empty() || contents.len() > 4 || contents.first().is_some_and(|&b| b & 0x80 != 0)
    {
        return Err(DerError);
    }
    Ok(contents
        .iter()
        .fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
}

/// An AlgorithmIdentifier: the OID's contents and the parameters' whole TLV (if any).
pub(crate) fn algorithm_identifier(contents: &[u8]) -> Result<(&[u8], Option<&[u8]>), DerError> {
    let mut d = Der::new(contents);
    let oid = d.expect(tag::OID)?;
    let params = if d.is_empty() { None } else { Some(d.any()?.2) };
    d.finish()?;
    Ok((oid, params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tlvs_and_rejects_non_der() {
        let mut d = Der::new(&[0x30, 0x03, 0x02, 0x01, 0x05, 0x05, 0x00]);
        let seq = d.expect(tag::SEQUENCE).unwrap();
        assert_eq!(
            small_uint(Der::new(seq).expect(tag::INTEGER).unwrap()),
            Ok(5)
        );
        assert_eq!(d.expect(tag::NULL).unwrap(), &[] as &[u8]);
        d.finish().unwrap();
        // Long form for a short length, truncated contents, indefinite length.
        for bad in [
            &[0x04, 0x81, 0x01, 0x00][..],
            &[0x04, 0x02, 0x00],
            &[0x30, 0x80],
        ] {
            assert_eq!(Der::new(bad).any(), Err(DerError));
        }
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend([7; 0x80]);
        assert_eq!(
            Der::new(&long).expect(tag::OCTET_STRING).unwrap().len(),
            0x80
        );
    }

    #[test]
    fn algorithm_identifiers() {
        // ecdsa-with-SHA256: no parameters.
        let c = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
        assert_eq!(algorithm_identifier(&c).unwrap(), (&c[2..], None));
        // sha256WithRSAEncryption: NULL parameters.
        let c = [
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00,
        ];
        assert_eq!(
            algorithm_identifier(&c).unwrap(),
            (&c[2..11], Some(&[0x05, 0x00][..]))
        );
    }
}

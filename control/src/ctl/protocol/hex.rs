//! SPIs as fixed-width lower-case hex strings (`"0123456789abcdef"`, `"c1a2b3c4"`): how people
//! and other IKE tools write them, and safe from JSON readers that turn integers above 2^53
//! into floats.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

const DIGITS: &[u8; 16] = b"0123456789abcdef";

fn write_hex<S: Serializer>(value: u64, width: usize, s: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; 16];
    for (i, b) in buf[..width].iter_mut().enumerate() {
        let shift = 4 * (width - 1 - i);
        *b = DIGITS[((value >> shift) & 0xf) as usize];
    }
    // Only ASCII hex digits were written.
    s.serialize_str(std::str::from_utf8(&buf[..width]).unwrap_or_default())
}

struct HexVisitor {
    max_digits: usize,
}

impl Visitor<'_> for HexVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an SPI of 1 to {} hex digits", self.max_digits)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        if v.is_empty() || v.len() > self.max_digits || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(E::invalid_value(de::Unexpected::Str(v), &self));
        }
        u64::from_str_radix(v, 16).map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
    }
}

/// An IKE SPI (`u64`) as 16 hex digits.
pub(super) mod u64_hex {
    use super::*;

    pub fn serialize<S: Serializer>(value: &u64, s: S) -> Result<S::Ok, S::Error> {
        write_hex(*value, 16, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        d.deserialize_str(HexVisitor { max_digits: 16 })
    }
}

/// An ESP SPI (`u32`) as 8 hex digits.
pub(super) mod u32_hex {
    use super::*;

    pub fn serialize<S: Serializer>(value: &u32, s: S) -> Result<S::Ok, S::Error> {
        write_hex(u64::from(*value), 8, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let v = d.deserialize_str(HexVisitor { max_digits: 8 })?;
        // At most 8 hex digits: fits.
        Ok(v as u32)
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Spis {
        #[serde(with = "super::u64_hex")]
        ike: u64,
        #[serde(with = "super::u32_hex")]
        esp: u32,
    }

    #[test]
    fn fixed_width_round_trip() {
        let v = Spis {
            ike: 0x0123_4567_89ab_cdef,
            esp: 0xc1,
        };
        let s = serde_json::to_string(&v).unwrap();
        assert_eq!(s, r#"{"ike":"0123456789abcdef","esp":"000000c1"}"#);
        assert_eq!(serde_json::from_str::<Spis>(&s).unwrap(), v);
        let max = Spis {
            ike: u64::MAX,
            esp: u32::MAX,
        };
        let s = serde_json::to_string(&max).unwrap();
        assert_eq!(s, r#"{"ike":"ffffffffffffffff","esp":"ffffffff"}"#);
        assert_eq!(serde_json::from_str::<Spis>(&s).unwrap(), max);
        assert_eq!(
            serde_json::from_str::<Spis>(r#"{"ike":"AB","esp":"1"}"#).unwrap(),
            Spis { ike: 0xab, esp: 1 }
        );
    }

    #[test]
    fn rejects() {
        for bad in [
            r#"{"ike":"","esp":"1"}"#,
            r#"{"ike":"1","esp":"100000000"}"#,
            r#"{"ike":"10000000000000000","esp":"1"}"#,
            r#"{"ike":"+1","esp":"1"}"#,
            r#"{"ike":"0x1","esp":"1"}"#,
            r#"{"ike":1,"esp":"1"}"#,
        ] {
            assert!(serde_json::from_str::<Spis>(bad).is_err(), "{bad}");
        }
    }
}

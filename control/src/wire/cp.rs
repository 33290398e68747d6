//! The Configuration payload (CP, RFC 7296 §3.15): remote-access address, DNS and the like.
//!
//! ```text
//! body      = CFG Type(1) RESERVED(3) | Attribute*
//! Attribute = R(1 bit) Attribute Type(15 bits) Length(2) | Value
//! ```

use super::codec::{put_u16, put_u8};
use super::{CfgAttributeType, CfgType, Codec, DecodeError, Reader, MAX_CONFIG_ATTRIBUTES};

/// The body of a CP payload.
#[doc(alias = "CP")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Configuration {
    /// CFG Type (request, reply, set, ack).
    pub cfg_type: CfgType,
    /// The configuration attributes.
    pub attributes: Vec<ConfigAttribute>,
}

/// A Configuration Attribute (RFC 7296 §3.15.1). An empty value in a CFG_REQUEST asks for
/// an attribute of that type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigAttribute {
    /// Attribute Type (15 bits; the reserved top bit is ignored on receipt).
    pub attribute_type: CfgAttributeType,
    /// The value, opaque here (e.g. 4 octets for INTERNAL_IP4_ADDRESS, 17 for
    /// INTERNAL_IP6_ADDRESS).
    pub value: Vec<u8>,
}

impl Codec for ConfigAttribute {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u16(out, self.attribute_type.value() & 0x7fff);
        put_u16(out, u16::try_from(self.value.len()).unwrap_or(u16::MAX));
        out.extend_from_slice(&self.value);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let attribute_type = CfgAttributeType::from(r.u16("CP attribute type")? & 0x7fff);
        let len = r.u16("CP attribute length")?;
        let value = r.take(usize::from(len), "CP attribute value")?.to_vec();
        Ok(ConfigAttribute {
            attribute_type,
            value,
        })
    }
}

impl Codec for Configuration {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u8(out, self.cfg_type.value());
        out.extend_from_slice(&[0, 0, 0]);
        for attribute in &self.attributes {
            attribute.encode(out);
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let cfg_type = CfgType::from(r.u8("CP CFG type")?);
        r.skip(3, "CP reserved")?;
        let mut attributes = Vec::new();
        while !r.is_empty() {
            if attributes.len() >= MAX_CONFIG_ATTRIBUTES {
                return Err(DecodeError::TooMany {
                    what: "configuration attributes",
                    limit: MAX_CONFIG_ATTRIBUTES,
                });
            }
            attributes.push(ConfigAttribute::read(r)?);
        }
        Ok(Configuration {
            cfg_type,
            attributes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_for_address_and_dns() -> Result<(), DecodeError> {
        let cp = Configuration {
            cfg_type: CfgType::Request,
            attributes: vec![
                ConfigAttribute {
                    attribute_type: CfgAttributeType::InternalIp4Address,
                    value: vec![],
                },
                ConfigAttribute {
                    attribute_type: CfgAttributeType::InternalIp4Dns,
                    value: vec![],
                },
            ],
        };
        let bytes = cp.to_bytes();
        assert_eq!(bytes, [1, 0, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0]);
        assert_eq!(Configuration::read(&mut Reader::new(&bytes))?, cp);
        Ok(())
    }

    #[test]
    fn attribute_value_beyond_payload_is_truncation() {
        let r = Configuration::read(&mut Reader::new(&[2, 0, 0, 0, 0, 1, 0, 4, 10, 0]));
        assert_eq!(
            r,
            Err(DecodeError::Truncated {
                what: "CP attribute value"
            })
        );
    }
}

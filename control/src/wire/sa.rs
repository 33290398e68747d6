//! The Security Association payload (SA, RFC 7296 §3.3): proposals, transforms and transform
//! attributes.
//!
//! ```text
//! SA payload body  = Proposal+
//! Proposal (§3.3.1) = Last(0|2) RESERVED Length(2) | Num ProtocolID SPISize NumTransforms
//!                     | SPI | Transform{NumTransforms}
//! Transform (§3.3.2) = Last(0|3) RESERVED Length(2) | Type RESERVED ID(2) | Attribute*
//! Attribute (§3.3.5) = AF|Type(15) then Value(2) if AF=1 (TV), else Length(2) Value (TLV)
//! ```
//!
//! The decoder insists that the "last" octets, the lengths and the transform count agree with
//! each other and with the payload length: a proposal that disagrees with itself is the kind
//! of input parsers get wrong, so it is refused rather than guessed at.

use super::codec::{patch_len16, put_u16, put_u8};
use super::{
    Codec, DecodeError, EncrId, EsnId, IntegId, KeMethod, PrfId, ProtocolId, Reader, TransformType,
    MAX_ATTRIBUTES, MAX_PROPOSALS, MAX_TRANSFORMS,
};

/// The SA payload (RFC 7296 §3.3): one or more proposals, in order of preference.
#[doc(alias = "SA")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityAssociation {
    /// The proposals (at least one on the wire).
    pub proposals: Vec<Proposal>,
}

/// A Proposal substructure (RFC 7296 §3.3.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// Proposal Num: 1 for the first proposal, then equal or one more (checked by the exchange
    /// layer, not here).
    pub number: u8,
    /// The protocol negotiated (IKE, AH or ESP).
    pub protocol: ProtocolId,
    /// The sending entity's SPI: empty in an initial IKE_SA_INIT, 8 octets for an IKE SA rekey,
    /// 4 for AH/ESP. Its length is the SPI Size field.
    pub spi: Vec<u8>,
    /// The transforms offered.
    pub transforms: Vec<Transform>,
}

/// A Transform substructure (RFC 7296 §3.3.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transform {
    /// The transform type and ID.
    pub id: TransformId,
    /// Transform attributes (only Key Length is defined by RFC 7296).
    pub attributes: Vec<TransformAttribute>,
}

/// A transform's type together with its ID, typed by the registry of that type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransformId {
    /// Type 1, Encryption Algorithm.
    Encr(EncrId),
    /// Type 2, Pseudorandom Function.
    Prf(PrfId),
    /// Type 3, Integrity Algorithm.
    Integ(IntegId),
    /// Type 4, Key Exchange Method (Diffie-Hellman group).
    Ke(KeMethod),
    /// Type 5, Extended Sequence Numbers.
    Esn(EsnId),
    /// Types 6–12, Additional Key Exchange 1–7 (RFC 9370 §2.2.1): the index (1–7; type is
    /// index + 5, so other indexes encode as some other type) and the method.
    AddKe(u8, KeMethod),
    /// A transform type without a name, kept as received.
    Unknown {
        /// Transform Type.
        transform_type: u8,
        /// Transform ID.
        id: u16,
    },
}

impl TransformId {
    /// The Transform Type field.
    pub fn transform_type(self) -> TransformType {
        match self {
            TransformId::Encr(_) => TransformType::Encr,
            TransformId::Prf(_) => TransformType::Prf,
            TransformId::Integ(_) => TransformType::Integ,
            TransformId::Ke(_) => TransformType::Ke,
            TransformId::Esn(_) => TransformType::Esn,
            TransformId::AddKe(n, _) => TransformType::from(n.saturating_add(5)),
            TransformId::Unknown { transform_type, .. } => TransformType::from(transform_type),
        }
    }

    /// The Transform ID field.
    pub fn id(self) -> u16 {
        match self {
            TransformId::Encr(v) => v.value(),
            TransformId::Prf(v) => v.value(),
            TransformId::Integ(v) => v.value(),
            TransformId::Ke(v) | TransformId::AddKe(_, v) => v.value(),
            TransformId::Esn(v) => v.value(),
            TransformId::Unknown { id, .. } => id,
        }
    }

    /// The typed form of a (type, ID) pair from the wire.
    pub fn from_wire(transform_type: u8, id: u16) -> Self {
        match TransformType::from(transform_type) {
            TransformType::Encr => TransformId::Encr(id.into()),
            TransformType::Prf => TransformId::Prf(id.into()),
            TransformType::Integ => TransformId::Integ(id.into()),
            TransformType::Ke => TransformId::Ke(id.into()),
            TransformType::Esn => TransformId::Esn(id.into()),
            TransformType::AddKe1
            | TransformType::AddKe2
            | TransformType::AddKe3
            | TransformType::AddKe4
            | TransformType::AddKe5
            | TransformType::AddKe6
            | TransformType::AddKe7 => {
                TransformId::AddKe(transform_type.saturating_sub(5), id.into())
            }
            _ => TransformId::Unknown { transform_type, id },
        }
    }
}

/// A transform attribute (RFC 7296 §3.3.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransformAttribute {
    /// Key Length (type 14, TV format): the key size in bits, for ciphers with variable keys.
    KeyLength(u16),
    /// Another attribute in TV format (AF = 1): a 15-bit type and a 2-octet value.
    Tv {
        /// Attribute Type (15 bits).
        attribute_type: u16,
        /// Attribute Value.
        value: u16,
    },
    /// An attribute in TLV format (AF = 0).
    Tlv {
        /// Attribute Type (15 bits).
        attribute_type: u16,
        /// Attribute Value.
        value: Vec<u8>,
    },
}

impl TransformAttribute {
    const AF_TV: u16 = 0x8000;
    const KEY_LENGTH: u16 = 14;
}

impl Codec for TransformAttribute {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            TransformAttribute::KeyLength(bits) => {
                put_u16(out, Self::AF_TV | Self::KEY_LENGTH);
                put_u16(out, *bits);
            }
            TransformAttribute::Tv {
                attribute_type,
                value,
            } => {
                put_u16(out, Self::AF_TV | (attribute_type & 0x7fff));
                put_u16(out, *value);
            }
            TransformAttribute::Tlv {
                attribute_type,
                value,
            } => {
                put_u16(out, attribute_type & 0x7fff);
                put_u16(out, u16::try_from(value.len()).unwrap_or(u16::MAX));
                out.extend_from_slice(value);
            }
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let word = r.u16("transform attribute type")?;
        let attribute_type = word & 0x7fff;
        if word & Self::AF_TV != 0 {
            let value = r.u16("transform attribute value")?;
            Ok(if attribute_type == Self::KEY_LENGTH {
                TransformAttribute::KeyLength(value)
            } else {
                TransformAttribute::Tv {
                    attribute_type,
                    value,
                }
            })
        } else {
            let len = r.u16("transform attribute length")?;
            let value = r
                .take(usize::from(len), "transform attribute value")?
                .to_vec();
            Ok(TransformAttribute::Tlv {
                attribute_type,
                value,
            })
        }
    }
}

impl Transform {
    /// A transform without attributes.
    pub fn new(id: TransformId) -> Self {
        Transform {
            id,
            attributes: Vec::new(),
        }
    }

    /// A transform with a Key Length attribute (e.g. ENCR_AES_CBC with 256 bits).
    pub fn with_key_length(id: TransformId, bits: u16) -> Self {
        Transform {
            id,
            attributes: vec![TransformAttribute::KeyLength(bits)],
        }
    }

    /// The Key Length attribute, if present.
    pub fn key_length(&self) -> Option<u16> {
        self.attributes.iter().find_map(|a| match a {
            TransformAttribute::KeyLength(bits) => Some(*bits),
            _ => None,
        })
    }

    /// Writes the transform with its "last substructure" octet.
    fn encode_with_last(&self, last: bool, out: &mut Vec<u8>) {
        let start = out.len();
        put_u8(out, if last { 0 } else { 3 });
        put_u8(out, 0);
        put_u16(out, 0); // Transform Length, patched below.
        put_u8(out, self.id.transform_type().value());
        put_u8(out, 0);
        put_u16(out, self.id.id());
        for attribute in &self.attributes {
            attribute.encode(out);
        }
        patch_len16(out, start);
    }

    /// Reads one transform; returns it and whether its "last" octet said it was the last.
    fn read_with_last(r: &mut Reader<'_>) -> Result<(Self, bool), DecodeError> {
        let last = match r.u8("transform last substructure")? {
            0 => true,
            3 => false,
            value => {
                return Err(DecodeError::LastSubstructure {
                    what: "transform",
                    value,
                })
            }
        };
        r.skip(1, "transform reserved")?;
        let length = usize::from(r.u16("transform length")?);
        // The length counts the 4 octets already read; 8 is the fixed part.
        let Some(body_len) = length.checked_sub(4).filter(|_| length >= 8) else {
            return Err(DecodeError::InvalidLength {
                what: "transform length",
                length,
            });
        };
        let mut body = r.sub(body_len, "transform")?;
        let transform_type = body.u8("transform type")?;
        body.skip(1, "transform reserved")?;
        let id = TransformId::from_wire(transform_type, body.u16("transform ID")?);
        let mut attributes = Vec::new();
        while !body.is_empty() {
            if attributes.len() >= MAX_ATTRIBUTES {
                return Err(DecodeError::TooMany {
                    what: "transform attributes",
                    limit: MAX_ATTRIBUTES,
                });
            }
            attributes.push(TransformAttribute::read(&mut body)?);
        }
        Ok((Transform { id, attributes }, last))
    }
}

impl Proposal {
    /// Writes the proposal with its "last substructure" octet.
    fn encode_with_last(&self, last: bool, out: &mut Vec<u8>) {
        let start = out.len();
        put_u8(out, if last { 0 } else { 2 });
        put_u8(out, 0);
        put_u16(out, 0); // Proposal Length, patched below.
        put_u8(out, self.number);
        put_u8(out, self.protocol.value());
        put_u8(out, u8::try_from(self.spi.len()).unwrap_or(u8::MAX));
        put_u8(out, u8::try_from(self.transforms.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(&self.spi);
        let count = self.transforms.len();
        for (i, transform) in self.transforms.iter().enumerate() {
            transform.encode_with_last(i.saturating_add(1) == count, out);
        }
        patch_len16(out, start);
    }

    /// Reads one proposal; returns it and whether its "last" octet said it was the last.
    fn read_with_last(r: &mut Reader<'_>) -> Result<(Self, bool), DecodeError> {
        let last = match r.u8("proposal last substructure")? {
            0 => true,
            2 => false,
            value => {
                return Err(DecodeError::LastSubstructure {
                    what: "proposal",
                    value,
                })
            }
        };
        r.skip(1, "proposal reserved")?;
        let length = usize::from(r.u16("proposal length")?);
        let Some(body_len) = length.checked_sub(4).filter(|_| length >= 8) else {
            return Err(DecodeError::InvalidLength {
                what: "proposal length",
                length,
            });
        };
        let mut body = r.sub(body_len, "proposal")?;
        let number = body.u8("proposal number")?;
        let protocol = ProtocolId::from(body.u8("proposal protocol ID")?);
        let spi_size = body.u8("proposal SPI size")?;
        let declared = usize::from(body.u8("proposal number of transforms")?);
        let spi = body.take(usize::from(spi_size), "proposal SPI")?.to_vec();
        if declared > MAX_TRANSFORMS {
            return Err(DecodeError::TooMany {
                what: "transforms in a proposal",
                limit: MAX_TRANSFORMS,
            });
        }
        let mut transforms = Vec::new();
        while !body.is_empty() {
            if transforms.len() >= declared {
                return Err(DecodeError::CountMismatch {
                    what: "proposal number of transforms",
                    declared,
                    found: transforms.len().saturating_add(1),
                });
            }
            let (transform, is_last) = Transform::read_with_last(&mut body)?;
            transforms.push(transform);
            // "0 (last) or 3 (more)" must agree with the count: a transform that says it is the
            // last while more are declared (or the reverse) is malformed (§3.3.2).
            if is_last != (transforms.len() == declared) {
                return Err(DecodeError::LastSubstructure {
                    what: "transform",
                    value: if is_last { 0 } else { 3 },
                });
            }
        }
        if transforms.len() != declared {
            return Err(DecodeError::CountMismatch {
                what: "proposal number of transforms",
                declared,
                found: transforms.len(),
            });
        }
        let proposal = Proposal {
            number,
            protocol,
            spi,
            transforms,
        };
        Ok((proposal, last))
    }
}

impl Codec for SecurityAssociation {
    fn encode(&self, out: &mut Vec<u8>) {
        let count = self.proposals.len();
        for (i, proposal) in self.proposals.iter().enumerate() {
            proposal.encode_with_last(i.saturating_add(1) == count, out);
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut proposals = Vec::new();
        loop {
            if proposals.len() >= MAX_PROPOSALS {
                return Err(DecodeError::TooMany {
                    what: "proposals in an SA payload",
                    limit: MAX_PROPOSALS,
                });
            }
            let (proposal, is_last) = Proposal::read_with_last(r)?;
            proposals.push(proposal);
            match (is_last, r.is_empty()) {
                (true, true) => return Ok(SecurityAssociation { proposals }),
                (false, false) => continue,
                // "Last" but bytes follow: §3.3.1 says the last proposal is marked 0.
                (true, false) => {
                    return Err(DecodeError::TrailingBytes {
                        what: "last proposal of an SA payload",
                        count: r.remaining(),
                    })
                }
                // "More" but the payload ends.
                (false, true) => {
                    return Err(DecodeError::Truncated {
                        what: "SA proposal",
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ike_proposal() -> SecurityAssociation {
        SecurityAssociation {
            proposals: vec![Proposal {
                number: 1,
                protocol: ProtocolId::Ike,
                spi: vec![],
                transforms: vec![
                    Transform::with_key_length(TransformId::Encr(EncrId::AesCbc), 128),
                    Transform::new(TransformId::Prf(PrfId::HmacSha2_256)),
                    Transform::new(TransformId::Integ(IntegId::HmacSha2_256_128)),
                    Transform::new(TransformId::Ke(KeMethod::Curve25519)),
                ],
            }],
        }
    }

    #[test]
    fn known_bytes() -> Result<(), DecodeError> {
        let sa = ike_proposal();
        let bytes = sa.to_bytes();
        let expected: &[u8] = &[
            0, 0, 0, 44, 1, 1, 0, 4, // proposal header
            3, 0, 0, 12, 1, 0, 0, 12, 0x80, 0x0e, 0, 128, // ENCR_AES_CBC, key length 128
            3, 0, 0, 8, 2, 0, 0, 5, // PRF_HMAC_SHA2_256
            3, 0, 0, 8, 3, 0, 0, 12, // AUTH_HMAC_SHA2_256_128
            0, 0, 0, 8, 4, 0, 0, 31, // Curve25519, last
        ];
        assert_eq!(bytes, expected);
        assert_eq!(SecurityAssociation::read(&mut Reader::new(&bytes))?, sa);
        assert_eq!(sa.proposals[0].transforms[0].key_length(), Some(128));
        Ok(())
    }

    #[test]
    fn inconsistent_last_markers_and_counts_are_refused() {
        let good = ike_proposal().to_bytes();
        // The last transform claims "more".
        let mut b = good.clone();
        b[36] = 3;
        assert!(SecurityAssociation::read(&mut Reader::new(&b)).is_err());
        // The first transform claims "last".
        let mut b = good.clone();
        b[8] = 0;
        assert!(SecurityAssociation::read(&mut Reader::new(&b)).is_err());
        // Num Transforms says 5: the fourth transform's "last" contradicts it.
        let mut b = good.clone();
        b[7] = 5;
        assert_eq!(
            SecurityAssociation::read(&mut Reader::new(&b)),
            Err(DecodeError::LastSubstructure {
                what: "transform",
                value: 0
            })
        );
        // Num Transforms says 3: a fourth transform is present.
        let mut b = good.clone();
        b[7] = 3;
        assert!(matches!(
            SecurityAssociation::read(&mut Reader::new(&b)),
            Err(DecodeError::LastSubstructure { .. } | DecodeError::CountMismatch { .. })
        ));
        // The proposal claims "more" but nothing follows.
        let mut b = good.clone();
        b[0] = 2;
        assert!(SecurityAssociation::read(&mut Reader::new(&b)).is_err());
        // A bogus last octet.
        let mut b = good;
        b[0] = 1;
        assert_eq!(
            SecurityAssociation::read(&mut Reader::new(&b)),
            Err(DecodeError::LastSubstructure {
                what: "proposal",
                value: 1
            })
        );
    }

    #[test]
    fn additional_key_exchange_types() {
        let t = TransformId::from_wire(6, 36);
        assert_eq!(t, TransformId::AddKe(1, KeMethod::MlKem768));
        assert_eq!(t.transform_type(), TransformType::AddKe1);
        assert_eq!(TransformId::from_wire(12, 35).transform_type().value(), 12);
        assert_eq!(
            TransformId::from_wire(99, 7),
            TransformId::Unknown {
                transform_type: 99,
                id: 7
            }
        );
    }
}

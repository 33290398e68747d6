//! The Traffic Selector payloads (TSi and TSr, RFC 7296 §3.13).
//!
//! ```text
//! body             = Number of TSs(1) RESERVED(3) | Traffic Selector{Number of TSs}
//! Traffic Selector = TS Type(1) IP Protocol ID(1) Selector Length(2)
//!                    | Start Port(2) End Port(2) | Starting Address | Ending Address
//! ```

use std::net::{Ipv4Addr, Ipv6Addr};

use super::codec::{patch_len16, put_u16, put_u8};
use super::{Codec, DecodeError, Reader, TsType, MAX_TRAFFIC_SELECTORS};

/// The body of a TSi or TSr payload: the selectors, in the sender's order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrafficSelectors {
    /// The traffic selectors.
    pub selectors: Vec<TrafficSelector>,
}

/// One Traffic Selector (RFC 7296 §3.13.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrafficSelector {
    /// TS_IPV4_ADDR_RANGE: IPv4 addresses `start..=end`, ports `start_port..=end_port`.
    Ipv4 {
        /// IP Protocol ID (0 = any).
        ip_protocol: u8,
        /// Start Port (0 for any; for ICMP, type and code, §3.13.1).
        start_port: u16,
        /// End Port (65535 for any).
        end_port: u16,
        /// Starting Address.
        start: Ipv4Addr,
        /// Ending Address.
        end: Ipv4Addr,
    },
    /// TS_IPV6_ADDR_RANGE: IPv6 addresses `start..=end`, ports `start_port..=end_port`.
    Ipv6 {
        /// IP Protocol ID (0 = any).
        ip_protocol: u8,
        /// Start Port.
        start_port: u16,
        /// End Port.
        end_port: u16,
        /// Starting Address.
        start: Ipv6Addr,
        /// Ending Address.
        end: Ipv6Addr,
    },
    /// Any other type (TS_FC_ADDR_RANGE, TS_SECLABEL, unassigned), kept as received.
    Other {
        /// TS Type.
        ts_type: TsType,
        /// The octet after the type (IP Protocol ID or reserved, depending on the type).
        second_octet: u8,
        /// Everything after the 4-octet selector header.
        data: Vec<u8>,
    },
}

impl TrafficSelector {
    /// Selector Length of an IPv4 range: 4 header + 4 ports + 2 × 4 address octets.
    const IPV4_LEN: usize = 16;
    /// Selector Length of an IPv6 range: 4 header + 4 ports + 2 × 16 address octets.
    const IPV6_LEN: usize = 40;

    /// Every IPv4 address, protocol and port.
    pub fn ipv4_any() -> Self {
        TrafficSelector::Ipv4 {
            ip_protocol: 0,
            start_port: 0,
            end_port: u16::MAX,
            start: Ipv4Addr::UNSPECIFIED,
            end: Ipv4Addr::BROADCAST,
        }
    }

    /// The TS Type field.
    pub fn ts_type(&self) -> TsType {
        match self {
            TrafficSelector::Ipv4 { .. } => TsType::Ipv4AddrRange,
            TrafficSelector::Ipv6 { .. } => TsType::Ipv6AddrRange,
            TrafficSelector::Other { ts_type, .. } => *ts_type,
        }
    }
}

impl Codec for TrafficSelector {
    fn encode(&self, out: &mut Vec<u8>) {
        let start_at = out.len();
        put_u8(out, self.ts_type().value());
        match self {
            TrafficSelector::Ipv4 {
                ip_protocol,
                start_port,
                end_port,
                start,
                end,
            } => {
                put_u8(out, *ip_protocol);
                put_u16(out, 0); // Selector Length, patched below.
                put_u16(out, *start_port);
                put_u16(out, *end_port);
                out.extend_from_slice(&start.octets());
                out.extend_from_slice(&end.octets());
            }
            TrafficSelector::Ipv6 {
                ip_protocol,
                start_port,
                end_port,
                start,
                end,
            } => {
                put_u8(out, *ip_protocol);
                put_u16(out, 0);
                put_u16(out, *start_port);
                put_u16(out, *end_port);
                out.extend_from_slice(&start.octets());
                out.extend_from_slice(&end.octets());
            }
            TrafficSelector::Other {
                second_octet, data, ..
            } => {
                put_u8(out, *second_octet);
                put_u16(out, 0);
                out.extend_from_slice(data);
            }
        }
        patch_len16(out, start_at);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let ts_type = TsType::from(r.u8("TS type")?);
        let second_octet = r.u8("TS IP protocol ID")?;
        let length = usize::from(r.u16("TS selector length")?);
        let expected = match ts_type {
            TsType::Ipv4AddrRange => Some(Self::IPV4_LEN),
            TsType::Ipv6AddrRange => Some(Self::IPV6_LEN),
            _ => None,
        };
        let length_ok = match expected {
            Some(expected) => length == expected,
            None => length >= 4,
        };
        if !length_ok {
            return Err(DecodeError::InvalidLength {
                what: "TS selector length",
                length,
            });
        }
        let mut body = r.sub(length.saturating_sub(4), "traffic selector")?;
        Ok(match ts_type {
            TsType::Ipv4AddrRange => TrafficSelector::Ipv4 {
                ip_protocol: second_octet,
                start_port: body.u16("TS start port")?,
                end_port: body.u16("TS end port")?,
                start: Ipv4Addr::from(body.array::<4>("TS starting address")?),
                end: Ipv4Addr::from(body.array::<4>("TS ending address")?),
            },
            TsType::Ipv6AddrRange => TrafficSelector::Ipv6 {
                ip_protocol: second_octet,
                start_port: body.u16("TS start port")?,
                end_port: body.u16("TS end port")?,
                start: Ipv6Addr::from(body.array::<16>("TS starting address")?),
                end: Ipv6Addr::from(body.array::<16>("TS ending address")?),
            },
            _ => TrafficSelector::Other {
                ts_type,
                second_octet,
                data: body.rest().to_vec(),
            },
        })
    }
}

impl Codec for TrafficSelectors {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u8(out, u8::try_from(self.selectors.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(&[0, 0, 0]);
        for ts in &self.selectors {
            ts.encode(out);
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let declared = usize::from(r.u8("Number of TSs")?);
        r.skip(3, "TS payload reserved")?;
        if declared > MAX_TRAFFIC_SELECTORS {
            return Err(DecodeError::TooMany {
                what: "traffic selectors",
                limit: MAX_TRAFFIC_SELECTORS,
            });
        }
        let mut selectors = Vec::new();
        while !r.is_empty() {
            if selectors.len() >= declared {
                return Err(DecodeError::CountMismatch {
                    what: "Number of TSs",
                    declared,
                    found: selectors.len().saturating_add(1),
                });
            }
            selectors.push(TrafficSelector::read(r)?);
        }
        if selectors.len() != declared {
            return Err(DecodeError::CountMismatch {
                what: "Number of TSs",
                declared,
                found: selectors.len(),
            });
        }
        Ok(TrafficSelectors { selectors })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_and_ipv6_known_bytes() -> Result<(), DecodeError> {
        let ts = TrafficSelectors {
            selectors: vec![
                TrafficSelector::Ipv4 {
                    ip_protocol: 17,
                    start_port: 500,
                    end_port: 500,
                    start: Ipv4Addr::new(10, 0, 0, 0),
                    end: Ipv4Addr::new(10, 0, 0, 255),
                },
                TrafficSelector::Ipv6 {
                    ip_protocol: 0,
                    start_port: 0,
                    end_port: 65535,
                    start: Ipv6Addr::UNSPECIFIED,
                    end: Ipv6Addr::from([0xff; 16]),
                },
            ],
        };
        let bytes = ts.to_bytes();
        assert_eq!(bytes.len(), 4 + 16 + 40);
        assert_eq!(
            &bytes[..20],
            &[2, 0, 0, 0, 7, 17, 0, 16, 1, 0xf4, 1, 0xf4, 10, 0, 0, 0, 10, 0, 0, 255]
        );
        assert_eq!(&bytes[20..24], &[8, 0, 0, 40]);
        assert_eq!(TrafficSelectors::read(&mut Reader::new(&bytes))?, ts);
        Ok(())
    }

    #[test]
    fn wrong_selector_length_and_count_are_refused() {
        let mut b = TrafficSelectors {
            selectors: vec![TrafficSelector::ipv4_any()],
        }
        .to_bytes();
        b[7] = 17;
        assert!(matches!(
            TrafficSelectors::read(&mut Reader::new(&b)),
            Err(DecodeError::InvalidLength { length: 17, .. })
        ));
        b[7] = 16;
        b[0] = 2;
        assert!(matches!(
            TrafficSelectors::read(&mut Reader::new(&b)),
            Err(DecodeError::CountMismatch {
                declared: 2,
                found: 1,
                ..
            })
        ));
    }

    #[test]
    fn unknown_selector_types_are_kept() -> Result<(), DecodeError> {
        let bytes = [1, 0, 0, 0, 10, 0, 0, 7, 1, 2, 3];
        let ts = TrafficSelectors::read(&mut Reader::new(&bytes))?;
        assert_eq!(ts.selectors[0].ts_type(), TsType::SecLabel);
        assert_eq!(ts.to_bytes(), bytes);
        Ok(())
    }
}

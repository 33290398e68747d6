//! Helpers shared by the wire integration tests: hex input and proptest strategies that build
//! every payload in canonical form (so that decode(encode(m)) == m must hold exactly).
#![allow(dead_code)]

use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::collection::vec;
use proptest::prelude::*;
use xipsec_control::wire::*;

/// Decodes hex, ignoring whitespace (so captures can be pasted line by line).
pub fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

/// Rewrites the IKE header's Length field (so a truncated datagram gets past the length check
/// and exercises the payload decoders).
pub fn set_length(datagram: &mut [u8]) {
    let len = u32::try_from(datagram.len()).unwrap();
    if datagram.len() >= 28 {
        datagram[24..28].copy_from_slice(&len.to_be_bytes());
    }
}

pub fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=max)
}

pub fn transform_attribute() -> impl Strategy<Value = TransformAttribute> {
    prop_oneof![
        any::<u16>().prop_map(TransformAttribute::KeyLength),
        (0u16..0x8000, any::<u16>())
            .prop_filter("type 14 in TV form is KeyLength", |(t, _)| *t != 14)
            .prop_map(|(attribute_type, value)| TransformAttribute::Tv {
                attribute_type,
                value
            }),
        (0u16..0x8000, bytes(8)).prop_map(|(attribute_type, value)| TransformAttribute::Tlv {
            attribute_type,
            value
        }),
    ]
}

pub fn transform() -> impl Strategy<Value = Transform> {
    (any::<u8>(), any::<u16>(), vec(transform_attribute(), 0..3)).prop_map(|(t, id, attributes)| {
        Transform {
            id: TransformId::from_wire(t, id),
            attributes,
        }
    })
}

pub fn proposal() -> impl Strategy<Value = Proposal> {
    (any::<u8>(), any::<u8>(), bytes(8), vec(transform(), 0..6)).prop_map(
        |(number, protocol, spi, transforms)| Proposal {
            number,
            protocol: protocol.into(),
            spi,
            transforms,
        },
    )
}

pub fn traffic_selector() -> impl Strategy<Value = TrafficSelector> {
    prop_oneof![
        (
            any::<u8>(),
            any::<u16>(),
            any::<u16>(),
            any::<[u8; 4]>(),
            any::<[u8; 4]>()
        )
            .prop_map(
                |(ip_protocol, start_port, end_port, s, e)| TrafficSelector::Ipv4 {
                    ip_protocol,
                    start_port,
                    end_port,
                    start: Ipv4Addr::from(s),
                    end: Ipv4Addr::from(e),
                }
            ),
        (
            any::<u8>(),
            any::<u16>(),
            any::<u16>(),
            any::<[u8; 16]>(),
            any::<[u8; 16]>()
        )
            .prop_map(
                |(ip_protocol, start_port, end_port, s, e)| TrafficSelector::Ipv6 {
                    ip_protocol,
                    start_port,
                    end_port,
                    start: Ipv6Addr::from(s),
                    end: Ipv6Addr::from(e),
                }
            ),
        (any::<u8>(), any::<u8>(), bytes(12))
            .prop_filter("7 and 8 are the IP ranges", |(t, _, _)| *t != 7 && *t != 8)
            .prop_map(|(t, second_octet, data)| TrafficSelector::Other {
                ts_type: t.into(),
                second_octet,
                data,
            }),
    ]
}

pub fn traffic_selectors() -> impl Strategy<Value = TrafficSelectors> {
    vec(traffic_selector(), 0..4).prop_map(|selectors| TrafficSelectors { selectors })
}

/// Payload types the codec understands (and so never produces as `Unknown`).
pub fn is_understood(t: u8) -> bool {
    (33..=48).contains(&t) || t == 53
}

/// Any payload that may appear before the end of a chain (everything but SK and SKF).
pub fn inner_payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        vec(proposal(), 1..4).prop_map(|proposals| Payload::Sa(SecurityAssociation { proposals })),
        (any::<u16>(), bytes(64)).prop_map(|(g, data)| Payload::Ke(KeyExchange {
            group: g.into(),
            data
        })),
        (any::<u8>(), bytes(32)).prop_map(|(t, data)| Payload::IdI(Identification {
            id_type: t.into(),
            data
        })),
        (any::<u8>(), bytes(32)).prop_map(|(t, data)| Payload::IdR(Identification {
            id_type: t.into(),
            data
        })),
        (any::<u8>(), bytes(64)).prop_map(|(e, data)| Payload::Cert(Certificate {
            encoding: e.into(),
            data
        })),
        (any::<u8>(), bytes(40)).prop_map(|(e, authorities)| Payload::CertReq(
            CertificateRequest {
                encoding: e.into(),
                authorities
            }
        )),
        (any::<u8>(), bytes(64)).prop_map(|(m, data)| Payload::Auth(Authentication {
            method: m.into(),
            data
        })),
        vec(any::<u8>(), 16..=256).prop_map(|n| Payload::Nonce(Nonce(n))),
        (any::<u8>(), bytes(8), any::<u16>(), bytes(24)).prop_map(|(p, spi, t, data)| {
            Payload::Notify(Notify {
                protocol: p.into(),
                spi,
                notify_type: t.into(),
                data,
            })
        }),
        (any::<u8>(), 0u8..=8, 0usize..4).prop_flat_map(|(p, size, n)| {
            vec(any::<u8>(), usize::from(size) * n).prop_map(move |spis| {
                Payload::Delete(Delete {
                    protocol: p.into(),
                    spi_size: size,
                    spis,
                })
            })
        }),
        bytes(20).prop_map(|v| Payload::VendorId(VendorId(v))),
        traffic_selectors().prop_map(Payload::TsI),
        traffic_selectors().prop_map(Payload::TsR),
        (any::<u8>(), vec((0u16..0x8000, bytes(17)), 0..4)).prop_map(|(t, attrs)| Payload::Cp(
            Configuration {
                cfg_type: t.into(),
                attributes: attrs
                    .into_iter()
                    .map(|(a, value)| ConfigAttribute {
                        attribute_type: a.into(),
                        value
                    })
                    .collect(),
            }
        )),
        bytes(32).prop_map(|v| Payload::Eap(Eap(v))),
        (any::<u8>(), bytes(16))
            .prop_filter("understood types never decode as Unknown", |(t, _)| {
                *t != 0 && !is_understood(*t)
            })
            .prop_map(|(t, data)| Payload::Unknown(UnknownPayload {
                payload_type: t.into(),
                data
            })),
    ]
}

/// An SK or SKF payload, which can only end a chain.
pub fn final_payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        (any::<u8>(), bytes(64)).prop_map(|(n, data)| Payload::Sk(Encrypted {
            next_payload: n.into(),
            data
        })),
        (any::<u8>(), 1u16..=u16::MAX, bytes(64))
            .prop_flat_map(|(n, total, data)| (Just(n), 1..=total, Just(total), Just(data)))
            .prop_map(|(n, fragment_number, total_fragments, data)| {
                Payload::Skf(EncryptedFragment {
                    next_payload: n.into(),
                    fragment_number,
                    total_fragments,
                    data,
                })
            }),
    ]
}

pub fn payload_chain() -> impl Strategy<Value = Vec<Payload>> {
    (
        vec(inner_payload(), 0..8),
        proptest::option::of(final_payload()),
    )
        .prop_map(|(mut payloads, last)| {
            payloads.extend(last);
            payloads
        })
}

pub fn header() -> impl Strategy<Value = Header> {
    (
        any::<u64>(),
        any::<u64>(),
        0u8..16,
        any::<u8>(),
        any::<(bool, bool, bool)>(),
        any::<u32>(),
    )
        .prop_map(|(i, r, minor, ex, (fi, fv, fr), message_id)| Header {
            initiator_spi: i,
            responder_spi: r,
            major_version: 2,
            minor_version: minor,
            exchange_type: ex.into(),
            flags: Flags {
                initiator: fi,
                version: fv,
                response: fr,
            },
            message_id,
        })
}

pub fn message() -> impl Strategy<Value = Message> {
    (header(), payload_chain()).prop_map(|(header, payloads)| Message { header, payloads })
}

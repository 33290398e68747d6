//! Hostile input: truncations, random bytes, mutations, the Critical bit, limits and lengths
//! that disagree. Nothing may panic, and everything wrong must be reported as an error.

mod common;

use common::*;
use proptest::prelude::*;
use xipsec_control::wire::*;

fn header_bytes(next: u8, len: u32) -> Vec<u8> {
    let mut out = Vec::new();
    Header::new(0x1111, 0, ExchangeType::IkeSaInit, Flags::default(), 0).write(
        PayloadType::from(next),
        len,
        &mut out,
    );
    out
}

/// A datagram with the given first payload type and payload bytes, with a correct Length.
fn datagram(first: u8, payloads: &[u8]) -> Vec<u8> {
    let mut out = header_bytes(first, 0);
    out.extend_from_slice(payloads);
    set_length(&mut out);
    out
}

/// What the fuzz target checks (fuzz/fuzz_targets/ike_message.rs), as a property.
fn fuzz_property(data: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(m) = Message::decode(data) {
        let again = Message::decode(&m.encode());
        prop_assert_eq!(again, Ok(m));
    }
    let located = locate_encrypted(data);
    if let Ok(m) = Message::decode(data) {
        // Whatever decodes can be located, and the two agree on the SK/SKF payload.
        let has_encrypted = matches!(m.payloads.last(), Some(Payload::Sk(_) | Payload::Skf(_)));
        prop_assert_eq!(located.map(|l| l.is_some()), Ok(has_encrypted));
    }
    if let Some((&first, rest)) = data.split_first() {
        if let Ok(chain) = decode_chain(PayloadType::from(first), rest) {
            let mut out = Vec::new();
            let first = encode_chain(&chain, &mut out);
            prop_assert_eq!(decode_chain(first, &out), Ok(chain));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        fuzz_property(&data)?;
    }

    #[test]
    fn random_payloads_behind_a_valid_header_never_panic(
        first in any::<u8>(),
        body in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        fuzz_property(&datagram(first, &body))?;
    }

    /// Every proper prefix of a valid message fails: first as received (the Length field no
    /// longer matches), then with the Length field patched so that the payload decoders see
    /// the cut.
    #[test]
    fn every_truncation_fails_cleanly(m in message()) {
        let bytes = m.encode();
        for cut in 0..bytes.len() {
            let mut prefix = bytes[..cut].to_vec();
            prop_assert!(Message::decode(&prefix).is_err(), "cut at {}", cut);
            set_length(&mut prefix);
            prop_assert!(Message::decode(&prefix).is_err(), "cut at {} with length patched", cut);
            // The chain walk alone already notices: a payload overruns the cut, or a Next
            // Payload field promises one that is not there.
            prop_assert!(locate_encrypted(&prefix).is_err(), "locate, cut at {}", cut);
        }
    }

    /// Every truncation of an encoded payload chain fails.
    #[test]
    fn every_chain_truncation_fails(chain in payload_chain()) {
        let mut bytes = Vec::new();
        let first = encode_chain(&chain, &mut bytes);
        for cut in 0..bytes.len() {
            prop_assert!(decode_chain(first, &bytes[..cut]).is_err(), "cut at {}", cut);
        }
    }

    /// Flipping bytes of a valid message never panics, and whatever still decodes round-trips.
    #[test]
    fn mutations_never_panic(
        m in message(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut bytes = m.encode();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        fuzz_property(&bytes)?;
        set_length(&mut bytes);
        fuzz_property(&bytes)?;
    }

    /// A datagram whose Length field disagrees with its size, either way, is refused.
    #[test]
    fn length_field_must_match_the_datagram(m in message(), delta in 1u32..100, longer in any::<bool>()) {
        let mut bytes = m.encode();
        let len = u32::try_from(bytes.len()).unwrap();
        let wrong = if longer { len + delta } else { len.saturating_sub(delta) };
        bytes[24..28].copy_from_slice(&wrong.to_be_bytes());
        prop_assert_eq!(
            Message::decode(&bytes),
            Err(DecodeError::MessageLength { declared: wrong, actual: bytes.len() })
        );
    }
}

#[test]
fn unknown_critical_payload_asks_for_unsupported_critical_payload() {
    // A Vendor ID, then payload type 200 with the Critical bit, then nothing.
    let bytes = datagram(43, &[200, 0, 0, 5, 0xaa, 0, 0x80, 0, 6, 1, 2]);
    let err = Message::decode(&bytes).unwrap_err();
    assert_eq!(
        err,
        DecodeError::UnsupportedCriticalPayload { payload_type: 200 }
    );
    assert_eq!(err.notify_type(), NotifyType::UnsupportedCriticalPayload);
    assert_eq!(err.to_notify(), Notify::unsupported_critical_payload(200));
    assert_eq!(err.to_notify().data, [200]);
}

#[test]
fn unknown_non_critical_payload_is_kept_and_re_encoded_exactly() {
    let bytes = datagram(43, &[200, 0, 0, 5, 0xaa, 0, 0x00, 0, 6, 1, 2]);
    let m = Message::decode(&bytes).unwrap();
    assert_eq!(
        m.payloads[1],
        Payload::Unknown(UnknownPayload {
            payload_type: PayloadType::from(200),
            data: vec![1, 2]
        })
    );
    assert_eq!(m.encode(), bytes);
}

#[test]
fn known_payload_with_critical_bit_is_understood_and_the_bit_ignored() {
    // §3.2: the Critical bit "MUST be ignored by the recipient if the recipient understands
    // the payload type code". Re-encoding sends it as zero.
    let bytes = datagram(43, &[0, 0x80, 0, 5, 0xaa]);
    let m = Message::decode(&bytes).unwrap();
    assert_eq!(m.payloads, [Payload::VendorId(VendorId(vec![0xaa]))]);
    assert_eq!(m.encode(), datagram(43, &[0, 0x00, 0, 5, 0xaa]));
}

#[test]
fn payload_count_is_limited() {
    let vendor_ids = |n: usize| {
        let mut body = Vec::new();
        for i in 0..n {
            body.extend_from_slice(&[if i + 1 == n { 0 } else { 43 }, 0, 0, 4]);
        }
        datagram(43, &body)
    };
    assert_eq!(
        Message::decode(&vendor_ids(MAX_PAYLOADS))
            .unwrap()
            .payloads
            .len(),
        MAX_PAYLOADS
    );
    assert_eq!(
        Message::decode(&vendor_ids(MAX_PAYLOADS + 1)),
        Err(DecodeError::TooMany {
            what: "payloads in a chain",
            limit: MAX_PAYLOADS
        })
    );
    assert!(locate_encrypted(&vendor_ids(MAX_PAYLOADS + 1)).is_err());
}

#[test]
fn proposal_and_transform_counts_are_limited() {
    let proposal = Proposal {
        number: 1,
        protocol: ProtocolId::Ike,
        spi: vec![],
        transforms: vec![Transform::new(TransformId::Prf(PrfId::HmacSha2_256))],
    };
    let sa = SecurityAssociation {
        proposals: vec![proposal.clone(); MAX_PROPOSALS + 1],
    };
    assert_eq!(
        SecurityAssociation::read(&mut Reader::new(&sa.to_bytes())),
        Err(DecodeError::TooMany {
            what: "proposals in an SA payload",
            limit: MAX_PROPOSALS
        })
    );
    let many = Proposal {
        transforms: vec![proposal.transforms[0].clone(); MAX_TRANSFORMS + 1],
        ..proposal
    };
    let sa = SecurityAssociation {
        proposals: vec![many],
    };
    assert_eq!(
        SecurityAssociation::read(&mut Reader::new(&sa.to_bytes())),
        Err(DecodeError::TooMany {
            what: "transforms in a proposal",
            limit: MAX_TRANSFORMS
        })
    );
}

#[test]
fn other_major_versions_are_refused_but_the_header_can_be_read() {
    let mut bytes = datagram(0, &[]);
    bytes[17] = 0x30;
    assert_eq!(
        Message::decode(&bytes),
        Err(DecodeError::UnsupportedMajorVersion { major: 3, minor: 0 })
    );
    assert_eq!(
        Message::decode(&bytes).unwrap_err().notify_type(),
        NotifyType::InvalidMajorVersion
    );
    let h = Header::peek(&bytes).unwrap();
    assert_eq!((h.initiator_spi, h.major_version), (0x1111, 3));
}

#[test]
fn oversized_datagrams_are_refused_before_parsing() {
    let bytes = vec![0u8; MAX_MESSAGE_LEN + 1];
    assert_eq!(
        Message::decode(&bytes),
        Err(DecodeError::MessageTooLong {
            len: MAX_MESSAGE_LEN + 1
        })
    );
}

#[test]
fn payload_length_beyond_the_message_is_refused() {
    // Vendor ID claiming 100 octets in a 5-octet chain.
    let bytes = datagram(43, &[0, 0, 0, 100, 0xaa]);
    assert_eq!(
        Message::decode(&bytes),
        Err(DecodeError::PayloadLength {
            payload_type: PayloadType::VendorId,
            length: 100,
            available: 5
        })
    );
    // Length 2: below the generic header.
    let bytes = datagram(43, &[0, 0, 0, 2, 0xaa]);
    assert!(matches!(
        Message::decode(&bytes),
        Err(DecodeError::PayloadLength { length: 2, .. })
    ));
}

#[test]
fn a_payload_body_must_be_consumed_exactly() {
    // KE is fine with any data, but a TS payload with one IPv4 selector and 2 spare octets is not.
    let mut ts = TrafficSelectors {
        selectors: vec![TrafficSelector::ipv4_any()],
    }
    .to_bytes();
    ts.extend_from_slice(&[0, 0]);
    let mut body = vec![0, 0, 0, (4 + ts.len()) as u8];
    body.extend_from_slice(&ts);
    assert!(Message::decode(&datagram(44, &body)).is_err());
}

#[test]
fn sk_must_be_last() {
    // An SK payload followed by a Vendor ID: the SK header's Next Payload names the inner
    // payload, so whatever follows SK is not part of the chain.
    let bytes = datagram(46, &[43, 0, 0, 6, 1, 2, 0, 0, 0, 4]);
    assert_eq!(
        Message::decode(&bytes),
        Err(DecodeError::TrailingBytes {
            what: "SK/SKF payload (must be last)",
            count: 4
        })
    );
    assert!(locate_encrypted(&bytes).is_err());
}

#[test]
fn skf_fragment_numbers_are_checked() {
    let skf = |number: u16, total: u16| {
        let mut body = vec![0, 0, 0, 12];
        body.extend_from_slice(&number.to_be_bytes());
        body.extend_from_slice(&total.to_be_bytes());
        body.extend_from_slice(&[9, 9, 9, 9]);
        datagram(53, &body)
    };
    assert!(Message::decode(&skf(1, 1)).is_ok());
    assert!(Message::decode(&skf(2, 3)).is_ok());
    assert_eq!(
        Message::decode(&skf(0, 3)),
        Err(DecodeError::InvalidValue {
            what: "SKF Fragment Number",
            value: 0
        })
    );
    assert!(Message::decode(&skf(4, 3)).is_err());
    assert!(locate_encrypted(&skf(4, 3)).is_err());
}

#[test]
fn nonce_length_is_checked() {
    let nonce = |n: usize| {
        let mut body = vec![0, 0, 0, (4 + n) as u8];
        body.resize(4 + n, 7);
        datagram(40, &body)
    };
    assert!(Message::decode(&nonce(16)).is_ok());
    assert!(matches!(
        Message::decode(&nonce(15)),
        Err(DecodeError::InvalidLength {
            what: "Nonce data length",
            length: 15
        })
    ));
}

#[test]
fn errors_say_what_was_wrong() {
    let e = Message::decode(&[0; 10]).unwrap_err();
    assert_eq!(
        e,
        DecodeError::Truncated {
            what: "IKE header Responder's SPI"
        }
    );
    assert_eq!(e.to_string(), "truncated in IKE header Responder's SPI");
    assert_eq!(e.notify_type(), NotifyType::InvalidSyntax);
}

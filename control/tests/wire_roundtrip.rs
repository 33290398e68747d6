//! Property tests: every payload and every message built by hand survives encode → decode
//! unchanged, and re-encodes to the same bytes.

mod common;

use common::*;
use proptest::prelude::*;
use xipsec_control::wire::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn message_round_trips(m in message()) {
        let bytes = m.encode();
        prop_assert_eq!(bytes.len(), u32::from_be_bytes(bytes[24..28].try_into().unwrap()) as usize);
        let back = Message::decode(&bytes).map_err(|e| TestCaseError::fail(format!("{e}: {m:?}")))?;
        prop_assert_eq!(&back, &m);
        prop_assert_eq!(back.encode(), bytes);
    }

    #[test]
    fn every_payload_round_trips_alone(p in prop_oneof![inner_payload(), final_payload()]) {
        let chain = vec![p];
        let mut bytes = Vec::new();
        let first = encode_chain(&chain, &mut bytes);
        prop_assert_eq!(first, chain[0].payload_type());
        prop_assert_eq!(decode_chain(first, &bytes), Ok(chain));
    }

    #[test]
    fn chains_round_trip(chain in payload_chain()) {
        let mut bytes = Vec::new();
        let first = encode_chain(&chain, &mut bytes);
        prop_assert_eq!(decode_chain(first, &bytes), Ok(chain));
    }

    #[test]
    fn sa_payloads_round_trip(proposals in proptest::collection::vec(proposal(), 1..8)) {
        let sa = SecurityAssociation { proposals };
        let bytes = sa.to_bytes();
        prop_assert_eq!(SecurityAssociation::read(&mut Reader::new(&bytes)), Ok(sa));
    }

    #[test]
    fn traffic_selectors_round_trip(ts in traffic_selectors()) {
        let bytes = ts.to_bytes();
        prop_assert_eq!(TrafficSelectors::read(&mut Reader::new(&bytes)), Ok(ts));
    }

    #[test]
    fn located_sk_matches_the_decoded_payload(m in message()) {
        let bytes = m.encode();
        let loc = locate_encrypted(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        match (m.payloads.last(), loc) {
            (Some(Payload::Sk(sk)), Some(loc)) => {
                prop_assert_eq!(loc.first_inner, sk.next_payload);
                prop_assert_eq!(bytes[loc.payload_offset], sk.next_payload.value());
                prop_assert_eq!(&bytes[loc.encrypted.clone()], sk.data.as_slice());
                prop_assert_eq!(loc.encrypted.end, bytes.len());
            }
            (Some(Payload::Skf(skf)), Some(loc)) => {
                prop_assert_eq!(loc.fragment, Some((skf.fragment_number, skf.total_fragments)));
                prop_assert_eq!(&bytes[loc.encrypted.clone()], skf.data.as_slice());
            }
            (_, loc) => prop_assert_eq!(loc, None),
        }
    }
}

#[test]
fn header_next_payload_and_length_are_derived() {
    let m = Message {
        header: Header::new(1, 2, ExchangeType::Informational, Flags::default(), 7),
        payloads: vec![Payload::Delete(Delete::ike())],
    };
    let bytes = m.encode();
    assert_eq!(bytes.len(), 28 + 8);
    assert_eq!(bytes[16], 42, "Next Payload = D");
    assert_eq!(&bytes[24..28], &[0, 0, 0, 36]);
    assert_eq!(Message::decode(&bytes).unwrap(), m);

    let empty = Message::new(Header::new(
        1,
        2,
        ExchangeType::Informational,
        Flags::default(),
        0,
    ));
    let bytes = empty.encode();
    assert_eq!((bytes.len(), bytes[16]), (28, 0));
    assert_eq!(Message::decode(&bytes).unwrap(), empty);
}

#[test]
fn encode_into_appends_after_a_prefix() {
    let m = Message::new(Header::new(
        9,
        0,
        ExchangeType::IkeSaInit,
        Flags::default(),
        0,
    ));
    // Port 4500's non-ESP marker (RFC 3948) in front.
    let mut out = vec![0, 0, 0, 0];
    m.encode_into(&mut out);
    assert_eq!(&out[4..], m.encode().as_slice());
}

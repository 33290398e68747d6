//! Byte level, independently of the state machine: the test plays the responder by hand with
//! the wire codec and the crypto suite. The initiator's IKE_SA_INIT request must decode, carry
//! the NAT detection hashes of §2.23, its IKE_AUTH request's SK payload must open with keys the
//! test derives itself, and its AUTH must be §2.15's. Then a hand-built response either
//! establishes the SA (with Child SA keys the test derives itself) or, with a bad AUTH, fails.

mod ike_pair;

use std::sync::Arc;
use std::time::Instant;

use aws_lc_rs::digest;
use ike_pair::*;
use xipsec_control::crypto::{
    skeyseed, ChildKeyLengths, ChildSaKeys, Encr, IkeSaKeys, IkeSuite, KeyExchange, Prf, Role,
    SecretBytes,
};
use xipsec_control::ike::{Event, IkeSa, Side as Detector};
use xipsec_control::wire::*;

const SPI_R: u64 = 0x1122_3344_5566_7788;
const ESP_SPI_R: u32 = 0x0000_1234;
const PSK: &[u8] = b"a shared secret of some length";

fn sha1_nat(spi_i: u64, spi_r: u64, ip: [u8; 4], port: u16) -> Vec<u8> {
    let mut data = Vec::new();
    data.extend_from_slice(&spi_i.to_be_bytes());
    data.extend_from_slice(&spi_r.to_be_bytes());
    data.extend_from_slice(&ip);
    data.extend_from_slice(&port.to_be_bytes());
    digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &data)
        .as_ref()
        .to_vec()
}

/// `prf(prf(PSK, "Key Pad for IKEv2"), message | nonce | prf(SK_p, ID body))`, written out.
fn auth(
    prf: Prf,
    sk_p: &SecretBytes,
    message: &[u8],
    nonce: &[u8],
    id: &Identification,
) -> Vec<u8> {
    let mut id_body = vec![id.id_type.value(), 0, 0, 0];
    id_body.extend_from_slice(&id.data);
    let maced = prf.prf(sk_p.expose(), &[&id_body]);
    let key = prf.prf(PSK, &[b"Key Pad for IKEv2"]);
    let mut signed = message.to_vec();
    signed.extend_from_slice(nonce);
    signed.extend_from_slice(maced.expose());
    prf.prf(key.expose(), &[&signed]).expose().to_vec()
}

/// The state of the hand-played exchange once the initiator's IKE_AUTH request is open.
struct ByHand {
    initiator: IkeSa,
    now: Instant,
    spi_i: u64,
    ni: Vec<u8>,
    nr: Vec<u8>,
    response1: Vec<u8>,
    keys: IkeSaKeys,
    prf: Prf,
    request: Vec<Payload>,
}

fn play_until_ike_auth_request() -> ByHand {
    let now = Instant::now();
    let mut initiator = IkeSa::initiate(Arc::new(initiator_config()), now, rng(5)).unwrap();

    // ---- IKE_SA_INIT request: decode and check it ----
    let request1 = initiator.poll_transmit().unwrap().contents;
    assert!(initiator.poll_transmit().is_none());
    let m = Message::decode(&request1).unwrap();
    assert_eq!(m.encode(), request1, "canonical encoding");
    let h = &m.header;
    assert_eq!(h.exchange_type, ExchangeType::IkeSaInit);
    assert_eq!((h.responder_spi, h.message_id), (0, 0));
    assert!(h.flags.initiator && !h.flags.response && h.initiator_spi != 0);
    let spi_i = h.initiator_spi;
    let kinds: Vec<PayloadType> = m.payloads.iter().map(Payload::payload_type).collect();
    use PayloadType as P;
    assert_eq!(
        kinds,
        [P::Sa, P::Ke, P::Nonce, P::Notify, P::Notify, P::Notify]
    );
    let (Payload::Sa(sa), Payload::Ke(ke), Payload::Nonce(ni)) =
        (&m.payloads[0], &m.payloads[1], &m.payloads[2])
    else {
        unreachable!()
    };
    assert_eq!(sa.proposals.len(), 1);
    assert_eq!(sa.proposals[0].protocol, ProtocolId::Ike);
    assert_eq!(ke.group, KeMethod::Curve25519, "the first configured group");
    assert_eq!(ke.data.len(), 32);
    assert_eq!(ni.0.len(), 32);
    let (Payload::Notify(src), Payload::Notify(dst)) = (&m.payloads[3], &m.payloads[4]) else {
        unreachable!()
    };
    assert_eq!(src.notify_type, NotifyType::NatDetectionSourceIp);
    assert_eq!(src.data, sha1_nat(spi_i, 0, [192, 0, 2, 1], 500));
    assert_eq!(dst.notify_type, NotifyType::NatDetectionDestinationIp);
    assert_eq!(dst.data, sha1_nat(spi_i, 0, [198, 51, 100, 1], 500));

    // ---- IKE_SA_INIT response, built by hand ----
    let ours = KeyExchange::generate(KeMethod::Curve25519, &mut SeededRng::new(99)).unwrap();
    let nr = vec![0x4e; 32];
    let answer = Proposal {
        number: 1,
        protocol: ProtocolId::Ike,
        spi: vec![],
        transforms: vec![
            Transform::with_key_length(TransformId::Encr(EncrId::AesGcm16), 256),
            Transform::new(TransformId::Prf(PrfId::HmacSha2_256)),
            Transform::new(TransformId::Ke(KeMethod::Curve25519)),
        ],
    };
    let response1 = Message {
        header: Header::new(
            spi_i,
            SPI_R,
            ExchangeType::IkeSaInit,
            Flags {
                response: true,
                ..Flags::default()
            },
            0,
        ),
        payloads: vec![
            Payload::Sa(SecurityAssociation {
                proposals: vec![answer],
            }),
            Payload::Ke(xipsec_control::wire::KeyExchange {
                group: KeMethod::Curve25519,
                data: ours.public_value().to_vec(),
            }),
            Payload::Nonce(Nonce(nr.clone())),
            Payload::Notify(Notify::new(
                NotifyType::NatDetectionSourceIp,
                sha1_nat(spi_i, SPI_R, [198, 51, 100, 1], 500),
            )),
            Payload::Notify(Notify::new(
                NotifyType::NatDetectionDestinationIp,
                sha1_nat(spi_i, SPI_R, [192, 0, 2, 1], 500),
            )),
        ],
    }
    .encode();
    initiator.handle(now, &response1).unwrap();
    assert_eq!(initiator.spi_r(), SPI_R);

    // ---- IKE_AUTH request: open it with keys derived here ----
    let request2 = initiator.poll_transmit().unwrap().contents;
    let m2 = Message::decode(&request2).unwrap();
    assert_eq!(m2.header.exchange_type, ExchangeType::IkeAuth);
    assert_eq!(m2.header.message_id, 1);
    assert_eq!(
        (m2.header.initiator_spi, m2.header.responder_spi),
        (spi_i, SPI_R)
    );
    assert!(matches!(m2.payloads[..], [Payload::Sk(_)]));

    let prf = Prf::HmacSha2_256;
    let suite = IkeSuite::new(Encr::AesGcm16_256, None, prf).unwrap();
    let g_ir = ours.agree(&ke.data).unwrap();
    let seed = skeyseed(prf, &ni.0, &nr, &g_ir);
    let keys = IkeSaKeys::derive(
        &suite,
        &seed,
        &ni.0,
        &nr,
        &spi_i.to_be_bytes(),
        &SPI_R.to_be_bytes(),
    )
    .unwrap();
    let opened = keys
        .sk_cipher(Role::Initiator)
        .unwrap()
        .open_message(&request2)
        .unwrap();
    let request = decode_chain(opened.first_inner, &opened.plaintext).unwrap();
    let kinds: Vec<PayloadType> = request.iter().map(Payload::payload_type).collect();
    assert_eq!(
        kinds,
        [P::IdI, P::IdR, P::Auth, P::Sa, P::TsI, P::TsR],
        "IDi, IDr, AUTH, SAi2, TSi, TSr"
    );
    let Payload::IdI(idi) = &request[0] else {
        unreachable!()
    };
    assert_eq!(*idi, Identification::rfc822("alice@example.com"));
    assert_eq!(
        request[1],
        Payload::IdR(Identification::fqdn("gw.example.com"))
    );
    let Payload::Auth(a) = &request[2] else {
        unreachable!()
    };
    assert_eq!(a.method, AuthMethod::SharedKeyMic);
    assert_eq!(a.data, auth(prf, &keys.sk_pi, &request1, &nr, idi), "§2.15");

    ByHand {
        initiator,
        now,
        spi_i,
        ni: ni.0.clone(),
        nr,
        response1,
        keys,
        prf,
        request,
    }
}

/// The IKE_AUTH response, sealed here with SK_er.
fn auth_response(hand: &ByHand, auth_data: Vec<u8>) -> Vec<u8> {
    let idr = Identification::fqdn("gw.example.com");
    let Payload::Sa(offer) = &hand.request[3] else {
        unreachable!()
    };
    assert_eq!(offer.proposals[0].protocol, ProtocolId::Esp);
    assert_eq!(offer.proposals[0].spi.len(), 4);
    let inner = vec![
        Payload::IdR(idr),
        Payload::Auth(Authentication {
            method: AuthMethod::SharedKeyMic,
            data: auth_data,
        }),
        Payload::Sa(SecurityAssociation {
            proposals: vec![Proposal {
                number: 1,
                protocol: ProtocolId::Esp,
                spi: ESP_SPI_R.to_be_bytes().to_vec(),
                transforms: vec![
                    Transform::with_key_length(TransformId::Encr(EncrId::AesGcm16), 256),
                    Transform::new(TransformId::Esn(EsnId::NoEsn)),
                ],
            }],
        }),
        hand.request[4].clone(),
        hand.request[5].clone(),
    ];
    let mut plaintext = Vec::new();
    let first = encode_chain(&inner, &mut plaintext);
    let mut bytes = Message {
        header: Header::new(
            hand.spi_i,
            SPI_R,
            ExchangeType::IkeAuth,
            Flags {
                response: true,
                ..Flags::default()
            },
            1,
        ),
        payloads: vec![Payload::Sk(Encrypted {
            next_payload: first,
            data: vec![],
        })],
    }
    .encode();
    hand.keys
        .sk_cipher(Role::Responder)
        .unwrap()
        .seal_message(&mut bytes, Header::LEN, &plaintext, &mut SeededRng::new(1))
        .unwrap();
    bytes
}

#[test]
fn a_hand_built_responder_establishes_with_independently_derived_keys() {
    let mut hand = play_until_ike_auth_request();
    let idr = Identification::fqdn("gw.example.com");
    let good = auth(hand.prf, &hand.keys.sk_pr, &hand.response1, &hand.ni, &idr);
    let response2 = auth_response(&hand, good);
    hand.initiator.handle(hand.now, &response2).unwrap();
    assert!(hand.initiator.is_established());

    let events: Vec<Event> = std::iter::from_fn(|| hand.initiator.poll_event()).collect();
    let [Event::IkeSaEstablished(e), Event::ChildSaInstalled(c)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!((e.spi_i, e.spi_r), (hand.spi_i, SPI_R));
    assert!(!e.nat.detected() && e.nat.peer_supports);

    let Payload::Sa(offer) = &hand.request[3] else {
        unreachable!()
    };
    let our_spi = u32::from_be_bytes(offer.proposals[0].spi[..].try_into().unwrap());
    assert_eq!((c.inbound_spi, c.outbound_spi), (our_spi, ESP_SPI_R));
    let child = ChildSaKeys::derive(
        hand.prf,
        &hand.keys.sk_d,
        None,
        &hand.ni,
        &hand.nr,
        ChildKeyLengths::for_esp(Encr::AesGcm16_256, None),
    )
    .unwrap();
    assert_eq!(
        c.outbound_keymat, child.encr_i,
        "initiator to responder first (§2.17)"
    );
    assert_eq!(c.inbound_keymat, child.encr_r);
    assert_eq!(c.inbound_keymat.len(), 36);
}

#[test]
fn a_responder_auth_that_does_not_verify_fails_on_the_initiator() {
    let mut hand = play_until_ike_auth_request();
    let response2 = auth_response(&hand, vec![0u8; 32]);
    hand.initiator.handle(hand.now, &response2).unwrap();
    let events: Vec<Event> = std::iter::from_fn(|| hand.initiator.poll_event()).collect();
    let [Event::AuthenticationFailed(f)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(f.detected_by, Detector::Local);
    assert!(!hand.initiator.is_established());
    assert!(hand.initiator.is_drained());
}

#[test]
fn a_forged_ike_auth_response_is_dropped_and_the_initiator_keeps_waiting() {
    let mut hand = play_until_ike_auth_request();
    let idr = Identification::fqdn("gw.example.com");
    let good = auth(hand.prf, &hand.keys.sk_pr, &hand.response1, &hand.ni, &idr);
    let mut forged = auth_response(&hand, good);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let err = hand.initiator.handle(hand.now, &forged).unwrap_err();
    assert!(
        matches!(err, xipsec_control::ike::Error::Undecryptable(_)),
        "{err:?}"
    );
    assert!(hand.initiator.poll_event().is_none());
    assert!(hand.initiator.poll_timeout().is_some(), "still waiting");
    // The genuine one still works.
    let genuine = {
        let good = auth(hand.prf, &hand.keys.sk_pr, &hand.response1, &hand.ni, &idr);
        auth_response(&hand, good)
    };
    hand.initiator.handle(hand.now, &genuine).unwrap();
    assert!(hand.initiator.is_established());
}

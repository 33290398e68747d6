//! IKE_SA_INIT + IKE_AUTH between two in-memory endpoints: every group and ESP suite,
//! INVALID_KE_PAYLOAD, traffic-selector narrowing, NAT detection, transport mode, identities.

mod ike_pair;

use ike_pair::*;
use xipsec_control::crypto::{Encr, Prf, Role};
use xipsec_control::ike::{
    Error, EspProposal, EspSuite, Event, Identity, IkeProposal, Mode, SelectionOrder,
};
use xipsec_control::wire::{EsnId, ExchangeType, KeMethod, TrafficSelector};

fn v4(proto: u8, ports: (u16, u16), a: &str, b: &str) -> TrafficSelector {
    TrafficSelector::Ipv4 {
        ip_protocol: proto,
        start_port: ports.0,
        end_port: ports.1,
        start: a.parse().unwrap(),
        end: b.parse().unwrap(),
    }
}

#[test]
fn establishes_with_groups_31_19_14_and_every_esp_suite() {
    let mut seed = 1;
    for group in [KeMethod::Curve25519, KeMethod::Ecp256, KeMethod::Modp2048] {
        for (n, &suite) in EspSuite::ALL.iter().enumerate() {
            let esn = if n % 2 == 0 { EsnId::NoEsn } else { EsnId::Esn };
            let mut ci = initiator_config();
            let mut cr = responder_config();
            ci.ike_proposals = vec![IkeProposal::aead(vec![group])];
            cr.ike_proposals = vec![IkeProposal::aead(vec![
                KeMethod::Curve25519,
                KeMethod::Ecp256,
                KeMethod::Modp2048,
            ])];
            ci.child.proposals = vec![EspProposal {
                suites: vec![suite],
                esn: vec![esn],
            }];
            seed += 1;
            let mut pair = Pair::new(ci, cr, seed);
            pair.drive();

            let ei = pair
                .established(Side::Initiator)
                .expect("initiator established");
            let er = pair
                .established(Side::Responder)
                .expect("responder established");
            assert_eq!((ei.role, er.role), (Role::Initiator, Role::Responder));
            assert_eq!((ei.spi_i, ei.spi_r), (er.spi_i, er.spi_r));
            assert_ne!(ei.spi_r, 0);
            assert_eq!(ei.suite, er.suite);
            assert_eq!(
                ei.suite.encr(),
                Encr::AesGcm16_256,
                "the responder's preference"
            );
            assert_eq!(ei.suite.prf(), Prf::HmacSha2_256);
            assert_eq!((ei.ke, er.ke), (group, group));
            assert_eq!(ei.peer_id, Identity::Fqdn("gw.example.com".into()));
            assert_eq!(er.peer_id, Identity::UserFqdn("alice@example.com".into()));
            assert!(!ei.nat.detected() && !er.nat.detected());
            assert!(ei.nat.peer_supports && er.nat.peer_supports);

            let (i, _) = pair.assert_child_sas_match();
            assert_eq!(i.suite, suite);
            assert_eq!(i.esn, esn == EsnId::Esn);
            assert_eq!(i.mode, Mode::Tunnel);
            assert_eq!(i.local_ts, vec![TrafficSelector::ipv4_any()]);

            assert!(pair.initiator.is_established() && pair.responder().is_established());
            assert_eq!(
                pair.initiator.poll_timeout(),
                None,
                "no timer once established"
            );
            assert!(pair.drops[0].is_empty() && pair.drops[1].is_empty());
            assert_eq!(pair.responder().stats().requests_processed, 2);
            assert_eq!(pair.net.log.len(), 4, "two exchanges, no retransmission");
        }
    }
}

#[test]
fn invalid_ke_payload_retry() {
    let mut ci = initiator_config();
    let mut cr = responder_config();
    ci.ike_proposals = vec![IkeProposal::aead(vec![
        KeMethod::Ecp256,
        KeMethod::Curve25519,
    ])];
    cr.ike_proposals = vec![IkeProposal::aead(vec![KeMethod::Curve25519])];
    let mut pair = Pair::new(ci, cr, 7);
    pair.drive();

    assert_eq!(
        pair.rejected,
        vec![Error::InvalidKePayload {
            wanted: KeMethod::Curve25519
        }],
        "the first request is refused statelessly"
    );
    let inits: Vec<_> = pair
        .net
        .log
        .iter()
        .filter(|s| s.header.exchange_type == ExchangeType::IkeSaInit)
        .map(|s| (s.from, s.header.message_id, s.header.responder_spi == 0))
        .collect();
    assert_eq!(
        inits,
        [
            (Side::Initiator, 0, true),
            (Side::Responder, 0, true),
            (Side::Initiator, 0, true),
            (Side::Responder, 0, false),
        ]
    );
    let ei = pair.established(Side::Initiator).unwrap();
    assert_eq!(ei.ke, KeMethod::Curve25519);
    assert_eq!(pair.established(Side::Responder).unwrap().spi_i, ei.spi_i);
    pair.assert_child_sas_match();
}

#[test]
fn traffic_selectors_are_narrowed_to_the_intersection() {
    let mut ci = initiator_config();
    let mut cr = responder_config();
    ci.child.local_ts = vec![v4(0, (0, 65535), "10.1.0.0", "10.1.255.255")];
    ci.child.remote_ts = vec![TrafficSelector::ipv4_any()];
    cr.child.remote_ts = vec![v4(0, (0, 65535), "10.1.2.0", "10.1.2.255")];
    cr.child.local_ts = vec![
        v4(6, (443, 443), "10.9.0.0", "10.9.255.255"),
        v4(17, (53, 53), "10.9.0.53", "10.9.0.53"),
    ];
    let mut pair = Pair::new(ci, cr, 11);
    pair.drive();
    let (i, r) = pair.assert_child_sas_match();
    assert_eq!(
        i.local_ts,
        vec![v4(0, (0, 65535), "10.1.2.0", "10.1.2.255")]
    );
    assert_eq!(
        i.remote_ts,
        vec![
            v4(6, (443, 443), "10.9.0.0", "10.9.255.255"),
            v4(17, (53, 53), "10.9.0.53", "10.9.0.53"),
        ]
    );
    assert_eq!(r.local_ts, i.remote_ts);
}

#[test]
fn transport_mode_only_when_both_ask() {
    for (i_mode, r_mode, expected) in [
        (Mode::Transport, Mode::Transport, Mode::Transport),
        (Mode::Transport, Mode::Tunnel, Mode::Tunnel),
        (Mode::Tunnel, Mode::Transport, Mode::Tunnel),
    ] {
        let mut ci = initiator_config();
        let mut cr = responder_config();
        ci.child.mode = i_mode;
        cr.child.mode = r_mode;
        let mut pair = Pair::new(ci, cr, 17);
        pair.drive();
        let (i, _) = pair.assert_child_sas_match();
        assert_eq!(i.mode, expected, "{i_mode:?} / {r_mode:?}");
    }
}

#[test]
fn identities_of_every_supported_type() {
    let ids = [
        Identity::KeyId(vec![0xde, 0xad, 0xbe, 0xef]),
        Identity::Addr("192.0.2.1".parse().unwrap()),
        Identity::Addr("2001:db8::1".parse().unwrap()),
        Identity::Fqdn("client.example.org".into()),
        Identity::UserFqdn("bob@example.org".into()),
    ];
    for (n, id) in ids.iter().enumerate() {
        let mut ci = initiator_config();
        let mut cr = responder_config();
        ci.local_id = id.clone();
        ci.remote_id = None; // IDr is optional: the responder answers with its own.
        cr.remote_id = Some(id.clone());
        cr.local_id = Identity::Addr("198.51.100.1".parse().unwrap());
        let mut pair = Pair::new(ci, cr, 100 + n as u64);
        pair.drive();
        assert_eq!(&pair.established(Side::Responder).unwrap().peer_id, id);
        assert_eq!(
            pair.established(Side::Initiator).unwrap().peer_id,
            Identity::Addr("198.51.100.1".parse().unwrap())
        );
        pair.assert_child_sas_match();
    }
}

#[test]
fn the_responder_follows_the_configured_preference() {
    for (order, expected) in [
        (SelectionOrder::Ours, EspSuite::Aes128Gcm16),
        (SelectionOrder::Peers, EspSuite::ChaCha20Poly1305),
    ] {
        let mut ci = initiator_config();
        let mut cr = responder_config();
        ci.child.proposals = vec![EspProposal {
            suites: vec![EspSuite::ChaCha20Poly1305, EspSuite::Aes128Gcm16],
            esn: vec![EsnId::Esn, EsnId::NoEsn],
        }];
        cr.child.proposals = vec![EspProposal {
            suites: vec![EspSuite::Aes128Gcm16, EspSuite::ChaCha20Poly1305],
            esn: vec![EsnId::NoEsn, EsnId::Esn],
        }];
        cr.selection = order;
        let mut pair = Pair::new(ci, cr, 19);
        pair.drive();
        let (i, _) = pair.assert_child_sas_match();
        assert_eq!(i.suite, expected);
        assert_eq!(i.esn, order == SelectionOrder::Peers);
    }
}

#[test]
fn events_never_print_keys() {
    let mut pair = Pair::default_configs(23);
    pair.drive();
    let (i, _) = pair.assert_child_sas_match();
    let shown = format!("{:?}", pair.events(Side::Initiator));
    for key in [&i.inbound_keymat, &i.outbound_keymat] {
        assert!(!shown.contains(&format!("{:?}", key.expose())));
        let hex: String = key.expose().iter().map(|b| format!("{b:02x}")).collect();
        assert!(!shown.contains(&hex));
    }
    assert!(shown.contains("SecretBytes(36 octets)"), "{shown}");
    assert!(matches!(
        pair.events(Side::Initiator)[0],
        Event::IkeSaEstablished(_)
    ));
    assert!(!format!("{:?}", initiator_config()).contains("a shared secret"));
}

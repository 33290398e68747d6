//! IKE SAs that must not come up, or come up without a Child SA: wrong PSK or identity, no
//! common proposal, unacceptable traffic selectors, a silent peer.

mod ike_pair;

use std::time::Duration;

use ike_pair::*;
use xipsec_control::crypto::Encr;
use xipsec_control::ike::{
    AuthenticationFailed, Error, EspProposal, EspSuite, Event, Fault, Identity, IkeProposal, Psk,
    Side as Detector,
};
use xipsec_control::wire::{EsnId, ExchangeType, KeMethod, NotifyType, TrafficSelector};

fn auth_failures(pair: &Pair, side: Side) -> Vec<&AuthenticationFailed> {
    pair.events(side)
        .iter()
        .filter_map(|e| match e {
            Event::AuthenticationFailed(a) => Some(a),
            _ => None,
        })
        .collect()
}

fn failures(pair: &Pair, side: Side) -> Vec<&Error> {
    pair.events(side)
        .iter()
        .filter_map(|e| match e {
            Event::Failed { reason } => Some(reason),
            _ => None,
        })
        .collect()
}

fn child_failures(pair: &Pair, side: Side) -> Vec<&Error> {
    pair.events(side)
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaFailed { error } => Some(error),
            _ => None,
        })
        .collect()
}

#[test]
fn wrong_psk_fails_authentication_on_both_sides_without_child_sa() {
    let mut cr = responder_config();
    cr.psk = Psk::new(b"another secret".to_vec());
    let mut pair = Pair::new(initiator_config(), cr, 31);
    pair.drive();

    let r = auth_failures(&pair, Side::Responder);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].detected_by, Detector::Local);
    assert_eq!(
        r[0].peer_id,
        Some(Identity::UserFqdn("alice@example.com".into()))
    );
    assert_eq!(
        r[0].error.notify_type(),
        Some(NotifyType::AuthenticationFailed)
    );
    let i = auth_failures(&pair, Side::Initiator);
    assert_eq!(i.len(), 1);
    assert_eq!(i[0].detected_by, Detector::Peer);
    assert_eq!(
        i[0].error,
        Error::Refused {
            notify: NotifyType::AuthenticationFailed
        }
    );
    assert_eq!(i[0].error.fault(), Fault::Incompatible);
    for side in [Side::Initiator, Side::Responder] {
        assert!(pair.installed(side).is_empty(), "no Child SA on {side:?}");
        assert!(pair.established(side).is_none(), "no IKE SA on {side:?}");
        assert_eq!(pair.events(side).len(), 1);
    }
    // Both are closed; the responder forgot its cached answer after the half-open timeout.
    assert!(pair.initiator.is_drained());
    assert!(pair.responder().is_drained());
    assert_eq!(pair.initiator.poll_timeout(), None);
}

#[test]
fn the_responder_refuses_an_idr_that_is_not_its_own() {
    let mut ci = initiator_config();
    ci.remote_id = Some(Identity::Fqdn("other.example.com".into()));
    let mut pair = Pair::new(ci, responder_config(), 37);
    pair.drive();
    let r = auth_failures(&pair, Side::Responder);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].detected_by, Detector::Local);
    assert_eq!(
        auth_failures(&pair, Side::Initiator)[0].detected_by,
        Detector::Peer
    );
    assert!(pair.installed(Side::Initiator).is_empty());
    assert!(pair.installed(Side::Responder).is_empty());
}

#[test]
fn the_responder_checks_the_initiators_identity() {
    let mut cr = responder_config();
    cr.remote_id = Some(Identity::UserFqdn("mallory@example.com".into()));
    let mut pair = Pair::new(initiator_config(), cr, 41);
    pair.drive();
    assert_eq!(
        auth_failures(&pair, Side::Responder)[0].detected_by,
        Detector::Local
    );
    assert_eq!(
        auth_failures(&pair, Side::Initiator)[0].detected_by,
        Detector::Peer
    );
    assert!(pair.installed(Side::Initiator).is_empty());
    assert!(pair.installed(Side::Responder).is_empty());
}

#[test]
fn no_common_ike_proposal() {
    let mut ci = initiator_config();
    let mut cr = responder_config();
    ci.ike_proposals = vec![IkeProposal::aead(vec![KeMethod::Curve25519])];
    cr.ike_proposals = vec![IkeProposal {
        encr: vec![Encr::AesGcm16_128],
        integ: vec![],
        prf: vec![xipsec_control::crypto::Prf::HmacSha2_256],
        ke: vec![KeMethod::Modp2048],
    }];
    let mut pair = Pair::new(ci, cr, 43);
    pair.drive();
    assert_eq!(pair.rejected, vec![Error::NoProposalChosen]);
    assert!(pair.responder.is_none(), "no state kept by the responder");
    assert_eq!(
        failures(&pair, Side::Initiator),
        [&Error::Refused {
            notify: NotifyType::NoProposalChosen
        }]
    );
    assert!(pair.initiator.is_drained());
}

#[test]
fn no_common_esp_proposal_leaves_the_ike_sa_without_child() {
    let mut ci = initiator_config();
    let mut cr = responder_config();
    ci.child.proposals = vec![EspProposal {
        suites: vec![EspSuite::ChaCha20Poly1305],
        esn: vec![EsnId::NoEsn],
    }];
    cr.child.proposals = vec![EspProposal {
        suites: vec![EspSuite::Aes256Gcm16],
        esn: vec![EsnId::NoEsn, EsnId::Esn],
    }];
    let mut pair = Pair::new(ci, cr, 47);
    pair.drive();
    assert!(pair.established(Side::Initiator).is_some());
    assert!(pair.established(Side::Responder).is_some());
    assert_eq!(
        child_failures(&pair, Side::Responder),
        [&Error::NoProposalChosen]
    );
    assert_eq!(
        child_failures(&pair, Side::Initiator),
        [&Error::Refused {
            notify: NotifyType::NoProposalChosen
        }]
    );
    assert!(pair.installed(Side::Initiator).is_empty());
    assert!(pair.installed(Side::Responder).is_empty());
}

#[test]
fn disjoint_traffic_selectors_are_ts_unacceptable() {
    let mut ci = initiator_config();
    let mut cr = responder_config();
    let net = |a: &str, b: &str| TrafficSelector::Ipv4 {
        ip_protocol: 0,
        start_port: 0,
        end_port: 65535,
        start: a.parse().unwrap(),
        end: b.parse().unwrap(),
    };
    ci.child.local_ts = vec![net("10.1.0.0", "10.1.0.255")];
    cr.child.remote_ts = vec![net("10.2.0.0", "10.2.0.255")];
    let mut pair = Pair::new(ci, cr, 53);
    pair.drive();
    assert!(pair.initiator.is_established());
    assert_eq!(
        child_failures(&pair, Side::Responder),
        [&Error::TsUnacceptable]
    );
    assert_eq!(
        child_failures(&pair, Side::Initiator),
        [&Error::Refused {
            notify: NotifyType::TsUnacceptable
        }]
    );
    assert!(pair.installed(Side::Initiator).is_empty());
}

#[test]
fn the_initiator_gives_up_on_a_silent_peer_with_exponential_backoff() {
    let mut pair = Pair::default_configs(59);
    pair.net.filter = Some(Box::new(|_, _, _| Action::Drop));
    let start = pair.now;
    pair.drive();

    let sent: Vec<Duration> = pair
        .net
        .log
        .iter()
        .filter(|s| s.from == Side::Initiator)
        .map(|s| s.at - start)
        .collect();
    // 0.5 s, doubling, 4 retransmissions; then one more wait (capped at 8 s) before giving up.
    let ms = |v: &[u64]| {
        v.iter()
            .map(|&m| Duration::from_millis(m))
            .collect::<Vec<_>>()
    };
    assert_eq!(sent, ms(&[0, 500, 1500, 3500, 7500]));
    assert_eq!(
        failures(&pair, Side::Initiator),
        [&Error::Timeout { transmissions: 5 }]
    );
    assert_eq!(pair.now - start, Duration::from_millis(15_500));
    assert_eq!(pair.initiator.stats().retransmissions, 4);
    assert!(pair.initiator.is_drained());
    assert_eq!(Error::Timeout { transmissions: 5 }.fault(), Fault::Network);
}

#[test]
fn a_half_open_responder_expires() {
    let mut pair = Pair::default_configs(61);
    // Every IKE_AUTH request is lost.
    pair.net.filter = Some(Box::new(|from, h, _| {
        if from == Side::Initiator && h.exchange_type == ExchangeType::IkeAuth {
            Action::Drop
        } else {
            Action::Deliver
        }
    }));
    pair.drive();
    assert_eq!(failures(&pair, Side::Responder), [&Error::HalfOpenTimeout]);
    assert!(matches!(
        failures(&pair, Side::Initiator)[..],
        [Error::Timeout { transmissions: 5 }]
    ));
    assert!(pair.responder().is_drained());
}

/// Truncated and bit-flipped copies of the IKE_SA_INIT and IKE_AUTH requests, fed to the
/// state that would process the genuine ones: nothing panics, no mangled IKE_AUTH request is
/// accepted, a stateless answer is one Notify, and the genuine request still works afterwards.
#[test]
fn mangled_requests_never_panic_and_never_authenticate() {
    use std::sync::Arc;
    use xipsec_control::ike::IkeSa;
    use xipsec_control::wire::{Message, Payload};

    fn mangle(m: &[u8]) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = (0..m.len()).map(|n| m[..n].to_vec()).collect();
        for i in 0..m.len() {
            for bit in [0x01u8, 0x80] {
                let mut v = m.to_vec();
                v[i] ^= bit;
                out.push(v);
            }
        }
        out
    }

    // Run until the initiator has sent its IKE_AUTH request, which the network loses.
    let mut pair = Pair::default_configs(67);
    pair.net.filter = Some(Box::new(|from, h, _| {
        if from == Side::Initiator && h.exchange_type == ExchangeType::IkeAuth {
            Action::Drop
        } else {
            Action::Deliver
        }
    }));
    pair.drive_until(|p| p.net.log.len() == 3);
    let init_request = pair.net.log[0].bytes.clone();
    let auth_request = pair.net.log[2].bytes.clone();
    assert_eq!(pair.net.log[2].header.exchange_type, ExchangeType::IkeAuth);

    let config = Arc::new(responder_config());
    let variants = mangle(&init_request);
    let mut created = 0;
    for v in &variants {
        match IkeSa::respond(config.clone(), pair.now, rng(4), v) {
            Ok(_) => created += 1,
            Err(rejected) => {
                if let Some(reply) = rejected.reply {
                    let m = Message::decode(&reply.contents).unwrap();
                    assert!(matches!(m.payloads[..], [Payload::Notify(_)]));
                    assert!(m.header.flags.response && m.header.responder_spi == 0);
                }
            }
        }
    }
    // Flips inside nonces, key shares and NAT hashes still make valid requests.
    assert!(created > 0 && created < variants.len());

    let now = pair.now;
    let responder = pair.responder.as_mut().unwrap();
    for v in mangle(&auth_request) {
        let _ = responder.handle(now, &v);
        assert!(!responder.is_established());
    }
    assert_eq!(responder.stats().requests_processed, 1, "only IKE_SA_INIT");
    responder.handle(now, &auth_request).unwrap();
    assert!(responder.is_established());
}

/// An RNG that only produces zeros cannot start an IKE SA (no SPI), and says so.
#[test]
fn a_broken_rng_is_a_local_error() {
    use std::sync::Arc;
    use xipsec_control::crypto::{CryptoError, Rng};
    use xipsec_control::ike::IkeSa;

    struct Zeros;
    impl Rng for Zeros {
        fn fill(&mut self, dest: &mut [u8]) -> Result<(), CryptoError> {
            dest.fill(0);
            Ok(())
        }
    }
    let err = IkeSa::initiate(
        Arc::new(initiator_config()),
        std::time::Instant::now(),
        Box::new(Zeros),
    )
    .unwrap_err();
    assert_eq!(err, Error::Crypto(CryptoError::Rng));
    assert_eq!(err.fault(), Fault::Local);
    let mut bad = initiator_config();
    bad.ike_proposals.clear();
    let err = IkeSa::initiate(Arc::new(bad), std::time::Instant::now(), rng(1)).unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
}

/// Asymmetric PSKs: each side proves a key of its own, which the other knows as `peer_psk`.
#[test]
fn asymmetric_psks_work_when_both_sides_know_both_and_fail_otherwise() {
    let mine = Psk::new(b"the initiator's own secret key".to_vec());
    let theirs = Psk::new(b"the responder's own secret key!".to_vec());
    let mut ci = initiator_config();
    ci.psk = mine.clone();
    ci.peer_psk = Some(theirs.clone());
    let mut cr = responder_config();
    cr.psk = theirs.clone();
    cr.peer_psk = Some(mine.clone());
    let mut pair = Pair::new(ci.clone(), cr.clone(), 401);
    pair.drive();
    pair.assert_child_sas_match();
    // The responder expects another key from the initiator: refused.
    cr.peer_psk = Some(theirs);
    let mut pair = Pair::new(ci, cr, 402);
    pair.drive();
    assert!(pair.established(Side::Responder).is_none());
    assert!(pair.established(Side::Initiator).is_none());
}

//! Loss, duplication and reordering: retransmission by the initiator, the responder's cache,
//! and the two sides never disagreeing on keys.

mod ike_pair;

use std::time::Duration;

use ike_pair::*;
use xipsec_control::ike::{Error, Event};
use xipsec_control::wire::ExchangeType;

/// Drops the first `n` messages matching (from, exchange, response).
fn drop_first(n: usize, from: Side, exchange: ExchangeType, response: bool) -> Filter {
    let mut left = n;
    Box::new(move |f, h, _| {
        if left > 0 && f == from && h.exchange_type == exchange && h.flags.response == response {
            left -= 1;
            Action::Drop
        } else {
            Action::Deliver
        }
    })
}

#[test]
fn lost_ike_auth_response_is_answered_from_the_cache() {
    let mut pair = Pair::default_configs(71);
    pair.net.filter = Some(drop_first(1, Side::Responder, ExchangeType::IkeAuth, true));
    pair.drive();

    let (i, r) = pair.assert_child_sas_match();
    assert_eq!(i.inbound_spi, r.outbound_spi);
    assert_eq!(pair.initiator.stats().retransmissions, 1);
    let rs = pair.responder().stats();
    assert_eq!(
        rs.requests_processed, 2,
        "IKE_SA_INIT and IKE_AUTH, each once"
    );
    assert_eq!(rs.responses_resent, 1);
    assert_eq!(pair.installed(Side::Responder).len(), 1, "processed once");
    assert_eq!(
        pair.events(Side::Responder)
            .iter()
            .filter(|e| matches!(e, Event::IkeSaEstablished(_)))
            .count(),
        1
    );
    // The two IKE_AUTH responses on the wire are the same bytes.
    let auth_responses: Vec<_> = pair
        .net
        .log
        .iter()
        .filter(|s| s.from == Side::Responder && s.header.exchange_type == ExchangeType::IkeAuth)
        .collect();
    assert_eq!(auth_responses.len(), 2);
    assert_eq!(
        auth_responses[1].at - auth_responses[0].at,
        Duration::from_millis(500)
    );
}

#[test]
fn lost_ike_sa_init_response_is_answered_from_the_cache() {
    let mut pair = Pair::default_configs(73);
    pair.net.filter = Some(drop_first(
        1,
        Side::Responder,
        ExchangeType::IkeSaInit,
        true,
    ));
    pair.drive();
    pair.assert_child_sas_match();
    let rs = pair.responder().stats();
    assert_eq!(rs.responses_resent, 1);
    assert_eq!(rs.requests_processed, 2);
    assert!(pair.rejected.is_empty());
}

#[test]
fn every_datagram_duplicated() {
    let mut pair = Pair::default_configs(79);
    pair.net.duplicate = 1.0;
    pair.net.jitter = Duration::from_millis(30);
    pair.drive();
    pair.assert_child_sas_match();
    // The duplicate requests were answered from the cache, the duplicate responses dropped.
    assert_eq!(pair.responder().stats().requests_processed, 2);
    assert!(pair.responder().stats().responses_resent >= 1);
    assert!(!pair.drops[0].is_empty());
    assert!(pair.drops[0]
        .iter()
        .all(|e| matches!(e, Error::Unexpected { .. })));
}

#[test]
fn late_retransmissions_do_not_disturb_an_established_sa() {
    let mut pair = Pair::default_configs(83);
    // The IKE_AUTH request is delayed past the initiator's first retransmission.
    pair.net.filter = Some(Box::new(|from, h, _| {
        if from == Side::Initiator && h.exchange_type == ExchangeType::IkeAuth {
            Action::Delay(Duration::from_millis(700))
        } else {
            Action::Deliver
        }
    }));
    pair.drive();
    pair.assert_child_sas_match();
    assert!(pair.initiator.stats().retransmissions >= 1);
    assert_eq!(pair.responder().stats().requests_processed, 2);
}

/// Under random loss, duplication and reordering up to 30 %, the sides never disagree on an
/// installed Child SA's keys, and most handshakes complete.
#[test]
fn random_impairments_never_make_the_sides_disagree() {
    let mut both = 0;
    for seed in 0..24u64 {
        let mut ci = initiator_config();
        let mut cr = responder_config();
        ci.retransmit.max_retransmits = 6;
        cr.retransmit.max_retransmits = 6;
        let mut pair = Pair::new(ci, cr, 1000 + seed);
        pair.net.loss = 0.3;
        pair.net.duplicate = 0.3;
        pair.net.jitter = Duration::from_millis(400);
        pair.drive();
        let i = pair.installed(Side::Initiator);
        let r = pair.installed(Side::Responder);
        assert!(i.len() <= 1 && r.len() <= 1, "seed {seed}");
        if i.len() == 1 && r.len() == 1 {
            both += 1;
            pair.assert_child_sas_match();
        }
        if i.len() == 1 {
            assert_eq!(
                r.len(),
                1,
                "seed {seed}: the initiator installs after the responder"
            );
        }
    }
    eprintln!("{both} of 24 handshakes completed");
    assert!(both >= 18, "only {both} of 24 handshakes completed");
}

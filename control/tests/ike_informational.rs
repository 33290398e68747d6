//! INFORMATIONAL exchanges after IKE_AUTH (RFC 7296 §1.4, §1.5, §2.4): liveness checks, a
//! dead peer, Delete of a Child SA and of the IKE SA from either side, the message-ID windows
//! and the responder's cache.

mod ike_pair;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use ike_pair::*;
use xipsec_control::ike::{DeleteReason, Error, Event, Fault};
use xipsec_control::wire::ExchangeType;

fn informational(pair: &Pair, from: Side, response: bool) -> Vec<&Sent> {
    pair.net
        .log
        .iter()
        .filter(|s| {
            s.from == from
                && s.header.exchange_type == ExchangeType::Informational
                && s.header.flags.response == response
        })
        .collect()
}

#[test]
fn calls_before_establishment_are_refused() {
    let mut pair = Pair::default_configs(201);
    let e = pair.initiator.delete(pair.now).unwrap_err();
    assert_eq!(e, Error::NotEstablished);
    assert_eq!(e.fault(), Fault::Local);
    assert_eq!(
        pair.initiator.rekey_child(pair.now, 0x1234),
        Err(Error::NotEstablished)
    );
}

#[test]
fn liveness_checks_are_answered_and_ids_increase() {
    let mut ci = initiator_config();
    ci.dpd_interval = Some(Duration::from_secs(10));
    let mut pair = Pair::new(ci, responder_config(), 203);
    pair.establish();
    pair.run_for(Duration::from_secs(35));

    let requests = informational(&pair, Side::Initiator, false);
    let responses = informational(&pair, Side::Responder, true);
    assert_eq!(requests.len(), 3, "one check per idle interval");
    assert_eq!(responses.len(), 3);
    let ids: Vec<u32> = requests.iter().map(|s| s.header.message_id).collect();
    assert_eq!(ids, [2, 3, 4], "after IKE_SA_INIT (0) and IKE_AUTH (1)");
    for (q, r) in requests.iter().zip(&responses) {
        assert_eq!(q.header.message_id, r.header.message_id);
        assert_eq!(r.at - q.at, Duration::from_millis(10), "answered at once");
    }
    // Checks are spaced by the interval after the last answer.
    assert_eq!(
        requests[1].at - responses[0].at,
        Duration::from_secs(10) + Duration::from_millis(10)
    );
    assert!(pair.initiator.is_established() && pair.responder().is_established());
    assert!(pair.ike_deleted(Side::Initiator).is_none());
    assert!(pair.drops[0].is_empty() && pair.drops[1].is_empty());
    assert_eq!(pair.responder().stats().requests_processed, 2 + 3);
}

#[test]
fn silent_peer_is_declared_dead_after_the_backoff() {
    silent_peer(Side::Initiator, 207);
    silent_peer(Side::Responder, 209);
}

/// `side` checks liveness; its peer goes silent once the SA is up.
fn silent_peer(side: Side, seed: u64) {
    let (mut ci, mut cr) = (initiator_config(), responder_config());
    match side {
        Side::Initiator => ci.dpd_interval = Some(Duration::from_secs(10)),
        Side::Responder => cr.dpd_interval = Some(Duration::from_secs(10)),
    }
    let mut pair = Pair::new(ci, cr, seed);
    let silent = Rc::new(Cell::new(false));
    let s = silent.clone();
    pair.net.filter = Some(Box::new(move |from, _, _| {
        if s.get() && from != side {
            Action::Drop
        } else {
            Action::Deliver
        }
    }));
    pair.establish();
    // The last sign of life: the IKE_AUTH response (initiator) or request (responder).
    let t0 = match side {
        Side::Initiator => pair.now,
        Side::Responder => pair.now - Duration::from_millis(10),
    };
    silent.set(true);
    let (child_in, child_out) = pair.sa(side).child_sas()[0];
    pair.drive_until(|p| p.ike_deleted(side).is_some());

    // dpd 10 s, then 0.5 + 1 + 2 + 4 + 8 s of retransmissions (fast_retransmit: 4 retries).
    assert_eq!(pair.now - t0, Duration::from_millis(10_000 + 15_500));
    let dead = DeleteReason::DeadPeer { transmissions: 5 };
    let deleted = pair.deleted(side);
    assert_eq!(deleted.len(), 1);
    assert_eq!(
        (deleted[0].inbound_spi, deleted[0].outbound_spi),
        (child_in, child_out)
    );
    assert_eq!(deleted[0].reason, dead);
    let ike = pair.ike_deleted(side).unwrap();
    assert_eq!(ike.reason, dead);
    let spis = (pair.sa(side).spi_i(), pair.sa(side).spi_r());
    assert_eq!((ike.spi_i, ike.spi_r), spis);
    // The child went before the IKE SA, and no other failure was reported.
    let tail: Vec<_> = pair.events(side).iter().rev().take(2).collect();
    assert!(matches!(tail[0], Event::IkeSaDeleted(_)));
    assert!(matches!(tail[1], Event::ChildSaDeleted(_)));
    assert!(!pair
        .events(side)
        .iter()
        .any(|e| matches!(e, Event::Failed { .. })));
    assert!(!pair.sa(side).is_established());
    assert!(pair.sa(side).child_sas().is_empty());
    let now = pair.now;
    assert_eq!(pair.sa(side).delete(now), Err(Error::Closed));
    assert_eq!(informational(&pair, side, false).len(), 5);
}

fn delete_child_from(side: Side, seed: u64) {
    let mut pair = Pair::default_configs(seed);
    pair.drive();
    let (i, r) = pair.assert_child_sas_match();
    let (i_in, i_out, r_in) = (i.inbound_spi, i.outbound_spi, r.inbound_spi);
    let ours = if side == Side::Initiator { i_in } else { r_in };
    let now = pair.now;
    pair.sa(side).delete_child(now, ours).unwrap();
    pair.drive();

    let by_us = pair.deleted(side);
    let by_peer = pair.deleted(side.other());
    assert_eq!(by_us.len(), 1);
    assert_eq!(by_peer.len(), 1);
    assert_eq!(by_us[0].reason, DeleteReason::Local);
    assert_eq!(by_peer[0].reason, DeleteReason::Peer);
    assert_eq!(by_us[0].inbound_spi, by_peer[0].outbound_spi);
    assert_eq!(by_us[0].outbound_spi, by_peer[0].inbound_spi);
    let initiator_view = if side == Side::Initiator {
        by_us[0]
    } else {
        by_peer[0]
    };
    assert_eq!(
        (initiator_view.inbound_spi, initiator_view.outbound_spi),
        (i_in, i_out)
    );
    // The IKE SA stands, without children.
    assert!(pair.initiator.is_established() && pair.responder().is_established());
    assert!(pair.initiator.child_sas().is_empty());
    assert!(pair.responder().child_sas().is_empty());
    assert!(pair.ike_deleted(Side::Initiator).is_none());
    // The answer named the peer's inbound SPI (§1.4.1): its Delete payload is in the response.
    assert_eq!(informational(&pair, side.other(), true).len(), 1);
    // Deleting it again is a local mistake.
    let now = pair.now;
    let e = pair.sa(side).delete_child(now, ours).unwrap_err();
    assert_eq!(e, Error::NoSuchChildSa { spi: ours });
    assert_eq!(e.fault(), Fault::Local);
}

#[test]
fn delete_child_from_the_initiator() {
    delete_child_from(Side::Initiator, 211);
}

#[test]
fn delete_child_from_the_responder() {
    delete_child_from(Side::Responder, 213);
}

fn delete_ike_from(side: Side, seed: u64) {
    let mut pair = Pair::default_configs(seed);
    pair.drive();
    pair.assert_child_sas_match();
    let now = pair.now;
    pair.sa(side).delete(now).unwrap();
    pair.drive();

    let us = pair.ike_deleted(side).unwrap();
    let peer = pair.ike_deleted(side.other()).unwrap();
    assert_eq!(us.reason, DeleteReason::Local);
    assert_eq!(peer.reason, DeleteReason::Peer);
    assert_eq!((us.spi_i, us.spi_r), (peer.spi_i, peer.spi_r));
    for s in [Side::Initiator, Side::Responder] {
        let d = pair.deleted(s);
        assert_eq!(d.len(), 1, "{s:?}");
        assert_eq!(d[0].reason, DeleteReason::IkeSaGone);
        assert!(!pair.sa(s).is_established());
        assert!(pair.sa(s).is_drained(), "{s:?}: nothing left to do");
    }
    // The response to a Delete of the IKE SA is empty: one INFORMATIONAL each way.
    assert_eq!(informational(&pair, side, false).len(), 1);
    assert_eq!(informational(&pair, side.other(), true).len(), 1);
}

#[test]
fn delete_ike_sa_from_the_initiator() {
    delete_ike_from(Side::Initiator, 217);
}

#[test]
fn delete_ike_sa_from_the_responder() {
    delete_ike_from(Side::Responder, 219);
}

#[test]
fn lost_delete_response_is_answered_from_the_cache() {
    let mut pair = Pair::default_configs(223);
    pair.drive();
    let mut dropped = false;
    pair.net.filter = Some(Box::new(move |from, h, _| {
        if !dropped
            && from == Side::Responder
            && h.exchange_type == ExchangeType::Informational
            && h.flags.response
        {
            dropped = true;
            Action::Drop
        } else {
            Action::Deliver
        }
    }));
    let processed = pair.responder().stats().requests_processed;
    pair.initiator.delete(pair.now).unwrap();
    pair.drive();
    assert_eq!(pair.initiator.stats().retransmissions, 1);
    let rs = pair.responder().stats();
    assert_eq!(rs.requests_processed, processed + 1, "processed once");
    assert_eq!(rs.responses_resent, 1);
    let responses = informational(&pair, Side::Responder, true);
    assert_eq!(responses.len(), 2);
    assert_eq!(responses[0].bytes, responses[1].bytes, "the cached bytes");
    assert_eq!(
        pair.ike_deleted(Side::Initiator).unwrap().reason,
        DeleteReason::Local
    );
    assert_eq!(
        pair.ike_deleted(Side::Responder).unwrap().reason,
        DeleteReason::Peer
    );
    assert_eq!(pair.deleted(Side::Responder).len(), 1, "reported once");
}

#[test]
fn queued_requests_go_one_at_a_time() {
    let mut pair = Pair::default_configs(227);
    pair.drive();
    let (spi, _) = pair.initiator.child_sas()[0];
    // Three requests at once: a new Child SA, a rekey, then deleting the IKE SA (which
    // drops what is still queued).
    pair.initiator.create_child(pair.now).unwrap();
    pair.initiator.rekey_child(pair.now, spi).unwrap();
    pair.drive();
    assert_eq!(pair.installed(Side::Initiator).len(), 2);
    assert_eq!(pair.rekeyed(Side::Initiator).len(), 1);
    assert_eq!(pair.initiator.child_sas().len(), 2);
    assert_eq!(pair.responder().child_sas().len(), 2);
    let ids: Vec<u32> = pair
        .net
        .log
        .iter()
        .filter(|s| s.from == Side::Initiator)
        .map(|s| s.header.message_id)
        .collect();
    assert_eq!(
        ids,
        [0, 1, 2, 3, 4],
        "SA_INIT, AUTH, create, rekey, delete old"
    );
    assert!(pair.drops[0].is_empty() && pair.drops[1].is_empty());
}

#[test]
fn an_old_request_replayed_is_dropped() {
    let mut ci = initiator_config();
    ci.dpd_interval = Some(Duration::from_secs(10));
    let mut pair = Pair::new(ci, responder_config(), 231);
    pair.establish();
    pair.run_for(Duration::from_secs(25));
    let first = informational(&pair, Side::Initiator, false)[0]
        .bytes
        .clone();
    assert_eq!(informational(&pair, Side::Initiator, false).len(), 2);
    let before = pair.responder().stats();
    let now = pair.now;
    let e = pair.sa(Side::Responder).handle(now, &first).unwrap_err();
    assert!(matches!(e, Error::Unexpected { .. }), "{e:?}");
    assert_eq!(e.fault(), Fault::Peer);
    let after = pair.responder().stats();
    assert_eq!(after.requests_processed, before.requests_processed);
    assert_eq!(after.responses_resent, before.responses_resent);
    assert!(
        pair.sa(Side::Responder).poll_transmit().is_none(),
        "no answer"
    );
}

/// Every byte of every message after IKE_AUTH, flipped, is dropped by its receiver without a
/// panic and without touching the SA (the SK payload's ICV covers the header too); so is every
/// message cut in half.
#[test]
fn corrupted_messages_after_ike_auth_are_dropped() {
    let mut pair = Pair::default_configs(233);
    pair.drive();
    let (spi, _) = pair.initiator.child_sas()[0];
    let now = pair.now;
    pair.initiator.rekey_child(now, spi).unwrap();
    pair.responder.as_mut().unwrap().create_child(now).unwrap();
    pair.drive();
    let before = (pair.initiator.child_sas(), pair.responder().child_sas());
    let sent: Vec<Sent> = pair
        .net
        .log
        .iter()
        .filter(|s| {
            matches!(
                s.header.exchange_type,
                ExchangeType::CreateChildSa | ExchangeType::Informational
            )
        })
        .cloned()
        .collect();
    assert!(sent.len() >= 6);
    let mut dropped = 0;
    for s in &sent {
        for i in 0..s.bytes.len() {
            let mut bytes = s.bytes.clone();
            bytes[i] ^= 0x41;
            let now = pair.now;
            let to = s.from.other();
            if pair.sa(to).handle(now, &bytes).is_err() {
                dropped += 1;
            }
            while pair.sa(to).poll_transmit().is_some() {}
        }
        // Truncated.
        let now = pair.now;
        let to = s.from.other();
        if pair
            .sa(to)
            .handle(now, &s.bytes[..s.bytes.len() / 2])
            .is_err()
        {
            dropped += 1;
        }
        while pair.sa(to).poll_transmit().is_some() {}
    }
    let total: usize = sent.iter().map(|s| s.bytes.len() + 1).sum();
    // The §2.1 cache answers only an exact copy of the request it answered: a corrupted copy
    // that reuses the Message ID (cut in half, a flipped byte outside the checked header
    // fields, or a response whose R flag was flipped) gets nothing.
    let resent =
        pair.initiator.stats().responses_resent + pair.responder().stats().responses_resent;
    assert_eq!(
        resent, 0,
        "a corrupted datagram made us send the cached response"
    );
    assert_eq!(dropped, total, "{dropped} of {total} dropped");
    while pair.initiator.poll_event().is_some() {}
    assert_eq!(
        (pair.initiator.child_sas(), pair.responder().child_sas()),
        before
    );
    assert!(pair.initiator.is_established() && pair.responder().is_established());
}

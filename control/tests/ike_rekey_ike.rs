//! The IKE SA rekey (RFC 7296 §1.3.2, §2.18): from either side, new SPIs and keys on both
//! sides, the Child SAs moved to the new IKE SA (and still rekeyable through it), the old IKE SA
//! deleted by the initiator of the rekey.

mod ike_pair;

use ike_pair::*;
use xipsec_control::crypto::Role;
use xipsec_control::ike::{DeleteReason, Event, IkeSaRekeyed};
use xipsec_control::wire::ExchangeType;

fn ike_rekeyed(pair: &Pair, side: Side) -> Vec<IkeSaRekeyed> {
    pair.events(side)
        .iter()
        .filter_map(|e| match e {
            Event::IkeSaRekeyed(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn ike_deleted_all(pair: &Pair, side: Side) -> Vec<(u64, u64, DeleteReason)> {
    pair.events(side)
        .iter()
        .filter_map(|e| match e {
            Event::IkeSaDeleted(d) => Some((d.spi_i, d.spi_r, d.reason)),
            _ => None,
        })
        .collect()
}

/// Rekeys the IKE SA from `side` and checks everything but the Child SAs' keys.
fn rekey_ike(pair: &mut Pair, side: Side) -> IkeSaRekeyed {
    let before = [
        ike_rekeyed(pair, Side::Initiator).len(),
        ike_rekeyed(pair, Side::Responder).len(),
    ];
    let deleted_before = ike_deleted_all(pair, Side::Initiator).len();
    let old = (pair.initiator.spi_i(), pair.initiator.spi_r());
    assert_eq!(old, (pair.responder().spi_i(), pair.responder().spi_r()));
    let children = (pair.initiator.child_sas(), pair.responder().child_sas());
    let child_events = (
        pair.deleted(Side::Initiator).len(),
        pair.installed(Side::Initiator).len(),
    );
    let now = pair.now;
    pair.sa(side).rekey(now).unwrap();
    pair.drive();

    let ri = ike_rekeyed(pair, Side::Initiator);
    let rr = ike_rekeyed(pair, Side::Responder);
    assert_eq!((ri.len(), rr.len()), (before[0] + 1, before[1] + 1));
    let (ri, rr) = (ri.last().unwrap().clone(), rr.last().unwrap().clone());
    assert_eq!(ri, rr, "both sides agree on the new SA");
    assert_eq!((ri.old_spi_i, ri.old_spi_r), old);
    assert_ne!(ri.new_spi_i, 0);
    assert_ne!(ri.new_spi_r, 0);
    assert_ne!((ri.new_spi_i, ri.new_spi_r), old);
    // The current SAs are the new ones; the rekey's initiator is the new SA's initiator.
    for s in [Side::Initiator, Side::Responder] {
        let sa = pair.sa(s);
        assert!(sa.is_established());
        assert_eq!((sa.spi_i(), sa.spi_r()), (ri.new_spi_i, ri.new_spi_r));
        let role = if s == side {
            Role::Initiator
        } else {
            Role::Responder
        };
        assert_eq!(sa.role(), role, "{s:?}");
    }
    // The old SA is gone on both sides, reported as rekeyed; no Child SA was touched.
    for s in [Side::Initiator, Side::Responder] {
        let d = ike_deleted_all(pair, s);
        assert_eq!(d.len(), deleted_before + 1, "{s:?}");
        assert_eq!(*d.last().unwrap(), (old.0, old.1, DeleteReason::Rekeyed));
        assert!(pair.retired[s as usize].is_empty(), "{s:?}: old SA drained");
    }
    assert_eq!(
        (pair.initiator.child_sas(), pair.responder().child_sas()),
        children
    );
    assert_eq!(
        (
            pair.deleted(Side::Initiator).len(),
            pair.installed(Side::Initiator).len()
        ),
        child_events
    );
    // The Delete of the old SA came from the rekey's initiator, on the old SPIs.
    let delete = pair
        .net
        .log
        .iter()
        .rev()
        .find(|s| s.header.exchange_type == ExchangeType::Informational && !s.header.flags.response)
        .unwrap();
    assert_eq!(delete.from, side);
    assert_eq!(
        (delete.header.initiator_spi, delete.header.responder_spi),
        old
    );
    ri
}

/// Rekeys the Child SA from `side` through the current IKE SA and checks both sides agree.
fn rekey_child(pair: &mut Pair, side: Side) {
    let before = pair.rekeyed(Side::Initiator).len();
    let (i_in, i_out) = pair.initiator.child_sas()[0];
    let spi = if side == Side::Initiator { i_in } else { i_out };
    let now = pair.now;
    pair.sa(side).rekey_child(now, spi).unwrap();
    pair.drive();
    let ri = pair.rekeyed(Side::Initiator);
    let rr = pair.rekeyed(Side::Responder);
    assert_eq!((ri.len(), rr.len()), (before + 1, before + 1));
    let (ri, rr) = (*ri.last().unwrap(), *rr.last().unwrap());
    assert_eq!((ri.old_inbound_spi, ri.old_outbound_spi), (i_in, i_out));
    // Keys derived from the new SK_d agree.
    assert_mirror(&ri.new, &rr.new);
    assert_eq!(
        pair.initiator.child_sas(),
        [(ri.new.inbound_spi, ri.new.outbound_spi)]
    );
    assert!(pair.child_failures(Side::Initiator).is_empty());
    assert!(pair.child_failures(Side::Responder).is_empty());
}

#[test]
fn rekey_ike_from_the_initiator() {
    let mut pair = Pair::default_configs(301);
    pair.drive();
    rekey_ike(&mut pair, Side::Initiator);
    rekey_child(&mut pair, Side::Initiator);
    rekey_child(&mut pair, Side::Responder);
}

#[test]
fn rekey_ike_from_the_responder() {
    let mut pair = Pair::default_configs(302);
    pair.drive();
    rekey_ike(&mut pair, Side::Responder);
    rekey_child(&mut pair, Side::Responder);
    rekey_child(&mut pair, Side::Initiator);
}

#[test]
fn rekey_ike_twice_then_delete() {
    let mut pair = Pair::default_configs(303);
    pair.drive();
    let first = rekey_ike(&mut pair, Side::Initiator);
    let second = rekey_ike(&mut pair, Side::Responder);
    assert_ne!(
        (first.new_spi_i, first.new_spi_r),
        (second.new_spi_i, second.new_spi_r)
    );
    rekey_child(&mut pair, Side::Initiator);
    // The rekeyed SA still carries an ordinary Delete.
    let now = pair.now;
    pair.sa(Side::Initiator).delete(now).unwrap();
    pair.drive();
    let i = ike_deleted_all(&pair, Side::Initiator);
    let r = ike_deleted_all(&pair, Side::Responder);
    assert_eq!(
        *i.last().unwrap(),
        (second.new_spi_i, second.new_spi_r, DeleteReason::Local)
    );
    assert_eq!(
        *r.last().unwrap(),
        (second.new_spi_i, second.new_spi_r, DeleteReason::Peer)
    );
    for s in [Side::Initiator, Side::Responder] {
        let d = pair.deleted(s);
        assert_eq!(d.last().unwrap().reason, DeleteReason::IkeSaGone, "{s:?}");
    }
}

#[test]
fn rekey_ike_under_loss_and_duplication() {
    for seed in 310..316 {
        let mut pair = Pair::default_configs(seed);
        pair.drive();
        pair.net.loss = 0.2;
        pair.net.duplicate = 0.2;
        let now = pair.now;
        let side = if seed % 2 == 0 {
            Side::Initiator
        } else {
            Side::Responder
        };
        pair.sa(side).rekey(now).unwrap();
        pair.drive();
        pair.net.loss = 0.0;
        pair.net.duplicate = 0.0;
        let ri = ike_rekeyed(&pair, Side::Initiator);
        let rr = ike_rekeyed(&pair, Side::Responder);
        assert_eq!((ri.len(), rr.len()), (1, 1), "seed {seed}");
        assert_eq!(ri, rr);
        rekey_child(&mut pair, side.other());
    }
}

/// §2.8.2: both sides rekey the IKE SA at once. Both exchanges complete; the new SA of the
/// exchange with the lowest nonce is deleted by its creator, the other inherits the Child SAs,
/// and the old one is deleted. Both sides end up with the same single IKE SA, whichever
/// exchange won (the seeds cover both outcomes).
#[test]
fn simultaneous_ike_rekeys_leave_one_new_sa_on_both_sides() {
    let mut winners = std::collections::HashSet::new();
    for seed in 320..332 {
        let mut pair = Pair::default_configs(seed);
        pair.drive();
        let old = (pair.initiator.spi_i(), pair.initiator.spi_r());
        let children = (pair.initiator.child_sas(), pair.responder().child_sas());
        let now = pair.now;
        pair.sa(Side::Initiator).rekey(now).unwrap();
        pair.sa(Side::Responder).rekey(now).unwrap();
        pair.drive();
        let ri = ike_rekeyed(&pair, Side::Initiator);
        let rr = ike_rekeyed(&pair, Side::Responder);
        assert_eq!((ri.len(), rr.len()), (1, 1), "seed {seed}");
        assert_eq!(ri, rr, "seed {seed}: both sides keep the same new SA");
        let new = (ri[0].new_spi_i, ri[0].new_spi_r);
        for s in [Side::Initiator, Side::Responder] {
            let sa = pair.sa(s);
            assert!(sa.is_established(), "seed {seed} {s:?}");
            assert_eq!((sa.spi_i(), sa.spi_r()), new, "seed {seed} {s:?}");
            assert!(
                pair.retired[s as usize].is_empty(),
                "seed {seed} {s:?}: the old and the redundant SA are gone"
            );
            // Two IKE SAs deleted on each side: the old one and the redundant new one.
            let deleted = ike_deleted_all(&pair, s);
            assert_eq!(deleted.len(), 2, "seed {seed} {s:?}: {deleted:?}");
            assert!(deleted.contains(&(old.0, old.1, DeleteReason::Rekeyed)));
            assert!(
                pair.events(s)
                    .iter()
                    .all(|e| !matches!(e, Event::IkeSaRekeyFailed { .. })),
                "seed {seed} {s:?}"
            );
        }
        assert_eq!(
            (pair.initiator.child_sas(), pair.responder().child_sas()),
            children,
            "seed {seed}: the Child SAs moved, untouched"
        );
        winners.insert(pair.initiator.role());
        // The survivor works: its Child SA rekeys through it.
        rekey_child(&mut pair, Side::Responder);
    }
    assert_eq!(winners.len(), 2, "both exchanges won for some seed");
}

//! IKE fragmentation (RFC 7383) of IKE_AUTH: certificate chains too long for one datagram go
//! as SKF fragments both ways, a lost fragment is repaired by retransmission, and duplicate,
//! forged, truncated and misnumbered fragments are dropped and counted.

mod certs;
mod ike_pair;

use std::sync::Arc;
use std::time::Instant;

use certs::{Alg, Ca, EndEntity};
use ike_pair::*;
use xipsec_control::ike::{Error, IkeConfig, IkeSa};
use xipsec_control::wire::{Header, Message, Payload, PayloadType};

/// IPv4 in the harness: 1280 less 20 (IP) and 8 (UDP).
const LIMIT: usize = 1280 - 28;

struct Chains {
    root: Ca,
    /// root -> inters[0] -> … -> inters[3]
    inters: Vec<Ca>,
    alice: EndEntity,
    gw: EndEntity,
}

/// Four RSA intermediates under the root; both end entities under the last one.
fn chains() -> Chains {
    let root = Ca::root("root", Alg::Rsa);
    let mut inters: Vec<Ca> = Vec::new();
    for n in 0..4 {
        let parent = inters.last().unwrap_or(&root);
        let next = parent.intermediate(&format!("intermediate {n}"), Alg::Rsa);
        inters.push(next);
    }
    let last = inters.last().unwrap();
    let alice = last.issue("alice", &["alice@example.com"], Alg::P256);
    let gw = last.issue("gw", &["gw.example.com"], Alg::Rsa);
    Chains {
        root,
        inters,
        alice,
        gw,
    }
}

fn configs(c: &Chains, fragmentation: (bool, bool)) -> (IkeConfig, IkeConfig) {
    let path: Vec<&Ca> = c.inters.iter().rev().collect();
    let mut i = initiator_config();
    i.local_auth = c.alice.local_auth(&path);
    i.peer_auth = c.root.anchors();
    i.fragmentation = fragmentation.0;
    let mut r = responder_config();
    r.local_auth = c.gw.local_auth(&path);
    r.peer_auth = c.root.anchors();
    r.fragmentation = fragmentation.1;
    (i, r)
}

/// (Fragment Number, Total Fragments, datagram length) of every IKE_AUTH datagram `from`
/// sent, or `None` for one sent whole.
fn auth_datagrams(pair: &Pair, from: Side) -> Vec<Option<(u16, u16, usize)>> {
    pair.net
        .log
        .iter()
        .filter(|s| s.from == from && s.header.message_id == 1)
        .map(|s| match &Message::decode(&s.bytes).unwrap().payloads[..] {
            [Payload::Skf(f)] => Some((f.fragment_number, f.total_fragments, s.bytes.len())),
            [Payload::Sk(_)] => None,
            other => panic!("{other:?}"),
        })
        .collect()
}

fn assert_fragmented(sent: &[Option<(u16, u16, usize)>]) -> u16 {
    let total = sent[0].expect("fragments").1;
    assert!(
        total >= 3,
        "a chain of four intermediates needs several fragments"
    );
    let mut numbers: Vec<u16> = sent
        .iter()
        .map(|f| {
            let (n, t, len) = f.expect("every datagram a fragment");
            assert_eq!(t, total);
            assert!(len <= LIMIT, "fragment of {len} octets");
            n
        })
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers, (1..=total).collect::<Vec<_>>());
    total
}

#[test]
fn long_chains_go_as_fragments_both_ways() {
    let c = chains();
    let (i, r) = configs(&c, (true, true));
    let mut pair = Pair::new(i, r, 1);
    pair.drive();
    assert!(pair.established(Side::Initiator).is_some());
    assert!(pair.established(Side::Responder).is_some());
    pair.assert_child_sas_match();
    let sent_i = auth_datagrams(&pair, Side::Initiator);
    let sent_r = auth_datagrams(&pair, Side::Responder);
    assert_eq!(sent_i.len(), usize::from(assert_fragmented(&sent_i)));
    assert_eq!(sent_r.len(), usize::from(assert_fragmented(&sent_r)));
    // §2.5: only fragment 1 names the first inner payload.
    for s in pair.net.log.iter().filter(|s| s.header.message_id == 1) {
        let m = Message::decode(&s.bytes).unwrap();
        let [Payload::Skf(f)] = &m.payloads[..] else {
            unreachable!()
        };
        assert_eq!(
            f.next_payload == PayloadType::NoNextPayload,
            f.fragment_number != 1
        );
    }
    for side in [Side::Initiator, Side::Responder] {
        assert_eq!(pair.sa(side).stats().dropped, 0);
    }
}

#[test]
fn no_fragments_unless_both_announce_support() {
    let c = chains();
    for (flags, seed) in [((true, false), 2), ((false, true), 3)] {
        let (i, r) = configs(&c, flags);
        let mut pair = Pair::new(i, r, seed);
        pair.drive();
        assert!(pair.established(Side::Responder).is_some());
        for side in [Side::Initiator, Side::Responder] {
            let sent = auth_datagrams(&pair, side);
            assert_eq!(sent.len(), 1, "{flags:?}");
            assert!(sent[0].is_none(), "sent whole");
        }
        // Whole, the request is far larger than one fragment would be.
        let request = pair
            .net
            .log
            .iter()
            .find(|s| s.from == Side::Initiator && s.header.message_id == 1)
            .unwrap();
        assert!(request.bytes.len() > 2 * LIMIT);
    }
}

#[test]
fn a_lost_fragment_is_repaired_by_retransmission() {
    let c = chains();
    let (i, r) = configs(&c, (true, true));
    let mut pair = Pair::new(i, r, 4);
    // Each side's datagram 0 is IKE_SA_INIT; drop the second IKE_AUTH fragment of each, once.
    pair.net.filter = Some(Box::new(|_, h: &Header, n| {
        if n == 2 && h.message_id == 1 {
            Action::Drop
        } else {
            Action::Deliver
        }
    }));
    pair.drive();
    assert!(pair.established(Side::Initiator).is_some());
    assert!(pair.established(Side::Responder).is_some());
    pair.assert_child_sas_match();
    // The initiator resent its request (all fragments); the responder answered the
    // retransmitted fragment 1 with its whole response from the cache.
    assert!(pair.initiator.stats().retransmissions >= 1);
    assert!(pair.responder().stats().responses_resent >= 1);
    // Fragments seen twice were dropped and counted, nothing else.
    for side in [Side::Initiator, Side::Responder] {
        let drops = &pair.drops[side as usize];
        assert!(!drops.is_empty(), "{side:?} saw duplicates");
        assert!(
            drops.iter().all(|e| matches!(e, Error::Unexpected { .. })),
            "{drops:?}"
        );
    }
}

#[test]
fn bad_fragments_are_dropped_and_counted() {
    let c = chains();
    let (i, r) = configs(&c, (true, true));
    let now = Instant::now();
    let mut initiator = IkeSa::initiate(Arc::new(i), now, rng(5)).unwrap();
    let request = initiator.poll_transmit().unwrap().contents;
    let mut responder = IkeSa::respond(Arc::new(r), now, rng(6), &request).unwrap();
    let response = responder.poll_transmit().unwrap().contents;
    initiator.handle(now, &response).unwrap();
    let fragments: Vec<Vec<u8>> = std::iter::from_fn(|| initiator.poll_transmit())
        .map(|t| t.contents)
        .collect();
    assert!(fragments.len() >= 3);

    responder.handle(now, &fragments[0]).unwrap();
    // The same fragment again.
    assert_eq!(
        responder.handle(now, &fragments[0]),
        Err(Error::Unexpected {
            what: "a duplicate fragment"
        })
    );
    // A forged one: one octet of its ciphertext changed.
    let mut forged = fragments[1].clone();
    *forged.last_mut().unwrap() ^= 1;
    assert!(matches!(
        responder.handle(now, &forged),
        Err(Error::Undecryptable(_))
    ));
    // A truncated one.
    let cut = &fragments[1][..fragments[1].len() - 10];
    assert!(matches!(
        responder.handle(now, cut),
        Err(Error::Malformed(_))
    ));
    // One with another Message ID.
    let mut moved = fragments[1].clone();
    moved[20..24].copy_from_slice(&7u32.to_be_bytes());
    assert_eq!(
        responder.handle(now, &moved),
        Err(Error::Unexpected {
            what: "a request with a Message ID outside the window"
        })
    );
    // One claiming more fragments than exist (Fragment Number > Total Fragments).
    let mut beyond = fragments[1].clone();
    let skf = Header::LEN;
    beyond[skf + 4..skf + 6].copy_from_slice(&9u16.to_be_bytes());
    beyond[skf + 6..skf + 8].copy_from_slice(&3u16.to_be_bytes());
    assert!(matches!(
        responder.handle(now, &beyond),
        Err(Error::Malformed(_))
    ));
    assert_eq!(responder.stats().dropped, 5);
    assert!(!responder.is_established());
    assert!(responder.poll_transmit().is_none(), "nothing answered yet");

    // The genuine rest completes the message.
    for f in &fragments[1..] {
        responder.handle(now, f).unwrap();
    }
    assert!(responder.is_established());
    let answer: Vec<Vec<u8>> = std::iter::from_fn(|| responder.poll_transmit())
        .map(|t| t.contents)
        .collect();
    assert!(answer.len() >= 3, "the response is fragmented too");
    // Out of order, with a duplicate in the middle.
    let mut order: Vec<&Vec<u8>> = answer.iter().rev().collect();
    order.insert(1, &answer[answer.len() - 1]);
    let mut results = Vec::new();
    for f in order {
        results.push(initiator.handle(now, f));
    }
    assert_eq!(
        results.iter().filter(|r| r.is_err()).count(),
        1,
        "{results:?}"
    );
    assert!(initiator.is_established());
}

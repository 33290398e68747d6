//! IKE fragmentation (RFC 7383 §2.5) of the exchanges after IKE_AUTH: CREATE_CHILD_SA
//! requests and responses with big KE payloads (MODP-3072) or long selector lists go as SKF
//! fragments both ways when both sides announced support, a Child SA rekey, a new Child SA
//! and IKE SA rekeys (the rekeyed SA keeps fragmenting) succeed through them, a lost fragment
//! is repaired by retransmission, bad fragments are dropped and counted, and nothing is
//! fragmented when either side did not announce support.

mod ike_pair;

use std::collections::BTreeMap;

use ike_pair::*;
use xipsec_control::ike::{Error, Event, IkeConfig, IkeProposal, IkeSaRekeyed};
use xipsec_control::wire::{
    EncryptedFragment, ExchangeType, Flags, Header, KeMethod, Message, Payload, PayloadType,
    TrafficSelector,
};

/// The configured IP datagram size.
const FRAGMENT_SIZE: usize = 576;
/// The largest IKE message that fits it: IPv4 in the harness, 20 (IP) and 8 (UDP) less.
const LIMIT: usize = FRAGMENT_SIZE - 28;

/// `n` distinct /24 networks of 10.`second`.0.0/16, any protocol and port.
fn nets(second: u8, n: u8) -> Vec<TrafficSelector> {
    (0..n)
        .map(|third| TrafficSelector::Ipv4 {
            ip_protocol: 0,
            start_port: 0,
            end_port: u16::MAX,
            start: [10, second, third, 0].into(),
            end: [10, second, third, 255].into(),
        })
        .collect()
}

/// Small fragments, PFS with MODP-3072 (a 384-octet KE payload), the first child with 16
/// selectors on each side and a second child (for a new Child SA) with 32 on each side, all
/// mirrored between the two; `fragmentation` says who announces support.
fn configs(fragmentation: (bool, bool)) -> (IkeConfig, IkeConfig) {
    let mut i = initiator_config();
    let mut r = responder_config();
    for (c, on) in [(&mut i, fragmentation.0), (&mut r, fragmentation.1)] {
        c.fragmentation = on;
        c.fragment_size = FRAGMENT_SIZE;
        c.child.pfs = Some(KeMethod::Modp3072);
    }
    i.child.local_ts = nets(1, 16);
    i.child.remote_ts = nets(2, 16);
    r.child.local_ts = nets(2, 16);
    r.child.remote_ts = nets(1, 16);
    let mut second = i.child.clone();
    second.local_ts = nets(3, 32);
    second.remote_ts = nets(4, 32);
    second.pfs = None;
    i.more_children = vec![second];
    let mut other = r.child.clone();
    other.local_ts = nets(4, 32);
    other.remote_ts = nets(3, 32);
    other.pfs = None;
    r.more_children = vec![other];
    (i, r)
}

/// One datagram of the log: whether it was a fragment (Fragment Number, Total Fragments) and
/// its length.
#[derive(Clone, Copy, Debug)]
struct Seen {
    fragment: Option<(u16, u16)>,
    len: usize,
}

/// The messages of `exchange` on the IKE SA of initiator SPI `spi_i`, keyed by (sender,
/// response, Message ID), each with its datagrams in the order they were sent.
fn messages(
    pair: &Pair,
    exchange: ExchangeType,
    spi_i: u64,
) -> BTreeMap<(bool, bool, u32), Vec<Seen>> {
    let mut out: BTreeMap<(bool, bool, u32), Vec<Seen>> = BTreeMap::new();
    for s in pair
        .net
        .log
        .iter()
        .filter(|s| s.header.exchange_type == exchange && s.header.initiator_spi == spi_i)
    {
        let fragment = match &Message::decode(&s.bytes).unwrap().payloads[..] {
            [Payload::Skf(f)] => Some((f.fragment_number, f.total_fragments)),
            [Payload::Sk(_)] => None,
            other => panic!("{other:?}"),
        };
        let key = (
            s.from == Side::Initiator,
            s.header.flags.response,
            s.header.message_id,
        );
        out.entry(key).or_default().push(Seen {
            fragment,
            len: s.bytes.len(),
        });
    }
    out
}

/// Asserts that every datagram of the message is a fragment that fits the limit, all of one
/// Total Fragments (at least 2), every Fragment Number present; returns Total Fragments.
fn assert_fragmented(seen: &[Seen]) -> u16 {
    let total = seen[0].fragment.expect("sent as fragments").1;
    assert!(total >= 2, "{seen:?}");
    let mut numbers: Vec<u16> = seen
        .iter()
        .map(|s| {
            let (n, t) = s.fragment.expect("every datagram a fragment");
            assert_eq!(t, total);
            assert!(s.len <= LIMIT, "a fragment of {} octets", s.len);
            n
        })
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers, (1..=total).collect::<Vec<_>>());
    total
}

/// Asserts that the exchanges of `exchange` on the IKE SA of `spi_i` were fragmented both
/// ways (requests and responses), each sent once; returns how many messages there were.
fn assert_all_fragmented_once(pair: &Pair, exchange: ExchangeType, spi_i: u64) -> usize {
    let all = messages(pair, exchange, spi_i);
    assert!(all.keys().any(|k| k.1), "a response");
    assert!(all.keys().any(|k| !k.1), "a request");
    for (key, seen) in &all {
        let total = assert_fragmented(seen);
        assert_eq!(seen.len(), usize::from(total), "{key:?} sent once");
    }
    all.len()
}

fn ike_rekeyed(pair: &Pair, side: Side) -> Vec<IkeSaRekeyed> {
    pair.events(side)
        .iter()
        .filter_map(|e| match e {
            Event::IkeSaRekeyed(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn assert_no_drops(pair: &Pair) {
    assert!(pair.drops[0].is_empty(), "{:?}", pair.drops[0]);
    assert!(pair.drops[1].is_empty(), "{:?}", pair.drops[1]);
}

#[test]
fn child_rekey_and_new_child_sa_go_as_fragments_both_ways() {
    let (i, r) = configs((true, true));
    let mut pair = Pair::new(i, r, 701);
    pair.drive();
    pair.assert_child_sas_match();
    let spi_i = pair.initiator.spi_i();

    // A rekey with PFS from the initiator.
    let (old_in, old_out) = pair.initiator.child_sas()[0];
    let now = pair.now;
    pair.initiator.rekey_child(now, old_in).unwrap();
    pair.drive();
    let (ri, rr) = (pair.rekeyed(Side::Initiator), pair.rekeyed(Side::Responder));
    assert_eq!((ri.len(), rr.len()), (1, 1));
    assert_eq!(
        (ri[0].old_inbound_spi, ri[0].old_outbound_spi),
        (old_in, old_out)
    );
    assert_mirror(&ri[0].new, &rr[0].new);
    assert_eq!(ri[0].new.local_ts, nets(1, 16));
    assert_eq!(
        assert_all_fragmented_once(&pair, ExchangeType::CreateChildSa, spi_i),
        2
    );

    // A new Child SA of the second child, from the responder: 32 selectors each way.
    let now = pair.now;
    pair.sa(Side::Responder).create_child_from(now, 1).unwrap();
    pair.drive();
    let (ni, nr) = (
        pair.installed(Side::Initiator),
        pair.installed(Side::Responder),
    );
    let (ni, nr) = (*ni.last().unwrap(), *nr.last().unwrap());
    assert_mirror(ni, nr);
    assert_eq!(nr.local_ts, nets(4, 32));
    assert_eq!(nr.config, 1);
    assert_eq!(pair.initiator.child_sas().len(), 2);
    assert_eq!(pair.responder().child_sas().len(), 2);
    assert_eq!(
        assert_all_fragmented_once(&pair, ExchangeType::CreateChildSa, spi_i),
        4
    );
    assert!(pair.child_failures(Side::Initiator).is_empty());
    assert!(pair.child_failures(Side::Responder).is_empty());
    assert_no_drops(&pair);
    for side in [Side::Initiator, Side::Responder] {
        let stats = pair.sa(side).stats();
        assert_eq!((stats.dropped, stats.retransmissions), (0, 0), "{side:?}");
    }
}

#[test]
fn a_lost_fragment_is_repaired_by_retransmission() {
    let (i, r) = configs((true, true));
    let mut pair = Pair::new(i, r, 703);
    pair.drive();
    let spi_i = pair.initiator.spi_i();
    // The second CREATE_CHILD_SA datagram of each side (fragment 2 of the request, then of
    // the response) is lost, once.
    let mut seen = [0usize; 2];
    pair.net.filter = Some(Box::new(move |from, h: &Header, _| {
        if h.exchange_type != ExchangeType::CreateChildSa {
            return Action::Deliver;
        }
        let n = &mut seen[from as usize];
        *n += 1;
        if *n == 2 {
            Action::Drop
        } else {
            Action::Deliver
        }
    }));
    let (old_in, _) = pair.initiator.child_sas()[0];
    let now = pair.now;
    pair.initiator.rekey_child(now, old_in).unwrap();
    pair.drive();
    let (ri, rr) = (pair.rekeyed(Side::Initiator), pair.rekeyed(Side::Responder));
    assert_eq!((ri.len(), rr.len()), (1, 1));
    assert_mirror(&ri[0].new, &rr[0].new);
    assert_eq!(pair.initiator.child_sas().len(), 1);
    assert_eq!(pair.responder().child_sas().len(), 1);

    // The initiator sent its request twice, all fragments each time (§2.6.1); the responder
    // answered the retransmitted fragment 1 with its whole cached response.
    let all = messages(&pair, ExchangeType::CreateChildSa, spi_i);
    assert_eq!(all.len(), 2);
    for seen in all.values() {
        let total = usize::from(assert_fragmented(seen));
        assert!(seen.len() >= 2 * total, "{seen:?}");
    }
    assert!(pair.initiator.stats().retransmissions >= 1);
    assert!(pair.responder().stats().responses_resent >= 1);
    // One exchange's outcome each: processed once, not again for the retransmission.
    assert_eq!(pair.rekeyed(Side::Responder).len(), 1);
    // Fragments seen twice were dropped and counted, nothing else.
    for side in [Side::Initiator, Side::Responder] {
        let drops = &pair.drops[side as usize];
        assert!(!drops.is_empty(), "{side:?} saw duplicates");
        assert!(
            drops.iter().all(|e| matches!(e, Error::Unexpected { .. })),
            "{drops:?}"
        );
        assert_eq!(pair.all_sas(side)[0].stats().dropped, drops.len() as u64);
    }
}

#[test]
fn ike_sa_rekeys_with_modp_3072_fragment_and_the_new_sa_keeps_fragmenting() {
    let (mut i, mut r) = configs((true, true));
    for c in [&mut i, &mut r] {
        c.ike_proposals = vec![IkeProposal::aead(vec![KeMethod::Modp3072])];
        // With 32-octet nonces the response (one proposal chosen) would just fit whole.
        c.nonce_len = 64;
    }
    let mut pair = Pair::new(i, r, 705);
    pair.drive();
    assert_eq!(
        pair.established(Side::Initiator).unwrap().ke,
        KeMethod::Modp3072
    );
    let children = pair.initiator.child_sas();

    // Rekey from the initiator, then rekey the new SA from the responder: the second goes
    // over an IKE SA made by a rekey, which must still fragment.
    let mut old_spi = pair.initiator.spi_i();
    for (n, side) in [Side::Initiator, Side::Responder].into_iter().enumerate() {
        let now = pair.now;
        pair.sa(side).rekey(now).unwrap();
        pair.drive();
        let (ri, rr) = (
            ike_rekeyed(&pair, Side::Initiator),
            ike_rekeyed(&pair, Side::Responder),
        );
        assert_eq!((ri.len(), rr.len()), (n + 1, n + 1));
        let (ri, rr) = (ri.last().unwrap(), rr.last().unwrap());
        assert_eq!(ri, rr, "both sides agree on the new SA");
        assert_eq!(ri.old_spi_i, old_spi);
        assert_eq!(ri.ke, KeMethod::Modp3072);
        for s in [Side::Initiator, Side::Responder] {
            let sa = pair.sa(s);
            assert!(sa.is_established());
            assert_eq!((sa.spi_i(), sa.spi_r()), (ri.new_spi_i, ri.new_spi_r));
        }
        assert_eq!(
            assert_all_fragmented_once(&pair, ExchangeType::CreateChildSa, old_spi),
            2
        );
        old_spi = ri.new_spi_i;
    }
    // The Child SAs moved along, and can still be rekeyed (fragmented) on the newest SA.
    assert_eq!(pair.initiator.child_sas(), children);
    let (spi, _) = children[0];
    let now = pair.now;
    pair.initiator.rekey_child(now, spi).unwrap();
    pair.drive();
    let (ri, rr) = (pair.rekeyed(Side::Initiator), pair.rekeyed(Side::Responder));
    assert_eq!((ri.len(), rr.len()), (1, 1));
    assert_mirror(&ri[0].new, &rr[0].new);
    assert_eq!(
        assert_all_fragmented_once(&pair, ExchangeType::CreateChildSa, old_spi),
        2
    );
    assert_no_drops(&pair);
}

#[test]
fn bad_fragments_on_an_established_sa_are_dropped_and_counted() {
    let (i, r) = configs((true, true));
    let mut pair = Pair::new(i, r, 707);
    pair.drive();
    let now = pair.now;
    let (old_in, old_out) = pair.initiator.child_sas()[0];
    pair.initiator.rekey_child(now, old_in).unwrap();
    // Taken before the network sees them.
    let fragments: Vec<Vec<u8>> = std::iter::from_fn(|| pair.initiator.poll_transmit())
        .map(|t| t.contents)
        .collect();
    assert!(fragments.len() >= 3, "{} fragments", fragments.len());
    let message_id = Header::peek(&fragments[0]).unwrap().message_id;

    let responder = pair.responder.as_mut().unwrap();
    let dropped = responder.stats().dropped;
    let processed = responder.stats().requests_processed;
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
    // One whose Fragment Number and Total Fragments were rewritten (authenticated octets).
    let skf = Header::LEN;
    let mut renumbered = fragments[1].clone();
    renumbered[skf + 4..skf + 6].copy_from_slice(&3u16.to_be_bytes());
    renumbered[skf + 6..skf + 8].copy_from_slice(&9u16.to_be_bytes());
    assert!(matches!(
        responder.handle(now, &renumbered),
        Err(Error::Undecryptable(_))
    ));
    // One out of range: Fragment Number beyond Total Fragments.
    let mut beyond = fragments[1].clone();
    beyond[skf + 4..skf + 6].copy_from_slice(&9u16.to_be_bytes());
    beyond[skf + 6..skf + 8].copy_from_slice(&3u16.to_be_bytes());
    assert!(matches!(
        responder.handle(now, &beyond),
        Err(Error::Malformed(_))
    ));
    // One with another Message ID.
    let mut moved = fragments[1].clone();
    moved[20..24].copy_from_slice(&(message_id + 5).to_be_bytes());
    assert_eq!(
        responder.handle(now, &moved),
        Err(Error::Unexpected {
            what: "a request with a Message ID outside the window"
        })
    );
    // A truncated one.
    let cut = &fragments[1][..fragments[1].len() - 10];
    assert!(responder.handle(now, cut).is_err());
    assert_eq!(responder.stats().dropped, dropped + 6);
    assert_eq!(responder.stats().requests_processed, processed);
    assert!(responder.poll_transmit().is_none(), "nothing answered yet");
    assert_eq!(responder.child_sas(), [(old_out, old_in)]);

    // The genuine rest, out of order, completes the request: processed once, answered in
    // fragments.
    for f in fragments[1..].iter().rev() {
        responder.handle(now, f).unwrap();
    }
    assert_eq!(responder.stats().requests_processed, processed + 1);
    let answer: Vec<Vec<u8>> = std::iter::from_fn(|| responder.poll_transmit())
        .map(|t| t.contents)
        .collect();
    assert!(answer.len() >= 2, "the response is fragmented too");
    for a in &answer {
        assert!(a.len() <= LIMIT);
        assert!(matches!(
            Message::decode(a).unwrap().payloads[..],
            [Payload::Skf(_)]
        ));
    }
    // A retransmitted fragment 1 gets the whole response again, from the cache.
    let resent = responder.stats().responses_resent;
    responder.handle(now, &fragments[0]).unwrap();
    let again: Vec<Vec<u8>> = std::iter::from_fn(|| responder.poll_transmit())
        .map(|t| t.contents)
        .collect();
    assert_eq!(again, answer);
    assert_eq!(responder.stats().responses_resent, resent + 1);
    assert_eq!(responder.stats().requests_processed, processed + 1);
    // Another retransmitted fragment is not the request the cache answers (§2.6.1).
    assert_eq!(
        responder.handle(now, &fragments[1]),
        Err(Error::Unexpected {
            what: "a request reusing the last Message ID with other content"
        })
    );
    assert!(responder.poll_transmit().is_none());
    assert_eq!(responder.stats().dropped, dropped + 7);

    // The initiator takes the response in reverse order with a duplicate in the middle.
    let initiator_dropped = pair.initiator.stats().dropped;
    let mut order: Vec<&Vec<u8>> = answer.iter().rev().collect();
    order.insert(1, &answer[answer.len() - 1]);
    let results: Vec<_> = order
        .into_iter()
        .map(|f| pair.initiator.handle(now, f))
        .collect();
    assert_eq!(
        results,
        [
            vec![Ok(())],
            vec![Err(Error::Unexpected {
                what: "a duplicate fragment"
            })],
            vec![Ok(()); answer.len() - 1],
        ]
        .concat()
    );
    assert_eq!(pair.initiator.stats().dropped, initiator_dropped + 1);
    // The rekey completes: the old pair's Delete follows on both sides.
    pair.drive();
    let (ri, rr) = (pair.rekeyed(Side::Initiator), pair.rekeyed(Side::Responder));
    assert_eq!((ri.len(), rr.len()), (1, 1));
    assert_mirror(&ri[0].new, &rr[0].new);
    assert_eq!(pair.initiator.child_sas().len(), 1);
    assert_eq!(pair.responder().child_sas().len(), 1);
}

#[test]
fn nothing_is_fragmented_unless_both_announce_support() {
    for (flags, seed) in [((true, false), 711), ((false, true), 713)] {
        let (i, r) = configs(flags);
        let mut pair = Pair::new(i, r, seed);
        pair.drive();
        let spi_i = pair.initiator.spi_i();
        let (old_in, _) = pair.initiator.child_sas()[0];
        let now = pair.now;
        pair.initiator.rekey_child(now, old_in).unwrap();
        pair.drive();
        let now = pair.now;
        pair.initiator.create_child_from(now, 1).unwrap();
        pair.drive();
        assert_eq!(pair.rekeyed(Side::Responder).len(), 1, "{flags:?}");
        assert_eq!(pair.responder().child_sas().len(), 2, "{flags:?}");
        assert_no_drops(&pair);
        for exchange in [ExchangeType::CreateChildSa, ExchangeType::Informational] {
            for (key, seen) in messages(&pair, exchange, spi_i) {
                assert_eq!(seen.len(), 1, "{flags:?} {key:?} sent once");
                assert!(seen[0].fragment.is_none(), "{flags:?} {key:?} sent whole");
            }
        }
        // Whole, every CREATE_CHILD_SA message is larger than a fragment may be.
        let all = messages(&pair, ExchangeType::CreateChildSa, spi_i);
        assert_eq!(all.len(), 4);
        assert!(all.values().all(|s| s[0].len > LIMIT), "{all:?}");

        // An SKF message is refused before anything else is looked at, and counted.
        let next_id = pair
            .net
            .log
            .iter()
            .filter(|s| s.from == Side::Initiator && !s.header.flags.response)
            .map(|s| s.header.message_id)
            .max()
            .unwrap()
            + 1;
        let header = Header::new(
            spi_i,
            pair.initiator.spi_r(),
            ExchangeType::CreateChildSa,
            Flags {
                initiator: true,
                version: false,
                response: false,
            },
            next_id,
        );
        let fragment = Message {
            header,
            payloads: vec![Payload::Skf(EncryptedFragment {
                next_payload: PayloadType::Sa,
                fragment_number: 1,
                total_fragments: 2,
                data: vec![0x5a; 80],
            })],
        }
        .encode();
        let responder = pair.responder.as_mut().unwrap();
        let dropped = responder.stats().dropped;
        assert!(matches!(
            responder.handle(pair.now, &fragment),
            Err(Error::Unsupported { .. })
        ));
        assert_eq!(responder.stats().dropped, dropped + 1);
        assert!(responder.poll_transmit().is_none());
    }
}

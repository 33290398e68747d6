//! Per-resource Child SAs (RFC 9611) between two IKE SAs in memory: the fallback Child SA and
//! one Child SA per resource with the same selectors, SA_RESOURCE_INFO (16444) and
//! TS_MAX_QUEUE (48) on the wire, rekeys keeping their resource, peers that do not take part.
//!
//! What went over the wire is checked independently of the state machine: the test records
//! the initiator's random draws, finds its X25519 secret among them by its public value in
//! IKE_SA_INIT, derives the IKE SA's keys itself with the crypto suite, and opens every
//! encrypted message with them. The same keys forge requests with odd SA_RESOURCE_INFO
//! notifications for the responder.

mod ike_pair;

use std::sync::{Arc, Mutex};

use ike_pair::*;
use xipsec_control::crypto::{
    skeyseed, CryptoError, Encr, IkeSaKeys, IkeSuite, KeyExchange, Prf, Rng, Role,
};
use xipsec_control::ike::{ChildSaInstalled, DeleteReason, Error, Event, IkeConfig, IkeSa};
use xipsec_control::wire::*;

/// RFC 9611 §7's registrations, written out rather than taken from the codec.
const SA_RESOURCE_INFO: u16 = 16444;
const TS_MAX_QUEUE: u16 = 48;

/// A generator that keeps a copy of every draw, to find the initiator's secret afterwards.
struct Recording {
    inner: SeededRng,
    draws: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Rng for Recording {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), CryptoError> {
        self.inner.fill(dest)?;
        self.draws.lock().unwrap().push(dest.to_vec());
        Ok(())
    }
}

/// Hands out one recorded draw again: `KeyExchange::generate` then makes the same secret.
struct Replay(Vec<u8>);

impl Rng for Replay {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), CryptoError> {
        if dest.len() != self.0.len() {
            return Err(CryptoError::Rng);
        }
        dest.copy_from_slice(&self.0);
        Ok(())
    }
}

fn configs(initiator: u32, responder: u32) -> (IkeConfig, IkeConfig) {
    let mut i = initiator_config();
    i.child.per_resource_sas = initiator;
    let mut r = responder_config();
    r.child.per_resource_sas = responder;
    (i, r)
}

/// A pair whose initiator's random draws are recorded.
struct Test {
    pair: Pair,
    draws: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Test {
    fn new(initiator: u32, responder: u32, seed: u64) -> Test {
        let (i, r) = configs(initiator, responder);
        let mut pair = Pair::new(i.clone(), r, seed);
        let draws = Arc::new(Mutex::new(Vec::new()));
        let rng = Recording {
            inner: SeededRng::new(seed ^ 0xabcd),
            draws: draws.clone(),
        };
        // Replaces the pair's initiator before anything was sent.
        pair.initiator = IkeSa::initiate(Arc::new(i), pair.now, Box::new(rng)).unwrap();
        Test { pair, draws }
    }

    /// Establishes, then asks for `resources` per-resource Child SAs of the first child and
    /// runs until the pair is quiet.
    fn with_resources(initiator: u32, responder: u32, resources: u32, seed: u64) -> Test {
        let mut t = Test::new(initiator, responder, seed);
        t.pair.establish();
        let now = t.pair.now;
        for r in 0..resources {
            t.pair
                .initiator
                .create_child_for_resource(now, 0, r)
                .unwrap();
        }
        t.pair.drive();
        t
    }

    /// The IKE SA's keys, derived here from what IKE_SA_INIT carried.
    fn keys(&self) -> IkeSaKeys {
        let log = &self.pair.net.log;
        let init = |from: Side| {
            let sent = log
                .iter()
                .find(|s| s.from == from && s.header.exchange_type == ExchangeType::IkeSaInit)
                .expect("IKE_SA_INIT both ways");
            Message::decode(&sent.bytes).unwrap()
        };
        let (request, response) = (init(Side::Initiator), init(Side::Responder));
        let ke = |m: &Message| {
            m.payloads
                .iter()
                .find_map(|p| match p {
                    Payload::Ke(k) => Some(k.clone()),
                    _ => None,
                })
                .unwrap()
        };
        let nonce = |m: &Message| {
            m.payloads
                .iter()
                .find_map(|p| match p {
                    Payload::Nonce(n) => Some(n.0.clone()),
                    _ => None,
                })
                .unwrap()
        };
        let (kei, ker) = (ke(&request), ke(&response));
        assert_eq!(ker.group, KeMethod::Curve25519);
        // The responder's own first choice (AES-GCM-16-256, PRF-HMAC-SHA2-256).
        let Some(Payload::Sa(chosen)) = response.payloads.first() else {
            panic!("no SA payload in the IKE_SA_INIT response");
        };
        let transforms = &chosen.proposals[0].transforms;
        assert!(transforms.contains(&Transform::with_key_length(
            TransformId::Encr(EncrId::AesGcm16),
            256
        )));
        assert!(transforms.contains(&Transform::new(TransformId::Prf(PrfId::HmacSha2_256))));
        let secret = self
            .draws
            .lock()
            .unwrap()
            .iter()
            .filter(|d| d.len() == 32)
            .map(|d| KeyExchange::generate(KeMethod::Curve25519, &mut Replay(d.clone())).unwrap())
            .find(|k| k.public_value() == kei.data.as_slice())
            .expect("the initiator's X25519 secret is one of its draws");
        let g_ir = secret.agree(&ker.data).unwrap();
        let prf = Prf::HmacSha2_256;
        let suite = IkeSuite::new(Encr::AesGcm16_256, None, prf).unwrap();
        let (ni, nr) = (nonce(&request), nonce(&response));
        let seed = skeyseed(prf, &ni, &nr, &g_ir);
        let spi_i = request.header.initiator_spi;
        let spi_r = response.header.responder_spi;
        IkeSaKeys::derive(
            &suite,
            &seed,
            &ni,
            &nr,
            &spi_i.to_be_bytes(),
            &spi_r.to_be_bytes(),
        )
        .unwrap()
    }

    /// Every encrypted message that went over the wire, opened: (sender, header, payloads).
    fn opened(&self) -> Vec<(Side, Header, Vec<Payload>)> {
        let keys = self.keys();
        self.pair
            .net
            .log
            .iter()
            .filter(|s| s.header.exchange_type != ExchangeType::IkeSaInit)
            .map(|s| {
                let role = match s.from {
                    Side::Initiator => Role::Initiator,
                    Side::Responder => Role::Responder,
                };
                let opened = keys
                    .sk_cipher(role)
                    .unwrap()
                    .open_message(&s.bytes)
                    .expect("our keys open it");
                let payloads = decode_chain(opened.first_inner, &opened.plaintext).unwrap();
                (s.from, s.header.clone(), payloads)
            })
            .collect()
    }

    /// The opened messages of one exchange type, requests or responses.
    fn messages(&self, exchange: ExchangeType, response: bool) -> Vec<(Side, Vec<Payload>)> {
        self.opened()
            .into_iter()
            .filter(|(_, h, _)| h.exchange_type == exchange && h.flags.response == response)
            .map(|(side, _, p)| (side, p))
            .collect()
    }
}

fn notifies(payloads: &[Payload], value: u16) -> Vec<&Notify> {
    payloads
        .iter()
        .filter_map(|p| match p {
            Payload::Notify(n) if n.notify_type.value() == value => Some(n),
            _ => None,
        })
        .collect()
}

fn resource_info(payloads: &[Payload]) -> Option<&Notify> {
    let found = notifies(payloads, SA_RESOURCE_INFO);
    assert!(found.len() <= 1, "at most one SA_RESOURCE_INFO");
    found.first().copied()
}

fn selectors(payloads: &[Payload]) -> (Vec<TrafficSelector>, Vec<TrafficSelector>) {
    let tsi = payloads.iter().find_map(|p| match p {
        Payload::TsI(t) => Some(t.selectors.clone()),
        _ => None,
    });
    let tsr = payloads.iter().find_map(|p| match p {
        Payload::TsR(t) => Some(t.selectors.clone()),
        _ => None,
    });
    (tsi.unwrap(), tsr.unwrap())
}

fn resources(installed: &[&ChildSaInstalled]) -> Vec<Option<u32>> {
    installed.iter().map(|c| c.resource).collect()
}

/// Each side's Child SA and the peer's twin (SPIs crosswise) mirror each other.
fn assert_all_mirrored(pair: &Pair) {
    let i = pair.installed(Side::Initiator);
    let r = pair.installed(Side::Responder);
    assert_eq!(i.len(), r.len());
    for c in &i {
        let twin = r
            .iter()
            .find(|x| x.inbound_spi == c.outbound_spi)
            .expect("the responder's twin");
        assert_mirror(c, twin);
    }
}

fn distinct(spis: impl Iterator<Item = u32>) -> bool {
    let mut v: Vec<u32> = spis.collect();
    let n = v.len();
    v.sort_unstable();
    v.dedup();
    v.len() == n
}

#[test]
fn both_sides_with_two_make_a_fallback_and_two_per_resource_child_sas() {
    let t = Test::with_resources(2, 2, 2, 1);
    let pair = &t.pair;
    let i = pair.installed(Side::Initiator);
    let r = pair.installed(Side::Responder);
    assert_eq!(resources(&i), [None, Some(0), Some(1)]);
    assert_eq!(resources(&r), [None, Some(0), Some(1)]);
    assert_all_mirrored(pair);
    for side in [&i, &r] {
        assert!(side.iter().all(|c| c.config == 0));
        assert!(side
            .iter()
            .all(|c| (&c.local_ts, &c.remote_ts) == (&side[0].local_ts, &side[0].remote_ts)));
        assert!(distinct(
            side.iter().flat_map(|c| [c.inbound_spi, c.outbound_spi])
        ));
    }
    assert!(pair.child_failures(Side::Initiator).is_empty());
    assert!(pair.child_failures(Side::Responder).is_empty());
    assert_eq!(pair.initiator.child_sas().len(), 3);
    assert_eq!(pair.responder().child_sas().len(), 3);
    // Only the side that made the fallback asks for the others.
    assert!(pair.initiator.peer_supports_resources(0));
    assert!(!pair.responder().peer_supports_resources(0));

    // The wire: SA_RESOURCE_INFO in both IKE_AUTH messages (no resource: the fallback)...
    let auth_request = t.messages(ExchangeType::IkeAuth, false);
    let auth_response = t.messages(ExchangeType::IkeAuth, true);
    assert_eq!((auth_request.len(), auth_response.len()), (1, 1));
    assert_eq!(resource_info(&auth_request[0].1).unwrap().data, b"");
    assert!(resource_info(&auth_response[0].1).is_some());
    let fallback_ts = selectors(&auth_response[0].1);
    // ... and in both messages of each per-resource CREATE_CHILD_SA, with the same selectors.
    let requests = t.messages(ExchangeType::CreateChildSa, false);
    let responses = t.messages(ExchangeType::CreateChildSa, true);
    assert_eq!((requests.len(), responses.len()), (2, 2));
    for (k, ((from, request), (_, response))) in requests.iter().zip(&responses).enumerate() {
        assert_eq!(*from, Side::Initiator);
        let info = resource_info(request).expect("SA_RESOURCE_INFO in the request");
        assert_eq!(info.data, (k as u32).to_be_bytes(), "our resource index");
        assert!(resource_info(response).is_some(), "echoed by the responder");
        assert!(notifies(request, NotifyType::RekeySa.value()).is_empty());
        assert_eq!(selectors(request), fallback_ts);
        assert_eq!(selectors(response), fallback_ts);
    }
}

#[test]
fn resources_beyond_the_count_or_already_there_are_refused_without_a_request() {
    let mut t = Test::with_resources(2, 2, 2, 2);
    let now = t.pair.now;
    let sa = &mut t.pair.initiator;
    assert!(matches!(
        sa.create_child_for_resource(now, 0, 2),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        sa.create_child_for_resource(now, 0, 1),
        Err(Error::TemporaryFailure { .. })
    ));
    assert!(matches!(
        sa.create_child_for_resource(now, 1, 0),
        Err(Error::Config(_))
    ));
    // Asking twice for one resource before the first is answered: one request.
    let mut t = Test::new(2, 2, 3);
    t.pair.establish();
    let now = t.pair.now;
    t.pair
        .initiator
        .create_child_for_resource(now, 0, 0)
        .unwrap();
    assert!(matches!(
        t.pair.initiator.create_child_for_resource(now, 0, 0),
        Err(Error::TemporaryFailure { .. })
    ));
    t.pair.drive();
    assert_eq!(t.messages(ExchangeType::CreateChildSa, false).len(), 1);
    assert_eq!(
        resources(&t.pair.installed(Side::Initiator)),
        [None, Some(0)]
    );
}

#[test]
fn a_responder_that_takes_one_answers_ts_max_queue_and_the_ike_sa_stays() {
    let mut t = Test::with_resources(3, 1, 3, 4);
    let pair = &t.pair;
    assert_eq!(resources(&pair.installed(Side::Initiator)), [None, Some(0)]);
    assert_eq!(resources(&pair.installed(Side::Responder)), [None, Some(0)]);
    assert_all_mirrored(pair);
    assert_eq!(
        pair.child_failures(Side::Initiator),
        [&Error::Refused {
            notify: NotifyType::TsMaxQueue
        }]
    );
    assert_eq!(
        pair.child_failures(Side::Responder),
        [&Error::TooManyResourceSas { limit: 1 }]
    );
    // The third request, queued behind the refused one, was never sent.
    let requests = t.messages(ExchangeType::CreateChildSa, false);
    let responses = t.messages(ExchangeType::CreateChildSa, true);
    assert_eq!((requests.len(), responses.len()), (2, 2));
    assert_eq!(
        resource_info(&requests[1].1).unwrap().data,
        1u32.to_be_bytes()
    );
    let refusal = &responses[1].1;
    assert_eq!(refusal.len(), 1, "{refusal:?}");
    assert_eq!(notifies(refusal, TS_MAX_QUEUE).len(), 1);
    // The initiator asks no more; the IKE SA stays and takes other exchanges.
    assert!(!t.pair.initiator.peer_supports_resources(0));
    let now = t.pair.now;
    assert_eq!(
        t.pair.initiator.create_child_for_resource(now, 0, 2),
        Err(Error::Refused {
            notify: NotifyType::TsMaxQueue
        })
    );
    assert!(t.pair.initiator.is_established() && t.pair.responder().is_established());
    assert!(t.pair.ike_deleted(Side::Initiator).is_none());
    assert!(t.pair.ike_deleted(Side::Responder).is_none());
    // An ordinary duplicate (RFC 7296) is still fine.
    t.pair.initiator.create_child(now).unwrap();
    t.pair.drive();
    assert_eq!(
        resources(&t.pair.installed(Side::Initiator)),
        [None, Some(0), None]
    );
    assert_all_mirrored(&t.pair);
}

#[test]
fn a_responder_without_per_resource_support_leaves_the_fallback_alone() {
    let mut t = Test::new(2, 0, 5);
    t.pair.establish();
    assert!(!t.pair.initiator.peer_supports_resources(0));
    let now = t.pair.now;
    assert!(matches!(
        t.pair.initiator.create_child_for_resource(now, 0, 0),
        Err(Error::Unsupported { .. })
    ));
    t.pair.drive();
    assert_eq!(resources(&t.pair.installed(Side::Initiator)), [None]);
    assert_eq!(resources(&t.pair.installed(Side::Responder)), [None]);
    let request = t.messages(ExchangeType::IkeAuth, false);
    let response = t.messages(ExchangeType::IkeAuth, true);
    assert!(resource_info(&request[0].1).is_some());
    assert!(
        resource_info(&response[0].1).is_none(),
        "an unknown status notification is not answered"
    );
    assert!(t.messages(ExchangeType::CreateChildSa, false).is_empty());
}

#[test]
fn an_initiator_without_per_resource_support_sends_nothing_and_gets_nothing() {
    let mut t = Test::new(0, 2, 6);
    t.pair.establish();
    let request = t.messages(ExchangeType::IkeAuth, false);
    let response = t.messages(ExchangeType::IkeAuth, true);
    assert!(resource_info(&request[0].1).is_none());
    assert!(resource_info(&response[0].1).is_none());
    // A second Child SA of the same child is an ordinary duplicate on both sides.
    let now = t.pair.now;
    t.pair.initiator.create_child(now).unwrap();
    t.pair.drive();
    assert_eq!(resources(&t.pair.installed(Side::Responder)), [None, None]);
    let requests = t.messages(ExchangeType::CreateChildSa, false);
    let responses = t.messages(ExchangeType::CreateChildSa, true);
    assert!(resource_info(&requests[0].1).is_none());
    assert!(resource_info(&responses[0].1).is_none());
}

#[test]
fn rekeys_of_per_resource_child_sas_keep_their_resource() {
    let mut t = Test::with_resources(2, 2, 2, 7);
    let spi_of = |pair: &Pair, side: Side, resource: Option<u32>| {
        pair.installed(side)
            .iter()
            .find(|c| c.resource == resource)
            .unwrap()
            .inbound_spi
    };
    // The initiator rekeys resource 1, the responder resource 0, the initiator the fallback.
    let now = t.pair.now;
    let one = spi_of(&t.pair, Side::Initiator, Some(1));
    t.pair.initiator.rekey_child(now, one).unwrap();
    t.pair.drive();
    let now = t.pair.now;
    let zero = spi_of(&t.pair, Side::Responder, Some(0));
    t.pair.sa(Side::Responder).rekey_child(now, zero).unwrap();
    t.pair.drive();
    let now = t.pair.now;
    let fallback = spi_of(&t.pair, Side::Initiator, None);
    t.pair.initiator.rekey_child(now, fallback).unwrap();
    t.pair.drive();

    for side in [Side::Initiator, Side::Responder] {
        let rekeyed: Vec<Option<u32>> = t
            .pair
            .rekeyed(side)
            .iter()
            .map(|r| r.new.resource)
            .collect();
        assert_eq!(rekeyed, [Some(1), Some(0), None], "{side:?}");
        assert_eq!(t.pair.deleted(side).len(), 3, "{side:?}: the old pairs");
        assert_eq!(t.pair.sa(side).child_sas().len(), 3);
    }
    assert!(t.pair.child_failures(Side::Initiator).is_empty());
    assert!(
        t.pair.child_failures(Side::Responder).is_empty(),
        "a rekey does not count against the responder's limit"
    );
    for r in t.pair.rekeyed(Side::Initiator) {
        let twin = t
            .pair
            .rekeyed(Side::Responder)
            .into_iter()
            .find(|x| x.new.inbound_spi == r.new.outbound_spi)
            .unwrap();
        assert_mirror(&r.new, &twin.new);
    }
    // Every rekey request said REKEY_SA and SA_RESOURCE_INFO, with the sender's resource.
    let rekeys: Vec<(Side, Vec<Payload>)> = t
        .messages(ExchangeType::CreateChildSa, false)
        .into_iter()
        .filter(|(_, p)| !notifies(p, NotifyType::RekeySa.value()).is_empty())
        .collect();
    let seen: Vec<(Side, Vec<u8>)> = rekeys
        .iter()
        .map(|(side, p)| {
            (
                *side,
                resource_info(p).expect("SA_RESOURCE_INFO").data.clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (Side::Initiator, 1u32.to_be_bytes().to_vec()),
            (Side::Responder, 0u32.to_be_bytes().to_vec()),
            (Side::Initiator, Vec::new()),
        ]
    );
}

#[test]
fn the_peers_support_survives_an_ike_sa_rekey() {
    let mut t = Test::with_resources(3, 3, 2, 8);
    let now = t.pair.now;
    t.pair.initiator.rekey(now).unwrap();
    t.pair.drive();
    assert_eq!(
        t.pair.ike_deleted(Side::Initiator).map(|d| d.reason),
        Some(DeleteReason::Rekeyed)
    );
    // `pair.initiator` is the successor now.
    assert!(t.pair.initiator.peer_supports_resources(0));
    assert_eq!(t.pair.initiator.child_sas().len(), 3);
    let now = t.pair.now;
    t.pair
        .initiator
        .create_child_for_resource(now, 0, 2)
        .unwrap();
    t.pair.drive();
    assert_eq!(
        resources(&t.pair.installed(Side::Initiator)),
        [None, Some(0), Some(1), Some(2)]
    );
    assert_eq!(
        resources(&t.pair.installed(Side::Responder)),
        [None, Some(0), Some(1), Some(2)]
    );
    assert_all_mirrored(&t.pair);
}

/// Sends the responder a CREATE_CHILD_SA request sealed here, with the IKE SA's next Message
/// ID, the first per-resource request's SA and selectors, and `notes` instead of its
/// notifications. Returns the responder's answer, opened, and its events.
fn forge(t: &mut Test, keys: &IkeSaKeys, notes: Vec<Notify>, k: u64) -> (Vec<Payload>, Vec<Event>) {
    let opened = t.opened();
    let next_id = opened
        .iter()
        .filter(|(side, h, _)| *side == Side::Initiator && !h.flags.response)
        .map(|(_, h, _)| h.message_id)
        .max()
        .unwrap()
        + 1
        + k as u32;
    let (_, template) = t.messages(ExchangeType::CreateChildSa, false).remove(0);
    let mut inner: Vec<Payload> = notes.into_iter().map(Payload::Notify).collect();
    for p in template {
        match p {
            Payload::Notify(_) => {}
            Payload::Nonce(_) => inner.push(Payload::Nonce(Nonce(vec![k as u8 ^ 0x5a; 32]))),
            Payload::Sa(mut sa) => {
                sa.proposals[0].spi = (0x7000_0000u32 + k as u32).to_be_bytes().to_vec();
                inner.push(Payload::Sa(sa));
            }
            other => inner.push(other),
        }
    }
    let header = Header::new(
        t.pair.initiator.spi_i(),
        t.pair.initiator.spi_r(),
        ExchangeType::CreateChildSa,
        Flags {
            initiator: true,
            version: false,
            response: false,
        },
        next_id,
    );
    let mut plaintext = Vec::new();
    let first = encode_chain(&inner, &mut plaintext);
    let mut bytes = Message {
        header,
        payloads: vec![Payload::Sk(Encrypted {
            next_payload: first,
            data: vec![],
        })],
    }
    .encode();
    // An IV counter far from the initiator's own.
    keys.sk_cipher(Role::Initiator)
        .unwrap()
        .with_iv_counter((1 << 40) + k)
        .seal_message(&mut bytes, Header::LEN, &plaintext, &mut SeededRng::new(k))
        .unwrap();
    let now = t.pair.now;
    let responder = t.pair.sa(Side::Responder);
    responder.handle(now, &bytes).expect("authentic: processed");
    let answer = responder.poll_transmit().expect("an answer").contents;
    assert!(responder.poll_transmit().is_none());
    let events = std::iter::from_fn(|| responder.poll_event()).collect();
    let opened = keys
        .sk_cipher(Role::Responder)
        .unwrap()
        .open_message(&answer)
        .unwrap();
    (
        decode_chain(opened.first_inner, &opened.plaintext).unwrap(),
        events,
    )
}

fn installed_resource(events: &[Event]) -> Option<Option<u32>> {
    events.iter().find_map(|e| match e {
        Event::ChildSaInstalled(c) => Some(c.resource),
        _ => None,
    })
}

#[test]
fn odd_sa_resource_info_notifications_are_opaque_and_never_panic() {
    // The responder takes six: the first per-resource Child SA is there, five more fit.
    let mut t = Test::with_resources(1, 6, 1, 9);
    let keys = t.keys();
    let info = |data: Vec<u8>| Notify::new(NotifyType::from(SA_RESOURCE_INFO), data);
    let odd: Vec<Vec<Notify>> = vec![
        vec![info(vec![0xff])],
        vec![info(vec![0x5a; 3000])],
        vec![Notify {
            protocol: ProtocolId::Esp,
            spi: vec![1, 2, 3, 4],
            notify_type: NotifyType::from(SA_RESOURCE_INFO),
            data: vec![0, 0, 0, 9],
        }],
        vec![info(Vec::new()), info(u32::MAX.to_be_bytes().to_vec())],
        vec![Notify {
            protocol: ProtocolId::from(200),
            spi: vec![0; 255],
            notify_type: NotifyType::from(SA_RESOURCE_INFO),
            data: vec![1; 7],
        }],
    ];
    for (k, notes) in odd.into_iter().enumerate() {
        let (answer, events) = forge(&mut t, &keys, notes, k as u64);
        assert!(resource_info(&answer).is_some(), "echoed: {answer:?}");
        assert!(answer.iter().any(|p| matches!(p, Payload::Sa(_))));
        // The lowest free index, whatever the peer's data said.
        assert_eq!(installed_resource(&events), Some(Some(k as u32 + 1)));
    }
    // Six per-resource Child SAs: the next is refused with TS_MAX_QUEUE, the IKE SA stays.
    let (answer, events) = forge(&mut t, &keys, vec![info(vec![7])], 5);
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert_eq!(notifies(&answer, TS_MAX_QUEUE).len(), 1);
    assert!(matches!(
        events[..],
        [Event::ChildSaFailed {
            error: Error::TooManyResourceSas { limit: 6 }
        }]
    ));
    assert!(t.pair.responder().is_established());
    assert_eq!(t.pair.responder().child_sas().len(), 7);
}

#[test]
fn a_responder_that_does_not_take_part_treats_sa_resource_info_as_unknown() {
    // The initiator asks nothing: the test forges the per-resource requests, with a template
    // from an ordinary CREATE_CHILD_SA.
    let mut t = Test::new(0, 0, 10);
    t.pair.establish();
    let now = t.pair.now;
    t.pair.initiator.create_child(now).unwrap();
    t.pair.drive();
    let keys = t.keys();
    for k in 0..3 {
        let notes = vec![Notify::new(
            NotifyType::from(SA_RESOURCE_INFO),
            vec![k as u8; k],
        )];
        let (answer, events) = forge(&mut t, &keys, notes, k as u64);
        assert!(resource_info(&answer).is_none(), "not echoed");
        assert!(answer.iter().any(|p| matches!(p, Payload::Sa(_))));
        assert_eq!(
            installed_resource(&events),
            Some(None),
            "an ordinary Child SA"
        );
    }
    assert_eq!(t.pair.responder().child_sas().len(), 5);
}

//! COOKIE (RFC 7296 §2.6): the responder's stateless cookies above a number of half-open SAs,
//! and the initiator's retry with the cookie first.

mod ike_pair;

use std::sync::Arc;
use std::time::Instant;

use ike_pair::*;
use xipsec_control::ike::{CookieJar, CookieVerdict, Error, Event, IkeSa, COOKIE_LEN};
use xipsec_control::wire::{Message, Notify, NotifyType, Payload};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

/// The first IKE_SA_INIT request of a fresh initiator.
fn first_request(seed: u64) -> (IkeSa, Vec<u8>) {
    let mut sa = IkeSa::initiate(Arc::new(initiator_config()), Instant::now(), rng(seed)).unwrap();
    let t = sa.poll_transmit().unwrap();
    (sa, t.contents)
}

/// `request` with a COOKIE notification put first.
fn with_cookie(request: &[u8], cookie: Vec<u8>) -> Vec<u8> {
    let mut m = Message::decode(request).unwrap();
    m.payloads
        .insert(0, Payload::Notify(Notify::new(NotifyType::Cookie, cookie)));
    m.encode()
}

fn cookie_of(reply: &[u8]) -> Vec<u8> {
    let m = Message::decode(reply).unwrap();
    assert_eq!(m.header.responder_spi, 0);
    assert!(m.header.flags.response);
    match m.payloads.as_slice() {
        [Payload::Notify(n)] if n.notify_type == NotifyType::Cookie => n.data.clone(),
        other => panic!("not a COOKIE answer: {other:?}"),
    }
}

#[test]
fn cookie_round_trip_establishes() {
    let mut p = Pair::default_configs(71);
    p.cookie_jar = Some(CookieJar::new(SECRET.to_vec(), 10));
    p.half_open = 10;
    p.establish();
    assert_eq!(p.cookies_sent, 1);
    assert!(p.rejected.is_empty());
    assert!(p.initiator.is_established() && p.responder().is_established());
    p.assert_child_sas_match();
    // The retry kept the SPI: the SA the responder created is the initiator's.
    assert_eq!(p.initiator.spi_i(), p.responder().spi_i());
    assert_eq!(p.initiator.spi_r(), p.responder().spi_r());
}

#[test]
fn cookie_round_trip_after_invalid_ke() {
    let mut ci = initiator_config();
    let mut cr = responder_config();
    use xipsec_control::ike::IkeProposal;
    use xipsec_control::wire::KeMethod;
    ci.ike_proposals = vec![IkeProposal::aead(vec![
        KeMethod::Curve25519,
        KeMethod::Ecp256,
    ])];
    cr.ike_proposals = vec![IkeProposal::aead(vec![KeMethod::Ecp256])];
    let mut p = Pair::new(ci, cr, 72);
    p.cookie_jar = Some(CookieJar::new(SECRET.to_vec(), 0));
    p.establish();
    assert!(p.cookies_sent >= 1);
    assert_eq!(p.established(Side::Initiator).unwrap().ke, KeMethod::Ecp256);
    p.assert_child_sas_match();
}

#[test]
fn no_cookie_below_the_threshold() {
    let mut p = Pair::default_configs(73);
    p.cookie_jar = Some(CookieJar::new(SECRET.to_vec(), 10));
    p.half_open = 9;
    p.establish();
    assert_eq!(p.cookies_sent, 0);
    p.assert_child_sas_match();

    let jar = CookieJar::new(SECRET.to_vec(), 10);
    let (_, request) = first_request(74);
    assert_eq!(
        jar.check(&request, addr(INITIATOR_ADDR), 9),
        CookieVerdict::Accept
    );
    assert!(matches!(
        jar.check(&request, addr(INITIATOR_ADDR), 10),
        CookieVerdict::SendCookie(_)
    ));
}

#[test]
fn a_wrong_or_forged_cookie_is_refused() {
    let jar = CookieJar::new(SECRET.to_vec(), 0);
    let from = addr(INITIATOR_ADDR);
    let (_, request) = first_request(75);
    let CookieVerdict::SendCookie(reply) = jar.check(&request, from, 1) else {
        panic!("no cookie demanded");
    };
    let cookie = cookie_of(&reply);
    assert_eq!(cookie.len(), COOKIE_LEN);
    assert_eq!(cookie[0], jar.version());
    assert_eq!(
        jar.check(&with_cookie(&request, cookie.clone()), from, 1),
        CookieVerdict::Accept
    );

    // Forged: a flipped bit, a truncated one, one from another address, a foreign secret.
    let mut flipped = cookie.clone();
    flipped[10] ^= 1;
    let other = CookieJar::new(b"another secret, another secret!!".to_vec(), 0);
    let CookieVerdict::SendCookie(foreign) = other.check(&request, from, 1) else {
        panic!()
    };
    for bad in [
        flipped,
        cookie[..20].to_vec(),
        vec![0; COOKIE_LEN],
        cookie_of(&foreign),
    ] {
        let verdict = jar.check(&with_cookie(&request, bad), from, 1);
        assert!(
            matches!(verdict, CookieVerdict::SendCookie(_)),
            "{verdict:?}"
        );
    }
    assert!(matches!(
        jar.check(
            &with_cookie(&request, cookie.clone()),
            addr("203.0.113.9:500"),
            1
        ),
        CookieVerdict::SendCookie(_)
    ));
    // Another initiator (other SPI and nonce) cannot reuse it.
    let (_, other_request) = first_request(76);
    assert!(matches!(
        jar.check(&with_cookie(&other_request, cookie.clone()), from, 1),
        CookieVerdict::SendCookie(_)
    ));
    // Not first: refused.
    let mut m = Message::decode(&request).unwrap();
    m.payloads.push(Payload::Notify(Notify::new(
        NotifyType::Cookie,
        cookie.clone(),
    )));
    assert!(matches!(
        jar.check(&m.encode(), from, 1),
        CookieVerdict::SendCookie(_)
    ));
    // Responses and garbage are dropped.
    assert_eq!(jar.check(&reply, from, 1), CookieVerdict::Drop);
    assert_eq!(jar.check(&[0u8; 10], from, 1), CookieVerdict::Drop);

    // Through the pair: a responder whose jar keeps refusing creates no SA.
    let mut p = Pair::default_configs(77);
    p.cookie_jar = Some(CookieJar::new(SECRET.to_vec(), 0));
    // The secret changes twice before the retry arrives: its cookie no longer verifies.
    p.drive_until(|p| p.cookies_sent >= 1);
    let mut jar = p.cookie_jar.take().unwrap();
    jar.rotate(b"second secret second secret 1234".to_vec());
    jar.rotate(b"third secret third secret 123456".to_vec());
    p.cookie_jar = Some(jar);
    p.drive_until(|p| p.cookies_sent >= 2);
    assert!(p.responder.is_none());
}

#[test]
fn rotated_secret_keeps_the_previous_version() {
    let mut jar = CookieJar::new(SECRET.to_vec(), 0);
    let from = addr(INITIATOR_ADDR);
    let (_, request) = first_request(78);
    let CookieVerdict::SendCookie(reply) = jar.check(&request, from, 1) else {
        panic!()
    };
    let cookie = cookie_of(&reply);
    jar.rotate(b"second secret second secret 1234".to_vec());
    assert_eq!(jar.version(), 1);
    assert_eq!(
        jar.check(&with_cookie(&request, cookie.clone()), from, 1),
        CookieVerdict::Accept
    );
    jar.rotate(b"third secret third secret 123456".to_vec());
    assert!(matches!(
        jar.check(&with_cookie(&request, cookie), from, 1),
        CookieVerdict::SendCookie(_)
    ));
}

#[test]
fn initiator_gives_up_after_max_cookie_retries() {
    let (mut sa, mut request) = first_request(79);
    let first = Message::decode(&request).unwrap();
    let now = Instant::now();
    let max = initiator_config().max_cookie_retries;
    for n in 0..=max {
        // A responder whose secret changes all the time: its cookies never verify.
        let jar = CookieJar::new(vec![n; 32], 0);
        let CookieVerdict::SendCookie(reply) = jar.check(&request, addr(INITIATOR_ADDR), 1) else {
            panic!()
        };
        sa.handle(now, &reply).unwrap();
        if n == max {
            break;
        }
        request = sa
            .poll_transmit()
            .expect("a retry with the cookie")
            .contents;
        let retry = Message::decode(&request).unwrap();
        // Same SPI, same nonce and KE, the cookie first.
        assert_eq!(retry.header.initiator_spi, first.header.initiator_spi);
        assert!(matches!(&retry.payloads[0],
            Payload::Notify(n) if n.notify_type == NotifyType::Cookie && n.data == cookie_of(&reply)));
        assert_eq!(retry.payloads[1..], first.payloads[..]);
    }
    assert!(sa.poll_transmit().is_none());
    let failed = std::iter::from_fn(|| sa.poll_event()).any(|e| {
        matches!(
            e,
            Event::Failed {
                reason: Error::Refused {
                    notify: NotifyType::Cookie
                }
            }
        )
    });
    assert!(failed);
}

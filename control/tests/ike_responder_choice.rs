//! A responder for many peers (`IkeSa::respond_any`): IKE_SA_INIT runs with the first
//! configuration, IKE_AUTH's identities pick the one that authenticates the peer, with its own
//! key and Child SA, as strongSwan switches peer configurations.

mod ike_pair;

use std::sync::Arc;
use std::time::Instant;

use ike_pair::*;
use xipsec_control::ike::{Event, Identity, IkeConfig, IkeSa, Psk};

fn client(id: &str, psk: &[u8]) -> IkeConfig {
    let mut c = initiator_config();
    c.local_id = Identity::UserFqdn(id.into());
    c.psk = Psk::new(psk.to_vec());
    c
}

fn gateway_for(id: &str, psk: &[u8]) -> Arc<IkeConfig> {
    let mut c = responder_config();
    c.remote_id = Some(Identity::UserFqdn(id.into()));
    c.psk = Psk::new(psk.to_vec());
    Arc::new(c)
}

/// Runs one handshake; returns the responder and whether both sides are established.
fn handshake(initiator: IkeConfig, candidates: Vec<Arc<IkeConfig>>) -> (IkeSa, bool) {
    let now = Instant::now();
    let mut i = IkeSa::initiate(Arc::new(initiator), now, rng(1)).unwrap();
    let first = i.poll_transmit().unwrap();
    let mut r = IkeSa::respond_any(candidates, now, rng(2), &first.contents).unwrap();
    for _ in 0..4 {
        while let Some(t) = r.poll_transmit() {
            let _ = i.handle(now, &t.contents);
        }
        while let Some(t) = i.poll_transmit() {
            let _ = r.handle(now, &t.contents);
        }
    }
    let both = i.is_established() && r.is_established();
    while i.poll_event().is_some() {}
    (r, both)
}

#[test]
fn the_configuration_that_names_the_peer_takes_over_with_its_own_key() {
    let candidates = || {
        vec![
            gateway_for("alice@example.com", b"alice's long pre-shared key"),
            gateway_for("bob@example.com", b"bob's own long pre-shared key"),
        ]
    };
    let (r, up) = handshake(
        client("bob@example.com", b"bob's own long pre-shared key"),
        candidates(),
    );
    assert!(up, "bob gets in with his key");
    assert_eq!(r.config_index(), 1);
    let (r, up) = handshake(
        client("alice@example.com", b"alice's long pre-shared key"),
        candidates(),
    );
    assert!(up, "alice too, with hers");
    assert_eq!(r.config_index(), 0);
    // Bob with Alice's key, and a stranger: refused.
    let (mut r, up) = handshake(
        client("bob@example.com", b"alice's long pre-shared key"),
        candidates(),
    );
    assert!(!up);
    assert!(
        std::iter::from_fn(|| r.poll_event()).any(|e| matches!(e, Event::AuthenticationFailed(_)))
    );
    let (r, up) = handshake(
        client("eve@example.com", b"alice's long pre-shared key"),
        candidates(),
    );
    assert!(!up);
    assert_eq!(r.config_index(), 0, "no fit: the first stays and refuses");
}

//! The sans-IO core's certificate authentication against Debian's strongSwan: certificates
//! made by strongSwan's `pki` (ECDSA P-256, RSA, Ed25519), charon in one namespace, an
//! [`IkeSa`] driven over real UDP sockets in the other, each side initiating. Checks that
//! both ends come up with the other's identity (charon's `swanctl --list-sas`, our events).
//!
//! A: our IkeSa on 10.80.0.1 (ports 500 and 4500). B: charon on 10.80.0.2.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use xipsec_control::crypto::SystemRng;
use xipsec_control::ike::{
    trust_anchors_from_pem, Credentials, Event, Identity, IkeConfig, IkeSa, LocalAuth, PeerAuth,
    Psk,
};
use xipsec_control::wire::Header;
use xipsec_testkit::netns::wired_pair;
use xipsec_testkit::pki::{self, KeyType};
use xipsec_testkit::strongswan::{Auth, Charon, CharonConfig};
use xipsec_testkit::{require, Need};

const WAN_A: &str = "10.80.0.1";
const WAN_B: &str = "10.80.0.2";
const HOST_B: &str = "10.80.2.1";
const UP: Duration = Duration::from_secs(15);

/// Our two sockets; on 4500 IKE carries the non-ESP marker (RFC 3948 §2.2).
struct Sockets {
    ike: UdpSocket,
    natt: UdpSocket,
}

impl Sockets {
    fn bind() -> Sockets {
        let bind = |port: u16| {
            let s = UdpSocket::bind((WAN_A, port)).expect("binding our IKE port");
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            s
        };
        Sockets {
            ike: bind(500),
            natt: bind(4500),
        }
    }

    fn send(&self, sa: &mut IkeSa) {
        while let Some(t) = sa.poll_transmit() {
            if t.source.port() == 4500 {
                let mut d = vec![0u8; 4];
                d.extend_from_slice(&t.contents);
                self.natt.send_to(&d, t.destination).unwrap();
            } else {
                self.ike.send_to(&t.contents, t.destination).unwrap();
            }
        }
    }

    /// The next IKE message from either socket, with the path it came along.
    fn recv(&self) -> Option<(xipsec_control::ike::Path, Vec<u8>)> {
        let mut buf = vec![0u8; 65_536];
        for (s, marker) in [(&self.ike, false), (&self.natt, true)] {
            if let Ok((n, from)) = s.recv_from(&mut buf) {
                let d = &buf[..n];
                let d = if marker {
                    match d.strip_prefix(&[0, 0, 0, 0]) {
                        Some(ike) => ike,
                        None => continue, // ESP: not ours to handle here
                    }
                } else {
                    d
                };
                let path = xipsec_control::ike::Path {
                    local: s.local_addr().unwrap(),
                    remote: from,
                };
                return Some((path, d.to_vec()));
            }
        }
        None
    }
}

/// Drives one IKE SA until its Child SA is installed or it fails; returns its events.
fn drive(config: IkeConfig, initiate: bool) -> Vec<Event> {
    let sockets = Sockets::bind();
    let config = Arc::new(config);
    let deadline = Instant::now() + UP;
    let mut sa = if initiate {
        IkeSa::initiate(config.clone(), Instant::now(), Box::new(SystemRng)).unwrap()
    } else {
        loop {
            assert!(Instant::now() < deadline, "charon never initiated");
            let Some((path, d)) = sockets.recv() else {
                continue;
            };
            let mut c = (*config).clone();
            c.remote_addr = path.remote;
            match IkeSa::respond(Arc::new(c), Instant::now(), Box::new(SystemRng), &d) {
                Ok(sa) => break sa,
                Err(r) => {
                    if let Some(reply) = r.reply {
                        sockets
                            .ike
                            .send_to(&reply.contents, reply.destination)
                            .unwrap();
                    }
                }
            }
        }
    };
    let mut events = Vec::new();
    loop {
        sockets.send(&mut sa);
        while let Some(e) = sa.poll_event() {
            events.push(e);
        }
        let done = events.iter().any(|e| {
            matches!(
                e,
                Event::ChildSaInstalled(_)
                    | Event::ChildSaFailed { .. }
                    | Event::AuthenticationFailed(_)
                    | Event::Failed { .. }
            )
        });
        if done || Instant::now() >= deadline {
            // Keep answering a little (charon's retransmissions, its DPD) before leaving.
            let linger = Instant::now() + Duration::from_millis(300);
            while Instant::now() < linger {
                if let Some((path, d)) = sockets.recv() {
                    if Header::peek(&d).is_ok() {
                        let _ = sa.handle_from(Instant::now(), path, &d);
                        sockets.send(&mut sa);
                    }
                }
            }
            return events;
        }
        if let Some((path, d)) = sockets.recv() {
            let _ = sa.handle_from(Instant::now(), path, &d);
        }
        if sa.poll_timeout().is_some_and(|t| t <= Instant::now()) {
            sa.handle_timeout(Instant::now());
        }
    }
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

/// How the two ends name themselves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ids {
    /// ID_FQDN, in the subjectAltName.
    Fqdn,
    /// ID_DER_ASN1_DN, the subject; charon encodes its own, we ours.
    Dn,
}

fn interop(
    test: &str,
    key_type: KeyType,
    we_initiate: bool,
    fragment_size: Option<usize>,
    ids: Ids,
) {
    if !require(test, &[Need::STRONGSWAN, &[Need::Pki]].concat()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::make_ca(
        dir.path(),
        "ca",
        "C=CH, O=xipsec, CN=xipsec test CA",
        key_type,
    )
    .unwrap();
    let moon = pki::issue(
        &ca,
        dir.path(),
        "moon",
        "C=CH, O=xipsec, CN=moon.xipsec.test",
        &["moon.xipsec.test"],
        key_type,
    )
    .unwrap();
    let sun = pki::issue(
        &ca,
        dir.path(),
        "sun",
        "C=CH, O=xipsec, CN=sun.xipsec.test",
        &["sun.xipsec.test"],
        key_type,
    )
    .unwrap();

    let (ns_a, ns_b) = wired_pair(&format!("{WAN_A}/24"), &format!("{WAN_B}/24"));
    ns_b.ip(&["addr", "add", &format!("{HOST_B}/32"), "dev", "lo"]);
    let mut conf = CharonConfig::new(
        WAN_B,
        WAN_A,
        Auth::Pubkey {
            cert: moon.cert.clone(),
            key: moon.key.clone(),
            cacert: ca.cert.clone(),
        },
    );
    let dn = |cn| Identity::dn([("C", "CH"), ("O", "xipsec"), ("CN", cn)]).unwrap();
    let (moon_id, sun_id, ours, theirs) = match ids {
        Ids::Fqdn => (
            "moon.xipsec.test",
            "sun.xipsec.test",
            Identity::Fqdn("sun.xipsec.test".into()),
            Identity::Fqdn("moon.xipsec.test".into()),
        ),
        Ids::Dn => (
            "C=CH, O=xipsec, CN=moon.xipsec.test",
            "C=CH, O=xipsec, CN=sun.xipsec.test",
            dn("sun.xipsec.test"),
            dn("moon.xipsec.test"),
        ),
    };
    conf.local_id = moon_id.into();
    conf.remote_id = sun_id.into();
    conf.local_ts = vec!["10.80.2.0/24".into()];
    conf.remote_ts = vec!["10.80.1.0/24".into()];
    let charon = Charon::start(&ns_b, &std::env::temp_dir(), &conf).unwrap();

    let addr = |ip: &str| -> SocketAddr { format!("{ip}:500").parse().unwrap() };
    let mut c = IkeConfig::new(
        addr(WAN_A),
        addr(WAN_B),
        ours,
        Psk::new(b"not used: both sides sign".to_vec()),
    );
    c.remote_id = Some(theirs.clone());
    c.local_auth = LocalAuth::Signature(Arc::new(
        Credentials::from_pem(&read(&sun.cert), &read(&sun.key)).unwrap(),
    ));
    c.peer_auth = PeerAuth::Certificate(Arc::new(
        trust_anchors_from_pem([read(&ca.cert).as_slice()]).unwrap(),
    ));
    c.fragmentation = true;
    if let Some(size) = fragment_size {
        c.fragment_size = size;
    }
    let events = if we_initiate {
        ns_a.run(|| drive(c, true))
    } else {
        std::thread::scope(|s| {
            let ours = s.spawn(|| ns_a.run(|| drive(c, false)));
            std::thread::sleep(Duration::from_millis(300));
            charon.initiate("net").expect("charon initiates");
            ours.join().unwrap()
        })
    };
    let peer = events.iter().find_map(|e| match e {
        Event::IkeSaEstablished(x) => Some(x.peer_id.clone()),
        _ => None,
    });
    // The identity charon sent names the one we expect (a DN in charon's own encoding).
    let peer_ok = peer.as_ref().is_some_and(|p| theirs.matches(&p.to_wire()));
    assert!(
        peer_ok,
        "our events: {events:?}\ncharon's log:\n{}",
        charon.log()
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::ChildSaInstalled(_))),
        "{events:?}"
    );
    let sa = charon
        .wait_established("peer", "net", Duration::from_secs(5))
        .unwrap();
    assert_eq!(sa.remote_id, sun_id);
    // charon verified our signature itself.
    let log = charon.log();
    assert!(
        log.lines().any(
            |l| l.contains(&format!("authentication of '{sun_id}' with"))
                && l.ends_with("successful")
        ),
        "{log}"
    );
    if let Some(size) = fragment_size {
        // Our IKE_AUTH message went in fragments, and charon put them together.
        assert!(
            log.contains("reassembled fragmented IKE message"),
            "{size}: {log}"
        );
    }
    assert_eq!(sa.initiator, !we_initiate);
}

#[test]
fn ecdsa_p256_we_initiate() {
    let test = "ecdsa_p256_we_initiate";
    interop(test, KeyType::EcdsaP256, true, None, Ids::Fqdn);
}

#[test]
fn ecdsa_p384_charon_initiates() {
    let test = "ecdsa_p384_charon_initiates";
    interop(test, KeyType::EcdsaP384, false, None, Ids::Fqdn);
}

#[test]
fn rsa_we_initiate_in_fragments() {
    let test = "rsa_we_initiate_in_fragments";
    interop(test, KeyType::Rsa(2048), true, Some(576), Ids::Fqdn);
}

#[test]
fn rsa_charon_initiates_we_answer_in_fragments() {
    let test = "rsa_charon_initiates_we_answer_in_fragments";
    interop(test, KeyType::Rsa(3072), false, Some(576), Ids::Fqdn);
}

#[test]
fn ed25519_charon_initiates() {
    let test = "ed25519_charon_initiates";
    interop(test, KeyType::Ed25519, false, None, Ids::Fqdn);
}

#[test]
fn dn_identities_both_ways() {
    let test = "dn_identities_both_ways";
    interop(test, KeyType::EcdsaP256, true, None, Ids::Dn);
    interop(test, KeyType::EcdsaP256, false, None, Ids::Dn);
}

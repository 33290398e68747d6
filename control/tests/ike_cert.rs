//! IKE_AUTH with certificates and signatures (RFC 7296 §2.15, §3.6–3.8; RFC 7427; RFC 7670)
//! in the Pair harness, with a PKI made by rcgen: every key type, an intermediate CA, mixed
//! certificate / PSK authentication, raw public keys, and the failures (wrong CA, expired,
//! identity not in the certificate, a signature over other octets).

mod certs;
mod ike_pair;

use std::sync::Arc;
use std::time::Instant;

use certs::{expired, not_yet_valid, Alg, Ca, EndEntity};
use ike_pair::*;
use xipsec_control::crypto::{HashAlgorithm, SignatureScheme};
use xipsec_control::ike::{
    AuthenticationFailed, Error, Event, Identity, IkeConfig, IkeSa, LocalAuth, PeerAuth,
    Side as Detector,
};
use xipsec_control::wire::{Message, NotifyType, Payload};

struct Pki {
    ca: Ca,
    alice: EndEntity,
    gw: EndEntity,
}

fn pki(alg: Alg) -> Pki {
    let ca = Ca::root("xipsec test CA", alg);
    let alice = ca.issue("alice", &["alice@example.com"], alg);
    let gw = ca.issue("gw", &["gw.example.com", "198.51.100.1"], alg);
    Pki { ca, alice, gw }
}

/// Both sides sign with their certificate and trust the CA.
fn configs(p: &Pki) -> (IkeConfig, IkeConfig) {
    let mut i = initiator_config();
    i.local_auth = p.alice.local_auth(&[]);
    i.peer_auth = p.ca.anchors();
    let mut r = responder_config();
    r.local_auth = p.gw.local_auth(&[]);
    r.peer_auth = p.ca.anchors();
    (i, r)
}

fn auth_failures(pair: &Pair, side: Side) -> Vec<&AuthenticationFailed> {
    pair.events(side)
        .iter()
        .filter_map(|e| match e {
            Event::AuthenticationFailed(a) => Some(a),
            _ => None,
        })
        .collect()
}

fn assert_up(pair: &mut Pair) {
    pair.drive();
    let i = pair
        .established(Side::Initiator)
        .expect("initiator established");
    assert_eq!(i.peer_id, Identity::Fqdn("gw.example.com".into()));
    let r = pair
        .established(Side::Responder)
        .expect("responder established");
    assert_eq!(r.peer_id, Identity::UserFqdn("alice@example.com".into()));
    pair.assert_child_sas_match();
    for side in [Side::Initiator, Side::Responder] {
        assert!(auth_failures(pair, side).is_empty());
    }
}

/// The responder refused the initiator's AUTH with AUTHENTICATION_FAILED: no SA anywhere.
fn assert_refused_by_responder(pair: &mut Pair, what: &str) {
    pair.drive();
    let r = auth_failures(pair, Side::Responder);
    assert_eq!(r.len(), 1, "{:?}", pair.events(Side::Responder));
    assert_eq!(r[0].detected_by, Detector::Local);
    assert_eq!(
        r[0].error,
        Error::AuthenticationFailed {
            what: Box::leak(what.to_string().into_boxed_str())
        }
    );
    let i = auth_failures(pair, Side::Initiator);
    assert_eq!(i.len(), 1);
    assert_eq!(i[0].detected_by, Detector::Peer);
    assert_eq!(
        i[0].error,
        Error::Refused {
            notify: NotifyType::AuthenticationFailed
        }
    );
    for side in [Side::Initiator, Side::Responder] {
        assert!(pair.established(side).is_none(), "no IKE SA on {side:?}");
        assert!(pair.installed(side).is_empty(), "no Child SA on {side:?}");
    }
}

#[test]
fn ecdsa_p256_certificates() {
    let p = pki(Alg::P256);
    let (i, r) = configs(&p);
    let mut pair = Pair::new(i, r, 1);
    assert_up(&mut pair);
    // Both IKE_SA_INIT messages announced the RFC 7427 hashes (§4).
    let announced: Vec<Vec<u8>> = pair
        .net
        .log
        .iter()
        .filter(|s| s.header.message_id == 0)
        .map(|s| {
            Message::decode(&s.bytes)
                .unwrap()
                .payloads
                .iter()
                .find_map(|p| match p {
                    Payload::Notify(n) if n.notify_type == NotifyType::SignatureHashAlgorithms => {
                        Some(n.data.clone())
                    }
                    _ => None,
                })
                .expect("SIGNATURE_HASH_ALGORITHMS")
        })
        .collect();
    assert_eq!(
        announced,
        [vec![0, 2, 0, 3, 0, 4, 0, 5], vec![0, 2, 0, 3, 0, 4, 0, 5]]
    );
}

#[test]
fn ecdsa_p384_certificates() {
    let (i, r) = configs(&pki(Alg::P384));
    assert_up(&mut Pair::new(i, r, 2));
}

#[test]
fn rsa_pkcs1_certificates() {
    let (i, r) = configs(&pki(Alg::Rsa));
    assert_up(&mut Pair::new(i, r, 3));
}

#[test]
fn rsa_pss_signatures() {
    let p = pki(Alg::Rsa);
    let (mut i, mut r) = configs(&p);
    let mut ci = p.alice.credentials(&[]);
    ci.rsa_pss = true;
    i.local_auth = LocalAuth::Signature(Arc::new(ci));
    let mut cr = p.gw.credentials(&[]);
    cr.rsa_pss = true;
    r.local_auth = LocalAuth::Signature(Arc::new(cr));
    assert_up(&mut Pair::new(i, r, 4));
}

#[test]
fn ed25519_certificates() {
    let (i, r) = configs(&pki(Alg::Ed25519));
    assert_up(&mut Pair::new(i, r, 5));
}

#[test]
fn mixed_key_types_and_an_intermediate_ca() {
    // Root (P-384) -> intermediate (RSA) -> alice (Ed25519); gw (P-256) directly under root.
    let root = Ca::root("root", Alg::P384);
    let inter = root.intermediate("intermediate", Alg::Rsa);
    let alice = inter.issue("alice", &["alice@example.com"], Alg::Ed25519);
    let gw = root.issue("gw", &["gw.example.com"], Alg::P256);
    let mut i = initiator_config();
    i.local_auth = alice.local_auth(&[&inter]);
    i.peer_auth = root.anchors();
    let mut r = responder_config();
    r.local_auth = gw.local_auth(&[]);
    r.peer_auth = root.anchors();
    assert_up(&mut Pair::new(i, r, 6));

    // Without the intermediate in its CERT payloads the chain cannot be built.
    let mut i = initiator_config();
    i.local_auth = alice.local_auth(&[]);
    i.peer_auth = root.anchors();
    let mut r = responder_config();
    r.local_auth = gw.local_auth(&[]);
    r.peer_auth = root.anchors();
    assert_refused_by_responder(
        &mut Pair::new(i, r, 7),
        "the certificate does not chain to a trusted CA",
    );
}

#[test]
fn initiator_certificate_responder_psk() {
    let p = pki(Alg::P256);
    let mut i = initiator_config();
    i.local_auth = p.alice.local_auth(&[]);
    // i.peer_auth stays PeerAuth::Psk: the responder proves itself with the PSK.
    let mut r = responder_config();
    r.peer_auth = p.ca.anchors();
    assert_up(&mut Pair::new(i, r, 8));

    // The initiator expecting a PSK from a responder that signs: refused by the initiator.
    let mut i = initiator_config();
    i.local_auth = p.alice.local_auth(&[]);
    let mut r = responder_config();
    r.local_auth = p.gw.local_auth(&[]);
    r.peer_auth = p.ca.anchors();
    let mut pair = Pair::new(i, r, 9);
    pair.drive();
    let i = auth_failures(&pair, Side::Initiator);
    assert_eq!(i.len(), 1);
    assert_eq!(i[0].detected_by, Detector::Local);
    assert_eq!(
        i[0].error,
        Error::AuthenticationFailed {
            what: "the peer does not authenticate with a shared key"
        }
    );
    assert!(pair.established(Side::Initiator).is_none());
}

#[test]
fn certificate_from_another_ca_fails_on_both_sides() {
    let p = pki(Alg::P256);
    let other = Ca::root("another CA", Alg::P256);
    let (i, mut r) = configs(&p);
    r.peer_auth = other.anchors();
    assert_refused_by_responder(
        &mut Pair::new(i, r, 10),
        "the certificate does not chain to a trusted CA",
    );
    // Same name, different key: the signature check, not the name, decides.
    let impostor = Ca::root("xipsec test CA", Alg::P256);
    let (i, mut r) = configs(&p);
    r.peer_auth = impostor.anchors();
    assert_refused_by_responder(
        &mut Pair::new(i, r, 11),
        "the certificate does not chain to a trusted CA",
    );
}

#[test]
fn expired_and_not_yet_valid_certificates() {
    let p = pki(Alg::P256);
    let old =
        p.ca.issue_with("alice", &["alice@example.com"], Alg::P256, expired);
    let (mut i, r) = configs(&p);
    i.local_auth = old.local_auth(&[]);
    assert_refused_by_responder(&mut Pair::new(i, r, 12), "a certificate has expired");

    let young =
        p.ca.issue_with("alice", &["alice@example.com"], Alg::P256, not_yet_valid);
    let (mut i, r) = configs(&p);
    i.local_auth = young.local_auth(&[]);
    assert_refused_by_responder(&mut Pair::new(i, r, 13), "a certificate is not valid yet");

    // The wall clock is the configuration's: in 2000 the old certificate is fine.
    fn in_2000() -> std::time::SystemTime {
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(946_771_200) // 2000-01-02
    }
    let (mut i, mut r) = configs(&p);
    i.local_auth = old.local_auth(&[]);
    r.wall_clock = in_2000;
    assert_up(&mut Pair::new(i, r, 14));
}

#[test]
fn identity_must_be_in_the_certificate() {
    let p = pki(Alg::P256);
    let bob = p.ca.issue("bob", &["bob@example.com"], Alg::P256);
    // Bob's certificate presented as alice: the responder refuses.
    let (mut i, r) = configs(&p);
    i.local_auth = bob.local_auth(&[]);
    assert_refused_by_responder(
        &mut Pair::new(i, r, 15),
        "the peer's identity is neither its certificate's subject nor in its subjectAltName",
    );
    // As bob, to a responder that accepts any identity: fine.
    let (mut i, mut r) = configs(&p);
    i.local_id = Identity::UserFqdn("bob@example.com".into());
    i.local_auth = bob.local_auth(&[]);
    r.remote_id = None;
    let mut pair = Pair::new(i.clone(), r.clone(), 16);
    pair.drive();
    let e = pair.established(Side::Responder).expect("bob as bob");
    assert_eq!(e.peer_id, Identity::UserFqdn("bob@example.com".into()));

    // ID_DER_ASN1_DN: the subject, octet for octet; another DN is refused.
    let dn = |data: Vec<u8>| {
        Identity::Other(xipsec_control::wire::Identification {
            id_type: xipsec_control::wire::IdType::DerAsn1Dn,
            data,
        })
    };
    let mut i_dn = i.clone();
    i_dn.local_id = dn(bob.parsed().subject_der().to_vec());
    let mut pair = Pair::new(i_dn, r.clone(), 17);
    pair.drive();
    assert!(pair.established(Side::Responder).is_some(), "DN identity");
    let mut i_dn = i;
    i_dn.local_id = dn(p.alice.parsed().subject_der().to_vec());
    assert_refused_by_responder(
        &mut Pair::new(i_dn, r, 18),
        "the peer's identity is neither its certificate's subject nor in its subjectAltName",
    );
}

/// A man in the middle changes one octet of IKE_SA_INIT that nothing else depends on: the
/// responder's RealMessage1 is no longer what the initiator signed, so the signature fails.
#[test]
fn signature_over_other_octets_fails() {
    let p = pki(Alg::P256);
    let (mut i, r) = configs(&p);
    // So that SIGNATURE_HASH_ALGORITHMS is the last payload.
    i.fragmentation = false;
    let now = Instant::now();
    let mut initiator = IkeSa::initiate(Arc::new(i), now, rng(20)).unwrap();
    let mut request = initiator.poll_transmit().unwrap().contents;
    // The last payload is SIGNATURE_HASH_ALGORITHMS: 2, 3, 4, 5. Make the 5 unknown.
    let n = request.len();
    assert_eq!(request[n - 8..], [0, 2, 0, 3, 0, 4, 0, 5]);
    request[n - 1] = 0x77;
    let mut responder = IkeSa::respond(Arc::new(r), now, rng(21), &request).unwrap();
    let response = responder.poll_transmit().unwrap().contents;
    initiator.handle(now, &response).unwrap();
    let auth = initiator.poll_transmit().unwrap().contents;
    responder.handle(now, &auth).unwrap();
    let events: Vec<Event> = std::iter::from_fn(|| responder.poll_event()).collect();
    match &events[..] {
        [Event::AuthenticationFailed(a)] => assert_eq!(
            a.error,
            Error::AuthenticationFailed {
                what: "the peer's signature does not verify"
            }
        ),
        other => panic!("{other:?}"),
    }
    assert!(!responder.is_established());
    let refusal = responder.poll_transmit().unwrap().contents;
    initiator.handle(now, &refusal).unwrap();
    assert!(!initiator.is_established());
}

#[test]
fn raw_public_keys() {
    use xipsec_control::crypto::SigningKey;
    use xipsec_control::ike::Credentials;
    let ka = Alg::P256.key();
    let kg = Alg::Ed25519.key();
    let sa = SigningKey::from_pem_or_der(ka.serialize_pem().as_bytes()).unwrap();
    let sg = SigningKey::from_pem_or_der(kg.serialize_pem().as_bytes()).unwrap();
    let (pa, pg) = (sa.public_key().clone(), sg.public_key().clone());
    let mut i = initiator_config();
    i.local_auth = LocalAuth::Signature(Arc::new(Credentials::raw_public_key(sa)));
    i.peer_auth = PeerAuth::PublicKeys(Arc::new(vec![pg.clone()]));
    let mut r = responder_config();
    r.local_auth = LocalAuth::Signature(Arc::new(Credentials::raw_public_key(sg)));
    r.peer_auth = PeerAuth::PublicKeys(Arc::new(vec![pa]));
    assert_up(&mut Pair::new(i.clone(), r.clone(), 30));

    // The responder knows another key for the initiator.
    let other = SigningKey::from_pem_or_der(Alg::P256.key().serialize_pem().as_bytes()).unwrap();
    r.peer_auth = PeerAuth::PublicKeys(Arc::new(vec![other.public_key().clone()]));
    assert_refused_by_responder(
        &mut Pair::new(i, r, 31),
        "the peer's raw public key is not a configured one",
    );
}

/// RFC 7427 Appendix A (A.1.2–A.1.4, A.3.2–A.3.4, A.4.3) and RFC 8420 §2, as printed there.
#[test]
fn rfc7427_algorithm_identifiers() {
    use SignatureScheme as S;
    let cases = [
        (S::RsaPkcs1Sha256, "300d06092a864886f70d01010b0500"),
        (S::RsaPkcs1Sha384, "300d06092a864886f70d01010c0500"),
        (S::RsaPkcs1Sha512, "300d06092a864886f70d01010d0500"),
        (S::EcdsaP256Sha256, "300a06082a8648ce3d040302"),
        (S::EcdsaP384Sha384, "300a06082a8648ce3d040303"),
        (S::EcdsaP521Sha512, "300a06082a8648ce3d040304"),
        (
            S::RsaPssSha256,
            "304106092a864886f70d01010a3034a00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402010500a203020120",
        ),
        (S::Ed25519, "300506032b6570"),
    ];
    for (scheme, hex_der) in cases {
        assert_eq!(
            hex::encode(scheme.algorithm_identifier()),
            hex_der,
            "{scheme:?}"
        );
    }
    assert_eq!(S::Ed25519.hash(), HashAlgorithm::Identity);
    assert_eq!(HashAlgorithm::Sha384.value(), 3);
}

/// DN identities compare as names: our encoding of a DN equals openssl's (the fixture's
/// subject, made with `openssl req -subj`), and a DN in another encoding still matches.
#[test]
fn dn_identities_compare_as_names() {
    use xipsec_control::crypto::{dn_equal, encode_dn, Certificate};
    let fixture = include_bytes!("certs/config/gw-a.pem");
    let cert = &Certificate::from_pem_or_der(fixture).unwrap()[0];
    let ours = encode_dn([("C", "CH"), ("O", "xipsec"), ("CN", "gw-a.example.net")]).unwrap();
    assert_eq!(hex::encode(&ours), hex::encode(cert.subject_der()));
    let upper = encode_dn([("c", "CH"), ("o", "XIPSEC"), ("cn", "GW-A.example.net")]).unwrap();
    assert!(dn_equal(&upper, cert.subject_der()));
    let other = encode_dn([("C", "CH"), ("O", "xipsec"), ("CN", "gw-b.example.net")]).unwrap();
    assert!(!dn_equal(&other, cert.subject_der()));
    let reordered = encode_dn([("O", "xipsec"), ("C", "CH"), ("CN", "gw-a.example.net")]).unwrap();
    assert!(!dn_equal(&reordered, cert.subject_der()));
    assert!(encode_dn([("XX", "y")]).is_none());
    // The same DN with PrintableString for O and CN: other octets, same name.
    let mut printable = ours.clone();
    for w in 0..printable.len() - 3 {
        if matches!(printable[w..w + 4], [0x55, 0x04, 0x0a | 0x03, 0x0c]) {
            printable[w + 3] = 0x13;
        }
    }
    assert_ne!(printable, ours);
    assert!(dn_equal(&printable, cert.subject_der()));

    // In IKE: alice's DN identity in our encoding against rcgen's subject.
    let p = pki(Alg::P256);
    let dn = Identity::dn([("O", "xipsec tests"), ("CN", "alice")]).unwrap();
    let (mut i, mut r) = configs(&p);
    i.local_id = dn.clone();
    r.remote_id = Some(dn.clone());
    let mut pair = Pair::new(i, r, 40);
    pair.drive();
    let e = pair.established(Side::Responder).expect("DN identity");
    let Identity::Other(seen) = &e.peer_id else {
        panic!("{:?}", e.peer_id)
    };
    assert!(dn.matches(seen));
}

#[test]
fn credentials_are_checked_when_loaded() {
    use rcgen::KeyUsagePurpose;
    use xipsec_control::ike::{CredentialError, Credentials};
    let p = pki(Alg::P256);
    // A certificate whose keyUsage does not allow signatures.
    let signer =
        p.ca.issue_with("alice", &["alice@example.com"], Alg::P256, |c| {
            c.key_usages = vec![KeyUsagePurpose::KeyEncipherment];
        });
    let e = Credentials::from_pem(
        signer.cert.pem().as_bytes(),
        signer.key.serialize_pem().as_bytes(),
    )
    .unwrap_err();
    assert_eq!(e, CredentialError::NotForSigning);
    // Another key than the certificate's.
    let e = Credentials::from_pem(
        p.alice.cert.pem().as_bytes(),
        p.gw.key.serialize_pem().as_bytes(),
    )
    .unwrap_err();
    assert_eq!(e, CredentialError::KeyMismatch);
}

/// Path validation: an issuer that is not a CA, or whose pathLenConstraint is exceeded, does
/// not make a chain (RFC 5280 §4.2.1.9); a trusted intermediate is enough on its own.
#[test]
fn issuers_must_be_cas_within_their_path_length() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyUsagePurpose};
    use xipsec_control::crypto::{CertError, TrustAnchors};
    let root = Ca::root("root", Alg::P256);
    let at = std::time::SystemTime::now();
    let issuer_params = |cn: &str, ca: IsCa| {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = ca;
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        p
    };
    // An end entity used as an issuer.
    let key = Alg::P256.key();
    let params = issuer_params("not a CA", IsCa::NoCa);
    let fake = params.signed_by(&key, &root.issuer).unwrap();
    let fake_ca = Ca {
        issuer: Issuer::new(params, key),
        cert: fake,
    };
    let victim = fake_ca.issue("v", &["v.example.com"], Alg::P256);
    let anchors = TrustAnchors::new(vec![root.parsed()]);
    assert_eq!(
        anchors.verify(&victim.parsed(), &[fake_ca.parsed()], at),
        Err(CertError::NotACa)
    );
    // pathLenConstraint 0 on the first intermediate: it may not have a CA below it.
    let key = Alg::P256.key();
    let params = issuer_params("len0", IsCa::Ca(BasicConstraints::Constrained(0)));
    let len0 = Ca {
        cert: params.signed_by(&key, &root.issuer).unwrap(),
        issuer: Issuer::new(params, key),
    };
    let below = len0.intermediate("below", Alg::P256);
    let leaf = below.issue("leaf", &["leaf.example.com"], Alg::P256);
    let chain = [below.parsed(), len0.parsed()];
    assert_eq!(
        anchors.verify(&leaf.parsed(), &chain, at),
        Err(CertError::NotACa)
    );
    // Directly under len0 is fine.
    let ok = len0.issue("ok", &["ok.example.com"], Alg::P256);
    assert_eq!(anchors.verify(&ok.parsed(), &[len0.parsed()], at), Ok(()));
    // Trusting the intermediate itself needs no more of the chain.
    let inter_only = TrustAnchors::new(vec![below.parsed()]);
    assert_eq!(inter_only.verify(&leaf.parsed(), &[], at), Ok(()));
    // Intermediates that are not on the path, and duplicates, are ignored.
    let noise = [ok.parsed(), len0.parsed(), len0.parsed()];
    assert_eq!(anchors.verify(&ok.parsed(), &noise, at), Ok(()));
}

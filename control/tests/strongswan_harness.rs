//! The strongSwan peer harness (xipsec-testkit) tested on its own, charon against charon,
//! before any test trusts it against xipsecd: a PSK tunnel that carries ping, ECDSA
//! certificates made by `pki`, a certificate from a foreign CA refused, Child SA and IKE SA
//! rekeys, a terminate, and nothing left behind.
//!
//! Two namespaces joined by a veth `wan` (10.80.0.1 and 10.80.0.2), each with a charon and an
//! address on `lo` inside its traffic selector (10.80.1.1 and 10.80.2.1), which
//! kernel-libipsec needs before it installs a Child SA. Needs root and tools/setup's packages.

use std::path::Path;
use std::time::Duration;

use xipsec_testkit::netns::{classify_wan_frame, wired_pair, Capture, Netns, WanFrame};
use xipsec_testkit::pki::{self, KeyType};
use xipsec_testkit::strongswan::{Auth, Charon, CharonConfig, ChildSa, IkeSa};
use xipsec_testkit::{require, Need};

const WAN_A: &str = "10.80.0.1";
const WAN_B: &str = "10.80.0.2";
const HOST_A: &str = "10.80.1.1";
const HOST_B: &str = "10.80.2.1";
const UP: Duration = Duration::from_secs(5);

/// Two charons in two namespaces. Fields drop in order: the charons go before their
/// namespaces.
struct Peers {
    a: Charon,
    b: Charon,
    ns_a: Netns,
    ns_b: Netns,
}

/// A's and B's configuration for `auth_a` and `auth_b`, identities `id_a` and `id_b`; A's
/// subnet is 10.80.1.0/24, B's 10.80.2.0/24.
fn configs(
    (auth_a, id_a): (Auth, &str),
    (auth_b, id_b): (Auth, &str),
) -> (CharonConfig, CharonConfig) {
    let mut a = CharonConfig::new(WAN_A, WAN_B, auth_a);
    a.local_id = id_a.to_owned();
    a.remote_id = id_b.to_owned();
    a.local_ts = vec!["10.80.1.0/24".to_owned()];
    a.remote_ts = vec!["10.80.2.0/24".to_owned()];
    let mut b = CharonConfig::new(WAN_B, WAN_A, auth_b);
    b.local_id = id_b.to_owned();
    b.remote_id = id_a.to_owned();
    b.local_ts = a.remote_ts.clone();
    b.remote_ts = a.local_ts.clone();
    (a, b)
}

fn start(conf_a: &CharonConfig, conf_b: &CharonConfig) -> Peers {
    let (ns_a, ns_b) = wired_pair(&format!("{WAN_A}/24"), &format!("{WAN_B}/24"));
    ns_a.ip(&["addr", "add", &format!("{HOST_A}/32"), "dev", "lo"]);
    ns_b.ip(&["addr", "add", &format!("{HOST_B}/32"), "dev", "lo"]);
    let tmp = std::env::temp_dir();
    let a = Charon::start(&ns_a, &tmp, conf_a).unwrap_or_else(|e| panic!("charon A: {e}"));
    let b = Charon::start(&ns_b, &tmp, conf_b).unwrap_or_else(|e| panic!("charon B: {e}"));
    Peers { a, b, ns_a, ns_b }
}

fn established(charon: &Charon, who: &str) -> (IkeSa, ChildSa) {
    let ike = charon
        .wait_established("peer", "net", UP)
        .unwrap_or_else(|e| panic!("{who}: {e}"));
    let child = ike
        .installed_child("net")
        .cloned()
        .expect("an installed child");
    (ike, child)
}

/// Both ends agree on one IKE SA and one Child SA: the same IKE SPIs, each one's inbound SPI
/// the other's outbound, one initiator.
fn assert_same_sas(a: &(IkeSa, ChildSa), b: &(IkeSa, ChildSa)) {
    assert_eq!(
        (a.0.initiator_spi, a.0.responder_spi),
        (b.0.initiator_spi, b.0.responder_spi)
    );
    assert_ne!(a.0.initiator_spi, 0);
    assert_ne!(a.0.responder_spi, 0);
    assert!(a.0.initiator && !b.0.initiator);
    assert_eq!(a.1.spi_out, b.1.spi_in);
    assert_eq!(a.1.spi_in, b.1.spi_out);
    assert_ne!(a.1.spi_in, a.1.spi_out);
}

#[test]
fn psk_tunnel_between_two_charons_carries_ping() {
    let test = "psk_tunnel_between_two_charons_carries_ping";
    if !require(test, &[Need::STRONGSWAN, &[Need::Ping]].concat()) {
        return;
    }
    let secret = || Auth::Psk("harness self-test secret".to_owned());
    let (conf_a, conf_b) = configs((secret(), "a.xipsec.test"), (secret(), "b.xipsec.test"));
    let peers = start(&conf_a, &conf_b);

    peers.a.initiate("net").expect("A initiates");
    let a = established(&peers.a, "A");
    let b = established(&peers.b, "B");
    assert_same_sas(&a, &b);
    assert_eq!(a.0.remote_id, "b.xipsec.test");
    assert_eq!(b.0.remote_id, "a.xipsec.test");
    for (key, value) in [
        ("encr-alg", "AES_GCM_16"),
        ("encr-keysize", "128"),
        ("prf-alg", "PRF_HMAC_SHA2_256"),
        ("dh-group", "CURVE_25519"),
    ] {
        assert_eq!(a.0.fields[key], value, "IKE {key}");
    }
    assert_eq!(a.1.fields["encr-alg"], "AES_GCM_16");
    assert_eq!(a.1.fields["encr-keysize"], "128");
    assert_eq!(a.1.local_ts, ["10.80.1.0/24"]);
    assert_eq!(b.1.local_ts, ["10.80.2.0/24"]);
    // kernel-libipsec always puts ESP in UDP (see the notes on it).
    assert!(a.1.encap && b.1.encap);
    assert_eq!((a.0.local_port, a.0.remote_port), (4500, 4500));

    let capture = Capture::start(&peers.ns_b, "wan");
    let ping = peers
        .ns_a
        .exec(
            "ping",
            &["-c", "3", "-i", "0.2", "-W", "2", "-I", HOST_A, HOST_B],
            Duration::from_secs(10),
        )
        .expect("ping runs");
    let frames = capture.stop();
    assert!(
        ping.status.success(),
        "ping through the tunnel: {}{}",
        String::from_utf8_lossy(&ping.stdout),
        String::from_utf8_lossy(&ping.stderr)
    );
    // On the wire: ESP in UDP with A's and B's outbound SPIs, and no plaintext ICMP.
    let kinds: Vec<WanFrame> = frames.iter().map(|f| classify_wan_frame(f)).collect();
    let esp_with = |spi: u32| {
        kinds
            .iter()
            .filter(|kind| **kind == WanFrame::NattUdp { first_word: spi })
            .count()
    };
    assert!(esp_with(a.1.spi_out) >= 3, "A's ESP on the wire: {kinds:?}");
    assert!(esp_with(b.1.spi_out) >= 3, "B's ESP on the wire: {kinds:?}");
    assert!(
        !kinds
            .iter()
            .any(|kind| matches!(kind, WanFrame::Other { protocol: 1, .. })),
        "plaintext ICMP on the wire: {kinds:?}"
    );
    // And charon's ESP counted them.
    let (_, after) = established(&peers.a, "A after ping");
    assert!(after.packets_out >= 3 && after.packets_in >= 3, "{after:?}");
}

/// `pki` in `dir`: a P-384 CA, A with a P-256 key, B with a P-384 key, each certificate naming
/// its host by DNS name and address.
fn certificates(dir: &Path, ca_name: &str) -> (pki::Ca, pki::Credential, pki::Credential) {
    let ca = pki::make_ca(
        dir,
        ca_name,
        &format!("C=CH, O=xipsec, CN={ca_name}"),
        KeyType::EcdsaP384,
    )
    .expect("a CA");
    let a = pki::issue(
        &ca,
        dir,
        &format!("{ca_name}-a"),
        "C=CH, O=xipsec, CN=a.xipsec.test",
        &["a.xipsec.test", WAN_A],
        KeyType::EcdsaP256,
    )
    .expect("A's certificate");
    let b = pki::issue(
        &ca,
        dir,
        &format!("{ca_name}-b"),
        "C=CH, O=xipsec, CN=b.xipsec.test",
        &["b.xipsec.test", WAN_B],
        KeyType::EcdsaP384,
    )
    .expect("B's certificate");
    (ca, a, b)
}

#[test]
fn ecdsa_certificates_from_pki_authenticate_both_ways() {
    let test = "ecdsa_certificates_from_pki_authenticate_both_ways";
    if !require(test, &[Need::STRONGSWAN, &[Need::Pki]].concat()) {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (ca, cert_a, cert_b) = certificates(dir.path(), "ca");
    // What pki wrote, read back by pki: the names and key types asked for.
    let printed = pki::print(&cert_a.cert).expect("pki --print");
    assert!(printed.contains("a.xipsec.test"), "{printed}");
    assert!(printed.contains(WAN_A), "{printed}");
    assert!(
        printed.contains("ECDSA") && printed.contains("256 bits"),
        "{printed}"
    );
    let printed = pki::print(&cert_b.cert).expect("pki --print");
    assert!(
        printed.contains("ECDSA") && printed.contains("384 bits"),
        "{printed}"
    );

    let pubkey = |credential: &pki::Credential| Auth::Pubkey {
        cert: credential.cert.clone(),
        key: credential.key.clone(),
        cacert: ca.cert.clone(),
    };
    let (conf_a, conf_b) = configs(
        (pubkey(&cert_a), "a.xipsec.test"),
        (pubkey(&cert_b), "b.xipsec.test"),
    );
    let peers = start(&conf_a, &conf_b);
    peers.a.initiate("net").expect("A initiates");
    let a = established(&peers.a, "A");
    let b = established(&peers.b, "B");
    assert_same_sas(&a, &b);
    assert_eq!(a.0.remote_id, "b.xipsec.test");
    assert_eq!(b.0.remote_id, "a.xipsec.test");
    // Each side checked the other's ECDSA signature, not a PSK.
    for (charon, peer) in [(&peers.a, "b.xipsec.test"), (&peers.b, "a.xipsec.test")] {
        let log = charon.log();
        assert!(
            log.lines().any(|line| line
                .contains(&format!("authentication of '{peer}' with ECDSA"))
                && line.contains("successful")),
            "no ECDSA authentication of {peer} in:\n{log}"
        );
    }
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let test = "a_certificate_from_another_ca_is_refused";
    if !require(test, &[Need::STRONGSWAN, &[Need::Pki]].concat()) {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (ca, _, cert_b) = certificates(dir.path(), "ca");
    let (_, stranger_a, _) = certificates(dir.path(), "other-ca");
    let pubkey = |credential: &pki::Credential| Auth::Pubkey {
        cert: credential.cert.clone(),
        key: credential.key.clone(),
        cacert: ca.cert.clone(),
    };
    // A presents a certificate B's CA never signed; A itself trusts the right CA.
    let (conf_a, conf_b) = configs(
        (pubkey(&stranger_a), "a.xipsec.test"),
        (pubkey(&cert_b), "b.xipsec.test"),
    );
    let peers = start(&conf_a, &conf_b);
    let outcome = peers.a.initiate("net");
    assert!(outcome.is_err(), "initiate succeeded: {outcome:?}");
    let sas = peers.b.sas().expect("B lists its SAs");
    assert!(
        sas.iter().all(|sa| !sa.is_established()),
        "B established with a stranger: {sas:?}"
    );
    // Refused for the right reason: no chain to B's CA.
    let log = peers.b.log();
    assert!(
        log.contains("no trusted ECDSA public key found for 'a.xipsec.test'"),
        "{log}"
    );
}

#[test]
fn rekeys_change_the_spis_and_terminate_clears_both_ends() {
    let test = "rekeys_change_the_spis_and_terminate_clears_both_ends";
    if !require(test, Need::STRONGSWAN) {
        return;
    }
    let secret = || Auth::Psk("rekey secret".to_owned());
    let (conf_a, conf_b) = configs((secret(), WAN_A), (secret(), WAN_B));
    let peers = start(&conf_a, &conf_b);
    peers.a.initiate("net").expect("A initiates");
    let (ike_before, child_before) = established(&peers.a, "A");
    established(&peers.b, "B");

    peers.a.rekey_child("net").expect("swanctl --rekey --child");
    let new_child = |sas: &[IkeSa]| {
        sas.iter()
            .filter_map(|sa| sa.installed_child("net"))
            .any(|child| child.spi_in != child_before.spi_in)
    };
    peers.a.wait_sas(UP, new_child).expect("A's new Child SA");
    let sas_b = peers.b.wait_sas(UP, new_child).expect("B's new Child SA");
    let child_b = sas_b
        .iter()
        .find_map(|sa| sa.installed_child("net"))
        .expect("B's child");
    assert_ne!(child_b.spi_out, child_before.spi_in);
    assert_eq!(child_b.reqid, child_before.reqid);

    peers.b.rekey_ike("peer").expect("swanctl --rekey --ike");
    let new_ike = |sas: &[IkeSa]| {
        sas.iter()
            .any(|sa| sa.is_established() && sa.initiator_spi != ike_before.initiator_spi)
    };
    let sas_a = peers.a.wait_sas(UP, new_ike).expect("A's new IKE SA");
    peers.b.wait_sas(UP, new_ike).expect("B's new IKE SA");
    let ike_after = sas_a
        .iter()
        .find(|sa| sa.is_established())
        .expect("an IKE SA");
    assert_ne!(ike_after.uniqueid, ike_before.uniqueid);
    assert!(ike_after.installed_child("net").is_some(), "{ike_after:?}");

    peers
        .a
        .terminate_ike("peer")
        .expect("swanctl --terminate --ike");
    peers
        .b
        .wait_sas(UP, |sas| sas.iter().all(|sa| !sa.is_established()))
        .expect("B saw the DELETE");

    // Dropping the harness leaves no charon and no directory behind.
    let pids = [peers.a.pid(), peers.b.pid()];
    let dirs = [peers.a.dir().to_owned(), peers.b.dir().to_owned()];
    drop(peers);
    for pid in pids {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        assert_ne!(comm.trim(), "charon", "charon {pid} outlived its guard");
    }
    for dir in dirs {
        assert!(!dir.exists(), "{} outlived its guard", dir.display());
    }
}

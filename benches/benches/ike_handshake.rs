//! IKE handshakes per second on one core, in memory: IKE_SA_INIT + IKE_AUTH with a PSK and the
//! first Child SA, for X25519, P-256 and MODP-2048; and with X25519 and ECDSA P-256
//! certificates (`x25519-cert-p256`: both sides sign with a certificate under one root CA, send
//! it, and verify the peer's against that root).
//!
//! - `ike_handshake/both_sides`: initiator and responder, four messages, everything each side
//!   does (what a test pair costs; not a figure of merit for a gateway).
//! - `ike_handshake/responder`: the responder's work only, the gateway's figure of merit. The
//!   initiator's two requests are made beforehand: the responder takes a deterministic
//!   generator seeded per handshake, so its IKE_SA_INIT answer (SPI, nonce, KE value) is the
//!   same every time and the initiator's IKE_AUTH request made against it once stays valid.
//!   Each iteration is `IkeSa::respond` on the first request, `IkeSa::handle` on the second,
//!   and the polling of both answers and the events. ECDSA signatures draw their own
//!   randomness, so with certificates the replayed IKE_AUTH answer differs every time; each
//!   prepared handshake is checked by the initiator that made it accepting a replayed answer.
//! - `ike_handshake/crypto_floor`: the cryptography the responder cannot avoid, called
//!   directly: its key pair and the agreement, 16 HMAC-SHA-256 (SKEYSEED, 6 blocks of
//!   `prf+` for the IKE SA keys, 3 + 3 for checking and making AUTH, 3 blocks of Child SA
//!   KEYMAT for AES-256-GCM), one AES-256-GCM open and one seal of the SK payloads.
//! - `ike_handshake/key_exchange`: the key pair and the agreement alone (the part of the floor
//!   no implementation can shave).
//!
//! Throughput is one element per handshake, so criterion's "thrpt" is handshakes per second.
//! Before the criterion runs, the responder, the floor and the key exchange are also timed
//! interleaved (one of each per round, the order rotating, medians compared), which keeps
//! their ratios steady on a shared, noisy machine the way `esp_ab` does for ESP.
//! The certificate rows are criterion-only (`… -- cert` runs just them).
//!
//! `cargo bench -p xipsec-benches --bench ike_handshake` (docs/benchmarks.md has the figures).

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::{aead, hmac};
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use xipsec_control::crypto::{
    Certificate, CryptoError, KeyExchange, Rng, SharedSecret, SystemRng, TrustAnchors,
};
use xipsec_control::ike::{
    Credentials, Event, Identity, IkeConfig, IkeProposal, IkeSa, LocalAuth, PeerAuth, Psk,
};
use xipsec_control::wire::KeMethod;

const GROUPS: [(&str, KeMethod); 3] = [
    ("x25519", KeMethod::Curve25519),
    ("p256", KeMethod::Ecp256),
    ("modp2048", KeMethod::Modp2048),
];

/// Distinct pre-made handshakes the responder benchmark cycles through.
const PREPARED: usize = 16;

/// splitmix64: deterministic and cheap, so the responder's answers can be replayed.
struct SeededRng(u64);

impl Rng for SeededRng {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), CryptoError> {
        for chunk in dest.chunks_mut(8) {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            let v = (z ^ (z >> 31)).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        Ok(())
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The configurations of both sides, with `group` as the only key exchange method.
fn configs(group: KeMethod) -> (Arc<IkeConfig>, Arc<IkeConfig>) {
    let psk = || Psk::new(b"a shared secret of some length".to_vec());
    let (i_addr, r_addr) = (addr("192.0.2.1:500"), addr("198.51.100.1:500"));
    let (alice, gw) = (
        Identity::UserFqdn("alice@example.com".into()),
        Identity::Fqdn("gw.example.com".into()),
    );
    let mut i = IkeConfig::new(i_addr, r_addr, alice.clone(), psk());
    i.remote_id = Some(gw.clone());
    i.ike_proposals = vec![IkeProposal::aead(vec![group])];
    let mut r = IkeConfig::new(r_addr, i_addr, gw, psk());
    r.remote_id = Some(alice);
    r.ike_proposals = vec![IkeProposal::aead(vec![group])];
    (Arc::new(i), Arc::new(r))
}

fn dn(cn: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::CommonName, cn);
    d
}

/// An ECDSA P-256 end entity for `san` under `ca`, as IKE credentials.
fn end_entity(ca: &Issuer<'_, KeyPair>, cn: &str, san: SanType) -> LocalAuth {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn);
    p.subject_alt_names = vec![san];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert = p.signed_by(&key, ca).unwrap();
    let creds = Credentials::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes());
    LocalAuth::Signature(Arc::new(creds.unwrap()))
}

/// [`configs`] with X25519, both sides authenticating with ECDSA P-256 certificates issued
/// by one P-256 root, which both trust.
fn cert_configs() -> (Arc<IkeConfig>, Arc<IkeConfig>) {
    let (i, r) = configs(KeMethod::Curve25519);
    let (mut i, mut r) = (Arc::unwrap_or_clone(i), Arc::unwrap_or_clone(r));
    let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut root = CertificateParams::default();
    root.distinguished_name = dn("xipsec bench CA");
    root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let root_cert = root.self_signed(&root_key).unwrap();
    let ca = Issuer::new(root, root_key);
    let anchors = TrustAnchors::new(vec![Certificate::from_der(root_cert.der()).unwrap()]);
    let peer_auth = PeerAuth::Certificate(Arc::new(anchors));
    i.local_auth = end_entity(
        &ca,
        "alice",
        SanType::Rfc822Name("alice@example.com".try_into().unwrap()),
    );
    i.peer_auth = peer_auth.clone();
    r.local_auth = end_entity(
        &ca,
        "gw",
        SanType::DnsName("gw.example.com".try_into().unwrap()),
    );
    r.peer_auth = peer_auth;
    (Arc::new(i), Arc::new(r))
}

/// The only datagram `sa` has to send.
fn one_transmit(sa: &mut IkeSa) -> Vec<u8> {
    let t = sa.poll_transmit().expect("a datagram to send");
    debug_assert!(sa.poll_transmit().is_none());
    t.contents
}

/// Whether a Child SA came out of the handshake (draining the events).
fn child_installed(sa: &mut IkeSa) -> bool {
    let mut installed = false;
    while let Some(e) = sa.poll_event() {
        installed |= matches!(e, Event::ChildSaInstalled(_));
    }
    installed
}

/// One whole handshake; returns the initiator's SA.
fn handshake(i_cfg: &Arc<IkeConfig>, r_cfg: &Arc<IkeConfig>, now: Instant) -> IkeSa {
    let mut i = IkeSa::initiate(i_cfg.clone(), now, Box::new(SystemRng)).unwrap();
    let init = one_transmit(&mut i);
    let mut r = IkeSa::respond(r_cfg.clone(), now, Box::new(SystemRng), &init).unwrap();
    i.handle(now, &one_transmit(&mut r)).unwrap();
    r.handle(now, &one_transmit(&mut i)).unwrap();
    i.handle(now, &one_transmit(&mut r)).unwrap();
    assert!(child_installed(&mut r));
    assert!(child_installed(&mut i));
    i
}

/// The initiator's two requests against a responder seeded with `seed`.
struct Prepared {
    seed: u64,
    init: Vec<u8>,
    auth: Vec<u8>,
    /// The initiator, waiting for the IKE_AUTH answer: it checks that a replay is the
    /// handshake it started.
    initiator: Option<IkeSa>,
}

fn prepare(i_cfg: &Arc<IkeConfig>, r_cfg: &Arc<IkeConfig>, now: Instant, seed: u64) -> Prepared {
    let mut i = IkeSa::initiate(i_cfg.clone(), now, Box::new(SystemRng)).unwrap();
    let init = one_transmit(&mut i);
    let mut r = IkeSa::respond(r_cfg.clone(), now, Box::new(SeededRng(seed)), &init).unwrap();
    i.handle(now, &one_transmit(&mut r)).unwrap();
    let auth = one_transmit(&mut i);
    Prepared {
        seed,
        init,
        auth,
        initiator: Some(i),
    }
}

/// Prepares `PREPARED` handshakes and checks that each replay is the handshake its initiator
/// started: the initiator takes the replayed answer and installs its Child SA.
fn prepare_all(i_cfg: &Arc<IkeConfig>, r_cfg: &Arc<IkeConfig>, now: Instant) -> Vec<Prepared> {
    let mut prepared: Vec<Prepared> = (0..PREPARED as u64)
        .map(|seed| prepare(i_cfg, r_cfg, now, seed))
        .collect();
    for p in &mut prepared {
        let answer = respond(r_cfg, now, p);
        let mut i = p.initiator.take().expect("checked once");
        i.handle(now, &answer).unwrap();
        assert!(
            child_installed(&mut i),
            "the replayed responder completes the initiator's handshake"
        );
    }
    prepared
}

/// The responder's side of one prepared handshake; returns its IKE_AUTH answer.
fn respond(r_cfg: &Arc<IkeConfig>, now: Instant, p: &Prepared) -> Vec<u8> {
    let mut r = IkeSa::respond(r_cfg.clone(), now, Box::new(SeededRng(p.seed)), &p.init).unwrap();
    while r.poll_transmit().is_some() {}
    r.handle(now, &p.auth).unwrap();
    let answer = one_transmit(&mut r);
    debug_assert!(child_installed(&mut r));
    while r.poll_event().is_some() {}
    answer
}

/// The responder's unavoidable cryptography, with the initiator's public value `peer`.
struct Floor {
    group: KeMethod,
    peer: Vec<u8>,
    psk: Vec<u8>,
    message: Vec<u8>,
    sk: aead::LessSafeKey,
    counter: u64,
}

impl Floor {
    fn new(group: KeMethod) -> Floor {
        let peer = KeyExchange::generate(group, &mut SystemRng).unwrap();
        let sk = aead::UnboundKey::new(&aead::AES_256_GCM, &[7u8; 32]).unwrap();
        Floor {
            group,
            peer: peer.public_value().to_vec(),
            psk: b"a shared secret of some length".to_vec(),
            message: vec![0x5a; 300],
            sk: aead::LessSafeKey::new(sk),
            counter: 0,
        }
    }

    fn key_exchange(&self) -> SharedSecret {
        let ours = KeyExchange::generate(self.group, &mut SystemRng).unwrap();
        ours.agree(&self.peer).unwrap()
    }

    fn run(&mut self) -> u8 {
        let g_ir = self.key_exchange();
        let nonces = [0x11u8; 64];
        let mut key = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &nonces), g_ir.expose());
        // prf+ for the IKE SA keys (6), AUTH checked and made (2 × 3), KEYMAT (3).
        for n in 0..15u8 {
            let data: &[u8] = if n == 7 || n == 10 {
                &self.message
            } else {
                &nonces
            };
            let k = if n == 6 || n == 9 {
                &self.psk[..]
            } else {
                key.as_ref()
            };
            key = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, k), data);
        }
        self.counter += 1;
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&self.counter.to_be_bytes());
        let mut sk_payload = vec![0x33u8; 180];
        let tag = self
            .sk
            .seal_in_place_separate_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(&nonce[..8]),
                &mut sk_payload,
            )
            .unwrap();
        sk_payload.extend_from_slice(tag.as_ref());
        let opened = self
            .sk
            .open_in_place(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(&nonce[..8]),
                &mut sk_payload,
            )
            .unwrap();
        opened[0] ^ key.as_ref()[0]
    }
}

fn ike_handshake(c: &mut Criterion) {
    let now = Instant::now();
    let mut group = c.benchmark_group("ike_handshake");
    group.throughput(Throughput::Elements(1));
    for (name, ke) in GROUPS {
        let (i_cfg, r_cfg) = configs(ke);
        both_sides_and_responder(&mut group, name, &i_cfg, &r_cfg, now);
        let mut floor = Floor::new(ke);
        group.bench_function(BenchmarkId::new("crypto_floor", name), |b| {
            b.iter(|| black_box(floor.run()))
        });
        group.bench_function(BenchmarkId::new("key_exchange", name), |b| {
            b.iter(|| black_box(floor.key_exchange()))
        });
    }
    let (i_cfg, r_cfg) = cert_configs();
    both_sides_and_responder(&mut group, "x25519-cert-p256", &i_cfg, &r_cfg, now);
    group.finish();
}

/// The `both_sides` and `responder` rows of one configuration.
fn both_sides_and_responder(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    i_cfg: &Arc<IkeConfig>,
    r_cfg: &Arc<IkeConfig>,
    now: Instant,
) {
    group.bench_function(BenchmarkId::new("both_sides", name), |b| {
        b.iter(|| black_box(handshake(i_cfg, r_cfg, now)))
    });
    let prepared = prepare_all(i_cfg, r_cfg, now);
    let mut next = 0;
    group.bench_function(BenchmarkId::new("responder", name), |b| {
        b.iter(|| {
            next = (next + 1) % PREPARED;
            black_box(respond(r_cfg, now, &prepared[next]))
        })
    });
}

fn median_us(mut samples: Vec<Duration>) -> f64 {
    samples.sort_unstable();
    samples[samples.len() / 2].as_secs_f64() * 1e6
}

/// The responder, the crypto floor and the key exchange, one after another in each round.
fn interleaved() {
    let now = Instant::now();
    println!(
        "IKE responder vs its crypto floor, interleaved, median µs per handshake (handshakes/s)"
    );
    println!("| group | rounds | responder | crypto floor | key exchange | floor/responder |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, ke) in GROUPS {
        let rounds = if ke == KeMethod::Modp2048 { 200 } else { 2000 };
        let (i_cfg, r_cfg) = configs(ke);
        let prepared = prepare_all(&i_cfg, &r_cfg, now);
        let mut floor = Floor::new(ke);
        let mut times: [Vec<Duration>; 3] = Default::default();
        for round in 0..rounds {
            for k in 0..3 {
                let which = (round + k) % 3;
                let start = Instant::now();
                match which {
                    0 => {
                        black_box(respond(&r_cfg, now, &prepared[round % PREPARED]));
                    }
                    1 => {
                        black_box(floor.run());
                    }
                    _ => {
                        black_box(floor.key_exchange());
                    }
                }
                times[which].push(start.elapsed());
            }
        }
        let [r, f, k] = times.map(median_us);
        println!(
            "| {name} | {rounds} | {r:.1} ({:.0}) | {f:.1} ({:.0}) | {k:.1} ({:.0}) | {:.0}% |",
            1e6 / r,
            1e6 / f,
            1e6 / k,
            100.0 * f / r
        );
    }
}

criterion_group!(benches, ike_handshake);

fn main() {
    interleaved();
    benches();
    Criterion::default().configure_from_args().final_summary();
}

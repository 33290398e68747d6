//! The worker's SA cache over the shared table: packets through SAs the control plane
//! installed, replacement noticed, counters and lifetimes reported, and restarts that never
//! reuse a sequence number nor accept a packet twice.

mod common;

use std::path::PathBuf;

use common::*;
use xipsec_dataplane::esp::{
    ip, CipherSuite, Decapsulator, DropReason, OutboundSa, SaParams, Verdict,
};
use xipsec_dataplane::table::{
    layout::flags, Direction, Keymat, Lifetimes, SaRecord, SlotId, TableReader, TableWriter,
};
use xipsec_dataplane::worker::{SaCache, OUTBOUND_SEQUENCE_RESERVATION};

struct TempTable(PathBuf);

impl TempTable {
    fn new(name: &str) -> Self {
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        Self(dir.join(format!("xipsec-worker-test-{}-{name}", std::process::id())))
    }
}

impl Drop for TempTable {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn record(direction: Direction, params: SaParams, lifetimes: Lifetimes) -> SaRecord {
    SaRecord {
        direction,
        params,
        keymat: Keymat::new(&keymat(params.suite)).unwrap(),
        lifetimes,
        owner_worker: 0,
        installed_at: 1_800_000_000,
        pair: None,
    }
}

/// A gateway's pair as the control plane installs it: our outbound SA to the peer, and the
/// inbound SA the peer's outbound SA reaches (built here as `peer_out`).
fn install_pair(
    writer: &mut TableWriter,
    spi: u32,
    lifetimes: Lifetimes,
) -> (SlotId, SlotId, OutboundSa) {
    let params = SaParams::tunnel(spi, CipherSuite::Aes128Gcm16, V4_ENDPOINTS);
    let (peer_out, _) = sa_pair(SaParams {
        endpoints: mirrored(V4_ENDPOINTS),
        ..params
    });
    let out_slot = writer
        .install(&record(Direction::Outbound, params, lifetimes))
        .unwrap();
    let in_params = SaParams {
        endpoints: mirrored(params.endpoints),
        ..params
    };
    let in_slot = writer
        .install(&record(Direction::Inbound, in_params, lifetimes))
        .unwrap();
    (out_slot, in_slot, peer_out)
}

#[test]
fn packets_flow_through_installed_sas_and_are_counted() {
    let file = TempTable::new("flow");
    let mut writer = TableWriter::create(&file.0, 16).unwrap();
    let (out_slot, in_slot, mut peer_out) = install_pair(&mut writer, 0x2001, Lifetimes::default());
    let reader = TableReader::open(&file.0).unwrap();
    let mut cache = SaCache::new(&reader);
    let mut decapsulator = Decapsulator::default();

    let plaintext = ipv4_udp(100, 0, true);
    for _ in 0..10 {
        let sa = cache.outbound_sa(out_slot).unwrap();
        let wire = encap(sa, &plaintext);
        assert_eq!(ip::read_u32(&wire, 20), 0x2001);
        let incoming = encap(&mut peer_out, &plaintext);
        let mut frame = Frame::new(&incoming);
        let verdict = frame.with_buf(|buf| decapsulator.decap(&mut cache, buf));
        assert_eq!(verdict, Verdict::Forward);
        assert_eq!(frame.data(), &plaintext[..]);
    }
    cache.flush(1_800_000_100);
    let out_status = writer.status(out_slot).unwrap();
    let in_status = writer.status(in_slot).unwrap();
    assert_eq!((out_status.packets, out_status.bytes), (10, 1000));
    assert_eq!((in_status.packets, in_status.bytes), (10, 1000));
    assert_eq!(in_status.replay_top, 10);
    assert_eq!(out_status.first_use, 1_800_000_100);
    assert!(out_status.next_sequence >= 11 + OUTBOUND_SEQUENCE_RESERVATION / 2);
    assert_eq!(out_status.flags, 0);
    // A second flush with nothing new adds nothing.
    cache.flush(1_800_000_200);
    assert_eq!(writer.status(out_slot).unwrap().packets, 10);
}

#[test]
fn a_replaced_sa_is_noticed_and_a_deleted_one_is_gone() {
    let file = TempTable::new("replace");
    let mut writer = TableWriter::create(&file.0, 16).unwrap();
    let (_, in_slot, mut peer_out) = install_pair(&mut writer, 0x3001, Lifetimes::default());
    let reader = TableReader::open(&file.0).unwrap();
    let mut cache = SaCache::new(&reader);
    let mut decapsulator = Decapsulator::default();
    let plaintext = ipv4_udp(80, 0, true);
    let wire = encap(&mut peer_out, &plaintext);
    assert_eq!(
        decap(&mut decapsulator, &mut cache, &wire).0,
        Verdict::Forward
    );

    // The control plane rekeys: the old inbound SA goes, a new one with another SPI comes.
    writer.delete(in_slot).unwrap();
    let (_, _, mut new_peer_out) = install_pair(&mut writer, 0x3002, Lifetimes::default());
    let old = encap(&mut peer_out, &plaintext);
    assert_eq!(
        decap(&mut decapsulator, &mut cache, &old).0,
        Verdict::Drop(DropReason::UnknownSpi)
    );
    let new = encap(&mut new_peer_out, &plaintext);
    assert_eq!(
        decap(&mut decapsulator, &mut cache, &new).0,
        Verdict::Forward
    );
}

#[test]
fn lifetimes_raise_flags_and_hard_ones_stop_the_sa() {
    let file = TempTable::new("lifetimes");
    let mut writer = TableWriter::create(&file.0, 16).unwrap();
    let lifetimes = Lifetimes {
        soft_packets: 5,
        hard_packets: 8,
        ..Lifetimes::default()
    };
    let (out_slot, _, _) = install_pair(&mut writer, 0x4001, lifetimes);
    let reader = TableReader::open(&file.0).unwrap();
    let mut cache = SaCache::new(&reader);
    let plaintext = ipv4_udp(64, 0, true);
    for _ in 0..5 {
        encap(cache.outbound_sa(out_slot).unwrap(), &plaintext);
    }
    cache.flush(1_800_000_001);
    assert_eq!(writer.status(out_slot).unwrap().flags, flags::SOFT_EXPIRED);
    for _ in 0..3 {
        encap(cache.outbound_sa(out_slot).unwrap(), &plaintext);
    }
    cache.flush(1_800_000_002);
    let status = writer.status(out_slot).unwrap();
    assert_eq!(status.flags, flags::SOFT_EXPIRED | flags::HARD_EXPIRED);
    assert!(
        cache.outbound_sa(out_slot).is_none(),
        "a hard-expired SA is not used"
    );

    // Time limits count from installation.
    let timed = Lifetimes {
        soft_seconds: 100,
        ..Lifetimes::default()
    };
    let (slot, _, _) = install_pair(&mut writer, 0x4002, timed);
    encap(cache.outbound_sa(slot).unwrap(), &plaintext);
    cache.flush(1_800_000_050);
    assert_eq!(writer.status(slot).unwrap().flags, 0);
    encap(cache.outbound_sa(slot).unwrap(), &plaintext);
    cache.flush(1_800_000_100);
    assert_eq!(writer.status(slot).unwrap().flags, flags::SOFT_EXPIRED);
}

#[test]
fn a_restarted_worker_never_reuses_a_sequence_number_nor_accepts_a_packet_twice() {
    let file = TempTable::new("restart");
    let mut writer = TableWriter::create(&file.0, 16).unwrap();
    let (out_slot, _, mut peer_out) = install_pair(&mut writer, 0x5001, Lifetimes::default());
    let reader = TableReader::open(&file.0).unwrap();
    let plaintext = ipv4_udp(64, 0, true);
    let incoming: Vec<Vec<u8>> = (0..20).map(|_| encap(&mut peer_out, &plaintext)).collect();

    let last_sent = {
        let mut cache = SaCache::new(&reader);
        let mut decapsulator = Decapsulator::default();
        let mut last = 0;
        for _ in 0..100 {
            let wire = encap(cache.outbound_sa(out_slot).unwrap(), &plaintext);
            last = ip::read_u32(&wire, 24);
        }
        for wire in &incoming[..10] {
            assert_eq!(
                decap(&mut decapsulator, &mut cache, wire).0,
                Verdict::Forward
            );
        }
        cache.flush(1_800_000_001);
        last
        // The worker dies here: its cache is gone, the table stays.
    };
    assert_eq!(last_sent, 100);

    let mut cache = SaCache::new(&reader);
    let mut decapsulator = Decapsulator::default();
    let wire = encap(cache.outbound_sa(out_slot).unwrap(), &plaintext);
    let resumed = u64::from(ip::read_u32(&wire, 24));
    assert!(
        resumed > u64::from(last_sent),
        "sequence {resumed} was already used"
    );
    assert!(resumed <= u64::from(last_sent) + OUTBOUND_SEQUENCE_RESERVATION + 1);
    for wire in &incoming[..10] {
        assert_eq!(
            decap(&mut decapsulator, &mut cache, wire).0,
            Verdict::Drop(DropReason::Replayed),
            "accepted by the previous worker"
        );
    }
    for wire in &incoming[10..] {
        assert_eq!(
            decap(&mut decapsulator, &mut cache, wire).0,
            Verdict::Forward
        );
    }
}

#[test]
fn plaintext_finds_its_outbound_sa_through_the_spd() {
    use xipsec_dataplane::table::{AddressRange, Policy, ANY_PORT};
    use xipsec_dataplane::worker::{flow_of, SpdMirror};

    let file = TempTable::new("spd");
    let mut writer = TableWriter::create(&file.0, 16).unwrap();
    let (udp_only, _, _) = install_pair(&mut writer, 0x6001, Lifetimes::default());
    let (everything, _, _) = install_pair(&mut writer, 0x6002, Lifetimes::default());
    let net = |text: &str, len| AddressRange::prefix(text.parse().unwrap(), len).unwrap();
    let policy = |protocol, outbound| Policy {
        local: net("10.1.0.0", 24),
        remote: net("10.2.0.0", 24),
        protocol,
        local_ports: ANY_PORT,
        remote_ports: ANY_PORT,
        outbound,
    };
    writer
        .set_policies(&[
            policy(Some(ip::proto::UDP), udp_only),
            policy(None, everything),
        ])
        .unwrap();
    let reader = TableReader::open(&file.0).unwrap();
    let mut mirror = SpdMirror::default();
    assert!(mirror.refresh(&reader));
    assert_eq!(mirror.len(), 2);

    let mut cache = SaCache::new(&reader);
    // ipv4_udp builds 10.1.0.5:5000 -> 10.2.0.7:6000.
    let udp = ipv4_udp(90, 0, true);
    let flow = flow_of(&udp).unwrap();
    assert_eq!(flow.ports, Some((5000, 6000)));
    let slot = mirror.lookup(&flow).unwrap();
    assert_eq!(slot, udp_only);
    let wire = encap(cache.outbound_sa(slot).unwrap(), &udp);
    assert_eq!(ip::read_u32(&wire, 20), 0x6001);

    let mut tcp = udp.clone();
    tcp[9] = ip::proto::TCP;
    assert_eq!(mirror.lookup(&flow_of(&tcp).unwrap()), Some(everything));
    let mut elsewhere = udp.clone();
    elsewhere[16] = 192;
    assert_eq!(mirror.lookup(&flow_of(&elsewhere).unwrap()), None);
    // IPv6 traffic has no policy here; truncated packets have no flow at all.
    assert_eq!(mirror.lookup(&flow_of(&ipv6_udp(60, 0, 0)).unwrap()), None);
    assert_eq!(flow_of(&udp[..10]), None);

    // The control plane narrows the SPD: the mirror follows on its next refresh.
    writer.set_policies(&[policy(None, everything)]).unwrap();
    assert!(mirror.refresh(&reader));
    assert_eq!(mirror.lookup(&flow), Some(everything));
}

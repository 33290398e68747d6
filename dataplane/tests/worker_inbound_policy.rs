//! The RFC 4301 §5.2 inbound check through the shared table, without root: a packet that an
//! inbound SA decrypts and authenticates must still fit the traffic selectors of its Child SA
//! (the policies into the record's `pair`, reversed), or it is dropped as `policy_mismatch`,
//! blamed on the peer and counted on the SA.
//!
//! The gateway here is 10.2.0.0/24 (local) talking to the peer's 10.1.0.0/24 (remote); the
//! packets the peer sends are built by [`ipv4_udp`]: 10.1.0.5:5000 -> 10.2.0.7:6000.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use common::*;
use xipsec_dataplane::esp::{
    ip, CipherSuite, Decapsulator, DropReason, Fault, Mode, OutboundSa, SaParams, Verdict,
};
use xipsec_dataplane::table::{
    AddressRange, Direction, Keymat, Lifetimes, Policy, SaRecord, SlotId, TableReader, TableWriter,
    ANY_PORT,
};
use xipsec_dataplane::worker::{SaSource, SpdIndexer, StaticSas, TableSas, SHARED_FROM};

struct TempTable(PathBuf);

impl TempTable {
    fn new(name: &str) -> Self {
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        Self(dir.join(format!(
            "xipsec-inbound-policy-{}-{name}",
            std::process::id()
        )))
    }
}

impl Drop for TempTable {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn prefix(text: &str) -> AddressRange {
    let (address, len) = text.split_once('/').unwrap();
    AddressRange::prefix(address.parse().unwrap(), len.parse().unwrap()).unwrap()
}

fn policy(local: &str, remote: &str, outbound: SlotId) -> Policy {
    Policy {
        local: prefix(local),
        remote: prefix(remote),
        protocol: None,
        local_ports: ANY_PORT,
        remote_ports: ANY_PORT,
        outbound,
    }
}

fn record(direction: Direction, params: SaParams, pair: Option<SlotId>) -> SaRecord {
    SaRecord {
        direction,
        params,
        keymat: Keymat::new(&keymat(params.suite)).unwrap(),
        lifetimes: Lifetimes::default(),
        owner_worker: 0,
        installed_at: 1_800_000_000,
        pair,
    }
}

/// A Child SA as the daemon installs it: the outbound SA, then the inbound one naming it as
/// its pair (or none: a manual SA). Returns both slots and the peer's outbound SA, which
/// reaches the inbound one. The caller writes the policies.
fn install_child(
    writer: &mut TableWriter,
    spi_out: u32,
    spi_in: u32,
    mode: Mode,
    paired: bool,
) -> (SlotId, SlotId, OutboundSa) {
    let ours = SaParams {
        mode,
        ..SaParams::tunnel(spi_out, CipherSuite::Aes128Gcm16, V4_ENDPOINTS)
    };
    let theirs = SaParams {
        spi: spi_in,
        endpoints: mirrored(V4_ENDPOINTS),
        ..ours
    };
    let out_slot = writer
        .install(&record(Direction::Outbound, ours, None))
        .unwrap();
    let in_slot = writer
        .install(&record(
            Direction::Inbound,
            SaParams {
                spi: spi_in,
                ..ours
            },
            paired.then_some(out_slot),
        ))
        .unwrap();
    let (peer_out, _) = sa_pair(theirs);
    (out_slot, in_slot, peer_out)
}

/// `ipv4_udp` with other addresses and ports (checksum fixed).
fn peer_packet(source: [u8; 4], destination: [u8; 4], ports: (u16, u16)) -> Vec<u8> {
    let mut packet = ipv4_udp(120, 0, true);
    packet[12..16].copy_from_slice(&source);
    packet[16..20].copy_from_slice(&destination);
    packet[10..12].fill(0);
    ip::set_ipv4_checksum(&mut packet[..20]);
    packet[20..22].copy_from_slice(&ports.0.to_be_bytes());
    packet[22..24].copy_from_slice(&ports.1.to_be_bytes());
    packet
}

const INSIDE: [u8; 4] = [10, 1, 0, 5];
const OUR_HOST: [u8; 4] = [10, 2, 0, 7];
const PORTS: (u16, u16) = (5000, 6000);

/// What the worker makes of `plaintext` sent by the peer through `peer_out`; on `Forward`,
/// the delivered packet must be the plaintext.
fn receive<S: SaSource>(
    sas: &mut S,
    decapsulator: &mut Decapsulator,
    peer_out: &mut OutboundSa,
    plaintext: &[u8],
) -> Verdict {
    let wire = encap(peer_out, plaintext);
    let mut frame = Frame::new(&wire);
    let verdict = frame.with_buf(|buf| sas.decap(decapsulator, buf));
    if verdict == Verdict::Forward {
        assert_eq!(frame.data(), plaintext);
    }
    verdict
}

const MISMATCH: Verdict = Verdict::Drop(DropReason::PolicyMismatch);

#[test]
fn the_reason_is_the_peers_fault() {
    assert_eq!(DropReason::PolicyMismatch.fault(), Fault::Peer);
    assert_eq!(DropReason::PolicyMismatch.name(), "policy_mismatch");
}

#[test]
fn only_traffic_inside_the_child_sas_selectors_gets_in() {
    let file = TempTable::new("selectors");
    let mut writer = TableWriter::create(&file.0, 16).unwrap();
    let (out_1, in_1, mut peer_1) = install_child(&mut writer, 0x11, 0x21, Mode::Tunnel, true);
    // A second Child SA with the same peer, for another of its subnets.
    let (out_2, _, mut peer_2) = install_child(&mut writer, 0x12, 0x22, Mode::Tunnel, true);
    // Port-specific: UDP from their 53 to our 1000-2000 only.
    let (out_3, _, mut peer_3) = install_child(&mut writer, 0x13, 0x23, Mode::Tunnel, true);
    writer
        .set_policies(&[
            policy("10.2.0.0/24", "10.1.0.0/24", out_1),
            policy("10.2.0.0/24", "10.1.1.0/24", out_2),
            Policy {
                protocol: Some(ip::proto::UDP),
                local_ports: (1000, 2000),
                remote_ports: (53, 53),
                ..policy("10.2.0.0/24", "10.1.3.0/24", out_3)
            },
        ])
        .unwrap();
    let reader = TableReader::open(&file.0).unwrap();
    let mut sas = TableSas::new(&reader);
    let mut decapsulator = Decapsulator::default();
    let mut got = |peer: &mut OutboundSa, packet: Vec<u8>| {
        receive(&mut sas, &mut decapsulator, peer, &packet)
    };

    assert_eq!(
        got(&mut peer_1, peer_packet(INSIDE, OUR_HOST, PORTS)),
        Verdict::Forward
    );
    // A source the Child SA does not cover: spoofed, or another Child SA's.
    assert_eq!(
        got(&mut peer_1, peer_packet([10, 9, 9, 9], OUR_HOST, PORTS)),
        MISMATCH
    );
    assert_eq!(
        got(&mut peer_1, peer_packet([10, 1, 1, 5], OUR_HOST, PORTS)),
        MISMATCH
    );
    assert_eq!(
        got(&mut peer_2, peer_packet([10, 1, 1, 5], OUR_HOST, PORTS)),
        Verdict::Forward
    );
    // A destination outside our side of the selectors.
    assert_eq!(
        got(&mut peer_1, peer_packet(INSIDE, [10, 3, 0, 1], PORTS)),
        MISMATCH
    );
    // Ports are checked the other way round: their source port is our policy's remote port.
    let from_53 = |to: u16| peer_packet([10, 1, 3, 9], OUR_HOST, (53, to));
    assert_eq!(got(&mut peer_3, from_53(1500)), Verdict::Forward);
    assert_eq!(got(&mut peer_3, from_53(999)), MISMATCH);
    assert_eq!(
        got(
            &mut peer_3,
            peer_packet([10, 1, 3, 9], OUR_HOST, (1500, 53))
        ),
        MISMATCH
    );
    let mut tcp = from_53(1500);
    tcp[9] = ip::proto::TCP;
    tcp[10..12].fill(0);
    ip::set_ipv4_checksum(&mut tcp[..20]);
    assert_eq!(got(&mut peer_3, tcp), MISMATCH);

    // Counted on the SA: three refused on the first Child SA's inbound SA.
    sas.end_batch();
    let status = writer.status(in_1).unwrap();
    assert_eq!(status.drops, 3, "{status:?}");
    assert_eq!(decapsulator.unattributed.total(), 0);
}

/// During make-before-break the newer Child SA's policies come first with the same
/// selectors; the older inbound SA must still be let through (not just the first match).
#[test]
fn the_older_sa_still_receives_during_make_before_break() {
    let file = TempTable::new("mbb");
    let mut writer = TableWriter::create(&file.0, 16).unwrap();
    let (old_out, _, mut old_peer) = install_child(&mut writer, 0x31, 0x41, Mode::Tunnel, true);
    let (new_out, _, mut new_peer) = install_child(&mut writer, 0x32, 0x42, Mode::Tunnel, true);
    writer
        .set_policies(&[
            policy("10.2.0.0/24", "10.1.0.0/24", new_out),
            policy("10.2.0.0/24", "10.1.0.0/24", old_out),
        ])
        .unwrap();
    let reader = TableReader::open(&file.0).unwrap();
    let mut sas = TableSas::new(&reader);
    let mut decapsulator = Decapsulator::default();
    for peer in [&mut old_peer, &mut new_peer] {
        let inside = peer_packet(INSIDE, OUR_HOST, PORTS);
        let outside = peer_packet([10, 9, 9, 9], OUR_HOST, PORTS);
        assert_eq!(
            receive(&mut sas, &mut decapsulator, peer, &inside),
            Verdict::Forward
        );
        assert_eq!(
            receive(&mut sas, &mut decapsulator, peer, &outside),
            MISMATCH
        );
    }
    // The old Child SA's policies go (the rekey is done): its inbound SA, still installed
    // until deleted, no longer has selectors to let anything in.
    writer
        .set_policies(&[policy("10.2.0.0/24", "10.1.0.0/24", new_out)])
        .unwrap();
    sas.begin_batch();
    let inside = peer_packet(INSIDE, OUR_HOST, PORTS);
    assert_eq!(
        receive(&mut sas, &mut decapsulator, &mut old_peer, &inside),
        MISMATCH
    );
    assert_eq!(
        receive(&mut sas, &mut decapsulator, &mut new_peer, &inside),
        Verdict::Forward
    );
}

/// A Child SA installed while the worker is mid-batch (its SPD copy not yet refreshed): the
/// first packet on it is checked against the table's current policies, not refused.
#[test]
fn policies_newer_than_the_workers_copy_are_used() {
    let file = TempTable::new("fresh");
    let mut writer = TableWriter::create(&file.0, 16).unwrap();
    let reader = TableReader::open(&file.0).unwrap();
    let mut sas = TableSas::new(&reader);
    sas.begin_batch();
    let (out, _, mut peer) = install_child(&mut writer, 0x51, 0x61, Mode::Tunnel, true);
    writer
        .set_policies(&[policy("10.2.0.0/24", "10.1.0.0/24", out)])
        .unwrap();
    let mut decapsulator = Decapsulator::default();
    let inside = peer_packet(INSIDE, OUR_HOST, PORTS);
    assert_eq!(
        receive(&mut sas, &mut decapsulator, &mut peer, &inside),
        Verdict::Forward
    );
}

/// Transport mode: the restored packet carries the outer addresses, checked the same way
/// against the Child SA's (host-to-host) selectors.
#[test]
fn transport_mode_is_checked_with_the_outer_addresses() {
    let file = TempTable::new("transport");
    let mut writer = TableWriter::create(&file.0, 16).unwrap();
    let (out, in_slot, mut peer) = install_child(&mut writer, 0x71, 0x81, Mode::Transport, true);
    let (Endpoints4 { local, remote }, peer_sends) = endpoints4();
    writer
        .set_policies(&[Policy {
            protocol: Some(ip::proto::UDP),
            ..policy(&format!("{local}/32"), &format!("{remote}/32"), out)
        }])
        .unwrap();
    let reader = TableReader::open(&file.0).unwrap();
    let mut sas = TableSas::new(&reader);
    let mut decapsulator = Decapsulator::default();
    assert_eq!(
        receive(&mut sas, &mut decapsulator, &mut peer, &peer_sends),
        Verdict::Forward
    );
    // The same endpoints, but a protocol the selectors do not allow.
    let mut tcp = peer_sends.clone();
    tcp[9] = ip::proto::TCP;
    tcp[10..12].fill(0);
    ip::set_ipv4_checksum(&mut tcp[..20]);
    assert_eq!(
        receive(&mut sas, &mut decapsulator, &mut peer, &tcp),
        MISMATCH
    );
    sas.end_batch();
    assert_eq!(writer.status(in_slot).unwrap().drops, 1);
}

struct Endpoints4 {
    local: Ipv4Addr,
    remote: Ipv4Addr,
}

/// Our endpoints and a UDP packet from the peer's endpoint to ours.
fn endpoints4() -> (Endpoints4, Vec<u8>) {
    let xipsec_dataplane::esp::Endpoints::V4 { local, remote } = V4_ENDPOINTS else {
        unreachable!("V4_ENDPOINTS is IPv4")
    };
    let packet = packet_for(mirrored(V4_ENDPOINTS), 120);
    assert_eq!(
        IpAddr::from(<[u8; 4]>::try_from(&packet[12..16]).unwrap()),
        IpAddr::V4(remote)
    );
    (Endpoints4 { local, remote }, packet)
}

/// No pair, no check: a manual inbound SA (the daemon's `[[manual_sa]]`) and a fixed pair
/// ([`StaticSas`]) have no traffic selectors, and let every authentic packet through.
#[test]
fn sas_without_a_pair_are_not_checked() {
    let file = TempTable::new("manual");
    let mut writer = TableWriter::create(&file.0, 16).unwrap();
    let (out, _, mut peer) = install_child(&mut writer, 0x91, 0xA1, Mode::Tunnel, false);
    writer
        .set_policies(&[policy("10.2.0.0/24", "10.1.0.0/24", out)])
        .unwrap();
    let reader = TableReader::open(&file.0).unwrap();
    let mut sas = TableSas::new(&reader);
    let mut decapsulator = Decapsulator::default();
    let anywhere = peer_packet([10, 9, 9, 9], [172, 16, 0, 1], PORTS);
    assert_eq!(
        receive(&mut sas, &mut decapsulator, &mut peer, &anywhere),
        Verdict::Forward
    );

    let params = SaParams::tunnel(0xB1, CipherSuite::Aes128Gcm16, V4_ENDPOINTS);
    let (outbound, inbound) = sa_pair(params);
    let (mut peer, _) = sa_pair(SaParams {
        endpoints: mirrored(V4_ENDPOINTS),
        ..params
    });
    let mut fixed = StaticSas { outbound, inbound };
    assert_eq!(
        receive(&mut fixed, &mut decapsulator, &mut peer, &anywhere),
        Verdict::Forward
    );
}

#[test]
fn a_child_sa_newer_than_the_indexers_index_is_checked_against_its_own_policies() {
    let file = TempTable::new("indexer-behind");
    let sites = SHARED_FROM as u32;
    let mut writer = TableWriter::create(&file.0, 2 * sites + 8).unwrap();
    // A hub's worth of other Child SAs, so that workers take the indexer's index.
    let mut policies: Vec<Policy> = (0..sites)
        .map(|i| {
            let params = SaParams::tunnel(0x10_0000 + i, CipherSuite::Aes128Gcm16, V4_ENDPOINTS);
            let slot = writer
                .install(&record(Direction::Outbound, params, None))
                .unwrap();
            let site = Ipv4Addr::from(0x1000_0000 + (i << 8));
            policy("10.2.0.0/24", &format!("{site}/24"), slot)
        })
        .collect();
    writer.set_policies(&policies).unwrap();
    let reader = TableReader::open(&file.0).unwrap();
    let indexer = SpdIndexer::start(&file.0).unwrap();
    let shared = indexer.shared();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while shared.version() != Some(reader.spd_version()) {
        assert!(std::time::Instant::now() < deadline, "never indexed");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let mut sas = TableSas::new(&reader).with_shared_spd(shared);
    // The indexer stops: the index stays behind the table from here on.
    drop(indexer);
    let (out, _, mut peer) = install_child(&mut writer, 0x31, 0x41, Mode::Tunnel, true);
    policies.insert(0, policy("10.2.0.0/24", "10.1.0.0/24", out));
    writer.set_policies(&policies).unwrap();
    sas.begin_batch();
    let mut decapsulator = Decapsulator::default();
    // Inside its selectors: in, though the index does not know the Child SA yet.
    assert_eq!(
        receive(
            &mut sas,
            &mut decapsulator,
            &mut peer,
            &peer_packet(INSIDE, OUR_HOST, PORTS)
        ),
        Verdict::Forward
    );
    // Outside them: refused all the same.
    assert_eq!(
        receive(
            &mut sas,
            &mut decapsulator,
            &mut peer,
            &peer_packet([16, 0, 0, 9], OUR_HOST, PORTS)
        ),
        MISMATCH
    );
}

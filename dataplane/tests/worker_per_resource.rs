//! Per-resource Child SAs (RFC 9611) in the AF_XDP worker's pipeline, without the kernel: a
//! table written as the control plane would, two workers reading it, and every ESP packet
//! they produce opened with the peer's SA of the SPI it carries (a key of its own per SA), so
//! that "which SA did it take" is answered by the packet, not by the code under test.
//!
//! The rule under test: an SA whose record says `ANY_WORKER` belongs to its slot modulo the
//! worker count; any other `owner_worker` pins it to that worker (modulo the count). Among
//! the policies with exactly the selectors of the first match, a worker sends through the SA
//! pinned to it; failing that through the one pinned to none (the fallback) when the first
//! match is pinned to another worker; failing that through the first match, handed to its
//! owner.
//!
//! Plaintext is `common::ipv4_udp`: 10.1.0.5:5000 -> 10.2.0.7:6000, UDP.

mod common;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use common::{ipv4_udp, mirrored, V4_ENDPOINTS};
use xipsec_dataplane::esp::{
    ip, CipherSuite, Decapsulator, InboundSa, OutboundSa, PacketBuf, SaParams, Verdict,
};
use xipsec_dataplane::fib::{NextHop, NextHops};
use xipsec_dataplane::table::{
    AddressRange, Direction, Keymat, Lifetimes, Policy, SaRecord, SlotId, TableReader, TableWriter,
    ANY_PORT, ANY_WORKER,
};
use xipsec_dataplane::worker::{
    owner_of, Handoff, HandoffConfig, Outcome, Pipeline, SaCache, TableSas, WorkerCounters,
};

const ANY: u16 = ANY_WORKER;
const WORKERS: usize = 2;
const LAN: u32 = 1;
const WAN: u32 = 2;
/// Where a frame starts in its buffer: an AF_XDP frame's headroom.
const HEADROOM: usize = 256;
const ETHERNET: usize = 14;
const SUITE: CipherSuite = CipherSuite::Aes128Gcm16;

/// A table file of the test's own, removed on drop.
struct TempTable(PathBuf);

impl TempTable {
    fn new(name: &str) -> Self {
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        Self(dir.join(format!("xipsec-per-resource-{}-{name}", std::process::id())))
    }
}

impl Drop for TempTable {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Every destination one hop away through the WAN port.
#[derive(Clone, Copy)]
struct OneHop;

impl NextHops for OneHop {
    fn lookup(&mut self, _destination: IpAddr) -> NextHop {
        NextHop::Resolved {
            ifindex: WAN,
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            mtu: 1500,
        }
    }
}

/// A key of each SA's own, so that only the peer's SA of the same SPI opens its packets.
fn keymat(spi: u32) -> Vec<u8> {
    let seed = spi.to_be_bytes();
    (0..SUITE.keymat_len())
        .map(|i| seed[i % 4] ^ (i as u8).wrapping_mul(29))
        .collect()
}

fn params(spi: u32) -> SaParams {
    SaParams::tunnel(spi, SUITE, V4_ENDPOINTS)
}

fn record(direction: Direction, spi: u32, owner_worker: u16) -> SaRecord {
    SaRecord {
        direction,
        params: params(spi),
        keymat: Keymat::new(&keymat(spi)).unwrap(),
        lifetimes: Lifetimes::default(),
        owner_worker,
        installed_at: 1_800_000_000,
        pair: None,
    }
}

/// Installs an outbound SA and checks it landed in `slot` (the writer hands out the lowest
/// free slot): the tests put pinned SAs where the slot rule would name the other worker.
fn install_out(writer: &mut TableWriter, spi: u32, owner_worker: u16, slot: u32) -> SlotId {
    let installed = writer
        .install(&record(Direction::Outbound, spi, owner_worker))
        .unwrap();
    assert_eq!(installed, SlotId(slot), "test setup: slot of SPI {spi:#x}");
    installed
}

fn prefix(text: &str) -> AddressRange {
    let (address, len) = text.split_once('/').unwrap();
    AddressRange::prefix(address.parse().unwrap(), len.parse().unwrap()).unwrap()
}

/// 10.1.0.0/24 -> 10.2.0.0/24, any protocol and port: it covers the test's plaintext.
fn policy(outbound: SlotId) -> Policy {
    Policy {
        local: prefix("10.1.0.0/24"),
        remote: prefix("10.2.0.0/24"),
        protocol: None,
        local_ports: ANY_PORT,
        remote_ports: ANY_PORT,
        outbound,
    }
}

/// The peer's view of everything it received: the next sequence number it expects on each
/// SPI (every SA starts at 1 and counts each packet it sends).
#[derive(Default)]
struct Peer {
    next_sequence: HashMap<u32, u32>,
}

impl Peer {
    /// Opens the ESP packet of an Ethernet `frame` with the peer's SA for the SPI it carries,
    /// checks it holds `plaintext` and the sequence number the SA must have used, and
    /// returns the SPI.
    fn open(&mut self, frame: &[u8], plaintext: &[u8]) -> u32 {
        let packet = &frame[ETHERNET..];
        assert_eq!(packet[0] >> 4, 4, "an IPv4 outer header");
        assert_eq!(packet[9], ip::proto::ESP, "raw ESP");
        let spi = ip::read_u32(packet, 20);
        let sequence = ip::read_u32(packet, 24);
        let expected = self.next_sequence.entry(spi).or_insert(1);
        assert_eq!(sequence, *expected, "sequence number on SPI {spi:#x}");
        *expected += 1;
        let mut sa = InboundSa::new(
            SaParams {
                endpoints: mirrored(V4_ENDPOINTS),
                ..params(spi)
            },
            &keymat(spi),
        )
        .unwrap();
        sa.resume_after(u64::from(sequence) - 1);
        let mut buffer = packet.to_vec();
        let len = buffer.len();
        let mut buf = PacketBuf::new(&mut buffer, 0, len).unwrap();
        assert_eq!(
            Decapsulator::default().decap(&mut sa, &mut buf),
            Verdict::Forward,
            "the peer's SA {spi:#x} opens it"
        );
        assert_eq!(buf.data(), plaintext);
        spi
    }
}

/// A received frame: Ethernet and `packet`, at the kernel's headroom, with room behind.
fn frame_buffer(packet: &[u8]) -> Vec<u8> {
    let mut buffer = vec![0u8; HEADROOM + ETHERNET + packet.len() + 256];
    let frame = &mut buffer[HEADROOM..HEADROOM + ETHERNET + packet.len()];
    frame[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 3]);
    frame[12..14].copy_from_slice(&[0x08, 0x00]);
    frame[ETHERNET..].copy_from_slice(packet);
    buffer
}

type Worker<'t> = Pipeline<TableSas<'t>, OneHop>;

fn workers<'t>(reader: &'t TableReader, handoff: &Arc<Handoff>) -> Vec<Worker<'t>> {
    (0..WORKERS)
        .map(|worker| {
            Pipeline::new(
                TableSas::for_worker(reader, worker, WORKERS),
                OneHop,
                &[LAN, WAN],
                Some((Arc::clone(handoff), worker)),
            )
            .unwrap()
        })
        .collect()
}

/// Where one plaintext packet received by one worker went.
#[derive(Debug, PartialEq, Eq)]
enum Sent {
    /// Encapsulated there, with this SPI.
    Here(u32),
    /// Handed to this worker, which encapsulated it with this SPI.
    HandedTo(usize, u32),
}

/// Two workers over one table and hand-off, and the peer that receives what they send.
struct Gateway<'t> {
    workers: Vec<Worker<'t>>,
    handoff: Arc<Handoff>,
    peer: Peer,
}

impl<'t> Gateway<'t> {
    fn new(reader: &'t TableReader) -> Self {
        let handoff = Handoff::new(HandoffConfig::new(WORKERS)).unwrap();
        Self {
            workers: workers(reader, &handoff),
            handoff,
            peer: Peer::default(),
        }
    }

    /// `worker` receives `packet` (one batch); a hand-off is processed by its receiver
    /// (another batch). What left is opened by the peer.
    fn send(&mut self, worker: usize, packet: &[u8]) -> Sent {
        send(
            &mut self.workers,
            &self.handoff,
            worker,
            packet,
            &mut self.peer,
        )
    }

    fn counters(&self) -> Vec<WorkerCounters> {
        self.workers.iter().map(|w| *w.counters()).collect()
    }
}

fn send(
    workers: &mut [Worker<'_>],
    handoff: &Handoff,
    worker: usize,
    packet: &[u8],
    peer: &mut Peer,
) -> Sent {
    let mut buffer = frame_buffer(packet);
    let now = Instant::now();
    let pipeline = &mut workers[worker];
    pipeline.begin_batch();
    let outcome = pipeline.process_frame(&mut buffer, HEADROOM, ETHERNET + packet.len(), now);
    pipeline.end_batch();
    match outcome {
        Outcome::Transmit {
            port: 1,
            start,
            len,
        } => Sent::Here(peer.open(&buffer[start..start + len], packet)),
        Outcome::HandedOff => {
            let (owner, mut handed) = (0..WORKERS)
                .find_map(|owner| Some((owner, handoff.receive(owner)?)))
                .expect("a hand-off in some inbox");
            assert_ne!(owner, worker, "handed to itself");
            let pipeline = &mut workers[owner];
            pipeline.begin_batch();
            let outcome = pipeline.process_handed_over(&mut handed);
            pipeline.end_batch();
            let Outcome::Transmit {
                port: 1,
                start,
                len,
            } = outcome
            else {
                panic!("worker {owner} did not send the handed-over packet: {outcome:?}");
            };
            let spi = peer.open(handed.bytes(start, len).unwrap(), packet);
            handoff.recycle(handed);
            Sent::HandedTo(owner, spi)
        }
        Outcome::Dropped | Outcome::Transmit { .. } => panic!(
            "worker {worker}: {outcome:?}, counters {:?}",
            workers[worker].counters()
        ),
    }
}

#[test]
fn owner_of_follows_the_record_and_falls_back_to_the_slot() {
    // ANY: the slot decides; anything else: the pinned worker, wrapping.
    assert_eq!(owner_of(SlotId(7), ANY, 2), 1);
    assert_eq!(owner_of(SlotId(8), ANY, 2), 0);
    assert_eq!(owner_of(SlotId(8), ANY, 3), 2);
    assert_eq!(owner_of(SlotId(7), 0, 2), 0);
    assert_eq!(owner_of(SlotId(8), 1, 2), 1);
    assert_eq!(owner_of(SlotId(8), 2, 2), 0);
    assert_eq!(owner_of(SlotId(8), 5, 2), 1);
    assert_eq!(owner_of(SlotId(0), 4, 3), 1);
    // The largest pin that is not ANY is a worker like any other.
    assert_eq!(owner_of(SlotId(0), ANY - 1, 2), 0);
    assert_eq!(owner_of(SlotId(0), ANY - 1, 4), 2);
    // No workers counts as one.
    assert_eq!(owner_of(SlotId(9), 3, 0), 0);
    assert_eq!(owner_of(SlotId(9), ANY, 0), 0);
}

#[test]
fn each_worker_sends_through_its_own_per_resource_sa_without_a_hand_off() {
    let file = TempTable::new("own");
    let mut writer = TableWriter::create(&file.0, 16).unwrap();
    // The pinned SAs sit where the slot rule would name the other worker.
    let pinned1 = install_out(&mut writer, 0x1001, 1, 0);
    let pinned0 = install_out(&mut writer, 0x1000, 0, 1);
    let fallback = install_out(&mut writer, 0x10FF, ANY, 2);
    let reader = TableReader::open(&file.0).unwrap();
    let mut gw = Gateway::new(&reader);
    let packet = ipv4_udp(200, 0, true);
    // Whatever the order of the three identical policies.
    let orders = [
        [fallback, pinned0, pinned1],
        [fallback, pinned1, pinned0],
        [pinned0, fallback, pinned1],
        [pinned0, pinned1, fallback],
        [pinned1, fallback, pinned0],
        [pinned1, pinned0, fallback],
    ];
    for order in orders {
        writer.set_policies(&order.map(policy)).expect("policies");
        for _ in 0..3 {
            assert_eq!(gw.send(0, &packet), Sent::Here(0x1000));
            assert_eq!(gw.send(1, &packet), Sent::Here(0x1001));
        }
    }
    for (worker, counters) in gw.counters().iter().enumerate() {
        assert_eq!(counters.handed_off, 0, "worker {worker}");
        assert_eq!(counters.handoff_received, 0, "worker {worker}");
        assert_eq!(counters.encapsulated, 18, "worker {worker}");
    }
    // The fallback carried nothing; each per-resource SA 18 packets, sequence 1 to 18.
    assert_eq!(gw.peer.next_sequence.get(&0x10FF), None);
    assert_eq!(gw.peer.next_sequence[&0x1000], 19);
    assert_eq!(gw.peer.next_sequence[&0x1001], 19);
    // And each reported into its own slot.
    assert_eq!(writer.status(pinned0).unwrap().packets, 18);
    assert_eq!(writer.status(pinned1).unwrap().packets, 18);
    assert_eq!(writer.status(fallback).unwrap().packets, 0);
}

#[test]
fn with_only_the_fallback_one_worker_hands_over_to_the_other() {
    let file = TempTable::new("fallback");
    let mut writer = TableWriter::create(&file.0, 16).unwrap();
    // Slot 1: worker 1's by the slot rule.
    install_out(&mut writer, 0x2000, ANY, 0);
    let fallback = install_out(&mut writer, 0x20FF, ANY, 1);
    writer.set_policies(&[policy(fallback)]).unwrap();
    let reader = TableReader::open(&file.0).unwrap();
    let mut gw = Gateway::new(&reader);
    let packet = ipv4_udp(120, 0, true);
    assert_eq!(gw.send(0, &packet), Sent::HandedTo(1, 0x20FF));
    assert_eq!(gw.send(1, &packet), Sent::Here(0x20FF));
    let counters = gw.counters();
    assert_eq!(counters[0].handed_off, 1);
    assert_eq!(counters[0].encapsulated, 0);
    assert_eq!(counters[1].handoff_received, 1);
    assert_eq!(counters[1].encapsulated, 2);
    // One owner, one counter: the two packets are 1 and 2 on the one SA.
    assert_eq!(gw.peer.next_sequence[&0x20FF], 3);
}

#[test]
fn a_worker_without_a_per_resource_sa_uses_the_fallback() {
    let file = TempTable::new("missing");
    let mut writer = TableWriter::create(&file.0, 16).unwrap();
    // The fallback in slot 0 (worker 0's), worker 1's SA in slot 2 (worker 0's by slot), and
    // a second fallback in slot 1 (worker 1's) for the hand-over case.
    let fallback0 = install_out(&mut writer, 0x3000, ANY, 0);
    let fallback1 = install_out(&mut writer, 0x3001, ANY, 1);
    let pinned1 = install_out(&mut writer, 0x3011, 1, 2);
    let reader = TableReader::open(&file.0).unwrap();
    let mut gw = Gateway::new(&reader);
    let packet = ipv4_udp(120, 0, true);
    // Before and after the per-resource SA in the SPD: worker 1's SA first (newest first, as
    // the control plane writes them) must not draw worker 0's traffic.
    for order in [[fallback0, pinned1], [pinned1, fallback0]] {
        writer.set_policies(&order.map(policy)).unwrap();
        assert_eq!(gw.send(0, &packet), Sent::Here(0x3000));
        assert_eq!(gw.send(1, &packet), Sent::Here(0x3011));
    }
    assert_eq!(gw.counters()[0].handed_off, 0);
    assert_eq!(gw.counters()[1].handed_off, 0);
    // The fallback another worker owns: worker 0 hands over, naming the fallback's slot, so
    // worker 1 encapsulates with the fallback and not with its own SA.
    for order in [[fallback1, pinned1], [pinned1, fallback1]] {
        writer.set_policies(&order.map(policy)).unwrap();
        assert_eq!(gw.send(0, &packet), Sent::HandedTo(1, 0x3001));
        assert_eq!(gw.send(1, &packet), Sent::Here(0x3011));
    }
    // Only per-resource SAs of another worker: the first match, handed to its owner.
    writer.set_policies(&[policy(pinned1)]).unwrap();
    assert_eq!(gw.send(0, &packet), Sent::HandedTo(1, 0x3011));
}

#[test]
fn per_resource_sas_with_other_selectors_are_never_taken() {
    let file = TempTable::new("selectors");
    let mut writer = TableWriter::create(&file.0, 16).unwrap();
    let pinned1 = install_out(&mut writer, 0x4001, 1, 0);
    let pinned0 = install_out(&mut writer, 0x4000, 0, 1);
    let reader = TableReader::open(&file.0).unwrap();
    let mut gw = Gateway::new(&reader);
    let packet = ipv4_udp(120, 0, true);
    let base = policy(pinned1);
    // Each variant differs from the first match in one selector and still matches the packet.
    let variants = [
        Policy {
            remote: prefix("10.2.0.0/25"),
            ..base
        },
        Policy {
            remote: prefix("10.0.0.0/8"),
            ..base
        },
        Policy {
            local: prefix("10.1.0.5/32"),
            ..base
        },
        Policy {
            protocol: Some(ip::proto::UDP),
            ..base
        },
        Policy {
            local_ports: (5000, 5000),
            ..base
        },
        Policy {
            remote_ports: (6000, 6010),
            ..base
        },
    ];
    for variant in variants {
        let variant = Policy {
            outbound: pinned0,
            ..variant
        };
        assert!(
            variant.matches(&xipsec_dataplane::worker::flow_of(&packet).unwrap()),
            "test setup: {variant:?}"
        );
        writer.set_policies(&[base, variant]).unwrap();
        assert_eq!(
            gw.send(0, &packet),
            Sent::HandedTo(1, 0x4001),
            "{variant:?}"
        );
        // The other way round: worker 0's own SA is the first match.
        writer.set_policies(&[variant, base]).unwrap();
        assert_eq!(
            gw.send(1, &packet),
            Sent::HandedTo(0, 0x4000),
            "{variant:?}"
        );
    }
}

#[test]
fn pins_beyond_the_worker_count_wrap() {
    let file = TempTable::new("wrap");
    let mut writer = TableWriter::create(&file.0, 16).unwrap();
    // 2 -> worker 0 and 5 -> worker 1 of 2, in slots the slot rule gives to the other one.
    let pinned5 = install_out(&mut writer, 0x5005, 5, 0);
    let pinned2 = install_out(&mut writer, 0x5002, 2, 1);
    let fallback = install_out(&mut writer, 0x50FF, ANY, 2);
    writer
        .set_policies(&[policy(fallback), policy(pinned5), policy(pinned2)])
        .unwrap();
    let reader = TableReader::open(&file.0).unwrap();
    let mut gw = Gateway::new(&reader);
    let packet = ipv4_udp(120, 0, true);
    assert_eq!(gw.send(0, &packet), Sent::Here(0x5002));
    assert_eq!(gw.send(1, &packet), Sent::Here(0x5005));
    // The caches agree: each refuses the SA pinned to the other.
    let mut caches: Vec<_> = (0..WORKERS)
        .map(|worker| SaCache::for_worker(&reader, worker, WORKERS))
        .collect();
    assert!(caches[0].outbound_sa(pinned5).is_none());
    assert!(caches[1].outbound_sa(pinned2).is_none());
    assert_eq!(caches[0].owner_worker(pinned5), Some(5));
    assert_eq!(caches[0].owner_worker(fallback), Some(ANY));
}

#[test]
fn an_inbound_sa_pinned_to_a_worker_is_decrypted_there() {
    let file = TempTable::new("inbound");
    let mut writer = TableWriter::create(&file.0, 16).unwrap();
    // Slot 0 (worker 0's by the slot rule), pinned to worker 1.
    let inbound = writer
        .install(&record(Direction::Inbound, 0x6001, 1))
        .unwrap();
    assert_eq!(inbound, SlotId(0));
    let reader = TableReader::open(&file.0).unwrap();
    let mut gw = Gateway::new(&reader);
    // The peer's outbound SA towards that inbound SA.
    let mut peer_out = OutboundSa::new(
        SaParams {
            endpoints: mirrored(V4_ENDPOINTS),
            ..params(0x6001)
        },
        &keymat(0x6001),
    )
    .unwrap();
    let plaintext = ipv4_udp(100, 0, true);
    for receiver in [0, 1] {
        let wire = common::encap(&mut peer_out, &plaintext);
        let mut buffer = frame_buffer(&wire);
        let pipeline = &mut gw.workers[receiver];
        pipeline.begin_batch();
        let outcome =
            pipeline.process_frame(&mut buffer, HEADROOM, ETHERNET + wire.len(), Instant::now());
        pipeline.end_batch();
        if receiver == 0 {
            assert_eq!(outcome, Outcome::HandedOff);
            let mut handed = gw.handoff.receive(1).expect("in worker 1's inbox");
            assert!(gw.handoff.receive(0).is_none());
            let outcome = gw.workers[1].process_handed_over(&mut handed);
            let Outcome::Transmit { start, len, .. } = outcome else {
                panic!("{outcome:?}");
            };
            assert_eq!(
                &handed.bytes(start, len).unwrap()[ETHERNET..],
                &plaintext[..]
            );
            gw.handoff.recycle(handed);
        } else {
            let Outcome::Transmit { start, len, .. } = outcome else {
                panic!("{outcome:?}");
            };
            assert_eq!(&buffer[start + ETHERNET..start + len], &plaintext[..]);
        }
    }
    let counters = gw.counters();
    assert_eq!(counters[0].decapsulated, 0);
    assert_eq!(counters[0].handed_off, 1);
    assert_eq!(counters[1].decapsulated, 2);
    assert_eq!(counters[1].handed_off, 0);
}

#[test]
fn legacy_records_with_owner_zero_belong_to_worker_zero() {
    // A table written before `owner_worker` had a meaning: 0 everywhere.
    let file = TempTable::new("legacy");
    let mut writer = TableWriter::create(&file.0, 16).unwrap();
    install_out(&mut writer, 0x7000, 0, 0);
    let odd = install_out(&mut writer, 0x7001, 0, 1);
    writer.set_policies(&[policy(odd)]).unwrap();
    let reader = TableReader::open(&file.0).unwrap();
    let mut gw = Gateway::new(&reader);
    let packet = ipv4_udp(120, 0, true);
    assert_eq!(gw.send(0, &packet), Sent::Here(0x7001));
    assert_eq!(gw.send(1, &packet), Sent::HandedTo(0, 0x7001));
    let mut cache = SaCache::for_worker(&reader, 1, WORKERS);
    assert!(cache.outbound_sa(odd).is_none());
}

#[test]
fn a_reused_slot_gets_the_new_records_owner_and_the_old_owner_stays_out_of_it() {
    let file = TempTable::new("reuse");
    let mut writer = TableWriter::create(&file.0, 16).unwrap();
    let slot = install_out(&mut writer, 0x8000, 0, 0);
    writer.set_policies(&[policy(slot)]).unwrap();
    let reader = TableReader::open(&file.0).unwrap();
    let mut gw = Gateway::new(&reader);
    let packet = ipv4_udp(120, 0, true);
    assert_eq!(gw.send(0, &packet), Sent::Here(0x8000));

    // Worker 0 uses the SA in a batch during which the control plane deletes it and
    // installs another, pinned to worker 1, in the same slot.
    let mut buffer = frame_buffer(&packet);
    gw.workers[0].begin_batch();
    let outcome = gw.workers[0].process_frame(
        &mut buffer,
        HEADROOM,
        ETHERNET + packet.len(),
        Instant::now(),
    );
    assert!(matches!(outcome, Outcome::Transmit { .. }), "{outcome:?}");
    writer.set_policies(&[]).unwrap();
    writer.delete(slot).unwrap();
    assert_eq!(install_out(&mut writer, 0x8001, 1, 0), slot);
    writer.set_policies(&[policy(slot)]).unwrap();
    gw.workers[0].end_batch();
    // Nothing of the old SA's went into the new SA's worker area.
    let status = writer.status(slot).unwrap();
    assert_eq!((status.packets, status.bytes, status.flags), (0, 0, 0));
    assert_eq!(status.next_sequence, 0);

    // The new SA is worker 1's: worker 0 hands over, worker 1 starts it at 1.
    gw.peer = Peer::default();
    assert_eq!(gw.send(0, &packet), Sent::HandedTo(1, 0x8001));
    assert_eq!(gw.send(1, &packet), Sent::Here(0x8001));
    assert_eq!(writer.status(slot).unwrap().packets, 2);
    // Reused again, this time without the SPD changing around it (the control plane never
    // does that): the workers' copies still say worker 1, the new record says worker 0.
    // Whoever the copies send the packets to, no worker but 0 may use the new SA; until the
    // SPD moves they are dropped.
    writer.delete(slot).unwrap();
    assert_eq!(install_out(&mut writer, 0x8002, 0, 0), slot);
    let before = gw.counters();
    for receiver in [0, 1] {
        let mut buffer = frame_buffer(&packet);
        gw.workers[receiver].begin_batch();
        let outcome = gw.workers[receiver].process_frame(
            &mut buffer,
            HEADROOM,
            ETHERNET + packet.len(),
            Instant::now(),
        );
        gw.workers[receiver].end_batch();
        if outcome == Outcome::HandedOff {
            let mut handed = gw.handoff.receive(1).expect("in worker 1's inbox");
            let outcome = gw.workers[1].process_handed_over(&mut handed);
            assert_eq!(outcome, Outcome::Dropped);
            gw.handoff.recycle(handed);
        } else {
            assert_eq!(outcome, Outcome::Dropped);
        }
    }
    let after = gw.counters();
    assert_eq!(after[1].no_sa, before[1].no_sa + 2);
    assert_eq!(after[1].encapsulated, before[1].encapsulated);
    let status = writer.status(slot).unwrap();
    assert_eq!((status.packets, status.next_sequence), (0, 0));
    // The SPD moves: the copies follow the record.
    writer.set_policies(&[policy(slot)]).unwrap();
    assert_eq!(gw.send(0, &packet), Sent::Here(0x8002));
    assert_eq!(gw.send(1, &packet), Sent::HandedTo(0, 0x8002));
}

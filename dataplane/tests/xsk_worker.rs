//! The per-core AF_XDP worker: its hand-off pool, its pipeline on plain buffers (no kernel),
//! and two workers in network namespaces — lan host == gateway (two queues on each veth, one
//! worker per queue, the XDP classifier on both ports) == wan peer. The hosts send with
//! AF_XDP sockets of their own, so each frame arrives on the queue the test chose: both
//! workers get traffic, and each hands the packets of the other's SAs over. What leaves is
//! checked against the test's own view: ESP from the gateway is decrypted with the peer's SA,
//! ESP the test built with the peer's SA arrives in the lan namespace as plain UDP.

mod netns;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use netns::gateways::{keymat, sa_params, Transport};
use netns::{classify_wan_frame, mac_of, unique_prefix, Capture, Netns, WanFrame};
use proptest::prelude::*;
use xipsec_dataplane::esp::{
    ip, Decapsulator, Endpoints, InboundSa, OutboundSa, PacketBuf, SaParams, Verdict,
};
use xipsec_dataplane::fib::{FibMirror, NextHop, NextHops};
use xipsec_dataplane::io::xsk::{Descriptor, XskConfig, XskSocket};
use xipsec_dataplane::table::{
    AddressRange, Direction, Keymat, Lifetimes, Policy, SaRecord, SlotId, TableReader, TableWriter,
    ANY_PORT, ANY_WORKER,
};
use xipsec_dataplane::worker::{
    merge_stats, Handoff, HandoffConfig, HandoffRefused, HandoffWork, Outcome, Pipeline, StaticSas,
    TableSas, WorkerCounters, WorkerPort, WorkerStats, XskWorker, XskWorkerConfig,
};
use xipsec_ebpf::{AttachMode, Classifier, ClassifierConfig, IpNet};

const SPI_OUT: u32 = 0x0000_a001;
const SPI_IN: u32 = 0x0000_b002;
const SPI_UNRESOLVED: u32 = 0x0000_a003;
const SPI_UNREACHABLE: u32 = 0x0000_a004;

const GW_WAN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// A peer whose MAC address the test's next hops do not know.
const PEER_UNRESOLVED: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 3);
/// A peer the test's next hops have no route to.
const PEER_UNREACHABLE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 9);

const HOST: [u8; 4] = [10, 1, 0, 2];
const HOST_PORT: u16 = 7000;
/// Behind the peer; and behind the two peers that cannot be reached; and covered by no SA.
const REMOTE: [u8; 4] = [10, 2, 0, 2];
const REMOTE_UNRESOLVED: [u8; 4] = [10, 3, 0, 5];
const REMOTE_UNREACHABLE: [u8; 4] = [10, 4, 0, 5];
const REMOTE_NO_SA: [u8; 4] = [10, 5, 0, 5];
/// A host of our side that the test's routes reach through the WAN interface: a packet
/// decrypted for it leaves through the interface it arrived on, from its own frame.
const HAIRPIN_HOST: [u8; 4] = [10, 1, 0, 70];

const MARKER: &[u8] = b"XIPSEC-WORKER-PLAINTEXT";

/// A table file under /dev/shm of the test's own, removed on drop.
struct TableFile(std::path::PathBuf);

impl TableFile {
    fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Self(std::path::PathBuf::from(format!(
            "/dev/shm/xipsec-xsk-worker-test-{}-{n}",
            std::process::id()
        )))
    }
}

impl Drop for TableFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Where the gateway's SAs are in the table.
#[derive(Clone, Copy, Debug)]
struct Slots {
    out: SlotId,
    inbound: SlotId,
    unresolved: SlotId,
    unreachable: SlotId,
}

fn prefix(text: &str) -> AddressRange {
    let (address, len) = text.split_once('/').unwrap();
    AddressRange::prefix(address.parse().unwrap(), len.parse().unwrap()).unwrap()
}

/// Installs the gateway's SAs as the control plane would: a Child SA with the peer (the
/// inbound SA names its outbound twin, so the RFC 4301 check applies), and two outbound SAs
/// to peers that cannot be reached; a policy for each.
fn install(writer: &mut TableWriter, transport: Transport) -> Slots {
    let record = |direction, remote: Ipv4Addr, spi: u32, pair| SaRecord {
        direction,
        params: sa_params(GW_WAN.into(), remote.into(), transport, spi),
        keymat: Keymat::new(&keymat(spi as u8)).unwrap(),
        lifetimes: Lifetimes::default(),
        // Ordinary SAs: each belongs to its slot's worker, as the tests below expect.
        owner_worker: ANY_WORKER,
        installed_at: 0,
        pair,
    };
    let out = writer
        .install(&record(Direction::Outbound, PEER, SPI_OUT, None))
        .unwrap();
    let inbound = writer
        .install(&record(Direction::Inbound, PEER, SPI_IN, Some(out)))
        .unwrap();
    let unresolved = writer
        .install(&record(
            Direction::Outbound,
            PEER_UNRESOLVED,
            SPI_UNRESOLVED,
            None,
        ))
        .unwrap();
    let unreachable = writer
        .install(&record(
            Direction::Outbound,
            PEER_UNREACHABLE,
            SPI_UNREACHABLE,
            None,
        ))
        .unwrap();
    let policy = |remote: &str, outbound| Policy {
        local: prefix("10.1.0.0/24"),
        remote: prefix(remote),
        protocol: None,
        local_ports: ANY_PORT,
        remote_ports: ANY_PORT,
        outbound,
    };
    writer
        .set_policies(&[
            policy("10.2.0.0/24", out),
            policy("10.3.0.0/24", unresolved),
            policy("10.4.0.0/24", unreachable),
        ])
        .unwrap();
    Slots {
        out,
        inbound,
        unresolved,
        unreachable,
    }
}

/// The peer's side of the Child SA: it sends with `SPI_IN` and receives `SPI_OUT`.
fn peer_sas(transport: Transport) -> (OutboundSa, InboundSa) {
    let params = |spi| sa_params(PEER.into(), GW_WAN.into(), transport, spi);
    (
        OutboundSa::new(params(SPI_IN), &keymat(SPI_IN as u8)).unwrap(),
        InboundSa::new(params(SPI_OUT), &keymat(SPI_OUT as u8)).unwrap(),
    )
}

/// An IPv4 UDP packet with a valid header checksum (UDP checksum 0: none).
fn udp_packet(source: [u8; 4], destination: [u8; 4], ports: (u16, u16), payload: &[u8]) -> Vec<u8> {
    let len = 28 + payload.len();
    let mut packet = vec![0u8; 28];
    packet[0] = 0x45;
    packet[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    packet[8] = 64;
    packet[9] = ip::proto::UDP;
    packet[12..16].copy_from_slice(&source);
    packet[16..20].copy_from_slice(&destination);
    ip::set_ipv4_checksum(&mut packet[..20]);
    packet[20..22].copy_from_slice(&ports.0.to_be_bytes());
    packet[22..24].copy_from_slice(&ports.1.to_be_bytes());
    packet[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    packet.extend_from_slice(payload);
    packet
}

fn ethernet(destination: [u8; 6], source: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = destination.to_vec();
    frame.extend_from_slice(&source);
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// `packet` encapsulated by `sa`, as its peer would send it.
fn encapsulate(sa: &mut OutboundSa, packet: &[u8]) -> Vec<u8> {
    let mut buffer = vec![0u8; 128 + packet.len() + 64];
    buffer[128..128 + packet.len()].copy_from_slice(packet);
    let mut buf = PacketBuf::new(&mut buffer, 128, packet.len()).unwrap();
    sa.encap(&mut buf).unwrap();
    buf.data().to_vec()
}

/// The inner packet of `packet` (an outer IP packet), if `sa` accepts it.
fn decapsulate(sa: &mut InboundSa, packet: &[u8]) -> Option<Vec<u8>> {
    let mut buffer = packet.to_vec();
    let len = buffer.len();
    let mut buf = PacketBuf::new(&mut buffer, 0, len).unwrap();
    match Decapsulator::new(4500).decap(sa, &mut buf) {
        Verdict::Forward => Some(buf.data().to_vec()),
        _ => None,
    }
}

/// The UDP payload of an IPv4 packet.
fn udp_payload(packet: &[u8]) -> &[u8] {
    let header_len = usize::from(packet[0] & 0x0F) * 4;
    &packet[header_len + 8..]
}

/// The test's routing and neighbour tables: first matching prefix wins, no route otherwise.
#[derive(Clone, Debug)]
struct Routes(Vec<(IpNet, NextHop)>);

impl NextHops for Routes {
    fn lookup(&mut self, destination: IpAddr) -> NextHop {
        self.0
            .iter()
            .find(|(net, _)| net.contains(&destination))
            .map_or(NextHop::Unreachable, |&(_, hop)| hop)
    }
}

/// The gateway's interfaces and the MAC addresses around them.
#[derive(Clone, Copy, Debug)]
struct Link {
    lan_ifindex: u32,
    wan_ifindex: u32,
    gw_lan_mac: [u8; 6],
    gw_wan_mac: [u8; 6],
    host_mac: [u8; 6],
    peer_mac: [u8; 6],
    /// The WAN interface's MTU (the LAN's is 1500).
    wan_mtu: u32,
}

const LAN_MTU: u32 = 1500;

impl Link {
    fn routes(&self) -> Routes {
        let net = |text: &str| text.parse::<IpNet>().unwrap();
        Routes(vec![
            (
                net("10.1.0.64/26"),
                NextHop::Resolved {
                    ifindex: self.wan_ifindex,
                    src_mac: self.gw_wan_mac,
                    dst_mac: self.peer_mac,
                    mtu: self.wan_mtu,
                },
            ),
            (
                net("10.1.0.0/24"),
                NextHop::Resolved {
                    ifindex: self.lan_ifindex,
                    src_mac: self.gw_lan_mac,
                    dst_mac: self.host_mac,
                    mtu: LAN_MTU,
                },
            ),
            (
                net("192.0.2.2/32"),
                NextHop::Resolved {
                    ifindex: self.wan_ifindex,
                    src_mac: self.gw_wan_mac,
                    dst_mac: self.peer_mac,
                    mtu: self.wan_mtu,
                },
            ),
            (
                net("192.0.2.3/32"),
                NextHop::Unresolved {
                    ifindex: self.wan_ifindex,
                    address: PEER_UNRESOLVED.into(),
                },
            ),
        ])
    }
}

#[test]
fn the_handoff_pool_refuses_when_full_and_recycles_its_buffers() {
    let handoff = Handoff::new(HandoffConfig {
        workers: 2,
        inbox_capacity: 2,
        buffers: 3,
        max_packet: 1280,
    })
    .unwrap();
    assert_eq!(handoff.workers(), 2);
    assert_eq!(handoff.free_buffers(), 3);
    let at = Instant::now();
    let packet = |byte: u8, len: usize| vec![byte; len];
    let send = |to, bytes: &[u8]| handoff.send(to, HandoffWork::Decapsulate, bytes, at);

    assert_eq!(send(1, &packet(1, 100)), Ok(()));
    let slot = HandoffWork::Encapsulate(SlotId(5));
    assert_eq!(handoff.send(1, slot, &packet(2, 1280), at), Ok(()));
    // Worker 1's inbox holds two: the third is refused and its buffer is not lost.
    assert_eq!(send(1, &packet(3, 100)), Err(HandoffRefused::InboxFull));
    assert_eq!(handoff.free_buffers(), 1);
    assert_eq!(handoff.waiting(1), 2);
    assert_eq!(send(0, &packet(4, 60)), Ok(()));
    // Worker 0's inbox has room, but every buffer is in flight.
    assert_eq!(handoff.free_buffers(), 0);
    assert_eq!(send(0, &packet(5, 60)), Err(HandoffRefused::NoBuffer));
    assert_eq!(send(2, &packet(6, 60)), Err(HandoffRefused::NoSuchWorker));
    assert_eq!(send(0, &packet(7, 1281)), Err(HandoffRefused::TooBig));

    // In order, intact, with their work and time.
    let first = handoff.receive(1).unwrap();
    assert_eq!(first.data(), &packet(1, 100)[..]);
    assert_eq!(first.work(), HandoffWork::Decapsulate);
    assert_eq!(first.received_at(), at);
    let second = handoff.receive(1).unwrap();
    assert_eq!(second.data(), &packet(2, 1280)[..]);
    assert_eq!(second.work(), slot);
    assert!(handoff.receive(1).is_none());
    handoff.recycle(first);
    handoff.recycle(second);
    assert_eq!(handoff.free_buffers(), 2);
    let third = handoff.receive(0).unwrap();
    assert_eq!(third.data(), &packet(4, 60)[..]);
    handoff.recycle(third);
    assert_eq!(handoff.free_buffers(), 3);
    assert!(handoff.receive(0).is_none());

    // Recycled buffers carry the new packet only, whatever they held before.
    for round in 0..4u8 {
        assert_eq!(send(1, &packet(10 + round, 10)), Ok(()));
        let back = handoff.receive(1).unwrap();
        assert_eq!(back.data(), &packet(10 + round, 10)[..]);
        handoff.recycle(back);
    }
    assert_eq!(handoff.free_buffers(), 3);

    let bad = |config| Handoff::new(config).is_err();
    let good = HandoffConfig::new(2);
    assert!(bad(HandoffConfig { workers: 0, ..good }));
    assert!(bad(HandoffConfig { buffers: 0, ..good }));
    assert!(bad(HandoffConfig {
        inbox_capacity: 0,
        ..good
    }));
    assert!(bad(HandoffConfig {
        max_packet: 1279,
        ..good
    }));
}

/// A frame in a buffer with an AF_XDP frame's room around it; the frame starts at 256.
fn in_buffer(frame: &[u8]) -> Vec<u8> {
    let mut buffer = vec![0u8; 256 + frame.len() + 256];
    buffer[256..256 + frame.len()].copy_from_slice(frame);
    buffer
}

const LAN: u32 = 7;
const WAN: u32 = 9;
/// An interface the pipelines have no port on.
const ELSEWHERE: u32 = 11;

fn pipeline_link() -> Link {
    Link {
        lan_ifindex: LAN,
        wan_ifindex: WAN,
        gw_lan_mac: [2, 0, 0, 0, 0, 1],
        gw_wan_mac: [2, 0, 0, 0, 0, 2],
        host_mac: [2, 0, 0, 0, 0, 3],
        peer_mac: [2, 0, 0, 0, 0, 4],
        wan_mtu: 1500,
    }
}

#[test]
fn pipelines_hand_packets_to_their_sas_owner_and_route_them() {
    let file = TableFile::new();
    let mut writer = TableWriter::create(&file.0, 16).unwrap();
    let slots = install(&mut writer, Transport::RawEsp);
    let reader = TableReader::open(&file.0).unwrap();
    let handoff = Handoff::new(HandoffConfig {
        workers: 2,
        inbox_capacity: 4,
        buffers: 8,
        max_packet: 2048,
    })
    .unwrap();
    let link = pipeline_link();
    let mut routes = link.routes();
    // Part of the LAN is reached through an interface the workers have no socket on.
    routes.0.insert(
        0,
        (
            "10.1.0.128/25".parse().unwrap(),
            NextHop::Resolved {
                ifindex: ELSEWHERE,
                src_mac: [2; 6],
                dst_mac: [3; 6],
                mtu: 1500,
            },
        ),
    );
    let mut pipelines: Vec<_> = (0..2)
        .map(|worker| {
            Pipeline::new(
                TableSas::for_worker(&reader, worker, 2),
                routes.clone(),
                &[LAN, WAN],
                Some((Arc::clone(&handoff), worker)),
            )
            .unwrap()
        })
        .collect();
    let owner = |slot: SlotId| slot.0 as usize % 2;
    let (mut peer_out, mut peer_in) = peer_sas(Transport::RawEsp);
    let now = Instant::now();

    // Plaintext to the peer's network, received by the worker that does not own its SA.
    let plaintext = udp_packet(HOST, REMOTE, (5000, 9000), MARKER);
    let from_host = ethernet(link.gw_lan_mac, link.host_mac, 0x0800, &plaintext);
    let out_owner = owner(slots.out);
    let mut buffer = in_buffer(&from_host);
    let outcome = pipelines[1 - out_owner].process_frame(&mut buffer, 256, from_host.len(), now);
    assert_eq!(outcome, Outcome::HandedOff);
    assert_eq!(handoff.waiting(out_owner), 1);
    let mut handed = handoff.receive(out_owner).unwrap();
    assert_eq!(handed.data(), &plaintext[..]);
    assert_eq!(handed.work(), HandoffWork::Encapsulate(slots.out));
    let Outcome::Transmit { port, start, len } =
        pipelines[out_owner].process_handed_over(&mut handed)
    else {
        panic!("the owner did not send it on");
    };
    assert_eq!(port, 1, "not the WAN port");
    let sent = handed.bytes(start, len).unwrap().to_vec();
    handoff.recycle(handed);
    let check_esp = |sent: &[u8], peer_in: &mut InboundSa| {
        assert_eq!(&sent[..6], &link.peer_mac);
        assert_eq!(&sent[6..12], &link.gw_wan_mac);
        assert_eq!(&sent[12..14], &[0x08, 0x00]);
        let outer = &sent[14..];
        assert_eq!(outer[9], ip::proto::ESP);
        assert_eq!(&outer[16..20], &PEER.octets());
        assert_eq!(ip::read_u32(outer, 20), SPI_OUT);
        assert!(!sent.windows(MARKER.len()).any(|w| w == MARKER));
        assert_eq!(decapsulate(peer_in, outer).as_deref(), Some(&plaintext[..]));
    };
    check_esp(&sent, &mut peer_in);

    // The owner itself, untagged and behind an 802.1Q tag (stripped).
    let mut tagged = from_host[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x2a]);
    tagged.extend_from_slice(&from_host[12..]);
    for frame in [&from_host, &tagged] {
        let mut buffer = in_buffer(frame);
        let Outcome::Transmit { port, start, len } =
            pipelines[out_owner].process_frame(&mut buffer, 256, frame.len(), now)
        else {
            panic!("the owner did not send it on");
        };
        assert_eq!(port, 1);
        check_esp(&buffer[start..start + len], &mut peer_in);
    }

    // ESP from the peer, received by the worker that does not own the inbound SA.
    let inner = udp_packet(REMOTE, HOST, (9000, HOST_PORT), b"inbound");
    let esp = encapsulate(&mut peer_out, &inner);
    let from_peer = ethernet(link.gw_wan_mac, link.peer_mac, 0x0800, &esp);
    let in_owner = owner(slots.inbound);
    let mut buffer = in_buffer(&from_peer);
    let outcome = pipelines[1 - in_owner].process_frame(&mut buffer, 256, from_peer.len(), now);
    assert_eq!(outcome, Outcome::HandedOff);
    let mut handed = handoff.receive(in_owner).unwrap();
    assert_eq!(handed.work(), HandoffWork::Decapsulate);
    let Outcome::Transmit { port, start, len } =
        pipelines[in_owner].process_handed_over(&mut handed)
    else {
        panic!("the owner did not send it on");
    };
    assert_eq!(port, 0, "not the LAN port");
    let delivered = handed.bytes(start, len).unwrap();
    assert_eq!(
        delivered,
        &ethernet(link.host_mac, link.gw_lan_mac, 0x0800, &inner)[..]
    );
    handoff.recycle(handed);

    // Decrypted for a host behind an interface the worker has no socket on.
    let elsewhere = udp_packet(REMOTE, [10, 1, 0, 200], (9000, HOST_PORT), b"x");
    let esp = encapsulate(&mut peer_out, &elsewhere);
    let frame = ethernet(link.gw_wan_mac, link.peer_mac, 0x0800, &esp);
    let mut buffer = in_buffer(&frame);
    let outcome = pipelines[in_owner].process_frame(&mut buffer, 256, frame.len(), now);
    assert_eq!(outcome, Outcome::Dropped);

    // Plaintext whose SA's peer has no MAC address yet, no route, or no SA at all.
    for (remote, slot) in [
        (REMOTE_UNRESOLVED, Some(slots.unresolved)),
        (REMOTE_UNREACHABLE, Some(slots.unreachable)),
        (REMOTE_NO_SA, None),
    ] {
        let packet = udp_packet(HOST, remote, (5000, 9000), MARKER);
        let frame = ethernet(link.gw_lan_mac, link.host_mac, 0x0800, &packet);
        let mut buffer = in_buffer(&frame);
        let worker = slot.map_or(0, owner);
        let outcome = pipelines[worker].process_frame(&mut buffer, 256, frame.len(), now);
        assert_eq!(outcome, Outcome::Dropped, "{remote:?}");
    }

    // ARP is no IP.
    let arp = ethernet([0xff; 6], link.host_mac, 0x0806, &[0u8; 28]);
    let mut buffer = in_buffer(&arp);
    assert_eq!(
        pipelines[0].process_frame(&mut buffer, 256, arp.len(), now),
        Outcome::Dropped
    );

    // The owner's inbox holds four: the fifth hand-off is dropped, and counted.
    for i in 0..5 {
        let mut buffer = in_buffer(&from_host);
        let outcome =
            pipelines[1 - out_owner].process_frame(&mut buffer, 256, from_host.len(), now);
        let expected = if i < 4 {
            Outcome::HandedOff
        } else {
            Outcome::Dropped
        };
        assert_eq!(outcome, expected, "hand-off {i}");
    }
    while let Some(packet) = handoff.receive(out_owner) {
        handoff.recycle(packet);
    }
    assert_eq!(handoff.free_buffers(), 8);

    // Every packet in exactly one counter, on the right worker.
    let mut expected = [WorkerCounters::default(), WorkerCounters::default()];
    expected[1 - out_owner].received += 1 + 5;
    expected[1 - out_owner].handed_off += 1 + 4;
    expected[1 - out_owner].handoff_dropped += 1;
    expected[out_owner].handoff_received += 1;
    expected[out_owner].received += 2;
    expected[out_owner].encapsulated += 3;
    expected[1 - in_owner].received += 1;
    expected[1 - in_owner].handed_off += 1;
    expected[in_owner].handoff_received += 1;
    expected[in_owner].received += 1;
    expected[in_owner].decapsulated += 2;
    expected[in_owner].no_port += 1;
    for (slot, field) in [
        (
            slots.unresolved,
            (|c: &mut WorkerCounters| c.neighbour_unresolved += 1) as fn(&mut WorkerCounters),
        ),
        (slots.unreachable, |c: &mut WorkerCounters| c.no_route += 1),
    ] {
        expected[owner(slot)].received += 1;
        expected[owner(slot)].encapsulated += 1;
        field(&mut expected[owner(slot)]);
    }
    expected[0].received += 2; // no SA, ARP
    expected[0].no_sa += 1;
    expected[0].not_ip += 1;
    for worker in 0..2 {
        assert_eq!(
            *pipelines[worker].counters(),
            expected[worker],
            "worker {worker}"
        );
    }
}

/// A frame as the wire may bring it: mostly IP-shaped, with any bytes where it matters.
fn wire_frame() -> impl Strategy<Value = (Vec<u8>, Option<(usize, u8)>)> {
    let ethertype = prop_oneof![
        Just(0x0800u16),
        Just(0x86DD),
        Just(0x8100),
        Just(0x0806),
        any::<u16>()
    ];
    let protocol = prop_oneof![Just(ip::proto::ESP), Just(ip::proto::UDP), any::<u8>()];
    let destination = prop_oneof![
        Just(REMOTE),
        Just(REMOTE_UNRESOLVED),
        Just(REMOTE_NO_SA),
        Just(HOST),
        any::<[u8; 4]>()
    ];
    (
        ethertype,
        protocol,
        destination,
        proptest::collection::vec(any::<u8>(), 0..160),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        // Instead: the peer's genuine ESP with one byte changed (or none, index past the end).
        proptest::option::weighted(0.2, (any::<usize>(), any::<u8>())),
    )
        .prop_map(
            |(ethertype, protocol, destination, mut ip, shaped, natt, df, esp)| {
                if shaped && ip.len() >= 28 {
                    ip[0] = 0x45;
                    let len = ip.len() as u16;
                    ip[2..4].copy_from_slice(&len.to_be_bytes());
                    ip[6..8].fill(0);
                    if df {
                        ip[6] = 0x40;
                    }
                    ip[9] = protocol;
                    ip[12..16].copy_from_slice(&HOST);
                    ip[16..20].copy_from_slice(&destination);
                    ip::set_ipv4_checksum(&mut ip[..20]);
                    if protocol == ip::proto::UDP && natt {
                        ip[22..24].copy_from_slice(&4500u16.to_be_bytes());
                        ip[24..26].copy_from_slice(&(len - 20).to_be_bytes());
                    }
                }
                let mut frame = ethernet([2; 6], [4; 6], ethertype, &[]);
                if ethertype == 0x8100 {
                    frame.extend_from_slice(&[0x00, 0x05, 0x08, 0x00]);
                }
                frame.extend_from_slice(&ip);
                (frame, esp)
            },
        )
}

/// Plaintext for the peer's network of any size up to a jumbo frame's, DF set or not, from
/// the host or from sources no error may go to: what a too-small tunnel MTU must sort out.
fn oversized_plaintext() -> impl Strategy<Value = (Vec<u8>, Option<(usize, u8)>)> {
    let source = prop_oneof![
        4 => Just(HOST),
        1 => Just([224, 0, 0, 9]),
        1 => Just([0, 0, 0, 0]),
        1 => any::<[u8; 4]>()
    ];
    (28usize..9000, any::<bool>(), source, any::<u8>()).prop_map(
        |(len, dont_fragment, source, first_payload_byte)| {
            let payload = vec![first_payload_byte; len - 28];
            let mut packet = udp_packet(source, REMOTE, (5000, 9000), &payload);
            if dont_fragment {
                packet[6] = 0x40;
                ip::set_ipv4_checksum(&mut packet[..20]);
            }
            (ethernet([2; 6], [4; 6], 0x0800, &packet), None)
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Whatever arrives, nothing panics and every frame ends in exactly one place: sent on,
    /// handed over, or one drop counter. The WAN's MTU is mostly small enough that plaintext
    /// is too big for the tunnel: then the answers, or the drops, are counted too (0: the
    /// MTU is not known, nothing is too big).
    #[test]
    fn every_frame_is_counted_exactly_once(
        frames in proptest::collection::vec(
            prop_oneof![3 => wire_frame(), 1 => oversized_plaintext()],
            1..24,
        ),
        wan_mtu in prop_oneof![
            1 => Just(1500u32),
            1 => Just(0),
            2 => 100u32..240,
            2 => 576u32..1500,
        ],
    ) {
        let file = TableFile::new();
        let mut writer = TableWriter::create(&file.0, 16).unwrap();
        install(&mut writer, Transport::NattUdp);
        let reader = TableReader::open(&file.0).unwrap();
        let handoff = Handoff::new(HandoffConfig {
            workers: 2,
            inbox_capacity: 8,
            buffers: 8,
            max_packet: 1280,
        })
        .unwrap();
        let link = Link { wan_mtu, ..pipeline_link() };
        let mut pipelines: Vec<_> = (0..2)
            .map(|worker| {
                Pipeline::new(
                    TableSas::for_worker(&reader, worker, 2),
                    link.routes(),
                    &[LAN, WAN],
                    Some((Arc::clone(&handoff), worker)),
                )
                .unwrap()
            })
            .collect();
        let (mut peer_out, _) = peer_sas(Transport::NattUdp);
        let mut transmitted = [0u64; 2];
        let now = Instant::now();
        for (i, (frame, esp)) in frames.iter().enumerate() {
            let frame = match esp {
                Some((at, xor)) => {
                    let inner = udp_packet(REMOTE, HOST, (9000, HOST_PORT), b"genuine");
                    let mut frame =
                        ethernet([2; 6], [4; 6], 0x0800, &encapsulate(&mut peer_out, &inner));
                    let len = frame.len();
                    if let Some(byte) = frame.get_mut(*at % (len + 8)) {
                        *byte ^= xor;
                    }
                    frame
                }
                None => frame.clone(),
            };
            let worker = i % 2;
            let mut buffer = in_buffer(&frame);
            let outcome = pipelines[worker].process_frame(&mut buffer, 256, frame.len(), now);
            if let Outcome::Transmit { start, len, .. } = outcome {
                prop_assert!(start + len <= buffer.len());
                transmitted[worker] += 1;
            }
            for owner in 0..2 {
                while let Some(mut packet) = handoff.receive(owner) {
                    let outcome = pipelines[owner].process_handed_over(&mut packet);
                    if let Outcome::Transmit { start, len, .. } = outcome {
                        prop_assert!(packet.bytes(start, len).is_some());
                        transmitted[owner] += 1;
                    }
                    handoff.recycle(packet);
                }
            }
        }
        for worker in 0..2 {
            let c = *pipelines[worker].counters();
            let ended = c.not_ip
                + c.esp_dropped
                + c.no_sa
                + c.control_plane
                + c.no_route
                + c.neighbour_unresolved
                + c.no_port
                + c.handed_off
                + c.handoff_dropped
                + c.tx_dropped
                + c.too_big_dropped
                + transmitted[worker];
            prop_assert_eq!(c.received + c.handoff_received, ended, "{:?}", c);
        }
        prop_assert_eq!(handoff.free_buffers(), 8);
    }
}

#[test]
fn a_fixed_pair_never_hands_off() {
    let handoff = Handoff::new(HandoffConfig::new(2)).unwrap();
    let params =
        |remote: Ipv4Addr, spi| sa_params(GW_WAN.into(), remote.into(), Transport::NattUdp, spi);
    let sas = StaticSas {
        outbound: OutboundSa::new(params(PEER, SPI_OUT), &keymat(SPI_OUT as u8)).unwrap(),
        inbound: InboundSa::new(params(PEER, SPI_IN), &keymat(SPI_IN as u8)).unwrap(),
    };
    let link = pipeline_link();
    // Worker 1 of 2: everything stays with it all the same.
    let mut pipeline = Pipeline::new(
        sas,
        link.routes(),
        &[LAN, WAN],
        Some((Arc::clone(&handoff), 1)),
    )
    .unwrap();
    let (mut peer_out, mut peer_in) = peer_sas(Transport::NattUdp);
    let plaintext = udp_packet(HOST, REMOTE, (5000, 9000), MARKER);
    let frame = ethernet(link.gw_lan_mac, link.host_mac, 0x0800, &plaintext);
    let mut buffer = in_buffer(&frame);
    let Outcome::Transmit {
        port: 1,
        start,
        len,
    } = pipeline.process_frame(&mut buffer, 256, frame.len(), Instant::now())
    else {
        panic!("not sent on the WAN port");
    };
    let outer = &buffer[start + 14..start + len];
    assert_eq!(outer[9], ip::proto::UDP, "NAT-T");
    assert_eq!(
        decapsulate(&mut peer_in, outer).as_deref(),
        Some(&plaintext[..])
    );

    let inner = udp_packet(REMOTE, HOST, (9000, HOST_PORT), b"inbound");
    let esp = encapsulate(&mut peer_out, &inner);
    let frame = ethernet(link.gw_wan_mac, link.peer_mac, 0x0800, &esp);
    let mut buffer = in_buffer(&frame);
    let Outcome::Transmit {
        port: 0,
        start,
        len,
    } = pipeline.process_frame(&mut buffer, 256, frame.len(), Instant::now())
    else {
        panic!("not sent on the LAN port");
    };
    assert_eq!(&buffer[start + 14..start + len], &inner[..]);
    assert_eq!(pipeline.counters().handed_off, 0);
    assert_eq!(handoff.waiting(0), 0);
    assert_eq!(
        Pipeline::new(NoSas::default(), link.routes(), &[LAN, LAN], None)
            .err()
            .map(|e| e.to_string()),
        Some("two ports of one AF_XDP worker on interface 7; one per interface".to_string())
    );
}

/// A source with no SAs at all, for set-up checks.
#[derive(Debug, Default)]
struct NoSas {
    none: Vec<InboundSa>,
}

impl xipsec_dataplane::worker::SaSource for NoSas {
    type Inbound = [InboundSa];

    fn outbound_for(&mut self, _packet: &[u8]) -> Option<&mut OutboundSa> {
        None
    }

    fn inbound(&mut self) -> &mut [InboundSa] {
        &mut self.none
    }
}

// ---------------------------------------------------------------------------------------------
// Path MTU: packets too big for the tunnel, on plain buffers.

const GW_WAN6: &str = "2001:db8:ff::1";
const PEER6: &str = "2001:db8:ff::2";
const HOST6: &str = "2001:db8:1::2";
const REMOTE6: &str = "2001:db8:2::2";

fn v6(text: &str) -> Ipv6Addr {
    text.parse().unwrap()
}

/// An IPv4 UDP packet of `len` bytes in all from `source`, DF set or not.
fn sized_udp_packet(source: [u8; 4], len: usize, dont_fragment: bool) -> Vec<u8> {
    let payload: Vec<u8> = (0..len - 28).map(|i| i as u8).collect();
    let mut packet = udp_packet(source, REMOTE, (5000, 9000), &payload);
    if dont_fragment {
        packet[6] = 0x40;
        ip::set_ipv4_checksum(&mut packet[..20]);
    }
    packet
}

/// An IPv6 UDP packet of `len` bytes in all (UDP checksum not filled in: nobody checks it).
fn sized_udp6_packet(source: Ipv6Addr, destination: Ipv6Addr, len: usize) -> Vec<u8> {
    let mut packet = vec![0u8; 48];
    packet[0] = 0x60;
    packet[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
    packet[6] = ip::proto::UDP;
    packet[7] = 64;
    packet[8..24].copy_from_slice(&source.octets());
    packet[24..40].copy_from_slice(&destination.octets());
    packet[40..42].copy_from_slice(&5000u16.to_be_bytes());
    packet[42..44].copy_from_slice(&9000u16.to_be_bytes());
    packet[44..46].copy_from_slice(&((len - 40) as u16).to_be_bytes());
    packet.extend((48..len).map(|i| i as u8));
    packet
}

/// The Internet checksum as RFC 1071 §4.1 writes it out: 16-bit words, carries folded, one's
/// complement. Zero over data that holds its own right checksum.
fn rfc1071(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
        while sum > 0xFFFF {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
    }
    !(sum as u16)
}

/// What the ESP core makes of an IP packet of `len` bytes of the SA's family.
fn encapsulated_len(params: SaParams, len: usize) -> usize {
    let packet = match params.endpoints {
        Endpoints::V4 { .. } => sized_udp_packet(HOST, len, true),
        Endpoints::V6 { .. } => sized_udp6_packet(v6(HOST6), v6(REMOTE6), len),
    };
    let mut sa = OutboundSa::new(params, &keymat(params.spi as u8)).unwrap();
    encapsulate(&mut sa, &packet).len()
}

/// The longest inner packet whose ESP packet fits `mtu`, found by encapsulating: the truth
/// the MTU a worker reports is checked against.
fn longest_fitting(params: SaParams, mtu: usize) -> usize {
    let longest = (0..mtu)
        .rev()
        .find(|&len| encapsulated_len(params, len) <= mtu)
        .unwrap();
    assert!(encapsulated_len(params, longest + 1) > mtu);
    longest
}

/// A single worker's pipeline with a fixed SA pair of `params` (outbound) and the test's
/// routes with a WAN of `wan_mtu`, IPv6 ones included.
fn pmtu_pipeline(params: SaParams, wan_mtu: u32) -> Pipeline<StaticSas, Routes> {
    let mut inbound_params = params;
    inbound_params.spi = SPI_IN;
    let sas = StaticSas {
        outbound: OutboundSa::new(params, &keymat(params.spi as u8)).unwrap(),
        inbound: InboundSa::new(inbound_params, &keymat(SPI_IN as u8)).unwrap(),
    };
    let link = Link {
        wan_mtu,
        ..pipeline_link()
    };
    let mut routes = link.routes();
    let net = |text: &str| text.parse::<IpNet>().unwrap();
    routes.0.push((
        net("2001:db8:1::/64"),
        NextHop::Resolved {
            ifindex: LAN,
            src_mac: link.gw_lan_mac,
            dst_mac: link.host_mac,
            mtu: LAN_MTU,
        },
    ));
    routes.0.push((
        net("2001:db8:ff::2/128"),
        NextHop::Resolved {
            ifindex: WAN,
            src_mac: link.gw_wan_mac,
            dst_mac: link.peer_mac,
            mtu: wan_mtu,
        },
    ));
    Pipeline::new(sas, routes, &[LAN, WAN], None).unwrap()
}

fn v4_params(transport: Transport) -> SaParams {
    sa_params(GW_WAN.into(), PEER.into(), transport, SPI_OUT)
}

fn v6_params(transport: Transport) -> SaParams {
    sa_params(v6(GW_WAN6).into(), v6(PEER6).into(), transport, SPI_OUT)
}

/// Checks, field by field, that `frame` is an ICMP Fragmentation Needed (RFC 792, RFC 1191)
/// from `source` to the sender of `original`, on the LAN towards the host, reporting `mtu`
/// and quoting the start of `original`.
fn check_fragmentation_needed(frame: &[u8], source: Ipv4Addr, original: &[u8], mtu: u16) {
    let link = pipeline_link();
    assert_eq!(&frame[..6], &link.host_mac, "to the host");
    assert_eq!(
        &frame[6..12],
        &link.gw_lan_mac,
        "from the gateway's LAN side"
    );
    assert_eq!(&frame[12..14], &[0x08, 0x00], "IPv4");
    let packet = &frame[14..];
    assert_eq!(packet[0], 0x45, "IPv4, no options");
    assert_eq!(
        usize::from(u16::from_be_bytes([packet[2], packet[3]])),
        packet.len(),
        "total length"
    );
    assert!(packet.len() <= 576, "{} bytes", packet.len());
    assert_eq!(packet[8], 64, "TTL");
    assert_eq!(packet[9], 1, "ICMP");
    assert_eq!(rfc1071(&packet[..20]), 0, "header checksum");
    assert_eq!(
        &packet[12..16],
        &source.octets(),
        "from the tunnel's address"
    );
    assert_eq!(&packet[16..20], &original[12..16], "to the sender");
    let icmp = &packet[20..];
    assert_eq!(
        (icmp[0], icmp[1]),
        (3, 4),
        "fragmentation needed and DF set"
    );
    assert_eq!(rfc1071(icmp), 0, "ICMP checksum");
    assert_eq!(&icmp[4..6], &[0, 0], "unused");
    assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), mtu, "next-hop MTU");
    let quoted = &icmp[8..];
    assert!(quoted.len() >= 28, "RFC 792: the header and 8 bytes");
    assert_eq!(quoted.len(), original.len().min(576 - 28));
    assert_eq!(quoted, &original[..quoted.len()], "the original, unchanged");
}

/// The same for ICMPv6 Packet Too Big (RFC 4443 §3.2), the checksum over the pseudo-header.
fn check_packet_too_big(frame: &[u8], source: Ipv6Addr, original: &[u8], mtu: u32) {
    let link = pipeline_link();
    assert_eq!(&frame[..6], &link.host_mac, "to the host");
    assert_eq!(
        &frame[6..12],
        &link.gw_lan_mac,
        "from the gateway's LAN side"
    );
    assert_eq!(&frame[12..14], &[0x86, 0xDD], "IPv6");
    let packet = &frame[14..];
    assert_eq!(packet[0] >> 4, 6);
    assert!(packet.len() <= 1280, "{} bytes", packet.len());
    let payload_len = usize::from(u16::from_be_bytes([packet[4], packet[5]]));
    assert_eq!(payload_len, packet.len() - 40, "payload length");
    assert_eq!(packet[6], 58, "ICMPv6");
    assert_eq!(packet[7], 64, "hop limit");
    assert_eq!(
        &packet[8..24],
        &source.octets(),
        "from the tunnel's address"
    );
    assert_eq!(&packet[24..40], &original[8..24], "to the sender");
    let icmp = &packet[40..];
    assert_eq!((icmp[0], icmp[1]), (2, 0), "packet too big");
    let mut pseudo = packet[8..40].to_vec();
    pseudo.extend_from_slice(&(icmp.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    pseudo.extend_from_slice(icmp);
    assert_eq!(rfc1071(&pseudo), 0, "ICMPv6 checksum");
    assert_eq!(
        u32::from_be_bytes(icmp[4..8].try_into().unwrap()),
        mtu,
        "MTU"
    );
    let quoted = &icmp[8..];
    assert_eq!(
        quoted.len(),
        original.len().min(1280 - 48),
        "as much as fits"
    );
    assert_eq!(quoted, &original[..quoted.len()], "the original, unchanged");
}

/// Runs `packet` from the host through `pipeline` at `at`.
fn from_host(
    pipeline: &mut Pipeline<StaticSas, Routes>,
    packet: &[u8],
    ethertype: u16,
    at: Instant,
) -> (Outcome, Vec<u8>) {
    let link = pipeline_link();
    let frame = ethernet(link.gw_lan_mac, link.host_mac, ethertype, packet);
    let mut buffer = in_buffer(&frame);
    let outcome = pipeline.process_frame(&mut buffer, 256, frame.len(), at);
    let sent = match outcome {
        Outcome::Transmit { start, len, .. } => buffer[start..start + len].to_vec(),
        _ => Vec::new(),
    };
    (outcome, sent)
}

#[test]
fn an_ipv4_packet_too_big_for_the_tunnel_gets_fragmentation_needed() {
    for transport in [Transport::RawEsp, Transport::NattUdp] {
        let params = v4_params(transport);
        let mut pipeline = pmtu_pipeline(params, 1500);
        let fitting = longest_fitting(params, 1500);
        // 20 + (8) + 8 + 8 + 2 + 16 bytes of overhead, the payload padded to 4.
        let known = match transport {
            Transport::RawEsp => 1446,
            Transport::NattUdp => 1438,
        };
        assert_eq!(fitting, known);
        let now = Instant::now();

        // The longest that fits is encapsulated, and fills the link exactly.
        let packet = sized_udp_packet(HOST, fitting, true);
        let (outcome, sent) = from_host(&mut pipeline, &packet, 0x0800, now);
        assert!(matches!(outcome, Outcome::Transmit { port: 1, .. }));
        assert_eq!(sent.len(), 14 + 1500);
        let (_, mut peer_in) = peer_sas(transport);
        assert_eq!(
            decapsulate(&mut peer_in, &sent[14..]).as_deref(),
            Some(&packet[..])
        );

        // One byte more, and a full-size Ethernet packet: answered, back out of the LAN port.
        for len in [fitting + 1, 1500] {
            let packet = sized_udp_packet(HOST, len, true);
            let (outcome, sent) = from_host(&mut pipeline, &packet, 0x0800, now);
            assert!(matches!(outcome, Outcome::Transmit { port: 0, .. }));
            check_fragmentation_needed(&sent, GW_WAN, &packet, known as u16);
        }

        // Without DF: fixed SAs name no slot to queue the later fragments under, so
        // dropped, not fragmented (through the table it is: see the next test but two).
        let packet = sized_udp_packet(HOST, 1500, false);
        let (outcome, _) = from_host(&mut pipeline, &packet, 0x0800, now);
        assert_eq!(outcome, Outcome::Dropped);

        let counters = *pipeline.counters();
        assert_eq!(
            counters,
            WorkerCounters {
                received: 4,
                encapsulated: 1,
                too_big: 2,
                too_big_dropped: 1,
                ..WorkerCounters::default()
            }
        );
        // The packets that were not encapsulated spent no sequence number.
        assert_eq!(pipeline.sas().outbound.next_sequence(), 2);
    }
}

#[test]
fn an_ipv6_packet_too_big_for_the_tunnel_gets_packet_too_big() {
    let params = v6_params(Transport::NattUdp);
    let mut pipeline = pmtu_pipeline(params, 1500);
    let fitting = longest_fitting(params, 1500);
    // 40 + 8 + 8 + 8 + 2 + 16 bytes of overhead, the payload padded to 4.
    assert_eq!(fitting, 1418);
    let now = Instant::now();
    let packet = sized_udp6_packet(v6(HOST6), v6(REMOTE6), fitting);
    let (outcome, sent) = from_host(&mut pipeline, &packet, 0x86DD, now);
    assert!(matches!(outcome, Outcome::Transmit { port: 1, .. }));
    assert_eq!(sent.len(), 14 + 1500);
    for len in [fitting + 1, 1500, 1280 + 200] {
        let packet = sized_udp6_packet(v6(HOST6), v6(REMOTE6), len);
        let (outcome, sent) = from_host(&mut pipeline, &packet, 0x86DD, now);
        assert!(matches!(outcome, Outcome::Transmit { port: 0, .. }));
        check_packet_too_big(&sent, v6(GW_WAN6), &packet, fitting as u32);
    }
    // An IPv4 packet has no source address in an IPv6 tunnel: dropped.
    let (outcome, _) = from_host(
        &mut pipeline,
        &sized_udp_packet(HOST, 1500, true),
        0x0800,
        now,
    );
    assert_eq!(outcome, Outcome::Dropped);
    assert_eq!(
        *pipeline.counters(),
        WorkerCounters {
            received: 5,
            encapsulated: 1,
            too_big: 3,
            too_big_dropped: 1,
            ..WorkerCounters::default()
        }
    );

    // A tunnel that leaves less than IPv6's minimum MTU: never reported, dropped.
    let mut narrow = pmtu_pipeline(params, 1340);
    assert!(longest_fitting(params, 1340) < 1280);
    let packet = sized_udp6_packet(v6(HOST6), v6(REMOTE6), 1300);
    let (outcome, _) = from_host(&mut narrow, &packet, 0x86DD, now);
    assert_eq!(outcome, Outcome::Dropped);
    assert_eq!(narrow.counters().too_big_dropped, 1);
    assert_eq!(narrow.counters().too_big, 0);
}

#[test]
fn too_big_answers_are_rate_limited() {
    let params = v4_params(Transport::NattUdp);
    let mut pipeline = pmtu_pipeline(params, 1500).with_too_big_limit(10, 3);
    let packet = sized_udp_packet(HOST, 1500, true);
    let start = Instant::now();
    let mut answered = |at: Instant| {
        let (outcome, sent) = from_host(&mut pipeline, &packet, 0x0800, at);
        if outcome == Outcome::Dropped {
            return false;
        }
        check_fragmentation_needed(&sent, GW_WAN, &packet, 1438);
        true
    };
    // The burst, then nothing until a tenth of a second has passed, then one.
    let first: Vec<bool> = (0..5).map(|_| answered(start)).collect();
    assert_eq!(first, [true, true, true, false, false]);
    assert!(!answered(start + Duration::from_millis(99)));
    assert!(answered(start + Duration::from_millis(100)));
    assert!(!answered(start + Duration::from_millis(100)));
    assert_eq!(pipeline.counters().too_big, 4);
    assert_eq!(pipeline.counters().too_big_dropped, 4);

    // Unanswerable packets spend no token; a limit of zero answers nothing.
    let mut pipeline = pmtu_pipeline(params, 1500).with_too_big_limit(10, 1);
    let (outcome, _) = from_host(
        &mut pipeline,
        &sized_udp_packet(HOST, 1500, false),
        0x0800,
        start,
    );
    assert_eq!(outcome, Outcome::Dropped);
    let (outcome, _) = from_host(&mut pipeline, &packet, 0x0800, start);
    assert!(matches!(outcome, Outcome::Transmit { port: 0, .. }));
    let mut silent = pmtu_pipeline(params, 1500).with_too_big_limit(0, 0);
    let (outcome, _) = from_host(&mut silent, &packet, 0x0800, start);
    assert_eq!(outcome, Outcome::Dropped);
    assert_eq!(silent.counters().too_big_dropped, 1);
}

#[test]
fn a_packet_handed_to_its_sas_owner_is_answered_there() {
    let file = TableFile::new();
    let mut writer = TableWriter::create(&file.0, 16).unwrap();
    let slots = install(&mut writer, Transport::NattUdp);
    let reader = TableReader::open(&file.0).unwrap();
    let handoff = Handoff::new(HandoffConfig::new(2)).unwrap();
    let link = Link {
        wan_mtu: 1400,
        ..pipeline_link()
    };
    let mut pipelines: Vec<_> = (0..2)
        .map(|worker| {
            Pipeline::new(
                TableSas::for_worker(&reader, worker, 2),
                link.routes(),
                &[LAN, WAN],
                Some((Arc::clone(&handoff), worker)),
            )
            .unwrap()
        })
        .collect();
    let owner = slots.out.0 as usize % 2;
    let packet = sized_udp_packet(HOST, 1500, true);
    let frame = ethernet(link.gw_lan_mac, link.host_mac, 0x0800, &packet);
    let mut buffer = in_buffer(&frame);
    let outcome = pipelines[1 - owner].process_frame(&mut buffer, 256, frame.len(), Instant::now());
    assert_eq!(outcome, Outcome::HandedOff);
    let mut handed = handoff.receive(owner).unwrap();
    let Outcome::Transmit { port, start, len } = pipelines[owner].process_handed_over(&mut handed)
    else {
        panic!("the owner did not answer");
    };
    assert_eq!(port, 0);
    let expected = longest_fitting(v4_params(Transport::NattUdp), 1400);
    check_fragmentation_needed(
        handed.bytes(start, len).unwrap(),
        GW_WAN,
        &packet,
        expected as u16,
    );
    handoff.recycle(handed);
    assert_eq!(pipelines[owner].counters().too_big, 1);
    assert_eq!(pipelines[owner].counters().encapsulated, 0);
}

#[test]
fn an_ipv4_packet_without_df_too_big_for_the_tunnel_is_fragmented_before_encryption() {
    let file = TableFile::new();
    let mut writer = TableWriter::create(&file.0, 16).unwrap();
    install(&mut writer, Transport::NattUdp);
    let reader = TableReader::open(&file.0).unwrap();
    let handoff = Handoff::new(HandoffConfig::new(1)).unwrap();
    let link = Link {
        wan_mtu: 1400,
        ..pipeline_link()
    };
    let mut pipeline = Pipeline::new(
        TableSas::new(&reader),
        link.routes(),
        &[LAN, WAN],
        Some((Arc::clone(&handoff), 0)),
    )
    .unwrap();
    let (_, mut peer_in) = peer_sas(Transport::NattUdp);
    let mut sent = Vec::new();
    // The ESP packet of an outcome, checked to leave through the WAN port and fit its link.
    let esp_of = |outcome| {
        let Outcome::Transmit { port, start, len } = outcome else {
            panic!("not sent: {outcome:?}");
        };
        assert_eq!(port, 1, "out of the WAN port");
        assert!(len <= 14 + 1400, "{len} bytes: longer than the link");
        (start + 14, len - 14)
    };
    // 3000 bytes: three fragments at 1400 (the hand-off buffers take 3840).
    let packet = sized_udp_packet(HOST, 3000, false);
    let frame = ethernet(link.gw_lan_mac, link.host_mac, 0x0800, &packet);
    let mut buffer = in_buffer(&frame);
    let outcome = pipeline.process_frame(&mut buffer, 256, frame.len(), Instant::now());
    let (start, len) = esp_of(outcome);
    sent.push(buffer[start..start + len].to_vec());
    while let Some(mut handed) = handoff.receive(0) {
        let (start, len) = esp_of(pipeline.process_handed_over(&mut handed));
        sent.push(handed.bytes(start, len).unwrap().to_vec());
        handoff.recycle(handed);
    }
    assert_eq!(sent.len(), 3);
    let counters = *pipeline.counters();
    assert_eq!(counters.fragmented, 1);
    assert_eq!(counters.encapsulated, 3);
    assert_eq!(counters.too_big + counters.too_big_dropped, 0);

    // The peer decrypts each ESP packet on its own; the fragments inside put the original
    // back (RFC 791 reassembly by offset), each with a good header checksum.
    let mut data = vec![0u8; packet.len() - 20];
    let mut filled = 0;
    let mut last_seen = false;
    for esp in &sent {
        let fragment = decapsulate(&mut peer_in, esp).expect("the peer accepts it");
        let header_len = usize::from(fragment[0] & 0x0F) * 4;
        assert_eq!(rfc1071(&fragment[..header_len]), 0);
        assert_eq!(&fragment[4..6], &packet[4..6], "identification kept");
        assert_eq!(fragment[9], packet[9]);
        assert_eq!(&fragment[12..20], &packet[12..20]);
        let flags = ip::read_u16(&fragment, 6);
        let offset = usize::from(flags & 0x1FFF) * 8;
        let body = &fragment[header_len..usize::from(ip::read_u16(&fragment, 2))];
        data[offset..offset + body.len()].copy_from_slice(body);
        filled += body.len();
        last_seen |= flags & 0x2000 == 0;
    }
    assert!(last_seen);
    assert_eq!(filled, data.len());
    assert_eq!(data, packet[20..]);

    // With DF the sender is told instead; nothing more is fragmented.
    let packet = sized_udp_packet(HOST, 3000, true);
    let frame = ethernet(link.gw_lan_mac, link.host_mac, 0x0800, &packet);
    let mut buffer = in_buffer(&frame);
    let outcome = pipeline.process_frame(&mut buffer, 256, frame.len(), Instant::now());
    assert!(matches!(outcome, Outcome::Transmit { port: 0, .. }));
    assert_eq!(pipeline.counters().too_big, 1);
    assert_eq!(pipeline.counters().fragmented, 1);
}

#[test]
fn a_decapsulated_packet_longer_than_its_link_is_dropped_and_counted() {
    let params = v4_params(Transport::NattUdp);
    let mut pipeline = pmtu_pipeline(params, 1500);
    let (mut peer_out, _) = peer_sas(Transport::NattUdp);
    let link = pipeline_link();
    // From the peer to a host behind the hairpin route, out of the WAN, whose MTU is now
    // smaller than the decrypted packet.
    let mut narrow = pmtu_pipeline(params, 1000);
    for (pipeline, delivered) in [(&mut pipeline, true), (&mut narrow, false)] {
        let payload = vec![7u8; 1200];
        let inner = udp_packet(REMOTE, HAIRPIN_HOST, (9000, HOST_PORT), &payload);
        let esp = encapsulate(&mut peer_out, &inner);
        let frame = ethernet(link.gw_wan_mac, link.peer_mac, 0x0800, &esp);
        let mut buffer = in_buffer(&frame);
        let outcome = pipeline.process_frame(&mut buffer, 256, frame.len(), Instant::now());
        assert_eq!(matches!(outcome, Outcome::Transmit { .. }), delivered);
        assert_eq!(pipeline.counters().decapsulated, 1);
        assert_eq!(pipeline.counters().too_big_dropped, u64::from(!delivered));
    }
}

// ---------------------------------------------------------------------------------------------
// Two workers in network namespaces.

/// Frames each sender queue carries: to the peer's network, to the unresolved and unreachable
/// peers' networks, to a network no SA covers; and ESP from the peer.
const TO_REMOTE: usize = 8;
const TO_UNRESOLVED: usize = 2;
const TO_UNREACHABLE: usize = 2;
const TO_NO_SA: usize = 2;
const FROM_PEER: usize = 8;
const FROM_PEER_HAIRPIN: usize = 4;
const QUEUES: u32 = 2;
const PER_QUEUE: usize =
    TO_REMOTE + TO_UNRESOLVED + TO_UNREACHABLE + TO_NO_SA + FROM_PEER + FROM_PEER_HAIRPIN;

/// lan host -- gateway -- wan peer, each link a veth pair with two queues each way.
struct Namespaces {
    lan: Netns,
    gw: Netns,
    wan: Netns,
}

impl Namespaces {
    fn new() -> Self {
        let prefix = unique_prefix();
        let lan = Netns::new(format!("{prefix}-lan"));
        let gw = Netns::new(format!("{prefix}-gw"));
        let wan = Netns::new(format!("{prefix}-wan"));
        let queues = ["numtxqueues", "2", "numrxqueues", "2"];
        for (host, gw_end) in [(&lan, "lan"), (&wan, "wan")] {
            let mut args = vec!["link", "add", "eth0"];
            args.extend_from_slice(&queues);
            args.extend_from_slice(&["type", "veth", "peer", "name", gw_end]);
            args.extend_from_slice(&queues);
            args.extend_from_slice(&["netns", gw.name()]);
            host.ip(&args);
        }
        for (ns, device, address) in [
            (&lan, "eth0", "10.1.0.2/24"),
            (&gw, "lan", "10.1.0.1/24"),
            (&gw, "wan", "192.0.2.1/24"),
            (&wan, "eth0", "192.0.2.2/24"),
        ] {
            ns.ip(&["addr", "add", address, "dev", device]);
            ns.ip(&["link", "set", device, "up"]);
        }
        lan.ip(&["route", "add", "default", "via", "10.1.0.1"]);
        Namespaces { lan, gw, wan }
    }
}

/// Sends `frames` on queue `queue` of `interface` of the calling thread's namespace through an
/// AF_XDP socket of its own (no XDP program needed for sending): they arrive on the same
/// queue of the veth's other end. Waits until the kernel took them all.
fn send_on_queue(interface: &str, queue: u32, frames: &[Vec<u8>]) {
    let config = XskConfig {
        frame_count: 256,
        ring_size: 64,
        ..XskConfig::default()
    };
    let mut socket = XskSocket::bind(interface, queue, config).expect("a sending AF_XDP socket");
    // A copy-mode wake-up sends at most 32.
    for chunk in frames.chunks(32) {
        let descriptors: Vec<Descriptor> = chunk
            .iter()
            .map(|frame| {
                let addr = socket.take_tx_frame().expect("a free frame");
                let (buffer, offset) = socket.frame_mut(addr).unwrap();
                buffer[offset..offset + frame.len()].copy_from_slice(frame);
                Descriptor {
                    addr,
                    len: frame.len() as u32,
                    options: 0,
                }
            })
            .collect();
        assert_eq!(socket.transmit(&descriptors) as usize, chunk.len());
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut done = 0;
        while done < chunk.len() {
            done += socket.reclaim_completed();
            assert!(Instant::now() < deadline, "frames not sent");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Tells the workers to stop when dropped, on every way out of the test's main thread.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// What the gateway thread hands back once its workers stopped.
struct Finished {
    counters: Vec<WorkerCounters>,
    free_buffers: usize,
}

#[test]
fn two_workers_encrypt_decrypt_and_hand_over_in_namespaces() {
    let test = "two_workers_encrypt_decrypt_and_hand_over_in_namespaces";
    if !netns::can_run(test) {
        return;
    }
    let namespaces = Namespaces::new();
    let Namespaces { lan, gw, wan } = &namespaces;
    let table = TableFile::new();
    let mut writer = TableWriter::create(&table.0, 16).unwrap();
    let slots = install(&mut writer, Transport::NattUdp);
    let gw_lan_mac = mac_of(gw, "lan");
    let gw_wan_mac = mac_of(gw, "wan");
    let host_mac = mac_of(lan, "eth0");
    let peer_mac = mac_of(wan, "eth0");

    let ready = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let stats: OnceLock<Vec<WorkerStats>> = OnceLock::new();
    let (mut peer_out, mut peer_in) = peer_sas(Transport::NattUdp);

    let finished = std::thread::scope(|scope| {
        let gateway = scope.spawn(|| {
            gw.run(|| {
                let config = XskConfig {
                    frame_count: 1024,
                    ring_size: 256,
                    ..XskConfig::default()
                };
                let mut lan_classifier = Classifier::load(ClassifierConfig::default()).unwrap();
                let _lan_attached = lan_classifier.attach("lan", AttachMode::Native).unwrap();
                for net in ["10.2.0.0/24", "10.3.0.0/24", "10.4.0.0/24", "10.5.0.0/24"] {
                    lan_classifier.add_policy(net.parse().unwrap()).unwrap();
                }
                let mut wan_classifier = Classifier::load(ClassifierConfig::default()).unwrap();
                let _wan_attached = wan_classifier.attach("wan", AttachMode::Native).unwrap();
                let handoff = Handoff::new(HandoffConfig {
                    workers: QUEUES as usize,
                    inbox_capacity: 64,
                    buffers: 128,
                    max_packet: 1792,
                })
                .unwrap();
                let reader = TableReader::open(&table.0).unwrap();
                let mut workers = Vec::new();
                for queue in 0..QUEUES {
                    let lan_port = WorkerPort::bind("lan", queue, config).unwrap();
                    lan_classifier
                        .register_xsk(queue, lan_port.socket())
                        .unwrap();
                    let wan_port = WorkerPort::bind("wan", queue, config).unwrap();
                    wan_classifier
                        .register_xsk(queue, wan_port.socket())
                        .unwrap();
                    let link = Link {
                        lan_ifindex: lan_port.ifindex(),
                        wan_ifindex: wan_port.ifindex(),
                        gw_lan_mac,
                        gw_wan_mac,
                        host_mac,
                        peer_mac,
                        wan_mtu: 1500,
                    };
                    let worker = queue as usize;
                    let config = XskWorkerConfig {
                        worker,
                        batch: 32,
                        idle_poll: Duration::from_millis(20),
                        ..XskWorkerConfig::default()
                    };
                    workers.push(
                        XskWorker::new(
                            config,
                            vec![lan_port, wan_port],
                            TableSas::for_worker(&reader, worker, QUEUES as usize),
                            link.routes(),
                            Arc::clone(&handoff),
                        )
                        .unwrap(),
                    );
                }
                let _ = stats.set(workers.iter().map(XskWorker::stats).collect());
                let counters = std::thread::scope(|scope| {
                    let running: Vec<_> = workers
                        .into_iter()
                        .map(|mut worker| {
                            let stop = &stop;
                            scope.spawn(move || {
                                worker.run(stop).expect("the worker loop failed");
                                worker
                            })
                        })
                        .collect();
                    ready.store(true, Ordering::Release);
                    running
                        .into_iter()
                        .map(|thread| {
                            let worker = thread.join().expect("a worker panicked");
                            let decap = worker.pipeline().decapsulator().unattributed.clone();
                            assert_eq!(
                                decap.total(),
                                0,
                                "{:?}",
                                decap.nonzero().collect::<Vec<_>>()
                            );
                            worker.counters()
                        })
                        .collect()
                });
                Finished {
                    counters,
                    free_buffers: handoff.free_buffers(),
                }
            })
        });
        // Whatever fails from here on, the workers stop and the scope can end.
        let _stop_workers = StopOnDrop(&stop);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready.load(Ordering::Acquire) {
            assert!(!gateway.is_finished(), "the gateway failed to start");
            assert!(Instant::now() < deadline, "the gateway did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        let capture = Capture::start(wan, "eth0");
        let receiver = lan
            .run(|| UdpSocket::bind((Ipv4Addr::from(HOST), HOST_PORT)))
            .unwrap();
        receiver
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();

        let mut sent_out = BTreeSet::new();
        let mut sent_in = BTreeSet::new();
        let mut sent_hairpin = BTreeSet::new();
        let mut from_host = vec![Vec::new(); QUEUES as usize];
        let mut from_peer = vec![Vec::new(); QUEUES as usize];
        for queue in 0..QUEUES as usize {
            let flows = [
                (REMOTE, TO_REMOTE),
                (REMOTE_UNRESOLVED, TO_UNRESOLVED),
                (REMOTE_UNREACHABLE, TO_UNREACHABLE),
                (REMOTE_NO_SA, TO_NO_SA),
            ];
            for (remote, count) in flows {
                for i in 0..count {
                    let mut payload = MARKER.to_vec();
                    payload.extend_from_slice(format!(" {remote:?} q{queue} {i}").as_bytes());
                    let port = 5000 + (queue * 100 + i) as u16;
                    let packet = udp_packet(HOST, remote, (port, 9000), &payload);
                    if remote == REMOTE {
                        sent_out.insert(packet.clone());
                    }
                    from_host[queue].push(ethernet(gw_lan_mac, host_mac, 0x0800, &packet));
                }
            }
            for i in 0..FROM_PEER {
                let payload = format!("inbound q{queue} {i}").into_bytes();
                let port = 6000 + (queue * 100 + i) as u16;
                let inner = udp_packet(REMOTE, HOST, (port, HOST_PORT), &payload);
                sent_in.insert(payload);
                let esp = encapsulate(&mut peer_out, &inner);
                from_peer[queue].push(ethernet(gw_wan_mac, peer_mac, 0x0800, &esp));
            }
            for i in 0..FROM_PEER_HAIRPIN {
                let payload = format!("hairpin q{queue} {i}").into_bytes();
                let port = 6500 + (queue * 100 + i) as u16;
                let inner = udp_packet(REMOTE, HAIRPIN_HOST, (port, HOST_PORT), &payload);
                let esp = encapsulate(&mut peer_out, &inner);
                sent_hairpin.insert(inner);
                from_peer[queue].push(ethernet(gw_wan_mac, peer_mac, 0x0800, &esp));
            }
        }
        lan.run(|| {
            for (queue, frames) in from_host.iter().enumerate() {
                send_on_queue("eth0", queue as u32, frames);
            }
        });
        wan.run(|| {
            for (queue, frames) in from_peer.iter().enumerate() {
                send_on_queue("eth0", queue as u32, frames);
            }
        });

        // Decrypted, into the lan namespace's stack.
        let mut arrived = BTreeSet::new();
        let mut buffer = [0u8; 2048];
        let deadline = Instant::now() + Duration::from_secs(5);
        while arrived.len() < sent_in.len() && Instant::now() < deadline {
            if let Ok((n, source)) = receiver.recv_from(&mut buffer) {
                assert_eq!(source.ip(), IpAddr::from(REMOTE));
                arrived.insert(buffer[..n].to_vec());
            }
        }
        assert_eq!(arrived, sent_in, "not every decrypted packet arrived");

        // Every frame taken in and every hand-over processed before the workers stop.
        let all = QUEUES as u64 * PER_QUEUE as u64;
        let settled = netns::wait_for(Duration::from_secs(5), || {
            let merged = merge_stats(stats.get().unwrap()).counters;
            merged.received == all && merged.handoff_received == merged.handed_off
        });
        stop.store(true, Ordering::Release);
        let finished = gateway.join().expect("the gateway thread panicked");
        assert!(settled, "{:?}", finished.counters);
        (finished, capture.stop(), sent_out, sent_hairpin)
    });
    let (finished, frames, sent_out, sent_hairpin) = finished;

    // Exactly what each worker must have done, from the queues the test sent on and the
    // owners of the SAs (slot modulo two).
    let owner = |slot: SlotId| slot.0 as usize % QUEUES as usize;
    let mut expected = vec![WorkerCounters::default(); QUEUES as usize];
    for queue in 0..QUEUES as usize {
        expected[queue].received = PER_QUEUE as u64;
        expected[queue].no_sa += TO_NO_SA as u64;
        for (slot, count) in [
            (slots.out, TO_REMOTE),
            (slots.unresolved, TO_UNRESOLVED),
            (slots.unreachable, TO_UNREACHABLE),
            (slots.inbound, FROM_PEER + FROM_PEER_HAIRPIN),
        ] {
            let count = count as u64;
            let owner = owner(slot);
            if owner != queue {
                expected[queue].handed_off += count;
                expected[owner].handoff_received += count;
            }
            if slot == slots.inbound {
                expected[owner].decapsulated += count;
            } else {
                expected[owner].encapsulated += count;
            }
            if slot == slots.out || slot == slots.inbound {
                expected[owner].transmitted += count;
            } else if slot == slots.unresolved {
                expected[owner].neighbour_unresolved += count;
            } else {
                expected[owner].no_route += count;
            }
        }
    }
    assert_eq!(finished.counters, expected);
    for counters in &finished.counters {
        assert!(
            counters.received > 0 && counters.handed_off > 0,
            "{counters:?}"
        );
    }
    assert_eq!(finished.free_buffers, 128, "hand-off buffers lost");

    // Merged statistics: one latency per packet sent on.
    let stats = stats.get().unwrap();
    let merged = merge_stats(stats);
    let mut total = WorkerCounters::default();
    for counters in &expected {
        total.merge(counters);
    }
    assert_eq!(merged.counters, total);
    assert_eq!(merged.latency.len(), total.transmitted);
    assert!(merged.latency.max() > 0);

    // The owners reported their SAs' traffic into the table.
    let sent = writer.status(slots.out).unwrap();
    let received = writer.status(slots.inbound).unwrap();
    assert_eq!(sent.packets, QUEUES as u64 * TO_REMOTE as u64, "{sent:?}");
    assert_eq!(
        received.packets,
        QUEUES as u64 * (FROM_PEER + FROM_PEER_HAIRPIN) as u64,
        "{received:?}"
    );
    assert_eq!(received.drops, 0, "{received:?}");

    // On the wire to the peer: only ESP in UDP from our outbound SA, decrypting to exactly
    // the packets sent to the peer's network; no plaintext, nothing for the other peers; and
    // the decrypted packets the routes send back that way.
    let mut decrypted = BTreeSet::new();
    let mut hairpinned = BTreeSet::new();
    for frame in &frames {
        assert!(
            !frame.windows(MARKER.len()).any(|w| w == MARKER),
            "plaintext on the wire to the peer"
        );
        if frame.len() < 14 || frame[6..12] != gw_wan_mac {
            continue;
        }
        match classify_wan_frame(frame) {
            WanFrame::NattUdp { first_word } => {
                assert_eq!(first_word, SPI_OUT);
                let inner = decapsulate(&mut peer_in, &frame[14..]).expect("our ESP decrypts");
                decrypted.insert(inner);
            }
            WanFrame::Housekeeping => {}
            WanFrame::Other {
                protocol: 17,
                ports: (_, HOST_PORT),
            } => {
                let packet = &frame[14..];
                let len = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
                hairpinned.insert(packet[..len].to_vec());
            }
            other => panic!("unexpected frame from the gateway: {other:?}"),
        }
    }
    assert_eq!(decrypted, sent_out);
    assert_eq!(hairpinned, sent_hairpin);
    let payloads: BTreeSet<Vec<u8>> = sent_out.iter().map(|p| udp_payload(p).to_vec()).collect();
    assert_eq!(payloads.len(), QUEUES as usize * TO_REMOTE);
}

// ---------------------------------------------------------------------------------------------
// Path MTU with a real host: lan host == gateway (one worker, the FIB mirror) == wan peer, the
// WAN link narrower than the LAN.

const NARROW_WAN_MTU: usize = 1400;
const SPI_OUT6: u32 = 0x0000_a011;
const SPI_IN6: u32 = 0x0000_b012;
const NS_GW_WAN6: &str = "fd00:ff::1";
const NS_PEER6: &str = "fd00:ff::2";
const NS_HOST6: &str = "fd00:1::2";
const NS_REMOTE6: &str = "fd00:2::2";

/// The MTU `ip route get destination` in `ns` shows (a path MTU the kernel learnt), if any.
fn route_mtu(ns: &Netns, destination: &str) -> Option<usize> {
    let output = ns
        .exec("ip", &["route", "get", destination], Duration::from_secs(5))
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut words = text.split_whitespace();
    words.find(|word| *word == "mtu")?;
    words.next()?.parse().ok()
}

/// Sets DF on everything `socket` sends, and keeps the kernel from fragmenting it: the
/// socket option path MTU discovery uses (`IP_PMTUDISC_DO`, `IPV6_PMTUDISC_DO`).
fn dont_fragment(socket: &UdpSocket, v6: bool) {
    use std::os::fd::AsRawFd;
    let (level, name, value) = if v6 {
        (
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_DO,
        )
    } else {
        (
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DO,
        )
    };
    // SAFETY: a live socket, and a c_int option whose address and exact size are passed.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(set, 0, "{}", std::io::Error::last_os_error());
}

/// The gateway's two Child SAs (IPv4 and IPv6 tunnels, NAT-T) and their policies.
fn install_pmtu_sas(writer: &mut TableWriter) {
    let record = |direction, local: IpAddr, remote: IpAddr, spi: u32, pair| SaRecord {
        direction,
        params: sa_params(local, remote, Transport::NattUdp, spi),
        keymat: Keymat::new(&keymat(spi as u8)).unwrap(),
        lifetimes: Lifetimes::default(),
        owner_worker: 0,
        installed_at: 0,
        pair,
    };
    let peer6: IpAddr = v6(NS_PEER6).into();
    let gw6: IpAddr = v6(NS_GW_WAN6).into();
    let out4 = writer
        .install(&record(
            Direction::Outbound,
            GW_WAN.into(),
            PEER.into(),
            SPI_OUT,
            None,
        ))
        .unwrap();
    writer
        .install(&record(
            Direction::Inbound,
            GW_WAN.into(),
            PEER.into(),
            SPI_IN,
            Some(out4),
        ))
        .unwrap();
    let out6 = writer
        .install(&record(Direction::Outbound, gw6, peer6, SPI_OUT6, None))
        .unwrap();
    writer
        .install(&record(Direction::Inbound, gw6, peer6, SPI_IN6, Some(out6)))
        .unwrap();
    let policy = |local: &str, remote: &str, outbound| Policy {
        local: prefix(local),
        remote: prefix(remote),
        protocol: None,
        local_ports: ANY_PORT,
        remote_ports: ANY_PORT,
        outbound,
    };
    writer
        .set_policies(&[
            policy("10.1.0.0/24", "10.2.0.0/24", out4),
            policy("fd00:1::/64", "fd00:2::/64", out6),
        ])
        .unwrap();
}

/// lan host -- gateway -- wan peer, one queue per veth, the WAN at [`NARROW_WAN_MTU`], both
/// families; every neighbour entry made permanent, so that nothing waits for ARP or ND.
fn narrow_wan_namespaces() -> Namespaces {
    let prefix = unique_prefix();
    let lan = Netns::new(format!("{prefix}-lan"));
    let gw = Netns::new(format!("{prefix}-gw"));
    let wan = Netns::new(format!("{prefix}-wan"));
    for (host, gw_end) in [(&lan, "lan"), (&wan, "wan")] {
        host.ip(&[
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            gw_end,
            "netns",
            gw.name(),
        ]);
    }
    let mtu = NARROW_WAN_MTU.to_string();
    gw.ip(&["link", "set", "wan", "mtu", &mtu]);
    wan.ip(&["link", "set", "eth0", "mtu", &mtu]);
    for (ns, device, address) in [
        (&lan, "eth0", "10.1.0.2/24"),
        (&lan, "eth0", "fd00:1::2/64"),
        (&gw, "lan", "10.1.0.1/24"),
        (&gw, "lan", "fd00:1::1/64"),
        (&gw, "wan", "192.0.2.1/24"),
        (&gw, "wan", "fd00:ff::1/64"),
        (&wan, "eth0", "192.0.2.2/24"),
        (&wan, "eth0", "fd00:ff::2/64"),
    ] {
        ns.ip(&["addr", "add", address, "dev", device, "nodad"]);
        ns.ip(&["link", "set", device, "up"]);
    }
    lan.ip(&["route", "add", "default", "via", "10.1.0.1"]);
    lan.ip(&["-6", "route", "add", "default", "via", "fd00:1::1"]);
    let mac = |ns: &Netns, device| {
        mac_of(ns, device)
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    let (host_mac, gw_lan_mac) = (mac(&lan, "eth0"), mac(&gw, "lan"));
    let peer_mac = mac(&wan, "eth0");
    for (ns, address, mac, device) in [
        (&lan, "10.1.0.1", &gw_lan_mac, "eth0"),
        (&lan, "fd00:1::1", &gw_lan_mac, "eth0"),
        (&gw, "10.1.0.2", &host_mac, "lan"),
        (&gw, NS_HOST6, &host_mac, "lan"),
        (&gw, "192.0.2.2", &peer_mac, "wan"),
        (&gw, NS_PEER6, &peer_mac, "wan"),
    ] {
        ns.ip(&[
            "neigh",
            "replace",
            address,
            "lladdr",
            mac,
            "dev",
            device,
            "nud",
            "permanent",
        ]);
    }
    Namespaces { lan, gw, wan }
}

/// The kernel is the judge: a Linux host sends DF datagrams too big for the tunnel through
/// a worker whose next hops (and MTUs) come from the FIB mirror; the worker's ICMP
/// Fragmentation Needed and Packet Too Big must pass the host's checks (checksums, quoted
/// packet matching its socket) for its route to the remote network to take the reported MTU
/// and its next send of the same size to fail with EMSGSIZE. A datagram of the new size then
/// goes through, and its ESP packet fills the WAN link exactly.
#[test]
fn a_host_behind_the_worker_learns_the_tunnel_mtu_in_namespaces() {
    let test = "a_host_behind_the_worker_learns_the_tunnel_mtu_in_namespaces";
    if !netns::can_run(test) {
        return;
    }
    let namespaces = narrow_wan_namespaces();
    let Namespaces { lan, gw, wan } = &namespaces;
    let table = TableFile::new();
    let mut writer = TableWriter::create(&table.0, 16).unwrap();
    install_pmtu_sas(&mut writer);
    let gw_wan_mac = mac_of(gw, "wan");
    // What the ESP core makes of the largest packet that fits, found by encapsulating.
    let params4 = sa_params(GW_WAN.into(), PEER.into(), Transport::NattUdp, SPI_OUT);
    let params6 = sa_params(
        v6(NS_GW_WAN6).into(),
        v6(NS_PEER6).into(),
        Transport::NattUdp,
        SPI_OUT6,
    );
    let mtu4 = longest_fitting(params4, NARROW_WAN_MTU);
    let mtu6 = longest_fitting(params6, NARROW_WAN_MTU);
    assert_eq!((mtu4, mtu6), (1338, 1318));

    let ready = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let stats: OnceLock<WorkerStats> = OnceLock::new();
    let (counters, frames) = std::thread::scope(|scope| {
        let gateway = scope.spawn(|| {
            gw.run(|| {
                let mirror = FibMirror::start().expect("the FIB mirror");
                let mut classifier = Classifier::load(ClassifierConfig::default()).unwrap();
                let _attached = classifier.attach("lan", AttachMode::Native).unwrap();
                for net in ["10.2.0.0/24", "fd00:2::/64"] {
                    classifier.add_policy(net.parse().unwrap()).unwrap();
                }
                let config = XskConfig {
                    frame_count: 256,
                    ring_size: 64,
                    ..XskConfig::default()
                };
                let lan_port = WorkerPort::bind("lan", 0, config).unwrap();
                classifier.register_xsk(0, lan_port.socket()).unwrap();
                let wan_port = WorkerPort::bind("wan", 0, config).unwrap();
                let reader = TableReader::open(&table.0).unwrap();
                let config = XskWorkerConfig {
                    batch: 32,
                    idle_poll: Duration::from_millis(20),
                    ..XskWorkerConfig::default()
                };
                let mut worker = XskWorker::new(
                    config,
                    vec![lan_port, wan_port],
                    TableSas::new(&reader),
                    mirror.handle(),
                    Handoff::new(HandoffConfig::new(1)).unwrap(),
                )
                .unwrap();
                let _ = stats.set(worker.stats());
                ready.store(true, Ordering::Release);
                worker.run(&stop).expect("the worker loop failed");
                worker.counters()
            })
        });
        let _stop_worker = StopOnDrop(&stop);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready.load(Ordering::Acquire) {
            assert!(!gateway.is_finished(), "the gateway failed to start");
            assert!(Instant::now() < deadline, "the gateway did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        let capture = Capture::start(wan, "eth0");
        let socket4 = lan.run(|| UdpSocket::bind("10.1.0.2:0")).unwrap();
        let socket6 = lan.run(|| UdpSocket::bind("[fd00:1::2]:0")).unwrap();
        dont_fragment(&socket4, false);
        dont_fragment(&socket6, true);
        let counters = || stats.get().unwrap().counters();
        for (socket, remote, header_len, mtu) in [
            (&socket4, "10.2.0.2", 28, mtu4),
            (&socket6, NS_REMOTE6, 48, mtu6),
        ] {
            let destination: std::net::SocketAddr = match remote.parse::<IpAddr>().unwrap() {
                IpAddr::V4(a) => (a, 9000).into(),
                IpAddr::V6(a) => (a, 9000).into(),
            };
            assert_eq!(
                route_mtu(lan, remote),
                None,
                "a path MTU before any was reported"
            );
            // A full-size LAN packet: the host's route allows it, the tunnel does not.
            let full = vec![0x5a; LAN_MTU as usize - header_len];
            socket.send_to(&full, destination).expect("the first send");
            let learnt = netns::wait_for(Duration::from_secs(5), || {
                route_mtu(lan, remote) == Some(mtu)
            });
            assert!(
                learnt,
                "{remote}: route MTU {:?}, expected {mtu}; {:?}",
                route_mtu(lan, remote),
                counters()
            );
            let refused = socket.send_to(&full, destination).unwrap_err();
            assert_eq!(refused.raw_os_error(), Some(libc::EMSGSIZE), "{refused}");
            socket
                .send_to(&vec![0xa5; mtu - header_len], destination)
                .expect("a datagram of the reported size");
        }
        let settled = netns::wait_for(Duration::from_secs(5), || counters().transmitted == 4);
        assert!(settled, "{:?}", counters());
        stop.store(true, Ordering::Release);
        let counters = gateway.join().expect("the gateway thread panicked");
        (counters, capture.stop())
    });
    assert_eq!(
        counters,
        WorkerCounters {
            received: 4,
            encapsulated: 2,
            too_big: 2,
            transmitted: 4,
            ..WorkerCounters::default()
        }
    );
    // On the WAN: the two datagrams of the reported size, encrypted, each filling the link.
    let (_, mut peer_in4) = peer_sas(Transport::NattUdp);
    let peer_in6_params = sa_params(
        v6(NS_PEER6).into(),
        v6(NS_GW_WAN6).into(),
        Transport::NattUdp,
        SPI_OUT6,
    );
    let mut peer_in6 = InboundSa::new(peer_in6_params, &keymat(SPI_OUT6 as u8)).unwrap();
    let mut inner_lens = Vec::new();
    for frame in frames.iter().filter(|frame| frame[6..12] == gw_wan_mac) {
        let WanFrame::NattUdp { first_word } = classify_wan_frame(frame) else {
            continue;
        };
        assert_eq!(frame.len(), 14 + NARROW_WAN_MTU, "fills the link exactly");
        let sa = if first_word == SPI_OUT {
            &mut peer_in4
        } else {
            &mut peer_in6
        };
        let inner = decapsulate(sa, &frame[14..]).expect("our ESP decrypts");
        inner_lens.push(inner.len());
    }
    inner_lens.sort_unstable();
    assert_eq!(inner_lens, [mtu6, mtu4]);
}

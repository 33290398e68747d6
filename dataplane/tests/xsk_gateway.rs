//! The AF_XDP gateway end to end, against the portable gateway as its peer: host A -- xipsec
//! over AF_XDP (XDP classifier on both ports) == xipsec over TUN and sockets -- host B. UDP
//! crosses both ways as ESP (plain, and in UDP for NAT-T); a capture between the gateways sees
//! only ESP. Two independent data planes interoperating is the check that neither only agrees
//! with itself. Needs root.

mod netns;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use netns::gateways::{
    deliver, gateway_in, host_socket, keymat, sa_params, sas, RunningGateway, Transport,
};
use netns::{
    classify_wan_frame, finish_checksums_in_software, mac_of, Capture, Topology, WanFrame, HOST_A,
    HOST_B,
};
use xipsec_dataplane::esp::Decapsulator;
use xipsec_dataplane::io::xsk::{XskConfig, XskSocket};
use xipsec_dataplane::table::{
    AddressRange, Direction, Keymat, Lifetimes, Policy, SaRecord, TableReader, TableWriter,
    ANY_PORT,
};
use xipsec_dataplane::worker::{
    SaSource, StaticSas, TableSas, XskGateway, XskGatewayCounters, XskPort,
};
use xipsec_ebpf::{AttachMode, Classifier, ClassifierConfig, IpNet};

const SPI_A_TO_B: u32 = 0x0000_c0d1;
const SPI_B_TO_A: u32 = 0x0000_d0c1;
const MARKER: &[u8] = b"XIPSEC-XSK-PLAINTEXT";
const EXCHANGES: usize = 20;

/// Where gateway A's SAs come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// Handed to the worker directly.
    Static,
    /// Installed in a shared table with a policy, as the control plane will.
    Table,
}

/// A table file under /dev/shm of the test's own, removed on drop.
struct TableFile(std::path::PathBuf);

impl TableFile {
    fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Self(std::path::PathBuf::from(format!(
            "/dev/shm/xipsec-xsk-test-{}-{n}",
            std::process::id()
        )))
    }
}

impl Drop for TableFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs the gateway until `stop` (or 30 s), after saying it is ready.
fn drive<S: SaSource>(
    mut gateway: XskGateway<S>,
    ready: &AtomicBool,
    stop: &AtomicBool,
) -> XskGateway<S> {
    ready.store(true, Ordering::Release);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
        if gateway.run_once() == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    gateway
}

/// The gateways' WAN addresses, with prefix length.
const WAN_V4: (&str, &str) = ("192.0.2.1/24", "192.0.2.2/24");
const WAN_V6: (&str, &str) = ("2001:db8:ffff::1/64", "2001:db8:ffff::2/64");

fn through_xsk_and_portable(
    test: &str,
    (wan_a, wan_b): (&str, &str),
    transport: Transport,
    source: Source,
) {
    if !netns::can_run(test) {
        return;
    }
    let topology = Topology::new(wan_a, wan_b);
    finish_checksums_in_software(&topology.host_a, "eth0");
    finish_checksums_in_software(&topology.host_b, "eth0");
    let address = |cidr: &str| -> IpAddr { cidr.split('/').next().unwrap().parse().unwrap() };
    let (wan_a, wan_b) = (address(wan_a), address(wan_b));
    let capture = Capture::start(&topology.gw_b, "wan");

    let portable = gateway_in(
        &topology.gw_b,
        wan_b,
        transport,
        "10.1.0.0/24",
        sas(wan_b, wan_a, transport, SPI_B_TO_A, SPI_A_TO_B),
    );

    let lan_next_hop = mac_of(&topology.host_a, "eth0");
    let wan_next_hop = mac_of(&topology.gw_b, "wan");
    let lan_mac = mac_of(&topology.gw_a, "lan");
    let wan_mac = mac_of(&topology.gw_a, "wan");
    let ready = AtomicBool::new(false);
    let stop = AtomicBool::new(false);

    let counters: XskGatewayCounters = std::thread::scope(|scope| {
        let gateway = scope.spawn(|| {
            topology.gw_a.run(|| {
                let config = XskConfig {
                    frame_count: 1024,
                    ring_size: 256,
                    ..XskConfig::default()
                };
                let mut lan_classifier = Classifier::load(ClassifierConfig::default()).unwrap();
                let _lan_attached = lan_classifier.attach("lan", AttachMode::Native).unwrap();
                lan_classifier
                    .add_policy("10.2.0.0/24".parse::<IpNet>().unwrap())
                    .unwrap();
                let lan_socket = XskSocket::bind("lan", 0, config).unwrap();
                lan_classifier.register_xsk(0, &lan_socket).unwrap();
                let mut wan_classifier = Classifier::load(ClassifierConfig::default()).unwrap();
                let _wan_attached = wan_classifier.attach("wan", AttachMode::Native).unwrap();
                let wan_socket = XskSocket::bind("wan", 0, config).unwrap();
                wan_classifier.register_xsk(0, &wan_socket).unwrap();

                let lan = XskPort {
                    socket: lan_socket,
                    mac: lan_mac,
                    next_hop: lan_next_hop,
                };
                let wan = XskPort {
                    socket: wan_socket,
                    mac: wan_mac,
                    next_hop: wan_next_hop,
                };
                match source {
                    Source::Static => {
                        let (outbound, inbound) =
                            sas(wan_a, wan_b, transport, SPI_A_TO_B, SPI_B_TO_A);
                        let sas = StaticSas { outbound, inbound };
                        let gateway = XskGateway::new(lan, wan, sas, Decapsulator::new(4500), 32);
                        let gateway = drive(gateway, &ready, &stop);
                        let drops: Vec<_> =
                            gateway.sas().inbound.counters().drops.nonzero().collect();
                        assert!(drops.is_empty(), "inbound SA drops: {drops:?}");
                        gateway.counters()
                    }
                    Source::Table => {
                        let table = TableFile::new();
                        let mut writer = TableWriter::create(&table.0, 16).unwrap();
                        let record = |direction, spi| SaRecord {
                            direction,
                            params: sa_params(wan_a, wan_b, transport, spi),
                            keymat: Keymat::new(&keymat(spi as u8)).unwrap(),
                            lifetimes: Lifetimes::default(),
                            owner_worker: 0,
                            installed_at: 0,
                            pair: None,
                        };
                        let out_slot = writer
                            .install(&record(Direction::Outbound, SPI_A_TO_B))
                            .unwrap();
                        let in_slot = writer
                            .install(&record(Direction::Inbound, SPI_B_TO_A))
                            .unwrap();
                        let prefix = |text: &str| {
                            let (address, len) = text.split_once('/').unwrap();
                            AddressRange::prefix(address.parse().unwrap(), len.parse().unwrap())
                                .unwrap()
                        };
                        writer
                            .set_policies(&[Policy {
                                local: prefix("10.1.0.0/24"),
                                remote: prefix("10.2.0.0/24"),
                                protocol: None,
                                local_ports: ANY_PORT,
                                remote_ports: ANY_PORT,
                                outbound: out_slot,
                            }])
                            .unwrap();
                        let reader = TableReader::open(&table.0).unwrap();
                        let sas = TableSas::new(&reader);
                        let gateway = XskGateway::new(lan, wan, sas, Decapsulator::new(4500), 32);
                        let counters = drive(gateway, &ready, &stop).counters();
                        // The worker reported its traffic into the table, every batch.
                        let sent = writer.status(out_slot).unwrap();
                        let received = writer.status(in_slot).unwrap();
                        assert!(sent.packets >= EXCHANGES as u64, "{sent:?}");
                        assert!(received.packets >= EXCHANGES as u64, "{received:?}");
                        assert_eq!(received.drops, 0, "{received:?}");
                        assert!(received.replay_top >= EXCHANGES as u64, "{received:?}");
                        counters
                    }
                }
            })
        });
        while !ready.load(Ordering::Acquire) {
            assert!(!gateway.is_finished(), "the AF_XDP gateway failed to start");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Only now: gateway B's first ESP must meet gateway A's XDP program, not its kernel.
        let running_b = RunningGateway::start(portable);
        let host_a = host_socket(&topology.host_a, HOST_A);
        let host_b = host_socket(&topology.host_b, HOST_B);
        for i in 0..EXCHANGES {
            let mut payload = MARKER.to_vec();
            payload.extend_from_slice(format!(" A->B {i}").as_bytes());
            assert_eq!(
                deliver(&host_a, &host_b, &payload),
                host_a.local_addr().unwrap()
            );
            let mut payload = MARKER.to_vec();
            payload.extend_from_slice(format!(" B->A {i}").as_bytes());
            assert_eq!(
                deliver(&host_b, &host_a, &payload),
                host_b.local_addr().unwrap()
            );
        }
        stop.store(true, Ordering::Release);
        drop(running_b.stop());
        gateway.join().expect("the AF_XDP gateway panicked")
    });

    assert!(counters.encapsulated >= EXCHANGES as u64, "{counters:?}");
    assert!(counters.decapsulated >= EXCHANGES as u64, "{counters:?}");
    assert_eq!(counters.esp_dropped, 0, "{counters:?}");
    assert_eq!(counters.tx_dropped, 0, "{counters:?}");
    let frames = capture.stop();
    let mut esp = 0;
    for frame in &frames {
        assert!(
            !frame.windows(MARKER.len()).any(|w| w == MARKER),
            "plaintext on the wire between the gateways"
        );
        match classify_wan_frame(frame) {
            WanFrame::Esp { spi } => {
                assert!(spi == SPI_A_TO_B || spi == SPI_B_TO_A, "SPI {spi:#x}");
                esp += 1;
            }
            WanFrame::NattUdp { first_word } => {
                assert!(first_word == SPI_A_TO_B || first_word == SPI_B_TO_A);
                esp += 1;
            }
            WanFrame::Housekeeping => {}
            other => panic!("unexpected frame between the gateways: {other:?}"),
        }
    }
    assert!(esp >= 2 * EXCHANGES, "only {esp} ESP frames seen");
}

#[test]
fn plain_esp_between_af_xdp_and_portable_gateways() {
    through_xsk_and_portable(
        "plain_esp_between_af_xdp_and_portable_gateways",
        WAN_V4,
        Transport::RawEsp,
        Source::Static,
    );
}

#[test]
fn sas_from_the_shared_table_between_af_xdp_and_portable_gateways() {
    through_xsk_and_portable(
        "sas_from_the_shared_table_between_af_xdp_and_portable_gateways",
        WAN_V4,
        Transport::NattUdp,
        Source::Table,
    );
}

#[test]
fn natt_between_af_xdp_and_portable_gateways() {
    through_xsk_and_portable(
        "natt_between_af_xdp_and_portable_gateways",
        WAN_V4,
        Transport::NattUdp,
        Source::Static,
    );
}

#[test]
fn plain_esp_over_ipv6_between_af_xdp_and_portable_gateways() {
    through_xsk_and_portable(
        "plain_esp_over_ipv6_between_af_xdp_and_portable_gateways",
        WAN_V6,
        Transport::RawEsp,
        Source::Static,
    );
}

#[test]
fn natt_over_ipv6_between_af_xdp_and_portable_gateways() {
    through_xsk_and_portable(
        "natt_over_ipv6_between_af_xdp_and_portable_gateways",
        WAN_V6,
        Transport::NattUdp,
        Source::Static,
    );
}

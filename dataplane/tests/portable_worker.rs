//! The multi-SA portable worker end to end, in network namespaces: host A -- gateway A ==
//! gateway B -- host B, each gateway a `PortableWorker` over the SAs and policies in its own
//! shared table, as the IKE daemon will run it. Routes to the remote subnets go through the
//! TUN device in routing table 220 (an `ip rule` looks it up), installed with `RouteSocket`.
//!
//! While the workers run, the test changes the tables as the daemon would: a NAT-T Child SA
//! carries the first subnet; a plain-ESP Child SA for a second subnet is installed and traffic
//! for it starts flowing; the first SA is replaced by one with new SPIs, which takes over; the
//! second is deleted and its traffic stops. A capture between the gateways sees ESP (in UDP
//! 4500 or IP protocol 50, with the SPIs of the moment) and IKE, never the plaintext. IKE on
//! port 4500 reaches the caller with its sender's address, and IKE sent with the worker's
//! `IkeSender` arrives with the non-ESP marker from port 4500.
//!
//! Needs root (namespaces, TUN, raw sockets, routes): without it each test prints "SKIPPED"
//! and passes, unless `XIPSEC_REQUIRE_ALL` is set.

mod netns;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use netns::gateways::{deliver, host_socket, keymat, sa_params, Transport};
use netns::{classify_wan_frame, Capture, Netns, Topology, WanFrame, HOST_A, HOST_B};
use xipsec_dataplane::esp::{DropReason, Fault};
use xipsec_dataplane::io::portable::{
    interface_index, ControlDatagram, ControlKind, EspSocket, EspTransport, GatewayConfig,
    IkeSender, PortableWorker, Route, RouteSocket, Tun, TunConfig, WorkerCounters,
    WorkerSetupError,
};
use xipsec_dataplane::table::{
    AddressRange, Direction, Keymat, Lifetimes, Policy, SaRecord, SlotId, TableReader, TableWriter,
    ANY_PORT,
};
use xipsec_dataplane::worker::{SaSource, TableSas};

/// Bytes every plaintext datagram carries; the WAN capture must never see them.
const MARKER: &[u8] = b"XIPSEC-WORKER-PLAINTEXT";
/// The routing table the routes into the TUN device go to (strongSwan's choice too).
const TABLE: u32 = 220;
/// Datagrams each way per phase, one at a time (each awaited).
const EXCHANGES: usize = 10;
/// The most a worker thread runs, whatever happens to the test.
const WORKER_LIMIT: Duration = Duration::from_secs(90);
const TIMEOUT: Duration = Duration::from_secs(5);

/// The first subnet's Child SA, in UDP (NAT-T), and its replacement.
const SPI_1_A_TO_B: u32 = 0x0000_1a01;
const SPI_1_B_TO_A: u32 = 0x0000_1b02;
const SPI_1R_A_TO_B: u32 = 0x0000_3a05;
const SPI_1R_B_TO_A: u32 = 0x0000_3b06;
/// The second subnet's Child SA, plain ESP.
const SPI_2_A_TO_B: u32 = 0x0000_2a03;
const SPI_2_B_TO_A: u32 = 0x0000_2b04;

const LAN_A: &str = "10.1.0.0/24";
const LAN_B: &str = "10.2.0.0/24";
/// The second subnet behind gateway B, and host B's address in it.
const LAN_B2: &str = "10.2.1.0/24";
const HOST_B2: &str = "10.2.1.2";

/// A directory for the tables, removed with everything in it on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "xipsec-portable-worker-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("creating the table directory");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn prefix(text: &str) -> AddressRange {
    let (address, len) = text.split_once('/').unwrap();
    AddressRange::prefix(address.parse().unwrap(), len.parse().unwrap()).unwrap()
}

fn route_to(text: &str, ifindex: u32) -> Route {
    let (address, len) = text.split_once('/').unwrap();
    Route {
        destination: address.parse().unwrap(),
        prefix_len: len.parse().unwrap(),
        ifindex,
        table: TABLE,
    }
}

/// `ip -n <netns> args…`, its standard output.
fn ip_output(netns: &Netns, args: &[&str]) -> String {
    let output = Command::new("ip")
        .args(["-n", netns.name()])
        .args(args)
        .output()
        .expect("running ip");
    assert!(output.status.success(), "ip {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What a worker handed to its caller.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Control {
    kind: ControlKind,
    peer: SocketAddr,
    local: SocketAddr,
    payload: Vec<u8>,
}

/// A worker on its own thread over the table at `table`; stopped and joined by `stop`, or on
/// drop, or after [`WORKER_LIMIT`].
struct RunningWorker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<WorkerCounters>>,
    control: mpsc::Receiver<Control>,
}

impl RunningWorker {
    fn start(tun: Tun, sockets: Vec<EspSocket>, table: PathBuf) -> RunningWorker {
        let stop = Arc::new(AtomicBool::new(false));
        let (sender, control) = mpsc::channel();
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let reader = TableReader::open(&table).expect("opening the table");
                let mut worker = PortableWorker::new(
                    tun,
                    sockets,
                    TableSas::new(&reader),
                    GatewayConfig::default(),
                )
                .expect("building the worker");
                let mut on_control = |datagram: ControlDatagram<'_>| {
                    let _ = sender.send(Control {
                        kind: datagram.kind,
                        peer: datagram.peer,
                        local: datagram.local,
                        payload: datagram.payload.to_vec(),
                    });
                };
                let deadline = Instant::now() + WORKER_LIMIT;
                let mut busy = false;
                while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
                    let wait = if busy {
                        Duration::ZERO
                    } else {
                        Duration::from_millis(20)
                    };
                    busy = worker
                        .run_once(wait, &mut on_control)
                        .expect("the worker loop failed");
                }
                worker.counters()
            })
        };
        RunningWorker {
            stop,
            thread: Some(thread),
            control,
        }
    }

    fn stop(mut self) -> WorkerCounters {
        self.stop.store(true, Ordering::Release);
        self.thread
            .take()
            .unwrap()
            .join()
            .expect("the worker thread panicked")
    }
}

impl Drop for RunningWorker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One gateway as its control plane sees it: the table writer and the policies in force.
struct Gateway<'n> {
    netns: &'n Netns,
    local: IpAddr,
    remote: IpAddr,
    writer: TableWriter,
    table: PathBuf,
    policies: Vec<Policy>,
    tun_index: u32,
    ike: IkeSender,
    /// The same UDP socket as a standard socket (`EspSocket::try_clone_udp`).
    udp_clone: UdpSocket,
}

impl<'n> Gateway<'n> {
    /// Creates the table, the TUN device and both ESP sockets (UDP on 4500 and raw) in
    /// `netns`; the caller starts the worker with what is returned.
    fn new(
        netns: &'n Netns,
        dir: &TempDir,
        local: IpAddr,
        remote: IpAddr,
    ) -> (Gateway<'n>, Tun, Vec<EspSocket>) {
        let table = dir.0.join(netns.name());
        let writer = TableWriter::create(&table, 16).expect("creating the table");
        let (tun, udp, raw, tun_index) = netns.run(|| {
            let tun = Tun::create(&TunConfig {
                mtu: Some(1400),
                ..TunConfig::new("tun0")
            })
            .expect("creating the TUN device");
            let udp = EspSocket::udp(SocketAddr::new(local, 4500)).expect("the UDP socket");
            let raw = EspSocket::raw(local).expect("the raw ESP socket");
            let index = interface_index(tun.name()).expect("the TUN device's index");
            (tun, udp, raw, index)
        });
        udp.set_recv_buffer(4 << 20).expect("SO_RCVBUFFORCE");
        raw.set_recv_buffer(4 << 20).expect("SO_RCVBUFFORCE");
        let ike = udp.ike_sender().expect("an IKE sender");
        assert!(raw.ike_sender().is_err(), "IKE cannot leave a raw socket");
        let udp_clone = udp.try_clone_udp().expect("a clone of the UDP socket");
        assert_eq!(
            udp_clone.local_addr().unwrap(),
            SocketAddr::new(local, 4500)
        );
        netns.ip(&["rule", "add", "pref", "100", "lookup", &TABLE.to_string()]);
        let gateway = Gateway {
            netns,
            local,
            remote,
            writer,
            table,
            policies: Vec::new(),
            tun_index,
            ike,
            udp_clone,
        };
        (gateway, tun, vec![udp, raw])
    }

    fn record(&self, direction: Direction, transport: Transport, spi: u32) -> SaRecord {
        SaRecord {
            direction,
            params: sa_params(self.local, self.remote, transport, spi),
            keymat: Keymat::new(&keymat(spi as u8)).unwrap(),
            lifetimes: Lifetimes::default(),
            owner_worker: 0,
            installed_at: 0,
            pair: None,
        }
    }

    fn install_inbound(&mut self, transport: Transport, spi: u32) -> SlotId {
        let record = self.record(Direction::Inbound, transport, spi);
        self.writer
            .install(&record)
            .expect("installing an inbound SA")
    }

    /// Installs an outbound SA and a policy from `local_lan` to `remote_lan` through it.
    fn install_outbound(
        &mut self,
        transport: Transport,
        spi: u32,
        (local_lan, remote_lan): (&str, &str),
    ) -> SlotId {
        let record = self.record(Direction::Outbound, transport, spi);
        let slot = self
            .writer
            .install(&record)
            .expect("installing an outbound SA");
        self.policies.push(Policy {
            local: prefix(local_lan),
            remote: prefix(remote_lan),
            protocol: None,
            local_ports: ANY_PORT,
            remote_ports: ANY_PORT,
            outbound: slot,
        });
        self.writer.set_policies(&self.policies).unwrap();
        slot
    }

    /// Moves the policies of outbound SA `old` to a new SA with `spi`, then deletes `old`.
    fn replace_outbound(&mut self, old: SlotId, transport: Transport, spi: u32) -> SlotId {
        let record = self.record(Direction::Outbound, transport, spi);
        let new = self.writer.install(&record).expect("installing the new SA");
        for policy in &mut self.policies {
            if policy.outbound == old {
                policy.outbound = new;
            }
        }
        self.writer.set_policies(&self.policies).unwrap();
        self.writer.delete(old).unwrap();
        new
    }

    /// Deletes an outbound SA and the policies through it.
    fn delete_outbound(&mut self, slot: SlotId) {
        self.policies.retain(|policy| policy.outbound != slot);
        self.writer.set_policies(&self.policies).unwrap();
        self.writer.delete(slot).unwrap();
    }

    fn add_route(&self, to: &str) {
        let route = route_to(to, self.tun_index);
        self.netns
            .run(|| RouteSocket::open()?.add(&route))
            .unwrap_or_else(|e| panic!("adding the route {route}: {e}"));
    }

    fn routes(&self) -> String {
        ip_output(self.netns, &["route", "show", "table", &TABLE.to_string()])
    }
}

fn datagram(label: &str, i: usize) -> Vec<u8> {
    let mut bytes = MARKER.to_vec();
    bytes.extend_from_slice(format!(" {label} #{i} ").as_bytes());
    bytes.resize(300, b'.');
    bytes
}

/// `EXCHANGES` datagrams each way between `a` and `b`, each awaited.
fn exchange(a: &UdpSocket, b: &UdpSocket, label: &str) {
    for i in 0..EXCHANGES {
        let source = deliver(a, b, &datagram(&format!("{label} A->B"), i));
        assert_eq!(source, a.local_addr().unwrap());
        let source = deliver(b, a, &datagram(&format!("{label} B->A"), i));
        assert_eq!(source, b.local_addr().unwrap());
    }
}

/// Sends one datagram and checks that it does not arrive within the socket's read timeout
/// (1 s): a gateway must have dropped it.
fn assert_blocked(from: &UdpSocket, to: &UdpSocket, label: &str) {
    let payload = datagram(label, 0);
    from.send_to(&payload, to.local_addr().unwrap()).unwrap();
    let mut buf = [0u8; 2048];
    while let Ok(n) = to.recv(&mut buf) {
        assert_ne!(&buf[..n], &payload[..], "{label}: crossed without an SA");
    }
}

/// ESP frames between the gateways, by SPI; panics on plaintext and on anything that is
/// neither ESP of the expected transport, IKE / keepalives on 4500, nor link housekeeping.
fn esp_by_spi(frames: &[Vec<u8>], udp_spis: &[u32], raw_spis: &[u32]) -> Vec<u32> {
    let mut spis = Vec::new();
    for frame in frames {
        assert!(
            !frame.windows(MARKER.len()).any(|w| w == MARKER),
            "plaintext on the wire: {frame:02x?}"
        );
        match classify_wan_frame(frame) {
            WanFrame::NattUdp { first_word: 0 } => {} // IKE behind the marker, a keepalive
            WanFrame::NattUdp { first_word: spi } => {
                assert!(udp_spis.contains(&spi), "ESP in UDP with SPI {spi:#x}");
                spis.push(spi);
            }
            WanFrame::Esp { spi } => {
                assert!(raw_spis.contains(&spi), "plain ESP with SPI {spi:#x}");
                spis.push(spi);
            }
            WanFrame::Housekeeping => {}
            other => panic!("unexpected frame between the gateways: {other:?} {frame:02x?}"),
        }
    }
    spis
}

fn count(spis: &[u32], spi: u32) -> usize {
    spis.iter().filter(|&&s| s == spi).count()
}

fn check_counters(name: &str, counters: &WorkerCounters) {
    eprintln!("{name}: {counters:#?}");
    let drops = |d: &xipsec_dataplane::esp::DropCounters| d.nonzero().collect::<Vec<_>>();
    assert_eq!(
        counters.encap_drops.total(),
        0,
        "{name}: {:?}",
        drops(&counters.encap_drops)
    );
    assert_eq!(
        counters.decap_drops.total(),
        0,
        "{name}: {:?}",
        drops(&counters.decap_drops)
    );
    assert_eq!(counters.no_socket, 0, "{name}");
    assert_eq!(counters.esp_tx.errors, 0, "{name}: {:?}", counters.esp_tx);
    assert_eq!(
        counters.esp_tx.discarded, 0,
        "{name}: {:?}",
        counters.esp_tx
    );
    assert_eq!(
        counters.esp_rx.discarded, 0,
        "{name}: {:?}",
        counters.esp_rx
    );
    assert_eq!(counters.tun_tx.errors, 0, "{name}: {:?}", counters.tun_tx);
    // Three phases of exchanges through this gateway, each way.
    assert!(counters.encapsulated >= 3 * EXCHANGES as u64, "{name}");
    assert!(counters.decapsulated >= 3 * EXCHANGES as u64, "{name}");
}

fn child_sas_from_the_table(test: &str, wan_a: &str, wan_b: &str) {
    if !netns::can_run(test) {
        return;
    }
    let topology = Topology::new(wan_a, wan_b);
    // The second subnet behind gateway B: host B answers there too.
    topology
        .gw_b
        .ip(&["addr", "add", "10.2.1.1/24", "dev", "lan"]);
    topology
        .host_b
        .ip(&["addr", "add", "10.2.1.2/24", "dev", "eth0"]);
    let address = |cidr: &str| -> IpAddr { cidr.split('/').next().unwrap().parse().unwrap() };
    let (wan_a, wan_b) = (address(wan_a), address(wan_b));
    let dir = TempDir::new();

    let (mut gw_a, tun_a, sockets_a) = Gateway::new(&topology.gw_a, &dir, wan_a, wan_b);
    let (mut gw_b, tun_b, sockets_b) = Gateway::new(&topology.gw_b, &dir, wan_b, wan_a);

    // The first Child SA, in UDP, before the workers start.
    let in_1_a = gw_a.install_inbound(Transport::NattUdp, SPI_1_B_TO_A);
    let in_1_b = gw_b.install_inbound(Transport::NattUdp, SPI_1_A_TO_B);
    let out_1_a = gw_a.install_outbound(Transport::NattUdp, SPI_1_A_TO_B, (LAN_A, LAN_B));
    let out_1_b = gw_b.install_outbound(Transport::NattUdp, SPI_1_B_TO_A, (LAN_B, LAN_A));
    gw_a.add_route(LAN_B);
    gw_b.add_route(LAN_A);
    assert!(
        gw_a.routes().contains("10.2.0.0/24 dev tun0"),
        "{}",
        gw_a.routes()
    );

    let capture = Capture::start(&topology.gw_a, "wan");
    // The same capture on the plaintext side proves the marker check can fail.
    let lan_capture = Capture::start(&topology.gw_a, "lan");
    let running_a = RunningWorker::start(tun_a, sockets_a, gw_a.table.clone());
    let running_b = RunningWorker::start(tun_b, sockets_b, gw_b.table.clone());
    let host_a = host_socket(&topology.host_a, HOST_A);
    let host_b = host_socket(&topology.host_b, HOST_B);
    let host_b2 = host_socket(&topology.host_b, HOST_B2);

    // Phase 1: the first subnet, through the NAT-T SA.
    exchange(&host_a, &host_b, "first");

    // IKE and a keepalive on gateway A's port 4500 reach the caller, with the sender's address.
    let peer = topology
        .gw_b
        .run(|| UdpSocket::bind((wan_b, 0)))
        .expect("the IKE peer's socket");
    peer.set_read_timeout(Some(TIMEOUT)).unwrap();
    let peer_address = peer.local_addr().unwrap();
    let port_4500 = SocketAddr::new(wan_a, 4500);
    peer.send_to(b"\0\0\0\0IKE_SA_INIT request", port_4500)
        .unwrap();
    peer.send_to(&[0xFF], port_4500).unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        match running_a.control.recv_timeout(TIMEOUT) {
            Ok(control) => got.push(control),
            Err(e) => panic!("control datagrams so far {got:?}: {e}"),
        }
    }
    assert!(
        got.contains(&Control {
            kind: ControlKind::Ike,
            peer: peer_address,
            local: port_4500,
            payload: b"\0\0\0\0IKE_SA_INIT request".to_vec(),
        }),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|c| c.kind == ControlKind::Keepalive && c.peer == peer_address),
        "{got:?}"
    );

    // IKE sent from another thread while the worker runs leaves port 4500 with the marker.
    let mut buf = [0u8; 128];
    assert_eq!(
        gw_a.ike
            .send_ike(peer_address, b"IKE_SA_INIT response")
            .unwrap(),
        24
    );
    let (n, from) = peer.recv_from(&mut buf).expect("IKE from the IKE sender");
    assert_eq!(&buf[..n], b"\0\0\0\0IKE_SA_INIT response");
    assert_eq!(from, port_4500);
    gw_a.udp_clone
        .send_to(b"\0\0\0\0IKE_AUTH response", peer_address)
        .unwrap();
    let (n, from) = peer
        .recv_from(&mut buf)
        .expect("IKE from the cloned socket");
    assert_eq!(&buf[..n], b"\0\0\0\0IKE_AUTH response");
    assert_eq!(from, port_4500);
    assert_eq!(gw_a.ike.local_addr(), port_4500);

    // Phase 2: a second subnet. Routed into the TUN device but without an SA, its traffic
    // is dropped by the worker; once its (plain ESP) Child SA is installed, it flows.
    gw_a.add_route(LAN_B2);
    assert_blocked(&host_a, &host_b2, "before the second SA");
    let in_2_a = gw_a.install_inbound(Transport::RawEsp, SPI_2_B_TO_A);
    let _in_2_b = gw_b.install_inbound(Transport::RawEsp, SPI_2_A_TO_B);
    let out_2_a = gw_a.install_outbound(Transport::RawEsp, SPI_2_A_TO_B, (LAN_A, LAN_B2));
    let _out_2_b = gw_b.install_outbound(Transport::RawEsp, SPI_2_B_TO_A, (LAN_B2, LAN_A));
    exchange(&host_a, &host_b2, "second");
    // The first SA still carries the first subnet.
    exchange(&host_a, &host_b, "first again");

    let frames = capture.stop();
    let lan_frames = lan_capture.stop();
    assert!(
        lan_frames
            .iter()
            .any(|frame| frame.windows(MARKER.len()).any(|w| w == MARKER)),
        "the capture on the LAN side never saw the plaintext marker"
    );
    let spis = esp_by_spi(
        &frames,
        &[SPI_1_A_TO_B, SPI_1_B_TO_A],
        &[SPI_2_A_TO_B, SPI_2_B_TO_A],
    );
    for spi in [SPI_1_A_TO_B, SPI_1_B_TO_A] {
        assert!(
            count(&spis, spi) >= 2 * EXCHANGES,
            "SPI {spi:#x}: {spis:x?}"
        );
    }
    for spi in [SPI_2_A_TO_B, SPI_2_B_TO_A] {
        assert!(count(&spis, spi) >= EXCHANGES, "SPI {spi:#x}: {spis:x?}");
    }

    // Phase 3: the first SA is replaced (a rekey): new inbound SAs first, then the policies
    // move to the new outbound SAs and the old ones go.
    let capture = Capture::start(&topology.gw_a, "wan");
    let in_1r_a = gw_a.install_inbound(Transport::NattUdp, SPI_1R_B_TO_A);
    let in_1r_b = gw_b.install_inbound(Transport::NattUdp, SPI_1R_A_TO_B);
    let out_1r_a = gw_a.replace_outbound(out_1_a, Transport::NattUdp, SPI_1R_A_TO_B);
    let out_1r_b = gw_b.replace_outbound(out_1_b, Transport::NattUdp, SPI_1R_B_TO_A);
    gw_a.writer.delete(in_1_a).unwrap();
    gw_b.writer.delete(in_1_b).unwrap();
    exchange(&host_a, &host_b, "replaced");
    let frames = capture.stop();
    let spis = esp_by_spi(
        &frames,
        &[SPI_1R_A_TO_B, SPI_1R_B_TO_A],
        &[SPI_2_A_TO_B, SPI_2_B_TO_A],
    );
    for spi in [SPI_1R_A_TO_B, SPI_1R_B_TO_A] {
        assert!(count(&spis, spi) >= EXCHANGES, "SPI {spi:#x}: {spis:x?}");
    }
    // The workers reported the new SAs' traffic into the tables.
    for (gw, out, inbound) in [(&gw_a, out_1r_a, in_1r_a), (&gw_b, out_1r_b, in_1r_b)] {
        let sent = gw.writer.status(out).unwrap();
        let received = gw.writer.status(inbound).unwrap();
        assert!(sent.packets >= EXCHANGES as u64, "{sent:?}");
        assert!(received.packets >= EXCHANGES as u64, "{received:?}");
        assert_eq!(received.drops, 0, "{received:?}");
    }

    // Phase 4: the second SA is deleted on gateway A; its traffic stops there.
    gw_a.delete_outbound(out_2_a);
    gw_a.writer.delete(in_2_a).unwrap();
    assert_blocked(&host_a, &host_b2, "after the second SA is gone");
    // And its route goes too; deleting it twice is the kernel's ESRCH.
    let route_2 = route_to(LAN_B2, gw_a.tun_index);
    topology
        .gw_a
        .run(|| RouteSocket::open()?.delete(&route_2))
        .expect("deleting the route");
    assert!(!gw_a.routes().contains("10.2.1.0/24"), "{}", gw_a.routes());
    let again = topology
        .gw_a
        .run(|| RouteSocket::open()?.delete(&route_2))
        .expect_err("deleting a missing route");
    assert_eq!(again.raw_os_error(), Some(libc::ESRCH), "{again}");

    let counters_a = running_a.stop();
    let counters_b = running_b.stop();
    check_counters("gateway A", &counters_a);
    check_counters("gateway B", &counters_b);
    assert_eq!(counters_a.ike_to_caller, 1);
    assert_eq!(counters_a.keepalives_to_caller, 1);
    // At least the datagram sent before the second SA existed and the one after it went.
    assert!(counters_a.no_sa >= 2, "{counters_a:?}");
}

#[test]
fn child_sas_from_the_table_over_ipv4() {
    child_sas_from_the_table(
        "child_sas_from_the_table_over_ipv4",
        "192.0.2.1/24",
        "192.0.2.2/24",
    );
}

#[test]
fn child_sas_from_the_table_over_ipv6() {
    child_sas_from_the_table(
        "child_sas_from_the_table_over_ipv6",
        "2001:db8:ffff::1/64",
        "2001:db8:ffff::2/64",
    );
}

/// Routes into a table through a TUN device, checked against `ip route`'s view: added,
/// replaced onto another device, deleted, and the kernel's refusals as errors.
#[test]
fn routes_through_the_tun_device() {
    if !netns::can_run("routes_through_the_tun_device") {
        return;
    }
    let netns = Netns::new(format!("{}-rt", netns::unique_prefix()));
    let table = 1234u32;
    let show = |family: &str| {
        ip_output(
            &netns,
            &[family, "route", "show", "table", &table.to_string()],
        )
    };
    netns.run(|| {
        let tun0 = Tun::create(&TunConfig::new("tun0")).unwrap();
        let tun1 = Tun::create(&TunConfig::new("tun1")).unwrap();
        let index0 = interface_index(tun0.name()).unwrap();
        let index1 = interface_index(tun1.name()).unwrap();
        assert_ne!(index0, index1);
        let mut routes = RouteSocket::open().unwrap();
        let v4 = |ifindex| Route {
            destination: "10.9.0.0".parse().unwrap(),
            prefix_len: 16,
            ifindex,
            table,
        };
        let v6 = |ifindex| Route {
            destination: "2001:db8:9::".parse().unwrap(),
            prefix_len: 48,
            ifindex,
            table,
        };

        routes.add(&v4(index0)).unwrap();
        routes.add(&v6(index0)).unwrap();
        assert_eq!(
            show("-4").trim(),
            "10.9.0.0/16 dev tun0 proto static scope link"
        );
        assert!(
            show("-6").starts_with("2001:db8:9::/48 dev tun0 proto static"),
            "{}",
            show("-6")
        );
        // Adding again replaces: one route, now through the other device.
        routes.add(&v4(index1)).unwrap();
        routes.add(&v6(index1)).unwrap();
        assert_eq!(
            show("-4").trim(),
            "10.9.0.0/16 dev tun1 proto static scope link"
        );
        assert_eq!(show("-6").lines().count(), 1, "{}", show("-6"));
        assert!(show("-6").contains("dev tun1"), "{}", show("-6"));
        // The main table is untouched.
        assert!(!ip_output(&netns, &["route", "show"]).contains("10.9.0.0"));

        // Deleting a route through the wrong device finds nothing.
        let wrong = routes.delete(&v4(index0)).unwrap_err();
        assert_eq!(wrong.raw_os_error(), Some(libc::ESRCH), "{wrong}");
        routes.delete(&v4(index1)).unwrap();
        routes.delete(&v6(index1)).unwrap();
        assert_eq!(show("-4").trim(), "");
        assert_eq!(show("-6").trim(), "");

        let gone = routes.delete(&v4(index1)).unwrap_err();
        assert_eq!(gone.raw_os_error(), Some(libc::ESRCH), "{gone}");
        let no_device = routes.add(&v4(index1 + 1000)).unwrap_err();
        assert_eq!(no_device.raw_os_error(), Some(libc::ENODEV), "{no_device}");
        let mut host_bits = v4(index0);
        host_bits.destination = "10.9.0.1".parse().unwrap();
        let invalid = routes.add(&host_bits).unwrap_err();
        assert_eq!(
            invalid.kind(),
            std::io::ErrorKind::InvalidInput,
            "{invalid}"
        );
        assert!(interface_index("no-such-dev0").is_err());
    });
}

/// A worker needs a socket, and at most one per family and transport.
#[test]
fn a_worker_refuses_ambiguous_sockets() {
    if !netns::can_run("a_worker_refuses_ambiguous_sockets") {
        return;
    }
    let netns = Netns::new(format!("{}-ws", netns::unique_prefix()));
    let dir = TempDir::new();
    let path = dir.0.join("table");
    let _writer = TableWriter::create(&path, 4).unwrap();
    netns.run(|| {
        let reader = TableReader::open(&path).unwrap();
        // A new name each time: a closed TUN device goes away asynchronously, and creating
        // one of the same name at once can meet EBUSY.
        let next = std::cell::Cell::new(0);
        let tun = || {
            next.set(next.get() + 1);
            Tun::create(&TunConfig::new(&format!("tun{}", next.get()))).unwrap()
        };
        let none = PortableWorker::new(tun(), [], TableSas::new(&reader), GatewayConfig::default());
        assert_eq!(none.unwrap_err(), WorkerSetupError::NoSocket);
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let two = [
            EspSocket::udp(SocketAddr::new(loopback, 0)).unwrap(),
            EspSocket::raw(loopback).unwrap(),
            EspSocket::udp(SocketAddr::new(loopback, 0)).unwrap(),
        ];
        let duplicate =
            PortableWorker::new(tun(), two, TableSas::new(&reader), GatewayConfig::default());
        assert_eq!(
            duplicate.unwrap_err(),
            WorkerSetupError::DuplicateSocket {
                transport: EspTransport::Udp,
                ipv6: false
            }
        );
        let fine = PortableWorker::new(
            tun(),
            [
                EspSocket::udp(SocketAddr::new(loopback, 0)).unwrap(),
                EspSocket::raw(loopback).unwrap(),
            ],
            TableSas::new(&reader),
            GatewayConfig::default(),
        )
        .unwrap();
        assert_eq!(fine.sockets().len(), 2);
    });
}

/// The worker driven round by round from the test thread: a policy installed while the
/// worker waited in `poll(2)` already covers the first packet after it, and a policy deleted
/// meanwhile no longer does. Nothing else reaches the TUN device (IPv6 is off), so each
/// round's counters say exactly what became of the one datagram sent.
#[test]
fn table_changes_apply_to_the_very_next_packet() {
    if !netns::can_run("table_changes_apply_to_the_very_next_packet") {
        return;
    }
    let netns = Netns::new(format!("{}-nx", netns::unique_prefix()));
    netns.sysctl("net/ipv6/conf/all/disable_ipv6", "1");
    netns.sysctl("net/ipv6/conf/default/disable_ipv6", "1");
    // The outer side: a veth whose far end swallows what is sent to the (absent) peer.
    netns.ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"]);
    netns.ip(&["addr", "add", "192.0.2.1/24", "dev", "d0"]);
    netns.ip(&["link", "set", "d0", "up"]);
    netns.ip(&["link", "set", "d1", "up"]);
    netns.ip(&[
        "neigh",
        "add",
        "192.0.2.2",
        "lladdr",
        "02:00:00:00:00:02",
        "dev",
        "d0",
        "nud",
        "permanent",
    ]);
    let local: IpAddr = "192.0.2.1".parse().unwrap();
    let remote: IpAddr = "192.0.2.2".parse().unwrap();
    let dir = TempDir::new();
    let path = dir.0.join("table");
    let mut writer = TableWriter::create(&path, 4).unwrap();
    let (tun, udp, sender) = netns.run(|| {
        let tun = Tun::create(&TunConfig::new("tun0")).unwrap();
        let route = Route {
            destination: "10.9.0.0".parse().unwrap(),
            prefix_len: 24,
            ifindex: interface_index(tun.name()).unwrap(),
            table: xipsec_dataplane::io::portable::RT_TABLE_MAIN,
        };
        RouteSocket::open().unwrap().add(&route).unwrap();
        let udp = EspSocket::udp(SocketAddr::new(local, 4500)).unwrap();
        let sender = UdpSocket::bind((local, 0)).unwrap();
        (tun, udp, sender)
    });
    let reader = TableReader::open(&path).unwrap();
    let mut worker =
        PortableWorker::new(tun, [udp], TableSas::new(&reader), GatewayConfig::default()).unwrap();
    // Rounds until the TUN device has given `packets` packets in all (at least one round,
    // at most 20).
    fn rounds_until_read<S: SaSource>(
        worker: &mut PortableWorker<S>,
        packets: u64,
    ) -> WorkerCounters {
        let mut on_control = |_: ControlDatagram<'_>| panic!("nothing arrives on the ESP socket");
        for _ in 0..20 {
            worker
                .run_once(Duration::from_millis(250), &mut on_control)
                .unwrap();
            if worker.counters().tun_rx.packets >= packets {
                break;
            }
        }
        worker.counters()
    }
    // A round that waited and found nothing.
    let idle = rounds_until_read(&mut worker, 0);
    assert_eq!(idle.tun_rx.packets, 0);
    assert_eq!(idle.rounds, 1);

    // While the worker is not looking: an SA and a policy for 10.9.0.0/24.
    let slot = writer
        .install(&SaRecord {
            direction: Direction::Outbound,
            params: sa_params(local, remote, Transport::NattUdp, 0x0909),
            keymat: Keymat::new(&keymat(9)).unwrap(),
            lifetimes: Lifetimes::default(),
            owner_worker: 0,
            installed_at: 0,
            pair: None,
        })
        .unwrap();
    writer
        .set_policies(&[Policy {
            local: prefix("0.0.0.0/0"),
            remote: prefix("10.9.0.0/24"),
            protocol: None,
            local_ports: ANY_PORT,
            remote_ports: ANY_PORT,
            outbound: slot,
        }])
        .unwrap();
    sender
        .send_to(&datagram("first", 0), "10.9.0.5:7000")
        .unwrap();
    let after_install = rounds_until_read(&mut worker, 1);
    assert_eq!(after_install.tun_rx.packets, 1, "{after_install:?}");
    assert_eq!(after_install.encapsulated, 1, "{after_install:?}");
    assert_eq!(after_install.no_sa, 0, "{after_install:?}");
    assert_eq!(after_install.esp_tx.packets, 1, "{after_install:?}");
    assert_eq!(writer.status(slot).unwrap().packets, 1);

    // And again while it is not looking: the policy and the SA go.
    writer.set_policies(&[]).unwrap();
    writer.delete(slot).unwrap();
    sender
        .send_to(&datagram("second", 1), "10.9.0.5:7000")
        .unwrap();
    let after_delete = rounds_until_read(&mut worker, 2);
    assert_eq!(after_delete.tun_rx.packets, 2, "{after_delete:?}");
    assert_eq!(after_delete.encapsulated, 1, "{after_delete:?}");
    assert_eq!(after_delete.no_sa, 1, "{after_delete:?}");
    assert_eq!(after_delete.esp_tx.packets, 1, "{after_delete:?}");
}

/// The Child SA between the subnets, for the selector check.
const SPI_SEL_A_TO_B: u32 = 0x0000_5a07;
const SPI_SEL_B_TO_A: u32 = 0x0000_5b08;
/// An address outside every selector gateway A holds, which gateway B's worker is made to
/// send through the Child SA anyway (a peer authorised for 10.2.0.0/24 injecting packets
/// from elsewhere).
const ROGUE: &str = "10.9.9.9";
const ROGUE_PACKETS: usize = 5;

/// RFC 4301 §5.2 in the worker: gateway B (the peer) holds a valid Child SA for
/// 10.2.0.0/24 <-> 10.1.0.0/24, and is made to send through it packets from 10.9.9.9 too.
/// Gateway A decrypts them, finds them outside the Child SA's selectors and drops them as
/// `policy_mismatch`, counted on the inbound SA: host A never sees them, while traffic from
/// inside the selectors is delivered. Reverse-path filtering is off on gateway A and host A,
/// so without the check the rogue packets would arrive.
#[test]
fn a_peer_cannot_send_outside_its_selectors() {
    if !netns::can_run("a_peer_cannot_send_outside_its_selectors") {
        return;
    }
    let topology = Topology::new("192.0.2.1/24", "192.0.2.2/24");
    let wan_a: IpAddr = "192.0.2.1".parse().unwrap();
    let wan_b: IpAddr = "192.0.2.2".parse().unwrap();
    let dir = TempDir::new();
    let (mut gw_a, tun_a, sockets_a) = Gateway::new(&topology.gw_a, &dir, wan_a, wan_b);
    let (mut gw_b, tun_b, sockets_b) = Gateway::new(&topology.gw_b, &dir, wan_b, wan_a);
    for (netns, devices) in [
        (&topology.gw_a, &["all", "default", "lan", "tun0"][..]),
        (&topology.host_a, &["all", "default", "eth0"][..]),
    ] {
        for device in devices {
            netns.sysctl(&format!("net/ipv4/conf/{device}/rp_filter"), "0");
        }
    }
    topology
        .gw_b
        .ip(&["addr", "add", &format!("{ROGUE}/32"), "dev", "lo"]);

    // Gateway A as the daemon installs a Child SA: outbound first, then the inbound SA with
    // the outbound one as its pair.
    let out_a = gw_a.install_outbound(Transport::NattUdp, SPI_SEL_A_TO_B, (LAN_A, LAN_B));
    let mut inbound = gw_a.record(Direction::Inbound, Transport::NattUdp, SPI_SEL_B_TO_A);
    inbound.pair = Some(out_a);
    let in_a = gw_a
        .writer
        .install(&inbound)
        .expect("installing the inbound SA");
    // Gateway B sends 10.9.9.0/24 through the same SA as its own subnet.
    gw_b.install_inbound(Transport::NattUdp, SPI_SEL_A_TO_B);
    let out_b = gw_b.install_outbound(Transport::NattUdp, SPI_SEL_B_TO_A, (LAN_B, LAN_A));
    gw_b.policies.push(Policy {
        local: prefix("10.9.9.0/24"),
        ..gw_b.policies[0]
    });
    gw_b.writer.set_policies(&gw_b.policies).unwrap();
    gw_a.add_route(LAN_B);
    gw_b.add_route(LAN_A);

    let running_a = RunningWorker::start(tun_a, sockets_a, gw_a.table.clone());
    let running_b = RunningWorker::start(tun_b, sockets_b, gw_b.table.clone());
    let host_a = host_socket(&topology.host_a, HOST_A);
    let host_b = host_socket(&topology.host_b, HOST_B);
    let rogue = topology
        .gw_b
        .run(|| UdpSocket::bind((ROGUE, 0)))
        .expect("the rogue socket");

    exchange(&host_a, &host_b, "inside the selectors");
    for i in 0..ROGUE_PACKETS {
        rogue
            .send_to(&datagram("rogue", i), host_a.local_addr().unwrap())
            .unwrap();
    }
    // Everything that reaches host A until it has been quiet for its read timeout (1 s).
    let mut buf = [0u8; 2048];
    while let Ok((n, source)) = host_a.recv_from(&mut buf) {
        assert!(
            !buf[..n].windows(5).any(|w| w == b"rogue"),
            "a packet from outside the selectors reached host A from {source}"
        );
    }
    // Inside the selectors, traffic still flows both ways.
    exchange(&host_a, &host_b, "after the rogue packets");

    let counters_a = running_a.stop();
    let counters_b = running_b.stop();
    eprintln!("gateway A: {counters_a:#?}\ngateway B: {counters_b:#?}");
    // Gateway B did send them through the SA, and gateway A refused each, blaming the peer.
    // (At least: a datagram not answered within a second is sent again.)
    let sent = gw_b.writer.status(out_b).unwrap();
    assert!(
        sent.packets >= (2 * EXCHANGES + ROGUE_PACKETS) as u64,
        "{sent:?}"
    );
    assert_eq!(
        counters_a.decap_drops.get(DropReason::PolicyMismatch),
        ROGUE_PACKETS as u64,
        "{:?}",
        counters_a.decap_drops.nonzero().collect::<Vec<_>>()
    );
    assert_eq!(DropReason::PolicyMismatch.fault(), Fault::Peer);
    assert_eq!(
        counters_a.decap_drops.total(),
        ROGUE_PACKETS as u64,
        "{:?}",
        counters_a.decap_drops.nonzero().collect::<Vec<_>>()
    );
    let received = gw_a.writer.status(in_a).unwrap();
    assert_eq!(received.drops, ROGUE_PACKETS as u64, "{received:?}");
    assert!(received.packets >= 2 * EXCHANGES as u64, "{received:?}");
    // Only what was inside the selectors was written to the TUN device.
    assert_eq!(counters_a.tun_tx.packets, counters_a.decapsulated);
    assert!(counters_a.decapsulated >= 2 * EXCHANGES as u64);
}

//! Two xipsec gateways with hosts behind each, in network namespaces joined by 2-queue veths,
//! forwarding through the AF_XDP data plane (`xipsec-dataplane`, started by xipsecd): ICMP, UDP
//! and TCP cross, the wire shows only ESP; the same with NAT-T; IKE reaches xipsecd through
//! the XDP program (it passes to the kernel); Child SAs rekeyed under traffic lose nothing; and
//! the control plane killed and restarted under traffic loses nothing, because the data plane
//! is a process of its own. The portable backend passes the traffic tests too, alone and as the
//! AF_XDP gateway's peer (two data planes agreeing on the wire, not only with themselves).
//!
//! The gateways' kernels do not forward (`ip_forward = 0`) in AF_XDP runs: whatever crosses,
//! the data plane carried.

mod xipsecd_run;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use xipsec_dataplane::process::{running, send_stop, Stop};
use xipsec_testkit::netns::{
    classify_wan_frame, finish_checksums_in_software, unique_prefix, wait_for, Capture, Netns,
    WanFrame,
};
use xipsec_testkit::{require, Need};
use xipsecd_run::Xipsecd;

const HOST_A: &str = "10.1.0.2";
const HOST_B: &str = "10.2.0.2";
const WAN_A: &str = "192.0.2.1";
const WAN_B: &str = "192.0.2.2";
/// The manual SAs' selectors: each side's IPv4 and IPv6 LAN.
const NETS_A: &str = "\"10.1.0.0/24\", \"2001:db8:1::/64\"";
const NETS_B: &str = "\"10.2.0.0/24\", \"2001:db8:2::/64\"";
const WAN6_A: &str = "2001:db8:ffff::1";
const WAN6_B: &str = "2001:db8:ffff::2";
const KEY_AB: &str = "hex:00112233445566778899aabbccddeeff01020304";
const KEY_BA: &str = "hex:ffeeddccbbaa99887766554433221100a1a2a3a4";
const UP: Duration = Duration::from_secs(20);

/// host A — gateway A ═ wire ═ gateway B — host B; every veth with two queues each way, so
/// that two workers per gateway have traffic. The wire is a bridge in a namespace of its own:
/// the place to capture, since frames an AF_XDP socket sends or an XDP program redirects pass
/// no packet tap on the gateways themselves.
struct Site {
    host_a: Netns,
    gw_a: Netns,
    wire: Netns,
    gw_b: Netns,
    host_b: Netns,
}

fn link(from: &Netns, name: &str, peer: &str, to: &Netns) {
    from.ip(&[
        "link",
        "add",
        name,
        "numtxqueues",
        "2",
        "numrxqueues",
        "2",
        "type",
        "veth",
        "peer",
        "name",
        peer,
        "numtxqueues",
        "2",
        "numrxqueues",
        "2",
        "netns",
        to.name(),
    ]);
}

impl Site {
    /// Whether each gateway's kernel forwards (the portable backend routes through it).
    fn with_forwarding(a_forwards: bool, b_forwards: bool) -> Site {
        let prefix = unique_prefix();
        let site = Site {
            host_a: Netns::new(format!("{prefix}-ha")),
            gw_a: Netns::new(format!("{prefix}-ga")),
            wire: Netns::new(format!("{prefix}-w")),
            gw_b: Netns::new(format!("{prefix}-gb")),
            host_b: Netns::new(format!("{prefix}-hb")),
        };
        link(&site.host_a, "eth0", "lan", &site.gw_a);
        link(&site.gw_a, "wan", "to-a", &site.wire);
        link(&site.gw_b, "wan", "to-b", &site.wire);
        link(&site.gw_b, "lan", "eth0", &site.host_b);
        site.wire.ip(&["link", "add", "br0", "type", "bridge"]);
        for dev in ["to-a", "to-b"] {
            site.wire.ip(&["link", "set", "dev", dev, "master", "br0"]);
            site.wire.ip(&["link", "set", "dev", dev, "up"]);
        }
        site.wire.ip(&["link", "set", "br0", "up"]);
        for (ns, dev, addr) in [
            (&site.host_a, "eth0", "10.1.0.2/24"),
            (&site.gw_a, "lan", "10.1.0.1/24"),
            (&site.gw_a, "wan", "192.0.2.1/24"),
            (&site.gw_b, "wan", "192.0.2.2/24"),
            (&site.gw_b, "lan", "10.2.0.1/24"),
            (&site.host_b, "eth0", "10.2.0.2/24"),
        ] {
            ns.ip(&["addr", "add", addr, "dev", dev]);
            ns.ip(&["link", "set", dev, "up"]);
        }
        // Hosts and LANs speak IPv6 too, for IPv6 inside the tunnels.
        for (ns, dev, addr) in [
            (&site.host_a, "eth0", "2001:db8:1::2/64"),
            (&site.gw_a, "lan", "2001:db8:1::1/64"),
            (&site.gw_b, "lan", "2001:db8:2::1/64"),
            (&site.host_b, "eth0", "2001:db8:2::2/64"),
        ] {
            ns.ip(&["addr", "add", addr, "dev", dev, "nodad"]);
        }
        site.host_a
            .ip(&["-6", "route", "add", "default", "via", "2001:db8:1::1"]);
        site.host_b
            .ip(&["-6", "route", "add", "default", "via", "2001:db8:2::1"]);
        // The WAN speaks IPv6 too, for tunnels with IPv6 outer addresses.
        site.gw_a.ip(&[
            "addr",
            "add",
            &format!("{WAN6_A}/64"),
            "dev",
            "wan",
            "nodad",
        ]);
        site.gw_b.ip(&[
            "addr",
            "add",
            &format!("{WAN6_B}/64"),
            "dev",
            "wan",
            "nodad",
        ]);
        site.host_a
            .ip(&["route", "add", "default", "via", "10.1.0.1"]);
        site.host_b
            .ip(&["route", "add", "default", "via", "10.2.0.1"]);
        // veth leaves checksums to "hardware" that never computes them; the tunnel would then
        // carry datagrams the far host rightly drops.
        finish_checksums_in_software(&site.host_a, "eth0");
        finish_checksums_in_software(&site.host_b, "eth0");
        let flag = |on: bool| if on { "1" } else { "0" };
        site.gw_a.sysctl("net/ipv4/ip_forward", flag(a_forwards));
        site.gw_b.sysctl("net/ipv4/ip_forward", flag(b_forwards));
        site.gw_a
            .sysctl("net/ipv6/conf/all/forwarding", flag(a_forwards));
        site.gw_b
            .sysctl("net/ipv6/conf/all/forwarding", flag(b_forwards));
        site
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    Afxdp,
    Portable,
}

fn dataplane_section(backend: Backend) -> &'static str {
    match backend {
        Backend::Afxdp => {
            "[dataplane]\nbackend = \"afxdp\"\ninterfaces = [\"lan\", \"wan\"]\nworkers = 2\n"
        }
        Backend::Portable => "[dataplane]\nbackend = \"portable\"\n",
    }
}

/// Gateway `side`'s manual SAs ("a" or "b"), optionally in UDP.
fn manual_config(side: &str, backend: Backend, natt: bool) -> String {
    let (local, remote, local_ts, remote_ts, out_spi, in_spi, out_key, in_key) = match side {
        "a" => (
            WAN_A, WAN_B, NETS_A, NETS_B, "0x1001", "0x1002", KEY_AB, KEY_BA,
        ),
        _ => (
            WAN_B, WAN_A, NETS_B, NETS_A, "0x1002", "0x1001", KEY_BA, KEY_AB,
        ),
    };
    let encap = if natt {
        "{ sport = 4500, dport = 4500 }"
    } else {
        "false"
    };
    let sa = |name: &str, direction: &str, spi: &str, key: &str| {
        format!(
            "[[manual_sa]]\nname = \"{name}\"\ndirection = \"{direction}\"\nspi = {spi}\n\
             cipher = \"aes128gcm16\"\nkey = \"{key}\"\nlocal = \"{local}\"\nremote = \"{remote}\"\n\
             local_ts = [{local_ts}]\nremote_ts = [{remote_ts}]\nencap = {encap}\n\n"
        )
    };
    format!(
        "{}\n{}{}",
        dataplane_section(backend),
        sa("out", "out", out_spi, out_key),
        sa("in", "in", in_spi, in_key)
    )
}

/// Gateway `side`'s IKE connection to the other; A initiates. `per_cpu_sas` as RFC 9611
/// per-resource Child SAs (0: none).
fn ike_config(side: &str, per_cpu_sas: u32) -> String {
    ike_config_with(side, per_cpu_sas, "")
}

/// [`ike_config`] with `child_extra` (TOML lines) added to the Child SA's table.
fn ike_config_with(side: &str, per_cpu_sas: u32, child_extra: &str) -> String {
    let (local, remote, local_ts, remote_ts, start) = match side {
        "a" => (WAN_A, WAN_B, "10.1.0.0/24", "10.2.0.0/24", "start"),
        _ => (WAN_B, WAN_A, "10.2.0.0/24", "10.1.0.0/24", "none"),
    };
    format!(
        r#"{dataplane}
[[connection]]
name = "tunnel"
local_addrs = ["{local}"]
remote_addrs = ["{remote}"]
ike_proposals = ["aes128gcm16-prfsha256-x25519"]
  [connection.local]
  auth = "psk"
  id = "gw-{side}.example"
  psk = "an-afxdp-test-psk-of-some-length"
  [connection.remote]
  auth = "psk"
  id = "gw-{other}.example"
  [[connection.child]]
  name = "net"
  local_ts = ["{local_ts}"]
  remote_ts = ["{remote_ts}"]
  esp_proposals = ["aes128gcm16"]
  start_action = "{start}"
  per_cpu_sas = {per_cpu_sas}
{child_extra}
"#,
        dataplane = dataplane_section(Backend::Afxdp),
        other = if side == "a" { "b" } else { "a" },
    )
}

/// Kills a data plane left behind by a test that failed after SIGKILLing its xipsecd (the
/// namespaces go, a process would not).
struct DataplaneGuard(PathBuf);

impl Drop for DataplaneGuard {
    fn drop(&mut self) {
        if let Ok(Some(found)) = running(&self.0) {
            if let Some(pid) = found.pid {
                let _ = send_stop(pid, Stop::Kill);
            }
        }
    }
}

struct Gateway {
    xipsecd: Xipsecd,
    ns: Netns,
    dir: PathBuf,
    _guard: DataplaneGuard,
}

fn start_gateway(ns: Netns, dir: &Path, config: &str) -> Gateway {
    let guard = DataplaneGuard(dir.join("xipsecd.sa-table.dataplane.pid"));
    let xipsecd = Xipsecd::start(&ns, dir, config, &[]);
    Gateway {
        xipsecd,
        ns,
        dir: dir.to_path_buf(),
        _guard: guard,
    }
}

/// Waits until a gateway forwards.
fn wait_ready(gateway: &Gateway, backend: Backend) {
    let line = match backend {
        Backend::Afxdp => "data plane started",
        Backend::Portable => "xipsecd started",
    };
    gateway.xipsecd.wait_for(line, 1, UP);
}

/// A site with both gateways forwarding. Fields drop in order: the daemons (and their data
/// planes) first, then the namespaces, then the directory.
struct Running {
    a: Gateway,
    b: Gateway,
    host_a: Netns,
    host_b: Netns,
    wire: Netns,
    _dir: tempfile::TempDir,
}

fn start_site(config_a: &str, backend_a: Backend, config_b: &str, backend_b: Backend) -> Running {
    let site = Site::with_forwarding(
        backend_a == Backend::Portable,
        backend_b == Backend::Portable,
    );
    let dir = tempfile::tempdir().unwrap();
    let a = start_gateway(site.gw_a, &dir.path().join("a"), config_a);
    let b = start_gateway(site.gw_b, &dir.path().join("b"), config_b);
    wait_ready(&a, backend_a);
    wait_ready(&b, backend_b);
    Running {
        a,
        b,
        host_a: site.host_a,
        host_b: site.host_b,
        wire: site.wire,
        _dir: dir,
    }
}

/// Both gateways with the manual SAs, over AF_XDP.
fn start_manual_afxdp() -> Running {
    start_site(
        &manual_config("a", Backend::Afxdp, false),
        Backend::Afxdp,
        &manual_config("b", Backend::Afxdp, false),
        Backend::Afxdp,
    )
}

/// UDP from host A to host B and a reply back; returns once both crossed.
fn udp_round_trip(host_a: &Netns, host_b: &Netns, payload: &[u8]) {
    udp_round_trip_between(host_a, HOST_A, host_b, HOST_B, payload);
}

/// The same between any two addresses of the hosts (IPv6 ones too).
fn udp_round_trip_between(
    host_a: &Netns,
    addr_a: &str,
    host_b: &Netns,
    addr_b: &str,
    payload: &[u8],
) {
    let addr_a: std::net::IpAddr = addr_a.parse().unwrap();
    let addr_b: std::net::IpAddr = addr_b.parse().unwrap();
    let receiver = host_b.run(|| std::net::UdpSocket::bind((addr_b, 7000)).unwrap());
    receiver
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let sender = host_a.run(|| std::net::UdpSocket::bind((addr_a, 0)).unwrap());
    sender
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + UP;
    let mut buf = [0u8; 2048];
    let from = loop {
        assert!(
            Instant::now() < deadline,
            "UDP from {addr_a} never reached {addr_b}"
        );
        sender.send_to(payload, (addr_b, 7000)).unwrap();
        if let Ok((n, from)) = receiver.recv_from(&mut buf) {
            assert_eq!(&buf[..n], payload);
            break from;
        }
    };
    assert_eq!(from.ip(), addr_a, "not NATed on the way");
    let deadline = Instant::now() + UP;
    loop {
        assert!(Instant::now() < deadline, "the reply never came back");
        receiver.send_to(b"reply", from).unwrap();
        if let Ok((n, _)) = sender.recv_from(&mut buf) {
            assert_eq!(&buf[..n], b"reply");
            break;
        }
    }
}

/// What the capture saw on a WAN link: (ESP, ESP in UDP, frames containing `plaintext`).
fn wan_census(frames: &[Vec<u8>], plaintext: &[u8]) -> (usize, usize, usize) {
    let mut census = (0, 0, 0);
    for frame in frames {
        match classify_wan_frame(frame) {
            WanFrame::Esp { spi } if spi == 0x1001 || spi == 0x1002 || spi > 0xFFFF => {
                census.0 += 1
            }
            WanFrame::NattUdp { first_word } if first_word != 0 => census.1 += 1,
            _ => {}
        }
        if frame.windows(plaintext.len()).any(|w| w == plaintext) {
            census.2 += 1;
        }
    }
    census
}

fn ping(host: &Netns, to: &str) -> bool {
    host.exec(
        "ping",
        &["-c", "3", "-i", "0.2", "-W", "1", to],
        Duration::from_secs(10),
    )
    .is_ok_and(|out| out.status.success())
}

fn iperf3(host_a: &Netns, host_b: &Netns) -> (u64, f64) {
    let mut server = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            host_b.name(),
            "iperf3",
            "-s",
            "-1",
            "-B",
            HOST_B,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("iperf3 server");
    std::thread::sleep(Duration::from_millis(300));
    let out = host_a.exec(
        "iperf3",
        &["-c", HOST_B, "-B", HOST_A, "-t", "2", "-J"],
        Duration::from_secs(15),
    );
    let _ = server.kill();
    let _ = server.wait();
    let out = out.expect("iperf3 client");
    assert!(
        out.status.success(),
        "iperf3: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sum = &report["end"]["sum_received"];
    (
        sum["bytes"].as_u64().unwrap_or(0),
        sum["bits_per_second"].as_f64().unwrap_or(0.0),
    )
}

/// One site at a time: each test fills the two cores with traffic (iperf3, 1000 pps streams
/// whose every packet is counted), and two at once would measure each other.
static ONE_SITE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Whether the machine can run the test; if so, also the turn to run it (held until dropped).
fn needs(test: &str) -> Option<MutexGuard<'static, ()>> {
    let tools = [
        Need::Root,
        Need::Ip,
        Need::Ping,
        Need::Iperf3,
        Need::Ethtool,
    ];
    if !require(test, &tools) {
        return None;
    }
    // A test that failed while holding the turn poisons the lock; the next one may still run.
    Some(ONE_SITE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner()))
}

fn icmp_udp_tcp_cross_encrypted(test: &str, backend: Backend, natt: bool) {
    icmp_udp_tcp_between(test, backend, backend, natt);
}

/// Gateway A runs `backend`, gateway B `backend_b`: two data planes that must agree on the
/// wire, not only with themselves.
fn icmp_udp_tcp_between(test: &str, backend: Backend, backend_b: Backend, natt: bool) {
    let Some(_turn) = needs(test) else {
        return;
    };
    let site = start_site(
        &manual_config("a", backend, natt),
        backend,
        &manual_config("b", backend_b, natt),
        backend_b,
    );
    let capture = Capture::start(&site.wire, "to-a");
    let payload = b"plaintext-that-must-never-be-seen-on-the-wire";
    udp_round_trip(&site.host_a, &site.host_b, payload);
    assert!(ping(&site.host_a, HOST_B), "ping host A -> host B");
    assert!(ping(&site.host_b, HOST_A), "ping host B -> host A");
    let (bytes, bps) = iperf3(&site.host_a, &site.host_b);
    eprintln!("{test}: iperf3 {:.0} Mbit/s", bps / 1e6);
    assert!(bytes > 1_000_000, "only {bytes} bytes of TCP crossed");
    let (esp, esp_in_udp, clear) = wan_census(&capture.stop(), payload);
    assert_eq!(clear, 0, "the plaintext appeared on the WAN");
    if natt {
        assert!(
            esp_in_udp >= 4 && esp == 0,
            "{esp_in_udp} ESP-in-UDP, {esp} ESP"
        );
    } else {
        assert!(
            esp >= 4 && esp_in_udp == 0,
            "{esp} ESP, {esp_in_udp} ESP-in-UDP"
        );
    }
    if backend == Backend::Afxdp {
        // The data plane's counters reach xipsecctl (its file is replaced every second).
        let arrived = if natt {
            "xdp.wan.esp_in_udp_to_xsk"
        } else {
            "xdp.wan.esp_to_xsk"
        };
        let counter =
            |json: &serde_json::Value, name: &str| json["counters"][name].as_u64().unwrap_or(0);
        let mut last = serde_json::Value::Null;
        let complete = wait_for(Duration::from_secs(5), || {
            last = site.a.xipsecd.ctl_json(&["counters"]);
            counter(&last, "dataplane.workers") == 2
                && counter(&last, "dataplane.encapsulated") >= 4
                && counter(&last, "dataplane.decapsulated") >= 4
                && counter(&last, "xdp.lan.policy_to_xsk") >= 4
                && counter(&last, arrived) >= 4
                && counter(&last, "dataplane.latency_ns.p50") > 0
        });
        assert!(complete, "gateway A's data plane counters: {last}");
    }
}

#[test]
fn afxdp_gateways_with_manual_sas_carry_icmp_udp_and_tcp_only_as_esp() {
    icmp_udp_tcp_cross_encrypted("afxdp_manual_esp", Backend::Afxdp, false);
}

/// Lets the kernel send `socket`'s datagrams without DF (`IP_PMTUDISC_DONT`), so that a
/// router on the way may fragment them.
fn allow_fragmentation(socket: &std::net::UdpSocket) {
    use std::os::fd::AsRawFd;
    let value: libc::c_int = libc::IP_PMTUDISC_DONT;
    // SAFETY: a live socket, and a c_int option whose address and exact size are passed.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(set, 0, "{}", std::io::Error::last_os_error());
}

#[test]
fn a_full_size_datagram_without_df_crosses_a_narrower_wire_in_fragments() {
    let Some(_turn) = needs("afxdp_prefragment") else {
        return;
    };
    let site = start_manual_afxdp();
    // The wire now carries 1400 bytes: a 1500-byte packet from host A no longer fits once
    // encrypted, and as it has no DF gateway A fragments it before encryption.
    for (ns, dev) in [(&site.a.ns, "wan"), (&site.b.ns, "wan")] {
        ns.ip(&["link", "set", "dev", dev, "mtu", "1400"]);
    }
    for dev in ["to-a", "to-b"] {
        site.wire.ip(&["link", "set", "dev", dev, "mtu", "1400"]);
    }
    udp_round_trip(&site.host_a, &site.host_b, b"the tunnel is up");
    let capture = Capture::start(&site.wire, "to-a");
    let receiver = site
        .host_b
        .run(|| std::net::UdpSocket::bind((HOST_B, 7001)).unwrap());
    receiver
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let sender = site
        .host_a
        .run(|| std::net::UdpSocket::bind((HOST_A, 0)).unwrap());
    allow_fragmentation(&sender);
    let datagram: Vec<u8> = (0..1472u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + UP;
    loop {
        assert!(
            Instant::now() < deadline,
            "the datagram never arrived whole"
        );
        sender.send_to(&datagram, (HOST_B, 7001)).unwrap();
        if let Ok(n) = receiver.recv(&mut buf) {
            // Host B's kernel put the fragments back together.
            assert_eq!(&buf[..n], &datagram[..]);
            break;
        }
    }
    let frames = capture.stop();
    let (esp, _, clear) = wan_census(&frames, &datagram[100..140]);
    assert_eq!(clear, 0, "the plaintext appeared on the WAN");
    assert!(esp >= 2, "{esp} ESP frames");
    let longest = frames.iter().map(Vec::len).max().unwrap_or(0);
    assert!(
        longest <= 14 + 1400,
        "a {longest}-byte frame on a 1400-byte wire"
    );
    // The counters file is rewritten every second.
    let fragmented = || {
        site.a.xipsecd.ctl_json(&["counters"])["counters"]["dataplane.fragmented"]
            .as_u64()
            .unwrap_or(0)
    };
    let counted = wait_for(Duration::from_secs(3), || fragmented() >= 1);
    assert!(
        counted,
        "gateway A counted {} packets fragmented",
        fragmented()
    );
}

/// The keying material of a manual SA's `hex:` key.
fn key_bytes(key: &str) -> Vec<u8> {
    let hex = key.strip_prefix("hex:").unwrap();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// `packet` (an IPv4 packet) as two fragments, the first carrying `first_data` bytes of its
/// payload (a multiple of 8), as a router or the sender's kernel would cut it.
fn two_fragments(packet: &[u8], first_data: usize) -> [Vec<u8>; 2] {
    use xipsec_dataplane::esp::ip;
    let header = &packet[..20];
    let payload = &packet[20..];
    let fragment = |data: &[u8], offset: usize, more: bool| {
        let mut out = header.to_vec();
        out.extend_from_slice(data);
        let len = out.len() as u16;
        out[2..4].copy_from_slice(&len.to_be_bytes());
        let flags = (offset / 8) as u16 | if more { 0x2000 } else { 0 };
        out[6..8].copy_from_slice(&flags.to_be_bytes());
        ip::set_ipv4_checksum(&mut out[..20]);
        out
    };
    [
        fragment(&payload[..first_data], 0, true),
        fragment(&payload[first_data..], first_data, false),
    ]
}

/// Sends `packet` (a whole IPv4 packet, header included) from the calling thread's namespace.
fn send_raw_ipv4(packet: &[u8], to: std::net::Ipv4Addr) {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: plain socket creation; the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    assert!(fd >= 0, "{}", std::io::Error::last_os_error());
    // SAFETY: `fd` is a new descriptor no one else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let address = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(to).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: a live socket; the buffer and the address are valid for the lengths passed.
    let sent = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            packet.as_ptr().cast(),
            packet.len(),
            0,
            (&address as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    assert_eq!(
        sent,
        packet.len() as isize,
        "{}",
        std::io::Error::last_os_error()
    );
}

#[test]
fn esp_that_arrives_in_outer_fragments_is_reassembled_and_decrypted() {
    outer_fragments_reach_the_host("afxdp_outer_fragments", false);
}

#[test]
fn esp_in_udp_that_arrives_in_outer_fragments_is_reassembled_and_decrypted() {
    outer_fragments_reach_the_host("afxdp_outer_fragments_natt", true);
}

/// Gateway B's kernel sends gateway A an ESP packet (in UDP with `natt`) cut into two
/// fragments, as Linux does for an inner packet without DF too big for the path; host A gets
/// the datagram inside.
fn outer_fragments_reach_the_host(test: &str, natt: bool) {
    use xipsec_dataplane::esp::{
        CipherSuite, Endpoints, OutboundSa, PacketBuf, SaParams, UdpEncap,
    };
    let Some(_turn) = needs(test) else {
        return;
    };
    let site = start_site(
        &manual_config("a", Backend::Afxdp, natt),
        Backend::Afxdp,
        &manual_config("b", Backend::Afxdp, natt),
        Backend::Afxdp,
    );
    udp_round_trip(&site.host_a, &site.host_b, b"the tunnel is up");
    // Gateway B's SA towards A, as a kernel doing ESP would use it, far ahead of the sequence
    // numbers B's data plane has used so far.
    let wan_a: std::net::Ipv4Addr = WAN_A.parse().unwrap();
    let mut params = SaParams::tunnel(
        0x1002,
        CipherSuite::Aes128Gcm16,
        Endpoints::V4 {
            local: WAN_B.parse().unwrap(),
            remote: wan_a,
        },
    );
    if natt {
        params.udp_encap = Some(UdpEncap {
            local_port: 4500,
            remote_port: 4500,
        });
    }
    let mut sa = OutboundSa::new(params, &key_bytes(KEY_BA)).unwrap();
    sa.advance_sequence_to(1_000_000);
    let receiver = site
        .host_a
        .run(|| std::net::UdpSocket::bind((HOST_A, 7003)).unwrap());
    receiver
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let payload: Vec<u8> = (0..1400u32).map(|i| (i * 13 % 251) as u8).collect();
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + UP;
    let mut id = 0x4200u16;
    let arrived = loop {
        assert!(
            Instant::now() < deadline,
            "the fragmented ESP packet was never delivered; gateway A's counters: {}",
            site.a.xipsecd.ctl_json(&["counters"])
        );
        // Host B's datagram to host A, encrypted, cut in two on the outer header.
        let inner = udp_datagram(HOST_B, 7002, HOST_A, 7003, &payload);
        let mut frame = vec![0u8; 128 + inner.len() + 64];
        frame[128..128 + inner.len()].copy_from_slice(&inner);
        let mut packet = PacketBuf::new(&mut frame, 128, inner.len()).unwrap();
        sa.encap(&mut packet).unwrap();
        let mut esp = packet.data().to_vec();
        id += 1;
        esp[4..6].copy_from_slice(&id.to_be_bytes());
        for fragment in two_fragments(&esp, 800) {
            site.b.ns.run(|| send_raw_ipv4(&fragment, wan_a));
        }
        if let Ok(n) = receiver.recv(&mut buf) {
            break buf[..n].to_vec();
        }
    };
    assert_eq!(arrived, payload);
    // Through the kernel's reassembly; in UDP, through xipsecd's NAT-T socket too.
    let mut counters = serde_json::Value::Null;
    let counted = wait_for(Duration::from_secs(3), || {
        counters = site.a.xipsecd.ctl_json(&["counters"]);
        let counter = |name: &str| counters["counters"][name].as_u64().unwrap_or(0);
        let forwarded =
            counter("ike.socket.esp_forwarded") >= 1 && counter("reassembled.forwarded") >= 1;
        counter("reassembled.handed_off") >= 1
            && counter("xdp.wan.fragment_pass") >= 2
            && forwarded == natt
    });
    assert!(counted, "gateway A's counters: {counters}");
}

/// An IPv4 UDP datagram (UDP checksum 0: none, which IPv4 allows).
fn udp_datagram(source: &str, sport: u16, destination: &str, dport: u16, data: &[u8]) -> Vec<u8> {
    use xipsec_dataplane::esp::ip;
    let source: std::net::Ipv4Addr = source.parse().unwrap();
    let destination: std::net::Ipv4Addr = destination.parse().unwrap();
    let len = 28 + data.len();
    let mut packet = vec![0u8; len];
    packet[0] = 0x45;
    packet[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    packet[8] = 64;
    packet[9] = 17;
    packet[12..16].copy_from_slice(&source.octets());
    packet[16..20].copy_from_slice(&destination.octets());
    ip::set_ipv4_checksum(&mut packet[..20]);
    packet[20..22].copy_from_slice(&sport.to_be_bytes());
    packet[22..24].copy_from_slice(&dport.to_be_bytes());
    packet[24..26].copy_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    packet[28..].copy_from_slice(data);
    packet
}

#[test]
fn afxdp_gateways_with_manual_sas_carry_traffic_in_udp_with_nat_t() {
    icmp_udp_tcp_cross_encrypted("afxdp_manual_natt", Backend::Afxdp, true);
}

#[test]
fn portable_gateways_with_manual_sas_carry_icmp_udp_and_tcp_only_as_esp() {
    icmp_udp_tcp_cross_encrypted("portable_manual_esp", Backend::Portable, false);
}

#[test]
fn an_afxdp_gateway_and_a_portable_gateway_interoperate() {
    icmp_udp_tcp_between(
        "afxdp_portable_esp",
        Backend::Afxdp,
        Backend::Portable,
        false,
    );
}

#[test]
fn an_afxdp_gateway_and_a_portable_gateway_interoperate_with_nat_t() {
    icmp_udp_tcp_between(
        "afxdp_portable_natt",
        Backend::Afxdp,
        Backend::Portable,
        true,
    );
}

#[test]
fn afxdp_gateways_carry_ipv4_and_ipv6_through_a_tunnel_with_ipv6_outer_addresses() {
    let Some(_turn) = needs("afxdp_ipv6_outer") else {
        return;
    };
    let v6 = |side: &str| {
        manual_config(side, Backend::Afxdp, false)
            .replace(WAN_A, WAN6_A)
            .replace(WAN_B, WAN6_B)
    };
    let site = start_site(&v6("a"), Backend::Afxdp, &v6("b"), Backend::Afxdp);
    let capture = Capture::start(&site.wire, "to-a");
    let payload = b"inner-ipv4-in-outer-ipv6-never-in-the-clear";
    udp_round_trip(&site.host_a, &site.host_b, payload);
    assert!(ping(&site.host_a, HOST_B), "ping host A -> host B");
    // And IPv6 inside: the same SAs carry the second pair of selectors.
    udp_round_trip_between(
        &site.host_a,
        "2001:db8:1::2",
        &site.host_b,
        "2001:db8:2::2",
        payload,
    );
    let frames = capture.stop();
    let (esp, _, clear) = wan_census(&frames, payload);
    assert_eq!(clear, 0, "the plaintext appeared on the WAN");
    let esp_over_v6 = frames
        .iter()
        .filter(|f| f.len() > 54 && f[12..14] == [0x86, 0xDD] && f[20] == 50)
        .count();
    assert!(
        esp >= 4 && esp_over_v6 == esp,
        "{esp} ESP, {esp_over_v6} of them over IPv6"
    );
}

#[test]
fn portable_gateways_with_manual_sas_carry_traffic_in_udp_with_nat_t() {
    icmp_udp_tcp_cross_encrypted("portable_manual_natt", Backend::Portable, true);
}

/// A numbered UDP stream from host A to host B; returns (sent, distinct received).
fn stream(
    host_a: &Netns,
    host_b: &Netns,
    rate_pps: u32,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(u64, u64)> {
    let receiver = host_b.run(|| std::net::UdpSocket::bind((HOST_B, 7100)).unwrap());
    receiver
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let sender = host_a.run(|| std::net::UdpSocket::bind((HOST_A, 0)).unwrap());
    let counting = Arc::new(AtomicBool::new(true));
    let received = {
        let counting = counting.clone();
        std::thread::spawn(move || {
            let mut seen = std::collections::HashSet::new();
            let mut buf = [0u8; 64];
            while counting.load(Ordering::Relaxed) {
                if let Ok(n) = receiver.recv(&mut buf) {
                    if n == 8 {
                        seen.insert(u64::from_be_bytes(buf[..8].try_into().unwrap()));
                    }
                }
            }
            seen.len() as u64
        })
    };
    std::thread::spawn(move || {
        let gap = Duration::from_secs(1) / rate_pps;
        let mut sent = 0u64;
        let start = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if sender.send_to(&sent.to_be_bytes(), (HOST_B, 7100)).is_ok() {
                sent += 1;
            }
            let next = start + gap * sent as u32;
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        // The last packets still in flight.
        std::thread::sleep(Duration::from_millis(300));
        counting.store(false, Ordering::Relaxed);
        (sent, received.join().unwrap())
    })
}

#[test]
fn the_control_plane_killed_and_restarted_under_traffic_loses_nothing() {
    let Some(_turn) = needs("afxdp_control_restart") else {
        return;
    };
    let mut site = start_manual_afxdp();
    udp_round_trip(&site.host_a, &site.host_b, b"warm-up");
    let pid_file = site.a.dir.join("xipsecd.sa-table.dataplane.pid");
    let dataplane_pid = running(&pid_file).unwrap().and_then(|r| r.pid);
    assert!(dataplane_pid.is_some(), "gateway A's data plane runs");

    let stop = Arc::new(AtomicBool::new(false));
    let flow = stream(&site.host_a, &site.host_b, 1000, stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    site.a.xipsecd.kill();
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        running(&pid_file).unwrap().and_then(|r| r.pid),
        dataplane_pid,
        "the data plane outlives its control plane"
    );
    let config_a = manual_config("a", Backend::Afxdp, false);
    site.a.xipsecd = Xipsecd::start(&site.a.ns, &site.a.dir, &config_a, &[]);
    site.a
        .xipsecd
        .wait_for("re-attached to the running data plane", 1, UP);
    std::thread::sleep(Duration::from_millis(700));
    stop.store(true, Ordering::Relaxed);
    let (sent, received) = flow.join().unwrap();
    eprintln!("sent {sent}, received {received} across the restart");
    assert!(sent > 1000, "the stream ran ({sent} sent)");
    assert_eq!(
        received, sent,
        "packets lost across the control plane's restart"
    );
    assert_eq!(
        site.a.xipsecd.count("data plane started"),
        0,
        "the restarted control plane re-attached instead of starting another data plane"
    );
    // And it still controls the data plane: a clean stop takes it down.
    site.a.xipsecd.stop();
    assert!(
        wait_for(Duration::from_secs(5), || running(&pid_file)
            .unwrap()
            .is_none()),
        "a clean stop stops the data plane"
    );
}

#[test]
fn ike_between_afxdp_gateways_and_child_sa_rekeys_under_traffic_lose_nothing() {
    let Some(_turn) = needs("afxdp_ike_rekey") else {
        return;
    };
    let site = start_ike_site(&ike_config("a", 0));
    let stop = Arc::new(AtomicBool::new(false));
    let flow = stream(&site.host_a, &site.host_b, 1000, stop.clone());
    for round in 1..=2 {
        std::thread::sleep(Duration::from_millis(500));
        let out = site.a.xipsecd.ctl(&["rekey", "--child", "tunnel"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        site.a.xipsecd.wait_for("Child SA installed", 1 + round, UP);
    }
    end_stream(&stop, flow, 1000, "two make-before-break Child SA rekeys");
}

/// Gateway A with `config_a`, gateway B with `ike_config("b", 0)`, both on AF_XDP; returns
/// once their first Child SA carries UDP.
fn start_ike_site(config_a: &str) -> Running {
    let site = start_site(
        config_a,
        Backend::Afxdp,
        &ike_config("b", 0),
        Backend::Afxdp,
    );
    // IKE on UDP 500 reached xipsecd's kernel socket through the XDP program.
    site.a.xipsecd.wait_for("Child SA installed", 1, UP);
    site.b.xipsecd.wait_for("Child SA installed", 1, UP);
    udp_round_trip(&site.host_a, &site.host_b, b"through-ike-sas");
    site
}

/// Lets a [`stream`] run half a second more, stops it and checks that more than `min_sent`
/// packets went and every one arrived across `what`.
fn end_stream(
    stop: &AtomicBool,
    flow: std::thread::JoinHandle<(u64, u64)>,
    min_sent: u64,
    what: &str,
) {
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let (sent, received) = flow.join().unwrap();
    eprintln!("sent {sent}, received {received} across {what}");
    assert!(sent > min_sent, "the stream ran ({sent} sent)");
    assert_eq!(received, sent, "packets lost across {what}");
}

#[test]
fn a_packet_lifetime_counted_by_the_data_plane_rekeys_the_child_sa_under_traffic() {
    let Some(_turn) = needs("afxdp_volume_rekey") else {
        return;
    };
    // Gateway A's SAs ask for a rekey after 1500 packets (the hard limit far beyond), so at
    // 1000 packets a second its workers raise the soft flag within two seconds, long before
    // rekey_time (at least 120 s) could.
    let volume = "  rekey_packets = 1500\n  life_packets = 1000000";
    let site = start_ike_site(&ike_config_with("a", 0, volume));
    let stop = Arc::new(AtomicBool::new(false));
    let flow = stream(&site.host_a, &site.host_b, 1000, stop.clone());
    site.a
        .xipsecd
        .wait_for("Child SA rekey: the data plane asked for it", 2, UP);
    site.a.xipsecd.wait_for("Child SA installed", 3, UP);
    end_stream(&stop, flow, 3000, "volume-triggered rekeys");
}

#[test]
fn a_killed_data_plane_is_started_again_and_carries_on_from_the_table() {
    let Some(_turn) = needs("afxdp_dataplane_restart") else {
        return;
    };
    let site = start_manual_afxdp();
    udp_round_trip(&site.host_a, &site.host_b, b"warm-up");
    // Beyond the peer's replay window (1024): a worker that started its sequence numbers
    // again would have everything it sends dropped as replayed.
    let stop = Arc::new(AtomicBool::new(false));
    let flow = stream(&site.host_a, &site.host_b, 1000, stop.clone());
    std::thread::sleep(Duration::from_millis(2000));
    stop.store(true, Ordering::Relaxed);
    let (sent, received) = flow.join().unwrap();
    assert!(
        sent > 1500 && received == sent,
        "{received} of {sent} before the kill"
    );

    let pid_file = site.a.dir.join("xipsecd.sa-table.dataplane.pid");
    let first = running(&pid_file).unwrap().and_then(|r| r.pid).unwrap();
    send_stop(first, Stop::Kill).unwrap();
    site.a.xipsecd.wait_for("data plane restarted", 1, UP);
    let second = running(&pid_file).unwrap().and_then(|r| r.pid).unwrap();
    assert_ne!(first, second, "a new data plane process");
    // Both directions again: A's new workers continue A's outbound sequence numbers from the
    // table (B's replay window accepts them) and its inbound replay state.
    udp_round_trip(&site.host_a, &site.host_b, b"after-the-restart");
}

#[test]
fn per_cpu_child_sas_let_each_worker_encrypt_with_its_own_sa() {
    let Some(_turn) = needs("afxdp_per_cpu_sas") else {
        return;
    };
    let site = start_site(
        &ike_config("a", 2),
        Backend::Afxdp,
        &ike_config("b", 2),
        Backend::Afxdp,
    );
    // The fallback and one per-resource Child SA per worker, on both sides.
    site.a.xipsecd.wait_for("Child SA installed", 3, UP);
    site.b.xipsecd.wait_for("Child SA installed", 3, UP);
    let sas = site.a.xipsecd.ctl_json(&["list-sas"]);
    let mut resources: Vec<Option<u64>> = sas[0]["children"]
        .as_array()
        .map(|c| c.iter().map(|c| c["resource"].as_u64()).collect())
        .unwrap_or_default();
    resources.sort();
    assert_eq!(resources, [None, Some(0), Some(1)], "list-sas: {sas}");
    udp_round_trip(&site.host_a, &site.host_b, b"through-per-cpu-sas");

    // Many flows, so that host A's veth spreads them over both of gateway A's queues.
    let receiver = site
        .host_b
        .run(|| std::net::UdpSocket::bind((HOST_B, 7200)).unwrap());
    let senders: Vec<_> = (0..16)
        .map(|_| {
            site.host_a
                .run(|| std::net::UdpSocket::bind((HOST_A, 0)).unwrap())
        })
        .collect();
    for _ in 0..20 {
        for sender in &senders {
            sender.send_to(b"flow", (HOST_B, 7200)).unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(receiver);
    let counter =
        |json: &serde_json::Value, name: &str| json["counters"][name].as_u64().unwrap_or(0);
    let mut last = serde_json::Value::Null;
    // Each worker encrypted with the Child SA of its own resource: no plaintext had to be
    // handed to the owner of a shared SA.
    let each_encrypted = wait_for(Duration::from_secs(5), || {
        last = site.a.xipsecd.ctl_json(&["counters"]);
        counter(&last, "dataplane.worker0.encapsulated") > 0
            && counter(&last, "dataplane.worker1.encapsulated") > 0
            && counter(&last, "dataplane.encapsulated") >= 320
    });
    assert!(each_encrypted, "gateway A's data plane counters: {last}");
    let spread = counter(&last, "dataplane.worker0.received") > 0
        && counter(&last, "dataplane.worker1.received") > 0;
    assert!(spread, "both workers received plaintext: {last}");
    // Plaintext that worker 0 or 1 received never went to the other for encryption; only
    // ESP (the peer's SAs, owned by their slots) may be handed over.
    assert!(
        counter(&last, "dataplane.handed_off") <= counter(&last, "dataplane.decapsulated"),
        "outbound hand-offs with per-resource SAs: {last}"
    );
}

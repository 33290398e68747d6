//! xipsecd against Debian's strongSwan (charon with kernel-libipsec), in two namespaces joined
//! by a veth: each side initiates, PSK with both IKE proposals of the issue, AES-GCM ESP; ping
//! crosses the tunnel and the wire carries only IKE and ESP in UDP 4500; rekeys from either
//! side while traffic flows; Deletes from either side; a killed peer found dead.
//!
//! A: xipsecd on 10.80.0.1, its subnet 10.80.1.0/24 (10.80.1.1 on `lo`).
//! B: charon on 10.80.0.2, its subnet 10.80.2.0/24 (10.80.2.1 on `lo`, which kernel-libipsec
//! needs before it installs a Child SA).

mod xipsecd_run;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use xipsec_testkit::netns::{classify_wan_frame, wired_pair, Capture, Netns, WanFrame};
use xipsec_testkit::strongswan::{Auth, Charon, CharonConfig, StartAction};
use xipsec_testkit::{require, Need};
use xipsecd_run::Xipsecd;

const WAN_A: &str = "10.80.0.1";
const WAN_B: &str = "10.80.0.2";
const HOST_A: &str = "10.80.1.1";
const HOST_B: &str = "10.80.2.1";
const PSK: &str = "interop-test-pre-shared-key-0123456789";
const UP: Duration = Duration::from_secs(10);

/// The namespaces, the two daemons and a scratch directory; fields drop in order: daemons
/// before namespaces.
struct Site {
    xipsecd: Xipsecd,
    charon: Charon,
    ns_a: Netns,
    ns_b: Netns,
    _dir: tempfile::TempDir,
}

struct Setup<'a> {
    ike: &'a str,
    esp: &'a str,
    xipsec_starts: bool,
    dpd: u32,
    charon_dpd: Option<Duration>,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Setup {
            ike: "aes128gcm16-prfsha256-x25519",
            esp: "aes128gcm16",
            xipsec_starts: true,
            dpd: 0,
            charon_dpd: None,
        }
    }
}

fn xipsec_config(s: &Setup<'_>) -> String {
    let start = if s.xipsec_starts { "start" } else { "none" };
    format!(
        r#"[daemon]
listen = ["{WAN_A}"]
retransmit_timeout = 1
retransmit_tries = 2

[[connection]]
name = "site-b"
local_addrs = ["{WAN_A}"]
remote_addrs = ["{WAN_B}"]
ike_proposals = ["{ike}"]
dpd_interval = {dpd}
  [connection.local]
  auth = "psk"
  id = "a.xipsec.test"
  psk = "{PSK}"
  [connection.remote]
  auth = "psk"
  id = "b.xipsec.test"
  [[connection.child]]
  name = "net"
  local_ts = ["10.80.1.0/24"]
  remote_ts = ["10.80.2.0/24"]
  esp_proposals = ["{esp}"]
  start_action = "{start}"
"#,
        ike = s.ike,
        esp = s.esp,
        dpd = s.dpd,
    )
}

fn charon_config(s: &Setup<'_>) -> CharonConfig {
    let mut c = CharonConfig::new(WAN_B, WAN_A, Auth::Psk(PSK.to_owned()));
    c.name = "peer".to_owned();
    c.local_id = "b.xipsec.test".to_owned();
    c.remote_id = "a.xipsec.test".to_owned();
    c.local_ts = vec!["10.80.2.0/24".to_owned()];
    c.remote_ts = vec!["10.80.1.0/24".to_owned()];
    c.ike_proposals = vec![s.ike.to_owned()];
    c.esp_proposals = vec![s.esp.to_owned()];
    c.start_action = StartAction::None;
    c.dpd_delay = s.charon_dpd;
    c
}

fn start(test: &str, s: &Setup<'_>) -> Option<Site> {
    if !require(test, Need::STRONGSWAN) || !require(test, &[Need::Ping]) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ns_a, ns_b) = wired_pair(&format!("{WAN_A}/24"), &format!("{WAN_B}/24"));
    ns_a.ip(&["addr", "add", &format!("{HOST_A}/32"), "dev", "lo"]);
    ns_b.ip(&["addr", "add", &format!("{HOST_B}/32"), "dev", "lo"]);
    let charon = Charon::start(&ns_b, dir.path(), &charon_config(s))
        .unwrap_or_else(|e| panic!("charon: {e}"));
    let xipsecd = Xipsecd::start(&ns_a, &dir.path().join("a"), &xipsec_config(s), &[]);
    Some(Site {
        xipsecd,
        charon,
        ns_a,
        ns_b,
        _dir: dir,
    })
}

impl Site {
    /// Waits until charon shows the IKE SA established and the Child SA installed and
    /// xipsecd has installed `children` Child SAs in all.
    fn wait_up(&self, children: usize) -> (u64, u64, u32, u32) {
        self.xipsecd.wait_for("Child SA installed", children, UP);
        let ike = self
            .charon
            .wait_established("peer", "net", UP)
            .unwrap_or_else(|e| panic!("charon: {e}\nxipsecd:\n{}", self.xipsecd.log()));
        let child = ike.installed_child("net").cloned().expect("a child");
        (
            ike.initiator_spi,
            ike.responder_spi,
            child.spi_in,
            child.spi_out,
        )
    }

    /// One ping from A's host to B's, through the tunnel.
    fn ping(&self) -> bool {
        let out = self
            .ns_a
            .exec(
                "ping",
                &["-c", "1", "-W", "2", "-I", HOST_A, HOST_B],
                Duration::from_secs(4),
            )
            .unwrap();
        out.status.success()
    }

    /// Pings until one answer comes back (the first packets may meet a Child SA that is not
    /// installed on the far side yet).
    fn ping_eventually(&self) {
        let deadline = Instant::now() + UP;
        while Instant::now() < deadline {
            if self.ping() {
                return;
            }
        }
        panic!(
            "no ping answer through the tunnel\nxipsecd:\n{}\ncharon:\n{}",
            self.xipsecd.log(),
            self.charon.log()
        );
    }
}

/// Checks that a capture between the gateways holds only IKE (on 500, or behind the non-ESP
/// marker on 4500), ESP in UDP 4500 and link housekeeping, and never `plaintext`; returns how
/// many ESP-in-UDP frames it holds.
fn esp_in_udp_frames(frames: &[Vec<u8>], plaintext: Option<&[u8]>) -> usize {
    let mut esp = 0;
    for frame in frames {
        if let Some(p) = plaintext {
            assert!(
                !frame.windows(p.len()).any(|w| w == p),
                "the plaintext crossed the wire"
            );
        }
        match classify_wan_frame(frame) {
            WanFrame::NattUdp { first_word } if first_word != 0 => esp += 1,
            WanFrame::NattUdp { .. } | WanFrame::Housekeeping => {}
            WanFrame::Other {
                protocol: 17,
                ports: (500, 500),
            } => {}
            other => panic!("not IKE or ESP in UDP on the wire: {other:?}"),
        }
    }
    esp
}

fn dir_of(site: &Site) -> PathBuf {
    site.xipsecd
        .socket()
        .parent()
        .map(Path::to_path_buf)
        .unwrap()
}

#[test]
fn xipsecd_initiates_to_charon_psk_x25519_aes128gcm_and_ping_crosses_encrypted() {
    let Some(site) = start("xipsecd_initiates_to_charon", &Setup::default()) else {
        return;
    };
    let (spi_i, spi_r, charon_in, charon_out) = site.wait_up(1);
    assert_ne!(spi_i, 0);
    assert_ne!(spi_r, 0);
    // xipsecd logged the same Child SA, seen from its side.
    let log = site.xipsecd.log();
    assert!(
        log.contains(&format!("spi_in={charon_out:08x}"))
            && log.contains(&format!("spi_out={charon_in:08x}")),
        "{log}"
    );
    let capture = Capture::start(&site.ns_b, "wan");
    site.ping_eventually();
    for _ in 0..3 {
        assert!(site.ping());
    }
    let esp_in_udp = esp_in_udp_frames(&capture.stop(), None);
    assert!(esp_in_udp >= 6, "{esp_in_udp} ESP-in-UDP frames");
    let ike = site.charon.wait_established("peer", "net", UP).unwrap();
    let child = ike.installed_child("net").unwrap();
    assert!(child.packets_in >= 3 && child.packets_out >= 3, "{child:?}");

    // xipsecctl shows the same SAs as charon does, with traffic counted by the data plane.
    let sas = site.xipsecd.ctl_json(&["list-sas"]);
    let sas = sas.as_array().expect("a list");
    assert_eq!(sas.len(), 1, "{sas:?}");
    let sa = &sas[0];
    assert_eq!(sa["connection"], "site-b");
    assert_eq!(sa["state"], "established");
    assert_eq!(sa["role"], "initiator");
    assert_eq!(sa["spi_i"], format!("{spi_i:016x}"));
    assert_eq!(sa["spi_r"], format!("{spi_r:016x}"));
    assert_eq!(sa["remote_id"], "b.xipsec.test");
    assert_eq!(
        sa["algorithms"],
        "AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519"
    );
    assert_eq!(sa["nat_remote"], true, "kernel-libipsec fakes a NAT");
    let c = &sa["children"][0];
    assert_eq!(c["spi_in"], format!("{charon_out:08x}"));
    assert_eq!(c["spi_out"], format!("{charon_in:08x}"));
    assert_eq!(c["udp_encap"], true);
    assert_eq!(c["local_ts"][0], "10.80.1.0/24");
    assert!(c["packets_in"].as_u64().unwrap() >= 3, "{c}");
    assert!(c["packets_out"].as_u64().unwrap() >= 3, "{c}");
    let text = site.xipsecd.ctl(&["list-sas"]);
    assert!(text.status.success());
    assert!(String::from_utf8_lossy(&text.stdout).contains("site-b"));
    let status = site.xipsecd.ctl_json(&["status"]);
    assert_eq!(status["ike_sas"], 1);
    assert_eq!(status["backend"], "portable");
    let counters = site.xipsecd.ctl_json(&["counters"]);
    assert_eq!(counters["counters"]["ike.established"], 1, "{counters}");
    let _ = dir_of(&site);
}

#[test]
fn rekeys_started_by_xipsecd_keep_the_tunnel_up_while_ping_flows() {
    let Some(site) = start("xipsecd_rekeys_with_charon", &Setup::default()) else {
        return;
    };
    let (spi_i, _, child_in, _) = site.wait_up(1);
    site.ping_eventually();
    let flood = ping_flood(&site.ns_a, 150);
    std::thread::sleep(Duration::from_millis(500));
    let out = site.xipsecd.ctl(&["rekey", "site-b", "--child"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    site.charon
        .wait_sas(UP, |sas| {
            sas.iter().any(|ike| {
                ike.installed_child("net")
                    .is_some_and(|c| c.spi_in != child_in)
            })
        })
        .unwrap_or_else(|e| panic!("{e}\nxipsecd:\n{}", site.xipsecd.log()));
    site.xipsecd.wait_for("Child SA deleted", 1, UP);
    std::thread::sleep(Duration::from_millis(500));
    let out = site.xipsecd.ctl(&["rekey", "site-b"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    site.charon
        .wait_sas(UP, |sas| {
            sas.len() == 1 && sas[0].is_established() && sas[0].initiator_spi != spi_i
        })
        .unwrap_or_else(|e| panic!("{e}\nxipsecd:\n{}", site.xipsecd.log()));
    let (sent, received) = flood.join().unwrap();
    assert!(sent >= 140, "{sent} sent");
    assert!(
        received + 3 >= sent,
        "{received} of {sent} answered across the rekeys\nxipsecd:\n{}",
        site.xipsecd.log()
    );
    let sas = site.xipsecd.ctl_json(&["list-sas"]);
    assert_eq!(sas.as_array().unwrap().len(), 1, "{sas}");
    assert_eq!(sas[0]["children"].as_array().unwrap().len(), 1, "{sas}");
    site.ping_eventually();
}

#[test]
fn charon_initiates_to_xipsecd_aes256_sha256_modp2048_and_aes256gcm() {
    let setup = Setup {
        ike: "aes256-sha256-modp2048",
        esp: "aes256gcm16",
        xipsec_starts: false,
        ..Setup::default()
    };
    let Some(site) = start("charon_initiates_to_xipsecd", &setup) else {
        return;
    };
    // xipsecd must be listening before charon initiates.
    site.xipsecd.wait_for("xipsecd started", 1, UP);
    site.charon
        .initiate("net")
        .unwrap_or_else(|e| panic!("{e}\nxipsecd:\n{}", site.xipsecd.log()));
    site.wait_up(1);
    let ike = site.charon.wait_established("peer", "net", UP).unwrap();
    assert_eq!(
        ike.fields.get("encr-alg").map(String::as_str),
        Some("AES_CBC")
    );
    assert_eq!(
        ike.fields.get("dh-group").map(String::as_str),
        Some("MODP_2048")
    );
    site.ping_eventually();
}

/// A ping flood in the background from A's host to B's: (sent, received) when it ends.
fn ping_flood(ns: &Netns, count: u32) -> std::thread::JoinHandle<(u32, u32)> {
    let name = ns.name().to_owned();
    std::thread::spawn(move || {
        let out = std::process::Command::new("ip")
            .args([
                "netns", "exec", &name, "ping", "-q", "-i", "0.02", "-W", "1",
            ])
            .args(["-c", &count.to_string(), "-I", HOST_A, HOST_B])
            .output()
            .expect("ping");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // "N packets transmitted, M received"
        let numbers: Vec<u32> = text
            .lines()
            .find(|l| l.contains("packets transmitted"))
            .map(|l| {
                l.split(|c: char| !c.is_ascii_digit())
                    .filter_map(|w| w.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        (
            numbers.first().copied().unwrap_or(0),
            numbers.get(1).copied().unwrap_or(0),
        )
    })
}

#[test]
fn rekeys_started_by_charon_keep_the_tunnel_up_while_ping_flows() {
    let Some(site) = start("charon_rekeys_with_xipsecd", &Setup::default()) else {
        return;
    };
    let (spi_i, spi_r, child_in, _) = site.wait_up(1);
    site.ping_eventually();
    let flood = ping_flood(&site.ns_a, 150);
    std::thread::sleep(Duration::from_millis(500));
    site.charon.rekey_child("net").unwrap();
    let sas = site
        .charon
        .wait_sas(UP, |sas| {
            sas.iter().any(|ike| {
                ike.installed_child("net")
                    .is_some_and(|c| c.spi_in != child_in)
            })
        })
        .unwrap_or_else(|e| panic!("{e}\nxipsecd:\n{}", site.xipsecd.log()));
    let new_child_in = sas[0].installed_child("net").unwrap().spi_in;
    site.xipsecd.wait_for("Child SA installed", 2, UP);
    site.xipsecd.wait_for("Child SA deleted", 1, UP);
    std::thread::sleep(Duration::from_millis(500));
    site.charon.rekey_ike("peer").unwrap();
    site.charon
        .wait_sas(UP, |sas| {
            sas.iter()
                .any(|ike| ike.is_established() && ike.initiator_spi != spi_i)
        })
        .unwrap_or_else(|e| panic!("{e}\nxipsecd:\n{}", site.xipsecd.log()));
    site.xipsecd.wait_for("IKE SA rekeyed", 1, UP);
    let (sent, received) = flood.join().unwrap();
    assert!(sent >= 140, "{sent} sent");
    // Make-before-break on both sides: at most a packet or two in flight at a switch.
    assert!(
        received + 3 >= sent,
        "{received} of {sent} answered across the rekeys\nxipsecd:\n{}",
        site.xipsecd.log()
    );
    // The new IKE SA still carries the new Child SA, and the old SPIs are gone.
    let sas = site.charon.sas().unwrap();
    assert_eq!(sas.len(), 1, "{sas:?}");
    assert_ne!((sas[0].initiator_spi, sas[0].responder_spi), (spi_i, spi_r));
    assert_eq!(sas[0].installed_child("net").unwrap().spi_in, new_child_in);
    site.ping_eventually();
}

#[test]
fn tcp_crosses_the_tunnel_with_iperf3() {
    if !require("tcp_crosses_the_tunnel_with_iperf3", &[Need::Iperf3]) {
        return;
    }
    let Some(site) = start("tcp_crosses_the_tunnel_with_iperf3", &Setup::default()) else {
        return;
    };
    site.wait_up(1);
    site.ping_eventually();
    let mut server = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            site.ns_b.name(),
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
    let out = site
        .ns_a
        .exec(
            "iperf3",
            &["-c", HOST_B, "-B", HOST_A, "-t", "2", "-J"],
            Duration::from_secs(15),
        )
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        out.status.success(),
        "iperf3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bytes = report["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0);
    let bits_per_second = report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0);
    eprintln!(
        "iperf3 through xipsecd <-> charon: {:.0} Mbit/s",
        bits_per_second / 1e6
    );
    assert!(bytes > 1_000_000, "only {bytes} bytes crossed");
}

#[test]
fn a_delete_from_charon_removes_the_sas_and_routes_in_xipsecd() {
    let Some(site) = start("delete_from_charon", &Setup::default()) else {
        return;
    };
    site.wait_up(1);
    site.ping_eventually();
    site.charon.terminate_ike("peer").unwrap();
    site.xipsecd.wait_for("IKE SA deleted", 1, UP);
    site.xipsecd.wait_for("Child SA deleted", 1, UP);
    let log = site.xipsecd.log();
    assert!(log.contains("reason=Peer"), "{log}");
    // The route into the TUN device went with the last Child SA.
    let routes = site.ns_a.exec("ip", &["route", "show"], UP).unwrap();
    let routes = String::from_utf8_lossy(&routes.stdout).into_owned();
    assert!(!routes.contains("10.80.2.0/24"), "{routes}");
    assert!(!site.ping());
}

#[test]
fn xipsecctl_terminate_deletes_at_charon_too() {
    let Some(site) = start("xipsecctl_terminate", &Setup::default()) else {
        return;
    };
    site.wait_up(1);
    let out = site.xipsecd.ctl(&["terminate", "site-b"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    site.charon
        .wait_sas(UP, |sas| sas.is_empty())
        .unwrap_or_else(|e| panic!("charon kept an SA after our Delete: {e}"));
    let out = site.xipsecd.ctl(&["terminate", "nope"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn sigterm_sends_deletes_that_charon_honours() {
    let Some(mut site) = start("sigterm_deletes", &Setup::default()) else {
        return;
    };
    site.wait_up(1);
    let status = site.xipsecd.stop().expect("it was running");
    assert!(status.success(), "{status:?}");
    site.charon
        .wait_sas(UP, |sas| sas.is_empty())
        .unwrap_or_else(|e| panic!("charon kept an SA after our Delete: {e}"));
}

#[test]
fn through_a_masquerading_nat_nat_t_is_detected_and_used() {
    if !require("nat_t_through_masquerade", &[Need::Nft]) {
        return;
    }
    if !require("nat_t_through_masquerade", Need::STRONGSWAN) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A (10.80.0.1) — NAT (10.80.0.254 | 10.90.0.254) — B (10.90.0.2).
    let prefix = xipsec_testkit::netns::unique_prefix();
    let ns_a = Netns::new(format!("{prefix}-a"));
    let nat = Netns::new(format!("{prefix}-nat"));
    let ns_b = Netns::new(format!("{prefix}-b"));
    ns_a.ip(&[
        "link",
        "add",
        "wan",
        "type",
        "veth",
        "peer",
        "name",
        "in",
        "netns",
        nat.name(),
    ]);
    nat.ip(&[
        "link",
        "add",
        "out",
        "type",
        "veth",
        "peer",
        "name",
        "wan",
        "netns",
        ns_b.name(),
    ]);
    ns_a.ip(&["addr", "add", "10.80.0.1/24", "dev", "wan"]);
    nat.ip(&["addr", "add", "10.80.0.254/24", "dev", "in"]);
    nat.ip(&["addr", "add", "10.90.0.254/24", "dev", "out"]);
    ns_b.ip(&["addr", "add", "10.90.0.2/24", "dev", "wan"]);
    for (ns, dev) in [(&ns_a, "wan"), (&nat, "in"), (&nat, "out"), (&ns_b, "wan")] {
        ns.ip(&["link", "set", dev, "up"]);
    }
    ns_a.ip(&["route", "add", "default", "via", "10.80.0.254"]);
    ns_b.ip(&["route", "add", "default", "via", "10.90.0.254"]);
    nat.sysctl("net/ipv4/ip_forward", "1");
    // UDP leaves from ports 30000-40000: the peer sees both a new address and a new port.
    let rules = "table ip nat { chain post { type nat hook postrouting priority 100; \
                 oifname \"out\" meta l4proto udp masquerade to :30000-40000; \
                 oifname \"out\" masquerade; }; }";
    let out = nat.exec("nft", &[rules], UP).unwrap();
    assert!(
        out.status.success(),
        "nft: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ns_a.ip(&["addr", "add", &format!("{HOST_A}/32"), "dev", "lo"]);
    ns_b.ip(&["addr", "add", &format!("{HOST_B}/32"), "dev", "lo"]);

    let mut charon_conf = charon_config(&Setup::default());
    charon_conf.local_addrs = "10.90.0.2".to_owned();
    charon_conf.remote_addrs = "%any".to_owned();
    let charon = Charon::start(&ns_b, dir.path(), &charon_conf).unwrap();
    let config = xipsec_config(&Setup::default()).replace(
        &format!("remote_addrs = [\"{WAN_B}\"]"),
        "remote_addrs = [\"10.90.0.2\"]",
    );
    let xipsecd = Xipsecd::start(&ns_a, &dir.path().join("a"), &config, &[]);
    xipsecd.wait_for("Child SA installed", 1, UP);
    let ike = charon.wait_established("peer", "net", UP).unwrap();
    // charon sees us at the NAT's address, on a port the NAT picked.
    assert_eq!(ike.remote_host, "10.90.0.254");
    assert_ne!(ike.remote_port, 4500);
    let log = xipsecd.log();
    assert!(log.contains("nat=true"), "{log}");
    let site = Site {
        xipsecd,
        charon,
        ns_a,
        ns_b,
        _dir: dir,
    };
    site.ping_eventually();
    drop(site);
    drop(nat);
}

#[test]
fn ecdsa_certificates_from_a_test_ca_both_ways() {
    use xipsec_testkit::pki::{self, KeyType};
    if !require("ecdsa_certificates_interop", &[Need::Pki]) {
        return;
    }
    let setup = Setup {
        xipsec_starts: false,
        ..Setup::default()
    };
    if !require("ecdsa_certificates_interop", Need::STRONGSWAN) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("pki");
    std::fs::create_dir_all(&certs).unwrap();
    let ca = pki::make_ca(
        &certs,
        "ca",
        "C=CH, O=xipsec test, CN=Test CA",
        KeyType::EcdsaP384,
    )
    .unwrap();
    let a = pki::issue(
        &ca,
        &certs,
        "a",
        "C=CH, O=xipsec test, CN=a.xipsec.test",
        &["a.xipsec.test"],
        KeyType::EcdsaP256,
    )
    .unwrap();
    let b = pki::issue(
        &ca,
        &certs,
        "b",
        "C=CH, O=xipsec test, CN=b.xipsec.test",
        &["b.xipsec.test"],
        KeyType::EcdsaP256,
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&a.key, std::fs::Permissions::from_mode(0o600)).unwrap();

    let (ns_a, ns_b) = wired_pair(&format!("{WAN_A}/24"), &format!("{WAN_B}/24"));
    ns_a.ip(&["addr", "add", &format!("{HOST_A}/32"), "dev", "lo"]);
    ns_b.ip(&["addr", "add", &format!("{HOST_B}/32"), "dev", "lo"]);
    let mut charon_conf = charon_config(&setup);
    charon_conf.auth = Auth::Pubkey {
        cert: b.cert.clone(),
        key: b.key.clone(),
        cacert: ca.cert.clone(),
    };
    let charon = Charon::start(&ns_b, dir.path(), &charon_conf).unwrap();
    let config = xipsec_config(&setup)
        .replace(
            &format!("  auth = \"psk\"\n  id = \"a.xipsec.test\"\n  psk = \"{PSK}\"\n"),
            &format!(
                "  auth = \"pubkey\"\n  id = \"a.xipsec.test\"\n  cert = \"{}\"\n  key = \"{}\"\n",
                a.cert.display(),
                a.key.display()
            ),
        )
        .replace(
            "  auth = \"psk\"\n  id = \"b.xipsec.test\"\n",
            &format!(
                "  auth = \"pubkey\"\n  id = \"b.xipsec.test\"\n  cacerts = [\"{}\"]\n",
                ca.cert.display()
            ),
        );
    assert!(config.contains("pubkey"), "{config}");
    let xipsecd = Xipsecd::start(&ns_a, &dir.path().join("a"), &config, &[]);
    let site = Site {
        xipsecd,
        charon,
        ns_a,
        ns_b,
        _dir: dir,
    };
    site.xipsecd.wait_for("xipsecd started", 1, UP);
    // charon initiates: it verifies our ECDSA signature, we verify its.
    site.charon
        .initiate("net")
        .unwrap_or_else(|e| panic!("{e}\nxipsecd:\n{}", site.xipsecd.log()));
    site.wait_up(1);
    site.ping_eventually();
    let log = site.charon.log();
    assert!(
        log.contains("authentication of 'a.xipsec.test' with ECDSA"),
        "charon's log:\n{log}"
    );
    // And the other way: xipsecd initiates after charon's SA is gone.
    site.charon.terminate_ike("peer").unwrap();
    site.xipsecd.wait_for("IKE SA deleted", 1, UP);
    let out = site.xipsecd.ctl(&["initiate", "site-b"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    site.xipsecd.wait_for("Child SA installed", 2, UP);
    site.charon.wait_established("peer", "net", UP).unwrap();
    site.ping_eventually();
}

#[test]
fn a_killed_charon_is_found_dead_by_our_liveness_checks() {
    let setup = Setup {
        dpd: 2,
        ..Setup::default()
    };
    let Some(site) = start("dead_peer_detection", &setup) else {
        return;
    };
    site.wait_up(1);
    site.ping_eventually();
    // SIGKILL: no Delete leaves charon.
    // SAFETY: kill(2) on the pid of the charon this test started.
    let killed = unsafe { libc::kill(site.charon.pid() as i32, libc::SIGKILL) };
    assert_eq!(killed, 0);
    // 2 s without traffic, then a check sent 3 times over 1 + 1.8 + 3.2 s.
    site.xipsecd
        .wait_for("IKE SA deleted", 1, Duration::from_secs(20));
    let log = site.xipsecd.log();
    assert!(log.contains("reason=DeadPeer"), "{log}");
    let routes = site.ns_a.exec("ip", &["route", "show"], UP).unwrap();
    assert!(!String::from_utf8_lossy(&routes.stdout).contains("10.80.2.0/24"));
    let status = site.xipsecd.ctl_json(&["status"]);
    assert_eq!(status["child_sas"], 0, "{status}");
}

#[test]
fn udp_between_hosts_behind_each_gateway_crosses_only_as_esp() {
    let setup = Setup::default();
    if !require("hosts_behind_gateways", Need::STRONGSWAN) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // host A (10.80.1.10) — xipsecd (10.80.1.1 | 10.80.0.1) — charon (10.80.0.2 | 10.80.2.1)
    // — host B (10.80.2.10).
    let prefix = xipsec_testkit::netns::unique_prefix();
    let host_a = Netns::new(format!("{prefix}-ha"));
    let (ns_a, ns_b) = wired_pair(&format!("{WAN_A}/24"), &format!("{WAN_B}/24"));
    let host_b = Netns::new(format!("{prefix}-hb"));
    for (host, gw, host_addr, gw_addr) in [
        (&host_a, &ns_a, "10.80.1.10/24", "10.80.1.1/24"),
        (&host_b, &ns_b, "10.80.2.10/24", "10.80.2.1/24"),
    ] {
        host.ip(&[
            "link",
            "add",
            "lan",
            "type",
            "veth",
            "peer",
            "name",
            "lan",
            "netns",
            gw.name(),
        ]);
        host.ip(&["addr", "add", host_addr, "dev", "lan"]);
        gw.ip(&["addr", "add", gw_addr, "dev", "lan"]);
        host.ip(&["link", "set", "lan", "up"]);
        gw.ip(&["link", "set", "lan", "up"]);
        let via = gw_addr.split('/').next().unwrap();
        host.ip(&["route", "add", "default", "via", via]);
        gw.sysctl("net/ipv4/ip_forward", "1");
    }
    let charon = Charon::start(&ns_b, dir.path(), &charon_config(&setup)).unwrap();
    let xipsecd = Xipsecd::start(&ns_a, &dir.path().join("a"), &xipsec_config(&setup), &[]);
    xipsecd.wait_for("Child SA installed", 1, UP);
    charon.wait_established("peer", "net", UP).unwrap();

    // UDP from host A to host B and back, through both gateways.
    let receiver = host_b.run(|| std::net::UdpSocket::bind("10.80.2.10:7000").unwrap());
    receiver
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let sender = host_a.run(|| std::net::UdpSocket::bind("10.80.1.10:0").unwrap());
    let capture = Capture::start(&ns_a, "wan");
    let payload = b"plaintext-that-must-never-be-seen-on-the-wire";
    let mut got = None;
    let deadline = Instant::now() + UP;
    while got.is_none() && Instant::now() < deadline {
        sender.send_to(payload, "10.80.2.10:7000").unwrap();
        let mut buf = [0u8; 256];
        if let Ok((n, from)) = receiver.recv_from(&mut buf) {
            got = Some((buf[..n].to_vec(), from));
        }
    }
    let (data, from) = got.expect("UDP from host A reached host B");
    assert_eq!(data, payload);
    assert_eq!(from.ip().to_string(), "10.80.1.10", "not NATed on the way");
    // And back.
    sender
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    receiver.send_to(b"reply", from).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = sender.recv_from(&mut buf).expect("the reply came back");
    assert_eq!(&buf[..n], b"reply");
    let esp = esp_in_udp_frames(&capture.stop(), Some(payload));
    assert!(esp >= 2, "{esp} ESP packets");
    let site = Site {
        xipsecd,
        charon,
        ns_a,
        ns_b,
        _dir: dir,
    };
    drop(site);
    drop((host_a, host_b));
}

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
    let frames = capture.stop();
    let mut esp_in_udp = 0;
    for frame in &frames {
        match classify_wan_frame(frame) {
            WanFrame::NattUdp { first_word } if first_word != 0 => esp_in_udp += 1,
            // IKE behind the non-ESP marker, IKE on 500, ARP.
            WanFrame::NattUdp { .. } | WanFrame::Housekeeping => {}
            WanFrame::Other {
                protocol: 17,
                ports: (500, 500),
            } => {}
            other => panic!("not IKE or ESP in UDP on the wire: {other:?}"),
        }
    }
    assert!(esp_in_udp >= 6, "{esp_in_udp} ESP-in-UDP frames");
    let ike = site.charon.wait_established("peer", "net", UP).unwrap();
    let child = ike.installed_child("net").unwrap();
    assert!(child.packets_in >= 3 && child.packets_out >= 3, "{child:?}");
    let _ = dir_of(&site);
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

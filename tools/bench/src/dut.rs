//! Devices under test on the gateways of a [`Topology`](crate::topology::Topology): kernel forwarding alone (`none`), a
//! plain AF_XDP forwarder (`forwarder`, this binary's `forwarder` subcommand), `xipsecd`
//! negotiating with IKE (`xipsec-ike`) or with static SAs (`xipsec-manual`), strongSwan's
//! charon with kernel-libipsec (`strongswan`), or whatever is on the other end of real
//! interfaces (`external`). Each [`RunningDut`] stops what it started when dropped.

use std::fmt;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use xipsec_testkit::netns::Netns;
use xipsec_testkit::strongswan::{Auth, Charon, CharonConfig, StartAction};

pub use crate::manual::{WAN_A, WAN_B};
pub use crate::topology::{NET_A, NET_B};

use crate::mac::Mac;
use crate::manual::{A_TO_B, B_TO_A};
use crate::topology::Gateway;
use crate::wire::Encapsulation;
use crate::StopFlag;

const PSK: &str = "xipsec-bench-pre-shared-key-0123456789";
/// How long IKE may take to bring the Child SAs up.
const UP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the forwarder may take to load its programs and bind its sockets.
const FORWARDER_TIMEOUT: Duration = Duration::from_secs(10);

/// Which device forwards between the gateways.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DutKind {
    /// Kernel IP forwarding, no crypto: the ceiling of this I/O path.
    None,
    /// A plain AF_XDP forwarder on each gateway, no crypto: the ceiling of AF_XDP.
    Forwarder,
    /// `xipsecd` on both gateways, PSK, X25519, AES-128-GCM, negotiated with IKEv2.
    XipsecIke,
    /// `xipsecd` on both gateways with static AES-128-GCM SAs (`[[manual_sa]]`), no IKE.
    XipsecManual,
    /// strongSwan's charon with kernel-libipsec on both gateways, the same algorithms.
    Strongswan,
    /// Whatever forwards between `--tx-iface` and `--rx-iface`: nothing is started.
    External,
}

impl DutKind {
    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            DutKind::None => "none",
            DutKind::Forwarder => "forwarder",
            DutKind::XipsecIke => "xipsec-ike",
            DutKind::XipsecManual => "xipsec-manual",
            DutKind::Strongswan => "strongswan",
            DutKind::External => "external",
        }
    }

    /// Whether it works with the one-gateway topologies (`encrypt`, `decrypt`), where the
    /// harness plays the other end: static SAs, or no crypto.
    pub fn has_static_keys(self) -> bool {
        matches!(
            self,
            DutKind::None | DutKind::Forwarder | DutKind::XipsecManual | DutKind::External
        )
    }

    /// Whether it is xipsecd (and `--dataplane` applies).
    pub fn is_xipsec(self) -> bool {
        matches!(self, DutKind::XipsecIke | DutKind::XipsecManual)
    }
}

impl fmt::Display for DutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DutKind {
    type Err = String;

    fn from_str(text: &str) -> Result<DutKind, String> {
        match text.trim() {
            "none" => Ok(DutKind::None),
            "forwarder" => Ok(DutKind::Forwarder),
            "xipsec-ike" => Ok(DutKind::XipsecIke),
            "xipsec-manual" => Ok(DutKind::XipsecManual),
            "strongswan" => Ok(DutKind::Strongswan),
            "external" => Ok(DutKind::External),
            other => Err(format!(
                "unknown device under test '{other}' (none, forwarder, xipsec-ike, xipsec-manual, strongswan, external)"
            )),
        }
    }
}

/// Parses `"none,xipsec-ike"`; duplicates dropped, order kept.
pub fn parse_duts(text: &str) -> Result<Vec<DutKind>, String> {
    let mut duts = Vec::new();
    for part in text.split(',') {
        let dut: DutKind = part.parse()?;
        if !duts.contains(&dut) {
            duts.push(dut);
        }
    }
    Ok(duts)
}

/// xipsecd's data plane (`[dataplane] backend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DataplaneBackend {
    /// TUN and UDP/raw sockets.
    #[default]
    Portable,
    /// AF_XDP workers on the gateway's interfaces.
    Afxdp,
}

impl DataplaneBackend {
    /// Its name in xipsecd's configuration and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            DataplaneBackend::Portable => "portable",
            DataplaneBackend::Afxdp => "afxdp",
        }
    }
}

impl FromStr for DataplaneBackend {
    type Err = String;

    fn from_str(text: &str) -> Result<DataplaneBackend, String> {
        match text.trim() {
            "portable" => Ok(DataplaneBackend::Portable),
            "afxdp" => Ok(DataplaneBackend::Afxdp),
            other => Err(format!("unknown data plane '{other}' (portable, afxdp)")),
        }
    }
}

/// Where the xipsec binaries are, and how the devices are set up.
#[derive(Clone, Debug)]
pub struct Binaries {
    /// `xipsecd`.
    pub xipsecd: PathBuf,
    /// `xipsecctl`.
    pub xipsecctl: PathBuf,
    /// Print `xipsecctl list-sas` of gateway A once its tunnel is up (the demo shows it).
    pub show_sas: bool,
    /// xipsecd's data plane.
    pub dataplane: DataplaneBackend,
    /// This program, for `xipsec-bench forwarder` [default: the running executable].
    pub forwarder: PathBuf,
}

/// A process started with `ip netns exec`, which execs it: the child's pid is the program's.
/// Dropping it sends SIGTERM and, after `grace`, SIGKILL.
#[derive(Debug)]
struct Daemon {
    child: Child,
    log: PathBuf,
    grace: Duration,
}

impl Daemon {
    fn start(netns: &Netns, program: &Path, args: &[&str], log: PathBuf) -> Result<Daemon, String> {
        let out = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(xipsec_testkit::process::tool("ip"))
            .args(["netns", "exec", netns.name()])
            .arg(program)
            .args(args)
            .env("NO_COLOR", "1")
            // Its own process group: a Ctrl-C at the terminal reaches only the harness, which
            // then stops the daemons in order.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", program.display()))?;
        Ok(Daemon {
            child,
            log,
            grace: Duration::from_secs(4),
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    fn log_has_line(&self, line: &str) -> bool {
        std::fs::read_to_string(&self.log)
            .map(|text| text.lines().any(|l| l.trim() == line))
            .unwrap_or(false)
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on a child we spawned and have not reaped yet.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A device under test, running. Drop order: daemons and charons first, then the scratch
/// directory.
#[derive(Debug)]
pub struct RunningDut {
    /// Which.
    pub kind: DutKind,
    /// How its packets travel between the gateways.
    pub encapsulation: Encapsulation,
    daemons: Vec<Daemon>,
    charons: Vec<Charon>,
    _dir: Option<tempfile::TempDir>,
}

impl RunningDut {
    /// The processes whose CPU time counts as the device's; empty for kernel forwarding.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.daemons.iter().map(Daemon::pid).collect();
        pids.extend(self.charons.iter().map(Charon::pid));
        pids
    }

    /// Whether the device measures its own CPU (it has processes).
    pub fn has_processes(&self) -> bool {
        !self.daemons.is_empty() || !self.charons.is_empty()
    }

    /// An error if one of its processes has died.
    pub fn check_alive(&mut self) -> Result<(), String> {
        for daemon in &mut self.daemons {
            if daemon.exited() {
                return Err(format!(
                    "{} (pid {}) exited; its log ends:\n{}",
                    self.kind,
                    daemon.pid(),
                    daemon.log_tail(30)
                ));
            }
        }
        for charon in &self.charons {
            if !charon.is_running() {
                return Err(format!("charon (pid {}) exited", charon.pid()));
            }
        }
        Ok(())
    }
}

/// Starts `kind` on `gateways` (gateway A first; none for an external device) and waits until
/// it forwards (for IPsec: until every gateway has its Child SA installed).
pub fn start(
    kind: DutKind,
    gateways: &[Gateway<'_>],
    binaries: &Binaries,
    stop: &StopFlag,
) -> Result<RunningDut, String> {
    let nothing = |encapsulation| RunningDut {
        kind,
        encapsulation,
        daemons: Vec::new(),
        charons: Vec::new(),
        _dir: None,
    };
    match kind {
        DutKind::None => {
            for gw in gateways {
                gw.netns
                    .ip(&["route", "add", gw.remote_net, "via", gw.remote_wan]);
            }
            Ok(nothing(Encapsulation::Plain))
        }
        DutKind::External => Ok(nothing(Encapsulation::Plain)),
        DutKind::Forwarder => start_forwarders(gateways, binaries, stop),
        DutKind::XipsecIke => start_xipsec(gateways, binaries, stop, false),
        DutKind::XipsecManual => start_xipsec(gateways, binaries, stop, true),
        DutKind::Strongswan => start_strongswan(gateways, stop),
    }
}

/// The arguments of `xipsec-bench forwarder` on a gateway whose `lan` leads to
/// `lan_next_hop` and `local_net`, and whose `wan` to `wan_next_hop` and `remote_net`.
pub fn forwarder_args(
    lan_next_hop: Mac,
    wan_next_hop: Mac,
    local_net: &str,
    remote_net: &str,
) -> Vec<String> {
    [
        "forwarder",
        "--lan",
        "lan",
        "--wan",
        "wan",
        "--lan-next-hop",
        &lan_next_hop.to_string(),
        "--wan-next-hop",
        &wan_next_hop.to_string(),
        "--lan-net",
        local_net,
        "--wan-net",
        remote_net,
    ]
    .map(str::to_owned)
    .to_vec()
}

fn start_forwarders(
    gateways: &[Gateway<'_>],
    binaries: &Binaries,
    stop: &StopFlag,
) -> Result<RunningDut, String> {
    let dir = tempfile::Builder::new()
        .prefix("xipsec-bench-")
        .tempdir()
        .map_err(|e| format!("a scratch directory: {e}"))?;
    let mut dut = RunningDut {
        kind: DutKind::Forwarder,
        encapsulation: Encapsulation::Plain,
        daemons: Vec::new(),
        charons: Vec::new(),
        _dir: None,
    };
    for (i, gw) in gateways.iter().enumerate() {
        let args = forwarder_args(
            gw.lan_next_hop,
            gw.wan_next_hop,
            gw.local_net,
            gw.remote_net,
        );
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        dut.daemons.push(Daemon::start(
            gw.netns,
            &binaries.forwarder,
            &args,
            dir.path().join(format!("forwarder-{i}.log")),
        )?);
    }
    let deadline = Instant::now() + FORWARDER_TIMEOUT;
    for i in 0..dut.daemons.len() {
        while !dut.daemons[i].log_has_line("ready") {
            dut.check_alive()?;
            if stop.is_set() {
                return Err("interrupted".to_owned());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the forwarder was not ready within {FORWARDER_TIMEOUT:?}; its log ends:\n{}",
                    dut.daemons[i].log_tail(20)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    dut._dir = Some(dir);
    Ok(dut)
}

/// The `[dataplane]` section xipsecd gets: the backend, the gateway's two interfaces, one
/// worker (one core per gateway on a small machine).
pub fn dataplane_section(backend: DataplaneBackend) -> String {
    format!(
        "[dataplane]\nbackend = \"{}\"\ninterfaces = [\"lan\", \"wan\"]\nworkers = 1\n",
        backend.name()
    )
}

/// The configuration of one xipsecd gateway.
pub fn xipsec_config(
    local: &str,
    remote: &str,
    local_net: &str,
    remote_net: &str,
    initiate: bool,
    backend: DataplaneBackend,
) -> String {
    let start = if initiate { "start" } else { "none" };
    let dataplane = dataplane_section(backend);
    format!(
        r#"# Written by xipsec-bench.
[daemon]
listen = ["{local}"]

{dataplane}
[[connection]]
name = "bench"
local_addrs = ["{local}"]
remote_addrs = ["{remote}"]
ike_proposals = ["aes128gcm16-prfsha256-x25519"]
  [connection.local]
  auth = "psk"
  id = "{local}"
  psk = "{PSK}"
  [connection.remote]
  auth = "psk"
  id = "{remote}"
  [[connection.child]]
  name = "net"
  local_ts = ["{local_net}"]
  remote_ts = ["{remote_net}"]
  esp_proposals = ["aes128gcm16"]
  start_action = "{start}"
"#
    )
}

/// The configuration of one xipsecd gateway with manual SAs: `out` encrypts toward the peer,
/// `inbound` decrypts from it.
pub fn xipsec_manual_config(
    local: &str,
    remote: &str,
    local_net: &str,
    remote_net: &str,
    out: (u32, &str),
    inbound: (u32, &str),
    backend: DataplaneBackend,
) -> String {
    let sa = |name: &str, direction: &str, (spi, key): (u32, &str)| {
        format!(
            r#"
[[manual_sa]]
name = "{name}"
direction = "{direction}"
spi = {spi}
cipher = "aes128gcm16"
key = "hex:{key}"
local = "{local}"
remote = "{remote}"
local_ts = ["{local_net}"]
remote_ts = ["{remote_net}"]
"#
        )
    };
    format!(
        "# Written by xipsec-bench.\n[daemon]\nlisten = [\"{local}\"]\n\n{}{}{}",
        dataplane_section(backend),
        sa("out", "out", out),
        sa("in", "in", inbound)
    )
}

/// Prints what `xipsecctl list-sas` says on gateway A's socket (to standard error, beside the
/// progress line; the table stays alone on standard output).
fn show_sas(binaries: &Binaries, socket: &Path) {
    let run = xipsec_testkit::process::run_bounded(
        Command::new(&binaries.xipsecctl)
            .arg("-s")
            .arg(socket)
            .arg("list-sas"),
        Duration::from_secs(5),
    );
    match run {
        Ok(out) => eprintln!(
            "\n$ xipsecctl list-sas   (gateway A)\n{}",
            String::from_utf8_lossy(&out.stdout)
        ),
        Err(e) => eprintln!("xipsecctl list-sas: {e}"),
    }
}

fn status_ok(binaries: &Binaries, socket: &Path) -> Result<(), String> {
    let output = xipsec_testkit::process::run_bounded(
        Command::new(&binaries.xipsecctl)
            .arg("-s")
            .arg(socket)
            .args(["--json", "--timeout", "2", "status"]),
        Duration::from_secs(5),
    )?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

/// The configuration of `gw`: IKE (gateway A initiates) or manual SAs.
pub fn gateway_config(gw: &Gateway<'_>, manual: bool, backend: DataplaneBackend) -> String {
    gateway_config_for(gw.local_wan, manual, backend)
}

fn gateway_config_for(local_wan: &str, manual: bool, backend: DataplaneBackend) -> String {
    let a = local_wan == WAN_A;
    let (local, remote, local_net, remote_net) = if a {
        (WAN_A, WAN_B, NET_A, NET_B)
    } else {
        (WAN_B, WAN_A, NET_B, NET_A)
    };
    if manual {
        let (out, inbound) = if a {
            (A_TO_B, B_TO_A)
        } else {
            (B_TO_A, A_TO_B)
        };
        xipsec_manual_config(local, remote, local_net, remote_net, out, inbound, backend)
    } else {
        xipsec_config(local, remote, local_net, remote_net, a, backend)
    }
}

/// The configurations of gateway A and gateway B: IKE (A initiates) or manual SAs.
pub fn gateway_configs(manual: bool, backend: DataplaneBackend) -> (String, String) {
    (
        gateway_config_for(WAN_A, manual, backend),
        gateway_config_for(WAN_B, manual, backend),
    )
}

/// What `xipsecctl --json list-sas` says about the Child SA: `Some(udp_encap)` once one is
/// installed under an established IKE SA.
pub fn installed_child(list_sas: &serde_json::Value) -> Option<bool> {
    list_sas.as_array()?.iter().find_map(|ike| {
        if ike["state"] != "established" {
            return None;
        }
        ike["children"].as_array()?.iter().find_map(|child| {
            (child["state"] == "installed").then(|| child["udp_encap"].as_bool().unwrap_or(false))
        })
    })
}

fn list_sas(binaries: &Binaries, socket: &Path) -> Result<serde_json::Value, String> {
    let output = xipsec_testkit::process::run_bounded(
        Command::new(&binaries.xipsecctl)
            .arg("-s")
            .arg(socket)
            .args(["--json", "--timeout", "2", "list-sas"]),
        Duration::from_secs(5),
    )?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("xipsecctl's JSON: {e}"))
}

fn start_xipsec(
    gateways: &[Gateway<'_>],
    binaries: &Binaries,
    stop: &StopFlag,
    manual: bool,
) -> Result<RunningDut, String> {
    for path in [&binaries.xipsecd, &binaries.xipsecctl] {
        if !path.is_file() {
            return Err(format!(
                "{} not found: build it (cargo build --release -p xipsec-control) or say where with --xipsecd / --xipsecctl",
                path.display()
            ));
        }
    }
    let dir = tempfile::Builder::new()
        .prefix("xipsec-bench-")
        .tempdir()
        .map_err(|e| format!("a scratch directory: {e}"))?;
    let mut daemons = Vec::new();
    let mut sockets = Vec::new();
    // B (the responder) first, so that A's first IKE_SA_INIT finds it listening.
    for (i, gw) in gateways.iter().enumerate().rev() {
        let name = if i == 0 { "a" } else { "b" };
        let netns = gw.netns;
        let text = gateway_config(gw, manual, binaries.dataplane);
        let conf = dir.path().join(format!("{name}.toml"));
        std::fs::write(&conf, text).map_err(|e| format!("{}: {e}", conf.display()))?;
        let socket = dir.path().join(format!("{name}.sock"));
        let conf_arg = conf.to_string_lossy().into_owned();
        let socket_arg = socket.to_string_lossy().into_owned();
        daemons.push(Daemon::start(
            netns,
            &binaries.xipsecd,
            &["-f", &conf_arg, "-s", &socket_arg],
            dir.path().join(format!("{name}.log")),
        )?);
        sockets.push(socket);
    }
    let mut dut = RunningDut {
        kind: if manual {
            DutKind::XipsecManual
        } else {
            DutKind::XipsecIke
        },
        encapsulation: Encapsulation::EspTunnel { udp: false },
        daemons,
        charons: Vec::new(),
        _dir: None,
    };
    let deadline = Instant::now() + UP_TIMEOUT;
    let mut encap = Vec::new();
    for socket in &sockets {
        loop {
            dut.check_alive()?;
            if stop.is_set() {
                return Err("interrupted".to_owned());
            }
            let last = if manual {
                // Manual SAs are installed before the control socket opens.
                match status_ok(binaries, socket) {
                    Ok(()) => {
                        encap.push(false);
                        break;
                    }
                    Err(e) => e,
                }
            } else {
                match list_sas(binaries, socket) {
                    Ok(sas) => match installed_child(&sas) {
                        Some(udp) => {
                            encap.push(udp);
                            break;
                        }
                        None => sas.to_string(),
                    },
                    Err(e) => e,
                }
            };
            if Instant::now() >= deadline {
                let logs: Vec<String> = dut.daemons.iter().map(|d| d.log_tail(20)).collect();
                return Err(format!(
                    "not up within {UP_TIMEOUT:?} ({}: {last}); the logs end:\n{}",
                    socket.display(),
                    logs.join("\n---\n")
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    dut.encapsulation = Encapsulation::EspTunnel {
        udp: encap.iter().any(|&udp| udp),
    };
    if binaries.show_sas {
        if let Some(socket) = sockets.last() {
            show_sas(binaries, socket);
        }
    }
    dut._dir = Some(dir);
    Ok(dut)
}

fn start_strongswan(gateways: &[Gateway<'_>], stop: &StopFlag) -> Result<RunningDut, String> {
    let missing: Vec<&str> = xipsec_testkit::Need::STRONGSWAN
        .iter()
        .filter(|need| !need.present())
        .map(|need| need.describe())
        .collect();
    if !missing.is_empty() {
        return Err(format!("strongswan: {}", missing.join(", ")));
    }
    let dir = tempfile::Builder::new()
        .prefix("xipsec-bench-")
        .tempdir()
        .map_err(|e| format!("a scratch directory: {e}"))?;
    let mut charons = Vec::new();
    // B (the responder) first.
    for gw in gateways.iter().rev() {
        let mut conf = CharonConfig::new(gw.local_wan, gw.remote_wan, Auth::Psk(PSK.to_owned()));
        conf.local_ts = vec![gw.local_net.to_owned()];
        conf.remote_ts = vec![gw.remote_net.to_owned()];
        conf.start_action = if gw.initiator {
            StartAction::Start
        } else {
            StartAction::None
        };
        charons.push(Charon::start(gw.netns, dir.path(), &conf)?);
    }
    let deadline = Instant::now() + UP_TIMEOUT;
    for charon in &charons {
        loop {
            if stop.is_set() {
                return Err("interrupted".to_owned());
            }
            let up = charon
                .sas()
                .map(|sas| sas.iter().any(|sa| sa.installed_child("net").is_some()))
                .unwrap_or(false);
            if up {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "charon: no Child SA within {UP_TIMEOUT:?}:\n{}",
                    charon.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(RunningDut {
        kind: DutKind::Strongswan,
        // kernel-libipsec always sends ESP in UDP 4500.
        encapsulation: Encapsulation::EspTunnel { udp: true },
        daemons: Vec::new(),
        charons,
        _dir: Some(dir),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dut_names_parse_and_print_back() {
        assert_eq!(
            parse_duts("none,xipsec-ike,strongswan,none").unwrap(),
            vec![DutKind::None, DutKind::XipsecIke, DutKind::Strongswan]
        );
        for dut in [
            DutKind::None,
            DutKind::Forwarder,
            DutKind::XipsecIke,
            DutKind::XipsecManual,
            DutKind::Strongswan,
            DutKind::External,
        ] {
            assert_eq!(dut.name().parse::<DutKind>().unwrap(), dut);
        }
        assert!(parse_duts("xipsec").unwrap_err().contains("xipsec-ike"));
        assert!(parse_duts("none,").is_err());
    }

    #[test]
    fn every_xipsecd_config_names_its_data_plane_and_the_gateways_interfaces() {
        for backend in [DataplaneBackend::Portable, DataplaneBackend::Afxdp] {
            for manual in [false, true] {
                let (a, b) = gateway_configs(manual, backend);
                for text in [a, b] {
                    let expected = format!(
                        "[dataplane]\nbackend = \"{}\"\ninterfaces = [\"lan\", \"wan\"]\nworkers = 1\n",
                        backend.name()
                    );
                    assert!(text.contains(&expected), "{text}");
                }
            }
        }
        assert_eq!("afxdp".parse(), Ok(DataplaneBackend::Afxdp));
        assert!("xdp".parse::<DataplaneBackend>().is_err());
    }

    #[test]
    fn the_child_sa_counts_only_when_installed_under_an_established_ike_sa() {
        let doc = |ike: &str, child: &str, udp: bool| serde_json::json!([{"state": ike, "children": [{"state": child, "udp_encap": udp}]}]);
        assert_eq!(
            installed_child(&doc("established", "installed", true)),
            Some(true)
        );
        assert_eq!(
            installed_child(&doc("established", "installed", false)),
            Some(false)
        );
        assert_eq!(
            installed_child(&doc("connecting", "installed", false)),
            None
        );
        assert_eq!(installed_child(&doc("established", "rekeyed", false)), None);
        assert_eq!(installed_child(&serde_json::json!([])), None);
        assert_eq!(installed_child(&serde_json::json!({"nope": 1})), None);
    }
}

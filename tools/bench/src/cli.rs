//! The command line: `xipsec-bench run` and `xipsec-bench forwarder` (parsed with clap), the
//! values clap does not know (durations), and the rules about which options go together,
//! checked before anything is built ([`RunArgs::check`]).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::dut::{parse_duts, DataplaneBackend, DutKind};
use crate::forwarder::{ForwarderConfig, PortConfig};
use crate::mac::Mac;
use crate::plan::IoKind;
use crate::rate::{parse_rates, Rate};
use crate::size::{parse_sizes, PacketSize};
use crate::topology::TopologyKind;

const AFTER_HELP: &str = "\
Sizes are inner IPv4 packet lengths. --io xdp (the default where the XDP classifier loads):
AF_XDP generator and sink; packet: AF_PACKET; socket: UDP sockets. Needs root. Exit status:
0 all runs done, 1 a device failed or a file could not be written, 2 usage error, 3 not root
or no `ip`. Documentation: docs/bench.md.";

/// The command line.
#[derive(Parser, Debug)]
#[command(name = "xipsec-bench", version, about = "Benchmark harness for IPsec gateways: throughput, loss, latency, CPU", after_help = AFTER_HELP)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build the topology, start each device under test, send and measure.
    #[command(after_help = AFTER_HELP)]
    Run(RunArgs),
    /// The plain AF_XDP forwarder (device under test `forwarder`): run by the harness inside
    /// a gateway's namespace, until SIGTERM.
    Forwarder(ForwarderArgs),
}

// Aliases, so that clap takes each list as one value parsed by its function rather than as a
// repeated option.
type Duts = Vec<DutKind>;
type Sizes = Vec<PacketSize>;
type Rates = Vec<Rate>;
type Nets = Vec<xipsec_ebpf::IpNet>;

/// `xipsec-bench run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The topology: e2e (generator → gateway A → gateway B → sink), encrypt (generator →
    /// gateway → a sink that decrypts), decrypt (a generator that encrypts → gateway → sink)
    /// [default: e2e; none with --tx-iface/--rx-iface].
    #[arg(long, value_parser = parse_topology)]
    pub topology: Option<TopologyKind>,
    /// Generator and sink I/O: xdp (AF_XDP), packet (AF_PACKET), socket (UDP) [default: xdp
    /// where the XDP classifier loads, else socket; packet on real interfaces].
    #[arg(long, value_parser = parse_io)]
    pub io: Option<IoKind>,
    /// Devices under test, comma-separated: none (kernel forwarding), forwarder (AF_XDP, no
    /// crypto), xipsec-ike, xipsec-manual (static SAs), strongswan (charon, kernel-libipsec),
    /// external (on --tx-iface/--rx-iface) [default: none,xipsec-ike; external with
    /// --tx-iface].
    #[arg(long, value_parser = parse_duts)]
    pub dut: Option<Duts>,
    /// Inner packet sizes, comma-separated: 64..=1400 or imix (7:4:1 of 64/570/1400).
    #[arg(long, default_value = "64,128,512,1400,imix", value_parser = parse_sizes)]
    pub sizes: Sizes,
    /// Offered rate: max, or e.g. 100kpps, 1mpps, 500mbps, 1gbps (inner bits); a comma-separated
    /// list is a sweep.
    #[arg(long, default_value = "max", value_parser = parse_rates)]
    pub rate: Rates,
    /// How long each run sends: 3s, 500ms, 1m.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Write the results as JSON (docs/bench.md has the schema).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Draw throughput against packet size, one line per device: SVG, or PNG for FILE.png.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// The xipsecd binary [default: next to xipsec-bench].
    #[arg(long, value_name = "PATH")]
    pub xipsecd: Option<PathBuf>,
    /// The xipsecctl binary [default: next to xipsecd].
    #[arg(long, value_name = "PATH")]
    pub xipsecctl: Option<PathBuf>,
    /// xipsecd's data plane: portable (TUN and sockets) or afxdp [default: portable].
    #[arg(long, value_parser = parse_dataplane)]
    pub dataplane: Option<DataplaneBackend>,
    /// No live progress line.
    #[arg(long, short)]
    pub quiet: bool,
    /// Show `xipsecctl list-sas` of gateway A once an xipsec tunnel is up.
    #[arg(long)]
    pub show_sas: bool,
    /// Real interface the generator sends on (current namespace; with --dut external).
    #[arg(long, value_name = "IF")]
    pub tx_iface: Option<String>,
    /// Real interface the sink receives on (current namespace; with --dut external).
    #[arg(long, value_name = "IF")]
    pub rx_iface: Option<String>,
    /// The MAC address the generator's frames go to [default: the next hop toward --dst,
    /// from the neighbour table].
    #[arg(long, value_name = "MAC")]
    pub tx_dst_mac: Option<Mac>,
    /// The probes' source address on real interfaces [default: 10.1.0.2].
    #[arg(long, value_name = "IP")]
    pub src: Option<Ipv4Addr>,
    /// The probes' destination (the sink's address) on real interfaces [default: 10.2.0.2].
    #[arg(long, value_name = "IP")]
    pub dst: Option<Ipv4Addr>,
}

/// Real interfaces, as `--tx-iface`/`--rx-iface` and friends give them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct External {
    /// The generator's interface.
    pub tx_iface: String,
    /// The sink's interface.
    pub rx_iface: String,
    /// The next hop's MAC address, when given.
    pub tx_dst_mac: Option<Mac>,
    /// The probes' source address.
    pub src: Ipv4Addr,
    /// The probes' destination.
    pub dst: Ipv4Addr,
}

/// What `run` is to do, once the options were checked against each other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    /// The topology ([`TopologyKind::External`] for real interfaces).
    pub topology: TopologyKind,
    /// The devices under test.
    pub duts: Vec<DutKind>,
    /// The I/O asked for; `None`: AF_XDP where the classifier loads.
    pub io: Option<IoKind>,
    /// xipsecd's data plane.
    pub dataplane: DataplaneBackend,
    /// The real interfaces, for [`TopologyKind::External`].
    pub external: Option<External>,
}

fn interface_name(flag: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', '\0', ':']) {
        return Err(format!(
            "{flag} '{name}' is not an interface name (1 to 15 characters, no '/', ':' or spaces)"
        ));
    }
    Ok(())
}

impl RunArgs {
    /// Checks that the options go together; the message says which do not (a usage error).
    pub fn check(&self) -> Result<Checked, String> {
        let dataplane = self.dataplane.unwrap_or_default();
        let external = match (&self.tx_iface, &self.rx_iface) {
            (Some(tx), Some(rx)) => {
                interface_name("--tx-iface", tx)?;
                interface_name("--rx-iface", rx)?;
                if tx == rx {
                    return Err(format!(
                        "--tx-iface and --rx-iface are both {tx}: the generator and the sink need an interface each"
                    ));
                }
                if let Some(topology) = self.topology {
                    return Err(format!(
                        "--topology {topology} builds namespaces; --tx-iface/--rx-iface use real interfaces: give one or the other"
                    ));
                }
                if self.io == Some(IoKind::Socket) {
                    return Err("--io socket cannot use real interfaces (UDP between two addresses of one host never leaves it): --io xdp or packet".to_owned());
                }
                if let Some(mac) = self.tx_dst_mac {
                    if !mac.is_unicast() {
                        return Err(format!("--tx-dst-mac {mac} is not a unicast MAC address"));
                    }
                }
                let src = self.src.unwrap_or(crate::topology::HOST_A);
                let dst = self.dst.unwrap_or(crate::topology::HOST_B);
                if src == dst {
                    return Err(format!("--src and --dst are both {src}"));
                }
                Some(External {
                    tx_iface: tx.clone(),
                    rx_iface: rx.clone(),
                    tx_dst_mac: self.tx_dst_mac,
                    src,
                    dst,
                })
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err("--tx-iface and --rx-iface go together: give both".to_owned())
            }
            (None, None) => {
                for (given, flag) in [
                    (self.tx_dst_mac.is_some(), "--tx-dst-mac"),
                    (self.src.is_some(), "--src"),
                    (self.dst.is_some(), "--dst"),
                ] {
                    if given {
                        return Err(format!(
                            "{flag} is for real interfaces: it needs --tx-iface and --rx-iface"
                        ));
                    }
                }
                None
            }
        };
        let topology = match (&external, self.topology) {
            (Some(_), _) => TopologyKind::External,
            (None, Some(topology)) => topology,
            (None, None) => TopologyKind::E2e,
        };
        let duts = match (&self.dut, &external) {
            (Some(duts), _) => duts.clone(),
            (None, Some(_)) => vec![DutKind::External],
            (None, None) => vec![DutKind::None, DutKind::XipsecIke],
        };
        if external.is_some() {
            if duts != [DutKind::External] {
                return Err("--tx-iface/--rx-iface measure what is on the wire between them: --dut external (and nothing else)".to_owned());
            }
        } else if duts.contains(&DutKind::External) {
            return Err("--dut external needs --tx-iface and --rx-iface".to_owned());
        }
        if matches!(topology, TopologyKind::Encrypt | TopologyKind::Decrypt) {
            if let Some(dut) = duts.iter().find(|dut| !dut.has_static_keys()) {
                return Err(format!(
                    "--topology {topology} needs static keys, which the harness uses as the other gateway: xipsec-manual, forwarder or none, not {dut}"
                ));
            }
        }
        if self.dataplane.is_some() && !duts.iter().any(|dut| dut.is_xipsec()) {
            return Err(
                "--dataplane is xipsecd's: it needs --dut xipsec-ike or xipsec-manual".to_owned(),
            );
        }
        Ok(Checked {
            topology,
            duts,
            io: self.io,
            dataplane,
            external,
        })
    }
}

/// `xipsec-bench forwarder`.
#[derive(clap::Args, Debug)]
pub struct ForwarderArgs {
    /// The LAN interface.
    #[arg(long, value_name = "IF")]
    pub lan: String,
    /// The WAN interface.
    #[arg(long, value_name = "IF")]
    pub wan: String,
    /// Where frames sent out of the LAN interface go (the host's MAC address).
    #[arg(long, value_name = "MAC")]
    pub lan_next_hop: Mac,
    /// Where frames sent out of the WAN interface go (the peer's MAC address).
    #[arg(long, value_name = "MAC")]
    pub wan_next_hop: Mac,
    /// Prefixes behind the LAN interface, comma-separated: frames to them arriving on the WAN
    /// are forwarded.
    #[arg(long, value_name = "PREFIX,…", value_parser = parse_nets, default_value = "")]
    pub lan_net: Nets,
    /// Prefixes behind the WAN interface, comma-separated: frames to them arriving on the LAN
    /// are forwarded.
    #[arg(long, value_name = "PREFIX,…", value_parser = parse_nets, default_value = "")]
    pub wan_net: Nets,
}

impl ForwarderArgs {
    /// The forwarder's configuration, checked.
    pub fn config(&self) -> Result<ForwarderConfig, String> {
        interface_name("--lan", &self.lan)?;
        interface_name("--wan", &self.wan)?;
        let config = ForwarderConfig {
            lan: PortConfig {
                interface: self.lan.clone(),
                next_hop: self.lan_next_hop,
                nets: self.lan_net.clone(),
            },
            wan: PortConfig {
                interface: self.wan.clone(),
                next_hop: self.wan_next_hop,
                nets: self.wan_net.clone(),
            },
        };
        config.check()?;
        Ok(config)
    }
}

fn parse_topology(text: &str) -> Result<TopologyKind, String> {
    text.parse()
}

fn parse_io(text: &str) -> Result<IoKind, String> {
    text.parse()
}

fn parse_dataplane(text: &str) -> Result<DataplaneBackend, String> {
    text.parse()
}

/// Parses `10.1.0.0/24,fd00::/64`; empty is no prefix at all.
pub fn parse_nets(text: &str) -> Result<Nets, String> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.parse()
                .map_err(|_| format!("'{part}' is not a prefix like 10.2.0.0/24"))
        })
        .collect()
}

/// Parses `3s`, `500ms`, `1m`, `2.5s` or a bare number of seconds; at least 100 ms, at most an
/// hour.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let lower = text.to_ascii_lowercase();
    let (number, factor) = if let Some(n) = lower.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = lower.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = lower.strip_suffix('m') {
        (n, 60.0)
    } else {
        (lower.as_str(), 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("duration '{text}' is not like 3s, 500ms or 1m"))?;
    let seconds = value * factor;
    if !(0.1..=3600.0).contains(&seconds) {
        return Err(format!("duration '{text}' is outside 100ms..=1h"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Checked, String> {
        let mut all = vec!["xipsec-bench", "run"];
        all.extend_from_slice(args);
        let cli = Cli::try_parse_from(all).map_err(|e| e.to_string())?;
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        args.check()
    }

    #[test]
    fn defaults_are_e2e_with_kernel_forwarding_and_ike_and_io_left_to_detection() {
        let c = run(&[]).unwrap();
        assert_eq!(c.topology, TopologyKind::E2e);
        assert_eq!(c.duts, vec![DutKind::None, DutKind::XipsecIke]);
        assert_eq!(c.io, None);
        assert_eq!(c.dataplane, DataplaneBackend::Portable);
        assert_eq!(c.external, None);
        let c = run(&["--io", "xdp", "--dut", "forwarder", "--topology", "encrypt"]).unwrap();
        assert_eq!(
            (c.io, c.topology, c.duts),
            (
                Some(IoKind::Xdp),
                TopologyKind::Encrypt,
                vec![DutKind::Forwarder]
            )
        );
    }

    #[test]
    fn real_interfaces_mean_an_external_device_and_no_namespaces() {
        let c = run(&["--tx-iface", "ens1", "--rx-iface", "ens2"]).unwrap();
        assert_eq!(c.topology, TopologyKind::External);
        assert_eq!(c.duts, vec![DutKind::External]);
        assert_eq!(
            c.external,
            Some(External {
                tx_iface: "ens1".into(),
                rx_iface: "ens2".into(),
                tx_dst_mac: None,
                src: "10.1.0.2".parse().unwrap(),
                dst: "10.2.0.2".parse().unwrap(),
            })
        );
        let c = run(&[
            "--tx-iface",
            "ens1",
            "--rx-iface",
            "ens2",
            "--dut",
            "external",
            "--tx-dst-mac",
            "02:00:00:00:00:09",
            "--src",
            "198.51.100.1",
            "--dst",
            "203.0.113.9",
            "--io",
            "packet",
        ])
        .unwrap();
        let external = c.external.unwrap();
        assert_eq!(
            external.tx_dst_mac.unwrap().to_string(),
            "02:00:00:00:00:09"
        );
        assert_eq!(external.dst.to_string(), "203.0.113.9");
        assert_eq!(c.io, Some(IoKind::Packet));
    }

    #[test]
    fn options_that_do_not_go_together_are_refused_with_the_reason() {
        for (args, says) in [
            (&["--tx-iface", "ens1"][..], "give both"),
            (&["--rx-iface", "ens1"], "give both"),
            (&["--tx-iface", "ens1", "--rx-iface", "ens1"], "both ens1"),
            (
                &[
                    "--tx-iface",
                    "ens1",
                    "--rx-iface",
                    "ens2",
                    "--topology",
                    "e2e",
                ],
                "one or the other",
            ),
            (
                &["--tx-iface", "ens1", "--rx-iface", "ens2", "--io", "socket"],
                "--io xdp or packet",
            ),
            (
                &["--tx-iface", "ens1", "--rx-iface", "ens2", "--dut", "none"],
                "--dut external",
            ),
            (
                &["--tx-iface", "a/b", "--rx-iface", "ens2"],
                "not an interface name",
            ),
            (
                &[
                    "--tx-iface",
                    "ens1",
                    "--rx-iface",
                    "ens2",
                    "--tx-dst-mac",
                    "ff:ff:ff:ff:ff:ff",
                ],
                "unicast",
            ),
            (
                &[
                    "--tx-iface",
                    "ens1",
                    "--rx-iface",
                    "ens2",
                    "--src",
                    "10.0.0.1",
                    "--dst",
                    "10.0.0.1",
                ],
                "both 10.0.0.1",
            ),
            (&["--dut", "external"], "needs --tx-iface"),
            (&["--dst", "10.0.0.1"], "needs --tx-iface"),
            (&["--tx-dst-mac", "02:00:00:00:00:01"], "needs --tx-iface"),
            (
                &["--topology", "encrypt", "--dut", "xipsec-ike"],
                "static keys",
            ),
            (
                &["--topology", "decrypt", "--dut", "none,strongswan"],
                "not strongswan",
            ),
            (&["--dut", "none", "--dataplane", "afxdp"], "xipsecd's"),
        ] {
            let err = run(args).unwrap_err();
            assert!(err.contains(says), "{args:?}: {err}");
        }
        // Values clap itself refuses.
        for args in [
            &["--topology", "external"][..],
            &["--io", "dpdk"],
            &["--dataplane", "xdp"],
            &["--tx-dst-mac", "02:00"],
            &["--src", "10.0.0"],
            &["--dut", "xipsec"],
        ] {
            assert!(run(args).is_err(), "{args:?}");
        }
        assert!(run(&[
            "--dut",
            "xipsec-manual",
            "--dataplane",
            "afxdp",
            "--topology",
            "decrypt"
        ])
        .is_ok());
    }

    fn forwarder(args: &[&str]) -> Result<ForwarderConfig, String> {
        let mut all = vec!["xipsec-bench", "forwarder"];
        all.extend_from_slice(args);
        let cli = Cli::try_parse_from(all).map_err(|e| e.to_string())?;
        let Command::Forwarder(args) = cli.command else {
            panic!("not forwarder")
        };
        args.config()
    }

    #[test]
    fn the_forwarder_takes_what_the_harness_gives_it() {
        let args = crate::dut::forwarder_args(
            Mac([2, 0, 0, 0, 0, 3]),
            Mac([2, 0, 0, 0, 0, 4]),
            crate::topology::NET_A,
            crate::topology::NET_B,
        );
        let args: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
        let config = forwarder(&args).unwrap();
        assert_eq!(config.lan.interface, "lan");
        assert_eq!(config.wan.next_hop, Mac([2, 0, 0, 0, 0, 4]));
        assert_eq!(config.lan.nets[0].to_string(), "10.1.0.0/24");
        assert_eq!(config.wan.nets[0].to_string(), "10.2.0.0/24");
        assert!(forwarder(&[
            "--lan",
            "lan",
            "--wan",
            "wan",
            "--lan-next-hop",
            "02:00:00:00:00:01",
            "--wan-next-hop",
            "02:00:00:00:00:02"
        ])
        .unwrap_err()
        .contains("nothing would be forwarded"));
        assert!(forwarder(&[
            "--lan",
            "lan",
            "--wan",
            "wan",
            "--lan-next-hop",
            "02:00:00:00:00:01",
            "--wan-next-hop",
            "02:00:00:00:00:02",
            "--wan-net",
            "10.2.0.0/33"
        ])
        .is_err());
    }

    #[test]
    fn durations_with_and_without_units() {
        assert_eq!(parse_duration("3s").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("2.5").unwrap(), Duration::from_millis(2500));
        for bad in ["", "s", "3h", "0s", "50ms", "2h", "-1s", "fast", "nan"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}

//! The topologies the harness builds in network namespaces, and what the generator, the sink and
//! the devices under test need to know about them (interfaces, addresses, MAC addresses).
//!
//! ```text
//! e2e:      ha eth0 10.1.0.2 ── lan 10.1.0.1 [ga] wan 192.0.2.1 ── wan 192.0.2.2 [gb] lan 10.2.0.1 ── eth0 10.2.0.2 hb
//! encrypt,
//! decrypt:  ha eth0 10.1.0.2 ── lan 10.1.0.1 [ga] wan 192.0.2.1 ── eth0 192.0.2.2 (+ 10.2.0.2/32) hb
//! ```
//!
//! With one gateway, host B stands where gateway B would: it owns gateway B's WAN address and
//! the sink's address, and the harness plays gateway B's ESP there. Every link has static
//! neighbour entries both ways, so no ARP happens during a run, and the generator knows the
//! next hop's MAC address. Namespaces are `xpt<pid>-<n>-{ha,ga,gb,hb}`, deleted when the
//! [`Topology`] drops.

use std::fmt;
use std::net::Ipv4Addr;
use std::process::Command;
use std::str::FromStr;
use std::time::Duration;

use xipsec_testkit::netns::{unique_prefix, Netns};

use crate::mac::{link_mac, Mac};
use crate::manual::{WAN_A, WAN_B};

/// The generator's subnet (behind gateway A) and the sink's (behind gateway B).
pub const NET_A: &str = "10.1.0.0/24";
/// See [`NET_A`].
pub const NET_B: &str = "10.2.0.0/24";
/// Host A's address.
pub const HOST_A: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
/// Host B's address (the sink's in e2e and encrypt).
pub const HOST_B: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 2);

/// Which topology.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TopologyKind {
    /// generator → gateway A → gateway B → sink: four namespaces.
    E2e,
    /// generator → gateway A → sink: the sink receives what gateway A encrypted.
    Encrypt,
    /// generator → gateway A → sink: the generator sends ESP that gateway A decrypts.
    Decrypt,
    /// Real interfaces in the current namespace, no namespaces built.
    External,
}

impl TopologyKind {
    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            TopologyKind::E2e => "e2e",
            TopologyKind::Encrypt => "encrypt",
            TopologyKind::Decrypt => "decrypt",
            TopologyKind::External => "external",
        }
    }
}

impl fmt::Display for TopologyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TopologyKind {
    type Err = String;

    /// The topologies the harness builds (`external` comes from `--tx-iface`/`--rx-iface`).
    fn from_str(text: &str) -> Result<TopologyKind, String> {
        match text.trim() {
            "e2e" => Ok(TopologyKind::E2e),
            "encrypt" => Ok(TopologyKind::Encrypt),
            "decrypt" => Ok(TopologyKind::Decrypt),
            other => Err(format!(
                "unknown topology '{other}' (e2e, encrypt, decrypt; real interfaces: --tx-iface and --rx-iface)"
            )),
        }
    }
}

/// One gateway as a device under test sees it: its namespace, its two interfaces (`lan`,
/// `wan`), their neighbours, and the addresses of the tunnel it is one end of.
#[derive(Clone, Copy, Debug)]
pub struct Gateway<'a> {
    /// Its namespace.
    pub netns: &'a Netns,
    /// Its WAN address.
    pub local_wan: &'static str,
    /// The peer gateway's WAN address.
    pub remote_wan: &'static str,
    /// The subnet behind its LAN port.
    pub local_net: &'static str,
    /// The subnet behind the peer.
    pub remote_net: &'static str,
    /// Its `lan` interface's MAC address.
    pub lan_mac: Mac,
    /// Its `wan` interface's MAC address.
    pub wan_mac: Mac,
    /// The host on its LAN.
    pub lan_next_hop: Mac,
    /// The peer gateway (or host B standing in for it).
    pub wan_next_hop: Mac,
    /// Whether it starts IKE (gateway A).
    pub initiator: bool,
}

/// Where the generator or the sink runs in a built topology.
#[derive(Clone, Copy, Debug)]
pub struct Host<'a> {
    /// Its namespace.
    pub netns: &'a Netns,
    /// Its interface (`eth0`).
    pub interface: &'static str,
    /// That interface's MAC address.
    pub mac: Mac,
    /// The gateway interface at the other end of its link.
    pub next_hop: Mac,
    /// Its address for probes: the generator's source, the sink's destination.
    pub ip: Ipv4Addr,
}

/// A built topology; its namespaces go when it drops.
#[derive(Debug)]
pub struct Topology {
    /// Which.
    pub kind: TopologyKind,
    host_a: Netns,
    gw_a: Netns,
    gw_b: Option<Netns>,
    host_b: Netns,
    /// MAC addresses: host A eth0, gateway A lan and wan, gateway B wan and lan (or host B
    /// eth0 twice with one gateway), host B eth0.
    macs: [Mac; 6],
}

/// Best effort: switches off transmit checksum offload on a host's veth, so that packets a
/// UDP socket sends carry finished checksums; a device under test that forwards frames
/// through AF_XDP passes them on as they are (docs/architecture.md says why). Returns a
/// warning when it could not.
fn finish_checksums(netns: &Netns, interface: &str) -> Option<String> {
    let output = xipsec_testkit::process::run_bounded(
        Command::new(xipsec_testkit::process::tool("ip"))
            .args(["netns", "exec", netns.name()])
            .arg(xipsec_testkit::process::tool("ethtool"))
            .args(["-K", interface, "tx", "off"]),
        Duration::from_secs(5),
    );
    match output {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
        Err(e) => Some(e),
    }
}

impl Topology {
    /// Builds `kind` (not [`TopologyKind::External`]). Panics when `ip` fails (the caller
    /// catches it); whatever was built is deleted while unwinding.
    pub fn build(kind: TopologyKind) -> Topology {
        assert!(kind != TopologyKind::External, "nothing to build");
        let prefix = unique_prefix();
        let two = kind == TopologyKind::E2e;
        let host_a = Netns::new(format!("{prefix}-ha"));
        let gw_a = Netns::new(format!("{prefix}-ga"));
        let gw_b = two.then(|| Netns::new(format!("{prefix}-gb")));
        let host_b = Netns::new(format!("{prefix}-hb"));
        let veth = |from: &Netns, end: &str, to: &Netns, peer: &str| {
            from.ip(&[
                "link",
                "add",
                end,
                "type",
                "veth",
                "peer",
                "name",
                peer,
                "netns",
                to.name(),
            ]);
        };
        veth(&host_a, "eth0", &gw_a, "lan");
        let wan_a = format!("{WAN_A}/24");
        let wan_b = format!("{WAN_B}/24");
        let mut addresses: Vec<(&Netns, &str, &str)> = vec![
            (&host_a, "eth0", "10.1.0.2/24"),
            (&gw_a, "lan", "10.1.0.1/24"),
            (&gw_a, "wan", &wan_a),
        ];
        match &gw_b {
            Some(gw_b) => {
                veth(&gw_a, "wan", gw_b, "wan");
                veth(gw_b, "lan", &host_b, "eth0");
                addresses.extend([
                    (gw_b, "wan", wan_b.as_str()),
                    (gw_b, "lan", "10.2.0.1/24"),
                    (&host_b, "eth0", "10.2.0.2/24"),
                ]);
            }
            None => {
                veth(&gw_a, "wan", &host_b, "eth0");
                addresses.extend([
                    (&host_b, "eth0", wan_b.as_str()),
                    (&host_b, "eth0", "10.2.0.2/32"),
                ]);
            }
        }
        for (ns, dev, addr) in &addresses {
            ns.ip(&["addr", "add", addr, "dev", dev]);
            ns.ip(&["link", "set", dev, "up"]);
        }
        host_a.ip(&["route", "add", "default", "via", "10.1.0.1"]);
        match &gw_b {
            Some(gw_b) => {
                host_b.ip(&["route", "add", "default", "via", "10.2.0.1"]);
                gw_b.sysctl("net/ipv4/ip_forward", "1");
            }
            None => host_b.ip(&["route", "add", NET_A, "via", WAN_A]),
        }
        gw_a.sysctl("net/ipv4/ip_forward", "1");
        let mac = |ns: &Netns, dev: &str| link_mac(Some(ns), dev).unwrap_or_else(|e| panic!("{e}"));
        let (gw_b_wan, gw_b_lan) = match &gw_b {
            Some(gw_b) => (mac(gw_b, "wan"), mac(gw_b, "lan")),
            None => {
                let eth0 = mac(&host_b, "eth0");
                (eth0, eth0)
            }
        };
        let macs = [
            mac(&host_a, "eth0"),
            mac(&gw_a, "lan"),
            mac(&gw_a, "wan"),
            gw_b_wan,
            gw_b_lan,
            mac(&host_b, "eth0"),
        ];
        let topology = Topology {
            kind,
            host_a,
            gw_a,
            gw_b,
            host_b,
            macs,
        };
        topology.static_neighbours();
        for host in [&topology.host_a, &topology.host_b] {
            if let Some(warning) = finish_checksums(host, "eth0") {
                eprintln!(
                    "xipsec-bench: ethtool -K eth0 tx off in {}: {warning} (UDP checksums may be left to offload that veth never does)",
                    host.name()
                );
            }
        }
        topology
    }

    fn static_neighbours(&self) {
        let [host_a, gw_a_lan, gw_a_wan, gw_b_wan, gw_b_lan, host_b] = self.macs;
        let neigh = |ns: &Netns, dev: &str, ip: &str, mac: Mac| {
            ns.ip(&[
                "neigh",
                "replace",
                ip,
                "lladdr",
                &mac.to_string(),
                "dev",
                dev,
                "nud",
                "permanent",
            ]);
        };
        neigh(&self.host_a, "eth0", "10.1.0.1", gw_a_lan);
        neigh(&self.gw_a, "lan", "10.1.0.2", host_a);
        neigh(&self.gw_a, "wan", WAN_B, gw_b_wan);
        match &self.gw_b {
            Some(gw_b) => {
                neigh(gw_b, "wan", WAN_A, gw_a_wan);
                neigh(gw_b, "lan", "10.2.0.2", host_b);
                neigh(&self.host_b, "eth0", "10.2.0.1", gw_b_lan);
            }
            None => neigh(&self.host_b, "eth0", WAN_A, gw_a_wan),
        }
    }

    /// The gateways, A first.
    pub fn gateways(&self) -> Vec<Gateway<'_>> {
        let [host_a, gw_a_lan, gw_a_wan, gw_b_wan, gw_b_lan, host_b] = self.macs;
        let mut gateways = vec![Gateway {
            netns: &self.gw_a,
            local_wan: WAN_A,
            remote_wan: WAN_B,
            local_net: NET_A,
            remote_net: NET_B,
            lan_mac: gw_a_lan,
            wan_mac: gw_a_wan,
            lan_next_hop: host_a,
            wan_next_hop: gw_b_wan,
            initiator: true,
        }];
        if let Some(gw_b) = &self.gw_b {
            gateways.push(Gateway {
                netns: gw_b,
                local_wan: WAN_B,
                remote_wan: WAN_A,
                local_net: NET_B,
                remote_net: NET_A,
                lan_mac: gw_b_lan,
                wan_mac: gw_b_wan,
                lan_next_hop: host_b,
                wan_next_hop: gw_a_wan,
                initiator: false,
            });
        }
        gateways
    }

    /// Host A: behind gateway A's LAN.
    pub fn host_a(&self) -> Host<'_> {
        Host {
            netns: &self.host_a,
            interface: "eth0",
            mac: self.macs[0],
            next_hop: self.macs[1],
            ip: HOST_A,
        }
    }

    /// Host B: behind gateway B's LAN (e2e), or on gateway A's WAN (one gateway), where its
    /// probe address is [`HOST_B`] and its WAN address gateway B's.
    pub fn host_b(&self) -> Host<'_> {
        Host {
            netns: &self.host_b,
            interface: "eth0",
            mac: self.macs[5],
            next_hop: if self.gw_b.is_some() {
                self.macs[4]
            } else {
                self.macs[2]
            },
            ip: HOST_B,
        }
    }

    /// Where the generator runs: host B when the gateway decrypts, host A otherwise.
    pub fn generator(&self) -> Host<'_> {
        match self.kind {
            TopologyKind::Decrypt => self.host_b(),
            _ => self.host_a(),
        }
    }

    /// Where the sink runs: the other host.
    pub fn sink(&self) -> Host<'_> {
        match self.kind {
            TopologyKind::Decrypt => self.host_a(),
            _ => self.host_b(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_names_parse_and_external_is_not_one_to_build() {
        for kind in [
            TopologyKind::E2e,
            TopologyKind::Encrypt,
            TopologyKind::Decrypt,
        ] {
            assert_eq!(kind.name().parse::<TopologyKind>().unwrap(), kind);
        }
        assert!("external"
            .parse::<TopologyKind>()
            .unwrap_err()
            .contains("--tx-iface"));
        assert!("e2e2".parse::<TopologyKind>().is_err());
    }
}

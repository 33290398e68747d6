//! Which generator and sink a run uses, and where: from the I/O kind (`--io`), the topology
//! and whether the device under test encrypts. [`Sides`] is decided without I/O (tested on its
//! own); [`open_tx`] and [`open_rx`] then make the sockets, in the namespace they belong to.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::str::FromStr;

use xipsec_ebpf::IpNet;
use xipsec_testkit::netns::Netns;

use crate::frame::{EspProbes, Flow, PROBE_SRC_PORT};
use crate::generator::{Transmit, UdpTransmit};
use crate::mac::Mac;
use crate::manual;
use crate::net::udp_socket;
use crate::packet_io::{PacketReceive, PacketTransmit};
use crate::rx::Receiver;
use crate::sink::{ReceiveBatch, UdpReceive};
use crate::size::PacketSize;
use crate::topology::{Topology, TopologyKind};
use crate::xsk_io::{XskReceive, XskTransmit};

/// The sink's UDP port.
pub const SINK_PORT: u16 = 47001;

/// How the generator and the sink move packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IoKind {
    /// AF_XDP sockets; the sink behind the XDP classifier.
    Xdp,
    /// AF_PACKET sockets, whole frames.
    Packet,
    /// UDP sockets (raw IP and raw ESP sockets where ESP is the harness's to make or open).
    Socket,
}

impl IoKind {
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            IoKind::Xdp => "xdp",
            IoKind::Packet => "packet",
            IoKind::Socket => "socket",
        }
    }

    /// What the report's `generator` field says.
    pub fn generator(self) -> &'static str {
        match self {
            IoKind::Xdp => "af-xdp",
            IoKind::Packet => "af-packet",
            IoKind::Socket => "udp-socket",
        }
    }
}

impl fmt::Display for IoKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for IoKind {
    type Err = String;

    fn from_str(text: &str) -> Result<IoKind, String> {
        match text.trim() {
            "xdp" => Ok(IoKind::Xdp),
            "packet" => Ok(IoKind::Packet),
            "socket" => Ok(IoKind::Socket),
            other => Err(format!("unknown I/O '{other}' (xdp, packet, socket)")),
        }
    }
}

/// What the generator sends through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxSpec {
    /// A UDP socket bound to `source`, connected to `dest`.
    Udp {
        /// Bound here (port 0: the kernel's choice).
        source: SocketAddrV4,
        /// The sink.
        dest: SocketAddrV4,
    },
    /// AF_XDP on queue 0 of `interface`.
    Xsk {
        /// The generator's interface.
        interface: String,
        /// The probes (inner packets when `esp`).
        flow: Flow,
        /// Seal probes with gateway B's outbound SA.
        esp: bool,
    },
    /// AF_PACKET on `interface`.
    Packet {
        /// The generator's interface.
        interface: String,
        /// The probes (inner packets when `esp`).
        flow: Flow,
        /// Seal probes with gateway B's outbound SA.
        esp: bool,
    },
    /// Probes sealed with gateway B's outbound SA on a raw IP socket to `gateway`.
    RawEsp {
        /// Gateway A's WAN address.
        gateway: Ipv4Addr,
        /// The inner packets.
        flow: Flow,
    },
}

/// What the sink receives through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RxSpec {
    /// A UDP socket bound to `bind`.
    Udp {
        /// The sink's address and port.
        bind: SocketAddrV4,
    },
    /// The classifier on `interface`, an AF_XDP socket per queue.
    Xsk {
        /// The sink's interface.
        interface: String,
        /// Its receive queues.
        queues: u32,
        /// The classifier's policy: the sink's address.
        prefix: IpNet,
        /// Open ESP with gateway B's inbound SA.
        decrypt: bool,
    },
    /// AF_PACKET on `interface`.
    Packet {
        /// The sink's interface.
        interface: String,
        /// Open ESP with gateway B's inbound SA.
        decrypt: bool,
    },
    /// A raw ESP socket on `local`, opened with gateway B's inbound SA.
    RawEsp {
        /// Gateway B's WAN address (host B's in the one-gateway topologies).
        local: Ipv4Addr,
    },
}

/// Both ends of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sides {
    /// The generator.
    pub tx: TxSpec,
    /// The sink.
    pub rx: RxSpec,
}

/// The addresses of a run's endpoints, however they were found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ends<'a> {
    /// The generator's interface.
    pub tx_interface: &'a str,
    /// Its MAC address.
    pub tx_mac: Mac,
    /// The next hop's.
    pub tx_next_hop: Mac,
    /// The probes' source address.
    pub src: Ipv4Addr,
    /// The sink's interface.
    pub rx_interface: &'a str,
    /// The probes' destination: the sink's address.
    pub dst: Ipv4Addr,
    /// The sink's receive queues.
    pub rx_queues: u32,
}

/// Decides the generator and sink for `io` in `topology`. `dut_encrypts`: the device under
/// test speaks ESP between the gateways, so that in the one-gateway topologies the harness
/// seals (decrypt) or opens (encrypt) it with gateway B's static SAs.
pub fn sides(io: IoKind, topology: TopologyKind, ends: &Ends<'_>, dut_encrypts: bool) -> Sides {
    let seal = topology == TopologyKind::Decrypt && dut_encrypts;
    let open = topology == TopologyKind::Encrypt && dut_encrypts;
    let flow = Flow {
        src_mac: ends.tx_mac,
        dst_mac: ends.tx_next_hop,
        src: ends.src,
        dst: ends.dst,
        src_port: PROBE_SRC_PORT,
        dst_port: SINK_PORT,
    };
    let prefix = IpNet::new(ends.dst.into(), 32).expect("/32 is a valid IPv4 prefix length");
    match io {
        IoKind::Xdp => Sides {
            tx: TxSpec::Xsk {
                interface: ends.tx_interface.to_owned(),
                flow,
                esp: seal,
            },
            rx: RxSpec::Xsk {
                interface: ends.rx_interface.to_owned(),
                queues: ends.rx_queues,
                prefix,
                decrypt: open,
            },
        },
        IoKind::Packet => Sides {
            tx: TxSpec::Packet {
                interface: ends.tx_interface.to_owned(),
                flow,
                esp: seal,
            },
            rx: RxSpec::Packet {
                interface: ends.rx_interface.to_owned(),
                decrypt: open,
            },
        },
        IoKind::Socket => Sides {
            tx: if seal {
                TxSpec::RawEsp {
                    gateway: manual::WAN_A.parse().expect("a constant address"),
                    flow,
                }
            } else {
                TxSpec::Udp {
                    source: SocketAddrV4::new(ends.src, 0),
                    dest: SocketAddrV4::new(ends.dst, SINK_PORT),
                }
            },
            rx: if open {
                RxSpec::RawEsp {
                    local: manual::WAN_B.parse().expect("a constant address"),
                }
            } else {
                RxSpec::Udp {
                    bind: SocketAddrV4::new(ends.dst, SINK_PORT),
                }
            },
        },
    }
}

/// [`sides`] for a built topology.
pub fn sides_in(io: IoKind, topology: &Topology, dut_encrypts: bool) -> Sides {
    let (gen, sink) = (topology.generator(), topology.sink());
    let ends = Ends {
        tx_interface: gen.interface,
        tx_mac: gen.mac,
        tx_next_hop: gen.next_hop,
        src: gen.ip,
        rx_interface: sink.interface,
        dst: sink.ip,
        rx_queues: 1,
    };
    sides(io, topology.kind, &ends, dut_encrypts)
}

/// Runs `f` in `netns`, or in the current namespace when `None`.
pub fn in_place<T: Send>(netns: Option<&Netns>, f: impl FnOnce() -> T + Send) -> T {
    match netns {
        Some(netns) => netns.run(f),
        None => f(),
    }
}

/// Opens the generator's socket in the calling thread's namespace. Sealed probes continue the
/// SA's sequence numbers at `esp_next` (see [`Transmit::esp_next_sequence`]).
pub fn open_tx(
    spec: &TxSpec,
    size: PacketSize,
    esp_next: u64,
) -> Result<Box<dyn Transmit>, String> {
    let esp_probes = |flow: &Flow| {
        EspProbes::new(manual::outbound_at_b(), flow.src_mac, flow.dst_mac).resume_at(esp_next)
    };
    Ok(match spec {
        TxSpec::Udp { source, dest } => {
            let fd = udp_socket(*source, Some(*dest), std::time::Duration::from_millis(100))
                .map_err(|e| format!("the generator's socket: {e}"))?;
            Box::new(UdpTransmit::new(fd))
        }
        TxSpec::Xsk {
            interface,
            flow,
            esp,
        } => Box::new(XskTransmit::open(
            interface,
            0,
            flow,
            size,
            esp.then(|| esp_probes(flow)),
        )?),
        TxSpec::Packet {
            interface,
            flow,
            esp,
        } => Box::new(
            PacketTransmit::link(interface, flow, size, esp.then(|| esp_probes(flow)))
                .map_err(|e| format!("the generator's AF_PACKET socket: {e}"))?,
        ),
        TxSpec::RawEsp { gateway, flow } => Box::new(
            PacketTransmit::ip(*gateway, flow, size, esp_probes(flow))
                .map_err(|e| format!("the generator's raw socket: {e}"))?,
        ),
    })
}

/// Opens the sink's socket in the calling thread's namespace.
pub fn open_rx(spec: &RxSpec) -> Result<Box<dyn ReceiveBatch>, String> {
    let receiver = |decrypt: bool| Receiver::new(SINK_PORT, decrypt.then(manual::inbound_at_b));
    Ok(match spec {
        RxSpec::Udp { bind } => {
            let fd = udp_socket(*bind, None, std::time::Duration::from_millis(50))
                .map_err(|e| format!("the sink's socket: {e}"))?;
            Box::new(UdpReceive::new(fd))
        }
        RxSpec::Xsk {
            interface,
            queues,
            prefix,
            decrypt,
        } => Box::new(XskReceive::open(
            interface,
            *queues,
            *prefix,
            receiver(*decrypt),
        )?),
        RxSpec::Packet { interface, decrypt } => Box::new(
            PacketReceive::link(interface, receiver(*decrypt))
                .map_err(|e| format!("the sink's AF_PACKET socket: {e}"))?,
        ),
        RxSpec::RawEsp { local } => Box::new(
            PacketReceive::esp(SocketAddrV4::new(*local, 0), receiver(true))
                .map_err(|e| format!("the sink's raw ESP socket: {e}"))?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ends() -> Ends<'static> {
        Ends {
            tx_interface: "eth0",
            tx_mac: "02:00:00:00:00:0a".parse().unwrap(),
            tx_next_hop: "02:00:00:00:00:0b".parse().unwrap(),
            src: Ipv4Addr::new(10, 2, 0, 2),
            rx_interface: "eth1",
            dst: Ipv4Addr::new(10, 1, 0, 2),
            rx_queues: 4,
        }
    }

    #[test]
    fn esp_is_sealed_only_toward_a_decrypting_gateway_and_opened_only_behind_an_encrypting_one() {
        let e = ends();
        for (topology, encrypts, seal, open) in [
            (TopologyKind::E2e, true, false, false),
            (TopologyKind::Decrypt, true, true, false),
            (TopologyKind::Decrypt, false, false, false),
            (TopologyKind::Encrypt, true, false, true),
            (TopologyKind::Encrypt, false, false, false),
            (TopologyKind::External, false, false, false),
        ] {
            let s = sides(IoKind::Xdp, topology, &e, encrypts);
            let TxSpec::Xsk { esp, flow, .. } = s.tx else {
                panic!("{s:?}")
            };
            let RxSpec::Xsk {
                decrypt,
                prefix,
                queues,
                ..
            } = s.rx
            else {
                panic!("{s:?}")
            };
            assert_eq!((esp, decrypt), (seal, open), "{topology} {encrypts}");
            assert_eq!(prefix.to_string(), "10.1.0.2/32");
            assert_eq!(queues, 4);
            assert_eq!(
                (flow.dst_mac, flow.dst, flow.dst_port),
                (e.tx_next_hop, e.dst, SINK_PORT)
            );
        }
    }

    #[test]
    fn sockets_use_raw_esp_where_the_harness_plays_gateway_b() {
        let e = ends();
        let s = sides(IoKind::Socket, TopologyKind::Decrypt, &e, true);
        assert!(
            matches!(s.tx, TxSpec::RawEsp { gateway, .. } if gateway.to_string() == manual::WAN_A)
        );
        assert_eq!(
            s.rx,
            RxSpec::Udp {
                bind: SocketAddrV4::new(e.dst, SINK_PORT)
            }
        );
        let s = sides(IoKind::Socket, TopologyKind::Encrypt, &e, true);
        assert!(matches!(s.tx, TxSpec::Udp { .. }));
        assert!(matches!(s.rx, RxSpec::RawEsp { local } if local.to_string() == manual::WAN_B));
        let s = sides(IoKind::Packet, TopologyKind::Encrypt, &e, true);
        assert_eq!(
            s.rx,
            RxSpec::Packet {
                interface: "eth1".into(),
                decrypt: true
            }
        );
    }
}

//! The `forwarder` device under test: a plain AF_XDP forwarder with no crypto, the I/O ceiling
//! a gateway built on AF_XDP can reach on this path. `xipsec-bench forwarder` runs it on one
//! gateway: the XDP classifier on both ports sends frames for the other side's prefixes to an
//! AF_XDP socket; each frame is copied once into the other port's transmit frame with new MAC
//! addresses (the same copy the ESP gateway makes) and sent. Both directions, one thread,
//! busy-polling while frames flow and sleeping in poll(2) when both ports are idle.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use xipsec_dataplane::io::xsk::{Descriptor, XskConfig, XskSocket};
use xipsec_ebpf::{AttachMode, Attachment, Classifier, ClassifierConfig, IpNet};

use crate::cpu::thread_cpu_ns;
use crate::mac::Mac;
use crate::xsk_io::{kick, wait_readable};

/// Frames per batch.
const BATCH: usize = 64;
/// Empty rounds before sleeping in poll(2).
const SPINS: u32 = 256;
/// Kicks per transmit at most (copy mode sends 32 per kick).
const KICKS: usize = 4;

const EMPTY: Descriptor = Descriptor {
    addr: 0,
    len: 0,
    options: 0,
};

/// One side of the forwarder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortConfig {
    /// The interface, in the forwarder's namespace.
    pub interface: String,
    /// The MAC address frames sent out of this port go to.
    pub next_hop: Mac,
    /// Destinations reached through this port: frames for them that arrive on the other port
    /// are forwarded out of this one.
    pub nets: Vec<IpNet>,
}

/// What the forwarder runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwarderConfig {
    /// The LAN side.
    pub lan: PortConfig,
    /// The WAN side.
    pub wan: PortConfig,
}

impl ForwarderConfig {
    /// Whether it can run: two different interfaces, unicast next hops (the operator's
    /// mistakes, said before anything is set up).
    pub fn check(&self) -> Result<(), String> {
        if self.lan.interface == self.wan.interface {
            return Err(format!(
                "--lan and --wan are both {}: the forwarder needs two ports",
                self.lan.interface
            ));
        }
        for (flag, port) in [("--lan-next-hop", &self.lan), ("--wan-next-hop", &self.wan)] {
            if !port.next_hop.is_unicast() {
                return Err(format!(
                    "{flag} {} is not a unicast MAC address",
                    port.next_hop
                ));
            }
        }
        if self.lan.nets.is_empty() && self.wan.nets.is_empty() {
            return Err("no --lan-net or --wan-net: nothing would be forwarded".to_owned());
        }
        Ok(())
    }
}

/// Copies the frame `data` into `out` with `source` and `next_hop` as its addresses; returns
/// the length, or `None` when it does not fit or is shorter than an Ethernet header.
#[inline]
pub fn rewrite_into(data: &[u8], out: &mut [u8], source: Mac, next_hop: Mac) -> Option<usize> {
    if data.len() < 14 {
        return None;
    }
    let out = out.get_mut(..data.len())?;
    out.copy_from_slice(data);
    out[..6].copy_from_slice(&next_hop.0);
    out[6..12].copy_from_slice(&source.0);
    Some(data.len())
}

/// Counters of one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Direction {
    /// Frames received on the input port.
    pub received: u64,
    /// Frames queued for transmission on the output port.
    pub forwarded: u64,
    /// Frames dropped: no transmit frame free, or the transmit ring full.
    pub dropped: u64,
}

struct Port {
    socket: XskSocket,
    mac: Mac,
    next_hop: Mac,
    stash: Vec<u64>,
    // Detaches the program before the classifier unloads it.
    _attachment: Attachment,
    _classifier: Classifier,
}

impl Port {
    /// The classifier on `interface` with `policies` (frames for them come to the socket) and
    /// a socket on queue 0; in the calling thread's namespace.
    fn open(config: &PortConfig, policies: &[IpNet], mac: Mac) -> Result<Port, String> {
        let mut classifier = Classifier::load(ClassifierConfig::default())
            .map_err(|e| format!("loading the XDP classifier: {e}"))?;
        for prefix in policies {
            classifier
                .add_policy(*prefix)
                .map_err(|e| format!("policy {prefix}: {e}"))?;
        }
        let attachment = classifier
            .attach(&config.interface, AttachMode::Auto)
            .map_err(|e| format!("attaching to {}: {e}", config.interface))?;
        let socket = XskSocket::bind(&config.interface, 0, XskConfig::default())
            .map_err(|e| format!("AF_XDP socket on {}: {e}", config.interface))?;
        classifier
            .register_xsk(0, &socket)
            .map_err(|e| format!("registering the socket of {}: {e}", config.interface))?;
        Ok(Port {
            socket,
            mac,
            next_hop: config.next_hop,
            stash: Vec::with_capacity(BATCH),
            _attachment: attachment,
            _classifier: classifier,
        })
    }
}

/// Moves one batch from `from` to `to`; returns how many frames arrived.
fn forward(
    from: &mut Port,
    to: &mut Port,
    rx: &mut [Descriptor; BATCH],
    tx: &mut [Descriptor; BATCH],
    counters: &mut Direction,
) -> usize {
    let n = from.socket.receive(rx);
    if n == 0 {
        return 0;
    }
    let mut count = 0;
    for d in &rx[..n] {
        let Some(data) = from.socket.frame(d.addr, d.len as usize) else {
            counters.dropped += 1;
            continue;
        };
        let Some(addr) = to.stash.pop().or_else(|| to.socket.take_tx_frame()) else {
            counters.dropped += 1;
            continue;
        };
        let Some((frame, offset)) = to.socket.frame_mut(addr) else {
            counters.dropped += 1;
            continue;
        };
        let base = addr - offset as u64;
        match rewrite_into(data, frame, to.mac, to.next_hop) {
            Some(len) => {
                tx[count] = Descriptor {
                    addr: base,
                    len: len as u32,
                    options: 0,
                };
                count += 1;
            }
            None => {
                to.stash.push(base);
                counters.dropped += 1;
            }
        }
    }
    from.socket.refill(rx[..n].iter().map(|d| d.addr));
    let queued = to.socket.transmit(&tx[..count]) as usize;
    for d in &tx[queued..count] {
        to.stash.push(d.addr);
    }
    for _ in 0..KICKS {
        if !kick(to.socket.fd()) {
            break;
        }
    }
    to.socket.reclaim_completed();
    counters.received += n as u64;
    counters.forwarded += queued as u64;
    counters.dropped += (count - queued) as u64;
    n
}

/// What a finished forwarder did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ForwarderReport {
    /// LAN to WAN.
    pub lan_to_wan: Direction,
    /// WAN to LAN.
    pub wan_to_lan: Direction,
    /// CPU time of the forwarding thread, nanoseconds.
    pub cpu_ns: u64,
}

/// Sets the forwarder up in the current namespace with the interfaces' own MAC addresses
/// (`lan_mac`, `wan_mac`), says `ready` on standard output, and forwards until `stop`.
pub fn run(
    config: &ForwarderConfig,
    lan_mac: Mac,
    wan_mac: Mac,
    stop: &AtomicBool,
) -> Result<ForwarderReport, String> {
    config.check()?;
    // The LAN port's classifier takes frames bound for what lies behind the WAN, and back.
    let mut lan = Port::open(&config.lan, &config.wan.nets, lan_mac)?;
    let mut wan = Port::open(&config.wan, &config.lan.nets, wan_mac)?;
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "ready");
    let _ = stdout.flush();
    let mut report = ForwarderReport::default();
    let mut rx = [EMPTY; BATCH];
    let mut tx = [EMPTY; BATCH];
    let mut pollfds = [lan.socket.fd(), wan.socket.fd()].map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    let cpu_start = thread_cpu_ns();
    let mut idle = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let moved = forward(&mut lan, &mut wan, &mut rx, &mut tx, &mut report.lan_to_wan)
            + forward(&mut wan, &mut lan, &mut rx, &mut tx, &mut report.wan_to_lan);
        if moved > 0 {
            idle = 0;
            continue;
        }
        idle += 1;
        if idle > SPINS {
            wait_readable(&mut pollfds, 10);
        }
    }
    report.cpu_ns = thread_cpu_ns().saturating_sub(cpu_start);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(interface: &str, mac: &str, nets: &[&str]) -> PortConfig {
        PortConfig {
            interface: interface.to_owned(),
            next_hop: mac.parse().unwrap(),
            nets: nets.iter().map(|n| n.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn a_frame_gets_the_ports_addresses_and_keeps_its_bytes() {
        let data: Vec<u8> = (0..100u8).collect();
        let mut out = [0u8; 2048];
        let source: Mac = "02:00:00:00:00:01".parse().unwrap();
        let hop: Mac = "02:00:00:00:00:02".parse().unwrap();
        assert_eq!(rewrite_into(&data, &mut out, source, hop), Some(100));
        assert_eq!(&out[..6], &hop.0);
        assert_eq!(&out[6..12], &source.0);
        assert_eq!(&out[12..100], &data[12..]);
        assert_eq!(out[100], 0);
        assert_eq!(rewrite_into(&data[..13], &mut out, source, hop), None);
        assert_eq!(rewrite_into(&data, &mut out[..99], source, hop), None);
    }

    #[test]
    fn configurations_the_forwarder_refuses() {
        let good = ForwarderConfig {
            lan: port("lan", "02:00:00:00:00:0a", &["10.1.0.0/24"]),
            wan: port("wan", "02:00:00:00:00:0b", &["10.2.0.0/24"]),
        };
        assert_eq!(good.check(), Ok(()));
        let mut same = good.clone();
        same.wan.interface = "lan".into();
        assert!(same.check().unwrap_err().contains("two ports"));
        let mut broadcast = good.clone();
        broadcast.wan.next_hop = Mac([0xff; 6]);
        assert!(broadcast.check().unwrap_err().contains("--wan-next-hop"));
        let mut nothing = good.clone();
        nothing.lan.nets.clear();
        nothing.wan.nets.clear();
        assert!(nothing.check().is_err());
    }
}

//! A two-port ESP gateway over AF_XDP: plaintext from the LAN port is encapsulated and leaves
//! through the WAN port; ESP from the WAN port is decapsulated and leaves through the LAN
//! port. One thread, one queue per port, batches both ways, nothing allocated per packet.
//!
//! SAs come from an [`SaSource`]: a fixed pair (benchmarks) or the shared table through the
//! worker's cache and SPD mirror. Next hops are static MAC addresses for now; the FIB and
//! neighbour mirror takes their place next. Each port
//! has its own UMEM, so a forwarded packet is copied once into the other port's frame — a
//! shared UMEM (`XDP_SHARED_UMEM`) would remove that copy.

use super::SaSource;
use crate::esp::{Decapsulator, PacketBuf, Verdict};
use crate::io::xsk::{Descriptor, XskSocket};

const ETHERNET_HEADER_LEN: usize = 14;
const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const ETHERTYPE_IPV6: [u8; 2] = [0x86, 0xDD];
/// The largest batch one call handles in each direction.
pub const MAX_BATCH: usize = 64;

/// One side of the gateway: its socket and the link-layer addresses frames leave with.
#[derive(Debug)]
pub struct XskPort {
    pub socket: XskSocket,
    /// This interface's MAC address (the source of frames sent here).
    pub mac: [u8; 6],
    /// The next hop's MAC address (the destination of frames sent here).
    pub next_hop: [u8; 6],
}

/// What the gateway did, both directions together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XskGatewayCounters {
    pub received: u64,
    pub encapsulated: u64,
    pub decapsulated: u64,
    /// Dropped by the ESP core (the SAs' counters say why).
    pub esp_dropped: u64,
    /// Frames that were neither IPv4 nor IPv6 (the XDP program should not send any).
    pub not_ip: u64,
    /// IKE that reached the socket instead of the kernel (the XDP program should pass it).
    pub control_plane: u64,
    /// Forwardable packets dropped for want of a free transmit frame or room in it.
    pub tx_dropped: u64,
    /// Plaintext no policy covers (or whose SA is gone): dropped, never sent in the clear.
    pub no_sa: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    LanToWan,
    WanToLan,
}

/// The gateway's state: both ports, where its SAs come from, and the receive-side state.
#[derive(Debug)]
pub struct XskGateway<S> {
    lan: XskPort,
    wan: XskPort,
    sas: S,
    decapsulator: Decapsulator,
    batch: usize,
    counters: XskGatewayCounters,
}

impl<S: SaSource> XskGateway<S> {
    /// `batch` is clamped to 1..=[`MAX_BATCH`]. `decapsulator` carries the NAT-T port.
    pub fn new(
        lan: XskPort,
        wan: XskPort,
        sas: S,
        decapsulator: Decapsulator,
        batch: usize,
    ) -> Self {
        Self {
            lan,
            wan,
            sas,
            decapsulator,
            batch: batch.clamp(1, MAX_BATCH),
            counters: XskGatewayCounters::default(),
        }
    }

    pub fn counters(&self) -> XskGatewayCounters {
        self.counters
    }

    /// Where the SAs come from, for their counters.
    pub fn sas(&self) -> &S {
        &self.sas
    }

    pub fn lan(&self) -> &XskPort {
        &self.lan
    }

    pub fn wan(&self) -> &XskPort {
        &self.wan
    }

    /// One batch each way; returns how many frames were received. Never blocks.
    pub fn run_once(&mut self) -> usize {
        // The first packet after a policy change must already follow it.
        self.sas.begin_batch();
        let received = self.forward(Direction::LanToWan) + self.forward(Direction::WanToLan);
        self.sas.end_batch();
        received
    }

    fn forward(&mut self, direction: Direction) -> usize {
        let (from, to) = match direction {
            Direction::LanToWan => (&mut self.lan, &mut self.wan),
            Direction::WanToLan => (&mut self.wan, &mut self.lan),
        };
        let mut received = [Descriptor {
            addr: 0,
            len: 0,
            options: 0,
        }; MAX_BATCH];
        let mut outgoing = received;
        let count = from.socket.receive(&mut received[..self.batch]);
        let mut sending = 0;
        for descriptor in &received[..count] {
            self.counters.received += 1;
            let Some((frame, offset)) = from.socket.frame_mut(descriptor.addr) else {
                continue;
            };
            let len = descriptor.len as usize;
            let ethertype = frame.get(offset + 12..offset + 14);
            if len < ETHERNET_HEADER_LEN
                || !matches!(ethertype, Some(t) if t == ETHERTYPE_IPV4 || t == ETHERTYPE_IPV6)
            {
                self.counters.not_ip += 1;
                continue;
            }
            let Some(mut packet) = PacketBuf::new(
                frame,
                offset + ETHERNET_HEADER_LEN,
                len - ETHERNET_HEADER_LEN,
            ) else {
                self.counters.not_ip += 1;
                continue;
            };
            let verdict = match direction {
                Direction::LanToWan => match self.sas.outbound_for(packet.data()) {
                    Some(sa) => match sa.encap(&mut packet) {
                        Ok(()) => Verdict::Forward,
                        Err(reason) => Verdict::Drop(reason),
                    },
                    None => {
                        self.counters.no_sa += 1;
                        continue;
                    }
                },
                // With the RFC 4301 §5.2 check: never onto the LAN outside the selectors.
                Direction::WanToLan => self.sas.decap(&mut self.decapsulator, &mut packet),
            };
            match verdict {
                Verdict::Forward => {}
                Verdict::ToControlPlane => {
                    self.counters.control_plane += 1;
                    continue;
                }
                Verdict::Drop(_) => {
                    self.counters.esp_dropped += 1;
                    continue;
                }
            }
            match direction {
                Direction::LanToWan => self.counters.encapsulated += 1,
                Direction::WanToLan => self.counters.decapsulated += 1,
            }
            match write_frame(to, packet.data()) {
                Some(out) => {
                    outgoing[sending] = out;
                    sending += 1;
                }
                None => self.counters.tx_dropped += 1,
            }
        }
        from.socket
            .refill(received[..count].iter().map(|descriptor| descriptor.addr));
        if sending > 0 {
            let queued = to.socket.transmit(&outgoing[..sending]) as usize;
            self.counters.tx_dropped += (sending - queued) as u64;
        }
        to.socket.reclaim_completed();
        count
    }
}

/// Copies `packet` behind an Ethernet header into a free transmit frame of `port`.
fn write_frame(port: &mut XskPort, packet: &[u8]) -> Option<Descriptor> {
    let ethertype = match packet.first()? >> 4 {
        4 => ETHERTYPE_IPV4,
        6 => ETHERTYPE_IPV6,
        _ => return None,
    };
    let addr = port.socket.take_tx_frame()?;
    let (frame, offset) = port.socket.frame_mut(addr)?;
    let out = frame.get_mut(offset..offset + ETHERNET_HEADER_LEN + packet.len())?;
    out[..6].copy_from_slice(&port.next_hop);
    out[6..12].copy_from_slice(&port.mac);
    out[12..14].copy_from_slice(&ethertype);
    out[ETHERNET_HEADER_LEN..].copy_from_slice(packet);
    Some(Descriptor {
        addr,
        len: (ETHERNET_HEADER_LEN + packet.len()) as u32,
        options: 0,
    })
}

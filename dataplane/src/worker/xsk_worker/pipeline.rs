//! The per-packet work of a worker, apart from its sockets: frames in, frames (or hand-offs)
//! out. Kernel-free, so that it can be tested and measured on plain buffers.
//!
//! ```text
//! Ethernet (+ one 802.1Q tag, stripped) -> IP packet
//!   ESP, ESP in UDP to the NAT-T port -> SPI -> slot -> owner?  other: hand off
//!                                                           mine: decapsulate (+ RFC 4301 §5.2)
//!   anything else -> SPD (this worker's per-resource SA first)
//!                        -> slot -> owner?                    other: hand off
//!                                                           mine: too big for the link
//!                                                                 towards the peer?
//!                                                                 yes: ICMP error to the
//!                                                                      sender; IPv4 without
//!                                                                      DF: fragments; or drop
//!                                                                 no: encapsulate
//! -> destination -> NextHops: Resolved (port, MACs, MTU): Ethernet header in front, transmit
//!                             Unresolved, Unreachable, another interface, longer than the
//!                             MTU: counted drop
//! ```
//!
//! The ESP work happens in place in the buffer handed in, and so does the Ethernet header:
//! what leaves is a window of that buffer.
//!
//! Path MTU. Before a packet is encapsulated (its inner header still intact) the pipeline
//! asks where the ESP packet will leave and whether it will fit that link's MTU. One that
//! would not is answered, while the rate limit allows, with an ICMP Fragmentation Needed
//! (IPv4 with DF) or ICMPv6 Packet Too Big carrying the MTU left inside the tunnel, from the
//! SA's local address, routed towards the sender like any packet (`icmp_too_big.rs` says
//! what is never answered). IPv4 without DF is fragmented before encryption instead
//! (`prefragment.rs`): the first fragment goes on at once, the others through the worker's
//! own hand-off inbox, each its own ESP packet, so no receiver has to reassemble ESP. A
//! route's own MTU metric is not consulted, only the egress link's.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use super::error::XskWorkerError;
use super::frame::{self, Class};
use super::handoff::{Handoff, HandoffPacket, HandoffWork};
use super::icmp_too_big;
use super::prefragment;
use super::rate_limit::TokenBucket;
use super::stats::WorkerCounters;
use super::tunnel_mtu;
use crate::esp::{Decapsulator, Endpoints, Mode, PacketBuf, SaParams, Verdict};
use crate::fib::{NextHop, NextHops};
use crate::table::SlotId;
use crate::worker::{owner_of, SaSource};

/// What became of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Send `len` bytes from `start` of the buffer (an Ethernet frame, header written) on
    /// port `port` (an index into the egress interfaces the pipeline was given).
    Transmit {
        port: usize,
        start: usize,
        len: usize,
    },
    /// Copied into another worker's inbox: the buffer is free.
    HandedOff,
    /// Dropped; a counter says why.
    Dropped,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Work {
    Decapsulate,
    /// Through the outbound policy, the source's own way (it names no slots).
    Encapsulate,
    /// With the outbound SA in this slot, this worker's.
    EncapsulateIn(SlotId),
}

/// Classification, ownership, ESP and next hop for one worker, one frame at a time.
#[derive(Debug)]
pub struct Pipeline<S, N> {
    worker: usize,
    workers: usize,
    sas: S,
    next_hops: N,
    decapsulator: Decapsulator,
    handoff: Option<Arc<Handoff>>,
    /// Ifindex of each port, in port order: a few entries, searched linearly.
    egress: Vec<u32>,
    counters: WorkerCounters,
    /// How many ICMP errors about too-big packets may be sent.
    too_big_limit: TokenBucket,
    /// The identification of the last ICMPv4 error sent.
    icmp_id: u16,
    /// Where a fragment is assembled before it is queued (as long as a hand-off buffer).
    scratch: Vec<u8>,
}

/// ICMP errors about too-big packets a worker sends per second, by default.
pub(super) const TOO_BIG_PER_SECOND: u32 = 1000;
/// And how many it may send at once after a quiet spell.
pub(super) const TOO_BIG_BURST: u32 = 100;

impl<S, N> Pipeline<S, N> {
    /// What this pipeline did so far.
    pub fn counters(&self) -> &WorkerCounters {
        &self.counters
    }

    pub(super) fn counters_mut(&mut self) -> &mut WorkerCounters {
        &mut self.counters
    }
}

impl<S: SaSource, N: NextHops> Pipeline<S, N> {
    /// A pipeline sending through the interfaces `egress` (ifindexes; a frame for port `i`
    /// leaves through `egress[i]`). `handoff` names the workers that share SAs and which of
    /// them this is; `None`: the only worker. ESP in UDP is expected on port 4500
    /// ([`with_natt_port`](Self::with_natt_port) to change it).
    ///
    /// A source with fixed SAs ([`StaticSas`](crate::worker::StaticSas)) names no slots, so
    /// its packets stay on the worker that received them: give such a source to one worker
    /// only, or two workers would send with one sequence counter each under the same key.
    pub fn new(
        sas: S,
        next_hops: N,
        egress: &[u32],
        handoff: Option<(Arc<Handoff>, usize)>,
    ) -> Result<Self, XskWorkerError> {
        if egress.is_empty() {
            return Err(XskWorkerError::NoPorts);
        }
        for (i, ifindex) in egress.iter().enumerate() {
            if egress[..i].contains(ifindex) {
                return Err(XskWorkerError::DuplicateInterface(*ifindex));
            }
        }
        let (handoff, worker, workers) = match handoff {
            Some((handoff, worker)) => {
                let workers = handoff.workers();
                if worker >= workers {
                    return Err(XskWorkerError::WorkerIndex { worker, workers });
                }
                (Some(handoff), worker, workers)
            }
            None => (None, 0, 1),
        };
        let scratch = vec![0; handoff.as_ref().map_or(0, |h| h.max_packet())];
        Ok(Self {
            scratch,
            worker,
            workers,
            sas,
            next_hops,
            decapsulator: Decapsulator::default(),
            handoff,
            egress: egress.to_vec(),
            counters: WorkerCounters::default(),
            too_big_limit: TokenBucket::new(TOO_BIG_PER_SECOND, TOO_BIG_BURST),
            icmp_id: 0,
        })
    }

    /// Sends at most `per_second` ICMP errors about too-big packets a second, `burst` at once
    /// (by default 1000 a second, 100 at once); 0 for either: none.
    pub fn with_too_big_limit(mut self, per_second: u32, burst: u32) -> Self {
        self.too_big_limit = TokenBucket::new(per_second, burst);
        self
    }

    /// ESP in UDP arrives on `port` (RFC 3948; 4500 unless configured otherwise).
    pub fn with_natt_port(mut self, port: u16) -> Self {
        self.decapsulator.natt_port = port;
        self
    }

    /// This worker's index among [`workers`](Self::workers).
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// How many workers share the SAs (1 without a hand-off).
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Where the SAs come from, for their counters.
    pub fn sas(&self) -> &S {
        &self.sas
    }

    /// Where next hops come from.
    pub fn next_hops(&self) -> &N {
        &self.next_hops
    }

    /// The receive path's state: the drops before an SA was known.
    pub fn decapsulator(&self) -> &Decapsulator {
        &self.decapsulator
    }

    /// Before each batch: the first packet after a policy or route change already follows it.
    pub fn begin_batch(&mut self) {
        self.sas.begin_batch();
        self.next_hops.begin_batch();
    }

    /// After each batch: SA counters and lifetimes go to the table.
    pub fn end_batch(&mut self) {
        self.sas.end_batch();
    }

    /// Processes the Ethernet frame at `buffer[start..start + len]`, received (in this
    /// worker's batch) at `received_at` (also the time the ICMP rate limit goes by). The
    /// buffer needs room in front of the frame and after it for encapsulation (an AF_XDP
    /// frame's headroom gives it).
    pub fn process_frame(
        &mut self,
        buffer: &mut [u8],
        start: usize,
        len: usize,
        received_at: Instant,
    ) -> Outcome {
        self.counters.received += 1;
        let Some(frame) = start
            .checked_add(len)
            .and_then(|end| buffer.get(start..end))
        else {
            self.counters.not_ip += 1;
            return Outcome::Dropped;
        };
        // Trailing bytes (Ethernet padding of short frames) are not part of the packet.
        let Some((ip_at, ip_len)) =
            frame::ip_offset(frame).and_then(|at| Some((at, frame::ip_len(&frame[at..])?)))
        else {
            self.counters.not_ip += 1;
            return Outcome::Dropped;
        };
        let ip_start = start + ip_at;
        let packet = &buffer[ip_start..ip_start + ip_len];
        let work = match frame::classify(packet, self.decapsulator.natt_port) {
            Class::Inbound { spi } => {
                // One worker: no need to know the slot.
                if self.workers > 1 {
                    let owner = spi
                        .and_then(|spi| self.sas.inbound_slot(spi))
                        .map(|slot| owner_of(slot, self.sas.owner_worker(slot), self.workers));
                    if let Some(owner) = owner.filter(|&owner| owner != self.worker) {
                        return self.hand_off(owner, HandoffWork::Decapsulate, packet, received_at);
                    }
                }
                Work::Decapsulate
            }
            Class::Outbound => match self.sas.outbound_slot(packet) {
                Some(slot) => {
                    // One worker: every SA is its own.
                    let owner = if self.workers > 1 {
                        owner_of(slot, self.sas.owner_worker(slot), self.workers)
                    } else {
                        self.worker
                    };
                    if owner != self.worker {
                        let work = HandoffWork::Encapsulate(slot);
                        return self.hand_off(owner, work, packet, received_at);
                    }
                    Work::EncapsulateIn(slot)
                }
                None => Work::Encapsulate,
            },
        };
        match PacketBuf::new(buffer, ip_start, ip_len) {
            Some(mut packet) => self.forward(&mut packet, work, received_at),
            None => {
                self.counters.not_ip += 1;
                Outcome::Dropped
            }
        }
    }

    /// Processes a packet another worker handed over. A [`Outcome::Transmit`] window lies in
    /// the packet's buffer.
    pub fn process_handed_over(&mut self, packet: &mut HandoffPacket) -> Outcome {
        self.counters.handoff_received += 1;
        let work = match packet.work() {
            HandoffWork::Decapsulate => Work::Decapsulate,
            HandoffWork::Encapsulate(slot) => Work::EncapsulateIn(slot),
        };
        let received_at = packet.received_at();
        let (buffer, start, len) = packet.buffer_mut();
        match PacketBuf::new(buffer, start, len) {
            Some(mut packet) => self.forward(&mut packet, work, received_at),
            None => {
                self.counters.not_ip += 1;
                Outcome::Dropped
            }
        }
    }

    fn hand_off(
        &mut self,
        owner: usize,
        work: HandoffWork,
        packet: &[u8],
        received_at: Instant,
    ) -> Outcome {
        let sent = self
            .handoff
            .as_ref()
            .is_some_and(|handoff| handoff.send(owner, work, packet, received_at).is_ok());
        if sent {
            self.counters.handed_off += 1;
            Outcome::HandedOff
        } else {
            self.counters.handoff_dropped += 1;
            Outcome::Dropped
        }
    }

    /// ESP, then the next hop and the Ethernet header.
    fn forward(&mut self, packet: &mut PacketBuf<'_>, work: Work, now: Instant) -> Outcome {
        let (verdict, next_hop) = match work {
            Work::Decapsulate => (self.sas.decap(&mut self.decapsulator, packet), None),
            Work::Encapsulate | Work::EncapsulateIn(_) => {
                let sa = match work {
                    Work::EncapsulateIn(slot) => self.sas.outbound_in(slot),
                    _ => self.sas.outbound_for(packet.data()),
                };
                let Some(sa) = sa else {
                    self.counters.no_sa += 1;
                    return Outcome::Dropped;
                };
                // Where the ESP packet will leave, asked while the inner packet is intact:
                // one too big for that link is answered from its own header.
                let params = *sa.params();
                let next_hop =
                    outer_destination(&params, packet.data()).map(|to| self.next_hops.lookup(to));
                if let Some(NextHop::Resolved { mtu, .. }) = next_hop {
                    if mtu != 0 && tunnel_mtu::outer_len(&params, packet.len()) > mtu as usize {
                        return self.too_big(packet, work, &params, mtu, now);
                    }
                }
                let verdict = match sa.encap(packet) {
                    Ok(()) => Verdict::Forward,
                    Err(reason) => Verdict::Drop(reason),
                };
                (verdict, next_hop)
            }
        };
        match verdict {
            Verdict::Forward if work == Work::Decapsulate => self.counters.decapsulated += 1,
            Verdict::Forward => self.counters.encapsulated += 1,
            Verdict::ToControlPlane => {
                self.counters.control_plane += 1;
                return Outcome::Dropped;
            }
            Verdict::Drop(_) => {
                self.counters.esp_dropped += 1;
                return Outcome::Dropped;
            }
        }
        let next_hop = match next_hop {
            Some(next_hop) => next_hop,
            None => {
                let Some(destination) = frame::destination(packet.data()) else {
                    self.counters.no_route += 1;
                    return Outcome::Dropped;
                };
                self.next_hops.lookup(destination)
            }
        };
        self.send(packet, next_hop)
    }

    /// Answers a packet too big for its tunnel's egress link (`mtu`) with an ICMP error to its
    /// sender, sent like any packet; fragments it if it is IPv4 without DF; or drops it.
    fn too_big(
        &mut self,
        packet: &mut PacketBuf<'_>,
        work: Work,
        params: &SaParams,
        mtu: u32,
        now: Instant,
    ) -> Outcome {
        if let (Work::EncapsulateIn(slot), Some(inner_mtu)) =
            (work, tunnel_mtu::inner_mtu(params, mtu))
        {
            if let Some(plan) = prefragment::plan(packet.data(), inner_mtu as usize) {
                return self.fragment(packet, slot, &plan, now);
            }
        }
        let local = match params.endpoints {
            Endpoints::V4 { local, .. } => IpAddr::V4(local),
            Endpoints::V6 { local, .. } => IpAddr::V6(local),
        };
        let inner_mtu = tunnel_mtu::inner_mtu(params, mtu);
        // The rate limit is asked last: packets that get no answer anyway spend no token.
        let reply = match icmp_too_big::plan(packet.data(), local, inner_mtu) {
            Ok(reply) if self.too_big_limit.take(now) => reply,
            _ => {
                self.counters.too_big_dropped += 1;
                return Outcome::Dropped;
            }
        };
        self.icmp_id = self.icmp_id.wrapping_add(1);
        if icmp_too_big::write(packet, &reply, self.icmp_id).is_err() {
            self.counters.too_big_dropped += 1;
            return Outcome::Dropped;
        }
        self.counters.too_big += 1;
        let next_hop = self.next_hops.lookup(reply.destination);
        self.send(packet, next_hop)
    }

    /// Sends the first fragment of `packet` through the SA in `slot` now and queues the others
    /// to this worker's own inbox, which it drains after this batch ([`prefragment`]). A
    /// fragment that cannot be queued drops the packet: without it the rest is useless.
    fn fragment(
        &mut self,
        packet: &mut PacketBuf<'_>,
        slot: SlotId,
        plan: &prefragment::Plan,
        now: Instant,
    ) -> Outcome {
        let Some(handoff) = &self.handoff else {
            self.counters.too_big_dropped += 1;
            return Outcome::Dropped;
        };
        for k in 1..plan.count {
            let queued = prefragment::write_later(packet.data(), plan, k, &mut self.scratch)
                .is_some_and(|len| {
                    let work = HandoffWork::Encapsulate(slot);
                    handoff
                        .send(self.worker, work, &self.scratch[..len], now)
                        .is_ok()
                });
            if !queued {
                self.counters.too_big_dropped += 1;
                return Outcome::Dropped;
            }
        }
        self.counters.fragmented += 1;
        let first_len = prefragment::make_first(packet.data_mut(), plan);
        let start = packet.offset();
        if !packet.reset(start, first_len) {
            self.counters.too_big_dropped += 1;
            return Outcome::Dropped;
        }
        self.forward(packet, Work::EncapsulateIn(slot), now)
    }

    /// Puts the Ethernet header for `next_hop` in front of `packet` and names the port.
    fn send(&mut self, packet: &mut PacketBuf<'_>, next_hop: NextHop) -> Outcome {
        let (ifindex, source_mac, destination_mac, mtu) = match next_hop {
            NextHop::Resolved {
                ifindex,
                src_mac,
                dst_mac,
                mtu,
            } => (ifindex, src_mac, dst_mac, mtu),
            NextHop::Unresolved { .. } => {
                self.counters.neighbour_unresolved += 1;
                return Outcome::Dropped;
            }
            NextHop::Unreachable => {
                self.counters.no_route += 1;
                return Outcome::Dropped;
            }
        };
        let Some(port) = self.egress.iter().position(|&egress| egress == ifindex) else {
            self.counters.no_port += 1;
            return Outcome::Dropped;
        };
        // The socket would refuse it; counted here instead of lost there.
        if mtu != 0 && packet.len() > mtu as usize {
            self.counters.too_big_dropped += 1;
            return Outcome::Dropped;
        }
        let (buffer, start, end) = packet.frame_mut();
        match frame::write_ethernet(buffer, start, source_mac, destination_mac) {
            Some(start) => Outcome::Transmit {
                port,
                start,
                len: end - start,
            },
            None => {
                self.counters.tx_dropped += 1;
                Outcome::Dropped
            }
        }
    }
}

/// Where the SA with `params` sends `packet` once encapsulated: the peer (tunnel mode) or the
/// packet's own destination (transport mode).
fn outer_destination(params: &SaParams, packet: &[u8]) -> Option<IpAddr> {
    match (params.mode, params.endpoints) {
        (Mode::Tunnel, Endpoints::V4 { remote, .. }) => Some(IpAddr::V4(remote)),
        (Mode::Tunnel, Endpoints::V6 { remote, .. }) => Some(IpAddr::V6(remote)),
        (Mode::Transport, _) => frame::destination(packet),
    }
}

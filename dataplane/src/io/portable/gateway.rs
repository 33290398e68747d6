//! One worker of the portable backend: a single thread moving packets between a TUN device and
//! an ESP socket through one outbound and one inbound SA.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::frames::FramePool;
use super::socket::{EspSocket, EspTransport, RecvMeta};
use super::sys::{self, IoStats};
use super::tun::Tun;
use super::MAX_BATCH;
use crate::esp::{
    Decapsulator, DropReason, InboundSa, OutboundSa, Verdict, ENCAP_HEADROOM, ENCAP_TAILROOM,
};

/// How a [`PortableGateway`] or a [`super::PortableWorker`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GatewayConfig {
    /// Packets per batch in each direction, at most [`MAX_BATCH`].
    pub batch_size: usize,
    /// How long one `poll(2)` waits when there is nothing to do; also how late a stop request
    /// can be noticed.
    pub poll_timeout: Duration,
    /// Bytes per frame. Holds an inner packet of up to `frame_len - ENCAP_HEADROOM -
    /// ENCAP_TAILROOM` bytes (keep the TUN MTU within it) and a received datagram of up to
    /// `frame_len - RX_HEADROOM`.
    pub frame_len: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            batch_size: 32,
            poll_timeout: Duration::from_millis(50),
            frame_len: 2048,
        }
    }
}

/// The smallest frame a gateway accepts: an IPv6 minimum-MTU packet with room around it.
const MIN_FRAME_LEN: usize = ENCAP_HEADROOM + 1280 + ENCAP_TAILROOM;

/// What a datagram handed to the caller is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlKind {
    /// An IKE message behind the non-ESP marker (RFC 3948 §2.2): for the IKE daemon.
    Ike,
    /// A NAT-keepalive (RFC 3948 §2.3): proof the peer's NAT mapping is alive.
    Keepalive,
}

/// A datagram that arrived on the NAT-T port and is not ESP, handed to the caller as received.
#[derive(Clone, Copy, Debug)]
pub struct ControlDatagram<'a> {
    pub kind: ControlKind,
    /// The sender's address and port (after any NAT).
    pub peer: SocketAddr,
    /// The address and port it was sent to.
    pub local: SocketAddr,
    /// The UDP payload, non-ESP marker included.
    pub payload: &'a [u8],
}

impl<'a> ControlDatagram<'a> {
    /// The IKE message without the non-ESP marker; `None` for a keepalive.
    pub fn ike_message(&self) -> Option<&'a [u8]> {
        match self.kind {
            ControlKind::Ike => self.payload.get(4..),
            ControlKind::Keepalive => None,
        }
    }
}

/// What a [`PortableGateway`] did. The SAs keep their own counters, with every drop by
/// reason ([`OutboundSa::counters`], [`InboundSa::counters`]), and the decapsulator those of
/// packets no SA could be blamed for ([`Decapsulator::unattributed`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GatewayCounters {
    /// Rounds of the loop (one `poll(2)` each).
    pub rounds: u64,
    /// Reads from the TUN device (plaintext in).
    pub tun_rx: IoStats,
    /// Writes to the TUN device (decapsulated plaintext out).
    pub tun_tx: IoStats,
    /// Datagrams from the ESP socket.
    pub esp_rx: IoStats,
    /// Datagrams to the ESP socket.
    pub esp_tx: IoStats,
    /// Packets encapsulated, and packets the outbound SA dropped.
    pub encapsulated: u64,
    pub encap_dropped: u64,
    /// Packets decapsulated, and packets dropped on the way in (keepalives and IKE are not
    /// drops here).
    pub decapsulated: u64,
    pub decap_dropped: u64,
    /// IKE messages and keepalives handed to the caller.
    pub ike_to_caller: u64,
    pub keepalives_to_caller: u64,
}

/// A single-threaded ESP gateway over a TUN device and an [`EspSocket`]: plaintext read from
/// the TUN device is encapsulated with the outbound SA and sent to the peer; ESP received from
/// the peer is decapsulated with the inbound SA and written to the TUN device. IKE and
/// keepalives arriving on the NAT-T port go to the caller's handler.
///
/// All frames are allocated when the gateway is built; the loop itself allocates nothing.
#[derive(Debug)]
pub struct PortableGateway {
    tun: Tun,
    esp: EspSocket,
    outbound: OutboundSa,
    inbound: InboundSa,
    decapsulator: Decapsulator,
    config: GatewayConfig,
    to_peer: FramePool,
    from_peer: FramePool,
    meta: [RecvMeta; MAX_BATCH],
    verdicts: [Verdict; MAX_BATCH],
    counters: GatewayCounters,
}

impl PortableGateway {
    /// A gateway over `tun` and `esp` with one SA each way. `config.batch_size` is clamped to
    /// `1..=MAX_BATCH` and `config.frame_len` raised to hold at least a 1280-byte packet. The
    /// decapsulator takes the NAT-T port from a UDP socket's bound port.
    pub fn new(
        tun: Tun,
        esp: EspSocket,
        outbound: OutboundSa,
        inbound: InboundSa,
        mut config: GatewayConfig,
    ) -> Self {
        config.batch_size = config.batch_size.clamp(1, MAX_BATCH);
        config.frame_len = config.frame_len.max(MIN_FRAME_LEN);
        let natt_port = match esp.transport() {
            EspTransport::Udp => esp.local_addr().port(),
            EspTransport::Raw => Decapsulator::default().natt_port,
        };
        Self {
            to_peer: FramePool::new(config.frame_len, config.batch_size),
            from_peer: FramePool::new(config.frame_len, config.batch_size),
            tun,
            esp,
            outbound,
            inbound,
            decapsulator: Decapsulator::new(natt_port),
            config,
            meta: [RecvMeta::default(); MAX_BATCH],
            verdicts: [Verdict::Forward; MAX_BATCH],
            counters: GatewayCounters::default(),
        }
    }

    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// A snapshot of what the gateway did.
    pub fn counters(&self) -> GatewayCounters {
        GatewayCounters {
            tun_rx: *self.tun.rx_stats(),
            tun_tx: *self.tun.tx_stats(),
            esp_rx: *self.esp.rx_stats(),
            esp_tx: *self.esp.tx_stats(),
            ..self.counters.clone()
        }
    }

    pub fn outbound(&self) -> &OutboundSa {
        &self.outbound
    }

    pub fn inbound(&self) -> &InboundSa {
        &self.inbound
    }

    pub fn decapsulator(&self) -> &Decapsulator {
        &self.decapsulator
    }

    pub fn tun(&self) -> &Tun {
        &self.tun
    }

    /// The outer socket, e.g. to send IKE with [`EspSocket::send_ike`] between rounds.
    pub fn esp_socket(&self) -> &EspSocket {
        &self.esp
    }

    /// Installs a new outbound SA (a rekey); returns the old one.
    pub fn replace_outbound(&mut self, sa: OutboundSa) -> OutboundSa {
        std::mem::replace(&mut self.outbound, sa)
    }

    /// Installs a new inbound SA; returns the old one.
    pub fn replace_inbound(&mut self, sa: InboundSa) -> InboundSa {
        std::mem::replace(&mut self.inbound, sa)
    }

    /// Runs until `stop` is set, handing IKE and keepalives to `on_control`. Returns an error
    /// only when the loop cannot go on: `poll(2)` failed or the TUN device is gone.
    pub fn run(
        &mut self,
        stop: &AtomicBool,
        mut on_control: impl FnMut(ControlDatagram<'_>),
    ) -> io::Result<()> {
        let mut busy = false;
        while !stop.load(Ordering::Acquire) {
            let timeout = if busy {
                Duration::ZERO
            } else {
                self.config.poll_timeout
            };
            busy = self.run_once(timeout, &mut on_control)?;
        }
        Ok(())
    }

    /// One round: waits up to `timeout` for either fd, then moves at most one batch each way.
    /// Returns whether a batch was full (more may be waiting: poll again without waiting).
    pub fn run_once(
        &mut self,
        timeout: Duration,
        on_control: &mut dyn FnMut(ControlDatagram<'_>),
    ) -> io::Result<bool> {
        let fds = [self.tun.as_raw_fd(), self.esp.as_raw_fd()];
        let mut revents = [0; 2];
        self.counters.rounds += 1;
        if !sys::poll_readable(&fds, &mut revents, timeout)? {
            return Ok(false);
        }
        if revents[0] & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
            return Err(io::Error::other("the TUN device is gone"));
        }
        if revents[1] & libc::POLLNVAL != 0 {
            return Err(io::Error::other("the ESP socket is closed"));
        }
        let batch = self.config.batch_size;
        let mut full = false;
        if revents[0] & libc::POLLIN != 0 {
            full |= self.outbound_batch() == batch;
        }
        // POLLERR on the socket: a pending error (an ICMP report on a raw socket), which the
        // next receive returns and clears.
        if revents[1] & (libc::POLLIN | libc::POLLERR) != 0 {
            full |= self.inbound_batch(on_control) == batch;
        }
        Ok(full)
    }

    /// TUN -> encapsulate -> ESP socket. Returns the packets read.
    fn outbound_batch(&mut self) -> usize {
        let batch = self.config.batch_size;
        let mut bufs = self.to_peer.bufs();
        let n = self.tun.recv_batch(&mut bufs[..batch]);
        if n == 0 {
            return 0;
        }
        let verdicts = &mut self.verdicts[..n];
        self.outbound.encap_batch(&mut bufs[..n], verdicts);
        for verdict in verdicts.iter() {
            if verdict.is_forward() {
                self.counters.encapsulated += 1;
            } else {
                self.counters.encap_dropped += 1;
            }
        }
        self.esp.send_batch(
            bufs[..n]
                .iter()
                .zip(verdicts.iter())
                .filter(|(_, verdict)| verdict.is_forward())
                .map(|(buf, _)| buf.data()),
        );
        n
    }

    /// ESP socket -> decapsulate -> TUN, and IKE / keepalives to the caller. Returns the
    /// datagrams received.
    fn inbound_batch(&mut self, on_control: &mut dyn FnMut(ControlDatagram<'_>)) -> usize {
        let batch = self.config.batch_size;
        let mut bufs = self.from_peer.bufs();
        let n = self
            .esp
            .recv_batch(&mut bufs[..batch], &mut self.meta[..batch]);
        if n == 0 {
            return 0;
        }
        let verdicts = &mut self.verdicts[..n];
        self.decapsulator
            .decap_batch(&mut self.inbound, &mut bufs[..n], verdicts);
        for ((buf, verdict), meta) in bufs[..n].iter().zip(verdicts.iter()).zip(&self.meta) {
            let kind = match verdict {
                Verdict::Forward => {
                    self.counters.decapsulated += 1;
                    continue;
                }
                Verdict::ToControlPlane => {
                    self.counters.ike_to_caller += 1;
                    ControlKind::Ike
                }
                Verdict::Drop(DropReason::NattKeepalive) => {
                    self.counters.keepalives_to_caller += 1;
                    ControlKind::Keepalive
                }
                Verdict::Drop(_) => {
                    self.counters.decap_dropped += 1;
                    continue;
                }
            };
            // The window of a packet that was not forwarded is as received.
            on_control(ControlDatagram {
                kind,
                peer: meta.peer,
                local: meta.local,
                payload: buf.data().get(meta.header_len..).unwrap_or_default(),
            });
        }
        self.tun.send_batch(
            bufs[..n]
                .iter()
                .zip(verdicts.iter())
                .filter(|(_, verdict)| verdict.is_forward())
                .map(|(buf, _)| buf.data()),
        );
        n
    }
}

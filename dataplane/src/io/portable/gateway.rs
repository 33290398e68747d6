//! The portable backend's single-SA gateway: a [`PortableWorker`] over [`StaticSas`] (one
//! outbound and one inbound SA, no table), and the types both share: how a worker runs and
//! what it hands to the caller.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::socket::EspSocket;
use super::sys::IoStats;
use super::tun::Tun;
use super::worker::PortableWorker;
use crate::esp::{Decapsulator, InboundSa, OutboundSa};
use crate::worker::StaticSas;

/// How a [`PortableGateway`] or a [`super::PortableWorker`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GatewayConfig {
    /// Packets per batch in each direction, at most [`super::MAX_BATCH`].
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
    worker: PortableWorker<StaticSas>,
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
        config: GatewayConfig,
    ) -> Self {
        let sas = StaticSas { outbound, inbound };
        let worker = match PortableWorker::new(tun, [esp], sas, config) {
            Ok(w) => w,
            // A worker refuses only no socket or two of a kind; one is neither.
            Err(e) => unreachable!("one socket: {e}"),
        };
        Self { worker }
    }

    pub fn config(&self) -> &GatewayConfig {
        self.worker.config()
    }

    /// A snapshot of what the gateway did.
    pub fn counters(&self) -> GatewayCounters {
        let w = self.worker.counters();
        GatewayCounters {
            rounds: w.rounds,
            tun_rx: w.tun_rx,
            tun_tx: w.tun_tx,
            esp_rx: w.esp_rx,
            esp_tx: w.esp_tx,
            encapsulated: w.encapsulated,
            encap_dropped: w.encap_drops.total() + w.no_sa + w.no_socket,
            decapsulated: w.decapsulated,
            decap_dropped: w.decap_drops.total(),
            ike_to_caller: w.ike_to_caller,
            keepalives_to_caller: w.keepalives_to_caller,
        }
    }

    pub fn outbound(&self) -> &OutboundSa {
        &self.worker.sas().outbound
    }

    pub fn inbound(&self) -> &InboundSa {
        &self.worker.sas().inbound
    }

    pub fn decapsulator(&self) -> &Decapsulator {
        self.worker.decapsulator()
    }

    pub fn tun(&self) -> &Tun {
        self.worker.tun()
    }

    /// The outer socket, e.g. to send IKE with [`EspSocket::send_ike`] between rounds.
    pub fn esp_socket(&self) -> &EspSocket {
        &self.worker.sockets()[0]
    }

    /// Installs a new outbound SA (a rekey); returns the old one.
    pub fn replace_outbound(&mut self, sa: OutboundSa) -> OutboundSa {
        std::mem::replace(&mut self.worker.sas_mut().outbound, sa)
    }

    /// Installs a new inbound SA; returns the old one.
    pub fn replace_inbound(&mut self, sa: InboundSa) -> InboundSa {
        std::mem::replace(&mut self.worker.sas_mut().inbound, sa)
    }

    /// Runs until `stop` is set, handing IKE and keepalives to `on_control`. Returns an error
    /// only when the loop cannot go on: `poll(2)` failed or the TUN device is gone.
    pub fn run(
        &mut self,
        stop: &AtomicBool,
        on_control: impl FnMut(ControlDatagram<'_>),
    ) -> io::Result<()> {
        self.worker.run(stop, on_control)
    }

    /// One round: waits up to `timeout` for either fd, then moves at most one batch each way.
    /// Returns whether a batch was full (more may be waiting: poll again without waiting).
    pub fn run_once(
        &mut self,
        timeout: Duration,
        on_control: &mut dyn FnMut(ControlDatagram<'_>),
    ) -> io::Result<bool> {
        self.worker.run_once(timeout, on_control)
    }
}

//! A worker of the portable backend for any number of SAs: one thread moving packets between
//! a TUN device and the ESP sockets, with SAs from an [`SaSource`] — the shared table in
//! service, where the IKE daemon installs, replaces and deletes Child SAs while the worker
//! runs. The AF_XDP worker ([`XskWorker`](crate::worker::XskWorker)) is its sibling.
//!
//! ```text
//!  TUN --read--> SPD -> outbound SA --encap--> the socket for the SA's kind --sendmmsg--> peers
//!  TUN <-write-- selectors <- inbound SA by SPI <--decap-- any ESP socket <--recvmmsg-- peers
//!                              IKE, keepalives <-- the UDP sockets: to the caller
//! ```
//!
//! Each SA says how its packets travel: the family of its endpoints and whether it is UDP
//! encapsulated (NAT-T). The worker holds at most one socket per (family, transport) and sends
//! each encapsulated packet through the one that fits its SA; the socket takes the
//! destination address and port from the outer header the SA built, so every SA reaches its
//! own peer (and NAT-mapped port) from one socket.
//!
//! Changes in the table are picked up without a restart: inbound SAs are looked up by SPI in
//! the table for every packet (one version load when cached), and the SPD copy is refreshed
//! before and after every batch (one load when unchanged), so the first packet after a
//! change already follows it.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::frames::FramePool;
use super::gateway::{ControlDatagram, ControlKind, GatewayConfig};
use super::socket::{EspSocket, EspTransport, RecvMeta};
use super::sys::IoStats;
use super::tun::Tun;
use super::MAX_BATCH;
use crate::esp::{
    Decapsulator, DropCounters, DropReason, Endpoints, SaParams, Verdict, ENCAP_HEADROOM,
    ENCAP_TAILROOM,
};
use crate::worker::SaSource;

/// The most ESP sockets a worker holds: one per family (IPv4, IPv6) and transport (UDP, raw).
pub const MAX_ESP_SOCKETS: usize = 4;

/// The smallest frame a worker accepts: an IPv6 minimum-MTU packet with room around it.
const MIN_FRAME_LEN: usize = ENCAP_HEADROOM + 1280 + ENCAP_TAILROOM;

/// Marks a packet of the outbound batch that goes to no socket.
const NOT_SENT: u8 = u8::MAX;

/// Why a [`PortableWorker`] cannot be built from the parts given. Always the caller's doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerSetupError {
    /// No ESP socket: the worker would have nowhere to send ESP nor to receive it from.
    NoSocket,
    /// Two sockets of one family and transport: which one an SA's packets take would be
    /// ambiguous.
    DuplicateSocket { transport: EspTransport, ipv6: bool },
}

impl fmt::Display for WorkerSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSocket => write!(f, "a worker needs at least one ESP socket"),
            Self::DuplicateSocket { transport, ipv6 } => write!(
                f,
                "two {} {transport:?} ESP sockets given to one worker; one per family and \
                 transport",
                if *ipv6 { "IPv6" } else { "IPv4" }
            ),
        }
    }
}

impl std::error::Error for WorkerSetupError {}

/// What a [`PortableWorker`] did, all its SAs together. Each SA also counts its own traffic
/// and drops (into the table's worker areas, with
/// [`TableSas`](crate::worker::TableSas)); these counters outlive SAs that come and go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerCounters {
    /// Rounds of the loop (one `poll(2)` each).
    pub rounds: u64,
    /// Reads from the TUN device (plaintext in).
    pub tun_rx: IoStats,
    /// Writes to the TUN device (decapsulated plaintext out).
    pub tun_tx: IoStats,
    /// Datagrams from the ESP sockets, all together.
    pub esp_rx: IoStats,
    /// Datagrams to the ESP sockets, all together.
    pub esp_tx: IoStats,
    /// Packets encapsulated and handed to a socket.
    pub encapsulated: u64,
    /// Packets decapsulated and handed to the TUN device.
    pub decapsulated: u64,
    /// Plaintext that no policy covers, or whose SA is gone or reached a hard lifetime:
    /// dropped, never sent in the clear. (With IPv6 on the TUN device this includes the
    /// kernel's own link housekeeping, such as MLD reports.)
    pub no_sa: u64,
    /// Plaintext whose SA travels in a way (family, UDP or plain ESP) the worker has no
    /// socket for: a configuration fault, counted before encapsulation.
    pub no_socket: u64,
    /// Outbound drops by the ESP core, by reason.
    pub encap_drops: DropCounters,
    /// Inbound drops by the ESP core, by reason, unknown SPIs included; keepalives are
    /// handed to the caller and not counted here.
    pub decap_drops: DropCounters,
    /// IKE messages (behind the non-ESP marker) handed to the caller.
    pub ike_to_caller: u64,
    /// NAT keepalives handed to the caller.
    pub keepalives_to_caller: u64,
}

/// Where a socket's kind sits in the worker's socket map.
fn kind_index(transport: EspTransport, ipv6: bool) -> usize {
    usize::from(ipv6) * 2 + usize::from(transport == EspTransport::Raw)
}

/// The kind of socket an SA's packets leave through.
fn kind_of(params: &SaParams) -> usize {
    let transport = if params.udp_encap.is_some() {
        EspTransport::Udp
    } else {
        EspTransport::Raw
    };
    kind_index(transport, matches!(params.endpoints, Endpoints::V6 { .. }))
}

/// Adds `more` to `total`; `last_errno` becomes `more`'s if it has one.
fn add_stats(total: &mut IoStats, more: &IoStats) {
    total.packets += more.packets;
    total.bytes += more.bytes;
    total.discarded += more.discarded;
    total.errors += more.errors;
    total.last_errno = more.last_errno.or(total.last_errno);
}

/// `poll(2)` for reading on `fds`; `Ok(false)` on timeout or interruption.
fn poll_readable(fds: &mut [libc::pollfd], timeout: Duration) -> io::Result<bool> {
    let timeout_ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: `fds` is a live, exclusively borrowed slice of pollfds and its exact length is
    // passed; the kernel writes only their `revents`.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if ready == -1 {
        let error = io::Error::last_os_error();
        return if error.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(error)
        };
    }
    Ok(ready > 0)
}

/// A single-threaded ESP worker over a TUN device and up to [`MAX_ESP_SOCKETS`] ESP sockets,
/// with SAs from an [`SaSource`]. Plaintext read from the TUN device goes through the SPD to
/// its outbound SA, is encapsulated in place and sent through the socket for that SA's
/// transport; ESP received on any socket is decapsulated with the inbound SA of its SPI,
/// checked against that SA's traffic selectors ([`SaSource::decap`]) and written to the TUN
/// device. IKE and keepalives on a UDP socket go to the caller.
///
/// Every frame is allocated when the worker is built; the loop allocates nothing.
pub struct PortableWorker<S> {
    tun: Tun,
    sockets: Vec<EspSocket>,
    /// Index into `sockets` by [`kind_index`].
    socket_for: [Option<u8>; MAX_ESP_SOCKETS],
    sas: S,
    decapsulator: Decapsulator,
    config: GatewayConfig,
    to_peer: FramePool,
    from_peer: FramePool,
    meta: [RecvMeta; MAX_BATCH],
    verdicts: [Verdict; MAX_BATCH],
    /// For each packet of the outbound batch, the socket it leaves through, or [`NOT_SENT`].
    route: [u8; MAX_BATCH],
    counters: WorkerCounters,
}

impl<S> fmt::Debug for PortableWorker<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortableWorker")
            .field("tun", &self.tun)
            .field("sockets", &self.sockets)
            .field("config", &self.config)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl<S: SaSource> PortableWorker<S> {
    /// A worker over `tun` and `sockets` (at most one per family and transport: UDP on the
    /// NAT-T port for SAs with UDP encapsulation, raw for plain ESP), with SAs from `sas`.
    /// `config.batch_size` is clamped to `1..=MAX_BATCH` and `config.frame_len` raised to
    /// hold at least a 1280-byte packet. UDP sockets should be bound to the NAT-T port the
    /// SAs' `UdpEncap::local_port` names: packets leave from the socket's port whatever the
    /// SA says.
    pub fn new(
        tun: Tun,
        sockets: impl IntoIterator<Item = EspSocket>,
        sas: S,
        mut config: GatewayConfig,
    ) -> Result<Self, WorkerSetupError> {
        let mut socket_for = [None; MAX_ESP_SOCKETS];
        let mut kept = Vec::with_capacity(MAX_ESP_SOCKETS);
        for socket in sockets {
            let transport = socket.transport();
            let ipv6 = socket.local_addr().is_ipv6();
            let slot = &mut socket_for[kind_index(transport, ipv6)];
            if slot.is_some() {
                return Err(WorkerSetupError::DuplicateSocket { transport, ipv6 });
            }
            *slot = Some(kept.len() as u8);
            kept.push(socket);
        }
        if kept.is_empty() {
            return Err(WorkerSetupError::NoSocket);
        }
        config.batch_size = config.batch_size.clamp(1, MAX_BATCH);
        config.frame_len = config.frame_len.max(MIN_FRAME_LEN);
        Ok(Self {
            to_peer: FramePool::new(config.frame_len, config.batch_size),
            from_peer: FramePool::new(config.frame_len, config.batch_size),
            tun,
            sockets: kept,
            socket_for,
            sas,
            decapsulator: Decapsulator::default(),
            config,
            meta: [RecvMeta::default(); MAX_BATCH],
            verdicts: [Verdict::Forward; MAX_BATCH],
            route: [NOT_SENT; MAX_BATCH],
            counters: WorkerCounters::default(),
        })
    }

    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// A snapshot of what the worker did.
    pub fn counters(&self) -> WorkerCounters {
        let mut counters = WorkerCounters {
            tun_rx: *self.tun.rx_stats(),
            tun_tx: *self.tun.tx_stats(),
            ..self.counters.clone()
        };
        for socket in &self.sockets {
            add_stats(&mut counters.esp_rx, socket.rx_stats());
            add_stats(&mut counters.esp_tx, socket.tx_stats());
        }
        counters
    }

    /// Where the SAs come from.
    pub fn sas(&self) -> &S {
        &self.sas
    }

    pub fn sas_mut(&mut self) -> &mut S {
        &mut self.sas
    }

    /// Drops that happened before an SA was known (malformed outer headers, unknown SPIs),
    /// as the ESP core counts them.
    pub fn decapsulator(&self) -> &Decapsulator {
        &self.decapsulator
    }

    pub fn tun(&self) -> &Tun {
        &self.tun
    }

    /// The ESP sockets, in the order given; e.g. for [`EspSocket::ike_sender`] or their
    /// statistics.
    pub fn sockets(&self) -> &[EspSocket] {
        &self.sockets
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

    /// One round: waits up to `timeout` for the TUN device or a socket, then moves at most
    /// one batch from each, and lets the SA source report and refresh. Returns whether a
    /// batch was full (more may be waiting: call again without waiting).
    pub fn run_once(
        &mut self,
        timeout: Duration,
        on_control: &mut dyn FnMut(ControlDatagram<'_>),
    ) -> io::Result<bool> {
        let idle = libc::pollfd {
            fd: -1,
            events: libc::POLLIN,
            revents: 0,
        };
        let mut fds = [idle; 1 + MAX_ESP_SOCKETS];
        fds[0].fd = self.tun.as_raw_fd();
        for (fd, socket) in fds[1..].iter_mut().zip(&self.sockets) {
            fd.fd = socket.as_raw_fd();
        }
        let fds = &mut fds[..1 + self.sockets.len()];
        self.counters.rounds += 1;
        let mut full = false;
        if poll_readable(fds, timeout)? {
            if fds[0].revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                return Err(io::Error::other("the TUN device is gone"));
            }
            if fds[1..].iter().any(|fd| fd.revents & libc::POLLNVAL != 0) {
                return Err(io::Error::other("an ESP socket is closed"));
            }
            self.sas.begin_batch();
            let batch = self.config.batch_size;
            if fds[0].revents & libc::POLLIN != 0 {
                full |= self.outbound_batch() == batch;
            }
            for (index, fd) in fds[1..].iter().enumerate() {
                // POLLERR: a pending error (an ICMP report on a raw socket), which the next
                // receive returns and clears.
                if fd.revents & (libc::POLLIN | libc::POLLERR) != 0 {
                    full |= self.inbound_batch(index, on_control) == batch;
                }
            }
        }
        // Also after an idle wait: counters reach the table and changes are seen.
        self.sas.end_batch();
        Ok(full)
    }

    /// TUN -> SPD -> encapsulate -> the socket for each SA. Returns the packets read.
    fn outbound_batch(&mut self) -> usize {
        let batch = self.config.batch_size;
        let mut bufs = self.to_peer.bufs();
        let n = self.tun.recv_batch(&mut bufs[..batch]);
        if n == 0 {
            return 0;
        }
        for (buf, route) in bufs[..n].iter_mut().zip(self.route.iter_mut()) {
            *route = NOT_SENT;
            let Some(sa) = self.sas.outbound_for(buf.data()) else {
                self.counters.no_sa += 1;
                continue;
            };
            // Before encapsulating: a packet that cannot be sent must not spend a sequence
            // number.
            let Some(socket) = self.socket_for[kind_of(sa.params())] else {
                self.counters.no_socket += 1;
                continue;
            };
            match sa.encap(buf) {
                Ok(()) => {
                    self.counters.encapsulated += 1;
                    *route = socket;
                }
                Err(reason) => self.counters.encap_drops.count(reason),
            }
        }
        let routes = &self.route[..n];
        for (index, socket) in self.sockets.iter_mut().enumerate() {
            let index = index as u8;
            if !routes.contains(&index) {
                continue;
            }
            socket.send_batch(
                bufs[..n]
                    .iter()
                    .zip(routes)
                    .filter(|(_, &route)| route == index)
                    .map(|(buf, _)| buf.data()),
            );
        }
        n
    }

    /// ESP socket `index` -> decapsulate -> TUN, and IKE / keepalives to the caller. Returns
    /// the datagrams received.
    fn inbound_batch(
        &mut self,
        index: usize,
        on_control: &mut dyn FnMut(ControlDatagram<'_>),
    ) -> usize {
        let batch = self.config.batch_size;
        let socket = &mut self.sockets[index];
        let mut bufs = self.from_peer.bufs();
        let n = socket.recv_batch(&mut bufs[..batch], &mut self.meta[..batch]);
        if n == 0 {
            return 0;
        }
        if socket.transport() == EspTransport::Udp {
            // ESP in UDP is recognised by its destination port: this socket's.
            self.decapsulator.natt_port = socket.local_addr().port();
        }
        for ((buf, verdict), meta) in bufs[..n]
            .iter_mut()
            .zip(self.verdicts.iter_mut())
            .zip(&self.meta)
        {
            // With the RFC 4301 §5.2 check: a peer's packet outside its Child SA's traffic
            // selectors is dropped here, never written to the TUN device.
            *verdict = self.sas.decap(&mut self.decapsulator, buf);
            let kind = match *verdict {
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
                Verdict::Drop(reason) => {
                    self.counters.decap_drops.count(reason);
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
                .zip(&self.verdicts[..n])
                .filter(|(_, verdict)| verdict.is_forward())
                .map(|(buf, _)| buf.data()),
        );
        n
    }
}

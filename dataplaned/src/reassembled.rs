//! ESP that arrived in outer fragments.
//!
//! A peer whose kernel does ESP (Linux, strongSwan on it) fragments the ESP packet of an inner
//! IPv4 packet without DF that is too big for the path. RFC 4303 §3.4.1 has the receiver
//! reassemble before ESP processing. The XDP program passes fragments to the kernel, which
//! reassembles them with its own limits (memory thresholds, timeouts, overlap rules) and,
//! having no ESP of its own here, delivers the whole datagram to raw `IPPROTO_ESP` sockets.
//! This thread holds one per family and hands each datagram to the worker that owns its SA,
//! as a worker hands over a packet for another's SA; the owner decrypts it and sends the
//! inner packet on through AF_XDP like any other.
//!
//! Only unfragmented ESP reaches the workers directly, so these sockets see just the
//! reassembled datagrams (and ESP on an interface without the XDP program). Not covered: ESP
//! in UDP that arrives in fragments, which the kernel reassembles into xipsecd's IKE socket
//! on the NAT-T port, where it is dropped.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{info, warn};
use xipsec_dataplane::esp::ip::{self, Family};
use xipsec_dataplane::esp::PacketBuf;
use xipsec_dataplane::io::portable::{EspSocket, RecvMeta, RX_HEADROOM};
use xipsec_dataplane::table::TableReader;
use xipsec_dataplane::worker::{owner_of, Handoff, HandoffWork};

/// Datagrams taken per receive call.
const BATCH: usize = 8;
/// Room for a reassembled datagram; longer ones are discarded by the socket and counted. The
/// hand-off takes at most its own buffer size anyway.
const FRAME: usize = RX_HEADROOM + 4096;
/// How long a poll waits before the stop flag is looked at again.
const POLL_MS: i32 = 100;

/// What the thread did, for the counters file.
#[derive(Debug, Default)]
pub struct Counters {
    /// Reassembled ESP datagrams received.
    received: AtomicU64,
    /// Handed to the worker owning their SA (or to worker 0 when no SA has the SPI: it counts
    /// the drop as any worker would).
    handed_off: AtomicU64,
    /// Not handed over: too short to hold an SPI, or the owner's inbox full.
    dropped: AtomicU64,
}

impl Counters {
    /// Name → value, as the counters file lists them.
    pub fn named(&self) -> [(&'static str, u64); 3] {
        [
            (
                "reassembled.received",
                self.received.load(Ordering::Relaxed),
            ),
            (
                "reassembled.handed_off",
                self.handed_off.load(Ordering::Relaxed),
            ),
            ("reassembled.dropped", self.dropped.load(Ordering::Relaxed)),
        ]
    }
}

/// The running thread.
pub struct Reassembled {
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl Reassembled {
    /// Opens the sockets (IPv6 only where the host has it) and starts the thread, which runs
    /// until `stop` is set.
    pub fn start(
        table: &Path,
        handoff: Arc<Handoff>,
        workers: usize,
        stop: Arc<AtomicBool>,
    ) -> Result<Self, String> {
        let v4 = EspSocket::raw("0.0.0.0".parse().expect("an address"))
            .map_err(|e| format!("raw ESP socket: {e}"))?;
        let v6 = match EspSocket::raw("::".parse().expect("an address")) {
            Ok(socket) => Some(socket),
            Err(e) => {
                warn!("no IPv6 raw ESP socket ({e}): fragmented ESP over IPv6 is not received");
                None
            }
        };
        let table = TableReader::open(table).map_err(|e| format!("SA table: {e:?}"))?;
        let counters = Arc::new(Counters::default());
        let shared = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("xipsec-reassembled".to_owned())
            .spawn(move || {
                let mut sockets: Vec<EspSocket> = std::iter::once(v4).chain(v6).collect();
                let hand = Hand {
                    table,
                    handoff,
                    workers: workers.max(1),
                    counters: shared,
                };
                hand.run(&mut sockets, &stop);
            })
            .map_err(|e| format!("reassembled-ESP thread: {e}"))?;
        info!("receiving ESP the kernel reassembled from outer fragments");
        Ok(Self {
            thread: Some(thread),
            counters,
        })
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Waits for the thread (after the stop flag is set).
    pub fn join(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Hand {
    table: TableReader,
    handoff: Arc<Handoff>,
    workers: usize,
    counters: Arc<Counters>,
}

impl Hand {
    fn run(&self, sockets: &mut [EspSocket], stop: &AtomicBool) {
        let mut frames = vec![[0u8; FRAME]; BATCH];
        let mut meta = [RecvMeta::default(); BATCH];
        while !stop.load(Ordering::Relaxed) {
            if !wait_readable(sockets) {
                continue;
            }
            for socket in sockets.iter_mut() {
                let mut bufs: Vec<PacketBuf<'_>> = frames
                    .iter_mut()
                    .filter_map(|frame| PacketBuf::new(frame, 0, FRAME))
                    .collect();
                let n = socket.recv_batch(&mut bufs, &mut meta);
                for buf in &bufs[..n] {
                    self.hand_over(buf.data());
                }
            }
        }
    }

    /// Gives one datagram (a whole outer IP packet) to the worker owning its SA.
    fn hand_over(&self, packet: &[u8]) {
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        let Some(spi) = spi_of(packet) else {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let owner = self.table.find_inbound(spi).map_or(0, |slot| {
            let owner_worker = self
                .table
                .read(slot)
                .map_or(xipsec_dataplane::table::ANY_WORKER, |s| {
                    s.record.owner_worker
                });
            owner_of(slot, owner_worker, self.workers)
        });
        let work = HandoffWork::Decapsulate;
        match self.handoff.send(owner, work, packet, Instant::now()) {
            Ok(()) => self.counters.handed_off.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.counters.dropped.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// The SPI of an outer IP packet carrying ESP (its header as the socket delivered or rebuilt
/// it: options for IPv4, no extension headers for IPv6).
fn spi_of(packet: &[u8]) -> Option<u32> {
    let at = match Family::of(packet)? {
        Family::V4 => usize::from(packet.first()? & 0x0F) * 4,
        Family::V6 => ip::IPV6_HEADER_LEN,
    };
    (packet.len() >= at + 8).then(|| ip::read_u32(packet, at))
}

/// Whether any socket has a datagram, waiting at most [`POLL_MS`].
fn wait_readable(sockets: &[EspSocket]) -> bool {
    let mut fds: Vec<libc::pollfd> = sockets
        .iter()
        .map(|socket| libc::pollfd {
            fd: socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `fds` is a live array of `fds.len()` pollfd structures.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, POLL_MS) };
    if ready < 0 {
        // EINTR and the like: look at the stop flag, then wait again.
        std::thread::sleep(Duration::from_millis(1));
    }
    ready > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spi_follows_the_outer_header() {
        let mut v4 = vec![0u8; 28];
        v4[0] = 0x46; // 24 bytes of header: one option word
        v4[24..28].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        assert_eq!(spi_of(&v4), None, "no room for a sequence number");
        v4.extend_from_slice(&[0; 4]);
        assert_eq!(spi_of(&v4), Some(0x1234_5678));
        let mut v6 = vec![0u8; 48];
        v6[0] = 0x60;
        v6[40..44].copy_from_slice(&7u32.to_be_bytes());
        assert_eq!(spi_of(&v6), Some(7));
        assert_eq!(spi_of(&[0x10; 48]), None);
    }
}

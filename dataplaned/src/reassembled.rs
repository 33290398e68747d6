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
//! reassembled datagrams (and ESP on an interface without the XDP program). ESP in UDP that
//! arrived in fragments is reassembled into xipsecd's socket on the NAT-T port instead;
//! xipsecd sends it on over a Unix datagram socket beside the lock file
//! ([`forwarded_esp`]), and this thread rebuilds its outer IP and UDP headers and hands it
//! over the same way.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{info, warn};
use xipsec_dataplane::esp::ip::{self, Family};
use xipsec_dataplane::esp::PacketBuf;
use xipsec_dataplane::io::portable::{synthesize, EspSocket, RecvMeta, RX_HEADROOM};
use xipsec_dataplane::process::forwarded_esp;
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
    /// ESP in UDP xipsecd sent on (counted in `received` too once its headers are rebuilt).
    forwarded: AtomicU64,
    /// Forwarded messages that could not be read or rebuilt.
    forwarded_malformed: AtomicU64,
}

impl Counters {
    /// Name → value, as the counters file lists them.
    pub fn named(&self) -> [(&'static str, u64); 5] {
        [
            (
                "reassembled.forwarded",
                self.forwarded.load(Ordering::Relaxed),
            ),
            (
                "reassembled.forwarded_malformed",
                self.forwarded_malformed.load(Ordering::Relaxed),
            ),
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
    /// The forwarded-ESP socket's path, removed at the end.
    forward_path: PathBuf,
}

impl Reassembled {
    /// Opens the sockets (IPv6 only where the host has it; the forwarded-ESP socket beside
    /// `pid_file`) and starts the thread, which runs until `stop` is set.
    pub fn start(
        table: &Path,
        pid_file: &Path,
        handoff: Arc<Handoff>,
        workers: usize,
        stop: Arc<AtomicBool>,
    ) -> Result<Self, String> {
        let forward_path = forwarded_esp::esp_socket_path(pid_file);
        // A previous data plane's; the pid lock says no other one runs.
        let _ = std::fs::remove_file(&forward_path);
        let forwarded = UnixDatagram::bind(&forward_path)
            .and_then(|socket| socket.set_nonblocking(true).map(|()| socket))
            .map_err(|e| format!("{}: {e}", forward_path.display()))?;
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
                hand.run(&mut sockets, &forwarded, &stop);
            })
            .map_err(|e| format!("reassembled-ESP thread: {e}"))?;
        info!("receiving ESP the kernel reassembled from outer fragments");
        Ok(Self {
            thread: Some(thread),
            counters,
            forward_path,
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
        let _ = std::fs::remove_file(&self.forward_path);
    }
}

struct Hand {
    table: TableReader,
    handoff: Arc<Handoff>,
    workers: usize,
    counters: Arc<Counters>,
}

impl Hand {
    fn run(&self, sockets: &mut [EspSocket], forwarded: &UnixDatagram, stop: &AtomicBool) {
        let mut frames = vec![[0u8; FRAME]; BATCH];
        let mut meta = [RecvMeta::default(); BATCH];
        let mut message = vec![0u8; FRAME];
        let mut fds: Vec<i32> = sockets.iter().map(EspSocket::as_raw_fd).collect();
        fds.push(forwarded.as_raw_fd());
        while !stop.load(Ordering::Relaxed) {
            if !wait_readable(&fds) {
                continue;
            }
            while let Ok(n) = forwarded.recv(&mut message) {
                self.counters.forwarded.fetch_add(1, Ordering::Relaxed);
                match rebuild(&message[..n], &mut frames[0]) {
                    Some((start, end)) => self.hand_over(&frames[0][start..end]),
                    None => {
                        self.counters
                            .forwarded_malformed
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
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

/// The SPI of an outer IP packet carrying ESP, or ESP in UDP (its header as the socket
/// delivered or rebuilt it: options for IPv4, no extension headers for IPv6).
fn spi_of(packet: &[u8]) -> Option<u32> {
    let (header_len, protocol) = match Family::of(packet)? {
        Family::V4 => (usize::from(packet.first()? & 0x0F) * 4, *packet.get(9)?),
        Family::V6 => (ip::IPV6_HEADER_LEN, *packet.get(6)?),
    };
    let at = match protocol {
        ip::proto::UDP => header_len + ip::UDP_HEADER_LEN,
        _ => header_len,
    };
    (packet.len() >= at + 8).then(|| ip::read_u32(packet, at))
}

/// The whole outer packet of a forwarded ESP-in-UDP datagram, rebuilt in `frame`: where it
/// starts and ends.
fn rebuild(message: &[u8], frame: &mut [u8]) -> Option<(usize, usize)> {
    let (source, destination, payload) = forwarded_esp::decode(message)?;
    let end = RX_HEADROOM.checked_add(payload.len())?;
    frame.get_mut(RX_HEADROOM..end)?.copy_from_slice(payload);
    let start = synthesize(
        frame,
        RX_HEADROOM,
        payload.len(),
        source,
        destination,
        0,
        true,
    )?;
    Some((start, end))
}

/// Whether any of `fds` has a datagram, waiting at most [`POLL_MS`].
fn wait_readable(fds: &[i32]) -> bool {
    let mut fds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
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
    fn a_forwarded_datagram_gets_its_outer_headers_back() {
        let mut message = Vec::new();
        let esp = [0, 0, 0x10, 0x02, 0, 0, 0, 9, 0xAA, 0xBB];
        let source = "192.0.2.2:4500".parse().unwrap();
        let destination = "192.0.2.1:4500".parse().unwrap();
        forwarded_esp::encode(source, destination, &esp, &mut message).unwrap();
        let mut frame = [0u8; FRAME];
        let (start, end) = rebuild(&message, &mut frame).unwrap();
        let packet = &frame[start..end];
        assert_eq!(packet.len(), 20 + 8 + esp.len());
        assert!(ip::ipv4_checksum_ok(&packet[..20]));
        assert_eq!(packet[9], 17);
        assert_eq!(&packet[12..20], &[192, 0, 2, 2, 192, 0, 2, 1]);
        assert_eq!(&packet[20..24], &[0x11, 0x94, 0x11, 0x94]);
        assert_eq!(&packet[28..], &esp);
        assert_eq!(rebuild(&message[..5], &mut frame), None);
    }

    #[test]
    fn the_spi_follows_the_outer_header() {
        let mut v4 = vec![0u8; 28];
        v4[0] = 0x46; // 24 bytes of header: one option word
        v4[9] = 50;
        v4[24..28].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        assert_eq!(spi_of(&v4), None, "no room for a sequence number");
        v4.extend_from_slice(&[0; 4]);
        assert_eq!(spi_of(&v4), Some(0x1234_5678));
        // In UDP: after the UDP header.
        let mut udp = vec![0u8; 36];
        udp[0] = 0x45;
        udp[9] = 17;
        udp[28..32].copy_from_slice(&9u32.to_be_bytes());
        assert_eq!(spi_of(&udp), Some(9));
        let mut v6 = vec![0u8; 48];
        v6[0] = 0x60;
        v6[6] = 50;
        v6[40..44].copy_from_slice(&7u32.to_be_bytes());
        assert_eq!(spi_of(&v6), Some(7));
        assert_eq!(spi_of(&[0x10; 48]), None);
    }
}

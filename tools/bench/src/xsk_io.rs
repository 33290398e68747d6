//! The AF_XDP generator and sink, over the data plane's [`XskSocket`] and the XDP classifier.
//!
//! The generator transmits only: probe frames are written into the socket's transmit frames
//! once per frame and length, and after that only the sequence number and send time are
//! patched ([`crate::frame`]); with an outbound SA every probe is sealed in place. The sink
//! loads the classifier on its interface with a policy for its own address (ESP goes to the
//! socket anyway), binds a socket per receive queue, and counts what arrives.
//!
//! Both loops busy-poll while packets flow; after a few hundred empty polls the sink sleeps in
//! poll(2) for up to 10 ms, so that an idle sink does not take a core from the device under test
//! on a small machine (the generator only idles when its token bucket says so).
//!
//! Copy-mode transmit (all that veth offers) sends at most 32 frames per kick and answers
//! EAGAIN when more are queued: the generator kicks until the ring is drained or the device
//! pushes back, or a full ring would never be kicked again.

use std::io;
use std::os::fd::RawFd;

use xipsec_dataplane::io::xsk::{Descriptor, XskConfig, XskSocket};
use xipsec_ebpf::{AttachMode, Attachment, Classifier, ClassifierConfig, IpNet};

use crate::clock::now_ns;
use crate::frame::{patch_probe, EspProbes, Flow, ProbeTemplates};
use crate::generator::Transmit;
use crate::payload::Probe;
use crate::rx::{Received, Receiver};
use crate::sink::{ReceiveBatch, Tally};
use crate::size::PacketSize;

/// Frames per transmit or receive batch.
pub const BATCH: usize = 64;

/// Kicks per send at most: 4 × 32 frames drains more than a batch.
const KICKS: usize = 4;

/// Empty receive polls before the sink sleeps in poll(2).
const SPINS: u32 = 256;

const EMPTY: Descriptor = Descriptor {
    addr: 0,
    len: 0,
    options: 0,
};

/// Tells the kernel to process the transmit ring; `true` when it stopped with frames left
/// (its per-call budget, or the device pushing back).
pub fn kick(fd: RawFd) -> bool {
    // SAFETY: a zero-length, non-blocking sendto with null buffers is AF_XDP's transmit kick
    // (libxdp's); the kernel reads no memory of ours.
    let ret = unsafe {
        libc::sendto(
            fd,
            std::ptr::null(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null(),
            0,
        )
    };
    ret < 0
        && matches!(
            io::Error::last_os_error().raw_os_error(),
            Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::ENOBUFS)
        )
}

/// Waits up to `timeout_ms` for any of `fds` to have frames to read.
pub fn wait_readable(fds: &mut [libc::pollfd], timeout_ms: i32) {
    for fd in fds.iter_mut() {
        fd.revents = 0;
    }
    // SAFETY: a live array of pollfds and its length.
    unsafe {
        libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms);
    }
}

fn xsk_error(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

/// The AF_XDP generator: a socket bound to one queue of the generator's interface.
#[derive(Debug)]
pub struct XskTransmit {
    socket: XskSocket,
    templates: ProbeTemplates,
    esp: Option<EspProbes>,
    /// Per transmit frame (by index): the inner length whose headers it holds for `run`, 0
    /// when none. Plain probes then cost a 16-byte patch.
    written: Vec<u16>,
    run: u32,
    frame_size: u64,
    /// Frames taken from the pool that the ring did not accept: used first next time.
    stash: Vec<u64>,
    descriptors: [Descriptor; BATCH],
}

impl XskTransmit {
    /// Binds to queue `queue` of `interface` (in the calling thread's namespace) and prepares
    /// probe frames for `flow` at the lengths of `size`; with `esp`, probes are sealed and
    /// framed by it (and `flow` describes the inner packet).
    pub fn open(
        interface: &str,
        queue: u32,
        flow: &Flow,
        size: PacketSize,
        esp: Option<EspProbes>,
    ) -> Result<XskTransmit, String> {
        let config = XskConfig::default();
        let socket = XskSocket::bind(interface, queue, config)
            .map_err(|e| xsk_error(&format!("AF_XDP socket on {interface}"), e))?;
        Ok(XskTransmit {
            socket,
            templates: ProbeTemplates::new(flow, size),
            esp,
            written: vec![0; config.frame_count as usize],
            run: 0,
            frame_size: u64::from(config.frame_size),
            stash: Vec::with_capacity(BATCH),
            descriptors: [EMPTY; BATCH],
        })
    }

    /// Fills one transmit frame with probe `probe` of `len` bytes; its descriptor.
    #[inline]
    fn fill(&mut self, addr: u64, len: u16, probe: &Probe) -> Option<Descriptor> {
        let (frame, offset) = self.socket.frame_mut(addr)?;
        let base = addr - offset as u64;
        if let Some(esp) = self.esp.as_mut() {
            let (start, frame_len) = esp.write(frame, &self.templates, len, probe, true)?;
            return Some(Descriptor {
                addr: base + start as u64,
                len: frame_len as u32,
                options: 0,
            });
        }
        let index = (base / self.frame_size) as usize;
        let frame_len = if self.written.get(index) == Some(&len) {
            patch_probe(frame, probe.seq, probe.sent_ns);
            crate::frame::ETH_LEN + usize::from(len)
        } else {
            let n = self.templates.write_frame(frame, len, probe)?;
            if let Some(slot) = self.written.get_mut(index) {
                *slot = len;
            }
            n
        };
        Some(Descriptor {
            addr: base,
            len: frame_len as u32,
            options: 0,
        })
    }

    /// Packets the outbound SA refused (its sequence numbers ran out).
    pub fn esp_refused(&self) -> u64 {
        self.esp.as_ref().map_or(0, |esp| esp.refused)
    }
}

impl Transmit for XskTransmit {
    fn batch(&self) -> usize {
        BATCH
    }

    fn send(
        &mut self,
        run: u32,
        size: PacketSize,
        first: u64,
        n: usize,
        now_ns: u64,
    ) -> io::Result<usize> {
        if run != self.run {
            self.run = run;
            self.written.fill(0);
        }
        let mut count = 0;
        while count < n.min(BATCH) {
            let Some(addr) = self.stash.pop().or_else(|| self.socket.take_tx_frame()) else {
                break;
            };
            let probe = Probe {
                run,
                seq: first + count as u64,
                sent_ns: now_ns,
            };
            match self.fill(addr, size.len_of(probe.seq), &probe) {
                Some(descriptor) => {
                    self.descriptors[count] = descriptor;
                    count += 1;
                }
                None => {
                    self.stash.push(addr);
                    break;
                }
            }
        }
        let queued = self.socket.transmit(&self.descriptors[..count]) as usize;
        for descriptor in &self.descriptors[queued..count] {
            self.stash.push(descriptor.addr);
        }
        for _ in 0..KICKS {
            if !kick(self.socket.fd()) {
                break;
            }
        }
        self.socket.reclaim_completed();
        Ok(queued)
    }

    fn esp_next_sequence(&self) -> Option<u64> {
        self.esp.as_ref().map(EspProbes::next_sequence)
    }
}

/// The AF_XDP sink: the classifier on the sink's interface and a socket per receive queue.
pub struct XskReceive {
    sockets: Vec<XskSocket>,
    pollfds: Vec<libc::pollfd>,
    receiver: Receiver,
    descriptors: [Descriptor; BATCH],
    idle: u32,
    // Detaches the program when dropped, before the classifier unloads it.
    _attachment: Attachment,
    _classifier: Classifier,
}

impl std::fmt::Debug for XskReceive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskReceive")
            .field("queues", &self.sockets.len())
            .finish_non_exhaustive()
    }
}

impl XskReceive {
    /// Loads the classifier onto `interface` (in the calling thread's namespace) with a policy
    /// for `prefix` (the sink's address), binds a socket to each of its `queues` receive
    /// queues, and counts what arrives with `receiver`.
    pub fn open(
        interface: &str,
        queues: u32,
        prefix: IpNet,
        receiver: Receiver,
    ) -> Result<XskReceive, String> {
        let queues = queues.max(1);
        let mut classifier = Classifier::load(ClassifierConfig {
            max_queues: queues.max(64),
            ..ClassifierConfig::default()
        })
        .map_err(|e| xsk_error("loading the XDP classifier", e))?;
        classifier
            .add_policy(prefix)
            .map_err(|e| xsk_error("the classifier's policy", e))?;
        let attachment = classifier
            .attach(interface, AttachMode::Auto)
            .map_err(|e| xsk_error(&format!("attaching the XDP classifier to {interface}"), e))?;
        // Many queues share the memory: a smaller UMEM each beyond a few.
        let config = if queues <= 4 {
            XskConfig::default()
        } else {
            XskConfig {
                frame_count: 4096,
                ring_size: 2048,
                ..XskConfig::default()
            }
        };
        let mut sockets = Vec::new();
        for queue in 0..queues {
            let socket = XskSocket::bind(interface, queue, config).map_err(|e| {
                xsk_error(&format!("AF_XDP socket on {interface} queue {queue}"), e)
            })?;
            classifier
                .register_xsk(queue, &socket)
                .map_err(|e| xsk_error("registering the AF_XDP socket", e))?;
            sockets.push(socket);
        }
        let pollfds = sockets
            .iter()
            .map(|socket| libc::pollfd {
                fd: socket.fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        Ok(XskReceive {
            sockets,
            pollfds,
            receiver,
            descriptors: [EMPTY; BATCH],
            idle: 0,
            _attachment: attachment,
            _classifier: classifier,
        })
    }
}

impl ReceiveBatch for XskReceive {
    fn receive(&mut self, tally: &mut Tally) -> io::Result<u64> {
        let mut first = 0;
        let mut any = false;
        let XskReceive {
            sockets,
            receiver,
            descriptors,
            ..
        } = self;
        for socket in sockets.iter_mut() {
            let n = socket.receive(descriptors);
            if n == 0 {
                continue;
            }
            any = true;
            let now = now_ns();
            for d in &descriptors[..n] {
                let Some((frame, offset)) = socket.frame_mut(d.addr) else {
                    tally.foreign += 1;
                    continue;
                };
                if receiver.frame(frame, offset, d.len as usize, tally, now) == Received::First {
                    first += 1;
                }
            }
            socket.refill(descriptors[..n].iter().map(|d| d.addr));
        }
        if any {
            self.idle = 0;
        } else {
            self.idle += 1;
            if self.idle > SPINS {
                wait_readable(&mut self.pollfds, 10);
            }
        }
        Ok(first)
    }
}

/// Receive queues of `interface` in the current namespace, from sysfs (1 when it does not
/// say).
pub fn rx_queues(interface: &str) -> u32 {
    std::fs::read_dir(format!("/sys/class/net/{interface}/queues"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|entry| entry.file_name().to_string_lossy().starts_with("rx-"))
                .count() as u32
        })
        .unwrap_or(1)
        .max(1)
}

/// Whether this process can load the XDP classifier (root with CAP_BPF); the reason when not.
pub fn classifier_loads() -> Result<(), String> {
    Classifier::load(ClassifierConfig::default())
        .map(drop)
        .map_err(|e| e.to_string())
}

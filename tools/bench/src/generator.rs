//! The generator: probes of the chosen size, paced by a token bucket (or as fast as the socket
//! takes them), sent in batches for a fixed time. The pacing loop is [`generate_with`], over
//! any [`Transmit`]: a UDP socket with sendmmsg(2) here ([`generate`]), AF_XDP and AF_PACKET
//! in [`crate::xsk_io`] and [`crate::packet_io`].

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::now_ns;
use crate::cpu::thread_cpu_ns;
use crate::net::{Batch, BATCH};
use crate::payload::Probe;
use crate::rate::TokenBucket;
use crate::size::{PacketSize, IP_UDP_HEADERS};

/// What one generator run does.
#[derive(Clone, Copy, Debug)]
pub struct GenConfig {
    /// Packet sizes.
    pub size: PacketSize,
    /// Packets per second; `None`: as fast as possible.
    pub pps: Option<f64>,
    /// How long to send.
    pub duration: Duration,
    /// The run id written into every probe.
    pub run: u32,
}

/// What the generator did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GenResult {
    /// Packets the kernel accepted.
    pub sent: u64,
    /// sendmmsg calls that failed (each refused at least one packet, which was not counted
    /// as sent).
    pub send_errors: u64,
    /// From the first send to the end, nanoseconds.
    pub elapsed_ns: u64,
    /// CPU time of the generator's thread while it sent, nanoseconds.
    pub cpu_ns: u64,
}

/// Something probes go out through, a batch at a time.
pub trait Transmit {
    /// The most probes one [`send`](Transmit::send) takes.
    fn batch(&self) -> usize;

    /// Sends up to `n` (at most [`batch`](Transmit::batch)) probes of run `run` numbered
    /// `first`, `first + 1`, …, their lengths from `size`, stamped `now_ns`. Returns how many
    /// went, in order from `first`; an error means none did.
    fn send(
        &mut self,
        run: u32,
        size: PacketSize,
        first: u64,
        n: usize,
        now_ns: u64,
    ) -> io::Result<usize>;

    /// With an outbound ESP SA: the sequence number its next packet would get, for the next
    /// run to continue from.
    fn esp_next_sequence(&self) -> Option<u64> {
        None
    }
}

/// A connected UDP socket (owned or borrowed) and its sendmmsg buffers.
#[derive(Debug)]
pub struct UdpTransmit<F> {
    fd: F,
    batch: Batch,
}

impl<F: AsFd> UdpTransmit<F> {
    /// Sends on the connected socket `fd`.
    pub fn new(fd: F) -> UdpTransmit<F> {
        UdpTransmit {
            fd,
            batch: Batch::new(),
        }
    }
}

impl<F: AsFd> Transmit for UdpTransmit<F> {
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
        for i in 0..n {
            let probe = Probe {
                run,
                seq: first + i as u64,
                sent_ns: now_ns,
            };
            let len = usize::from(size.len_of(probe.seq)) - IP_UDP_HEADERS;
            probe.write(self.batch.buf_mut(i));
            self.batch.set_len(i, len);
        }
        self.batch.send(&self.fd, n)
    }
}

/// Shared counters the progress line reads while a run goes on.
#[derive(Debug, Default)]
pub struct Live {
    /// Packets sent so far.
    pub sent: AtomicU64,
    /// Probes received so far.
    pub received: AtomicU64,
}

/// Lowers this thread's timer slack to 1 µs, so that pacing sleeps end when asked rather than
/// up to 50 µs later.
fn tight_timers() {
    // SAFETY: prctl(PR_SET_TIMERSLACK) takes integers only and affects the calling thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong);
    }
}

/// Sends on the connected socket `fd` until the duration is over or `stop` is set.
pub fn generate(fd: &OwnedFd, config: &GenConfig, live: &Live, stop: &AtomicBool) -> GenResult {
    generate_with(&mut UdpTransmit::new(fd), config, live, stop)
}

/// Sends through `tx` until the duration is over or `stop` is set, paced by the token bucket
/// when a rate is set, as fast as `tx` takes probes otherwise.
pub fn generate_with<T: Transmit + ?Sized>(
    tx: &mut T,
    config: &GenConfig,
    live: &Live,
    stop: &AtomicBool,
) -> GenResult {
    tight_timers();
    let batch = tx.batch();
    let cpu_start = thread_cpu_ns();
    let start = now_ns();
    let end = start.saturating_add(config.duration.as_nanos() as u64);
    // A burst of a batch, or 2 ms of traffic, whichever is more: a sleep that overshoots by
    // less than that costs no throughput.
    let mut bucket = config.pps.map(|pps| {
        let burst = (pps * 0.002).max(batch as f64).min(f64::from(u32::MAX)) as u32;
        TokenBucket::new(pps, burst, start)
    });
    let mut result = GenResult::default();
    let mut seq = 0u64;
    let mut now = start;
    while now < end && !stop.load(Ordering::Relaxed) {
        let n = match bucket.as_mut() {
            Some(bucket) => bucket.take(now, batch as u32) as usize,
            None => batch,
        };
        if n == 0 {
            let wait = bucket
                .as_ref()
                .map_or(0, TokenBucket::wait_ns)
                .min(end - now);
            std::thread::sleep(Duration::from_nanos(wait.max(1_000)));
            now = now_ns();
            continue;
        }
        match tx.send(config.run, config.size, seq, n, now) {
            Ok(sent) => {
                seq += sent as u64;
                result.sent += sent as u64;
                live.sent.fetch_add(sent as u64, Ordering::Relaxed);
                // Tokens for what did not go are given back: the ring or queue was full, and
                // the next try sends them.
                if let Some(bucket) = bucket.as_mut() {
                    bucket.give_back((n - sent.min(n)) as u32);
                }
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                // ENOBUFS, EAGAIN after the send timeout, ECONNREFUSED from an ICMP error:
                // the packet was not sent; the next batch goes with the same numbers.
                result.send_errors += 1;
                std::thread::yield_now();
            }
        }
        now = now_ns();
    }
    result.elapsed_ns = now.min(end).saturating_sub(start).max(1);
    result.cpu_ns = thread_cpu_ns().saturating_sub(cpu_start);
    result
}

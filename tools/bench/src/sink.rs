//! The sink: receives probes in batches and tallies them (a sans-IO [`Tally`], tested on its
//! own). The receive loop is [`receive_with`], over any [`ReceiveBatch`]: a UDP socket with
//! recvmmsg(2) here ([`receive`]); AF_XDP, AF_PACKET and raw ESP in [`crate::xsk_io`] and
//! [`crate::packet_io`].

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::clock::now_ns;
use crate::cpu::thread_cpu_ns;
use crate::generator::Live;
use crate::latency::Latency;
use crate::net::Batch;
use crate::payload::Probe;
use crate::seq::{Arrival, SeqTracker};
use crate::size::IP_UDP_HEADERS;

/// Everything the sink counts in one run.
#[derive(Clone, Debug)]
pub struct Tally {
    run: u32,
    /// Sequence numbers: loss, reordering, duplicates.
    pub seq: SeqTracker,
    /// One-way latency of first arrivals.
    pub latency: Latency,
    /// Inner IP bytes of first arrivals.
    pub bytes: u64,
    /// Datagrams that were not probes of this run.
    pub foreign: u64,
    /// ESP packets the sink could not decrypt (authentication, replay, unknown SPI).
    pub esp_dropped: u64,
    /// CPU time of the sink's thread while it received, nanoseconds.
    pub cpu_ns: u64,
}

impl Tally {
    /// Counts probes of run `run`.
    pub fn new(run: u32) -> Tally {
        Tally {
            run,
            seq: SeqTracker::new(),
            latency: Latency::new(),
            bytes: 0,
            foreign: 0,
            esp_dropped: 0,
            cpu_ns: 0,
        }
    }

    /// Counts one UDP payload read at `now_ns`; returns whether it was a first arrival.
    #[inline]
    pub fn record(&mut self, datagram: &[u8], now_ns: u64) -> bool {
        let Some(probe) = Probe::read(datagram).filter(|p| p.run == self.run) else {
            self.foreign += 1;
            return false;
        };
        if self.seq.observe(probe.seq) == Arrival::Duplicate {
            return false;
        }
        self.bytes += (datagram.len() + IP_UDP_HEADERS) as u64;
        self.latency.record(probe.sent_ns, now_ns);
        true
    }
}

/// Something probes arrive through, a batch at a time.
pub trait ReceiveBatch {
    /// Waits a short while (tens of milliseconds at most) for packets and counts what arrived
    /// in `tally`; returns how many were first arrivals of probes. Timeouts are not errors.
    fn receive(&mut self, tally: &mut Tally) -> io::Result<u64>;
}

/// A bound UDP socket (owned or borrowed) and its recvmmsg buffers.
#[derive(Debug)]
pub struct UdpReceive<F> {
    fd: F,
    batch: Batch,
}

impl<F: AsFd> UdpReceive<F> {
    /// Receives on `fd`, which has a receive timeout.
    pub fn new(fd: F) -> UdpReceive<F> {
        UdpReceive {
            fd,
            batch: Batch::new(),
        }
    }
}

impl<F: AsFd> ReceiveBatch for UdpReceive<F> {
    fn receive(&mut self, tally: &mut Tally) -> io::Result<u64> {
        let n = match self.batch.recv(&self.fd) {
            Ok(n) => n,
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                return Ok(0)
            }
            Err(err) => return Err(err),
        };
        let now = now_ns();
        let mut first = 0;
        for i in 0..n {
            first += u64::from(tally.record(self.batch.received(i), now));
        }
        Ok(first)
    }
}

/// Receives on `fd` into `tally` until `stop` is set (checked at least every socket timeout).
pub fn receive(fd: &OwnedFd, tally: &mut Tally, live: &Live, stop: &AtomicBool) -> io::Result<()> {
    receive_with(&mut UdpReceive::new(fd), tally, live, stop)
}

/// Receives through `rx` into `tally` until `stop` is set; the thread's CPU time goes into
/// [`Tally::cpu_ns`].
pub fn receive_with<R: ReceiveBatch + ?Sized>(
    rx: &mut R,
    tally: &mut Tally,
    live: &Live,
    stop: &AtomicBool,
) -> io::Result<()> {
    let cpu_start = thread_cpu_ns();
    let result = (|| {
        while !stop.load(Ordering::Relaxed) {
            let first = rx.receive(tally)?;
            if first > 0 {
                live.received.fetch_add(first, Ordering::Relaxed);
            }
        }
        Ok(())
    })();
    tally.cpu_ns = thread_cpu_ns().saturating_sub(cpu_start);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(run: u32, seq: u64, sent_ns: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        Probe { run, seq, sent_ns }.write(&mut buf);
        buf
    }

    #[test]
    fn counts_first_arrivals_bytes_latency_and_strangers() {
        let mut tally = Tally::new(7);
        assert!(tally.record(&probe(7, 0, 1_000, 100), 11_000));
        assert!(tally.record(&probe(7, 2, 2_000, 100), 32_000));
        // A duplicate adds neither bytes nor a latency sample.
        assert!(!tally.record(&probe(7, 2, 2_000, 100), 99_000_000));
        // A probe of an earlier run, and something that is no probe at all.
        assert!(!tally.record(&probe(6, 1, 0, 100), 50_000));
        assert!(!tally.record(b"hello, sink", 50_000));
        assert!(tally.record(&probe(7, 1, 3_000, 36), 33_000));
        assert_eq!(tally.seq.unique(), 3);
        assert_eq!(tally.seq.duplicates(), 1);
        assert_eq!(tally.seq.reordered(), 1);
        assert_eq!(tally.foreign, 2);
        assert_eq!(tally.seq.lost(4), 1);
        // Inner IP bytes: payload + 28 each.
        assert_eq!(tally.bytes, 128 + 128 + 64);
        assert_eq!(tally.latency.count(), 3);
        let p = tally.latency.percentiles().unwrap();
        // To the histogram's three significant digits.
        assert!((p.min_us - 10.0).abs() < 0.02, "{p:?}");
        assert!((p.max_us - 30.0).abs() < 0.05, "{p:?}");
    }
}

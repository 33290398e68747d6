//! The sink: receives probes in batches with recvmmsg(2) and tallies them (a sans-IO
//! [`Tally`], tested on its own).

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::clock::now_ns;
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

/// Receives on `fd` into `tally` until `stop` is set (checked at least every socket timeout).
pub fn receive(fd: &OwnedFd, tally: &mut Tally, live: &Live, stop: &AtomicBool) -> io::Result<()> {
    let mut batch = Batch::new();
    while !stop.load(Ordering::Relaxed) {
        let n = match batch.recv(fd) {
            Ok(n) => n,
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(err) => return Err(err),
        };
        let now = now_ns();
        let mut first = 0;
        for i in 0..n {
            first += u64::from(tally.record(batch.received(i), now));
        }
        live.received.fetch_add(first, Ordering::Relaxed);
    }
    Ok(())
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

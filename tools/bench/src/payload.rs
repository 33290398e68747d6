//! What every probe datagram carries at the start of its UDP payload: a magic word, the run's
//! id, a sequence number and the send time (CLOCK_MONOTONIC, which every network namespace of
//! one host shares). The rest of the payload is zeros.

/// Bytes the probe header takes.
pub const LEN: usize = 24;

/// "XBN1": marks our datagrams, so that anything else arriving at the sink is counted apart.
pub const MAGIC: u32 = 0x5842_4E31;

/// One probe's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// Which run sent it: datagrams of an earlier run still in flight are not counted.
    pub run: u32,
    /// 0, 1, 2, … in sending order.
    pub seq: u64,
    /// When the generator handed it to the kernel, nanoseconds of CLOCK_MONOTONIC.
    pub sent_ns: u64,
}

impl Probe {
    /// Writes the header into the first [`LEN`] bytes of `buf`, which must be that long.
    #[inline]
    pub fn write(&self, buf: &mut [u8]) {
        buf[0..4].copy_from_slice(&MAGIC.to_be_bytes());
        buf[4..8].copy_from_slice(&self.run.to_be_bytes());
        buf[8..16].copy_from_slice(&self.seq.to_be_bytes());
        buf[16..24].copy_from_slice(&self.sent_ns.to_be_bytes());
    }

    /// Reads a header; `None` when `buf` is too short or is not ours.
    #[inline]
    pub fn read(buf: &[u8]) -> Option<Probe> {
        let header: &[u8; LEN] = buf.get(..LEN)?.try_into().ok()?;
        let word = |at: usize| {
            u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
        };
        if word(0) != MAGIC {
            return None;
        }
        let long = |at: usize| (u64::from(word(at)) << 32) | u64::from(word(at + 4));
        Some(Probe {
            run: word(4),
            seq: long(8),
            sent_ns: long(16),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_reads_back_as_written() {
        let probe = Probe {
            run: 0xDEAD_BEEF,
            seq: 0x0102_0304_0506_0708,
            sent_ns: u64::MAX - 7,
        };
        let mut buf = [0u8; 64];
        probe.write(&mut buf);
        assert_eq!(&buf[..4], b"XBN1");
        assert_eq!(&buf[8..16], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(Probe::read(&buf), Some(probe));
    }

    #[test]
    fn foreign_or_short_datagrams_are_not_probes() {
        let mut buf = [0u8; LEN];
        Probe {
            run: 1,
            seq: 2,
            sent_ns: 3,
        }
        .write(&mut buf);
        assert_eq!(Probe::read(&buf[..LEN - 1]), None);
        buf[0] ^= 1;
        assert_eq!(Probe::read(&buf), None);
        assert_eq!(Probe::read(&[]), None);
    }
}

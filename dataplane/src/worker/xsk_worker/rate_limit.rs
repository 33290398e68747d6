//! A token bucket for the ICMP errors a worker sends: no allocation, no lock and no clock of
//! its own (the caller passes the time its batch was received), so it costs nothing on the
//! packet path and is exact in tests.

use std::time::Instant;

/// Billionths of a token: one token per second adds one unit per nanosecond.
const UNITS_PER_TOKEN: u64 = 1_000_000_000;

/// `per_second` tokens a second, at most `burst` saved up; starts full.
#[derive(Clone, Copy, Debug)]
pub(super) struct TokenBucket {
    per_second: u64,
    /// In units; at most `burst * UNITS_PER_TOKEN`, which fits: `burst` is a `u32`.
    capacity: u64,
    level: u64,
    /// The latest time seen; earlier times (a packet handed over from another worker,
    /// received before this batch) add nothing.
    last: Option<Instant>,
}

impl TokenBucket {
    pub(super) fn new(per_second: u32, burst: u32) -> Self {
        let capacity = u64::from(burst) * UNITS_PER_TOKEN;
        Self {
            per_second: u64::from(per_second),
            capacity,
            level: capacity,
            last: None,
        }
    }

    /// Takes a token at `now` if there is one.
    pub(super) fn take(&mut self, now: Instant) -> bool {
        match self.last {
            Some(last) if now > last => {
                let nanos = now.duration_since(last).as_nanos();
                let added = nanos.saturating_mul(u128::from(self.per_second));
                let level = (u128::from(self.level) + added).min(u128::from(self.capacity));
                // At most `capacity`, a u64.
                self.level = level as u64;
                self.last = Some(now);
            }
            Some(_) => {}
            None => self.last = Some(now),
        }
        if self.level < UNITS_PER_TOKEN {
            return false;
        }
        self.level -= UNITS_PER_TOKEN;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, 3);
        let taken = (0..5).filter(|_| bucket.take(start)).count();
        assert_eq!(taken, 3);
        // A tenth of a second gives one token; a bit less gives none.
        assert!(!bucket.take(start + Duration::from_millis(99)));
        assert!(bucket.take(start + Duration::from_millis(100)));
        assert!(!bucket.take(start + Duration::from_millis(100)));
        // An hour idle refills to the burst, no more.
        let later = start + Duration::from_secs(3600);
        assert_eq!((0..10).filter(|_| bucket.take(later)).count(), 3);
        // Time going backwards adds nothing and takes nothing away.
        assert!(!bucket.take(start));
        assert!(bucket.take(later + Duration::from_millis(100)));
    }

    #[test]
    fn a_zero_rate_gives_the_burst_only_and_a_zero_burst_nothing() {
        let start = Instant::now();
        let mut silent = TokenBucket::new(0, 5);
        assert_eq!((0..10).filter(|_| silent.take(start)).count(), 5);
        assert!(!silent.take(start + Duration::from_secs(100)));
        let mut none = TokenBucket::new(1000, 0);
        assert!(!none.take(start));
        assert!(!none.take(start + Duration::from_secs(100)));
        let mut huge = TokenBucket::new(u32::MAX, u32::MAX);
        assert!(huge.take(start));
        assert!(huge.take(start + Duration::from_secs(1 << 30)));
    }
}

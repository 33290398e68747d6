//! The offered rate: parsed from the command line (`max`, `100kpps`, `1gbps`) and enforced by a
//! token bucket that runs on a clock the caller passes in, so it is tested without sleeping.

use std::fmt;

use crate::size::PacketSize;

/// How fast the generator offers packets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rate {
    /// As fast as the generator's socket takes them.
    Max,
    /// Packets per second.
    Pps(f64),
    /// Bits per second of inner IP packets (headers included, Ethernet framing not).
    Bps(f64),
}

impl Rate {
    /// The rate in packets per second for `size`; `None` for [`Rate::Max`].
    pub fn pps_for(self, size: PacketSize) -> Option<f64> {
        match self {
            Rate::Max => None,
            Rate::Pps(pps) => Some(pps),
            Rate::Bps(bps) => Some(bps / (size.mean() * 8.0)),
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Rate::Max => f.write_str("max"),
            Rate::Pps(pps) => write!(f, "{}", scaled(pps, "pps")),
            Rate::Bps(bps) => write!(f, "{}", scaled(bps, "bps")),
        }
    }
}

fn scaled(value: f64, unit: &str) -> String {
    for (factor, prefix) in [(1e9, "g"), (1e6, "m"), (1e3, "k")] {
        if value >= factor {
            return format!("{}{prefix}{unit}", value / factor);
        }
    }
    format!("{value}{unit}")
}

/// A rate the command line gave that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateError(pub String);

impl fmt::Display for RateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RateError {}

/// Parses `max`, or a positive number with a unit: `pps`, `kpps`, `mpps`, `bps`, `kbps`,
/// `mbps`, `gbps` (any case; `2.5mpps` is fine).
pub fn parse_rate(text: &str) -> Result<Rate, RateError> {
    let text = text.trim();
    let lower = text.to_ascii_lowercase();
    if lower == "max" {
        return Ok(Rate::Max);
    }
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| {
            RateError(format!(
                "rate '{text}' has no unit: say e.g. 100kpps, 1mpps, 500mbps, 1gbps or max"
            ))
        })?;
    let (number, unit) = lower.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| RateError(format!("rate '{text}' does not start with a number")))?;
    let (factor, per_packet) = match unit {
        "pps" => (1.0, true),
        "kpps" => (1e3, true),
        "mpps" => (1e6, true),
        "bps" => (1.0, false),
        "kbps" => (1e3, false),
        "mbps" => (1e6, false),
        "gbps" => (1e9, false),
        _ => {
            return Err(RateError(format!(
                "rate '{text}': unknown unit '{unit}' (pps, kpps, mpps, bps, kbps, mbps, gbps)"
            )))
        }
    };
    let value = value * factor;
    if !value.is_finite() || value < 1.0 {
        return Err(RateError(format!(
            "rate '{text}' is below one packet (or bit) per second"
        )));
    }
    Ok(if per_packet {
        Rate::Pps(value)
    } else {
        Rate::Bps(value)
    })
}

/// Parses a comma-separated list of rates: more than one is a sweep.
pub fn parse_rates(text: &str) -> Result<Vec<Rate>, RateError> {
    text.split(',').map(parse_rate).collect()
}

/// A token bucket counted in nanopackets: `rate` packets per second flow in, at most `burst`
/// packets' worth are kept, and sending a packet takes one. Integer arithmetic, so it neither
/// drifts nor rounds a slow rate down to zero.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    /// Nanopackets added per nanosecond = packets per second.
    per_sec: u128,
    capacity: u128,
    tokens: u128,
    last_ns: u64,
}

const NANO: u128 = 1_000_000_000;

impl TokenBucket {
    /// A bucket for `pps` packets per second (rounded to a whole millipacket), holding at most
    /// `burst` packets, full at `now_ns` so the first batch goes at once.
    pub fn new(pps: f64, burst: u32, now_ns: u64) -> TokenBucket {
        // Kept in millipackets per second so that fractional rates survive.
        let milli = (pps * 1000.0).round().max(1.0) as u128;
        let capacity = u128::from(burst.max(1)) * NANO * 1000;
        TokenBucket {
            per_sec: milli,
            capacity,
            tokens: capacity,
            last_ns: now_ns,
        }
    }

    /// Adds what flowed in since the last call; a clock that went backwards adds nothing.
    pub fn refill(&mut self, now_ns: u64) {
        let elapsed = now_ns.saturating_sub(self.last_ns);
        self.last_ns = self.last_ns.max(now_ns);
        let added = u128::from(elapsed) * self.per_sec;
        self.tokens = (self.tokens + added).min(self.capacity);
    }

    /// How many of `want` packets may go now (refilling first); takes their tokens.
    pub fn take(&mut self, now_ns: u64, want: u32) -> u32 {
        self.refill(now_ns);
        let one = NANO * 1000;
        let allowed = (self.tokens / one).min(u128::from(want)) as u32;
        self.tokens -= u128::from(allowed) * one;
        allowed
    }

    /// Returns the tokens of `packets` taken but not sent (a full ring); never beyond the
    /// burst.
    pub fn give_back(&mut self, packets: u32) {
        let one = NANO * 1000;
        self.tokens = (self.tokens + u128::from(packets) * one).min(self.capacity);
    }

    /// Nanoseconds until one more packet may go (0 if it may go now).
    pub fn wait_ns(&self) -> u64 {
        let one = NANO * 1000;
        if self.tokens >= one {
            return 0;
        }
        let missing = one - self.tokens;
        u64::try_from(missing.div_ceil(self.per_sec)).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_max() {
        assert_eq!(parse_rate("max").unwrap(), Rate::Max);
        assert_eq!(parse_rate("MAX").unwrap(), Rate::Max);
        assert_eq!(parse_rate("100kpps").unwrap(), Rate::Pps(100_000.0));
        assert_eq!(parse_rate("2.5Mpps").unwrap(), Rate::Pps(2_500_000.0));
        assert_eq!(parse_rate("1gbps").unwrap(), Rate::Bps(1e9));
        assert_eq!(parse_rate("500mbps").unwrap(), Rate::Bps(5e8));
        assert_eq!(parse_rate("7pps").unwrap(), Rate::Pps(7.0));
        assert_eq!(
            parse_rates("max,1mpps").unwrap(),
            vec![Rate::Max, Rate::Pps(1e6)]
        );
    }

    #[test]
    fn refuses_rates_without_units_or_with_nonsense() {
        for bad in [
            "100",
            "fast",
            "10 qps",
            "0pps",
            "0.5pps",
            "kpps",
            "1.2.3mpps",
            "",
            "-5pps",
        ] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        assert!(parse_rate("100").unwrap_err().0.contains("no unit"));
    }

    #[test]
    fn bits_per_second_become_packets_per_second_by_the_mean_size() {
        let pps = Rate::Bps(1e9).pps_for(PacketSize::Fixed(1250)).unwrap();
        assert!((pps - 100_000.0).abs() < 1e-6);
        assert_eq!(Rate::Max.pps_for(PacketSize::Imix), None);
    }

    #[test]
    fn a_bucket_lets_through_exactly_the_rate_over_a_long_run() {
        // 1000 pps for 10 simulated seconds, polled every 0.25 ms with batches of up to 32.
        let mut bucket = TokenBucket::new(1000.0, 32, 0);
        let mut sent = 0u64;
        let mut now = 0u64;
        while now <= 10_000_000_000 {
            sent += u64::from(bucket.take(now, 32));
            now += 250_000;
        }
        // The initial burst (32) plus 1000 per second.
        assert_eq!(sent, 32 + 10_000);
    }

    #[test]
    fn a_bucket_caps_what_idle_time_saves_up() {
        let mut bucket = TokenBucket::new(1_000_000.0, 64, 0);
        assert_eq!(bucket.take(0, 1000), 64);
        assert_eq!(bucket.take(0, 1000), 0);
        // One second idle would be worth a million packets; the burst caps it.
        assert_eq!(bucket.take(1_000_000_000, 1000), 64);
    }

    #[test]
    fn tokens_given_back_go_again_but_never_beyond_the_burst() {
        let mut bucket = TokenBucket::new(1000.0, 10, 0);
        assert_eq!(bucket.take(0, 10), 10);
        bucket.give_back(4);
        assert_eq!(bucket.take(0, 10), 4);
        bucket.give_back(1000);
        assert_eq!(bucket.take(0, 100), 10);
    }

    #[test]
    fn wait_says_when_the_next_packet_may_go() {
        let mut bucket = TokenBucket::new(1000.0, 1, 0);
        assert_eq!(bucket.wait_ns(), 0);
        assert_eq!(bucket.take(0, 5), 1);
        assert_eq!(bucket.wait_ns(), 1_000_000);
        assert_eq!(bucket.take(999_999, 1), 0);
        assert_eq!(bucket.wait_ns(), 1);
        assert_eq!(bucket.take(1_000_000, 1), 1);
    }

    #[test]
    fn fractional_rates_and_backwards_clocks() {
        // 1.5 pps: one packet every 666.67 ms.
        let mut bucket = TokenBucket::new(1.5, 1, 0);
        assert_eq!(bucket.take(0, 1), 1);
        assert_eq!(bucket.take(600_000_000, 1), 0);
        // A clock read that went backwards must not mint tokens.
        assert_eq!(bucket.take(100, 1), 0);
        assert_eq!(bucket.take(666_666_000, 1), 0);
        assert_eq!(bucket.take(666_667_000, 1), 1);
    }
}

//! One-way latency, from the send time a probe carries to the moment the sink read it, in an
//! HDR histogram: nanosecond resolution to three significant digits, up to a minute.

use hdrhistogram::Histogram;

/// The largest latency kept exactly; longer ones are recorded as this.
pub const MAX_NS: u64 = 60_000_000_000;

/// Latencies of one run.
#[derive(Clone, Debug)]
pub struct Latency {
    histogram: Histogram<u64>,
}

/// The percentiles a report shows, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Percentiles {
    /// Smallest.
    pub min_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
    /// Arithmetic mean.
    pub mean_us: f64,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

impl Latency {
    /// Empty.
    pub fn new() -> Latency {
        Latency {
            histogram: Histogram::new_with_bounds(1, MAX_NS, 3)
                .expect("constant bounds that hdrhistogram accepts"),
        }
    }

    /// Records one latency; a receive time before the send time (impossible on one clock)
    /// counts as zero.
    #[inline]
    pub fn record(&mut self, sent_ns: u64, received_ns: u64) {
        self.histogram
            .saturating_record(received_ns.saturating_sub(sent_ns).min(MAX_NS));
    }

    /// How many were recorded.
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The percentiles; `None` when nothing was recorded.
    pub fn percentiles(&self) -> Option<Percentiles> {
        if self.histogram.is_empty() {
            return None;
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        let at = |q: f64| us(self.histogram.value_at_quantile(q));
        Some(Percentiles {
            min_us: us(self.histogram.min()),
            p50_us: at(0.50),
            p90_us: at(0.90),
            p99_us: at(0.99),
            p999_us: at(0.999),
            max_us: us(self.histogram.max()),
            mean_us: self.histogram.mean() / 1000.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64) -> bool {
        // Three significant digits: a bucket is at most 1/1024 wide, and a value reads as its
        // bucket's top.
        (actual - expected).abs() <= expected * 0.002 + 1e-9
    }

    #[test]
    fn percentiles_of_a_uniform_ramp() {
        // 1..=10_000 µs once each: the q-quantile is q × 10 000 µs.
        let mut latency = Latency::new();
        for us in 1..=10_000u64 {
            latency.record(1_000_000, 1_000_000 + us * 1000);
        }
        let p = latency.percentiles().unwrap();
        assert_eq!(latency.count(), 10_000);
        assert!(close(p.min_us, 1.0), "{p:?}");
        assert!(close(p.p50_us, 5_000.0), "{p:?}");
        assert!(close(p.p90_us, 9_000.0), "{p:?}");
        assert!(close(p.p99_us, 9_900.0), "{p:?}");
        assert!(close(p.p999_us, 9_990.0), "{p:?}");
        assert!(close(p.max_us, 10_000.0), "{p:?}");
        assert!(close(p.mean_us, 5_000.5), "{p:?}");
    }

    #[test]
    fn a_rare_outlier_shows_only_in_the_tail() {
        let mut latency = Latency::new();
        for _ in 0..9_990 {
            latency.record(0, 20_000);
        }
        for _ in 0..10 {
            latency.record(0, 5_000_000);
        }
        let p = latency.percentiles().unwrap();
        assert!(close(p.p99_us, 20.0), "{p:?}");
        assert!(close(p.p999_us, 20.0), "{p:?}");
        assert!(close(p.max_us, 5_000.0), "{p:?}");
    }

    #[test]
    fn nothing_recorded_has_no_percentiles_and_clocks_never_go_negative() {
        let mut latency = Latency::new();
        assert_eq!(latency.percentiles(), None);
        latency.record(500, 100);
        latency.record(0, u64::MAX);
        let p = latency.percentiles().unwrap();
        assert_eq!(p.min_us, 0.0);
        assert!(close(p.max_us, MAX_NS as f64 / 1000.0));
    }
}

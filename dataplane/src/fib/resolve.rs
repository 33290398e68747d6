//! Asking the kernel to resolve a neighbour: the request a worker queues, and the mirror's
//! limit of one request per (interface, address) per interval, so that a stream of packets
//! to an unresolved next hop does not turn into a stream of ARP or ND solicitations (the
//! kernel retransmits on its own while an entry is incomplete).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A worker's request: resolve `address` on interface `ifindex`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ResolveRequest {
    pub ifindex: u32,
    pub address: IpAddr,
}

/// What [`ResolveLimiter::admit`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Ask the kernel.
    Send,
    /// Asked less than an interval ago.
    TooSoon,
    /// Too many distinct addresses asked about within one interval: the request is dropped
    /// (and counted) rather than the table grown.
    Full,
}

/// When each (interface, address) was last asked about, forgetting what is older than the
/// interval once the table fills.
#[derive(Debug)]
pub(crate) struct ResolveLimiter {
    interval: Duration,
    capacity: usize,
    last: HashMap<ResolveRequest, Instant>,
}

impl ResolveLimiter {
    pub fn new(interval: Duration, capacity: usize) -> Self {
        Self {
            interval,
            capacity: capacity.max(1),
            last: HashMap::new(),
        }
    }

    /// Whether `request` may go to the kernel at `now`; if so, remembers it.
    pub fn admit(&mut self, request: ResolveRequest, now: Instant) -> Admit {
        if let Some(&at) = self.last.get(&request) {
            if now.saturating_duration_since(at) < self.interval {
                return Admit::TooSoon;
            }
        } else if self.last.len() >= self.capacity {
            let interval = self.interval;
            self.last
                .retain(|_, at| now.saturating_duration_since(*at) < interval);
            if self.last.len() >= self.capacity {
                return Admit::Full;
            }
        }
        self.last.insert(request, now);
        Admit::Send
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fib::parse::tests::v4;

    fn request(last_octet: u8) -> ResolveRequest {
        ResolveRequest {
            ifindex: 3,
            address: v4(&format!("10.0.0.{last_octet}")),
        }
    }

    #[test]
    fn once_per_interval_per_address() {
        let start = Instant::now();
        let mut limiter = ResolveLimiter::new(Duration::from_secs(1), 16);
        assert_eq!(limiter.admit(request(1), start), Admit::Send);
        assert_eq!(
            limiter.admit(request(1), start + Duration::from_millis(999)),
            Admit::TooSoon
        );
        assert_eq!(
            limiter.admit(request(2), start + Duration::from_millis(10)),
            Admit::Send
        );
        let other_interface = ResolveRequest {
            ifindex: 4,
            ..request(1)
        };
        assert_eq!(limiter.admit(other_interface, start), Admit::Send);
        assert_eq!(
            limiter.admit(request(1), start + Duration::from_secs(1)),
            Admit::Send
        );
    }

    #[test]
    fn a_full_table_forgets_the_old_and_refuses_the_rest() {
        let start = Instant::now();
        let mut limiter = ResolveLimiter::new(Duration::from_secs(1), 2);
        assert_eq!(limiter.admit(request(1), start), Admit::Send);
        assert_eq!(limiter.admit(request(2), start), Admit::Send);
        assert_eq!(limiter.admit(request(3), start), Admit::Full);
        // A known address is still limited, not refused.
        assert_eq!(limiter.admit(request(1), start), Admit::TooSoon);
        let later = start + Duration::from_secs(2);
        assert_eq!(limiter.admit(request(3), later), Admit::Send);
        assert_eq!(limiter.admit(request(4), later), Admit::Send);
        assert_eq!(limiter.admit(request(5), later), Admit::Full);
    }
}

//! [`StaticNextHops`]: next hops from a fixed list, for tests and benchmarks that need no
//! kernel.

use std::net::IpAddr;

use ipnet::IpNet;

use super::lpm::PrefixTable;
use super::next_hop::{NextHop, NextHops};

/// A fixed list of (prefix, next hop), answered by longest-prefix match; a destination no
/// prefix contains is [`NextHop::Unreachable`]. Nothing is ever resolved: an
/// [`NextHop::Unresolved`] in the list stays so.
#[derive(Clone, Debug)]
pub struct StaticNextHops {
    v4: PrefixTable<u32>,
    v6: PrefixTable<u128>,
    next_hops: Vec<NextHop>,
}

impl StaticNextHops {
    /// The table of `entries`. Host bits of a prefix are ignored; when a prefix is listed
    /// twice, the first entry wins.
    pub fn new(entries: impl IntoIterator<Item = (IpNet, NextHop)>) -> Self {
        let (prefixes, next_hops): (Vec<IpNet>, Vec<NextHop>) = entries.into_iter().unzip();
        let v4 = PrefixTable::build(prefixes.iter().enumerate().filter_map(|(i, p)| match p {
            IpNet::V4(p) => Some((u32::from(p.network()), p.prefix_len(), i as u32)),
            IpNet::V6(_) => None,
        }));
        let v6 = PrefixTable::build(prefixes.iter().enumerate().filter_map(|(i, p)| match p {
            IpNet::V6(p) => Some((u128::from(p.network()), p.prefix_len(), i as u32)),
            IpNet::V4(_) => None,
        }));
        Self { v4, v6, next_hops }
    }
}

impl NextHops for StaticNextHops {
    fn lookup(&mut self, destination: IpAddr) -> NextHop {
        let index = match destination {
            IpAddr::V4(a) => self.v4.lookup(u32::from(a)),
            IpAddr::V6(a) => self.v6.lookup(u128::from(a)),
        };
        index
            .and_then(|i| self.next_hops.get(i as usize).copied())
            .unwrap_or(NextHop::Unreachable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fib::parse::tests::{v4, v6};

    fn resolved(ifindex: u32) -> NextHop {
        NextHop::Resolved {
            ifindex,
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, ifindex as u8],
            mtu: 1500,
        }
    }

    #[test]
    fn the_longest_listed_prefix_answers() {
        let mut hops = StaticNextHops::new([
            ("0.0.0.0/0".parse().unwrap(), resolved(1)),
            ("10.0.0.0/8".parse().unwrap(), resolved(2)),
            ("10.1.0.0/16".parse().unwrap(), resolved(3)),
            ("10.1.0.0/16".parse().unwrap(), resolved(9)),
            ("2001:db8::/32".parse().unwrap(), resolved(4)),
        ]);
        hops.begin_batch();
        assert_eq!(hops.lookup(v4("10.1.2.3")), resolved(3));
        assert_eq!(hops.lookup(v4("10.2.2.3")), resolved(2));
        assert_eq!(hops.lookup(v4("192.0.2.1")), resolved(1));
        assert_eq!(hops.lookup(v6("2001:db8::1")), resolved(4));
        assert_eq!(hops.lookup(v6("2001:db9::1")), NextHop::Unreachable);
        assert_eq!(
            StaticNextHops::new([]).lookup(v4("10.1.2.3")),
            NextHop::Unreachable
        );
    }
}

//! Traffic selector narrowing (RFC 7296 §2.9).
//!
//! A responder answers TSi and TSr with the subset of what the initiator proposed that its own
//! policy allows: here the intersection of every proposed selector with every policy selector
//! (same address family; protocol 0 is "any"; port and address ranges intersected). If either
//! side comes out empty the answer is TS_UNACCEPTABLE. The initiator checks that what comes back
//! lies within what it proposed.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::wire::TrafficSelector;

/// The intersection of two IPv4 or IPv6 range selectors, or `None` if they share nothing (or
/// are of other types, which we do not narrow).
pub fn intersect(a: &TrafficSelector, b: &TrafficSelector) -> Option<TrafficSelector> {
    match (a, b) {
        (
            TrafficSelector::Ipv4 {
                ip_protocol: pa,
                start_port: sa,
                end_port: ea,
                start: a0,
                end: a1,
            },
            TrafficSelector::Ipv4 {
                ip_protocol: pb,
                start_port: sb,
                end_port: eb,
                start: b0,
                end: b1,
            },
        ) => {
            let ip_protocol = protocol(*pa, *pb)?;
            let (start_port, end_port) = range(*sa, *ea, *sb, *eb)?;
            let (s, e) = range(
                u32::from(*a0),
                u32::from(*a1),
                u32::from(*b0),
                u32::from(*b1),
            )?;
            Some(TrafficSelector::Ipv4 {
                ip_protocol,
                start_port,
                end_port,
                start: Ipv4Addr::from(s),
                end: Ipv4Addr::from(e),
            })
        }
        (
            TrafficSelector::Ipv6 {
                ip_protocol: pa,
                start_port: sa,
                end_port: ea,
                start: a0,
                end: a1,
            },
            TrafficSelector::Ipv6 {
                ip_protocol: pb,
                start_port: sb,
                end_port: eb,
                start: b0,
                end: b1,
            },
        ) => {
            let ip_protocol = protocol(*pa, *pb)?;
            let (start_port, end_port) = range(*sa, *ea, *sb, *eb)?;
            let (s, e) = range(
                u128::from(*a0),
                u128::from(*a1),
                u128::from(*b0),
                u128::from(*b1),
            )?;
            Some(TrafficSelector::Ipv6 {
                ip_protocol,
                start_port,
                end_port,
                start: Ipv6Addr::from(s),
                end: Ipv6Addr::from(e),
            })
        }
        _ => None,
    }
}

/// Protocol 0 means any.
fn protocol(a: u8, b: u8) -> Option<u8> {
    match (a, b) {
        (0, p) | (p, 0) => Some(p),
        (a, b) if a == b => Some(a),
        _ => None,
    }
}

/// The intersection of two inclusive ranges (an empty or inverted range yields `None`).
fn range<T: Ord + Copy>(a0: T, a1: T, b0: T, b1: T) -> Option<(T, T)> {
    let start = a0.max(b0);
    let end = a1.min(b1);
    (start <= end).then_some((start, end))
}

/// Narrows `proposed` to `policy`: every non-empty pairwise intersection, without duplicates,
/// in the proposer's order. Empty means TS_UNACCEPTABLE.
pub fn narrow(proposed: &[TrafficSelector], policy: &[TrafficSelector]) -> Vec<TrafficSelector> {
    let mut out: Vec<TrafficSelector> = Vec::new();
    for p in proposed {
        for q in policy {
            if let Some(ts) = intersect(p, q) {
                if !out.contains(&ts) {
                    out.push(ts);
                }
            }
        }
    }
    out
}

/// Whether every selector of `narrowed` lies within some selector of `proposed`.
pub(crate) fn within(narrowed: &[TrafficSelector], proposed: &[TrafficSelector]) -> bool {
    narrowed
        .iter()
        .all(|n| proposed.iter().any(|p| intersect(n, p).as_ref() == Some(n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(proto: u8, ports: (u16, u16), a: &str, b: &str) -> TrafficSelector {
        TrafficSelector::Ipv4 {
            ip_protocol: proto,
            start_port: ports.0,
            end_port: ports.1,
            start: a.parse().unwrap(),
            end: b.parse().unwrap(),
        }
    }

    #[test]
    fn narrowing() {
        let any = TrafficSelector::ipv4_any();
        let net = v4(0, (0, 65535), "10.0.0.0", "10.0.0.255");
        assert_eq!(intersect(&any, &net), Some(net.clone()));
        let tcp = v4(6, (80, 443), "10.0.0.128", "10.0.1.255");
        assert_eq!(
            intersect(&net, &tcp),
            Some(v4(6, (80, 443), "10.0.0.128", "10.0.0.255"))
        );
        assert_eq!(
            intersect(&tcp, &v4(17, (0, 65535), "0.0.0.0", "255.255.255.255")),
            None
        );
        assert_eq!(
            intersect(&net, &v4(0, (0, 65535), "10.0.1.0", "10.0.1.255")),
            None
        );
        let v6 = TrafficSelector::Ipv6 {
            ip_protocol: 0,
            start_port: 0,
            end_port: 65535,
            start: Ipv6Addr::UNSPECIFIED,
            end: Ipv6Addr::from(u128::MAX),
        };
        assert_eq!(intersect(&any, &v6), None);
        assert_eq!(
            narrow(&[any.clone(), v6.clone()], std::slice::from_ref(&net)),
            vec![net.clone()]
        );
        assert!(within(
            std::slice::from_ref(&net),
            std::slice::from_ref(&any)
        ));
        assert!(!within(&[any], &[net]));
    }
}

//! The security policy database for outbound traffic (RFC 4301 §4.4.1): which outbound SA a
//! plaintext packet takes. The control plane writes the whole list under one seqlock (policies
//! change with SAs, rarely compared with packets); workers copy it when its version moves and
//! match against their copy.
//!
//! Order is priority: the first policy that matches wins, as in strongSwan's and the kernel's
//! SPD, so the control plane puts narrower selectors first.

use std::net::IpAddr;

use super::layout::POLICY_WORDS;
use super::SlotId;

/// A range of addresses of one family, as IKE traffic selectors carry them (RFC 7296 §3.13.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddressRange {
    V4 { start: u32, end: u32 },
    V6 { start: u128, end: u128 },
}

impl AddressRange {
    /// `start..=end`; `None` when the families differ or the range is empty.
    pub fn new(start: IpAddr, end: IpAddr) -> Option<Self> {
        match (start, end) {
            (IpAddr::V4(s), IpAddr::V4(e)) if u32::from(s) <= u32::from(e) => {
                Some(AddressRange::V4 {
                    start: s.into(),
                    end: e.into(),
                })
            }
            (IpAddr::V6(s), IpAddr::V6(e)) if u128::from(s) <= u128::from(e) => {
                Some(AddressRange::V6 {
                    start: s.into(),
                    end: e.into(),
                })
            }
            _ => None,
        }
    }

    /// The addresses of a prefix such as 10.1.0.0/24; `None` for a length beyond the family's.
    pub fn prefix(address: IpAddr, len: u8) -> Option<Self> {
        match address {
            IpAddr::V4(a) if len <= 32 => {
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                let start = u32::from(a) & mask;
                Some(AddressRange::V4 {
                    start,
                    end: start | !mask,
                })
            }
            IpAddr::V6(a) if len <= 128 => {
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                let start = u128::from(a) & mask;
                Some(AddressRange::V6 {
                    start,
                    end: start | !mask,
                })
            }
            _ => None,
        }
    }

    /// The fewest prefixes that cover the range exactly (an LPM table holds prefixes).
    pub fn subnets(&self) -> Vec<ipnet::IpNet> {
        match *self {
            AddressRange::V4 { start, end } => ipnet::Ipv4Subnets::new(start.into(), end.into(), 0)
                .map(ipnet::IpNet::V4)
                .collect(),
            AddressRange::V6 { start, end } => ipnet::Ipv6Subnets::new(start.into(), end.into(), 0)
                .map(ipnet::IpNet::V6)
                .collect(),
        }
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        match (self, address) {
            (AddressRange::V4 { start, end }, IpAddr::V4(a)) => {
                (*start..=*end).contains(&u32::from(a))
            }
            (AddressRange::V6 { start, end }, IpAddr::V6(a)) => {
                (*start..=*end).contains(&u128::from(a))
            }
            _ => false,
        }
    }

    fn family_code(&self) -> u64 {
        match self {
            AddressRange::V4 { .. } => 4,
            AddressRange::V6 { .. } => 6,
        }
    }

    fn bounds(&self) -> (u128, u128) {
        match *self {
            AddressRange::V4 { start, end } => (start.into(), end.into()),
            AddressRange::V6 { start, end } => (start, end),
        }
    }

    fn from_bounds(family: u64, start: u128, end: u128) -> Option<Self> {
        match family {
            4 => Some(AddressRange::V4 {
                start: u32::try_from(start).ok()?,
                end: u32::try_from(end).ok()?,
            }),
            6 => Some(AddressRange::V6 { start, end }),
            _ => None,
        }
    }
}

/// One outbound policy: traffic from `local` to `remote` with this protocol and these ports
/// goes through the outbound SA in `outbound`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub local: AddressRange,
    pub remote: AddressRange,
    /// `None`: any protocol.
    pub protocol: Option<u8>,
    /// Inclusive; `(0, 65535)` is any port.
    pub local_ports: (u16, u16),
    pub remote_ports: (u16, u16),
    pub outbound: SlotId,
}

/// Ports of a packet, where its protocol has them and the packet carries them (a non-first
/// fragment does not: RFC 4301 §7's OPAQUE).
pub const ANY_PORT: (u16, u16) = (0, u16::MAX);

/// The selector fields of one packet (RFC 4301 §4.4.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    pub source: IpAddr,
    pub destination: IpAddr,
    pub protocol: u8,
    /// `None` when the protocol has no ports or the packet does not carry them.
    pub ports: Option<(u16, u16)>,
}

impl Policy {
    /// Whether `flow` (a packet leaving through this gateway) matches.
    pub fn matches(&self, flow: &Flow) -> bool {
        let in_range = |(low, high): (u16, u16), port: u16| (low..=high).contains(&port);
        self.local.contains(flow.source)
            && self.remote.contains(flow.destination)
            && self.protocol.is_none_or(|p| p == flow.protocol)
            && match flow.ports {
                Some((source, destination)) => {
                    in_range(self.local_ports, source) && in_range(self.remote_ports, destination)
                }
                None => self.local_ports == ANY_PORT && self.remote_ports == ANY_PORT,
            }
    }

    pub(crate) fn encode(&self) -> [u64; POLICY_WORDS] {
        let (local_start, local_end) = self.local.bounds();
        let (remote_start, remote_end) = self.remote.bounds();
        let halves = |value: u128| [(value >> 64) as u64, value as u64];
        let mut words = [0u64; POLICY_WORDS];
        words[0..2].copy_from_slice(&halves(local_start));
        words[2..4].copy_from_slice(&halves(local_end));
        words[4..6].copy_from_slice(&halves(remote_start));
        words[6..8].copy_from_slice(&halves(remote_end));
        let protocol = self.protocol.map_or(0, |p| u64::from(p) | 0x100);
        words[8] = self.local.family_code()
            | self.remote.family_code() << 4
            | protocol << 8
            | u64::from(self.outbound.0) << 32;
        words[9] = u64::from(self.local_ports.0)
            | u64::from(self.local_ports.1) << 16
            | u64::from(self.remote_ports.0) << 32
            | u64::from(self.remote_ports.1) << 48;
        words
    }

    pub(crate) fn decode(words: &[u64]) -> Option<Self> {
        let wide = |i: usize| u128::from(words[i]) << 64 | u128::from(words[i + 1]);
        let w8 = *words.get(8)?;
        let w9 = *words.get(9)?;
        Some(Self {
            local: AddressRange::from_bounds(w8 & 0xF, wide(0), wide(2))?,
            remote: AddressRange::from_bounds((w8 >> 4) & 0xF, wide(4), wide(6))?,
            protocol: (w8 & 0x1_0000 != 0).then_some((w8 >> 8) as u8),
            local_ports: (w9 as u16, (w9 >> 16) as u16),
            remote_ports: ((w9 >> 32) as u16, (w9 >> 48) as u16),
            outbound: SlotId((w8 >> 32) as u32),
        })
    }
}

//! What the ESP core knows about one SA: parameters without secrets, the key, the sequence
//! counter (outbound) or the replay window (inbound), and counters.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::cipher::{CipherSuite, EspKey, KeyLengthError};
use super::drop::SaCounters;
use super::replay::{ReplayWindow, ReplayWindowSizeError, DEFAULT_REPLAY_WINDOW};
use super::template::OuterTemplate;

/// Tunnel mode wraps the whole inner packet; transport mode protects only the payload of the
/// host's own packet (RFC 4301 §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Tunnel,
    Transport,
}

/// What the outer IPv4 header's DF bit becomes (RFC 4301 §8.1: copy, set or clear per SA).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DfPolicy {
    /// Copy the inner header's DF; an inner IPv6 packet counts as DF set, since routers never
    /// fragment IPv6.
    #[default]
    Copy,
    Set,
    Clear,
}

/// The outer addresses of a tunnel, as this gateway sees them. One enum so that an SA with an
/// IPv4 local and an IPv6 remote address cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoints {
    V4 { local: Ipv4Addr, remote: Ipv4Addr },
    V6 { local: Ipv6Addr, remote: Ipv6Addr },
}

/// UDP encapsulation of ESP for NAT traversal (RFC 3948): this side's and the peer's ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpEncap {
    pub local_port: u16,
    pub remote_port: u16,
}

impl UdpEncap {
    /// Both sides on the IKE NAT-T port, as before any NAT rewrote one of them.
    pub const NATT_DEFAULT: UdpEncap = UdpEncap {
        local_port: 4500,
        remote_port: 4500,
    };
}

/// An SA's parameters: everything but the key. Cheap to copy and safe to log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SaParams {
    pub spi: u32,
    pub suite: CipherSuite,
    pub mode: Mode,
    pub endpoints: Endpoints,
    pub udp_encap: Option<UdpEncap>,
    /// Extended (64-bit) sequence numbers (RFC 4303 §2.2.1).
    pub esn: bool,
    /// Inbound only: the anti-replay window in packets.
    pub replay_window: u32,
    pub df: DfPolicy,
    /// TTL (IPv4) or hop limit (IPv6) of the outer header.
    pub outer_ttl: u8,
    /// Tunnel mode, outbound: pad every inner packet to at least this many bytes (traffic flow
    /// confidentiality, RFC 4303 §2.4). Off by default.
    pub tfc_pad_to: Option<u16>,
}

impl SaParams {
    /// A tunnel-mode SA with the defaults a strongSwan user expects: no ESN, no NAT-T, a window
    /// of 1024, DF copied, TTL 64, no TFC padding.
    pub fn tunnel(spi: u32, suite: CipherSuite, endpoints: Endpoints) -> Self {
        Self {
            spi,
            suite,
            mode: Mode::Tunnel,
            endpoints,
            udp_encap: None,
            esn: false,
            replay_window: DEFAULT_REPLAY_WINDOW,
            df: DfPolicy::Copy,
            outer_ttl: 64,
            tfc_pad_to: None,
        }
    }
}

/// Why an SA could not be built: its keying material or its parameters are wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaError {
    Key(KeyLengthError),
    ReplayWindow(ReplayWindowSizeError),
}

impl std::fmt::Display for SaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SaError::Key(e) => e.fmt(f),
            SaError::ReplayWindow(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SaError {}

/// Where an outbound SA stands in its sequence-number space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceStatus {
    Fresh,
    /// Past the soft mark: ask the control plane for a rekey now, while packets still flow.
    RekeySoon,
    /// Used up: every further packet is dropped until a new SA replaces this one.
    Exhausted,
}

/// The sending side of an SA.
#[derive(Debug)]
pub struct OutboundSa {
    pub(crate) params: SaParams,
    pub(crate) key: EspKey,
    /// The sequence number the next packet gets; the first is 1 (RFC 4303 §3.3.3).
    pub(crate) next_sequence: u64,
    /// The last number was sent: `next_sequence` cannot move past it, since with ESN the
    /// last one is `u64::MAX`.
    pub(crate) exhausted: bool,
    pub(crate) counters: SaCounters,
    /// Tunnel mode's outer headers, prepared once.
    pub(crate) template: OuterTemplate,
    /// Known-answer tests replay published packets whose IVs are not sequence numbers.
    #[cfg(test)]
    pub(crate) iv_override: Option<[u8; super::cipher::IV_LEN]>,
}

impl OutboundSa {
    pub fn new(params: SaParams, keymat: &[u8]) -> Result<Self, SaError> {
        Ok(Self {
            key: EspKey::new(params.suite, keymat).map_err(SaError::Key)?,
            template: OuterTemplate::new(
                params.endpoints,
                params.udp_encap,
                params.outer_ttl,
                params.spi,
            ),
            params,
            next_sequence: 1,
            exhausted: false,
            counters: SaCounters::default(),
            #[cfg(test)]
            iv_override: None,
        })
    }

    pub fn params(&self) -> &SaParams {
        &self.params
    }

    pub fn counters(&self) -> &SaCounters {
        &self.counters
    }

    /// The highest sequence number a packet may carry: the counter must never wrap
    /// (RFC 4303 §3.3.3), and without ESN only 32 bits travel.
    pub fn last_sequence(&self) -> u64 {
        if self.params.esn {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        }
    }

    /// The sequence number the next packet will carry.
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// Moves the counter, for an SA taken over from another process that had already sent up to
    /// `next - 1`. The counter never goes back: IVs would repeat. Beyond the last number the
    /// SA is exhausted.
    pub fn advance_sequence_to(&mut self, next: u64) {
        if next > self.last_sequence() {
            self.exhausted = true;
        }
        self.next_sequence = self.next_sequence.max(next).min(self.last_sequence());
    }

    /// Hands out the next sequence number; never wraps (RFC 4303 §3.3.3).
    pub(crate) fn take_sequence(&mut self) -> Option<u64> {
        if self.exhausted {
            return None;
        }
        let sequence = self.next_sequence;
        if sequence == self.last_sequence() {
            self.exhausted = true;
        } else {
            self.next_sequence += 1;
        }
        Some(sequence)
    }

    /// Whether the SA needs rekeying because of its sequence numbers. The soft mark is at 15/16
    /// of the space, which leaves 2^28 packets of a 32-bit space for the rekey to finish.
    pub fn sequence_status(&self) -> SequenceStatus {
        let last = self.last_sequence();
        if self.exhausted {
            SequenceStatus::Exhausted
        } else if self.next_sequence > last - last / 16 {
            SequenceStatus::RekeySoon
        } else {
            SequenceStatus::Fresh
        }
    }
}

/// The receiving side of an SA.
#[derive(Debug)]
pub struct InboundSa {
    pub(crate) params: SaParams,
    pub(crate) key: EspKey,
    pub(crate) replay: ReplayWindow,
    pub(crate) counters: SaCounters,
}

impl InboundSa {
    pub fn new(params: SaParams, keymat: &[u8]) -> Result<Self, SaError> {
        Ok(Self {
            key: EspKey::new(params.suite, keymat).map_err(SaError::Key)?,
            replay: ReplayWindow::new(params.replay_window).map_err(SaError::ReplayWindow)?,
            params,
            counters: SaCounters::default(),
        })
    }

    pub fn params(&self) -> &SaParams {
        &self.params
    }

    pub fn counters(&self) -> &SaCounters {
        &self.counters
    }

    pub fn replay_window(&self) -> &ReplayWindow {
        &self.replay
    }

    /// Treats every sequence number up to `top` as received: for an SA taken over from another
    /// receiver whose window is lost (see [`ReplayWindow::resume_after`]).
    pub fn resume_after(&mut self, top: u64) {
        // The size was validated when the SA was built, so this cannot fail; keep the old window
        // if it somehow did.
        if let Ok(window) = ReplayWindow::resume_after(self.replay.size(), top) {
            self.replay = window;
        }
    }
}

/// Finds the inbound SA for an SPI. The SA table implements it; a single SA or a slice of SAs
/// does too, for tests and small tools.
pub trait InboundSaLookup {
    fn inbound_sa(&mut self, spi: u32) -> Option<&mut InboundSa>;
}

impl InboundSaLookup for InboundSa {
    fn inbound_sa(&mut self, spi: u32) -> Option<&mut InboundSa> {
        (self.params.spi == spi).then_some(self)
    }
}

impl InboundSaLookup for [InboundSa] {
    fn inbound_sa(&mut self, spi: u32) -> Option<&mut InboundSa> {
        self.iter_mut().find(|sa| sa.params.spi == spi)
    }
}

//! Why a packet was not forwarded, and the counters that record it.

/// Who a drop is blamed on: it decides whether an operator looks at the peer, the configuration
/// or this host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The packet as it arrived is wrong, forged or stale.
    Peer,
    /// This side's traffic or configuration does not fit the SA (too big, wrong family, …).
    Local,
    /// Not a fault: the protocol asks for these to be discarded (keepalives, dummy packets).
    None,
}

macro_rules! drop_reasons {
    ($($(#[doc = $doc:literal])* $variant:ident => $name:literal, $fault:ident;)*) => {
        /// Every reason the ESP core can drop a packet for. Each drop is counted by reason, per
        /// SA where the SA is known and in the caller's unattributed counters where it is not.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason {
            $($(#[doc = $doc])* $variant,)*
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];

            /// A stable snake_case name for logs, counters and JSON.
            pub const fn name(self) -> &'static str {
                match self { $(DropReason::$variant => $name,)* }
            }

            /// Who the drop is blamed on.
            pub const fn fault(self) -> Fault {
                match self { $(DropReason::$variant => Fault::$fault,)* }
            }
        }
    };
}

drop_reasons! {
    /// Shorter than the headers it claims to carry, or than the smallest valid ESP packet.
    Truncated => "truncated", Peer;
    /// The outer IP header is malformed: version, header length or total length.
    MalformedOuter => "malformed_outer", Peer;
    /// The outer IPv4 header checksum is wrong.
    OuterChecksum => "outer_checksum", Peer;
    /// An outer IP fragment: ESP is only processed on reassembled packets (RFC 4303 §3.4.1).
    OuterFragment => "outer_fragment", Peer;
    /// Neither ESP nor ESP in UDP on the NAT-T port.
    NotEsp => "not_esp", Peer;
    /// A NAT-T keepalive, a single 0xFF byte (RFC 3948 §2.3): consumed, not an error.
    NattKeepalive => "natt_keepalive", None;
    /// No inbound SA has this SPI.
    UnknownSpi => "unknown_spi", Peer;
    /// The sequence number was already received inside the replay window.
    Replayed => "replayed", Peer;
    /// The sequence number is behind the replay window.
    BehindWindow => "behind_window", Peer;
    /// Sequence number zero, which no sender uses.
    ZeroSequence => "zero_sequence", Peer;
    /// The AEAD integrity check failed: forged, corrupted or keyed differently.
    AuthenticationFailed => "authentication_failed", Peer;
    /// The encrypted part is not a multiple of 4 bytes (RFC 4303 §2.4).
    BadAlignment => "bad_alignment", Peer;
    /// Pad length beyond the payload, or padding bytes other than 1, 2, 3, … (RFC 4303 §2.4).
    BadPadding => "bad_padding", Peer;
    /// The next header does not fit the SA's mode (tunnel mode carries only IPv4 and IPv6).
    BadNextHeader => "bad_next_header", Peer;
    /// The decrypted inner packet is not a well-formed IP packet.
    MalformedInner => "malformed_inner", Peer;
    /// A dummy packet, next header 59 (RFC 4303 §2.6): discarded by design.
    DummyPacket => "dummy_packet", None;
    /// ECN congestion marked on a packet whose inner header is Not-ECT (RFC 6040 §4.2).
    EcnConflict => "ecn_conflict", Peer;
    /// Authentic, but the decrypted packet's addresses, protocol or ports are outside the
    /// traffic selectors of the Child SA it came on (RFC 4301 §5.2): the peer sent traffic it
    /// was not authorised for.
    PolicyMismatch => "policy_mismatch", Peer;
    /// The packet handed to encapsulation is not an IPv4 or IPv6 packet.
    MalformedPlaintext => "malformed_plaintext", Local;
    /// A transport-mode packet whose family differs from the SA's endpoints.
    FamilyMismatch => "family_mismatch", Local;
    /// The outbound sequence number space is used up; the SA must be rekeyed (RFC 4303 §3.3.3).
    SequenceExhausted => "sequence_exhausted", Local;
    /// The encapsulated packet would exceed 65535 bytes.
    TooBig => "too_big", Local;
    /// The frame has too little room in front of the packet for the outer headers.
    NoHeadroom => "no_headroom", Local;
    /// The frame has too little room after the packet for the padding, trailer and ICV.
    NoTailroom => "no_tailroom", Local;
    /// The AEAD refused to seal.
    SealFailed => "seal_failed", Local;
}

/// One counter per [`DropReason`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DropCounters([u64; DropReason::ALL.len()]);

impl DropCounters {
    pub fn count(&mut self, reason: DropReason) {
        self.0[reason as usize] += 1;
    }

    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason as usize]
    }

    /// All drops together.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The reasons with a non-zero count.
    pub fn nonzero(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|&reason| (reason, self.get(reason)))
            .filter(|&(_, count)| count > 0)
    }

    /// Adds `other` into `self` (merging per-worker counters on read).
    pub fn merge(&mut self, other: &DropCounters) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0.iter()) {
            *mine += theirs;
        }
    }
}

/// Traffic and drops of one SA in one direction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SaCounters {
    /// Packets that passed: encapsulated (outbound) or decapsulated and authenticated (inbound).
    pub packets: u64,
    /// Inner (plaintext) bytes of those packets.
    pub bytes: u64,
    pub drops: DropCounters,
}

/// What became of one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Processed: transmit the packet now in the buffer's window.
    Forward,
    /// An IKE message on the NAT-T port (non-ESP marker, RFC 3948 §2.2): for the control plane.
    ToControlPlane,
    /// Not to be sent on.
    Drop(DropReason),
}

impl Verdict {
    pub fn is_forward(self) -> bool {
        self == Verdict::Forward
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_counters_index_by_reason() {
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::ALL.len());
        let mut counters = DropCounters::default();
        for (i, &reason) in DropReason::ALL.iter().enumerate() {
            assert_eq!(reason as usize, i);
            counters.count(reason);
        }
        assert_eq!(counters.total(), DropReason::ALL.len() as u64);
    }
}

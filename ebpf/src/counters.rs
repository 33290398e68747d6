//! The per-CPU verdict counters the program keeps in its `xipsec_counts` map.

/// Index of each counter in the `xipsec_counts` per-CPU array. ABI shared with
/// `src/bpf/classifier.bpf.c` (`enum verdict_counter`): change both together.
pub(crate) mod index {
    pub const ESP_TO_XSK: u32 = 0;
    pub const ESP_IN_UDP_TO_XSK: u32 = 1;
    pub const POLICY_TO_XSK: u32 = 2;
    pub const IKE_PASS: u32 = 3;
    pub const KEEPALIVE_DROP: u32 = 4;
    pub const FRAGMENT_PASS: u32 = 5;
    pub const PASS_OTHER: u32 = 6;
    pub const MALFORMED_PASS: u32 = 7;
    pub const XSK_FALLBACK_PASS: u32 = 8;
    /// Number of counters (`CNT_MAX`).
    pub const COUNT: u32 = 9;
}

/// How many frames the classifier gave each verdict, summed over all CPUs.
///
/// Every frame increments exactly one of the verdict counters (all fields but
/// `xsk_fallback_pass`); a frame sent towards an AF_XDP socket whose queue had no socket in the
/// XSKMAP also increments `xsk_fallback_pass` (the kernel then got it, as `XDP_PASS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerdictCounters {
    /// ESP (IP protocol 50, unfragmented) sent to the queue's AF_XDP socket.
    pub esp_to_xsk: u64,
    /// ESP in UDP on the NAT-T port (RFC 3948, non-zero first word) sent to the AF_XDP socket.
    pub esp_in_udp_to_xsk: u64,
    /// Plaintext whose destination matched an outbound policy prefix, sent to the AF_XDP socket.
    pub policy_to_xsk: u64,
    /// IKE passed to the kernel: UDP to 500, or to the NAT-T port with the non-ESP marker.
    pub ike_pass: u64,
    /// NAT-keepalives (RFC 3948 section 2.3: a single 0xFF byte on the NAT-T port) dropped.
    pub keepalive_drop: u64,
    /// IPv4 or IPv6 fragments (to no policy destination) passed to the kernel for reassembly.
    pub fragment_pass: u64,
    /// Everything else passed to the kernel: ARP, other protocols, other ports.
    pub pass_other: u64,
    /// Truncated or invalid Ethernet, VLAN, IP, UDP or ESP headers passed to the kernel.
    pub malformed_pass: u64,
    /// Frames of the three `*_to_xsk` verdicts whose queue had no AF_XDP socket, so that
    /// `bpf_redirect_map` fell back to `XDP_PASS`. Counted in addition to their verdict.
    pub xsk_fallback_pass: u64,
}

impl VerdictCounters {
    pub(crate) fn from_indexed(value: impl Fn(u32) -> u64) -> Self {
        Self {
            esp_to_xsk: value(index::ESP_TO_XSK),
            esp_in_udp_to_xsk: value(index::ESP_IN_UDP_TO_XSK),
            policy_to_xsk: value(index::POLICY_TO_XSK),
            ike_pass: value(index::IKE_PASS),
            keepalive_drop: value(index::KEEPALIVE_DROP),
            fragment_pass: value(index::FRAGMENT_PASS),
            pass_other: value(index::PASS_OTHER),
            malformed_pass: value(index::MALFORMED_PASS),
            xsk_fallback_pass: value(index::XSK_FALLBACK_PASS),
        }
    }

    /// Frames classified: the sum of the verdict counters (`xsk_fallback_pass` excluded, as it
    /// counts a second time frames already counted under a `*_to_xsk` verdict).
    pub fn frames(&self) -> u64 {
        self.esp_to_xsk
            + self.esp_in_udp_to_xsk
            + self.policy_to_xsk
            + self.ike_pass
            + self.keepalive_drop
            + self.fragment_pass
            + self.pass_other
            + self.malformed_pass
    }

    /// The counts since `earlier` (a snapshot taken before), field by field, saturating at 0.
    #[must_use]
    pub fn since(&self, earlier: &VerdictCounters) -> VerdictCounters {
        Self {
            esp_to_xsk: self.esp_to_xsk.saturating_sub(earlier.esp_to_xsk),
            esp_in_udp_to_xsk: self
                .esp_in_udp_to_xsk
                .saturating_sub(earlier.esp_in_udp_to_xsk),
            policy_to_xsk: self.policy_to_xsk.saturating_sub(earlier.policy_to_xsk),
            ike_pass: self.ike_pass.saturating_sub(earlier.ike_pass),
            keepalive_drop: self.keepalive_drop.saturating_sub(earlier.keepalive_drop),
            fragment_pass: self.fragment_pass.saturating_sub(earlier.fragment_pass),
            pass_other: self.pass_other.saturating_sub(earlier.pass_other),
            malformed_pass: self.malformed_pass.saturating_sub(earlier.malformed_pass),
            xsk_fallback_pass: self
                .xsk_fallback_pass
                .saturating_sub(earlier.xsk_fallback_pass),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_index_maps_to_one_field() {
        let counters = VerdictCounters::from_indexed(|i| 1 << i);
        let fields = [
            counters.esp_to_xsk,
            counters.esp_in_udp_to_xsk,
            counters.policy_to_xsk,
            counters.ike_pass,
            counters.keepalive_drop,
            counters.fragment_pass,
            counters.pass_other,
            counters.malformed_pass,
            counters.xsk_fallback_pass,
        ];
        assert_eq!(fields.len(), index::COUNT as usize);
        let all = fields.iter().fold(0, |acc, f| acc | f);
        assert_eq!(
            all,
            (1 << index::COUNT) - 1,
            "indices overlap or leave gaps"
        );
    }

    #[test]
    fn the_c_enum_matches() {
        let source = include_str!("bpf/classifier.bpf.c");
        for (name, value) in [
            ("CNT_ESP_TO_XSK", index::ESP_TO_XSK),
            ("CNT_ESP_IN_UDP_TO_XSK", index::ESP_IN_UDP_TO_XSK),
            ("CNT_POLICY_TO_XSK", index::POLICY_TO_XSK),
            ("CNT_IKE_PASS", index::IKE_PASS),
            ("CNT_KEEPALIVE_DROP", index::KEEPALIVE_DROP),
            ("CNT_FRAGMENT_PASS", index::FRAGMENT_PASS),
            ("CNT_PASS_OTHER", index::PASS_OTHER),
            ("CNT_MALFORMED_PASS", index::MALFORMED_PASS),
            ("CNT_XSK_FALLBACK_PASS", index::XSK_FALLBACK_PASS),
            ("CNT_MAX", index::COUNT),
        ] {
            let line = format!("\t{name} = {value},");
            assert!(source.contains(&line), "{line:?} not in classifier.bpf.c");
        }
    }

    #[test]
    fn since_subtracts_field_by_field() {
        let before = VerdictCounters::from_indexed(u64::from);
        let after = VerdictCounters::from_indexed(|i| u64::from(i) * 3);
        let delta = after.since(&before);
        assert_eq!(delta, VerdictCounters::from_indexed(|i| u64::from(i) * 2));
        assert_eq!(before.since(&after), VerdictCounters::default());
        assert_eq!(delta.frames(), 2 * (0..8).sum::<u64>());
    }
}

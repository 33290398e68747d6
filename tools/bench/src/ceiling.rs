//! The best any ESP gateway could do against the plain forwarder on this I/O, measured in the
//! same run: the forwarder's CPU per packet plus the AEAD's and nothing else.
//!
//! An ESP gateway on the same path pays everything the forwarder pays (receive, transmit,
//! headers) and at least the AEAD over each packet, once per gateway the packet crosses. So
//! its packets per CPU-second are at most `1 / (forwarder + aead × hops)`, and its ratio to
//! the forwarder at most `forwarder / (forwarder + aead × hops)`. The AEAD is timed here, on
//! the harness's core, right after the runs: the same machine, the same minute, the same
//! cipher as the manual SAs. A goal above this ceiling cannot be met by any data plane on
//! this I/O, only by cheaper crypto or by I/O that costs more per packet.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use xipsec_dataplane::esp::{CipherSuite, EspKey, ICV_LEN, IV_LEN};

use crate::report::RunResult;
use crate::size::{PacketSize, IMIX_CYCLE};
use crate::topology::TopologyKind;

/// Seals timed per round; the median of [`ROUNDS`] rounds is taken.
const SEALS_PER_ROUND: u32 = 2000;
const ROUNDS: usize = 15;

/// The ceiling at one size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ceiling {
    /// As in the runs: `"64"`, `"imix"`.
    pub size: String,
    /// The forwarder's CPU nanoseconds per packet (all its gateways together).
    pub forwarder_ns_per_packet: f64,
    /// One AEAD seal over an ESP payload of this size, nanoseconds.
    pub aead_ns: f64,
    /// Gateways each packet crosses, each sealing or opening it once.
    pub crypto_per_packet: u32,
    /// `forwarder / (forwarder + aead × crypto_per_packet)`.
    pub ceiling: f64,
}

/// One ceiling per size of `sizes` that the forwarder ran at (its best rate's run); none
/// without a forwarder run or an ESP topology. Times the AEAD (about 0.1 s a size).
pub fn ceilings(
    runs: &[RunResult],
    sizes: &[PacketSize],
    topology: TopologyKind,
    suite: CipherSuite,
) -> Vec<Ceiling> {
    let crypto_per_packet = match topology {
        TopologyKind::E2e => 2,
        TopologyKind::Encrypt | TopologyKind::Decrypt => 1,
        TopologyKind::External => return Vec::new(),
    };
    let mut out: Vec<Ceiling> = Vec::new();
    for run in runs.iter().filter(|run| run.dut == "forwarder") {
        let Some(per_cpu_s) = run.dut_packets_per_cpu_s.filter(|&p| p > 0.0) else {
            continue;
        };
        let Some(&size) = sizes.iter().find(|size| size.to_string() == run.size) else {
            continue;
        };
        let forwarder_ns_per_packet = 1e9 / per_cpu_s;
        // Several rates at one size: the forwarder's cheapest packets set the ceiling.
        if let Some(known) = out.iter_mut().find(|c| c.size == run.size) {
            if forwarder_ns_per_packet < known.forwarder_ns_per_packet {
                known.forwarder_ns_per_packet = forwarder_ns_per_packet;
                known.ceiling = ratio(forwarder_ns_per_packet, known.aead_ns, crypto_per_packet);
            }
            continue;
        }
        let Some(aead_ns) = aead_ns(suite, size) else {
            continue;
        };
        out.push(Ceiling {
            size: run.size.clone(),
            forwarder_ns_per_packet,
            aead_ns,
            crypto_per_packet,
            ceiling: ratio(forwarder_ns_per_packet, aead_ns, crypto_per_packet),
        });
    }
    out
}

fn ratio(forwarder_ns: f64, aead_ns: f64, crypto_per_packet: u32) -> f64 {
    forwarder_ns / (forwarder_ns + aead_ns * f64::from(crypto_per_packet))
}

/// The mean cost of sealing the ESP payload of a packet of `size` (the inner packet, padding
/// to 4 with the two trailer bytes: what tunnel mode encrypts).
pub fn aead_ns(suite: CipherSuite, size: PacketSize) -> Option<f64> {
    let key = EspKey::new(suite, &vec![0x5A; suite.keymat_len()]).ok()?;
    let lengths: Vec<u16> = match size {
        PacketSize::Fixed(len) => vec![len],
        PacketSize::Imix => IMIX_CYCLE.to_vec(),
    };
    let mut total = 0.0;
    for &len in &lengths {
        total += seal_ns(&key, usize::from(len))?;
    }
    Some(total / lengths.len() as f64)
}

fn seal_ns(key: &EspKey, inner_len: usize) -> Option<f64> {
    let mut payload = vec![0xA5u8; (inner_len + 2).next_multiple_of(4)];
    let mut icv = [0u8; ICV_LEN];
    let aad = [0u8; 8];
    let mut rounds = Vec::with_capacity(ROUNDS);
    let mut iv = 0u64;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        for _ in 0..SEALS_PER_ROUND {
            iv += 1;
            let iv_bytes: [u8; IV_LEN] = iv.to_be_bytes();
            key.seal(&iv_bytes, &aad, &mut payload, &mut icv).ok()?;
        }
        rounds.push(started.elapsed().as_nanos() as f64 / f64::from(SEALS_PER_ROUND));
    }
    rounds.sort_by(f64::total_cmp);
    Some(rounds[rounds.len() / 2])
}

/// The lines printed under the table.
pub fn summary(ceilings: &[Ceiling], runs: &[RunResult]) -> String {
    let mut out = String::new();
    for c in ceilings {
        let best_esp = runs
            .iter()
            .filter(|run| run.size == c.size && run.dut != "forwarder")
            .filter_map(|run| Some((run.dut.as_str(), run.dut_packets_per_cpu_s?)))
            .map(|(dut, per_cpu_s)| {
                let achieved = 1e9 / per_cpu_s;
                format!(
                    ", {dut} {:.1}%",
                    100.0 * c.forwarder_ns_per_packet / achieved
                )
            })
            .collect::<String>();
        out.push_str(&format!(
            "{} B: forwarder {:.0} ns/packet, AEAD {:.0} ns × {} → ceiling {:.1}% of the forwarder{best_esp}\n",
            c.size,
            c.forwarder_ns_per_packet,
            c.aead_ns,
            c.crypto_per_packet,
            100.0 * c.ceiling,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_is_the_forwarder_share_of_forwarder_plus_crypto() {
        assert!((ratio(900.0, 100.0, 1) - 0.9).abs() < 1e-12);
        assert!((ratio(800.0, 100.0, 2) - 0.8).abs() < 1e-12);
    }

    #[test]
    fn every_suite_and_size_is_timed() {
        for suite in [
            CipherSuite::Aes128Gcm16,
            CipherSuite::Aes256Gcm16,
            CipherSuite::ChaCha20Poly1305,
        ] {
            for size in [PacketSize::Fixed(64), PacketSize::Imix] {
                let ns = aead_ns(suite, size).unwrap();
                assert!(ns.is_finite() && ns > 0.0, "{suite:?} {size}: {ns}");
            }
        }
    }
}

//! The data plane's counters for `xipsecctl counters`: a flat JSON object of name → value in a
//! file beside the lock file, replaced (write, then rename) about once a second. A file rather
//! than a socket: xipsecd reads it when asked, and neither process waits for the other.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use xipsec_dataplane::worker::{merge_stats, WorkerStats};
use xipsec_ebpf::VerdictCounters;

/// The latency percentiles reported, with their names.
const PERCENTILES: [(&str, f64); 4] = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)];

/// Builds the name → value map: totals, each worker's counters, latency percentiles of all
/// workers merged, and each interface's XDP verdicts.
pub fn collect(
    workers: &[WorkerStats],
    verdicts: &[(&str, VerdictCounters)],
) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    out.insert("dataplane.workers".to_owned(), workers.len() as u64);
    let merged = merge_stats(workers);
    for (name, value) in merged.counters.named() {
        out.insert(format!("dataplane.{name}"), value);
    }
    for (index, worker) in workers.iter().enumerate() {
        for (name, value) in worker.counters().named() {
            out.insert(format!("dataplane.worker{index}.{name}"), value);
        }
    }
    if !merged.latency.is_empty() {
        for (name, quantile) in PERCENTILES {
            out.insert(
                format!("dataplane.latency_ns.{name}"),
                merged.latency.value_at_quantile(quantile),
            );
        }
    }
    for (interface, v) in verdicts {
        for (name, value) in [
            ("esp_to_xsk", v.esp_to_xsk),
            ("esp_in_udp_to_xsk", v.esp_in_udp_to_xsk),
            ("policy_to_xsk", v.policy_to_xsk),
            ("ike_pass", v.ike_pass),
            ("keepalive_drop", v.keepalive_drop),
            ("fragment_pass", v.fragment_pass),
            ("pass_other", v.pass_other),
            ("malformed_pass", v.malformed_pass),
            ("xsk_fallback_pass", v.xsk_fallback_pass),
        ] {
            out.insert(format!("xdp.{interface}.{name}"), value);
        }
    }
    out
}

/// Replaces the file at `path` with `counters`, atomically for readers.
pub fn write(path: &Path, counters: &BTreeMap<String, u64>) -> io::Result<()> {
    let mut temporary = PathBuf::from(path);
    temporary.set_extension("stats.tmp");
    let text = serde_json::to_vec(counters).map_err(io::Error::other)?;
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_named_per_interface_and_workers_are_counted() {
        let mut verdicts = VerdictCounters::default();
        verdicts.esp_to_xsk = 7;
        let map = collect(&[], &[("wan", verdicts)]);
        assert_eq!(map["dataplane.workers"], 0);
        assert_eq!(map["xdp.wan.esp_to_xsk"], 7);
        assert_eq!(map["xdp.wan.ike_pass"], 0);
        assert!(
            !map.contains_key("dataplane.latency_ns.p50"),
            "no samples, no percentiles"
        );
    }
}

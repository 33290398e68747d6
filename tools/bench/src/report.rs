//! The results: one [`RunResult`] per device × size × rate, the [`Report`] written with
//! `--json` (schema in docs/bench.md, versioned by [`SCHEMA_VERSION`]), and the table printed at
//! the end.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::ceiling::Ceiling;
use crate::latency::Percentiles;
use crate::wire::Encapsulation;

/// Changes whenever a field is removed, renamed or changes meaning; adding a field does not.
pub const SCHEMA_VERSION: u32 = 1;

/// Every field of a [`Report`], in the order documented.
pub const REPORT_FIELDS: &[&str] = &[
    "schema_version",
    "tool",
    "version",
    "started_unix_s",
    "topology",
    "generator",
    "host",
    "duration_s",
    "runs",
    "ceilings",
    "errors",
];

/// Every field of a [`RunResult`], in the order documented.
pub const RUN_FIELDS: &[&str] = &[
    "dut",
    "size",
    "size_mean_bytes",
    "rate",
    "encapsulation",
    "duration_s",
    "sent",
    "received",
    "lost",
    "loss_ratio",
    "duplicates",
    "reordered",
    "foreign",
    "esp_dropped",
    "send_errors",
    "tx_pps",
    "rx_pps",
    "rx_inner_gbps",
    "rx_wire_gbps",
    "wire_bytes_per_packet",
    "latency",
    "dut_cpu_s",
    "dut_packets_per_cpu_s",
    "softirq_cpu_s",
    "generator_cpu_s",
    "sink_cpu_s",
];

/// Every field of a [`Ceiling`] (the `ceilings` objects).
pub const CEILING_FIELDS: &[&str] = &[
    "size",
    "forwarder_ns_per_packet",
    "aead_ns",
    "crypto_per_packet",
    "ceiling",
];

/// Every field of a [`Percentiles`] (the `latency` object).
pub const LATENCY_FIELDS: &[&str] = &[
    "min_us", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "mean_us",
];

/// The machine the run was on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Host {
    /// CPUs online.
    pub cpus: u32,
    /// `uname -r`.
    pub kernel: String,
}

/// The whole `--json` document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `"xipsec-bench"`.
    pub tool: String,
    /// The harness's version.
    pub version: String,
    /// Seconds since 1970 when the first run started.
    pub started_unix_s: u64,
    /// `"e2e"`, `"encrypt"`, `"decrypt"` or `"external"`.
    pub topology: String,
    /// How packets were made and received: `"af-xdp"`, `"af-packet"` or `"udp-socket"`.
    pub generator: String,
    /// Where.
    pub host: Host,
    /// The requested duration of each run, seconds.
    pub duration_s: f64,
    /// One per device × size × rate, in the order run.
    pub runs: Vec<RunResult>,
    /// With a forwarder run: per size, the best ratio to it any ESP gateway could reach
    /// (`ceiling.rs`). Absent from files written before it.
    #[serde(default)]
    pub ceilings: Vec<Ceiling>,
    /// What went wrong (a device that did not come up, an interrupted run); empty when all
    /// went well.
    pub errors: Vec<String>,
}

/// One run: one device under test, one size, one offered rate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// The device under test: `none`, `xipsec-ike`, `strongswan`.
    pub dut: String,
    /// `"64"` … `"1400"` or `"imix"`.
    pub size: String,
    /// Mean inner packet length, bytes.
    pub size_mean_bytes: f64,
    /// The offered rate as given: `"max"`, `"100kpps"`, `"1gbps"`.
    pub rate: String,
    /// How packets crossed between the gateways.
    pub encapsulation: Encapsulation,
    /// How long the generator sent, seconds (measured).
    pub duration_s: f64,
    /// Packets the generator handed to the kernel.
    pub sent: u64,
    /// Distinct packets that reached the sink.
    pub received: u64,
    /// `sent − received`.
    pub lost: u64,
    /// `lost / sent` (0 when nothing was sent).
    pub loss_ratio: f64,
    /// Packets that arrived more than once (extra copies).
    pub duplicates: u64,
    /// Packets that arrived after a later one.
    pub reordered: u64,
    /// Datagrams at the sink that were not this run's probes.
    pub foreign: u64,
    /// ESP packets the sink could not decrypt (0 when it decrypts nothing).
    pub esp_dropped: u64,
    /// Packets the generator's socket refused (ENOBUFS and the like); not in `sent`.
    pub send_errors: u64,
    /// `sent / duration_s`.
    pub tx_pps: f64,
    /// `received / duration_s`.
    pub rx_pps: f64,
    /// Received inner IP bytes × 8 / duration, Gbit/s.
    pub rx_inner_gbps: f64,
    /// Received packets × `wire_bytes_per_packet` × 8 / duration, Gbit/s.
    pub rx_wire_gbps: f64,
    /// Estimated bytes per packet between the gateways, Ethernet framing included.
    pub wire_bytes_per_packet: f64,
    /// One-way latency; `null` when nothing arrived.
    pub latency: Option<Percentiles>,
    /// CPU seconds (user + system) of the device's processes during the run; `null` when it
    /// has none (kernel forwarding).
    pub dut_cpu_s: Option<f64>,
    /// `received / dut_cpu_s`: packets per CPU-second of the device's processes; `null` when
    /// it has none or used no measurable time.
    pub dut_packets_per_cpu_s: Option<f64>,
    /// Softirq CPU seconds of the whole host during the run (forwarding, veth, TUN).
    pub softirq_cpu_s: f64,
    /// CPU seconds of the generator's thread.
    pub generator_cpu_s: f64,
    /// CPU seconds of the sink's thread.
    pub sink_cpu_s: f64,
}

/// Counts and times of one run, before the rates are derived.
#[derive(Clone, Debug)]
pub struct RunInput {
    /// See [`RunResult::dut`].
    pub dut: String,
    /// The size.
    pub size: crate::size::PacketSize,
    /// See [`RunResult::rate`].
    pub rate: String,
    /// How the packets crossed.
    pub encapsulation: Encapsulation,
    /// Generator's sending time, seconds.
    pub duration_s: f64,
    /// Generator: packets sent.
    pub sent: u64,
    /// Generator: packets refused.
    pub send_errors: u64,
    /// Sink: distinct probes.
    pub received: u64,
    /// Sink: inner IP bytes of the distinct probes.
    pub received_bytes: u64,
    /// Sink.
    pub duplicates: u64,
    /// Sink.
    pub reordered: u64,
    /// Sink.
    pub foreign: u64,
    /// Sink.
    pub esp_dropped: u64,
    /// Sink.
    pub latency: Option<Percentiles>,
    /// See [`RunResult::dut_cpu_s`].
    pub dut_cpu_s: Option<f64>,
    /// See [`RunResult::softirq_cpu_s`].
    pub softirq_cpu_s: f64,
    /// See [`RunResult::generator_cpu_s`].
    pub generator_cpu_s: f64,
    /// See [`RunResult::sink_cpu_s`].
    pub sink_cpu_s: f64,
}

impl RunResult {
    /// Derives the rates from the counts.
    pub fn from_input(input: RunInput) -> RunResult {
        let seconds = if input.duration_s > 0.0 {
            input.duration_s
        } else {
            f64::INFINITY
        };
        let lost = input.sent.saturating_sub(input.received);
        let wire = input.encapsulation.mean_wire_bytes(input.size);
        let rx_pps = input.received as f64 / seconds;
        RunResult {
            dut: input.dut,
            size: input.size.label(),
            size_mean_bytes: input.size.mean(),
            rate: input.rate,
            encapsulation: input.encapsulation,
            duration_s: input.duration_s,
            sent: input.sent,
            received: input.received,
            lost,
            loss_ratio: if input.sent == 0 {
                0.0
            } else {
                lost as f64 / input.sent as f64
            },
            duplicates: input.duplicates,
            reordered: input.reordered,
            foreign: input.foreign,
            esp_dropped: input.esp_dropped,
            send_errors: input.send_errors,
            tx_pps: input.sent as f64 / seconds,
            rx_pps,
            rx_inner_gbps: input.received_bytes as f64 * 8.0 / seconds / 1e9,
            rx_wire_gbps: rx_pps * wire * 8.0 / 1e9,
            wire_bytes_per_packet: wire,
            latency: input.latency,
            dut_cpu_s: input.dut_cpu_s.map(|s| (s * 100.0).round() / 100.0),
            dut_packets_per_cpu_s: input
                .dut_cpu_s
                .filter(|&s| s > 0.0)
                .map(|s| (input.received as f64 / s).round()),
            // /proc counts in ticks of 10 ms: more digits would be noise.
            softirq_cpu_s: (input.softirq_cpu_s * 100.0).round() / 100.0,
            // The threads' own clocks count nanoseconds.
            generator_cpu_s: (input.generator_cpu_s * 1e4).round() / 1e4,
            sink_cpu_s: (input.sink_cpu_s * 1e4).round() / 1e4,
        }
    }
}

/// The end-of-run table, one row per run.
pub fn table(runs: &[RunResult]) -> String {
    let header = [
        "dut",
        "size",
        "rate",
        "sent",
        "received",
        "loss%",
        "rx kpps",
        "inner Gb/s",
        "wire Gb/s",
        "p50 µs",
        "p90 µs",
        "p99 µs",
        "p99.9 µs",
        "dut cpu s",
        "dut kpkt/cpu-s",
        "softirq s",
        "gen cpu s",
        "sink cpu s",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for run in runs {
        let lat = |f: fn(&Percentiles) -> f64| {
            run.latency
                .as_ref()
                .map_or_else(|| "-".to_owned(), |p| format!("{:.1}", f(p)))
        };
        rows.push(vec![
            run.dut.clone(),
            run.size.clone(),
            run.rate.clone(),
            run.sent.to_string(),
            run.received.to_string(),
            format!("{:.2}", run.loss_ratio * 100.0),
            format!("{:.1}", run.rx_pps / 1e3),
            format!("{:.3}", run.rx_inner_gbps),
            format!("{:.3}", run.rx_wire_gbps),
            lat(|p| p.p50_us),
            lat(|p| p.p90_us),
            lat(|p| p.p99_us),
            lat(|p| p.p999_us),
            run.dut_cpu_s
                .map_or_else(|| "-".to_owned(), |s| format!("{s:.2}")),
            run.dut_packets_per_cpu_s
                .map_or_else(|| "-".to_owned(), |p| format!("{:.1}", p / 1e3)),
            format!("{:.2}", run.softirq_cpu_s),
            format!("{:.2}", run.generator_cpu_s),
            format!("{:.2}", run.sink_cpu_s),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|col| {
            rows.iter()
                .map(|row| row[col].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (col, cell) in row.iter().enumerate() {
            let pad = widths[col] - cell.chars().count();
            // Names left, numbers right.
            if col < 3 {
                let _ = write!(line, "{cell}{} ", " ".repeat(pad));
            } else {
                let _ = write!(line, "{}{cell} ", " ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::size::PacketSize;

    fn sample() -> RunResult {
        RunResult::from_input(RunInput {
            dut: "xipsec-ike".into(),
            size: PacketSize::Fixed(1000),
            rate: "max".into(),
            encapsulation: Encapsulation::Plain,
            duration_s: 2.0,
            sent: 1000,
            send_errors: 3,
            received: 900,
            received_bytes: 900_000,
            duplicates: 2,
            reordered: 5,
            foreign: 1,
            esp_dropped: 0,
            latency: Some(Percentiles {
                min_us: 1.0,
                p50_us: 2.0,
                p90_us: 3.0,
                p99_us: 4.0,
                p999_us: 5.0,
                max_us: 6.0,
                mean_us: 2.5,
            }),
            dut_cpu_s: Some(1.5),
            softirq_cpu_s: 0.25,
            generator_cpu_s: 1.25,
            sink_cpu_s: 0.5,
        })
    }

    #[test]
    fn rates_derive_from_counts_and_the_measured_time() {
        let run = sample();
        assert_eq!(run.lost, 100);
        assert!((run.loss_ratio - 0.1).abs() < 1e-12);
        assert!((run.tx_pps - 500.0).abs() < 1e-9);
        assert!((run.rx_pps - 450.0).abs() < 1e-9);
        // 900 000 bytes in 2 s = 3.6 Mbit/s.
        assert!((run.rx_inner_gbps - 0.0036).abs() < 1e-12);
        // 1000 + 38 bytes framing, 450 pps.
        assert!((run.rx_wire_gbps - 450.0 * 1038.0 * 8.0 / 1e9).abs() < 1e-12);
        // 900 packets over 1.5 s of the device's CPU.
        assert_eq!(run.dut_packets_per_cpu_s, Some(600.0));
        assert_eq!((run.generator_cpu_s, run.sink_cpu_s), (1.25, 0.5));
    }

    #[test]
    fn nothing_sent_is_no_loss_and_no_division_by_zero() {
        let run = RunResult::from_input(RunInput {
            dut: "none".into(),
            size: PacketSize::Imix,
            rate: "max".into(),
            encapsulation: Encapsulation::Plain,
            duration_s: 0.0,
            sent: 0,
            send_errors: 0,
            received: 0,
            received_bytes: 0,
            duplicates: 0,
            reordered: 0,
            foreign: 0,
            esp_dropped: 0,
            latency: None,
            dut_cpu_s: None,
            softirq_cpu_s: 0.0,
            generator_cpu_s: 0.0,
            sink_cpu_s: 0.0,
        });
        assert_eq!(run.dut_packets_per_cpu_s, None);
        assert_eq!((run.lost, run.loss_ratio, run.tx_pps), (0, 0.0, 0.0));
        assert!(run.rx_wire_gbps.is_finite());
    }

    fn keys(value: &serde_json::Value) -> Vec<String> {
        value.as_object().unwrap().keys().cloned().collect()
    }

    #[test]
    fn the_json_has_exactly_the_documented_fields_and_reads_back() {
        let report = Report {
            schema_version: SCHEMA_VERSION,
            tool: "xipsec-bench".into(),
            version: "0.1.0".into(),
            started_unix_s: 1_800_000_000,
            topology: "e2e".into(),
            generator: "udp-socket".into(),
            host: Host {
                cpus: 2,
                kernel: "6.1.0".into(),
            },
            duration_s: 3.0,
            runs: vec![sample()],
            ceilings: vec![Ceiling {
                size: "64".into(),
                forwarder_ns_per_packet: 1100.0,
                aead_ns: 90.0,
                crypto_per_packet: 2,
                ceiling: 1100.0 / 1280.0,
            }],
            errors: vec!["strongswan: needs root".into()],
        };
        let text = serde_json::to_string_pretty(&report).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let sorted = |list: &[&str]| {
            let mut list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
            list.sort();
            list
        };
        let mut top = keys(&value);
        top.sort();
        assert_eq!(top, sorted(REPORT_FIELDS));
        let mut run = keys(&value["runs"][0]);
        run.sort();
        assert_eq!(run, sorted(RUN_FIELDS));
        let mut latency = keys(&value["runs"][0]["latency"]);
        latency.sort();
        assert_eq!(latency, sorted(LATENCY_FIELDS));
        let mut ceiling = keys(&value["ceilings"][0]);
        ceiling.sort();
        assert_eq!(ceiling, sorted(CEILING_FIELDS));
        assert_eq!(value["schema_version"], 1);
        assert_eq!(value["runs"][0]["encapsulation"], "plain");
        assert_eq!(serde_json::from_str::<Report>(&text).unwrap(), report);

        let esp = serde_json::to_value(Encapsulation::EspTunnel { udp: true }).unwrap();
        assert_eq!(esp, serde_json::json!({"esp_tunnel": {"udp": true}}));
    }

    #[test]
    fn every_field_is_documented_in_docs_bench_md() {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/bench.md"))
                .expect("docs/bench.md");
        let fields = REPORT_FIELDS.iter().chain(RUN_FIELDS).chain(LATENCY_FIELDS);
        for field in fields.chain(CEILING_FIELDS) {
            assert!(
                doc.contains(&format!("`{field}`")),
                "docs/bench.md lacks `{field}`"
            );
        }
    }

    #[test]
    fn the_table_has_a_row_per_run_and_aligned_columns() {
        let mut other = sample();
        other.dut = "none".into();
        other.latency = None;
        other.dut_cpu_s = None;
        let text = table(&[sample(), other]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("dut "));
        assert!(lines[1].starts_with("xipsec-ike "));
        assert!(lines[1].contains("10.00"), "{}", lines[1]);
        assert!(lines[2].starts_with("none "));
        assert!(lines[2].contains(" - "), "{}", lines[2]);
        // Right-aligned numbers end in the same column.
        let end = |line: &str, word: &str| line.find(word).map(|at| at + word.len());
        assert_eq!(end(lines[0], "received"), end(lines[1], " 900"));
    }
}

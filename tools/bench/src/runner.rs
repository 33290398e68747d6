//! Runs the benchmark: per device under test a fresh e2e topology, the device started on its
//! gateways, a short warm-up that proves packets cross, then one measured run per size × rate.

use std::io::{IsTerminal, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use xipsec_testkit::netns::Topology;

use crate::clock::now_ns;
use crate::cpu;
use crate::dut::{self, Binaries, DutKind, RunningDut, WAN_A, WAN_B};
use crate::generator::{generate, GenConfig, Live};
use crate::net::udp_socket;
use crate::rate::Rate;
use crate::report::{Host, Report, RunInput, RunResult, SCHEMA_VERSION};
use crate::sink::{receive, Tally};
use crate::size::PacketSize;
use crate::StopFlag;

/// The sink's UDP port.
pub const SINK_PORT: u16 = 47001;

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Devices under test, in order.
    pub duts: Vec<DutKind>,
    /// Sizes, in order.
    pub sizes: Vec<PacketSize>,
    /// Offered rates, in order (more than one: a sweep).
    pub rates: Vec<Rate>,
    /// How long each run sends.
    pub duration: Duration,
    /// Where xipsecd and xipsecctl are.
    pub binaries: Binaries,
    /// Print the live progress line on stderr.
    pub progress: bool,
}

fn host() -> Host {
    Host {
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get() as u32),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default(),
    }
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic".to_owned())
}

/// Runs everything; `on_result` sees each run as it finishes. A device that does not come up is
/// reported in `errors` and the others still run; a stop request ends the benchmark early.
pub fn run_all(
    config: &BenchConfig,
    stop: &StopFlag,
    mut on_result: impl FnMut(&RunResult),
) -> Report {
    let started_unix_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut report = Report {
        schema_version: SCHEMA_VERSION,
        tool: "xipsec-bench".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started_unix_s,
        topology: "e2e".to_owned(),
        generator: "udp-socket".to_owned(),
        host: host(),
        duration_s: config.duration.as_secs_f64(),
        runs: Vec::new(),
        errors: Vec::new(),
    };
    let mut run_id = (now_ns() as u32) ^ (std::process::id() << 12);
    for &kind in &config.duts {
        if stop.is_set() {
            report.errors.push("interrupted".to_owned());
            break;
        }
        // The test kit's namespace helpers panic when `ip` fails; what they built is dropped
        // (deleted) while unwinding, and the panic becomes this device's error.
        let topology =
            match catch_unwind(|| Topology::new(&format!("{WAN_A}/24"), &format!("{WAN_B}/24"))) {
                Ok(topology) => topology,
                Err(panic) => {
                    report.errors.push(format!(
                        "{kind}: building the namespaces: {}",
                        panic_text(panic)
                    ));
                    continue;
                }
            };
        let started = catch_unwind(AssertUnwindSafe(|| {
            dut::start(kind, &topology, &config.binaries, stop)
        }))
        .unwrap_or_else(|panic| Err(panic_text(panic)));
        let mut running = match started {
            Ok(running) => running,
            Err(e) => {
                report.errors.push(format!("{kind}: {e}"));
                continue;
            }
        };
        // The warm-up fills neighbour caches along the path and proves the path works.
        run_id = run_id.wrapping_add(1);
        let warm = GenConfig {
            size: PacketSize::Fixed(64),
            pps: Some(1000.0),
            duration: Duration::from_millis(300),
            run: run_id,
        };
        match run_once(&topology, &running, &warm, None, stop) {
            Ok(outcome) if outcome.tally.seq.unique() > 0 => {}
            Ok(_) => {
                report
                    .errors
                    .push(format!("{kind}: no packet crossed during the warm-up"));
                continue;
            }
            Err(e) => {
                report.errors.push(format!("{kind}: warm-up: {e}"));
                continue;
            }
        }
        'sizes: for &size in &config.sizes {
            for &rate in &config.rates {
                if stop.is_set() {
                    report.errors.push("interrupted".to_owned());
                    break 'sizes;
                }
                run_id = run_id.wrapping_add(1);
                let gen = GenConfig {
                    size,
                    pps: rate.pps_for(size),
                    duration: config.duration,
                    run: run_id,
                };
                let label = format!("{kind} {size} {rate}");
                let progress = config.progress.then_some(label.as_str());
                let outcome = match run_once(&topology, &running, &gen, progress, stop) {
                    Ok(outcome) => outcome,
                    Err(e) => {
                        report.errors.push(format!("{label}: {e}"));
                        continue;
                    }
                };
                if let Err(e) = running.check_alive() {
                    report.errors.push(format!("{label}: {e}"));
                }
                let result = RunResult::from_input(RunInput {
                    dut: kind.name().to_owned(),
                    size,
                    rate: rate.to_string(),
                    encapsulation: running.encapsulation,
                    duration_s: outcome.gen.elapsed_ns as f64 / 1e9,
                    sent: outcome.gen.sent,
                    send_errors: outcome.gen.send_errors,
                    received: outcome.tally.seq.unique(),
                    received_bytes: outcome.tally.bytes,
                    duplicates: outcome.tally.seq.duplicates(),
                    reordered: outcome.tally.seq.reordered(),
                    foreign: outcome.tally.foreign,
                    latency: outcome.tally.latency.percentiles(),
                    dut_cpu_s: running.has_processes().then_some(outcome.dut_cpu_s),
                    softirq_cpu_s: outcome.softirq_cpu_s,
                });
                on_result(&result);
                report.runs.push(result);
            }
        }
        // The device stops before its namespaces go.
        drop(running);
        drop(topology);
    }
    report
}

/// What one run produced.
#[derive(Debug)]
pub struct Outcome {
    /// The generator's side.
    pub gen: crate::generator::GenResult,
    /// The sink's side.
    pub tally: Tally,
    /// CPU seconds of the device's processes.
    pub dut_cpu_s: f64,
    /// Softirq seconds of the host.
    pub softirq_cpu_s: f64,
}

/// One run: the sink on host B, the generator on host A, until the generator is done and the
/// packets in flight have arrived (or stopped arriving).
pub fn run_once(
    topology: &Topology,
    dut: &RunningDut,
    gen: &GenConfig,
    progress: Option<&str>,
    stop: &StopFlag,
) -> Result<Outcome, String> {
    let sink_addr = SocketAddrV4::new(Ipv4Addr::new(10, 2, 0, 2), SINK_PORT);
    let source = SocketAddrV4::new(Ipv4Addr::new(10, 1, 0, 2), 0);
    let sink_fd = topology
        .host_b
        .run(|| udp_socket(sink_addr, None, Duration::from_millis(50)))
        .map_err(|e| format!("the sink's socket: {e}"))?;
    let gen_fd = topology
        .host_a
        .run(|| udp_socket(source, Some(sink_addr), Duration::from_millis(100)))
        .map_err(|e| format!("the generator's socket: {e}"))?;
    let live = Live::default();
    let gen_stop = AtomicBool::new(false);
    let sink_stop = AtomicBool::new(false);
    let pids = dut.pids();
    let cpu_before = cpu::process_seconds(&pids);
    let softirq_before = cpu::softirq_seconds();
    std::thread::scope(|scope| {
        let sink = scope.spawn(|| {
            let mut tally = Tally::new(gen.run);
            receive(&sink_fd, &mut tally, &live, &sink_stop).map(|()| tally)
        });
        let generator = scope.spawn(|| generate(&gen_fd, gen, &live, &gen_stop));
        let started = Instant::now();
        let mut line = ProgressLine::new(progress);
        while !generator.is_finished() {
            std::thread::sleep(Duration::from_millis(50));
            if stop.is_set() {
                gen_stop.store(true, Ordering::Relaxed);
            }
            line.maybe_print(started.elapsed(), gen.duration, &live);
        }
        let gen_result = generator
            .join()
            .map_err(|p| format!("the generator: {}", panic_text(p)))?;
        // Packets in flight: wait until the count stops moving (at most a second).
        let drain_start = Instant::now();
        loop {
            let before = live.received.load(Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(100));
            let after = live.received.load(Ordering::Relaxed);
            if after == before || drain_start.elapsed() > Duration::from_secs(1) {
                break;
            }
        }
        line.finish(started.elapsed(), gen.duration, &live);
        let dut_cpu_s = cpu::process_seconds(&pids) - cpu_before;
        let softirq_cpu_s = cpu::softirq_seconds() - softirq_before;
        sink_stop.store(true, Ordering::Relaxed);
        let tally = sink
            .join()
            .map_err(|p| format!("the sink: {}", panic_text(p)))?
            .map_err(|e| format!("the sink: {e}"))?;
        Ok(Outcome {
            gen: gen_result,
            tally,
            dut_cpu_s: dut_cpu_s.max(0.0),
            softirq_cpu_s: softirq_cpu_s.max(0.0),
        })
    })
}

/// The live progress line: once a second, rewritten in place on a terminal, one line per second
/// otherwise.
struct ProgressLine<'a> {
    label: Option<&'a str>,
    next: Duration,
    last_received: u64,
    last_at: Duration,
    tty: bool,
}

impl<'a> ProgressLine<'a> {
    fn new(label: Option<&'a str>) -> ProgressLine<'a> {
        ProgressLine {
            label,
            next: Duration::from_secs(1),
            last_received: 0,
            last_at: Duration::ZERO,
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn maybe_print(&mut self, elapsed: Duration, total: Duration, live: &Live) {
        if self.label.is_some() && elapsed >= self.next {
            self.next += Duration::from_secs(1);
            self.print(elapsed, total, live, false);
        }
    }

    fn finish(&mut self, elapsed: Duration, total: Duration, live: &Live) {
        if self.label.is_some() && (self.tty || elapsed < Duration::from_secs(1)) {
            self.print(elapsed, total, live, true);
        }
    }

    fn print(&mut self, elapsed: Duration, total: Duration, live: &Live, last: bool) {
        let Some(label) = self.label else { return };
        let sent = live.sent.load(Ordering::Relaxed);
        let received = live.received.load(Ordering::Relaxed);
        let window = (elapsed - self.last_at).as_secs_f64().max(1e-3);
        let kpps = (received - self.last_received) as f64 / window / 1e3;
        self.last_received = received;
        self.last_at = elapsed;
        let loss = if sent == 0 {
            0.0
        } else {
            100.0 * sent.saturating_sub(received) as f64 / sent as f64
        };
        let text = format!(
            "[{label}] {:.0}/{:.0}s  sent {sent}  received {received}  rx {kpps:.1} kpps  loss {loss:.2}%",
            elapsed.as_secs_f64().min(total.as_secs_f64()),
            total.as_secs_f64()
        );
        let mut err = std::io::stderr().lock();
        let _ = if self.tty {
            write!(err, "\r\x1b[2K{text}{}", if last { "\n" } else { "" })
        } else {
            writeln!(err, "{text}")
        };
        let _ = err.flush();
    }
}

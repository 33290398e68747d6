//! Runs the benchmark: per device under test a fresh topology (or the real interfaces), the
//! device started on its gateways, a short warm-up that proves packets cross, then one measured
//! run per size × rate.

use std::io::{IsTerminal, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use xipsec_testkit::netns::Netns;

use crate::ceiling;
use crate::cli::External;
use crate::clock::now_ns;
use crate::cpu;
use crate::dut::{self, Binaries, DutKind, RunningDut};
use crate::generator::{generate_with, GenConfig, GenResult, Live};
use crate::mac;
use crate::manual::SUITE;
use crate::plan::{self, in_place, open_rx, open_tx, Ends, IoKind, Sides};
use crate::rate::Rate;
use crate::report::{Host, Report, RunInput, RunResult, SCHEMA_VERSION};
use crate::sink::{receive_with, Tally};
use crate::size::PacketSize;
use crate::topology::{Topology, TopologyKind};
use crate::wire::Encapsulation;
use crate::xsk_io;
use crate::StopFlag;

pub use crate::plan::SINK_PORT;

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// The topology.
    pub topology: TopologyKind,
    /// How the generator and the sink move packets.
    pub io: IoKind,
    /// The real interfaces, for [`TopologyKind::External`].
    pub external: Option<External>,
    /// Devices under test, in order.
    pub duts: Vec<DutKind>,
    /// Sizes, in order.
    pub sizes: Vec<PacketSize>,
    /// Offered rates, in order (more than one: a sweep).
    pub rates: Vec<Rate>,
    /// How long each run sends.
    pub duration: Duration,
    /// Where xipsecd and xipsecctl are, and how the devices are set up.
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

/// The generator's and the sink's sides of a run and the namespaces they run in (`None`: the
/// current one).
#[derive(Debug)]
pub struct Placed<'a> {
    /// Which sockets.
    pub sides: Sides,
    /// Where the generator runs.
    pub tx_netns: Option<&'a Netns>,
    /// Where the sink runs.
    pub rx_netns: Option<&'a Netns>,
    /// The sequence number the generator's next sealed probe gets: the gateway's replay
    /// window remembers every run's, the warm-up's too.
    pub esp_next: AtomicU64,
}

/// The generator's and the sink's addresses on real interfaces: MAC addresses from the
/// interface and the neighbour table (or `--tx-dst-mac`), queues from sysfs.
pub fn external_sides(io: IoKind, external: &External) -> Result<Sides, String> {
    let tx_mac = mac::link_mac(None, &external.tx_iface)?;
    mac::link_mac(None, &external.rx_iface)?;
    let tx_next_hop = match external.tx_dst_mac {
        Some(mac) => mac,
        None => mac::next_hop_mac(&external.tx_iface, external.dst)?,
    };
    let ends = Ends {
        tx_interface: &external.tx_iface,
        tx_mac,
        tx_next_hop,
        src: external.src,
        rx_interface: &external.rx_iface,
        dst: external.dst,
        rx_queues: xsk_io::rx_queues(&external.rx_iface),
    };
    Ok(plan::sides(io, TopologyKind::External, &ends, false))
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
        topology: config.topology.name().to_owned(),
        generator: config.io.generator().to_owned(),
        host: host(),
        duration_s: config.duration.as_secs_f64(),
        runs: Vec::new(),
        ceilings: Vec::new(),
        errors: Vec::new(),
    };
    let mut run_id = (now_ns() as u32) ^ (std::process::id() << 12);
    for &kind in &config.duts {
        if stop.is_set() {
            report.errors.push("interrupted".to_owned());
            break;
        }
        // The namespace helpers panic when `ip` fails; what they built is dropped (deleted)
        // while unwinding, and the panic becomes this device's error.
        let topology = match config.topology {
            TopologyKind::External => None,
            kind_of_topology => match catch_unwind(|| Topology::build(kind_of_topology)) {
                Ok(topology) => Some(topology),
                Err(panic) => {
                    report.errors.push(format!(
                        "{kind}: building the namespaces: {}",
                        panic_text(panic)
                    ));
                    continue;
                }
            },
        };
        let gateways = topology
            .as_ref()
            .map(Topology::gateways)
            .unwrap_or_default();
        let started = catch_unwind(AssertUnwindSafe(|| {
            dut::start(kind, &gateways, &config.binaries, stop)
        }))
        .unwrap_or_else(|panic| Err(panic_text(panic)));
        let mut running = match started {
            Ok(running) => running,
            Err(e) => {
                report.errors.push(format!("{kind}: {e}"));
                continue;
            }
        };
        let encrypts = running.encapsulation != Encapsulation::Plain;
        let placed = match (&topology, &config.external) {
            (Some(topology), _) => Placed {
                sides: plan::sides_in(config.io, topology, encrypts),
                tx_netns: Some(topology.generator().netns),
                rx_netns: Some(topology.sink().netns),
                esp_next: AtomicU64::new(1),
            },
            (None, Some(external)) => match external_sides(config.io, external) {
                Ok(sides) => Placed {
                    sides,
                    tx_netns: None,
                    rx_netns: None,
                    esp_next: AtomicU64::new(1),
                },
                Err(e) => {
                    report.errors.push(format!("{kind}: {e}"));
                    continue;
                }
            },
            (None, None) => {
                report
                    .errors
                    .push(format!("{kind}: no topology and no interfaces"));
                continue;
            }
        };
        // The warm-up proves the path works before anything is measured.
        run_id = run_id.wrapping_add(1);
        let warm = GenConfig {
            size: PacketSize::Fixed(64),
            pps: Some(1000.0),
            duration: Duration::from_millis(300),
            run: run_id,
        };
        match run_once(&placed, &running, &warm, None, stop) {
            Ok(outcome) if outcome.tally.seq.unique() > 0 => {}
            Ok(outcome) => {
                report.errors.push(format!(
                    "{kind}: no packet crossed during the warm-up ({} sent{})",
                    outcome.gen.sent,
                    if outcome.tally.esp_dropped > 0 {
                        format!(
                            ", {} ESP packets the sink could not decrypt",
                            outcome.tally.esp_dropped
                        )
                    } else {
                        String::new()
                    }
                ));
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
                let outcome = match run_once(&placed, &running, &gen, progress, stop) {
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
                    esp_dropped: outcome.tally.esp_dropped,
                    latency: outcome.tally.latency.percentiles(),
                    dut_cpu_s: running.has_processes().then_some(outcome.dut_cpu_s),
                    softirq_cpu_s: outcome.softirq_cpu_s,
                    generator_cpu_s: outcome.gen.cpu_ns as f64 / 1e9,
                    sink_cpu_s: outcome.tally.cpu_ns as f64 / 1e9,
                });
                on_result(&result);
                report.runs.push(result);
            }
        }
        // The device stops before its namespaces go.
        drop(running);
        drop(topology);
    }
    report.ceilings = ceiling::ceilings(&report.runs, &config.sizes, config.topology, SUITE);
    report
}

/// What one run produced.
#[derive(Debug)]
pub struct Outcome {
    /// The generator's side.
    pub gen: GenResult,
    /// The sink's side.
    pub tally: Tally,
    /// CPU seconds of the device's processes.
    pub dut_cpu_s: f64,
    /// Softirq seconds of the host.
    pub softirq_cpu_s: f64,
}

/// After the generator stops: the drain ends once nothing arrived for this long…
const DRAIN_QUIET: Duration = Duration::from_millis(300);
/// …or after this long in any case.
const DRAIN_MAX: Duration = Duration::from_secs(5);

const SINK_PENDING: u8 = 0;
const SINK_READY: u8 = 1;
const SINK_FAILED: u8 = 2;

/// How long the sink may take to load its program and bind its sockets.
const SINK_SETUP: Duration = Duration::from_secs(10);

/// One run: the sink, once it is ready, then the generator, until the generator is done and
/// the packets in flight have arrived (or stopped arriving).
pub fn run_once(
    placed: &Placed<'_>,
    dut: &RunningDut,
    gen: &GenConfig,
    progress: Option<&str>,
    stop: &StopFlag,
) -> Result<Outcome, String> {
    let live = Live::default();
    let gen_stop = AtomicBool::new(false);
    let sink_stop = AtomicBool::new(false);
    let sink_state = AtomicU8::new(SINK_PENDING);
    let pids = dut.pids();
    std::thread::scope(|scope| {
        let sink = scope.spawn(|| {
            in_place(placed.rx_netns, || -> Result<Tally, String> {
                let mut rx = match open_rx(&placed.sides.rx) {
                    Ok(rx) => rx,
                    Err(e) => {
                        sink_state.store(SINK_FAILED, Ordering::Release);
                        return Err(e);
                    }
                };
                sink_state.store(SINK_READY, Ordering::Release);
                let mut tally = Tally::new(gen.run);
                receive_with(&mut *rx, &mut tally, &live, &sink_stop)
                    .map_err(|e| format!("the sink: {e}"))?;
                Ok(tally)
            })
        });
        let join_sink = |sink: std::thread::ScopedJoinHandle<'_, Result<Tally, String>>| {
            sink.join()
                .map_err(|p| format!("the sink: {}", panic_text(p)))?
        };
        let setup = Instant::now();
        loop {
            match sink_state.load(Ordering::Acquire) {
                SINK_READY => break,
                SINK_FAILED => return join_sink(sink).and(Err("the sink failed".to_owned())),
                _ if sink.is_finished() => {
                    return join_sink(sink).and(Err("the sink ended early".to_owned()))
                }
                _ if setup.elapsed() > SINK_SETUP => {
                    sink_stop.store(true, Ordering::Relaxed);
                    let _ = join_sink(sink);
                    return Err(format!("the sink was not ready within {SINK_SETUP:?}"));
                }
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        let cpu_before = cpu::process_seconds(&pids);
        let softirq_before = cpu::softirq_seconds();
        let generator = scope.spawn(|| {
            in_place(placed.tx_netns, || -> Result<GenResult, String> {
                let mut tx = open_tx(
                    &placed.sides.tx,
                    gen.size,
                    placed.esp_next.load(Ordering::Relaxed),
                )?;
                let result = generate_with(&mut *tx, gen, &live, &gen_stop);
                if let Some(next) = tx.esp_next_sequence() {
                    placed.esp_next.store(next, Ordering::Relaxed);
                }
                Ok(result)
            })
        });
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
            .map_err(|p| format!("the generator: {}", panic_text(p)))
            .and_then(|result| result);
        let gen_result = match gen_result {
            Ok(result) => result,
            Err(e) => {
                sink_stop.store(true, Ordering::Relaxed);
                let _ = join_sink(sink);
                return Err(e);
            }
        };
        // Packets in flight: wait until none has arrived for a while. A device that queues
        // deeply under overload (strongSwan's kernel-libipsec at `max`: seconds) delivers
        // long after the generator stopped, and may not have delivered the first yet.
        let drain_start = Instant::now();
        loop {
            let before = live.received.load(Ordering::Relaxed);
            std::thread::sleep(DRAIN_QUIET);
            let after = live.received.load(Ordering::Relaxed);
            let quiet = after == before && after > 0;
            if quiet || drain_start.elapsed() > DRAIN_MAX {
                break;
            }
        }
        line.finish(started.elapsed(), gen.duration, &live);
        let dut_cpu_s = cpu::process_seconds(&pids) - cpu_before;
        let softirq_cpu_s = cpu::softirq_seconds() - softirq_before;
        sink_stop.store(true, Ordering::Relaxed);
        let tally = join_sink(sink)?;
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

//! `xipsec-dataplane`: the AF_XDP data plane as a process of its own.
//!
//! It attaches the XDP classifier to the gateway interfaces, binds one AF_XDP socket per
//! (interface, worker), runs one pinned worker per core over the shared SA table, mirrors the
//! kernel's routes and neighbours for the next hops, and keeps the XDP program's policy tables
//! equal to the SPD. It only reads the table the control plane (`xipsecd`) writes, so either
//! process can restart while the other runs: installed SAs keep forwarding without `xipsecd`.
//!
//! `xipsecd` starts it when `[dataplane] backend` is `afxdp` (or `auto` with interfaces) and
//! none runs yet; it can also run under a service manager of its own.
//!
//! The binary itself is built by the control crate (`control/src/bin/xipsec-dataplane.rs`
//! calls [`main`]), so that all three programs — xipsecd, xipsecctl, xipsec-dataplane — come
//! from one package and its tests can run them together.

mod interfaces;
mod policies;
mod reassembled;
mod signals;
mod stats_file;
mod workers;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use tracing::{error, info, warn};
use xipsec_dataplane::process::{stats_path, PidLock};
use xipsec_dataplane::table::TableReader;
use xipsec_ebpf::AttachMode;

use interfaces::Interface;
use policies::PolicySync;
use reassembled::Reassembled;

/// The xipsec AF_XDP data plane.
#[derive(Debug, Parser)]
#[command(name = "xipsec-dataplane", version, about, long_about = None, after_help = "\
Exit status: 0 a clean stop (SIGTERM, SIGINT); 2 usage error; 3 a local failure (an \
interface, the SA table, the XDP program, another data plane holding the lock).")]
struct Args {
    /// The SA table xipsecd writes.
    #[arg(long, value_name = "FILE")]
    table: PathBuf,

    /// A gateway interface (repeatable, or comma-separated).
    #[arg(
        short = 'i',
        long = "interface",
        value_name = "IF",
        required = true,
        value_delimiter = ','
    )]
    interfaces: Vec<String>,

    /// Workers, one per core by default; never more than an interface has receive queues.
    #[arg(short = 'w', long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    workers: Option<u32>,

    /// UDP port of ESP in UDP (RFC 3948).
    #[arg(short = 'p', long, default_value_t = 4500, value_parser = clap::value_parser!(u16).range(1..))]
    natt_port: u16,

    /// The lock file that says a data plane runs (its PID once it forwards).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/run/xipsec/xipsec-dataplane.pid"
    )]
    pid_file: PathBuf,

    /// How the XDP program attaches: native (driver) mode, generic (skb) mode, or native where
    /// the driver has it.
    #[arg(long, value_enum, default_value_t = XdpMode::Auto)]
    xdp_mode: XdpMode,

    /// Ask for zero-copy AF_XDP (the NIC's driver must offer it; falls back to copy mode).
    /// Not tried on these machines: veth has copy mode only.
    #[arg(long)]
    zero_copy: bool,

    /// Frames per batch.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=256))]
    batch: u32,

    /// More verbose logging (repeatable).
    #[arg(short = 'v', action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum XdpMode {
    Auto,
    Native,
    Generic,
}

impl From<XdpMode> for AttachMode {
    fn from(mode: XdpMode) -> AttachMode {
        match mode {
            XdpMode::Auto => AttachMode::Auto,
            XdpMode::Native => AttachMode::Native,
            XdpMode::Generic => AttachMode::Generic,
        }
    }
}

/// How long a fresh data plane waits for the control plane to create the table.
const TABLE_WAIT: Duration = Duration::from_secs(5);
/// How often the main thread looks at the SPD (the policy tables follow it) and at signals.
const TICK: Duration = Duration::from_millis(20);
/// How often the counters file is replaced.
const STATS_INTERVAL: Duration = Duration::from_secs(1);
/// How often the workers' totals are logged.
const LOG_INTERVAL: Duration = Duration::from_secs(60);

/// The program: parses the command line, runs until SIGTERM or SIGINT.
pub fn main() -> ExitCode {
    let args = Args::parse();
    let level = match args.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            error!("{message}");
            ExitCode::from(3)
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    // Before any thread exists, so that every thread inherits the mask and only the main
    // thread's sigtimedwait takes them.
    let signals = signals::Signals::block().map_err(|e| format!("signals: {e}"))?;
    if let Some(dir) = args.pid_file.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut lock = PidLock::acquire(&args.pid_file)
        .map_err(|e| format!("{}: {e}", args.pid_file.display()))?;
    let table = open_table(args)?;
    let mut interfaces = Vec::new();
    for name in &args.interfaces {
        interfaces.push(Interface::attach(
            name,
            args.natt_port,
            args.xdp_mode.into(),
            policy_prefixes(&table),
        )?);
    }
    let count = worker_count(args);
    let stop = Arc::new(AtomicBool::new(false));
    let running = workers::start(
        &workers::Setup {
            table: &args.table,
            natt_port: args.natt_port,
            batch: args.batch as usize,
            count,
            zero_copy: args.zero_copy,
        },
        &mut interfaces,
        &stop,
    )?;
    // Without it only ESP that arrives in outer fragments is lost: not a reason to stop.
    let reassembled = Reassembled::start(
        &args.table,
        &args.pid_file,
        Arc::clone(running.handoff()),
        count as usize,
        Arc::clone(&stop),
    )
    .inspect_err(|e| warn!("ESP in outer fragments will be dropped: {e}"))
    .ok();
    let mut sync = PolicySync::default();
    let mut classifiers: Vec<_> = interfaces.iter_mut().map(|i| &mut i.classifier).collect();
    sync_policies(&mut sync, &table, &mut classifiers);
    lock.ready()
        .map_err(|e| format!("{}: {e}", args.pid_file.display()))?;
    info!(workers = count, interfaces = ?args.interfaces, table = %args.table.display(),
          "xipsec-dataplane forwarding");
    let stats_path = stats_path(&args.pid_file);
    let mut last_log = Instant::now();
    let mut last_stats = Instant::now();
    let outcome = loop {
        if let Some(signal) = signals.wait(TICK) {
            info!(signal, "stopping");
            break Ok(());
        }
        sync_policies(&mut sync, &table, &mut classifiers);
        if let Some(index) = running.finished() {
            break Err(format!("worker {index} stopped unexpectedly"));
        }
        if last_stats.elapsed() >= STATS_INTERVAL {
            last_stats = Instant::now();
            let verdicts: Vec<_> = args
                .interfaces
                .iter()
                .zip(classifiers.iter())
                .filter_map(|(name, c)| Some((name.as_str(), c.counters().ok()?)))
                .collect();
            let mut counters = stats_file::collect(running.per_worker(), &verdicts);
            counters.insert("xdp.policies_refused".to_owned(), sync.refused() as u64);
            let reassembled = reassembled.iter().flat_map(|r| r.counters().named());
            for (name, value) in reassembled {
                counters.insert(name.to_owned(), value);
            }
            if let Err(e) = stats_file::write(&stats_path, &counters) {
                warn!(path = %stats_path.display(), "cannot write the counters: {e}");
            }
        }
        if last_log.elapsed() >= LOG_INTERVAL {
            last_log = Instant::now();
            running.log_counters();
        }
    };
    let _ = std::fs::remove_file(&stats_path);
    stop.store(true, Ordering::Relaxed);
    if let Some(reassembled) = reassembled {
        reassembled.join();
    }
    running.join();
    drop(classifiers);
    for interface in &mut interfaces {
        interface.detach();
    }
    outcome
}

/// Room in the XDP policy tables: a policy per SA slot the table has (the SPD holds at most
/// that many; each usually one prefix), and never less than the classifier's default. The
/// tables allocate per entry, so the bound costs nothing until used.
fn policy_prefixes(table: &TableReader) -> u32 {
    table
        .capacity()
        .max(xipsec_ebpf::ClassifierConfig::default().max_policies)
}

fn sync_policies(
    sync: &mut PolicySync,
    table: &TableReader,
    classifiers: &mut [&mut xipsec_ebpf::Classifier],
) {
    if sync.sync(table, classifiers) {
        info!(prefixes = ?sync.installed(), "plaintext steered into the workers");
    }
}

/// The table, waiting a little for a control plane that is creating it.
fn open_table(args: &Args) -> Result<TableReader, String> {
    let deadline = Instant::now() + TABLE_WAIT;
    loop {
        match TableReader::open(&args.table) {
            Ok(table) => return Ok(table),
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("SA table {}: {e:?}", args.table.display()))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// One per core (or as asked), and no more than every interface has receive queues: a worker
/// owns the same queue on each interface.
fn worker_count(args: &Args) -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let wanted = args.workers.unwrap_or(cores);
    let queues = args
        .interfaces
        .iter()
        .filter_map(|name| interfaces::rx_queues(name))
        .min()
        .unwrap_or(1);
    if queues > wanted {
        warn!(queues, workers = wanted,
              "interfaces have more receive queues than workers: traffic on queues {wanted} and up passes to the kernel; spread it with `ethtool -L` or raise workers");
    }
    wanted.min(queues).max(1)
}

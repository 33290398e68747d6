//! `xipsec-bench`: see docs/bench.md.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use xipsec_bench::dut::{parse_duts, Binaries, DutKind};
use xipsec_bench::rate::{parse_rates, Rate};
use xipsec_bench::report::table;
use xipsec_bench::runner::{run_all, BenchConfig};
use xipsec_bench::size::{parse_sizes, PacketSize};
use xipsec_bench::{cli, plot, stop, StopFlag};

const AFTER_HELP: &str = "\
The generator and sink are UDP sockets (sendmmsg/recvmmsg) in network namespaces; AF_XDP and
AF_PACKET generators, real interfaces (--tx-iface/--rx-iface) and external devices are later
steps. Sizes are inner IPv4 packet lengths. Needs root. Exit status: 0 all runs done,
1 a device failed or a file could not be written, 2 usage error, 3 not root or no `ip`.
Documentation: docs/bench.md.";

#[derive(Parser, Debug)]
#[command(name = "xipsec-bench", version, about = "Benchmark harness for IPsec gateways: throughput, loss, latency, CPU", after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Build the topology, start each device under test, send and measure.
    #[command(after_help = AFTER_HELP)]
    Run(RunArgs),
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum TopologyKind {
    /// generator host → gateway A → gateway B → sink host, four namespaces.
    E2e,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// The topology.
    #[arg(long, value_enum, default_value = "e2e")]
    topology: TopologyKind,
    /// Devices under test, comma-separated: none (kernel forwarding, the I/O ceiling),
    /// xipsec-ike (two xipsecd, IKEv2 PSK, AES-128-GCM), xipsec-manual (two xipsecd, static SAs),
    /// strongswan (charon, kernel-libipsec).
    #[arg(long, default_value = "none,xipsec-ike", value_parser = parse_duts)]
    dut: Duts,
    /// Inner packet sizes, comma-separated: 64..=1400 or imix (7:4:1 of 64/570/1400).
    #[arg(long, default_value = "64,128,512,1400,imix", value_parser = parse_sizes)]
    sizes: Sizes,
    /// Offered rate: max, or e.g. 100kpps, 1mpps, 500mbps, 1gbps (inner bits); a comma-separated
    /// list is a sweep.
    #[arg(long, default_value = "max", value_parser = parse_rates)]
    rate: Rates,
    /// How long each run sends: 3s, 500ms, 1m.
    #[arg(long, default_value = "3s", value_parser = cli::parse_duration)]
    duration: Duration,
    /// Write the results as JSON (docs/bench.md has the schema).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Draw throughput against packet size, one line per device, as SVG.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// The xipsecd binary [default: next to xipsec-bench].
    #[arg(long, value_name = "PATH")]
    xipsecd: Option<PathBuf>,
    /// The xipsecctl binary [default: next to xipsecd].
    #[arg(long, value_name = "PATH")]
    xipsecctl: Option<PathBuf>,
    /// No live progress line.
    #[arg(long, short)]
    quiet: bool,
    /// Show `xipsecctl list-sas` of gateway A once an xipsec tunnel is up.
    #[arg(long)]
    show_sas: bool,
}

// Aliases, so that clap takes each list as one value parsed by its function rather than as a
// repeated option.
type Duts = Vec<DutKind>;
type Sizes = Vec<PacketSize>;
type Rates = Vec<Rate>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Command::Run(args) = cli.command;
    // SAFETY: geteuid takes no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("xipsec-bench: needs root (it creates network namespaces and veths, and starts the gateways' daemons); run it with sudo");
        return ExitCode::from(3);
    }
    if xipsec_testkit::process::find_tool("ip").is_none() {
        eprintln!("xipsec-bench: needs iproute2's `ip`");
        return ExitCode::from(3);
    }
    let xipsecd = args.xipsecd.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("xipsecd")))
            .unwrap_or_else(|| PathBuf::from("xipsecd"))
    });
    let xipsecctl = args
        .xipsecctl
        .clone()
        .unwrap_or_else(|| xipsecd.with_file_name("xipsecctl"));
    let config = BenchConfig {
        duts: args.dut.clone(),
        sizes: args.sizes.clone(),
        rates: args.rate.clone(),
        duration: args.duration,
        binaries: Binaries {
            xipsecd,
            xipsecctl,
            show_sas: args.show_sas,
        },
        progress: !args.quiet,
    };
    let TopologyKind::E2e = args.topology;
    if let Err(e) = stop::install_handlers() {
        eprintln!("xipsec-bench: installing the Ctrl-C handler: {e}");
        return ExitCode::from(1);
    }
    let stop = StopFlag::global();
    let report = run_all(&config, &stop, |_| {});
    print!("{}", table(&report.runs));
    let mut status = ExitCode::SUCCESS;
    for error in &report.errors {
        eprintln!("xipsec-bench: {error}");
        status = ExitCode::from(1);
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).expect("the report serializes");
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("xipsec-bench: {}: {e}", path.display());
            status = ExitCode::from(1);
        }
    }
    if let Some(path) = &args.plot {
        if let Err(e) = plot::write_svg(path, &report.runs) {
            eprintln!("xipsec-bench: {e}");
            status = ExitCode::from(1);
        }
    }
    status
}

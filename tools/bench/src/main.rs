//! `xipsec-bench`: see docs/bench.md.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;

use xipsec_bench::ceiling;
use xipsec_bench::cli::{Cli, Command, ForwarderArgs, RunArgs};
use xipsec_bench::dut::Binaries;
use xipsec_bench::mac::link_mac;
use xipsec_bench::plan::IoKind;
use xipsec_bench::report::table;
use xipsec_bench::runner::{run_all, BenchConfig};
use xipsec_bench::topology::TopologyKind;
use xipsec_bench::{forwarder, plot, stop, xsk_io, StopFlag};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // SAFETY: geteuid takes no arguments and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    match cli.command {
        Command::Run(args) => {
            if !root {
                eprintln!("xipsec-bench: needs root (it creates network namespaces and veths, and starts the gateways' daemons); run it with sudo");
                return ExitCode::from(3);
            }
            run(&args)
        }
        Command::Forwarder(args) => {
            if !root {
                eprintln!("xipsec-bench forwarder: needs root (XDP programs and AF_XDP sockets)");
                return ExitCode::from(3);
            }
            run_forwarder(&args)
        }
    }
}

/// The I/O to use: as asked, or AF_XDP where the classifier loads; said on stderr either way.
fn choose_io(asked: Option<IoKind>, topology: TopologyKind) -> IoKind {
    if let Some(io) = asked {
        eprintln!("xipsec-bench: --io {io} ({})", io.generator());
        return io;
    }
    match xsk_io::classifier_loads() {
        Ok(()) => {
            eprintln!("xipsec-bench: --io xdp (af-xdp: the XDP classifier loads here)");
            IoKind::Xdp
        }
        Err(why) => {
            let io = if topology == TopologyKind::External {
                IoKind::Packet
            } else {
                IoKind::Socket
            };
            eprintln!(
                "xipsec-bench: --io {io} ({}): AF_XDP is unavailable, the XDP classifier does not load: {why}",
                io.generator()
            );
            io
        }
    }
}

fn run(args: &RunArgs) -> ExitCode {
    let checked = match args.check() {
        Ok(checked) => checked,
        Err(e) => {
            eprintln!("xipsec-bench: {e}");
            return ExitCode::from(2);
        }
    };
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
    let forwarder = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("xipsec-bench"));
    let io = choose_io(checked.io, checked.topology);
    let config = BenchConfig {
        topology: checked.topology,
        io,
        external: checked.external,
        duts: checked.duts,
        sizes: args.sizes.clone(),
        rates: args.rate.clone(),
        duration: args.duration,
        binaries: Binaries {
            xipsecd,
            xipsecctl,
            show_sas: args.show_sas,
            dataplane: checked.dataplane,
            forwarder,
        },
        progress: !args.quiet,
    };
    if let Err(e) = stop::install_handlers() {
        eprintln!("xipsec-bench: installing the Ctrl-C handler: {e}");
        return ExitCode::from(1);
    }
    let stop = StopFlag::global();
    let report = run_all(&config, &stop, |_| {});
    print!("{}", table(&report.runs));
    if !report.ceilings.is_empty() {
        println!("\nceiling: the forwarder's CPU per packet plus the AEAD's, timed just now");
        print!("{}", ceiling::summary(&report.ceilings, &report.runs));
    }
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
        if let Err(e) = plot::write(path, &report.runs) {
            eprintln!("xipsec-bench: {e}");
            status = ExitCode::from(1);
        }
    }
    status
}

/// The stop flag the forwarder's loop reads: set from the signal flag by a watcher thread, so
/// the loop reads one atomic of its own.
static FORWARDER_STOP: AtomicBool = AtomicBool::new(false);

fn run_forwarder(args: &ForwarderArgs) -> ExitCode {
    let config = match args.config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("xipsec-bench forwarder: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = stop::install_handlers() {
        eprintln!("xipsec-bench forwarder: installing the SIGTERM handler: {e}");
        return ExitCode::from(1);
    }
    let macs = link_mac(None, &config.lan.interface)
        .and_then(|lan| Ok((lan, link_mac(None, &config.wan.interface)?)));
    let (lan_mac, wan_mac) = match macs {
        Ok(macs) => macs,
        Err(e) => {
            eprintln!("xipsec-bench forwarder: {e}");
            return ExitCode::from(1);
        }
    };
    std::thread::spawn(|| {
        let signalled = StopFlag::global();
        while !signalled.is_set() {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        FORWARDER_STOP.store(true, Ordering::Relaxed);
    });
    match forwarder::run(&config, lan_mac, wan_mac, &FORWARDER_STOP) {
        Ok(report) => {
            let cpu = report.cpu_ns as f64 / 1e9;
            let total = report.lan_to_wan.forwarded + report.wan_to_lan.forwarded;
            eprintln!(
                "xipsec-bench forwarder: lan→wan {:?}, wan→lan {:?}, thread CPU {cpu:.3} s, {:.0} packets per CPU-second",
                report.lan_to_wan,
                report.wan_to_lan,
                if cpu > 0.0 { total as f64 / cpu } else { 0.0 }
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xipsec-bench forwarder: {e}");
            ExitCode::from(1)
        }
    }
}

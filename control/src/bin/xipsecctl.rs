//! `xipsecctl`: talks to `xipsecd` over its control socket (docs/xipsecctl.md).

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use xipsec_control::ctl::client::Client;
use xipsec_control::ctl::protocol::{Request, Response};
use xipsec_control::ctl::{format, DEFAULT_SOCKET};

/// Control xipsecd: show its state, start and stop connections, reload its configuration.
#[derive(Debug, Parser)]
#[command(
    name = "xipsecctl",
    version,
    after_help = "\
Exit status: 0 success; 1 xipsecd answered with an error; 2 usage error, or no answer from \
xipsecd (not running, no permission, timeout), or the output could not be written."
)]
struct Args {
    /// xipsecd's control socket.
    #[arg(
        short = 's',
        long = "socket",
        value_name = "SOCKET",
        default_value = DEFAULT_SOCKET,
        global = true
    )]
    socket: PathBuf,

    /// Print one JSON document instead of text.
    #[arg(long, global = true)]
    json: bool,

    /// With --json: indent the JSON.
    #[arg(long, global = true)]
    pretty: bool,

    /// Seconds to wait for xipsecd's answer.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=3600),
        global = true
    )]
    timeout: u64,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The daemon's version, uptime, configuration file and SA counts.
    Status,
    /// The configured connections and their children.
    ListConns,
    /// Every IKE SA and its Child SAs, with algorithms, SPIs, selectors and traffic.
    ListSas,
    /// Start a connection: its IKE SA and the Child SAs configured with it.
    Initiate {
        /// The connection's name.
        name: String,
    },
    /// Delete every IKE SA of a connection, or one IKE SA by its id.
    Terminate {
        /// A connection name, or an IKE SA id as list-sas shows it (7 or '#7'; '#7' is always
        /// an id, even if a connection is called 7).
        target: String,
    },
    /// Read the configuration file again and apply it.
    Reload,
    /// Every IKE and data-plane counter.
    Counters,
    /// Rekey now: the IKE SAs of a connection or one IKE SA by its id, or with --child their
    /// Child SAs (make-before-break, like swanctl --rekey).
    Rekey {
        /// A connection name, or an IKE SA id as list-sas shows it (7 or '#7').
        target: String,
        /// Rekey the Child SAs instead of the IKE SA.
        #[arg(long)]
        child: bool,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let request = match args.command {
        Command::Status => Request::Status,
        Command::ListConns => Request::ListConns,
        Command::ListSas => Request::ListSas,
        Command::Initiate { name } => Request::Initiate { name },
        Command::Terminate { target } => Request::Terminate { target },
        Command::Reload => Request::Reload,
        Command::Counters => Request::Counters,
        Command::Rekey { target, child } => Request::Rekey { target, child },
    };
    let response = match Client::connect(&args.socket).and_then(|mut client| {
        client.set_timeout(Duration::from_secs(args.timeout));
        client.request(&request)
    }) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("xipsecctl: {e}");
            return ExitCode::from(2);
        }
    };
    if let Response::Error { message } = &response {
        eprintln!("xipsecctl: xipsecd: {message}");
        return ExitCode::from(1);
    }
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(256 * 1024, stdout.lock());
    let written = if args.json || args.pretty {
        format::json(&mut out, &response, args.pretty)
    } else {
        format::text(&mut out, &response)
    }
    .and_then(|()| out.flush());
    match written {
        Ok(()) => ExitCode::SUCCESS,
        // `xipsecctl list-sas | head`: the reader had enough.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xipsecctl: cannot write the output: {e}");
            ExitCode::from(2)
        }
    }
}

//! `xipsecd`: the xipsec IKEv2 daemon. Flags follow OpenIKED's iked(8).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgAction, Parser};
use xipsec_control::config::{Config, Macros, DEFAULT_PATH};
use xipsec_control::daemon::{self, DaemonError, Options};
use xipsec_control::ike::NatTraversal;

/// The xipsec IKEv2 / IPsec daemon.
///
/// xipsecd stays in the foreground (for systemd and containers) and logs to stderr; -d is
/// accepted for iked(8) compatibility.
#[derive(Debug, Parser)]
#[command(name = "xipsecd", version, about, long_about = None, after_help = "\
Exit status: 0 configuration OK (-n) or a clean stop (SIGTERM); 1 configuration errors; \
2 usage error; 3 a local failure (a socket, the SA table).")]
struct Args {
    /// Do not daemonize: stay in the foreground and log to stderr.
    #[arg(short = 'd')]
    foreground: bool,

    /// Configuration file.
    #[arg(short = 'f', value_name = "FILE", default_value = DEFAULT_PATH)]
    file: PathBuf,

    /// Check the configuration, print each error (or "configuration OK") and exit 1 (or 0).
    #[arg(short = 'n')]
    check: bool,

    /// Define a macro for ${macro} in the configuration file (repeatable).
    #[arg(short = 'D', value_name = "macro=value", value_parser = parse_macro, action = ArgAction::Append)]
    define: Vec<(String, String)>,

    /// UDP port for NAT traversal (IKE and ESP-in-UDP).
    #[arg(short = 'p', value_name = "PORT", default_value_t = 4500, value_parser = clap::value_parser!(u16).range(1..))]
    nat_t_port: u16,

    /// Passive mode: never initiate, only respond.
    #[arg(short = 'S')]
    passive: bool,

    /// Control socket (xipsecctl talks to it).
    #[arg(
        short = 's',
        value_name = "SOCKET",
        default_value = xipsec_control::ctl::DEFAULT_SOCKET
    )]
    socket: PathBuf,

    /// Never use NAT traversal.
    #[arg(short = 'T', conflicts_with = "always_nat_t")]
    never_nat_t: bool,

    /// Always encapsulate ESP in UDP (NAT-T), even without a NAT.
    #[arg(short = 't')]
    always_nat_t: bool,

    /// More verbose logging (repeatable: -vv).
    #[arg(short = 'v', action = ArgAction::Count)]
    verbose: u8,
}

fn parse_macro(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not macro=value"))?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "'{name}' is not a macro name (letters, digits, '_')"
        ));
    }
    Ok((name.to_string(), value.to_string()))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let macros: Macros = args.define.iter().cloned().collect();
    if args.check {
        return match Config::load(&args.file, &macros) {
            Err(errors) => {
                for e in &errors.0 {
                    eprintln!("{e}");
                }
                ExitCode::from(1)
            }
            Ok(_) => {
                eprintln!("configuration OK");
                ExitCode::SUCCESS
            }
        };
    }
    init_logging(args.verbose);
    let _ = args.foreground;
    let options = Options {
        config: args.file,
        macros,
        natt_port: args.nat_t_port,
        passive: args.passive,
        socket: args.socket,
        nat_traversal: if args.never_nat_t {
            NatTraversal::Off
        } else if args.always_nat_t {
            NatTraversal::Force
        } else {
            NatTraversal::Detect
        },
    };
    match daemon::run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(DaemonError::Config(lines)) => {
            for line in lines {
                eprintln!("{line}");
            }
            ExitCode::from(1)
        }
        Err(e @ DaemonError::Local(_)) => {
            eprintln!("xipsecd: {e}");
            ExitCode::from(3)
        }
    }
}

/// One line per event on stderr; `-v` debug, `-vv` trace; `RUST_LOG` overrides.
fn init_logging(verbose: u8) {
    let level = match verbose {
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
}

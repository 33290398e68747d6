//! `xipsecd`: the xipsec IKEv2 daemon. Flags follow OpenIKED's iked(8).
//!
//! This build checks configurations (`-n`); the daemon loop is not built yet.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgAction, Parser};
use xipsec_control::config::{Config, Macros, DEFAULT_PATH};

/// The xipsec IKEv2 / IPsec daemon.
///
/// NOTE: only configuration checking (-n) is implemented in this build. Without -n, xipsecd
/// checks the configuration, then says that the daemon is not built yet and exits with status 2.
#[derive(Debug, Parser)]
#[command(name = "xipsecd", version, about, long_about = None, after_help = "\
Exit status: 0 configuration OK (-n); 1 configuration errors; 2 usage error, or the daemon \
(not built yet) was asked to run.")]
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
        default_value = "/run/xipsec/xipsecd.sock"
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
    match Config::load(&args.file, &macros) {
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            ExitCode::from(1)
        }
        Ok(_) if args.check => {
            eprintln!("configuration OK");
            ExitCode::SUCCESS
        }
        Ok(_) => {
            eprintln!("xipsecd: configuration OK, but the daemon is not built yet (only -n works)");
            ExitCode::from(2)
        }
    }
}

//! `xipsecd`, the daemon around the sans-IO IKE core (DESIGN.md, room 3).
//!
//! - `connection.rs`: a `[[connection]]` of the file becomes the `IkeConfig` its IKE SAs run
//!   with; which connection a peer that initiates gets.
//! - `engine/`: every IKE SA, sans-IO: dispatch by SPI, timers, rekey schedule, and the
//!   Child SA events turned into SA-table records.
//! - `plane.rs`: the daemon's side of the shared SA table (records and the SPD).
//! - `report.rs`: what `xipsecctl` is told (SAs, counters, status).
//! - `sockets.rs`: UDP 500 and the NAT-T port, the non-ESP marker.
//! - `backend.rs`: the portable data plane's worker thread (TUN device, ESP sockets, routes).
//! - `dataplane_process.rs`: the AF_XDP data plane, a process of its own: started, found again
//!   after a restart, stopped.
//! - `shell.rs`: the tokio loop that moves datagrams, fires timers, answers signals.

mod backend;
mod connection;
mod dataplane_process;
mod engine;
mod plane;
mod report;
mod shell;
mod sockets;

use std::net::IpAddr;
use std::path::PathBuf;

pub use connection::{prepare, Defaults, Prepared, Unsupported};
pub use engine::{ChildEntry, CommandError, Counters, Engine, IkeEntry};
pub use plane::{
    InstalledChild, Plane, PlaneError, RouteChange, DEFAULT_CAPACITY, ORPHAN_GRACE, REKEYED_GRACE,
};
pub use shell::run;
pub use sockets::{classify_natt, NattPayload, NON_ESP_MARKER};

use crate::config::Macros;
use crate::ike::NatTraversal;

/// What `xipsecd`'s command line says.
#[derive(Clone, Debug)]
pub struct Options {
    /// The configuration file (`-f`).
    pub config: PathBuf,
    /// `-D` macros.
    pub macros: Macros,
    /// The NAT-T port (`-p`).
    pub natt_port: u16,
    /// Never initiate (`-S`).
    pub passive: bool,
    /// The control socket (`-s`).
    pub socket: PathBuf,
    /// `-T` / `-t`.
    pub nat_traversal: NatTraversal,
}

impl Options {
    /// The SA table's file: beside the control socket, so that one `-s` keeps two daemons
    /// on one host apart.
    pub fn table_path(&self) -> PathBuf {
        let dir = self
            .socket
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_else(|| PathBuf::from("/run/xipsec"));
        let stem = self
            .socket
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "xipsecd".into());
        dir.join(format!("{stem}.sa-table"))
    }

    /// The lock file of the AF_XDP data plane that forwards with [`table_path`](Self::table_path).
    pub fn dataplane_pid_path(&self) -> PathBuf {
        let mut path = self.table_path().into_os_string();
        path.push(".dataplane.pid");
        PathBuf::from(path)
    }
}

/// Why the daemon stopped or could not start; each says whose fault it is in its text.
#[derive(Debug)]
pub enum DaemonError {
    /// The configuration file has errors (printed one per line).
    Config(Vec<String>),
    /// A local resource failed: a socket, the SA table, the runtime.
    Local(String),
}

impl core::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DaemonError::Config(lines) => f.write_str(&lines.join("\n")),
            DaemonError::Local(s) => f.write_str(s),
        }
    }
}

/// The addresses to receive IKE on: `daemon.listen`, or else every address a connection
/// names as its own.
pub fn listen_addresses(config: &crate::config::Config) -> Vec<IpAddr> {
    if !config.daemon.listen.is_empty() {
        return config.daemon.listen.clone();
    }
    let mut out = Vec::new();
    for c in &config.connections {
        for a in &c.local_addrs {
            if let crate::config::Addr::Ip(ip) = a {
                if !out.contains(ip) {
                    out.push(*ip);
                }
            }
        }
    }
    out
}

//! What `xipsecctl` is told: the engine's IKE SAs, Child SAs and counters in the control
//! protocol's terms, with the data plane's packet and byte counts read from the SA table.

use std::time::Instant;

use crate::ctl::describe;
use crate::ctl::protocol::{
    ChildSaInfo, ChildSaState, CountersInfo, IkeSaInfo, IkeSaState, StatusInfo,
};

use super::engine::{ChildEntry, Engine, IkeEntry};

/// What the shell knows besides the engine.
#[derive(Debug)]
pub struct DaemonFacts<'a> {
    pub started: Instant,
    pub config_file: &'a str,
    pub backend: &'a str,
    pub dataplane_pid: Option<u32>,
    /// The AF_XDP data plane's counters file.
    pub dataplane_stats: Option<std::path::PathBuf>,
}

/// `xipsecctl status`.
pub fn status(engine: &Engine, facts: &DaemonFacts<'_>, now: Instant) -> StatusInfo {
    let child_sas: usize = engine.ike_sas().map(|e| e.children.len()).sum();
    StatusInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        pid: std::process::id(),
        uptime_secs: now.saturating_duration_since(facts.started).as_secs(),
        config_file: facts.config_file.to_owned(),
        connections: engine.connections().len() as u64,
        ike_sas: engine.ike_sas().count() as u64,
        child_sas: child_sas as u64,
        backend: facts.backend.to_owned(),
        dataplane_pid: facts.dataplane_pid,
    }
}

/// `xipsecctl list-sas`, ordered by id.
pub fn ike_sas(engine: &Engine, now: Instant) -> Vec<IkeSaInfo> {
    let mut out: Vec<IkeSaInfo> = engine.ike_sas().map(|e| ike_sa(engine, e, now)).collect();
    out.sort_by_key(|i| i.id);
    out
}

fn secs_until(now: Instant, t: Option<Instant>) -> Option<u64> {
    t.map(|t| t.saturating_duration_since(now).as_secs())
}

fn ike_sa(engine: &Engine, e: &IkeEntry, now: Instant) -> IkeSaInfo {
    let path = e.sa.path();
    let state = match (&e.established, e.sa.is_established()) {
        (_, true) if e.rekeying => IkeSaState::Rekeying,
        (_, true) => IkeSaState::Established,
        (None, false) => IkeSaState::Connecting,
        (Some(_), false) => IkeSaState::Deleting,
    };
    let (remote_id, algorithms, nat_local, nat_remote, established_secs) = match &e.established {
        Some((at, est)) => (
            describe::ike_identity(&est.peer_id),
            describe::ike_algorithms(&est.suite, est.ke),
            est.nat.local_behind_nat,
            est.nat.remote_behind_nat,
            Some(now.saturating_duration_since(*at).as_secs()),
        ),
        None => (String::new(), String::new(), false, false, None),
    };
    IkeSaInfo {
        id: e.id,
        connection: e.conn.conn.name.clone(),
        state,
        role: e.sa.role().into(),
        local_addr: path.local,
        remote_addr: path.remote,
        local_id: describe::ike_identity(&e.conn.template.local_id),
        remote_id,
        algorithms,
        spi_i: e.sa.spi_i(),
        spi_r: e.sa.spi_r(),
        established_secs,
        rekey_in_secs: secs_until(now, e.rekey_at),
        nat_local,
        nat_remote,
        children: e
            .children
            .iter()
            .map(|c| child_sa(engine, e, c, now))
            .collect(),
    }
}

fn child_sa(engine: &Engine, e: &IkeEntry, c: &ChildEntry, now: Instant) -> ChildSaInfo {
    let inbound = engine
        .plane()
        .status(c.installed.inbound)
        .unwrap_or_default();
    let outbound = engine
        .plane()
        .status(c.installed.outbound)
        .unwrap_or_default();
    let name = e
        .conn
        .conn
        .children
        .get(c.sa.config)
        .map(|ch| ch.name.clone())
        .unwrap_or_default();
    ChildSaInfo {
        name,
        state: if c.rekeying {
            ChildSaState::Rekeying
        } else {
            ChildSaState::Installed
        },
        mode: c.sa.mode.into(),
        spi_in: c.sa.inbound_spi,
        spi_out: c.sa.outbound_spi,
        local_ts: c
            .sa
            .local_ts
            .iter()
            .map(describe::traffic_selector)
            .collect(),
        remote_ts: c
            .sa
            .remote_ts
            .iter()
            .map(describe::traffic_selector)
            .collect(),
        algorithm: describe::esp_algorithm(c.sa.suite).to_owned(),
        esn: c.sa.esn,
        udp_encap: c.sa.path.udp_encap.is_some(),
        bytes_in: inbound.bytes,
        bytes_out: outbound.bytes,
        packets_in: inbound.packets,
        packets_out: outbound.packets,
        installed_secs: now.saturating_duration_since(c.installed_at).as_secs(),
        rekey_in_secs: secs_until(now, c.rekey_at),
        resource: c.sa.resource,
    }
}

/// `xipsecctl counters`: the engine's, under `ike.`, and the sockets' under `ike.socket.`.
pub fn counters(
    engine: &Engine,
    sockets: &[(&'static str, u64)],
    dataplane_stats: Option<&std::path::Path>,
) -> CountersInfo {
    let c = engine.counters();
    let mut info = CountersInfo::default();
    for (name, value) in [
        ("ike.datagrams_in", c.datagrams_in),
        ("ike.datagrams_out", c.datagrams_out),
        ("ike.dropped.malformed", c.dropped_malformed),
        ("ike.dropped.unknown_spi", c.dropped_unknown_spi),
        ("ike.dropped.no_connection", c.dropped_no_connection),
        ("ike.dropped.by_sa", c.dropped_by_sa),
        ("ike.rejected_init", c.rejected_init),
        ("ike.established", c.ike_established),
        ("ike.auth_failed", c.auth_failed),
        ("ike.child.installed", c.child_installed),
        ("ike.child.install_failed", c.child_install_failed),
        ("dataplane.sas_installed", engine.plane().installed() as u64),
    ] {
        info.counters.insert(name.to_owned(), value);
    }
    for (name, value) in sockets {
        info.counters.insert(format!("ike.socket.{name}"), *value);
    }
    if let Some(path) = dataplane_stats {
        info.counters.extend(dataplane_counters(path));
    }
    info
}

/// What the AF_XDP data plane last reported (nothing if its file is missing, unreadable or
/// older than a few seconds: a data plane that stopped reporting has no current counters).
fn dataplane_counters(path: &std::path::Path) -> std::collections::BTreeMap<String, u64> {
    let fresh = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| {
            t.elapsed()
                .is_ok_and(|age| age < std::time::Duration::from_secs(5))
        });
    if !fresh {
        return Default::default();
    }
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

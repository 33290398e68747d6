//! Every IKE SA of the daemon, sans-IO like the IKE core itself: datagrams and the time go in,
//! datagrams to send come out, and Child SAs go into the data plane's table. The tokio shell
//! (`shell.rs`) only moves bytes and waits.
//!
//! Dispatch (RFC 7296 §2.1, §3.1): a datagram goes to the IKE SA its SPIs name; an
//! IKE_SA_INIT request with a responder SPI of zero starts a responder (or reaches the
//! responder it started before, when it is a retransmission from the same peer).
//!
//! `events.rs` turns an IKE SA's events into table entries and schedules; `timing.rs` holds
//! the jitter, retry pauses and lifetimes.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

mod events;
mod timing;

use self::timing::KEEPALIVE_INTERVAL;
use super::connection::Prepared;
use super::plane::{InstalledChild, Plane};
use crate::config::KeyRenewal;
use crate::crypto::{Rng, SystemRng};
use crate::ctl::protocol::Target;
use crate::ike::{ChildSaInstalled, IkeSa, IkeSaEstablished, Path, Transmit};
use crate::wire::{ExchangeType, Header};
use xipsec_dataplane::table::layout::flags;

/// What the engine counts, for `xipsecctl counters` and the logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams handed to [`Engine::datagram`].
    pub datagrams_in: u64,
    /// Datagrams queued to send.
    pub datagrams_out: u64,
    /// Datagrams with no readable IKE header.
    pub dropped_malformed: u64,
    /// Datagrams for no IKE SA of ours.
    pub dropped_unknown_spi: u64,
    /// IKE_SA_INIT requests no connection accepts (by address).
    pub dropped_no_connection: u64,
    /// Datagrams an IKE SA refused (see its own error).
    pub dropped_by_sa: u64,
    /// IKE_SA_INIT requests refused without keeping state.
    pub rejected_init: u64,
    /// IKE SAs established, Child SAs installed, and Child SAs the data plane refused.
    pub ike_established: u64,
    pub child_installed: u64,
    pub child_install_failed: u64,
    /// Authentication failures, either side's.
    pub auth_failed: u64,
}

/// An installed Child SA as the daemon keeps it.
#[derive(Debug)]
pub struct ChildEntry {
    /// What the IKE SA reported (keys included, zeroed on drop).
    pub sa: Box<ChildSaInstalled>,
    /// Its slots and policies in the table.
    pub installed: InstalledChild,
    pub installed_at: Instant,
    /// When the daemon rekeys it; `None` once a rekey started or without a rekey time.
    pub rekey_at: Option<Instant>,
    /// A rekey of ours is under way.
    pub rekeying: bool,
    /// Its hard lifetime: deleted then if no rekey replaced it (a tenth past the rekey time,
    /// strongSwan's default life_time).
    pub expire_at: Option<Instant>,
}

/// One IKE SA and what the daemon keeps around it.
#[derive(Debug)]
pub struct IkeEntry {
    /// A daemon-unique number (`xipsecctl terminate ID`).
    pub id: u64,
    pub conn: Arc<Prepared>,
    pub sa: IkeSa,
    pub created: Instant,
    pub established: Option<(Instant, IkeSaEstablished)>,
    pub children: Vec<ChildEntry>,
    /// When the daemon rekeys the IKE SA.
    pub rekey_at: Option<Instant>,
    /// A rekey of ours is under way.
    pub rekeying: bool,
    /// Its hard lifetime (see [`ChildEntry::expire_at`]).
    pub expire_at: Option<Instant>,
    /// When the next NAT keepalive is due (we are behind a NAT, RFC 3948 §2.3).
    keepalive_at: Option<Instant>,
    /// When to ask again for per-resource Child SAs (RFC 9611) that a peer refused for the
    /// moment (TEMPORARY_FAILURE).
    resources_at: Option<Instant>,
    /// The IKE SA this one reauthenticates (`key_renewal = "reauth"`): deleted once this
    /// one is established (make-before-break).
    pub replaces: Option<u64>,
    /// A responder's connections to choose from by the peer's identity, until IKE_AUTH.
    candidates: Vec<Arc<Prepared>>,
    /// The SPIs this entry is indexed under.
    key: (u64, u64),
    /// The responder's index by the initiator's SPI and address, while it has one.
    half_open: Option<(u64, SocketAddr)>,
    /// The timer this entry is scheduled under.
    timer: Option<Instant>,
}

/// Every IKE SA of the daemon.
#[derive(Debug)]
pub struct Engine {
    conns: Vec<Arc<Prepared>>,
    sas: HashMap<u64, IkeEntry>,
    by_spis: HashMap<(u64, u64), u64>,
    half_open: HashMap<(u64, SocketAddr), u64>,
    timers: BTreeSet<(Instant, u64)>,
    next_id: u64,
    plane: Plane,
    transmits: VecDeque<Transmit>,
    keepalives: VecDeque<Path>,
    counters: Counters,
    listen: Vec<IpAddr>,
}

/// Why [`Engine::initiate`] or [`Engine::terminate`] could not act: the operator asked for
/// something that does not exist or cannot be done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandError(pub String);

impl core::fmt::Display for CommandError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

fn system_rng() -> Box<dyn Rng + Send> {
    Box::new(SystemRng)
}

impl Engine {
    /// An engine for `conns`, writing Child SAs into `plane`. `listen` are the addresses the
    /// shell receives IKE on (the source of what we initiate).
    pub fn new(conns: Vec<Prepared>, plane: Plane, listen: Vec<IpAddr>) -> Engine {
        Engine {
            conns: conns.into_iter().map(Arc::new).collect(),
            sas: HashMap::new(),
            by_spis: HashMap::new(),
            half_open: HashMap::new(),
            timers: BTreeSet::new(),
            next_id: 1,
            plane,
            transmits: VecDeque::new(),
            keepalives: VecDeque::new(),
            counters: Counters::default(),
            listen,
        }
    }

    /// The connections.
    pub fn connections(&self) -> &[Arc<Prepared>] {
        &self.conns
    }

    /// Every IKE SA, in no particular order.
    pub fn ike_sas(&self) -> impl Iterator<Item = &IkeEntry> {
        self.sas.values()
    }

    /// The data plane's table.
    pub fn plane(&self) -> &Plane {
        &self.plane
    }

    /// The table, for the shell's housekeeping (orphans of a previous control plane).
    pub fn plane_mut(&mut self) -> &mut Plane {
        &mut self.plane
    }

    /// Counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next NAT keepalive to send (one 0xff octet from `local` to `remote` on the NAT-T
    /// port, RFC 3948 §2.3): due every 20 s for IKE SAs behind a NAT.
    pub fn poll_keepalive(&mut self) -> Option<Path> {
        self.keepalives.pop_front()
    }

    /// The next route the data plane needs added or removed.
    pub fn poll_route_change(&mut self) -> Option<super::plane::RouteChange> {
        self.plane.poll_route_change()
    }

    /// When [`Engine::timeout`] is due next.
    pub fn next_timeout(&self) -> Option<Instant> {
        let timer = self.timers.first().map(|(t, _)| *t);
        match (timer, self.plane.next_retirement()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Replaces the connections (SIGHUP): IKE SAs of connections that are gone or changed are
    /// deleted, changed and new connections with `start_action = "start"` are initiated,
    /// unchanged ones keep running untouched. Returns (kept, changed, removed, added).
    pub fn reload(
        &mut self,
        now: Instant,
        conns: Vec<Prepared>,
        initiate: bool,
    ) -> (usize, usize, usize, usize) {
        let mut kept = Vec::new();
        let mut restart = Vec::new();
        let (mut unchanged, mut changed, mut added) = (0, 0, 0);
        for new in conns {
            match self.conns.iter().find(|old| old.conn.name == new.conn.name) {
                Some(old) if old.fingerprint() == new.fingerprint() => {
                    unchanged += 1;
                    kept.push(old.clone());
                }
                Some(_) => {
                    changed += 1;
                    restart.push(new.conn.name.clone());
                    kept.push(Arc::new(new));
                }
                None => {
                    added += 1;
                    restart.push(new.conn.name.clone());
                    kept.push(Arc::new(new));
                }
            }
        }
        let removed = self
            .conns
            .iter()
            .filter(|old| !kept.iter().any(|k| k.conn.name == old.conn.name))
            .count();
        // Delete what no longer matches its (new) connection: removed or changed ones.
        let stale: Vec<u64> = self
            .sas
            .values()
            .filter(|e| !kept.iter().any(|k| Arc::ptr_eq(k, &e.conn)))
            .map(|e| e.id)
            .collect();
        for id in stale {
            self.delete(now, id);
        }
        self.conns = kept;
        if initiate {
            for name in restart {
                if self.conns.iter().any(|c| c.conn.name == name && c.starts()) {
                    if let Err(e) = self.initiate(now, &name) {
                        warn!(conn = %name, "cannot start: {e}");
                    }
                }
            }
        }
        (unchanged, changed, removed, added)
    }

    /// Starts every connection whose first child says `start_action = "start"`.
    pub fn start(&mut self, now: Instant) {
        let starting: Vec<String> = self
            .conns
            .iter()
            .filter(|c| c.starts())
            .map(|c| c.conn.name.clone())
            .collect();
        for name in starting {
            if let Err(e) = self.initiate(now, &name) {
                warn!(conn = %name, "cannot start: {e}");
            }
        }
    }

    /// Initiates an IKE SA of connection `name`; returns its id.
    pub fn initiate(&mut self, now: Instant, name: &str) -> Result<u64, CommandError> {
        let conn = self
            .conns
            .iter()
            .find(|c| c.conn.name == name)
            .cloned()
            .ok_or_else(|| CommandError(format!("no connection named '{name}'")))?;
        let remote = conn.initiation_target().ok_or_else(|| {
            CommandError(format!(
                "connection '{name}' has no remote address to initiate to"
            ))
        })?;
        let local = conn
            .initiation_source(remote)
            .or_else(|| {
                self.listen
                    .iter()
                    .copied()
                    .find(|a| a.is_ipv4() == remote.is_ipv4())
            })
            .ok_or_else(|| {
                CommandError(format!(
                    "connection '{name}': no local address of the peer's family"
                ))
            })?;
        let alone = !self
            .sas
            .values()
            .any(|e| e.conn.conn.name == name && e.sa.path().remote.ip() == remote);
        let config = conn.for_initiator(
            SocketAddr::new(local, 500),
            SocketAddr::new(remote, 500),
            alone,
        );
        let sa = IkeSa::initiate(config, now, system_rng())
            .map_err(|e| CommandError(format!("connection '{name}': {e:?}")))?;
        let id = self.insert(conn, sa, now, None);
        info!(conn = %name, id, %remote, "initiating");
        self.after(id, now);
        Ok(id)
    }

    /// Deletes the IKE SA with id `target` (`7` or `#7`), or every IKE SA of the connection
    /// named `target` (a connection's name wins over an id, as `xipsecctl` documents).
    /// Returns how many deletes were started.
    pub fn terminate(&mut self, now: Instant, target: &str) -> Result<usize, CommandError> {
        let ids = self.targets(target);
        if ids.is_empty() {
            return Err(CommandError(format!(
                "no IKE SA with id or connection name '{target}'"
            )));
        }
        for &id in &ids {
            self.delete(now, id);
        }
        Ok(ids.len())
    }

    /// Rekeys now the IKE SAs `target` names (as for [`Engine::terminate`]), or with `child`
    /// every Child SA of them. Returns how many rekeys were started.
    pub fn rekey(
        &mut self,
        now: Instant,
        target: &str,
        child: bool,
    ) -> Result<usize, CommandError> {
        let ids = self.targets(target);
        if ids.is_empty() {
            return Err(CommandError(format!(
                "no IKE SA with id or connection name '{target}'"
            )));
        }
        let mut started = 0;
        for id in ids {
            let Some(entry) = self.sas.get_mut(&id) else {
                continue;
            };
            if !entry.sa.is_established() {
                continue;
            }
            if child {
                for c in entry.children.iter_mut().filter(|c| !c.rekeying) {
                    if entry.sa.rekey_child(now, c.sa.inbound_spi).is_ok() {
                        c.rekeying = true;
                        c.rekey_at = None;
                        started += 1;
                    }
                }
            } else if !entry.rekeying && entry.sa.rekey(now).is_ok() {
                entry.rekeying = true;
                entry.rekey_at = None;
                started += 1;
            }
            self.after(id, now);
        }
        Ok(started)
    }

    /// Acts on what the data plane's workers reported about each Child SA's SAs (RFC 4301
    /// §4.4.2.1): a soft lifetime reached (`rekey_bytes`, `rekey_packets`) or an outbound
    /// sequence space nearly used up (without ESN, 2^32 packets: minutes at 10 Mpps) starts a
    /// rekey, as `rekey_time` would; a hard one reached (`life_bytes`, `life_packets`: the
    /// worker has stopped using the SA) deletes the Child SA, as its hard lifetime would.
    /// Called about once a second; returns how many rekeys and deletes it started.
    pub fn data_plane_lifetimes(&mut self, now: Instant) -> usize {
        let ids: Vec<u64> = self.sas.keys().copied().collect();
        let mut started = 0;
        for id in ids {
            let Some(entry) = self.sas.get_mut(&id) else {
                continue;
            };
            if !entry.sa.is_established() {
                continue;
            }
            let mut touched = false;
            for c in entry.children.iter_mut() {
                let reported = [c.installed.outbound, c.installed.inbound]
                    .into_iter()
                    .filter_map(|slot| self.plane.status(slot))
                    .fold(0, |all, status| all | status.flags);
                let spi = c.sa.inbound_spi;
                if reported & flags::HARD_EXPIRED != 0 {
                    if entry.sa.delete_child(now, spi).is_ok() {
                        warn!(conn = %entry.conn.conn.name, id, spi_in = format_args!("{spi:08x}"),
                              "Child SA volume lifetime reached in the data plane");
                        c.rekey_at = None;
                        c.expire_at = None;
                        touched = true;
                        started += 1;
                    }
                } else if reported & (flags::SOFT_EXPIRED | flags::REKEY_SOON | flags::EXHAUSTED)
                    != 0
                    && !c.rekeying
                    && entry.sa.rekey_child(now, spi).is_ok()
                {
                    info!(conn = %entry.conn.conn.name, id, spi_in = format_args!("{spi:08x}"),
                          flags = reported, "Child SA rekey: the data plane asked for it");
                    c.rekeying = true;
                    c.rekey_at = None;
                    touched = true;
                    started += 1;
                }
            }
            if touched {
                self.after(id, now);
            }
        }
        started
    }

    /// The IKE SAs `target` names: one by id, or every one of a connection.
    fn targets(&self, target: &str) -> Vec<u64> {
        let is_connection = |name: &str| self.conns.iter().any(|c| c.conn.name == name);
        match Target::resolve(target, is_connection) {
            Some(Target::IkeSa(id)) if self.sas.contains_key(&id) => vec![id],
            Some(Target::Connection(name)) => self
                .sas
                .values()
                .filter(|e| e.conn.conn.name == name)
                .map(|e| e.id)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Deletes every IKE SA (SIGTERM): Deletes go out for established ones, half-open ones
    /// are dropped. Drive [`Engine::timeout`] until [`Engine::is_empty`], or give up.
    pub fn shutdown(&mut self, now: Instant) {
        let ids: Vec<u64> = self.sas.keys().copied().collect();
        for id in ids {
            self.delete(now, id);
        }
    }

    /// Whether no IKE SA is left.
    pub fn is_empty(&self) -> bool {
        self.sas.is_empty()
    }

    fn delete(&mut self, now: Instant, id: u64) {
        let Some(entry) = self.sas.get_mut(&id) else {
            return;
        };
        if entry.sa.is_established() {
            if let Err(e) = entry.sa.delete(now) {
                debug!(id, "delete: {e:?}");
            }
            self.after(id, now);
        } else {
            self.remove(id);
        }
    }

    /// A datagram (IKE message, non-ESP marker already removed) that arrived along `path`.
    pub fn datagram(&mut self, now: Instant, path: Path, bytes: &[u8]) {
        self.counters.datagrams_in += 1;
        let Ok(header) = Header::peek(bytes) else {
            self.counters.dropped_malformed += 1;
            return;
        };
        let (spi_i, spi_r) = (header.initiator_spi, header.responder_spi);
        let id = self
            .by_spis
            .get(&(spi_i, spi_r))
            .or_else(|| self.by_spis.get(&(spi_i, 0)))
            .copied();
        let id = match id {
            Some(id) => Some(id),
            None if spi_r == 0
                && !header.flags.response
                && header.exchange_type == ExchangeType::IkeSaInit =>
            {
                match self.half_open.get(&(spi_i, path.remote)) {
                    Some(&id) => Some(id),
                    None => {
                        self.respond(now, path, bytes);
                        return;
                    }
                }
            }
            None => None,
        };
        let Some(id) = id else {
            self.counters.dropped_unknown_spi += 1;
            return;
        };
        let Some(entry) = self.sas.get_mut(&id) else {
            self.counters.dropped_unknown_spi += 1;
            return;
        };
        if let Err(e) = entry.sa.handle_from(now, path, bytes) {
            self.counters.dropped_by_sa += 1;
            debug!(id, conn = %entry.conn.conn.name, "dropped: {e:?}");
        }
        self.after(id, now);
    }

    /// A first IKE_SA_INIT request that no SA claims: every connection that accepts the
    /// peer's address is a candidate, IKE_AUTH's identities pick one (`IkeSa::respond_any`).
    fn respond(&mut self, now: Instant, path: Path, bytes: &[u8]) {
        let candidates: Vec<Arc<Prepared>> = self
            .conns
            .iter()
            .filter(|c| c.accepts(path.local.ip(), path.remote.ip()))
            .cloned()
            .collect();
        let Some(first) = candidates.first().cloned() else {
            self.counters.dropped_no_connection += 1;
            debug!(peer = %path.remote, "IKE_SA_INIT from a peer no connection accepts");
            return;
        };
        let configs = candidates
            .iter()
            .map(|c| c.for_path(path.local, path.remote))
            .collect();
        match IkeSa::respond_any(configs, now, system_rng(), bytes) {
            Ok(sa) => {
                let spi_i = sa.spi_i();
                let id = self.insert(first, sa, now, Some((spi_i, path.remote)));
                if let Some(entry) = self.sas.get_mut(&id) {
                    entry.candidates = candidates;
                }
                debug!(id, peer = %path.remote, "responding");
                self.after(id, now);
            }
            Err(rejected) => {
                self.counters.rejected_init += 1;
                debug!(peer = %path.remote, "IKE_SA_INIT refused: {:?}", rejected.error);
                if let Some(reply) = rejected.reply {
                    self.queue(reply);
                }
            }
        }
    }

    fn insert(
        &mut self,
        conn: Arc<Prepared>,
        sa: IkeSa,
        now: Instant,
        half_open: Option<(u64, SocketAddr)>,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let key = (sa.spi_i(), sa.spi_r());
        self.by_spis.insert(key, id);
        if let Some(h) = half_open {
            self.half_open.insert(h, id);
        }
        self.sas.insert(
            id,
            IkeEntry {
                id,
                conn,
                sa,
                created: now,
                established: None,
                children: Vec::new(),
                rekey_at: None,
                rekeying: false,
                expire_at: None,
                keepalive_at: None,
                resources_at: None,
                replaces: None,
                candidates: Vec::new(),
                key,
                half_open,
                timer: None,
            },
        );
        id
    }

    /// Lets every timer that is due fire.
    pub fn timeout(&mut self, now: Instant) {
        self.plane.expire_retired(now);
        while let Some(&(at, id)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, id));
            let mut reauth = None;
            let mut resources = Vec::new();
            if let Some(entry) = self.sas.get_mut(&id) {
                entry.timer = None;
                entry.sa.handle_timeout(now);
                if entry.expire_at.is_some_and(|t| t <= now) {
                    entry.expire_at = None;
                    warn!(conn = %entry.conn.conn.name, id, "IKE SA hard lifetime reached");
                    let _ = entry.sa.delete(now);
                }
                for c in entry.children.iter_mut() {
                    if c.expire_at.is_some_and(|t| t <= now) {
                        c.expire_at = None;
                        warn!(conn = %entry.conn.conn.name, id,
                              spi_in = format_args!("{:08x}", c.sa.inbound_spi),
                              "Child SA hard lifetime reached");
                        let _ = entry.sa.delete_child(now, c.sa.inbound_spi);
                    }
                }
                if entry.keepalive_at.is_some_and(|t| t <= now) {
                    entry.keepalive_at = Some(now + KEEPALIVE_INTERVAL);
                    let path = entry.sa.path();
                    if entry.sa.is_established() && entry.sa.esp_path().udp_encap.is_some() {
                        self.keepalives.push_back(path);
                    }
                }
                let renew_by_reauth = entry.conn.conn.key_renewal == KeyRenewal::Reauth
                    && entry.conn.initiation_target().is_some();
                if entry.rekey_at.is_some_and(|t| t <= now) && renew_by_reauth {
                    entry.rekey_at = None;
                    reauth = Some(entry.conn.conn.name.clone());
                } else if entry.rekey_at.is_some_and(|t| t <= now) {
                    entry.rekey_at = None;
                    entry.rekeying = true;
                    if let Err(e) = entry.sa.rekey(now) {
                        debug!(id, "IKE SA rekey not started: {e:?}");
                        entry.rekeying = false;
                        entry.rekey_at = Some(now + Duration::from_secs(1));
                    }
                }
                for i in 0..entry.children.len() {
                    let due = entry.children[i].rekey_at.is_some_and(|t| t <= now);
                    if due {
                        let spi = entry.children[i].sa.inbound_spi;
                        entry.children[i].rekey_at = None;
                        entry.children[i].rekeying = true;
                        if let Err(e) = entry.sa.rekey_child(now, spi) {
                            entry.children[i].rekeying = false;
                            debug!(
                                id,
                                spi = format_args!("{spi:08x}"),
                                "rekey not started: {e:?}"
                            );
                            entry.children[i].rekey_at = Some(now + Duration::from_secs(1));
                        }
                    }
                }
                if entry.resources_at.is_some_and(|t| t <= now) {
                    entry.resources_at = None;
                    resources = entry.fallbacks_with_resources();
                }
            }
            for config in resources {
                self.request_resources(id, now, config);
            }
            self.after(id, now);
            if let Some(name) = reauth {
                self.reauthenticate(now, id, &name);
            }
        }
    }

    /// Everything that follows a change of IKE SA `id`: its datagrams, its events, its index
    /// and timer, and its removal once it is over.
    fn after(&mut self, id: u64, now: Instant) {
        // Handling an event can make the SA send (a Child SA created after IKE_AUTH, say):
        // go round until it is quiet.
        loop {
            let Some(entry) = self.sas.get_mut(&id) else {
                return;
            };
            while let Some(t) = entry.sa.poll_transmit() {
                self.transmits.push_back(t);
                self.counters.datagrams_out += 1;
            }
            let mut events = Vec::new();
            while let Some(e) = entry.sa.poll_event() {
                events.push(e);
            }
            if events.is_empty() {
                break;
            }
            for event in events {
                self.on_event(id, now, event);
            }
        }
        self.reindex(id);
        self.reschedule(id);
        if self.sas.get(&id).is_some_and(|e| e.sa.is_drained()) {
            self.remove(id);
        }
    }

    fn queue(&mut self, t: Transmit) {
        self.transmits.push_back(t);
        self.counters.datagrams_out += 1;
    }

    fn reindex(&mut self, id: u64) {
        let Some(entry) = self.sas.get_mut(&id) else {
            return;
        };
        let key = (entry.sa.spi_i(), entry.sa.spi_r());
        if key != entry.key {
            self.by_spis.remove(&entry.key);
            self.by_spis.insert(key, id);
            entry.key = key;
        }
    }

    fn reschedule(&mut self, id: u64) {
        let Some(entry) = self.sas.get_mut(&id) else {
            return;
        };
        let mut next = entry.sa.poll_timeout();
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        consider(entry.rekey_at);
        consider(entry.keepalive_at);
        consider(entry.resources_at);
        consider(entry.expire_at);
        for c in &entry.children {
            consider(c.expire_at);
            consider(c.rekey_at);
        }
        if next != entry.timer {
            if let Some(old) = entry.timer.take() {
                self.timers.remove(&(old, id));
            }
            if let Some(t) = next {
                self.timers.insert((t, id));
            }
            entry.timer = next;
        }
    }

    fn remove(&mut self, id: u64) {
        let Some(entry) = self.sas.remove(&id) else {
            return;
        };
        if self.by_spis.get(&entry.key) == Some(&id) {
            self.by_spis.remove(&entry.key);
        }
        if let Some(h) = entry.half_open {
            self.half_open.remove(&h);
        }
        if let Some(t) = entry.timer {
            self.timers.remove(&(t, id));
        }
        for child in &entry.children {
            self.plane.remove(&child.installed);
        }
    }
}

//! The daemon's side of the data plane: Child SAs become records in the shared SA table and
//! policies in its SPD (DESIGN.md, room 2). Whatever runs the workers reads the same table.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use std::time::{SystemTime, UNIX_EPOCH};

use xipsec_dataplane::esp::{
    CipherSuite, DfPolicy, Endpoints, Mode as EspMode, SaParams, UdpEncap,
};
use xipsec_dataplane::table::{
    AddressRange, Direction, Keymat, Lifetimes, Policy, SaRecord, SlotId, SlotStatus, TableError,
    TableReader, TableWriter, ANY_WORKER,
};

use crate::config::VolumeLifetimes;
use crate::ike::{ChildSaInstalled, EspPath, EspSuite, Mode};
use crate::wire::TrafficSelector;
use xipsec_dataplane::worker::SHARED_FROM;

/// SAs the table holds unless configured otherwise: 32k Child SAs (about 11 MiB of sparse
/// shared memory; DESIGN.md sizes a slot).
pub const DEFAULT_CAPACITY: u32 = 65_536;

/// Why a Child SA could not be installed. The local side is at fault (a full table, or
/// something the data plane does not do); the IKE SA stays, the Child SA is deleted.
#[derive(Debug)]
pub enum PlaneError {
    /// The table refused it (full, or an SPI clash).
    Table(TableError),
    /// The keying material does not fit the suite.
    Keymat,
    /// Inner and outer families mixed in a way the SPD cannot express (a TS pair of two
    /// families).
    Selectors,
}

impl core::fmt::Display for PlaneError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PlaneError::Table(e) => write!(f, "SA table: {e:?}"),
            PlaneError::Keymat => f.write_str("keying material of the wrong length"),
            PlaneError::Selectors => f.write_str("traffic selectors the SPD cannot hold"),
        }
    }
}

/// The two slots and the policies of one installed Child SA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstalledChild {
    /// The inbound SA's slot.
    pub inbound: SlotId,
    /// The outbound SA's slot.
    pub outbound: SlotId,
    /// The policies that send traffic into `outbound`.
    pub policies: Vec<Policy>,
    /// The prefixes of the peer's side that must be routed into the data plane.
    pub routes: Vec<IpNet>,
}

/// A route the data plane needs (the first Child SA for a prefix) or no longer needs (the
/// last one went). The shell applies them (a route into the TUN device of the portable
/// backend).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteChange {
    Add(IpNet),
    Remove(IpNet),
}

/// The SA table as the daemon writes it.
#[derive(Debug)]
pub struct Plane {
    table: TableWriter,
    path: PathBuf,
    /// Every installed Child SA's policies, in installation order; the SPD is rebuilt from
    /// them (the newest first, so that a rekeyed pair takes over its predecessor's traffic
    /// as soon as it is installed: make-before-break).
    policies: Vec<(SlotId, Vec<Policy>)>,
    /// How many installed SAs want each route.
    routes: HashMap<IpNet, usize>,
    route_changes: VecDeque<RouteChange>,
    /// SAs a previous control plane left in a table that a data plane still forwards with,
    /// not (yet) claimed by a manual SA of ours; removed at `orphans_until`.
    orphans: Vec<SlotId>,
    orphans_until: Option<Instant>,
    /// Child SAs replaced by a rekey, with when they go ([`REKEYED_GRACE`]), oldest first.
    retired: VecDeque<(Instant, InstalledChild)>,
    /// Installs mark the SPD instead of writing it ([`defer_spd_writes`](Self::defer_spd_writes)).
    defer_spd: bool,
    /// Policies changed since the SPD was last written.
    spd_dirty: bool,
}

/// How long SAs of a previous control plane keep forwarding after a restart: long enough for
/// the IKE SAs to be set up again and their Child SAs (newer, so first in the SPD) to take
/// the traffic over.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(60);

/// How long a Child SA replaced by a rekey stays in the table (strongSwan's
/// `delete_rekeyed_delay`): packets the peer sent with it before it switched may still be on
/// their way, or queued in a worker, when the Delete arrives. The new SA's policies come
/// first, so nothing is sent with the old one meanwhile; its inbound SA still decrypts, and
/// its policies still admit what it decrypts (RFC 4301 §5.2).
pub const REKEYED_GRACE: Duration = Duration::from_secs(5);

impl Plane {
    /// Creates the table at `path` with room for `capacity` SAs.
    pub fn create(path: &Path, capacity: u32) -> Result<Plane, TableError> {
        Ok(Plane::with(TableWriter::create(path, capacity)?, path))
    }

    fn with(table: TableWriter, path: &Path) -> Plane {
        Plane {
            table,
            path: path.to_path_buf(),
            policies: Vec::new(),
            routes: HashMap::new(),
            route_changes: VecDeque::new(),
            orphans: Vec::new(),
            orphans_until: None,
            retired: VecDeque::new(),
            defer_spd: false,
            spd_dirty: false,
        }
    }

    /// Re-attaches to the table a running data plane forwards with (the control plane
    /// restarted): every SA and policy in it stays. A manual SA installed again with the same
    /// parameters and keys takes its slot back, sequence numbers and replay state included;
    /// whatever is not claimed is removed [`ORPHAN_GRACE`] after `now`
    /// ([`expire_orphans`](Self::expire_orphans)). Recreating the file instead would pull the
    /// table from under the workers.
    pub fn adopt(path: &Path, now: Instant) -> Result<Plane, TableError> {
        let table = TableWriter::open(path)?;
        let mut policies = Vec::new();
        TableReader::open(path)?
            .read_policies(&mut policies)
            .map_err(|_| TableError::Truncated)?;
        let mut plane = Plane::with(table, path);
        for index in 0..plane.table.capacity() {
            if plane.table.read(SlotId(index)).is_ok() {
                plane.orphans.push(SlotId(index));
            }
        }
        // Oldest first in `self.policies`, as the SPD was written newest first.
        for policy in policies.into_iter().rev() {
            match plane
                .policies
                .iter_mut()
                .find(|(slot, _)| *slot == policy.outbound)
            {
                Some((_, list)) => list.insert(0, policy),
                None => plane.policies.push((policy.outbound, vec![policy])),
            }
        }
        if !plane.orphans.is_empty() {
            plane.orphans_until = Some(now + ORPHAN_GRACE);
        }
        Ok(plane)
    }

    /// SAs of a previous control plane still in the table.
    pub fn orphans(&self) -> usize {
        self.orphans.len()
    }

    /// Removes the orphans once their grace is over; returns how many SAs went.
    pub fn expire_orphans(&mut self, now: Instant) -> usize {
        match self.orphans_until {
            Some(until) if now >= until => {}
            _ => return 0,
        }
        self.orphans_until = None;
        let orphans = std::mem::take(&mut self.orphans);
        self.policies.retain(|(slot, _)| !orphans.contains(slot));
        if self.write_spd().is_err() {
            return 0;
        }
        for slot in &orphans {
            let _ = self.table.delete(*slot);
        }
        orphans.len()
    }

    /// Deletes the orphan inbound SA with `spi`, if any.
    fn drop_orphan_inbound(&mut self, spi: u32) {
        let found = self.orphans.iter().position(|slot| {
            self.table
                .read(*slot)
                .is_ok_and(|r| r.direction == Direction::Inbound && r.params.spi == spi)
        });
        if let Some(position) = found {
            let slot = self.orphans.swap_remove(position);
            let _ = self.table.delete(slot);
        }
    }

    /// The orphan slot holding exactly `record` (the install time aside), taken back.
    fn claim_orphan(&mut self, record: &SaRecord) -> Option<SlotId> {
        let position = self.orphans.iter().position(|slot| {
            self.table.read(*slot).is_ok_and(|mut found| {
                found.installed_at = record.installed_at;
                found == *record
            })
        })?;
        Some(self.orphans.swap_remove(position))
    }

    /// Where the table lives (workers open it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// SAs installed (two per Child SA).
    pub fn installed(&self) -> usize {
        self.table.installed()
    }

    /// Tells the workers the control plane is alive.
    pub fn heartbeat(&self) {
        self.table.heartbeat(unix_millis());
    }

    /// Installs both SAs of a Child SA and its policies. `replay_window` applies inbound;
    /// `volume` to each SA, which the workers count (their soft and hard expiry flags come
    /// back through [`status`](Self::status)).
    pub fn install(
        &mut self,
        child: &ChildSaInstalled,
        replay_window: u32,
        volume: VolumeLifetimes,
    ) -> Result<InstalledChild, PlaneError> {
        let policies_template = policies(&child.local_ts, &child.remote_ts)?;
        let record = |direction, spi, keymat: &[u8]| -> Result<SaRecord, PlaneError> {
            let mut params = sa_params(spi, child.suite, child.mode, child.path)?;
            params.esn = child.esn;
            params.replay_window = replay_window;
            // RFC 9611: a per-resource Child SA sends from the worker of its resource (the data
            // plane takes the index modulo its worker count), so that worker never hands its
            // plaintext over; every other SA is owned by whichever worker its slot gives.
            let owner_worker = match (direction, child.resource) {
                (Direction::Outbound, Some(resource)) => (resource % u32::from(ANY_WORKER)) as u16,
                _ => ANY_WORKER,
            };
            Ok(SaRecord {
                direction,
                params,
                keymat: Keymat::new(keymat).ok_or(PlaneError::Keymat)?,
                lifetimes: Lifetimes {
                    soft_bytes: volume.rekey_bytes,
                    hard_bytes: volume.life_bytes,
                    soft_packets: volume.rekey_packets,
                    hard_packets: volume.life_packets,
                    // Time lifetimes are the daemon's timers.
                    ..Lifetimes::default()
                },
                owner_worker,
                installed_at: unix_millis() / 1000,
                pair: None,
            })
        };
        let mut inbound = record(
            Direction::Inbound,
            child.inbound_spi,
            child.inbound_keymat.expose(),
        )?;
        let outbound = record(
            Direction::Outbound,
            child.outbound_spi,
            child.outbound_keymat.expose(),
        )?;
        // The outbound SA first: the inbound one names it as its pair, whose policies are the
        // selectors the workers hold decrypted packets to (RFC 4301 §5.2).
        let out_slot = self.table.install(&outbound).map_err(PlaneError::Table)?;
        inbound.pair = Some(out_slot);
        let in_slot = match self.table.install(&inbound) {
            Ok(slot) => slot,
            Err(e) => {
                let _ = self.table.delete(out_slot);
                return Err(PlaneError::Table(e));
            }
        };
        let policies: Vec<Policy> = policies_template
            .into_iter()
            .map(|mut p| {
                p.outbound = out_slot;
                p
            })
            .collect();
        self.policies.push((out_slot, policies.clone()));
        if let Err(e) = self.policies_added() {
            self.policies.pop();
            let _ = self.table.delete(out_slot);
            let _ = self.table.delete(in_slot);
            return Err(PlaneError::Table(e));
        }
        let routes = match child.mode {
            Mode::Tunnel => prefixes(&child.remote_ts),
            Mode::Transport => Vec::new(),
        };
        self.want_routes(&routes);
        Ok(InstalledChild {
            inbound: in_slot,
            outbound: out_slot,
            policies,
            routes,
        })
    }

    /// Installs a `[[manual_sa]]`: an inbound SA, or an outbound one with the policies of its
    /// traffic selectors. Manual SAs stay for the daemon's life.
    pub fn install_manual(&mut self, sa: &crate::config::ManualSa) -> Result<SlotId, PlaneError> {
        let suite = super::connection::esp_suite(sa.cipher);
        let udp_encap = sa.encap.map(|e| crate::ike::NattPorts {
            local: e.sport,
            remote: e.dport,
        });
        let path = EspPath {
            local: sa.local,
            remote: sa.remote,
            udp_encap,
        };
        let mode = match sa.mode {
            crate::config::Mode::Tunnel => Mode::Tunnel,
            crate::config::Mode::Transport => Mode::Transport,
        };
        let mut params = sa_params(sa.spi, suite, mode, path)?;
        params.esn = sa.esn;
        params.replay_window = sa.replay_window;
        let direction = match sa.direction {
            crate::config::Direction::In => Direction::Inbound,
            crate::config::Direction::Out => Direction::Outbound,
        };
        let record = SaRecord {
            direction,
            params,
            keymat: Keymat::new(sa.key.expose()).ok_or(PlaneError::Keymat)?,
            lifetimes: Lifetimes::default(),
            owner_worker: ANY_WORKER,
            installed_at: unix_millis() / 1000,
            pair: None,
        };
        let local_ts: Vec<TrafficSelector> = sa
            .local_ts
            .iter()
            .map(super::connection::traffic_selector)
            .collect();
        let remote_ts: Vec<TrafficSelector> = sa
            .remote_ts
            .iter()
            .map(super::connection::traffic_selector)
            .collect();
        let template = match direction {
            Direction::Outbound => Some(policies(&local_ts, &remote_ts)?),
            Direction::Inbound => None,
        };
        if let Some(slot) = self.claim_orphan(&record) {
            // The policies came back with the table; routes are wanted again.
            if template.is_some() && mode == Mode::Tunnel {
                self.want_routes(&prefixes(&remote_ts));
            }
            return Ok(slot);
        }
        if direction == Direction::Inbound {
            // The file changed the SA (a new key) while the table kept the old one: the file wins.
            self.drop_orphan_inbound(sa.spi);
        }
        let slot = self.table.install(&record).map_err(PlaneError::Table)?;
        if let Some(template) = template {
            let policies = template
                .into_iter()
                .map(|mut p| {
                    p.outbound = slot;
                    p
                })
                .collect();
            self.policies.push((slot, policies));
            if let Err(e) = self.policies_added() {
                self.policies.pop();
                let _ = self.table.delete(slot);
                return Err(PlaneError::Table(e));
            }
            if mode == Mode::Tunnel {
                self.want_routes(&prefixes(&remote_ts));
            }
        }
        Ok(slot)
    }

    /// Removes a Child SA: its policies first (so no packet is sent into a freed slot), then
    /// both SAs, whose keys the table zeroes.
    pub fn remove(&mut self, child: &InstalledChild) {
        self.policies.retain(|(slot, _)| *slot != child.outbound);
        // The SPD names only installed SAs, so this cannot fail for a consistent table; if it
        // somehow does, the slots stay rather than leave a policy pointing at nothing.
        if self.write_spd().is_ok() {
            let _ = self.table.delete(child.outbound);
            let _ = self.table.delete(child.inbound);
        }
        for net in &child.routes {
            if let Some(n) = self.routes.get_mut(net) {
                *n -= 1;
                if *n == 0 {
                    self.routes.remove(net);
                    self.route_changes.push_back(RouteChange::Remove(*net));
                }
            }
        }
    }

    /// Keeps a Child SA that a rekey replaced for [`REKEYED_GRACE`], then removes it
    /// ([`expire_retired`](Self::expire_retired)).
    pub fn retire(&mut self, child: InstalledChild, now: Instant) {
        self.retired.push_back((now + REKEYED_GRACE, child));
    }

    /// When the next retired Child SA is due to go.
    pub fn next_retirement(&self) -> Option<Instant> {
        self.retired.front().map(|(at, _)| *at)
    }

    /// Removes the retired Child SAs whose grace is over; returns how many went.
    pub fn expire_retired(&mut self, now: Instant) -> usize {
        let mut removed = 0;
        while self.retired.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, child)) = self.retired.pop_front() {
                self.remove(&child);
                removed += 1;
            }
        }
        removed
    }

    /// The next route to add or remove.
    pub fn poll_route_change(&mut self) -> Option<RouteChange> {
        self.route_changes.pop_front()
    }

    fn want_routes(&mut self, nets: &[IpNet]) {
        for net in nets {
            let n = self.routes.entry(*net).or_insert(0);
            *n += 1;
            if *n == 1 {
                self.route_changes.push_back(RouteChange::Add(*net));
            }
        }
    }

    /// What the workers report for a slot: packets, bytes, drops, expiry flags.
    pub fn status(&self, slot: SlotId) -> Option<SlotStatus> {
        self.table.status(slot).ok()
    }

    /// From now on, installs into an SPD of [`SHARED_FROM`] policies or more only mark it
    /// for writing; [`flush_spd`](Self::flush_spd) writes it. The daemon flushes before it
    /// sends anything, and a burst of installs (100k tunnels coming up) costs one rewrite of
    /// the SPD (milliseconds at that size) per burst instead of one per Child SA. A smaller
    /// SPD is still written at once: cheap, and a Child SA we initiated has its policies in
    /// the table before the peer's first packet on it can arrive. (At the larger sizes the
    /// workers take the index from the data plane's indexer, some milliseconds behind the
    /// table anyway.) Removals write at once: they must precede the slots' deletion.
    pub fn defer_spd_writes(&mut self) {
        self.defer_spd = true;
    }

    /// Writes the SPD if installs changed it since it was last written.
    pub fn flush_spd(&mut self) -> Result<(), TableError> {
        if self.spd_dirty {
            self.write_spd()?;
        }
        Ok(())
    }

    /// After an install added policies: the SPD written now, or marked for the next flush
    /// (checked against the SPD's capacity now, so that the install fails as it would).
    fn policies_added(&mut self) -> Result<(), TableError> {
        if !self.defer_spd {
            return self.write_spd();
        }
        let count: usize = self.policies.iter().map(|(_, p)| p.len()).sum();
        if count < SHARED_FROM {
            return self.write_spd();
        }
        if count > self.table.capacity() as usize {
            return Err(TableError::TooManyPolicies(count));
        }
        self.spd_dirty = true;
        Ok(())
    }

    fn write_spd(&mut self) -> Result<(), TableError> {
        let all: Vec<Policy> = self
            .policies
            .iter()
            .rev()
            .flat_map(|(_, p)| p.iter().cloned())
            .collect();
        self.table.set_policies(&all)?;
        self.spd_dirty = false;
        Ok(())
    }
}

fn sa_params(spi: u32, suite: EspSuite, mode: Mode, path: EspPath) -> Result<SaParams, PlaneError> {
    let endpoints = match (path.local, path.remote) {
        (IpAddr::V4(local), IpAddr::V4(remote)) => Endpoints::V4 { local, remote },
        (IpAddr::V6(local), IpAddr::V6(remote)) => Endpoints::V6 { local, remote },
        _ => return Err(PlaneError::Selectors),
    };
    let suite = match suite {
        EspSuite::Aes128Gcm16 => CipherSuite::Aes128Gcm16,
        EspSuite::Aes256Gcm16 => CipherSuite::Aes256Gcm16,
        EspSuite::ChaCha20Poly1305 => CipherSuite::ChaCha20Poly1305,
    };
    let mut params = SaParams::tunnel(spi, suite, endpoints);
    params.mode = match mode {
        Mode::Tunnel => EspMode::Tunnel,
        Mode::Transport => EspMode::Transport,
    };
    params.df = DfPolicy::Copy;
    params.udp_encap = path.udp_encap.map(|p| UdpEncap {
        local_port: p.local,
        remote_port: p.remote,
    });
    Ok(params)
}

/// One policy per pair of selectors of the same family.
fn policies(
    local: &[TrafficSelector],
    remote: &[TrafficSelector],
) -> Result<Vec<Policy>, PlaneError> {
    let mut out = Vec::new();
    for l in local {
        for r in remote {
            let (Some((l_range, l_proto, l_ports)), Some((r_range, r_proto, r_ports))) =
                (range_of(l), range_of(r))
            else {
                continue;
            };
            if matches!(l_range, AddressRange::V4 { .. })
                != matches!(r_range, AddressRange::V4 { .. })
            {
                continue;
            }
            // A protocol on either side narrows the pair; two different ones match nothing.
            let protocol = match (l_proto, r_proto) {
                (0, 0) => None,
                (0, p) | (p, 0) => Some(p),
                (a, b) if a == b => Some(a),
                _ => continue,
            };
            out.push(Policy {
                local: l_range,
                remote: r_range,
                protocol,
                local_ports: l_ports,
                remote_ports: r_ports,
                outbound: SlotId(0),
            });
        }
    }
    if out.is_empty() {
        return Err(PlaneError::Selectors);
    }
    Ok(out)
}

fn range_of(ts: &TrafficSelector) -> Option<(AddressRange, u8, (u16, u16))> {
    match ts {
        TrafficSelector::Ipv4 {
            ip_protocol,
            start_port,
            end_port,
            start,
            end,
        } => Some((
            AddressRange::new(IpAddr::V4(*start), IpAddr::V4(*end))?,
            *ip_protocol,
            (*start_port, *end_port),
        )),
        TrafficSelector::Ipv6 {
            ip_protocol,
            start_port,
            end_port,
            start,
            end,
        } => Some((
            AddressRange::new(IpAddr::V6(*start), IpAddr::V6(*end))?,
            *ip_protocol,
            (*start_port, *end_port),
        )),
        _ => None,
    }
}

/// The fewest prefixes that cover the address ranges of `selectors`.
fn prefixes(selectors: &[TrafficSelector]) -> Vec<IpNet> {
    let mut out = Vec::new();
    for ts in selectors {
        match ts {
            TrafficSelector::Ipv4 { start, end, .. } => {
                out.extend(ipnet::Ipv4Subnets::new(*start, *end, 0).map(IpNet::V4))
            }
            TrafficSelector::Ipv6 { start, end, .. } => {
                out.extend(ipnet::Ipv6Subnets::new(*start, *end, 0).map(IpNet::V6))
            }
            _ => {}
        }
    }
    out.sort();
    out.dedup();
    out
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

//! What the engine does with an IKE SA's events: Child SAs into the table (and out), the
//! rekey and hard-lifetime schedule, IKE SA rekeys (the successor takes the Child SAs),
//! reauthentication, `unique_ids` and INITIAL_CONTACT.

use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::timing::{hard_lifetime, jittered, retry_pause, KEEPALIVE_INTERVAL};
use super::{ChildEntry, Engine};
use crate::config::UniqueIds;
use crate::ike::{ChildSaInstalled, DeleteReason, Error, Event, IkeSa};
use crate::wire::NotifyType;

impl super::IkeEntry {
    /// The children of the connection with `per_cpu_sas` whose fallback Child SA is here
    /// (RFC 9611): those whose per-resource Child SAs may be asked for.
    pub(super) fn fallbacks_with_resources(&self) -> Vec<usize> {
        self.conn
            .template
            .child_configs()
            .filter(|(i, c)| {
                c.per_resource_sas > 0
                    && self
                        .children
                        .iter()
                        .any(|ch| ch.sa.config == *i && ch.sa.resource.is_none())
            })
            .map(|(i, _)| i)
            .collect()
    }
}

impl Engine {
    /// `key_renewal = "reauth"`: a new IKE SA with a full authentication, which deletes `old`
    /// once it is established.
    pub(super) fn reauthenticate(&mut self, now: Instant, old: u64, name: &str) {
        match self.initiate(now, name) {
            Ok(new) => {
                info!(conn = %name, old, new, "reauthenticating");
                if let Some(entry) = self.sas.get_mut(&new) {
                    entry.replaces = Some(old);
                }
            }
            Err(e) => {
                warn!(conn = %name, old, "cannot reauthenticate: {e}");
                if let Some(entry) = self.sas.get_mut(&old) {
                    entry.rekey_at = Some(now + retry_pause());
                }
                self.reschedule(old);
            }
        }
    }

    /// After an IKE SA is established: the SA it reauthenticates goes, and `unique_ids`
    /// applies to what the peer initiated (a client that lost its state comes back).
    pub(super) fn after_established(&mut self, id: u64, now: Instant) {
        let Some(entry) = self.sas.get(&id) else {
            return;
        };
        if let Some(old) = entry.replaces {
            self.delete(now, old);
            return;
        }
        let Some((_, est)) = &entry.established else {
            return;
        };
        if est.role != crate::crypto::Role::Responder {
            return;
        }
        let policy = entry.conn.conn.unique_ids;
        let initial_contact = est.initial_contact;
        let peer = est.peer_id.clone();
        let name = entry.conn.conn.name.clone();
        let duplicates: Vec<u64> = self
            .sas
            .values()
            .filter(|e| e.id != id && e.conn.conn.name == name && e.sa.is_established())
            .filter(|e| {
                e.established
                    .as_ref()
                    .is_some_and(|(_, x)| x.peer_id == peer)
            })
            .map(|e| e.id)
            .collect();
        if duplicates.is_empty() {
            return;
        }
        match (policy, initial_contact) {
            (UniqueIds::Never, _) | (UniqueIds::No, false) => {}
            // The peer says it holds no other IKE SA with us: ours are stale (§2.4).
            (_, true) | (UniqueIds::Replace, false) => {
                info!(conn = %name, id, replaced = ?duplicates, initial_contact,
                      "unique_ids: replacing");
                for old in duplicates {
                    self.delete(now, old);
                }
            }
            (UniqueIds::Keep, false) => {
                info!(conn = %name, id, kept = ?duplicates, "unique_ids: keeping the old");
                self.delete(now, id);
            }
        }
    }

    pub(super) fn on_event(&mut self, id: u64, now: Instant, event: Event) {
        let Some(entry) = self.sas.get_mut(&id) else {
            return;
        };
        let name = entry.conn.conn.name.clone();
        let spis = format!("{:016x}_i {:016x}_r", entry.sa.spi_i(), entry.sa.spi_r());
        match event {
            Event::IkeSaEstablished(e) => {
                self.counters.ike_established += 1;
                // The connection IKE_AUTH chose among those that accepted the address.
                let chosen = entry.candidates.get(entry.sa.config_index()).cloned();
                if let Some(conn) = chosen {
                    entry.conn = conn;
                }
                entry.candidates.clear();
                let name = entry.conn.conn.name.clone();
                info!(conn = %name, id, spis, peer = ?e.peer_id, suite = ?e.suite, ke = ?e.ke,
                      nat = e.nat.detected(), "IKE SA established");
                entry.rekey_at = jittered(now, entry.conn.conn.rekey_time);
                entry.expire_at = hard_lifetime(now, entry.conn.conn.rekey_time);
                if e.nat.local_behind_nat {
                    entry.keepalive_at = Some(now + KEEPALIVE_INTERVAL);
                }
                entry.established = Some((now, e));
                if let Some(h) = entry.half_open.take() {
                    self.half_open.remove(&h);
                }
                // The connection's other children follow the one IKE_AUTH carried.
                if entry.sa.role() == crate::crypto::Role::Initiator {
                    for index in 1..entry.conn.conn.children.len() {
                        if let Err(e) = entry.sa.create_child_from(now, index) {
                            warn!(conn = %name, id, index, "cannot create child: {e:?}");
                        }
                    }
                }
                self.after_established(id, now);
            }
            Event::ChildSaInstalled(c) => {
                let (config, fallback) = (c.config, c.resource.is_none());
                if self.install_child(id, now, c, None) && fallback {
                    self.request_resources(id, now, config);
                }
            }
            Event::ChildSaRekeyed(r) => {
                let old = r.old_inbound_spi;
                let new = Box::new(r.new);
                self.install_child(id, now, new, Some(old));
            }
            // RFC 9611: the peer takes no more per-resource Child SAs of a child (the IKE SA
            // asks no further), or we refused one: no rekey was refused, none to retry.
            Event::ChildSaFailed {
                error:
                    error @ (Error::Refused {
                        notify: NotifyType::TsMaxQueue,
                    }
                    | Error::TooManyResourceSas { .. }),
            } => {
                info!(conn = %name, id, spis, "no more per-resource Child SAs: {error}");
            }
            Event::ChildSaDeleted(d) => {
                if let Some(pos) = entry
                    .children
                    .iter()
                    .position(|c| c.sa.inbound_spi == d.inbound_spi)
                {
                    let child = entry.children.remove(pos);
                    if d.reason == DeleteReason::Rekeyed {
                        self.plane.retire(child.installed, now);
                    } else {
                        self.plane.remove(&child.installed);
                        // RFC 9611: a resource without its own Child SA sends through the
                        // fallback, handed over between workers; ask for it again after a
                        // pause (the IKE SA asks only for resources that are missing, and only
                        // if we are the side that asks for them).
                        if child.sa.resource.is_some() {
                            entry.resources_at = Some(now + retry_pause());
                        }
                    }
                    info!(conn = %name, id, spi_in = format_args!("{:08x}", d.inbound_spi),
                          spi_out = format_args!("{:08x}", d.outbound_spi), reason = ?d.reason,
                          "Child SA deleted");
                }
            }
            Event::IkeSaDeleted(d) => {
                info!(conn = %name, id, spis, reason = ?d.reason, "IKE SA deleted");
                if d.reason != DeleteReason::Rekeyed {
                    for child in std::mem::take(&mut entry.children) {
                        self.plane.remove(&child.installed);
                    }
                }
            }
            Event::IkeSaRekeyed(r) => {
                info!(conn = %name, id, old = spis, new_spi_i = format_args!("{:016x}", r.new_spi_i),
                      new_spi_r = format_args!("{:016x}", r.new_spi_r), "IKE SA rekeyed");
                // The successor (the event's SPIs) takes the Child SAs; a redundant new SA of
                // simultaneous rekeys (§2.8.2) runs on its own until it is deleted.
                let made: Vec<IkeSa> = std::iter::from_fn(|| entry.sa.poll_rekeyed()).collect();
                let children = std::mem::take(&mut entry.children);
                let established = entry.established.clone();
                let conn = entry.conn.clone();
                let mut children = Some(children);
                for successor in made {
                    let survivor =
                        (successor.spi_i(), successor.spi_r()) == (r.new_spi_i, r.new_spi_r);
                    let new_id = self.insert(conn.clone(), successor, now, None);
                    if let (true, Some(new)) = (survivor, self.sas.get_mut(&new_id)) {
                        new.children = children.take().unwrap_or_default();
                        new.established = established.clone().map(|(_, mut e)| {
                            e.suite = r.suite;
                            e.ke = r.ke;
                            e.spi_i = r.new_spi_i;
                            e.spi_r = r.new_spi_r;
                            (now, e)
                        });
                        new.rekey_at = jittered(now, new.conn.conn.rekey_time);
                        new.expire_at = hard_lifetime(now, new.conn.conn.rekey_time);
                    }
                    self.after(new_id, now);
                }
                if let (Some(children), Some(entry)) = (children, self.sas.get_mut(&id)) {
                    // No successor came (it could not be built): the Child SAs stay here.
                    entry.children = children;
                }
            }
            Event::AuthenticationFailed(a) => {
                self.counters.auth_failed += 1;
                warn!(conn = %name, id, spis, by = ?a.detected_by, peer = ?a.peer_id,
                      "authentication failed: {:?}", a.error);
                if let Some(old) = entry.replaces.take() {
                    if let Some(old) = self.sas.get_mut(&old) {
                        old.rekey_at = Some(now + retry_pause());
                    }
                    self.reschedule(old);
                }
            }
            Event::Failed { reason } => {
                warn!(conn = %name, id, spis, "IKE SA failed: {reason:?}");
                if let Some(old) = entry.replaces.take() {
                    // The reauthentication failed: the old IKE SA stays and tries again.
                    if let Some(old) = self.sas.get_mut(&old) {
                        old.rekey_at = Some(now + retry_pause());
                    }
                    self.reschedule(old);
                }
            }
            Event::ChildSaFailed { error } => {
                warn!(conn = %name, id, spis, "Child SA not created: {error:?}");
                // The peer was busy (an IKE SA rekey under way, say): if that was a
                // per-resource Child SA, those still missing are asked for again after a
                // pause (the IKE SA skips the ones that are there).
                let busy = Error::Refused {
                    notify: NotifyType::TemporaryFailure,
                };
                if error == busy && !entry.fallbacks_with_resources().is_empty() {
                    entry.resources_at = Some(now + retry_pause());
                }
                // A refused rekey (the peer was busy, say) leaves the old pair: try again
                // after a random pause, so that two peers that collided do not again.
                for child in entry.children.iter_mut().filter(|c| c.rekeying) {
                    child.rekeying = false;
                    child.rekey_at = Some(now + retry_pause());
                }
            }
            Event::IkeSaRekeyFailed { error } => {
                warn!(conn = %name, id, spis, "IKE SA rekey failed: {error:?}");
                if entry.established.is_some() {
                    entry.rekeying = false;
                    entry.rekey_at = Some(now + retry_pause());
                }
            }
        }
    }

    /// Puts a Child SA into the table; whether it is there.
    pub(super) fn install_child(
        &mut self,
        id: u64,
        now: Instant,
        sa: Box<ChildSaInstalled>,
        rekey_of: Option<u32>,
    ) -> bool {
        let Some(entry) = self.sas.get_mut(&id) else {
            return false;
        };
        let name = entry.conn.conn.name.clone();
        let child_conf = entry.conn.conn.children.get(sa.config);
        let replay_window = child_conf.map_or(1024, |c| c.replay_window);
        let rekey_time = child_conf.map_or(Duration::ZERO, |c| c.rekey_time);
        let volume = child_conf.map_or_else(Default::default, |c| c.volume);
        match self.plane.install(&sa, replay_window, volume) {
            Ok(installed) => {
                self.counters.child_installed += 1;
                info!(conn = %name, id, spi_in = format_args!("{:08x}", sa.inbound_spi),
                      spi_out = format_args!("{:08x}", sa.outbound_spi), suite = ?sa.suite,
                      esn = sa.esn, mode = ?sa.mode, path = ?sa.path, rekey_of = ?rekey_of,
                      resource = ?sa.resource, "Child SA installed");
                let rekey_at = jittered(now, rekey_time);
                entry.children.push(ChildEntry {
                    sa,
                    installed,
                    installed_at: now,
                    rekey_at,
                    rekeying: false,
                    expire_at: hard_lifetime(now, rekey_time),
                });
                true
            }
            Err(e) => {
                self.counters.child_install_failed += 1;
                warn!(conn = %name, id, "cannot install Child SA: {e}");
                let spi = sa.inbound_spi;
                // The peer has it: tell it to remove its half.
                let _ = entry.sa.delete_child(now, spi);
                false
            }
        }
    }

    /// RFC 9611: once the fallback Child SA of a child with `per_cpu_sas = N` is in and the
    /// peer answered its SA_RESOURCE_INFO, asks for the N per-resource Child SAs. The IKE SA
    /// sends them one at a time, drops the rest at a TS_MAX_QUEUE, and refuses resources that
    /// exist or are on their way (a fallback installed again after its rekey's old pair
    /// vanished changes nothing).
    pub(super) fn request_resources(&mut self, id: u64, now: Instant, config: usize) {
        let Some(entry) = self.sas.get_mut(&id) else {
            return;
        };
        let wanted = entry
            .conn
            .template
            .child_config(config)
            .map_or(0, |c| c.per_resource_sas);
        if wanted == 0 {
            return;
        }
        let name = &entry.conn.conn.name;
        if !entry.sa.peer_supports_resources(config) {
            // The peer did not answer our SA_RESOURCE_INFO (strongSwan 5, say), refused more
            // with TS_MAX_QUEUE, or it made the fallback and asks for the rest itself.
            debug!(conn = %name, id, child = config, "no per-resource Child SAs to ask for");
            return;
        }
        let asked = (0..wanted)
            .filter(|&r| entry.sa.create_child_for_resource(now, config, r).is_ok())
            .count();
        if asked > 0 {
            info!(conn = %name, id, child = config, asked, "asking for per-resource Child SAs");
        }
    }
}

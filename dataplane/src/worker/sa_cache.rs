//! A worker's copy of the SAs in the shared table, ready for the ESP core.
//!
//! Building an SA (expanding its key) is done once per installed record, not per packet: each
//! packet costs an SPI index probe and one load of the slot's version, and the cached SA is
//! rebuilt only when the version moved. After each batch, [`SaCache::flush`] reports counters,
//! lifetimes and sequence state into the slots' worker areas.
//!
//! Restart safety. A restarted worker must never send a sequence number (and so a GCM IV)
//! twice, nor accept a packet twice. Outbound, the cache reserves blocks of
//! [`OUTBOUND_SEQUENCE_RESERVATION`] numbers in the table *before* using them and a restarted
//! worker resumes after the reservation, skipping at most one block. Inbound, the replay top is
//! written at every flush and a restarted worker treats everything up to it as received; only
//! packets accepted after the last flush could be accepted once more.
//!
//! Ownership. With several workers over one table, each SA has one owner ([`owner_of`]): the
//! only worker that touches its sequence counter, replay window and worker area. The owner
//! follows from the slot and the record's `owner_worker` (an ordinary SA: its slot modulo the
//! worker count; a per-resource SA, RFC 9611: the worker it is pinned to). A cache made with
//! [`SaCache::for_worker`] reads the owner with the record and refuses every other worker's
//! SAs, so no code path can make two cores share one, whatever it looked up.

use crate::esp::{InboundSa, InboundSaLookup, OutboundSa, SaCounters, SequenceStatus};
use crate::table::{
    layout::flags, Direction, Lifetimes, ReadError, SaRecord, SlotId, TableReader, WorkerArea,
    ANY_WORKER,
};

/// Sequence numbers reserved in the table ahead of use. A reservation is renewed when fewer
/// than half of it are left, so one lookup may be followed by up to 32768 packets.
pub const OUTBOUND_SEQUENCE_RESERVATION: u64 = 1 << 16;

/// Slots touched since the last flush that are remembered individually; past this many the
/// flush scans every cached SA instead.
const TOUCHED_CAPACITY: usize = 256;

#[derive(Debug)]
struct Cached<S> {
    version: u64,
    sa: S,
    lifetimes: Lifetimes,
    installed_at: u64,
    /// Counters as of the last flush, to report the difference.
    reported: SaCounters,
    touched: bool,
    hard_expired: bool,
    /// Inbound: the outbound twin the inbound policy check uses (`SaRecord::pair`).
    pair: Option<SlotId>,
}

/// Which of `workers` workers owns the SA in `slot` whose record says `owner_worker`
/// ([`SaRecord::owner_worker`]): for [`ANY_WORKER`] the slot's index modulo the
/// worker count (ordinary SAs spread over the workers), otherwise `owner_worker` modulo the
/// worker count (a per-resource SA pinned to its worker; a control plane that knows fewer
/// workers than it numbered still gets one owner per SA). Both inputs are fixed while the
/// SA is installed, so an SA keeps its owner for its whole life. `workers` of zero counts as
/// one.
pub fn owner_of(slot: SlotId, owner_worker: u16, workers: usize) -> usize {
    let workers = workers.max(1);
    if owner_worker == ANY_WORKER {
        slot.0 as usize % workers
    } else {
        usize::from(owner_worker) % workers
    }
}

/// What a slot held at one version, as far as ownership goes.
#[derive(Clone, Copy, Debug)]
struct OwnerNote {
    /// The slot's version when it was read; [`UNREAD`] before the first read.
    version: u64,
    /// The record's `owner_worker`; `None`: no SA at that version (free or undecodable).
    owner_worker: Option<u16>,
}

/// A version no stable slot has (stable versions are even), so a fresh note never matches.
const UNREAD: u64 = u64::MAX;

/// The SAs one worker owns, keyed by table slot.
#[derive(Debug)]
pub struct SaCache<'t> {
    table: &'t TableReader,
    /// This worker's index and the worker count: SAs of other workers' slots are refused.
    worker: usize,
    workers: usize,
    inbound: Vec<Option<Cached<InboundSa>>>,
    outbound: Vec<Option<Cached<OutboundSa>>>,
    /// Where each outbound slot's reservation ends.
    reserved_until: Vec<u64>,
    touched: Vec<(Direction, u32)>,
    touched_overflow: bool,
    /// The SPI and slot the last successful inbound lookup found: the policy check right
    /// after decryption asks about that SA without a second index probe.
    last_inbound: Option<(u32, usize)>,
    /// Each slot's `owner_worker` as of a version: deciding whose a packet is costs one
    /// version load, and the record is read again only when the slot changed.
    owners: Vec<OwnerNote>,
}

impl<'t> SaCache<'t> {
    /// A cache over `table` for the only worker: every SA is its own. Allocates its per-slot
    /// arrays once, here.
    pub fn new(table: &'t TableReader) -> Self {
        Self::for_worker(table, 0, 1)
    }

    /// A cache for worker `worker` of `workers`: it hands out only the SAs that worker owns
    /// ([`owner_of`]) and answers `None` for the others, as if they were not installed.
    pub fn for_worker(table: &'t TableReader, worker: usize, workers: usize) -> Self {
        let capacity = table.capacity() as usize;
        Self {
            table,
            worker,
            workers: workers.max(1),
            inbound: (0..capacity).map(|_| None).collect(),
            outbound: (0..capacity).map(|_| None).collect(),
            reserved_until: vec![0; capacity],
            touched: Vec::with_capacity(TOUCHED_CAPACITY),
            touched_overflow: false,
            last_inbound: None,
            owners: vec![
                OwnerNote {
                    version: UNREAD,
                    owner_worker: None,
                };
                capacity
            ],
        }
    }

    /// The [`SaRecord::owner_worker`] of the SA in `slot` as installed now, for
    /// [`owner_of`]: the record is read only when the slot's version moved since the last
    /// look. `None` when the slot holds no SA, or the writer kept it busy (ask again later).
    pub fn owner_worker(&mut self, slot: SlotId) -> Option<u16> {
        let version = self.table.version(slot)?;
        let note = self.owners.get(slot.0 as usize)?;
        if note.version != version {
            match self.table.read(slot) {
                // Possibly newer than `version`: then it is the newer SA's owner, noted as such.
                Ok(snapshot) => {
                    self.note_owner(slot, snapshot.version, Some(snapshot.record.owner_worker))
                }
                // So until the writer writes the slot again, which moves its version.
                Err(ReadError::Free | ReadError::Corrupt) => self.note_owner(slot, version, None),
                Err(ReadError::Busy | ReadError::OutOfRange) => return None,
            }
        }
        self.owners.get(slot.0 as usize)?.owner_worker
    }

    fn note_owner(&mut self, slot: SlotId, version: u64, owner_worker: Option<u16>) {
        if let Some(note) = self.owners.get_mut(slot.0 as usize) {
            *note = OwnerNote {
                version,
                owner_worker,
            };
        }
    }

    /// The `pair` of the inbound SA that the last lookup found for `spi` (the one that just
    /// decrypted a packet). `None` when the last lookup was for another SPI or found nothing.
    pub fn inbound_pair(&self, spi: u32) -> Option<Option<SlotId>> {
        let (last, index) = self.last_inbound?;
        if last != spi {
            return None;
        }
        self.inbound.get(index)?.as_ref().map(|entry| entry.pair)
    }

    /// Whether an SA in `slot` whose record says `owner_worker` is this worker's.
    fn owns(&self, slot: SlotId, owner_worker: u16) -> bool {
        owner_of(slot, owner_worker, self.workers) == self.worker
    }

    /// Whether the slot, at `version`, is known (from its owner note) to hold no SA of this
    /// worker's, so that it need not be read.
    fn known_not_mine(&self, slot: SlotId, version: u64) -> bool {
        self.owners.get(slot.0 as usize).is_some_and(|note| {
            note.version == version
                && note
                    .owner_worker
                    .is_none_or(|owner| !self.owns(slot, owner))
        })
    }

    fn touch(&mut self, direction: Direction, slot: u32) {
        if self.touched.len() < TOUCHED_CAPACITY {
            self.touched.push((direction, slot));
        } else {
            self.touched_overflow = true;
        }
    }

    /// The outbound SA in `slot`, current with the table, with sequence numbers reserved.
    /// `None` when the slot holds no outbound SA, the SA reached a hard lifetime or it is
    /// another worker's.
    pub fn outbound_sa(&mut self, slot: SlotId) -> Option<&mut OutboundSa> {
        let index = slot.0 as usize;
        let version = self.table.version(slot)?;
        // A current entry was this worker's when it was loaded, and an SA's owner is fixed.
        let current = matches!(&self.outbound[index], Some(c) if c.version == version);
        if !current {
            if self.known_not_mine(slot, version) {
                return None;
            }
            let snapshot = self.table.read(slot).ok()?;
            let record = snapshot.record;
            self.note_owner(slot, snapshot.version, Some(record.owner_worker));
            if record.direction != Direction::Outbound || !self.owns(slot, record.owner_worker) {
                self.outbound[index] = None;
                return None;
            }
            let mut sa = OutboundSa::new(record.params, record.keymat.as_bytes()).ok()?;
            // Resume after whatever an earlier owner of this slot's SA reserved.
            let resume = self.table.worker_area(slot)?.status().next_sequence;
            sa.advance_sequence_to(resume);
            self.reserved_until[index] = 0;
            self.outbound[index] = Some(cached(snapshot.version, sa, &record));
        }
        let entry = self.outbound[index].as_mut()?;
        if entry.hard_expired {
            return None;
        }
        let next = entry.sa.next_sequence();
        if next + OUTBOUND_SEQUENCE_RESERVATION / 2 > self.reserved_until[index] {
            let until = next.saturating_add(OUTBOUND_SEQUENCE_RESERVATION);
            self.table.worker_area(slot)?.reserve_sequence_until(until);
            self.reserved_until[index] = until;
        }
        if !entry.touched {
            entry.touched = true;
            self.touch(Direction::Outbound, slot.0);
        }
        self.outbound[index].as_mut().map(|entry| &mut entry.sa)
    }

    /// Reports what happened since the last flush into the table, and checks lifetimes:
    /// soft limits raise the flag that asks the control plane for a rekey; hard limits also
    /// stop the SA here. `now` is seconds since the epoch.
    pub fn flush(&mut self, now: u64) {
        let touched = std::mem::take(&mut self.touched);
        if self.touched_overflow {
            self.touched_overflow = false;
            for index in 0..self.inbound.len() {
                self.flush_slot(Direction::Inbound, index as u32, now);
                self.flush_slot(Direction::Outbound, index as u32, now);
            }
        } else {
            for &(direction, slot) in &touched {
                self.flush_slot(direction, slot, now);
            }
        }
        self.touched = touched;
        self.touched.clear();
    }

    fn flush_slot(&mut self, direction: Direction, slot: u32, now: u64) {
        let Some(area) = self.table.worker_area(SlotId(slot)) else {
            return;
        };
        let index = slot as usize;
        // An entry whose slot was written since (the SA deleted, perhaps another installed,
        // perhaps another worker's) must not report into the slot's worker area: it would
        // count, flag or resume someone else's SA. Records are never rewritten in place, so
        // a moved version means the entry's SA is gone.
        let version = self.table.version(SlotId(slot));
        let entries_version = match direction {
            Direction::Inbound => self.inbound[index].as_ref().map(|entry| entry.version),
            Direction::Outbound => self.outbound[index].as_ref().map(|entry| entry.version),
        };
        if entries_version.is_some() && entries_version != version {
            match direction {
                Direction::Inbound => self.inbound[index] = None,
                Direction::Outbound => self.outbound[index] = None,
            }
            return;
        }
        match direction {
            Direction::Inbound => {
                if let Some(entry) = self.inbound[index].as_mut() {
                    let counters = entry.sa.counters().clone();
                    entry.report(&area, counters, now);
                    area.record_replay_top(entry.sa.replay_window().top());
                }
            }
            Direction::Outbound => {
                if let Some(entry) = self.outbound[index].as_mut() {
                    let counters = entry.sa.counters().clone();
                    entry.report(&area, counters, now);
                    match entry.sa.sequence_status() {
                        SequenceStatus::Fresh => {}
                        SequenceStatus::RekeySoon => area.raise(flags::REKEY_SOON),
                        SequenceStatus::Exhausted => {
                            area.raise(flags::REKEY_SOON | flags::EXHAUSTED)
                        }
                    }
                }
            }
        }
    }
}

/// Whether `value` reached a lifetime `limit` (zero: no limit).
fn reached(limit: u64, value: u64) -> bool {
    limit != 0 && value >= limit
}

impl<S> Cached<S> {
    /// Adds the traffic since the last report to the worker area and raises the lifetime flags
    /// the SA has reached (RFC 4301 §4.4.2.1: soft asks for a rekey, hard ends the SA).
    fn report(&mut self, area: &WorkerArea<'_>, counters: SaCounters, now: u64) {
        self.touched = false;
        area.add_traffic(
            counters.packets - self.reported.packets,
            counters.bytes - self.reported.bytes,
            counters.drops.total() - self.reported.drops.total(),
        );
        if counters.packets > self.reported.packets {
            area.mark_first_use(now);
        }
        let age = now.saturating_sub(self.installed_at);
        let l = &self.lifetimes;
        if reached(l.soft_bytes, counters.bytes)
            || reached(l.soft_packets, counters.packets)
            || reached(u64::from(l.soft_seconds), age)
        {
            area.raise(flags::SOFT_EXPIRED);
        }
        if reached(l.hard_bytes, counters.bytes)
            || reached(l.hard_packets, counters.packets)
            || reached(u64::from(l.hard_seconds), age)
        {
            area.raise(flags::HARD_EXPIRED);
            self.hard_expired = true;
        }
        self.reported = counters;
    }
}

fn cached<S>(version: u64, sa: S, record: &SaRecord) -> Cached<S> {
    Cached {
        version,
        sa,
        lifetimes: record.lifetimes,
        installed_at: record.installed_at,
        reported: SaCounters::default(),
        touched: false,
        hard_expired: false,
        pair: record.pair,
    }
}

impl InboundSaLookup for SaCache<'_> {
    /// The inbound SA for `spi`, current with the table. `None` (an unknown SPI to the
    /// decapsulator) when no SA has it, it reached a hard lifetime or it is another worker's.
    fn inbound_sa(&mut self, spi: u32) -> Option<&mut InboundSa> {
        self.last_inbound = None;
        let slot = self.table.find_inbound(spi)?;
        let index = slot.0 as usize;
        let version = self.table.version(slot)?;
        // A current entry was this worker's when it was loaded, and an SA's owner is fixed.
        let current = matches!(&self.inbound[index], Some(c) if c.version == version);
        if !current {
            if self.known_not_mine(slot, version) {
                return None;
            }
            let snapshot = self.table.read(slot).ok()?;
            let record = snapshot.record;
            self.note_owner(slot, snapshot.version, Some(record.owner_worker));
            if record.direction != Direction::Inbound
                || record.params.spi != spi
                || !self.owns(slot, record.owner_worker)
            {
                self.inbound[index] = None;
                return None;
            }
            let mut sa = InboundSa::new(record.params, record.keymat.as_bytes()).ok()?;
            // Everything an earlier owner accepted counts as received.
            let top = self.table.worker_area(slot)?.status().replay_top;
            if top > 0 {
                sa.resume_after(top);
            }
            self.inbound[index] = Some(cached(snapshot.version, sa, &record));
        }
        let entry = self.inbound[index].as_mut()?;
        if entry.hard_expired {
            return None;
        }
        if !entry.touched {
            entry.touched = true;
            self.touch(Direction::Inbound, slot.0);
        }
        self.last_inbound = Some((spi, index));
        self.inbound[index].as_mut().map(|entry| &mut entry.sa)
    }
}

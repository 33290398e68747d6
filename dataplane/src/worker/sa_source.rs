//! Where a worker's SAs come from: a fixed pair (benchmarks, manual tests) or the shared table
//! through the worker's cache and SPD mirror (the gateway in service).
//!
//! Inbound, a source also answers the RFC 4301 §5.2 question: may the packet just decrypted
//! with an SA come through it? With the table the answer is the Child SA's traffic selectors
//! (the policies into the inbound SA's outbound twin, reversed); a fixed pair has no
//! selectors and lets everything through.
//!
//! With several workers, a source whose SAs live in table slots names the slot a packet's SA
//! is in ([`SaSource::outbound_slot`], [`SaSource::inbound_slot`]) and what its record says
//! about its owner ([`SaSource::owner_worker`]) before anything touches the SA, so that a
//! worker can hand the packet to the SA's owner ([`owner_of`](super::owner_of)). A source
//! that names no slots (a fixed pair) keeps every packet on the worker that received it.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::esp::{
    Decapsulator, DropReason, InboundSa, InboundSaLookup, OutboundSa, PacketBuf, Verdict,
};
use crate::table::{Flow, Policy, SlotId, TableReader, ANY_WORKER};

use super::{flow_of, reversed, SaCache, SharedSpd, SpdMirror};

/// The SAs a worker encapsulates and decapsulates with.
pub trait SaSource {
    type Inbound: InboundSaLookup + ?Sized;

    /// The outbound SA a plaintext IP packet must take; `None` drops it (no policy covers it,
    /// or its SA is gone).
    fn outbound_for(&mut self, packet: &[u8]) -> Option<&mut OutboundSa>;

    /// Inbound SAs by SPI.
    fn inbound(&mut self) -> &mut Self::Inbound;

    /// The table slot of the outbound SA plaintext `packet` must take, found without touching
    /// the SA (no sequence number, no cache entry): the worker that owns the slot encapsulates
    /// it, with [`outbound_in`](Self::outbound_in). `None` when the source names no slots
    /// (its SAs are the calling worker's: use [`outbound_for`](Self::outbound_for)) or no
    /// policy covers the packet. Where several SAs carry the same traffic (per-resource SAs,
    /// RFC 9611), the one the calling worker should use.
    fn outbound_slot(&mut self, _packet: &[u8]) -> Option<SlotId> {
        None
    }

    /// What the record of the SA in `slot` (as [`outbound_slot`](Self::outbound_slot) or
    /// [`inbound_slot`](Self::inbound_slot) named it) says about its owner
    /// ([`SaRecord::owner_worker`]), for [`owner_of`](super::owner_of). Found without
    /// touching the SA; [`ANY_WORKER`] when the source does not know (the slot
    /// then decides).
    fn owner_worker(&mut self, _slot: SlotId) -> u16 {
        ANY_WORKER
    }

    /// The outbound SA in `slot`, as [`outbound_slot`](Self::outbound_slot) named it. `None`
    /// when it is gone, or is not the calling worker's to use.
    fn outbound_in(&mut self, _slot: SlotId) -> Option<&mut OutboundSa> {
        None
    }

    /// The table slot of the inbound SA with `spi`, found without touching the SA, so that
    /// the slot's owner decapsulates the packet. `None` when the source names no slots or no
    /// SA has the SPI.
    fn inbound_slot(&mut self, _spi: u32) -> Option<SlotId> {
        None
    }

    /// Whether `packet`, just decrypted and authenticated with the inbound SA `spi` (the
    /// inner packet in tunnel mode, the restored one with the outer addresses in transport
    /// mode), is traffic that SA's Child SA carries (RFC 4301 §5.2). `true` where the source
    /// knows no selectors for the SA.
    fn inbound_allows(&mut self, _spi: u32, _packet: &[u8]) -> bool {
        true
    }

    /// Decapsulates `packet` with the inbound SAs, then drops (as
    /// [`DropReason::PolicyMismatch`], counted on the SA) a packet that
    /// [`inbound_allows`](Self::inbound_allows) refuses. What every worker calls on the
    /// receive path.
    #[inline]
    fn decap(&mut self, decapsulator: &mut Decapsulator, packet: &mut PacketBuf<'_>) -> Verdict {
        let mut seen = SeenSpi {
            sas: self.inbound(),
            spi: None,
        };
        let verdict = decapsulator.decap(&mut seen, packet);
        let Some(spi) = seen.spi else {
            return verdict;
        };
        if verdict != Verdict::Forward || self.inbound_allows(spi, packet.data()) {
            return verdict;
        }
        // The packet still counts towards the SA's lifetimes: its key did decrypt it.
        if let Some(sa) = self.inbound().inbound_sa(spi) {
            sa.counters.drops.count(DropReason::PolicyMismatch);
        }
        Verdict::Drop(DropReason::PolicyMismatch)
    }

    /// Called before each batch: pick up what changed since the last one (the worker may
    /// have slept in `poll(2)` meanwhile), so that the first packet after a change already
    /// sees it. Must be cheap when nothing changed.
    fn begin_batch(&mut self) {}

    /// Called once after every batch, both directions done: report, refresh.
    fn end_batch(&mut self) {}
}

/// Remembers the SPI of the last SA the decapsulator found: the decrypted packet no longer
/// carries it.
struct SeenSpi<'a, L: ?Sized> {
    sas: &'a mut L,
    spi: Option<u32>,
}

impl<L: InboundSaLookup + ?Sized> InboundSaLookup for SeenSpi<'_, L> {
    #[inline]
    fn inbound_sa(&mut self, spi: u32) -> Option<&mut InboundSa> {
        let sa = self.sas.inbound_sa(spi)?;
        self.spi = Some(spi);
        Some(sa)
    }
}

/// One outbound and one inbound SA, for every packet. Having no traffic selectors, it lets
/// every decrypted packet through: the RFC 4301 §5.2 check is the table's (an inbound record
/// with a `pair`).
#[derive(Debug)]
pub struct StaticSas {
    pub outbound: OutboundSa,
    pub inbound: InboundSa,
}

impl SaSource for StaticSas {
    type Inbound = InboundSa;

    fn outbound_for(&mut self, _packet: &[u8]) -> Option<&mut OutboundSa> {
        Some(&mut self.outbound)
    }

    fn inbound(&mut self) -> &mut InboundSa {
        &mut self.inbound
    }
}

/// The SAs and policies the control plane installed in the shared table.
///
/// Inbound, a decrypted packet must fit a policy into its SA's `pair` (the outbound SA of the
/// same Child SA), reversed; an inbound record without a pair (a manual SA) is not checked.
#[derive(Debug)]
pub struct TableSas<'t> {
    table: &'t TableReader,
    cache: SaCache<'t>,
    spd: SpdMirror,
    /// The slot and `owner_worker` the last [`outbound_slot`](SaSource::outbound_slot)
    /// found: the owner check right after it needs no table access.
    last_outbound: Option<(SlotId, u16)>,
    /// One outbound SA's policies read straight from the table, with the SPD version they
    /// are of: for a Child SA newer than the index an [`SpdIndexer`](super::SpdIndexer) is
    /// still building.
    pair_policies: (Option<(u64, SlotId)>, Vec<Policy>),
}

impl<'t> TableSas<'t> {
    /// The SAs of the only worker.
    pub fn new(table: &'t TableReader) -> Self {
        Self::for_worker(table, 0, 1)
    }

    /// The SAs worker `worker` of `workers` owns ([`SaCache::for_worker`]); the others'
    /// slots are still named, for hand-over. Plaintext goes through this worker's
    /// per-resource SA where one exists ([`SpdMirror::for_worker`]).
    pub fn for_worker(table: &'t TableReader, worker: usize, workers: usize) -> Self {
        let mut sas = Self {
            table,
            cache: SaCache::for_worker(table, worker, workers),
            spd: SpdMirror::for_worker(worker, workers),
            last_outbound: None,
            pair_policies: (None, Vec::new()),
        };
        sas.refresh_spd();
        sas
    }

    /// Takes the index of a large SPD from `shared` ([`SpdMirror::use_shared`]).
    pub fn with_shared_spd(mut self, shared: Arc<SharedSpd>) -> Self {
        self.spd.use_shared(shared);
        self
    }

    /// [`SpdMirror::refresh_with`] the owners the cache knows: when the SPD moved, only the
    /// records that changed since are read.
    fn refresh_spd(&mut self) -> bool {
        let cache = &mut self.cache;
        self.spd
            .refresh_with(self.table, |slot| cache.owner_worker(slot))
    }
}

impl TableSas<'_> {
    /// Whether the policies into outbound SA `pair`, as the table has them now, admit a
    /// decrypted packet with selector fields `flow`.
    fn pair_allows(&mut self, pair: SlotId, flow: &Flow) -> bool {
        let (key, policies) = &mut self.pair_policies;
        if *key != Some((self.table.spd_version(), pair)) {
            match self.table.policies_into(pair, policies) {
                Ok(version) => *key = Some((version, pair)),
                Err(_) => {
                    *key = None;
                    return false;
                }
            }
        }
        let reverse = reversed(flow);
        policies.iter().any(|policy| policy.matches(&reverse))
    }
}

impl<'t> SaSource for TableSas<'t> {
    type Inbound = SaCache<'t>;

    fn outbound_for(&mut self, packet: &[u8]) -> Option<&mut OutboundSa> {
        let slot = self.outbound_slot(packet)?;
        self.cache.outbound_sa(slot)
    }

    fn inbound(&mut self) -> &mut SaCache<'t> {
        &mut self.cache
    }

    fn outbound_slot(&mut self, packet: &[u8]) -> Option<SlotId> {
        self.last_outbound = flow_of(packet).and_then(|flow| self.spd.lookup_with_owner(&flow));
        self.last_outbound.map(|(slot, _)| slot)
    }

    fn outbound_in(&mut self, slot: SlotId) -> Option<&mut OutboundSa> {
        self.cache.outbound_sa(slot)
    }

    fn owner_worker(&mut self, slot: SlotId) -> u16 {
        // Outbound: as the SPD copy read it (the cache checks it again before use).
        if let Some((last, owner_worker)) = self.last_outbound {
            if last == slot {
                return owner_worker;
            }
        }
        // A slot without an SA (or one mid-write): the slot's rule; its owner will find
        // nothing there and count the drop.
        self.cache.owner_worker(slot).unwrap_or(ANY_WORKER)
    }

    fn inbound_slot(&mut self, spi: u32) -> Option<SlotId> {
        self.last_outbound = None;
        self.table.find_inbound(spi)
    }

    fn inbound_allows(&mut self, spi: u32, packet: &[u8]) -> bool {
        // The pair of the SA that just decrypted the packet, as the cache read it; not known
        // (which cannot happen right after a decryption): refuse rather than let an unchecked
        // packet in.
        let Some(pair) = self.cache.inbound_pair(spi) else {
            return false;
        };
        let Some(pair) = pair else {
            return true;
        };
        let Some(flow) = flow_of(packet) else {
            return false;
        };
        if self.spd.allows_inbound(pair, &flow) {
            return true;
        }
        // A Child SA installed during this batch: its policies may be newer than the copy.
        // On this (refusing) path only, so a stream of refused packets costs one load each.
        if self.spd.is_current(self.table) {
            return false;
        }
        if self.refresh_spd() && self.spd.allows_inbound(pair, &flow) {
            return true;
        }
        if self.spd.is_current(self.table) {
            return false;
        }
        // Still behind: an indexer that has not yet indexed the SPD with this Child SA in it.
        // Its own policies, straight from the table (one scan per SPD version and SA).
        self.pair_allows(pair, &flow)
    }

    fn begin_batch(&mut self) {
        // One atomic load when the SPD did not change.
        self.refresh_spd();
    }

    fn end_batch(&mut self) {
        // Lifetimes count in seconds; a vDSO clock read per batch costs no system call.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.cache.flush(now);
        self.refresh_spd();
    }
}

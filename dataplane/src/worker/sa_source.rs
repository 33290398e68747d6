//! Where a worker's SAs come from: a fixed pair (benchmarks, manual tests) or the shared table
//! through the worker's cache and SPD mirror (the gateway in service).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::esp::{InboundSa, InboundSaLookup, OutboundSa};
use crate::table::TableReader;

use super::{flow_of, SaCache, SpdMirror};

/// The SAs a worker encapsulates and decapsulates with.
pub trait SaSource {
    type Inbound: InboundSaLookup + ?Sized;

    /// The outbound SA a plaintext IP packet must take; `None` drops it (no policy covers it,
    /// or its SA is gone).
    fn outbound_for(&mut self, packet: &[u8]) -> Option<&mut OutboundSa>;

    /// Inbound SAs by SPI.
    fn inbound(&mut self) -> &mut Self::Inbound;

    /// Called before each batch: pick up what changed since the last one (the worker may
    /// have slept in `poll(2)` meanwhile), so that the first packet after a change already
    /// sees it. Must be cheap when nothing changed.
    fn begin_batch(&mut self) {}

    /// Called once after every batch, both directions done: report, refresh.
    fn end_batch(&mut self) {}
}

/// One outbound and one inbound SA, for every packet.
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
#[derive(Debug)]
pub struct TableSas<'t> {
    table: &'t TableReader,
    cache: SaCache<'t>,
    spd: SpdMirror,
}

impl<'t> TableSas<'t> {
    pub fn new(table: &'t TableReader) -> Self {
        let mut spd = SpdMirror::default();
        spd.refresh(table);
        Self {
            table,
            cache: SaCache::new(table),
            spd,
        }
    }
}

impl<'t> SaSource for TableSas<'t> {
    type Inbound = SaCache<'t>;

    fn outbound_for(&mut self, packet: &[u8]) -> Option<&mut OutboundSa> {
        let slot = self.spd.lookup(&flow_of(packet)?)?;
        self.cache.outbound_sa(slot)
    }

    fn inbound(&mut self) -> &mut SaCache<'t> {
        &mut self.cache
    }

    fn begin_batch(&mut self) {
        // One atomic load when the SPD did not change.
        self.spd.refresh(self.table);
    }

    fn end_batch(&mut self) {
        // Lifetimes count in seconds; a vDSO clock read per batch costs no system call.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.cache.flush(now);
        self.spd.refresh(self.table);
    }
}

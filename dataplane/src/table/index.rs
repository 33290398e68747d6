//! The inbound SPI index: open addressing with linear probing over 64-bit entries, so that one
//! atomic store publishes or retracts an entry and a reader can never see half of one.
//!
//! An entry is `SPI << 32 | (slot + 1)`; 0 is empty; all ones is a deleted entry (a tombstone,
//! which keeps later entries of the same probe sequence reachable and is reused by inserts).

use std::sync::atomic::Ordering;

use super::layout::header;
use super::region::{Region, RELAXED};

const EMPTY: u64 = 0;
const TOMBSTONE: u64 = u64::MAX;

fn home(spi: u32, index_capacity: u32) -> u32 {
    // Fibonacci hashing: SPIs chosen by peers may be sequential or share low bits.
    let hash = u64::from(spi).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (hash >> 32) as u32 & (index_capacity - 1)
}

fn entry(spi: u32, slot: u32) -> u64 {
    u64::from(spi) << 32 | u64::from(slot + 1)
}

/// The probe sequence for `spi`: `steps` positions, starting at its home.
fn probes(spi: u32, index_capacity: u32, steps: u32) -> impl Iterator<Item = u32> {
    let start = home(spi, index_capacity);
    (0..steps.min(index_capacity)).map(move |step| (start + step) & (index_capacity - 1))
}

/// How far lookups probe: one more than the longest probe an insert ever needed.
fn probe_limit(region: &Region) -> u32 {
    let longest = region
        .u64_at(header::INDEX_MAX_PROBE)
        .load(Ordering::Acquire);
    u32::try_from(longest).unwrap_or(u32::MAX).saturating_add(1)
}

/// The slot of `spi`, or `None`. Never waits; at most [`probe_limit`] probes.
pub(crate) fn find(region: &Region, spi: u32) -> Option<u32> {
    for position in probes(spi, region.index_capacity(), probe_limit(region)) {
        let value = region
            .u64_at(region.index_entry_at(position))
            .load(Ordering::Acquire);
        match value {
            EMPTY => return None,
            TOMBSTONE => {}
            value if (value >> 32) as u32 == spi => return Some((value as u32).wrapping_sub(1)),
            _ => {}
        }
    }
    None
}

/// Publishes `spi -> slot`; the writer has checked that `spi` is not present. The slot must be
/// fully written first: the release store orders it before the entry.
pub(crate) fn insert(region: &Region, spi: u32, slot: u32) -> bool {
    let capacity = region.index_capacity();
    for (step, position) in probes(spi, capacity, capacity).enumerate() {
        let word = region.u64_at(region.index_entry_at(position));
        let value = word.load(RELAXED);
        if value == EMPTY || value == TOMBSTONE {
            // Readers must probe this far before they may find the entry.
            let longest = region.u64_at(header::INDEX_MAX_PROBE);
            if step as u64 > longest.load(RELAXED) {
                longest.store(step as u64, Ordering::Release);
            }
            word.store(entry(spi, slot), Ordering::Release);
            return true;
        }
    }
    false
}

/// Retracts `spi`'s entry, leaving a tombstone.
pub(crate) fn remove(region: &Region, spi: u32) {
    for position in probes(spi, region.index_capacity(), probe_limit(region)) {
        let word = region.u64_at(region.index_entry_at(position));
        let value = word.load(RELAXED);
        if value == EMPTY {
            return;
        }
        if value != TOMBSTONE && (value >> 32) as u32 == spi {
            word.store(TOMBSTONE, Ordering::Release);
            return;
        }
    }
}

//! The mapped region and the only `unsafe` of the table: turning offsets into atomics.
//!
//! Every party (the control plane, each worker, in any process) touches the region only through
//! atomic loads and stores, so nothing here is a data race whatever the others do; the seqlock
//! in `slot.rs` and the publish order in `writer.rs` give the values meaning.

use std::fs::File;
use std::sync::atomic::{AtomicU32, AtomicU64};

use memmap2::MmapRaw;

use super::error::TableError;
use super::layout::{self, header};

pub(crate) struct Region {
    map: MmapRaw,
    capacity: u32,
    index_capacity: u32,
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region")
            .field("len", &self.map.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl Region {
    /// Maps `file`, which is at least `len` bytes long.
    fn map(file: &File) -> Result<MmapRaw, TableError> {
        MmapRaw::map_raw(file).map_err(TableError::Io)
    }

    /// Lays a fresh header into `file`, already sized for `capacity` slots and all zero.
    pub(crate) fn initialise(file: &File, capacity: u32) -> Result<Self, TableError> {
        let mut region = Self {
            map: Self::map(file)?,
            capacity: 0,
            index_capacity: 0,
        };
        if region.map.len() < layout::region_len(capacity) {
            return Err(TableError::Truncated);
        }
        let index_capacity = layout::index_capacity(capacity);
        region
            .u32_at(header::VERSION)
            .store(layout::LAYOUT_VERSION, RELAXED);
        region
            .u32_at(header::SLOT_LEN)
            .store(layout::SLOT_LEN as u32, RELAXED);
        region.u32_at(header::CAPACITY).store(capacity, RELAXED);
        region
            .u32_at(header::INDEX_CAPACITY)
            .store(index_capacity, RELAXED);
        // The magic goes last, with release ordering: a region with the magic is complete.
        region.u64_at(header::MAGIC).store(
            u64::from_ne_bytes(layout::MAGIC),
            std::sync::atomic::Ordering::Release,
        );
        region.capacity = capacity;
        region.index_capacity = index_capacity;
        Ok(region)
    }

    /// Maps an existing region and checks its header.
    pub(crate) fn open(file: &File) -> Result<Self, TableError> {
        let mut region = Self {
            map: Self::map(file)?,
            capacity: 0,
            index_capacity: 0,
        };
        if region.map.len() < layout::HEADER_LEN {
            return Err(TableError::Truncated);
        }
        let magic = region
            .u64_at(header::MAGIC)
            .load(std::sync::atomic::Ordering::Acquire);
        if magic != u64::from_ne_bytes(layout::MAGIC) {
            return Err(TableError::NotATable);
        }
        let version = region.u32_at(header::VERSION).load(RELAXED);
        if version != layout::LAYOUT_VERSION {
            return Err(TableError::Version(version));
        }
        let capacity = region.u32_at(header::CAPACITY).load(RELAXED);
        let index_capacity = region.u32_at(header::INDEX_CAPACITY).load(RELAXED);
        if region.u32_at(header::SLOT_LEN).load(RELAXED) != layout::SLOT_LEN as u32
            || index_capacity != layout::index_capacity(capacity)
            || region.map.len() < layout::region_len(capacity)
        {
            return Err(TableError::Truncated);
        }
        region.capacity = capacity;
        region.index_capacity = index_capacity;
        Ok(region)
    }

    pub(crate) fn capacity(&self) -> u32 {
        self.capacity
    }

    pub(crate) fn index_capacity(&self) -> u32 {
        self.index_capacity
    }

    /// The 64-bit word at byte `offset`. Offsets come from `layout` and are checked against the
    /// mapping here, so a bad one panics instead of touching memory outside it; none depends on
    /// input.
    pub(crate) fn u64_at(&self, offset: usize) -> &AtomicU64 {
        assert!(
            offset.is_multiple_of(8) && offset + 8 <= self.map.len(),
            "table offset {offset}"
        );
        // SAFETY: the word lies inside the mapping (checked above), which lives as long as
        // `self`; the mapping is page-aligned so the 8-aligned offset is 8-aligned in memory;
        // every process accesses the region only through atomics, so no non-atomic access can
        // race with this reference.
        unsafe { &*self.map.as_ptr().add(offset).cast::<AtomicU64>() }
    }

    pub(crate) fn u32_at(&self, offset: usize) -> &AtomicU32 {
        assert!(
            offset.is_multiple_of(4) && offset + 4 <= self.map.len(),
            "table offset {offset}"
        );
        // SAFETY: as for `u64_at`, with 4-byte alignment.
        unsafe { &*self.map.as_ptr().add(offset).cast::<AtomicU32>() }
    }

    /// Byte offset of slot `index`.
    pub(crate) fn slot_at(&self, index: u32) -> usize {
        layout::slots_at(self.capacity) + index as usize * layout::SLOT_LEN
    }

    /// Byte offset of the SPD block.
    pub(crate) fn spd_at(&self) -> usize {
        layout::spd_at(self.capacity)
    }

    /// Byte offset of SPI index entry `position`.
    pub(crate) fn index_entry_at(&self, position: u32) -> usize {
        layout::HEADER_LEN + position as usize * 8
    }
}

pub(crate) const RELAXED: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;

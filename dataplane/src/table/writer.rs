//! The control plane's side: the only writer of records and of the SPI index.

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::sync::atomic::Ordering;

use super::error::TableError;
use super::layout::{self, header, CONFIG_WORDS};
use super::record::{Direction, SaRecord};
use super::region::{Region, RELAXED};
use super::seqlock;
use super::slot::{self, SlotRead, SlotStatus, WorkerArea};
use super::spd::Policy;
use super::MAX_CAPACITY;
use super::{index, SlotId};

/// Writes SAs into a shared table. Holds an exclusive lock on the file, so a second control
/// plane cannot write the same table.
#[derive(Debug)]
pub struct TableWriter {
    region: Region,
    _file: File,
    free: Vec<u32>,
    /// What each slot holds, as far as the index is concerned.
    slots: Vec<Occupant>,
}

/// The writer's own note of a slot, so that deleting needs no read of the region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Occupant {
    Free,
    /// An inbound SA, findable through the index under this SPI.
    Inbound(u32),
    Outbound,
}

impl TableWriter {
    /// Creates a table for `capacity` SAs at `path` (typically under /dev/shm), replacing any
    /// file there. The file is sparse: untouched slots take no memory.
    pub fn create(path: &Path, capacity: u32) -> Result<Self, TableError> {
        if capacity == 0 || capacity > MAX_CAPACITY {
            return Err(TableError::Capacity(capacity));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(TableError::Io)?;
        lock(&file)?;
        // Truncating to zero first discards a previous table's contents, keys included.
        file.set_len(0).map_err(TableError::Io)?;
        file.set_len(layout::region_len(capacity) as u64)
            .map_err(TableError::Io)?;
        let region = Region::initialise(&file, capacity)?;
        Ok(Self {
            free: (0..capacity).rev().collect(),
            slots: vec![Occupant::Free; capacity as usize],
            region,
            _file: file,
        })
    }

    /// Re-attaches to an existing table (a restarted control plane), keeping every installed SA
    /// and rebuilding the free list from the slots.
    pub fn open(path: &Path) -> Result<Self, TableError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(TableError::Io)?;
        lock(&file)?;
        let region = Region::open(&file)?;
        let capacity = region.capacity();
        let mut free = Vec::new();
        let mut slots = vec![Occupant::Free; capacity as usize];
        for index in (0..capacity).rev() {
            match slot::read(&region, region.slot_at(index)) {
                Ok((SlotRead::Free, _)) => free.push(index),
                Ok((SlotRead::Installed(record), _)) => {
                    slots[index as usize] = match record.direction {
                        Direction::Inbound => Occupant::Inbound(record.params.spi),
                        Direction::Outbound => Occupant::Outbound,
                    };
                }
                // No other writer can hold the slot (we hold the lock), so only corruption
                // makes a read fail here.
                Err(_) => return Err(TableError::Corrupt(index)),
            }
        }
        Ok(Self {
            region,
            _file: file,
            free,
            slots,
        })
    }

    pub fn capacity(&self) -> u32 {
        self.region.capacity()
    }

    pub fn installed(&self) -> usize {
        self.capacity() as usize - self.free.len()
    }

    /// Installs an SA in a free slot. Inbound SAs become findable by SPI once fully written.
    pub fn install(&mut self, record: &SaRecord) -> Result<SlotId, TableError> {
        let spi = record.params.spi;
        if record.direction == Direction::Inbound && index::find(&self.region, spi).is_some() {
            return Err(TableError::DuplicateSpi(spi));
        }
        let index = self.free.pop().ok_or(TableError::Full)?;
        let slot_at = self.region.slot_at(index);
        self.worker_area_at(slot_at).reset();
        write_record(&self.region, slot_at, record);
        self.slots[index as usize] = match record.direction {
            Direction::Inbound => {
                // The index has twice the slots' capacity, so there is always room.
                index::insert(&self.region, spi, index);
                Occupant::Inbound(spi)
            }
            Direction::Outbound => Occupant::Outbound,
        };
        self.bump_generation();
        Ok(SlotId(index))
    }

    /// Frees a slot: its SPI is retracted first, then its words (the keys among them) are
    /// overwritten with zeros.
    pub fn delete(&mut self, slot: SlotId) -> Result<(), TableError> {
        let index = self.installed_index(slot)?;
        if let Occupant::Inbound(spi) = self.slots[index as usize] {
            index::remove(&self.region, spi);
        }
        self.slots[index as usize] = Occupant::Free;
        slot::write(&self.region, self.region.slot_at(index), &[0; CONFIG_WORDS]);
        self.free.push(index);
        self.bump_generation();
        Ok(())
    }

    /// What the slot's owning worker reported: counters, expiry flags, sequence state.
    pub fn status(&self, slot: SlotId) -> Result<SlotStatus, TableError> {
        let index = self.installed_index(slot)?;
        Ok(self.worker_area_at(self.region.slot_at(index)).status())
    }

    /// The record in a slot, as workers see it.
    pub fn read(&self, slot: SlotId) -> Result<SaRecord, TableError> {
        let index = self.installed_index(slot)?;
        match slot::read(&self.region, self.region.slot_at(index)) {
            Ok((SlotRead::Installed(record), _)) => Ok(record),
            Ok((SlotRead::Free, _)) => Err(TableError::NoSuchSlot(index)),
            Err(_) => Err(TableError::Corrupt(index)),
        }
    }

    /// Replaces the outbound SPD. Order is priority: the first matching policy wins. Every
    /// policy must point at an installed outbound SA.
    pub fn set_policies(&mut self, policies: &[Policy]) -> Result<(), TableError> {
        if policies.len() > self.capacity() as usize {
            return Err(TableError::TooManyPolicies(policies.len()));
        }
        if let Some(p) = policies
            .iter()
            .find(|p| self.slots.get(p.outbound.0 as usize) != Some(&Occupant::Outbound))
        {
            return Err(TableError::PolicyWithoutSa(p.outbound.0));
        }
        let spd_at = self.region.spd_at();
        let words = std::iter::once(policies.len() as u64)
            .chain(policies.iter().flat_map(|policy| policy.encode()));
        seqlock::write(&self.region, spd_at, spd_at + 8, words);
        self.bump_generation();
        Ok(())
    }

    /// Tells readers the control plane is alive (milliseconds since the epoch).
    pub fn heartbeat(&self, now_ms: u64) {
        self.region
            .u64_at(header::WRITER_HEARTBEAT)
            .store(now_ms, RELAXED);
    }

    fn installed_index(&self, slot: SlotId) -> Result<u32, TableError> {
        match self.slots.get(slot.0 as usize) {
            Some(Occupant::Inbound(_) | Occupant::Outbound) => Ok(slot.0),
            _ => Err(TableError::NoSuchSlot(slot.0)),
        }
    }

    fn worker_area_at(&self, slot_at: usize) -> WorkerArea<'_> {
        WorkerArea {
            region: &self.region,
            slot_at,
        }
    }

    #[cfg(test)]
    pub(crate) fn region_for_tests(&self) -> &Region {
        &self.region
    }

    fn bump_generation(&self) {
        self.region
            .u64_at(header::GENERATION)
            .fetch_add(1, Ordering::Release);
    }
}

fn write_record(region: &Region, slot_at: usize, record: &SaRecord) {
    let mut words = record.encode();
    slot::write(region, slot_at, &words);
    zeroize::Zeroize::zeroize(&mut words);
}

fn lock(file: &File) -> Result<(), TableError> {
    file.try_lock().map_err(|error| match error {
        std::fs::TryLockError::WouldBlock => TableError::WriterLocked,
        std::fs::TryLockError::Error(e) => TableError::Io(e),
    })
}

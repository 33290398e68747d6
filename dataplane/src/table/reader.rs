//! A worker's side: find inbound SAs by SPI, read records consistently, notice changes with one
//! load, and report counters and sequence state through the slot's worker area.

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::atomic::Ordering;

use super::error::TableError;
use super::layout::{header, POLICY_LEN, POLICY_WORDS, SPD_HEADER_LEN};
use super::record::SaRecord;
use super::region::Region;
use super::seqlock;
use super::slot::{self, ReadFailure, SlotRead, WorkerArea};
use super::spd::Policy;
use super::{index, SlotId};

/// A consistent copy of one slot's record, with the version it was read at.
#[derive(Debug)]
pub struct SlotSnapshot {
    pub record: SaRecord,
    /// Compare with [`TableReader::version`] to know whether the copy is still current.
    pub version: u64,
}

/// Why a read gave no record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// No SA is installed there (any more).
    Free,
    /// The writer was mid-write for every attempt; try again on the next batch.
    Busy,
    /// The slot's words do not decode.
    Corrupt,
    /// The slot number is beyond the table.
    OutOfRange,
}

/// Opens a table for reading records and writing worker areas. Any number of readers, in any
/// processes, may attach; none of them ever blocks the writer or another reader.
#[derive(Debug)]
pub struct TableReader {
    region: Region,
}

impl TableReader {
    pub fn open(path: &Path) -> Result<Self, TableError> {
        // Read-write: workers report counters into the worker areas.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(TableError::Io)?;
        Ok(Self {
            region: Region::open(&file)?,
        })
    }

    pub fn capacity(&self) -> u32 {
        self.region.capacity()
    }

    /// The slot holding the inbound SA with `spi`, if one is installed. The answer can be stale
    /// by the time the slot is read: [`read`](Self::read) checks the SPI again.
    pub fn find_inbound(&self, spi: u32) -> Option<SlotId> {
        index::find(&self.region, spi)
            .filter(|&slot| slot < self.capacity())
            .map(SlotId)
    }

    /// A consistent copy of the slot's record.
    pub fn read(&self, slot: SlotId) -> Result<SlotSnapshot, ReadError> {
        if slot.0 >= self.capacity() {
            return Err(ReadError::OutOfRange);
        }
        match slot::read(&self.region, self.region.slot_at(slot.0)) {
            Ok((SlotRead::Installed(record), version)) => Ok(SlotSnapshot { record, version }),
            Ok((SlotRead::Free, _)) => Err(ReadError::Free),
            Err(ReadFailure::Busy) => Err(ReadError::Busy),
            Err(ReadFailure::Corrupt(_)) => Err(ReadError::Corrupt),
        }
    }

    /// The inbound SA with `spi`: the index lookup and the record read, with the SPI checked
    /// against the record in case the slot was reused in between.
    pub fn read_inbound(&self, spi: u32) -> Option<(SlotId, SlotSnapshot)> {
        let slot = self.find_inbound(spi)?;
        let snapshot = self.read(slot).ok()?;
        (snapshot.record.params.spi == spi
            && snapshot.record.direction == super::Direction::Inbound)
            .then_some((slot, snapshot))
    }

    /// The slot's current version: one atomic load, cheap enough for every packet.
    pub fn version(&self, slot: SlotId) -> Option<u64> {
        (slot.0 < self.capacity()).then(|| slot::version(&self.region, self.region.slot_at(slot.0)))
    }

    /// The SPD's version: one load tells a worker whether its copy of the policies is current.
    pub fn spd_version(&self) -> u64 {
        seqlock::version(&self.region, self.region.spd_at())
    }

    /// How many policies the SPD holds (as of its last complete write, or mid-write).
    pub fn policy_count(&self) -> u64 {
        let spd_at = self.region.spd_at();
        self.region.u64_at(spd_at + 8).load(Ordering::Relaxed)
    }

    /// The policies into outbound SA `slot`, copied into `out` (cleared first), and the SPD
    /// version they belong to: what the inbound check of that SA's Child SA needs, without
    /// copying the whole SPD (one word looked at per policy).
    pub fn policies_into(&self, slot: SlotId, out: &mut Vec<Policy>) -> Result<u64, ReadError> {
        let spd_at = self.region.spd_at();
        let first_at = spd_at + SPD_HEADER_LEN;
        let (version, complete) = seqlock::read_with(&self.region, spd_at, || {
            out.clear();
            let count = self.policy_count().min(u64::from(self.capacity())) as usize;
            let mut words = [0u64; POLICY_WORDS];
            for i in 0..count {
                let at = first_at + i * POLICY_LEN;
                // Word 8 holds the outbound slot in its upper half.
                let slot_word = self.region.u64_at(at + 64).load(Ordering::Relaxed);
                if (slot_word >> 32) as u32 != slot.0 {
                    continue;
                }
                for (w, word) in words.iter_mut().enumerate() {
                    *word = self.region.u64_at(at + w * 8).load(Ordering::Relaxed);
                }
                match Policy::decode(&words) {
                    Some(policy) => out.push(policy),
                    None => return false,
                }
            }
            true
        })
        .map_err(|seqlock::Busy| ReadError::Busy)?;
        if complete {
            Ok(version)
        } else {
            Err(ReadError::Corrupt)
        }
    }

    /// Copies the SPD into `out` (which is cleared first) and returns the version it belongs
    /// to. Allocates: call it when [`spd_version`](Self::spd_version) moved, not per packet.
    pub fn read_policies(&self, out: &mut Vec<Policy>) -> Result<u64, ReadError> {
        let spd_at = self.region.spd_at();
        for _ in 0..4 {
            let count = self.region.u64_at(spd_at + 8).load(Ordering::Relaxed);
            let count = usize::try_from(count)
                .unwrap_or(usize::MAX)
                .min(self.capacity() as usize);
            let mut words = vec![0u64; 1 + count * POLICY_WORDS];
            let version = seqlock::read(&self.region, spd_at, spd_at + 8, &mut words)
                .map_err(|seqlock::Busy| ReadError::Busy)?;
            if words[0] != count as u64 {
                // The writer changed the count between our two looks: read again.
                continue;
            }
            out.clear();
            for chunk in words[1..].chunks_exact(POLICY_WORDS) {
                out.push(Policy::decode(chunk).ok_or(ReadError::Corrupt)?);
            }
            return Ok(version);
        }
        Err(ReadError::Busy)
    }

    /// Bumped by every install and delete.
    pub fn generation(&self) -> u64 {
        self.region
            .u64_at(header::GENERATION)
            .load(Ordering::Acquire)
    }

    /// When the control plane last said it was alive (milliseconds since the epoch; 0: never).
    pub fn writer_heartbeat(&self) -> u64 {
        self.region
            .u64_at(header::WRITER_HEARTBEAT)
            .load(Ordering::Relaxed)
    }

    /// The worker area of a slot, for its owning worker to report into.
    pub fn worker_area(&self, slot: SlotId) -> Option<WorkerArea<'_>> {
        (slot.0 < self.capacity()).then(|| WorkerArea {
            region: &self.region,
            slot_at: self.region.slot_at(slot.0),
        })
    }
}

//! One slot: the record behind a seqlock (`seqlock.rs`), and the worker area beside it.

use zeroize::Zeroize;

use super::layout::{worker, CONFIG_WORDS};
use super::record::{CorruptRecord, SaRecord};
use super::region::{Region, RELAXED};
use super::seqlock;

/// The outcome of a consistent read.
#[derive(Debug)]
pub(crate) enum SlotRead {
    Free,
    Installed(SaRecord),
}

#[derive(Debug)]
pub(crate) enum ReadFailure {
    /// The writer kept the slot busy for every attempt.
    Busy,
    Corrupt(CorruptRecord),
}

/// Writes `words` into the slot at `slot_at` under its seqlock. Only the table's single writer
/// calls this.
pub(crate) fn write(region: &Region, slot_at: usize, words: &[u64; CONFIG_WORDS]) {
    seqlock::write(region, slot_at, slot_at + 8, words.iter().copied());
}

/// The slot's version: it changes with every write, so a worker that cached an SA rebuilt from
/// the slot knows with one load whether its copy is still current.
pub(crate) fn version(region: &Region, slot_at: usize) -> u64 {
    seqlock::version(region, slot_at)
}

/// Reads the slot at `slot_at` consistently: its record (or that it is free) and the version
/// the record belongs to.
pub(crate) fn read(region: &Region, slot_at: usize) -> Result<(SlotRead, u64), ReadFailure> {
    let mut words = [0u64; CONFIG_WORDS];
    let version = seqlock::read(region, slot_at, slot_at + 8, &mut words)
        .map_err(|seqlock::Busy| ReadFailure::Busy);
    let decoded = version.map(|version| (SaRecord::decode(&words), version));
    words.zeroize();
    match decoded? {
        (Ok(Some(record)), version) => Ok((SlotRead::Installed(record), version)),
        (Ok(None), version) => Ok((SlotRead::Free, version)),
        (Err(corrupt), _) => Err(ReadFailure::Corrupt(corrupt)),
    }
}

/// The worker area of a slot: counters, flags and restart state that the SA's owning worker
/// writes and the control plane reads. One writer per slot (the owner), so plain loads and
/// stores suffice; readers may see the fields of one update at different moments, which is
/// fine for counters.
#[derive(Clone, Copy, Debug)]
pub struct WorkerArea<'a> {
    pub(crate) region: &'a Region,
    pub(crate) slot_at: usize,
}

/// A snapshot of a worker area.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotStatus {
    /// Bits of [`layout::flags`](super::layout::flags).
    pub flags: u64,
    pub packets: u64,
    pub bytes: u64,
    pub drops: u64,
    pub replay_top: u64,
    pub next_sequence: u64,
    pub first_use: u64,
}

impl WorkerArea<'_> {
    fn word(&self, field: usize) -> &std::sync::atomic::AtomicU64 {
        self.region.u64_at(self.slot_at + field)
    }

    /// Adds traffic the owner processed since its last report.
    pub fn add_traffic(&self, packets: u64, bytes: u64, drops: u64) {
        for (field, delta) in [
            (worker::PACKETS, packets),
            (worker::BYTES, bytes),
            (worker::DROPS, drops),
        ] {
            let word = self.word(field);
            word.store(word.load(RELAXED).wrapping_add(delta), RELAXED);
        }
    }

    /// Raises flags (expiry, rekey wanted); they stay raised until the slot is reused.
    pub fn raise(&self, flags: u64) {
        self.word(worker::FLAGS).fetch_or(flags, RELAXED);
    }

    /// Inbound: the highest authenticated sequence number, from which a restarted worker
    /// resumes its replay window.
    pub fn record_replay_top(&self, replay_top: u64) {
        self.word(worker::REPLAY_TOP).store(replay_top, RELAXED);
    }

    /// Outbound: the sequence number a restarted worker resumes from. Written before the
    /// numbers below it are used, so none is ever sent twice.
    pub fn reserve_sequence_until(&self, next_sequence: u64) {
        self.word(worker::NEXT_SEQUENCE)
            .store(next_sequence, RELAXED);
    }

    /// Sets the time of first use once; later calls keep the first.
    pub fn mark_first_use(&self, seconds: u64) {
        let _ = self
            .word(worker::FIRST_USE)
            .compare_exchange(0, seconds, RELAXED, RELAXED);
    }

    pub fn status(&self) -> SlotStatus {
        SlotStatus {
            flags: self.word(worker::FLAGS).load(RELAXED),
            packets: self.word(worker::PACKETS).load(RELAXED),
            bytes: self.word(worker::BYTES).load(RELAXED),
            drops: self.word(worker::DROPS).load(RELAXED),
            replay_top: self.word(worker::REPLAY_TOP).load(RELAXED),
            next_sequence: self.word(worker::NEXT_SEQUENCE).load(RELAXED),
            first_use: self.word(worker::FIRST_USE).load(RELAXED),
        }
    }

    /// Clears the area for a new SA; only the writer calls this, before it publishes the slot.
    pub(crate) fn reset(&self) {
        for field in (worker::FLAGS..=worker::FIRST_USE).step_by(8) {
            self.word(field).store(0, RELAXED);
        }
    }
}

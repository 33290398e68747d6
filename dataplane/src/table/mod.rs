//! The SA table in shared memory: the one contract between the control plane (the writer) and
//! the workers (readers), in a versioned fixed layout (see [`layout`]) in a file under
//! /dev/shm, so that either side can restart while the other keeps running.
//!
//! - The control plane installs, replaces and deletes SAs with a [`TableWriter`], which holds
//!   an exclusive lock on the file.
//! - Workers attach with a [`TableReader`]: they find inbound SAs by SPI, read records under a
//!   per-slot seqlock (never blocking, never seeing a torn SA), and check with one atomic load
//!   per packet whether a cached SA is still current.
//! - Each slot has a worker area that only the SA's owning worker writes: counters, expiry
//!   flags, and the replay top and next sequence number a restarted worker resumes from.
//! - Deleting a slot overwrites its words, keys included, with zeros.
//! - The outbound SPD (policies → outbound slot) is one list under its own seqlock; workers
//!   copy it when its version moves.
//!
//! One owner per SA (per-core SAs, RFC 9611, and inbound hand-over to the owner) means one
//! counter set per slot suffices; DESIGN.md's per-core counter sets would only multiply the
//! slot size by the core count.

mod error;
mod index;
pub mod layout;
mod reader;
mod record;
mod region;
mod seqlock;
mod slot;
mod spd;
mod writer;

pub use error::TableError;
pub use reader::{ReadError, SlotSnapshot, TableReader};
pub use record::{Direction, Keymat, Lifetimes, SaRecord, ANY_WORKER, MAX_KEYMAT_LEN};
pub use slot::{SlotStatus, WorkerArea};
pub use spd::{AddressRange, Flow, Policy, ANY_PORT};
pub use writer::TableWriter;

/// The largest table: 16M slots (4 GiB of slots, sparse).
pub const MAX_CAPACITY: u32 = 1 << 24;

/// A slot of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SlotId(pub u32);

#[cfg(test)]
mod tests;

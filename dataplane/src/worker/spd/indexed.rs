//! One SPD version read from the table and indexed: what a worker matches packets against,
//! and what the workers of a process can share ([`SpdIndexer`](super::SpdIndexer)).

use crate::table::{Direction, Policy, ReadError, SlotId, TableReader, ANY_WORKER};

use super::index::PolicyIndex;

#[derive(Debug, Default)]
pub(super) struct IndexedSpd {
    pub(super) version: u64,
    pub(super) policies: Vec<Policy>,
    pub(super) index: PolicyIndex,
    /// Each policy's SA's `owner_worker` as its record said when the SPD was read
    /// ([`ANY_WORKER`] when it could not be read).
    pub(super) owners: Vec<u16>,
    /// Whether any policy's SA is pinned to a worker (RFC 9611): only then can a worker's
    /// choice differ from the first match.
    pub(super) pinned: bool,
}

impl IndexedSpd {
    /// Reads the table's SPD and indexes it, with each SA's owner from `owner_worker`.
    /// Allocates; milliseconds for 100k policies.
    pub(super) fn read(
        table: &TableReader,
        mut owner_worker: impl FnMut(SlotId) -> Option<u16>,
    ) -> Result<Self, ReadError> {
        let mut policies = Vec::new();
        let version = table.read_policies(&mut policies)?;
        let index = PolicyIndex::build(&policies);
        let owners: Vec<u16> = policies
            .iter()
            .map(|policy| owner_worker(policy.outbound).unwrap_or(ANY_WORKER))
            .collect();
        let pinned = owners.iter().any(|&owner| owner != ANY_WORKER);
        Ok(Self {
            version,
            policies,
            index,
            owners,
            pinned,
        })
    }

    pub(super) fn len(&self) -> usize {
        self.policies.len()
    }
}

/// The `owner_worker` of the outbound SA in `slot`, from its record; `None` when the slot
/// holds no outbound SA or is mid-write.
pub(super) fn record_owner(table: &TableReader, slot: SlotId) -> Option<u16> {
    match table.read(slot) {
        Ok(snapshot) if snapshot.record.direction == Direction::Outbound => {
            Some(snapshot.record.owner_worker)
        }
        _ => None,
    }
}

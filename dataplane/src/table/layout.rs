//! The byte layout of the shared SA table. Everything a process needs to find its way in a
//! region it did not create is in the header; every offset below is derived from it.
//!
//! ```text
//! +----------------------+ 0
//! | header (one page)    |  magic, layout version, capacities, generations
//! +----------------------+ HEADER_LEN
//! | SPI index            |  index_capacity × 8 bytes: (SPI << 32 | slot + 1), open addressing
//! +----------------------+
//! | SPD                  |  a seqlock word, the policy count, then capacity × POLICY_LEN
//! +----------------------+
//! | slots                |  capacity × SLOT_LEN bytes
//! +----------------------+
//! ```
//!
//! A slot is `SLOT_LEN` = 256 bytes, four cache lines:
//!
//! ```text
//!   0  seq            seqlock word: odd while the control plane writes the record
//!   8  record         CONFIG_WORDS × 8 bytes, read only under the seqlock
//! 192  worker area    written by the SA's owning worker, read by the control plane:
//!      192 flags      soft/hard expiry, rekey wanted, sequence exhausted
//!      200 packets
//!      208 bytes
//!      216 drops
//!      224 replay_top  inbound: highest authenticated sequence number
//!      232 next_seq    outbound: the next sequence number to send
//!      240 first_use   seconds since the epoch of the first packet (lifetimes count from it)
//!      248 reserved
//! ```
//!
//! 1M SAs take 256 MiB of slots, 16 MiB of index and 80 MiB of SPD room (352 MiB) in a sparse
//! /dev/shm file: pages that were never written cost nothing.

/// "XIPSECT" and a NUL: a region is ours only if it starts with this.
pub const MAGIC: [u8; 8] = *b"XIPSECT\0";
/// Bumped whenever the layout changes; a reader refuses a region of another version. 2: an
/// inbound record names its outbound twin (word 18), which the inbound policy check needs; a
/// worker that predates it would skip the check silently, so it must refuse the table.
pub const LAYOUT_VERSION: u32 = 2;

pub const HEADER_LEN: usize = 4096;
pub const SLOT_LEN: usize = 256;
/// 64-bit words of a record, after the seqlock word.
pub const CONFIG_WORDS: usize = 23;
pub const WORKER_AREA_AT: usize = 192;

/// Header fields (byte offsets).
pub mod header {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 8;
    pub const SLOT_LEN: usize = 12;
    pub const CAPACITY: usize = 16;
    pub const INDEX_CAPACITY: usize = 20;
    /// Bumped by every install, replace and delete: a cheap "anything changed?" for readers.
    pub const GENERATION: usize = 24;
    /// Milliseconds since the epoch, written by the control plane while it runs.
    pub const WRITER_HEARTBEAT: usize = 32;
    /// The longest probe any SPI index entry needed: lookups stop there, so an unknown SPI
    /// (the cheapest packet an attacker can send) costs a few probes however many deletes
    /// left tombstones behind.
    pub const INDEX_MAX_PROBE: usize = 40;
}

/// Worker-area fields (byte offsets within a slot).
pub mod worker {
    pub const FLAGS: usize = 192;
    pub const PACKETS: usize = 200;
    pub const BYTES: usize = 208;
    pub const DROPS: usize = 216;
    pub const REPLAY_TOP: usize = 224;
    pub const NEXT_SEQUENCE: usize = 232;
    pub const FIRST_USE: usize = 240;
}

/// Bits of the worker area's flags word.
pub mod flags {
    /// A soft lifetime (bytes, packets or time) ran out: the control plane should rekey.
    pub const SOFT_EXPIRED: u64 = 1 << 0;
    /// A hard lifetime ran out: the worker stopped using the SA.
    pub const HARD_EXPIRED: u64 = 1 << 1;
    /// The outbound sequence space is nearly used up.
    pub const REKEY_SOON: u64 = 1 << 2;
    /// The outbound sequence space is used up.
    pub const EXHAUSTED: u64 = 1 << 3;
}

/// The SPI index has twice as many entries as there are slots, so probes stay short.
pub fn index_capacity(capacity: u32) -> u32 {
    (capacity.max(1) * 2).next_power_of_two()
}

/// The SPD block: its seqlock word, the policy count, then the policies.
pub fn spd_at(capacity: u32) -> usize {
    HEADER_LEN + index_capacity(capacity) as usize * 8
}

/// Bytes before the first policy of the SPD block: the seqlock word and the policy count
/// (which the seqlock covers, with the policies).
pub const SPD_HEADER_LEN: usize = 16;
/// One policy: two address ranges (4 × 16 bytes), protocol, family and slot, four ports.
pub const POLICY_LEN: usize = 80;
pub const POLICY_WORDS: usize = POLICY_LEN / 8;

pub fn slots_at(capacity: u32) -> usize {
    spd_at(capacity) + SPD_HEADER_LEN + capacity as usize * POLICY_LEN
}

pub fn region_len(capacity: u32) -> usize {
    slots_at(capacity) + capacity as usize * SLOT_LEN
}

const _: () = assert!(8 + CONFIG_WORDS * 8 <= WORKER_AREA_AT);
const _: () = assert!(worker::FIRST_USE + 8 <= SLOT_LEN);

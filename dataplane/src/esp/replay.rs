//! The anti-replay window (RFC 4303 §3.4.3), kept as a ring of 64-bit blocks (RFC 6479): sliding
//! the window forward clears whole blocks, so a jump costs at most one pass over the ring and the
//! common step costs nothing but the bit.
//!
//! Checking and marking are separate calls because RFC 4303 orders them around the integrity
//! check: a cheap check first, the AEAD open, and only then the mark — a forged packet must
//! never move the window.

/// Smallest window accepted; RFC 4303 §3.4.3 requires at least 32 and recommends 64.
pub const MIN_REPLAY_WINDOW: u32 = 64;
/// Largest window accepted: 8 KiB of bitmap per inbound SA.
pub const MAX_REPLAY_WINDOW: u32 = 65536;
/// The window a Child SA gets unless configured otherwise.
pub const DEFAULT_REPLAY_WINDOW: u32 = 1024;

const BLOCK_BITS: u64 = 64;

/// Why a sequence number was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayRejection {
    /// Already received inside the window.
    Duplicate,
    /// Older than the window's left edge; whether it was received can no longer be told.
    TooOld,
    /// Sequence number 0, which no sender ever uses (RFC 4303 §3.3.3: the first packet is 1).
    Zero,
}

/// A window size outside [`MIN_REPLAY_WINDOW`]..=[`MAX_REPLAY_WINDOW`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayWindowSizeError(pub u32);

impl std::fmt::Display for ReplayWindowSizeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "replay window {} is outside {MIN_REPLAY_WINDOW}..={MAX_REPLAY_WINDOW}",
            self.0
        )
    }
}

impl std::error::Error for ReplayWindowSizeError {}

/// Which sequence numbers of one inbound SA have been received.
#[derive(Clone, Debug)]
pub struct ReplayWindow {
    /// Bit `seq % (blocks * 64)` is set once `seq` was received; always a power of two of blocks,
    /// one block more than the window needs so that the block being filled never overlaps the
    /// oldest one still inside the window.
    bitmap: Box<[u64]>,
    /// The highest sequence number received so far (0: none yet).
    top: u64,
    /// Sequence numbers in `(top - size, top]` are inside the window.
    size: u64,
}

impl ReplayWindow {
    /// A window of `size` packets. Allocates once, here; checking and marking never allocate.
    pub fn new(size: u32) -> Result<Self, ReplayWindowSizeError> {
        if !(MIN_REPLAY_WINDOW..=MAX_REPLAY_WINDOW).contains(&size) {
            return Err(ReplayWindowSizeError(size));
        }
        let blocks = (u64::from(size).div_ceil(BLOCK_BITS) + 1).next_power_of_two();
        Ok(Self {
            bitmap: vec![0u64; blocks as usize].into_boxed_slice(),
            top: 0,
            size: u64::from(size),
        })
    }

    /// A window that counts every number up to `top` as received: what a receiver must assume
    /// when it takes over an SA whose window it did not see (a restarted worker, or the
    /// control plane handing over an SA). Old packets still in flight are then dropped as
    /// replays, which is safe; accepting them could admit a real replay.
    pub fn resume_after(size: u32, top: u64) -> Result<Self, ReplayWindowSizeError> {
        let mut window = Self::new(size)?;
        window.bitmap.fill(u64::MAX);
        window.top = top;
        // Numbers above `top` that share its block have not been seen: the invariant of `mark`
        // is that such bits are clear.
        let (block, bit) = window.bit_position(top);
        window.bitmap[block] &= bit | (bit - 1);
        Ok(window)
    }

    /// The configured window size in packets.
    pub fn size(&self) -> u32 {
        // `size` came from a u32 in `new`.
        self.size as u32
    }

    /// The highest sequence number marked so far; 0 before the first packet.
    pub fn top(&self) -> u64 {
        self.top
    }

    fn bit_position(&self, seq: u64) -> (usize, u64) {
        let block = (seq / BLOCK_BITS) as usize & (self.bitmap.len() - 1);
        (block, 1u64 << (seq % BLOCK_BITS))
    }

    /// Whether `seq` may be accepted. Reads only; call [`mark`](Self::mark) once the packet
    /// has been authenticated.
    pub fn check(&self, seq: u64) -> Result<(), ReplayRejection> {
        if seq == 0 {
            return Err(ReplayRejection::Zero);
        }
        if seq > self.top {
            return Ok(());
        }
        if self.top - seq >= self.size {
            return Err(ReplayRejection::TooOld);
        }
        let (block, bit) = self.bit_position(seq);
        if self.bitmap[block] & bit != 0 {
            Err(ReplayRejection::Duplicate)
        } else {
            Ok(())
        }
    }

    /// Marks an authenticated `seq` as received, sliding the window when it is the new highest.
    /// The caller has had `check(seq)` succeed.
    pub fn mark(&mut self, seq: u64) {
        if seq > self.top {
            let blocks = self.bitmap.len() as u64;
            let current = self.top / BLOCK_BITS;
            let target = seq / BLOCK_BITS;
            // Every block after the current one up to the target's is now unused territory.
            let to_clear = (target - current).min(blocks);
            let mask = self.bitmap.len() - 1;
            for step in 1..=to_clear {
                self.bitmap[(current + step) as usize & mask] = 0;
            }
            self.top = seq;
        }
        let (block, bit) = self.bit_position(seq);
        self.bitmap[block] |= bit;
    }

    /// [`check`](Self::check) then [`mark`](Self::mark), for callers with nothing to verify
    /// in between.
    pub fn check_and_mark(&mut self, seq: u64) -> Result<(), ReplayRejection> {
        self.check(seq)?;
        self.mark(seq);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_outside_the_range_are_refused() {
        assert_eq!(
            ReplayWindow::new(63).unwrap_err(),
            ReplayWindowSizeError(63)
        );
        assert!(ReplayWindow::new(MAX_REPLAY_WINDOW + 1).is_err());
        for size in [64, 100, 1024, 4096, 8192, MAX_REPLAY_WINDOW] {
            assert_eq!(ReplayWindow::new(size).unwrap().size(), size);
        }
    }

    #[test]
    fn a_resumed_window_refuses_everything_up_to_its_top() {
        let mut window = ReplayWindow::resume_after(128, 5000).unwrap();
        assert_eq!(window.check(5000), Err(ReplayRejection::Duplicate));
        // 5001..5055 share 5000's block and are still fresh.
        for seq in 5001..5056 {
            assert_eq!(window.check(seq), Ok(()));
        }
        assert_eq!(window.check(4873), Err(ReplayRejection::Duplicate));
        assert_eq!(window.check(4872), Err(ReplayRejection::TooOld));
        window.check_and_mark(5001).unwrap();
        // Sliding forward clears the blocks it enters, so fresh numbers stay fresh.
        window.check_and_mark(5200).unwrap();
        assert_eq!(window.check(5199), Ok(()));
        assert_eq!(window.check(5100), Ok(()));
        assert_eq!(window.check(5200), Err(ReplayRejection::Duplicate));
        assert_eq!(window.check(5001), Err(ReplayRejection::TooOld));
    }

    #[test]
    fn zero_is_never_valid() {
        let window = ReplayWindow::new(64).unwrap();
        assert_eq!(window.check(0), Err(ReplayRejection::Zero));
    }

    #[test]
    fn edges_of_the_window() {
        for size in [64u32, 100, 1024, 8192] {
            let mut window = ReplayWindow::new(size).unwrap();
            let top = 100_000u64;
            window.check_and_mark(top).unwrap();
            let size = u64::from(size);
            // The oldest number still inside the window, and one behind it.
            assert_eq!(window.check(top - size + 1), Ok(()), "size {size}");
            assert_eq!(window.check(top - size), Err(ReplayRejection::TooOld));
            assert_eq!(window.check(top), Err(ReplayRejection::Duplicate));
            window.check_and_mark(top - size + 1).unwrap();
            assert_eq!(
                window.check(top - size + 1),
                Err(ReplayRejection::Duplicate)
            );
        }
    }

    #[test]
    fn a_big_jump_forgets_everything_behind_the_window() {
        let mut window = ReplayWindow::new(1024).unwrap();
        for seq in 1..=2000 {
            window.check_and_mark(seq).unwrap();
        }
        window.check_and_mark(1_000_000).unwrap();
        // Numbers inside the new window that were never received are fresh, even where the ring
        // slot once held an older number's bit.
        for seq in (1_000_000 - 1023)..1_000_000 {
            assert_eq!(window.check(seq), Ok(()), "seq {seq}");
        }
        assert_eq!(window.check(1_000_000 - 1024), Err(ReplayRejection::TooOld));
    }

    #[test]
    fn matches_a_naive_model_on_a_random_walk() {
        // A set-based model of RFC 4303 §3.4.3, driven by a small deterministic generator.
        let size = 256u64;
        let mut window = ReplayWindow::new(size as u32).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        let mut top = 0u64;
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let delta = (state % 700) as i64 - 400;
            let seq = (top as i64 + delta).max(0) as u64;
            let expected = if seq == 0 {
                Err(ReplayRejection::Zero)
            } else if seq > top {
                Ok(())
            } else if top - seq >= size {
                Err(ReplayRejection::TooOld)
            } else if seen.contains(&seq) {
                Err(ReplayRejection::Duplicate)
            } else {
                Ok(())
            };
            assert_eq!(window.check_and_mark(seq), expected, "seq {seq} top {top}");
            if expected.is_ok() {
                seen.insert(seq);
                top = top.max(seq);
            }
        }
    }
}

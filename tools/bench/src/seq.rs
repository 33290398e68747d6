//! Loss, reordering and duplicates from sequence numbers, with a sliding window of the last
//! [`WINDOW`] numbers (the anti-replay window of IPsec, used for counting instead of dropping).

/// How far back (in sequence numbers) a duplicate is still recognised.
pub const WINDOW: u64 = 1 << 16;

const WORDS: usize = (WINDOW / 64) as usize;

/// What the sink learned from the sequence numbers it saw.
#[derive(Clone, Debug)]
pub struct SeqTracker {
    /// Bit `s % WINDOW` is set when `s`, within the window below `highest`, arrived.
    seen: Box<[u64; WORDS]>,
    highest: Option<u64>,
    unique: u64,
    duplicates: u64,
    reordered: u64,
    too_old: u64,
}

/// What one arrival was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// The next number, or one after a gap (the ones skipped may still come).
    InOrder,
    /// Older than the highest seen, and not seen before.
    Reordered,
    /// Seen before.
    Duplicate,
    /// So much older than the highest that the window no longer says whether it is a
    /// duplicate; counted as a reordered first arrival.
    TooOld,
}

impl Default for SeqTracker {
    fn default() -> Self {
        SeqTracker::new()
    }
}

impl SeqTracker {
    /// Nothing seen yet.
    pub fn new() -> SeqTracker {
        SeqTracker {
            seen: Box::new([0; WORDS]),
            highest: None,
            unique: 0,
            duplicates: 0,
            reordered: 0,
            too_old: 0,
        }
    }

    #[inline]
    fn bit(seq: u64) -> (usize, u64) {
        let index = seq % WINDOW;
        ((index / 64) as usize, 1u64 << (index % 64))
    }

    /// Counts the arrival of `seq`.
    #[inline]
    pub fn observe(&mut self, seq: u64) -> Arrival {
        let Some(highest) = self.highest else {
            self.highest = Some(seq);
            let (word, mask) = Self::bit(seq);
            self.seen[word] |= mask;
            self.unique += 1;
            return Arrival::InOrder;
        };
        if seq > highest {
            // Numbers between the old highest and this one have not arrived (yet).
            if seq - highest >= WINDOW {
                self.seen.fill(0);
            } else {
                for skipped in highest + 1..seq {
                    let (word, mask) = Self::bit(skipped);
                    self.seen[word] &= !mask;
                }
            }
            let (word, mask) = Self::bit(seq);
            self.seen[word] |= mask;
            self.highest = Some(seq);
            self.unique += 1;
            return Arrival::InOrder;
        }
        if highest - seq >= WINDOW {
            self.unique += 1;
            self.reordered += 1;
            self.too_old += 1;
            return Arrival::TooOld;
        }
        let (word, mask) = Self::bit(seq);
        if self.seen[word] & mask != 0 {
            self.duplicates += 1;
            return Arrival::Duplicate;
        }
        self.seen[word] |= mask;
        self.unique += 1;
        self.reordered += 1;
        Arrival::Reordered
    }

    /// Distinct sequence numbers received (first arrivals).
    pub fn unique(&self) -> u64 {
        self.unique
    }

    /// Arrivals of a number already seen.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// First arrivals after a higher number had arrived.
    pub fn reordered(&self) -> u64 {
        self.reordered
    }

    /// Reordered arrivals older than the window (duplicates among them go unnoticed).
    pub fn too_old(&self) -> u64 {
        self.too_old
    }

    /// Of `sent` packets, how many never arrived.
    pub fn lost(&self, sent: u64) -> u64 {
        sent.saturating_sub(self.unique)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(seqs: impl IntoIterator<Item = u64>) -> SeqTracker {
        let mut tracker = SeqTracker::new();
        for seq in seqs {
            tracker.observe(seq);
        }
        tracker
    }

    #[test]
    fn in_order_arrivals_lose_nothing() {
        let t = feed(0..100_000);
        assert_eq!(
            (t.unique(), t.duplicates(), t.reordered(), t.lost(100_000)),
            (100_000, 0, 0, 0)
        );
    }

    #[test]
    fn gaps_are_losses_and_late_fillers_are_reordered_not_duplicates() {
        // 0..10 without 3 and 7; then 3 arrives late; 7 never does.
        let mut seqs: Vec<u64> = (0..10).filter(|s| *s != 3 && *s != 7).collect();
        seqs.push(3);
        let t = feed(seqs);
        assert_eq!(t.unique(), 9);
        assert_eq!(t.reordered(), 1);
        assert_eq!(t.duplicates(), 0);
        assert_eq!(t.lost(10), 1);
    }

    #[test]
    fn duplicates_are_counted_once_and_not_as_received() {
        let mut t = SeqTracker::new();
        assert_eq!(t.observe(5), Arrival::InOrder);
        assert_eq!(t.observe(5), Arrival::Duplicate);
        assert_eq!(t.observe(6), Arrival::InOrder);
        assert_eq!(t.observe(4), Arrival::Reordered);
        assert_eq!(t.observe(4), Arrival::Duplicate);
        assert_eq!(t.observe(6), Arrival::Duplicate);
        assert_eq!((t.unique(), t.duplicates(), t.reordered()), (3, 3, 1));
        // 0..=6 sent: 0, 1, 2, 3 lost.
        assert_eq!(t.lost(7), 4);
    }

    #[test]
    fn a_number_skipped_long_ago_but_within_the_window_is_still_new() {
        let mut t = SeqTracker::new();
        t.observe(0);
        // A number whose bit was used by an earlier lap of the ring must not look seen.
        t.observe(WINDOW + 10);
        assert_eq!(t.observe(WINDOW + 1), Arrival::Reordered);
        assert_eq!(t.observe(WINDOW + 1), Arrival::Duplicate);
        assert_eq!(t.observe(10), Arrival::TooOld);
        assert_eq!(t.observe(3 * WINDOW), Arrival::InOrder);
        assert_eq!(t.observe(3 * WINDOW - 5), Arrival::Reordered);
        assert_eq!(t.unique(), 6);
    }

    #[test]
    fn a_wrapping_ring_matches_a_set_of_everything_seen() {
        // Independent truth: a HashSet of every number, on a pseudo-random stream with gaps,
        // reordering within the window and repeats.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut t = SeqTracker::new();
        let mut all = std::collections::HashSet::new();
        let mut base = 0u64;
        for _ in 0..300_000 {
            base += next() % 3;
            let seq = base.saturating_sub(next() % 1000);
            let first = all.insert(seq);
            let arrival = t.observe(seq);
            assert_eq!(first, arrival != Arrival::Duplicate, "seq {seq}");
        }
        assert_eq!(t.unique(), all.len() as u64);
    }
}

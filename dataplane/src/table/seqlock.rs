//! A seqlock over a run of 64-bit words in the region (Boehm, "Can seqlocks get along with
//! programming language memory models?", 2012): the single writer makes the sequence word odd,
//! writes the words, and makes it even again; a reader reads the sequence, the words, and the
//! sequence again, and keeps the words only if both readings are the same even number. All
//! accesses are atomic, so a reader racing the writer reads a mix of old and new words — never
//! undefined behaviour — and throws it away. Readers never block the writer.

use std::sync::atomic::{fence, Ordering};

use super::region::{Region, RELAXED};

/// How often a reader retries while the writer is mid-write before giving up for now. A write
/// takes a few dozen stores, so losing this many times in a row means a writer in a tight loop:
/// better to report it than to spin.
const READ_ATTEMPTS: usize = 64;

/// The writer kept the words busy for every attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Busy;

/// Writes `words` at `words_at` under the sequence word at `seq_at`. Only the table's single
/// writer calls this.
pub(crate) fn write(
    region: &Region,
    seq_at: usize,
    words_at: usize,
    words: impl IntoIterator<Item = u64>,
) {
    let seq = region.u64_at(seq_at);
    let before = seq.load(RELAXED);
    seq.store(before | 1, RELAXED);
    // Orders the odd sequence before every word below (a reader seeing a new word sees odd).
    fence(Ordering::Release);
    for (i, word) in words.into_iter().enumerate() {
        region.u64_at(words_at + i * 8).store(word, RELAXED);
    }
    seq.store((before | 1).wrapping_add(1), Ordering::Release);
}

/// The sequence word: it changes with every write.
pub(crate) fn version(region: &Region, seq_at: usize) -> u64 {
    region.u64_at(seq_at).load(Ordering::Acquire)
}

/// Runs `read`, which loads words under the sequence word at `seq_at` (relaxed atomic loads
/// only), and keeps its result only if the writer did not write meanwhile; returns it with the
/// version it belongs to.
pub(crate) fn read_with<R>(
    region: &Region,
    seq_at: usize,
    mut read: impl FnMut() -> R,
) -> Result<(u64, R), Busy> {
    let seq = region.u64_at(seq_at);
    for _ in 0..READ_ATTEMPTS {
        let before = seq.load(Ordering::Acquire);
        if before & 1 == 1 {
            std::hint::spin_loop();
            continue;
        }
        let result = read();
        // Orders the word loads before the second sequence load.
        fence(Ordering::Acquire);
        if seq.load(RELAXED) == before {
            return Ok((before, result));
        }
    }
    Err(Busy)
}

/// Reads `out.len()` words at `words_at` consistently; returns the version they belong to.
pub(crate) fn read(
    region: &Region,
    seq_at: usize,
    words_at: usize,
    out: &mut [u64],
) -> Result<u64, Busy> {
    read_with(region, seq_at, || {
        for (i, word) in out.iter_mut().enumerate() {
            *word = region.u64_at(words_at + i * 8).load(RELAXED);
        }
    })
    .map(|(version, ())| version)
}

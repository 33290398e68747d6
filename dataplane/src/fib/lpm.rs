//! Longest-prefix match over an immutable set of prefixes: one sorted array per prefix length
//! that occurs, searched from the longest length down. A routing table uses a handful of
//! lengths, so a lookup is a few binary searches over flat memory, with no allocation and no
//! hashing an attacker could steer.

/// An address as an integer whose most significant bit is the address's first bit.
pub(crate) trait PrefixKey: Copy + Ord {
    /// The address length in bits.
    const BITS: u8;
    /// The address with every bit after the first `len` cleared (`len` ≤ `BITS`).
    fn network(self, len: u8) -> Self;
}

impl PrefixKey for u32 {
    const BITS: u8 = 32;
    fn network(self, len: u8) -> Self {
        // A shift by the full width is not a shift in Rust: len 0 has no bits to keep.
        self & u32::MAX
            .checked_shl(u32::from(32 - len.min(32)))
            .unwrap_or(0)
    }
}

impl PrefixKey for u128 {
    const BITS: u8 = 128;
    fn network(self, len: u8) -> Self {
        self & u128::MAX
            .checked_shl(u32::from(128 - len.min(128)))
            .unwrap_or(0)
    }
}

#[derive(Clone, Debug)]
struct Level<K> {
    len: u8,
    /// (network, value), sorted by network, networks unique.
    entries: Vec<(K, u32)>,
}

/// Prefixes of one address family, each with a `u32` value (an index into the caller's
/// array).
#[derive(Clone, Debug)]
pub(crate) struct PrefixTable<K> {
    /// Longest prefix length first.
    levels: Vec<Level<K>>,
}

impl<K: PrefixKey> Default for PrefixTable<K> {
    fn default() -> Self {
        Self { levels: Vec::new() }
    }
}

impl<K: PrefixKey> PrefixTable<K> {
    /// Builds the table from (address, prefix length, value). Host bits are cleared; a prefix
    /// length beyond the family's is clamped to it. When a prefix occurs more than once, the
    /// first one given wins.
    pub fn build(prefixes: impl IntoIterator<Item = (K, u8, u32)>) -> Self {
        let mut by_len: Vec<Vec<(K, u32)>> = vec![Vec::new(); usize::from(K::BITS) + 1];
        for (address, len, value) in prefixes {
            let len = len.min(K::BITS);
            by_len[usize::from(len)].push((address.network(len), value));
        }
        let levels = by_len
            .into_iter()
            .enumerate()
            .rev()
            .filter(|(_, entries)| !entries.is_empty())
            .map(|(len, mut entries)| {
                // Stable: equal networks keep their order, and dedup keeps the first.
                entries.sort_by_key(|&(network, _)| network);
                entries.dedup_by_key(|&mut (network, _)| network);
                Level {
                    len: len as u8,
                    entries,
                }
            })
            .collect();
        Self { levels }
    }

    /// The value of the longest prefix containing `address`.
    pub fn lookup(&self, address: K) -> Option<u32> {
        self.levels.iter().find_map(|level| {
            let network = address.network(level.len);
            level
                .entries
                .binary_search_by_key(&network, |&(n, _)| n)
                .ok()
                .map(|at| level.entries[at].1)
        })
    }

    /// How many prefixes it holds.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.levels.iter().map(|level| level.entries.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(a: &str) -> u32 {
        u32::from(a.parse::<Ipv4Addr>().unwrap())
    }

    fn v6(a: &str) -> u128 {
        u128::from(a.parse::<Ipv6Addr>().unwrap())
    }

    /// The longest match by brute force: the independent truth for the table.
    fn brute_force(prefixes: &[(u32, u8, u32)], address: u32) -> Option<u32> {
        let mut best: Option<(u8, u32)> = None;
        for &(network, len, value) in prefixes {
            let contains = address.network(len) == network.network(len);
            if contains && best.is_none_or(|(best_len, _)| len > best_len) {
                best = Some((len, value));
            }
        }
        best.map(|(_, value)| value)
    }

    #[test]
    fn the_longest_prefix_wins() {
        let table = PrefixTable::build([
            (v4("0.0.0.0"), 0, 0),
            (v4("10.0.0.0"), 8, 1),
            (v4("10.1.0.0"), 16, 2),
            (v4("10.1.2.0"), 24, 3),
            (v4("10.1.2.3"), 32, 4),
        ]);
        assert_eq!(table.lookup(v4("10.1.2.3")), Some(4));
        assert_eq!(table.lookup(v4("10.1.2.4")), Some(3));
        assert_eq!(table.lookup(v4("10.1.3.4")), Some(2));
        assert_eq!(table.lookup(v4("10.200.0.1")), Some(1));
        assert_eq!(table.lookup(v4("192.0.2.1")), Some(0));
        assert_eq!(table.len(), 5);
    }

    #[test]
    fn no_default_no_match_and_host_bits_are_ignored() {
        let table = PrefixTable::build([(v4("10.1.2.99"), 24, 7)]);
        assert_eq!(table.lookup(v4("10.1.2.1")), Some(7));
        assert_eq!(table.lookup(v4("10.1.3.1")), None);
        assert_eq!(PrefixTable::<u32>::default().lookup(0), None);
    }

    #[test]
    fn duplicates_keep_the_first_and_lengths_are_clamped() {
        let table = PrefixTable::build([(v4("10.0.0.0"), 8, 1), (v4("10.0.0.0"), 8, 2)]);
        assert_eq!(table.lookup(v4("10.9.9.9")), Some(1));
        assert_eq!(table.len(), 1);
        let clamped = PrefixTable::build([(v4("10.0.0.1"), 200, 5)]);
        assert_eq!(clamped.lookup(v4("10.0.0.1")), Some(5));
        assert_eq!(clamped.lookup(v4("10.0.0.2")), None);
    }

    #[test]
    fn ipv6_prefixes_match_on_all_128_bits() {
        let table = PrefixTable::build([
            (v6("::"), 0, 0),
            (v6("2001:db8::"), 32, 1),
            (v6("2001:db8:0:1::"), 64, 2),
            (v6("2001:db8:0:1::42"), 128, 3),
        ]);
        assert_eq!(table.lookup(v6("2001:db8:0:1::42")), Some(3));
        assert_eq!(table.lookup(v6("2001:db8:0:1::43")), Some(2));
        assert_eq!(table.lookup(v6("2001:db8:ffff::1")), Some(1));
        assert_eq!(table.lookup(v6("fe80::1")), Some(0));
    }

    #[test]
    fn agrees_with_brute_force_on_pseudo_random_tables() {
        // A fixed xorshift sequence: reproducible, no dependency.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20 {
            let prefixes: Vec<(u32, u8, u32)> = (0..200)
                .map(|i| {
                    // Few distinct high bits, so prefixes nest and collide.
                    let address = (next() as u32) & 0xff0f_f0ff;
                    let len = (next() % 33) as u8;
                    (address.network(len), len, i)
                })
                .collect();
            // Drop repeated prefixes after the first, as the table does.
            let mut unique: Vec<(u32, u8, u32)> = Vec::new();
            for p in &prefixes {
                if !unique.iter().any(|u| u.0 == p.0 && u.1 == p.1) {
                    unique.push(*p);
                }
            }
            let table = PrefixTable::build(prefixes.iter().copied());
            for _ in 0..500 {
                let address = (next() as u32) & 0xff0f_f0ff;
                assert_eq!(table.lookup(address), brute_force(&unique, address));
            }
        }
    }
}

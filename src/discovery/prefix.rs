//! Longest-prefix match of an [`Msisdn`] against the configured number ranges
//! (`prefix -> operator`).
//!
//! Owns: prefix validation (ASCII digits, 1..=15, no leading 0, no duplicates) and the lookup.
//! Must not know: where prefixes come from (config), ported numbers (`ported`), or what an
//! operator is beyond its [`OperatorIndex`].
//!
//! # Layout: flattened intervals, not a trie
//!
//! A number is mapped to a sortable key: its digits padded with zeros to 15 digits, times 16,
//! plus its digit count (`34600000001` → `346000000010000 * 16 + 11`). A prefix `p` of `L`
//! digits then covers exactly the keys in `[p·10^(15−L)·16 + L, (p+1)·10^(15−L)·16)`: the numbers
//! whose first `L` digits are `p`. The `+ L` keeps out a number shorter than the prefix whose
//! padding happens to spell the prefix's trailing zeros (`+34600000` against `346000000`).
//! Intervals of nested prefixes nest, so the table keeps them flattened into sorted, disjoint
//! segments, each owned by the longest prefix covering it (or none).
//!
//! Lookups search the segment starts laid out in Eytzinger (breadth-first) order, padded to a
//! complete tree: the same number of steps for every key, each step `k = 2k + (start <= key)`,
//! with no branch on the data. For a few dozen prefixes that is 6 steps over 512 bytes of L1,
//! about 10 ns; a digit trie took ~44 ns (a chain of dependent loads and digit divisions) and its
//! longer instruction stream also kept the CPU from overlapping the ported-table miss that
//! precedes every prefix lookup. See `benches/discovery.rs`.
//!
//! Inserting costs O(segments) (a `Vec` insert and a tree rebuild): fine for the thousands of
//! ranges a numbering plan has; the table is built once per config load.

use crate::discovery::OperatorIndex;
use crate::msisdn::Msisdn;

/// Most digits a prefix may have: a prefix longer than any E.164 number never matches.
const MAX_PREFIX_DIGITS: usize = 15;

use crate::msisdn::POW10;

/// Why a prefix cannot be added. Messages do not repeat the prefix: the caller names it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PrefixError {
    /// Something other than ASCII digits (a `+`, a space, a letter…).
    #[error("prefix must be ASCII digits only, without '+' or separators")]
    NotDigits,
    /// The empty string.
    #[error("prefix is empty")]
    Empty,
    /// More than 15 digits.
    #[error("prefix has more than 15 digits, so no E.164 number can match it")]
    TooLong,
    /// Starts with 0: E.164 numbers never do (write `34…`, not `0034…`).
    #[error("prefix starts with 0; write it as an E.164 number without '+' or '00'")]
    LeadingZero,
    /// The identical prefix is already mapped.
    #[error("prefix is already mapped to operator index {}", existing.0)]
    Duplicate {
        /// The operator the prefix already maps to.
        existing: OperatorIndex,
    },
}

/// Number ranges `prefix -> operator` with longest-prefix lookup.
#[derive(Clone, Debug)]
pub struct PrefixTable {
    /// Segment starts (keys), ascending; `starts[0] == 0`, the last segment is unbounded.
    starts: Vec<u64>,
    /// Per segment: the operator of the longest prefix covering it, if any.
    owners: Vec<Option<OperatorIndex>>,
    /// Per segment: that prefix's digit count (0: none), so a prefix inserted later takes over
    /// only the segments held by shorter prefixes.
    lens: Vec<u8>,
    /// The segment starts again in Eytzinger (breadth-first) order for lookups: `tree[1]` is
    /// the root, the children of `k` are `2k` and `2k + 1`; padded with `u64::MAX` to a
    /// complete tree so every search takes the same number of steps. `tree[0]` is unused.
    tree: Vec<u64>,
    /// Per tree node holding the first start above a key: the owner of the segment before it.
    tree_owner: Vec<Option<OperatorIndex>>,
    /// How many prefixes were inserted.
    len: usize,
}

impl Default for PrefixTable {
    fn default() -> Self {
        Self::new()
    }
}

impl PrefixTable {
    /// An empty table: every lookup misses.
    pub fn new() -> Self {
        let mut table = PrefixTable {
            starts: vec![0],
            owners: vec![None],
            lens: vec![0],
            tree: Vec::new(),
            tree_owner: Vec::new(),
            len: 0,
        };
        table.rebuild_tree();
        table
    }

    /// Maps `prefix` (ASCII digits of the E.164 number without `+`, 1..=15 digits, not starting
    /// with 0) to `op`. A prefix that is already present is refused with its current operator.
    pub fn insert(&mut self, prefix: &str, op: OperatorIndex) -> Result<(), PrefixError> {
        let digits = prefix.as_bytes();
        if digits.is_empty() {
            return Err(PrefixError::Empty);
        }
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(PrefixError::NotDigits);
        }
        if digits.len() > MAX_PREFIX_DIGITS {
            return Err(PrefixError::TooLong);
        }
        if digits[0] == b'0' {
            return Err(PrefixError::LeadingZero);
        }
        let len = digits.len() as u32;
        let value = digits.iter().fold(0u64, |v, &d| v * 10 + u64::from(d - b'0'));
        let start = key(value, len);
        let end = (value + 1) * POW10[(15 - len) as usize] * 16;

        // Only this very prefix can own the segment starting at its own start with its length.
        let at = self.segment_of(start);
        if self.starts[at] == start && u32::from(self.lens[at]) == len {
            if let Some(existing) = self.owners[at] {
                return Err(PrefixError::Duplicate { existing });
            }
        }
        let first = self.split_at(start);
        let last = self.split_at(end);
        for i in first..last {
            if u32::from(self.lens[i]) < len {
                self.owners[i] = Some(op);
                self.lens[i] = len as u8;
            }
        }
        self.len += 1;
        self.rebuild_tree();
        Ok(())
    }

    /// The operator of the longest prefix of `msisdn`, if any prefix matches.
    pub fn longest_match(&self, msisdn: &Msisdn) -> Option<OperatorIndex> {
        let key = key(msisdn.value(), msisdn.digit_count());
        // Descend to the first start above `key`: right while the node is at or below it.
        // `k * 2 + bool` is arithmetic, so no branch depends on the key (a comparison-driven
        // `if` here compiles to a branch that random numbers mispredict every other level).
        let tree = self.tree.as_slice();
        let mut k = 1;
        while k < tree.len() {
            k = 2 * k + usize::from(tree[k] <= key);
        }
        // The last left turn was at the first start above `key`: drop the right turns after it
        // and that turn itself. All right turns (every start <= key) give node 0.
        let node = k >> (k.trailing_ones() + 1);
        self.tree_owner.get(node).copied().flatten()
    }

    /// How many prefixes the table holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no prefix was inserted.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Index of the segment holding `key`: the last start at or below it (`starts[0]` is 0).
    fn segment_of(&self, key: u64) -> usize {
        self.starts.partition_point(|&start| start <= key).saturating_sub(1)
    }

    /// Lays the segment starts out as a complete Eytzinger tree (see `tree`).
    fn rebuild_tree(&mut self) {
        let nodes = (self.starts.len() + 1).next_power_of_two();
        self.tree = vec![u64::MAX; nodes];
        self.tree_owner = vec![self.owners.last().copied().flatten(); nodes];
        // In-order walk of the implicit tree visits nodes in ascending key order.
        let mut sorted = 0;
        let mut stack = Vec::new();
        let mut k = 1;
        while k < nodes || !stack.is_empty() {
            if k < nodes {
                stack.push(k);
                k *= 2;
                continue;
            }
            let Some(node) = stack.pop() else { break };
            if let Some(&start) = self.starts.get(sorted) {
                self.tree[node] = start;
                // Segment `sorted` starts here, so keys stopping at this node lie in the one before.
                self.tree_owner[node] = sorted.checked_sub(1).and_then(|i| self.owners[i]);
            }
            sorted += 1;
            k = 2 * node + 1;
        }
    }

    /// Makes `at` a segment start (copying the owner of the segment it splits); its index.
    fn split_at(&mut self, at: u64) -> usize {
        let i = self.segment_of(at);
        if self.starts[i] == at {
            return i;
        }
        self.starts.insert(i + 1, at);
        self.owners.insert(i + 1, self.owners[i]);
        self.lens.insert(i + 1, self.lens[i]);
        i + 1
    }
}

/// The sort key of a `digits`-digit number (see the module doc). `digits` is 1..=15.
fn key(value: u64, digits: u32) -> u64 {
    (value * POW10[(15 - digits.min(15)) as usize]) * 16 + u64::from(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: OperatorIndex = OperatorIndex(0);
    const B: OperatorIndex = OperatorIndex(1);
    const C: OperatorIndex = OperatorIndex(2);

    fn m(v: u64) -> Msisdn {
        Msisdn::from_digits(v).unwrap()
    }

    #[test]
    fn nested_prefixes_pick_the_longest() {
        let mut t = PrefixTable::new();
        t.insert("34600", A).unwrap();
        t.insert("346001", B).unwrap();
        t.insert("3", C).unwrap();
        assert_eq!(t.longest_match(&m(34_600_123_456)), Some(B));
        assert_eq!(t.longest_match(&m(34_600_234_567)), Some(A));
        assert_eq!(t.longest_match(&m(34_700_000_000)), Some(C));
        assert_eq!(t.longest_match(&m(44_700_000_000)), None);
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn order_of_insertion_does_not_matter() {
        let mut t = PrefixTable::new();
        t.insert("346001", B).unwrap();
        t.insert("34600", A).unwrap();
        assert_eq!(t.longest_match(&m(34_600_123_456)), Some(B));
        assert_eq!(t.longest_match(&m(34_600_234_567)), Some(A));
    }

    #[test]
    fn prefix_as_long_as_the_number_matches() {
        let mut t = PrefixTable::new();
        t.insert("34600000001", B).unwrap();
        t.insert("123456789012345", C).unwrap();
        assert_eq!(t.longest_match(&m(34_600_000_001)), Some(B));
        assert_eq!(t.longest_match(&m(34_600_000_002)), None);
        assert_eq!(t.longest_match(&m(123_456_789_012_345)), Some(C));
        // A prefix longer than the number never matches it.
        t.insert("346000000011", A).unwrap();
        assert_eq!(t.longest_match(&m(34_600_000_001)), Some(B));
    }

    #[test]
    fn duplicate_prefix_reports_the_existing_operator() {
        let mut t = PrefixTable::new();
        t.insert("34600", A).unwrap();
        assert_eq!(t.insert("34600", B), Err(PrefixError::Duplicate { existing: A }));
        assert_eq!(t.longest_match(&m(34_600_234_567)), Some(A));
        assert_eq!(t.len(), 1);
        // An inner node that exists only as a path is not a duplicate.
        t.insert("346", C).unwrap();
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn shorter_number_does_not_match_a_longer_prefix_ending_in_zeros() {
        let mut t = PrefixTable::new();
        t.insert("346", A).unwrap();
        t.insert("346000000", B).unwrap();
        // 8 digits padded with zeros reads like 346000000…, but is shorter than the prefix.
        assert_eq!(t.longest_match(&m(34_600_000)), Some(A));
        assert_eq!(t.longest_match(&m(346_000_000)), Some(B));
        assert_eq!(t.longest_match(&m(3_460_000_001)), Some(B));
    }

    #[test]
    fn agrees_with_a_naive_longest_prefix_match() {
        use rand::{rngs::StdRng, Rng, SeedableRng};
        let mut rng = StdRng::seed_from_u64(7);
        // Short digit alphabet and lengths so prefixes nest, collide and end in zeros often.
        let digits = |rng: &mut StdRng, n: usize| -> String {
            let mut s = String::from(["3", "9"][rng.random_range(0..2)]);
            while s.len() < n {
                s.push(['0', '4', '6'][rng.random_range(0..3)]);
            }
            s
        };
        let mut t = PrefixTable::new();
        let mut naive: Vec<(String, OperatorIndex)> = Vec::new();
        for i in 0..300u16 {
            let len = rng.random_range(1..=15);
            let prefix = digits(&mut rng, len);
            let result = t.insert(&prefix, OperatorIndex(i));
            match naive.iter().find(|(p, _)| *p == prefix) {
                Some(&(_, existing)) => {
                    assert_eq!(result, Err(PrefixError::Duplicate { existing }))
                }
                None => {
                    assert_eq!(result, Ok(()));
                    naive.push((prefix, OperatorIndex(i)));
                }
            }
        }
        assert_eq!(t.len(), naive.len());
        for _ in 0..20_000 {
            let len = rng.random_range(5..=15);
            let number = digits(&mut rng, len);
            let want = naive
                .iter()
                .filter(|(p, _)| number.starts_with(p.as_str()))
                .max_by_key(|(p, _)| p.len())
                .map(|&(_, op)| op);
            let msisdn = m(number.parse().unwrap());
            assert_eq!(t.longest_match(&msisdn), want, "{number}");
        }
    }

    #[test]
    fn invalid_prefixes_are_refused() {
        let mut t = PrefixTable::new();
        assert_eq!(t.insert("", A), Err(PrefixError::Empty));
        assert_eq!(t.insert("+34", A), Err(PrefixError::NotDigits));
        assert_eq!(t.insert("34 6", A), Err(PrefixError::NotDigits));
        assert_eq!(t.insert("３４", A), Err(PrefixError::NotDigits));
        assert_eq!(t.insert("1234567890123456", A), Err(PrefixError::TooLong));
        assert_eq!(t.insert("0034", A), Err(PrefixError::LeadingZero));
        assert!(t.is_empty());
        assert_eq!(t.longest_match(&m(34_600_000_001)), None);
    }
}

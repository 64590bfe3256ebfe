//! The ported-number table: numbers that moved to another operator than their range says, loaded
//! from the portability CSV and looked up on every discovery request before the prefixes.
//!
//! Owns: the CSV format and its line errors, and a compact hash table `number -> operator`.
//! Must not know: prefixes (`prefix`), operator ids and config (the caller's `resolve` maps an id
//! to an [`OperatorIndex`]), or anything per request beyond one lookup.
//!
//! # Layout
//!
//! Ten million ported numbers must fit in 12 bytes each and a lookup should cost one cache miss,
//! and most lookups are misses (numbers that never moved), so a miss must be as cheap as a hit.
//! At 10 M entries the table is 116 MB: every lookup goes to DRAM, so what matters is how many
//! lines it reads and how few instructions surround them (so lookups from concurrent requests
//! overlap). `benches/discovery.rs` measures it against a plain random read of the same size.
//!
//! - Each entry is one `u64`: the number (E.164 digits as an integer, < 10^15 < 2^50) in the low
//!   50 bits and the operator index in the high 14 bits; 0 is an empty slot (no number is 0).
//! - Slots are grouped in buckets of 8, one 64-byte aligned cache line. A number's home bucket is
//!   `(mix(number) * buckets) >> 64` (multiply-high, so the bucket count needs not be a power of
//!   two and the table is sized exactly for a 0.7 load: 11.4 bytes per entry).
//! - A bucket fills in slot order. When it is full, further entries probe the next bucket
//!   (bucketized linear probing), and each entry passing a full bucket sets one bit, picked by
//!   3 other bits of its hash, in that bucket's `spill` byte (0.18 bytes per entry).
//! - A lookup reads the home bucket: a match is a hit; otherwise, if the spill byte lacks the
//!   number's bit, it is a miss. Only then does it read the next bucket.
//!
//! Hits and misses alike cost one cache line from DRAM in the common case: with 8-slot buckets
//! at a 0.7 load about 15 % of buckets overflow; the spill byte's bit cuts the misses that read
//! a second line from 26 % (a plain overflow bit per bucket) to about 6 %, for 11.6 bytes per
//! entry in all. Plain linear probing over single slots at the same load needs about six probes
//! per miss and often crosses a line. Two-choice or cuckoo hashing would fill fuller but make
//! every miss read two lines, and misses are most lookups.
//!
//! The table is built once (config load or reload) and then only read, so it needs no deletes;
//! building is `O(n)` with one random memory access per entry. A number listed twice keeps its
//! last operator (portability feeds append newer records after older ones).

use std::fmt;
use std::io::BufRead;

use crate::discovery::OperatorIndex;
use crate::msisdn::{Msisdn, ParseRules};

/// Low bits of a slot holding the number.
const NUMBER_BITS: u32 = 50;
const NUMBER_MASK: u64 = (1 << NUMBER_BITS) - 1;
/// Slots per bucket: 8 × 8 bytes = one cache line.
const SLOTS: usize = 8;
/// A table is sized for entries/slots = 7/10.
const LOAD_NUM: usize = 7;
const LOAD_DEN: usize = 10;
/// An under-announced build grows (doubles) before passing 9/10 load...
const GROW_NUM: usize = 9;
/// ...and a build left below 2/3 load (12 bytes per entry: duplicates, an iterator that
/// under- or over-announced its size) is rebuilt to size.
const SHRINK_NUM: usize = 2;
const SHRINK_DEN: usize = 3;
/// Line errors kept by `from_csv`; the rest are only counted.
const MAX_ERRORS: usize = 100;
/// Operator names longer than this are cut in error messages.
const MAX_NAME_IN_ERROR: usize = 32;

/// One cache line of slots.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Bucket([u64; SLOTS]);

/// Ported numbers and the operator now serving each.
#[derive(Clone, Default)]
pub struct PortedTable {
    /// The hash table; empty for an empty table.
    buckets: Vec<Bucket>,
    /// Per bucket: bit `tag(number)` is set for every number stored beyond this (full) bucket
    /// whose probe passed it, so a lookup can stop here for most other numbers.
    spill: Vec<u8>,
    /// Distinct numbers stored.
    len: usize,
}

/// An operator index too large for the 14 bits a slot keeps for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("operator index {} exceeds the ported table's limit of {}", .operator.0, PortedTable::MAX_OPERATOR)]
pub struct OperatorOutOfRange {
    /// The index that did not fit.
    pub operator: OperatorIndex,
}

/// One problem while loading the portability CSV.
#[derive(Debug, thiserror::Error)]
pub enum PortedError {
    /// Reading failed; loading stopped there.
    #[error("reading the portability file failed: {0}")]
    Io(#[source] std::io::Error),
    /// A line (1-based) is malformed. `reason` shows numbers only masked.
    #[error("line {line}: {reason}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong, without the full MSISDN.
        reason: String,
    },
}

/// Every problem found in a portability CSV (at most 100 kept), one per line when displayed.
#[derive(Debug)]
pub struct PortedErrors {
    /// The problems, in file order.
    pub errors: Vec<PortedError>,
    /// Line errors beyond the first 100, counted but not kept.
    pub omitted: usize,
}

impl fmt::Display for PortedErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        if self.omitted > 0 {
            write!(f, "\n... and {} more line errors", self.omitted)?;
        }
        Ok(())
    }
}

impl std::error::Error for PortedErrors {}

impl fmt::Debug for PortedTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortedTable")
            .field("len", &self.len)
            .field("buckets", &self.buckets.len())
            .finish_non_exhaustive()
    }
}

impl PortedTable {
    /// Largest operator index a slot can hold (14 bits).
    pub const MAX_OPERATOR: u16 = (1 << (64 - NUMBER_BITS)) - 1;

    /// A table without numbers: every lookup misses.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Builds from `(number, operator)` pairs, sized from the iterator's size hint. A number given
    /// twice keeps its last operator.
    ///
    /// # Panics
    /// If an operator index exceeds [`Self::MAX_OPERATOR`] (16383). Indices come from the
    /// configured operator list; use [`Self::try_from_entries`] when they may not.
    pub fn from_entries(entries: impl IntoIterator<Item = (Msisdn, OperatorIndex)>) -> Self {
        match Self::try_from_entries(entries) {
            Ok(table) => table,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`Self::from_entries`] that reports an operator index above [`Self::MAX_OPERATOR`].
    pub fn try_from_entries(
        entries: impl IntoIterator<Item = (Msisdn, OperatorIndex)>,
    ) -> Result<Self, OperatorOutOfRange> {
        let entries = entries.into_iter();
        let mut table = Self::with_capacity(entries.size_hint().0);
        for (msisdn, operator) in entries {
            table.insert_growing(pack(msisdn, operator)?);
        }
        Ok(table.shrunk())
    }

    /// Parses the portability CSV: lines `msisdn,operator_id`, the number in any form
    /// [`Msisdn::parse`] accepts under `rules` (digits with country code, with or without `+`,
    /// are the usual), the operator mapped by `resolve`. Blank lines and lines starting with `#`
    /// are skipped, and so is a first line `msisdn,operator` (or `msisdn,operator_id`). Fields are
    /// trimmed; quoting is not supported. A number listed twice keeps its last operator.
    ///
    /// Every bad line is reported (the first 100 kept, the rest counted) and nothing is built.
    pub fn from_csv<R: BufRead>(
        mut reader: R,
        rules: &ParseRules,
        resolve: impl Fn(&str) -> Option<OperatorIndex>,
    ) -> Result<PortedTable, PortedErrors> {
        let mut packed = Vec::new();
        let mut errors = PortedErrors { errors: Vec::new(), omitted: 0 };
        let mut buf = Vec::new();
        let mut line = 0usize;
        let mut header_allowed = true;
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) => break,
                Ok(_) => line += 1,
                Err(e) => {
                    errors.errors.push(PortedError::Io(e));
                    break;
                }
            }
            let result = match std::str::from_utf8(&buf) {
                Err(_) => Err("line is not valid UTF-8".to_owned()),
                Ok(text) => {
                    // Spreadsheet exports may start with a byte order mark.
                    let text = if line == 1 { text.trim_start_matches('\u{feff}') } else { text };
                    let text = text.trim();
                    if text.is_empty() || text.starts_with('#') {
                        continue;
                    }
                    if std::mem::take(&mut header_allowed) && is_header(text) {
                        continue;
                    }
                    parse_line(text, rules, &resolve)
                }
            };
            match result {
                Ok(slot) => packed.push(slot),
                Err(reason) if errors.errors.len() < MAX_ERRORS => {
                    errors.errors.push(PortedError::Line { line, reason })
                }
                Err(_) => errors.omitted += 1,
            }
        }
        if !errors.errors.is_empty() {
            return Err(errors);
        }
        let mut table = Self::with_capacity(packed.len());
        for slot in packed {
            table.insert(slot);
        }
        Ok(table.shrunk())
    }

    /// The operator now serving `msisdn`, if it was ported.
    pub fn get(&self, msisdn: &Msisdn) -> Option<OperatorIndex> {
        let key = msisdn.value();
        let count = self.buckets.len();
        if count == 0 {
            return None;
        }
        let hash = mix(key);
        let tag = tag(hash);
        let mut b = home(hash, count);
        loop {
            // Scan the whole line without early exits: the one branch on the loaded data is
            // "found", which is well predicted (most lookups miss), so a lookup does not stall
            // on a misprediction and independent lookups overlap.
            let mut found = 0u64;
            for &slot in &self.buckets[b].0 {
                if slot & NUMBER_MASK == key {
                    found = slot;
                }
            }
            if found != 0 {
                return Some(OperatorIndex((found >> NUMBER_BITS) as u16));
            }
            // No number with this tag went past this bucket: a miss.
            if self.spill[b] & tag == 0 {
                return None;
            }
            b = next(b, count);
        }
    }

    /// Distinct ported numbers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no number is ported.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Heap memory held, in bytes (about 11.6 per entry).
    pub fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<Bucket>() + self.spill.capacity()
    }

    /// An empty table with buckets for `entries` at the target load.
    fn with_capacity(entries: usize) -> Self {
        if entries == 0 {
            return Self::default();
        }
        let count = entries.saturating_mul(LOAD_DEN).div_ceil(LOAD_NUM * SLOTS);
        PortedTable { buckets: vec![Bucket::default(); count], spill: vec![0; count], len: 0 }
    }

    /// Inserts, first doubling the table if it would pass the growth load.
    fn insert_growing(&mut self, slot: u64) {
        if (self.len + 1) * LOAD_DEN > self.buckets.len() * SLOTS * GROW_NUM {
            self.rebuild(((self.len + 1) * 2).max(16));
        }
        self.insert(slot);
    }

    /// Stores a packed slot; an equal number already present takes the new operator.
    /// There must be a free slot somewhere (load < 1).
    fn insert(&mut self, slot: u64) {
        let key = slot & NUMBER_MASK;
        let count = self.buckets.len();
        let hash = mix(key);
        let tag = tag(hash);
        let mut b = home(hash, count);
        loop {
            for s in self.buckets[b].0.iter_mut() {
                if *s == 0 {
                    self.len += 1;
                    *s = slot;
                    return;
                }
                if *s & NUMBER_MASK == key {
                    *s = slot;
                    return;
                }
            }
            self.spill[b] |= tag;
            b = next(b, count);
        }
    }

    /// The same entries in a table sized for `entries`.
    fn rebuild(&mut self, entries: usize) {
        let old = std::mem::replace(self, Self::with_capacity(entries));
        for bucket in &old.buckets {
            for &slot in bucket.0.iter().take_while(|&&s| s != 0) {
                self.insert(slot);
            }
        }
    }

    /// Rebuilt to size if duplicates or an over-announced size left it too sparse.
    fn shrunk(mut self) -> Self {
        if self.len * SHRINK_DEN < self.buckets.len() * SLOTS * SHRINK_NUM {
            self.rebuild(self.len);
        }
        self
    }
}

/// Splitmix64's finalizer: every input bit moves the high bits that pick the bucket.
fn mix(key: u64) -> u64 {
    let mut z = key;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The home bucket for `hash` among `count` buckets (multiply-high of the hash's top bits: any
/// count works).
fn home(hash: u64, count: usize) -> usize {
    ((u128::from(hash) * count as u128) >> 64) as usize
}

/// The spill bit for `hash`, from its low bits (the bucket comes from the high ones).
fn tag(hash: u64) -> u8 {
    1 << (hash & 7)
}

fn next(b: usize, count: usize) -> usize {
    if b + 1 == count {
        0
    } else {
        b + 1
    }
}

fn pack(msisdn: Msisdn, operator: OperatorIndex) -> Result<u64, OperatorOutOfRange> {
    if operator.0 > PortedTable::MAX_OPERATOR {
        return Err(OperatorOutOfRange { operator });
    }
    Ok(msisdn.value() | u64::from(operator.0) << NUMBER_BITS)
}

fn is_header(text: &str) -> bool {
    let Some((a, b)) = text.split_once(',') else {
        return false;
    };
    a.trim().eq_ignore_ascii_case("msisdn")
        && (b.trim().eq_ignore_ascii_case("operator") || b.trim().eq_ignore_ascii_case("operator_id"))
}

/// One data line (trimmed, not blank, not a comment) to a packed slot, or why not.
fn parse_line(text: &str, rules: &ParseRules, resolve: &impl Fn(&str) -> Option<OperatorIndex>) -> Result<u64, String> {
    let mut fields = text.split(',');
    let (Some(number), Some(operator), None) = (fields.next(), fields.next(), fields.next()) else {
        let found = text.split(',').count();
        return Err(format!("expected 2 fields \"msisdn,operator\", found {found}"));
    };
    let msisdn = Msisdn::parse(number.trim(), rules).map_err(|e| e.to_string())?;
    let operator = operator.trim();
    if operator.is_empty() {
        return Err(format!("no operator given for {msisdn}"));
    }
    let index = resolve(operator).ok_or_else(|| {
        let mut name: String = operator.chars().take(MAX_NAME_IN_ERROR).collect();
        if name.len() < operator.len() {
            name.push('…');
        }
        format!("unknown operator {name:?} for {msisdn}")
    })?;
    pack(msisdn, index).map_err(|e| format!("{e} (for {msisdn})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: ParseRules = ParseRules { default_country_code: 34, national_len: 9 };

    fn m(v: u64) -> Msisdn {
        Msisdn::from_digits(v).unwrap()
    }

    fn resolve(name: &str) -> Option<OperatorIndex> {
        ["movistar", "vodafone", "orange"].iter().position(|&n| n == name).map(|i| OperatorIndex(i as u16))
    }

    #[test]
    fn csv_forms_header_comments_and_last_line_wins() {
        let csv = "\u{feff}msisdn,operator\n\
                   # ported this week\n\
                   34600000001,vodafone\r\n\
                   \n\
                   +34600000002 , orange\n\
                   600 000 003,movistar\n\
                   tel:+34600000004,orange\n\
                   34600000001,orange";
        let t = PortedTable::from_csv(csv.as_bytes(), &RULES, resolve).unwrap();
        assert_eq!(t.len(), 4);
        assert_eq!(t.get(&m(34_600_000_001)), Some(OperatorIndex(2)));
        assert_eq!(t.get(&m(34_600_000_002)), Some(OperatorIndex(2)));
        assert_eq!(t.get(&m(34_600_000_003)), Some(OperatorIndex(0)));
        assert_eq!(t.get(&m(34_600_000_004)), Some(OperatorIndex(2)));
        assert_eq!(t.get(&m(34_600_000_005)), None);
    }

    #[test]
    fn csv_errors_are_all_listed_with_line_numbers() {
        let csv = "# header comes later, so it is data\n\
                   34600000001,vodafone\n\
                   msisdn,operator\n\
                   34600000002\n\
                   34600000003,telefonica\n\
                   +3460000000312345,orange\n\
                   34600000004,orange,extra\n\
                   34600000005,\n";
        let err = PortedTable::from_csv(csv.as_bytes(), &RULES, resolve).unwrap_err();
        let lines: Vec<usize> = err
            .errors
            .iter()
            .map(|e| match e {
                PortedError::Line { line, .. } => *line,
                PortedError::Io(e) => panic!("unexpected {e}"),
            })
            .collect();
        assert_eq!(lines, [3, 4, 5, 6, 7, 8]);
        let text = err.to_string();
        assert_eq!(text.lines().count(), 6, "{text}");
        assert!(text.contains("line 3: MSISDN contains letters"), "{text}");
        assert!(text.contains("line 4: expected 2 fields"), "{text}");
        assert!(text.contains("line 5: unknown operator \"telefonica\" for +34******003"), "{text}");
        assert!(text.contains("line 6: MSISDN has 16 digits"), "{text}");
        assert!(text.contains("line 8: no operator given"), "{text}");
        assert!(!text.contains("600000"), "full MSISDN leaked: {text}");
    }

    #[test]
    fn csv_error_list_is_capped() {
        let csv = "bad\n".repeat(151);
        let err = PortedTable::from_csv(csv.as_bytes(), &RULES, resolve).unwrap_err();
        assert_eq!(err.errors.len(), 100);
        assert_eq!(err.omitted, 51);
        assert!(err.to_string().ends_with("... and 51 more line errors"));
        let invalid = b"34600000001,orange\n\xff\xfe,orange\n";
        let err = PortedTable::from_csv(&invalid[..], &RULES, resolve).unwrap_err();
        assert_eq!(err.to_string(), "line 2: line is not valid UTF-8");
    }

    #[test]
    fn csv_operator_index_must_fit() {
        let err = PortedTable::from_csv(&b"34600000001,x"[..], &RULES, |_| {
            Some(OperatorIndex(PortedTable::MAX_OPERATOR + 1))
        })
        .unwrap_err();
        assert!(err.to_string().contains("exceeds"), "{err}");
        let too_big = OperatorIndex(PortedTable::MAX_OPERATOR + 1);
        assert_eq!(
            PortedTable::try_from_entries([(m(34_600_000_001), too_big)]).unwrap_err(),
            OperatorOutOfRange { operator: too_big }
        );
    }

    #[test]
    fn entries_hits_misses_and_extremes() {
        let max = OperatorIndex(PortedTable::MAX_OPERATOR);
        let t = PortedTable::from_entries([
            (m(34_600_000_001), OperatorIndex(1)),
            (m(10_000), OperatorIndex(0)),
            (m(999_999_999_999_999), max),
            (m(34_600_000_001), OperatorIndex(2)),
        ]);
        assert_eq!(t.len(), 3);
        assert_eq!(t.get(&m(34_600_000_001)), Some(OperatorIndex(2)));
        assert_eq!(t.get(&m(10_000)), Some(OperatorIndex(0)));
        assert_eq!(t.get(&m(999_999_999_999_999)), Some(max));
        assert_eq!(t.get(&m(34_600_000_002)), None);
        let empty = PortedTable::empty();
        assert!(empty.is_empty());
        assert_eq!(empty.get(&m(34_600_000_001)), None);
        assert_eq!(empty.heap_bytes(), 0);
    }

    #[test]
    fn many_entries_stay_compact_and_exact() {
        // Sequential numbers plus a stride: clustered keys must still spread over buckets.
        let n = 200_000u64;
        let key = |i: u64| m(34_600_000_000 + i * 7);
        let t = PortedTable::from_entries((0..n).map(|i| (key(i), OperatorIndex((i % 3) as u16))));
        assert_eq!(t.len(), n as usize);
        assert!(t.heap_bytes() as f64 / n as f64 <= 12.0, "{}", t.heap_bytes());
        for i in 0..n {
            assert_eq!(t.get(&key(i)), Some(OperatorIndex((i % 3) as u16)));
            assert_eq!(t.get(&m(34_600_000_000 + i * 7 + 1)), None);
        }
        // An iterator without a size hint grows, then is rebuilt to size.
        let grown = PortedTable::from_entries((0..n).filter(|_| true).map(|i| (key(i), OperatorIndex(0))));
        assert_eq!(grown.len(), n as usize);
        assert!(grown.heap_bytes() as f64 / n as f64 <= 12.0);
        assert!((0..n).all(|i| grown.get(&key(i)) == Some(OperatorIndex(0))));
    }
}

//! Discovery routing: which operator serves an [`Msisdn`]. The ported table answers first (a
//! ported number overrides every range), then the longest configured prefix.
//!
//! Owns: [`Directory`] (the two tables, swapped as one on reload by its owner), [`Route`] and the
//! shared [`OperatorIndex`]. Must not know: operator config or backends (an index is a position
//! in the config's operator list, resolved by the caller), HTTP, or fallback decisions.
//!
//! Files: `prefix.rs` (digit trie, longest match), `ported.rs` (compact hash table, CSV loader).

pub mod ported;
pub mod prefix;

pub use ported::{OperatorOutOfRange, PortedError, PortedErrors, PortedTable};
pub use prefix::{PrefixError, PrefixTable};

use crate::msisdn::Msisdn;

/// Position of an operator in the configured operator list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OperatorIndex(pub u16);

/// Which table produced a route (for logs, metrics labels and the audit record).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteSource {
    /// The number is in the portability table.
    Ported,
    /// The number fell into a configured range.
    Prefix,
}

impl RouteSource {
    /// Stable lower-case label: `"ported"` or `"prefix"`.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteSource::Ported => "ported",
            RouteSource::Prefix => "prefix",
        }
    }
}

/// The operator serving a number and how we know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// The serving operator.
    pub operator: OperatorIndex,
    /// The table that said so.
    pub source: RouteSource,
}

/// The routing tables, read-only once built.
#[derive(Debug, Default)]
pub struct Directory {
    /// Configured number ranges.
    prefixes: PrefixTable,
    /// Ported numbers, consulted first.
    ported: PortedTable,
}

impl Directory {
    /// Combines the two tables.
    pub fn new(prefixes: PrefixTable, ported: PortedTable) -> Self {
        Directory { prefixes, ported }
    }

    /// Ported table first (a ported number overrides every prefix), then longest prefix.
    /// `None`: no operator serves the number (foreign, fixed line, unassigned range).
    pub fn route(&self, msisdn: &Msisdn) -> Option<Route> {
        if let Some(operator) = self.ported.get(msisdn) {
            return Some(Route { operator, source: RouteSource::Ported });
        }
        self.prefixes.longest_match(msisdn).map(|operator| Route { operator, source: RouteSource::Prefix })
    }

    /// Ported numbers held.
    pub fn ported_len(&self) -> usize {
        self.ported.len()
    }

    /// Prefixes held.
    pub fn prefix_len(&self) -> usize {
        self.prefixes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msisdn::ParseRules;

    const MOVISTAR: OperatorIndex = OperatorIndex(0);
    const VODAFONE: OperatorIndex = OperatorIndex(1);
    const ORANGE: OperatorIndex = OperatorIndex(2);

    fn m(s: &str) -> Msisdn {
        Msisdn::parse(s, &ParseRules::default()).unwrap()
    }

    fn directory() -> Directory {
        let mut prefixes = PrefixTable::new();
        prefixes.insert("34600", VODAFONE).unwrap();
        prefixes.insert("346001", ORANGE).unwrap();
        prefixes.insert("347", MOVISTAR).unwrap();
        let ported = PortedTable::from_entries([
            (m("+34600123456"), MOVISTAR),
            (m("+34700000001"), ORANGE),
            (m("+44700900123"), VODAFONE),
        ]);
        Directory::new(prefixes, ported)
    }

    #[test]
    fn ported_number_overrides_every_prefix() {
        let d = directory();
        let ported = |op| Some(Route { operator: op, source: RouteSource::Ported });
        // 346001 (orange) and 34600 (vodafone) both match; the ported entry wins.
        assert_eq!(d.route(&m("+34600123456")), ported(MOVISTAR));
        assert_eq!(d.route(&m("+34700000001")), ported(ORANGE));
        // Ported without any matching range.
        assert_eq!(d.route(&m("+44700900123")), ported(VODAFONE));
    }

    #[test]
    fn unported_numbers_take_the_longest_prefix() {
        let d = directory();
        let prefix = |op| Some(Route { operator: op, source: RouteSource::Prefix });
        assert_eq!(d.route(&m("+34600123457")), prefix(ORANGE));
        assert_eq!(d.route(&m("+34600234567")), prefix(VODAFONE));
        assert_eq!(d.route(&m("700 000 002")), prefix(MOVISTAR));
        assert_eq!(d.route(&m("+34910000000")), None);
        assert_eq!(d.route(&m("+33600000001")), None);
        assert_eq!(d.ported_len(), 3);
        assert_eq!(d.prefix_len(), 3);
    }

    #[test]
    fn empty_directory_routes_nothing() {
        let d = Directory::default();
        assert_eq!(d.route(&m("+34600000001")), None);
        assert_eq!((d.ported_len(), d.prefix_len()), (0, 0));
    }

    #[test]
    fn source_labels_are_stable() {
        assert_eq!(RouteSource::Ported.as_str(), "ported");
        assert_eq!(RouteSource::Prefix.as_str(), "prefix");
    }
}

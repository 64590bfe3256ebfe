//! Criterion bench for `Directory::route` at production scale: a ported table of 10 M synthetic
//! Spanish mobile numbers (346/347 + 8 digits, 3 operators, seeded RNG) in front of the prefix
//! table of `shared/bench/msisdn-prefixes.txt`.
//!
//! Cases: `ported_hit` (number in the ported table), `miss_to_prefix` (not ported: a ported-table
//! miss, then the prefix trie; most production lookups), `prefix_only` (same numbers, empty ported
//! table: the trie alone). Keys are drawn up front into shuffled 1 M vectors so every lookup
//! touches a cold part of the 110 MB table. Successive lookups are independent, so the CPU overlaps
//! their memory accesses as it does for concurrent requests: the numbers are per-lookup
//! throughput on one core, not the latency of a lone lookup (one DRAM access at least).
//!
//! `baseline/random_read_same_size` reads random words of an array as large as the table: the
//! floor for this machine, to compare the `route` numbers against.
//!
//! Before the benches it prints the table size, bytes per entry and build time.
//! `DISCOVERY_BENCH_ENTRIES` overrides the 10 M entries; `MCGATE_PREFIXES` the prefix file.
//! Run: `cargo bench --bench discovery -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use mcgate::discovery::{Directory, OperatorIndex, PortedTable, PrefixTable};
use mcgate::msisdn::Msisdn;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const DEFAULT_ENTRIES: usize = 10_000_000;
const KEYS: usize = 1_000_000;
/// 346xxxxxxxx and 347xxxxxxxx: 2 × 10^8 numbers from 34_600_000_000.
const FIRST: u64 = 34_600_000_000;
const SPAN: u64 = 200_000_000;
const OPERATORS: [&str; 3] = ["movistar", "vodafone", "orange"];
/// Used when the shared file is not beside the crate (a copy of the same toy table).
const FALLBACK_PREFIXES: &str = "347 movistar\n3471 vodafone\n34600 vodafone\n346001 orange\n\
    34607 vodafone\n34609 movistar\n346095 orange\n34610 vodafone\n34615 orange\n\
    34616 movistar\n34617 vodafone\n34619 movistar\n34620 movistar\n34629 movistar\n\
    3465 movistar\n34653 orange\n34656 orange\n34665 orange\n34667 vodafone\n\
    346671 movistar\n34686 orange\n34687 orange\n";

fn msisdn(v: u64) -> Msisdn {
    Msisdn::from_digits(v).expect("synthetic numbers have 11 digits")
}

fn prefix_table() -> PrefixTable {
    let path = std::env::var("MCGATE_PREFIXES")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/bench/msisdn-prefixes.txt").to_owned());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        println!("prefixes: {path}: {e}; using the built-in copy");
        FALLBACK_PREFIXES.to_owned()
    });
    let mut table = PrefixTable::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(prefix), Some(name)) = (fields.next(), fields.next()) else {
            panic!("bad prefix line {line:?}");
        };
        let index = OPERATORS.iter().position(|&o| o == name).expect("known operator");
        table.insert(prefix, OperatorIndex(index as u16)).expect("valid, unique prefix");
    }
    table
}

/// `n` distinct random numbers in the span.
fn distinct_numbers(rng: &mut StdRng, n: usize) -> Vec<u64> {
    let mut numbers = Vec::with_capacity(n + n / 16);
    while numbers.len() < n {
        while numbers.len() < n + n / 32 {
            numbers.push(FIRST + rng.random_range(0..SPAN));
        }
        numbers.sort_unstable();
        numbers.dedup();
    }
    numbers.truncate(n);
    numbers.shuffle(rng);
    numbers
}

fn route_benches(c: &mut Criterion) {
    let entries = std::env::var("DISCOVERY_BENCH_ENTRIES")
        .ok()
        .map(|v| v.parse().expect("DISCOVERY_BENCH_ENTRIES is a number"))
        .unwrap_or(DEFAULT_ENTRIES);
    let mut rng = StdRng::seed_from_u64(0x6d63_6761_7465);
    let numbers = distinct_numbers(&mut rng, entries);
    let operators: Vec<u16> = (0..entries).map(|_| rng.random_range(0..3)).collect();

    let start = Instant::now();
    let ported =
        PortedTable::from_entries(numbers.iter().zip(&operators).map(|(&n, &op)| (msisdn(n), OperatorIndex(op))));
    let build = start.elapsed();
    println!(
        "ported table: {} entries, {} heap bytes, {:.2} bytes/entry, built in {:.3} s ({:.0} ns/entry)",
        ported.len(),
        ported.heap_bytes(),
        ported.heap_bytes() as f64 / ported.len().max(1) as f64,
        build.as_secs_f64(),
        build.as_nanos() as f64 / entries.max(1) as f64,
    );

    let hits: Vec<Msisdn> = (0..KEYS).map(|_| msisdn(numbers[rng.random_range(0..numbers.len())])).collect();
    drop(numbers);
    let misses: Vec<Msisdn> = std::iter::repeat_with(|| msisdn(FIRST + rng.random_range(0..SPAN)))
        .filter(|m| ported.get(m).is_none())
        .take(KEYS)
        .collect();

    let directory_bytes = ported.heap_bytes();
    let directory = Directory::new(prefix_table(), ported);
    let prefix_only = Directory::new(prefix_table(), PortedTable::empty());
    let cases = [
        ("ported_hit", &directory, &hits),
        ("miss_to_prefix", &directory, &misses),
        ("prefix_only", &prefix_only, &misses),
    ];

    let mut group = c.benchmark_group("route");
    for (name, dir, keys) in cases {
        let mut i = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                i = if i + 1 == keys.len() { 0 } else { i + 1 };
                dir.route(black_box(&keys[i]))
            })
        });
    }
    group.finish();

    // Calibration: independent random 8-byte reads from an array as large as the ported table,
    // the floor for any structure of that size on this machine.
    let array = vec![1u64; directory_bytes / 8];
    let indices: Vec<usize> = (0..KEYS).map(|_| rng.random_range(0..array.len())).collect();
    let mut i = 0;
    c.bench_function("baseline/random_read_same_size", |b| {
        b.iter(|| {
            i = if i + 1 == indices.len() { 0 } else { i + 1 };
            array[black_box(indices[i])]
        })
    });
}

criterion_group!(benches, route_benches);
criterion_main!(benches);

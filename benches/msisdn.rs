//! Criterion bench for `Msisdn::parse` (runs on every request): one case per accepted form of
//! protocol.md §6, plus a rejected input to show errors cost no more than successes.
//!
//! Run: `cargo bench --bench msisdn -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use mcgate::msisdn::{Msisdn, ParseRules};

const FORMS: &[(&str, &str)] = &[
    ("msisdn_scheme", "MSISDN:34600000001"),
    ("msisdn_scheme_plus", "MSISDN:+34600000001"),
    ("tel_separators", "tel:+34-600-000-001"),
    ("plus", "+34600000001"),
    ("double_zero", "0034600000001"),
    ("digits", "34600000001"),
    ("national_spaces", "600 000 001"),
    ("rejected_extension", "+34600000001;ext=12"),
];

fn parse_forms(c: &mut Criterion) {
    let rules = ParseRules::default();
    let mut group = c.benchmark_group("msisdn_parse");
    for &(name, input) in FORMS {
        group.bench_function(name, |b| b.iter(|| Msisdn::parse(black_box(input), black_box(&rules))));
    }
    group.finish();

    let m = Msisdn::parse("+34600000001", &rules).ok();
    c.bench_function("msisdn_masked_display", |b| b.iter(|| black_box(m).map(|m| m.to_string())));
}

criterion_group!(benches, parse_forms);
criterion_main!(benches);

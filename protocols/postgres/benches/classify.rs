//! Cost of splitting and classifying one statement, over the corpus in
//! `fixtures/sql/corpus.sql`: `cargo bench -p airlock-postgres --bench classify`.
//! Prints p50/p90/p99 per statement (each statement timed over many iterations).

use std::hint::black_box;
use std::time::Instant;

use airlock_postgres::sql::{classify, split};

const CORPUS: &str = include_str!("../../../fixtures/sql/corpus.sql");

fn main() {
    let statements: Vec<String> = CORPUS
        .split("-- expect: ")
        .skip(1)
        .filter_map(|case| case.split_once('\n').map(|(_, sql)| sql.trim().to_owned()))
        .collect();
    let iterations = 2_000;
    let mut per_statement_ns: Vec<f64> = statements
        .iter()
        .map(|sql| {
            let start = Instant::now();
            for _ in 0..iterations {
                for s in split(black_box(sql)) {
                    black_box(classify(&s));
                }
            }
            start.elapsed().as_nanos() as f64 / iterations as f64
        })
        .collect();
    per_statement_ns.sort_by(f64::total_cmp);
    let pct = |p: f64| per_statement_ns[((per_statement_ns.len() - 1) as f64 * p) as usize];
    let longest = statements.iter().map(String::len).max().unwrap_or(0);
    println!(
        "{} statements (up to {longest} bytes), split + classify: p50 {:.2} µs, p90 {:.2} µs, p99 {:.2} µs, max {:.2} µs",
        statements.len(),
        pct(0.5) / 1000.0,
        pct(0.9) / 1000.0,
        pct(0.99) / 1000.0,
        pct(1.0) / 1000.0
    );
}

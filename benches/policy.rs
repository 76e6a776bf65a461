//! What a policy decision costs per statement, over the SQL corpus, with the default
//! policy and with three rules (`fixtures/policy/rules.toml`): `cargo bench --bench policy`.
//! Prints p50/p90/p99 per statement (each statement timed over many iterations).

use std::hint::black_box;
use std::time::Instant;

use airlock::config::Config;
use airlock::plugins::postgres::judge::decide_query;
use airlock::policy::Policy;

const CORPUS: &str = include_str!("../fixtures/sql/corpus.sql");

/// Three rules, as the policy unit tests use them.
const RULES: &str = include_str!("../fixtures/policy/rules.toml");

fn main() {
    let statements: Vec<String> = CORPUS
        .split("-- expect: ")
        .skip(1)
        .filter_map(|case| case.split_once('\n').map(|(_, sql)| sql.trim().to_owned()))
        .collect();
    let groups = vec!["agents".to_owned()];
    for (name, config) in [("default policy", "[auth]\ndev_tokens = true\n"), ("three rules", RULES)] {
        let config = Config::parse(config, std::path::PathBuf::new()).expect("rules");
        let policy = Policy::new(&config.rules).expect("policy");
        let iterations = 2_000;
        let mut ns: Vec<f64> = statements
            .iter()
            .map(|sql| {
                let start = Instant::now();
                for _ in 0..iterations {
                    black_box(decide_query(&policy, "app-db", &groups, black_box(sql)));
                }
                start.elapsed().as_nanos() as f64 / iterations as f64
            })
            .collect();
        ns.sort_by(f64::total_cmp);
        let pct = |p: f64| ns[((ns.len() - 1) as f64 * p) as usize] / 1000.0;
        println!(
            "policy decision, {name}: {} statements, p50 {:.2} µs, p90 {:.2} µs, p99 {:.2} µs",
            ns.len(),
            pct(0.5),
            pct(0.9),
            pct(0.99)
        );
    }
}

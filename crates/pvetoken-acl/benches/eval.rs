//! Benchmark binary (`cargo bench -p pvetoken-acl --bench eval`): user.cfg parse time and in-process queries per
//! second on the configuration of `shared/bench/gen_big_usercfg.py OUT 1` (set `PVETOKEN_BENCH_DIR=OUT`; without
//! it the bench generates nothing and says so).
#![allow(clippy::print_stdout, clippy::print_stderr, reason = "a benchmark reports on the terminal")]

use std::time::{Duration, Instant};

use pvetoken_acl::{Catalog, Evaluator, Subject, UserCfg};

fn main() {
    let Some(dir) = std::env::var_os("PVETOKEN_BENCH_DIR") else {
        eprintln!("set PVETOKEN_BENCH_DIR to the output dir of shared/bench/gen_big_usercfg.py OUT 1");
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let text = std::fs::read_to_string(dir.join("user.cfg")).expect("read user.cfg");
    let queries_text = std::fs::read_to_string(dir.join("queries.jsonl")).expect("read queries.jsonl");
    let queries: Vec<(Subject, String)> = queries_text
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("query JSON");
            (
                v["subject"].as_str().expect("subject").parse().expect("subject id"),
                v["path"].as_str().expect("path").to_owned(),
            )
        })
        .collect();
    let catalog = Catalog::newest();

    let mut best_parse = Duration::MAX;
    let mut best_compile = Duration::MAX;
    for _ in 0..10 {
        let start = Instant::now();
        let (cfg, _warnings) = UserCfg::parse(&text, &catalog);
        best_parse = best_parse.min(start.elapsed());
        let start = Instant::now();
        let eval = Evaluator::new(&cfg, &catalog);
        best_compile = best_compile.min(start.elapsed());
        std::hint::black_box(&eval);
    }
    let (cfg, _) = UserCfg::parse(&text, &catalog);
    let eval = Evaluator::new(&cfg, &catalog);
    let rounds = 50;
    let start = Instant::now();
    let mut granted = 0usize;
    for _ in 0..rounds {
        for (subject, path) in &queries {
            granted += eval.permissions_raw(subject, path).granted().len();
        }
    }
    let elapsed = start.elapsed();
    let total = rounds * queries.len();
    println!("user.cfg: {} bytes, {} queries", text.len(), queries.len());
    println!("parse (best of 10): {:.2} ms", best_parse.as_secs_f64() * 1e3);
    println!("compile evaluator (best of 10): {:.2} ms", best_compile.as_secs_f64() * 1e3);
    println!(
        "queries: {total} in {:.3} s = {:.0} queries/s (checksum {granted})",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
}

//! Benchmark binary (`cargo bench -p pvetoken-acl --bench eval`): user.cfg parse time, engine compile time and
//! in-process queries per second on the configuration of `shared/bench/gen_big_usercfg.py OUT 1` (set
//! `PVETOKEN_BENCH_DIR=OUT`; without it the bench generates nothing and says so). Targets (issue #21): parse
//! ≤ 10 ms, engine build ≤ 5 ms.
#![allow(clippy::print_stdout, clippy::print_stderr, reason = "a benchmark reports on the terminal")]

use std::time::{Duration, Instant};

use pvetoken_acl::{Catalog, Evaluator, ParsedCfg, Subject, UserCfg};

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

    let best_of = |runs: usize, mut f: Box<dyn FnMut() + '_>| {
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed()
            })
            .min()
            .unwrap_or(Duration::ZERO)
    };
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let parse = best_of(10, Box::new(|| drop(std::hint::black_box(ParsedCfg::parse(&text, &catalog)))));
    let (parsed, _) = ParsedCfg::parse(&text, &catalog);
    let model = best_of(10, Box::new(|| drop(std::hint::black_box(parsed.to_user_cfg()))));
    let engine_all = best_of(10, Box::new(|| drop(std::hint::black_box(parsed.engine(&catalog)))));
    let subjects: std::collections::BTreeSet<&str> = queries.iter().map(|(subject, _)| subject.as_str()).collect();
    let engine_batch =
        best_of(10, Box::new(|| drop(std::hint::black_box(parsed.engine_for(&catalog, subjects.iter().copied())))));
    let legacy_parse = best_of(10, Box::new(|| drop(std::hint::black_box(UserCfg::parse(&text, &catalog)))));
    let (cfg, _) = UserCfg::parse(&text, &catalog);
    let evaluator = best_of(10, Box::new(|| drop(std::hint::black_box(Evaluator::new(&cfg, &catalog)))));
    let eval = parsed.engine(&catalog);
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
    println!("user.cfg: {} bytes, {} queries ({} subjects)", text.len(), queries.len(), subjects.len());
    println!("parse (ParsedCfg::parse, best of 10): {:.2} ms (target 10 ms)", ms(parse));
    println!("engine build, every subject (best of 10): {:.2} ms (target 5 ms)", ms(engine_all));
    println!("engine build, the batch's subjects (best of 10): {:.2} ms", ms(engine_batch));
    println!("model (ParsedCfg::to_user_cfg, best of 10): {:.2} ms", ms(model));
    println!("UserCfg::parse = parse + model (best of 10): {:.2} ms", ms(legacy_parse));
    println!("Evaluator::new from the model (best of 10): {:.2} ms", ms(evaluator));
    println!(
        "queries: {total} in {:.3} s = {:.0} queries/s (checksum {granted})",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
}

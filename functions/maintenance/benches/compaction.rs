//! Maintenance figures: N small batches (one small file each per table) → one maintenance run, on the
//! local S3 endpoint and a local directory: files before and after, seconds for the run.
//! Run with the stack up: `eval "$(infra/local/stack.sh up)" && cargo bench -p tweetlake-maintenance-function --bench compaction`.

use chrono::Utc;
use std::time::Instant;
use tweetlake_pipeline::MaintenanceConfig;
use tweetlake_pipeline::maintenance::run;
use tweetlake_tests::*;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

async fn one(t: &Tables, batches: i64, per_batch: usize) -> (usize, usize, f64) {
    let p = processor(t, &[]).await;
    for b in 0..batches {
        p.process_event(event(&good_recs(0, b * per_batch as i64, per_batch, 1_000_000 + (b as u64) * per_batch as u64)))
            .await
            .unwrap();
    }
    let cfg = MaintenanceConfig::from_lookup(t.lookup(&[])).unwrap();
    let start = Instant::now();
    let report = run(&cfg, Utc::now()).await.unwrap();
    let secs = start.elapsed().as_secs_f64();
    (report.tables[0].files_before, report.tables[0].files_after, secs)
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` probes harness-less benches this way
    }
    println!(
        "| tables on | small batches (50 tweets each) | tweets files before | after | maintenance run s (median of 3; all 3 tables) |"
    );
    println!("|---|---|---|---|---|");
    for (name, batches) in [("moto S3", 100), ("local dir", 100), ("moto S3", 300)] {
        let mut runs = Vec::new();
        let mut files = (0, 0);
        for i in 0..3 {
            let t = if name == "moto S3" { s3_tables(&format!("compact-{batches}-{i}")) } else { local_tables() };
            let (before, after, secs) = one(&t, batches, 50).await;
            files = (before, after);
            runs.push(secs);
        }
        runs.sort_by(f64::total_cmp);
        println!("| {name} | {batches} | {} | {} | {:.2} |", files.0, files.1, runs[1]);
    }
}

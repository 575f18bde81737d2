//! End-to-end figures for the process function: one 6 MB Lambda Kafka event (the payload cap) from JSON
//! to a committed Delta version on the local S3 endpoint, plus the process's peak RSS: once with the
//! recorded tweets as they are (one date), once spread over 3,000 dates (a backfill of old tweets, one
//! `created_date` partition each).
//! Run with the stack up: `eval "$(infra/local/stack.sh up)" && cargo bench -p tweetlake-pipeline --bench e2e_batch`.

use serde_json::{Value, json};
use std::time::Instant;
use tweetlake_tests::*;

// The allocator the Lambda binary uses.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A 6 MB event whose tweets' `created_at` cycle over `dates` consecutive days.
fn six_mb_event(dates: usize) -> (Vec<u8>, usize) {
    let page: Value = serde_json::from_slice(&std::fs::read(repo_root().join("events/x-api/brexit.json")).unwrap()).unwrap();
    let tweets = page["data"].as_array().unwrap();
    let mut recs = Vec::new();
    let mut size = 200;
    let mut i = 0usize;
    while size < 6_000_000 - 4_000 {
        let mut t = tweets[i % tweets.len()].clone();
        t["id"] = json!((1_440_000_000_000_000_000u64 + i as u64).to_string());
        if dates > 1 {
            let day = chrono::DateTime::from_timestamp(1_632_268_800 - (i % dates) as i64 * 86_400, 0).unwrap();
            t["created_at"] = json!(day.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        }
        let env = serde_json::to_vec(&json!({"v": 1, "tweet": t, "rules": [{"id": "1", "tag": "brexit"}], "ingest": {"source": "recent_search", "run_id": "bench"}})).unwrap();
        let rec = Rec { partition: 0, offset: i as i64, timestamp_ms: 1_632_328_649_000 + i as i64, value: Some(env) };
        size += event(std::slice::from_ref(&rec)).len() - 120;
        recs.push(rec);
        i += 1;
    }
    (event(&recs), recs.len())
}

/// Forgets the process's peak RSS so far, so the next figure is one case's own.
fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").expect("Linux resets VmHWM through clear_refs");
}

fn peak_rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: f64 = s.lines().find(|l| l.starts_with("VmHWM:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024.0
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` probes harness-less benches this way
    }
    println!("| dates | event bytes | records | median s (5 runs) | min s | max s | tweets/s | peak RSS MiB |");
    println!("|---|---|---|---|---|---|---|---|");
    for dates in [1, 3_000] {
        let (ev, records) = six_mb_event(dates);
        let bytes = ev.len();
        let mut times = Vec::new();
        reset_peak_rss();
        for run in 0..5 {
            let t = s3_tables(&format!("e2e-{dates}-{run}"));
            let p = processor(&t, &[]).await;
            let payload = ev.clone();
            let start = Instant::now();
            let s = p.process_event(payload).await.unwrap();
            times.push(start.elapsed().as_secs_f64());
            assert_eq!(s.rows_written, records);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "| {dates} | {bytes} | {records} | {:.3} | {:.3} | {:.3} | {:.0} | {:.0} |",
            times[2],
            times[0],
            times[4],
            records as f64 / times[2],
            peak_rss_mib()
        );
    }
}

//! Benchmark: the whole local pipeline as `tweetlake local` runs it — replayed X API pages → ingest →
//! the local Apache Kafka → the event-source-mapping emulator → the process function → Delta tables
//! on the local disk — on 100,000 tweets (fresh ids, the recorded pages' text), timed from the
//! command's start to its exit, with its peak RSS, for a few batch sizes.
//!
//! Build the CLI optimised first (`cargo build --profile bench -p tweetlake-cli`, or `--release` as
//! deployed), then, with the stack up: `cargo bench -p tweetlake-cli --bench local_run`.
//! TWEETLAKE_BENCH_TWEETS sets the run size, TWEETLAKE_BENCH_BATCH_SIZES the batch sizes (`100,1000`),
//! TWEETLAKE_BENCH_CLI the binary.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;
use tweetlake_tests::kafka::bootstrap;
use tweetlake_tests::xapi_server::write_generated_pages;

fn cli() -> PathBuf {
    tweetlake_tests::optimised_binary("TWEETLAKE_BENCH_CLI", "tweetlake")
}

fn main() {
    let total: usize = std::env::var("TWEETLAKE_BENCH_TWEETS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let sizes: Vec<usize> = std::env::var("TWEETLAKE_BENCH_BATCH_SIZES")
        .unwrap_or_else(|_| "100,500,2000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("batch sizes are numbers"))
        .collect();
    let pages = tempfile::tempdir().unwrap();
    write_generated_pages(pages.path(), total);
    for size in sizes {
        let out = tempfile::tempdir().unwrap();
        let topic = format!("bench-local-{}-{size}-{}", std::process::id(), chrono::Utc::now().timestamp_micros() % 1_000_000);
        let started = Instant::now();
        // GNU time reports the peak RSS of the command (%M, KiB).
        let run = Command::new("/usr/bin/time")
            .args(["-f", "peak-rss-kib %M"])
            .arg(cli())
            .args(["local", "--no-progress", "--partitions", "3", "--batch-size", &size.to_string()])
            .arg("--replay")
            .arg(pages.path())
            .arg("--dir")
            .arg(out.path())
            .args(["--topic", &topic, "--bootstrap", &bootstrap()])
            .env("TWEETLAKE_RULES", "bench: #bench")
            .env("TWEETLAKE_MAX_PAGES_PER_RULE", (total / 100 + 1).to_string())
            .env_remove("TWEETLAKE_TABLE_URI")
            .env_remove("TWEETLAKE_QUARANTINE_URI")
            .output()
            .unwrap_or_else(|e| panic!("{}: {e} (build it: cargo build --profile bench -p tweetlake-cli)", cli().display()));
        let secs = started.elapsed().as_secs_f64();
        assert!(run.status.success(), "tweetlake local failed: {}", String::from_utf8_lossy(&run.stderr));
        let summary: serde_json::Value = serde_json::from_slice(&run.stdout).expect("the run's JSON summary");
        assert_eq!(summary["tweets_in_table"], total as u64, "{summary}");
        let err = String::from_utf8_lossy(&run.stderr);
        let rss_kib: f64 =
            err.lines().find_map(|l| l.strip_prefix("peak-rss-kib ")).and_then(|v| v.trim().parse().ok()).unwrap_or(f64::NAN);
        println!(
            "tweetlake local, {total} tweets, batch size {size}: {secs:.1} s wall, {:.0} tweets/s, peak RSS {:.0} MiB",
            total as f64 / secs,
            rss_kib / 1024.0
        );
    }
}

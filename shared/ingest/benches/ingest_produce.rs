//! Benchmark: recorded X API pages → parse → one envelope per tweet → produced and acknowledged
//! (acks=all, idempotent, lz4) by the real local broker. Tweets per second, median of 5 runs.
//!
//! `cargo bench -p tweetlake-ingest --bench ingest_produce` (stack up: `eval "$(infra/local/stack.sh up)"`).
//! TWEETLAKE_BENCH_TWEETS sets the run size (default 100,000).

use std::time::Instant;
use tweetlake_contract::envelope::{IngestMeta, MatchingRule};
use tweetlake_ingest::collect::Collector;
use tweetlake_ingest::kafka::KafkaProducer;
use tweetlake_ingest::xapi::SearchPage;
use tweetlake_tests::kafka::{bootstrap, new_topic, settings};
use tweetlake_tests::xapi_server::generated_pages;

fn main() {
    let total: usize = std::env::var("TWEETLAKE_BENCH_TWEETS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let bodies = generated_pages(total);
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let rules = [MatchingRule { id: None, tag: Some("bench".into()) }];
    let mut runs = Vec::new();
    for i in 0..5 {
        let topic = rt.block_on(new_topic("bench-produce", 4));
        let mut kafka = settings(&bootstrap());
        if let Ok(c) = std::env::var("TWEETLAKE_KAFKA_COMPRESSION") {
            kafka.compression = c;
        }
        let producer = rt.block_on(KafkaProducer::new(&kafka, &topic)).unwrap();
        let start = Instant::now();
        let mut c = Collector::new(IngestMeta { source: "bench".into(), run_id: format!("bench-{i}"), fetched_at: None });
        for b in &bodies {
            let page: SearchPage = serde_json::from_slice(b).unwrap();
            c.add(page.data, &page.includes, &rules);
        }
        let parsed = start.elapsed();
        let d = rt.block_on(producer.send_all(c.messages(), &[], "bench", "bench")).unwrap();
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(d.messages, c.len());
        eprintln!(
            "run {i}: {} tweets ({:.1} MB of pages) parsed in {:.3} s, acknowledged after {secs:.3} s: {:.0} tweets/s",
            c.len(),
            bytes as f64 / 1e6,
            parsed.as_secs_f64(),
            c.len() as f64 / secs
        );
        runs.push(c.len() as f64 / secs);
    }
    runs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "ingest page-parse → produce-acknowledged: median {:.0} tweets/s (min {:.0}, max {:.0}, 5 runs)",
        runs[2], runs[0], runs[4]
    );
}

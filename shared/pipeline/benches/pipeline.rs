//! The in-memory path of the process function per record: decode → quality → dedup → clean → score →
//! Arrow, on envelopes built from a real recorded X API page (no I/O).
//! Run: `cargo bench -p tweetlake-pipeline --bench pipeline`.

use chrono::Utc;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use std::collections::HashMap;
use tweetlake_pipeline::decode::{Origin, RawRecord, decode_event, encode_event};
use tweetlake_pipeline::offsets::PerPartition;
use tweetlake_pipeline::post::Languages;
use tweetlake_pipeline::process::{EMBEDDED_MODEL, Stages, transform};
use tweetlake_pipeline::quality::QualityConfig;
use tweetlake_pipeline::tables::{Stamp, tweets};
use tweetlake_sentiment::Model;

// The allocator the Lambda binary uses.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/x-api/brexit.json");

/// A Lambda MSK event of `n` distinct tweets (the page's 100 tweets cycled with fresh ids).
fn event_bytes(n: usize) -> Vec<u8> {
    let page: Value = serde_json::from_str(&std::fs::read_to_string(PAGE).expect("page")).expect("json");
    let tweets = page["data"].as_array().expect("data");
    let records: Vec<RawRecord> = (0..n)
        .map(|i| {
            let mut t = tweets[i % tweets.len()].clone();
            t["id"] = json!((1_440_000_000_000_000_000u64 + i as u64).to_string());
            let env = json!({"v": 1, "tweet": t, "rules": [{"id": "1", "tag": "brexit"}], "ingest": {"source": "recent_search", "run_id": "bench"}});
            RawRecord {
                topic: "tweets".into(),
                partition: 0,
                offset: i as i64,
                timestamp_ms: 1_632_328_649_000 + i as i64,
                key: None,
                value: Some(serde_json::to_vec(&env).expect("json")),
                headers: Vec::new(),
                decode_error: None,
            }
        })
        .collect();
    encode_event(&records, Origin::default())
}

fn bench(c: &mut Criterion) {
    let model = Model::from_bytes(EMBEDDED_MODEL).expect("model");
    let n = 5_000;
    let event = event_bytes(n);
    let quality = QualityConfig::default();
    let languages = Languages::default();
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(n as u64));
    g.sample_size(20);
    g.bench_function("decode_to_arrow", |b| {
        b.iter_batched(
            || event.clone(),
            |bytes| {
                let (_, records) = decode_event(&bytes).expect("decodes");
                let mut windows = HashMap::new();
                let out = transform(
                    &Stages { model: &model, quality: &quality, languages: &languages },
                    records,
                    &PerPartition::default(),
                    &PerPartition::default(),
                    &mut windows,
                    Utc::now(),
                );
                assert_eq!(out.rows.len(), n);
                tweets::batch(&out.rows, &Stamp { now: Utc::now(), model_version: model.version() }).expect("batch")
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

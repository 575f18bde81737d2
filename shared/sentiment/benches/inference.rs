//! Sentiment inference throughput and model load time, on the committed model and the 498 texts of
//! the manual test set. Run: `cargo bench -p tweetlake-sentiment --bench inference`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tweetlake_sentiment::features::FeatureBuf;
use tweetlake_sentiment::lexicon::Lexicon;
use tweetlake_sentiment::{Featurizer, Model, normalize};

const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/sentiment.twlk");
const TEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/testdata.manual.2009.06.14.csv");

fn texts() -> Vec<String> {
    // The text is the last CSV column; the manual test set quotes every field.
    std::fs::read_to_string(TEST)
        .expect("manual test set")
        .lines()
        .map(|l| l.rsplit("\",\"").next().unwrap_or_default().trim_end_matches('"').to_owned())
        .collect()
}

fn bench(c: &mut Criterion) {
    let bytes = std::fs::read(MODEL).expect("committed model");
    let model = Model::from_bytes(&bytes).expect("model parses");
    let raw = texts();
    let normalized: Vec<String> = raw.iter().map(|t| normalize(t).into_owned()).collect();
    let mut g = c.benchmark_group("inference");
    g.throughput(Throughput::Elements(raw.len() as u64));
    // The binary experts alone.
    g.bench_function("score_normalized", |b| {
        let mut s = model.scorer();
        b.iter(|| normalized.iter().map(|t| s.score_normalized(black_box(t))).sum::<f32>())
    });
    // What the process function runs per tweet: the experts, the in-domain experts and the head.
    g.bench_function("predict_normalized", |b| {
        let mut s = model.scorer();
        b.iter(|| normalized.iter().map(|t| s.predict_normalized(black_box(t)).score).sum::<f32>())
    });
    g.bench_function("predict_raw", |b| {
        let mut s = model.scorer();
        b.iter(|| raw.iter().map(|t| s.predict(black_box(t)).score).sum::<f32>())
    });
    g.finish();
    // What the lexicon expert costs: the featuriser alone, with and without the valence lookups.
    let mut g = c.benchmark_group("features");
    g.throughput(Throughput::Elements(raw.len() as u64));
    for lexicon in [true, false] {
        let f = Featurizer::new(tweetlake_sentiment::FeatureConfig { lexicon, ..model.meta().features.clone() });
        let name = if lexicon { "extract_with_lexicon" } else { "extract_without_lexicon" };
        g.bench_function(name, |b| {
            let mut buf = FeatureBuf::default();
            b.iter(|| {
                normalized.iter().fold(0f32, |acc, t| {
                    f.extract(black_box(t), &mut buf);
                    acc + buf.lexicon + buf.counts.len() as f32
                })
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("model");
    g.sample_size(20);
    g.bench_function("load_from_bytes", |b| b.iter(|| Model::from_bytes(black_box(&bytes)).expect("parses")));
    // Paid once per process on top of load_from_bytes (the parsed lexicon is shared).
    g.bench_function("lexicon_build", |b| b.iter(Lexicon::build_vader));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

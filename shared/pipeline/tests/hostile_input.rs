//! Hostile input as a standing part of the suite (property-based fuzzing with proptest): arbitrary
//! Lambda events — any field missing or of any JSON type, header bytes out of range, timestamps no
//! calendar holds, offsets and partitions negative or repeated, envelopes valid, broken or mistyped —
//! through the event decoder, the in-memory stages and the Arrow row builders, with the real model.
//!
//! Asserted: nothing panics, and every record of the event ends as exactly one of: a row, a quarantine
//! row, an in-batch or in-window duplicate, or a redelivery skip.
//!
//! The number of generated events is `PROPTEST_CASES` (default 1,000 per property, about 5,000 records);
//! a long run prints its record count every million:
//! `PROPTEST_CASES=1000000 cargo test -p tweetlake-pipeline --test hostile_input -- every_record --nocapture`.

use base64::Engine;
use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use tweetlake_pipeline::aggregate::partials;
use tweetlake_pipeline::decode::decode_event;
use tweetlake_pipeline::offsets::{Coverage, PerPartition, TopicPartition};
use tweetlake_pipeline::post::Languages;
use tweetlake_pipeline::process::{EMBEDDED_MODEL, Stages, transform};
use tweetlake_pipeline::quality::QualityConfig;
use tweetlake_pipeline::tables::aggregates::AggregateRow;
use tweetlake_pipeline::tables::{Stamp, aggregates, quarantine, tweets};
use tweetlake_sentiment::Model;

static MODEL: LazyLock<Model> = LazyLock::new(|| Model::from_bytes(EMBEDDED_MODEL).expect("the embedded model loads"));

/// Records checked so far in this process; a line on stderr every million (`--nocapture` shows it), so
/// a long run says how many records its events held.
static RECORDS: AtomicUsize = AtomicUsize::new(0);

fn count(records: usize) {
    let before = RECORDS.fetch_add(records, Ordering::Relaxed);
    if (before + records) / 1_000_000 > before / 1_000_000 {
        eprintln!("hostile_input: {} records checked", before + records);
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Any JSON scalar, a small array or object.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON has no NaN or infinity", |f| f.is_finite()).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map("[a-z]{1,4}", inner, 0..3).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn timestamp() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (1_600_000_000_000i64..1_800_000_000_000).prop_map(Value::from),
        1 => Just(json!(-1)),
        1 => Just(json!(i64::MAX)),
        1 => Just(json!(i64::MIN)),
        1 => Just(json!(1e300)),
        1 => Just(json!(10_000_000_000_000_000i64)),
        1 => Just(json!(4_102_444_800_000i64)),
        1 => any::<i64>().prop_map(Value::from),
        1 => any_json(),
    ]
}

/// A tweet id, often one of a few (so duplicates happen), sometimes not digits.
fn tweet_id() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => (1_000u64..1_012).prop_map(|i| json!(i.to_string())),
        1 => "[0-9]{1,22}".prop_map(Value::from),
        1 => any_json(),
    ]
}

fn created_at() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => Just(json!("2025-11-24T16:00:00Z")),
        1 => Just(json!("2100-01-01T00:00:00Z")),
        1 => Just(json!("0001-01-01T00:00:00Z")),
        1 => Just(json!("9999-12-31T23:59:59.999Z")),
        1 => any_json(),
    ]
}

/// The JSON text of an envelope: well formed, with mistyped fields, or not JSON at all.
fn envelope() -> impl Strategy<Value = Vec<u8>> {
    let tweet =
        (tweet_id(), prop_oneof![3 => "[a-z #@:)]{1,40}".prop_map(Value::from), 1 => any_json()], created_at(), any_json());
    let version = prop_oneof![8 => Just(json!(1)), 1 => any_json()];
    let rules = prop_oneof![3 => Just(json!([{"id": "1", "tag": "t"}])), 1 => any_json()];
    let doc = (version, tweet, rules).prop_map(|(v, (id, text, created, extra), rules)| {
        serde_json::to_vec(&json!({
            "v": v,
            "tweet": {"id": id, "text": text, "created_at": created, "lang": extra},
            "rules": rules,
            "ingest": {"source": "fuzz", "run_id": "r"},
        }))
        .expect("serialisable")
    });
    prop_oneof![6 => doc, 1 => prop::collection::vec(any::<u8>(), 0..40)]
}

/// A record as the event carries it, any field possibly missing or of another type.
fn record() -> impl Strategy<Value = Value> {
    let value = prop_oneof![8 => envelope().prop_map(|e| json!(b64(&e))), 1 => Just(json!("%%%")), 1 => any_json()];
    let header_bytes = prop_oneof![
        4 => prop::collection::vec(-200i64..400, 0..4).prop_map(Value::from),
        1 => any_json(),
    ];
    let headers = prop_oneof![
        3 => prop::collection::vec(prop::collection::btree_map("[a-z-]{1,6}", header_bytes, 0..2), 0..3)
            .prop_map(|hs| Value::from(hs.into_iter().map(|m| Value::Object(m.into_iter().collect())).collect::<Vec<_>>())),
        1 => any_json(),
    ];
    let topic = prop_oneof![8 => Just(json!("tweets")), 1 => Just(json!("../../etc")), 1 => any_json()];
    let partition = prop_oneof![8 => (0i64..3).prop_map(Value::from), 1 => Just(json!(-1)), 1 => any_json()];
    let offset = prop_oneof![8 => (0i64..60).prop_map(Value::from), 1 => Just(json!(-5)), 1 => any_json()];
    let present = prop::collection::vec(prop::bool::weighted(0.93), 8);
    (topic, partition, offset, timestamp(), value, headers, present).prop_map(
        |(topic, partition, offset, ts, value, headers, present)| {
            let fields = [
                ("topic", topic),
                ("partition", partition),
                ("offset", offset),
                ("timestamp", ts),
                ("timestampType", json!("CREATE_TIME")),
                ("key", json!(b64(b"k"))),
                ("value", value),
                ("headers", headers),
            ];
            Value::Object(
                fields.into_iter().zip(present).filter(|(_, keep)| *keep).map(|((k, v), _)| (k.to_owned(), v)).collect(),
            )
        },
    )
}

/// An event: two record groups, sometimes a group that is not a list.
fn event() -> impl Strategy<Value = (Value, usize)> {
    let groups = prop::collection::vec(prop::collection::vec(record(), 0..8), 1..3);
    let odd_group = prop::option::weighted(0.1, any_json().prop_filter("not a list", |v| !v.is_array()));
    let source = prop_oneof![10 => Just("aws:kafka"), 10 => Just("SelfManagedKafka"), 1 => Just("aws:sqs")];
    (groups, odd_group, source).prop_map(|(groups, odd, source)| {
        let mut n = groups.iter().map(Vec::len).sum::<usize>();
        let mut records: serde_json::Map<String, Value> =
            groups.into_iter().enumerate().map(|(i, g)| (format!("tweets-{i}"), Value::from(g))).collect();
        if let Some(v) = odd {
            records.insert("tweets-9".into(), v);
            n += 1;
        }
        (json!({"eventSource": source, "records": records}), n)
    })
}

fn coverage() -> impl Strategy<Value = PerPartition<Coverage>> {
    prop::collection::btree_map(
        (0i32..3).prop_map(|p| TopicPartition::new("tweets", p)),
        (0i64..40, 0i64..40).prop_map(|(a, b)| Coverage { first: Some(a.min(b)), last: a.max(b) }),
        0..3,
    )
    .prop_map(|m| m.into_iter().collect())
}

/// `cases()` cases; the generators' filters (finite floats, a non-list) reject a few percent of values,
/// so a long run needs more than proptest's fixed allowance of 65,536 rejections.
fn config() -> ProptestConfig {
    let cases = cases();
    ProptestConfig {
        max_local_rejects: cases.max(65_536),
        max_global_rejects: cases.max(1_024),
        ..ProptestConfig::with_cases(cases)
    }
}

proptest! {
    #![proptest_config(config())]

    /// Every record of an arbitrary event ends exactly once, and every output builds its Arrow batch.
    #[test]
    fn every_record_ends_exactly_once((ev, n) in event(), done_t in coverage(), done_q in coverage(), now_s in 1_700_000_000i64..1_800_000_000) {
        let bytes = serde_json::to_vec(&ev).expect("serialisable");
        count(n);
        let now = DateTime::<Utc>::from_timestamp(now_s, 0).expect("in range");
        match decode_event(&bytes) {
            Err(e) => prop_assert_eq!(ev["eventSource"].as_str(), Some("aws:sqs"), "only a foreign event fails: {}", e),
            Ok((_, records)) => {
                prop_assert_eq!(records.len(), n, "decode keeps every record");
                let mut windows = HashMap::new();
                let t = transform(&Stages { model: &MODEL, quality: &QualityConfig::default(), languages: &Languages::default() }, records, &done_t, &done_q, &mut windows, now);
                let s = &t.summary;
                prop_assert_eq!(s.quarantined.values().sum::<usize>(), t.rejected.len());
                prop_assert_eq!(
                    t.rows.len() + t.rejected.len() + s.duplicates_in_batch + s.duplicates_in_window + s.redelivered_skipped,
                    n,
                    "each record ends once: {:?}", s
                );
                prop_assert!(t.rows.iter().all(|r| r.kafka_offset >= 0), "only placed records become rows");
                let stamp = Stamp { now, model_version: MODEL.version() };
                tweets::batch(&t.rows, &stamp).expect("tweets batch");
                quarantine::batch(&t.rejected, &stamp).expect("quarantine batch");
                let parts: Vec<_> = partials(&t.rows).into_iter().map(|p| AggregateRow::new(p, &PerPartition::default())).collect();
                aggregates::batch(&parts, &stamp).expect("aggregates batch");
            }
        }
    }

    /// Bytes that are not an event at all fail cleanly.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_event(&bytes);
    }
}

//! Arrow schemas and row builders of the tables the process function writes.
//!
//! Timestamps carry the UTC zone (a naive timestamp would become Delta `timestampNtz` and raise the
//! protocol beyond reader 1 / writer 2, which Athena cannot read); list items are named `element`, as
//! Delta's Arrow mapping names them.

use crate::aggregate::{AggregateKey, Partial};
use crate::decode::NO_TIMESTAMP;
use crate::sink::offset_of;
use chrono::{DateTime, NaiveDate, Utc};
use deltalake::arrow::array::{
    ArrayRef, BinaryBuilder, Date32Builder, Float64Builder, Int32Builder, Int64Builder, ListBuilder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::arrow::error::ArrowError;
use deltalake::arrow::record_batch::RecordBatch;
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn list() -> DataType {
    DataType::List(Arc::new(Field::new("element", DataType::Utf8, true)))
}

/// Schema of the tweets table, partitioned by `created_date`.
pub static TWEETS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let f = |n: &str, t: DataType, null: bool| Field::new(n, t, null);
    Arc::new(Schema::new(vec![
        f("tweet_id", DataType::Utf8, false),
        f("created_at", ts(), false),
        f("created_date", DataType::Date32, false),
        f("text", DataType::Utf8, false),
        f("clean_text", DataType::Utf8, false),
        f("author_id", DataType::Utf8, true),
        f("author_username", DataType::Utf8, true),
        f("lang", DataType::Utf8, true),
        f("conversation_id", DataType::Utf8, true),
        f("hashtags", list(), true),
        f("mentions", list(), true),
        f("urls", list(), true),
        f("rule_tags", list(), true),
        f("retweet_count", DataType::Int64, true),
        f("reply_count", DataType::Int64, true),
        f("like_count", DataType::Int64, true),
        f("quote_count", DataType::Int64, true),
        f("sentiment_label", DataType::Utf8, false),
        f("sentiment_score", DataType::Float64, false),
        f("model_version", DataType::Utf8, false),
        f("kafka_topic", DataType::Utf8, false),
        f("kafka_partition", DataType::Int32, false),
        f("kafka_offset", DataType::Int64, false),
        f("kafka_timestamp", ts(), false),
        f("ingest_source", DataType::Utf8, true),
        f("ingest_run_id", DataType::Utf8, true),
        f("processed_at", ts(), false),
    ]))
});

/// Partition columns of the tweets table.
pub const TWEETS_PARTITIONS: &[&str] = &["created_date"];

/// Schema of the quarantine table, partitioned by `quarantined_date`.
pub static QUARANTINE_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let f = |n: &str, t: DataType, null: bool| Field::new(n, t, null);
    Arc::new(Schema::new(vec![
        f("kafka_topic", DataType::Utf8, false),
        f("kafka_partition", DataType::Int32, false),
        f("kafka_offset", DataType::Int64, false),
        f("kafka_timestamp", ts(), false),
        f("key", DataType::Binary, true),
        f("payload", DataType::Binary, true),
        f("rule", DataType::Utf8, false),
        f("error", DataType::Utf8, false),
        f("quarantined_at", ts(), false),
        f("quarantined_date", DataType::Date32, false),
    ]))
});

/// Partition columns of the quarantine table.
pub const QUARANTINE_PARTITIONS: &[&str] = &["quarantined_date"];

/// Schema of the aggregates table: additive partials (see `aggregate`), summed at query time.
pub static AGGREGATES_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let f = |n: &str, t: DataType, null: bool| Field::new(n, t, null);
    Arc::new(Schema::new(vec![
        f("dimension", DataType::Utf8, false),
        f("value", DataType::Utf8, false),
        f("window_minutes", DataType::Int32, false),
        f("window_start", ts(), false),
        f("window_date", DataType::Date32, false),
        f("tweets", DataType::Int64, false),
        f("positive", DataType::Int64, false),
        f("neutral", DataType::Int64, false),
        f("negative", DataType::Int64, false),
        f("score_sum", DataType::Float64, false),
        f("kafka_topic", DataType::Utf8, false),
        f("kafka_partition", DataType::Int32, false),
        f("batch_last_offset", DataType::Int64, false),
        f("written_at", ts(), false),
    ]))
});

/// Partition columns of the aggregates table.
pub const AGGREGATES_PARTITIONS: &[&str] = &["window_date"];

/// One row of the tweets table.
#[derive(Clone, Debug, PartialEq)]
pub struct TweetRow {
    pub tweet_id: String,
    pub created_at: DateTime<Utc>,
    pub text: String,
    pub clean_text: String,
    pub author_id: Option<String>,
    pub author_username: Option<String>,
    pub lang: Option<String>,
    pub conversation_id: Option<String>,
    pub hashtags: Vec<String>,
    pub mentions: Vec<String>,
    pub urls: Vec<String>,
    pub rule_tags: Vec<String>,
    /// retweet, reply, like, quote counts.
    pub metrics: Option<[i64; 4]>,
    pub sentiment_label: &'static str,
    pub sentiment_score: f64,
    pub kafka_topic: String,
    pub kafka_partition: i32,
    pub kafka_offset: i64,
    pub kafka_timestamp_ms: i64,
    pub ingest_source: Option<String>,
    pub ingest_run_id: Option<String>,
}

/// One row of the quarantine table.
#[derive(Clone, Debug, PartialEq)]
pub struct QuarantineRow {
    pub kafka_topic: String,
    pub kafka_partition: i32,
    pub kafka_offset: i64,
    pub kafka_timestamp_ms: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub rule: &'static str,
    pub error: String,
}

fn days(d: DateTime<Utc>) -> i32 {
    (d.date_naive() - NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")).num_days() as i32
}

/// Last millisecond of year 9999, the latest time a timestamp column here holds.
const LAST_MS: i64 = 253_402_300_799_999;

/// A Kafka timestamp (ms) as the microseconds its column stores. Exact for every time a valid row can
/// carry (the quality stage bounds them); a quarantined record's impossible value is clamped into the
/// column's range (its error message keeps the raw value), so no input can overflow the conversion.
fn kafka_micros(ms: i64) -> i64 {
    ms.clamp(NO_TIMESTAMP, LAST_MS) * 1000
}

/// At most this many distinct partition values go into one flush of the Delta writer. Each value open
/// in a flush holds its own Parquet writer (about 0.6 MB for the tweets table), so a backfill batch
/// spread over thousands of dates would otherwise hold thousands at once.
pub const PARTITIONS_PER_FLUSH: usize = 64;

/// Splits `rows`, sorted by `day`, into runs of at most [`PARTITIONS_PER_FLUSH`] distinct days: one
/// Arrow batch, and one writer flush, per run.
pub fn partition_chunks<T>(rows: &[T], day: impl Fn(&T) -> i32) -> Vec<&[T]> {
    let mut chunks = Vec::new();
    let (mut start, mut days) = (0, 0);
    for i in 0..rows.len() {
        if i == 0 || day(&rows[i]) != day(&rows[i - 1]) {
            if days == PARTITIONS_PER_FLUSH {
                chunks.push(&rows[start..i]);
                (start, days) = (i, 0);
            }
            days += 1;
        }
    }
    if start < rows.len() {
        chunks.push(&rows[start..]);
    }
    chunks
}

impl TweetRow {
    /// The `created_date` partition value, days since 1970-01-01.
    pub fn created_day(&self) -> i32 {
        days(self.created_at)
    }
}

/// The `window_date` partition value of a partial, days since 1970-01-01.
pub fn window_day((key, _): &(AggregateKey, Partial)) -> i32 {
    key.window_start_us.div_euclid(86_400_000_000) as i32
}

fn utc_ts() -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::new().with_timezone("UTC")
}

fn list_builder() -> ListBuilder<StringBuilder> {
    ListBuilder::new(StringBuilder::new()).with_field(Arc::new(Field::new("element", DataType::Utf8, true)))
}

fn push_list(b: &mut ListBuilder<StringBuilder>, items: &[String]) {
    for i in items {
        b.values().append_value(i);
    }
    b.append(true);
}

/// Builds the tweets batch; `model_version` and `now` are the same for every row of a batch.
pub fn tweets_batch(rows: &[TweetRow], model_version: &str, now: DateTime<Utc>) -> Result<RecordBatch, ArrowError> {
    // Sized up front: the long text columns would otherwise be regrown and copied several times.
    let n = rows.len();
    let bytes = |f: fn(&TweetRow) -> usize| StringBuilder::with_capacity(n, rows.iter().map(f).sum());
    let mut id = bytes(|r| r.tweet_id.len());
    let (mut created, mut date) = (utc_ts(), Date32Builder::new());
    let (mut text, mut clean) = (bytes(|r| r.text.len()), bytes(|r| r.clean_text.len()));
    let (mut author, mut uname, mut lang, mut conv) =
        (StringBuilder::new(), StringBuilder::new(), StringBuilder::new(), StringBuilder::new());
    let (mut tags, mut ments, mut urls, mut rules) = (list_builder(), list_builder(), list_builder(), list_builder());
    let mut counts = [Int64Builder::new(), Int64Builder::new(), Int64Builder::new(), Int64Builder::new()];
    let (mut label, mut score, mut version) = (StringBuilder::new(), Float64Builder::new(), StringBuilder::new());
    let (mut topic, mut part, mut off, mut kts) = (StringBuilder::new(), Int32Builder::new(), Int64Builder::new(), utc_ts());
    let (mut src, mut run, mut processed) = (StringBuilder::new(), StringBuilder::new(), utc_ts());
    for r in rows {
        id.append_value(&r.tweet_id);
        created.append_value(r.created_at.timestamp_micros());
        date.append_value(days(r.created_at));
        text.append_value(&r.text);
        clean.append_value(&r.clean_text);
        author.append_option(r.author_id.as_deref());
        uname.append_option(r.author_username.as_deref());
        lang.append_option(r.lang.as_deref());
        conv.append_option(r.conversation_id.as_deref());
        push_list(&mut tags, &r.hashtags);
        push_list(&mut ments, &r.mentions);
        push_list(&mut urls, &r.urls);
        push_list(&mut rules, &r.rule_tags);
        for (b, v) in counts.iter_mut().zip(0..4) {
            b.append_option(r.metrics.map(|m| m[v]));
        }
        label.append_value(r.sentiment_label);
        score.append_value(r.sentiment_score);
        version.append_value(model_version);
        topic.append_value(&r.kafka_topic);
        part.append_value(r.kafka_partition);
        off.append_value(r.kafka_offset);
        kts.append_value(kafka_micros(r.kafka_timestamp_ms));
        src.append_option(r.ingest_source.as_deref());
        run.append_option(r.ingest_run_id.as_deref());
        processed.append_value(now.timestamp_micros());
    }
    let [mut rt, mut rp, mut lk, mut qt] = counts;
    let cols: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(created.finish()),
        Arc::new(date.finish()),
        Arc::new(text.finish()),
        Arc::new(clean.finish()),
        Arc::new(author.finish()),
        Arc::new(uname.finish()),
        Arc::new(lang.finish()),
        Arc::new(conv.finish()),
        Arc::new(tags.finish()),
        Arc::new(ments.finish()),
        Arc::new(urls.finish()),
        Arc::new(rules.finish()),
        Arc::new(rt.finish()),
        Arc::new(rp.finish()),
        Arc::new(lk.finish()),
        Arc::new(qt.finish()),
        Arc::new(label.finish()),
        Arc::new(score.finish()),
        Arc::new(version.finish()),
        Arc::new(topic.finish()),
        Arc::new(part.finish()),
        Arc::new(off.finish()),
        Arc::new(kts.finish()),
        Arc::new(src.finish()),
        Arc::new(run.finish()),
        Arc::new(processed.finish()),
    ];
    RecordBatch::try_new(TWEETS_SCHEMA.clone(), cols)
}

/// Builds the quarantine batch.
pub fn quarantine_batch(rows: &[QuarantineRow], now: DateTime<Utc>) -> Result<RecordBatch, ArrowError> {
    let (mut topic, mut part, mut off, mut kts) = (StringBuilder::new(), Int32Builder::new(), Int64Builder::new(), utc_ts());
    let (mut key, mut payload) = (BinaryBuilder::new(), BinaryBuilder::new());
    let (mut rule, mut error, mut at, mut date) = (StringBuilder::new(), StringBuilder::new(), utc_ts(), Date32Builder::new());
    for r in rows {
        topic.append_value(&r.kafka_topic);
        part.append_value(r.kafka_partition);
        off.append_value(r.kafka_offset);
        kts.append_value(kafka_micros(r.kafka_timestamp_ms));
        key.append_option(r.key.as_deref());
        payload.append_option(r.payload.as_deref());
        rule.append_value(r.rule);
        error.append_value(&r.error);
        at.append_value(now.timestamp_micros());
        date.append_value(days(now));
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(topic.finish()),
        Arc::new(part.finish()),
        Arc::new(off.finish()),
        Arc::new(kts.finish()),
        Arc::new(key.finish()),
        Arc::new(payload.finish()),
        Arc::new(rule.finish()),
        Arc::new(error.finish()),
        Arc::new(at.finish()),
        Arc::new(date.finish()),
    ];
    RecordBatch::try_new(QUARANTINE_SCHEMA.clone(), cols)
}

/// Builds the aggregates batch from partials; `last_offsets` gives each partition's last offset in
/// the batch, stored with its partials for provenance.
pub fn aggregates_batch(
    partials: &[(AggregateKey, Partial)],
    last_offsets: &BTreeMap<(String, i32), i64>,
    now: DateTime<Utc>,
) -> Result<RecordBatch, ArrowError> {
    let (mut dim, mut value, mut minutes, mut start, mut date) =
        (StringBuilder::new(), StringBuilder::new(), Int32Builder::new(), utc_ts(), Date32Builder::new());
    let mut counts = [Int64Builder::new(), Int64Builder::new(), Int64Builder::new(), Int64Builder::new()];
    let (mut sum, mut topic, mut part, mut off, mut at) =
        (Float64Builder::new(), StringBuilder::new(), Int32Builder::new(), Int64Builder::new(), utc_ts());
    for (k, p) in partials {
        dim.append_value(k.dimension.as_str());
        value.append_value(&k.value);
        minutes.append_value(k.window_minutes);
        start.append_value(k.window_start_us);
        date.append_value(k.window_start_us.div_euclid(86_400_000_000) as i32);
        for (b, v) in counts.iter_mut().zip([p.tweets, p.positive, p.neutral, p.negative]) {
            b.append_value(v);
        }
        sum.append_value(p.score_sum);
        topic.append_value(&k.kafka_topic);
        part.append_value(k.kafka_partition);
        off.append_value(offset_of(last_offsets, &k.kafka_topic, k.kafka_partition).unwrap_or(-1));
        at.append_value(now.timestamp_micros());
    }
    let [mut tweets, mut pos, mut neu, mut neg] = counts;
    let cols: Vec<ArrayRef> = vec![
        Arc::new(dim.finish()),
        Arc::new(value.finish()),
        Arc::new(minutes.finish()),
        Arc::new(start.finish()),
        Arc::new(date.finish()),
        Arc::new(tweets.finish()),
        Arc::new(pos.finish()),
        Arc::new(neu.finish()),
        Arc::new(neg.finish()),
        Arc::new(sum.finish()),
        Arc::new(topic.finish()),
        Arc::new(part.finish()),
        Arc::new(off.finish()),
        Arc::new(at.finish()),
    ];
    RecordBatch::try_new(AGGREGATES_SCHEMA.clone(), cols)
}

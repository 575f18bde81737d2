//! The tweets table: one row per tweet, scored, partitioned by `created_date`.

use super::{Column, Get, Stamp, days, kafka_micros};
use crate::clean::Cleaned;
use crate::decode::RawRecord;
use crate::post::PostColumns;
use crate::quality::ValidTweet;
use chrono::{DateTime, Utc};
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::error::ArrowError;
use deltalake::arrow::record_batch::RecordBatch;
use std::sync::LazyLock;
use tweetlake_sentiment::Prediction;

/// One row of the tweets table.
#[derive(Clone, Debug, PartialEq)]
pub struct TweetRow {
    /// X's id of the tweet.
    pub tweet_id: String,
    /// When the tweet was posted.
    pub created_at: DateTime<Utc>,
    /// The text as X sent it.
    pub text: String,
    /// HTML entities decoded, whitespace collapsed.
    pub clean_text: String,
    /// X's id of the author.
    pub author_id: Option<String>,
    /// The author's handle, when the ingest side expanded it.
    pub author_username: Option<String>,
    /// Language X detected.
    pub lang: Option<String>,
    /// The thread's first tweet.
    pub conversation_id: Option<String>,
    /// Lowercased hashtags without `#`.
    pub hashtags: Vec<String>,
    /// Lowercased mentioned handles without `@`.
    pub mentions: Vec<String>,
    /// Links, expanded where X expanded them.
    pub urls: Vec<String>,
    /// Tags of the ingest rules that matched.
    pub rule_tags: Vec<String>,
    /// retweet, reply, like, quote counts.
    pub metrics: Option<[i64; 4]>,
    /// `positive`, `neutral` or `negative`; `None` for a language the model does not score.
    pub sentiment_label: Option<&'static str>,
    /// Probability of positive; `None` when not scored.
    pub sentiment_score: Option<f64>,
    /// Negative, neutral and positive probabilities from a three-class model; `None` when not scored
    /// or scored by a binary model.
    pub sentiment_probabilities: Option<[f64; 3]>,
    /// Kafka topic of the record.
    pub kafka_topic: String,
    /// Kafka partition of the record.
    pub kafka_partition: i32,
    /// Kafka offset of the record.
    pub kafka_offset: i64,
    /// Kafka timestamp of the record, epoch ms.
    pub kafka_timestamp_ms: i64,
    /// Which ingest source produced it.
    pub ingest_source: Option<String>,
    /// Which ingest run produced it.
    pub ingest_run_id: Option<String>,
    /// Its kind, whole text, reference and edit chain.
    pub post: PostColumns,
    /// Whether the aggregates count it: false for a later version of a post already written (the
    /// post was counted once, by the first version the table holds).
    pub counted: bool,
}

impl TweetRow {
    /// The row of a record that passed the quality rules, was read as a post, cleaned and (if its
    /// language is one the model reads) scored.
    pub fn new(
        rec: RawRecord,
        valid: ValidTweet,
        post: PostColumns,
        cleaned: Cleaned,
        p: Option<Prediction>,
        counted: bool,
    ) -> Self {
        let msg = valid.message;
        let author = msg.author.filter(|a| Some(&a.id) == msg.tweet.author_id.as_ref());
        let Cleaned { clean_text, hashtags, mentions, urls } = cleaned;
        TweetRow {
            tweet_id: msg.tweet.id,
            created_at: valid.created_at,
            text: msg.tweet.text,
            clean_text,
            author_id: msg.tweet.author_id,
            author_username: author.map(|a| a.username),
            lang: msg.tweet.lang,
            conversation_id: msg.tweet.conversation_id,
            hashtags,
            mentions,
            urls,
            rule_tags: msg.rules.into_iter().filter_map(|r| r.tag).collect(),
            metrics: msg.tweet.public_metrics.map(|m| [m.retweet_count, m.reply_count, m.like_count, m.quote_count]),
            sentiment_label: p.as_ref().map(|p| p.label.as_str()),
            sentiment_probabilities: p.and_then(|p| p.probabilities).map(|ps| ps.map(f64::from)),
            sentiment_score: p.map(|p| f64::from(p.score)),
            kafka_topic: rec.topic,
            kafka_partition: rec.partition,
            kafka_offset: rec.offset,
            kafka_timestamp_ms: rec.timestamp_ms,
            ingest_source: Some(msg.ingest.source).filter(|s| !s.is_empty()),
            ingest_run_id: Some(msg.ingest.run_id).filter(|s| !s.is_empty()),
            post,
            counted,
        }
    }

    /// The `created_date` partition value, days since 1970-01-01.
    pub fn created_day(&self) -> i32 {
        days(self.created_at)
    }
}

/// The table's columns, in order: the schema and the batch builder both come from this list. Columns
/// added after the first release go at the end and are nullable, so a table an earlier release wrote
/// takes them on in place (see [`crate::sink::DeltaSink::append`]).
pub static COLUMNS: &[Column<TweetRow>] = &[
    Column { name: "tweet_id", get: Get::Str(|r, _| &r.tweet_id) },
    Column { name: "created_at", get: Get::Micros(|r, _| r.created_at.timestamp_micros()) },
    Column { name: "created_date", get: Get::Date(|r, _| r.created_day()) },
    Column { name: "text", get: Get::Str(|r, _| &r.text) },
    Column { name: "clean_text", get: Get::Str(|r, _| &r.clean_text) },
    Column { name: "author_id", get: Get::OptStr(|r, _| r.author_id.as_deref()) },
    Column { name: "author_username", get: Get::OptStr(|r, _| r.author_username.as_deref()) },
    Column { name: "lang", get: Get::OptStr(|r, _| r.lang.as_deref()) },
    Column { name: "conversation_id", get: Get::OptStr(|r, _| r.conversation_id.as_deref()) },
    Column { name: "hashtags", get: Get::List(|r, _| &r.hashtags) },
    Column { name: "mentions", get: Get::List(|r, _| &r.mentions) },
    Column { name: "urls", get: Get::List(|r, _| &r.urls) },
    Column { name: "rule_tags", get: Get::List(|r, _| &r.rule_tags) },
    Column { name: "retweet_count", get: Get::OptI64(|r, _| r.metrics.map(|m| m[0])) },
    Column { name: "reply_count", get: Get::OptI64(|r, _| r.metrics.map(|m| m[1])) },
    Column { name: "like_count", get: Get::OptI64(|r, _| r.metrics.map(|m| m[2])) },
    Column { name: "quote_count", get: Get::OptI64(|r, _| r.metrics.map(|m| m[3])) },
    Column { name: "sentiment_label", get: Get::OptStr(|r, _| r.sentiment_label) },
    Column { name: "sentiment_score", get: Get::OptF64(|r, _| r.sentiment_score) },
    Column { name: "model_version", get: Get::Str(|_, s| s.model_version) },
    Column { name: "kafka_topic", get: Get::Str(|r, _| &r.kafka_topic) },
    Column { name: "kafka_partition", get: Get::I32(|r, _| r.kafka_partition) },
    Column { name: "kafka_offset", get: Get::I64(|r, _| r.kafka_offset) },
    Column { name: "kafka_timestamp", get: Get::Micros(|r, _| kafka_micros(r.kafka_timestamp_ms)) },
    Column { name: "ingest_source", get: Get::OptStr(|r, _| r.ingest_source.as_deref()) },
    Column { name: "ingest_run_id", get: Get::OptStr(|r, _| r.ingest_run_id.as_deref()) },
    Column { name: "processed_at", get: Get::Micros(|_, s| s.now.timestamp_micros()) },
    // Envelope version 2 on.
    Column { name: "full_text", get: Get::OptStr(|r, _| Some(&r.post.full_text)) },
    Column { name: "kind", get: Get::OptStr(|r, _| Some(r.post.kind.as_str())) },
    Column { name: "referenced_tweet_id", get: Get::OptStr(|r, _| r.post.referenced_id.as_deref()) },
    Column { name: "edit_root_id", get: Get::OptStr(|r, _| Some(&r.post.edit_root_id)) },
    Column { name: "text_truncated", get: Get::OptBool(|r, _| Some(r.post.truncated)) },
    // Three-class models on.
    Column { name: "sentiment_negative", get: Get::OptF64(|r, _| r.sentiment_probabilities.map(|p| p[0])) },
    Column { name: "sentiment_neutral", get: Get::OptF64(|r, _| r.sentiment_probabilities.map(|p| p[1])) },
    Column { name: "sentiment_positive", get: Get::OptF64(|r, _| r.sentiment_probabilities.map(|p| p[2])) },
];

/// Schema of the tweets table.
pub static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| super::schema(COLUMNS));

/// Partition columns of the tweets table.
pub const PARTITIONS: &[&str] = &["created_date"];

/// The Arrow batch of `rows`.
pub fn batch(rows: &[TweetRow], stamp: &Stamp<'_>) -> Result<RecordBatch, ArrowError> {
    super::batch(COLUMNS, &SCHEMA, rows, stamp)
}

/// `rows` as the batches of one commit: sorted by date, one batch per run of dates a flush holds.
pub fn batches(rows: &mut [TweetRow], stamp: &Stamp<'_>) -> Result<Vec<RecordBatch>, ArrowError> {
    super::batches_by_day(COLUMNS, &SCHEMA, rows, TweetRow::created_day, stamp)
}

//! The process pipeline for one Kafka batch: decode → quality → clean → dedup → score → Delta.

use crate::aggregate::partials;
use crate::clean::{CleanTweet, clean};
use crate::config::ProcessConfig;
use crate::decode::{RawRecord, decode_event};
use crate::dedup::{BatchDedup, SeenIds};
use crate::error::Error;
use crate::quality::{QualityConfig, check};
use crate::rows::{
    AGGREGATES_PARTITIONS, AGGREGATES_SCHEMA, QUARANTINE_PARTITIONS, QUARANTINE_SCHEMA, QuarantineRow, TWEETS_PARTITIONS,
    TWEETS_SCHEMA, TweetRow, aggregates_batch, quarantine_batch, tweets_batch,
};
use crate::sink::{DeltaSink, offset_of};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use tokio::sync::Mutex;
use tweetlake_sentiment::Model;

/// The model shipped inside the binary, so the Lambda needs no extra file.
pub static EMBEDDED_MODEL: &[u8] = include_bytes!("../../../models/sentiment.twlk");

/// Where a partition's dedup window is stored beside the tweets table.
fn dedup_path(topic: &str, partition: i32, offset: i64) -> String {
    format!("_tweetlake/dedup/{topic}/{partition}/{offset:020}.json")
}

/// Table versions a batch produced.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CommittedVersions {
    /// New version of the tweets table, if it was committed.
    pub tweets: Option<i64>,
    /// New version of the quarantine table, if it was committed.
    pub quarantine: Option<i64>,
    /// New version of the aggregates table, if it was committed.
    pub aggregates: Option<i64>,
}

/// The function's response: what happened to every record of the batch.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BatchSummary {
    /// Records in the event.
    pub records_in: usize,
    /// Records at or below the offsets already committed (a redelivery).
    pub redelivered_skipped: usize,
    /// New rows in the tweets table.
    pub rows_written: usize,
    /// Tweets that appeared twice in this batch.
    pub duplicates_in_batch: usize,
    /// Tweets already written from an earlier offset within the dedup window.
    pub duplicates_in_window: usize,
    /// New partial rows in the aggregates table.
    pub aggregate_rows: usize,
    /// New quarantine rows per rule.
    pub quarantined: BTreeMap<String, usize>,
    /// Versions committed.
    pub committed_versions: CommittedVersions,
    /// Last offset recorded per `topic-partition` after this batch.
    pub offsets: BTreeMap<String, i64>,
}

/// A long-lived processor: the Lambda builds one at start and reuses it for every invocation.
pub struct Processor {
    cfg: ProcessConfig,
    model: Model,
    tweets: Mutex<DeltaSink>,
    quarantine: Mutex<DeltaSink>,
    aggregates: Mutex<DeltaSink>,
}

impl Processor {
    /// Loads the model and opens (or creates) the three tables.
    pub async fn new(cfg: ProcessConfig) -> Result<Self, Error> {
        let model = match &cfg.model_path {
            Some(p) => Model::load(p)?,
            None => Model::from_bytes(EMBEDDED_MODEL)?,
        };
        let model = match cfg.neutral_band {
            Some(b) => model.with_neutral_band(b),
            None => model,
        };
        let open = |uri, schema, partitions| {
            DeltaSink::open(uri, schema, partitions, cfg.checkpoint_interval, cfg.commit_retries, &cfg.storage_options)
        };
        let tweets = open(&cfg.table_uri, &TWEETS_SCHEMA, TWEETS_PARTITIONS).await?;
        let quarantine = open(&cfg.quarantine_uri, &QUARANTINE_SCHEMA, QUARANTINE_PARTITIONS).await?;
        let aggregates = open(&cfg.aggregates_uri, &AGGREGATES_SCHEMA, AGGREGATES_PARTITIONS).await?;
        Ok(Self {
            cfg,
            model,
            tweets: Mutex::new(tweets),
            quarantine: Mutex::new(quarantine),
            aggregates: Mutex::new(aggregates),
        })
    }

    /// The model version recorded with every row.
    pub fn model_version(&self) -> &str {
        self.model.version()
    }

    /// Where a consumer should resume each partition of `topic`: one past the offset the tweets table
    /// records (that table commits last, so every table has seen at least that far); absent = never.
    pub async fn next_offsets(&self, topic: &str, partitions: &[i32]) -> Result<BTreeMap<i32, i64>, Error> {
        let mut tweets = self.tweets.lock().await;
        tweets.refresh().await?;
        let keys: Vec<(String, i32)> = partitions.iter().map(|p| (topic.to_owned(), *p)).collect();
        Ok(tweets.recorded_offsets(&keys).await?.into_iter().map(|((_, p), o)| (p, o + 1)).collect())
    }

    /// Handles one Lambda Kafka event, given as its JSON bytes (parsed straight into records, without an
    /// intermediate `serde_json::Value` tree).
    pub async fn process_event(&self, payload: impl AsRef<[u8]>) -> Result<BatchSummary, Error> {
        let (_, records) = decode_event(payload.as_ref())?;
        self.process_records(records, Utc::now()).await
    }

    /// Runs the pipeline on decoded records (sorted by topic, partition, offset) at time `now`.
    pub async fn process_records(&self, records: Vec<RawRecord>, now: DateTime<Utc>) -> Result<BatchSummary, Error> {
        // Records come grouped by partition: one map entry per group, not per record.
        let last: BTreeMap<(String, i32), i64> = records
            .chunk_by(|a, b| a.partition == b.partition && a.topic == b.topic)
            .map(|g| ((g[0].topic.clone(), g[0].partition), g.iter().map(|r| r.offset).max().expect("non-empty group")))
            .collect();
        let partitions: Vec<(String, i32)> = last.keys().cloned().collect();
        let mut tweets = self.tweets.lock().await;
        let mut quarantine = self.quarantine.lock().await;
        let mut aggregates = self.aggregates.lock().await;
        tweets.refresh().await?;
        quarantine.refresh().await?;
        aggregates.refresh().await?;
        let done_t = tweets.recorded_offsets(&partitions).await?;
        let done_q = quarantine.recorded_offsets(&partitions).await?;
        let done_a = aggregates.recorded_offsets(&partitions).await?;

        // Stored windows of partitions with recorded offsets; `transform` starts the others empty.
        let mut windows: HashMap<(String, i32), SeenIds> = HashMap::new();
        for (p, &o) in &done_t {
            let state = match tweets.read_object(&dedup_path(&p.0, p.1, o)).await? {
                Some(bytes) => serde_json::from_slice(&bytes)
                    .map_err(|e| Error::State { path: dedup_path(&p.0, p.1, o), message: e.to_string() })?,
                None => {
                    tracing::warn!(topic = %p.0, partition = p.1, offset = o, "dedup window missing; starting empty");
                    SeenIds { through_offset: o, ..SeenIds::default() }
                }
            };
            windows.insert(p.clone(), state);
        }

        let Transformed { rows, rejected, mut summary } =
            transform(&self.model, &self.cfg.quality, records, &done_t, &done_q, &mut windows, now);

        let advance = |done: &BTreeMap<(String, i32), i64>| -> BTreeMap<(String, i32), i64> {
            last.iter().filter(|(k, o)| done.get(*k).is_none_or(|d| d < *o)).map(|(k, o)| (k.clone(), *o)).collect()
        };
        let new_q = advance(&done_q);
        if !new_q.is_empty() {
            let batch = quarantine_batch(&rejected, now)?;
            summary.committed_versions.quarantine = commit(&mut quarantine, batch, &new_q).await?;
        }
        // Aggregates commit before the tweets: if the tweets commit then fails, the retry recomputes the
        // same rows (every verdict depends only on the records and the stored dedup window) and skips
        // the partials already recorded, so the aggregates always count exactly the tweets table's rows.
        let new_a = advance(&done_a);
        if !new_a.is_empty() {
            let counted =
                rows.iter().filter(|r| offset_of(&done_a, &r.kafka_topic, r.kafka_partition).is_none_or(|d| r.kafka_offset > d));
            let parts = partials(counted);
            summary.aggregate_rows = parts.len();
            let batch = aggregates_batch(&parts, &new_a, now)?;
            summary.committed_versions.aggregates = commit(&mut aggregates, batch, &new_a).await?;
        }
        let new_t = advance(&done_t);
        if !new_t.is_empty() {
            // The window is saved under the offset it is valid through before the commit that makes
            // that offset current, so whichever offset the table records has its window stored.
            for (p, &o) in &new_t {
                let w = windows.get_mut(p).expect("every partition has a window");
                w.advance(o, &self.cfg.dedup);
                tweets.write_object(&dedup_path(&p.0, p.1, o), serde_json::to_vec(w).expect("serialisable")).await?;
            }
            summary.rows_written = rows.len();
            let batch = tweets_batch(&rows, self.model.version(), now)?;
            summary.committed_versions.tweets = commit(&mut tweets, batch, &new_t).await?;
            for (p, o) in &done_t {
                if new_t.contains_key(p) {
                    tweets.delete_object(&dedup_path(&p.0, p.1, *o)).await?;
                }
            }
        }
        for ((t, p), o) in last {
            summary.offsets.insert(format!("{t}-{p}"), o);
        }
        Ok(summary)
    }
}

/// Commits, treating a lost race against a writer that recorded the same offsets as success.
async fn commit(
    sink: &mut DeltaSink,
    batch: deltalake::arrow::record_batch::RecordBatch,
    offsets: &BTreeMap<(String, i32), i64>,
) -> Result<Option<i64>, Error> {
    match sink.append(batch, offsets).await {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            sink.refresh().await?;
            let keys: Vec<(String, i32)> = offsets.keys().cloned().collect();
            let now = sink.recorded_offsets(&keys).await?;
            if offsets.iter().all(|(k, o)| now.get(k).is_some_and(|n| n >= o)) {
                tracing::info!(table = sink.uri(), "another writer committed these offsets first");
                Ok(None)
            } else {
                Err(e)
            }
        }
    }
}

/// What the in-memory stages made of a batch, ready for the sink.
#[derive(Debug, Default)]
pub struct Transformed {
    /// Rows for the tweets table.
    pub rows: Vec<TweetRow>,
    /// Rows for the quarantine table.
    pub rejected: Vec<QuarantineRow>,
    /// Counts so far (no versions or offsets yet).
    pub summary: BatchSummary,
}

/// The in-memory stages for decoded records: skip what `done_t` / `done_q` (the offsets recorded in the
/// tweets and quarantine tables) already hold, apply the quality rules, clean, dedup against the batch
/// and each partition's window (updated in place) and score.
pub fn transform(
    model: &Model,
    quality: &QualityConfig,
    records: Vec<RawRecord>,
    done_t: &BTreeMap<(String, i32), i64>,
    done_q: &BTreeMap<(String, i32), i64>,
    windows: &mut HashMap<(String, i32), SeenIds>,
    now: DateTime<Utc>,
) -> Transformed {
    let mut summary = BatchSummary { records_in: records.len(), ..BatchSummary::default() };
    let mut scorer = model.scorer();
    let mut in_batch = BatchDedup::default();
    let (mut rows, mut rejected) = (Vec::with_capacity(records.len()), Vec::new());
    // Records arrive grouped by partition: look its state up when the partition changes, not per record.
    let mut current: Option<(String, i32)> = None;
    let (mut limit_t, mut limit_q) = (None, None);
    for rec in records {
        if current.as_ref().is_none_or(|(t, p)| *p != rec.partition || *t != rec.topic) {
            let key = (rec.topic.clone(), rec.partition);
            limit_t = done_t.get(&key).copied();
            limit_q = done_q.get(&key).copied();
            windows.entry(key.clone()).or_insert_with(|| SeenIds { through_offset: -1, ..SeenIds::default() });
            current = Some(key);
        }
        let key = current.as_ref().expect("set above");
        let skip_t = limit_t.is_some_and(|o| rec.offset <= o);
        let skip_q = limit_q.is_some_and(|o| rec.offset <= o);
        if skip_t && skip_q {
            summary.redelivered_skipped += 1;
            continue;
        }
        let valid = match check(&rec, quality, now) {
            Ok(v) => v,
            Err(rej) => {
                if skip_q {
                    summary.redelivered_skipped += 1;
                } else {
                    *summary.quarantined.entry(rej.rule.to_owned()).or_default() += 1;
                    rejected.push(QuarantineRow {
                        kafka_topic: rec.topic,
                        kafka_partition: rec.partition,
                        kafka_offset: rec.offset,
                        kafka_timestamp_ms: rec.timestamp_ms,
                        key: rec.key,
                        payload: rec.value,
                        rule: rej.rule,
                        error: rej.message,
                    });
                }
                continue;
            }
        };
        if skip_t {
            summary.redelivered_skipped += 1;
            continue;
        }
        let msg = valid.message;
        if !in_batch.first(valid.id) {
            summary.duplicates_in_batch += 1;
            continue;
        }
        let window = windows.get_mut(key).expect("inserted when the partition started");
        if window.contains(valid.id) {
            summary.duplicates_in_window += 1;
            continue;
        }
        window.insert(valid.id, rec.timestamp_ms);
        let CleanTweet { clean_text, model_text, hashtags, mentions, urls } = clean(&msg.tweet);
        let p = scorer.predict_normalized(&model_text);
        // The model's input may borrow the tweet's text, which moves into the row next.
        drop(model_text);
        let author = msg.author.as_ref().filter(|a| Some(&a.id) == msg.tweet.author_id.as_ref());
        rows.push(TweetRow {
            tweet_id: msg.tweet.id,
            created_at: valid.created_at,
            text: msg.tweet.text,
            clean_text,
            author_id: msg.tweet.author_id,
            author_username: author.map(|a| a.username.clone()),
            lang: msg.tweet.lang,
            conversation_id: msg.tweet.conversation_id,
            hashtags,
            mentions,
            urls,
            rule_tags: msg.rules.into_iter().filter_map(|r| r.tag).collect(),
            metrics: msg.tweet.public_metrics.map(|m| [m.retweet_count, m.reply_count, m.like_count, m.quote_count]),
            sentiment_label: p.label.as_str(),
            sentiment_score: f64::from(p.score),
            kafka_topic: rec.topic,
            kafka_partition: rec.partition,
            kafka_offset: rec.offset,
            kafka_timestamp_ms: rec.timestamp_ms,
            ingest_source: Some(msg.ingest.source).filter(|s| !s.is_empty()),
            ingest_run_id: Some(msg.ingest.run_id).filter(|s| !s.is_empty()),
        });
    }
    Transformed { rows, rejected, summary }
}

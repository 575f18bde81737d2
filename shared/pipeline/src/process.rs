//! The process pipeline for one Kafka batch: decode → quality → clean → dedup → score → Delta.

use crate::aggregate::{AggregateKey, Partial, partials};
use crate::clean::{CleanTweet, clean};
use crate::config::ProcessConfig;
use crate::decode::{RawRecord, decode_event};
use crate::dedup::{BatchDedup, SeenIds, legacy_window_path, window_path};
use crate::error::Error;
use crate::quality::{QualityConfig, check};
use crate::rows::{
    AGGREGATES_PARTITIONS, AGGREGATES_SCHEMA, QUARANTINE_PARTITIONS, QUARANTINE_SCHEMA, QuarantineRow, TWEETS_PARTITIONS,
    TWEETS_SCHEMA, TweetRow, aggregates_batch, partition_chunks, quarantine_batch, tweets_batch, window_day,
};
use crate::sink::{Coverage, DeltaSink, offset_of};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use tokio::sync::Mutex;
use tweetlake_sentiment::Model;

/// The model shipped inside the binary, so the Lambda needs no extra file.
pub static EMBEDDED_MODEL: &[u8] = include_bytes!("../../../models/sentiment.twlk");

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

/// The function's response: what happened to every record of the batch. Counts of written rows are
/// those this invocation committed: where another writer committed the same offsets first, they are 0.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BatchSummary {
    /// Records in the event.
    pub records_in: usize,
    /// Records whose offsets the tables already hold (a redelivery).
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
    /// Offset gaps before this batch that outlasted `TWEETLAKE_OFFSET_GAP_GRACE_SECS` and were accepted
    /// as offsets that do not exist (`topic-partition: from..=to`).
    pub offset_gaps_accepted: Vec<String>,
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

type Key = (String, i32);

/// The offsets missing between a coverage and a batch `(first, last)` that does not touch it.
fn missing((first, last): (i64, i64), held: &Coverage) -> Option<(i64, i64)> {
    let held_first = held.first.unwrap_or(0);
    if first > held.last + 1 {
        Some((held.last + 1, first - 1))
    } else if last < held_first - 1 {
        Some((last + 1, held_first - 1))
    } else {
        None
    }
}

/// Where a gap's first sighting is stored beside the tweets table, so every retry (in any container)
/// measures the same grace period.
fn gap_path(topic: &str, partition: i32, from: i64, to: i64) -> String {
    format!("_tweetlake/gaps/{topic}/{partition}/{from:020}-{to:020}.json")
}

#[derive(serde::Serialize, serde::Deserialize)]
struct GapSeen {
    first_seen_ms: i64,
}

/// The message of a caught panic.
fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    match panic.downcast::<String>() {
        Ok(s) => *s,
        Err(p) => p.downcast_ref::<&str>().map_or_else(|| "a panic without a message".to_owned(), |s| (*s).to_owned()),
    }
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
        let keys: Vec<Key> = partitions.iter().map(|p| (topic.to_owned(), *p)).collect();
        Ok(tweets.recorded_offsets(&keys).await?.into_iter().map(|((_, p), o)| (p, o + 1)).collect())
    }

    /// Handles one Lambda Kafka event, given as its JSON bytes (parsed straight into records, without an
    /// intermediate `serde_json::Value` tree). A panic anywhere below (ours or a library's, such as a
    /// storage client's on a failed upload) is caught here and returned as a retryable error, so one
    /// batch cannot take the function down.
    pub async fn process_event(&self, payload: impl AsRef<[u8]>) -> Result<BatchSummary, Error> {
        let work = async {
            let (_, records) = decode_event(payload.as_ref())?;
            self.process_records(records, Utc::now()).await
        };
        match futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(work)).await {
            Ok(result) => result,
            Err(panic) => Err(Error::Panic(panic_message(panic))),
        }
    }

    /// Fails with a retryable [`Error::OffsetGap`] if offsets between a table's coverage and this
    /// batch are missing (an earlier batch still in flight, or failed), unless the gap has been seen for
    /// the grace period: then no invocation can still be writing it, so those offsets do not exist
    /// (compacted topic, transaction markers, retention) and the gap is accepted and returned.
    async fn check_gap(
        &self,
        tweets: &DeltaSink,
        key: &Key,
        batch: (i64, i64),
        (held, missing): (&Coverage, (i64, i64)),
        now: DateTime<Utc>,
    ) -> Result<Option<String>, Error> {
        let path = gap_path(&key.0, key.1, missing.0, missing.1);
        let now_ms = now.timestamp_millis();
        let seen = match tweets.read_object(&path).await? {
            Some(bytes) => {
                serde_json::from_slice::<GapSeen>(&bytes)
                    .map_err(|e| Error::State { path: path.clone(), message: e.to_string() })?
                    .first_seen_ms
            }
            None => {
                tweets.write_object(&path, serde_json::to_vec(&GapSeen { first_seen_ms: now_ms }).expect("serialisable")).await?;
                now_ms
            }
        };
        let waited_secs = (now_ms.saturating_sub(seen) / 1000).max(0);
        let grace_secs = self.cfg.offset_gap_grace_secs;
        if waited_secs < grace_secs {
            return Err(Error::OffsetGap {
                topic: key.0.clone(),
                partition: key.1,
                missing,
                held: (held.first.unwrap_or(0), held.last),
                batch,
                waited_secs,
                grace_secs,
            });
        }
        tracing::warn!(topic = %key.0, partition = key.1, from = missing.0, to = missing.1, waited_secs,
            "offset gap outlasted the grace period; accepting it as offsets that do not exist");
        tweets.delete_object(&path).await?;
        Ok(Some(format!("{}-{}: {}..={}", key.0, key.1, missing.0, missing.1)))
    }

    /// Runs the pipeline on decoded records (sorted by topic, partition, offset) at time `now`.
    ///
    /// Commit order, each commit recording offsets in its table: quarantine → tweets → aggregates. The
    /// tweets table is the one checked for gaps and the one consumers resume from. The aggregates are
    /// the partials of exactly the rows a tweets commit wrote, saved with the dedup window before that
    /// commit; an aggregates table left behind (by a crash, a timeout or another writer's tweets commit)
    /// is brought level before the next tweets commit, so it lags by at most that one commit and never
    /// counts a row twice or one the tweets table lacks.
    pub async fn process_records(&self, records: Vec<RawRecord>, now: DateTime<Utc>) -> Result<BatchSummary, Error> {
        // Records come grouped by partition: one map entry per group, not per record. Records without a
        // Kafka position (quarantined as undecodable) take no part in the offsets.
        let ranges: BTreeMap<Key, (i64, i64)> = records
            .iter()
            .filter(|r| r.is_placed())
            .collect::<Vec<_>>()
            .chunk_by(|a, b| a.partition == b.partition && a.topic == b.topic)
            .map(|g| ((g[0].topic.clone(), g[0].partition), (g[0].offset, g[g.len() - 1].offset)))
            .collect();
        let partitions: Vec<Key> = ranges.keys().cloned().collect();
        let mut tweets = self.tweets.lock().await;
        let mut quarantine = self.quarantine.lock().await;
        let mut aggregates = self.aggregates.lock().await;
        tweets.refresh().await?;
        quarantine.refresh().await?;
        aggregates.refresh().await?;
        // The first offset matters only to a batch that reaches down into a coverage, and to the
        // aggregates where they might be level with the tweets; the tweets table's is always read, since
        // its dedup window is stored under both ends.
        let reaches = |k: &Key, last: i64| ranges.get(k).is_some_and(|(first, _)| *first <= last);
        let done_t = tweets.coverage(&partitions, |_, _| true).await?;
        let done_q = quarantine.coverage(&partitions, reaches).await?;
        let done_a =
            aggregates.coverage(&partitions, |k, last| reaches(k, last) || done_t.get(k).is_some_and(|t| last >= t.last)).await?;

        // Every table's coverage must stay one contiguous run: a batch that does not touch the tweets'
        // or the quarantine's (which runs ahead of the tweets after an interrupted invocation) waits.
        let mut gaps_accepted: Vec<String> = Vec::new();
        for (key, range) in &ranges {
            let mut gaps: Vec<(&Coverage, (i64, i64))> = Vec::new();
            for held in [done_t.get(key), done_q.get(key)].into_iter().flatten() {
                if let Some(m) = missing(*range, held).filter(|m| gaps.iter().all(|(_, g)| g != m)) {
                    gaps.push((held, m));
                }
            }
            for gap in gaps {
                gaps_accepted.extend(self.check_gap(&tweets, key, *range, gap, now).await?);
            }
        }

        // Stored windows of partitions with recorded offsets; `transform` starts the others empty.
        let mut windows: HashMap<Key, SeenIds> = HashMap::new();
        for (p, c) in &done_t {
            let path = window_path(&p.0, p.1, c);
            let mut stored = tweets.read_object(&path).await?;
            if stored.is_none() && c.first == Some(0) {
                stored = tweets.read_object(&legacy_window_path(&p.0, p.1, c.last)).await?;
            }
            let state = match stored {
                Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::State { path, message: e.to_string() })?,
                None => {
                    tracing::warn!(topic = %p.0, partition = p.1, offset = c.last, "dedup window missing; starting empty");
                    SeenIds { through_offset: c.last, ..SeenIds::default() }
                }
            };
            windows.insert(p.clone(), state);
        }

        // The aggregates' coverage once level with a tweets coverage `t`. An aggregates table that is
        // ahead (its commit used to come first) keeps its reach: it never moves backwards.
        let level = |k: &Key, t: Coverage| match done_a.get(k) {
            Some(a) if a.first.is_some() => Coverage { first: a.first.min(t.first), last: a.last.max(t.last) },
            _ => t,
        };
        let (mut aggregate_rows, mut aggregates_version) = (0, None);
        // The aggregates level with the tweets first: the partials saved with the tweets table's coverage
        // are those of its last commit only, so they must land before a newer tweets commit does.
        let behind: BTreeMap<Key, Coverage> = done_t
            .iter()
            .filter(|(k, t)| done_a.get(*k).is_none_or(|a| !a.covers(t.first.unwrap_or(0), t.last)))
            .map(|(k, t)| (k.clone(), level(k, *t)))
            .collect();
        if !behind.is_empty() {
            let parts: Vec<_> =
                behind.keys().flat_map(|k| std::mem::take(&mut windows.get_mut(k).expect("loaded").unaggregated)).collect();
            tracing::info!(partitions = behind.len(), partials = parts.len(), "aggregates behind the tweets table; catching up");
            let n = parts.len();
            if let Some(v) = commit_partials(&mut aggregates, parts, &behind, now).await? {
                (aggregate_rows, aggregates_version) = (n, Some(v));
            }
        }

        let Transformed { mut rows, rejected, mut summary } =
            transform(&self.model, &self.cfg.quality, records, &done_t, &done_q, &mut windows, now);
        summary.offset_gaps_accepted = gaps_accepted;
        let quarantined = std::mem::take(&mut summary.quarantined);

        // The coverage a table records after this batch, for the partitions where it grows.
        let grown = |done: &BTreeMap<Key, Coverage>| -> BTreeMap<Key, Coverage> {
            ranges
                .iter()
                .filter_map(|(k, &(first, last))| {
                    let grown = match done.get(k) {
                        None => Coverage { first: Some(first), last },
                        Some(c) => Coverage { first: c.first.map(|f| f.min(first)), last: c.last.max(last) },
                    };
                    (done.get(k) != Some(&grown)).then(|| (k.clone(), grown))
                })
                .collect()
        };
        let new_q = grown(&done_q);
        if !new_q.is_empty() || !rejected.is_empty() {
            let batch = quarantine_batch(&rejected, now)?;
            let v = commit(&mut quarantine, vec![batch], &new_q).await?;
            if v.is_some() {
                summary.quarantined = quarantined;
            }
            summary.committed_versions.quarantine = v;
        }
        let new_t = grown(&done_t);
        if !new_t.is_empty() {
            // Rows whose offsets the aggregates already cover (an aggregates table ahead of the tweets)
            // are not counted again.
            let counted = rows
                .iter()
                .filter(|r| offset_of(&done_a, &r.kafka_topic, r.kafka_partition).is_none_or(|c| !c.contains(r.kafka_offset)));
            let mut by_partition: HashMap<Key, Vec<_>> = HashMap::new();
            for part in partials(counted) {
                by_partition.entry((part.0.kafka_topic.clone(), part.0.kafka_partition)).or_default().push(part);
            }
            // The window is saved under the coverage it is valid for before the commit that makes that
            // coverage current, so whichever coverage the table records has its window stored.
            for (p, c) in &new_t {
                let w = windows.get_mut(p).expect("every partition has a window");
                w.advance(c.last, &self.cfg.dedup, now.timestamp_millis());
                w.unaggregated = by_partition.remove(p).unwrap_or_default();
                tweets.write_object(&window_path(&p.0, p.1, c), serde_json::to_vec(w).expect("serialisable")).await?;
            }
            // One flush per run of dates: a backfill spread over thousands of dates holds a bounded
            // number of Parquet writers open, not one per date.
            rows.sort_by_key(TweetRow::created_day);
            let batches = partition_chunks(&rows, TweetRow::created_day)
                .into_iter()
                .map(|chunk| tweets_batch(chunk, self.model.version(), now))
                .collect::<Result<Vec<_>, _>>()?;
            let v = commit(&mut tweets, batches, &new_t).await?;
            summary.committed_versions.tweets = v;
            if v.is_some() {
                summary.rows_written = rows.len();
                for (p, c) in &done_t {
                    if new_t.contains_key(p) {
                        tweets.delete_object(&window_path(&p.0, p.1, c)).await?;
                    }
                }
                let parts: Vec<_> =
                    new_t.keys().flat_map(|k| std::mem::take(&mut windows.get_mut(k).expect("saved").unaggregated)).collect();
                let n = parts.len();
                let target: BTreeMap<Key, Coverage> = new_t.iter().map(|(k, c)| (k.clone(), level(k, *c))).collect();
                if let Some(v) = commit_partials(&mut aggregates, parts, &target, now).await? {
                    (aggregate_rows, aggregates_version) = (aggregate_rows + n, Some(v));
                }
            }
        }
        summary.aggregate_rows = aggregate_rows;
        summary.committed_versions.aggregates = aggregates_version;
        for ((t, p), (_, last)) in ranges {
            summary.offsets.insert(format!("{t}-{p}"), last);
        }
        Ok(summary)
    }
}

/// Appends partial aggregates (a flush per run of window dates) and records `coverage` in the
/// aggregates table, as [`commit`] does.
async fn commit_partials(
    aggregates: &mut DeltaSink,
    mut parts: Vec<(AggregateKey, Partial)>,
    coverage: &BTreeMap<Key, Coverage>,
    now: DateTime<Utc>,
) -> Result<Option<i64>, Error> {
    parts.sort_by_key(window_day);
    let last: BTreeMap<Key, i64> = coverage.iter().map(|(k, c)| (k.clone(), c.last)).collect();
    let batches = partition_chunks(&parts, window_day)
        .into_iter()
        .map(|chunk| aggregates_batch(chunk, &last, now))
        .collect::<Result<Vec<_>, _>>()?;
    commit(aggregates, batches, coverage).await
}

/// Commits; a commit that fails because another writer recorded offsets of the same partitions is
/// success only if that writer's commits cover all of this batch's offsets (then `None`: this
/// invocation wrote nothing). If they cover only part, the error stands and the retry processes the
/// rest against the new state.
async fn commit(
    sink: &mut DeltaSink,
    batches: Vec<deltalake::arrow::record_batch::RecordBatch>,
    coverage: &BTreeMap<Key, Coverage>,
) -> Result<Option<i64>, Error> {
    match sink.append(batches, coverage).await {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            sink.refresh().await?;
            let keys: Vec<Key> = coverage.keys().cloned().collect();
            let now = sink.coverage(&keys, |_, _| true).await?;
            let covered = coverage
                .iter()
                .all(|(k, want)| now.get(k).is_some_and(|held| held.covers(want.first.unwrap_or(held.last), want.last)));
            if covered {
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

/// The in-memory stages for decoded records: skip what `done_t` / `done_q` (the coverage of the tweets
/// and quarantine tables) already hold, apply the quality rules, clean, dedup against the batch
/// and each partition's window (updated in place) and score.
pub fn transform(
    model: &Model,
    quality: &QualityConfig,
    records: Vec<RawRecord>,
    done_t: &BTreeMap<Key, Coverage>,
    done_q: &BTreeMap<Key, Coverage>,
    windows: &mut HashMap<Key, SeenIds>,
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
        let placed = rec.is_placed();
        let skip_t = placed && limit_t.is_some_and(|c: Coverage| c.contains(rec.offset));
        let skip_q = placed && limit_q.is_some_and(|c: Coverage| c.contains(rec.offset));
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
        // A record without a timestamp is remembered as of now, so it stays in the window for its length.
        window.insert(valid.id, if rec.timestamp_ms >= 0 { rec.timestamp_ms } else { now.timestamp_millis() });
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

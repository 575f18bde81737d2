//! The process pipeline for one Kafka batch: decode → quality → clean → dedup → score → Delta.

use crate::clean::clean;
use crate::commit::{Outcome, Tables, ranges};
use crate::config::ProcessConfig;
use crate::decode::{RawRecord, decode_event};
use crate::dedup::{self, BatchDedup, SeenIds};
use crate::error::Error;
use crate::offsets::{Coverage, PerPartition, TopicPartition};
use crate::post::{Languages, Post};
use crate::quality::{QualityConfig, check};
use crate::redrive;
use crate::tables::Stamp;
use crate::tables::quarantine::QuarantineRow;
use crate::tables::tweets::TweetRow;
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
    /// Versions of an edited post older than one the table already holds: dropped, so the newest row
    /// of a post is always its latest version.
    pub superseded_versions: usize,
    /// Rows written for a later version of an edited post the table already holds: in the table (with
    /// `edit_root_id` pointing at the first version), not counted again in the aggregates.
    pub later_versions: usize,
    /// Rows left unscored: their language is not one the model reads (see `TWEETLAKE_SENTIMENT_LANGUAGES`).
    pub unscored: usize,
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

/// What a redrive wrote.
#[derive(Clone, Debug, Serialize)]
pub struct RedriveSummary {
    /// The topic names its rows and offsets are recorded under (`redrive.{id}.` and the original topic).
    pub redrive_topics: String,
    /// As for any batch; `redelivered_skipped` counts everything when the batch was redriven before.
    #[serde(flatten)]
    pub batch: BatchSummary,
}

/// A long-lived processor: the Lambda builds one at start and reuses it for every invocation.
pub struct Processor {
    cfg: ProcessConfig,
    /// Shared with the processor's siblings: it is read-only.
    model: std::sync::Arc<Model>,
    tables: Mutex<Tables>,
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
            // A three-class model labels by its probabilities; a band would silently do nothing.
            Some(_) if model.meta().three_class.is_some() => {
                return Err(Error::Config {
                    var: tweetlake_contract::vars::NEUTRAL_BAND,
                    message: format!(
                        "model {} labels three classes by probability and has no neutral band; unset it",
                        model.version()
                    ),
                });
            }
            Some(b) => model.with_neutral_band(b),
            None => model,
        };
        let tables = Tables::open(&cfg).await?;
        Ok(Self { cfg, model: std::sync::Arc::new(model), tables: Mutex::new(tables) })
    }

    /// Another processor with this one's settings and model and table handles of its own, as a second
    /// function instance would have: the two can process batches of different partitions at once.
    pub async fn sibling(&self) -> Result<Self, Error> {
        let tables = Tables::open(&self.cfg).await?;
        Ok(Self { cfg: self.cfg.clone(), model: std::sync::Arc::clone(&self.model), tables: Mutex::new(tables) })
    }

    /// The model version recorded with every row.
    pub fn model_version(&self) -> &str {
        self.model.version()
    }

    /// Where a consumer should resume each partition of `topic`: one past the offset the tweets table
    /// records (that table commits last, so every table has seen at least that far); absent = never.
    pub async fn next_offsets(&self, topic: &str, partitions: &[i32]) -> Result<BTreeMap<i32, i64>, Error> {
        let tweets = &mut self.tables.lock().await.tweets;
        tweets.refresh().await?;
        let keys: Vec<TopicPartition> = partitions.iter().map(|p| TopicPartition::new(topic, *p)).collect();
        Ok(tweets.recorded_offsets(&keys).await?.into_iter().map(|(tp, o)| (tp.partition, o + 1)).collect())
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

    /// Runs the pipeline on decoded records (sorted by topic, partition, offset) at time `now`: reads
    /// what the tables hold, runs the stages, commits by the protocol of [`crate::commit`].
    pub async fn process_records(&self, records: Vec<RawRecord>, now: DateTime<Utc>) -> Result<BatchSummary, Error> {
        self.run(records, now, &HashMap::new(), Vec::new()).await
    }

    /// Replays a batch the event source mapping gave up on (a Kafka event, or the on-failure record
    /// holding one) under its own topic name (see [`crate::redrive`]). A second redrive of the same batch
    /// changes nothing.
    pub async fn redrive(&self, payload: &[u8]) -> Result<RedriveSummary, Error> {
        let (_, records) = decode_event(&redrive::batch_of(payload)?)?;
        self.redrive_records(records, false).await
    }

    /// Redrives records the quarantine table holds (see `tweetlake_local::redrive::quarantined`), after
    /// the rule that rejected them was fixed: each lands in the tweets table or is quarantined again
    /// under the redrive's topic, and the first redrive of them adds a `redriven` quarantine row at each
    /// record's original position naming where it went, so a query of the quarantine shows it.
    pub async fn redrive_quarantined(&self, records: Vec<RawRecord>) -> Result<RedriveSummary, Error> {
        self.redrive_records(records, true).await
    }

    async fn redrive_records(&self, mut records: Vec<RawRecord>, mark: bool) -> Result<RedriveSummary, Error> {
        let id = redrive::redrive_id(&records);
        let mut origins = HashMap::new();
        let mut marks = Vec::new();
        for rec in &mut records {
            let topic = redrive::redrive_topic(&id, &rec.topic);
            origins
                .entry(TopicPartition::new(topic.clone(), rec.partition))
                .or_insert_with(|| TopicPartition::new(rec.topic.clone(), rec.partition));
            if mark {
                marks.push(redrive::mark(rec, &topic));
            }
            rec.topic = topic;
        }
        // Renamed, the records are put back in batch order.
        crate::decode::sort(&mut records);
        tracing::info!(redrive = %id, records = records.len(), "redriving");
        let batch = self.run(records, Utc::now(), &origins, marks).await?;
        Ok(RedriveSummary { redrive_topics: redrive::redrive_topic(&id, "*"), batch })
    }

    /// [`Self::process_records`], where `origins` maps a redrive's partitions to the partitions its
    /// records came from: a redrive partition seen for the first time starts its dedup window with the
    /// original's tweet ids, and `marks` are added to the quarantine rows the first time.
    async fn run(
        &self,
        records: Vec<RawRecord>,
        now: DateTime<Utc>,
        origins: &HashMap<TopicPartition, TopicPartition>,
        marks: Vec<QuarantineRow>,
    ) -> Result<BatchSummary, Error> {
        let ranges = ranges(&records);
        let mut tables = self.tables.lock().await;
        let held = tables.read(&ranges, self.cfg.offset_gap_grace_secs, now).await?;
        let mut windows = dedup::load_windows(&tables.tweets, &held.tweets).await?;
        for (redriven, origin) in origins {
            if !windows.contains_key(redriven) {
                let ids = dedup::current_ids(&tables.tweets, origin).await?;
                windows.insert(redriven.clone(), SeenIds { through_offset: -1, ids, ..SeenIds::default() });
            }
        }
        let stages = Stages { model: &self.model, quality: &self.cfg.quality, languages: &self.cfg.languages };
        let Transformed { rows, mut rejected, mut summary } =
            transform(&stages, records, &held.tweets, &held.quarantine, &mut windows, now);
        // Committed with the redrive's quarantine coverage, so a redrive seen before adds none again.
        if !marks.is_empty() && origins.keys().all(|tp| !held.quarantine.contains_key(tp)) {
            *summary.quarantined.entry(redrive::REDRIVEN.to_owned()).or_default() += marks.len();
            rejected.extend(marks);
        }
        let stamp = Stamp { now, model_version: self.model.version() };
        let done = tables.commit(&ranges, &held, rows, rejected, windows, &self.cfg.dedup, &stamp).await?;
        summary.record(done, held.gaps_accepted, &ranges);
        Ok(summary)
    }
}

impl BatchSummary {
    /// Fills in what the commits did; the counts of a table another writer had already written are
    /// taken back, so the summary counts only what this invocation committed.
    fn record(&mut self, done: Outcome, gaps_accepted: Vec<String>, ranges: &PerPartition<(i64, i64)>) {
        if done.quarantine.is_none() {
            self.quarantined.clear();
        }
        self.rows_written = done.rows_written;
        self.aggregate_rows = done.aggregate_rows;
        self.offset_gaps_accepted = gaps_accepted;
        self.committed_versions =
            CommittedVersions { tweets: done.tweets, quarantine: done.quarantine, aggregates: done.aggregates };
        self.offsets = ranges.iter().map(|(tp, (_, last))| (tp.to_string(), *last)).collect();
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

/// What the in-memory stages are configured with.
#[derive(Clone, Copy)]
pub struct Stages<'a> {
    /// The sentiment model.
    pub model: &'a Model,
    /// The quality rules' limits.
    pub quality: &'a QualityConfig,
    /// The languages the model scores.
    pub languages: &'a Languages,
}

/// The in-memory stages for decoded records, in order: skip what `done_t` / `done_q` (the coverage of
/// the tweets and quarantine tables) already hold, apply the quality rules, read each as a post, dedup
/// against the batch and each partition's window (updated in place), clean and score. Dedup comes
/// before cleaning so a duplicate costs neither.
///
/// Edited posts: the window knows each post (by its first version's id) and the newest version
/// written. A later version gets a row of its own that points at the first (`edit_root_id`) and that
/// the aggregates do not count again; an older version arriving after a newer one is dropped. So a
/// post counts once, and its row with the highest `tweet_id` is always its latest version.
pub fn transform(
    stages: &Stages<'_>,
    records: Vec<RawRecord>,
    done_t: &PerPartition<Coverage>,
    done_q: &PerPartition<Coverage>,
    windows: &mut HashMap<TopicPartition, SeenIds>,
    now: DateTime<Utc>,
) -> Transformed {
    let mut summary = BatchSummary { records_in: records.len(), ..BatchSummary::default() };
    let mut scorer = stages.model.scorer();
    let mut in_batch = BatchDedup::default();
    let (mut rows, mut rejected) = (Vec::with_capacity(records.len()), Vec::new());
    // Records arrive grouped by partition: look its state up when the partition changes, not per record.
    let mut current: Option<TopicPartition> = None;
    let (mut limit_t, mut limit_q) = (None, None);
    for rec in records {
        if current.as_ref().is_none_or(|tp| !tp.is(&rec.topic, rec.partition)) {
            let tp = TopicPartition::new(rec.topic.clone(), rec.partition);
            limit_t = done_t.get(&tp).copied();
            limit_q = done_q.get(&tp).copied();
            windows.entry(tp.clone()).or_insert_with(|| SeenIds { through_offset: -1, ..SeenIds::default() });
            current = Some(tp);
        }
        let tp = current.as_ref().expect("set above");
        let placed = rec.is_placed();
        let skip_t = placed && limit_t.is_some_and(|c: Coverage| c.contains(rec.offset));
        let skip_q = placed && limit_q.is_some_and(|c: Coverage| c.contains(rec.offset));
        if skip_t && skip_q {
            summary.redelivered_skipped += 1;
            continue;
        }
        let valid = match check(&rec, stages.quality, now) {
            Ok(v) => v,
            Err(rejection) => {
                if skip_q {
                    summary.redelivered_skipped += 1;
                } else {
                    *summary.quarantined.entry(rejection.rule.to_owned()).or_default() += 1;
                    rejected.push(QuarantineRow::new(rec, rejection));
                }
                continue;
            }
        };
        if skip_t {
            summary.redelivered_skipped += 1;
            continue;
        }
        if !in_batch.first(valid.id) {
            summary.duplicates_in_batch += 1;
            continue;
        }
        let window = windows.get_mut(tp).expect("inserted when the partition started");
        if window.contains(valid.id) {
            summary.duplicates_in_window += 1;
            continue;
        }
        // A record without a timestamp is remembered as of now, so it stays in the window for its length.
        let seen_at = if rec.timestamp_ms >= 0 { rec.timestamp_ms } else { now.timestamp_millis() };
        let later_version = if valid.root == valid.id {
            window.insert(valid.id, seen_at);
            false
        } else {
            let newest = window.newest_version(valid.root);
            if newest.is_some_and(|n| valid.id < n) {
                summary.superseded_versions += 1;
                continue;
            }
            window.insert_version(valid.root, valid.id, seen_at);
            newest.is_some()
        };
        summary.later_versions += usize::from(later_version);
        let post = Post::of(&valid.message);
        let scored = stages.languages.scores(valid.message.tweet.lang.as_deref(), post.full_text);
        summary.unscored += usize::from(!scored);
        let (model_text, cleaned) = clean(post.full_text, post.entities).split();
        let p = scored.then(|| scorer.predict_normalized(&model_text));
        let post = post.columns();
        // The model's input may borrow the message, which moves into the row next.
        drop(model_text);
        rows.push(TweetRow::new(rec, valid, post, cleaned, p, !later_version));
    }
    Transformed { rows, rejected, summary }
}

//! The commit protocol: how one batch reaches the three tables exactly once, whatever crashes,
//! retries, redeliveries or concurrent writers happen around it.
//!
//! Each table records, in the same Delta commit as its rows, the run of offsets of each partition it
//! holds (its coverage, see [`crate::sink`]). One batch goes through:
//!
//! ```text
//!  read    each table's coverage of the batch's partitions                      Tables::read
//!  check   the batch touches the tweets' and the quarantine's coverage,
//!          or it waits (a retryable OffsetGap) for the batch before it
//!          ── the stages run (skip what is held, quality, dedup, clean, score) ──
//!  1. aggregates ← the partials saved with the tweets' last commit,             Tables::commit
//!                  if the aggregates table lags that commit
//!  2. quarantine ← the rejected records + the batch's offsets
//!  3. (the dedup windows are saved under the coverage step 4 records)
//!  4. tweets     ← the rows + the batch's offsets        (consumers resume from these)
//!  5. aggregates ← the partials of exactly the rows step 4 wrote
//! ```
//!
//! A crash between steps leaves a table behind. A redelivery skips what each table already holds, and
//! step 1 brings the aggregates level before the next tweets commit, so they lag by at most one commit
//! and never count a row twice or one the tweets table lacks. A commit that conflicts with another
//! writer of the same offsets is success only if that writer covered them all.

use crate::aggregate::{AggregateKey, Partial, partials};
use crate::config::ProcessConfig;
use crate::decode::RawRecord;
use crate::dedup::{self, DedupConfig, SeenIds};
use crate::error::Error;
use crate::offsets::{Coverage, PerPartition, TopicPartition};
use crate::sink::DeltaSink;
use crate::tables::Stamp;
use crate::tables::aggregates::{self, AggregateRow};
use crate::tables::quarantine::{self, QuarantineRow};
use crate::tables::tweets::{self, TweetRow};
use chrono::{DateTime, Utc};
use deltalake::arrow::record_batch::RecordBatch;
use std::collections::HashMap;

/// The first and last offset of each partition in a batch.
pub type Ranges = PerPartition<(i64, i64)>;

/// The offset ranges of `records` (sorted by topic, partition, offset, as decoding leaves them).
/// Records without a Kafka position (quarantined as undecodable) take no part.
pub fn ranges(records: &[RawRecord]) -> Ranges {
    records
        .iter()
        .filter(|r| r.is_placed())
        .collect::<Vec<_>>()
        .chunk_by(|a, b| a.partition == b.partition && a.topic == b.topic)
        .map(|g| (TopicPartition::new(g[0].topic.clone(), g[0].partition), (g[0].offset, g[g.len() - 1].offset)))
        .collect()
}

/// The three tables a batch commits to.
pub struct Tables {
    /// One row per tweet; its offsets are where consumers resume.
    pub tweets: DeltaSink,
    /// Rejected records.
    pub quarantine: DeltaSink,
    /// Partial windowed counts.
    pub aggregates: DeltaSink,
}

/// What the tables held of a batch's partitions before it, read by [`Tables::read`].
#[derive(Debug)]
pub struct Held {
    /// The tweets table's coverage (first offsets always looked up).
    pub tweets: PerPartition<Coverage>,
    /// The quarantine table's coverage.
    pub quarantine: PerPartition<Coverage>,
    /// The aggregates table's coverage.
    pub aggregates: PerPartition<Coverage>,
    /// Gaps before the batch that outlasted the grace period and were accepted (`topic-partition: from..=to`).
    pub gaps_accepted: Vec<String>,
}

impl Held {
    /// The aggregates' coverage once level with a tweets coverage `t`. An aggregates table that is ahead
    /// (its commit used to come first) keeps its reach: it never moves backwards.
    fn level(&self, tp: &TopicPartition, t: Coverage) -> Coverage {
        match self.aggregates.get(tp) {
            Some(a) if a.first.is_some() => Coverage { first: a.first.min(t.first), last: a.last.max(t.last) },
            _ => t,
        }
    }
}

/// What a batch's commits wrote. Where another writer had committed the same offsets first, the
/// version is `None` and nothing is counted.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// New quarantine version.
    pub quarantine: Option<i64>,
    /// New tweets version.
    pub tweets: Option<i64>,
    /// Rows the tweets commit wrote.
    pub rows_written: usize,
    /// New aggregates version (the last of up to two commits).
    pub aggregates: Option<i64>,
    /// Partial rows the aggregates commits wrote.
    pub aggregate_rows: usize,
}

/// The coverage a table records after a batch, for the partitions where it grows.
fn grown(ranges: &Ranges, held: &PerPartition<Coverage>) -> PerPartition<Coverage> {
    ranges
        .iter()
        .filter_map(|(tp, range)| {
            let grown = Coverage::grown_by(held.get(tp), *range);
            (held.get(tp) != Some(&grown)).then(|| (tp.clone(), grown))
        })
        .collect()
}

/// Where a gap's first sighting is stored beside the tweets table, so every retry (in any container)
/// measures the same grace period.
fn gap_path(tp: &TopicPartition, (from, to): (i64, i64)) -> String {
    format!("_tweetlake/gaps/{}/{}/{from:020}-{to:020}.json", tp.topic, tp.partition)
}

#[derive(serde::Serialize, serde::Deserialize)]
struct GapSeen {
    first_seen_ms: i64,
}

/// Fails with a retryable [`Error::OffsetGap`] if offsets between a table's coverage (`held`) and this
/// batch are `missing` (an earlier batch still in flight, or failed), unless the gap has been seen for
/// `grace_secs`: then no invocation can still be writing it, so those offsets do not exist (compacted
/// topic, transaction markers, retention) and the gap is accepted and returned.
async fn check_gap(
    tweets: &DeltaSink,
    tp: &TopicPartition,
    batch: (i64, i64),
    (held, missing): (&Coverage, (i64, i64)),
    grace_secs: i64,
    now: DateTime<Utc>,
) -> Result<Option<String>, Error> {
    let path = gap_path(tp, missing);
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
    if waited_secs < grace_secs {
        return Err(Error::OffsetGap {
            topic: tp.topic.clone(),
            partition: tp.partition,
            missing,
            held: (held.first.unwrap_or(0), held.last),
            batch,
            waited_secs,
            grace_secs,
        });
    }
    tracing::warn!(topic = %tp.topic, partition = tp.partition, from = missing.0, to = missing.1, waited_secs,
        "offset gap outlasted the grace period; accepting it as offsets that do not exist");
    tweets.delete_object(&path).await?;
    Ok(Some(format!("{tp}: {}..={}", missing.0, missing.1)))
}

impl Tables {
    /// Opens (or creates) the three tables `cfg` names.
    pub async fn open(cfg: &ProcessConfig) -> Result<Self, Error> {
        let at = &cfg.tables;
        let open = |uri, schema, partitions| {
            DeltaSink::open(uri, schema, partitions, cfg.checkpoint_interval, cfg.commit_retries, &at.storage_options)
        };
        Ok(Self {
            tweets: open(&at.tweets, &tweets::SCHEMA, tweets::PARTITIONS).await?,
            quarantine: open(&at.quarantine, &quarantine::SCHEMA, quarantine::PARTITIONS).await?,
            aggregates: open(&at.aggregates, &aggregates::SCHEMA, aggregates::PARTITIONS).await?,
        })
    }

    /// Reads what each table holds of the batch's partitions (`ranges`), after the latest commits of
    /// any writer, and checks that the batch leaves no gap in the tweets' or quarantine's coverage
    /// (which runs ahead of the tweets after an interrupted invocation): each must stay one run.
    pub async fn read(&mut self, ranges: &Ranges, grace_secs: i64, now: DateTime<Utc>) -> Result<Held, Error> {
        let partitions: Vec<TopicPartition> = ranges.keys().cloned().collect();
        self.tweets.refresh().await?;
        self.quarantine.refresh().await?;
        self.aggregates.refresh().await?;
        // The first offset matters only to a batch that reaches down into a coverage, and to the
        // aggregates where they might be level with the tweets; the tweets table's is always read, since
        // its dedup window is stored under both ends.
        let reaches = |tp: &TopicPartition, last: i64| ranges.get(tp).is_some_and(|(first, _)| *first <= last);
        let tweets = self.tweets.coverage(&partitions, |_, _| true).await?;
        let quarantine = self.quarantine.coverage(&partitions, reaches).await?;
        let aggregates = self
            .aggregates
            .coverage(&partitions, |tp, last| reaches(tp, last) || tweets.get(tp).is_some_and(|t| last >= t.last))
            .await?;
        let mut gaps_accepted = Vec::new();
        for (tp, range) in ranges {
            let mut gaps: Vec<(&Coverage, (i64, i64))> = Vec::new();
            for held in [tweets.get(tp), quarantine.get(tp)].into_iter().flatten() {
                if let Some(m) = held.gap_to(*range).filter(|m| gaps.iter().all(|(_, g)| g != m)) {
                    gaps.push((held, m));
                }
            }
            for gap in gaps {
                gaps_accepted.extend(check_gap(&self.tweets, tp, *range, gap, grace_secs, now).await?);
            }
        }
        Ok(Held { tweets, quarantine, aggregates, gaps_accepted })
    }

    /// Commits a batch's results in the protocol's order (steps 1–5 of the module docs): `rows` and
    /// `rejected` from the stages, `windows` the dedup windows they updated.
    #[allow(clippy::too_many_arguments)]
    pub async fn commit(
        &mut self,
        ranges: &Ranges,
        held: &Held,
        mut rows: Vec<TweetRow>,
        rejected: Vec<QuarantineRow>,
        mut windows: HashMap<TopicPartition, SeenIds>,
        dedup_cfg: &DedupConfig,
        stamp: &Stamp<'_>,
    ) -> Result<Outcome, Error> {
        let mut out = Outcome::default();
        let mut unaggregated = |tp: &TopicPartition| std::mem::take(&mut windows.get_mut(tp).expect("loaded").unaggregated);

        // 1. The partials saved with the tweets table's coverage are those of its last commit only, so
        // they must land before a newer tweets commit does.
        let behind: PerPartition<Coverage> = held
            .tweets
            .iter()
            .filter(|(tp, t)| held.aggregates.get(*tp).is_none_or(|a| !a.covers(t.first.unwrap_or(0), t.last)))
            .map(|(tp, t)| (tp.clone(), held.level(tp, *t)))
            .collect();
        if !behind.is_empty() {
            let parts: Vec<_> = behind.keys().flat_map(&mut unaggregated).collect();
            tracing::info!(partitions = behind.len(), partials = parts.len(), "aggregates behind the tweets table; catching up");
            let n = parts.len();
            if let Some(v) = commit_partials(&mut self.aggregates, parts, &behind, stamp).await? {
                (out.aggregate_rows, out.aggregates) = (n, Some(v));
            }
        }

        // 2.
        let new_q = grown(ranges, &held.quarantine);
        if !new_q.is_empty() || !rejected.is_empty() {
            out.quarantine = append_once(&mut self.quarantine, vec![quarantine::batch(&rejected, stamp)?], &new_q).await?;
        }

        let new_t = grown(ranges, &held.tweets);
        if new_t.is_empty() {
            return Ok(out);
        }
        // 3. Rows whose offsets the aggregates already cover (an aggregates table ahead of the tweets)
        // are not counted again.
        let counted = rows
            .iter()
            .filter(|r| held.aggregates.lookup(&r.kafka_topic, r.kafka_partition).is_none_or(|c| !c.contains(r.kafka_offset)));
        let mut by_partition: HashMap<TopicPartition, Vec<(AggregateKey, Partial)>> = HashMap::new();
        for part in partials(counted) {
            by_partition.entry(TopicPartition::new(part.0.kafka_topic.clone(), part.0.kafka_partition)).or_default().push(part);
        }
        for (tp, c) in &new_t {
            let w = windows.get_mut(tp).expect("every partition of the batch has a window");
            w.advance(c.last, dedup_cfg, stamp.now.timestamp_millis());
            w.unaggregated = by_partition.remove(tp).unwrap_or_default();
            dedup::save_window(&self.tweets, tp, c, w).await?;
        }

        // 4.
        out.tweets = append_once(&mut self.tweets, tweets::batches(&mut rows, stamp)?, &new_t).await?;
        if out.tweets.is_none() {
            return Ok(out);
        }
        out.rows_written = rows.len();
        for (tp, c) in &held.tweets {
            if new_t.contains_key(tp) {
                dedup::delete_window(&self.tweets, tp, c).await?;
            }
        }

        // 5.
        let mut unaggregated = |tp: &TopicPartition| std::mem::take(&mut windows.get_mut(tp).expect("saved").unaggregated);
        let parts: Vec<_> = new_t.keys().flat_map(&mut unaggregated).collect();
        let n = parts.len();
        let target: PerPartition<Coverage> = new_t.iter().map(|(tp, c)| (tp.clone(), held.level(tp, *c))).collect();
        if let Some(v) = commit_partials(&mut self.aggregates, parts, &target, stamp).await? {
            (out.aggregate_rows, out.aggregates) = (out.aggregate_rows + n, Some(v));
        }
        Ok(out)
    }
}

/// Appends partial aggregates and records `coverage` in the aggregates table, as [`append_once`] does.
async fn commit_partials(
    aggregates: &mut DeltaSink,
    parts: Vec<(AggregateKey, Partial)>,
    coverage: &PerPartition<Coverage>,
    stamp: &Stamp<'_>,
) -> Result<Option<i64>, Error> {
    let last: PerPartition<i64> = coverage.iter().map(|(tp, c)| (tp.clone(), c.last)).collect();
    let mut rows: Vec<AggregateRow> = parts.into_iter().map(|p| AggregateRow::new(p, &last)).collect();
    append_once(aggregates, aggregates::batches(&mut rows, stamp)?, coverage).await
}

/// Appends `batches` and records `coverage`; a commit that fails because another writer recorded
/// offsets of the same partitions is success only if that writer's commits cover all of this batch's
/// offsets (then `None`: this invocation wrote nothing). If they cover only part, the error stands and
/// the retry processes the rest against the new state.
async fn append_once(
    sink: &mut DeltaSink,
    batches: Vec<RecordBatch>,
    coverage: &PerPartition<Coverage>,
) -> Result<Option<i64>, Error> {
    match sink.append(batches, coverage).await {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            sink.refresh().await?;
            let keys: Vec<TopicPartition> = coverage.keys().cloned().collect();
            let now = sink.coverage(&keys, |_, _| true).await?;
            let covered = coverage
                .iter()
                .all(|(tp, want)| now.get(tp).is_some_and(|held| held.covers(want.first.unwrap_or(held.last), want.last)));
            if covered {
                tracing::info!(table = sink.uri(), "another writer committed these offsets first");
                Ok(None)
            } else {
                Err(e)
            }
        }
    }
}

//! Compliance deletions on the tables: the post ids the lake holds (what a compliance job checks), and
//! the removal of the posts X reports from every table, with the aggregates corrected in step.
//!
//! A post is its whole edit chain (one `edit_root_id`): every version of a reported post goes, so what
//! is left never counts a later version the aggregates did not. The aggregates are append-only partials,
//! so a removal appends the removed posts' partials negated, under the job's own topic name
//! (`compliance.{job id}`, partition 0) whose application transaction is written in the same commit: a
//! job applied twice appends once. Its partials are committed before the rows are deleted, so a run that
//! stops between the two is finished by the next (the deletes are idempotent; the partials are already
//! recorded), and the rows' text never outlives what the aggregates say.

use crate::aggregate::{Counted, partials_of};
use crate::config::TableLocations;
use crate::error::Error;
use crate::offsets::{Coverage, PerPartition, TopicPartition};
use crate::post::Kind;
use crate::sink::DeltaSink;
use crate::tables::Stamp;
use crate::tables::aggregates::{self, AggregateRow};
use chrono::{DateTime, Utc};
use deltalake::DeltaTable;
use deltalake::datafusion::prelude::SessionContext;
use deltalake::kernel::transaction::CommitProperties;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Ids per SQL `IN` list: bounds one statement's size, whatever a job reports.
const CHUNK: usize = 5_000;

/// What applying one job's findings did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Applied {
    /// Rows deleted from the tweets table (every version of every reported post).
    pub tweets_deleted: usize,
    /// Rows deleted from the quarantine table.
    pub quarantine_deleted: usize,
    /// Negated partial rows appended to the aggregates table.
    pub partial_rows: usize,
    /// True if the job's partials were already recorded (a rerun): none were appended again.
    pub already_applied: bool,
}

/// A session over `table` (at `uri`), registered as `name`: one log replay for every query run on it.
async fn session(table: &DeltaTable, uri: &str, name: &str) -> Result<SessionContext, Error> {
    crate::query::session_of(&[(name, table)]).await.map_err(|e| failed(uri, e))
}

async fn query(ctx: &SessionContext, uri: &str, sql: &str) -> Result<Vec<Value>, Error> {
    crate::query::rows(ctx, sql).await.map_err(|e| failed(uri, e))
}

/// A query that failed on the table at `uri` (storage or engine trouble: worth a retry).
fn failed(uri: &str, e: anyhow::Error) -> Error {
    Error::delta(uri, deltalake::DeltaTableError::Generic(format!("{e:#}")))
}

fn quoted(ids: &[String]) -> String {
    ids.iter().map(|i| format!("'{}'", i.replace('\'', "''"))).collect::<Vec<_>>().join(",")
}

/// The post ids the lake holds, as a compliance job takes them: every `tweet_id` of the tweets table
/// and every quarantine `key` that reads as a post id, above `after` if given; sorted and unique.
pub async fn held_ids(t: &TableLocations, after: Option<u64>) -> Result<Vec<u64>, Error> {
    let mut ids = BTreeSet::new();
    let keep = |s: &str| s.parse::<u64>().ok().filter(|id| after.is_none_or(|a| *id > a));
    if let Some(table) = crate::maintenance::load(&t.tweets, &t.storage_options).await.map_err(|e| Error::delta(&t.tweets, e))? {
        let ctx = session(&table, &t.tweets, "tweets").await?;
        for r in query(&ctx, &t.tweets, "SELECT DISTINCT tweet_id FROM tweets").await? {
            ids.extend(r["tweet_id"].as_str().and_then(keep));
        }
    }
    if let Some(table) =
        crate::maintenance::load(&t.quarantine, &t.storage_options).await.map_err(|e| Error::delta(&t.quarantine, e))?
    {
        // Keys are bytes as received: read them as hex, so a key that is not UTF-8 cannot fail the query.
        let sql = "SELECT DISTINCT encode(key, 'hex') AS key FROM quarantine WHERE key IS NOT NULL";
        for r in query(&session(&table, &t.quarantine, "quarantine").await?, &t.quarantine, sql).await? {
            let key = r["key"].as_str().and_then(hex_text);
            ids.extend(key.as_deref().and_then(keep));
        }
    }
    Ok(ids.into_iter().collect())
}

/// The UTF-8 text of a hex string, if it is that.
fn hex_text(h: &str) -> Option<String> {
    let bytes: Option<Vec<u8>> =
        (0..h.len()).step_by(2).map(|i| h.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok())).collect();
    String::from_utf8(bytes?).ok()
}

/// One row of a reported post, as read back for its partials.
struct PostRow {
    tweet_id: String,
    root: String,
    created_us: i64,
    rule_tags: Vec<String>,
    hashtags: Vec<String>,
    kind: Kind,
    sentiment: Option<(String, f64)>,
    probabilities: Option<[f64; 3]>,
    kafka_topic: String,
    kafka_partition: i32,
}

impl PostRow {
    fn read(r: &Value) -> Self {
        let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
        let list = |k: &str| {
            r[k].as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()).unwrap_or_default()
        };
        let probs = ["sentiment_negative", "sentiment_neutral", "sentiment_positive"].map(|c| r[c].as_f64());
        PostRow {
            tweet_id: s("tweet_id"),
            root: s("root"),
            created_us: r["created_us"].as_i64().unwrap_or_default(),
            rule_tags: list("rule_tags"),
            hashtags: list("hashtags"),
            // Rows written before the column were originals as far as the aggregates knew.
            kind: Kind::parse(r["kind"].as_str().unwrap_or("original")),
            sentiment: r["sentiment_label"].as_str().map(str::to_owned).zip(r["sentiment_score"].as_f64()),
            probabilities: match probs {
                [Some(n), Some(u), Some(p)] => Some([n, u, p]),
                _ => None,
            },
            kafka_topic: s("kafka_topic"),
            kafka_partition: r["kafka_partition"].as_i64().unwrap_or_default() as i32,
        }
    }

    fn counted(&self) -> Counted<'_> {
        Counted {
            created_us: self.created_us,
            rule_tags: &self.rule_tags,
            hashtags: &self.hashtags,
            kind: self.kind,
            sentiment: self.sentiment.as_ref().map(|(l, s)| (l.as_str(), *s)),
            probabilities: self.probabilities,
            kafka_topic: &self.kafka_topic,
            kafka_partition: self.kafka_partition,
        }
    }
}

/// Every row of every post (edit chain) that `ids` names, by a version's id or the chain's first, from
/// the tweets table `tweets` (at `uri`).
async fn reported_rows(tweets: &DeltaTable, uri: &str, ids: &[String]) -> Result<Vec<PostRow>, Error> {
    let ctx = session(tweets, uri, "tweets").await?;
    let mut out = Vec::new();
    for chunk in ids.chunks(CHUNK) {
        let list = quoted(chunk);
        let sql = format!(
            "SELECT tweet_id, coalesce(edit_root_id, tweet_id) AS root, CAST(created_at AS BIGINT) AS created_us, \
             rule_tags, hashtags, kind, sentiment_label, sentiment_score, sentiment_negative, sentiment_neutral, \
             sentiment_positive, kafka_topic, kafka_partition FROM tweets \
             WHERE coalesce(edit_root_id, tweet_id) IN ({list}) \
             OR coalesce(edit_root_id, tweet_id) IN (SELECT coalesce(edit_root_id, tweet_id) FROM tweets WHERE tweet_id IN ({list}))"
        );
        out.extend(query(&ctx, uri, &sql).await?.iter().map(PostRow::read));
    }
    Ok(out)
}

/// The rows the aggregates counted: one per post, its first version written. A later version is only
/// ever written after an earlier one (an older version arriving late is dropped), so that is the
/// version with the lowest id.
fn counted_rows(rows: &[PostRow]) -> Vec<&PostRow> {
    let id = |r: &PostRow| r.tweet_id.parse::<u64>().unwrap_or(u64::MAX);
    let mut first: BTreeMap<&str, &PostRow> = BTreeMap::new();
    for r in rows {
        first
            .entry(&r.root)
            .and_modify(|f| {
                if id(r) < id(f) {
                    *f = r
                }
            })
            .or_insert(r);
    }
    first.into_values().collect()
}

/// Deletes the rows of `table` (at `uri`) whose `column` is one of `values`, a commit per chunk of
/// them; returns how many rows went.
async fn delete_in(
    mut table: deltalake::DeltaTable,
    uri: &str,
    column: &str,
    values: &[String],
    commit_retries: usize,
) -> Result<usize, Error> {
    let mut deleted = 0;
    for chunk in values.chunks(CHUNK) {
        let (next, m) = table
            .delete()
            .with_predicate(format!("{column} IN ({})", quoted(chunk)))
            .with_commit_properties(CommitProperties::default().with_max_retries(commit_retries))
            .await
            .map_err(|e| Error::delta(uri, e))?;
        table = next;
        deleted += m.num_deleted_rows.unwrap_or(0);
    }
    Ok(deleted)
}

/// The application transaction a job's partials are recorded under.
pub fn job_partition(job_id: &str) -> TopicPartition {
    TopicPartition::new(format!("compliance.{job_id}"), 0)
}

/// Removes the posts `ids` names (X's findings of compliance job `job_id`) from the tweets and
/// quarantine tables and appends their partials negated to the aggregates, at time `now`. Applying
/// the same job again changes nothing.
pub async fn apply(
    t: &TableLocations,
    commit_retries: usize,
    job_id: &str,
    ids: &[String],
    now: DateTime<Utc>,
) -> Result<Applied, Error> {
    let mut out = Applied::default();
    if ids.is_empty() {
        return Ok(out);
    }
    let has_tweets = crate::maintenance::load(&t.tweets, &t.storage_options).await.map_err(|e| Error::delta(&t.tweets, e))?;
    let rows = match &has_tweets {
        Some(table) => reported_rows(table, &t.tweets, ids).await?,
        None => Vec::new(),
    };

    // 1. The aggregates take back what the posts added, once per job.
    let negated: Vec<AggregateRow> = partials_of(counted_rows(&rows).into_iter().map(PostRow::counted))
        .into_iter()
        .map(|(k, p)| AggregateRow::new((k, p.negated()), &PerPartition::default()))
        .collect();
    if !negated.is_empty() {
        let mut sink =
            DeltaSink::open(&t.aggregates, &aggregates::SCHEMA, aggregates::PARTITIONS, 100, commit_retries, &t.storage_options)
                .await?;
        let tp = job_partition(job_id);
        if sink.recorded_offsets(std::slice::from_ref(&tp)).await?.is_empty() {
            let stamp = Stamp { now, model_version: "" };
            let coverage: PerPartition<Coverage> = [(tp, Coverage { first: None, last: 0 })].into_iter().collect();
            out.partial_rows = negated.len();
            let mut negated = negated;
            sink.append(aggregates::batches(&mut negated, &stamp)?, &coverage).await?;
        } else {
            out.already_applied = true;
        }
    }

    // 2. The rows go: every version of every reported post, and what the quarantine holds of them.
    let versions: Vec<String> = rows.iter().map(|r| r.tweet_id.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    if let Some(table) = has_tweets {
        out.tweets_deleted = delete_in(table, &t.tweets, "tweet_id", &versions, commit_retries).await?;
    }
    let keys: BTreeSet<String> = ids.iter().cloned().chain(versions).chain(rows.iter().map(|r| r.root.clone())).collect();
    let keys: Vec<String> = keys.into_iter().map(|k| k.bytes().map(|b| format!("{b:02x}")).collect()).collect();
    if let Some(table) =
        crate::maintenance::load(&t.quarantine, &t.storage_options).await.map_err(|e| Error::delta(&t.quarantine, e))?
    {
        // Keys are bytes as received: matched as hex, as `held_ids` read them.
        out.quarantine_deleted = delete_in(table, &t.quarantine, "encode(key, 'hex')", &keys, commit_retries).await?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, root: &str) -> PostRow {
        PostRow {
            tweet_id: id.into(),
            root: root.into(),
            created_us: 0,
            rule_tags: vec![],
            hashtags: vec![],
            kind: Kind::Original,
            sentiment: None,
            probabilities: None,
            kafka_topic: "t".into(),
            kafka_partition: 0,
        }
    }

    #[test]
    fn each_post_counts_once_by_its_first_version_written() {
        let rows = [row("30", "10"), row("10", "10"), row("20", "10"), row("7", "7"), row("100", "99")];
        let ids: Vec<&str> = counted_rows(&rows).iter().map(|r| r.tweet_id.as_str()).collect();
        assert_eq!(ids, ["10", "7", "100"], "by root: the lowest version of each chain, whichever the table holds");
    }

    #[test]
    fn hex_keys_read_back_as_text() {
        assert_eq!(hex_text("313233").as_deref(), Some("123"));
        assert_eq!(hex_text("ff"), None, "not UTF-8");
        assert_eq!(hex_text("3"), None, "odd length");
    }
}

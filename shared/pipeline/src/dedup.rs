//! Dedup: one row per tweet, however often Kafka or the ingest side delivers it.
//!
//! Three layers, cheapest first:
//! 1. **Redelivery** (same offsets again, whole, partial or out of order): the sink records the last
//!    offset of each topic-partition as a Delta `txn` in the same commit as the rows; records at or
//!    below it are skipped before any other work.
//! 2. **Within a batch**: the first occurrence of a tweet id wins.
//! 3. **Re-sent by ingest at a later offset**: the ingest side keys messages by tweet id, so every copy
//!    of a tweet lands in the same partition. Each partition keeps a [`SeenIds`] window of the tweet
//!    ids it wrote (by Kafka timestamp, `TWEETLAKE_DEDUP_WINDOW_SECS`, capped at
//!    `TWEETLAKE_DEDUP_MAX_IDS`), stored beside the table and tied to the recorded offset, so its
//!    state is bounded and always matches the committed rows. Its storage is here too:
//!    [`load_windows`], [`save_window`], [`delete_window`].

use crate::aggregate::{AggregateKey, Partial};
use crate::error::Error;
use crate::offsets::{Coverage, PerPartition, TopicPartition};
use crate::sink::DeltaSink;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// Ids are hashed per record on the hot path; foldhash is several times cheaper than SipHash, and the
/// keys (tweet ids from our own topic) are not attacker-chosen hash-flooding input.
type Fast = foldhash::fast::RandomState;

/// Where a partition's window is stored beside the tweets table: under the coverage it is valid for.
/// Both ends name it, so a commit that extends the coverage downwards (an earlier batch landing after a
/// later one) never overwrites the window of the coverage the table still records.
fn window_path(tp: &TopicPartition, coverage: &Coverage) -> String {
    let first = coverage.first.unwrap_or(0);
    format!("_tweetlake/dedup/{}/{}/{first:020}-{:020}.json", tp.topic, tp.partition, coverage.last)
}

/// Where tables written before the first offset was recorded keep a window: under the last offset.
fn legacy_window_path(tp: &TopicPartition, last: i64) -> String {
    format!("_tweetlake/dedup/{}/{}/{last:020}.json", tp.topic, tp.partition)
}

/// The stored windows of the partitions the tweets table holds offsets of (`held`, its coverage); a
/// partition without one (never written, or its window lost) starts empty at its recorded offset.
pub async fn load_windows(tweets: &DeltaSink, held: &PerPartition<Coverage>) -> Result<HashMap<TopicPartition, SeenIds>, Error> {
    let mut windows = HashMap::new();
    for (tp, c) in held {
        let path = window_path(tp, c);
        let mut stored = tweets.read_object(&path).await?;
        if stored.is_none() && c.first == Some(0) {
            stored = tweets.read_object(&legacy_window_path(tp, c.last)).await?;
        }
        let state = match stored {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::State { path, message: e.to_string() })?,
            None => {
                tracing::warn!(topic = %tp.topic, partition = tp.partition, offset = c.last, "dedup window missing; starting empty");
                SeenIds { through_offset: c.last, ..SeenIds::default() }
            }
        };
        windows.insert(tp.clone(), state);
    }
    Ok(windows)
}

/// The tweet ids in the window the tables currently record for `tp` (empty when it has none).
pub async fn current_ids(tweets: &DeltaSink, tp: &TopicPartition) -> Result<HashMap<u64, i64, Fast>, Error> {
    let held = tweets.coverage(std::slice::from_ref(tp), |_, _| true).await?;
    Ok(load_windows(tweets, &held).await?.remove(tp).map(|w| w.ids).unwrap_or_default())
}

/// Stores a partition's window under the coverage it is valid for. Called before the commit that
/// makes that coverage current, so whichever coverage the table records has its window stored.
pub async fn save_window(tweets: &DeltaSink, tp: &TopicPartition, coverage: &Coverage, window: &SeenIds) -> Result<(), Error> {
    tweets.write_object(&window_path(tp, coverage), serde_json::to_vec(window).expect("serialisable")).await
}

/// Deletes the window of a coverage the table no longer records.
pub async fn delete_window(tweets: &DeltaSink, tp: &TopicPartition, coverage: &Coverage) -> Result<(), Error> {
    tweets.delete_object(&window_path(tp, coverage)).await
}

/// The window of recently written tweet ids of one topic-partition.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SeenIds {
    /// Kafka offset this state is valid through (the table's recorded offset for the partition).
    pub through_offset: i64,
    /// Tweet id → Kafka timestamp (ms) of the record that wrote it (stored as JSON object keys).
    pub ids: HashMap<u64, i64, Fast>,
    /// The partial aggregates of the rows the tweets commit of this coverage wrote. The aggregates table
    /// is committed after the tweets table; when it lags, whoever next sees the lag commits these, so the
    /// aggregates count exactly the rows written (see `process`). Stored here because the window is
    /// already written before, and read after, every tweets commit of the partition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unaggregated: Vec<(AggregateKey, Partial)>,
    /// Edited posts: the first version's id → the newest version's id written. The first version's id
    /// is in `ids` too (with the time of the newest version), so it expires with the post.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub versions: HashMap<u64, u64, Fast>,
}

/// Window limits.
#[derive(Clone, Copy, Debug)]
pub struct DedupConfig {
    /// Ids older than this (ms, by Kafka timestamp, relative to the newest record) are forgotten.
    pub window_ms: i64,
    /// At most this many ids are kept per partition; the oldest go first.
    pub max_ids: usize,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self { window_ms: 24 * 3600 * 1000, max_ids: 1_000_000 }
    }
}

impl SeenIds {
    /// True if `id` was written within the window.
    pub fn contains(&self, id: u64) -> bool {
        self.ids.contains_key(&id)
    }

    /// Remembers a written id.
    pub fn insert(&mut self, id: u64, timestamp_ms: i64) {
        self.ids.entry(id).or_insert(timestamp_ms);
    }

    /// The newest version written of the post whose first version is `root`, if any was.
    pub fn newest_version(&self, root: u64) -> Option<u64> {
        self.versions.get(&root).copied().or_else(|| self.contains(root).then_some(root))
    }

    /// Remembers that version `id` of the edited post `root` was written.
    pub fn insert_version(&mut self, root: u64, id: u64, timestamp_ms: i64) {
        self.insert(id, timestamp_ms);
        // The post stays as long as its newest version does.
        self.ids.insert(root, timestamp_ms.max(self.ids.get(&root).copied().unwrap_or(timestamp_ms)));
        let newest = self.versions.entry(root).or_insert(id);
        *newest = (*newest).max(id);
    }

    /// Drops ids that fell out of the window or over the cap, and moves the state to `offset`. The
    /// window ends at the newest timestamp it holds, but never later than `now_ms` (the processing
    /// clock): one record stamped far in the future (stored before such records were quarantined, or
    /// from a clock within the allowed skew) must not push every other id out.
    pub fn advance(&mut self, offset: i64, cfg: &DedupConfig, now_ms: i64) {
        self.through_offset = offset;
        let newest = self.ids.values().copied().max().unwrap_or(0).min(now_ms);
        let horizon = newest.saturating_sub(cfg.window_ms);
        self.ids.retain(|_, ts| *ts >= horizon);
        if self.ids.len() > cfg.max_ids {
            let mut by_age: Vec<(i64, u64)> = self.ids.drain().map(|(k, v)| (v, k)).collect();
            by_age.sort_unstable_by(|a, b| b.cmp(a));
            by_age.truncate(cfg.max_ids);
            self.ids = by_age.into_iter().map(|(v, k)| (k, v)).collect();
        }
        let ids = &self.ids;
        self.versions.retain(|root, _| ids.contains_key(root));
    }
}

/// First-occurrence filter within one batch.
#[derive(Default, Debug)]
pub struct BatchDedup {
    seen: HashSet<u64, Fast>,
}

impl BatchDedup {
    /// True the first time an id is offered.
    pub fn first(&mut self, id: u64) -> bool {
        self.seen.insert(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn window_forgets_old_ids_and_caps_size() {
        let mut s = SeenIds::default();
        s.insert(1, 0);
        s.insert(2, 10_000);
        s.insert(3, 20_000);
        s.advance(5, &DedupConfig { window_ms: 15_000, max_ids: 10 }, i64::MAX);
        assert!(!s.contains(1) && s.contains(2) && s.contains(3));
        s.advance(6, &DedupConfig { window_ms: 15_000, max_ids: 1 }, i64::MAX);
        assert_eq!(s.ids.keys().collect::<Vec<_>>(), vec![&3]);
        assert_eq!(s.through_offset, 6);
    }

    #[test]
    fn a_future_timestamp_does_not_move_the_horizon() {
        let mut s = SeenIds::default();
        let now = 1_764_000_000_000;
        s.insert(1, now - 60_000);
        s.insert(2, 4_102_444_800_000); // 2100-01-01
        s.advance(9, &DedupConfig { window_ms: 3_600_000, max_ids: 10 }, now);
        assert!(s.contains(1), "a minute-old id stays within an hour's window");
    }

    #[test]
    fn remembers_the_newest_version_of_an_edited_post_until_the_post_expires() {
        let mut s = SeenIds::default();
        assert_eq!(s.newest_version(10), None);
        s.insert(10, 1_000);
        assert_eq!(s.newest_version(10), Some(10), "an unedited post is its own newest version");
        s.insert_version(10, 12, 5_000);
        s.insert_version(10, 11, 6_000);
        assert_eq!(s.newest_version(10), Some(12));
        s.advance(3, &DedupConfig { window_ms: 10_000, max_ids: 10 }, i64::MAX);
        assert_eq!(s.newest_version(10), Some(12), "kept while the post's newest version is in the window");
        s.insert(99, 20_000);
        s.advance(4, &DedupConfig { window_ms: 10_000, max_ids: 10 }, i64::MAX);
        assert_eq!((s.newest_version(10), s.versions.len()), (None, 0));
    }

    proptest! {
        #[test]
        fn state_never_exceeds_the_cap(ids in proptest::collection::vec((0u32..500, 0i64..1_000_000), 0..400), cap in 1usize..50) {
            let mut s = SeenIds::default();
            for (id, ts) in &ids { s.insert(u64::from(*id), *ts); }
            s.advance(1, &DedupConfig { window_ms: 500_000, max_ids: cap }, i64::MAX);
            prop_assert!(s.ids.len() <= cap);
        }

        #[test]
        fn stored_form_round_trips_with_ids_as_json_keys(ids in proptest::collection::hash_map(any::<u64>(), any::<i64>(), 0..50)) {
            let versions = ids.keys().take(3).map(|k| (*k, k.wrapping_add(1))).collect();
            let s = SeenIds { through_offset: 7, ids: ids.into_iter().collect(), unaggregated: Vec::new(), versions };
            let json = serde_json::to_string(&s).unwrap();
            prop_assert_eq!(serde_json::from_str::<SeenIds>(&json).unwrap(), s);
        }
    }
}

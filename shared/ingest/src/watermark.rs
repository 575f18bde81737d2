//! Per-rule `since_id` watermarks, kept between runs in one JSON object (S3, or a local file for
//! local runs) and replaced with a conditional write, so two overlapping runs cannot clobber each
//! other: the loser reloads, merges (each rule keeps the further-advanced mark) and writes again.
//!
//! A run cut short (deadline, page cap, rate limit) records a *gap* instead of moving `since_id`
//! past tweets it never fetched: the next run first fills `(since_id, gap.until_id)`, then moves
//! `since_id` to `gap.newest_id`. Nothing is skipped; at worst a tweet is sent twice, which the
//! process function's dedup absorbs.

use crate::error::Error;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An unfilled id range left by a run cut short: tweets in `(since_id, until_id)` are still to fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// The oldest tweet fetched so far; the range below it is open.
    pub until_id: u64,
    /// The newest tweet the interrupted run saw; `since_id` moves here once the gap is filled.
    pub newest_id: u64,
}

/// Where one rule stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleMark {
    /// The query the mark belongs to: a changed query starts afresh.
    pub value: String,
    /// Every matching tweet up to this id has been sent (apart from an open gap).
    #[serde(default)]
    pub since_id: Option<u64>,
    /// A range still to fill.
    #[serde(default)]
    pub gap: Option<Gap>,
}

impl RuleMark {
    /// Whether `self` has covered at least as much as `other`.
    fn at_least(&self, other: &RuleMark) -> bool {
        match (self.since_id.cmp(&other.since_id), self.gap, other.gap) {
            (std::cmp::Ordering::Greater, _, _) => true,
            (std::cmp::Ordering::Less, _, _) => false,
            (_, None, _) => true,
            (_, Some(_), None) => false,
            (_, Some(a), Some(b)) => a.until_id <= b.until_id,
        }
    }
}

/// A stretch of wall time, `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// First instant inside.
    pub start: DateTime<Utc>,
    /// First instant after.
    pub end: DateTime<Utc>,
}

impl Window {
    /// Its length in seconds (0 when empty).
    pub fn seconds(&self) -> f64 {
        (self.end - self.start).num_milliseconds().max(0) as f64 / 1000.0
    }
}

/// Where the filtered stream stands: what wall time its sessions and gap fills have covered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMark {
    /// Every post created before this instant has been read, apart from the `pending` windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covered_until: Option<DateTime<Utc>>,
    /// Windows a gap fill could not finish, by rule tag: the next run fills them first.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pending: BTreeMap<String, Vec<Window>>,
}

impl StreamMark {
    fn is_empty(&self) -> bool {
        self.covered_until.is_none() && self.pending.is_empty()
    }
}

/// Every rule's mark, by tag.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermarks {
    /// Format version of the object.
    pub v: u32,
    /// Marks by rule tag.
    pub rules: BTreeMap<String, RuleMark>,
    /// The filtered stream's coverage (filtered-stream mode only).
    #[serde(default, skip_serializing_if = "StreamMark::is_empty")]
    pub stream: StreamMark,
}

impl Watermarks {
    /// The mark for a rule, or a fresh one when the tag is new or its query changed.
    pub fn mark(&self, tag: &str, value: &str) -> RuleMark {
        match self.rules.get(tag) {
            Some(m) if m.value == value => m.clone(),
            _ => RuleMark { value: value.to_owned(), ..Default::default() },
        }
    }

    /// Folds in another writer's marks: per rule, the further-advanced mark wins; of two stream marks,
    /// the one covering further.
    pub fn merge_from(&mut self, other: &Watermarks) {
        if other.stream.covered_until > self.stream.covered_until {
            self.stream = other.stream.clone();
        }
        for (tag, theirs) in &other.rules {
            match self.rules.get(tag) {
                Some(mine) if mine.value == theirs.value && mine.at_least(theirs) => {}
                Some(mine) if mine.value != theirs.value => {}
                _ => {
                    self.rules.insert(tag.clone(), theirs.clone());
                }
            }
        }
    }
}

/// The stored object's version, for the conditional write: an ETag, or `None` when there was none.
pub type Version = Option<String>;

/// Result of a conditional write.
#[derive(Debug, PartialEq, Eq)]
pub enum Saved {
    /// Written.
    Yes,
    /// Someone else wrote first.
    Conflict,
}

/// Storage for the watermarks object.
pub trait WatermarkStore: Send + Sync {
    /// Reads the marks and the version to write against.
    fn load(&self) -> BoxFuture<'_, Result<(Watermarks, Version), Error>>;
    /// Writes `marks` only if the object is still at `version`.
    fn save<'a>(&'a self, marks: &'a Watermarks, version: &'a Version) -> BoxFuture<'a, Result<Saved, Error>>;
    /// Where the object lives, for messages.
    fn uri(&self) -> &str;
}

fn parse(uri: &str, bytes: &[u8]) -> Result<Watermarks, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::Watermark { uri: uri.to_owned(), message: format!("corrupt object: {e}") })
}

/// Writes `marks` with compare-and-swap, merging with whatever another run wrote in between.
pub async fn save_merged(store: &dyn WatermarkStore, mut marks: Watermarks, mut version: Version) -> Result<Watermarks, Error> {
    marks.v = 1;
    for _ in 0..10 {
        if store.save(&marks, &version).await? == Saved::Yes {
            return Ok(marks);
        }
        let (theirs, v) = store.load().await?;
        tracing::warn!(uri = store.uri(), "watermark written by an overlapping run; merging");
        marks.merge_from(&theirs);
        version = v;
    }
    Err(Error::Watermark { uri: store.uri().to_owned(), message: "kept conflicting with other runs after 10 attempts".into() })
}

/// The object on S3, replaced with `If-Match: <etag>` (or created with `If-None-Match: *`).
#[derive(Clone, Debug)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    uri: String,
}

impl S3Store {
    /// A store for `s3://bucket/key`.
    pub fn new(client: aws_sdk_s3::Client, uri: &str) -> Result<Self, Error> {
        let rest = uri.strip_prefix("s3://").ok_or_else(|| Error::Config {
            var: "TWEETLAKE_WATERMARK_URI",
            message: format!("{uri:?} is not s3://bucket/key"),
        })?;
        let (bucket, key) = rest.split_once('/').filter(|(b, k)| !b.is_empty() && !k.is_empty()).ok_or_else(|| {
            Error::Config { var: "TWEETLAKE_WATERMARK_URI", message: format!("{uri:?} is not s3://bucket/key") }
        })?;
        Ok(Self { client, bucket: bucket.into(), key: key.into(), uri: uri.into() })
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::Watermark { uri: self.uri.clone(), message: e.to_string() }
    }
}

impl WatermarkStore for S3Store {
    fn load(&self) -> BoxFuture<'_, Result<(Watermarks, Version), Error>> {
        Box::pin(async move {
            match self.client.get_object().bucket(&self.bucket).key(&self.key).send().await {
                Ok(out) => {
                    let etag = out.e_tag().map(str::to_owned);
                    let bytes = out.body.collect().await.map_err(|e| self.err(e))?.into_bytes();
                    Ok((parse(&self.uri, &bytes)?, etag))
                }
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok((Watermarks::default(), None)),
                Err(e) => Err(self.err(aws_sdk_s3::error::DisplayErrorContext(e))),
            }
        })
    }

    fn save<'a>(&'a self, marks: &'a Watermarks, version: &'a Version) -> BoxFuture<'a, Result<Saved, Error>> {
        Box::pin(async move {
            let body = serde_json::to_vec_pretty(marks).expect("watermarks serialize");
            let mut req =
                self.client.put_object().bucket(&self.bucket).key(&self.key).content_type("application/json").body(body.into());
            req = match version {
                Some(etag) => req.if_match(etag),
                None => req.if_none_match("*"),
            };
            match req.send().await {
                Ok(_) => Ok(Saved::Yes),
                // 412: the object changed (or appeared); 409: a concurrent conditional write is in progress.
                Err(e) if e.raw_response().is_some_and(|r| matches!(r.status().as_u16(), 409 | 412)) => Ok(Saved::Conflict),
                Err(e) => Err(self.err(aws_sdk_s3::error::DisplayErrorContext(e))),
            }
        })
    }

    fn uri(&self) -> &str {
        &self.uri
    }
}

/// A local JSON file for local runs; the compare-and-swap is guarded by an exclusive lock file.
#[derive(Clone, Debug)]
pub struct FileStore {
    path: std::path::PathBuf,
    uri: String,
}

impl FileStore {
    /// A store at `path` (its folder is created on first write).
    pub fn new(path: impl Into<std::path::PathBuf>) -> Self {
        let path = path.into();
        Self { uri: path.display().to_string(), path }
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::Watermark { uri: self.uri.clone(), message: e.to_string() }
    }

    fn version_of(bytes: &[u8]) -> String {
        // Content is the version: identical bytes mean nobody wrote in between.
        format!("{:016x}", bytes.iter().fold(0xcbf29ce484222325u64, |h, b| (h ^ *b as u64).wrapping_mul(0x100000001b3)))
    }
}

impl WatermarkStore for FileStore {
    fn load(&self) -> BoxFuture<'_, Result<(Watermarks, Version), Error>> {
        Box::pin(async move {
            match tokio::fs::read(&self.path).await {
                Ok(bytes) => Ok((parse(&self.uri, &bytes)?, Some(Self::version_of(&bytes)))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Watermarks::default(), None)),
                Err(e) => Err(self.err(e)),
            }
        })
    }

    fn save<'a>(&'a self, marks: &'a Watermarks, version: &'a Version) -> BoxFuture<'a, Result<Saved, Error>> {
        Box::pin(async move {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                tokio::fs::create_dir_all(dir).await.map_err(|e| self.err(e))?;
            }
            let lock = self.path.with_extension("lock");
            let mut waited = 0;
            loop {
                match std::fs::OpenOptions::new().write(true).create_new(true).open(&lock) {
                    Ok(_) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && waited < 100 => {
                        waited += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    }
                    Err(e) => return Err(self.err(format!("lock {}: {e}", lock.display()))),
                }
            }
            let result = async {
                let current = match tokio::fs::read(&self.path).await {
                    Ok(b) => Some(Self::version_of(&b)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => return Err(self.err(e)),
                };
                if &current != version {
                    return Ok(Saved::Conflict);
                }
                let tmp = self.path.with_extension("tmp");
                tokio::fs::write(&tmp, serde_json::to_vec_pretty(marks).expect("watermarks serialize"))
                    .await
                    .map_err(|e| self.err(e))?;
                tokio::fs::rename(&tmp, &self.path).await.map_err(|e| self.err(e))?;
                Ok(Saved::Yes)
            }
            .await;
            let _ = std::fs::remove_file(&lock);
            result
        })
    }

    fn uri(&self) -> &str {
        &self.uri
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(since: Option<u64>, gap: Option<(u64, u64)>) -> RuleMark {
        RuleMark { value: "q".into(), since_id: since, gap: gap.map(|(until_id, newest_id)| Gap { until_id, newest_id }) }
    }

    #[test]
    fn merge_keeps_the_further_mark_per_rule() {
        let mut a = Watermarks::default();
        a.rules.insert("x".into(), mark(Some(10), None));
        a.rules.insert("y".into(), mark(Some(5), Some((50, 90))));
        let mut b = Watermarks::default();
        b.rules.insert("x".into(), mark(Some(8), None));
        b.rules.insert("y".into(), mark(Some(5), Some((30, 90))));
        b.rules.insert("z".into(), mark(Some(1), None));
        a.merge_from(&b);
        assert_eq!(a.rules["x"], mark(Some(10), None));
        assert_eq!(a.rules["y"], mark(Some(5), Some((30, 90))));
        assert_eq!(a.rules["z"], mark(Some(1), None));
        assert_eq!(a.mark("x", "other query"), RuleMark { value: "other query".into(), since_id: None, gap: None });
    }

    #[test]
    fn merge_keeps_the_stream_mark_that_covers_further_and_old_objects_still_read() {
        let at = |s: i64| DateTime::from_timestamp(1_764_244_800 + s, 0).unwrap();
        let mut a =
            Watermarks { stream: StreamMark { covered_until: Some(at(300)), ..Default::default() }, ..Default::default() };
        let mut b = a.clone();
        b.stream.covered_until = Some(at(600));
        b.stream.pending.insert("x".into(), vec![Window { start: at(10), end: at(20) }]);
        a.merge_from(&b);
        assert_eq!(a.stream, b.stream);
        b.stream.covered_until = Some(at(0));
        a.merge_from(&b);
        assert_eq!(a.stream.covered_until, Some(at(600)), "an older stream mark never wins");
        let old: Watermarks = serde_json::from_str(r#"{"v":1,"rules":{}}"#).unwrap();
        assert_eq!(old.stream, StreamMark::default());
        assert!(!serde_json::to_string(&old).unwrap().contains("stream"), "recent-search objects stay as they were");
    }

    #[tokio::test]
    async fn file_store_refuses_a_stale_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("wm/marks.json"));
        let (m, v) = store.load().await.unwrap();
        assert_eq!(v, None);
        assert_eq!(store.save(&m, &v).await.unwrap(), Saved::Yes);
        assert_eq!(store.save(&m, &v).await.unwrap(), Saved::Conflict, "a second create must lose");
        let (_, v2) = store.load().await.unwrap();
        let mut m2 = m.clone();
        m2.rules.insert("x".into(), mark(Some(3), None));
        assert_eq!(store.save(&m2, &v2).await.unwrap(), Saved::Yes);
        assert_eq!(store.load().await.unwrap().0, m2);
    }
}

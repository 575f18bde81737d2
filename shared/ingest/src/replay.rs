//! Replay: the same search and stream code paths fed from recorded X API responses instead of the
//! network — for the local demo, for backfills and for tests.
//!
//! Search pages are files holding one response page (`.json`) or one page per line (`.jsonl`); a file
//! named after a rule's tag (`rust.json`, `rust.jsonl`) answers only that rule, any other file answers
//! every rule. Requests are served like the API would: tweets newest first, filtered by `since_id` /
//! `until_id`, `max_results` at a time with `next_token`. A stream session is a `.jsonl` file of raw
//! stream lines, played as one connection.

use crate::error::Error;
use crate::stream::{Connect, StreamSource};
use crate::xapi::{Answer, Includes, RateLimit, SearchPage, SearchQuery, SearchSource};
use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tweetlake_contract::envelope::{Tweet, User};

struct Recorded {
    /// `Some(tag)`: answers only that rule.
    tag: Option<String>,
    tweets: Vec<Tweet>,
    users: Vec<User>,
    /// User id → index in `users` (the first user recorded with that id).
    user_index: HashMap<String, usize>,
}

/// One tweet a rule can be answered with: its id, and where it is recorded (file, position).
type Entry = (u64, usize, usize);

/// Recorded search pages.
pub struct ReplaySearch {
    files: Vec<Recorded>,
    /// Per rule tag: every tweet that rule can get, newest first, each id once — built on the rule's
    /// first request, so each page is a slice of it instead of a scan and sort of every recording.
    answers: Mutex<HashMap<String, Arc<Vec<Entry>>>>,
}

fn files_of(path: &Path) -> Result<Vec<PathBuf>, Error> {
    let err = |e: std::io::Error| Error::Replay { path: path.display().to_string(), message: e.to_string() };
    if path.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(err)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("json" | "jsonl")))
            .collect();
        v.sort();
        Ok(v)
    } else if path.exists() {
        Ok(vec![path.to_owned()])
    } else {
        Err(Error::Replay { path: path.display().to_string(), message: "no such file or directory".into() })
    }
}

impl ReplaySearch {
    /// Loads every page under `path` (a file or a directory).
    pub fn open(path: &Path, tags: &[String]) -> Result<Self, Error> {
        let mut files = Vec::new();
        for f in files_of(path)? {
            let text = std::fs::read_to_string(&f)
                .map_err(|e| Error::Replay { path: f.display().to_string(), message: e.to_string() })?;
            let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
            let tag = tags.iter().find(|t| **t == stem).cloned();
            let docs: Vec<&str> = if f.extension().and_then(|e| e.to_str()) == Some("jsonl") {
                text.lines().filter(|l| !l.trim().is_empty()).collect()
            } else {
                vec![text.as_str()]
            };
            let mut rec = Recorded { tag, tweets: Vec::new(), users: Vec::new(), user_index: HashMap::new() };
            for (i, doc) in docs.into_iter().enumerate() {
                let page: SearchPage = serde_json::from_str(doc)
                    .map_err(|e| Error::Replay { path: f.display().to_string(), message: format!("page {}: {e}", i + 1) })?;
                rec.tweets.extend(page.data);
                rec.users.extend(page.includes.users);
            }
            for (i, u) in rec.users.iter().enumerate() {
                rec.user_index.entry(u.id.clone()).or_insert(i);
            }
            files.push(rec);
        }
        Ok(Self { files, answers: Mutex::default() })
    }

    /// Every tweet rule `tag` can get, newest first (stable: equal ids keep their file order), each id
    /// once; tweets whose id is not a number are left out.
    fn answers(&self, tag: &str) -> Arc<Vec<Entry>> {
        let mut cache = self.answers.lock().expect("not poisoned");
        let built = cache.entry(tag.to_owned()).or_insert_with(|| {
            let mut all: Vec<Entry> = Vec::new();
            for (fi, f) in self.files.iter().enumerate() {
                if f.tag.as_deref().is_some_and(|t| t != tag) {
                    continue;
                }
                all.extend(f.tweets.iter().enumerate().filter_map(|(ti, t)| t.id.parse::<u64>().ok().map(|id| (id, fi, ti))));
            }
            all.sort_by_key(|e| std::cmp::Reverse(e.0));
            all.dedup_by_key(|e| e.0);
            Arc::new(all)
        });
        Arc::clone(built)
    }
}

impl SearchSource for ReplaySearch {
    fn search<'a>(&'a self, q: &'a SearchQuery) -> BoxFuture<'a, Result<Answer<SearchPage>, Error>> {
        Box::pin(async move {
            // Newest first, as the API pages them: `since_id < id < until_id` is one slice of the answers.
            let all = self.answers(&q.tag);
            let from = q.until_id.map_or(0, |u| all.partition_point(|e| e.0 >= u));
            let to = q.since_id.map_or(all.len(), |s| all.partition_point(|e| e.0 > s)).max(from);
            let tweets = &all[from..to];
            let start: usize = q.next_token.as_deref().and_then(|t| t.parse().ok()).unwrap_or(0);
            let end = (start + q.max_results as usize).min(tweets.len());
            let page = &tweets[start.min(end)..end];
            let tweet = |&(_, fi, ti): &Entry| &self.files[fi].tweets[ti];
            let mut users: Vec<User> = Vec::new();
            for e in page {
                let file = &self.files[e.1];
                if let Some(u) = tweet(e).author_id.as_ref().and_then(|a| file.user_index.get(a)).map(|i| &file.users[*i])
                    && !users.iter().any(|x| x.id == u.id)
                {
                    users.push(u.clone());
                }
            }
            let mut out = SearchPage {
                data: page.iter().map(|e| tweet(e).clone()).collect(),
                includes: Includes { users },
                ..Default::default()
            };
            out.meta.result_count = out.data.len() as u32;
            out.meta.newest_id = page.first().map(|t| t.0.to_string());
            out.meta.oldest_id = page.last().map(|t| t.0.to_string());
            out.meta.next_token = (end < tweets.len()).then(|| end.to_string());
            Ok(Answer::Ok(out, RateLimit::default()))
        })
    }
}

/// A recorded stream session played as one connection, then exhausted.
pub struct ReplayStream {
    bytes: Bytes,
    played: AtomicBool,
}

impl ReplayStream {
    /// Loads the session file(s) under `path`, concatenated.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let mut all = Vec::new();
        for f in files_of(path)? {
            all.extend(std::fs::read(&f).map_err(|e| Error::Replay { path: f.display().to_string(), message: e.to_string() })?);
        }
        Ok(Self { bytes: Bytes::from(all), played: AtomicBool::new(false) })
    }
}

impl StreamSource for ReplayStream {
    fn connect(&self) -> BoxFuture<'_, Result<Connect, String>> {
        Box::pin(async move {
            if self.played.swap(true, Ordering::SeqCst) {
                return Ok(Connect::Exhausted);
            }
            // Chunks of 16 KiB, so lines cross chunk boundaries as they do on the wire.
            let b = self.bytes.clone();
            let chunks: Vec<Result<Bytes, String>> =
                (0..b.len()).step_by(16 * 1024).map(|i| Ok(b.slice(i..(i + 16 * 1024).min(b.len())))).collect();
            Ok(Connect::Stream(futures::stream::iter(chunks).boxed()))
        })
    }
}

impl ReplaySearch {
    /// A source with no pages (the search side of a stream replay).
    pub fn empty() -> Self {
        Self { files: Vec::new(), answers: Mutex::default() }
    }
}

impl ReplayStream {
    /// A session with nothing in it (the stream side of a search replay).
    pub fn empty() -> Self {
        Self { bytes: Bytes::new(), played: AtomicBool::new(true) }
    }
}

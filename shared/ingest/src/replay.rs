//! Replay: the same search and stream code paths fed from recorded X API responses instead of the
//! network — for the local demo, for backfills and for tests.
//!
//! Search pages are files holding one response page (`.json`) or one page per line (`.jsonl`); a file
//! named after a rule's tag (`rust.json`, `rust.jsonl`, or with more after a dot: `rust.older.json`)
//! answers only that rule, any other file answers every rule. Requests are served like the API would: tweets newest first, filtered by `since_id` /
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

/// One recorded page: where its text is in the file until a request needs its tweets, then those.
enum Page {
    Raw(std::ops::Range<usize>),
    Parsed(Arc<SearchPage>),
}

struct Recorded {
    /// Where the pages were read from, for error messages.
    path: String,
    /// `Some(tag)`: answers only that rule.
    tag: Option<String>,
    /// The file's text, read once (a copy per page would double the memory a large recording takes)
    /// and dropped once every page is parsed.
    text: Mutex<Option<String>>,
    /// Pages not parsed yet.
    raw_left: std::sync::atomic::AtomicUsize,
    /// The file's pages, parsed on first use: opening a large recording costs one scan for ids.
    pages: Vec<Mutex<Page>>,
    /// User id → (page, index in its `includes.users`) of the first user recorded with that id.
    user_index: HashMap<String, (usize, usize)>,
    /// Tweet id → (page, index in its `includes.tweets`) of the first referenced tweet recorded with it.
    included_index: HashMap<String, (usize, usize)>,
}

impl Recorded {
    /// Page `i`, parsed.
    fn page(&self, i: usize) -> Result<Arc<SearchPage>, Error> {
        let mut slot = self.pages[i].lock().expect("not poisoned");
        let parsed = match &*slot {
            Page::Parsed(p) => return Ok(Arc::clone(p)),
            Page::Raw(at) => {
                let text = self.text.lock().expect("not poisoned");
                let text = text.as_deref().expect("kept while a page is text");
                Arc::new(
                    serde_json::from_str::<SearchPage>(&text[at.clone()])
                        .map_err(|e| Error::Replay { path: self.path.clone(), message: format!("page {}: {e}", i + 1) })?,
                )
            }
        };
        *slot = Page::Parsed(Arc::clone(&parsed));
        if self.raw_left.fetch_sub(1, Ordering::SeqCst) == 1 {
            *self.text.lock().expect("not poisoned") = None;
        }
        Ok(parsed)
    }
}

/// What opening a recording reads of each page: the ids of its tweets, users and referenced tweets.
#[derive(serde::Deserialize)]
struct PageIds {
    #[serde(default)]
    data: Vec<Id>,
    #[serde(default)]
    includes: IncludedIds,
}

#[derive(Default, serde::Deserialize)]
struct IncludedIds {
    #[serde(default)]
    users: Vec<Id>,
    #[serde(default, alias = "posts")]
    tweets: Vec<Id>,
}

#[derive(serde::Deserialize)]
struct Id {
    id: String,
}

/// One tweet a rule can be answered with: its id, and where it is recorded (file, page, position).
type Entry = (u64, usize, usize, usize);

/// Recorded search pages.
pub struct ReplaySearch {
    files: Vec<Recorded>,
    /// Every recorded tweet: (id, file, page, position), in recording order (ids that are not numbers
    /// are left out).
    recorded: Vec<Entry>,
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

/// Whether a file with this stem answers only the rule `tag`: the stem is the tag, or the tag then a
/// dot (`brexit.day-before`), so one rule can have several files.
pub fn answers_only(stem: &str, tag: &str) -> bool {
    stem.strip_prefix(tag).is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

impl ReplaySearch {
    /// Opens every page under `path` (a file or a directory): reads them and their ids; a page's
    /// tweets are parsed when a request first needs them.
    pub fn open(path: &Path, tags: &[String]) -> Result<Self, Error> {
        let (mut files, mut recorded) = (Vec::new(), Vec::new());
        for f in files_of(path)? {
            let shown = f.display().to_string();
            let err = |message: String| Error::Replay { path: shown.clone(), message };
            let text = std::fs::read_to_string(&f).map_err(|e| err(e.to_string()))?;
            let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            let tag = tags.iter().find(|t| answers_only(stem, t)).cloned();
            let docs: Vec<&str> = if f.extension().and_then(|e| e.to_str()) == Some("jsonl") {
                text.lines().filter(|l| !l.trim().is_empty()).collect()
            } else {
                vec![text.as_str()]
            };
            // Each page as its byte range in `text` (the lines are slices of it).
            let range = |doc: &str| {
                let at = doc.as_ptr() as usize - text.as_ptr() as usize;
                at..at + doc.len()
            };
            let (fi, mut pages) = (files.len(), Vec::with_capacity(docs.len()));
            let (mut user_index, mut included_index) = (HashMap::new(), HashMap::new());
            for (pi, doc) in docs.into_iter().enumerate() {
                let ids: PageIds = serde_json::from_str(doc).map_err(|e| err(format!("page {}: {e}", pi + 1)))?;
                recorded.extend(
                    ids.data.iter().enumerate().filter_map(|(ti, t)| t.id.parse::<u64>().ok().map(|id| (id, fi, pi, ti))),
                );
                for (ui, u) in ids.includes.users.into_iter().enumerate() {
                    user_index.entry(u.id).or_insert((pi, ui));
                }
                for (ri, r) in ids.includes.tweets.into_iter().enumerate() {
                    included_index.entry(r.id).or_insert((pi, ri));
                }
                pages.push(Mutex::new(Page::Raw(range(doc))));
            }
            let raw_left = pages.len().into();
            let text = Mutex::new(Some(text));
            files.push(Recorded { path: shown, tag, text, raw_left, pages, user_index, included_index });
        }
        Ok(Self { files, recorded, answers: Mutex::default() })
    }

    /// Every tweet rule `tag` can get, newest first (stable: equal ids keep their recording order),
    /// each id once.
    fn answers(&self, tag: &str) -> Arc<Vec<Entry>> {
        let mut cache = self.answers.lock().expect("not poisoned");
        let built = cache.entry(tag.to_owned()).or_insert_with(|| {
            let mut all: Vec<Entry> =
                self.recorded.iter().filter(|e| self.files[e.1].tag.as_deref().is_none_or(|t| t == tag)).copied().collect();
            all.sort_by_key(|e| std::cmp::Reverse(e.0));
            all.dedup_by_key(|e| e.0);
            Arc::new(all)
        });
        Arc::clone(built)
    }

    /// The recorded tweet at `entry`, its author and the tweets it refers to, where the file records
    /// them.
    fn tweet(&self, &(_, fi, pi, ti): &Entry) -> Result<(Tweet, Option<User>, Vec<Tweet>), Error> {
        let file = &self.files[fi];
        let tweet = file.page(pi)?.data[ti].clone();
        let author = match tweet.author_id.as_ref().and_then(|a| file.user_index.get(a)) {
            Some(&(up, ui)) => Some(file.page(up)?.includes.users[ui].clone()),
            None => None,
        };
        let mut referenced = Vec::new();
        for &(rp, ri) in tweet.referenced_tweets.iter().filter_map(|r| file.included_index.get(&r.id)) {
            referenced.push(file.page(rp)?.includes.tweets[ri].clone());
        }
        Ok((tweet, author, referenced))
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
            let mut data = Vec::with_capacity(page.len());
            let mut includes = Includes::default();
            for e in page {
                let (tweet, author, referenced) = self.tweet(e)?;
                if let Some(u) = author.filter(|u| !includes.users.iter().any(|x| x.id == u.id)) {
                    includes.users.push(u);
                }
                for r in referenced {
                    if !includes.tweets.iter().any(|x| x.id == r.id) {
                        includes.tweets.push(r);
                    }
                }
                data.push(tweet);
            }
            let mut out = SearchPage { data, includes, ..Default::default() };
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
        Self { files: Vec::new(), recorded: Vec::new(), answers: Mutex::default() }
    }
}

impl ReplayStream {
    /// A session with nothing in it (the stream side of a search replay).
    pub fn empty() -> Self {
        Self { bytes: Bytes::new(), played: AtomicBool::new(true) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(next_token: Option<String>) -> SearchQuery {
        SearchQuery {
            tag: "t".into(),
            query: "#t".into(),
            since_id: None,
            until_id: None,
            start_time: None,
            end_time: None,
            next_token,
            max_results: 2,
        }
    }

    fn page(rows: &[(&str, &str, &str)], users: &[&str]) -> String {
        let data: Vec<String> =
            rows.iter().map(|(id, text, author)| format!(r#"{{"id":"{id}","text":{text},"author_id":"{author}"}}"#)).collect();
        let users: Vec<String> = users.iter().map(|u| format!(r#"{{"id":"{u}","username":"n{u}","name":"N"}}"#)).collect();
        format!(r#"{{"data":[{}],"includes":{{"users":[{}]}}}}"#, data.join(","), users.join(","))
    }

    #[tokio::test]
    async fn pages_are_served_newest_first_with_authors_from_any_page_and_parsed_when_needed() {
        let dir = tempfile::tempdir().unwrap();
        let lines = [
            page(&[("1", r#""old""#, "u1"), ("2", r#""older page, newer id""#, "u2")], &["u1"]),
            page(&[("3", r#""newest""#, "u1")], &["u2"]),
            // Valid JSON whose tweet does not fit the schema: found only when a request reaches it.
            page(&[("0", "5", "u1")], &[]),
        ];
        std::fs::write(dir.path().join("t.jsonl"), lines.join("\n")).unwrap();
        let r = ReplaySearch::open(dir.path(), &["t".into()]).expect("opening reads only the ids");
        let Answer::Ok(first, _) = r.search(&query(None)).await.unwrap() else { panic!("an answer") };
        let ids: Vec<&str> = first.data.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["3", "2"]);
        let users: Vec<&str> = first.includes.users.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(users, ["u1", "u2"], "each author once, from whichever page recorded it");
        assert!(matches!(&*r.files[0].pages[2].lock().unwrap(), Page::Raw(_)), "a page no request needed stays text");
        assert!(r.files[0].text.lock().unwrap().is_some());
        let Err(err) = r.search(&query(first.meta.next_token.clone())).await else { panic!("the bad page is reported") };
        assert!(err.to_string().contains("page 3"), "{err}");
    }

    #[tokio::test]
    async fn the_text_is_dropped_once_every_page_is_parsed() {
        let dir = tempfile::tempdir().unwrap();
        let lines = [page(&[("1", r#""a""#, "u1")], &["u1"]), page(&[("2", r#""b""#, "u1")], &[])];
        std::fs::write(dir.path().join("all.jsonl"), lines.join("\n")).unwrap();
        let r = ReplaySearch::open(dir.path(), &[]).unwrap();
        let Answer::Ok(all, _) = r.search(&query(None)).await.unwrap() else { panic!("an answer") };
        assert_eq!(all.data.len(), 2);
        assert!(r.files[0].text.lock().unwrap().is_none(), "nothing is left to parse from it");
    }

    #[tokio::test]
    async fn a_rule_can_have_several_files_and_other_rules_never_see_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.json"), page(&[("5", r#""t today""#, "u1")], &["u1"])).unwrap();
        std::fs::write(dir.path().join("t.day-before.json"), page(&[("4", r#""t earlier""#, "u2")], &["u2"])).unwrap();
        std::fs::write(dir.path().join("tx.json"), page(&[("9", r#""another rule""#, "u3")], &["u3"])).unwrap();
        let r = ReplaySearch::open(dir.path(), &["t".into(), "tx".into()]).unwrap();
        let Answer::Ok(t, _) = r.search(&query(None)).await.unwrap() else { panic!("an answer") };
        let ids: Vec<&str> = t.data.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["5", "4"], "both of rule t's files, and not tx.json");
        let users: Vec<&str> = t.includes.users.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(users, ["u1", "u2"], "each file's authors");
        assert!(answers_only("brexit.day-before", "brexit") && !answers_only("brexits", "brexit"));
    }
}

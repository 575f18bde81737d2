//! An in-process X API v2 test server: serves the real recorded responses in `tests/data/x-api/`,
//! checks every request against the OpenAPI spec's parameters, and injects what the real API does
//! on a bad day — 429s with reset headers, 503s, dropped connections, keep-alives, silent and
//! truncated stream connections, `errors` arrays.
//!
//! Search: each query answers from a pool of recorded tweets (newest first, filtered by
//! `since_id` / `until_id`, `max_results` per page, `next_token` = position), with the recorded
//! `includes.users` and, for the kpop page, its recorded `errors`.

use crate::repo_root;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One recorded page's content.
#[derive(Clone, Debug)]
pub struct Pool {
    /// Tweets, as recorded.
    pub tweets: Vec<Value>,
    /// `includes.users`, as recorded.
    pub users: Vec<Value>,
    /// `includes.tweets` (the retweeted, quoted and replied-to tweets), as recorded.
    pub referenced: Vec<Value>,
    /// `errors`, as recorded.
    pub errors: Vec<Value>,
}

impl Pool {
    /// Loads a recorded search page (path relative to the repository root).
    pub fn recorded(file: &str) -> Self {
        let v: Value = serde_json::from_slice(&std::fs::read(repo_root().join(file)).expect("fixture")).expect("json");
        Self {
            tweets: v["data"].as_array().cloned().unwrap_or_default(),
            users: v["includes"]["users"].as_array().cloned().unwrap_or_default(),
            referenced: v["includes"]["tweets"].as_array().cloned().unwrap_or_default(),
            errors: v["errors"].as_array().cloned().unwrap_or_default(),
        }
    }

    /// Every bundled page of `rule` (`events/x-api/<rule>.json` and `<rule>.<anything>.json`), as the
    /// replay of the bundled sample answers that rule.
    pub fn bundled(rule: &str) -> Self {
        let mut files: Vec<String> = std::fs::read_dir(repo_root().join("events/x-api"))
            .expect("the bundled sample")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.strip_suffix(".json").is_some_and(|stem| tweetlake_ingest::replay::answers_only(stem, rule)))
            .collect();
        files.sort();
        let mut pool = Self { tweets: vec![], users: vec![], referenced: vec![], errors: vec![] };
        for f in files {
            let p = Self::recorded(&format!("events/x-api/{f}"));
            pool.tweets.extend(p.tweets);
            pool.users.extend(p.users);
            pool.referenced.extend(p.referenced);
            pool.errors.extend(p.errors);
        }
        pool
    }

    /// Ids of the pool's tweets.
    pub fn ids(&self) -> Vec<String> {
        self.tweets.iter().map(|t| t["id"].as_str().unwrap().to_owned()).collect()
    }

    /// A pool of the tweets whose positions `keep` selects.
    pub fn subset(&self, keep: impl Fn(usize) -> bool) -> Self {
        Self {
            tweets: self.tweets.iter().enumerate().filter(|(i, _)| keep(*i)).map(|(_, t)| t.clone()).collect(),
            ..self.clone()
        }
    }
}

/// How many tweets the bundled sample (`events/x-api/`) holds for its two rules.
pub fn bundled_sample_len() -> usize {
    Pool::bundled("brexit").ids().len() + Pool::bundled("kpop").ids().len()
}

/// At least `total` tweets as search page bodies: the two recorded 100-tweet pages, re-serialised
/// with fresh, increasing ids.
pub fn generated_pages(total: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut n = 0u64;
    'outer: loop {
        for f in ["events/x-api/brexit.json", "events/x-api/kpop.json"] {
            let mut v: Value = serde_json::from_slice(&std::fs::read(repo_root().join(f)).expect("fixture")).expect("json");
            for t in v["data"].as_array_mut().expect("data") {
                n += 1;
                t["id"] = json!((1_700_000_000_000_000_000u64 + n).to_string());
            }
            out.push(serde_json::to_vec(&v).expect("serializes"));
            if n as usize >= total {
                break 'outer;
            }
        }
    }
    out
}

/// Writes [`generated_pages`]`(total)` into `dir` as a replay file (one page per line, answering every
/// rule) and returns its path.
pub fn write_generated_pages(dir: &std::path::Path, total: usize) -> std::path::PathBuf {
    let lines: Vec<u8> = generated_pages(total).into_iter().flat_map(|p| p.into_iter().chain([b'\n'])).collect();
    let path = dir.join("pages.jsonl");
    std::fs::write(&path, lines).expect("replay file written");
    path
}

/// A fault to answer the next request of an endpoint with, instead of data.
#[derive(Clone, Debug)]
pub enum Fault {
    /// HTTP 429 with `x-rate-limit-reset` (epoch seconds) and `remaining: 0`.
    RateLimited {
        /// When the limit resets, epoch seconds.
        reset: i64,
    },
    /// An HTTP error status with a problem body.
    Status(u16),
    /// The connection is dropped mid-response.
    Disconnect,
    /// No fault: answer this request normally (to place a later fault).
    Pass,
    /// Answer normally, after this pause (a slow page).
    Delay(Duration),
}

/// One scripted stream connection.
#[derive(Clone, Debug)]
pub enum StreamConn {
    /// Refuse with this HTTP status.
    Refuse(u16),
    /// Send these pieces, then close (or hang silently if `hang`).
    Send {
        /// What to send, in order.
        pieces: Vec<Piece>,
        /// Whether to hang silently after the last piece instead of closing.
        hang: bool,
    },
}

/// Part of a stream connection's body.
#[derive(Clone, Debug)]
pub enum Piece {
    /// Raw bytes, sent as they are (a message line, a keep-alive `\r\n`, a cut-off message).
    Bytes(Vec<u8>),
    /// A pause.
    Pause(Duration),
}

/// A request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Path.
    pub path: String,
    /// Query parameters.
    pub query: BTreeMap<String, String>,
    /// `Authorization` header.
    pub auth: Option<String>,
}

#[derive(Default)]
struct Inner {
    pools: HashMap<String, Pool>,
    search_faults: VecDeque<Fault>,
    rate_remaining: Option<(u32, i64)>,
    stream: VecDeque<StreamConn>,
    rules: Vec<Value>,
    next_rule_id: u64,
    seen: Vec<Seen>,
    violations: Vec<String>,
    rule_updates: Vec<Value>,
    url: String,
    removed: BTreeMap<String, String>,
    job_scripts: VecDeque<JobScript>,
    jobs: Vec<ComplianceJob>,
    upload_faults: usize,
}

/// How the next compliance job the server creates goes, once its ids are uploaded.
#[derive(Clone, Copy, Debug)]
pub enum JobScript {
    /// `in_progress` for this many status polls, then `complete`.
    Complete {
        /// Polls answered `in_progress` first.
        polls: usize,
    },
    /// `in_progress` for this many polls, then `failed`.
    Fail {
        /// Polls answered `in_progress` first.
        polls: usize,
    },
    /// `expired` at the first poll after the upload.
    Expire,
}

/// A compliance job as the server keeps it.
#[derive(Clone, Debug)]
pub struct ComplianceJob {
    /// Its id.
    pub id: String,
    /// `created`, `in_progress`, `complete`, `failed` or `expired`.
    pub status: &'static str,
    /// The ids uploaded, once they are.
    pub uploaded: Option<Vec<String>>,
    script: JobScript,
    polls: usize,
}

/// The running server.
#[derive(Clone)]
pub struct XApiServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    spec: Arc<Value>,
}

/// The bearer token the server accepts.
pub const TOKEN: &str = "test-bearer-token-do-not-log";

impl XApiServer {
    /// Starts on a free port, on the current tokio runtime.
    pub async fn start() -> Self {
        let spec: Value =
            serde_json::from_slice(&std::fs::read(repo_root().join("tests/data/x-api/openapi-subset.json")).expect("spec"))
                .expect("json");
        let me = Self {
            url: String::new(),
            inner: Arc::new(Mutex::new(Inner { next_rule_id: 1_500_000_000_000_000_000, ..Default::default() })),
            spec: Arc::new(spec),
        };
        let app = Router::new()
            .route("/2/tweets/search/recent", get(search))
            .route("/2/tweets/search/stream", get(stream))
            .route("/2/tweets/search/stream/rules", get(list_rules).post(update_rules))
            .route("/2/compliance/jobs", axum::routing::post(create_job))
            .route("/2/compliance/jobs/{id}", get(job_status))
            .route("/storage/upload/{id}", axum::routing::put(upload_ids))
            .route("/storage/download/{id}", get(download_results))
            .with_state(me.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        me.inner.lock().unwrap().url = url.clone();
        Self { url, ..me }
    }

    /// An ingest run against this server: `rules` (`tag: query` lines), the local broker's `topic`, and
    /// the watermark file `watermarks`.
    pub async fn ingest(&self, rules: &str, topic: &str, watermarks: &str) -> tweetlake_ingest::Ingest {
        let env: HashMap<&str, String> = HashMap::from([
            ("TWEETLAKE_RULES", rules.to_owned()),
            ("TWEETLAKE_X_API_URL", self.url.clone()),
            ("TWEETLAKE_X_BEARER_TOKEN", TOKEN.to_owned()),
            ("TWEETLAKE_KAFKA_BOOTSTRAP", crate::kafka::bootstrap()),
            ("TWEETLAKE_TOPIC", topic.to_owned()),
            ("TWEETLAKE_WATERMARK_URI", watermarks.to_owned()),
        ]);
        let cfg = tweetlake_ingest::IngestConfig::from_lookup(|k| env.get(k).cloned()).expect("valid ingest settings");
        tweetlake_ingest::Ingest::from_config(cfg).await.expect("ingest starts")
    }

    /// Makes X report these posts (id, reason: `deleted`, `protected`, `suspended`, `deactivated`) in
    /// every compliance job that checks them.
    pub fn remove_posts(&self, posts: &[(&str, &str)]) {
        self.inner.lock().unwrap().removed.extend(posts.iter().map(|(i, r)| (i.to_string(), r.to_string())));
    }

    /// Scripts the next compliance jobs (unscripted ones complete at the first poll after the upload).
    pub fn script_jobs(&self, scripts: impl IntoIterator<Item = JobScript>) {
        self.inner.lock().unwrap().job_scripts.extend(scripts);
    }

    /// Answers the next `n` id uploads with HTTP 503, as storage on a bad day.
    pub fn fail_next_uploads(&self, n: usize) {
        self.inner.lock().unwrap().upload_faults = n;
    }

    /// Every compliance job created so far, in order.
    pub fn compliance_jobs(&self) -> Vec<ComplianceJob> {
        self.inner.lock().unwrap().jobs.clone()
    }

    /// Answers `query` from `pool`.
    pub fn set_pool(&self, query: &str, pool: Pool) {
        self.inner.lock().unwrap().pools.insert(query.to_owned(), pool);
    }

    /// Queues faults for the next search requests.
    pub fn fail_next_searches(&self, faults: impl IntoIterator<Item = Fault>) {
        self.inner.lock().unwrap().search_faults.extend(faults);
    }

    /// After `n` more successful searches, report `remaining: 0` with this reset.
    pub fn rate_window(&self, n: u32, reset: i64) {
        self.inner.lock().unwrap().rate_remaining = Some((n, reset));
    }

    /// Scripts the next stream connections.
    pub fn script_stream(&self, conns: impl IntoIterator<Item = StreamConn>) {
        self.inner.lock().unwrap().stream.extend(conns);
    }

    /// Presets the stream rules (as if set by an earlier run).
    pub fn set_rules(&self, rules: &[(&str, &str)]) {
        let mut g = self.inner.lock().unwrap();
        for (value, tag) in rules {
            let id = g.next_rule_id;
            g.next_rule_id += 1;
            g.rules.push(json!({"id": id.to_string(), "value": value, "tag": tag}));
        }
    }

    /// The stream rules now set: (value, tag).
    pub fn rules(&self) -> Vec<(String, String)> {
        self.inner
            .lock()
            .unwrap()
            .rules
            .iter()
            .map(|r| (r["value"].as_str().unwrap().into(), r["tag"].as_str().unwrap_or_default().into()))
            .collect()
    }

    /// Every rules update body received.
    pub fn rule_updates(&self) -> Vec<Value> {
        self.inner.lock().unwrap().rule_updates.clone()
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.inner.lock().unwrap().seen.clone()
    }

    /// Spec violations found in requests; a correct client makes none.
    pub fn violations(&self) -> Vec<String> {
        self.inner.lock().unwrap().violations.clone()
    }

    // The error is the answer the handler returns as it is; boxing it would only add an unbox there.
    #[allow(clippy::result_large_err)]
    fn record(&self, path: &str, method: &str, q: &BTreeMap<String, String>, h: &HeaderMap) -> Result<(), Response> {
        let auth = h.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let mut problems = check_params(&self.spec, path, method, q);
        if auth.as_deref() != Some(&format!("Bearer {TOKEN}")) {
            problems.push("missing or wrong bearer token".into());
        }
        let mut g = self.inner.lock().unwrap();
        g.seen.push(Seen { path: path.into(), query: q.clone(), auth });
        if problems.is_empty() {
            return Ok(());
        }
        g.violations.extend(problems.iter().map(|p| format!("{method} {path}: {p}")));
        let status =
            if problems.iter().any(|p| p.contains("bearer")) { StatusCode::UNAUTHORIZED } else { StatusCode::BAD_REQUEST };
        Err((status, Json(json!({"title": "Invalid Request", "detail": problems.join("; "), "type": "https://api.x.com/2/problems/invalid-request"}))).into_response())
    }
}

/// Checks query parameters against the spec: known names, required ones present, and each value's
/// schema (integer ranges, patterns, enums of comma-separated arrays, lengths).
pub fn check_params(spec: &Value, path: &str, method: &str, q: &BTreeMap<String, String>) -> Vec<String> {
    let params = spec["paths"][path][method]["parameters"].as_array().cloned().unwrap_or_default();
    let mut out = Vec::new();
    for (k, v) in q {
        let Some(p) = params.iter().find(|p| p["name"] == k.as_str() && p["in"] == "query") else {
            out.push(format!("unknown parameter {k:?}"));
            continue;
        };
        let s = &p["schema"];
        let values: Vec<&str> = if s["type"] == "array" { v.split(',').collect() } else { vec![v.as_str()] };
        let item = if s["type"] == "array" { &s["items"] } else { s };
        if s["type"] == "array" && s["minItems"].as_u64().is_some_and(|m| (values.len() as u64) < m) {
            out.push(format!("{k}: too few items"));
        }
        for val in values {
            match item["type"].as_str() {
                Some("integer") => match val.parse::<i64>() {
                    Ok(n) => {
                        if item["minimum"].as_i64().is_some_and(|m| n < m) || item["maximum"].as_i64().is_some_and(|m| n > m) {
                            out.push(format!("{k}={n} out of range"));
                        }
                    }
                    Err(_) => out.push(format!("{k}={val:?} is not an integer")),
                },
                Some("boolean") if val != "true" && val != "false" => out.push(format!("{k}={val:?} is not a boolean")),
                _ => {}
            }
            if let Some(e) = item["enum"].as_array()
                && !e.iter().any(|x| x == val)
            {
                out.push(format!("{k}: {val:?} is not one of the allowed values"));
            }
            if let Some(pat) = item["pattern"].as_str() {
                // The spec's patterns here are all `^[0-9]{1,19}$`.
                if pat == "^[0-9]{1,19}$" && !((1..=19).contains(&val.len()) && val.bytes().all(|b| b.is_ascii_digit())) {
                    out.push(format!("{k}={val:?} does not match {pat}"));
                }
            }
            let n = val.chars().count() as u64;
            if item["minLength"].as_u64().is_some_and(|m| n < m) || item["maxLength"].as_u64().is_some_and(|m| n > m) {
                out.push(format!("{k}: length {n} outside the allowed range"));
            }
        }
    }
    for p in &params {
        if p["required"] == true && p["in"] == "query" && !q.contains_key(p["name"].as_str().unwrap_or_default()) {
            out.push(format!("required parameter {} missing", p["name"]));
        }
    }
    out
}

/// Checks a value against a (resolved) schema of the spec: types, enums, required properties, and,
/// where `closed`, no property the schema does not name. Returns the problems, with their paths.
pub fn check_value(schema: &Value, v: &Value, path: &str, closed: bool) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(options) = schema["oneOf"].as_array() {
        if options.iter().all(|o| !check_value(o, v, path, closed).is_empty()) {
            out.push(format!("{path}: matches none of the allowed shapes"));
        }
        return out;
    }
    let ok = match schema["type"].as_str() {
        Some("string") => v.is_string(),
        Some("integer") => v.is_i64() || v.is_u64(),
        Some("number") => v.is_number(),
        Some("boolean") => v.is_boolean(),
        Some("array") => v.is_array(),
        Some("object") => v.is_object(),
        _ => true,
    };
    if !(ok || (v.is_null() && schema["nullable"] == true)) {
        out.push(format!("{path}: {v} is not of type {}", schema["type"]));
        return out;
    }
    if let Some(e) = schema["enum"].as_array()
        && !e.contains(v)
    {
        out.push(format!("{path}: {v} is not one of {e:?}"));
    }
    if let Some(items) = v.as_array() {
        for (i, item) in items.iter().enumerate() {
            out.extend(check_value(&schema["items"], item, &format!("{path}[{i}]"), closed));
        }
    }
    if let Some(fields) = v.as_object() {
        for r in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            if !fields.contains_key(r) {
                out.push(format!("{path}.{r}: required"));
            }
        }
        for (k, fv) in fields {
            match schema["properties"].get(k) {
                Some(ps) => out.extend(check_value(ps, fv, &format!("{path}.{k}"), closed)),
                None if closed && schema["properties"].is_object() => out.push(format!("{path}.{k}: not in the schema")),
                None => {}
            }
        }
    }
    out
}

/// Checks a tweet object against the spec's `Post` schema (`tests/data/x-api/openapi-subset.json`):
/// what a fixture built from the spec must pass.
pub fn check_post(tweet: &Value) -> Vec<String> {
    static SPEC: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| {
        serde_json::from_slice(&std::fs::read(repo_root().join("tests/data/x-api/openapi-subset.json")).expect("spec"))
            .expect("json")
    });
    check_value(&SPEC["schemas"]["Post"], tweet, "post", true)
}

fn rate_headers(remaining: u32, reset: i64) -> [(&'static str, HeaderValue); 2] {
    [("x-rate-limit-remaining", remaining.into()), ("x-rate-limit-reset", reset.into())]
}

fn fault_response(f: Fault) -> Response {
    match f {
        Fault::RateLimited { reset } => {
            let body = std::fs::read(repo_root().join("tests/data/x-api/rate_limit_error.json")).expect("fixture");
            (StatusCode::TOO_MANY_REQUESTS, rate_headers(0, reset), body).into_response()
        }
        Fault::Status(s) => (
            StatusCode::from_u16(s).expect("status"),
            Json(json!({"title": "Service Unavailable", "detail": "injected", "type": "about:blank"})),
        )
            .into_response(),
        Fault::Disconnect => {
            // A body that fails after a few bytes: hyper drops the connection mid-response.
            let s = futures::stream::iter(vec![
                Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"{\"data\":[")),
                Err(std::io::Error::other("dropped")),
            ]);
            Response::new(Body::from_stream(s))
        }
        Fault::Pass | Fault::Delay(_) => unreachable!("answered normally"),
    }
}

async fn search(State(srv): State<XApiServer>, Query(q): Query<BTreeMap<String, String>>, h: HeaderMap) -> Response {
    if let Err(r) = srv.record("/2/tweets/search/recent", "get", &q, &h) {
        return r;
    }
    let fault = srv.inner.lock().unwrap().search_faults.pop_front();
    match fault {
        None | Some(Fault::Pass) => {}
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(f) => return fault_response(f),
    }
    let mut g = srv.inner.lock().unwrap();
    let pool = g.pools.get(q.get("query").map(String::as_str).unwrap_or_default()).cloned().unwrap_or(Pool {
        tweets: vec![],
        users: vec![],
        referenced: vec![],
        errors: vec![],
    });
    let rate = match g.rate_remaining.as_mut() {
        Some((n, reset)) => {
            *n = n.saturating_sub(1);
            Some((*n, *reset))
        }
        None => None,
    };
    drop(g);
    let id = |t: &Value| t["id"].as_str().unwrap().parse::<u64>().unwrap();
    let since = q.get("since_id").and_then(|s| s.parse::<u64>().ok());
    let until = q.get("until_id").and_then(|s| s.parse::<u64>().ok());
    // start_time is inclusive and end_time exclusive, as the API documents them.
    let time = |k: &str| q.get(k).map(|v| chrono::DateTime::parse_from_rfc3339(v).expect("an RFC 3339 time"));
    let (from, to) = (time("start_time"), time("end_time"));
    let created = |t: &Value| chrono::DateTime::parse_from_rfc3339(t["created_at"].as_str().expect("created_at")).unwrap();
    let mut tweets: Vec<&Value> = pool
        .tweets
        .iter()
        .filter(|t| since.is_none_or(|s| id(t) > s) && until.is_none_or(|u| id(t) < u))
        .filter(|t| from.is_none_or(|f| created(t) >= f) && to.is_none_or(|e| created(t) < e))
        .collect();
    tweets.sort_by_key(|t| std::cmp::Reverse(id(t)));
    let max: usize = q.get("max_results").and_then(|m| m.parse().ok()).unwrap_or(10);
    let start: usize = q.get("next_token").and_then(|t| t.strip_prefix("tok").and_then(|n| n.parse().ok())).unwrap_or(0);
    let end = (start + max).min(tweets.len());
    let page = &tweets[start.min(end)..end];
    let authors: Vec<&str> = page.iter().filter_map(|t| t["author_id"].as_str()).collect();
    let users: Vec<&Value> = pool.users.iter().filter(|u| authors.contains(&u["id"].as_str().unwrap_or_default())).collect();
    let refs: Vec<&str> = page
        .iter()
        .flat_map(|t| ["referenced_tweets", "referenced_posts"].into_iter().filter_map(|k| t[k].as_array()).flatten())
        .filter_map(|r| r["id"].as_str())
        .collect();
    let referenced: Vec<&Value> =
        pool.referenced.iter().filter(|t| refs.contains(&t["id"].as_str().unwrap_or_default())).collect();
    let mut meta = json!({"result_count": page.len()});
    if let (Some(f), Some(l)) = (page.first(), page.last()) {
        meta["newest_id"] = f["id"].clone();
        meta["oldest_id"] = l["id"].clone();
    }
    if end < tweets.len() {
        meta["next_token"] = json!(format!("tok{end:013}"));
    }
    let mut body = json!({"meta": meta});
    if !page.is_empty() {
        body["data"] = json!(page);
        body["includes"] = json!({"users": users});
        if !referenced.is_empty() {
            // The wire name the recorded responses use; the spec's newer terms call it `posts`.
            body["includes"]["tweets"] = json!(referenced);
        }
    }
    if !pool.errors.is_empty() && start == 0 {
        body["errors"] = json!(pool.errors);
    }
    let mut resp = Json(body).into_response();
    if let Some((n, reset)) = rate {
        for (k, v) in rate_headers(n, reset) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

async fn stream(State(srv): State<XApiServer>, Query(q): Query<BTreeMap<String, String>>, h: HeaderMap) -> Response {
    if let Err(r) = srv.record("/2/tweets/search/stream", "get", &q, &h) {
        return r;
    }
    let conn = srv.inner.lock().unwrap().stream.pop_front();
    match conn {
        None => (StatusCode::SERVICE_UNAVAILABLE, "no scripted connection").into_response(),
        Some(StreamConn::Refuse(429)) => {
            let body = r#"{"title":"ConnectionException","detail":"This stream is currently at the maximum allowed connection limit.","connection_issue":"TooManyConnections","type":"https://api.x.com/2/problems/streaming-connection"}"#;
            (StatusCode::TOO_MANY_REQUESTS, body).into_response()
        }
        Some(StreamConn::Refuse(s)) => {
            (StatusCode::from_u16(s).unwrap(), Json(json!({"title": "Service Unavailable", "type": "about:blank"})))
                .into_response()
        }
        Some(StreamConn::Send { pieces, hang }) => {
            let s = futures::stream::unfold((pieces.into_iter(), hang), |(mut it, hang)| async move {
                loop {
                    match it.next() {
                        Some(Piece::Bytes(b)) => return Some((Ok::<_, std::io::Error>(bytes::Bytes::from(b)), (it, hang))),
                        Some(Piece::Pause(d)) => tokio::time::sleep(d).await,
                        None if hang => std::future::pending::<()>().await,
                        None => return None,
                    }
                }
            });
            Response::new(Body::from_stream(s))
        }
    }
}

async fn list_rules(State(srv): State<XApiServer>, Query(q): Query<BTreeMap<String, String>>, h: HeaderMap) -> Response {
    if let Err(r) = srv.record("/2/tweets/search/stream/rules", "get", &q, &h) {
        return r;
    }
    let rules = srv.inner.lock().unwrap().rules.clone();
    Json(json!({"data": rules, "meta": {"sent": "2026-11-27T12:00:00.000Z", "result_count": rules.len()}})).into_response()
}

async fn update_rules(
    State(srv): State<XApiServer>,
    Query(q): Query<BTreeMap<String, String>>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Err(r) = srv.record("/2/tweets/search/stream/rules", "post", &q, &h) {
        return r;
    }
    // UpdateRulesRequest: only `add` (items with `value`, optional `tag`) and `delete` (`ids`/`values`).
    let obj = body.as_object().cloned().unwrap_or_default();
    let add_ok = |a: &Value| {
        a.as_array().is_some_and(|items| {
            items
                .iter()
                .all(|r| r["value"].is_string() && r.as_object().is_some_and(|o| o.keys().all(|k| k == "value" || k == "tag")))
        })
    };
    let delete_ok = |d: &Value| d.as_object().is_some_and(|d| d.keys().all(|k| k == "ids" || k == "values"));
    let bad = obj.keys().any(|k| k != "add" && k != "delete")
        || obj.get("add").is_some_and(|a| !add_ok(a))
        || obj.get("delete").is_some_and(|d| !delete_ok(d));
    let mut g = srv.inner.lock().unwrap();
    g.rule_updates.push(body.clone());
    if bad {
        g.violations.push(format!("POST rules: body does not match UpdateRulesRequest: {body}"));
        return (StatusCode::BAD_REQUEST, Json(json!({"title": "Invalid Request"}))).into_response();
    }
    let mut created = 0;
    for r in obj.get("add").and_then(Value::as_array).cloned().unwrap_or_default() {
        let id = g.next_rule_id;
        g.next_rule_id += 1;
        g.rules.push(json!({"id": id.to_string(), "value": r["value"], "tag": r["tag"]}));
        created += 1;
    }
    let ids: Vec<String> = obj
        .get("delete")
        .and_then(|d| d["ids"].as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let before = g.rules.len();
    g.rules.retain(|r| !ids.iter().any(|i| r["id"] == i.as_str()));
    let deleted = before - g.rules.len();
    Json(json!({"meta": {"sent": "2026-11-27T12:00:00.000Z", "summary": {"created": created, "not_created": 0, "deleted": deleted, "not_deleted": ids.len() - deleted, "valid": created, "invalid": 0}}})).into_response()
}

fn job_json(url: &str, j: &ComplianceJob) -> Value {
    json!({
        "id": j.id, "type": "tweets", "name": "tweetlake", "status": j.status, "resumable": false,
        "upload_url": format!("{url}/storage/upload/{}", j.id),
        "download_url": format!("{url}/storage/download/{}", j.id),
        "created_at": "2026-11-27T12:00:00.000Z",
        "upload_expires_at": "2026-11-27T12:15:00.000Z",
        "download_expires_at": "2026-12-04T12:00:00.000Z",
    })
}

async fn create_job(
    State(srv): State<XApiServer>,
    Query(q): Query<BTreeMap<String, String>>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Err(r) = srv.record("/2/compliance/jobs", "post", &q, &h) {
        return r;
    }
    let problems = check_value(&srv.spec["schemas"]["CreateComplianceJobsRequest"], &body, "body", true);
    let mut g = srv.inner.lock().unwrap();
    if !problems.is_empty() || body["type"] != "tweets" {
        g.violations.push(format!("POST compliance jobs: {problems:?} in {body}"));
        return (StatusCode::BAD_REQUEST, Json(json!({"title": "Invalid Request"}))).into_response();
    }
    // X runs one job per type at a time: a client must resume the one it has, not start another.
    if g.jobs.iter().any(|j| matches!(j.status, "created" | "in_progress")) {
        g.violations.push("POST compliance jobs: a job of this type is still running".into());
        return (StatusCode::BAD_REQUEST, Json(json!({"title": "Invalid Request", "detail": "concurrent job"}))).into_response();
    }
    let script = g.job_scripts.pop_front().unwrap_or(JobScript::Complete { polls: 1 });
    let job = ComplianceJob {
        id: (1_600_000_000_000_000_000u64 + g.jobs.len() as u64).to_string(),
        status: "created",
        uploaded: None,
        script,
        polls: 0,
    };
    let answer = job_json(&g.url, &job);
    g.jobs.push(job);
    Json(json!({"data": answer})).into_response()
}

async fn job_status(
    State(srv): State<XApiServer>,
    axum::extract::Path(id): axum::extract::Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    h: HeaderMap,
) -> Response {
    if let Err(r) = srv.record("/2/compliance/jobs/{id}", "get", &q, &h) {
        return r;
    }
    let mut g = srv.inner.lock().unwrap();
    // The path's `id`: `^[0-9]{1,19}$` in the spec.
    if !((1..=19).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit())) {
        g.violations.push(format!("GET compliance job: id {id:?} does not match the spec's pattern"));
    }
    let url = g.url.clone();
    let Some(j) = g.jobs.iter_mut().find(|j| j.id == id) else {
        return (StatusCode::NOT_FOUND, Json(json!({"title": "Not Found Error"}))).into_response();
    };
    if j.status == "in_progress" {
        j.polls += 1;
        j.status = match j.script {
            JobScript::Complete { polls } if j.polls > polls => "complete",
            JobScript::Fail { polls } if j.polls > polls => "failed",
            JobScript::Expire => "expired",
            _ => "in_progress",
        };
    }
    Json(json!({"data": job_json(&url, j)})).into_response()
}

/// The pre-signed storage URLs take no bearer token: a client that sends one leaks it to storage.
fn storage_request(g: &mut Inner, what: &str, h: &HeaderMap) {
    if h.contains_key("authorization") {
        g.violations.push(format!("{what}: the bearer token was sent to a pre-signed storage URL"));
    }
}

async fn upload_ids(
    State(srv): State<XApiServer>,
    axum::extract::Path(id): axum::extract::Path<String>,
    h: HeaderMap,
    body: String,
) -> Response {
    let mut g = srv.inner.lock().unwrap();
    storage_request(&mut g, "upload", &h);
    if h.get("content-type").and_then(|v| v.to_str().ok()) != Some("text/plain") {
        g.violations.push("upload: the ids file is not text/plain".into());
    }
    if g.upload_faults > 0 {
        g.upload_faults -= 1;
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let Some(j) = g.jobs.iter_mut().find(|j| j.id == id) else { return StatusCode::NOT_FOUND.into_response() };
    if j.status != "created" {
        return StatusCode::FORBIDDEN.into_response();
    }
    j.uploaded = Some(body.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect());
    j.status = "in_progress";
    StatusCode::OK.into_response()
}

async fn download_results(
    State(srv): State<XApiServer>,
    axum::extract::Path(id): axum::extract::Path<String>,
    h: HeaderMap,
) -> Response {
    let mut g = srv.inner.lock().unwrap();
    storage_request(&mut g, "download", &h);
    let removed = g.removed.clone();
    let Some(j) = g.jobs.iter().find(|j| j.id == id) else { return StatusCode::NOT_FOUND.into_response() };
    if j.status != "complete" {
        return StatusCode::FORBIDDEN.into_response();
    }
    let lines: String = j
        .uploaded
        .iter()
        .flatten()
        .filter_map(|i| removed.get(i).map(|reason| (i, reason)))
        .map(|(i, reason)| {
            format!(
                "{}\n",
                json!({"id": i, "action": "delete", "created_at": "2026-11-27T11:00:00.000Z", "redacted_at": "2026-11-27T11:30:00.000Z", "reason": reason})
            )
        })
        .collect();
    lines.into_response()
}

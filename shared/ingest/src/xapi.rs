//! The X API v2 client: recent search, filtered-stream rules and the stream connection, with the
//! response types Tweetlake reads. Tweets and users deserialize straight into the message contract's
//! types ([`tweetlake_contract::envelope`]), so what the API sends is what goes on the topic.

use crate::error::Error;
use chrono::{DateTime, TimeZone, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tweetlake_contract::envelope::{Tweet, User};

/// Tweet fields requested from the filtered stream: those the message contract keeps. The full text
/// of long posts, references (retweet, quote, reply) and the edit chain come with them.
pub const STREAM_TWEET_FIELDS: &str = "conversation_id,created_at,edit_controls,edit_history_tweet_ids,entities,id,lang,\
note_tweet,possibly_sensitive,public_metrics,referenced_tweets,reply_settings,source,text";
/// Expansions requested from the filtered stream: the author (and with it `author_id`), so rows can
/// carry the handle, and the referenced tweets, so a retweet carries its original's whole text.
pub const STREAM_EXPANSIONS: &str = "author_id,referenced_tweets.id";
/// Post fields requested from recent search. The spec names this endpoint's fields in its newer
/// "post" terms and lists neither `author_id`, `referenced_tweets` nor the edit history as fields:
/// the expansions below add them (the responses keep the wire names the stream uses; the envelope
/// reads both).
pub const SEARCH_POST_FIELDS: &str = "conversation_id,created_at,edit_controls,entities,id,lang,note_post,possibly_sensitive,public_metrics,reply_settings,source,text";
/// Expansions requested from recent search, as [`STREAM_EXPANSIONS`] in the endpoint's terms.
pub const SEARCH_EXPANSIONS: &str = "author_id,edit_history_post_ids,referenced_posts";
/// User fields requested for the expanded author.
pub const USER_FIELDS: &str = "id,name,username";

/// The bearer token. Its `Debug` form is redacted and it is only ever written into the
/// `Authorization` header, so logs and error messages cannot leak it.
#[derive(Clone)]
pub struct BearerToken(String);

impl BearerToken {
    /// Wraps a token, rejecting an empty one.
    pub fn new(token: impl Into<String>, var: &'static str) -> Result<Self, Error> {
        let t = token.into().trim().to_owned();
        if t.is_empty() {
            return Err(Error::Config { var, message: "the bearer token is empty".into() });
        }
        Ok(Self(t))
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// `includes` of a response: the expanded authors and referenced tweets.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Includes {
    /// Users referenced by the page's tweets.
    #[serde(default)]
    pub users: Vec<User>,
    /// Tweets the page's tweets retweet, quote or reply to (`posts` in the spec's newer terms).
    #[serde(default, alias = "posts", skip_serializing_if = "Vec::is_empty")]
    pub tweets: Vec<Tweet>,
}

/// `meta` of a search page.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchMeta {
    /// Highest tweet id on the page.
    #[serde(default)]
    pub newest_id: Option<String>,
    /// Lowest tweet id on the page.
    #[serde(default)]
    pub oldest_id: Option<String>,
    /// Tweets on the page.
    #[serde(default)]
    pub result_count: u32,
    /// Token for the next (older) page; absent on the last page.
    #[serde(default)]
    pub next_token: Option<String>,
}

/// A partial error the API reports beside data (a suspended author, a deleted quoted tweet…) or
/// in-stream before a disconnect. Kept loosely typed: X's problem types vary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// Short name, e.g. `Forbidden`, `operational-disconnect`.
    #[serde(default)]
    pub title: Option<String>,
    /// Human-readable explanation.
    #[serde(default)]
    pub detail: Option<String>,
    /// Problem type URI.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// v1.1-style message (`{"errors":[{"code":88,"message":…}]}`).
    #[serde(default)]
    pub message: Option<String>,
}

impl Problem {
    /// The most telling text the problem has.
    pub fn text(&self) -> String {
        [&self.title, &self.detail, &self.message].iter().filter_map(|s| s.as_deref()).collect::<Vec<_>>().join(": ")
    }
}

/// One page of `GET /2/tweets/search/recent`, newest tweets first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchPage {
    /// Matching tweets.
    #[serde(default)]
    pub data: Vec<Tweet>,
    /// Expanded objects.
    #[serde(default)]
    pub includes: Includes,
    /// Paging and id range.
    #[serde(default)]
    pub meta: SearchMeta,
    /// Partial errors.
    #[serde(default)]
    pub errors: Vec<Problem>,
}

/// One recent-search request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchQuery {
    /// The rule's tag: never sent to the API; replay uses it to pick the rule's recorded pages.
    pub tag: String,
    /// The rule's query expression.
    pub query: String,
    /// Only tweets newer than this id.
    pub since_id: Option<u64>,
    /// Only tweets older than this id.
    pub until_id: Option<u64>,
    /// Only tweets created at or after this instant (within the last 7 days).
    pub start_time: Option<DateTime<Utc>>,
    /// Only tweets created before this instant (at least 10 s ago).
    pub end_time: Option<DateTime<Utc>>,
    /// Page token from the previous page's `meta.next_token`.
    pub next_token: Option<String>,
    /// Page size, 10-100.
    pub max_results: u32,
}

/// What `x-rate-limit-*` headers said.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests left in the window.
    pub remaining: Option<u32>,
    /// When the window resets.
    pub reset: Option<DateTime<Utc>>,
}

impl RateLimit {
    fn from_headers(h: &reqwest::header::HeaderMap) -> Self {
        let num = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<i64>().ok());
        Self {
            remaining: num("x-rate-limit-remaining").map(|v| v.max(0) as u32),
            reset: num("x-rate-limit-reset").and_then(|s| Utc.timestamp_opt(s, 0).single()),
        }
    }
}

/// The answer to one request that the run can act on; errors that end the run are `Err`.
#[derive(Debug)]
pub enum Answer<T> {
    /// A successful response.
    Ok(T, RateLimit),
    /// HTTP 429.
    RateLimited(RateLimit),
    /// HTTP 5xx: try again later.
    Unavailable {
        /// The HTTP status.
        status: u16,
        /// The answer's problem detail.
        detail: String,
    },
}

impl<T> Answer<T> {
    /// The value, or the 429/5xx as an error: for calls that have no back-off of their own.
    pub(crate) fn ok_or_api(self, endpoint: &'static str) -> Result<T, Error> {
        match self {
            Answer::Ok(v, _) => Ok(v),
            Answer::RateLimited(_) => Err(Error::Api { endpoint, status: 429, detail: "rate limited".into() }),
            Answer::Unavailable { status, detail } => Err(Error::Api { endpoint, status, detail }),
        }
    }
}

/// Where recent-search pages come from: the X API, or recorded responses ([`crate::replay`]).
pub trait SearchSource: Send + Sync {
    /// Fetches one page.
    fn search<'a>(&'a self, q: &'a SearchQuery) -> BoxFuture<'a, Result<Answer<SearchPage>, Error>>;
}

/// A filtered-stream rule as the API lists it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ApiRule {
    /// Rule id.
    pub id: String,
    /// Query expression.
    pub value: String,
    /// Tag, if any.
    #[serde(default)]
    pub tag: Option<String>,
}

/// The X API over HTTP.
#[derive(Clone, Debug)]
pub struct XClient {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) token: BearerToken,
    // Bounds each REST call; the stream connection has none (it is read until the session ends).
    pub(crate) timeout: std::time::Duration,
}

const SEARCH: &str = "/2/tweets/search/recent";
const STREAM: &str = "/2/tweets/search/stream";
const RULES: &str = "/2/tweets/search/stream/rules";

pub(crate) fn transport(endpoint: &'static str, e: reqwest::Error) -> Error {
    // reqwest's message names the URL (no credentials in it) and the cause; never the headers.
    Error::Transport { endpoint, message: e.without_url().to_string() }
}

/// Reads an error body into one short line: a problem object, an `errors` array or raw text.
fn error_detail(body: &str) -> String {
    #[derive(Deserialize)]
    struct Body {
        #[serde(flatten)]
        top: Problem,
        #[serde(default)]
        errors: Vec<Problem>,
    }
    let text = match serde_json::from_str::<Body>(body) {
        Ok(b) => {
            let mut parts: Vec<String> = vec![b.top.text()];
            parts.extend(b.errors.iter().map(Problem::text));
            parts.retain(|p| !p.is_empty());
            parts.join("; ")
        }
        Err(_) => body.trim().to_owned(),
    };
    text.chars().take(300).collect()
}

impl XClient {
    /// A client for `base` (e.g. `https://api.x.com`) with a per-request `timeout` for the REST calls.
    pub fn new(base: &str, token: BearerToken, timeout: std::time::Duration) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .user_agent(concat!("tweetlake/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| transport("client", e))?;
        Ok(Self { http, base: base.trim_end_matches('/').to_owned(), token, timeout })
    }

    pub(crate) fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.base)).bearer_auth(&self.token.0)
    }

    pub(crate) fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.base)).bearer_auth(&self.token.0)
    }

    pub(crate) fn rest(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        req.timeout(self.timeout)
    }

    pub(crate) async fn answer<T: serde::de::DeserializeOwned>(
        endpoint: &'static str,
        resp: reqwest::Response,
    ) -> Result<Answer<T>, Error> {
        let rate = RateLimit::from_headers(resp.headers());
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(|e| transport(endpoint, e))?;
        match status {
            200..=299 => serde_json::from_str(&body)
                .map(|v| Answer::Ok(v, rate))
                .map_err(|e| Error::Transport { endpoint, message: format!("unreadable response: {e}") }),
            429 => Ok(Answer::RateLimited(rate)),
            500..=599 => Ok(Answer::Unavailable { status, detail: error_detail(&body) }),
            _ => Err(Error::Api { endpoint, status, detail: error_detail(&body) }),
        }
    }

    /// Lists the filtered-stream rules currently set, following pagination.
    pub async fn stream_rules(&self) -> Result<Vec<ApiRule>, Error> {
        #[derive(Deserialize)]
        struct Meta {
            #[serde(default)]
            next_token: Option<String>,
        }
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            data: Vec<ApiRule>,
            meta: Option<Meta>,
        }
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut req = self.rest(self.get(RULES)).query(&[("max_results", "1000")]);
            if let Some(t) = &token {
                req = req.query(&[("pagination_token", t.as_str())]);
            }
            let resp = req.send().await.map_err(|e| transport("stream rules", e))?;
            let page: Page = Self::answer("stream rules", resp).await?.ok_or_api("stream rules")?;
            out.extend(page.data);
            token = page.meta.and_then(|m| m.next_token);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    /// Adds or deletes filtered-stream rules (`body` is an `UpdateRulesRequest`); a rule X refuses
    /// becomes [`Error::Rule`] naming it.
    pub async fn update_stream_rules(&self, body: &serde_json::Value) -> Result<(), Error> {
        #[derive(Deserialize)]
        struct Resp {
            #[serde(default)]
            errors: Vec<serde_json::Value>,
        }
        let resp = self.rest(self.post(RULES)).json(body).send().await.map_err(|e| transport("stream rules", e))?;
        let r = Self::answer::<Resp>("stream rules", resp).await?.ok_or_api("stream rules")?;
        match r.errors.first() {
            None => Ok(()),
            Some(e) => {
                let tag = e.get("value").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
                Err(Error::Rule {
                    tag,
                    message: format!(
                        "rejected by X: {}",
                        e.get("title").or(e.get("detail")).map(|v| v.to_string()).unwrap_or_default()
                    ),
                })
            }
        }
    }

    /// Opens the filtered stream. `Ok(Ok(response))` is a connected stream to read line by line;
    /// `Ok(Err((status, detail, rate)))` is an HTTP error to back off from.
    pub async fn connect_stream(&self) -> Result<Result<reqwest::Response, (u16, String, RateLimit)>, reqwest::Error> {
        let resp = self
            .get(STREAM)
            .query(&[("tweet.fields", STREAM_TWEET_FIELDS), ("expansions", STREAM_EXPANSIONS), ("user.fields", USER_FIELDS)])
            .send()
            .await?;
        if resp.status().is_success() {
            return Ok(Ok(resp));
        }
        let rate = RateLimit::from_headers(resp.headers());
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        Ok(Err((status, error_detail(&body), rate)))
    }
}

impl SearchSource for XClient {
    fn search<'a>(&'a self, q: &'a SearchQuery) -> BoxFuture<'a, Result<Answer<SearchPage>, Error>> {
        Box::pin(async move {
            let mut params: Vec<(&str, String)> = vec![
                ("query", q.query.clone()),
                ("max_results", q.max_results.to_string()),
                ("post.fields", SEARCH_POST_FIELDS.into()),
                ("expansions", SEARCH_EXPANSIONS.into()),
                ("user.fields", USER_FIELDS.into()),
            ];
            if let Some(s) = q.since_id {
                params.push(("since_id", s.to_string()));
            }
            if let Some(u) = q.until_id {
                params.push(("until_id", u.to_string()));
            }
            for (name, at) in [("start_time", q.start_time), ("end_time", q.end_time)] {
                if let Some(t) = at {
                    params.push((name, t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
                }
            }
            if let Some(t) = &q.next_token {
                params.push(("next_token", t.clone()));
            }
            let resp = self.rest(self.get(SEARCH)).query(&params).send().await.map_err(|e| transport("recent search", e))?;
            Self::answer("recent search", resp).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_never_shows_in_debug() {
        let t = BearerToken::new("AAAA-secret", "X").unwrap();
        assert!(!format!("{t:?}").contains("secret"));
        assert!(BearerToken::new("  ", "TWEETLAKE_X_BEARER_TOKEN").unwrap_err().to_string().contains("TWEETLAKE_X_BEARER_TOKEN"));
    }

    #[test]
    fn reads_error_bodies() {
        assert_eq!(
            error_detail(r#"{"title":"Invalid Request","detail":"The 'query' parameter is required.","type":"x"}"#),
            "Invalid Request: The 'query' parameter is required."
        );
        assert_eq!(error_detail(r#"{"errors":[{"code":88,"message":"Rate limit exceeded"}]}"#), "Rate limit exceeded");
        assert_eq!(error_detail("upstream connect error"), "upstream connect error");
    }
}

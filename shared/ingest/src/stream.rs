//! Filtered-stream mode: sync the rules with the API (only the difference), then read the stream for
//! a bounded session, surviving keep-alives, silent connections, truncated messages and disconnects
//! with X's documented back-off.

use crate::clock::{Backoff, Clock, Failure};
use crate::collect::Collector;
use crate::error::Error;
use crate::rules::Rule;
use crate::watermark::Window;
use crate::xapi::{ApiRule, Includes, Problem, XClient};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tweetlake_contract::envelope::{MatchingRule, Tweet};

/// The result of opening a stream connection.
pub enum Connect {
    /// Connected: the body, chunk by chunk.
    Stream(BoxStream<'static, Result<Bytes, String>>),
    /// The server answered with an HTTP error.
    Http {
        /// The HTTP status.
        status: u16,
        /// The answer's problem detail.
        detail: String,
    },
    /// A recorded session has nothing more to play.
    Exhausted,
}

/// Where stream connections come from: the X API, or a recorded session ([`crate::replay`]).
pub trait StreamSource: Send + Sync {
    /// Opens one connection; `Err` is a network-level failure.
    fn connect(&self) -> BoxFuture<'_, Result<Connect, String>>;
}

impl StreamSource for XClient {
    fn connect(&self) -> BoxFuture<'_, Result<Connect, String>> {
        Box::pin(async move {
            match self.connect_stream().await {
                Ok(Ok(resp)) => {
                    Ok(Connect::Stream(resp.bytes_stream().map(|r| r.map_err(|e| e.without_url().to_string())).boxed()))
                }
                Ok(Err((status, detail, _))) => Ok(Connect::Http { status, detail }),
                Err(e) => Err(e.without_url().to_string()),
            }
        })
    }
}

/// Session limits.
#[derive(Clone, Copy, Debug)]
pub struct StreamSettings {
    /// A connection that sends nothing, not even a keep-alive, for this long is dead (X: 20 s).
    pub silence: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self { silence: Duration::from_secs(20) }
    }
}

/// What a session saw.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StreamReport {
    /// Successful connections.
    pub connections: u32,
    /// Tweet messages read (before merging repeats).
    pub tweets: usize,
    /// Keep-alive newlines.
    pub keep_alives: usize,
    /// Lines that were not readable messages (cut off by a disconnect, or not JSON).
    pub unreadable: usize,
    /// In-stream error messages (operational disconnects and the like).
    pub problems: Vec<String>,
    /// Every back-off wait before a reconnect, in milliseconds, in order.
    pub backoff_ms: Vec<u64>,
    /// Why the session ended.
    pub ended: String,
    /// When each connection was open, in order: the wall time the stream itself covered.
    pub connected: Vec<Window>,
}

#[derive(Deserialize)]
struct StreamMessage {
    #[serde(default)]
    data: Option<Tweet>,
    #[serde(default)]
    includes: Includes,
    #[serde(default)]
    matching_rules: Vec<MatchingRule>,
    #[serde(default)]
    errors: Vec<Problem>,
}

fn handle_line(line: &[u8], out: &mut Collector, r: &mut StreamReport) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        r.keep_alives += 1;
        return;
    }
    match serde_json::from_slice::<StreamMessage>(line) {
        Ok(StreamMessage { data: Some(tweet), includes, matching_rules, .. }) => {
            r.tweets += 1;
            out.add(vec![tweet], &includes, &matching_rules);
        }
        Ok(m) if !m.errors.is_empty() => r.problems.extend(m.errors.iter().map(Problem::text)),
        _ => {
            r.unreadable += 1;
            out.unreadable.push(line.to_vec());
        }
    }
}

/// Reads the stream until `end`, reconnecting with back-off; tweets and unreadable lines go to `out`.
pub async fn read_stream(
    source: &dyn StreamSource,
    out: &mut Collector,
    clock: &dyn Clock,
    end: DateTime<Utc>,
    s: StreamSettings,
) -> StreamReport {
    let mut r = StreamReport::default();
    let mut backoff = Backoff::default();
    let left = |clock: &dyn Clock| (end - clock.now()).to_std().unwrap_or_default();
    'session: loop {
        if left(clock).is_zero() {
            r.ended = "session time is up".into();
            break;
        }
        let failure = match source.connect().await {
            Err(e) => {
                tracing::warn!("stream connection failed: {e}");
                Failure::Network
            }
            Ok(Connect::Exhausted) => {
                r.ended = "recorded session exhausted".into();
                break;
            }
            Ok(Connect::Http { status, detail }) => {
                tracing::warn!(status, "stream refused: {detail}");
                r.problems.push(format!("HTTP {status}: {detail}"));
                if status == 429 { Failure::RateLimited } else { Failure::Http }
            }
            Ok(Connect::Stream(mut body)) => {
                r.connections += 1;
                let connected = clock.now();
                let mut buf: Vec<u8> = Vec::new();
                // `None`: the session's time is up; `Some(cause)`: the connection was lost.
                let lost = loop {
                    let wait = s.silence.min(left(clock));
                    match tokio::time::timeout(wait, body.next()).await {
                        Err(_) if left(clock).is_zero() => break None,
                        Err(_) => break Some(format!("silent for {} s", s.silence.as_secs_f32())),
                        Ok(None) => break Some("server closed the connection".to_owned()),
                        Ok(Some(Err(e))) => break Some(e),
                        Ok(Some(Ok(chunk))) => {
                            backoff.reset();
                            buf.extend_from_slice(&chunk);
                            let mut start = 0;
                            while let Some(nl) = buf[start..].iter().position(|b| *b == b'\n') {
                                handle_line(&buf[start..start + nl], out, &mut r);
                                start += nl + 1;
                            }
                            buf.drain(..start);
                        }
                    }
                    if left(clock).is_zero() {
                        break None;
                    }
                };
                r.connected.push(Window { start: connected, end: clock.now() });
                let Some(cause) = lost else {
                    r.ended = "session time is up".into();
                    break 'session;
                };
                tracing::warn!("stream connection lost: {cause}");
                // A partial line at a disconnect is a truncated message: it never completes.
                if !buf.is_empty() {
                    r.unreadable += 1;
                    out.unreadable.push(std::mem::take(&mut buf));
                }
                Failure::Network
            }
        };
        let wait = backoff.next(failure);
        if wait >= left(clock) {
            r.ended = format!("session time is up before the next reconnect (back-off {} ms)", wait.as_millis());
            break;
        }
        r.backoff_ms.push(wait.as_millis() as u64);
        clock.sleep(wait).await;
    }
    r
}

/// What a rules sync changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RulesSync {
    /// Tags added.
    pub added: Vec<String>,
    /// Ids of API rules deleted (not among the user's rules any more).
    pub deleted: Vec<String>,
    /// Rules already set as wanted.
    pub kept: usize,
}

/// Makes the API's rule set equal the user's: deletes what is extra, adds what is missing, leaves the
/// rest alone (re-adding unchanged rules would needlessly re-match).
pub async fn sync_rules(client: &XClient, rules: &[Rule]) -> Result<RulesSync, Error> {
    let current = client.stream_rules().await?;
    let same = |a: &ApiRule, r: &Rule| a.value == r.value && a.tag.as_deref() == Some(r.tag.as_str());
    let deleted: Vec<String> = current.iter().filter(|a| !rules.iter().any(|r| same(a, r))).map(|a| a.id.clone()).collect();
    let add: Vec<&Rule> = rules.iter().filter(|r| !current.iter().any(|a| same(a, r))).collect();
    if !deleted.is_empty() {
        client.update_stream_rules(&serde_json::json!({ "delete": { "ids": deleted } })).await?;
    }
    if !add.is_empty() {
        let body: Vec<_> = add.iter().map(|r| serde_json::json!({ "value": r.value, "tag": r.tag })).collect();
        client.update_stream_rules(&serde_json::json!({ "add": body })).await?;
    }
    Ok(RulesSync { added: add.iter().map(|r| r.tag.clone()).collect(), deleted, kept: rules.len() - add.len() })
}

//! Recent-search mode: each rule's new tweets since its watermark, page by page, until the pages run
//! out, the per-run page cap, the rate limit or the deadline — whichever comes first.

use crate::clock::Clock;
use crate::collect::Collector;
use crate::error::Error;
use crate::rules::Rule;
use crate::watermark::{Gap, RuleMark, Watermarks};
use crate::xapi::{Answer, SearchQuery, SearchSource};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::Duration;
use tweetlake_contract::envelope::MatchingRule;

/// Limits of one search run.
#[derive(Clone, Copy, Debug)]
pub struct SearchSettings {
    /// `max_results` per page (10-100).
    pub page_size: u32,
    /// Most pages per rule per run, so one busy rule cannot starve the others.
    pub max_pages_per_rule: u32,
    /// Attempts of one page on 5xx or network errors.
    pub attempts: u32,
    /// Time kept free before the deadline for producing and saving the watermark.
    pub margin: Duration,
}

impl Default for SearchSettings {
    fn default() -> Self {
        Self { page_size: 100, max_pages_per_rule: 10, attempts: 3, margin: Duration::from_secs(10) }
    }
}

/// How one rule's search went.
#[derive(Clone, Debug, Serialize)]
pub struct RuleOutcome {
    /// The rule's tag.
    pub tag: String,
    /// Pages fetched.
    pub pages: u32,
    /// Tweets the pages held (before merging with other rules).
    pub tweets: usize,
    /// Partial errors the API reported beside the data.
    pub api_errors: usize,
    /// Whether every new tweet was fetched; if not, `stopped` says why and the mark keeps a gap.
    pub complete: bool,
    /// Why the rule stopped early.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// The mark before the run.
    pub before: RuleMark,
    /// The mark to store once every tweet is acknowledged by Kafka.
    pub after: RuleMark,
}

/// Why a page could not be fetched in this run (the rule stops; the run goes on).
enum Stop {
    Deadline,
    RateLimited(Option<DateTime<Utc>>),
    Unavailable(String),
}

impl Stop {
    fn describe(&self) -> String {
        match self {
            Stop::Deadline => "deadline: stopped to leave time for producing".into(),
            Stop::RateLimited(Some(r)) => format!("rate limited until {}", r.to_rfc3339()),
            Stop::RateLimited(None) => "rate limited".into(),
            Stop::Unavailable(d) => format!("X API unavailable: {d}"),
        }
    }
}

/// Runs the search for every rule, adding tweets to `out`; returns one outcome per rule.
pub async fn search_rules(
    source: &dyn SearchSource,
    rules: &[Rule],
    marks: &Watermarks,
    out: &mut Collector,
    clock: &dyn Clock,
    deadline: DateTime<Utc>,
    s: SearchSettings,
) -> Result<Vec<RuleOutcome>, Error> {
    let mut pacer = Pacer::new(clock, deadline, s);
    let mut outcomes = Vec::with_capacity(rules.len());
    for rule in rules {
        let before = marks.mark(&rule.tag, &rule.value);
        let q = SearchQuery {
            since_id: before.since_id,
            until_id: before.gap.map(|g| g.until_id),
            ..SearchQuery::new(rule, s.page_size)
        };
        let paged = pacer.page_through(source, q, out).await?;
        outcomes.push(RuleOutcome {
            tag: rule.tag.clone(),
            pages: paged.pages,
            tweets: paged.tweets,
            api_errors: paged.api_errors,
            complete: paged.complete,
            after: advance(&before, paged.complete, paged.newest, paged.oldest),
            stopped: paged.stopped,
            before,
        });
    }
    Ok(outcomes)
}

impl SearchQuery {
    /// The first page of `rule`'s search, with no id or time bounds.
    pub fn new(rule: &Rule, page_size: u32) -> Self {
        Self {
            tag: rule.tag.clone(),
            query: rule.value.clone(),
            since_id: None,
            until_id: None,
            start_time: None,
            end_time: None,
            next_token: None,
            max_results: page_size,
        }
    }
}

/// What paging through one query fetched.
#[derive(Debug, Default)]
pub struct Paged {
    /// Pages fetched.
    pub pages: u32,
    /// Tweets the pages held.
    pub tweets: usize,
    /// Partial errors the API reported beside the data.
    pub api_errors: usize,
    /// Whether the last page was reached.
    pub complete: bool,
    /// Why paging stopped early.
    pub stopped: Option<String>,
    /// The newest and oldest tweet ids fetched.
    pub newest: Option<u64>,
    /// See `newest`.
    pub oldest: Option<u64>,
    /// The oldest `created_at` fetched: where a cut time-window search stopped.
    pub oldest_created: Option<DateTime<Utc>>,
}

/// The rule whose query a page answered, as the tweets' `matching_rules`.
fn matched(tag: &str) -> [MatchingRule; 1] {
    [MatchingRule { id: None, tag: Some(tag.to_owned()) }]
}
/// The mark after a rule's search: a complete run closes the range it covered; a cut one records
/// (or narrows) the gap below the oldest tweet it reached.
pub fn advance(before: &RuleMark, complete: bool, newest: Option<u64>, oldest: Option<u64>) -> RuleMark {
    let mut m = before.clone();
    match (complete, before.gap) {
        (true, None) => m.since_id = before.since_id.max(newest),
        (true, Some(g)) => {
            m.since_id = Some(g.newest_id);
            m.gap = None;
        }
        (false, None) => {
            if let (Some(n), Some(o)) = (newest, oldest) {
                m.gap = Some(Gap { until_id: o, newest_id: n });
            }
        }
        (false, Some(g)) => {
            if let Some(o) = oldest {
                m.gap = Some(Gap { until_id: o.min(g.until_id), newest_id: g.newest_id });
            }
        }
    }
    m
}

/// Spaces requests by the rate-limit headers and keeps them inside the deadline.
pub struct Pacer<'a> {
    clock: &'a dyn Clock,
    deadline: DateTime<Utc>,
    settings: SearchSettings,
    blocked_until: Option<DateTime<Utc>>,
}

impl<'a> Pacer<'a> {
    /// A pacer for one run: requests stop `settings.margin` before `deadline`.
    pub fn new(clock: &'a dyn Clock, deadline: DateTime<Utc>, settings: SearchSettings) -> Self {
        Self { clock, deadline, settings, blocked_until: None }
    }

    /// The clock requests are paced by.
    pub fn clock(&self) -> &'a dyn Clock {
        self.clock
    }

    /// The run's search settings.
    pub fn settings(&self) -> SearchSettings {
        self.settings
    }

    /// Fetches the query's pages into `out` (as matched by the query's rule) until the last page, the
    /// page cap, the rate limit or the deadline.
    pub async fn page_through(
        &mut self,
        source: &dyn SearchSource,
        mut q: SearchQuery,
        out: &mut Collector,
    ) -> Result<Paged, Error> {
        let matched = matched(&q.tag);
        let mut p = Paged::default();
        loop {
            if p.pages >= self.settings.max_pages_per_rule {
                p.stopped = Some(format!("page cap: {} pages per rule per run", self.settings.max_pages_per_rule));
                return Ok(p);
            }
            let page = match self.fetch(source, &q).await? {
                Ok(page) => page,
                Err(stop) => {
                    p.stopped = Some(stop.describe());
                    return Ok(p);
                }
            };
            p.pages += 1;
            p.api_errors += page.errors.len();
            p.tweets += page.data.len();
            for t in &page.data {
                if let Ok(id) = t.id.parse::<u64>() {
                    p.newest = p.newest.max(Some(id));
                    p.oldest = Some(p.oldest.map_or(id, |o| o.min(id)));
                }
                if let Some(at) = t.created_at.as_deref().and_then(|c| DateTime::parse_from_rfc3339(c).ok()) {
                    let at = at.with_timezone(&Utc);
                    p.oldest_created = Some(p.oldest_created.map_or(at, |o| o.min(at)));
                }
            }
            let next = page.meta.next_token.clone();
            out.add(page.data, &page.includes, &matched);
            match next {
                Some(t) => q.next_token = Some(t),
                None => {
                    p.complete = true;
                    return Ok(p);
                }
            }
        }
    }

    /// Waits until `until` if that still leaves the margin before the deadline.
    async fn wait_until(&self, until: DateTime<Utc>) -> bool {
        let now = self.clock.now();
        if until + self.settings.margin >= self.deadline {
            return false;
        }
        if until > now {
            self.clock.sleep((until - now).to_std().unwrap_or_default()).await;
        }
        true
    }

    async fn fetch(
        &mut self,
        source: &dyn SearchSource,
        q: &SearchQuery,
    ) -> Result<Result<crate::xapi::SearchPage, Stop>, Error> {
        let attempts = self.settings.attempts;
        let mut failures = 0;
        loop {
            if let Some(until) = self.blocked_until.take()
                && !self.wait_until(until).await
            {
                self.blocked_until = Some(until);
                return Ok(Err(Stop::RateLimited(Some(until))));
            }
            if self.clock.now() + self.settings.margin >= self.deadline {
                return Ok(Err(Stop::Deadline));
            }
            let answer = match source.search(q).await {
                Ok(a) => a,
                Err(Error::Transport { message, .. }) => Answer::Unavailable { status: 0, detail: message },
                Err(e) => return Err(e),
            };
            match answer {
                Answer::Ok(page, rate) => {
                    if rate.remaining == Some(0) {
                        self.blocked_until = Some(rate.reset.unwrap_or_else(|| self.clock.now() + chrono::Duration::seconds(60)));
                    }
                    return Ok(Ok(page));
                }
                Answer::RateLimited(rate) => {
                    // Without a reset header, X's guidance is to wait a minute.
                    self.blocked_until = Some(rate.reset.unwrap_or_else(|| self.clock.now() + chrono::Duration::seconds(60)));
                }
                Answer::Unavailable { status, detail } => {
                    failures += 1;
                    let what = if status == 0 { detail } else { format!("HTTP {status}: {detail}") };
                    if failures >= attempts {
                        return Ok(Err(Stop::Unavailable(what)));
                    }
                    let wait = Duration::from_secs(1 << (failures - 1));
                    tracing::warn!(
                        attempt = failures,
                        wait_ms = wait.as_millis() as u64,
                        "recent search failed, retrying: {what}"
                    );
                    if !self.wait_until(self.clock.now() + chrono::Duration::from_std(wait).expect("small")).await {
                        return Ok(Err(Stop::Unavailable(format!("{what}; no time left before the deadline to retry"))));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(since: Option<u64>, gap: Option<(u64, u64)>) -> RuleMark {
        RuleMark { value: "q".into(), since_id: since, gap: gap.map(|(until_id, newest_id)| Gap { until_id, newest_id }) }
    }

    #[test]
    fn marks_close_ranges_or_record_gaps() {
        assert_eq!(advance(&m(Some(10), None), true, Some(50), Some(11)), m(Some(50), None));
        assert_eq!(advance(&m(Some(10), None), true, None, None), m(Some(10), None));
        assert_eq!(advance(&m(Some(10), None), false, Some(50), Some(30)), m(Some(10), Some((30, 50))));
        assert_eq!(advance(&m(Some(10), None), false, None, None), m(Some(10), None));
        assert_eq!(advance(&m(Some(10), Some((30, 50))), false, Some(29), Some(20)), m(Some(10), Some((20, 50))));
        assert_eq!(advance(&m(Some(10), Some((30, 50))), true, Some(29), Some(11)), m(Some(50), None));
        assert_eq!(advance(&m(None, None), false, Some(50), Some(30)), m(None, Some((30, 50))));
    }
}

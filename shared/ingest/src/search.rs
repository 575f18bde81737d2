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
    let mut pacer = Pacer { clock, deadline, margin: s.margin, blocked_until: None };
    let mut outcomes = Vec::with_capacity(rules.len());
    for rule in rules {
        let before = marks.mark(&rule.tag, &rule.value);
        let matched = [MatchingRule { id: None, tag: Some(rule.tag.clone()) }];
        let mut o = RuleOutcome {
            tag: rule.tag.clone(),
            pages: 0,
            tweets: 0,
            api_errors: 0,
            complete: false,
            stopped: None,
            after: before.clone(),
            before,
        };
        let mut q = SearchQuery {
            tag: rule.tag.clone(),
            query: rule.value.clone(),
            since_id: o.before.since_id,
            until_id: o.before.gap.map(|g| g.until_id),
            next_token: None,
            max_results: s.page_size,
        };
        let (mut newest, mut oldest): (Option<u64>, Option<u64>) = (None, None);
        loop {
            if o.pages >= s.max_pages_per_rule {
                o.stopped = Some(format!("page cap: {} pages per rule per run", s.max_pages_per_rule));
                break;
            }
            let page = match pacer.fetch(source, &q, s.attempts).await? {
                Ok(p) => p,
                Err(stop) => {
                    o.stopped = Some(stop.describe());
                    break;
                }
            };
            o.pages += 1;
            o.api_errors += page.errors.len();
            o.tweets += page.data.len();
            for id in page.data.iter().filter_map(|t| t.id.parse::<u64>().ok()) {
                newest = newest.max(Some(id));
                oldest = Some(oldest.map_or(id, |o| o.min(id)));
            }
            let next = page.meta.next_token.clone();
            out.add(page.data, &page.includes, &matched);
            match next {
                Some(t) => q.next_token = Some(t),
                None => {
                    o.complete = true;
                    break;
                }
            }
        }
        o.after = advance(&o.before, o.complete, newest, oldest);
        outcomes.push(o);
    }
    Ok(outcomes)
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
struct Pacer<'a> {
    clock: &'a dyn Clock,
    deadline: DateTime<Utc>,
    margin: Duration,
    blocked_until: Option<DateTime<Utc>>,
}

impl Pacer<'_> {
    /// Waits until `until` if that still leaves the margin before the deadline.
    async fn wait_until(&self, until: DateTime<Utc>) -> bool {
        let now = self.clock.now();
        if until + self.margin >= self.deadline {
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
        attempts: u32,
    ) -> Result<Result<crate::xapi::SearchPage, Stop>, Error> {
        let mut failures = 0;
        loop {
            if let Some(until) = self.blocked_until.take()
                && !self.wait_until(until).await
            {
                self.blocked_until = Some(until);
                return Ok(Err(Stop::RateLimited(Some(until))));
            }
            if self.clock.now() + self.margin >= self.deadline {
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

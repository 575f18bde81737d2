//! Filtered-stream coverage: the wall time no stream connection covered (before a session's first
//! connection, between two sessions, while reconnecting) is filled from recent search by time window;
//! what a fill cannot finish stays pending for the next run and counts as `coverage_gap_seconds`.
//!
//! X lets an app hold one filtered-stream connection (Basic and Pro access), so consecutive sessions
//! cannot overlap to cover each other: the search covers the stretch between them instead. Every window
//! reaches [`overlap`] into the connections on both sides, because the stream delivers a post seconds
//! after it is created; a post near a boundary is then read by both paths and the process function's
//! tweet-id dedup keeps one.

use crate::collect::Collector;
use crate::error::Error;
use crate::rules::Rule;
use crate::search::Pacer;
use crate::watermark::{StreamMark, Window};
use crate::xapi::{SearchQuery, SearchSource};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// How far a window reaches into the connections beside it. Also X's rule for recent search: its
/// `end_time` must be at least 10 s in the past.
pub fn overlap() -> Duration {
    Duration::seconds(10)
}

/// How far back recent search reaches (X: the last 7 days), less a minute for the request's own time.
fn search_reach() -> Duration {
    Duration::days(7) - Duration::minutes(1)
}

/// The windows of `[from, until)` that no connection covers, each connection trusted only from
/// [`overlap`] after it opened to [`overlap`] before it closed.
pub fn uncovered(from: DateTime<Utc>, connected: &[Window], until: DateTime<Utc>) -> Vec<Window> {
    let mut out = Vec::new();
    let mut cursor = from;
    for c in connected {
        let (start, end) = (c.start + overlap(), c.end - overlap());
        if end <= start || end <= cursor {
            continue;
        }
        if start > cursor {
            out.push(Window { start: cursor, end: start.min(until) });
        }
        cursor = end;
        if cursor >= until {
            break;
        }
    }
    if cursor < until {
        out.push(Window { start: cursor, end: until });
    }
    out.retain(|w| w.end > w.start);
    out
}

/// How one rule's gap fill went.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RuleFill {
    /// The rule's tag.
    pub tag: String,
    /// Windows searched (pending ones from earlier runs first).
    pub windows: usize,
    /// Pages fetched.
    pub pages: u32,
    /// Posts the pages held.
    pub tweets: usize,
    /// Why a window's search stopped early.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// Windows left for the next run.
    pub pending: Vec<Window>,
    /// Seconds of windows older than recent search reaches: never to be filled.
    pub lost_seconds: f64,
}

/// How a run's coverage went.
#[derive(Clone, Debug, Serialize)]
pub struct CoverageReport {
    /// Where coverage stood before the run (`None` on the first run).
    pub from: Option<DateTime<Utc>>,
    /// Where it stands after the run.
    pub covered_until: DateTime<Utc>,
    /// Seconds the stream was connected in this run.
    pub stream_seconds: f64,
    /// The windows this run found no connection covering.
    pub windows: Vec<Window>,
    /// The fill, per rule.
    pub rules: Vec<RuleFill>,
    /// Seconds of wall time some rule still has uncovered: its pending windows and its lost ones.
    pub coverage_gap_seconds: u64,
}

/// After a session that started at `session_started` with these connections, fills every rule's
/// pending and new windows by recent search into `out`; returns the stream mark to store once the
/// posts are acknowledged, and the report.
pub async fn fill_gaps(
    source: &dyn SearchSource,
    rules: &[Rule],
    before: &StreamMark,
    session_started: DateTime<Utc>,
    connected: &[Window],
    out: &mut Collector,
    pacer: &mut Pacer<'_>,
) -> Result<(StreamMark, CoverageReport), Error> {
    let now = pacer.clock().now();
    let page_size = pacer.settings().page_size;
    let from = before.covered_until;
    let until = (now - overlap()).max(from.unwrap_or(session_started));
    let windows = uncovered(from.unwrap_or(session_started), connected, until);
    let reach = now - search_reach();
    let mut mark = StreamMark { covered_until: Some(until), pending: BTreeMap::new() };
    let mut fills = Vec::with_capacity(rules.len());
    for rule in rules {
        let mut fill = RuleFill { tag: rule.tag.clone(), ..RuleFill::default() };
        let earlier = before.pending.get(&rule.tag).into_iter().flatten();
        for &w in earlier.chain(&windows) {
            if w.start < reach {
                fill.lost_seconds += Window { start: w.start, end: w.end.min(reach) }.seconds();
            }
            let w = Window { start: w.start.max(reach), end: w.end };
            if w.end <= w.start {
                continue;
            }
            let q = SearchQuery { start_time: Some(w.start), end_time: Some(w.end), ..SearchQuery::new(rule, page_size) };
            let paged = pacer.page_through(source, q, out).await?;
            fill.windows += 1;
            fill.pages += paged.pages;
            fill.tweets += paged.tweets;
            if !paged.complete {
                // Pages run newest first: what is left is older than the oldest post fetched.
                let end = paged.oldest_created.map_or(w.end, |t| (t + Duration::seconds(1)).min(w.end));
                fill.pending.push(Window { start: w.start, end });
                fill.stopped = paged.stopped;
            }
        }
        if !fill.pending.is_empty() {
            mark.pending.insert(rule.tag.clone(), fill.pending.clone());
        }
        fills.push(fill);
    }
    let gap = fills.iter().map(|f| f.pending.iter().map(Window::seconds).sum::<f64>() + f.lost_seconds).fold(0.0, f64::max);
    let report = CoverageReport {
        from,
        covered_until: until,
        stream_seconds: connected.iter().map(Window::seconds).sum(),
        windows,
        rules: fills,
        coverage_gap_seconds: gap.ceil() as u64,
    };
    Ok((mark, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the connections, every second from `from` to `until` is either trusted to a
        /// connection or inside exactly one window: the stream and the fill together cover all of it.
        #[test]
        fn the_windows_and_the_trusted_connections_cover_every_second(
            gaps in proptest::collection::vec((0i64..120, 0i64..400), 0..6),
            from in 0i64..100,
            span in 1i64..1500,
        ) {
            let mut t = 0;
            let connected: Vec<Window> = gaps.iter().map(|&(gap, len)| { t += gap; let c = w(t, t + len); t += len; c }).collect();
            let until = from + span;
            let windows = uncovered(at(from), &connected, at(until));
            prop_assert!(windows.windows(2).all(|p| p[0].end < p[1].start), "sorted and apart: {:?}", windows);
            for s in from..until {
                let (lo, hi) = (at(s), at(s + 1));
                let filled = windows.iter().filter(|w| w.start <= lo && hi <= w.end).count();
                let trusted = connected.iter().any(|c| c.start + overlap() <= lo && hi <= c.end - overlap());
                prop_assert!(filled == 1 || (filled == 0 && trusted), "second {s}: {windows:?} {connected:?}");
            }
        }
    }

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_764_244_800 + s, 0).unwrap()
    }

    fn w(a: i64, b: i64) -> Window {
        Window { start: at(a), end: at(b) }
    }

    #[test]
    fn the_gaps_between_and_inside_sessions_are_the_uncovered_windows() {
        // Covered until 0; connected 30–200 and 230–290; filled up to 300.
        assert_eq!(uncovered(at(0), &[w(30, 200), w(230, 290)], at(300)), vec![w(0, 40), w(190, 240), w(280, 300)]);
        // A connection open until the end leaves nothing after it.
        assert_eq!(uncovered(at(0), &[w(0, 400)], at(300)), vec![w(0, 10)]);
        // A connection shorter than twice the overlap covers nothing.
        assert_eq!(uncovered(at(0), &[w(100, 115)], at(300)), vec![w(0, 300)]);
        // Connections before `from` do not reopen covered time.
        assert_eq!(uncovered(at(100), &[w(0, 50), w(60, 400)], at(300)), Vec::<Window>::new());
        // Never connected: everything.
        assert_eq!(uncovered(at(0), &[], at(300)), vec![w(0, 300)]);
    }
}

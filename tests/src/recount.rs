//! A from-scratch recount of the tweets table into the aggregates table's windows, from rows the
//! independent reader returned: what the aggregates (and the queries over them) must sum to.

use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::BTreeMap;

/// (dimension, value, window minutes, window start as RFC 3339 in UTC).
pub type WindowKey = (String, String, i64, String);

/// (tweets, positive, neutral, negative, score sum, scored) of one window: every post counts in
/// `tweets`; the sentiment columns count scored posts that are not retweets.
pub type WindowCounts = (i64, i64, i64, i64, f64, i64);

/// The start of the `minutes`-long window holding the RFC 3339 time `created`.
pub fn window_start(created: &str, minutes: i64) -> String {
    let t = DateTime::parse_from_rfc3339(created).unwrap().with_timezone(&Utc);
    let len = minutes * 60_000_000;
    let us = t.timestamp_micros().div_euclid(len) * len;
    DateTime::<Utc>::from_timestamp_micros(us).unwrap().to_rfc3339()
}

/// The rows that count as posts: of the versions of an edited post (one `edit_root_id`; null in rows
/// of tables written before the column, where each row is its own post), the one written first.
pub fn counted_rows(tweets: &Value) -> Vec<&Value> {
    let mut first: BTreeMap<String, &Value> = BTreeMap::new();
    for r in tweets["rows"].as_array().unwrap() {
        let root = r["edit_root_id"].as_str().or(r["tweet_id"].as_str()).unwrap().to_owned();
        let at = |r: &Value| (r["kafka_partition"].as_i64().unwrap(), r["kafka_offset"].as_i64().unwrap());
        first
            .entry(root)
            .and_modify(|f| {
                if at(r) < at(f) {
                    *f = r
                }
            })
            .or_insert(r);
    }
    first.into_values().collect()
}

/// Every post of `tweets` (a `read_table` answer; see [`counted_rows`]) counted once per rule tag and
/// once per hashtag, in its 1-minute and 60-minute windows; its sentiment counted if it was scored
/// and is not a retweet.
pub fn recount_windows(tweets: &Value) -> BTreeMap<WindowKey, WindowCounts> {
    let mut out: BTreeMap<WindowKey, WindowCounts> = BTreeMap::new();
    for r in counted_rows(tweets) {
        for key in windows_of(r) {
            let e = out.entry(key).or_default();
            e.0 += 1;
            let (Some(label), Some(score)) = (r["sentiment_label"].as_str(), r["sentiment_score"].as_f64()) else {
                continue;
            };
            if r["kind"].as_str() == Some("retweet") {
                continue;
            }
            e.5 += 1;
            match label {
                "positive" => e.1 += 1,
                "negative" => e.3 += 1,
                _ => e.2 += 1,
            }
            e.4 += score;
        }
    }
    out
}

/// The windows a post counts in: once per rule tag and once per hashtag, 1 and 60 minutes long.
fn windows_of(r: &Value) -> Vec<WindowKey> {
    let dims = r["rule_tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| ("rule", v))
        .chain(r["hashtags"].as_array().unwrap().iter().map(|v| ("hashtag", v)));
    let created = r["created_at"].as_str().unwrap();
    dims.flat_map(|(dim, v)| [1, 60].map(|m| (dim.to_string(), v.as_str().unwrap().to_string(), m, window_start(created, m))))
        .collect()
}

/// (posts with three probabilities, sums of their negative, neutral and positive probabilities) of one
/// window, over the scored posts that are not retweets.
pub type WindowProbabilities = (i64, [f64; 3]);

/// The probability sums of every window, recounted from `tweets` as [`recount_windows`] counts labels.
pub fn recount_probabilities(tweets: &Value) -> BTreeMap<WindowKey, WindowProbabilities> {
    let mut out: BTreeMap<WindowKey, WindowProbabilities> = BTreeMap::new();
    for r in counted_rows(tweets) {
        let probs = ["sentiment_negative", "sentiment_neutral", "sentiment_positive"].map(|c| r[c].as_f64());
        for key in windows_of(r) {
            let e = out.entry(key).or_default();
            if let [Some(n), Some(u), Some(p)] = probs
                && r["kind"].as_str() != Some("retweet")
            {
                e.0 += 1;
                e.1.iter_mut().zip([n, u, p]).for_each(|(sum, v)| *sum += v);
            }
        }
    }
    out
}

/// The aggregates table's probability sums per window (null in partials written before the columns).
pub fn summed_probabilities(aggs: &Value) -> BTreeMap<WindowKey, WindowProbabilities> {
    let mut out: BTreeMap<WindowKey, WindowProbabilities> = BTreeMap::new();
    for r in aggs["rows"].as_array().unwrap() {
        let e = out.entry(key_of(r)).or_default();
        e.0 += r["prob_rows"].as_i64().unwrap_or(0);
        for (sum, c) in e.1.iter_mut().zip(["negative_prob_sum", "neutral_prob_sum", "positive_prob_sum"]) {
            *sum += r[c].as_f64().unwrap_or(0.0);
        }
    }
    out
}

fn key_of(r: &Value) -> WindowKey {
    (
        r["dimension"].as_str().unwrap().to_string(),
        r["value"].as_str().unwrap().to_string(),
        r["window_minutes"].as_i64().unwrap(),
        norm_ts(r["window_start"].as_str().unwrap()),
    )
}

fn norm_ts(s: &str) -> String {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc).to_rfc3339()
}

/// The aggregates table (a `read_table` answer) with its partial rows summed per window.
pub fn summed_partials(aggs: &Value) -> BTreeMap<WindowKey, WindowCounts> {
    let mut out: BTreeMap<WindowKey, WindowCounts> = BTreeMap::new();
    for r in aggs["rows"].as_array().unwrap() {
        let e = out.entry(key_of(r)).or_default();
        e.0 += r["tweets"].as_i64().unwrap();
        e.1 += r["positive"].as_i64().unwrap();
        e.2 += r["neutral"].as_i64().unwrap();
        e.3 += r["negative"].as_i64().unwrap();
        e.4 += r["score_sum"].as_f64().unwrap();
        // Null in partials written before the column: then every tweet was scored.
        e.5 += r["scored"].as_i64().unwrap_or(r["tweets"].as_i64().unwrap());
    }
    out
}

/// Asserts that the summed partials of `aggs` equal a recount of `tweets`, window by window, and
/// returns the sums. A window whose partials sum to nothing (every post in it was removed for
/// compliance) is no window.
pub fn assert_partials_match_recount(tweets: &Value, aggs: &Value) -> BTreeMap<WindowKey, WindowCounts> {
    let (want, mut got) = (recount_windows(tweets), summed_partials(aggs));
    got.retain(|_, g| (g.0, g.1, g.2, g.3, g.5) != (0, 0, 0, 0, 0) || g.4.abs() > 1e-9);
    assert_eq!(want.keys().collect::<Vec<_>>(), got.keys().collect::<Vec<_>>(), "the same windows");
    for (k, w) in &want {
        let g = &got[k];
        assert_eq!((w.0, w.1, w.2, w.3, w.5), (g.0, g.1, g.2, g.3, g.5), "{k:?}");
        assert!((w.4 - g.4).abs() < 1e-9, "{k:?} score sum {} vs {}", w.4, g.4);
    }
    let (want, got_p) = (recount_probabilities(tweets), summed_probabilities(aggs));
    for (k, w) in &want {
        let g = &got_p[k];
        assert_eq!(w.0, g.0, "{k:?}: posts with probabilities");
        for (a, b) in w.1.iter().zip(g.1) {
            assert!((a - b).abs() < 1e-9, "{k:?} probability sums {:?} vs {:?}", w.1, g.1);
        }
    }
    got
}

//! Aggregate: windowed sentiment per rule tag and per hashtag, as additive partial aggregates.
//!
//! Each batch appends one partial row per (dimension, value, window, topic-partition) holding counts and
//! a score sum, in a commit that records the batch's offsets like the tweets table does. Partials from
//! different batches and partitions are summed at query time, so concurrent partitions never need to
//! update each other's rows, a redelivered batch is skipped by its recorded offsets, and a late tweet
//! adds a partial to its own (old) window. A window's figures are `SUM(...)` grouped by the first four
//! key columns; the mean score is `SUM(score_sum) / SUM(scored)` (README, "Aggregates").
//!
//! Volume counts every post once, split by kind. Sentiment counts only scored posts (see
//! [`crate::post::Languages`]) that are not retweets: a retweet repeats its original's words, so a viral
//! retweet storm shows in `retweets` without outweighing what people wrote themselves. A later version
//! of an edited post is not counted again (its row has `counted` false).

use crate::post::Kind;
use crate::tables::tweets::TweetRow;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Window lengths in minutes: 1 minute and 1 hour, by event time (`created_at`).
pub const WINDOW_MINUTES: [i32; 2] = [1, 60];

/// What a window is counted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dimension {
    /// The ingest rule's tag.
    Rule,
    /// A hashtag of the tweet.
    Hashtag,
}

impl Dimension {
    /// The value of the `dimension` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Rule => "rule",
            Dimension::Hashtag => "hashtag",
        }
    }
}

/// What a partial row groups by.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AggregateKey {
    /// Rule tag or hashtag.
    pub dimension: Dimension,
    /// The tag or hashtag.
    pub value: String,
    /// Window length, one of [`WINDOW_MINUTES`].
    pub window_minutes: i32,
    /// Window start, epoch microseconds UTC.
    pub window_start_us: i64,
    /// Kafka topic of the rows counted.
    pub kafka_topic: String,
    /// Kafka partition of the rows counted.
    pub kafka_partition: i32,
}

/// Additive counts of one key; summing partials gives the window's totals.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Partial {
    /// Posts counted, of every kind.
    pub tweets: i64,
    /// Of the scored posts that are not retweets: labelled positive.
    pub positive: i64,
    /// … labelled neutral.
    pub neutral: i64,
    /// … labelled negative.
    pub negative: i64,
    /// … the sum of their sentiment scores (probability of positive).
    pub score_sum: f64,
    /// Scored posts that are not retweets: the denominator of the mean score.
    #[serde(default)]
    pub scored: i64,
    /// Posts that are not retweets, quotes or replies.
    #[serde(default)]
    pub originals: i64,
    /// Retweets.
    #[serde(default)]
    pub retweets: i64,
    /// Quotes.
    #[serde(default)]
    pub quotes: i64,
    /// Replies.
    #[serde(default)]
    pub replies: i64,
    /// Of the scored posts that are not retweets: those scored with three probabilities (all of them
    /// with a three-class model), the denominator of the mean probabilities.
    #[serde(default)]
    pub prob_rows: i64,
    /// … the sums of their negative, neutral and positive probabilities: the expected number of posts
    /// of each class, unbiased where label counts follow the label's decision rule.
    #[serde(default)]
    pub prob_sums: [f64; 3],
}

/// What the aggregates read of a post: where its windows are and what it counts as. A row being
/// written gives it ([`TweetRow`]), and so does a row read back from the table (a compliance deletion
/// takes back exactly what the post added).
#[derive(Clone, Copy, Debug)]
pub struct Counted<'a> {
    /// Creation time, epoch microseconds UTC.
    pub created_us: i64,
    /// The ingest rules' tags it matched.
    pub rule_tags: &'a [String],
    /// Its hashtags.
    pub hashtags: &'a [String],
    /// Original, retweet, quote or reply.
    pub kind: Kind,
    /// Its sentiment label and score, if it was scored.
    pub sentiment: Option<(&'a str, f64)>,
    /// Its three class probabilities, if a three-class model scored it.
    pub probabilities: Option<[f64; 3]>,
    /// Kafka topic it was read from.
    pub kafka_topic: &'a str,
    /// Kafka partition it was read from.
    pub kafka_partition: i32,
}

impl<'a> From<&'a TweetRow> for Counted<'a> {
    fn from(row: &'a TweetRow) -> Self {
        Counted {
            created_us: row.created_at.timestamp_micros(),
            rule_tags: &row.rule_tags,
            hashtags: &row.hashtags,
            kind: row.post.kind,
            sentiment: row.sentiment_label.zip(row.sentiment_score),
            probabilities: row.sentiment_probabilities,
            kafka_topic: &row.kafka_topic,
            kafka_partition: row.kafka_partition,
        }
    }
}

impl Partial {
    fn add(&mut self, post: &Counted<'_>) {
        self.tweets += 1;
        *match post.kind {
            Kind::Original => &mut self.originals,
            Kind::Retweet => &mut self.retweets,
            Kind::Quote => &mut self.quotes,
            Kind::Reply => &mut self.replies,
        } += 1;
        let Some((label, score)) = post.sentiment else { return };
        if post.kind == Kind::Retweet {
            return;
        }
        self.scored += 1;
        match label {
            "positive" => self.positive += 1,
            "negative" => self.negative += 1,
            _ => self.neutral += 1,
        }
        self.score_sum += score;
        if let Some(p) = post.probabilities {
            self.prob_rows += 1;
            self.prob_sums.iter_mut().zip(p).for_each(|(sum, p)| *sum += p);
        }
    }

    /// The partial that cancels this one when both are summed: what taking the posts back adds.
    pub fn negated(&self) -> Partial {
        Partial {
            tweets: -self.tweets,
            positive: -self.positive,
            neutral: -self.neutral,
            negative: -self.negative,
            score_sum: -self.score_sum,
            scored: -self.scored,
            originals: -self.originals,
            retweets: -self.retweets,
            quotes: -self.quotes,
            replies: -self.replies,
            prob_rows: -self.prob_rows,
            prob_sums: self.prob_sums.map(|p| -p),
        }
    }
}

/// The partial aggregates of `rows`: every counted post (see [`TweetRow::counted`]) counts once per
/// rule tag and once per hashtag, in each window length.
pub fn partials<'a>(rows: impl IntoIterator<Item = &'a TweetRow>) -> BTreeMap<AggregateKey, Partial> {
    partials_of(rows.into_iter().filter(|r| r.counted).map(Counted::from))
}

/// The partial aggregates of `posts`, each counted once per rule tag and once per hashtag, in each
/// window length.
pub fn partials_of<'a>(posts: impl IntoIterator<Item = Counted<'a>>) -> BTreeMap<AggregateKey, Partial> {
    let mut out: BTreeMap<AggregateKey, Partial> = BTreeMap::new();
    for post in posts {
        let dims =
            post.rule_tags.iter().map(|t| (Dimension::Rule, t)).chain(post.hashtags.iter().map(|h| (Dimension::Hashtag, h)));
        for (dimension, value) in dims {
            for minutes in WINDOW_MINUTES {
                let len = i64::from(minutes) * 60_000_000;
                let key = AggregateKey {
                    dimension,
                    value: value.clone(),
                    window_minutes: minutes,
                    window_start_us: post.created_us.div_euclid(len) * len,
                    kafka_topic: post.kafka_topic.to_owned(),
                    kafka_partition: post.kafka_partition,
                };
                out.entry(key).or_default().add(&post);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn row(tags: &[&str], hashtags: &[&str], secs: i64, label: &'static str, score: f64) -> TweetRow {
        kind_row(tags, hashtags, secs, Some((label, score)), Kind::Original)
    }

    fn kind_row(tags: &[&str], hashtags: &[&str], secs: i64, sentiment: Option<(&'static str, f64)>, kind: Kind) -> TweetRow {
        TweetRow {
            tweet_id: "1".into(),
            created_at: Utc.timestamp_opt(secs, 0).unwrap(),
            text: String::new(),
            clean_text: String::new(),
            author_id: None,
            author_username: None,
            lang: None,
            conversation_id: None,
            hashtags: hashtags.iter().map(|s| s.to_string()).collect(),
            mentions: vec![],
            urls: vec![],
            rule_tags: tags.iter().map(|s| s.to_string()).collect(),
            metrics: None,
            sentiment_label: sentiment.map(|s| s.0),
            sentiment_score: sentiment.map(|s| s.1),
            sentiment_probabilities: None,
            kafka_topic: "t".into(),
            kafka_partition: 0,
            kafka_offset: 0,
            kafka_timestamp_ms: 0,
            ingest_source: None,
            ingest_run_id: None,
            post: crate::post::PostColumns {
                kind,
                full_text: String::new(),
                referenced_id: None,
                edit_root_id: "1".into(),
                truncated: false,
            },
            counted: true,
        }
    }

    #[test]
    fn counts_each_tweet_per_tag_hashtag_and_window() {
        // 10:00:30 and 10:01:10 share the hour but not the minute.
        let base = 1_764_000_000; // an hour boundary
        let rows = [row(&["rust"], &["async"], base + 30, "positive", 0.9), row(&["rust"], &[], base + 70, "negative", 0.2)];
        let p = partials(&rows);
        let get = |dim: Dimension, v: &str, m: i32, start: i64| {
            p.get(&AggregateKey {
                dimension: dim,
                value: v.into(),
                window_minutes: m,
                window_start_us: start * 1_000_000,
                kafka_topic: "t".into(),
                kafka_partition: 0,
            })
            .cloned()
        };
        let hour = get(Dimension::Rule, "rust", 60, base).unwrap();
        assert_eq!((hour.tweets, hour.positive, hour.negative, hour.neutral), (2, 1, 1, 0));
        assert!((hour.score_sum - 1.1).abs() < 1e-9);
        assert_eq!(get(Dimension::Rule, "rust", 1, base).unwrap().tweets, 1);
        assert_eq!(get(Dimension::Rule, "rust", 1, base + 60).unwrap().tweets, 1);
        assert_eq!(get(Dimension::Hashtag, "async", 1, base).unwrap().tweets, 1);
        assert_eq!(p.len(), 5, "rule: 2 minutes + 1 hour; hashtag: 1 minute + 1 hour");
    }

    #[test]
    fn volume_counts_every_kind_and_sentiment_only_scored_posts_that_are_not_retweets() {
        let base = 1_764_000_000;
        let mut later_version = kind_row(&["k"], &[], base, Some(("negative", 0.1)), Kind::Original);
        later_version.counted = false;
        let rows = [
            kind_row(&["k"], &[], base, Some(("positive", 0.9)), Kind::Original),
            kind_row(&["k"], &[], base, Some(("negative", 0.1)), Kind::Retweet),
            kind_row(&["k"], &[], base, Some(("neutral", 0.5)), Kind::Quote),
            kind_row(&["k"], &[], base, None, Kind::Reply),
            later_version,
        ];
        let p = partials(&rows);
        let hour = p.iter().find(|(k, _)| k.window_minutes == 60).unwrap().1;
        assert_eq!(
            (hour.tweets, hour.originals, hour.retweets, hour.quotes, hour.replies),
            (4, 1, 1, 1, 1),
            "the later version of an edited post is not counted again"
        );
        assert_eq!((hour.scored, hour.positive, hour.neutral, hour.negative), (2, 1, 1, 0));
        assert!((hour.score_sum - 1.4).abs() < 1e-9);
    }

    #[test]
    fn a_post_read_back_counts_as_it_did_when_written_and_its_negation_cancels_it() {
        let base = 1_764_000_000;
        let rows = [
            TweetRow { sentiment_probabilities: Some([0.1, 0.2, 0.7]), ..row(&["k"], &["h"], base, "positive", 0.8) },
            kind_row(&["k"], &[], base + 90, Some(("negative", 0.1)), Kind::Retweet),
        ];
        let written = partials(&rows);
        let tags = [vec!["k".to_owned()], vec!["k".to_owned()]];
        let hashtags = [vec!["h".to_owned()], vec![]];
        let read_back = partials_of(rows.iter().zip(tags.iter().zip(&hashtags)).map(|(r, (t, h))| Counted {
            created_us: r.created_at.timestamp_micros(),
            rule_tags: t,
            hashtags: h,
            kind: r.post.kind,
            sentiment: r.sentiment_label.zip(r.sentiment_score),
            probabilities: r.sentiment_probabilities,
            kafka_topic: "t",
            kafka_partition: 0,
        }));
        assert_eq!(read_back, written);
        for (k, p) in &written {
            let n = p.negated();
            assert_eq!(
                (p.tweets + n.tweets, p.scored + n.scored, p.retweets + n.retweets, p.prob_rows + n.prob_rows),
                (0, 0, 0, 0),
                "{k:?}"
            );
            assert_eq!(p.score_sum + n.score_sum, 0.0);
            assert_eq!(n.prob_sums.iter().zip(p.prob_sums).map(|(a, b)| a + b).sum::<f64>(), 0.0);
        }
    }

    #[test]
    fn probabilities_are_summed_over_the_posts_that_have_them() {
        let base = 1_764_000_000;
        let with = |p: [f64; 3], kind: Kind| TweetRow {
            sentiment_probabilities: Some(p),
            ..kind_row(&["k"], &[], base, Some(("neutral", 0.5)), kind)
        };
        let rows = [
            with([0.1, 0.6, 0.3], Kind::Original),
            with([0.2, 0.2, 0.6], Kind::Reply),
            with([0.9, 0.05, 0.05], Kind::Retweet),
            // Scored by a binary model: counted in `scored`, not in the probability sums.
            kind_row(&["k"], &[], base, Some(("positive", 0.9)), Kind::Original),
        ];
        let p = partials(&rows);
        let hour = p.iter().find(|(k, _)| k.window_minutes == 60).unwrap().1;
        assert_eq!((hour.scored, hour.prob_rows), (3, 2), "retweets are left out as for the labels");
        for (got, want) in hour.prob_sums.iter().zip([0.3, 0.8, 0.9]) {
            assert!((got - want).abs() < 1e-9, "{:?}", hour.prob_sums);
        }
    }
}

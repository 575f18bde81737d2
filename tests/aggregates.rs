//! The aggregates table against the real S3 endpoint: after concurrent partitions, redeliveries,
//! out-of-order batches, a re-sent tweet and a late tweet, the summed partials equal a from-scratch
//! recount of the tweets table, both tables read back with the independent reader.

use chrono::DateTime;
use tweetlake_tests::recount::{assert_partials_match_recount, window_start};
use tweetlake_tests::*;

const BASE_MS: i64 = 1_764_000_000_000; // an hour boundary

/// A tweet on `partition` at `offset`, created `created_min` minutes after BASE_MS and produced a
/// minute after that (or later for a late arrival), tagged with `rule`, with hashtags in its text.
fn rec(partition: i32, offset: i64, id: u64, created_min: i64, rule: &str, text: &str) -> Rec {
    let created = DateTime::from_timestamp_millis(BASE_MS + created_min * 60_000).unwrap();
    Rec {
        partition,
        offset,
        timestamp_ms: BASE_MS + (created_min.max(offset) + 1) * 60_000,
        value: Some(envelope(&id.to_string(), text, &created.to_rfc3339(), rule)),
    }
}

fn texts(i: i64) -> &'static str {
    ["I love #rust and #async :)", "this is awful #rust :(", "meh #delta", "great day", "hate waiting #async"][i as usize % 5]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summed_partials_equal_a_recount_of_the_tweets_table() {
    let t = s3_tables("aggs");
    let p0: Vec<Rec> = (0..10).map(|i| rec(0, i, 1_000 + i as u64, i, ["rust", "delta"][i as usize % 2], texts(i))).collect();
    let p1: Vec<Rec> = (0..15).map(|i| rec(1, i, 2_000 + i as u64, i * 7, "rust", texts(i + 1))).collect();

    // Two partitions committing at once, through two processors (as two Lambda instances would).
    let (a, b) = (processor(&t, &[]).await, processor(&t, &[]).await);
    let (sa, sb) = tokio::join!(a.process_event(event(&p0)), b.process_event(event(&p1[..10])));
    let (sa, sb) = (sa.unwrap(), sb.unwrap());
    assert!(sa.aggregate_rows > 0 && sb.aggregate_rows > 0);

    // Redelivery of p0 whole; p1 partly again, reversed, with five new records.
    let again = a.process_event(event(&p0)).await.unwrap();
    assert_eq!((again.rows_written, again.aggregate_rows, again.committed_versions.aggregates), (0, 0, None));
    let mut overlap = p1[5..15].to_vec();
    overlap.reverse();
    let s = b.process_event(event(&overlap)).await.unwrap();
    assert_eq!(s.rows_written, 5);

    // A late tweet (created two hours before it arrives) and a re-send of tweet 1000 at a later offset.
    let late = rec(0, 10, 3_000, -120, "rust", "late but #rust :)");
    let resent = Rec { offset: 11, ..p0[0].clone() };
    let s = a.process_event(event(&[late, resent])).await.unwrap();
    assert_eq!((s.rows_written, s.duplicates_in_window), (1, 1));

    let tweets = read_table(&t.tweets, &["tweetlake:tweets:0", "tweetlake:tweets:1"]);
    let aggs = read_table(&t.aggregates, &["tweetlake:tweets:0", "tweetlake:tweets:1"]);
    assert_eq!(tweets["rows"].as_array().unwrap().len(), 26, "10 + 15 + the late tweet");
    assert_eq!(aggs["txn"], tweets["txn"], "both tables record the same offsets");
    assert_eq!(aggs["partition_columns"], serde_json::json!(["window_date"]));
    assert_eq!((aggs["protocol"]["reader"].as_i64(), aggs["protocol"]["writer"].as_i64()), (Some(1), Some(2)));

    let got = assert_partials_match_recount(&tweets, &aggs);
    let two_hours_before = DateTime::from_timestamp_millis(BASE_MS - 7_200_000).unwrap().to_rfc3339();
    let late_hour = ("rule".to_string(), "rust".to_string(), 60, window_start(&two_hours_before, 60));
    assert_eq!(got[&late_hour].0, 1, "the late tweet has its own (old) window");
}

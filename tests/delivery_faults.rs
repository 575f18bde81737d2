//! "Nothing lost, nothing stuck": the process function under overlapping delivery, hostile records
//! and storage failures, against real Delta tables on local disk and on the S3 endpoint, each table
//! read back by the independent reader.

use serde_json::Value;
use std::collections::BTreeMap;
use tweetlake_tests::on_both_backends;
use tweetlake_tests::recount::assert_partials_match_recount;
use tweetlake_tests::*;

const P0: &str = "tweetlake:tweets:0";

/// Every offset `0..n` of partition 0 is in the tweets table exactly once, every table records `n - 1`,
/// and the aggregates equal a recount of the tweets.
fn assert_each_offset_once(t: &Tables, n: i64) -> Value {
    let tweets = read_table(&t.tweets, &[P0]);
    assert_eq!(offsets_of(&tweets), (0..n).collect::<Vec<_>>(), "every offset exactly once");
    assert_eq!(tweets["txn"][P0], n - 1);
    let aggs = read_table(&t.aggregates, &[P0]);
    assert_eq!(aggs["txn"][P0], n - 1);
    assert_partials_match_recount(&tweets, &aggs);
    tweets
}

/// Records `from..to` of partition 0, tweet ids `9000 + offset`.
fn slice(from: i64, to: i64) -> Vec<u8> {
    event(&good_recs(0, from, (to - from) as usize, 9_000 + from as u64))
}

/// Two batches of one partition overlap (A = 0–49, B = 25–74), as when the event source mapping's
/// pollers rebalance while an invocation is in flight: in either order, and at the same time through
/// two processors (two Lambda instances), every offset lands once and the summaries count only what
/// each invocation committed.
async fn overlapping_batches_in_both_orders(t: Tables) {
    let (a, b) = (slice(0, 50), slice(25, 75));
    let p = processor(&t, &[]).await;
    let sb = p.process_event(&b).await.unwrap();
    let sa = p.process_event(&a).await.unwrap();
    assert_eq!((sb.rows_written, sa.rows_written, sa.redelivered_skipped), (50, 25, 25), "A adds what B did not hold");
    assert_each_offset_once(&t, 75);

    for (i, order) in [[0, 1], [1, 0]].iter().enumerate() {
        let t = match t.tweets.starts_with("s3://") {
            true => s3_tables(&format!("overlap-race-{i}")),
            false => local_tables(),
        };
        let (p1, p2) = (processor(&t, &[]).await, processor(&t, &[]).await);
        let events = [&a, &b];
        let (s1, s2) = tokio::join!(deliver(&p1, events[order[0]], 50), deliver(&p2, events[order[1]], 50));
        assert_eq!(s1.rows_written + s2.rows_written, 75, "the summaries add up to the rows committed");
        assert_each_offset_once(&t, 75);
    }
}
on_both_backends!(overlap_two_ways, overlapping_batches_in_both_orders);

/// Three overlapping batches at once through three processors, after a batch already landed.
async fn three_way_overlap(t: Tables) {
    let p = processor(&t, &[]).await;
    deliver(&p, &slice(0, 10), 1).await;
    let ps = [processor(&t, &[]).await, processor(&t, &[]).await, processor(&t, &[]).await];
    let evs = [slice(10, 60), slice(35, 85), slice(60, 110)];
    let (s1, s2, s3) = tokio::join!(deliver(&ps[2], &evs[2], 100), deliver(&ps[1], &evs[1], 100), deliver(&ps[0], &evs[0], 100));
    assert_eq!(s1.rows_written + s2.rows_written + s3.rows_written, 100);
    assert_each_offset_once(&t, 110);
}
on_both_backends!(overlap_three_ways, three_way_overlap);

/// A batch after a gap waits (retryable, naming the missing offsets) while an earlier batch may still be
/// in flight; once the gap has lasted the grace period it is accepted as offsets that do not exist.
async fn gap_waits_then_is_accepted(t: Tables) {
    let p = processor(&t, &[("TWEETLAKE_OFFSET_GAP_GRACE_SECS", "2")]).await;
    deliver(&p, &slice(0, 10), 1).await;
    let err = p.process_event(slice(20, 30)).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("tweets-0: offsets 10 to 19 are not in the tables yet"), "{err}");
    assert_eq!(read_table(&t.tweets, &[P0])["txn"][P0], 9, "nothing committed past the gap");
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let s = p.process_event(slice(20, 30)).await.unwrap();
    assert_eq!(s.offset_gaps_accepted, vec!["tweets-0: 10..=19".to_string()]);
    assert_eq!(s.rows_written, 10);
    let tweets = read_table(&t.tweets, &[P0]);
    assert_eq!(offsets_of(&tweets), (0..10).chain(20..30).collect::<Vec<_>>());
    assert_eq!(tweets["txn"][P0], 29);
}
on_both_backends!(gap, gap_waits_then_is_accepted);

/// `events/hostile-batch.json`: headers that are null, out of range or objects, values that are null,
/// objects or numbers, timestamps that are strings or no real time (1e300, i64::MAX, 1e16, 2100), a
/// negative partition; each is quarantined by its rule while the two good tweets around them land.
async fn hostile_records_are_quarantined_and_the_rest_lands(t: Tables) {
    let p = processor(&t, &[]).await;
    let s = p.process_event(sample_event("hostile-batch.json")).await.unwrap();
    assert_eq!(s.records_in, 14);
    assert_eq!(s.rows_written, 2);
    let rules: BTreeMap<String, usize> =
        [("decodable", 7), ("kafka_timestamp", 4), ("value_present", 1)].iter().map(|(r, n)| (r.to_string(), *n)).collect();
    assert_eq!(s.quarantined, rules);
    let q = read_table(&t.quarantine, &[P0]);
    let rows = q["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 12);
    assert_eq!(q["txn"][P0], 127, "the placed records' offsets are recorded");
    let error_at = |offset: i64| -> String {
        rows.iter().find(|r| r["kafka_offset"] == offset).map(|r| r["error"].as_str().unwrap().to_owned()).unwrap()
    };
    assert!(error_at(115).contains("headers[0].tweetlake-source: invalid type: null"), "{}", error_at(115));
    assert!(error_at(116).contains("300"), "{}", error_at(116));
    assert!(error_at(122).contains("9223372036854775807"), "{}", error_at(122));
    // An undecodable record keeps its JSON as received, so nothing of it is lost.
    let payload = rows.iter().find(|r| r["kafka_offset"] == 119).unwrap()["payload"].as_str().unwrap().to_owned();
    assert!(payload.contains(r#""not":"base64""#) || payload.contains(r#""not": "base64""#), "{payload}");
    let unplaced = rows.iter().find(|r| r["kafka_partition"] == -3).expect("the negative partition's record");
    assert_eq!(unplaced["kafka_offset"], -1, "no Kafka position is invented for it");
    let tweets = read_table(&t.tweets, &[P0]);
    assert_eq!(offsets_of(&tweets), vec![114, 127]);
    assert_eq!(tweets["txn"][P0], 127);

    // A redelivery skips every placed record; the record without a Kafka position cannot be matched to
    // a recorded offset and is quarantined again (README, "Quarantine").
    let again = p.process_event(sample_event("hostile-batch.json")).await.unwrap();
    assert_eq!((again.redelivered_skipped, again.rows_written), (13, 0));
    assert_eq!(again.quarantined, [("decodable".to_string(), 1)].into_iter().collect());
}
on_both_backends!(hostile, hostile_records_are_quarantined_and_the_rest_lands);

/// A record stamped in 2100 is quarantined instead of moving the dedup window's horizon, so a re-send
/// of another tweet a minute later is still recognised.
async fn future_timestamp_does_not_let_a_resend_through(t: Tables) {
    let p = processor(&t, &[("TWEETLAKE_DEDUP_WINDOW_SECS", "3600")]).await;
    let mut first = good_recs(0, 0, 2, 4_000);
    first[1].timestamp_ms = 4_102_444_800_000;
    let s = p.process_event(event(&first)).await.unwrap();
    assert_eq!((s.rows_written, s.quarantined.get("kafka_timestamp").copied()), (1, Some(1)));
    let resend = Rec { offset: 2, timestamp_ms: first[0].timestamp_ms + 60_000, ..first[0].clone() };
    let s = p.process_event(event(&[resend])).await.unwrap();
    assert_eq!((s.duplicates_in_window, s.rows_written), (1, 0));
    assert_eq!(offsets_of(&read_table(&t.tweets, &[P0])), vec![0]);
}
on_both_backends!(future_timestamp, future_timestamp_does_not_let_a_resend_through);

/// Event-level garbage fails the whole event as non-retryable, saying what is wrong with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_is_not_a_kafka_event_fails_naming_why() {
    let t = local_tables();
    let p = processor(&t, &[]).await;
    for (payload, says) in [
        (&br#"{"eventSource":"aws:kafka","records":[1,2]}"#[..], "records: invalid type: sequence"),
        (b"{\"eventSource\":\"aws:kafka\",", "not JSON"),
        (br#"{"records":{}}"#, "missing field `eventSource`"),
        (br#"{"eventSource":"aws:sqs","records":{}}"#, "aws:sqs"),
    ] {
        let err = p.process_event(payload).await.unwrap_err();
        assert!(!err.is_retryable() && err.to_string().contains(says), "{err}");
    }
}

/// A write that fails inside delta-rs's writer (the partition folder is a file) makes the storage
/// client panic while cleaning up ("Already shut down"); the batch fails as retryable instead of taking
/// the process down, and once storage works again the retry lands every row once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_failure_in_the_writer_is_retryable_and_the_retry_lands_once() {
    let t = local_tables();
    let p = processor(&t, &[]).await;
    let blocker = std::path::Path::new(&t.tweets).join("created_date=2021-09-22");
    std::fs::write(&blocker, b"not a folder").unwrap();
    let err = p.process_event(sample_event("msk-batch.json")).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    std::fs::remove_file(&blocker).unwrap();
    let s = p.process_event(sample_event("msk-batch.json")).await.unwrap();
    assert_eq!(s.rows_written, 20);
    let tweets = read_table(&t.tweets, &[P0, "tweetlake:tweets:1"]);
    assert_eq!(tweets["rows"].as_array().unwrap().len(), 20);
    assert_partials_match_recount(&tweets, &read_table(&t.aggregates, &[]));
}

/// A batch the event source mapping gave up on: it fails while storage is broken, the mapping stores it
/// in its on-failure destination and moves on, so its offsets end up behind the tables' and delivering
/// it again is skipped. Redriven after the fix it lands once (a post it repeats from an earlier offset
/// excepted), and a second redrive changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_is_redriven_once_after_the_fix() {
    let t = local_tables();
    let p = processor(&t, &[("TWEETLAKE_OFFSET_GAP_GRACE_SECS", "0")]).await;
    deliver(&p, &slice(0, 10), 1).await;
    // Offsets 10–19, posted on another day; the last repeats post 9003, written from offset 3.
    let mut failed: Vec<Rec> = (10..19)
        .map(|o| Rec {
            partition: 0,
            offset: o,
            timestamp_ms: 1_764_000_000_000 + o * 1000,
            value: Some(envelope(&(8_000 + o).to_string(), "what a day for the #redrive", "2025-11-23T10:00:00Z", "test")),
        })
        .collect();
    failed.push(Rec { offset: 19, ..good_recs(0, 3, 1, 9_003).remove(0) });
    let failed = event(&failed);
    let blocker = std::path::Path::new(&t.tweets).join("created_date=2025-11-23");
    std::fs::write(&blocker, b"not a folder").unwrap();
    for _ in 0..2 {
        assert!(p.process_event(&failed).await.unwrap_err().is_retryable(), "the batch fails while storage is broken");
    }
    // Lambda's on-failure record for an S3 destination: the invocation's metadata and the event.
    let on_failure = serde_json::json!({
        "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 2},
        "version": "1.0",
        "KafkaBatchInfo": {"topic": "tweets", "partition": 0, "firstRecordOffset": 10, "lastRecordOffset": 19},
        "payload": serde_json::from_slice::<Value>(&failed).unwrap(),
    })
    .to_string();
    // The mapping moves on; the offsets the failed batch held are accepted as a gap.
    deliver(&p, &slice(20, 30), 5).await;
    std::fs::remove_file(&blocker).unwrap();
    let again = p.process_event(&failed).await.unwrap();
    assert_eq!((again.rows_written, again.redelivered_skipped), (0, 10), "delivered again, the batch is skipped: {again:?}");

    let r = p.redrive(on_failure.as_bytes()).await.unwrap();
    assert_eq!((r.batch.rows_written, r.batch.duplicates_in_window), (9, 1), "{r:?}");
    let topic = r.redrive_topics.replace('*', "tweets");
    let redrive_txn = format!("tweetlake:{topic}:0");
    let tweets = read_table(&t.tweets, &[P0, &redrive_txn]);
    assert_eq!((tweets["txn"][P0].as_i64(), tweets["txn"][redrive_txn.as_str()].as_i64()), (Some(29), Some(19)));
    let rows = tweets["rows"].as_array().unwrap();
    let mut ids: Vec<&str> = rows.iter().map(|r| r["tweet_id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!((rows.len(), ids.len()), (29, 29), "every post once");
    let redriven: Vec<&Value> = rows.iter().filter(|r| r["kafka_topic"] == topic.as_str()).collect();
    assert_eq!(redriven.len(), 9, "the redriven rows say where they came from");
    assert_partials_match_recount(&tweets, &read_table(&t.aggregates, &[]));

    let twice = p.redrive(on_failure.as_bytes()).await.unwrap();
    assert_eq!((twice.batch.rows_written, twice.batch.redelivered_skipped), (0, 10), "{twice:?}");
    assert_eq!(read_table(&t.tweets, &[])["rows"].as_array().unwrap().len(), 29);
    assert!(p.redrive(b"{\"version\":\"1.0\"}").await.unwrap_err().to_string().contains("on-failure record"));
}

/// A limit set too low quarantines a batch; once it is raised, the rule's quarantined records are read
/// back from the quarantine table and redriven: they land once, the quarantine shows where each went,
/// and a second redrive changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantined_records_are_redriven_once_after_their_rule_is_fixed() {
    let t = local_tables();
    let strict = processor(&t, &[("TWEETLAKE_MAX_TEXT_CHARS", "20")]).await;
    let s = strict.process_event(slice(0, 5)).await.unwrap();
    assert_eq!((s.rows_written, s.quarantined.get("text_length")), (0, Some(&5)), "{s:?}");
    drop(strict);

    let fixed = processor(&t, &[]).await;
    let storage = std::collections::HashMap::new();
    let records = tweetlake_local::redrive::quarantined(&t.quarantine, &storage, "text_length").await.unwrap();
    assert_eq!(records.iter().map(|r| r.offset).collect::<Vec<_>>(), (0..5).collect::<Vec<_>>());
    let r = fixed.redrive_quarantined(records).await.unwrap();
    assert_eq!((r.batch.rows_written, r.batch.quarantined.get("redriven")), (5, Some(&5)), "{r:?}");
    let topic = r.redrive_topics.replace('*', "tweets");
    let tweets = read_table(&t.tweets, &[]);
    let rows = tweets["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|row| row["kafka_topic"] == topic.as_str()), "{topic}");
    assert_partials_match_recount(&tweets, &read_table(&t.aggregates, &[]));
    // Each quarantined record keeps its row, and a `redriven` row at the same position says where it went.
    let quarantine = read_table(&t.quarantine, &[]);
    let q = quarantine["rows"].as_array().unwrap();
    let marks: Vec<&Value> = q.iter().filter(|row| row["rule"] == "redriven").collect();
    assert_eq!((q.len(), marks.len()), (10, 5));
    assert!(marks.iter().all(|m| m["kafka_topic"] == "tweets" && m["error"].as_str().unwrap().contains(&topic)), "{marks:?}");

    let again = tweetlake_local::redrive::quarantined(&t.quarantine, &storage, "text_length").await.unwrap();
    assert_eq!(again.len(), 5, "the marks are not records to redrive");
    let twice = fixed.redrive_quarantined(again).await.unwrap();
    assert_eq!((twice.batch.rows_written, twice.batch.redelivered_skipped), (0, 5), "{twice:?}");
    assert!(twice.batch.quarantined.is_empty(), "{twice:?}");
    assert_eq!(read_table(&t.tweets, &[])["rows"].as_array().unwrap().len(), 5);
    assert_eq!(read_table(&t.quarantine, &[])["rows"].as_array().unwrap().len(), 10);
}

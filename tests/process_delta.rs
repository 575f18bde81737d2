//! The process pipeline against real Delta tables on the local S3 endpoint (moto) and on local disk,
//! read back by an independent reader (Python `deltalake`).

use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use tweetlake_tests::on_both_backends;
use tweetlake_tests::*;

const P0: &str = "tweetlake:tweets:0";
const P1: &str = "tweetlake:tweets:1";

fn ids(table: &Value) -> Vec<String> {
    let mut v: Vec<String> =
        table["rows"].as_array().unwrap().iter().map(|r| r["tweet_id"].as_str().unwrap().to_owned()).collect();
    v.sort();
    v
}

fn assert_unique(table: &Value) {
    let all = ids(table);
    let set: HashSet<&String> = all.iter().collect();
    assert_eq!(set.len(), all.len(), "duplicate tweet ids in the table");
}

async fn sample_batch_then_redelivered_three_times(t: Tables) {
    let p = processor(&t, &[]).await;
    let s = p.process_event(sample_event("msk-batch.json")).await.unwrap();
    assert_eq!(s.records_in, 27);
    assert_eq!(s.rows_written, 20);
    assert_eq!(s.duplicates_in_batch, 1);
    let expected_rules: BTreeMap<String, usize> =
        ["created_at", "envelope_version", "id_format", "json", "required_fields", "value_present"]
            .iter()
            .map(|r| (r.to_string(), 1))
            .collect();
    assert_eq!(s.quarantined, expected_rules);
    let v1 = s.committed_versions.tweets.expect("tweets committed");
    for _ in 0..3 {
        let again = p.process_event(sample_event("msk-batch.json")).await.unwrap();
        assert_eq!(again.redelivered_skipped, 27);
        assert_eq!((again.rows_written, again.committed_versions.tweets, again.committed_versions.quarantine), (0, None, None));
    }
    let tweets = read_table(&t.tweets, &[P0, P1]);
    assert_eq!(tweets["version"].as_i64(), Some(v1), "redeliveries made no commit");
    assert_eq!(tweets["rows"].as_array().unwrap().len(), 20);
    assert_unique(&tweets);
    assert_eq!(tweets["txn"][P0], 110);
    assert_eq!(tweets["txn"][P1], 215);
    assert_eq!(tweets["protocol"], serde_json::json!({"reader": 1, "writer": 2}));
    assert_eq!(tweets["partition_columns"], serde_json::json!(["created_date"]));
    assert!(tweets["schema"]["created_at"].as_str().unwrap().contains("UTC"), "timestamps are UTC: {}", tweets["schema"]);
    let row = &tweets["rows"][0];
    assert!(["negative", "neutral", "positive"].contains(&row["sentiment_label"].as_str().unwrap()));
    assert!(row["model_version"].as_str().unwrap().starts_with("s140-lr@"));
    assert_eq!(row["rule_tags"], serde_json::json!(["brexit"]));
    let q = read_table(&t.quarantine, &[P0, P1]);
    let mut rules: Vec<&str> = q["rows"].as_array().unwrap().iter().map(|r| r["rule"].as_str().unwrap()).collect();
    rules.sort();
    assert_eq!(rules, vec!["created_at", "envelope_version", "id_format", "json", "required_fields", "value_present"]);
    assert!(q["rows"].as_array().unwrap().iter().all(|r| !r["error"].as_str().unwrap().is_empty() && r["kafka_partition"] == 1));
    assert_eq!(q["txn"][P1], 215);
}
on_both_backends!(redelivery, sample_batch_then_redelivered_three_times);

async fn partial_overlap_and_out_of_order(t: Tables) {
    let p = processor(&t, &[]).await;
    let all = good_recs(0, 0, 30, 1_000);
    // The second half first would be a Kafka ordering violation; what does happen is overlap and
    // stale redelivery, each of which must add nothing twice.
    let s1 = p.process_event(event(&all[..12])).await.unwrap();
    assert_eq!(s1.rows_written, 12);
    let s2 = p.process_event(event(&all[8..20])).await.unwrap();
    assert_eq!((s2.redelivered_skipped, s2.rows_written), (4, 8));
    let mut reversed = all[15..30].to_vec();
    reversed.reverse();
    let s3 = p.process_event(event(&reversed)).await.unwrap();
    assert_eq!((s3.redelivered_skipped, s3.rows_written), (5, 10));
    let stale = p.process_event(event(&all[3..9])).await.unwrap();
    assert_eq!((stale.redelivered_skipped, stale.rows_written, stale.committed_versions.tweets), (6, 0, None));
    let table = read_table(&t.tweets, &[P0]);
    assert_eq!(ids(&table), (1_000..1_030).map(|i: u64| i.to_string()).collect::<Vec<_>>().tap_sort());
    assert_eq!(table["txn"][P0], 29);
    let offsets: Vec<i64> = {
        let mut o: Vec<i64> = table["rows"].as_array().unwrap().iter().map(|r| r["kafka_offset"].as_i64().unwrap()).collect();
        o.sort();
        o
    };
    assert_eq!(offsets, (0..30).collect::<Vec<_>>());
}
on_both_backends!(overlap, partial_overlap_and_out_of_order);

trait TapSort {
    fn tap_sort(self) -> Self;
}
impl TapSort for Vec<String> {
    fn tap_sort(mut self) -> Self {
        self.sort();
        self
    }
}

async fn resent_tweet_at_later_offset(t: Tables) {
    let p = processor(&t, &[("TWEETLAKE_DEDUP_WINDOW_SECS", "3600")]).await;
    let first = good_recs(1, 0, 5, 7_000);
    p.process_event(event(&first)).await.unwrap();
    // Ingest retried: tweets 7000 and 7001 come again at later offsets, next to a new one.
    let mut again = vec![first[0].clone(), first[1].clone(), good_recs(1, 7, 1, 7_100)[0].clone()];
    for (i, r) in again.iter_mut().enumerate() {
        r.offset = 5 + i as i64;
        r.timestamp_ms += 60_000;
    }
    let s = p.process_event(event(&again)).await.unwrap();
    assert_eq!((s.duplicates_in_window, s.rows_written), (2, 1));
    // A fresh processor (a new Lambda container) reads the stored window, not memory.
    let p2 = processor(&t, &[("TWEETLAKE_DEDUP_WINDOW_SECS", "3600")]).await;
    let mut late = first[2].clone();
    late.offset = 8;
    late.timestamp_ms += 120_000;
    let s = p2.process_event(event(&[late.clone()])).await.unwrap();
    assert_eq!((s.duplicates_in_window, s.rows_written), (1, 0));
    // Past the window the id is forgotten: the state stays bounded, and the re-send is a new row.
    let much_later = first[3].timestamp_ms + 2 * 3_600_000;
    let filler = Rec { offset: 9, timestamp_ms: much_later, ..good_recs(1, 9, 1, 7_200)[0].clone() };
    p2.process_event(event(&[filler])).await.unwrap();
    let mut later_still = first[3].clone();
    later_still.offset = 10;
    later_still.timestamp_ms = much_later + 1;
    let s = p2.process_event(event(&[later_still])).await.unwrap();
    assert_eq!((s.duplicates_in_window, s.rows_written), (0, 1), "ids older than the window are forgotten");
    let table = read_table(&t.tweets, &["tweetlake:tweets:1"]);
    assert_eq!(table["rows"].as_array().unwrap().len(), 8);
    assert_eq!(table["txn"]["tweetlake:tweets:1"], 10);
}
on_both_backends!(window, resent_tweet_at_later_offset);

async fn poison_batch_is_quarantined_not_failed(t: Tables) {
    let p = processor(&t, &[]).await;
    let s = p.process_event(sample_event("poison-batch.json")).await.unwrap();
    assert_eq!(s.rows_written, 0);
    let rules: Vec<&str> = s.quarantined.keys().map(String::as_str).collect();
    assert_eq!(rules, vec!["decodable", "schema", "utf8"]);
    let q = read_table(&t.quarantine, &[P0]);
    assert_eq!(q["rows"].as_array().unwrap().len(), 3);
    assert_eq!(q["txn"][P0], 113);
    let payloads: Vec<&str> = q["rows"].as_array().unwrap().iter().map(|r| r["payload"].as_str().unwrap()).collect();
    assert!(payloads.contains(&"%%%not-base64"), "the raw payload is kept: {payloads:?}");
    assert_eq!(read_table(&t.tweets, &[P0])["txn"][P0], 113, "offsets advance on the tweets table too");
}
on_both_backends!(poison, poison_batch_is_quarantined_not_failed);

async fn checkpoint_every_ten_commits(t: Tables) {
    let p = processor(&t, &[]).await;
    for b in 0..11 {
        let s = p.process_event(event(&good_recs(0, b * 2, 2, 50_000 + b as u64 * 2))).await.unwrap();
        assert_eq!(s.rows_written, 2);
    }
    let table = read_table(&t.tweets, &[P0]);
    assert_eq!(table["rows"].as_array().unwrap().len(), 22);
    assert_eq!(table["txn"][P0], 21);
    // Version 0 creates the table; the tenth commit is version 9 and carries the checkpoint.
    assert_eq!(table["checkpoints"], serde_json::json!(["00000000000000000009.checkpoint.parquet"]));
}
on_both_backends!(checkpoints, checkpoint_every_ten_commits);

/// Starts a processor on `t` whose S3 endpoint is 127.0.0.1:`port`, with one retry and `extra`
/// settings; it must fail as retryable. Returns the error and how long the start took.
async fn failed_start(t: &Tables, port: u16, extra: &[(&str, &str)]) -> (tweetlake_pipeline::Error, std::time::Duration) {
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut settings = vec![("AWS_ENDPOINT_URL", endpoint.as_str()), ("TWEETLAKE_S3_MAX_RETRIES", "1")];
    settings.extend_from_slice(extra);
    let started = std::time::Instant::now();
    let err = match tweetlake_pipeline::Processor::new(test_config(t, &settings)).await {
        Ok(_) => panic!("nothing serves S3 on port {port}"),
        Err(e) => e,
    };
    assert!(err.is_retryable(), "{err}");
    (err, started.elapsed())
}

/// S3 unreachable: the processor fails fast (bounded retries) with an error the event source mapping
/// should retry, naming the table; nothing was written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_s3_fails_as_retryable() {
    let t = s3_tables("unreachable");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (err, took) = failed_start(&t, closed, &[("TWEETLAKE_S3_RETRY_TIMEOUT_SECS", "2")]).await;
    assert!(err.to_string().contains(&t.tweets), "{err}");
    assert!(took.as_secs() < 30, "retries are bounded: {took:?}");
    // The real endpoint still holds no table there.
    let listing = std::process::Command::new(python())
        .args(["-c", &format!("import boto3,os;print(boto3.client('s3',endpoint_url=os.environ['AWS_ENDPOINT_URL'],region_name='us-east-1',aws_access_key_id='t',aws_secret_access_key='t').list_objects_v2(Bucket='{}').get('KeyCount'))", t.tweets.trim_start_matches("s3://").split('/').next().unwrap())])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&listing.stdout).trim(), "0");
}

/// S3 answers nothing (a stalled endpoint: connections accepted, never answered): each request gives up
/// after `TWEETLAKE_S3_TIMEOUT_SECS` instead of the client's 30 s default, and the error says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_s3_fails_within_the_request_timeout() {
    let t = s3_tables("stalled");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept and hold every connection without a byte in reply (closed with the test process).
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    let (err, took) =
        failed_start(&t, port, &[("TWEETLAKE_S3_RETRY_TIMEOUT_SECS", "3"), ("TWEETLAKE_S3_TIMEOUT_SECS", "1")]).await;
    assert!(err.to_string().contains("did not answer in time"), "{err}");
    assert!(took.as_secs() < 15, "each request is bounded: {took:?}");
}

/// A table in a bucket that does not exist fails the start with words a person can act on, not the S3
/// client's raw text alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_named_as_such() {
    s3_endpoint();
    let get = |k: &str| match k {
        "TWEETLAKE_TABLE_URI" => Some("s3://tweetlake-no-such-bucket/tweets".to_owned()),
        "TWEETLAKE_QUARANTINE_URI" => Some("s3://tweetlake-no-such-bucket/quarantine".to_owned()),
        "TWEETLAKE_S3_MAX_RETRIES" => Some("0".to_owned()),
        k if k.starts_with("AWS_") => std::env::var(k).ok(),
        _ => None,
    };
    let err = match tweetlake_pipeline::Processor::new(tweetlake_pipeline::ProcessConfig::from_lookup(get).unwrap()).await {
        Ok(_) => panic!("there is no such bucket"),
        Err(e) => e,
    };
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(err.to_string().contains("s3://tweetlake-no-such-bucket/tweets"), "{err}");
}

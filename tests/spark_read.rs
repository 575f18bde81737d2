//! Spark reads our tables: Apache Spark 4.0 with Delta Lake 4.0 (the reference implementation, what users
//! query the tables with) reads the three tables the process function wrote, on the local disk and on
//! the S3 endpoint through `s3a://`: the table contract's columns and types, every row once, the
//! protocol, the commit history, the `txn` offsets, time travel and reading across a checkpoint, the
//! aggregates equal to a recount of the tweets; then again after the maintenance function's OPTIMIZE and
//! VACUUM. `infra/spark/read_tweets.py` runs unchanged against the S3 tables.

use chrono::{Duration, Utc};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use tweetlake_pipeline::MaintenanceConfig;
use tweetlake_pipeline::tables::{aggregates, quarantine, tweets};
use tweetlake_tests::recount::assert_partials_match_recount;
use tweetlake_tests::*;

const TABLES: [&str; 3] = ["tweets", "quarantine", "aggregates"];

fn uri<'a>(t: &'a Tables, table: &str) -> &'a str {
    match table {
        "tweets" => &t.tweets,
        "quarantine" => &t.quarantine,
        _ => &t.aggregates,
    }
}

/// Writes several batches (two Kafka partitions, bad records, two partition dates, a checkpoint every
/// three commits) and returns the tweets table's row count at each version committed.
async fn write(t: &Tables) -> BTreeMap<i64, usize> {
    let p = processor(t, &[("TWEETLAKE_CHECKPOINT_INTERVAL", "3")]).await;
    let batches = [
        sample_event("msk-batch.json"),
        sample_event("poison-batch.json"),
        sample_event("hostile-batch.json"),
        event(&good_recs(5, 0, 30, 70_000)),
        event(&good_recs(5, 30, 30, 70_030)),
        event(&good_recs(6, 0, 30, 80_000)),
    ];
    let (mut rows, mut at) = (0, BTreeMap::from([(0, 0)]));
    for b in &batches {
        let s = deliver(&p, b, 5).await;
        rows += s.rows_written;
        if let Some(v) = s.committed_versions.tweets {
            at.insert(v, rows);
        }
    }
    at
}

/// What one Spark read must show of a backend's tables; returns the tweet ids Spark read.
fn check(name: &str, t: &Tables, spark: &Value, counts_at: &BTreeMap<i64, usize>) -> BTreeSet<String> {
    let contracts = [
        (&*tweets::SCHEMA, tweets::PARTITIONS),
        (&*quarantine::SCHEMA, quarantine::PARTITIONS),
        (&*aggregates::SCHEMA, aggregates::PARTITIONS),
    ];
    for (table, (schema, partitions)) in TABLES.into_iter().zip(contracts) {
        let s = &spark[format!("{name}/{table}")];
        assert_eq!(s["schema"], spark::contract(schema), "{name}/{table}: Spark's columns and types are the contract's");
        assert_eq!(s["detail"]["min_reader_version"], 1, "{name}/{table}");
        assert_eq!(s["detail"]["min_writer_version"], 2, "{name}/{table}");
        assert_eq!(s["detail"]["partition_columns"], json!(partitions), "{name}/{table}");
        let history = s["history"].as_array().unwrap();
        let versions: Vec<i64> = history.iter().map(|h| h[0].as_i64().unwrap()).collect();
        assert_eq!(versions, (0..versions.len() as i64).collect::<Vec<_>>(), "{name}/{table}: every commit listed");
        assert_eq!(history[0][1], "CREATE TABLE", "{name}/{table}");
        // The offsets Delta's own snapshot holds are the ones the independent Python reader sees.
        let txn = s["txn"].as_object().unwrap();
        assert!(txn.contains_key("tweetlake:tweets:0") && txn.contains_key("tweetlake:tweets:5"), "{name}/{table}: {txn:?}");
        let apps: Vec<&str> = txn.keys().map(String::as_str).collect();
        let py = read_table(uri(t, table), &apps);
        assert_eq!(s["txn"], py["txn"], "{name}/{table}: the same offsets in both readers");
        assert_eq!(s["rows"].as_array().unwrap().len(), py["rows"].as_array().unwrap().len(), "{name}/{table}: row count");
    }
    let tweets = &spark[format!("{name}/tweets")];
    let ids: Vec<String> =
        tweets["rows"].as_array().unwrap().iter().map(|r| r["tweet_id"].as_str().unwrap().to_owned()).collect();
    let unique: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(unique.len(), ids.len(), "{name}: no duplicate tweet_id");
    let dates: BTreeSet<&str> = tweets["rows"].as_array().unwrap().iter().map(|r| r["created_date"].as_str().unwrap()).collect();
    assert!(dates.len() >= 2, "{name}: rows of several partitions read back: {dates:?}");
    // Time travel, to versions on both sides of a checkpoint.
    for (v, rows) in counts_at {
        assert_eq!(tweets["counts_at"][v.to_string()], *rows as i64, "{name}: rows as of version {v}");
    }
    assert_partials_match_recount(tweets, &spark[format!("{name}/aggregates")]);
    unique
}

fn spec(backends: &[(&str, &Tables, &BTreeMap<i64, usize>)]) -> Value {
    let mut tables = serde_json::Map::new();
    let mut versions = serde_json::Map::new();
    for (name, t, counts) in backends {
        for table in TABLES {
            tables.insert(format!("{name}/{table}"), json!(uri(t, table)));
        }
        versions.insert(format!("{name}/tweets"), json!(counts.keys().collect::<Vec<_>>()));
    }
    json!({ "tables": tables, "versions": versions })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spark_reads_our_tables_before_and_after_maintenance() {
    let (local, s3) = (local_tables(), s3_tables("spark"));
    let (at_local, at_s3) = tokio::join!(write(&local), write(&s3));
    let checkpoints: Vec<_> = std::fs::read_dir(std::path::Path::new(&local.tweets).join("_delta_log"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".checkpoint.parquet"))
        .collect();
    let latest = *at_local.keys().last().unwrap();
    assert!(!checkpoints.is_empty(), "a checkpoint was written");
    assert!(checkpoints.iter().all(|c| c[..20].parse::<i64>().unwrap() < latest), "commits follow the checkpoint");

    let backends = [("local", &local, &at_local), ("s3", &s3, &at_s3)];
    let before = read_spark(&backends);
    let ids: Vec<_> = backends.iter().map(|(name, t, at)| check(name, t, &before, at)).collect();

    // Maintenance two hours on, so VACUUM (retention one hour) deletes what OPTIMIZE replaced.
    for t in [&local, &s3] {
        let cfg = MaintenanceConfig::from_lookup(t.lookup(&[("TWEETLAKE_VACUUM_RETENTION_HOURS", "1")])).unwrap();
        let report = tweetlake_pipeline::maintenance::run(&cfg, Utc::now() + Duration::hours(2)).await.expect("maintenance");
        let tweets = &report.tables[0];
        assert!(tweets.files_compacted >= 2 && tweets.files_vacuumed >= 2, "{tweets:?}");
    }
    let after = read_spark(&backends);
    for ((name, t, at), ids) in backends.iter().zip(ids) {
        assert_eq!(check(name, t, &after, at), ids, "{name}: the same rows after OPTIMIZE and VACUUM");
        let ops: BTreeSet<&str> =
            after[format!("{name}/tweets")]["history"].as_array().unwrap().iter().map(|h| h[1].as_str().unwrap()).collect();
        assert!(ops.contains("OPTIMIZE") && ops.iter().any(|o| o.starts_with("VACUUM")), "{name}: {ops:?}");
    }

    // The user-facing snippet, unchanged, against the S3 tables.
    let root = format!("s3a://{}", s3.tweets.trim_start_matches("s3://").trim_end_matches("/tweets"));
    let jars: Vec<String> = std::fs::read_dir(spark::jars())
        .unwrap()
        .filter_map(|e| Some(e.ok()?.path().to_str()?.to_owned()))
        .filter(|p| p.ends_with(".jar"))
        .collect();
    // What `spark-submit` would be given, for the session the script starts itself.
    let submit_args = [
        "--master local[2] --driver-memory 1g".to_owned(),
        format!("--jars {}", jars.join(",")),
        format!("--conf spark.hadoop.fs.s3a.endpoint={}", s3_endpoint()),
        "--conf spark.hadoop.fs.s3a.path.style.access=true --conf spark.ui.showConsoleProgress=false pyspark-shell".to_owned(),
    ];
    let out = spark::python("infra/spark/read_tweets.py")
        .arg(&root)
        .env("PYSPARK_SUBMIT_ARGS", submit_args.join(" "))
        .output()
        .expect("the Spark venv's python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "read_tweets.py: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("|-- tweet_id: string") && stdout.contains("|-- created_at: timestamp"), "{stdout}");
    assert!(stdout.contains("|test"), "the rule of the generated tweets shows: {stdout}");
}

fn read_spark(backends: &[(&str, &Tables, &BTreeMap<i64, usize>); 2]) -> Value {
    let spec = spec(backends);
    tokio::task::block_in_place(|| spark::read(&spec))
}

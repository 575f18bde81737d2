//! Two OS processes of the `tweetlake` CLI commit to the same tables for different partitions at once;
//! no commit may be lost; then `tweetlake maintain` compacts the result. And two event-source-mapping
//! emulators (`tweetlake deliver`) split an eight-partition topic between them into one set of tables.
//! Lives in the CLI package so Cargo builds the binary it runs.

use serde_json::Value;
use std::collections::HashSet;
use tweetlake_tests::*;

const P0: &str = "tweetlake:tweets:0";
const P1: &str = "tweetlake:tweets:1";

fn assert_unique(table: &Value) {
    let all: Vec<&str> = table["rows"].as_array().unwrap().iter().map(|r| r["tweet_id"].as_str().unwrap()).collect();
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), all.len(), "duplicate tweet ids in the table");
}

async fn two_processes_different_partitions(t: Tables) {
    let dir = tempfile::tempdir().unwrap();
    let mut files = [Vec::new(), Vec::new()];
    for part in 0..2 {
        for b in 0..8 {
            let recs = good_recs(part, b * 5, 5, 100_000 * (part as u64 + 1) + b as u64 * 5);
            let path = dir.path().join(format!("p{part}-b{b}.json"));
            std::fs::write(&path, event(&recs)).unwrap();
            files[part as usize].push(path);
        }
    }
    // Create the tables first so both processes race on commits, not on creation.
    processor(&t, &[]).await;
    let children: Vec<_> = files
        .iter()
        .map(|fs| {
            let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_tweetlake"));
            c.arg("process").args(["--table", &t.tweets, "--quarantine", &t.quarantine]);
            for f in fs {
                c.arg("--event").arg(f);
            }
            c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("tweetlake CLI runs")
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "process failed: {}", String::from_utf8_lossy(&out.stderr));
        let summaries: Vec<Value> =
            String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(summaries.len(), 8);
        assert!(summaries.iter().all(|s| s["rows_written"] == 5), "{summaries:?}");
    }
    let table = read_table(&t.tweets, &[P0, P1]);
    assert_eq!(table["rows"].as_array().unwrap().len(), 80, "no commit lost");
    assert_unique(&table);
    assert_eq!((table["txn"][P0].as_i64(), table["txn"][P1].as_i64()), (Some(39), Some(39)));
    assert!(table["version"].as_i64().unwrap() >= 16);

    // Then `tweetlake maintain` compacts what the two processes wrote, losing nothing.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tweetlake"))
        .args(["maintain", "--table", &t.tweets, "--quarantine", &t.quarantine])
        .output()
        .unwrap();
    assert!(out.status.success(), "maintain failed: {}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((report["tables"][0]["files_before"].as_u64(), report["tables"][0]["files_after"].as_u64()), (Some(16), Some(1)));
    let after = read_table(&t.tweets, &[P0, P1]);
    assert_eq!((after["rows"].as_array().unwrap().len(), after["files"].as_u64()), (80, Some(1)));
    assert_unique(&after);
    assert_eq!(after["txn"], table["txn"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_dir() {
    two_processes_different_partitions(local_tables()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3() {
    two_processes_different_partitions(s3_tables("concurrent")).await;
}

/// Two `tweetlake deliver` emulators (OS processes) share one consumer group and one set of tables,
/// each delivering four of a topic's eight partitions at once, as the mapping's pollers do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_emulators_deliver_eight_partitions_into_one_table() {
    use tweetlake_tests::kafka::{GroupPosition, bootstrap, end_offsets, group_positions, new_topic, produce_keyed};
    let topic = new_topic("two-esm", 8).await;
    let hours = ["2026-11-27T10:05:00.000Z", "2026-11-27T11:20:00.000Z", "2026-11-28T09:40:00.000Z"];
    let records: Vec<(Vec<u8>, Vec<u8>)> = (0..1_200u64)
        .map(|i| {
            let id = (1_730_000_000_000_000_000 + i).to_string();
            let v = envelope(&id, &format!("tweet number {i}, a lovely day"), hours[i as usize % 3], ["a", "b"][i as usize % 2]);
            (id.into_bytes(), v)
        })
        .collect();
    produce_keyed(&bootstrap(), &topic, &records).await;
    let end = end_offsets(&bootstrap(), &topic);
    assert!(end.values().all(|e| *e > 0), "every partition holds tweets: {end:?}");
    let t = s3_tables("two-esm");
    // Create the tables first so the two emulators race on commits, not on creation.
    processor(&t, &[]).await;
    let group = format!("esm-{topic}");
    let children: Vec<_> = ["0,1,2,3", "4,5,6,7"]
        .iter()
        .map(|parts| {
            std::process::Command::new(env!("CARGO_BIN_EXE_tweetlake"))
                .args(["deliver", "--no-progress", "--batch-size", "40", "--window-ms", "200", "--partitions", parts])
                .args(["--topic", &topic, "--bootstrap", &bootstrap(), "--group", &group])
                .envs(t.env())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("tweetlake CLI runs")
        })
        .collect();
    let mut written = 0;
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "deliver failed: {}", String::from_utf8_lossy(&out.stderr));
        let progress: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(progress["retries"], 0, "{progress}");
        written += progress["rows_written"].as_u64().unwrap();
    }
    assert_eq!(written, 1_200, "the two emulators' summaries add up to every tweet");

    let apps: Vec<String> = end.keys().map(|p| format!("tweetlake:{topic}:{p}")).collect();
    let tweets = read_table(&t.tweets, &apps.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(tweets["rows"].as_array().unwrap().len(), 1_200, "no commit lost");
    assert_unique(&tweets);
    let group_now = group_positions(&group, &topic);
    for (p, e) in &end {
        assert_eq!(tweets["txn"][format!("tweetlake:{topic}:{p}")], e - 1, "partition {p}");
        assert_eq!(group_now[p], GroupPosition { committed: Some(*e), log_end: *e, lag: Some(0) }, "partition {p}");
    }
    // The aggregates the two wrote concurrently equal a recount of the tweets table.
    tweetlake_tests::recount::assert_partials_match_recount(&tweets, &read_table(&t.aggregates, &[]));
}

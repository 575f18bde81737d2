//! Maintenance against the real S3 endpoint: many small batches are compacted while the process
//! function keeps committing, old quarantine rows expire, a checkpoint is written, and the independent
//! reader sees every row exactly once. Then the function itself, invoked with the scheduled event.

use chrono::{Duration, Utc};
use serde_json::json;
use tweetlake_pipeline::MaintenanceConfig;
use tweetlake_pipeline::decode::decode_event;
use tweetlake_pipeline::maintenance::run;
use tweetlake_tests::lambda::LocalLambda;
use tweetlake_tests::xapi_server::{TOKEN, XApiServer};
use tweetlake_tests::*;

fn maintenance_config(t: &Tables) -> MaintenanceConfig {
    MaintenanceConfig::from_lookup(t.lookup(&[("TWEETLAKE_QUARANTINE_RETENTION_DAYS", "30")])).expect("valid config")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_races_the_process_function_and_loses_nothing() {
    let t = s3_tables("maint");
    let p = processor(&t, &[]).await;
    for b in 0..30 {
        p.process_event(event(&good_recs(1, b * 2, 2, 10_000 + b as u64 * 2))).await.unwrap();
    }
    // Quarantine rows from 40 days ago (expire) and from now (stay).
    let (_, old) = decode_event(&sample_event("poison-batch.json")).unwrap();
    p.process_records(old, Utc::now() - Duration::days(40)).await.unwrap();
    p.process_event(event(&[Rec { partition: 2, offset: 0, timestamp_ms: 1_764_000_000_000, value: None }])).await.unwrap();

    // The process function keeps committing on another processor while maintenance runs.
    let racer = processor(&t, &[]).await;
    let cfg = maintenance_config(&t);
    let racing = async {
        for b in 30..36 {
            // As Lambda does, a retryable failure (a commit that lost a race with maintenance) is retried.
            tweetlake_tests::deliver(&racer, &event(&good_recs(1, b * 2, 2, 10_000 + b as u64 * 2)), 5).await;
        }
    };
    let (report, ()) = tokio::join!(run(&cfg, Utc::now()), racing);
    let report = report.expect("maintenance succeeds while commits race it");
    let tweets = &report.tables[0];
    assert!(tweets.exists && tweets.files_before >= 30, "{tweets:?}");
    assert!(tweets.files_compacted >= 30 && tweets.files_written >= 1, "{tweets:?}");
    assert!(tweets.checkpoint_version.is_some());
    assert_eq!(report.tables[2].rows_expired, 3, "the three 40-day-old quarantine rows");

    // A second run compacts whatever the racer appended meanwhile.
    let second = run(&cfg, Utc::now()).await.unwrap();
    assert_eq!(second.tables[0].files_after, 1, "{:?}", second.tables[0]);

    let table = read_table(&t.tweets, &["tweetlake:tweets:1"]);
    let mut ids: Vec<&str> = table["rows"].as_array().unwrap().iter().map(|r| r["tweet_id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!((table["rows"].as_array().unwrap().len(), ids.len()), (72, 72), "36 batches of 2, each once");
    assert_eq!(table["txn"]["tweetlake:tweets:1"], 71, "offsets survive compaction");
    assert_eq!(table["files"], 1);
    assert!(!table["checkpoints"].as_array().unwrap().is_empty(), "checkpoint written");
    let q = read_table(&t.quarantine, &[]);
    assert_eq!(q["rows"].as_array().unwrap().len(), 1, "only the recent quarantine row is kept");
    let aggs = read_table(&t.aggregates, &[]);
    let counted: i64 = aggs["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["window_minutes"] == 60)
        .map(|r| r["tweets"].as_i64().unwrap())
        .sum();
    assert_eq!(counted, 72, "aggregates compacted without losing a partial");
}

#[test]
fn scheduled_event_runs_maintenance_through_cargo_lambda() {
    let t = s3_tables("maint-lambda");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let p = processor(&t, &[]).await;
        for b in 0..5 {
            p.process_event(event(&good_recs(0, b * 3, 3, 50_000 + b as u64 * 3))).await.unwrap();
        }
    });
    let f = LocalLambda::start(env!("CARGO_BIN_EXE_tweetlake-maintenance-function"), &t.env());
    let report = f.invoke("scheduled-maintenance.json");
    assert_eq!(report["tables"][0]["files_before"], 5, "{report}");
    assert_eq!(report["tables"][0]["files_after"], 1, "{report}");
    assert_eq!(read_table(&t.tweets, &[])["rows"].as_array().unwrap().len(), 15);
    // Deployed without an X token, the compliance schedule's event fails and names the setting.
    let err = f.invoke_result("scheduled-compliance.json").unwrap_err();
    assert!(err.contains("Tweetlake.NonRetryable") && err.contains("TWEETLAKE_X_BEARER_TOKEN"), "{err}");

    // With one, the compliance step removes what the job reports and prints its metrics.
    let server = rt.block_on(XApiServer::start());
    server.remove_posts(&[("50004", "deleted"), ("50010", "deactivated")]);
    let mut env = t.env().to_vec();
    env.extend([
        ("TWEETLAKE_X_API_URL", server.url.as_str()),
        ("TWEETLAKE_X_BEARER_TOKEN", TOKEN),
        ("TWEETLAKE_COMPLIANCE_POLL_SECS", "1"),
    ]);
    let f = LocalLambda::start(env!("CARGO_BIN_EXE_tweetlake-maintenance-function"), &env);
    let report = f.invoke("scheduled-compliance.json");
    assert_eq!((&report["outcome"], &report["ids_submitted"]), (&json!("applied"), &json!(15)), "{report}");
    assert_eq!(report["applied"]["tweets_deleted"], 2, "{report}");
    let ids: Vec<String> = read_table(&t.tweets, &[])["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["tweet_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 13);
    assert!(!ids.iter().any(|i| i == "50004" || i == "50010"), "{ids:?}");
    assert_eq!(server.violations(), Vec::<String>::new());
}

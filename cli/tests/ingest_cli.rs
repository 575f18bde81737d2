//! `tweetlake topic create` and `tweetlake ingest --replay` as a user runs them, against the real
//! local broker. Lives in the CLI package so Cargo builds the binary it runs.

use std::process::Command;
use tweetlake_tests::kafka::{bootstrap, read_all};
use tweetlake_tests::repo_root;

fn tweetlake(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tweetlake")).args(args).env_remove("TWEETLAKE_RULES").output().expect("tweetlake runs")
}

#[test]
fn topic_create_reports_an_existing_topic_and_ingest_replays_recorded_pages_into_it() {
    let topic = format!("cli-{}-{}", std::process::id(), chrono::Utc::now().timestamp_micros() % 1_000_000);
    let broker = bootstrap();
    let created = tweetlake(&["topic", "create", &topic, "--partitions", "3", "--bootstrap", &broker]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    assert_eq!(String::from_utf8_lossy(&created.stdout).trim(), r#"{"result":"created","partitions":3,"replication_factor":1}"#);
    let again = tweetlake(&["topic", "create", &topic, "--partitions", "5", "--bootstrap", &broker]);
    assert!(again.status.success(), "an existing topic is reported, not an error");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists with 3 partitions"));

    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.txt");
    std::fs::write(&rules, "# what to collect\nbrexit: #brexit lang:en\n").unwrap();
    let pages = repo_root().join("events/x-api/brexit.json");
    let wm = dir.path().join("wm.json");
    let args = [
        "ingest",
        "--rules-file",
        rules.to_str().unwrap(),
        "--replay",
        pages.to_str().unwrap(),
        "--bootstrap",
        &broker,
        "--topic",
        &topic,
        "--watermarks",
        wm.to_str().unwrap(),
    ];
    let run = tweetlake(&args);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(report["produced"]["messages"], 100, "{report}");
    assert_eq!(read_all(&topic).len(), 100);
    // A bad rules file fails before anything runs, naming the setting and the rule.
    std::fs::write(&rules, "brexit: (#brexit OR\n").unwrap();
    let bad = tweetlake(&args);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("TWEETLAKE_RULES_FILE") && err.contains("rule \"brexit\""), "{err}");
}

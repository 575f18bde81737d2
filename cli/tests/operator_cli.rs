//! The operator's commands on an existing lake, as an operator runs them: `tweetlake redrive` on a
//! batch copied from the failed-batches bucket, and `tweetlake comply` against the X API test server.

use std::process::Command;
use tweetlake_tests::xapi_server::{TOKEN, XApiServer};

fn tweetlake(args: &[&str]) -> serde_json::Value {
    tweetlake_with(args, &[])
}

fn tweetlake_with(args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_tweetlake"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env_remove("TWEETLAKE_TABLE_URI")
        .env_remove("TWEETLAKE_QUARANTINE_URI")
        .env_remove("TWEETLAKE_AGGREGATES_URI")
        .output()
        .expect("tweetlake runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("one JSON summary")
}

#[test]
fn a_redriven_batch_lands_once() {
    let dir = tempfile::tempdir().unwrap();
    let (tweets, quarantine) = (dir.path().join("tweets"), dir.path().join("quarantine"));
    let args = [
        "redrive",
        "--batch",
        "events/msk-batch.json",
        "--table",
        tweets.to_str().unwrap(),
        "--quarantine",
        quarantine.to_str().unwrap(),
    ];
    let first = tweetlake(&args);
    assert_eq!((first["records_in"].as_u64(), first["rows_written"].as_u64()), (Some(27), Some(20)), "{first}");
    let topics = first["redrive_topics"].as_str().unwrap();
    assert!(topics.starts_with("redrive.") && topics.ends_with(".*"), "{topics}");
    let second = tweetlake(&args);
    assert_eq!((second["rows_written"].as_u64(), second["redelivered_skipped"].as_u64()), (Some(0), Some(27)), "{second}");

    // The batch's records that no rule fix can save: redriven, they are quarantined again and marked.
    let table_args = ["--table", tweets.to_str().unwrap(), "--quarantine", quarantine.to_str().unwrap()];
    let rule = first["quarantined"].as_object().unwrap().keys().next().unwrap().clone();
    let n = first["quarantined"][&rule].as_u64().unwrap();
    let q = tweetlake(&[&["redrive", "--quarantined", &rule][..], &table_args].concat());
    assert_eq!(
        (q["rows_written"].as_u64(), q["quarantined"][&rule].as_u64(), q["quarantined"]["redriven"].as_u64()),
        (Some(0), Some(n), Some(n)),
        "{q}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_tweetlake"))
        .args([&["redrive", "--quarantined", "no_such_rule"][..], &table_args].concat())
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no_such_rule"));
}

#[test]
fn comply_removes_what_x_reports_and_a_rerun_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (tweets, quarantine) = (dir.path().join("tweets"), dir.path().join("quarantine"));
    let tables = ["--table", tweets.to_str().unwrap(), "--quarantine", quarantine.to_str().unwrap()];
    let written = tweetlake(&[&["process", "--event", "events/msk-batch.json"][..], &tables].concat());
    assert_eq!(written["rows_written"], 20, "{written}");
    let before = tweetlake_tests::read_table(tweets.to_str().unwrap(), &[]);
    let gone = before["rows"][0]["tweet_id"].as_str().unwrap().to_owned();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(XApiServer::start());
    server.remove_posts(&[(&gone, "deleted")]);
    let env = [
        ("TWEETLAKE_X_API_URL", server.url.as_str()),
        ("TWEETLAKE_X_BEARER_TOKEN", TOKEN),
        ("TWEETLAKE_COMPLIANCE_POLL_SECS", "1"),
    ];
    let report = tweetlake_with(&[&["comply"][..], &tables].concat(), &env);
    assert_eq!((report["outcome"].as_str(), report["ids_submitted"].as_u64()), (Some("applied"), Some(20)), "{report}");
    assert_eq!(
        (report["findings"]["deleted"].as_u64(), report["applied"]["tweets_deleted"].as_u64()),
        (Some(1), Some(1)),
        "{report}"
    );
    let after = tweetlake_tests::read_table(tweets.to_str().unwrap(), &[]);
    assert_eq!(after["rows"].as_array().unwrap().len(), 19);
    assert!(after["rows"].as_array().unwrap().iter().all(|r| r["tweet_id"] != gone.as_str()));

    let again = tweetlake_with(&[&["comply"][..], &tables].concat(), &env);
    assert_eq!((again["ids_submitted"].as_u64(), again["findings"].as_object().map(|f| f.len())), (Some(19), Some(0)), "{again}");
    assert_eq!(
        tweetlake_tests::read_table(tweets.to_str().unwrap(), &[])["version"],
        after["version"],
        "a rerun changes nothing"
    );
    assert_eq!(server.violations(), Vec::<String>::new());
}

//! `tweetlake redrive` as an operator runs it on a batch copied from the failed-batches bucket.

use std::process::Command;

fn tweetlake(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_tweetlake"))
        .args(args)
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

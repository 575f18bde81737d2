//! The process function invoked the way users invoke it locally: `cargo lambda watch` serving the
//! Lambda runtime API, the real function binary attached to it, `cargo lambda invoke --data-file
//! events/…`, then the table read back independently. `--only-lambda-apis` lets the test run the binary
//! Cargo built for it instead of having cargo-lambda build the workspace a second time.

use tweetlake_tests::lambda::LocalLambda;
use tweetlake_tests::*;

#[test]
fn cargo_lambda_invoke_with_sample_events() {
    let t = s3_tables("lambda-invoke");
    let f = LocalLambda::start(env!("CARGO_BIN_EXE_tweetlake-process-function"), &t.env());
    let first = f.invoke("msk-batch.json");
    assert_eq!(first["records_in"], 27, "{first}");
    assert_eq!(first["rows_written"], 20);
    assert_eq!(first["quarantined"].as_object().unwrap().len(), 6);
    // The self-managed event carries the same offsets: Lambda redelivery in another shape.
    let second = f.invoke("self-managed-batch.json");
    assert_eq!((second["redelivered_skipped"].as_u64(), second["rows_written"].as_u64()), (Some(27), Some(0)), "{second}");
    let poison = f.invoke("poison-batch.json");
    assert_eq!(poison["rows_written"], 0);
    assert_eq!(poison["quarantined"].as_object().unwrap().len(), 3);
    // Malformed headers, values and timestamps are quarantined record by record; two good tweets land.
    let hostile = f.invoke("hostile-batch.json");
    assert_eq!(hostile["rows_written"], 2, "{hostile}");
    assert_eq!(hostile["quarantined"], serde_json::json!({"decodable": 7, "kafka_timestamp": 4, "value_present": 1}));

    let table = read_table(&t.tweets, &["tweetlake:tweets:0", "tweetlake:tweets:1"]);
    assert_eq!(table["rows"].as_array().unwrap().len(), 22);
    assert_eq!(table["txn"]["tweetlake:tweets:0"], 127);
    assert_eq!(table["txn"]["tweetlake:tweets:1"], 215);
    assert_eq!(read_table(&t.quarantine, &[])["rows"].as_array().unwrap().len(), 21);

    // The redrive path: the MSK batch again, as an on-failure record. Its posts are already written, so
    // the dedup keeps them out; the records it quarantined are quarantined again, never dropped.
    let request = std::env::temp_dir().join(format!("tweetlake-redrive-{}.json", std::process::id()));
    let batch: serde_json::Value = serde_json::from_slice(&sample_event("msk-batch.json")).unwrap();
    let body =
        serde_json::json!({"tweetlake_redrive": {"requestContext": {"condition": "RetryAttemptsExhausted"}, "payload": batch}});
    std::fs::write(&request, body.to_string()).unwrap();
    let redrive = f.invoke(request.to_str().unwrap());
    assert!(redrive["redrive_topics"].as_str().unwrap().starts_with("redrive."), "{redrive}");
    assert_eq!((redrive["rows_written"].as_u64(), redrive["duplicates_in_window"].as_u64()), (Some(0), Some(20)), "{redrive}");
    let again = f.invoke(request.to_str().unwrap());
    assert_eq!(again["redelivered_skipped"], 27, "a second redrive changes nothing: {again}");
    assert_eq!(read_table(&t.tweets, &[])["rows"].as_array().unwrap().len(), 22);
    assert_eq!(read_table(&t.quarantine, &[])["rows"].as_array().unwrap().len(), 27);
    std::fs::remove_file(&request).unwrap();
}

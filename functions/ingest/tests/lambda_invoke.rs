//! The ingest function invoked the way users invoke it locally: `cargo lambda watch` serving the
//! Lambda runtime API, the real function binary attached to it, and `cargo lambda invoke --data-file
//! events/scheduled-ingest.json` — against the in-process X API test server, the real broker and
//! watermarks on the S3 endpoint.

use std::collections::HashSet;
use tweetlake_tests::kafka::{bootstrap, new_topic, read_all};
use tweetlake_tests::lambda::LocalLambda;
use tweetlake_tests::new_bucket;
use tweetlake_tests::xapi_server::{Pool, TOKEN, XApiServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cargo_lambda_invoke_with_the_scheduled_event() {
    let server = XApiServer::start().await;
    server.set_pool("#brexit", Pool::recorded("events/x-api/brexit.json"));
    server.set_pool("#kpop", Pool::recorded("events/x-api/kpop.json"));
    let topic = new_topic("lambda-ingest", 3).await;
    let wm = format!("s3://{}/ingest/watermarks.json", new_bucket("ingest-wm"));
    let broker = bootstrap();
    let env = [
        ("TWEETLAKE_RULES", "brexit: #brexit\nkpop: #kpop".to_owned()),
        ("TWEETLAKE_X_API_URL", server.url.clone()),
        ("TWEETLAKE_X_BEARER_TOKEN", TOKEN.to_owned()),
        ("TWEETLAKE_KAFKA_BOOTSTRAP", broker),
        ("TWEETLAKE_TOPIC", topic.clone()),
        ("TWEETLAKE_WATERMARK_URI", wm),
    ];
    let first = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let f = LocalLambda::start(env!("CARGO_BIN_EXE_tweetlake-ingest-function"), &env);
        let first = f.invoke("scheduled-ingest.json");
        let second = f.invoke("scheduled-ingest.json");
        (first, second)
    })
    .await
    .unwrap();
    let (first, second) = first;
    assert_eq!(first["tweets"], 200, "{first}");
    assert_eq!(first["produced"]["messages"], 200);
    assert_eq!(first["watermarks_saved"], true);
    assert_eq!(first["rules"].as_array().unwrap().len(), 2);
    assert_eq!(second["produced"]["messages"], 0, "the S3 watermark carried over: {second}");
    let records = read_all(&topic);
    assert_eq!(records.len(), 200);
    assert_eq!(records.iter().map(|r| r.key.clone()).collect::<HashSet<_>>().len(), 200);
    assert!(server.violations().is_empty(), "{:?}", server.violations());
    // The token went to the API and nowhere else the test can see.
    assert!(!first.to_string().contains(TOKEN));
}

#[test]
fn a_bad_setting_fails_the_cold_start_naming_the_variable() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tweetlake-ingest-function"))
        .env_remove("TWEETLAKE_RULES")
        .env_remove("TWEETLAKE_RULES_FILE")
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TWEETLAKE_RULES"), "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tweetlake-ingest-function"))
        .env("TWEETLAKE_RULES", "bad: (unclosed")
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot start: configuration: TWEETLAKE_RULES: rule \"bad\": unbalanced '(': missing ')'"), "{err}");
}

//! Shared helpers of the integration tests: repository paths, the local S3 endpoint, the independent
//! Python reader, and builders of tweet envelopes and Lambda Kafka events.
#![warn(missing_docs)]

use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use tweetlake_pipeline::decode::{Origin, RawRecord, encode_event};
use tweetlake_pipeline::{ProcessConfig, Processor};

pub mod infra;
pub mod kafka;
pub mod lambda;
pub mod posts;
pub mod recount;
pub mod spark;
pub mod xapi_server;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// Cargo's build folder: `CARGO_TARGET_DIR`, or `target/` in the clone.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"))
}

/// The optimised build of binary `name` (`target/release/`, where `--release` and `--profile bench`
/// put it), or the binary the variable `var` names.
pub fn optimised_binary(var: &str, name: &str) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| target_dir().join("release").join(name))
}

/// The Python of the tools venv that `infra/local/stack.sh` installs (deltalake, boto3, moto).
pub fn python() -> PathBuf {
    std::env::var_os("TWEETLAKE_TEST_PYTHON").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").expect("HOME is set");
        PathBuf::from(home).join(".cache/tweetlake/venv/bin/python")
    })
}

/// A variable the local stack's environment sets (`infra/local/stack.sh env`); fails loudly, saying how
/// to get it, when the tests run without the stack.
pub fn stack_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the tests with `tests/run.sh` (or `.ci/run`), which installs and starts the local \
             stack; by hand: `infra/local/stack.sh iac`, `infra/local/stack.sh spark`, then `eval \"$(infra/local/stack.sh up)\"`"
        )
    })
}

/// The S3 endpoint the tests write to.
pub fn s3_endpoint() -> String {
    stack_var("AWS_ENDPOINT_URL")
}

fn run_reader(args: &[&str]) -> String {
    let out = Command::new(python()).arg(repo_root().join("tests/delta_reader.py")).args(args).output().expect("python runs");
    assert!(out.status.success(), "delta_reader.py {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

static BUCKETS: AtomicUsize = AtomicUsize::new(0);

/// Creates a fresh bucket on the S3 endpoint and returns its name.
pub fn new_bucket(prefix: &str) -> String {
    s3_endpoint();
    let n = BUCKETS.fetch_add(1, Ordering::SeqCst);
    let name = format!("{prefix}-{}-{n}-{}", std::process::id(), chrono::Utc::now().timestamp_micros() % 1_000_000);
    run_reader(&["mkbucket", &name]);
    name
}

/// Reads a table with the independent reader: rows, version, protocol, partitions and txn versions.
pub fn read_table(uri: &str, app_ids: &[&str]) -> Value {
    let mut args = vec!["read", uri];
    args.extend_from_slice(app_ids);
    serde_json::from_str(&run_reader(&args)).expect("reader prints JSON")
}

/// Where a test's three tables live.
#[derive(Clone, Debug)]
pub struct Tables {
    /// Tweets table URI.
    pub tweets: String,
    /// Quarantine table URI.
    pub quarantine: String,
    /// Aggregates table URI.
    pub aggregates: String,
    _dir: Option<std::sync::Arc<tempfile::TempDir>>,
}

impl Tables {
    /// The table variables as the functions read them.
    pub fn env(&self) -> [(&'static str, &str); 3] {
        [
            ("TWEETLAKE_TABLE_URI", self.tweets.as_str()),
            ("TWEETLAKE_QUARANTINE_URI", self.quarantine.as_str()),
            ("TWEETLAKE_AGGREGATES_URI", self.aggregates.as_str()),
        ]
    }

    /// A lookup for `*Config::from_lookup`: these tables, then `extra`, then the process's `AWS_*`
    /// variables (the local stack's).
    pub fn lookup<'a>(&'a self, extra: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            self.env()
                .iter()
                .chain(extra)
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
                .or_else(|| std::env::var(k).ok().filter(|_| k.starts_with("AWS_")))
        }
    }
}

/// Tables in a fresh local directory.
pub fn local_tables() -> Tables {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = dir.path().to_string_lossy().to_string();
    Tables {
        tweets: format!("{p}/tweets"),
        quarantine: format!("{p}/quarantine"),
        aggregates: format!("{p}/aggregates"),
        _dir: Some(std::sync::Arc::new(dir)),
    }
}

/// Tables in a fresh bucket on the local S3 endpoint.
pub fn s3_tables(prefix: &str) -> Tables {
    let b = new_bucket(prefix);
    Tables {
        tweets: format!("s3://{b}/tweets"),
        quarantine: format!("s3://{b}/quarantine"),
        aggregates: format!("s3://{b}/aggregates"),
        _dir: None,
    }
}

/// A processor on `tables` with extra settings (name → value) on top of the defaults.
pub async fn processor(tables: &Tables, extra: &[(&str, &str)]) -> Processor {
    Processor::new(test_config(tables, extra)).await.expect("processor starts")
}

/// The configuration [`processor`] uses: the three tables, `extra`, then the process's `AWS_*` variables.
pub fn test_config(tables: &Tables, extra: &[(&str, &str)]) -> ProcessConfig {
    ProcessConfig::from_lookup(tables.lookup(extra)).expect("valid test config")
}

/// A version-1 envelope for a tweet with the given id, text and creation time.
pub fn envelope(id: &str, text: &str, created_at: &str, rule: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "v": 1,
        "tweet": {"id": id, "text": text, "created_at": created_at, "author_id": "42", "lang": "en"},
        "author": {"id": "42", "username": "tester", "name": "Tester"},
        "rules": [{"id": "1", "tag": rule}],
        "ingest": {"source": "replay", "run_id": "test-run", "fetched_at": created_at},
    }))
    .expect("serialisable")
}

/// One record for [`event`]: partition, offset, Kafka timestamp (ms) and value bytes.
#[derive(Clone, Debug)]
pub struct Rec {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Kafka timestamp, epoch ms.
    pub timestamp_ms: i64,
    /// Value bytes, `None` for a tombstone.
    pub value: Option<Vec<u8>>,
}

/// A Lambda MSK event on topic `tweets` holding `recs` in the given order, as JSON bytes.
pub fn event(recs: &[Rec]) -> Vec<u8> {
    let records: Vec<RawRecord> = recs
        .iter()
        .map(|r| RawRecord {
            topic: "tweets".into(),
            partition: r.partition,
            offset: r.offset,
            timestamp_ms: r.timestamp_ms,
            key: None,
            value: r.value.clone(),
            headers: Vec::new(),
            decode_error: None,
        })
        .collect();
    encode_event(
        &records,
        Origin { event_source_arn: Some("arn:aws:kafka:us-east-1:123456789012:cluster/t/x"), bootstrap_servers: None },
    )
}

/// `n` good tweets on `partition` from `first_offset`, tweet ids `id_base + i`.
pub fn good_recs(partition: i32, first_offset: i64, n: usize, id_base: u64) -> Vec<Rec> {
    (0..n)
        .map(|i| Rec {
            partition,
            offset: first_offset + i as i64,
            timestamp_ms: 1_764_000_000_000 + (first_offset + i as i64) * 1000,
            value: Some(envelope(
                &(id_base + i as u64).to_string(),
                &format!("I love this tweet number {i} :)"),
                "2025-11-24T16:00:00Z",
                "test",
            )),
        })
        .collect()
}

/// A sample event from `events/`.
pub fn sample_event(name: &str) -> Vec<u8> {
    std::fs::read(repo_root().join("events").join(name)).expect("event file")
}

/// Runs the async scenario `$body(tables)` as two tests of module `$name`: on local disk and on the S3
/// endpoint.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $body:ident) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn local_dir() {
                $body($crate::local_tables()).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn s3() {
                $body($crate::s3_tables(stringify!($name).replace('_', "-").as_str())).await;
            }
        }
    };
}

/// Delivers `event` to `p` the way Lambda's event source mapping does: a retryable failure is tried
/// again (after a short pause, at most `attempts` times); a non-retryable one fails the test.
pub async fn deliver(p: &Processor, event: &[u8], attempts: usize) -> tweetlake_pipeline::BatchSummary {
    for attempt in 1..=attempts {
        match p.process_event(event).await {
            Ok(s) => return s,
            Err(e) if e.is_retryable() && attempt < attempts => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("delivery failed after {attempt} attempts: {e}"),
        }
    }
    unreachable!("the last attempt returns or panics")
}

/// The `kafka_offset` of every row of a `read_table` answer, sorted.
pub fn offsets_of(table: &Value) -> Vec<i64> {
    let mut o: Vec<i64> =
        table["rows"].as_array().expect("rows").iter().map(|r| r["kafka_offset"].as_i64().expect("offset")).collect();
    o.sort_unstable();
    o
}

//! The real local broker (Apache Kafka, started by `infra/local/stack.sh up`): fresh topics per test
//! and an independent read-back of what landed.

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tweetlake_ingest::kafka::{KafkaSettings, create_topic};
use tweetlake_ingest::msk::AuthMode;
use tweetlake_pipeline::decode::RawRecord;

/// The broker's bootstrap address.
pub fn bootstrap() -> String {
    crate::stack_var("TWEETLAKE_KAFKA_BOOTSTRAP")
}

/// Plaintext settings for the local broker, with a 10 s acknowledgement timeout.
pub fn settings(bootstrap: &str) -> KafkaSettings {
    KafkaSettings { message_timeout: Duration::from_secs(10), ..KafkaSettings::plaintext(bootstrap) }
}

static TOPICS: AtomicUsize = AtomicUsize::new(0);

/// Creates a fresh topic with `partitions` partitions and returns its name.
pub async fn new_topic(prefix: &str, partitions: i32) -> String {
    let name = format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        TOPICS.fetch_add(1, Ordering::SeqCst),
        chrono::Utc::now().timestamp_micros() % 1_000_000
    );
    create_topic(&settings(&bootstrap()), &name, partitions, 1).await.expect("topic created");
    name
}

/// A record read back from the broker, as the event source mapping would hand it over.
pub type Consumed = RawRecord;

/// Settings for one of the broker's secured listeners (`infra/local/stack.sh`): `Tls` (TLS only),
/// `Scram` (SASL/SCRAM-SHA-512 over TLS, with the stack's SCRAM user) or `Iam` (SASL/OAUTHBEARER over
/// TLS with MSK IAM tokens signed with the environment's AWS credentials, region us-east-1). Their
/// certificate is signed by the stack's local CA, trusted when `ca` is true (otherwise only the system
/// store is).
pub fn secure_settings(auth: AuthMode, ca: bool) -> KafkaSettings {
    let var = crate::stack_var;
    let (bootstrap, scram) = match auth {
        AuthMode::Tls => (var("TWEETLAKE_KAFKA_TLS_BOOTSTRAP"), None),
        AuthMode::Scram => (
            var("TWEETLAKE_KAFKA_SCRAM_BOOTSTRAP"),
            Some((var("TWEETLAKE_KAFKA_TEST_SCRAM_USER"), var("TWEETLAKE_KAFKA_TEST_SCRAM_PASSWORD"))),
        ),
        AuthMode::Iam => (var("TWEETLAKE_KAFKA_IAM_BOOTSTRAP"), None),
        AuthMode::Plaintext => panic!("plaintext is `settings(&bootstrap())`"),
    };
    let region = (auth == AuthMode::Iam).then(|| "us-east-1".to_owned());
    KafkaSettings { auth, scram, region, ca_file: ca.then(|| var("TWEETLAKE_KAFKA_TEST_CA").into()), ..settings(&bootstrap) }
}

/// Reads every record of `topic` from the beginning up to the current end, with a plain consumer
/// (no group), so the read-back shares nothing with the producer under test.
pub fn read_all(topic: &str) -> Vec<Consumed> {
    read_all_from(&settings(&bootstrap()), topic)
}

/// [`read_all`] from the broker `conn` connects to.
pub fn read_all_from(conn: &KafkaSettings, topic: &str) -> Vec<Consumed> {
    let consumer: BaseConsumer = conn
        .client_config()
        .set("group.id", "tweetlake-tests-readback")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    let parts: Vec<i32> = md.topics()[0].partitions().iter().map(|p| p.id()).collect();
    let mut tpl = TopicPartitionList::new();
    let mut ends = Vec::new();
    for p in &parts {
        let (_, high) = consumer.fetch_watermarks(topic, *p, Duration::from_secs(10)).expect("watermarks");
        if high > 0 {
            tpl.add_partition_offset(topic, *p, Offset::Beginning).expect("tpl");
            ends.push((*p, high));
        }
    }
    if ends.is_empty() {
        return Vec::new();
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = |out: &Vec<Consumed>| ends.iter().all(|(p, high)| out.iter().any(|c| c.partition == *p && c.offset == high - 1));
    while !done(&out) {
        assert!(Instant::now() < deadline, "read-back of {topic} did not reach the end offsets {ends:?}");
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            out.push(tweetlake_local::esm::consumed(&m.expect("fetch")));
        }
    }
    out.sort_by_key(|c| (c.partition, c.offset));
    out
}

/// The records as the Lambda MSK event the event source mapping would deliver.
pub fn as_event(records: &[Consumed]) -> Vec<u8> {
    tweetlake_local::esm::msk_event(&bootstrap(), records)
}

/// Produces raw values (no key) to `topic` on the broker at `bootstrap`, waiting for each
/// acknowledgement: malformed records for the quarantine path.
pub async fn produce_raw(bootstrap: &str, topic: &str, values: &[&[u8]]) {
    produce(bootstrap, topic, values.iter().map(|v| (None, *v))).await
}

/// Sends `(key, value)` records, each keyed as the ingest producer keys tweets (so the partitioner
/// spreads them), and waits for every acknowledgement.
pub async fn produce_keyed(bootstrap: &str, topic: &str, records: &[(Vec<u8>, Vec<u8>)]) {
    produce(bootstrap, topic, records.iter().map(|(k, v)| (Some(k.as_slice()), v.as_slice()))).await
}

async fn produce<'a>(bootstrap: &str, topic: &str, records: impl Iterator<Item = (Option<&'a [u8]>, &'a [u8])>) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let p: FutureProducer =
        ClientConfig::new().set("bootstrap.servers", bootstrap).set("acks", "all").create().expect("producer");
    let sends = records.map(|(k, v)| {
        let mut r = FutureRecord::<[u8], [u8]>::to(topic).payload(v);
        if let Some(k) = k {
            r = r.key(k);
        }
        p.send(r, Duration::from_secs(10))
    });
    for ack in futures::future::join_all(sends).await {
        ack.expect("acknowledged");
    }
}

/// The end offset (one past the last record) of every partition of `topic` on `bootstrap` (the
/// emulator's reading of it, which must not fail in a test).
pub fn end_offsets(bootstrap: &str, topic: &str) -> std::collections::BTreeMap<i32, i64> {
    tweetlake_local::esm::end_offsets(bootstrap, topic).expect("the topic's end offsets")
}

/// A partition of a consumer group as Kafka's own tool (`stack.sh consumer-groups --describe`) shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupPosition {
    /// The group's committed offset (the next record it would read); `None` when it committed none.
    pub committed: Option<i64>,
    /// The partition's end offset.
    pub log_end: i64,
    /// What Kafka reports as the group's lag there.
    pub lag: Option<i64>,
}

/// The committed offsets and lag of `group` on `topic`, per partition, read with Kafka's own
/// consumer-group tool rather than our client.
pub fn group_positions(group: &str, topic: &str) -> std::collections::BTreeMap<i32, GroupPosition> {
    let out = stack(&["consumer-groups", "--describe", "--group", group]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let number = |s: &str| s.parse::<i64>().ok();
    // Columns: GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID.
    stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|c| c.len() >= 6 && c[0] == group && c[1] == topic)
        .map(|c| {
            let log_end = number(c[4]).unwrap_or_else(|| panic!("LOG-END-OFFSET in {c:?}"));
            (c[2].parse().expect("partition"), GroupPosition { committed: number(c[3]), log_end, lag: number(c[5]) })
        })
        .collect()
}

/// Runs `infra/local/stack.sh` with `args` (e.g. `kill-broker`, `up`, `consumer-groups …`) and returns
/// its output; fails with what it said if it fails.
pub fn stack(args: &[&str]) -> std::process::Output {
    let out = std::process::Command::new(crate::repo_root().join("infra/local/stack.sh"))
        .args(args)
        // Never wipe the broker's storage from inside a test.
        .env_remove("TWEETLAKE_BROKER_FRESH")
        .output()
        .expect("stack.sh runs");
    assert!(
        out.status.success(),
        "stack.sh {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

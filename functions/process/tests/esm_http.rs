//! The event-source-mapping emulator delivering a real topic to the process function over HTTP, the
//! way `cargo lambda watch` serves it: batches cut by size, offsets recorded by the function, and a
//! restarted emulator that resumes from the table without delivering anything twice.

use std::collections::BTreeMap;
use std::time::Duration;
use tweetlake_local::esm::{Esm, EsmProgress, EsmSettings, Http, MAX_PAYLOAD_BYTES, end_offsets};
use tweetlake_tests::kafka::{GroupPosition, bootstrap, group_positions, new_topic, produce_keyed, produce_raw};
use tweetlake_tests::lambda::LocalLambda;
use tweetlake_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_invokes_the_function_through_cargo_lambda_watch_and_resumes_from_the_table() {
    let topic = new_topic("esm-http", 2).await;
    let good: Vec<Vec<u8>> = (0..30)
        .map(|i| {
            envelope(&format!("{}", 1_700_000_000_000_000_000u64 + i), "what a lovely day", "2026-11-27T10:00:00.000Z", "esm")
        })
        .collect();
    let mut values: Vec<&[u8]> = good.iter().map(Vec::as_slice).collect();
    values.push(b"{oops");
    values.push(br#"{"v":1,"tweet":{"id":"abc","text":"x","created_at":"2026-11-27T10:00:00.000Z"}}"#);
    produce_raw(&bootstrap(), &topic, &values).await;
    let t = s3_tables("esm-http");
    let broker = bootstrap();
    let settings = EsmSettings {
        bootstrap: broker.clone(),
        topic: topic.clone(),
        batch_size: 8,
        window: Duration::from_millis(300),
        max_payload: MAX_PAYLOAD_BYTES,
        attempts: 3,
        group: format!("esm-{topic}"),
    };
    let end = end_offsets(&broker, &topic).unwrap();
    let partitions: Vec<i32> = end.keys().copied().collect();

    let f = tokio::task::spawn_blocking({
        let env: Vec<(&'static str, String)> = t.env().iter().map(|(k, v)| (*k, v.to_string())).collect();
        move || {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            LocalLambda::start(env!("CARGO_BIN_EXE_tweetlake-process-function"), &env)
        }
    })
    .await
    .unwrap();
    let invoker = Http { url: f.invoke_url(), client: reqwest::Client::new() };
    // The emulator needs a moment to register the attached function.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let esm = Esm::new(settings.clone(), &partitions, &BTreeMap::new()).unwrap();
    let mut progress = EsmProgress::default();
    esm.run_until(&invoker, &end, &mut progress, &|| false, &mut |_| {}).await.unwrap();
    assert_eq!(progress.records, 32, "{progress:?}");
    assert!(progress.batches >= 4, "batches of at most 8: {progress:?}");
    assert_eq!(progress.rows_written, 30);
    assert_eq!(progress.quarantined.values().sum::<usize>(), 2);

    let tweets = read_table(&t.tweets, &[]);
    assert_eq!(tweets["rows"].as_array().unwrap().len(), 30);
    // As Lambda's mapping does, the group's offsets were committed after the successful batches:
    // Kafka's own tool shows no lag.
    let group = group_positions(&settings.group, &topic);
    for (p, e) in end.iter().filter(|(_, e)| **e > 0) {
        assert_eq!(group[p], GroupPosition { committed: Some(*e), log_end: *e, lag: Some(0) }, "partition {p}");
    }
    assert_eq!(read_table(&t.quarantine, &[])["rows"].as_array().unwrap().len(), 2);

    // A new emulator starts where the table says: nothing left to deliver.
    let p = processor(&t, &[]).await;
    let start = p.next_offsets(&topic, &partitions).await.unwrap();
    assert_eq!(start, end.iter().filter(|(_, e)| **e > 0).map(|(k, v)| (*k, *v)).collect::<BTreeMap<_, _>>());
    let again = Esm::new(settings, &partitions, &start).unwrap();
    let mut p2 = EsmProgress::default();
    again.run_until(&invoker, &end, &mut p2, &|| false, &mut |_| {}).await.unwrap();
    assert_eq!(p2.records, 0);
    drop(f);
}

/// Fails the first invocation, then delegates: the batch must be retried, not skipped.
struct FailsOnce {
    inner: tweetlake_local::esm::InProcess,
    failed: std::sync::atomic::AtomicBool,
}

impl tweetlake_local::esm::Invoker for FailsOnce {
    fn invoke(&self, event: Vec<u8>) -> futures::future::BoxFuture<'_, Result<serde_json::Value, String>> {
        if !self.failed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Box::pin(async { Err("injected failure".to_owned()) });
        }
        self.inner.invoke(event)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_retries_a_failed_batch_and_cuts_batches_at_the_payload_cap() {
    use tweetlake_local::esm::Invoker;
    let topic = new_topic("esm-cap", 1).await;
    let good: Vec<Vec<u8>> = (0..40)
        .map(|i| {
            envelope(&format!("{}", 1_710_000_000_000_000_000u64 + i), "a fine day for a test", "2026-11-27T10:00:00.000Z", "cap")
        })
        .collect();
    let values: Vec<&[u8]> = good.iter().map(Vec::as_slice).collect();
    produce_raw(&bootstrap(), &topic, &values).await;
    let t = local_tables();
    let p = std::sync::Arc::new(processor(&t, &[]).await);
    let one = good[0].len() * 4 / 3 + 256;
    // A payload cap of about five records, far below the batch size of 100.
    let settings = EsmSettings {
        bootstrap: bootstrap(),
        topic: topic.clone(),
        batch_size: 100,
        window: Duration::from_millis(500),
        max_payload: 1024 + 5 * one,
        attempts: 3,
        group: format!("esm-{topic}"),
    };
    let end = end_offsets(&bootstrap(), &topic).unwrap();
    let esm = Esm::new(settings, &[0], &BTreeMap::new()).unwrap();
    let invoker = FailsOnce { inner: tweetlake_local::esm::InProcess(p), failed: false.into() };
    let mut progress = EsmProgress::default();
    esm.run_until(&invoker as &dyn Invoker, &end, &mut progress, &|| false, &mut |_| {}).await.unwrap();
    assert_eq!(progress.retries, 1, "{progress:?}");
    assert_eq!(progress.records, 40);
    assert_eq!(progress.batches, 8, "40 records at 5 per capped batch: {progress:?}");
    assert_eq!(progress.rows_written, 40, "the failed batch was delivered again, nothing skipped or repeated");
    assert_eq!(read_table(&t.tweets, &[])["rows"].as_array().unwrap().len(), 40);
}

/// `deliver` runs a poller and a processor per partition, as a mapping scaled to its partitions does:
/// each partition arrives in invocations of its own, all land once, and the last batch is cut as soon
/// as the topic's end has arrived instead of after the batching window (two minutes here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_runs_a_poller_per_partition_and_does_not_wait_out_the_window_at_the_end() {
    let topic = new_topic("esm-parallel", 3).await;
    let keyed: Vec<(Vec<u8>, Vec<u8>)> = (0..30)
        .map(|i| {
            let id = format!("{}", 1_720_000_000_000_000_000u64 + i);
            (id.clone().into_bytes(), envelope(&id, "sunny and calm", "2026-11-27T10:00:00.000Z", "par"))
        })
        .collect();
    produce_keyed(&bootstrap(), &topic, &keyed).await;
    let end = end_offsets(&bootstrap(), &topic).unwrap();
    let filled = end.values().filter(|e| **e > 0).count();
    assert!(filled >= 2, "the keys spread over the partitions: {end:?}");
    let t = local_tables();
    let p = std::sync::Arc::new(processor(&t, &[]).await);
    let settings = EsmSettings::new(&bootstrap(), &topic, 1000, Duration::from_secs(120), &format!("esm-{topic}"));
    let started = std::time::Instant::now();
    let progress = tweetlake_local::esm::deliver(settings, None, p, false, Default::default(), None).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(60), "waited out the window: {:?}", started.elapsed());
    assert_eq!(progress.records, 30, "{progress:?}");
    assert_eq!(progress.batches, filled, "one invocation per partition: {progress:?}");
    assert_eq!(progress.rows_written, 30);
    assert_eq!(progress.positions, end.iter().filter(|(_, e)| **e > 0).map(|(k, v)| (*k, *v)).collect());
    assert_eq!(read_table(&t.tweets, &[])["rows"].as_array().unwrap().len(), 30);
}

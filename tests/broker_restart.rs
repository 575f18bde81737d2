//! The broker killed (SIGKILL, as a crash) and restarted in the middle of an ingest run: the
//! idempotent producer retries what was in flight and the topic ends with every tweet exactly once;
//! the watermark moves only after the last acknowledgement. A test binary of its own, because it
//! stops the broker every other test uses.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tweetlake_ingest::watermark::{FileStore, WatermarkStore};
use tweetlake_ingest::{Ingest, IngestConfig};
use tweetlake_tests::kafka::{bootstrap, end_offsets, new_topic, read_all, stack};
use tweetlake_tests::xapi_server::write_generated_pages;

// Enough that producing outlasts the time between the first acknowledgement and the kill taking
// effect (a new consumer per offsets check, then the stack script): with 20,000 the run sometimes
// finished first.
const TWEETS: usize = 60_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restarted_mid_run_gets_every_tweet_exactly_once_and_the_watermark_waits_for_it() {
    let topic = new_topic("restart", 4).await;
    let dir = tempfile::tempdir().unwrap();
    // Recorded pages of 100 tweets, replayed through the search path.
    let pages = write_generated_pages(dir.path(), TWEETS);
    let wm = dir.path().join("wm.json");
    let env = [
        ("TWEETLAKE_RULES", "restart: #brexit".to_owned()),
        ("TWEETLAKE_REPLAY_PATH", pages.display().to_string()),
        ("TWEETLAKE_KAFKA_BOOTSTRAP", bootstrap()),
        ("TWEETLAKE_TOPIC", topic.clone()),
        ("TWEETLAKE_WATERMARK_URI", wm.display().to_string()),
        ("TWEETLAKE_MAX_PAGES_PER_RULE", (TWEETS / 100 + 1).to_string()),
        // Longer than the broker takes to come back.
        ("TWEETLAKE_KAFKA_MESSAGE_TIMEOUT_MS", "120000".to_owned()),
    ];
    let cfg = IngestConfig::from_lookup(|k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).unwrap();
    let ingest = Ingest::from_config(cfg).await.unwrap();
    let finished = AtomicBool::new(false);
    let run = async {
        let r = ingest.run(chrono::Utc::now() + chrono::Duration::minutes(10)).await;
        finished.store(true, Ordering::SeqCst);
        r
    };
    let crash = async {
        // Kill the broker as soon as it has acknowledged the first messages, with the rest in flight.
        let (b, t) = (bootstrap(), topic.clone());
        let acked_at_kill = tokio::task::spawn_blocking(move || {
            loop {
                let acked: i64 = end_offsets(&b, &t).values().sum();
                if acked > 0 {
                    stack(&["kill-broker"]);
                    return acked;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let while_down = (finished.load(Ordering::SeqCst), wm.exists());
        // Restart on the same storage; the producer reconnects and finishes. (Before asserting: a
        // failed assertion must not leave the broker down for the tests after this one.)
        tokio::task::spawn_blocking(|| stack(&["up"])).await.unwrap();
        (acked_at_kill, while_down)
    };
    let (report, (acked_at_kill, (finished_while_down, marked_while_down))) = tokio::join!(run, crash);
    assert!(!finished_while_down, "the run waits for the broker");
    assert!(!marked_while_down, "no watermark moves while messages are unacknowledged");
    eprintln!("{acked_at_kill} of {TWEETS} tweets acknowledged when the broker was killed");
    assert!((acked_at_kill as usize) < TWEETS, "the broker was killed before the run finished ({acked_at_kill} acknowledged)");
    let report = report.expect("the run succeeds once the broker is back");
    assert_eq!(report.produced.messages, TWEETS);
    assert!(report.watermarks_saved);

    // Every tweet in the topic exactly once: the retried batches were deduplicated by the broker.
    let records = read_all(&topic);
    let keys: HashSet<Vec<u8>> = records.iter().filter_map(|r| r.key.clone()).collect();
    assert_eq!((records.len(), keys.len()), (TWEETS, TWEETS), "{acked_at_kill} acknowledged before the kill");
    let newest = 1_700_000_000_000_000_000u64 + TWEETS as u64;
    let (marks, _) = FileStore::new(&wm).load().await.unwrap();
    assert_eq!(marks.rules["restart"].since_id, Some(newest), "the watermark is the newest tweet, saved after every ack");
}

//! Property test of the commit protocol against real Delta tables on local disk: random batches of one
//! partition (overlapping, repeated, out of order), delivered through two processors (two Lambda
//! instances), some at the same time, some killed at a random moment (the invocation's future dropped
//! wherever it is, as a timeout or a crash would), then the whole range once more as the mapping's
//! final redelivery. Checked with the independent reader: every offset recorded, every tweet id of a
//! good record exactly once, every bad record quarantined exactly once, the aggregates equal a recount.
//!
//! `PROPTEST_CASES` sets the number of schedules (default 12; each takes about a second).

use proptest::prelude::*;
use std::collections::BTreeSet;
use std::time::Duration;
use tweetlake_tests::recount::assert_partials_match_recount;
use tweetlake_tests::*;

/// Records in the partition.
const N: usize = 40;

#[derive(Clone, Debug)]
struct Step {
    from: usize,
    len: usize,
    processor: usize,
    /// Runs at the same time as the next step.
    with_next: bool,
    /// Dropped after this many milliseconds.
    kill_ms: Option<u64>,
}

#[derive(Clone, Debug)]
struct Plan {
    /// Tweet id of each offset (repeats are re-sends); `None` is a malformed record.
    ids: Vec<Option<u64>>,
    steps: Vec<Step>,
}

fn plan() -> impl Strategy<Value = Plan> {
    let id = prop_oneof![9 => (0u64..28).prop_map(|i| Some(5_000 + i)), 1 => Just(None)];
    let step = (0..N, 1usize..16, 0usize..2, prop::bool::weighted(0.35), prop::option::weighted(0.25, 0u64..60))
        .prop_map(|(from, len, processor, with_next, kill_ms)| Step { from, len, processor, with_next, kill_ms });
    (prop::collection::vec(id, N), prop::collection::vec(step, 3..12)).prop_map(|(ids, steps)| Plan { ids, steps })
}

fn records(plan: &Plan) -> Vec<Rec> {
    plan.ids
        .iter()
        .enumerate()
        .map(|(i, id)| Rec {
            partition: 0,
            offset: i as i64,
            timestamp_ms: 1_764_000_000_000 + i as i64 * 1_000,
            value: Some(match id {
                Some(id) => envelope(&id.to_string(), &format!("tweet {id} #t{} :)", id % 3), "2025-11-24T16:00:00Z", "test"),
                None => b"{\"v\":1,\"tweet\":".to_vec(),
            }),
        })
        .collect()
}

/// One invocation: retryable failures and kills leave the batch for a later redelivery.
async fn invoke(p: &tweetlake_pipeline::Processor, ev: Vec<u8>, kill_ms: Option<u64>) {
    let run = p.process_event(ev);
    let result = match kill_ms {
        Some(ms) => match tokio::time::timeout(Duration::from_millis(ms), run).await {
            Ok(r) => r,
            Err(_) => return,
        },
        None => run.await,
    };
    if let Err(e) = result {
        assert!(e.is_retryable(), "only retryable failures are expected: {e}");
    }
}

async fn run(plan: Plan) {
    let t = local_tables();
    let ps = [processor(&t, &[]).await, processor(&t, &[]).await];
    let recs = records(&plan);
    let batch = |s: &Step| event(&recs[s.from..(s.from + s.len).min(N)]);
    let mut i = 0;
    while i < plan.steps.len() {
        let s = &plan.steps[i];
        match plan.steps.get(i + 1).filter(|_| s.with_next) {
            Some(next) if next.processor != s.processor => {
                tokio::join!(
                    invoke(&ps[s.processor], batch(s), s.kill_ms),
                    invoke(&ps[next.processor], batch(next), next.kill_ms)
                );
                i += 2;
            }
            _ => {
                invoke(&ps[s.processor], batch(s), s.kill_ms).await;
                i += 1;
            }
        }
    }
    // The mapping's last word: the whole range again, retried until it succeeds.
    deliver(&ps[0], &event(&recs), 30).await;

    let app = "tweetlake:tweets:0";
    let tweets = read_table(&t.tweets, &[app]);
    let quarantine = read_table(&t.quarantine, &[app]);
    let aggregates = read_table(&t.aggregates, &[app]);
    for table in [&tweets, &quarantine, &aggregates] {
        assert_eq!(table["txn"][app], N as i64 - 1, "every offset recorded");
    }
    let mut written: Vec<u64> =
        tweets["rows"].as_array().unwrap().iter().map(|r| r["tweet_id"].as_str().unwrap().parse().unwrap()).collect();
    written.sort_unstable();
    let expected: BTreeSet<u64> = plan.ids.iter().flatten().copied().collect();
    assert_eq!(written, expected.iter().copied().collect::<Vec<_>>(), "each tweet exactly once");
    let offsets = offsets_of(&tweets);
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "no offset twice: {offsets:?}");
    let bad: Vec<i64> = plan.ids.iter().enumerate().filter(|(_, id)| id.is_none()).map(|(i, _)| i as i64).collect();
    assert_eq!(offsets_of(&quarantine), bad, "each malformed record quarantined exactly once");
    assert_partials_match_recount(&tweets, &aggregates);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(12),
        max_shrink_iters: 20,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_schedule_ends_exactly_once(plan in plan()) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(run(plan));
    }
}

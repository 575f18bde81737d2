//! The ingest function's library against the in-process X API test server (real recorded
//! responses, requests checked against the OpenAPI spec) and the real local Kafka broker.

use chrono::{Duration as CDuration, TimeZone, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tweetlake_ingest::clock::{Clock, ManualClock};
use tweetlake_ingest::kafka::headers;
use tweetlake_ingest::watermark::{FileStore, WatermarkStore};
use tweetlake_ingest::{Error, Ingest, IngestConfig};
use tweetlake_pipeline::envelope::TweetMessage;
use tweetlake_tests::kafka::{Consumed, as_event, bootstrap, new_topic, read_all};
use tweetlake_tests::xapi_server::{Fault, Piece, Pool, StreamConn, TOKEN, XApiServer, bundled_sample_len};
use tweetlake_tests::{local_tables, processor, read_table};

const BREXIT: &str = "#brexit lang:en";
const KPOP: &str = "#kpop -is:retweet";

fn rules() -> String {
    format!("brexit: {BREXIT}\nkpop: {KPOP}")
}

async fn ingest(server: &XApiServer, topic: &str, watermarks: &str, extra: &[(&str, &str)]) -> Result<Ingest, Error> {
    let mut env: HashMap<&str, String> = HashMap::from([
        ("TWEETLAKE_RULES", rules()),
        ("TWEETLAKE_X_API_URL", server.url.clone()),
        ("TWEETLAKE_X_BEARER_TOKEN", TOKEN.to_owned()),
        ("TWEETLAKE_KAFKA_BOOTSTRAP", bootstrap()),
        ("TWEETLAKE_TOPIC", topic.to_owned()),
        ("TWEETLAKE_WATERMARK_URI", watermarks.to_owned()),
        ("TWEETLAKE_PAGE_SIZE", "30".to_owned()),
    ]);
    for (k, v) in extra {
        env.insert(k, v.to_string());
    }
    Ingest::from_config(IngestConfig::from_lookup(|k| env.get(k).cloned())?).await
}

/// A fresh secret on the local Secrets Manager endpoint; returns its ARN.
async fn new_secret(prefix: &str, value: Value) -> String {
    let sm = aws_sdk_secretsmanager::Client::new(&aws_config::load_from_env().await);
    let name = format!("tweetlake/{prefix}-{}-{}", std::process::id(), Utc::now().timestamp_micros());
    let out = sm
        .create_secret()
        .name(&name)
        .secret_string(value.to_string())
        .send()
        .await
        .expect("secret created on the local endpoint");
    out.arn().expect("arn").to_owned()
}

fn far() -> chrono::DateTime<Utc> {
    Utc::now() + CDuration::minutes(15)
}

/// The brexit page's tweets sorted by id, oldest first.
fn brexit_sorted() -> Pool {
    let mut p = Pool::recorded("events/x-api/brexit.json");
    p.tweets.sort_by_key(|t| t["id"].as_str().unwrap().parse::<u64>().unwrap());
    p
}

fn id_of(v: &Value) -> u64 {
    v["id"].as_str().unwrap().parse().unwrap()
}

fn by_key(records: &[Consumed]) -> BTreeMap<String, TweetMessage> {
    records
        .iter()
        .filter_map(|c| {
            c.key
                .as_ref()
                .map(|k| (String::from_utf8(k.clone()).unwrap(), serde_json::from_slice(c.value.as_ref().unwrap()).unwrap()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_paginates_merges_rules_and_advances_watermarks_only_forward() {
    let server = XApiServer::start().await;
    let brexit = brexit_sorted();
    let kpop = Pool::recorded("events/x-api/kpop.json");
    // 10 brexit tweets also match the kpop rule: they must be sent once, with both tags.
    let mut kpop_pool = kpop.clone();
    kpop_pool.tweets.extend(brexit.tweets[..10].iter().cloned());
    kpop_pool.users.extend(brexit.users.iter().cloned());
    server.set_pool(BREXIT, brexit.subset(|i| i < 80));
    server.set_pool(KPOP, kpop_pool);
    let topic = new_topic("search", 3).await;
    let dir = tempfile::tempdir().unwrap();
    let wm = dir.path().join("watermarks.json");
    let run = ingest(&server, &topic, wm.to_str().unwrap(), &[]).await.unwrap();

    let r1 = run.run(far()).await.unwrap();
    assert_eq!(server.violations(), Vec::<String>::new(), "requests outside the OpenAPI spec");
    assert_eq!(r1.tweets, 80 + 100, "{r1:?}");
    assert_eq!(r1.produced.messages, 180);
    assert_eq!(r1.rules[0].pages, 3, "80 tweets at 30 per page");
    assert_eq!(r1.rules[1].pages, 4, "110 tweets at 30 per page");
    assert_eq!(r1.rules[1].api_errors, kpop.errors.len(), "the recorded partial errors are counted");
    assert!(r1.rules.iter().all(|r| r.complete) && r1.left.is_empty() && r1.watermarks_saved);

    // Everything in the topic exactly as the envelope says: keyed by id, headers, every rule.
    let records = read_all(&topic);
    assert_eq!(records.len(), 180);
    let msgs = by_key(&records);
    assert_eq!(msgs.len(), 180, "one message per tweet");
    for c in &records {
        let m = &msgs[&String::from_utf8(c.key.clone().unwrap()).unwrap()];
        let tags: Vec<String> = m.rules.iter().map(|r| r.tag.clone().unwrap()).collect();
        assert_eq!(c.header(headers::RULES).unwrap(), tags.join(","));
        assert_eq!(c.header(headers::SOURCE).as_deref(), Some("recent_search"));
        assert_eq!(c.header(headers::ENVELOPE_VERSION).as_deref(), Some("2"));
        assert_eq!(c.header(headers::RUN_ID).as_deref(), Some(r1.run_id.as_str()));
        assert_eq!(m.ingest.run_id, r1.run_id);
    }
    for t in &brexit.tweets[..10] {
        let m = &msgs[t["id"].as_str().unwrap()];
        let tags: HashSet<String> = m.rules.iter().map(|r| r.tag.clone().unwrap()).collect();
        assert_eq!(tags, HashSet::from(["brexit".to_owned(), "kpop".to_owned()]));
    }
    // The envelope holds the recorded tweet and its expanded author.
    let sample = &brexit.tweets[42];
    let m = &msgs[sample["id"].as_str().unwrap()];
    assert_eq!(m.tweet.text, sample["text"].as_str().unwrap());
    assert_eq!(m.tweet.created_at.as_deref(), sample["created_at"].as_str());
    let author = brexit.users.iter().find(|u| u["id"] == sample["author_id"]).unwrap();
    assert_eq!(m.author.as_ref().unwrap().username, author["username"].as_str().unwrap());

    let store = FileStore::new(&wm);
    let (marks, _) = store.load().await.unwrap();
    let newest_80 = id_of(&brexit.tweets[79]);
    assert_eq!(marks.rules["brexit"].since_id, Some(newest_80));

    // 20 newer tweets appear: the next run asks only for them (since_id) and sends only them.
    server.set_pool(BREXIT, brexit.clone());
    let r2 = run.run(far()).await.unwrap();
    assert_eq!(r2.produced.messages, 20, "{r2:?}");
    let brexit_reqs: Vec<_> =
        server.seen().into_iter().filter(|s| s.query.get("query").map(String::as_str) == Some(BREXIT)).collect();
    assert!(brexit_reqs[..3].iter().all(|s| !s.query.contains_key("since_id")), "the first run starts without a watermark");
    assert_eq!(brexit_reqs[3].query["since_id"], newest_80.to_string());
    assert_eq!(brexit_reqs[3].query["post.fields"], tweetlake_ingest::xapi::SEARCH_POST_FIELDS);
    assert_eq!(brexit_reqs[3].query["expansions"], tweetlake_ingest::xapi::SEARCH_EXPANSIONS);
    assert_eq!(FileStore::new(&wm).load().await.unwrap().0.rules["brexit"].since_id, Some(id_of(&brexit.tweets[99])));
    let r3 = run.run(far()).await.unwrap();
    assert_eq!(r3.produced.messages, 0);
    assert_eq!(read_all(&topic).len(), 200);
    assert_eq!(server.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_the_deadline_cut_a_run_short_and_the_next_run_fills_the_gap() {
    let server = XApiServer::start().await;
    let brexit = brexit_sorted();
    server.set_pool(BREXIT, brexit.clone());
    let topic = new_topic("gap", 2).await;
    let dir = tempfile::tempdir().unwrap();
    let wm = dir.path().join("wm.json");
    let t0 = Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap();
    let clock = ManualClock::new(t0);
    let run = ingest(&server, &topic, wm.to_str().unwrap(), &[("TWEETLAKE_RULES", &format!("brexit: {BREXIT}"))])
        .await
        .unwrap()
        .with_clock(Arc::new(clock.clone()));

    // A 429 whose reset is 32 s away (waited out), one page, then a 503 whose 1 s retry wait would
    // reach into the deadline's 10 s margin (43 s away): the run stops, keeps what it has, records a gap.
    server.fail_next_searches([
        Fault::RateLimited { reset: (t0 + CDuration::seconds(32)).timestamp() },
        Fault::Pass,
        Fault::Status(503),
    ]);
    server.rate_window(2, (t0 + CDuration::hours(1)).timestamp());
    let r1 = run.run(t0 + CDuration::seconds(43)).await.unwrap();
    assert_eq!(clock.sleeps(), vec![Duration::from_secs(32)], "waited for the rate-limit reset, not into the margin");
    assert_eq!(r1.rules[0].pages, 1);
    assert!(!r1.rules[0].complete);
    assert!(r1.left[0].contains("HTTP 503") && r1.left[0].contains("deadline"), "{:?}", r1.left);
    assert_eq!(r1.produced.messages, 30);
    let gap = r1.rules[0].after.gap.expect("a gap is recorded");
    assert_eq!(gap.newest_id, id_of(&brexit.tweets[99]));
    assert_eq!(gap.until_id, id_of(&brexit.tweets[70]));
    assert_eq!(r1.rules[0].after.since_id, None);

    // Next run: the rate window (2 requests, resets in an hour) ends it after one more page.
    let r2 = run.run(t0 + CDuration::minutes(30)).await.unwrap();
    assert_eq!(r2.rules[0].pages, 1, "{r2:?}");
    assert!(r2.left[0].contains("rate limited until"), "{:?}", r2.left);
    assert_eq!(r2.rules[0].after.gap.unwrap().until_id, id_of(&brexit.tweets[40]));
    let last = server.seen().last().unwrap().query.clone();
    assert_eq!(last["until_id"], gap.until_id.to_string(), "the gap is filled from its lower end");

    // Once the window resets, the gap closes and since_id jumps to the newest tweet seen; a dropped
    // connection and a 503 on the way are retried after 1 s and 2 s.
    server.rate_window(1000, (t0 + CDuration::hours(2)).timestamp());
    server.fail_next_searches([Fault::Disconnect, Fault::Status(503)]);
    clock.advance(Duration::from_secs(3600));
    let r3 = run.run(t0 + CDuration::hours(2)).await.unwrap();
    assert_eq!(clock.sleeps()[1..], [Duration::from_secs(1), Duration::from_secs(2)]);
    assert!(r3.rules[0].complete, "{r3:?}");
    assert_eq!(r3.rules[0].after.since_id, Some(id_of(&brexit.tweets[99])));
    assert_eq!(r3.rules[0].after.gap, None);
    let ids: Vec<String> = read_all(&topic).iter().map(|c| String::from_utf8(c.key.clone().unwrap()).unwrap()).collect();
    assert_eq!(ids.len(), 100, "every tweet sent exactly once across the three runs");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 100);
    assert_eq!(server.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_is_down_fails_the_run_without_moving_the_watermark_and_a_rerun_is_deduplicated() {
    let server = XApiServer::start().await;
    server.set_pool(BREXIT, brexit_sorted());
    let dir = tempfile::tempdir().unwrap();
    let wm = dir.path().join("wm.json");
    let single = format!("brexit: {BREXIT}");
    let topic = new_topic("down", 2).await;

    // Nothing listens on port 1: no acknowledgement within the message timeout.
    let down = ingest(
        &server,
        &topic,
        wm.to_str().unwrap(),
        &[
            ("TWEETLAKE_RULES", &single),
            ("TWEETLAKE_KAFKA_BOOTSTRAP", "127.0.0.1:1"),
            ("TWEETLAKE_KAFKA_MESSAGE_TIMEOUT_MS", "1500"),
        ],
    )
    .await
    .unwrap();
    let e = down.run(far()).await.unwrap_err();
    assert!(matches!(e, Error::Kafka(_)) && e.is_retryable(), "{e}");
    assert!(e.to_string().contains("100 of 100 messages not acknowledged"), "{e}");
    assert!(!wm.exists(), "the watermark must not move");

    // The tweets reach Kafka, but the run fails before saving the watermark: another run holds
    // the watermark file's lock for longer than a save waits.
    let lock = wm.with_extension("lock");
    std::fs::write(&lock, b"").unwrap();
    let half = ingest(&server, &topic, wm.to_str().unwrap(), &[("TWEETLAKE_RULES", &single)]).await.unwrap();
    let e = half.run(far()).await.unwrap_err();
    assert!(matches!(e, Error::Watermark { .. }), "{e}");
    assert!(!wm.exists());
    std::fs::remove_file(&lock).unwrap();
    // The rerun sends everything again (at least once)…
    let good = ingest(&server, &topic, wm.to_str().unwrap(), &[("TWEETLAKE_RULES", &single)]).await.unwrap();
    assert_eq!(good.run(far()).await.unwrap().produced.messages, 100);
    let records = read_all(&topic);
    assert_eq!(records.len(), 200, "each tweet is in the topic twice");
    // …and the process function writes each tweet once.
    let tables = local_tables();
    let p = processor(&tables, &[]).await;
    let s = p.process_event(as_event(&records)).await.unwrap();
    assert_eq!(s.rows_written, 100, "{s:?}");
    assert_eq!(s.duplicates_in_batch, 100);
    let t = read_table(&tables.tweets, &[]);
    assert_eq!(t["rows"].as_array().unwrap().len(), 100);
}

fn line(v: &str) -> Piece {
    Piece::Bytes(format!("{v}\r\n").into_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_session_syncs_rules_reconnects_with_backoff_and_forwards_truncated_messages() {
    let server = XApiServer::start().await;
    server.set_rules(&[("cat has:images", "cats"), (BREXIT, "brexit")]);
    let session =
        std::fs::read_to_string(tweetlake_tests::repo_root().join("tests/data/x-api/filtered_stream_session.jsonl")).unwrap();
    let lines: Vec<&str> = session.lines().collect();
    assert_eq!(lines.len(), 8);
    let disconnect =
        std::fs::read_to_string(tweetlake_tests::repo_root().join("tests/data/x-api/stream_operational_disconnect_error.json"))
            .unwrap();
    let cut = &lines[2][..lines[2].len() / 2];
    server.script_stream([
        // Two messages, a keep-alive, then the third cut off by a disconnect.
        StreamConn::Send {
            pieces: vec![line(lines[0]), Piece::Bytes(b"\r\n".to_vec()), line(lines[1]), Piece::Bytes(cut.as_bytes().to_vec())],
            hang: false,
        },
        StreamConn::Refuse(503),
        StreamConn::Refuse(503),
        StreamConn::Refuse(429),
        // A keep-alive, then silence: the client must give up on it after the silence timeout.
        StreamConn::Send { pieces: vec![Piece::Bytes(b"\r\n".to_vec())], hang: true },
        // The rest of the recorded session (its last line is truncated), then X's operational disconnect.
        StreamConn::Send {
            pieces: lines[2..]
                .iter()
                .map(|l| line(l))
                .chain([Piece::Pause(Duration::from_millis(50)), line(&disconnect.replace('\n', ""))])
                .collect(),
            hang: false,
        },
    ]);
    let topic = new_topic("stream", 2).await;
    let t0 = Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap();
    let clock = ManualClock::new(t0);
    let dir = tempfile::tempdir().unwrap();
    let wm = dir.path().join("wm.json");
    let run = ingest(
        &server,
        &topic,
        wm.to_str().unwrap(),
        &[
            ("TWEETLAKE_INGEST_MODE", "filtered_stream"),
            ("TWEETLAKE_RULES", &format!("brexit: {BREXIT}\nkpop: {KPOP}")),
            ("TWEETLAKE_STREAM_SECONDS", "120"),
            ("TWEETLAKE_STREAM_SILENCE_SECS", "0.3"),
        ],
    )
    .await
    .unwrap()
    .with_clock(Arc::new(clock.clone()));
    let r = run.run(t0 + CDuration::hours(1)).await.unwrap();

    // Rules: the stale one deleted, the new one added, the unchanged one left alone.
    assert_eq!(r.rules_sync.as_ref().unwrap().added, vec!["kpop".to_owned()]);
    assert_eq!(r.rules_sync.as_ref().unwrap().deleted.len(), 1);
    let mut now_set = server.rules();
    now_set.sort();
    let mut want = vec![(BREXIT.to_owned(), "brexit".to_owned()), (KPOP.to_owned(), "kpop".to_owned())];
    want.sort();
    assert_eq!(now_set, want);

    let s = r.stream.as_ref().unwrap();
    // X's schedules: network 250 ms (reset by data), HTTP 5 s doubling, 429 from 60 s; then the
    // unscripted 503s back off 5, 10, 20 s until the 120 s session has no room for the next wait.
    assert_eq!(s.backoff_ms, vec![250, 5_000, 10_000, 60_000, 250, 250, 5_000, 10_000, 20_000], "{s:?}");
    assert_eq!(clock.sleeps().iter().map(|d| d.as_millis() as u64).collect::<Vec<_>>(), s.backoff_ms);
    assert_eq!(s.connections, 3);
    assert_eq!(s.tweets, 7, "7 complete messages, the cut-off one delivered again on the next connection");
    assert_eq!(s.keep_alives, 2);
    assert_eq!(s.unreadable, 2, "the cut-off third message and the recorded truncated eighth");
    assert!(s.problems.iter().any(|p| p.contains("operational-disconnect")), "{:?}", s.problems);
    assert!(s.ended.contains("session time is up"), "{}", s.ended);
    assert_eq!(r.tweets, 7);
    assert_eq!(r.produced.messages, 7);
    assert_eq!(r.produced.unreadable, 2);
    // Every connection's time is recorded. On the test's clock they lasted no time, so none is trusted
    // and the whole session, up to 10 s ago, is searched for what the stream missed.
    assert_eq!(s.connected.len(), 3);
    let coverage = r.coverage.as_ref().unwrap();
    let ago = t0 + CDuration::milliseconds(s.backoff_ms.iter().sum::<u64>() as i64 - 10_000);
    assert_eq!(coverage.windows, vec![tweetlake_ingest::watermark::Window { start: t0, end: ago }], "{coverage:?}");
    assert_eq!(coverage.coverage_gap_seconds, 0);
    assert!(r.watermarks_saved, "the stream's coverage is recorded");

    // The process function writes the 7 tweets and quarantines the 2 unreadable lines with the reason.
    let records = read_all(&topic);
    assert_eq!(records.len(), 9);
    let tables = local_tables();
    let p = processor(&tables, &[]).await;
    let summary = p.process_event(as_event(&records)).await.unwrap();
    assert_eq!(summary.rows_written + summary.quarantined.values().sum::<usize>(), 9, "{summary:?}");
    assert_eq!(summary.quarantined.get("json"), Some(&2), "{summary:?}");
    assert_eq!(server.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_feeds_the_same_path_from_recorded_pages() {
    let dir = tempfile::tempdir().unwrap();
    // The bundled sample: each file named after the rule it answers (`brexit.json`, `brexit.day-before.json`).
    let pages = tweetlake_tests::repo_root().join("events/x-api");
    let topic = new_topic("replay", 2).await;
    let wm = dir.path().join("wm.json");
    let server = XApiServer::start().await;
    let run = ingest(&server, &topic, wm.to_str().unwrap(), &[("TWEETLAKE_REPLAY_PATH", pages.to_str().unwrap())]).await.unwrap();
    let r = run.run(far()).await.unwrap();
    assert_eq!(r.source, "replay");
    let brexit_ids: HashSet<String> = Pool::bundled("brexit").ids().into_iter().collect();
    assert_eq!(brexit_ids.len(), 130, "the recorded page and the day before it");
    assert_eq!(r.produced.messages, bundled_sample_len(), "{r:?}");
    assert!(server.seen().is_empty(), "replay never calls the API");
    let msgs = by_key(&read_all(&topic));
    for (id, m) in &msgs {
        let tag = m.rules[0].tag.clone().unwrap();
        assert_eq!(tag == "brexit", brexit_ids.contains(id), "{id} tagged {tag}");
        assert_eq!(m.ingest.source, "replay");
    }
    // The watermark applies to replays too: a second run sends nothing new.
    assert_eq!(run.run(far()).await.unwrap().produced.messages, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_topic_is_created_at_start_when_partitions_are_set() {
    // MSK does not create topics on first use; the deployed function is told the partitions instead.
    let dir = tempfile::tempdir().unwrap();
    let topic = format!("created-{}-{}", std::process::id(), Utc::now().timestamp_micros() % 1_000_000);
    let wm = dir.path().join("wm.json");
    let server = XApiServer::start().await;
    let pages = tweetlake_tests::repo_root().join("events/x-api");
    let extra = [("TWEETLAKE_REPLAY_PATH", pages.to_str().unwrap()), ("TWEETLAKE_TOPIC_PARTITIONS", "4")];
    let r = ingest(&server, &topic, wm.to_str().unwrap(), &extra).await.unwrap().run(far()).await.unwrap();
    let bundled = bundled_sample_len();
    assert_eq!(r.produced.messages, bundled, "{r:?}");
    let ends = tweetlake_tests::kafka::end_offsets(&bootstrap(), &topic);
    assert_eq!(ends.len(), 4, "created with 4 partitions: {ends:?}");
    assert_eq!(ends.values().sum::<i64>(), bundled as i64, "every message landed: {ends:?}");
    // The next cold start finds it and carries on.
    let again = ingest(&server, &topic, wm.to_str().unwrap(), &extra).await.unwrap().run(far()).await.unwrap();
    assert_eq!(again.produced.messages, 0, "{again:?}");
    assert_eq!(tweetlake_tests::kafka::end_offsets(&bootstrap(), &topic).len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_watermarks_take_conditional_writes_so_overlapping_runs_merge_instead_of_clobbering() {
    use tweetlake_ingest::watermark::{RuleMark, S3Store, Saved, Watermarks, save_merged};
    let bucket = tweetlake_tests::new_bucket("wm");
    let conf = aws_config::load_from_env().await;
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&conf).force_path_style(true).build());
    let store = S3Store::new(s3, &format!("s3://{bucket}/ingest/watermarks.json")).unwrap();
    let mark = |since: u64| RuleMark { value: "q".into(), since_id: Some(since), gap: None };
    // Two runs start from the same (absent) object.
    let (base, v0) = store.load().await.unwrap();
    assert_eq!(v0, None);
    let mut a = base.clone();
    a.rules.insert("rust".into(), mark(100));
    a.rules.insert("kpop".into(), mark(7));
    let mut b = base.clone();
    b.rules.insert("rust".into(), mark(150));
    // B writes first; A's write against the old version must be refused, not overwrite B.
    assert_eq!(store.save(&b, &v0).await.unwrap(), Saved::Yes);
    assert_eq!(store.save(&a, &v0).await.unwrap(), Saved::Conflict);
    let (_, v1) = store.load().await.unwrap();
    assert!(v1.is_some());
    let mut stale = a.clone();
    stale.rules.insert("x".into(), mark(1));
    assert_eq!(store.save(&stale, &Some("\"not-the-etag\"".into())).await.unwrap(), Saved::Conflict);
    // A merges and writes: each rule keeps the further mark.
    let merged = save_merged(&store, a, v0).await.unwrap();
    let (stored, _): (Watermarks, _) = store.load().await.unwrap();
    assert_eq!(stored, merged);
    assert_eq!(stored.rules["rust"], mark(150));
    assert_eq!(stored.rules["kpop"], mark(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_token_can_come_from_secrets_manager_and_never_shows_in_the_report() {
    let arn = new_secret("x-bearer", serde_json::json!({ "bearer_token": TOKEN })).await;
    let server = XApiServer::start().await;
    server.set_pool(BREXIT, brexit_sorted());
    let topic = new_topic("secret", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let wm = dir.path().join("wm.json");
    let mut env: HashMap<&str, String> = HashMap::from([
        ("TWEETLAKE_RULES", format!("brexit: {BREXIT}")),
        ("TWEETLAKE_X_API_URL", server.url.clone()),
        ("TWEETLAKE_X_BEARER_TOKEN_SECRET_ARN", arn.clone()),
        ("TWEETLAKE_KAFKA_BOOTSTRAP", bootstrap()),
        ("TWEETLAKE_TOPIC", topic.clone()),
        ("TWEETLAKE_WATERMARK_URI", wm.display().to_string()),
    ]);
    let run = Ingest::from_config(IngestConfig::from_lookup(|k| env.get(k).cloned()).unwrap()).await.unwrap();
    let r = run.run(far()).await.unwrap();
    assert_eq!(r.produced.messages, 100);
    assert!(server.seen().iter().all(|s| s.auth.as_deref() == Some(&format!("Bearer {TOKEN}"))));
    assert!(!serde_json::to_string(&r).unwrap().contains(TOKEN));
    // A missing secret fails at start, naming the secret and not the token.
    env.insert("TWEETLAKE_X_BEARER_TOKEN_SECRET_ARN", format!("{arn}-missing"));
    let e = Ingest::from_config(IngestConfig::from_lookup(|k| env.get(k).cloned()).unwrap()).await.err().expect("fails");
    assert!(matches!(e, Error::Secret { .. }) && e.to_string().contains("-missing"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_scram_and_iam_deliver_every_tweet_with_a_private_ca_and_their_credentials() {
    use tweetlake_ingest::msk::AuthMode;
    use tweetlake_tests::kafka::{read_all_from, secure_settings};
    let pages = tweetlake_tests::repo_root().join("events/x-api");
    let bundled = bundled_sample_len();
    let server = XApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let scram = secure_settings(AuthMode::Scram, true);
    let (user, password) = scram.scram.clone().unwrap();
    let good = new_secret("msk-scram", serde_json::json!({ "username": user, "password": password })).await;
    let bad = new_secret("msk-scram-bad", serde_json::json!({ "username": user, "password": "not-the-password" })).await;
    let ca = scram.ca_file.as_ref().and_then(|f| f.to_str()).expect("the stack's CA").to_owned();
    // IAM signs its token with the environment's AWS credentials, the ones the broker's validator holds.
    let modes = [
        ("tls", secure_settings(AuthMode::Tls, true), None),
        ("scram", scram, Some(&good)),
        ("iam", secure_settings(AuthMode::Iam, true), None),
    ];
    for (auth, conn, secret) in modes {
        let topic = format!("secure-{auth}-{}-{}", std::process::id(), Utc::now().timestamp_micros() % 1_000_000);
        let wm = dir.path().join(format!("{auth}.json"));
        let mut extra = vec![
            ("TWEETLAKE_REPLAY_PATH", pages.to_str().unwrap()),
            ("TWEETLAKE_KAFKA_BOOTSTRAP", conn.bootstrap.as_str()),
            ("TWEETLAKE_KAFKA_AUTH", auth),
            ("TWEETLAKE_KAFKA_CA_FILE", ca.as_str()),
            // The topic is created over the same secured connection.
            ("TWEETLAKE_TOPIC_PARTITIONS", "2"),
            ("TWEETLAKE_KAFKA_MESSAGE_TIMEOUT_MS", "4000"),
        ];
        if let Some(arn) = secret {
            extra.push(("TWEETLAKE_KAFKA_SCRAM_SECRET_ARN", arn.as_str()));
        }
        let r = ingest(&server, &topic, wm.to_str().unwrap(), &extra).await.unwrap().run(far()).await.unwrap();
        assert_eq!(r.produced.messages, bundled, "{auth}: {r:?}");
        // Read back over the secured connection; for IAM (whose tokens only our producer context signs)
        // over the same broker's plaintext listener.
        let reader = if auth == "iam" { tweetlake_tests::kafka::settings(&bootstrap()) } else { conn.clone() };
        let back = read_all_from(&reader, &topic);
        assert_eq!(by_key(&back).len(), bundled, "{auth}: every tweet once, keyed");
        assert!(back.iter().all(|c| c.header(headers::SOURCE).as_deref() == Some("replay")), "{auth}");

        // Without the private CA the broker's certificate is not trusted: nothing is delivered and
        // the watermark stays put. With SCRAM, a wrong password fails the same way.
        let fresh = dir.path().join(format!("{auth}-refused.json"));
        let mut refused: Vec<(&str, &str)> = extra
            .iter()
            .copied()
            .filter(|(k, _)| !["TWEETLAKE_KAFKA_CA_FILE", "TWEETLAKE_TOPIC_PARTITIONS"].contains(k))
            .collect();
        let mut cases = vec![refused.clone()];
        if secret.is_some() {
            refused.retain(|(k, _)| *k != "TWEETLAKE_KAFKA_SCRAM_SECRET_ARN");
            refused.extend([("TWEETLAKE_KAFKA_CA_FILE", ca.as_str()), ("TWEETLAKE_KAFKA_SCRAM_SECRET_ARN", bad.as_str())]);
            cases.push(refused);
        }
        for case in cases {
            let e = ingest(&server, &topic, fresh.to_str().unwrap(), &case).await.unwrap().run(far()).await.unwrap_err();
            assert!(
                matches!(e, Error::Kafka(_))
                    && e.to_string().contains(&format!("{bundled} of {bundled} messages not acknowledged")),
                "{auth}: {e}"
            );
            assert!(!e.to_string().contains(&password), "the password never shows: {e}");
            assert!(!fresh.exists(), "{auth}: the watermark must not move");
        }
        assert_eq!(read_all_from(&reader, &topic).len(), bundled, "{auth}: the refused runs added nothing");
    }
}

/// The broker's IAM listener checks the token as MSK would, so the end-to-end IAM run above means our
/// token is a correctly signed SigV4 presigned URL: tokens signed with the wrong secret, expired ones,
/// ones for another access key and garbage are all refused; only the well-formed, current one connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_iam_listener_accepts_only_a_current_token_signed_with_the_right_secret() {
    use aws_credential_types::Credentials;
    use rdkafka::client::{ClientContext, OAuthToken};
    use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
    use std::time::{Duration, SystemTime};
    use tweetlake_ingest::msk::{AuthMode, iam_token};

    /// Hands out one token, claimed valid for the next 15 minutes (the broker decides).
    struct Fixed(String);
    impl ClientContext for Fixed {
        const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;
        fn generate_oauth_token(&self, _: Option<&str>) -> Result<OAuthToken, Box<dyn std::error::Error>> {
            let lifetime_ms = chrono::Utc::now().timestamp_millis() + 900_000;
            Ok(OAuthToken { token: self.0.clone(), principal_name: String::new(), lifetime_ms })
        }
    }
    impl ConsumerContext for Fixed {}
    let connects = |token: String| {
        let conn = tweetlake_tests::kafka::secure_settings(AuthMode::Iam, true);
        let client: BaseConsumer<Fixed> =
            conn.client_config().set("group.id", "iam-check").create_with_context(Fixed(token)).unwrap();
        // librdkafka asks for the token through an event that `poll` serves.
        assert!(client.poll(Duration::ZERO).is_none());
        client.fetch_metadata(None, Duration::from_secs(8)).map(|m| m.brokers().len())
    };
    let creds = |key: &str, secret: &str| Credentials::new(key, secret, None, None, "test");
    let now = SystemTime::now();
    let sign = |c: Credentials, at: SystemTime| iam_token(&c, "us-east-1", at).unwrap().0;
    assert_eq!(connects(sign(creds("test", "test"), now)).expect("a current, correctly signed token connects"), 1);
    let refused = [
        ("wrong secret", sign(creds("test", "not-the-secret"), now)),
        ("expired", sign(creds("test", "test"), now - Duration::from_secs(1_000))),
        ("another access key", sign(creds("AKIDOTHER", "test"), now)),
        ("not a token", "bm90IGEgdG9rZW4".to_owned()),
    ];
    for (what, token) in refused {
        assert!(connects(token).is_err(), "{what}: refused");
    }
}

/// An Amazon MSK control-plane endpoint of the test's own (MSK cannot run here): answers
/// `GetBootstrapBrokers` (`GET /v1/clusters/{arn}/bootstrap-brokers`) as the service does — for the one
/// cluster it knows, the broker strings of the auth modes enabled on it; for any other, a 404
/// `NotFoundException` — and records the ARNs it was asked about.
async fn msk_endpoint(known_arn: &'static str, brokers: Value) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::extract::{Path, State};
    use axum::response::IntoResponse;
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .route(
            "/v1/clusters/{arn}/bootstrap-brokers",
            axum::routing::get(move |Path(arn): Path<String>, State(asked): State<Arc<std::sync::Mutex<Vec<String>>>>| {
                let brokers = brokers.clone();
                async move {
                    asked.lock().unwrap().push(arn.clone());
                    if arn == known_arn {
                        axum::Json(brokers).into_response()
                    } else {
                        let body = serde_json::json!({ "message": format!("Cluster {arn} does not exist.") });
                        (axum::http::StatusCode::NOT_FOUND, [("x-amzn-ErrorType", "NotFoundException")], axum::Json(body))
                            .into_response()
                    }
                }
            }),
        )
        .with_state(asked.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, asked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_brokers_are_looked_up_from_the_msk_cluster_arn_for_the_chosen_auth_mode() {
    use tweetlake_ingest::msk::{AuthMode, bootstrap_brokers};
    const ARN: &str = "arn:aws:kafka:us-east-1:123456789012:cluster/tweetlake/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d-2";
    // A cluster with TLS and IAM listeners only, like the template's provisioned cluster.
    let (url, asked) = msk_endpoint(
        ARN,
        serde_json::json!({
            "bootstrapBrokerStringTls": "b-1.tweetlake.kafka.us-east-1.amazonaws.com:9094,b-2.tweetlake.kafka.us-east-1.amazonaws.com:9094",
            "bootstrapBrokerStringSaslIam": "b-1.tweetlake.kafka.us-east-1.amazonaws.com:9098,b-2.tweetlake.kafka.us-east-1.amazonaws.com:9098"
        }),
    )
    .await;
    let conf = aws_config::load_from_env().await;
    let client = aws_sdk_kafka::Client::from_conf(aws_sdk_kafka::config::Builder::from(&conf).endpoint_url(&url).build());
    let iam = bootstrap_brokers(&client, ARN, AuthMode::Iam).await.unwrap();
    assert_eq!(iam, "b-1.tweetlake.kafka.us-east-1.amazonaws.com:9098,b-2.tweetlake.kafka.us-east-1.amazonaws.com:9098");
    assert!(bootstrap_brokers(&client, ARN, AuthMode::Tls).await.unwrap().ends_with(":9094"));
    assert_eq!(asked.lock().unwrap().as_slice(), [ARN, ARN], "the SDK sent the ARN in the path");
    // A mode the cluster does not offer, and an unknown cluster, fail at start naming the setting.
    let e = bootstrap_brokers(&client, ARN, AuthMode::Scram).await.unwrap_err();
    assert!(
        matches!(e, Error::Config { var: "TWEETLAKE_KAFKA_AUTH", .. })
            && e.to_string().contains("no brokers for auth mode Scram"),
        "{e}"
    );
    let other = ARN.replace("tweetlake/", "other/");
    let e = bootstrap_brokers(&client, &other, AuthMode::Iam).await.unwrap_err();
    assert!(matches!(e, Error::Config { var: "TWEETLAKE_MSK_CLUSTER_ARN", .. }), "{e}");
    assert!(e.to_string().contains("NotFoundException") && e.to_string().contains("does not exist"), "{e}");
    assert!(!e.is_retryable(), "a wrong ARN is a configuration error, not worth a retry");
}

/// Posts of the recorded brexit page re-dated to `seconds` after `t0`, with ids in that order.
fn dated(t0: chrono::DateTime<Utc>, seconds: &[i64]) -> Pool {
    let mut pool = brexit_sorted();
    pool.tweets.truncate(seconds.len());
    for (i, (t, s)) in pool.tweets.iter_mut().zip(seconds).enumerate() {
        t["id"] = Value::String((1_900_000_000_000_000_000u64 + i as u64).to_string());
        t["created_at"] = Value::String((t0 + CDuration::seconds(*s)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    }
    pool
}

/// One filtered-stream message: the post, its author, the rule that matched it.
fn stream_message(pool: &Pool, i: usize, tag: &str) -> Piece {
    let author = pool.tweets[i]["author_id"].clone();
    let users: Vec<&Value> = pool.users.iter().filter(|u| u["id"] == author).collect();
    line(
        &serde_json::json!({"data": pool.tweets[i], "includes": {"users": users}, "matching_rules": [{"id": "1", "tag": tag}]})
            .to_string(),
    )
}

/// One scheduled stream run at the clock's time: the connection sends `pieces`, then stays open until
/// the 270 s session is over (the clock is moved on while it is connected).
async fn stream_run(
    server: &XApiServer,
    topic: &str,
    wm: &str,
    clock: &ManualClock,
    pieces: Vec<Piece>,
) -> tweetlake_ingest::RunReport {
    let mut pieces = pieces;
    // A keep-alive after the clock has moved ends the session on time.
    pieces.extend([Piece::Pause(Duration::from_millis(1500)), Piece::Bytes(b"\r\n".to_vec())]);
    server.script_stream([StreamConn::Send { pieces, hang: true }]);
    let run = ingest(server, topic, wm, &[("TWEETLAKE_INGEST_MODE", "filtered_stream"), ("TWEETLAKE_STREAM_SILENCE_SECS", "10")])
        .await
        .unwrap()
        .with_clock(Arc::new(clock.clone()));
    let (mover, watcher) = (clock.clone(), server.clone());
    let connections = |s: &XApiServer| s.seen().iter().filter(|r| r.path == "/2/tweets/search/stream").count();
    let before = connections(server);
    let session = tokio::spawn(async move {
        // Once connected and the messages read, the session's time passes.
        while connections(&watcher) == before {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        mover.advance(Duration::from_secs(270));
    });
    let deadline = clock.now() + CDuration::minutes(5);
    let report = run.run(deadline).await.unwrap();
    session.await.unwrap();
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_published_between_two_stream_sessions_lands_once_and_an_unfinished_fill_is_reported_and_redone() {
    let server = XApiServer::start().await;
    server.set_rules(&[(BREXIT, "brexit"), (KPOP, "kpop")]);
    let t0 = Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap();
    // A: read by session 1. E: at its end, read by it and by the next fill. B: between the sessions.
    // D: just after session 2 connects, read by it and by its fill. C: read by session 2. F: between
    // sessions 2 and 3, whose fill fails.
    let (a, e, b, d, c, f) = (0, 1, 2, 3, 4, 5);
    let posts = dated(t0, &[30, 265, 285, 305, 320, 580]);
    server.set_pool(BREXIT, posts.clone());
    let topic = new_topic("coverage", 2).await;
    let dir = tempfile::tempdir().unwrap();
    let wm = dir.path().join("wm.json");
    let wm = wm.to_str().unwrap();
    let clock = ManualClock::new(t0);

    let r1 =
        stream_run(&server, &topic, wm, &clock, vec![stream_message(&posts, a, "brexit"), stream_message(&posts, e, "brexit")])
            .await;
    let c1 = r1.coverage.as_ref().expect("coverage reported");
    assert_eq!(r1.stream.as_ref().unwrap().connected.len(), 1);
    assert_eq!((c1.from, c1.covered_until), (None, t0 + CDuration::seconds(260)), "{c1:?}");
    assert_eq!(c1.coverage_gap_seconds, 0);
    assert_eq!(r1.produced.messages, 2);

    // The next scheduled run, 5 minutes after the first.
    clock.advance(Duration::from_secs(30));
    let r2 =
        stream_run(&server, &topic, wm, &clock, vec![stream_message(&posts, d, "brexit"), stream_message(&posts, c, "brexit")])
            .await;
    let c2 = r2.coverage.as_ref().unwrap();
    // The window from where session 1 was trusted to its end to 10 s into session 2 is filled by search.
    let window = |a: i64, b: i64| tweetlake_ingest::watermark::Window {
        start: t0 + CDuration::seconds(a),
        end: t0 + CDuration::seconds(b),
    };
    assert_eq!(c2.windows, vec![window(260, 310)], "{c2:?}");
    let brexit = c2.rules.iter().find(|r| r.tag == "brexit").unwrap();
    assert_eq!(brexit.tweets, 3, "E, B and D: {brexit:?}");
    assert_eq!(c2.coverage_gap_seconds, 0);
    assert_eq!(r2.produced.messages, 4, "E again, B, and D and C once each (the run merges D's two reads)");

    // Session 3's fill fails on every attempt: the window stays pending and the gap is reported.
    clock.advance(Duration::from_secs(30));
    server.fail_next_searches(std::iter::repeat_n(Fault::Status(503), 6));
    let r3 = stream_run(&server, &topic, wm, &clock, vec![]).await;
    let c3 = r3.coverage.as_ref().unwrap();
    assert_eq!(c3.windows, vec![window(560, 610)]);
    assert_eq!(c3.coverage_gap_seconds, 50, "{c3:?}");
    assert!(c3.rules.iter().all(|r| r.pending == vec![window(560, 610)]), "{c3:?}");
    assert!(r3.left.iter().any(|l| l.starts_with("brexit: 1 stream window")), "{:?}", r3.left);
    assert_eq!(r3.produced.messages, 0, "F is not lost: it waits in the pending window");
    let metric: Value = serde_json::from_str(&r3.metric_lines(0)[0]).unwrap();
    assert_eq!(metric["CoverageGapSeconds"], 50, "the alarmed metric: {metric}");

    // Session 4 fills the pending window first, then its own.
    clock.advance(Duration::from_secs(30));
    let r4 = stream_run(&server, &topic, wm, &clock, vec![]).await;
    let c4 = r4.coverage.as_ref().unwrap();
    assert_eq!(c4.coverage_gap_seconds, 0, "{c4:?}");
    assert_eq!(c4.rules.iter().find(|r| r.tag == "brexit").unwrap().windows, 2);
    assert_eq!(r4.produced.messages, 1, "F");

    // The topic holds E twice; the process function writes each post once.
    let records = read_all(&topic);
    let copies = |i: usize| records.iter().filter(|r| r.key.as_deref() == Some(posts.ids()[i].as_bytes())).count();
    assert_eq!([a, e, b, d, c, f].map(copies), [1, 2, 1, 1, 1, 1]);
    let tables = local_tables();
    let p = processor(&tables, &[]).await;
    let s = p.process_event(as_event(&records)).await.unwrap();
    assert_eq!((s.rows_written, s.duplicates_in_batch), (6, 1), "{s:?}");
    let table = read_table(&tables.tweets, &[]);
    let mut ids: Vec<String> =
        table["rows"].as_array().unwrap().iter().map(|r| r["tweet_id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    assert_eq!(ids, posts.ids(), "every post once, B and F included");
    assert_eq!(server.violations(), Vec::<String>::new(), "time windows are sent as the spec defines them");
}

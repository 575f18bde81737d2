//! Compliance deletions end to end: posts from the X API test server go through the ingest library and
//! the real broker into Delta on the S3 endpoint; then compliance jobs on the test server (its lifecycle
//! checked against the OpenAPI spec) report some of them deleted, protected or suspended. What X reports
//! leaves every table as the Python and Spark readers see them, the aggregates equal a recount, a rerun
//! changes nothing, a failed or expired job changes nothing and says so, and after the retention
//! period maintenance leaves no file holding a removed post.

use chrono::{DateTime, Duration as CDuration, Utc};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use tweetlake_compliance::{ComplianceConfig, Outcome, run};
use tweetlake_ingest::clock::ManualClock;
use tweetlake_ingest::compliance::JobStatus;
use tweetlake_ingest::xapi::XClient;
use tweetlake_tests::kafka::{as_event, bootstrap, new_topic, produce_keyed, read_all};
use tweetlake_tests::posts::{self, Ids};
use tweetlake_tests::recount::assert_partials_match_recount;
use tweetlake_tests::xapi_server::{JobScript, TOKEN, XApiServer};
use tweetlake_tests::{Tables, deliver, processor, read_table, s3_tables, spark};

const RULE: &str = "#comply";
/// A post that only ever reached the quarantine (its message is broken), keyed by its id.
const QUARANTINED: &str = "1870000000000000500";
/// A quarantined post X does not report.
const QUARANTINED_KEPT: &str = "1870000000000000501";

/// A lake of real-shaped posts (an edit chain of three versions, a retweet, a quote, a reply, a long
/// post, a Spanish post) and two quarantined ones, written through ingest, the broker and the process
/// pipeline.
async fn lake(server: &XApiServer, ids: Ids) -> Tables {
    let created = (Utc::now() - CDuration::minutes(30)).format("%Y-%m-%dT%H:%M:%S.000Z").to_string();
    let topic = new_topic("comply", 3).await;
    let dir = tempfile::tempdir().unwrap();
    let wm = dir.path().join("wm.json");
    let ingest = server.ingest(&format!("comply: {RULE}"), &topic, wm.to_str().unwrap()).await;
    server.set_pool(RULE, posts::pool(ids, &created, 1));
    ingest.run(Utc::now() + CDuration::minutes(15)).await.unwrap();
    server.set_pool(RULE, posts::pool(ids, &created, 3));
    ingest.run(Utc::now() + CDuration::minutes(15)).await.unwrap();
    let broken = |id: &str| (id.as_bytes().to_vec(), format!("{{\"v\":2,\"tweet\":{{\"id\":\"{id}\"").into_bytes());
    produce_keyed(&bootstrap(), &topic, &[broken(QUARANTINED), broken(QUARANTINED_KEPT)]).await;

    let t = s3_tables("comply");
    let s = deliver(&processor(&t, &[]).await, &as_event(&read_all(&topic)), 5).await;
    assert_eq!((s.rows_written, s.quarantined.values().sum::<usize>()), (7, 2), "{s:?}");
    t
}

fn config(t: &Tables, server: &XApiServer, extra: &[(&str, &str)]) -> ComplianceConfig {
    let mut vars = vec![("TWEETLAKE_X_API_URL", server.url.as_str()), ("TWEETLAKE_X_BEARER_TOKEN", TOKEN)];
    vars.extend_from_slice(extra);
    ComplianceConfig::from_lookup(t.lookup(&vars)).expect("valid settings")
}

async fn client(cfg: &ComplianceConfig) -> XClient {
    XClient::connect(&cfg.api_url, &cfg.token, cfg.http_timeout).await.unwrap()
}

fn ids_of(table: &Value, column: &str) -> BTreeSet<String> {
    table["rows"].as_array().unwrap().iter().filter_map(|r| r[column].as_str().map(str::to_owned)).collect()
}

/// The tables' versions: a run that changes nothing leaves them all where they were.
fn versions(t: &Tables) -> [i64; 3] {
    [&t.tweets, &t.quarantine, &t.aggregates].map(|u| read_table(u, &[])["version"].as_i64().unwrap())
}

fn at(minutes: i64) -> DateTime<Utc> {
    Utc::now() + CDuration::minutes(minutes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reported_posts_leave_every_table_once_and_the_aggregates_match_a_recount() {
    let server = XApiServer::start().await;
    let ids = Ids::from(1_870_000_000_000_000_000);
    let t = lake(&server, ids).await;
    let before = read_table(&t.tweets, &[]);
    assert_eq!(before["rows"].as_array().unwrap().len(), 7, "six posts, the edited one as its first and latest versions");
    // X reports the retweet deleted, the edited post's latest version protected (the whole post goes,
    // the first version the aggregates counted included) and the quarantined post's author suspended.
    let (retweet, edited) = (ids.retweet.to_string(), ids.edits.map(|i| i.to_string()));
    server.remove_posts(&[(&retweet, "deleted"), (&edited[2], "protected"), (QUARANTINED, "suspended")]);

    // The job runs past the first run's time (60 s, polled every 30 s): the run leaves it, the next
    // resumes it instead of starting another (the server refuses a second concurrent job).
    server.script_jobs([JobScript::Complete { polls: 3 }]);
    let cfg = config(&t, &server, &[("TWEETLAKE_COMPLIANCE_WAIT_SECS", "60"), ("TWEETLAKE_COMPLIANCE_POLL_SECS", "30")]);
    let x = client(&cfg).await;
    let first = run(&cfg, &x, &ManualClock::new(at(0))).await.unwrap();
    assert_eq!(
        (first.outcome, first.status, first.ids_submitted),
        (Outcome::Waiting, Some(JobStatus::InProgress), 9),
        "{first:?}"
    );
    let untouched = versions(&t);
    let second = run(&cfg, &x, &ManualClock::new(at(10))).await.unwrap();
    assert!(second.resumed && second.outcome == Outcome::Applied, "{second:?}");
    assert_eq!(second.job_id, first.job_id);
    let counts: BTreeMap<String, usize> =
        [("deleted", 1), ("protected", 1), ("suspended", 1)].map(|(r, n)| (r.to_string(), n)).into();
    assert_eq!(second.findings, counts);
    let applied = second.applied.clone().unwrap();
    assert_eq!((applied.tweets_deleted, applied.quarantine_deleted), (3, 1), "{applied:?}");
    assert!(applied.partial_rows > 0 && !applied.already_applied, "{applied:?}");
    assert!(second.metric_lines(0)[0].contains("\"ComplianceRemoved\":4"), "{:?}", second.metric_lines(0));
    let jobs = server.compliance_jobs();
    assert_eq!(jobs.len(), 1);
    let uploaded: BTreeSet<String> = jobs[0].uploaded.clone().unwrap().into_iter().collect();
    let mut held = ids_of(&before, "tweet_id");
    held.extend([QUARANTINED.to_owned(), QUARANTINED_KEPT.to_owned()]);
    assert_eq!(uploaded, held, "every post id the lake holds, tweets and quarantine, once");
    assert_eq!(server.violations(), Vec::<String>::new(), "requests outside the spec, or the token sent to storage");

    // As the Python reader sees the tables.
    let after = read_table(&t.tweets, &[]);
    let gone: BTreeSet<String> = [retweet.clone()].into_iter().chain(edited.clone()).collect();
    assert_eq!(ids_of(&after, "tweet_id"), ids_of(&before, "tweet_id").difference(&gone).cloned().collect());
    let q = read_table(&t.quarantine, &[]);
    let keys: BTreeSet<String> = ids_of(&q, "key");
    assert_eq!(keys, BTreeSet::from([QUARANTINED_KEPT.to_owned()]), "the suspended author's post left the quarantine");
    let app = format!("tweetlake:compliance.{}:0", first.job_id.as_deref().unwrap());
    let aggs = read_table(&t.aggregates, &[&app]);
    assert_partials_match_recount(&after, &aggs);
    assert_eq!(aggs["txn"][&app], 0, "the job's partials recorded under its own id");
    let applied_versions = versions(&t);
    assert!(applied_versions.iter().zip(untouched).all(|(a, b)| *a > b), "{applied_versions:?} after {untouched:?}");

    // As Spark sees them, with the removed posts still in the versions before (time travel, until vacuum).
    let spark = spark::read(&json!({
        "tables": {"tweets": t.tweets, "quarantine": t.quarantine, "aggregates": t.aggregates},
        "versions": {"tweets": [untouched[0]]},
    }));
    assert_eq!(ids_of(&spark["tweets"], "tweet_id"), ids_of(&after, "tweet_id"));
    assert_eq!(spark["tweets"]["counts_at"][untouched[0].to_string()], 7);
    assert_eq!(spark["quarantine"]["rows"].as_array().unwrap().len(), 1);
    assert_partials_match_recount(&spark["tweets"], &spark["aggregates"]);

    // A rerun checks what is left, X reports none of it, and nothing changes. Replaying the applied
    // job (a run that stopped before saving that it was done) changes nothing either.
    let third = run(&cfg, &x, &ManualClock::new(at(20))).await.unwrap();
    assert_eq!((third.outcome, third.ids_submitted, third.findings.len()), (Outcome::Applied, 5, 0), "{third:?}");
    let again = tweetlake_pipeline::compliance::apply(
        &cfg.maintenance.tables,
        3,
        first.job_id.as_deref().unwrap(),
        &[retweet, edited[2].clone(), QUARANTINED.to_owned()],
        at(30),
    )
    .await
    .unwrap();
    assert_eq!((again.tweets_deleted, again.quarantine_deleted, again.partial_rows), (0, 0, 0), "{again:?}");
    assert_eq!(versions(&t), applied_versions, "a rerun changes nothing");

    // After the retention, maintenance deletes the files that held the removed posts.
    let stored = read_table(&t.tweets, &[])["stored_files"].as_i64().unwrap();
    assert!(stored > read_table(&t.tweets, &[])["files"].as_i64().unwrap(), "the deleted rows' old files are still stored");
    let m = tweetlake_pipeline::MaintenanceConfig::from_lookup(t.lookup(&[])).unwrap();
    tweetlake_pipeline::maintenance::run(&m, Utc::now() + CDuration::hours(m.vacuum_retention_hours as i64 + 1)).await.unwrap();
    for uri in [&t.tweets, &t.quarantine] {
        let table = read_table(uri, &[]);
        assert_eq!(table["stored_files"], table["files"], "{uri}: only live files are left in storage");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_or_expired_job_changes_nothing_and_is_reported() {
    let server = XApiServer::start().await;
    let ids = Ids::from(1_871_000_000_000_000_000);
    let t = lake(&server, ids).await;
    server.remove_posts(&[(&ids.quote.to_string(), "deleted")]);
    server.script_jobs([JobScript::Fail { polls: 1 }, JobScript::Expire]);
    let cfg = config(&t, &server, &[("TWEETLAKE_COMPLIANCE_POLL_SECS", "30")]);
    let x = client(&cfg).await;
    let untouched = versions(&t);
    for (minutes, want) in [(0, Outcome::Failed), (10, Outcome::Expired)] {
        let r = run(&cfg, &x, &ManualClock::new(at(minutes))).await.unwrap();
        assert_eq!((r.outcome, r.applied.is_none(), r.ids_submitted), (want, true, 9), "{r:?}");
        assert!(r.metric_lines(0)[0].contains("\"ComplianceJobFailed\":1"), "{:?}", r.metric_lines(0));
        assert_eq!(versions(&t), untouched, "{want:?}: nothing changed");
    }
    // The same ids are checked again by the next job, which completes.
    let r = run(&cfg, &x, &ManualClock::new(at(20))).await.unwrap();
    assert_eq!((r.outcome, r.applied.map(|a| a.tweets_deleted)), (Outcome::Applied, Some(1)));
    let jobs = server.compliance_jobs();
    assert_eq!(jobs.iter().map(|j| j.status).collect::<Vec<_>>(), ["failed", "expired", "complete"]);
    assert_eq!(jobs[2].uploaded, jobs[0].uploaded, "the failed job's ids, checked again");
    assert_eq!(server.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_id_is_checked_in_turns_a_failed_upload_is_resumed_and_scope_new_checks_only_newer_ids() {
    let server = XApiServer::start().await;
    let ids = Ids::from(1_872_000_000_000_000_000);
    let t = lake(&server, ids).await;
    let held =
        || async { tweetlake_pipeline::compliance::held_ids(&config(&t, &server, &[]).maintenance.tables, None).await.unwrap() };
    let all: Vec<String> = held().await.iter().map(u64::to_string).collect();
    assert_eq!(all.len(), 9, "7 tweet rows and 2 quarantine keys");

    // Four ids a job: three jobs make a round, and the fourth starts the next one from the lowest id.
    let cfg = config(&t, &server, &[("TWEETLAKE_COMPLIANCE_MAX_IDS", "4")]);
    let x = client(&cfg).await;
    for minutes in [0, 10, 20, 30] {
        let r = run(&cfg, &x, &ManualClock::new(at(minutes))).await.unwrap();
        assert_eq!(r.outcome, Outcome::Applied, "{r:?}");
    }
    let uploads: Vec<Vec<String>> = server.compliance_jobs().into_iter().map(|j| j.uploaded.unwrap()).collect();
    assert_eq!(uploads, [&all[..4], &all[4..8], &all[8..], &all[..4]].map(|u| u.to_vec()));

    // Storage refuses the upload: the run fails as retryable and the next resumes the same job (X allows
    // no second one), reads its status, uploads and applies.
    server.remove_posts(&[(&ids.reply.to_string(), "deactivated")]);
    let cfg = config(&t, &server, &[]);
    server.fail_next_uploads(1);
    let e = run(&cfg, &x, &ManualClock::new(at(40))).await.unwrap_err();
    assert!(e.is_retryable() && e.to_string().contains("503"), "{e}");
    let r = run(&cfg, &x, &ManualClock::new(at(50))).await.unwrap();
    assert!(r.resumed && r.outcome == Outcome::Applied, "{r:?}");
    assert_eq!(r.applied.map(|a| a.tweets_deleted), Some(1));
    assert_eq!(server.compliance_jobs().len(), 5, "the failed upload's job was resumed, not replaced");

    // Scope `new`: a job checks only ids above the last completed one's; with none, there is no job.
    let newer = config(&t, &server, &[("TWEETLAKE_COMPLIANCE_SCOPE", "new")]);
    let r = run(&newer, &x, &ManualClock::new(at(60))).await.unwrap();
    assert_eq!((r.outcome, r.job_id), (Outcome::NothingToCheck, None), "the last job checked every id");
    assert_eq!(server.violations(), Vec::<String>::new());
}

//! The whole pipeline end to end, as `tweetlake local` runs it: recorded tweets served by the local X
//! API test server → ingest → the real broker → the event-source-mapping emulator → the process
//! function → Delta on the S3 endpoint, read back with the independent reader. The run is killed
//! (SIGKILL, the OS process) in the middle and restarted; the final tables are the same as if it
//! had never stopped, and the emulator's consumer group (read with Kafka's own tool) agrees with the
//! offsets the table records. Lives in the CLI package so Cargo builds the binary it runs.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use tweetlake_local::esm::DEFAULT_GROUP;
use tweetlake_tests::kafka::{GroupPosition, bootstrap, end_offsets, group_positions, new_topic, produce_raw};
use tweetlake_tests::xapi_server::{Pool, TOKEN, XApiServer};
use tweetlake_tests::{python, read_table, s3_tables};

/// The tweets table with the `txn` of the topic's three partitions.
fn read_with_txn(uri: &str, topic: &str) -> serde_json::Value {
    let apps: Vec<String> = (0..3).map(|p| format!("tweetlake:{topic}:{p}")).collect();
    read_table(uri, &apps.iter().map(String::as_str).collect::<Vec<_>>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_tweets_to_a_queried_delta_table_surviving_a_kill_and_restart() {
    let server = XApiServer::start().await;
    server.set_pool("#brexit", Pool::recorded("events/x-api/brexit.json"));
    server.set_pool("#kpop", Pool::recorded("events/x-api/kpop.json"));
    let topic = new_topic("local-e2e", 3).await;
    let broker = bootstrap();
    // Three malformed records already on the topic: they must end in quarantine with their reasons.
    produce_raw(
        &broker,
        &topic,
        &[
            b"{not json",
            br#"{"v":99,"tweet":{"id":"1","text":"x"}}"#,
            br#"{"v":1,"tweet":{"id":"12","text":"   ","created_at":"2021-09-22T16:37:29.000Z"}}"#,
        ],
    )
    .await;
    let t = s3_tables("local-e2e");
    let dir = tempfile::tempdir().unwrap();
    let dir_s = dir.path().display().to_string();
    let url = server.url.clone();
    let topic_c = topic.clone();
    let t_c = t.clone();
    let spawn = move || {
        Command::new(env!("CARGO_BIN_EXE_tweetlake"))
            .args([
                "local",
                "--no-progress",
                "--batch-size",
                "10",
                "--window-ms",
                "200",
                "--dir",
                &dir_s,
                "--topic",
                &topic_c,
                "--bootstrap",
                &broker,
            ])
            .envs(t_c.env())
            .env("TWEETLAKE_X_API_URL", &url)
            .env("TWEETLAKE_X_BEARER_TOKEN", TOKEN)
            .env("TWEETLAKE_RULES", "brexit: #brexit\nkpop: #kpop")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tweetlake runs")
    };
    let (topic_k, tweets_k) = (topic.clone(), t.tweets.clone());
    let (first_log, killed, second) = tokio::task::spawn_blocking(move || {
        // First run: killed once five batches are committed.
        let mut child = spawn();
        let mut log = Vec::new();
        for line in BufReader::new(child.stderr.take().unwrap()).lines().map_while(Result::ok) {
            let killed = line.starts_with("batch 5:");
            log.push(line);
            if killed {
                child.kill().unwrap();
                break;
            }
        }
        child.wait().unwrap();
        // The consumer group's offsets as Kafka's tool shows them, and the table's, after the kill.
        let killed = (group_positions(DEFAULT_GROUP, &topic_k), read_with_txn(&tweets_k, &topic_k));
        // Second run: resumes and finishes.
        let out = spawn().wait_with_output().unwrap();
        (log, killed, out)
    })
    .await
    .unwrap();
    // The group's offsets never run ahead of what the table holds (they are committed after it); the
    // table, not the group, said where the restart began.
    let (group, table) = killed;
    assert!(group.values().any(|g| g.committed.is_some()), "the killed run committed the group's offsets: {group:?}");
    for (p, g) in &group {
        let recorded = table["txn"][format!("tweetlake:{topic}:{p}")].as_i64().unwrap_or(-1);
        assert!(g.committed.unwrap_or(0) <= recorded + 1, "partition {p}: group {g:?}, table through {recorded}");
    }
    assert!(first_log.iter().any(|l| l.starts_with("batch 5:")), "the first run never got going: {first_log:?}");
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{err}");
    assert!(err.contains("resuming from the offsets recorded in the table"), "{err}");
    let summary: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(summary["ingest"]["produced"]["messages"], 0, "the watermark saved by the killed run holds: {summary}");
    assert!(summary["delivered"]["records"].as_u64().unwrap() < 203, "the restart did not start over: {summary}");

    // Every valid tweet exactly once, with its sentiment; every malformed record quarantined.
    let tweets = read_table(&t.tweets, &[]);
    let rows = tweets["rows"].as_array().unwrap();
    let ids: HashSet<&str> = rows.iter().map(|r| r["tweet_id"].as_str().unwrap()).collect();
    assert_eq!((rows.len(), ids.len()), (200, 200), "each of the 200 recorded tweets once");
    // English tweets are scored; tweets in languages the model does not read are not (the kpop rule's
    // Korean, Indonesian, Spanish…); both are in the table.
    for r in rows {
        let label = r["sentiment_label"].as_str();
        match r["lang"].as_str() {
            Some("en") => {
                assert!(["positive", "neutral", "negative"].contains(&label.unwrap()), "{r}");
                // The three-class model's probabilities, summing to 1.
                let p: Vec<f64> = ["sentiment_negative", "sentiment_neutral", "sentiment_positive"]
                    .iter()
                    .map(|c| r[*c].as_f64().unwrap_or_else(|| panic!("{c}: {r}")))
                    .collect();
                assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-5, "{r}");
            }
            Some("und" | "zxx" | "art" | "qme" | "qam" | "qht") | None => {}
            Some(_) => assert!(label.is_none() && r["sentiment_score"].is_null() && r["sentiment_neutral"].is_null(), "{r}"),
        }
    }
    assert!(rows.iter().any(|r| r["sentiment_label"].is_null()) && rows.iter().any(|r| r["sentiment_label"].is_string()));
    let quarantine = read_table(&t.quarantine, &[]);
    let mut reasons: Vec<&str> = quarantine["rows"].as_array().unwrap().iter().map(|r| r["rule"].as_str().unwrap()).collect();
    reasons.sort();
    assert_eq!(reasons, ["envelope_version", "json", "text_length"]);
    // Per-partition offsets recorded: the last offset of each partition in the topic.
    let last: BTreeMap<i32, i64> =
        end_offsets(&bootstrap(), &topic).into_iter().filter(|(_, end)| *end > 0).map(|(p, end)| (p, end - 1)).collect();
    assert_eq!(last.values().map(|o| o + 1).sum::<i64>(), 203, "200 tweets and 3 malformed records on the topic");
    let txn = &read_with_txn(&t.tweets, &topic)["txn"];
    // After the restart the group's offsets (Kafka's own tool) agree with the table: no lag.
    let group = group_positions(DEFAULT_GROUP, &topic);
    for (p, o) in &last {
        assert_eq!(txn[format!("tweetlake:{topic}:{p}")], *o, "partition {p}");
        assert_eq!(group[p], GroupPosition { committed: Some(o + 1), log_end: o + 1, lag: Some(0) }, "partition {p}");
    }

    // The report renders: parsed as HTML, the five charts with the right series.
    let report = dir.path().join("report.html");
    let check = r#"
import sys, json
from html.parser import HTMLParser
class P(HTMLParser):
    def __init__(s):
        super().__init__(); s.figs = {}; s.cur = None
    def handle_starttag(s, tag, a):
        a = dict(a)
        if tag == "figure": s.cur = a["id"]; s.figs[s.cur] = {"series": a.get("data-series", ""), "marks": []}
        if tag in ("polyline", "rect") and a.get("data-name") and s.cur: s.figs[s.cur]["marks"].append([a["data-name"], a.get("data-value")])
p = P(); p.feed(open(sys.argv[1]).read()); print(json.dumps(p.figs))
"#;
    let out = Command::new(python()).args(["-c", check, report.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let figs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(figs["volume"]["series"], "brexit,kpop");
    assert_eq!(figs["sentiment"]["series"], "brexit,kpop");
    assert_eq!(figs["volume"]["marks"].as_array().unwrap().len(), 2, "one line per rule");
    let label_total: u64 =
        figs["labels"]["marks"].as_array().unwrap().iter().map(|m| m[1].as_str().unwrap().parse::<u64>().unwrap()).sum();
    assert_eq!(label_total, 200);
    // Each scored row's probabilities sum to 1, so the expected counts add up to the rows scored (each
    // class rounded on its own).
    let expected: i64 =
        figs["expected"]["marks"].as_array().unwrap().iter().map(|m| m[1].as_str().unwrap().parse::<i64>().unwrap()).sum();
    let scored = rows.iter().filter(|r| r["sentiment_neutral"].is_number()).count() as i64;
    assert!(scored > 0 && (expected - scored).abs() <= 1, "expected {expected} of {scored} scored: {figs}");
    assert_eq!(figs["quarantine"]["series"], "envelope_version,json,text_length");
    assert!(figs["hashtags"]["series"].as_str().unwrap().split(',').any(|h| h == "brexit"), "{figs}");
    // Tweets per language with the share scored, as the table has them.
    let langs: BTreeMap<String, u64> = figs["languages"]["marks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m[0].as_str().unwrap().to_owned(), m[1].as_str().unwrap().parse().unwrap()))
        .collect();
    assert_eq!(langs.values().sum::<u64>(), 200, "{langs:?}");
    let english = rows.iter().filter(|r| r["lang"] == "en").count() as u64;
    assert_eq!(langs.get("en (100 % scored)"), Some(&english), "{langs:?}");
    let korean = rows.iter().filter(|r| r["lang"] == "ko").count() as u64;
    assert!(korean > 0 && langs.get("ko (0 % scored)") == Some(&korean), "{langs:?}");
}

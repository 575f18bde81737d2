//! Tweets as they really are, end to end: the X API test server (requests and fixture posts checked
//! against the OpenAPI spec) → the ingest library → the real broker → the process pipeline → Delta on
//! the S3 endpoint. A long post lands with its whole text, a retweet with its original's, each kind
//! with its reference, an edit chain as one post, a Spanish post unscored but counted, and a
//! previous-version message still processes.

use chrono::{Duration as CDuration, Utc};
use serde_json::Value;
use std::collections::BTreeMap;
use tweetlake_pipeline::process::EMBEDDED_MODEL;
use tweetlake_sentiment::{Model, normalize};
use tweetlake_tests::kafka::{as_event, bootstrap, new_topic, produce_keyed, read_all};
use tweetlake_tests::posts::{self, EDIT_TEXTS, Ids};
use tweetlake_tests::recount::assert_partials_match_recount;
use tweetlake_tests::xapi_server::XApiServer;
use tweetlake_tests::{deliver, envelope, processor, read_table, s3_tables};

const RULE: &str = "#fidelity";

fn score(text: &str) -> f64 {
    static MODEL: std::sync::LazyLock<Model> = std::sync::LazyLock::new(|| Model::from_bytes(EMBEDDED_MODEL).unwrap());
    f64::from(MODEL.scorer().predict_normalized(&normalize(text)).score)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_posts_references_edits_and_languages_land_as_a_reader_means_them() {
    let server = XApiServer::start().await;
    let ids = Ids::from(1_860_000_000_000_000_000);
    let created = (Utc::now() - CDuration::minutes(30)).format("%Y-%m-%dT%H:%M:%S.000Z").to_string();
    let topic = new_topic("fidelity", 3).await;
    let dir = tempfile::tempdir().unwrap();
    let wm = dir.path().join("watermarks.json");
    let run = server.ingest(&format!("fid: {RULE}"), &topic, wm.to_str().unwrap()).await;

    // Run 1 sees the first version of the edited post; run 2 its two edits (newer ids, past since_id).
    server.set_pool(RULE, posts::pool(ids, &created, 1));
    let r1 = run.run(Utc::now() + CDuration::minutes(15)).await.unwrap();
    assert_eq!(r1.produced.messages, 6, "{r1:?}");
    server.set_pool(RULE, posts::pool(ids, &created, 3));
    let r2 = run.run(Utc::now() + CDuration::minutes(15)).await.unwrap();
    assert_eq!(r2.produced.messages, 2, "only the two new versions: {r2:?}");
    assert_eq!(server.violations(), Vec::<String>::new(), "requests outside the OpenAPI spec");
    let fields = &server.seen()[0].query;
    for f in ["note_post", "edit_controls", "possibly_sensitive", "reply_settings", "source", "lang"] {
        assert!(fields["post.fields"].split(',').any(|x| x == f), "{f} requested: {fields:?}");
    }
    for e in ["referenced_posts", "edit_history_post_ids", "author_id"] {
        assert!(fields["expansions"].split(',').any(|x| x == e), "{e} expanded: {fields:?}");
    }

    // On the topic: every version of the edited post keyed by its first version, so in one partition.
    let records = read_all(&topic);
    let root = ids.edits[0].to_string();
    let edit_records: Vec<_> = records
        .iter()
        .filter(|c| {
            let m: Value = serde_json::from_slice(c.value.as_ref().unwrap()).unwrap();
            m["tweet"]["edit_history_tweet_ids"][0] == root.as_str()
        })
        .collect();
    assert_eq!(edit_records.len(), 3);
    assert!(edit_records.iter().all(|c| c.key.as_deref() == Some(root.as_bytes()) && c.partition == edit_records[0].partition));
    let retweet: Value = records
        .iter()
        .map(|c| serde_json::from_slice::<Value>(c.value.as_ref().unwrap()).unwrap())
        .find(|m| m["tweet"]["id"] == ids.retweet.to_string().as_str())
        .unwrap();
    assert_eq!(retweet["v"], 2);
    assert_eq!(retweet["referenced_tweet"]["id"], ids.original.to_string().as_str(), "the original travels with the retweet");

    // A message of the previous envelope version, as the last release's ingest wrote it.
    produce_keyed(
        &bootstrap(),
        &topic,
        &[(b"1860000000000000099".to_vec(), envelope("1860000000000000099", "good old v1 tweet", &created, "fid"))],
    )
    .await;

    let t = s3_tables("fidelity");
    let p = processor(&t, &[]).await;
    let s = deliver(&p, &as_event(&read_all(&topic)), 5).await;
    assert_eq!(s.quarantined, BTreeMap::new(), "{s:?}");
    assert_eq!((s.later_versions, s.superseded_versions, s.unscored), (1, 1, 1), "{s:?}");

    let tweets = read_table(&t.tweets, &[]);
    let rows: BTreeMap<String, &Value> =
        tweets["rows"].as_array().unwrap().iter().map(|r| (r["tweet_id"].as_str().unwrap().to_owned(), r)).collect();
    let row = |id: u64| *rows.get(&id.to_string()).unwrap_or_else(|| panic!("row {id} in {:?}", rows.keys()));

    let long = row(ids.long);
    assert_eq!(long["full_text"], posts::long_text().as_str());
    assert_eq!(long["text"].as_str().unwrap().chars().count(), 280);
    assert_eq!((long["kind"].as_str(), long["text_truncated"].as_bool()), (Some("original"), Some(true)));
    let full = score(&posts::long_text());
    assert!((long["sentiment_score"].as_f64().unwrap() - full).abs() < 1e-6, "scored on the whole text: {long}");
    assert!((full - score(long["text"].as_str().unwrap())).abs() > 0.05, "the cut text would have scored otherwise");

    let rt = row(ids.retweet);
    assert_eq!((rt["kind"].as_str(), rt["referenced_tweet_id"].as_str()), (Some("retweet"), Some(&*ids.original.to_string())));
    assert_eq!(rt["full_text"], posts::original_text().as_str(), "a retweet carries its original's whole text");
    assert_eq!(rt["text_truncated"], true);
    let q = row(ids.quote);
    assert_eq!((q["kind"].as_str(), q["referenced_tweet_id"].as_str()), (Some("quote"), Some(&*ids.original.to_string())));
    assert_eq!(q["full_text"], q["text"], "a quote is its own words");
    let r = row(ids.reply);
    assert_eq!((r["kind"].as_str(), r["referenced_tweet_id"].as_str()), (Some("reply"), Some(&*ids.original.to_string())));

    let es = row(ids.spanish);
    assert!(es["sentiment_label"].is_null() && es["sentiment_score"].is_null(), "not a language the model reads: {es}");

    // The edit chain: the first and the latest version are rows (the middle one came after the latest
    // and was dropped); both point at the first; the newest row is the latest text.
    let versions: Vec<&Value> = rows.values().filter(|r| r["edit_root_id"] == root.as_str()).copied().collect();
    let version_ids: Vec<&str> = versions.iter().map(|r| r["tweet_id"].as_str().unwrap()).collect();
    assert_eq!(version_ids, [ids.edits[0].to_string(), ids.edits[2].to_string()]);
    assert_eq!(versions.last().unwrap()["full_text"], EDIT_TEXTS[2]);

    let old = row(1_860_000_000_000_000_099);
    assert_eq!((old["kind"].as_str(), old["edit_root_id"].as_str()), (Some("original"), Some("1860000000000000099")));
    assert!(old["sentiment_label"].is_string());

    // The aggregates: every post once (the edit chain once), retweets apart, the Spanish post in volume
    // only; and equal to an independent recount of the table.
    let aggs = read_table(&t.aggregates, &[]);
    let sums = assert_partials_match_recount(&tweets, &aggs);
    let rule_hour: Vec<_> =
        sums.iter().filter(|((d, v, m, _), _)| d == "rule" && v == "fid" && *m == 60).map(|(_, c)| c).collect();
    let posts_counted: i64 = rule_hour.iter().map(|c| c.0).sum();
    let scored: i64 = rule_hour.iter().map(|c| c.5).sum();
    assert_eq!(posts_counted, 7, "retweet, quote, reply, long, Spanish, the edited post once, the v1 tweet");
    assert_eq!(scored, 5, "not the retweet, not the Spanish post");
    let retweets: i64 = aggs["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["dimension"] == "rule" && a["window_minutes"] == 60)
        .map(|a| a["retweets"].as_i64().unwrap())
        .sum();
    assert_eq!(retweets, 1);
}

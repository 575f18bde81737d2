//! Additive schema evolution: the tables the envelope-v1 release wrote (`tests/data/tables-v1/`) take
//! this release's columns on in place with its first batch — nothing lost, still reader 1 / writer 2 —
//! and the Athena example queries (through `tweetlake query`), the Python reader and Spark read the
//! upgraded tables. Lives in the CLI package so Cargo builds the binary it runs.

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use tweetlake_pipeline::tables::{aggregates, tweets};
use tweetlake_tests::recount::assert_partials_match_recount;
use tweetlake_tests::{Rec, envelope, event, read_table, repo_root, spark};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn ids(table: &Value) -> BTreeSet<String> {
    table["rows"].as_array().unwrap().iter().map(|r| r["tweet_id"].as_str().unwrap().to_owned()).collect()
}

fn columns(table: &Value) -> Vec<String> {
    let mut c: Vec<String> = table["schema"].as_object().unwrap().keys().cloned().collect();
    c.sort();
    c
}

#[test]
fn tables_of_the_previous_release_are_upgraded_in_place_and_stay_readable() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (from, to) in [("tweets", "tweets"), ("quarantine", "quarantine"), ("tweets_aggregates", "aggregates")] {
        copy_dir(&repo_root().join("tests/data/tables-v1").join(from), &root.join(to));
    }
    let uri = |t: &str| root.join(t).to_str().unwrap().to_owned();
    let (t, q, a) = (uri("tweets"), uri("quarantine"), uri("aggregates"));
    let before = read_table(&t, &[]);
    let aggs_before = read_table(&a, &[]);
    assert_eq!(before["rows"].as_array().unwrap().len(), 200);
    assert!(!columns(&before).contains(&"kind".to_owned()), "the fixture is a table of the previous release");

    // One batch of this release: two version-2 messages (a retweet and a Spanish post) and one of
    // version 1, on a topic the old table never saw.
    let created = "2026-11-30T10:00:00.000Z";
    let v2 = |id: &str, text: &str, lang: &str, extra: Value| {
        let mut m = json!({
            "v": 2,
            "tweet": {"id": id, "text": text, "created_at": created, "author_id": "42", "lang": lang},
            "rules": [{"id": "1", "tag": "brexit"}],
            "ingest": {"source": "recent_search", "run_id": "evolve", "fetched_at": created},
        });
        for (k, v) in extra.as_object().unwrap() {
            m[k] = v.clone();
        }
        serde_json::to_vec(&m).unwrap()
    };
    let values = [
        v2(
            "1864000000000000001",
            "RT @a: what a great…",
            "en",
            json!({"tweet": {"id": "1864000000000000001", "text": "RT @a: what a great…", "created_at": created, "lang": "en",
                             "referenced_tweets": [{"type": "retweeted", "id": "1864000000000000000"}]},
                   "referenced_tweet": {"id": "1864000000000000000", "text": "what a great day, I love it"}}),
        ),
        v2("1864000000000000002", "Qué día tan bonito", "es", json!({})),
        envelope("1864000000000000003", "an old-format tweet, still fine", created, "brexit"),
        v2("1864000000000000010", "I like it", "en", json!({})),
        v2(
            "1864000000000000011",
            "I like it a lot",
            "en",
            json!({"tweet": {"id": "1864000000000000011", "text": "I like it a lot", "created_at": created, "lang": "en",
                             "edit_history_tweet_ids": ["1864000000000000010", "1864000000000000011"]}}),
        ),
    ];
    let recs: Vec<Rec> = values
        .into_iter()
        .enumerate()
        .map(|(i, v)| Rec { partition: 0, offset: i as i64, timestamp_ms: 1_796_033_100_000, value: Some(v) })
        .collect();
    let batch = root.join("event.json");
    std::fs::write(&batch, event(&recs)).unwrap();

    let tweetlake = |args: &[&str]| {
        let tables = ["--table", t.as_str(), "--quarantine", q.as_str(), "--aggregates", a.as_str()];
        let out = Command::new(env!("CARGO_BIN_EXE_tweetlake"))
            .args(args)
            .args(tables)
            .current_dir(repo_root())
            .output()
            .expect("tweetlake runs");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    tweetlake(&["process", "--event", batch.to_str().unwrap()]);

    let after = read_table(&t, &[]);
    assert_eq!(after["protocol"], json!({"reader": 1, "writer": 2}), "still readable by Athena");
    let old_ids = ids(&before);
    assert!(ids(&after).is_superset(&old_ids), "no row lost");
    assert_eq!(ids(&after).len(), 205, "three tweets, and an edited post's two versions");
    let want: Vec<String> = {
        let mut c: Vec<String> = tweets::SCHEMA.fields().iter().map(|f| f.name().clone()).collect();
        c.sort();
        c
    };
    assert_eq!(columns(&after), want, "the table has this release's columns");
    for r in after["rows"].as_array().unwrap() {
        let old = old_ids.contains(r["tweet_id"].as_str().unwrap());
        assert_eq!(r["kind"].is_null(), old, "old rows read the new columns as null, new rows fill them: {r}");
    }
    let rt = after["rows"].as_array().unwrap().iter().find(|r| r["tweet_id"] == "1864000000000000001").unwrap();
    assert_eq!((rt["kind"].as_str(), rt["full_text"].as_str()), (Some("retweet"), Some("what a great day, I love it")));
    let es = after["rows"].as_array().unwrap().iter().find(|r| r["tweet_id"] == "1864000000000000002").unwrap();
    assert!(es["sentiment_score"].is_null(), "{es}");
    let aggs = read_table(&a, &[]);
    assert!(
        aggs["rows"].as_array().unwrap().len() > aggs_before["rows"].as_array().unwrap().len(),
        "the new batch added partials"
    );
    let mut agg_columns: Vec<String> = aggregates::SCHEMA.fields().iter().map(|f| f.name().clone()).collect();
    agg_columns.sort();
    assert_eq!(columns(&aggs), agg_columns);
    assert_partials_match_recount(&after, &aggs);

    // The Athena example queries run unchanged on the upgraded tables.
    for file in
        ["infra/athena/sentiment_per_rule_hour.sql", "infra/athena/top_hashtags.sql", "infra/athena/quarantine_reasons.sql"]
    {
        let out = tweetlake(&["query", "--file", file]);
        // The sample wrote no quarantine rows; the other two have rows old and new.
        assert!(out.lines().count() > 0 || file.contains("quarantine"), "{file} returned rows");
        for line in out.lines() {
            let row: Value = serde_json::from_str(line).expect("a JSON row");
            assert!(
                row.get("mean_score").is_none_or(|m| m.is_null() || m.as_f64().is_some_and(|m| (0.0..=1.0).contains(&m))),
                "{row}"
            );
        }
    }

    // The latest version of every post: the edited one once, as edited.
    let latest: Vec<Value> = tweetlake(&["query", "--file", "infra/athena/latest_versions.sql"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(latest.len(), 204, "{}", latest.len());
    let edited: Vec<&Value> = latest.iter().filter(|r| r["edit_root_id"] == "1864000000000000010").collect();
    assert_eq!(edited.len(), 1);
    assert_eq!(
        (edited[0]["tweet_id"].as_str(), edited[0]["full_text"].as_str()),
        (Some("1864000000000000011"), Some("I like it a lot"))
    );

    // Spark reads the upgraded tables, and time travel to the last version of the old release.
    let last_old = before["version"].as_i64().unwrap();
    let spec = json!({"tables": {"tweets": t, "aggregates": a}, "versions": {"tweets": [last_old]}});
    let s = spark::read(&spec);
    assert_eq!(s["tweets"]["schema"], spark::contract(&tweets::SCHEMA), "Spark's columns and types are the contract's");
    assert_eq!(s["tweets"]["rows"].as_array().unwrap().len(), 205);
    assert_eq!(s["tweets"]["counts_at"][last_old.to_string()], 200);
    assert_eq!(s["aggregates"]["schema"], spark::contract(&aggregates::SCHEMA));
    assert_partials_match_recount(&s["tweets"], &s["aggregates"]);
}

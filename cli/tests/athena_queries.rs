//! The Athena example queries (`infra/athena/*.sql`) run unchanged through `tweetlake query` on tables
//! the process pipeline wrote, and give what an independent count of the same tables gives (the Python
//! `deltalake` reader). Lives in the CLI package so Cargo builds the binary it runs.

use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;
use tweetlake_tests::recount::{WindowCounts, recount_probabilities, recount_windows};
use tweetlake_tests::{local_tables, read_table, repo_root};

fn tweetlake(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tweetlake")).args(args).current_dir(repo_root()).output().expect("tweetlake runs")
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("a timestamp, found {v}"))).expect("RFC 3339").to_utc()
}

#[test]
fn athena_example_queries_match_an_independent_count() {
    let t = local_tables();
    let tables = ["--table", t.tweets.as_str(), "--quarantine", t.quarantine.as_str(), "--aggregates", t.aggregates.as_str()];
    for event in ["events/msk-batch.json", "events/self-managed-batch.json"] {
        let out = tweetlake(&[&["process", "--event", event][..], &tables].concat());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let query = |file: &str| -> Vec<Value> {
        let out = tweetlake(&[&["query", "--file", file][..], &tables].concat());
        assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).expect("a JSON row")).collect()
    };
    let tweets = read_table(&t.tweets, &[]);
    let rows = tweets["rows"].as_array().unwrap();
    assert!(rows.len() >= 20, "the sample events wrote tweets: {}", rows.len());

    // Sentiment per rule per hour and top hashtags = the tweets counted one by one into the hour windows
    // of each rule tag and each hashtag (the same recount the aggregates test uses).
    let windows = recount_windows(&tweets);
    let hourly = |dim: &'static str| windows.iter().filter(move |((d, _, m, _), _)| d == dim && *m == 60);
    let expected: BTreeMap<(DateTime<Utc>, &str), &WindowCounts> = hourly("rule")
        .map(|((_, rule, _, start), counts)| ((DateTime::parse_from_rfc3339(start).unwrap().to_utc(), rule.as_str()), counts))
        .collect();
    let probabilities = recount_probabilities(&tweets);
    let got = query("infra/athena/sentiment_per_rule_hour.sql");
    assert_eq!(got.len(), expected.len(), "one row per rule and hour: {got:?}");
    for (row, ((hour, rule), (n, pos, neu, neg, sum, scored))) in got.iter().zip(&expected) {
        assert_eq!((time(&row["hour"]), row["rule"].as_str().unwrap()), (*hour, *rule), "ordered by hour, rule");
        let counts = [&row["tweets"], &row["positive"], &row["neutral"], &row["negative"]].map(|v| v.as_i64().unwrap());
        assert_eq!(counts, [*n, *pos, *neu, *neg], "{rule} at {hour}");
        match row["mean_score"].as_f64() {
            Some(mean) => assert!((mean - sum / *scored as f64).abs() < 1e-9, "{rule} at {hour}: {row}"),
            None => assert_eq!(*scored, 0, "no mean only where nothing was scored: {rule} at {hour}: {row}"),
        }
        // The expected class shares: the probabilities recounted from the tweets themselves.
        let (n, sums) = probabilities[&("rule".to_owned(), rule.to_string(), 60, hour.to_rfc3339())];
        assert!(n > 0, "the committed model is three-class: {rule} at {hour}");
        for (c, sum) in ["negative_share", "neutral_share", "positive_share"].iter().zip(sums) {
            assert!((row[*c].as_f64().unwrap() - sum / n as f64).abs() < 1e-9, "{c} of {rule} at {hour}: {row}");
        }
    }

    let mut tags: BTreeMap<&str, i64> = BTreeMap::new();
    for ((_, tag, _, _), counts) in hourly("hashtag") {
        *tags.entry(tag.as_str()).or_default() += counts.0;
    }
    let mut top: Vec<(String, i64)> = tags.into_iter().map(|(t, n)| (t.to_owned(), n)).collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    top.truncate(20);
    assert!(!top.is_empty(), "the sample tweets carry hashtags");
    let got: Vec<(String, i64)> = query("infra/athena/top_hashtags.sql")
        .iter()
        .map(|r| (r["hashtag"].as_str().unwrap().to_owned(), r["tweets"].as_i64().unwrap()))
        .collect();
    assert_eq!(got, top);

    // Quarantine reasons = the quarantine table's rows per rule.
    let quarantine = read_table(&t.quarantine, &[]);
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for r in quarantine["rows"].as_array().unwrap() {
        *reasons.entry(r["rule"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert!(reasons.len() >= 5, "the sample events hit several quality rules: {reasons:?}");
    let got: BTreeMap<String, u64> = query("infra/athena/quarantine_reasons.sql")
        .iter()
        .inspect(|r| assert!(!r["example_error"].as_str().unwrap().is_empty() && r["first_seen"].is_string(), "{r}"))
        .map(|r| (r["rule"].as_str().unwrap().to_owned(), r["records"].as_u64().unwrap()))
        .collect();
    assert_eq!(got, reasons);
}

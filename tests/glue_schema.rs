//! The Glue tables the template declares (what Athena engine v3 and Spark query) match the Delta tables
//! the process function writes: protocol reader 1 / writer 2, the same columns in the same order with
//! the Glue type of each Delta type, the same partition columns, and the same locations.

use serde_json::Value;
use std::collections::BTreeSet;
use tweetlake_tests::infra::{glue_table, sub_text, template};
use tweetlake_tests::*;

/// The Hive/Glue type Athena expects for a Delta schema type.
fn glue_type(delta: &Value) -> String {
    match delta {
        Value::String(t) => match t.as_str() {
            "string" => "string",
            "long" => "bigint",
            "integer" => "int",
            "short" => "smallint",
            "byte" => "tinyint",
            "double" => "double",
            "float" => "float",
            "boolean" => "boolean",
            "binary" => "binary",
            "date" => "date",
            "timestamp" => "timestamp",
            other => panic!("Delta type {other} has no Athena type (timestamp_ntz would need reader 3 / writer 7)"),
        }
        .to_owned(),
        Value::Object(o) if o["type"] == "array" => format!("array<{}>", glue_type(&o["elementType"])),
        other => panic!("unexpected Delta type {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glue_tables_match_the_written_delta_tables() {
    let t = s3_tables("glue-schema");
    let p = processor(&t, &[]).await;
    let s = p.process_event(sample_event("msk-batch.json")).await.unwrap();
    assert!(s.rows_written > 0 && !s.quarantined.is_empty() && s.aggregate_rows > 0, "all three tables got rows: {s:?}");

    let tpl = template();
    for (glue_name, uri, env_var) in [
        ("tweets", &t.tweets, "TWEETLAKE_TABLE_URI"),
        ("quarantine", &t.quarantine, "TWEETLAKE_QUARANTINE_URI"),
        ("aggregates", &t.aggregates, "TWEETLAKE_AGGREGATES_URI"),
    ] {
        let glue = glue_table(&tpl, glue_name);
        let table = read_table(uri, &[]);

        assert_eq!(table["protocol"]["reader"], 1, "{glue_name}: Athena reads Delta reader version 1");
        assert_eq!(table["protocol"]["writer"], 2, "{glue_name}: writer version 2");
        assert_eq!(glue.parameters["table_type"].as_str(), Some("DELTA"), "{glue_name}: table_type DELTA");

        let partitions: Vec<String> =
            table["partition_columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
        let fields = table["delta_schema"].as_array().unwrap();
        let typed = |keep_partitions: bool| -> Vec<(String, String)> {
            fields
                .iter()
                .filter(|f| partitions.iter().any(|p| p == f["name"].as_str().unwrap()) == keep_partitions)
                .map(|f| (f["name"].as_str().unwrap().to_owned(), glue_type(&f["type"])))
                .collect()
        };
        assert_eq!(glue.columns, typed(false), "{glue_name}: Glue columns = Delta data columns, in order, with Athena types");
        assert_eq!(glue.partition_keys, typed(true), "{glue_name}: Glue partition keys = Delta partition columns");
        assert_eq!(glue.partition_keys.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(), partitions);

        // Both functions write where the catalog points.
        for function in ["ProcessFunction", "MaintenanceFunction"] {
            let env = &tpl["Resources"][function]["Properties"]["Environment"]["Variables"][env_var];
            assert_eq!(format!("{}/", sub_text(env)), glue.location, "{function} {env_var} is the Glue location of {glue_name}");
        }
    }
}

/// `(Function dimension, metric name)` of every metric the EMF lines declare.
fn declared(lines: &[String]) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for m in v["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap() {
            out.insert((v["Function"].as_str().unwrap().to_owned(), m["Name"].as_str().unwrap().to_owned()));
        }
    }
    out
}

#[test]
fn every_alarm_on_a_tweetlake_metric_watches_one_a_function_emits() {
    let mut batch = tweetlake_pipeline::BatchSummary::default();
    batch.quarantined.insert("json".into(), 1);
    let mut emitted = declared(&tweetlake_pipeline::metrics::batch_lines(&batch, 0));
    let coverage = tweetlake_ingest::coverage::CoverageReport {
        from: None,
        covered_until: chrono::Utc::now(),
        stream_seconds: 0.0,
        windows: vec![],
        rules: vec![],
        coverage_gap_seconds: 0,
    };
    let run = tweetlake_ingest::RunReport {
        run_id: "r".into(),
        source: "filtered_stream".into(),
        rules: vec![],
        rules_sync: None,
        stream: None,
        coverage: Some(coverage),
        tweets: 0,
        produced: Default::default(),
        watermarks_saved: true,
        left: vec![],
    };
    emitted.extend(declared(&run.metric_lines(0)));
    let compliance =
        tweetlake_compliance::ComplianceReport { outcome: tweetlake_compliance::Outcome::Failed, ..Default::default() };
    emitted.extend(declared(&compliance.metric_lines(0)));

    // Every alarm of the stack on namespace Tweetlake, alone or inside a metric-math expression.
    let tpl = template();
    let mut watched = BTreeSet::new();
    for (name, resource) in tpl["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() != Some("AWS::CloudWatch::Alarm") {
            continue;
        }
        let p = &resource["Properties"];
        let stats: Vec<&serde_norway::Value> = match p["Metrics"].as_sequence() {
            Some(ms) => ms.iter().map(|m| &m["MetricStat"]["Metric"]).collect(),
            None => vec![p],
        };
        for m in stats.into_iter().filter(|m| m["Namespace"].as_str() == Some("Tweetlake")) {
            let function =
                m["Dimensions"].as_sequence().unwrap().iter().find(|d| d["Name"].as_str() == Some("Function")).unwrap();
            let key = (function["Value"].as_str().unwrap().to_owned(), m["MetricName"].as_str().unwrap().to_owned());
            assert!(emitted.contains(&key), "{name:?} watches {key:?}, which no function emits: {emitted:?}");
            watched.insert(key);
        }
    }
    assert!(watched.contains(&("ingest".to_owned(), "CoverageGapSeconds".to_owned())), "{watched:?}");
    assert!(watched.contains(&("process".to_owned(), "Quarantined".to_owned())), "{watched:?}");
    assert!(watched.contains(&("compliance".to_owned(), "ComplianceJobFailed".to_owned())), "{watched:?}");
}

//! CloudWatch Embedded Metric Format: metrics as structured log lines, no API calls from the Lambda.

use crate::process::BatchSummary;
use crate::quality::RULES;
use serde_json::{Value, json};

/// EMF namespace of every Tweetlake metric.
pub const NAMESPACE: &str = "Tweetlake";

/// One EMF log line with `metrics` (name → count) under the given dimensions.
pub fn emf_line(timestamp_ms: i64, dimensions: &[(&str, &str)], metrics: &[(&str, u64)]) -> String {
    let mut root = serde_json::Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions.iter().map(|(k, _)| *k).collect::<Vec<_>>()],
                "Metrics": metrics.iter().map(|(n, _)| json!({"Name": n, "Unit": "Count"})).collect::<Vec<_>>(),
            }]
        }),
    );
    for (k, v) in dimensions {
        root.insert((*k).into(), Value::String((*v).into()));
    }
    for (n, v) in metrics {
        root.insert((*n).into(), json!(v));
    }
    Value::Object(root).to_string()
}

/// The EMF lines of one processed batch: totals, then one line per quarantine rule that fired.
/// The Lambda prints them to stdout, where CloudWatch Logs turns them into metrics.
pub fn batch_lines(s: &BatchSummary, timestamp_ms: i64) -> Vec<String> {
    let function = [("Function", "process")];
    let quarantined: usize = s.quarantined.values().sum();
    let mut lines = vec![emf_line(
        timestamp_ms,
        &function,
        &[
            ("RecordsIn", s.records_in as u64),
            ("RowsWritten", s.rows_written as u64),
            ("RedeliveredSkipped", s.redelivered_skipped as u64),
            ("DuplicatesSkipped", (s.duplicates_in_batch + s.duplicates_in_window) as u64),
            ("EditedPostVersions", (s.later_versions + s.superseded_versions) as u64),
            ("Unscored", s.unscored as u64),
            ("Quarantined", quarantined as u64),
            ("AggregateRows", s.aggregate_rows as u64),
            ("OffsetGapsAccepted", s.offset_gaps_accepted.len() as u64),
        ],
    )];
    for rule in RULES {
        if let Some(&n) = s.quarantined.get(rule.name) {
            lines.push(emf_line(
                timestamp_ms,
                &[("Function", "process"), ("Rule", rule.name)],
                &[("QuarantinedByRule", n as u64)],
            ));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_is_valid_emf() {
        let v: Value =
            serde_json::from_str(&emf_line(5, &[("Function", "process"), ("Rule", "json")], &[("Quarantined", 3)])).unwrap();
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0], json!(["Function", "Rule"]));
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"], "Quarantined");
        assert_eq!(v["Quarantined"], 3);
        assert_eq!(v["Rule"], "json");
    }

    #[test]
    fn one_line_per_fired_rule() {
        let mut s = BatchSummary { records_in: 4, rows_written: 2, ..BatchSummary::default() };
        s.quarantined.insert("json".into(), 2);
        let lines = batch_lines(&s, 1);
        assert_eq!(lines.len(), 2);
        let total: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!((total["RecordsIn"].as_u64(), total["Quarantined"].as_u64()), (Some(4), Some(2)));
    }
}

//! CloudWatch Embedded Metric Format: metrics as structured log lines, no API calls from the Lambda.

use serde_json::{json, Value};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_is_valid_emf() {
        let v: Value = serde_json::from_str(&emf_line(5, &[("Function", "process"), ("Rule", "json")], &[("Quarantined", 3)])).unwrap();
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0], json!(["Function", "Rule"]));
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"], "Quarantined");
        assert_eq!(v["Quarantined"], 3);
        assert_eq!(v["Rule"], "json");
    }
}

//! CloudWatch Embedded Metric Format: metrics as structured log lines, no API calls from the Lambda.
//! Both functions print them to stdout, where CloudWatch Logs turns them into metrics.

use serde_json::{Value, json};

/// EMF namespace of every Tweetlake metric.
pub const NAMESPACE: &str = "Tweetlake";

/// The CloudWatch unit of a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// A number of things.
    Count,
    /// A duration.
    Seconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Seconds => "Seconds",
        }
    }
}

/// One EMF log line with `metrics` (name, value, unit) under the given dimensions.
pub fn emf_line(timestamp_ms: i64, dimensions: &[(&str, &str)], metrics: &[(&str, u64, Unit)]) -> String {
    let mut root = serde_json::Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions.iter().map(|(k, _)| *k).collect::<Vec<_>>()],
                "Metrics": metrics.iter().map(|(n, _, u)| json!({"Name": n, "Unit": u.as_str()})).collect::<Vec<_>>(),
            }]
        }),
    );
    for (k, v) in dimensions {
        root.insert((*k).into(), Value::String((*v).into()));
    }
    for (n, v, _) in metrics {
        root.insert((*n).into(), json!(v));
    }
    Value::Object(root).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_is_valid_emf() {
        let line = emf_line(
            5,
            &[("Function", "process"), ("Rule", "json")],
            &[("Quarantined", 3, Unit::Count), ("Gap", 7, Unit::Seconds)],
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0], json!(["Function", "Rule"]));
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"], "Quarantined");
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Metrics"][1]["Unit"], "Seconds");
        assert_eq!((v["Quarantined"].as_u64(), v["Gap"].as_u64()), (Some(3), Some(7)));
        assert_eq!(v["Rule"], "json");
    }
}

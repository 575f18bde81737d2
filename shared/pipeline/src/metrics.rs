//! The process function's metrics: one processed batch as CloudWatch Embedded Metric Format lines.

use crate::process::BatchSummary;
use crate::quality::RULES;
use tweetlake_contract::metrics::{Unit, emf_line};

/// The EMF lines of one processed batch: totals, then one line per quarantine rule that fired.
/// The Lambda prints them to stdout, where CloudWatch Logs turns them into metrics.
pub fn batch_lines(s: &BatchSummary, timestamp_ms: i64) -> Vec<String> {
    let function = [("Function", "process")];
    let quarantined: usize = s.quarantined.values().sum();
    let mut lines = vec![emf_line(
        timestamp_ms,
        &function,
        &[
            ("RecordsIn", s.records_in as u64, Unit::Count),
            ("RowsWritten", s.rows_written as u64, Unit::Count),
            ("RedeliveredSkipped", s.redelivered_skipped as u64, Unit::Count),
            ("DuplicatesSkipped", (s.duplicates_in_batch + s.duplicates_in_window) as u64, Unit::Count),
            ("EditedPostVersions", (s.later_versions + s.superseded_versions) as u64, Unit::Count),
            ("Unscored", s.unscored as u64, Unit::Count),
            ("Quarantined", quarantined as u64, Unit::Count),
            ("AggregateRows", s.aggregate_rows as u64, Unit::Count),
            ("OffsetGapsAccepted", s.offset_gaps_accepted.len() as u64, Unit::Count),
        ],
    )];
    for rule in RULES {
        if let Some(&n) = s.quarantined.get(rule.name) {
            lines.push(emf_line(
                timestamp_ms,
                &[("Function", "process"), ("Rule", rule.name)],
                &[("QuarantinedByRule", n as u64, Unit::Count)],
            ));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

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

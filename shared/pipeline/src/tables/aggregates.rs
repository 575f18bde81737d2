//! The aggregates table: additive partial counts of windowed sentiment (see [`crate::aggregate`]),
//! summed at query time, partitioned by `window_date`.

use super::{Column, Get, Stamp};
use crate::aggregate::{AggregateKey, Partial};
use crate::offsets::PerPartition;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::error::ArrowError;
use deltalake::arrow::record_batch::RecordBatch;
use std::sync::LazyLock;

/// Microseconds in a day.
const DAY_US: i64 = 86_400_000_000;

/// One row of the aggregates table: a partial of one key.
#[derive(Clone, Debug, PartialEq)]
pub struct AggregateRow {
    /// What the partial groups by.
    pub key: AggregateKey,
    /// The counts.
    pub partial: Partial,
    /// The last offset of the commit that wrote the counted tweets, for provenance (-1 if unknown).
    pub batch_last_offset: i64,
}

impl AggregateRow {
    /// The row of a partial, stamped with its partition's last offset in `last_offsets`.
    pub fn new((key, partial): (AggregateKey, Partial), last_offsets: &PerPartition<i64>) -> Self {
        let batch_last_offset = last_offsets.lookup(&key.kafka_topic, key.kafka_partition).copied().unwrap_or(-1);
        AggregateRow { key, partial, batch_last_offset }
    }

    /// The `window_date` partition value, days since 1970-01-01.
    pub fn window_day(&self) -> i32 {
        self.key.window_start_us.div_euclid(DAY_US) as i32
    }
}

/// The table's columns, in order: the schema and the batch builder both come from this list.
pub static COLUMNS: &[Column<AggregateRow>] = &[
    Column { name: "dimension", get: Get::Str(|r, _| r.key.dimension.as_str()) },
    Column { name: "value", get: Get::Str(|r, _| &r.key.value) },
    Column { name: "window_minutes", get: Get::I32(|r, _| r.key.window_minutes) },
    Column { name: "window_start", get: Get::Micros(|r, _| r.key.window_start_us) },
    Column { name: "window_date", get: Get::Date(|r, _| r.window_day()) },
    Column { name: "tweets", get: Get::I64(|r, _| r.partial.tweets) },
    Column { name: "positive", get: Get::I64(|r, _| r.partial.positive) },
    Column { name: "neutral", get: Get::I64(|r, _| r.partial.neutral) },
    Column { name: "negative", get: Get::I64(|r, _| r.partial.negative) },
    Column { name: "score_sum", get: Get::F64(|r, _| r.partial.score_sum) },
    Column { name: "kafka_topic", get: Get::Str(|r, _| &r.key.kafka_topic) },
    Column { name: "kafka_partition", get: Get::I32(|r, _| r.key.kafka_partition) },
    Column { name: "batch_last_offset", get: Get::I64(|r, _| r.batch_last_offset) },
    Column { name: "written_at", get: Get::Micros(|_, s| s.now.timestamp_micros()) },
    // Envelope version 2 on (null in rows written before: there every tweet was scored and counted
    // as an original).
    Column { name: "scored", get: Get::OptI64(|r, _| Some(r.partial.scored)) },
    Column { name: "originals", get: Get::OptI64(|r, _| Some(r.partial.originals)) },
    Column { name: "retweets", get: Get::OptI64(|r, _| Some(r.partial.retweets)) },
    Column { name: "quotes", get: Get::OptI64(|r, _| Some(r.partial.quotes)) },
    Column { name: "replies", get: Get::OptI64(|r, _| Some(r.partial.replies)) },
    // Three-class models on: the probability sums and the rows they hold.
    Column { name: "prob_rows", get: Get::OptI64(|r, _| Some(r.partial.prob_rows)) },
    Column { name: "negative_prob_sum", get: Get::OptF64(|r, _| Some(r.partial.prob_sums[0])) },
    Column { name: "neutral_prob_sum", get: Get::OptF64(|r, _| Some(r.partial.prob_sums[1])) },
    Column { name: "positive_prob_sum", get: Get::OptF64(|r, _| Some(r.partial.prob_sums[2])) },
];

/// Schema of the aggregates table.
pub static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| super::schema(COLUMNS));

/// Partition columns of the aggregates table.
pub const PARTITIONS: &[&str] = &["window_date"];

/// The Arrow batch of `rows`.
pub fn batch(rows: &[AggregateRow], stamp: &Stamp<'_>) -> Result<RecordBatch, ArrowError> {
    super::batch(COLUMNS, &SCHEMA, rows, stamp)
}

/// `rows` as the batches of one commit: sorted by date, one batch per run of dates a flush holds.
pub fn batches(rows: &mut [AggregateRow], stamp: &Stamp<'_>) -> Result<Vec<RecordBatch>, ArrowError> {
    super::batches_by_day(COLUMNS, &SCHEMA, rows, AggregateRow::window_day, stamp)
}

//! The quarantine table: every record a quality rule rejected, whole, with the rule and the reason,
//! partitioned by `quarantined_date`. Nothing is dropped: a reject lands here instead.

use super::{Column, Get, Stamp, days, kafka_micros};
use crate::decode::RawRecord;
use crate::quality::Rejection;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::error::ArrowError;
use deltalake::arrow::record_batch::RecordBatch;
use std::sync::LazyLock;

/// One row of the quarantine table.
#[derive(Clone, Debug, PartialEq)]
pub struct QuarantineRow {
    /// Kafka topic of the record.
    pub kafka_topic: String,
    /// Kafka partition of the record (-1 where the event did not say).
    pub kafka_partition: i32,
    /// Kafka offset of the record (-1 where the event did not say).
    pub kafka_offset: i64,
    /// Kafka timestamp of the record, epoch ms.
    pub kafka_timestamp_ms: i64,
    /// The record's key bytes.
    pub key: Option<Vec<u8>>,
    /// The record's value bytes, as received.
    pub payload: Option<Vec<u8>>,
    /// The rule that rejected it.
    pub rule: &'static str,
    /// Why, for a person.
    pub error: String,
}

impl QuarantineRow {
    /// The row of a record that `rejection` turned away.
    pub fn new(rec: RawRecord, rejection: Rejection) -> Self {
        QuarantineRow {
            kafka_topic: rec.topic,
            kafka_partition: rec.partition,
            kafka_offset: rec.offset,
            kafka_timestamp_ms: rec.timestamp_ms,
            key: rec.key,
            payload: rec.value,
            rule: rejection.rule,
            error: rejection.message,
        }
    }
}

/// The table's columns, in order: the schema and the batch builder both come from this list.
pub static COLUMNS: &[Column<QuarantineRow>] = &[
    Column { name: "kafka_topic", get: Get::Str(|r, _| &r.kafka_topic) },
    Column { name: "kafka_partition", get: Get::I32(|r, _| r.kafka_partition) },
    Column { name: "kafka_offset", get: Get::I64(|r, _| r.kafka_offset) },
    Column { name: "kafka_timestamp", get: Get::Micros(|r, _| kafka_micros(r.kafka_timestamp_ms)) },
    Column { name: "key", get: Get::OptBytes(|r, _| r.key.as_deref()) },
    Column { name: "payload", get: Get::OptBytes(|r, _| r.payload.as_deref()) },
    Column { name: "rule", get: Get::Str(|r, _| r.rule) },
    Column { name: "error", get: Get::Str(|r, _| &r.error) },
    Column { name: "quarantined_at", get: Get::Micros(|_, s| s.now.timestamp_micros()) },
    Column { name: "quarantined_date", get: Get::Date(|_, s| days(s.now)) },
];

/// Schema of the quarantine table.
pub static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| super::schema(COLUMNS));

/// Partition columns of the quarantine table.
pub const PARTITIONS: &[&str] = &["quarantined_date"];

/// The Arrow batch of `rows` (one date: the batch's processing time).
pub fn batch(rows: &[QuarantineRow], stamp: &Stamp<'_>) -> Result<RecordBatch, ArrowError> {
    super::batch(COLUMNS, &SCHEMA, rows, stamp)
}

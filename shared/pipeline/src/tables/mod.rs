//! The tables the process function writes, one module each: [`tweets`], [`quarantine`] and
//! [`aggregates`]. A table module holds its row type, the constructor that builds a row from what the
//! stages produced, its partition column and one list of columns; the Arrow schema and the batch
//! builder are both derived from that list here, so they cannot drift apart.
//!
//! Timestamps carry the UTC zone (a naive timestamp would become Delta `timestampNtz` and raise the
//! protocol beyond reader 1 / writer 2, which Athena cannot read); list items are named `element`, as
//! Delta's Arrow mapping names them.

pub mod aggregates;
pub mod quarantine;
pub mod tweets;

use chrono::{DateTime, NaiveDate, Utc};
use deltalake::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, Int64Builder, ListBuilder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::arrow::error::ArrowError;
use deltalake::arrow::record_batch::RecordBatch;
use std::sync::Arc;

/// What every row of one commit shares: when it was processed and by which model.
#[derive(Clone, Copy, Debug)]
pub struct Stamp<'a> {
    /// The processing time of the batch.
    pub now: DateTime<Utc>,
    /// The sentiment model's version.
    pub model_version: &'a str,
}

/// How a column reads its value from a row `R` (and the commit's [`Stamp`]); the variant sets the
/// column's Arrow type, and `Opt…`/`List` columns are the nullable ones.
pub enum Get<R> {
    /// Text.
    Str(for<'a> fn(&'a R, &'a Stamp<'a>) -> &'a str),
    /// Text or null.
    OptStr(for<'a> fn(&'a R, &'a Stamp<'a>) -> Option<&'a str>),
    /// A list of text (never null; empty when there is nothing).
    List(for<'a> fn(&'a R, &'a Stamp<'a>) -> &'a [String]),
    /// Bytes or null.
    OptBytes(for<'a> fn(&'a R, &'a Stamp<'a>) -> Option<&'a [u8]>),
    /// A 32-bit integer.
    I32(fn(&R, &Stamp<'_>) -> i32),
    /// A 64-bit integer.
    I64(fn(&R, &Stamp<'_>) -> i64),
    /// A 64-bit integer or null.
    OptI64(fn(&R, &Stamp<'_>) -> Option<i64>),
    /// A double.
    F64(fn(&R, &Stamp<'_>) -> f64),
    /// A double or null.
    OptF64(fn(&R, &Stamp<'_>) -> Option<f64>),
    /// A boolean or null.
    OptBool(fn(&R, &Stamp<'_>) -> Option<bool>),
    /// A UTC timestamp, microseconds since the epoch.
    Micros(fn(&R, &Stamp<'_>) -> i64),
    /// A date, days since 1970-01-01.
    Date(fn(&R, &Stamp<'_>) -> i32),
}

/// One column of a table: its name and how its value is read.
pub struct Column<R> {
    /// Column name.
    pub name: &'static str,
    /// Reader of the value, which also gives the type.
    pub get: Get<R>,
}

fn utc() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn element() -> Arc<Field> {
    Arc::new(Field::new("element", DataType::Utf8, true))
}

impl<R> Column<R> {
    fn field(&self) -> Field {
        let (t, nullable) = match self.get {
            Get::Str(_) => (DataType::Utf8, false),
            Get::OptStr(_) => (DataType::Utf8, true),
            Get::List(_) => (DataType::List(element()), true),
            Get::OptBytes(_) => (DataType::Binary, true),
            Get::I32(_) => (DataType::Int32, false),
            Get::I64(_) => (DataType::Int64, false),
            Get::OptI64(_) => (DataType::Int64, true),
            Get::F64(_) => (DataType::Float64, false),
            Get::OptF64(_) => (DataType::Float64, true),
            Get::OptBool(_) => (DataType::Boolean, true),
            Get::Micros(_) => (utc(), false),
            Get::Date(_) => (DataType::Date32, false),
        };
        Field::new(self.name, t, nullable)
    }

    /// The column's values for `rows`, as one Arrow array.
    fn array(&self, rows: &[R], s: &Stamp<'_>) -> ArrayRef {
        let n = rows.len();
        match self.get {
            Get::Str(f) => {
                // Sized up front: the long text columns would otherwise be regrown and copied several times.
                let mut b = StringBuilder::with_capacity(n, rows.iter().map(|r| f(r, s).len()).sum());
                rows.iter().for_each(|r| b.append_value(f(r, s)));
                Arc::new(b.finish())
            }
            Get::OptStr(f) => {
                let mut b = StringBuilder::with_capacity(n, rows.iter().map(|r| f(r, s).map_or(0, str::len)).sum());
                rows.iter().for_each(|r| b.append_option(f(r, s)));
                Arc::new(b.finish())
            }
            Get::List(f) => {
                let mut b = ListBuilder::new(StringBuilder::new()).with_field(element());
                for r in rows {
                    f(r, s).iter().for_each(|v| b.values().append_value(v));
                    b.append(true);
                }
                Arc::new(b.finish())
            }
            Get::OptBytes(f) => {
                let mut b = BinaryBuilder::with_capacity(n, rows.iter().map(|r| f(r, s).map_or(0, <[u8]>::len)).sum());
                rows.iter().for_each(|r| b.append_option(f(r, s)));
                Arc::new(b.finish())
            }
            Get::I32(f) => Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| f(r, s)))),
            Get::I64(f) => Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| f(r, s)))),
            Get::OptI64(f) => {
                let mut b = Int64Builder::with_capacity(n);
                rows.iter().for_each(|r| b.append_option(f(r, s)));
                Arc::new(b.finish())
            }
            Get::F64(f) => Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| f(r, s)))),
            Get::OptF64(f) => Arc::new(rows.iter().map(|r| f(r, s)).collect::<Float64Array>()),
            Get::OptBool(f) => Arc::new(rows.iter().map(|r| f(r, s)).collect::<BooleanArray>()),
            Get::Micros(f) => {
                let mut b = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
                rows.iter().for_each(|r| b.append_value(f(r, s)));
                Arc::new(b.finish())
            }
            Get::Date(f) => Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| f(r, s)))),
        }
    }
}

/// The Arrow schema of a column list.
pub fn schema<R>(columns: &[Column<R>]) -> SchemaRef {
    Arc::new(Schema::new(columns.iter().map(Column::field).collect::<Vec<_>>()))
}

/// The Arrow batch of `rows` in `schema` (which [`schema`] made from the same `columns`).
pub fn batch<R>(columns: &[Column<R>], schema: &SchemaRef, rows: &[R], stamp: &Stamp<'_>) -> Result<RecordBatch, ArrowError> {
    RecordBatch::try_new(schema.clone(), columns.iter().map(|c| c.array(rows, stamp)).collect())
}

/// Days since 1970-01-01 of a time, the value of the tables' date partition columns.
pub fn days(d: DateTime<Utc>) -> i32 {
    (d.date_naive() - NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")).num_days() as i32
}

/// At most this many distinct partition values go into one flush of the Delta writer. Each value open
/// in a flush holds its own Parquet writer (about 0.6 MB for the tweets table), so a backfill batch
/// spread over thousands of dates would otherwise hold thousands at once.
pub const PARTITIONS_PER_FLUSH: usize = 64;

/// Splits `rows`, sorted by `day`, into runs of at most [`PARTITIONS_PER_FLUSH`] distinct days: one
/// Arrow batch, and one writer flush, per run.
pub fn partition_chunks<T>(rows: &[T], day: impl Fn(&T) -> i32) -> Vec<&[T]> {
    let mut chunks = Vec::new();
    let (mut start, mut days) = (0, 0);
    for i in 0..rows.len() {
        if i == 0 || day(&rows[i]) != day(&rows[i - 1]) {
            if days == PARTITIONS_PER_FLUSH {
                chunks.push(&rows[start..i]);
                (start, days) = (i, 0);
            }
            days += 1;
        }
    }
    if start < rows.len() {
        chunks.push(&rows[start..]);
    }
    chunks
}

/// Sorts `rows` by their date partition and builds one Arrow batch per run of at most
/// [`PARTITIONS_PER_FLUSH`] dates, ready for one commit (see `sink::DeltaSink::append`).
pub fn batches_by_day<R>(
    columns: &[Column<R>],
    schema: &SchemaRef,
    rows: &mut [R],
    day: impl Fn(&R) -> i32 + Copy,
    stamp: &Stamp<'_>,
) -> Result<Vec<RecordBatch>, ArrowError> {
    rows.sort_by_key(day);
    partition_chunks(rows, day).into_iter().map(|chunk| batch(columns, schema, chunk, stamp)).collect()
}

/// Last millisecond of year 9999, the latest time a timestamp column here holds.
const LAST_MS: i64 = 253_402_300_799_999;

/// A Kafka timestamp (ms) as the microseconds its column stores. Exact for every time a valid row can
/// carry (the quality stage bounds them); a quarantined record's impossible value is clamped into the
/// column's range (its error message keeps the raw value), so no input can overflow the conversion.
pub fn kafka_micros(ms: i64) -> i64 {
    ms.clamp(crate::decode::NO_TIMESTAMP, LAST_MS) * 1000
}

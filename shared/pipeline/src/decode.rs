//! Decode: a Lambda Kafka event (Amazon MSK or self-managed Kafka) into raw records.
//!
//! Own serde types instead of `aws_lambda_events` 1.2.1, whose `KafkaRecord` reads the epoch-ms
//! timestamp through `f64` (off by 1 ms on about half of real values), rejects header bytes above 127
//! and fails on a record without `headers`; `tests/decode_compat.rs` shows each case.

use base64::Engine;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

/// The event Lambda's Kafka event source mapping sends.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KafkaEvent {
    /// `aws:kafka` (MSK) or `SelfManagedKafka`.
    pub event_source: String,
    /// MSK cluster ARN; absent for self-managed Kafka.
    #[serde(default)]
    pub event_source_arn: Option<String>,
    /// Comma-separated brokers.
    #[serde(default)]
    pub bootstrap_servers: Option<String>,
    /// Records keyed by `topic-partition`; [`decode_event`] moves them out into its record list.
    #[serde(default)]
    pub records: BTreeMap<String, Vec<WireRecord>>,
}

/// One record as it appears in the event.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireRecord {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
    /// Epoch milliseconds, read exactly.
    #[serde(deserialize_with = "exact_millis")]
    pub timestamp: i64,
    /// `CREATE_TIME` or `LOG_APPEND_TIME`.
    #[serde(default)]
    pub timestamp_type: Option<TimestampType>,
    /// Base64 key; absent for unkeyed records.
    #[serde(default)]
    pub key: Option<Base64>,
    /// Base64 value; absent for tombstones.
    #[serde(default)]
    pub value: Option<Base64>,
    /// Headers as arrays of Java (signed) bytes; absent when the record has none.
    #[serde(default)]
    pub headers: Vec<BTreeMap<String, Vec<i16>>>,
}

/// What a record's timestamp means (read without allocating, once per record).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TimestampType {
    /// Set by the producer.
    CreateTime,
    /// Set by the broker when it appended the record.
    LogAppendTime,
    /// Anything else the event source may send.
    #[serde(other)]
    Other,
}

/// A base64 field, decoded while the event is parsed: straight from the event's bytes, without first
/// copying each (up to megabyte-sized) value into a `String`.
#[derive(Clone, Debug, PartialEq)]
pub enum Base64 {
    /// The decoded bytes.
    Bytes(Vec<u8>),
    /// Text that is not base64, kept as it was so the record can be quarantined with it.
    Invalid {
        /// The field's text.
        text: String,
        /// Why it did not decode.
        error: String,
    },
}

impl<'de> Deserialize<'de> for Base64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Base64;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a base64 string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Base64, E> {
                // base64-simd decodes megabytes of values several times faster; on failure the
                // `base64` crate says where and why, for the quarantine message.
                Ok(match base64_simd::STANDARD.decode_to_vec(s) {
                    Ok(bytes) => Base64::Bytes(bytes),
                    Err(_) => Base64::Invalid {
                        text: s.to_owned(),
                        error: base64::engine::general_purpose::STANDARD
                            .decode(s)
                            .map_or_else(|e| e.to_string(), |_| "rejected by the strict decoder".to_owned()),
                    },
                })
            }
        }
        d.deserialize_str(Visitor)
    }
}

/// A record after decoding, before any validation.
#[derive(Clone, Debug, PartialEq)]
pub struct RawRecord {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
    /// Epoch milliseconds.
    pub timestamp_ms: i64,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes (the base64 text itself when it did not decode, see `decode_error`).
    pub value: Option<Vec<u8>>,
    /// Header names and byte values, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Why the key, value or headers could not be decoded; the quality stage quarantines such records.
    pub decode_error: Option<String>,
}

/// Errors that make a whole event unusable.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The payload is not a Kafka event.
    #[error("not a Lambda Kafka event: {0}")]
    Event(#[from] serde_json::Error),
    /// The event source is neither MSK nor self-managed Kafka.
    #[error("unsupported eventSource {0:?} (expected \"aws:kafka\" or \"SelfManagedKafka\")")]
    Source(String),
}

fn exact_millis<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    // serde_json keeps integer literals exact; only a literal written as a float goes through f64.
    match serde_json::Number::deserialize(d)? {
        n if n.is_i64() => Ok(n.as_i64().expect("checked")),
        n => n.as_f64().map(|f| f.round() as i64).ok_or_else(|| serde::de::Error::custom("timestamp out of range")),
    }
}

/// Parses an event payload and decodes every record, ordered by topic, partition and offset. The
/// returned event keeps its metadata; its records have been moved into the list.
pub fn decode_event(payload: &[u8]) -> Result<(KafkaEvent, Vec<RawRecord>), DecodeError> {
    decode(serde_json::from_slice(payload)?)
}

fn decode(mut event: KafkaEvent) -> Result<(KafkaEvent, Vec<RawRecord>), DecodeError> {
    if event.event_source != "aws:kafka" && event.event_source != "SelfManagedKafka" {
        return Err(DecodeError::Source(event.event_source));
    }
    let mut out = Vec::with_capacity(event.records.values().map(Vec::len).sum());
    out.extend(std::mem::take(&mut event.records).into_values().flatten().map(decode_record));
    out.sort_by(|a, b| (&a.topic, a.partition, a.offset).cmp(&(&b.topic, b.partition, b.offset)));
    Ok((event, out))
}

/// Decodes one record; problems are kept in `decode_error`, never dropped.
pub fn decode_record(r: WireRecord) -> RawRecord {
    let mut errors = Vec::new();
    let mut bytes = |field: &str, b: Base64| match b {
        Base64::Bytes(v) => v,
        Base64::Invalid { text, error } => {
            errors.push(format!("{field} is not base64: {error}"));
            text.into_bytes()
        }
    };
    let key = r.key.map(|k| bytes("key", k));
    let value = r.value.map(|v| bytes("value", v));
    let mut headers = Vec::new();
    for map in r.headers {
        for (name, bytes) in map {
            // AWS sends Java's signed bytes; accept unsigned 0..=255 too.
            let mut v = Vec::with_capacity(bytes.len());
            for b in bytes {
                match b {
                    -128..=255 => v.push(b as u8),
                    _ => errors.push(format!("header {name:?} has byte {b} outside -128..=255")),
                }
            }
            headers.push((name, v));
        }
    }
    RawRecord {
        topic: r.topic,
        partition: r.partition,
        offset: r.offset,
        timestamp_ms: r.timestamp,
        key,
        value,
        headers,
        decode_error: (!errors.is_empty()).then(|| errors.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_millisecond_timestamps_signed_headers_and_missing_fields() {
        let ev = br#"{"eventSource":"SelfManagedKafka","records":{"t-0":[
            {"topic":"t","partition":0,"offset":7,"timestamp":1732690800123,"timestampType":"CREATE_TIME",
             "value":"aGk=","headers":[{"h":[-1,104,127,-128]}]},
            {"topic":"t","partition":0,"offset":3,"timestamp":1732690800001,"timestampType":"CREATE_TIME"}]}}"#;
        let (_, recs) = decode_event(ev).unwrap();
        assert_eq!(recs[0].offset, 3, "sorted by offset");
        assert_eq!(recs[0].key, None);
        assert_eq!(recs[0].value, None);
        assert!(recs[0].headers.is_empty());
        assert_eq!(recs[1].timestamp_ms, 1732690800123);
        assert_eq!(recs[1].value.as_deref(), Some(&b"hi"[..]));
        assert_eq!(recs[1].headers, vec![("h".to_string(), vec![255, 104, 127, 128])]);
    }

    #[test]
    fn bad_base64_is_kept_with_its_error() {
        let ev = br#"{"eventSource":"aws:kafka","records":{"t-1":[{"topic":"t","partition":1,"offset":1,"timestamp":1,"value":"%%%"}]}}"#;
        let (_, recs) = decode_event(ev).unwrap();
        assert!(recs[0].decode_error.as_deref().unwrap().contains("value is not base64"));
        assert_eq!(recs[0].value.as_deref(), Some(&b"%%%"[..]));
    }

    #[test]
    fn rejects_other_event_sources() {
        let err = decode_event(br#"{"eventSource":"aws:sqs","records":{}}"#).unwrap_err();
        assert!(err.to_string().contains("aws:sqs"));
    }
}

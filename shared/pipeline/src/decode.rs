//! Decode: a Lambda Kafka event (Amazon MSK or self-managed Kafka) into raw records.
//!
//! Own serde types instead of `aws_lambda_events` 1.2.1, whose `KafkaRecord` reads the epoch-ms
//! timestamp through `f64` (off by 1 ms on about half of real values), rejects header bytes above 127
//! and fails on a record without `headers`; `tests/decode_compat.rs` shows each case.

use base64::Engine;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
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

/// Errors that make a whole event unusable: only an event that is not a Lambda Kafka event at all.
/// A record that does not decode is kept (see [`decode_event`]) and quarantined, never fails the batch.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The payload is not JSON, or not shaped like a Kafka event (names the field that is off).
    #[error("not a Lambda Kafka event: {0}")]
    Event(String),
    /// The event source is neither MSK nor self-managed Kafka.
    #[error("unsupported eventSource {0:?} (expected \"aws:kafka\" or \"SelfManagedKafka\")")]
    Source(String),
}

fn exact_millis<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    // serde_json keeps integer literals exact; only a literal written as a float goes through f64
    // (saturating: 1e300 becomes i64::MAX, which the quality stage rejects as no real time).
    match serde_json::Number::deserialize(d)? {
        n if n.is_i64() => Ok(n.as_i64().expect("checked")),
        n => n.as_f64().map(|f| f.round() as i64).ok_or_else(|| serde::de::Error::custom("timestamp out of range")),
    }
}

/// The event with its records left as raw JSON, for the per-record path.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LooseEvent<'a> {
    event_source: String,
    #[serde(default)]
    event_source_arn: Option<String>,
    #[serde(default)]
    bootstrap_servers: Option<String>,
    #[serde(default, borrow)]
    records: BTreeMap<String, &'a RawValue>,
}

/// Parses an event payload and decodes every record, ordered by topic, partition and offset. The
/// returned event keeps its metadata; its records have been moved into the list.
///
/// A well-formed event is parsed in one pass. If any record is malformed (a `null` or out-of-range
/// header byte, a value that is not a string, a missing offset …), the event is parsed again record by
/// record: each record that does not decode is kept with what could be read of its position, its JSON
/// text as the value and the reason in `decode_error`, so the quality stage quarantines it and the rest
/// of the batch is written. Only a payload that is not a Kafka event at all is an error.
pub fn decode_event(payload: &[u8]) -> Result<(KafkaEvent, Vec<RawRecord>), DecodeError> {
    match serde_json::from_slice::<KafkaEvent>(payload) {
        Ok(event) => decode(event),
        Err(e) if e.classify() == serde_json::error::Category::Data => decode_per_record(payload),
        Err(e) => Err(DecodeError::Event(format!("the payload is not JSON: {e}"))),
    }
}

fn check_source(source: &str) -> Result<(), DecodeError> {
    match source {
        "aws:kafka" | "SelfManagedKafka" => Ok(()),
        other => Err(DecodeError::Source(other.to_owned())),
    }
}

fn decode(mut event: KafkaEvent) -> Result<(KafkaEvent, Vec<RawRecord>), DecodeError> {
    check_source(&event.event_source)?;
    let mut out = Vec::with_capacity(event.records.values().map(Vec::len).sum());
    out.extend(std::mem::take(&mut event.records).into_values().flatten().map(decode_record));
    sort(&mut out);
    Ok((event, out))
}

/// Puts records in batch order: by topic, partition, offset (the order every stage expects).
pub(crate) fn sort(records: &mut [RawRecord]) {
    records.sort_by(|a, b| (&a.topic, a.partition, a.offset).cmp(&(&b.topic, b.partition, b.offset)));
}

/// Decodes `T` from JSON text, naming the path of the field that failed (`headers[0].h[2]: …`).
fn parse_at_path<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, String> {
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(text)).map_err(|e| {
        let path = e.path().to_string();
        if path == "." { e.into_inner().to_string() } else { format!("{path}: {}", e.into_inner()) }
    })
}

fn decode_per_record(payload: &[u8]) -> Result<(KafkaEvent, Vec<RawRecord>), DecodeError> {
    let text = std::str::from_utf8(payload).map_err(|e| DecodeError::Event(format!("the payload is not UTF-8: {e}")))?;
    let loose: LooseEvent = parse_at_path(text).map_err(DecodeError::Event)?;
    check_source(&loose.event_source)?;
    let mut out = Vec::new();
    for (group, raw) in &loose.records {
        match parse_at_path::<Vec<&RawValue>>(raw.get()) {
            Ok(records) => {
                for (i, rec) in records.iter().enumerate() {
                    out.push(match parse_at_path::<WireRecord>(rec.get()) {
                        Ok(r) => decode_record(r),
                        Err(e) => salvage(group, Some(i), rec.get(), &e),
                    });
                }
            }
            Err(e) => out.push(salvage(group, None, raw.get(), &format!("not a list of records: {e}"))),
        }
    }
    sort(&mut out);
    let event = KafkaEvent {
        event_source: loose.event_source,
        event_source_arn: loose.event_source_arn,
        bootstrap_servers: loose.bootstrap_servers,
        records: BTreeMap::new(),
    };
    Ok((event, out))
}

/// `topic-partition`, the key Lambda groups records under, split at its last `-`.
fn split_group_key(group: &str) -> (Option<&str>, Option<i32>) {
    match group.rsplit_once('-') {
        Some((t, p)) => (Some(t), p.parse().ok()),
        None => (Some(group), None),
    }
}

/// What can be read of a record that does not decode: its position (from its own fields, else from
/// its group's key; `-1` when unknown), its timestamp, and its JSON text as the value to quarantine.
fn salvage(group: &str, index: Option<usize>, raw: &str, error: &str) -> RawRecord {
    let v: serde_json::Value = serde_json::from_str(raw).unwrap_or(serde_json::Value::Null);
    let (group_topic, group_partition) = split_group_key(group);
    let topic = v.get("topic").and_then(|t| t.as_str()).or(group_topic).unwrap_or_default().to_owned();
    let partition = v
        .get("partition")
        .and_then(serde_json::Value::as_i64)
        .and_then(|p| i32::try_from(p).ok())
        .or(group_partition)
        .unwrap_or(-1);
    let offset = v.get("offset").and_then(serde_json::Value::as_i64).unwrap_or(-1);
    let timestamp_ms = v.get("timestamp").and_then(serde_json::Value::as_i64).unwrap_or(NO_TIMESTAMP);
    let at = match index {
        Some(i) => format!("record {i} of {group:?}"),
        None => format!("records[{group:?}]"),
    };
    let mut rec = RawRecord {
        topic,
        partition,
        offset,
        timestamp_ms,
        key: None,
        value: Some(raw.as_bytes().to_vec()),
        headers: Vec::new(),
        decode_error: Some(format!("{at} does not decode ({error}); the payload holds its JSON as received")),
    };
    check_position(&mut rec);
    rec
}

/// Kafka's "no timestamp" value.
pub const NO_TIMESTAMP: i64 = -1;

/// Longest topic name Kafka accepts.
const MAX_TOPIC_LEN: usize = 249;

/// A record whose topic, partition or offset could not be a Kafka position cannot be tied to a
/// recorded offset: it is marked unplaced (offset `-1`) and its problem noted, so it is quarantined
/// and left out of the offsets a commit records.
fn check_position(rec: &mut RawRecord) {
    let topic_ok = !rec.topic.is_empty()
        && rec.topic.len() <= MAX_TOPIC_LEN
        && rec.topic.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    let mut problems = Vec::new();
    if !topic_ok {
        problems.push(format!("topic {:?} is not a Kafka topic name", rec.topic));
    }
    if rec.partition < 0 {
        problems.push(format!("partition {} is not a Kafka partition", rec.partition));
    }
    if rec.offset < 0 {
        problems.push(format!("offset {} is not a Kafka offset", rec.offset));
    }
    if problems.is_empty() {
        return;
    }
    rec.offset = -1;
    let msg = problems.join("; ");
    rec.decode_error = Some(match rec.decode_error.take() {
        Some(e) => format!("{e}; {msg}"),
        None => msg,
    });
}

impl RawRecord {
    /// The value of header `name`, as text (invalid UTF-8 replaced).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// Whether the record has a real Kafka position, so its offset can be recorded as done.
    pub fn is_placed(&self) -> bool {
        self.offset >= 0 && self.partition >= 0
    }
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
    let mut rec = RawRecord {
        topic: r.topic,
        partition: r.partition,
        offset: r.offset,
        timestamp_ms: r.timestamp,
        key,
        value,
        headers,
        decode_error: (!errors.is_empty()).then(|| errors.join("; ")),
    };
    check_position(&mut rec);
    rec
}

/// Where an encoded event says it came from (Lambda sets both for MSK; self-managed Kafka has no ARN).
#[derive(Clone, Copy, Debug, Default)]
pub struct Origin<'a> {
    /// The MSK cluster's ARN; `None` encodes a self-managed Kafka event.
    pub event_source_arn: Option<&'a str>,
    /// Comma-separated brokers.
    pub bootstrap_servers: Option<&'a str>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct EventOut<'a> {
    event_source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_source_arn: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bootstrap_servers: Option<&'a str>,
    records: BTreeMap<String, Vec<RecordOut<'a>>>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct RecordOut<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    timestamp: i64,
    timestamp_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    headers: Vec<BTreeMap<&'a str, Vec<i8>>>,
}

/// About how many bytes `rec` adds to an event (an upper bound for usual records): base64 grows key
/// and value by 4/3, a header byte is written as a number of up to four characters and a comma, and
/// the record's other fields add a little more.
pub fn encoded_size(rec: &RawRecord) -> usize {
    let b64 = (rec.value.as_ref().map_or(0, Vec::len) + rec.key.as_ref().map_or(0, Vec::len)).div_ceil(3) * 4;
    let headers: usize = rec.headers.iter().map(|(k, v)| k.len() + v.len() * 5 + 8).sum();
    b64 + headers + rec.topic.len() + 160
}

/// The Lambda Kafka event holding `records`, as JSON bytes: what the event source mapping sends,
/// grouped by `topic-partition`, keys and values in base64, header values as Java's signed bytes.
/// [`decode_event`] reads it back to the same records (in topic, partition, offset order).
pub fn encode_event(records: &[RawRecord], origin: Origin<'_>) -> Vec<u8> {
    // Sized up front: an event is megabytes, and growing it by doubling copies it over and over.
    let mut out = Vec::with_capacity(records.iter().map(encoded_size).sum::<usize>() + 1024);
    let b64 = |b: &Vec<u8>| base64_simd::STANDARD.encode_to_string(b);
    let mut grouped: BTreeMap<String, Vec<RecordOut<'_>>> = BTreeMap::new();
    for r in records {
        grouped.entry(format!("{}-{}", r.topic, r.partition)).or_default().push(RecordOut {
            topic: &r.topic,
            partition: r.partition,
            offset: r.offset,
            timestamp: r.timestamp_ms,
            timestamp_type: "CREATE_TIME",
            key: r.key.as_ref().map(b64),
            value: r.value.as_ref().map(b64),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| BTreeMap::from([(k.as_str(), v.iter().map(|b| *b as i8).collect())]))
                .collect(),
        });
    }
    let event = EventOut {
        event_source: if origin.event_source_arn.is_some() { "aws:kafka" } else { "SelfManagedKafka" },
        event_source_arn: origin.event_source_arn,
        bootstrap_servers: origin.bootstrap_servers,
        records: grouped,
    };
    serde_json::to_writer(&mut out, &event).expect("an event serialises");
    out
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
    fn a_malformed_record_is_kept_with_its_position_and_the_field_that_failed() {
        let ev = br#"{"eventSource":"aws:kafka","records":{"t-0":[
            {"topic":"t","partition":0,"offset":4,"timestamp":1,"value":"aGk=","headers":[{"h":null}]},
            {"topic":"t","partition":0,"offset":5,"timestamp":1,"value":"aGk="},
            {"topic":"t","partition":0,"timestamp":"soon","value":{"x":1}}],
            "u-7":{"not":"a list"}}}"#;
        let (_, recs) = decode_event(ev).unwrap();
        assert_eq!(recs.len(), 4, "every record is kept");
        let at = |o: i64, t: &str| recs.iter().find(|r| r.offset == o && r.topic == t).unwrap();
        assert!(at(4, "t").decode_error.as_deref().unwrap().contains("headers[0].h: invalid type: null"), "{:?}", at(4, "t"));
        assert_eq!(at(4, "t").value.as_deref().map(|v| v.starts_with(b"{")), Some(true), "its JSON is the payload");
        assert_eq!(at(5, "t").decode_error, None, "a good neighbour decodes as usual");
        let no_offset = at(-1, "t");
        assert!(!no_offset.is_placed() && no_offset.decode_error.as_deref().unwrap().contains("offset"), "{no_offset:?}");
        let group = at(-1, "u");
        assert_eq!(group.partition, 7, "the position is read from the group's key");
        assert!(group.decode_error.as_deref().unwrap().contains("not a list of records"));
    }

    #[test]
    fn impossible_positions_are_unplaced() {
        let ev = br#"{"eventSource":"aws:kafka","records":{"x":[
            {"topic":"../etc","partition":0,"offset":1,"timestamp":1},
            {"topic":"t","partition":-2,"offset":1,"timestamp":1}]}}"#;
        let (_, recs) = decode_event(ev).unwrap();
        assert!(recs.iter().all(|r| !r.is_placed() && r.offset == -1 && r.decode_error.is_some()), "{recs:?}");
    }

    proptest::proptest! {
        /// Whatever records the emulator, the benches or the tests encode, the decoder reads back
        /// exactly: bytes, headers (any byte, repeated names), millisecond timestamps, absent fields.
        #[test]
        fn encoded_events_decode_to_the_same_records(
            recs in proptest::collection::vec(
                (
                    "[a-z][a-z0-9._-]{0,10}",
                    0i32..4,
                    proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..20)),
                    proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..200)),
                    proptest::collection::vec(("[a-z-]{1,8}", proptest::collection::vec(proptest::num::u8::ANY, 0..8)), 0..3),
                    proptest::num::i64::ANY,
                ),
                0..12,
            ),
            msk in proptest::bool::ANY,
        ) {
            let mut records: Vec<RawRecord> = recs
                .into_iter()
                .enumerate()
                .map(|(i, (topic, partition, key, value, headers, timestamp_ms))| RawRecord {
                    topic, partition, offset: i as i64, timestamp_ms, key, value, headers, decode_error: None,
                })
                .collect();
            let origin = Origin { event_source_arn: msk.then_some("arn:aws:kafka:local:0:cluster/c/x"), bootstrap_servers: Some("b:9092") };
            let (event, back) = decode_event(&encode_event(&records, origin)).expect("decodes");
            sort(&mut records);
            proptest::prop_assert_eq!(back, records);
            proptest::prop_assert_eq!(event.event_source, if msk { "aws:kafka" } else { "SelfManagedKafka" });
            proptest::prop_assert_eq!(event.bootstrap_servers.as_deref(), Some("b:9092"));
        }
    }

    #[test]
    fn rejects_other_event_sources() {
        let err = decode_event(br#"{"eventSource":"aws:sqs","records":{}}"#).unwrap_err();
        assert!(err.to_string().contains("aws:sqs"));
    }
}

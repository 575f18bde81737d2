//! Redrive: replaying a batch the event source mapping gave up on.
//!
//! After its retries the mapping writes a failed batch to the on-failure destination and moves on; the
//! tables then record offsets past it, so delivering it again as it was would be skipped as a
//! redelivery. A redrive gives the batch a topic name of its own, `redrive.{id}.{topic}`, derived from
//! the batch's record positions: the tables record the redrive's offsets under that name in the same
//! commit as its rows (so a second redrive of the same batch changes nothing, and `kafka_topic` shows
//! which rows came from one), and its dedup window starts from the original partition's (so a post
//! already written from another offset is not written twice).

use crate::decode::{DecodeError, RawRecord};
use crate::tables::quarantine::QuarantineRow;
use serde_json::Value;

/// Prefix of a redrive's topic names.
pub const PREFIX: &str = "redrive.";

/// The `rule` of the quarantine row that marks a quarantined record as redriven.
pub const REDRIVEN: &str = "redriven";

/// The quarantine row recording that `rec` (at its original position) was redriven under `topic`.
pub fn mark(rec: &RawRecord, topic: &str) -> QuarantineRow {
    QuarantineRow {
        kafka_topic: rec.topic.clone(),
        kafka_partition: rec.partition,
        kafka_offset: rec.offset,
        kafka_timestamp_ms: rec.timestamp_ms,
        key: rec.key.clone(),
        payload: None,
        rule: REDRIVEN,
        error: format!(
            "redriven as {topic} offset {}: the tweets table has it, or the quarantine again under that topic",
            rec.offset
        ),
    }
}

/// The Kafka event inside `payload`: the event itself, or the `payload` of a Lambda on-failure record
/// (what an S3 on-failure destination stores: the invocation's metadata and, under `payload`, the event).
pub fn batch_of(payload: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let v: Value = serde_json::from_slice(payload).map_err(|e| DecodeError::Event(format!("the payload is not JSON: {e}")))?;
    match (v.get("records"), v.get("payload")) {
        (Some(_), _) => Ok(payload.to_vec()),
        (None, Some(Value::String(inner))) => Ok(inner.as_bytes().to_vec()),
        (None, Some(inner @ Value::Object(_))) => Ok(inner.to_string().into_bytes()),
        _ => Err(DecodeError::Event("neither a Kafka event (`records`) nor an on-failure record (`payload`)".into())),
    }
}

/// The redrive's id: a hash of the batch's record positions, so the same batch always gets the same id.
pub fn redrive_id(records: &[RawRecord]) -> String {
    // FNV-1a: stable across builds and platforms, unlike the standard library's hasher.
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for r in records {
        for b in r.topic.bytes().chain(r.partition.to_le_bytes()).chain(r.offset.to_le_bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// The topic name a redrive records its rows and offsets under.
pub fn redrive_topic(id: &str, topic: &str) -> String {
    format!("{PREFIX}{id}.{topic}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_on_failure_record_yields_the_event_inside_it() {
        let event = r#"{"eventSource":"aws:kafka","records":{}}"#;
        assert_eq!(batch_of(event.as_bytes()).unwrap(), event.as_bytes());
        let record = format!(r#"{{"requestContext":{{"condition":"RetryAttemptsExhausted"}},"payload":{event}}}"#);
        let inner: Value = serde_json::from_slice(&batch_of(record.as_bytes()).unwrap()).unwrap();
        assert_eq!(inner["eventSource"], "aws:kafka");
        let as_text = serde_json::json!({ "payload": event }).to_string();
        assert_eq!(batch_of(as_text.as_bytes()).unwrap(), event.as_bytes());
        assert!(batch_of(b"{\"version\":\"1.0\"}").unwrap_err().to_string().contains("on-failure record"));
    }
}

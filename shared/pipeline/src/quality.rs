//! Quality: named, declarative rules every record must pass; a failing record is quarantined with the
//! rule's name and a message, never dropped and never failing the batch.

use crate::decode::{NO_TIMESTAMP, RawRecord};
use crate::envelope::{READABLE_VERSIONS, TweetMessage};
use chrono::{DateTime, Utc};

/// A quality rule: its name (stored with each rejected record) and what it checks.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    /// Stable identifier, used as a metric dimension and in the quarantine table.
    pub name: &'static str,
    /// What a record must satisfy.
    pub description: &'static str,
}

/// Every rule, in the order they are checked; the first failure is the one recorded.
pub const RULES: &[Rule] = &[
    Rule {
        name: "decodable",
        description: "the record decodes: its fields have Kafka's types, key and value are base64, header bytes are in range, \
                      its topic, partition and offset are a Kafka position",
    },
    Rule {
        name: "kafka_timestamp",
        description: "the Kafka timestamp is -1 (none) or a time from 1970 up to the allowed skew after the processing clock",
    },
    Rule { name: "value_present", description: "the record has a value (not a tombstone)" },
    Rule { name: "payload_size", description: "the value is at most the configured payload cap" },
    Rule { name: "utf8", description: "the value is valid UTF-8" },
    Rule { name: "json", description: "the value is syntactically valid JSON" },
    Rule { name: "schema", description: "the JSON has the envelope's shape and types" },
    Rule { name: "envelope_version", description: "the envelope version is one this build reads" },
    Rule { name: "required_fields", description: "tweet.id, tweet.text and tweet.created_at are present" },
    Rule { name: "id_format", description: "tweet.id and the first id of its edit history are 1 to 19 decimal digits" },
    Rule { name: "text_length", description: "tweet.text has 1 to the configured maximum characters" },
    Rule {
        name: "created_at",
        description: "tweet.created_at is RFC 3339 and at most the allowed skew after the record's Kafka timestamp",
    },
];

/// Limits the rules apply.
#[derive(Clone, Debug)]
pub struct QualityConfig {
    /// Largest accepted value in bytes.
    pub max_payload_bytes: usize,
    /// Longest accepted tweet text in characters.
    pub max_text_chars: usize,
    /// How far a record's Kafka timestamp may be ahead of the processing clock, and a tweet's
    /// `created_at` ahead of its Kafka timestamp, in seconds.
    pub max_future_skew_secs: i64,
}

impl Default for QualityConfig {
    fn default() -> Self {
        // 25,000 characters is X's limit for long posts; 1 MiB leaves room for entities and includes.
        Self { max_payload_bytes: 1 << 20, max_text_chars: 25_000, max_future_skew_secs: 300 }
    }
}

/// Why a record was rejected.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    /// The rule that failed, one of [`RULES`].
    pub rule: &'static str,
    /// Details for a person.
    pub message: String,
}

/// A record that passed every rule.
#[derive(Clone, Debug)]
pub struct ValidTweet {
    /// The decoded envelope.
    pub message: TweetMessage,
    /// `tweet.id` as a number (19 digits always fit a u64), the key dedup compares.
    pub id: u64,
    /// Parsed `tweet.created_at`.
    pub created_at: DateTime<Utc>,
    /// The id of the post's first version as a number: `id` unless the post was edited.
    pub root: u64,
}

fn reject(rule: &'static str, message: impl Into<String>) -> Rejection {
    debug_assert!(RULES.iter().any(|r| r.name == rule));
    Rejection { rule, message: message.into() }
}

/// Applies every rule to one record. `created_at` is compared with the record's Kafka timestamp (a
/// tweet cannot be created after it was produced), so a redelivered record gets the same verdict at any
/// time; `now` stands in only for records without a timestamp, and bounds the Kafka timestamp itself
/// (a clock far ahead would otherwise steer the dedup window and overflow the timestamp columns).
pub fn check(rec: &RawRecord, cfg: &QualityConfig, now: DateTime<Utc>) -> Result<ValidTweet, Rejection> {
    if let Some(e) = &rec.decode_error {
        return Err(reject("decodable", e.clone()));
    }
    let latest_ms = now.timestamp_millis().saturating_add(cfg.max_future_skew_secs.saturating_mul(1000));
    if rec.timestamp_ms != NO_TIMESTAMP && !(0..=latest_ms).contains(&rec.timestamp_ms) {
        return Err(reject(
            "kafka_timestamp",
            format!(
                "Kafka timestamp {} ms is not a real time: allowed -1 (none) or 0 to {latest_ms} (processing time plus {}s)",
                rec.timestamp_ms, cfg.max_future_skew_secs
            ),
        ));
    }
    let value = rec.value.as_deref().ok_or_else(|| reject("value_present", "record has no value"))?;
    if value.len() > cfg.max_payload_bytes {
        return Err(reject("payload_size", format!("{} bytes exceed the cap of {}", value.len(), cfg.max_payload_bytes)));
    }
    // The SIMD check is several times faster on valid text; std's says where the first bad byte is.
    let text = simdutf8::basic::from_utf8(value).map_err(|_| {
        reject("utf8", std::str::from_utf8(value).err().map_or_else(|| "invalid UTF-8".to_owned(), |e| e.to_string()))
    })?;
    let message: TweetMessage = serde_json::from_str(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => reject("schema", e.to_string()),
        _ => reject("json", e.to_string()),
    })?;
    if !READABLE_VERSIONS.contains(&message.v) {
        return Err(reject(
            "envelope_version",
            format!("version {} is not one of {}..={}", message.v, READABLE_VERSIONS.start(), READABLE_VERSIONS.end()),
        ));
    }
    let t = &message.tweet;
    let missing: Vec<&str> =
        [("tweet.id", t.id.is_empty()), ("tweet.text", t.text.is_empty()), ("tweet.created_at", t.created_at.is_none())]
            .into_iter()
            .filter_map(|(n, m)| m.then_some(n))
            .collect();
    if !missing.is_empty() {
        return Err(reject("required_fields", format!("missing {}", missing.join(", "))));
    }
    let number = |field: &str, v: &str| match v.parse::<u64>() {
        Ok(id) if v.len() <= 19 && v.bytes().all(|b| b.is_ascii_digit()) => Ok(id),
        _ => Err(reject("id_format", format!("{field} {v:?} is not 1 to 19 digits"))),
    };
    let id = number("tweet.id", &t.id)?;
    let root = match t.edit_history_tweet_ids.first() {
        Some(first) => number("tweet.edit_history_tweet_ids[0]", first)?,
        None => id,
    };
    let chars = t.text.chars().count();
    if chars > cfg.max_text_chars || t.text.trim().is_empty() {
        return Err(reject("text_length", format!("{chars} characters; allowed 1 to {} non-blank", cfg.max_text_chars)));
    }
    let raw = t.created_at.as_deref().unwrap_or_default();
    let created_at = DateTime::parse_from_rfc3339(raw)
        .map_err(|e| reject("created_at", format!("{raw:?} is not RFC 3339: {e}")))?
        .with_timezone(&Utc);
    let reference = Some(rec.timestamp_ms).filter(|&ms| ms > 0).and_then(DateTime::from_timestamp_millis).unwrap_or(now);
    if (created_at - reference).num_seconds() > cfg.max_future_skew_secs {
        return Err(reject(
            "created_at",
            format!("{raw} is more than {}s after the record's Kafka timestamp {reference}", cfg.max_future_skew_secs),
        ));
    }
    Ok(ValidTweet { message, id, created_at, root })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(value: Option<&str>) -> RawRecord {
        RawRecord {
            topic: "t".into(),
            partition: 0,
            offset: 1,
            timestamp_ms: NO_TIMESTAMP,
            key: None,
            value: value.map(|v| v.as_bytes().to_vec()),
            headers: vec![],
            decode_error: None,
        }
    }

    fn rule_of(value: Option<&str>) -> &'static str {
        let now = DateTime::parse_from_rfc3339("2026-11-27T00:00:00Z").unwrap().with_timezone(&Utc);
        check(&rec(value), &QualityConfig::default(), now).map(|_| "ok").unwrap_or_else(|r| r.rule)
    }

    #[test]
    fn each_rule_catches_its_case() {
        let good = r#"{"v":1,"tweet":{"id":"123","text":"hi","created_at":"2026-11-26T10:00:00.000Z"}}"#;
        assert_eq!(rule_of(Some(good)), "ok");
        assert_eq!(rule_of(None), "value_present");
        assert_eq!(rule_of(Some("{\"v\":1,")), "json");
        assert_eq!(rule_of(Some(r#"{"v":"one"}"#)), "schema");
        assert_eq!(rule_of(Some(r#"{"v":3,"tweet":{}}"#)), "envelope_version");
        assert_eq!(rule_of(Some(r#"{"v":0,"tweet":{}}"#)), "envelope_version");
        assert_eq!(rule_of(Some(r#"{"v":1,"tweet":{"id":"1"}}"#)), "required_fields");
        assert_eq!(rule_of(Some(&good.replace("\"123\"", "\"12a\""))), "id_format");
        assert_eq!(rule_of(Some(&good.replace("\"hi\"", "\"   \""))), "text_length");
        assert_eq!(rule_of(Some(&good.replace("2026-11-26T10", "yesterday"))), "created_at");
        assert_eq!(rule_of(Some(&good.replace("2026-11-26", "2027-01-01"))), "created_at");
        // Judged against the Kafka timestamp, not the clock: the same verdict on every redelivery.
        let mut produced = rec(Some(good));
        produced.timestamp_ms = DateTime::parse_from_rfc3339("2026-11-26T09:00:00Z").unwrap().timestamp_millis();
        let later = DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(check(&produced, &QualityConfig::default(), later).unwrap_err().rule, "created_at");
        produced.timestamp_ms += 3_600_000;
        assert!(check(&produced, &QualityConfig::default(), later).is_ok());
        let mut big = rec(Some(good));
        big.value = Some(vec![b' '; (1 << 20) + 1]);
        assert_eq!(check(&big, &QualityConfig::default(), Utc::now()).unwrap_err().rule, "payload_size");
        let mut bad_utf8 = rec(None);
        bad_utf8.value = Some(vec![0xff, 0xfe]);
        assert_eq!(check(&bad_utf8, &QualityConfig::default(), Utc::now()).unwrap_err().rule, "utf8");
    }
}

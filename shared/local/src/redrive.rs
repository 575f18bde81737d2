//! The quarantine table's rows read back as Kafka records, so that after a quality rule was fixed (a
//! limit raised, a check corrected) the rows it rejected can be redriven through the pipeline
//! (`Processor::redrive_quarantined`).

use base64::Engine;
use std::collections::HashMap;
use tweetlake_pipeline::decode::RawRecord;

/// Every row `rule` quarantined, in Kafka order, as the record it was received as (key and value as
/// received; the headers are not kept by the quarantine table). Rows the redrive itself marked are
/// never returned: their rule is `redriven`.
pub async fn quarantined(quarantine_uri: &str, storage: &HashMap<String, String>, rule: &str) -> anyhow::Result<Vec<RawRecord>> {
    let ctx = crate::query::session(&[("quarantine", quarantine_uri)], storage).await?;
    // Binary columns as base64 text: the JSON rows carry them without guessing at an encoding.
    let sql = format!(
        "SELECT kafka_topic, kafka_partition, kafka_offset, CAST(kafka_timestamp AS BIGINT) AS micros, \
         encode(key, 'base64') AS key, encode(payload, 'base64') AS payload FROM quarantine WHERE rule = '{}' \
         ORDER BY kafka_topic, kafka_partition, kafka_offset",
        rule.replace('\'', "''")
    );
    let bytes = |v: &serde_json::Value| -> anyhow::Result<Option<Vec<u8>>> {
        v.as_str()
            .map(|s| base64::engine::general_purpose::STANDARD_NO_PAD.decode(s.trim_end_matches('=')))
            .transpose()
            .map_err(|e| anyhow::anyhow!("a quarantined key or payload is not base64: {e}"))
    };
    crate::query::rows(&ctx, &sql)
        .await?
        .iter()
        .map(|r| {
            Ok(RawRecord {
                topic: r["kafka_topic"].as_str().unwrap_or_default().to_owned(),
                partition: r["kafka_partition"].as_i64().unwrap_or(-1) as i32,
                offset: r["kafka_offset"].as_i64().unwrap_or(-1),
                timestamp_ms: r["micros"].as_i64().map_or(-1, |m| m.div_euclid(1000)),
                key: bytes(&r["key"])?,
                value: bytes(&r["payload"])?,
                headers: Vec::new(),
                decode_error: None,
            })
        })
        .collect()
}

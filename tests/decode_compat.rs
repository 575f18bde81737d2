//! Why the process function decodes Kafka events with its own types: the three defects of
//! `aws_lambda_events` 1.2.1's `KafkaRecord`, each shown here next to `tweetlake_pipeline::decode` handling the
//! same input. If a later aws_lambda_events fixes them, these tests say so and the switch back is cheap.

use aws_lambda_events::event::kafka::KafkaEvent as AwsKafkaEvent;
use tweetlake_pipeline::decode::decode_event;

fn event_with(record: &str) -> String {
    format!(r#"{{"eventSource":"aws:kafka","records":{{"t-0":[{record}]}}}}"#)
}

#[test]
fn epoch_millis_are_exact_where_f64_parsing_is_not() {
    let (mut theirs_off, mut ours_off) = (0, 0);
    for ms in 1_732_690_800_000i64..1_732_690_801_000 {
        let ev = event_with(&format!(
            r#"{{"topic":"t","partition":0,"offset":1,"timestamp":{ms},"timestampType":"CREATE_TIME","value":"e30=","headers":[]}}"#
        ));
        let theirs: AwsKafkaEvent = serde_json::from_str(&ev).unwrap();
        if theirs.records["t-0"][0].timestamp.0.timestamp_millis() != ms {
            theirs_off += 1;
        }
        if decode_event(ev.as_bytes()).unwrap().1[0].timestamp_ms != ms {
            ours_off += 1;
        }
    }
    assert_eq!(ours_off, 0);
    assert!(theirs_off > 100, "aws_lambda_events 1.2.1 lost a millisecond on {theirs_off} of 1000 values; fixed upstream?");
}

#[test]
fn header_bytes_above_127_and_records_without_headers() {
    let high = event_with(r#"{"topic":"t","partition":0,"offset":1,"timestamp":1,"value":"e30=","headers":[{"h":[195,169]}]}"#);
    assert!(serde_json::from_str::<AwsKafkaEvent>(&high).is_err(), "aws_lambda_events rejects unsigned header bytes");
    assert_eq!(decode_event(high.as_bytes()).unwrap().1[0].headers[0].1, "é".as_bytes());
    let bare = event_with(r#"{"topic":"t","partition":0,"offset":1,"timestamp":1,"value":"e30="}"#);
    assert!(serde_json::from_str::<AwsKafkaEvent>(&bare).is_err(), "aws_lambda_events needs a headers field");
    assert!(decode_event(bare.as_bytes()).unwrap().1[0].headers.is_empty());
}

#[test]
fn sample_events_decode_completely() {
    for name in ["msk-batch.json", "self-managed-batch.json", "poison-batch.json", "hostile-batch.json"] {
        let bytes = std::fs::read(tweetlake_tests::repo_root().join("events").join(name)).unwrap();
        let recs = decode_event(&bytes).unwrap().1;
        let ev: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let total: usize = ev["records"].as_object().unwrap().values().map(|v| v.as_array().unwrap().len()).sum();
        assert_eq!(recs.len(), total, "{name}");
        assert!(recs.windows(2).all(|w| (w[0].partition, w[0].offset) < (w[1].partition, w[1].offset)), "{name} sorted");
    }
}

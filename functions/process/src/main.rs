//! The process Lambda: a Kafka batch in, a JSON summary out. All logic lives in the `tweetlake-pipeline` crate.
//!
//! Settings are validated before the runtime starts, so a bad configuration fails the cold start with
//! a message naming the variable instead of failing every invocation.

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::value::RawValue;
use std::sync::Arc;
use tweetlake_pipeline::{Error, ProcessConfig, Processor};

/// The key of a redrive request, `{"tweetlake_redrive": <failed batch>}`: the batch is a Kafka event or
/// the on-failure record holding one.
const REDRIVE: &str = "tweetlake_redrive";

/// Prints a batch's CloudWatch embedded-metric lines to stdout, where CloudWatch Logs picks them up.
fn print_metrics(summary: &tweetlake_pipeline::BatchSummary) {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    for line in tweetlake_pipeline::metrics::batch_lines(summary, now_ms) {
        println!("{line}");
    }
}

// The pipeline allocates per record (strings, Arrow buffers); glibc's malloc and free were ~15 % of the
// in-memory path's profile (`perf` on `cargo bench -p tweetlake-pipeline --bench pipeline`), mimalloc's are cheaper.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt().json().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).without_time().init();
    let started = match ProcessConfig::from_env() {
        Ok(cfg) => Processor::new(cfg).await,
        Err(e) => Err(e),
    };
    let processor = Arc::new(tweetlake_pipeline::error::or_exit(started, "tweetlake-process-function"));
    tracing::info!(model = processor.model_version(), "process function ready");
    // The payload stays raw JSON text: the library parses it straight into records (cheaper than a
    // `Value` tree) and reports a malformed event as its own typed, non-retryable error.
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Box<RawValue>>| {
        let p = Arc::clone(&processor);
        async move {
            let raw = event.payload.get();
            // A redrive request, invoked by hand, replays a batch the mapping gave up on.
            let redrive = match raw.contains(REDRIVE) {
                true => serde_json::from_str::<std::collections::HashMap<String, Box<RawValue>>>(raw)
                    .ok()
                    .and_then(|mut m| m.remove(REDRIVE)),
                false => None,
            };
            let response = match redrive {
                Some(batch) => {
                    let s = p.redrive(batch.get().as_bytes()).await?;
                    print_metrics(&s.batch);
                    serde_json::to_value(s)
                }
                None => {
                    let s = p.process_event(raw).await?;
                    print_metrics(&s);
                    serde_json::to_value(s)
                }
            };
            Ok::<serde_json::Value, Error>(response.expect("summaries serialise"))
        }
    }))
    .await
}

//! The process Lambda: a Kafka batch in, a JSON summary out. All logic lives in the `tweetlake-pipeline` crate.
//!
//! Settings are validated before the runtime starts, so a bad configuration fails the cold start with
//! a message naming the variable instead of failing every invocation.

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::value::RawValue;
use std::sync::Arc;
use tweetlake_pipeline::{BatchSummary, Error, ProcessConfig, Processor};

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
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
            let summary = p.process_event(event.payload.get()).await?;
            for line in tweetlake_pipeline::metrics::batch_lines(&summary, now_ms()) {
                println!("{line}");
            }
            Ok::<BatchSummary, Error>(summary)
        }
    }))
    .await
}

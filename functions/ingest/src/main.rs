//! The ingest Lambda: an EventBridge scheduled event in, one ingest run (X API → Kafka, then the
//! watermarks), a JSON report out. All logic lives in the `tweetlake-ingest` crate.
//!
//! Settings, rules and credentials are validated before the runtime starts, so a bad configuration
//! fails the cold start with a message naming the variable instead of failing every invocation.

use chrono::Utc;
use lambda_runtime::{LambdaEvent, service_fn};
use std::sync::Arc;
use tweetlake_ingest::run::deadline_from_epoch_ms;
use tweetlake_ingest::{Ingest, IngestConfig};

/// Run time allowed when the invocation's deadline is unusable (see `deadline_from_epoch_ms`).
const FALLBACK_RUN_TIME: std::time::Duration = std::time::Duration::from_secs(300);

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt().json().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).without_time().init();
    let ingest = match IngestConfig::from_env() {
        Ok(cfg) => Ingest::from_config(cfg).await,
        Err(e) => Err(e),
    };
    // Printed with its message (not its debug form) so the log line reads as the cause.
    let ingest = Arc::new(ingest.inspect_err(|e| eprintln!("tweetlake-ingest-function cannot start: {e}"))?);
    tracing::info!("ingest function ready");
    // The scheduled event carries nothing the run needs; its deadline comes from the invocation.
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let ingest = Arc::clone(&ingest);
        async move {
            let deadline = deadline_from_epoch_ms(event.context.deadline, Utc::now(), FALLBACK_RUN_TIME);
            tracing::info!(request_id = event.context.request_id, deadline = %deadline, "ingest run starts");
            let report = ingest.run(deadline).await?;
            for line in report.metric_lines(Utc::now().timestamp_millis()) {
                println!("{line}");
            }
            Ok::<_, tweetlake_ingest::Error>(report)
        }
    }))
    .await
}
